//! A listener's limits as the operator sets them: request size, Vault's `http_*` timeouts,
//! `tls_handshake_timeout` and `max_connections`, with the defaults that apply when a setting is
//! absent (or 0, as in Vault).
//!
//! These are plain settings: the configuration does not depend on the HTTP layer. The server
//! (`cli::server`) turns them into the listener's own types when it binds.

use std::time::Duration;

/// Default largest request body (Vault's 32 MiB).
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;
/// Vault's default `http_read_header_timeout`.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Vault's default `http_read_timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Vault's default `http_idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Default `tls_handshake_timeout` (Go's `http.Transport` uses the same).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `max_connections` per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The timeouts and connection cap of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// `http_read_header_timeout`: from the first byte of a request (or the connection's start)
    /// to its last header byte.
    pub read_header_timeout: Duration,
    /// `http_read_timeout`: from the end of the headers to the end of the body.
    pub read_timeout: Duration,
    /// `http_idle_timeout`: how long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// `http_write_timeout`: how long a response write may make no progress; `None`: no limit
    /// (Vault's default).
    pub write_timeout: Option<Duration>,
    /// `tls_handshake_timeout`.
    pub tls_handshake_timeout: Duration,
    /// `max_connections`: connections served at once.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: None,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}
