//! From an HTTP request to a core call and back.
//!
//! Parses method, path, query, headers and body exactly once into a [`Request`] (or a call to
//! one of the special `sys/` handlers that work while sealed), and renders the result.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::core::envelope;
use crate::core::error::Error;
use crate::core::request::{Request, Response};
use crate::core::Core;
use crate::http::budget::{BodyBudget, ConnShare, Reservation, SMALL_BODY};
use crate::http::{error, sys};
use crate::policy::Operation;
use crate::secret::ClientToken;
use crate::util::strconv::parse_bool_str;

/// Shared state of a listener.
pub struct HttpState {
    pub core: Arc<Core>,
    /// Largest accepted request body, in bytes.
    pub max_request_size: usize,
    /// Memory budget for request bodies in flight, charged as bytes arrive (security.md S4,
    /// S25; see [`BodyBudget`]).
    pub body_budget: Arc<BodyBudget>,
    /// How long a request may take to deliver its body after its headers, waiting for body
    /// budget included (`http_read_timeout`).
    pub read_timeout: Duration,
}

/// Default body budget: 32 MiB, or the largest request when that is bigger.
pub const DEFAULT_BODY_BUDGET: usize = 32 * 1024 * 1024;

impl HttpState {
    /// State for a listener with the given body limit and the default read timeout.
    pub fn new(core: Arc<Core>, max_request_size: usize) -> Self {
        let pool = DEFAULT_BODY_BUDGET.max(max_request_size);
        Self {
            core,
            max_request_size,
            body_budget: Arc::new(BodyBudget::new(pool)),
            read_timeout: crate::http::conn::DEFAULT_READ_TIMEOUT,
        }
    }

    /// The same with another `http_read_timeout`.
    pub fn with_read_timeout(self, read_timeout: Duration) -> Self {
        Self { read_timeout, ..self }
    }
}

/// What the HTTP layer sends back.
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// Extra headers (e.g. `Location`).
    pub headers: Vec<(http::header::HeaderName, String)>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: StatusCode, body: Vec<u8>) -> Self {
        Self { status, body, headers: Vec::new() }
    }

    /// 204 No Content.
    pub fn no_content() -> Self {
        Self { status: StatusCode::NO_CONTENT, body: Vec::new(), headers: Vec::new() }
    }

    /// An error reply.
    pub fn error(err: Error, request_id: &str) -> Self {
        let (status, body) = error::render(err, request_id);
        Self::json(status, body)
    }

    /// A core response rendered in the envelope (or 204 when empty).
    pub fn from_response(resp: Response, request_id: &str) -> Self {
        if let Some(raw) = resp.raw_body {
            let status = resp.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
            return Self::json(status, raw);
        }
        if resp.is_empty() {
            return match resp.status.and_then(|s| StatusCode::from_u16(s).ok()) {
                Some(s) if s != StatusCode::OK => Self::json(s, Vec::new()),
                _ => Self::no_content(),
            };
        }
        let status = resp.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
        Self::json(status, envelope::render(resp, request_id))
    }
}

/// A parsed, size-checked request body and its metadata.
pub struct Parsed {
    pub method: Method,
    /// Logical path (after `/v1/`), `//` collapsed, percent-decoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub remote: SocketAddr,
    pub request_id: String,
    /// Body budget held until the request is finished.
    pub _budget: Option<Reservation>,
}

impl Parsed {
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
}

/// Largest JSON nesting depth accepted.
const MAX_JSON_DEPTH: usize = 64;
/// Most strings (keys and values) accepted in one JSON body (Vault's
/// `max_request_json_strings`, CVE-2025-6203).
pub const MAX_JSON_STRINGS: usize = 1000;

