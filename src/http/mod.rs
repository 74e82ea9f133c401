//! The HTTP API: hyper 1 (HTTP/1.1 and h2) over TCP, with rustls ([`tls`]) unless the listener
//! sets `tls_disable`.
//!
//! # A request's way
//!
//! ```text
//!   serve / serve_conn (this file)    connections, limits, hyper
//!     └─ dispatch                     read_request once, then the route table decides:
//!          ├─ unrouted                sys/ init, seal-status, unseal, seal, leader, health, step-down
//!          ├─ quorum                  generate-root and rekey ceremonies
//!          ├─ metrics                 sys/metrics; records every request into the node's metrics
//!          └─ logical                 everything else, through the core's router
//! ```
//!
//! [`routes`] is the one route table: the endpoint of every path, and where in a cluster each
//! request may be served (node-local, leader-bound, or a read after a read barrier).
//! [`request`] holds the parsed request ([`request::HttpRequest`]), [`reply`] the reply,
//! [`state`] what a listener's requests share; [`admission`] admits and audits the endpoints
//! outside the router that take a token. [`crate::core::envelope`] renders responses and
//! [`error`] is the only place errors become statuses.
//!
//! Imports point one way: [`dispatch`] imports the endpoint modules ([`unrouted`], [`quorum`],
//! [`logical`]); they import only the shared types ([`state`], [`request`], [`body`], [`reply`],
//! [`error`], [`admission`], [`routes`]) and the core; no file of `http` imports this one.
//!
//! Resource limits (security.md S4, S25): [`conn`] bounds each connection's life (header, idle,
//! write and TLS handshake timeouts; `max_connections`; accept back-off) and [`budget`] bounds
//! the memory of request bodies in flight.

pub mod admission;
pub mod body;
pub mod budget;
pub mod conn;
pub mod dispatch;
pub mod error;
pub mod forwarding;
pub mod logical;
pub mod metrics;
pub mod quorum;
pub mod raft;
pub mod reply;
pub mod request;
pub mod routes;
pub mod state;
pub mod tls;
pub mod unrouted;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::core::Core;
use budget::ConnShare;
pub use conn::ConnLimits;
use conn::{ConnWatch, Expiry, InFlight, Watched};
use reply::Reply;
use state::HttpState;
pub use tls::{tls_config, TlsError};

/// One bound listener.
pub struct Listener {
    pub tcp: TcpListener,
    /// `None` = plain HTTP (`tls_disable`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_request_size: usize,
    /// Timeouts and the connection cap.
    pub limits: ConnLimits,
    /// Serve `sys/metrics` without a token (the listener's `telemetry` block).
    pub unauthenticated_metrics_access: bool,
}

fn to_hyper(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut builder =
        hyper::Response::builder().status(reply.status).header(http::header::CACHE_CONTROL, "no-store");
    if !reply.headers.iter().any(|(k, _)| k == http::header::CONTENT_TYPE) {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    for (k, v) in reply.headers {
        builder = builder.header(k, v);
    }
    builder.body(Full::new(Bytes::from(reply.body))).unwrap_or_else(|_| {
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"{\"errors\":[\"internal error\"]}")));
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// Serves one listener until `shutdown` resolves.
///
/// At most `max_connections` connections are served at once: at the limit the listener stops
/// accepting, so further connections wait in the kernel's accept queue (they are not closed) and
/// are served as others close. A failed `accept` (out of file descriptors, for example) pauses
/// the loop with a doubling back-off instead of retrying at once.
pub async fn serve(
    core: Arc<Core>,
    listener: Listener,
    cluster: Option<Arc<crate::cluster::ClusterNode>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let limits = listener.limits;
    let state = Arc::new(
        HttpState::new(core, listener.max_request_size, limits.read_timeout)
            .with_cluster(cluster)
            .with_unauthenticated_metrics(listener.unauthenticated_metrics_access),
    );
    let acceptor = listener.tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let mut backoff: Option<Duration> = None;
    let mut warned_full: Option<tokio::time::Instant> = None;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned_full.is_none_or(|t| t.elapsed() >= FULL_WARNING_INTERVAL) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "max_connections reached: new connections wait until others close"
                    );
                    warned_full = Some(tokio::time::Instant::now());
                }
                tokio::select! {
                    s = Arc::clone(&slots).acquire_owned() => match s {
                        Ok(slot) => slot,
                        Err(_) => return,
                    },
                    _ = shutdown.changed() => return,
                }
            }
        };
        let accepted = tokio::select! {
            r = listener.tcp.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(x) => {
                backoff = None;
                x
            }
            Err(e) if conn::is_connection_error(&e) => {
                tracing::debug!(error = %e, "connection closed before it was accepted");
                continue;
            }
            Err(e) => {
                let pause = conn::accept_backoff(backoff);
                backoff = Some(pause);
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "accept failed; backing off");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // Held for the connection's life, TLS handshake included.
            let _slot = slot;
            match acceptor {
                Some(acc) => {
                    match tokio::time::timeout(limits.tls_handshake_timeout, acc.accept(stream)).await {
                        Ok(Ok(tls)) => serve_conn(state, tls, remote, limits).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, %remote, "TLS handshake failed"),
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake not completed within tls_handshake_timeout")
                        }
                    }
                }
                None => serve_conn(state, stream, remote, limits).await,
            }
        });
    }
}

