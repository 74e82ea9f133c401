//! Every request's way through the HTTP layer: read and parse it once ([`read_request`]), look
//! its path up in the route table ([`Endpoint`]) and hand it to the endpoint that serves it:
//! [`unrouted`], [`quorum`] or the core's router ([`logical`]). On a cluster, [`forwarding`]
//! first decides whether the request is served here or on the leader.
//!
//! The endpoint modules import only the shared types (state, request, reply, error) and the
//! core; only this module imports them.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::cluster::forward::{ForwardedRequest, ForwardedResponse, FORWARDED_HEADER};
use crate::core::error::Error;
use crate::http::budget::ConnShare;
use crate::http::forwarding::{self, Decision};
use crate::http::logical;
use crate::http::metrics;
use crate::http::quorum;
use crate::http::raft;
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
            metrics::record(&state, None, reply.status, started.elapsed());
            return reply;
        }
    };
    let reply = serve(&state, &request).await;
    metrics::record(&state, Some(&request.path), reply.status, started.elapsed());
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

/// Serves a parsed request (also a request another node forwarded here).
pub async fn serve(state: &HttpState, request: &HttpRequest) -> Reply {
    if let Some(ns) = request.headers.get("x-vault-namespace").and_then(|v| v.to_str().ok()) {
        let ns = ns.trim().trim_end_matches('/');
        if !ns.is_empty() && ns != "root" {
            return request.error_reply(Error::bad("namespaces are not supported by this server"));
        }
    }
    let endpoint = Endpoint::parse(&request.path);
    if let Some(cluster) = &state.cluster {
        if let Decision::Answered(reply) = forwarding::decide(state, cluster, request, endpoint).await {
            return reply;
        }
    }
    match endpoint {
        Endpoint::Logical => match logical::serve_checked(state, request).await {
            Ok(reply) => reply,
            // A write this follower's storage refused: nothing was written here, the leader
            // runs it (the route table's backstop).
            Err(Error::Standby { leader }) => match &state.cluster {
                Some(cluster) if !request.headers.contains_key(FORWARDED_HEADER) => {
                    forwarding::to_leader(cluster, request, false).await
                }
                _ => request.error_reply(Error::Standby { leader }),
            },
            Err(e) => request.error_reply(e),
        },
        Endpoint::Quorum(endpoint) => quorum::serve(state, request, endpoint).await,
        Endpoint::Unrouted(endpoint) => unrouted::serve(state, request, endpoint).await,
        Endpoint::Raft(endpoint) => raft::serve(state, request, endpoint).await,
        Endpoint::Metrics => metrics::serve(state, request).await,
    }
}

/// Leader side: runs a forwarded request through this node's HTTP handling and returns the
/// response to send back.
pub async fn serve_forwarded(state: &HttpState, fwd: ForwardedRequest) -> ForwardedResponse {
    let failed = |status: StatusCode, msg: &str| {
        let body = serde_json::json!({ "errors": [msg] }).to_string();
        ForwardedResponse::new(status.as_u16(), Vec::new(), body.as_bytes())
    };
    let Ok(method) = Method::from_bytes(fwd.method.as_bytes()) else {
        return failed(StatusCode::BAD_REQUEST, "invalid forwarded method");
    };
    let body = match fwd.body_bytes() {
        Ok(b) => Bytes::from(b),
        Err(_) => return failed(StatusCode::BAD_REQUEST, "invalid forwarded body"),
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &fwd.headers {
        if let (Ok(name), Ok(value)) =
            (http::header::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v))
        {
            headers.append(name, value);
        }
    }
    headers.insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
    let remote = SocketAddr::new(fwd.remote_addr, 0);
    let request = match crate::http::request::forwarded_request(
        method,
        &fwd.path_and_query,
        headers,
        body,
        remote,
        state.max_request_size,
    ) {
        Ok(r) => r,
        Err(reply) => return ForwardedResponse::new(reply.status.as_u16(), Vec::new(), &reply.body),
    };
    let started = std::time::Instant::now();
    let reply = serve(state, &request).await;
    metrics::record(state, Some(&request.path), reply.status, started.elapsed());
    let headers = reply
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
        .collect();
    ForwardedResponse::new(reply.status.as_u16(), headers, &reply.body)
}