fn count_strings(v: &Value) -> usize {
    match v {
        Value::String(_) => 1,
        Value::Array(a) => a.iter().map(count_strings).sum(),
        Value::Object(m) => m.len() + m.values().map(count_strings).sum::<usize>(),
        _ => 0,
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Parses a request body: JSON by default; form-encoded only when declared and not JSON-looking.
pub fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Error> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let Some(first) = first else { return Ok(Map::new()) };
    let is_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if is_form && first != b'{' && first != b'[' {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            out.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        return Ok(out.into_iter().map(|(k, v)| (k, Value::String(v.join(",")))).collect());
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Error::bad(format!("failed to decode JSON input: {e}")))?;
    if depth(&v) > MAX_JSON_DEPTH {
        return Err(Error::bad(format!(
            "failed to decode JSON input: nesting deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    if count_strings(&v) > MAX_JSON_STRINGS {
        return Err(Error::bad(format!("failed to decode JSON input: more than {MAX_JSON_STRINGS} strings")));
    }
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        Value::Array(_) => Err(Error::bad(
            "failed to decode JSON input: json: cannot unmarshal array into Go value of type map[string]interface {}",
        )),
        _ => Err(Error::bad("failed to decode JSON input: json: cannot unmarshal value into Go value of type map[string]interface {}")),
    }
}

/// Query pairs as request data: one value → string, several → list.
fn query_data(query: &[(String, String)]) -> Map<String, Value> {
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in query {
        grouped.entry(k.as_str()).or_default().push(v.as_str());
    }
    grouped
        .into_iter()
        .filter(|(k, _)| *k != "help")
        .map(|(k, v)| {
            let val = if v.len() == 1 { Value::String(v[0].to_owned()) } else { Value::from(v) };
            (k.to_owned(), val)
        })
        .collect()
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

/// Reads and limits the body, splits the URI. `Err` is a finished reply.
pub async fn read_request(
    state: &HttpState,
    req: hyper::Request<Incoming>,
    remote: SocketAddr,
    conn: &Arc<ConnShare>,
) -> Result<Parsed, Reply> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path();
    let Some(rest) = raw_path.strip_prefix("/v1/") else {
        let (s, b) = error::empty(StatusCode::NOT_FOUND);
        return Err(Reply::json(s, b));
    };
    let decoded = percent_encoding::percent_decode_str(rest).decode_utf8_lossy().into_owned();
    if decoded.chars().any(|c| c.is_control()) {
        return Err(Reply::error(Error::bad("path contains non-printable characters"), &request_id));
    }
    if decoded.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(Reply::error(Error::bad("relative paths are not supported"), &request_id));
    }
    let path = clean_path(&decoded);
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
        })
        .unwrap_or_default();
    if let Some(len) = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
        if len.parse::<usize>().map(|l| l > state.max_request_size).unwrap_or(false) {
            return Err(Reply::error(Error::TooLarge, &request_id));
        }
    }
    let (body, budget) = read_body(state, body, conn, &request_id).await?;
    Ok(Parsed {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        remote,
        request_id,
        _budget: (budget.held() > 0 || budget.is_finisher()).then_some(budget),
    })
}

