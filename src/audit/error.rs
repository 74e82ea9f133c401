//! The audit layer's error type. The core turns it into its own error (`core::error`), and so
//! into an HTTP status; nothing here knows about the core or HTTP.

use coffer_storage::BarrierError;

/// What went wrong with an audit device or its chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A device definition the server refuses (bad option, forbidden option, bad path...).
    /// `key` names the offending option or field when there is one (`options.prefix`).
    #[error("{message}")]
    Invalid { key: Option<String>, message: String },
    /// The operation is not allowed by the server's configuration (API creation, disabling a
    /// configuration-managed device).
    #[error("{0}")]
    Refused(String),
    /// No such device.
    #[error("{0}")]
    NotFound(String),
    /// A sink could not be opened, read or written. The message names the file, never data.
    #[error("{0}")]
    Io(String),
    /// The stored chain state behind the barrier is missing or unreadable.
    #[error("audit chain state: {0}")]
    State(String),
    /// Devices are enabled and none could write the entry: the request must fail (fail
    /// closed).
    #[error("no audit backend succeeded in logging the request")]
    NoDeviceWrote,
    /// Reading or writing the barrier failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

impl AuditError {
    /// An invalid option or field.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        AuditError::Invalid { key: Some(key.into()), message: message.into() }
    }

    /// An invalid definition without one key to blame.
    pub fn bad(message: impl Into<String>) -> Self {
        AuditError::Invalid { key: None, message: message.into() }
    }
}