/// Largest HTTP/1 read buffer of a connection, so also the largest request head.
const CONN_READ_BUFFER: usize = 64 * 1024;
/// HTTP/2 flow-control window, per connection and per stream: body bytes a client may send
/// before the server has taken them.
const H2_WINDOW: u32 = 256 * 1024;
/// HTTP/2 streams one connection may have open at once.
const H2_MAX_STREAMS: u32 = 100;

/// How often reaching `max_connections` is logged, at most.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Serves one connection until it ends or one of its deadlines passes (see [`conn`]).
async fn serve_conn<S>(state: Arc<HttpState>, stream: S, remote: SocketAddr, limits: ConnLimits)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let watch = Arc::new(ConnWatch::new());
    let share = Arc::new(ConnShare::default());
    let io = TokioIo::new(Watched::new(stream, Arc::clone(&watch), limits.write_timeout));
    let svc_watch = Arc::clone(&watch);
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let state = Arc::clone(&state);
        let share = Arc::clone(&share);
        let in_flight = InFlight::start(&svc_watch, req.version());
        async move {
            let reply = dispatch::handle(state, req, remote, share).await;
            drop(in_flight);
            Ok::<_, Infallible>(to_hyper(reply))
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    // The watchdog below enforces the header timeout; hyper's would also cut idle connections.
    // The buffer and window sizes bound what a connection holds before its body bytes are
    // charged to the body budget (hyper's defaults: ~400 KiB and 1 MiB).
    builder.http1().header_read_timeout(None).max_buf_size(CONN_READ_BUFFER);
    builder
        .http2()
        .initial_connection_window_size(H2_WINDOW)
        .initial_stream_window_size(H2_WINDOW)
        .max_concurrent_streams(H2_MAX_STREAMS);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let mut closing_by: Option<tokio::time::Instant> = None;
    loop {
        let deadline = closing_by.or_else(|| watch.deadline(&limits).map(|(t, _)| t));
        let expired = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, %remote, "connection ended with an error");
                }
                return;
            }
            _ = watch.changed() => continue,
            _ = expired => {}
        }
        if closing_by.is_some() {
            tracing::debug!(%remote, "closing a connection that did not shut down in time");
            return;
        }
        // The phase may have moved on since the deadline was computed.
        match watch.deadline(&limits) {
            Some((t, Expiry::Header)) if t <= tokio::time::Instant::now() => {
                tracing::debug!(%remote, "closing: request headers not received within http_read_header_timeout");
                return;
            }
            Some((t, Expiry::Idle)) if t <= tokio::time::Instant::now() => {
                tracing::debug!(%remote, "closing an idle connection (http_idle_timeout)");
                conn.as_mut().graceful_shutdown();
                closing_by = tokio::time::Instant::now().checked_add(conn::CLOSE_GRACE);
                if closing_by.is_none() {
                    return;
                }
            }
            _ => {}
        }
    }
}