/// Reads a body, charging each chunk to the listener's body budget as it arrives (see
/// [`BodyBudget`]). The whole read, waiting for budget included, must finish within
/// `http_read_timeout`.
async fn read_body(
    state: &HttpState,
    mut body: Incoming,
    conn: &Arc<ConnShare>,
    request_id: &str,
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
                return Err(Reply::error(Error::bad("timed out reading the request body"), request_id));
            }
        };
        let data = match frame {
            None => break,
            Some(Err(_)) => return Err(Reply::error(Error::bad("failed to read request body"), request_id)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers and empty frames carry no body bytes.
                _ => continue,
            },
        };
        received = received.saturating_add(data.len());
        if received > state.max_request_size {
            return Err(Reply::error(Error::TooLarge, request_id));
        }
        let small = match declared {
            Some(len) => len <= SMALL_BODY as u64,
            None => received <= SMALL_BODY,
        };
        tokio::select! {
            _ = budget.grow(data.len(), small) => {}
            _ = within(deadline) => {
                return Err(Reply::error(
                    Error::Unavailable("server is busy receiving other requests; retry".into()),
                    request_id,
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

/// Entry point for every request; `conn` is the body budget share of its connection.
pub async fn handle(
    state: Arc<HttpState>,
    req: hyper::Request<Incoming>,
    remote: SocketAddr,
    conn: Arc<ConnShare>,
) -> Reply {
    let started = std::time::Instant::now();
    let parsed = match read_request(&state, req, remote, &conn).await {
        Ok(p) => p,
        Err(reply) => {
            tracing::debug!(%remote, status = reply.status.as_u16(), "request refused before parsing");
            return reply;
        }
    };
    let method = parsed.method.clone();
    let path = parsed.path.clone();
    let request_id = parsed.request_id.clone();
    let reply = route(&state, parsed).await;
    // Method, path, status and timing only: bodies, headers and tokens are never logged.
    tracing::debug!(
        request_id = %request_id,
        %remote,
        method = %method,
        path = %path,
        status = reply.status.as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    reply
}

async fn route(state: &HttpState, parsed: Parsed) -> Reply {
    if let Some(ns) = parsed.headers.get("x-vault-namespace").and_then(|v| v.to_str().ok()) {
        let ns = ns.trim().trim_end_matches('/');
        if !ns.is_empty() && ns != "root" {
            return Reply::error(
                Error::bad("namespaces are not supported by this server"),
                &parsed.request_id,
            );
        }
    }
    if let Some(reply) = sys::special(state, &parsed).await {
        return reply;
    }
    let request_id = parsed.request_id.clone();
    match logical_request(&parsed) {
        Ok(req) => {
            let is_list = req.operation == Operation::List;
            match state.core.handle(req).await {
                Ok(resp) if is_list && is_empty_listing(&resp) => {
                    let (s, b) = error::empty(StatusCode::NOT_FOUND);
                    Reply::json(s, b)
                }
                Ok(resp) => Reply::from_response(resp, &request_id),
                Err(e) => Reply::error(e, &request_id),
            }
        }
        Err(reply) => reply,
    }
}

/// Vault's HTTP layer answers a LIST that found nothing with 404 `{"errors":[]}`: no data and
/// no warnings, or an empty (or missing) `keys` with no other data. Wrapped listings pass.
fn is_empty_listing(resp: &Response) -> bool {
    if resp.wrap_info.is_some() || resp.raw_body.is_some() || resp.auth.is_some() {
        return false;
    }
    let Some(data) = resp.data.as_ref().filter(|d| !d.is_empty()) else {
        return resp.warnings.is_empty();
    };
    match data.get("keys") {
        Some(Value::Array(keys)) => keys.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => false,
    }
}

/// Builds a core request from a parsed HTTP request.
pub fn logical_request(p: &Parsed) -> Result<Request, Reply> {
    let rid = &p.request_id;
    let mut operation = match p.method.as_str() {
        "GET" => Operation::Read,
        "POST" | "PUT" => Operation::Update,
        "DELETE" => Operation::Delete,
        "PATCH" => Operation::Patch,
        "LIST" => Operation::List,
        _ => {
            let (s, b) = error::empty(StatusCode::METHOD_NOT_ALLOWED);
            return Err(Reply::json(s, b));
        }
    };
    let mut data = match operation {
        Operation::Read | Operation::Delete | Operation::List => query_data(&p.query),
        _ => p.json_body().map_err(|e| Reply::error(e, rid))?,
    };
    if operation == Operation::Patch {
        let ct = p.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media = ct.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/merge-patch+json") {
            let shown = if ct.is_empty() { "application/x-www-form-urlencoded" } else { ct };
            return Err(Reply::error(
                Error::UnsupportedMediaType(format!(
                    "PATCH requires Content-Type of application/merge-patch+json, provided {shown}"
                )),
                rid,
            ));
        }
    }
    if operation == Operation::Read {
        if let Some(v) = data.remove("list") {
            let s = v.as_str().unwrap_or("");
            match parse_bool_str(s) {
                Some(true) => operation = Operation::List,
                Some(false) => {}
                None => {
                    let (s, b) = error::empty(StatusCode::BAD_REQUEST);
                    return Err(Reply::json(s, b));
                }
            }
        }
    }
    let mut path = p.path.clone();
    if operation == Operation::List && !path.ends_with('/') {
        path.push('/');
    }
    let wrap_ttl = match p.headers.get("x-vault-wrap-ttl").and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) if v.trim().is_empty() => None,
        Some(v) => match crate::util::duration::parse_str_seconds_signed(v) {
            Ok(s) if s < 0 => {
                return Err(Reply::error(
                    Error::bad(
                        "error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative",
                    ),
                    rid,
                ))
            }
            Ok(0) => None,
            Ok(s) => Some(s as u64),
            Err(e) => {
                return Err(Reply::error(
                    Error::bad(format!("error parsing X-Vault-Wrap-TTL header: {e}")),
                    rid,
                ))
            }
        },
    };
    let mut headers = BTreeMap::new();
    for name in ["user-agent", "x-vault-request"] {
        if let Some(v) = p.headers.get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name.to_owned(), v.to_owned());
        }
    }
    Ok(Request {
        id: p.request_id.clone(),
        operation,
        path,
        data,
        token: p.token(),
        remote_addr: Some(p.remote.ip()),
        wrap_ttl,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths() {
        assert_eq!(clean_path("secret//data///x"), "secret/data/x");
        assert_eq!(clean_path("/a/"), "a/");
    }

    #[test]
    fn parses_bodies() {
        let h = HeaderMap::new();
        assert!(parse_body(&h, b"").unwrap().is_empty());
        assert_eq!(parse_body(&h, br#"{"a":1}"#).unwrap()["a"], 1);
        assert!(parse_body(&h, b"[1]").is_err());
        assert!(parse_body(&h, b"{bad").unwrap_err().to_string().starts_with("failed to decode JSON input"));
        let mut form = HeaderMap::new();
        form.insert(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        let m = parse_body(&form, b"a=1&a=2&b=x").unwrap();
        assert_eq!(m["a"], "1,2");
        assert_eq!(parse_body(&form, br#"{"j":true}"#).unwrap()["j"], true);
        let deep = "[".repeat(70) + &"]".repeat(70);
        assert!(parse_body(&h, format!("{{\"d\":{deep}}}").as_bytes()).is_err());
    }
}
