//! The cluster port: an HTTP/2 server with mutual TLS that serves raft RPCs and hands every
//! other path to the root crate.
//!
//! [`serve_cluster`] accepts TCP connections forever (abort its task to stop it; open
//! connections are closed with it). Each connection completes a TLS 1.3 handshake that
//! **requires** a client certificate from the cluster CA; while the node has no TLS material
//! (sealed) connections are closed at once. A connection that negotiated the RPC channel's ALPN
//! protocol carries append-entries and read-index requests ([`crate::channel`]). Paths under [`paths::PREFIX`] go to
//! [`RaftNode::handle_rpc`]; everything else goes to the optional [`ExtraHandler`] (request
//! forwarding, join), or gets a 404.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::network::{clock_headers, paths};
use crate::node::RaftNode;

/// Largest request body accepted on the cluster port (an append of many large entries).
pub const MAX_CLUSTER_BODY: usize = 128 * 1024 * 1024;
/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The root crate's handler for non-raft paths on the cluster port. The request body is
/// already read (bounded by [`MAX_CLUSTER_BODY`]); the peer has proven cluster membership.
pub type ExtraHandler = Arc<dyn Fn(http::Request<Bytes>) -> BoxFuture<http::Response<Bytes>> + Send + Sync>;

/// Serves the cluster port on `listener` until the task is aborted.
pub async fn serve_cluster(listener: TcpListener, node: Arc<RaftNode>, extra: Option<ExtraHandler>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "cluster port accept failed");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Raft RPCs and forwarded requests are small request/response exchanges: Nagle's
        // algorithm against the peer's delayed ACK would hold replies back for up to 40 ms.
        let _ = stream.set_nodelay(true);
        let Some(cfg) = node.server_tls() else {
            tracing::debug!(%peer, "cluster TLS not configured yet; closing connection");
            continue;
        };
        let node = Arc::clone(&node);
        let extra = extra.clone();
        conns.spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "cluster TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            if tls.get_ref().1.alpn_protocol() == Some(crate::channel::ALPN_RPC) {
                crate::channel::serve(tls, node, peer).await;
                return;
            }
            let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&node), extra.clone(), req));
            if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "cluster connection ended");
            }
        });
    }
}

/// Follower side of the cluster clock: append-entries come only from a leader, and carry its
/// estimate of the cluster's time (`t`, ns since the Unix epoch), which this node follows from
/// now on.
pub(crate) fn adopt_leader_clock(t: i64) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !coffer_storage::clock::adopt_leader_time(t)
        && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(leader_time_ns = t, "refusing the leader's clock: more than a year from this host's");
    }
}

fn respond(status: http::StatusCode, body: Bytes) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

async fn handle(
    node: Arc<RaftNode>,
    extra: Option<ExtraHandler>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_CLUSTER_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(respond(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                Bytes::from_static(br#"{"errors":["request body too large or unreadable"]}"#),
            ))
        }
    };
    if parts.uri.path().starts_with(paths::PREFIX) {
        if parts.method != http::Method::POST {
            return Ok(respond(
                http::StatusCode::METHOD_NOT_ALLOWED,
                Bytes::from_static(br#"{"errors":["raft RPCs are POST"]}"#),
            ));
        }
        let path = parts.uri.path();
        let (status, body) = node.handle_rpc(path, &bytes).await;
        if path == paths::APPEND && status == http::StatusCode::OK {
            let sent = parts.headers.get(clock_headers::SENDER_CLUSTER_TIME);
            if let Some(t) = sent.and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok()) {
                adopt_leader_clock(t);
            }
        }
        let mut resp = respond(status, Bytes::from(body));
        resp.headers_mut().insert(
            clock_headers::RESPONDER_RAW_TIME,
            http::HeaderValue::from(coffer_storage::clock::raw_unix_ns()),
        );
        return Ok(resp);
    }
    match extra {
        Some(h) => {
            let resp = h(http::Request::from_parts(parts, bytes)).await;
            let (p, b) = resp.into_parts();
            Ok(http::Response::from_parts(p, Full::new(b)))
        }
        None => Ok(respond(
            http::StatusCode::NOT_FOUND,
            Bytes::from_static(br#"{"errors":["no such cluster path"]}"#),
        )),
    }
}
