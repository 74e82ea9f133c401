//! An HTTP request read and parsed once: method, logical path, query, headers and a body that
//! stayed within the listener's size limit, its body budget and `http_read_timeout`.
//!
//! The logical path is the part after `/v1/`, percent-decoded, with `//` collapsed; paths with
//! control characters or `.`/`..` segments are refused here, so no endpoint sees them.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::core::error::Error;
use crate::http::body::parse_body;
use crate::http::budget::{ConnShare, Reservation, SMALL_BODY};
use crate::http::error::{self, ErrorContext};
use crate::http::reply::Reply;
use crate::http::state::HttpState;
use crate::secret::ClientToken;

/// A request as every endpoint sees it.
pub struct HttpRequest {
    pub method: Method,
    /// Logical path (after `/v1/`), `//` collapsed, percent-decoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub remote: SocketAddr,
    pub request_id: String,
    /// Path and query as the client sent them (`/v1/...?...`).
    pub target: String,
    /// Body budget held until the request is finished.
    pub budget: Option<Reservation>,
}

impl HttpRequest {
    /// The caller's token: `X-Vault-Token`, else `Authorization: Bearer`.
    pub fn token(&self) -> Option<ClientToken> {
        if let Some(v) = self.headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
            return Some(ClientToken::new(v.trim().to_owned()));
        }
        let auth = self.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        auth.strip_prefix("Bearer ").map(|t| ClientToken::new(t.trim().to_owned()))
    }

    /// The body as a JSON object (empty body = empty object). Unknown fields are kept; the
    /// endpoint decides what it reads.
    pub fn json_body(&self) -> Result<Map<String, Value>, Error> {
        parse_body(&self.headers, &self.body)
    }

    /// Query parameter by name (first value).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// What an error reply to this request needs to know about it.
    pub fn error_context(&self) -> ErrorContext<'_> {
        ErrorContext { request_id: &self.request_id, target: &self.target }
    }

    /// The reply for an error while serving this request.
    pub fn error_reply(&self, err: Error) -> Reply {
        error::reply(err, self.error_context())
    }
}

/// Collapses `//` and strips the leading `/`.
pub fn clean_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut prev_slash = true;
    for c in p.chars() {
        if c == '/' {
            if prev_slash {
                continue;
            }
            prev_slash = true;
        } else {
            prev_slash = false;
        }
        out.push(c);
    }
    out
}

/// Splits a request URI into the logical path (after `/v1/`, percent-decoded, `//` collapsed),
/// the query pairs and the original path and query. `Err` is a finished reply.
fn split_target(uri: &http::Uri, request_id: &str) -> Result<(String, Vec<(String, String)>, String), Reply> {
    let raw_path = uri.path();
    let Some(rest) = raw_path.strip_prefix("/v1/") else {
        return Err(error::empty(StatusCode::NOT_FOUND));
    };
    let target = uri.path_and_query().map_or(raw_path, |pq| pq.as_str()).to_owned();
    let context = ErrorContext { request_id, target: &target };
    let decoded = percent_encoding::percent_decode_str(rest).decode_utf8_lossy().into_owned();
    if decoded.chars().any(|c| c.is_control()) {
        return Err(error::reply(Error::bad("path contains non-printable characters"), context));
    }
    if decoded.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(error::reply(Error::bad("relative paths are not supported"), context));
    }
    let path = clean_path(&decoded);
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
        })
        .unwrap_or_default();
    Ok((path, query, target))
}

/// A request a standby forwarded, as this (leader) node serves it: the body was read and
/// bounded by the cluster port, the client address is the one the standby saw.
pub fn forwarded_request(
    method: Method,
    target: &str,
    headers: HeaderMap,
    body: Bytes,
    remote: SocketAddr,
    max_request_size: usize,
) -> Result<HttpRequest, Reply> {
    let request_id = request_id();
    let uri: http::Uri = target.parse().map_err(|_| error::empty(StatusCode::BAD_REQUEST))?;
    let (path, query, target) = split_target(&uri, &request_id)?;
    if body.len() > max_request_size {
        return Err(error::reply(Error::TooLarge, ErrorContext { request_id: &request_id, target: &target }));
    }
    Ok(HttpRequest { method, path, query, headers, body, remote, request_id, target, budget: None })
}

/// A fresh request ID (a version-4 UUID), from the thread's CSPRNG (`rand::thread_rng`, seeded
/// and reseeded from the OS) rather than a `getrandom` system call per request.
fn request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

/// Reads and limits the body, splits the URI. `Err` is a finished reply.
pub async fn read_request(
    state: &HttpState,
    req: hyper::Request<Incoming>,
    remote: SocketAddr,
    conn: &Arc<ConnShare>,
) -> Result<HttpRequest, Reply> {
    let request_id = request_id();
    let (parts, body) = req.into_parts();
    let (path, query, target) = split_target(&parts.uri, &request_id)?;
    let context = ErrorContext { request_id: &request_id, target: &target };
    if let Some(len) = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
        if len.parse::<usize>().map(|l| l > state.max_request_size).unwrap_or(false) {
            return Err(error::reply(Error::TooLarge, context));
        }
    }
    let (body, budget) = read_body(state, body, conn, context).await?;
    Ok(HttpRequest {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        remote,
        budget: (budget.held() > 0 || budget.is_finisher()).then_some(budget),
        request_id,
        target,
    })
}

/// Reads a body, charging each chunk to the listener's body budget as it arrives (see
/// [`crate::http::budget::BodyBudget`]). The whole read, waiting for budget included, must
/// finish within `http_read_timeout`.
async fn read_body(
    state: &HttpState,
    mut body: Incoming,
    conn: &Arc<ConnShare>,
    context: ErrorContext<'_>,
) -> Result<(Bytes, Reservation), Reply> {
    use hyper::body::Body as _;
    let declared = body.size_hint().exact();
    let mut budget = state.body_budget.reservation(conn);
    let deadline = tokio::time::Instant::now().checked_add(state.read_timeout);
    let within = |deadline: Option<tokio::time::Instant>| async move {
        match deadline {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0usize;
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = within(deadline) => {
                return Err(error::reply(Error::bad("timed out reading the request body"), context));
            }
        };
        let data = match frame {
            None => break,
            Some(Err(_)) => return Err(error::reply(Error::bad("failed to read request body"), context)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers and empty frames carry no body bytes.
                _ => continue,
            },
        };
        received = received.saturating_add(data.len());
        if received > state.max_request_size {
            return Err(error::reply(Error::TooLarge, context));
        }
        let small = match declared {
            Some(len) => len <= SMALL_BODY as u64,
            None => received <= SMALL_BODY,
        };
        tokio::select! {
            _ = budget.grow(data.len(), small) => {}
            _ = within(deadline) => {
                return Err(error::reply(
                    Error::Unavailable("server is busy receiving other requests; retry".into()),
                    context,
                ));
            }
        }
        chunks.push(data);
    }
    // One copy into a buffer of the exact size (never sized from the announced length).
    let body = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = Vec::with_capacity(received);
            for c in chunks {
                all.extend_from_slice(&c);
            }
            Bytes::from(all)
        }
    };
    Ok((body, budget))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths() {
        assert_eq!(clean_path("secret//data///x"), "secret/data/x");
        assert_eq!(clean_path("/a/"), "a/");
    }
}
