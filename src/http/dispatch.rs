//! Every request's way through the HTTP layer: read and parse it once ([`read_request`]), look
//! its path up in the route table ([`Endpoint`]) and hand it to the endpoint that serves it:
//! [`unrouted`], [`quorum`] or the core's router ([`logical`]).
//!
//! The endpoint modules import only the shared types (state, request, reply, error) and the
//! core; only this module imports them.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;

use crate::core::error::Error;
use crate::http::budget::ConnShare;
use crate::http::logical;
use crate::http::quorum;
use crate::http::reply::Reply;
use crate::http::request::{read_request, HttpRequest};
use crate::http::routes::Endpoint;
use crate::http::state::HttpState;
use crate::http::unrouted;

/// Entry point for every request; `conn` is the body budget share of its connection.
pub async fn handle(
    state: Arc<HttpState>,
    req: hyper::Request<Incoming>,
    remote: SocketAddr,
    conn: Arc<ConnShare>,
) -> Reply {
    let started = std::time::Instant::now();
    let request = match read_request(&state, req, remote, &conn).await {
        Ok(r) => r,
        Err(reply) => {
            tracing::debug!(%remote, status = reply.status.as_u16(), "request refused before parsing");
            return reply;
        }
    };
    let reply = serve(&state, &request).await;
    // Method, path, status and timing only: bodies, headers and tokens are never logged.
    tracing::debug!(
        request_id = %request.request_id,
        %remote,
        method = %request.method,
        path = %request.path,
        status = reply.status.as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    reply
}

async fn serve(state: &HttpState, request: &HttpRequest) -> Reply {
    if let Some(ns) = request.headers.get("x-vault-namespace").and_then(|v| v.to_str().ok()) {
        let ns = ns.trim().trim_end_matches('/');
        if !ns.is_empty() && ns != "root" {
            return request.error_reply(Error::bad("namespaces are not supported by this server"));
        }
    }
    match Endpoint::parse(&request.path) {
        Endpoint::Logical => logical::serve(state, request).await,
        Endpoint::Quorum(endpoint) => quorum::serve(state, request, endpoint).await,
        Endpoint::Unrouted(endpoint) => unrouted::serve(state, request, endpoint).await,
    }
}
