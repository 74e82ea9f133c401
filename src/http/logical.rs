//! Requests for the core's router: an [`HttpRequest`] becomes a core [`Request`] (operation,
//! path, data, token, wrap TTL) and the core's answer becomes a reply.
//!
//! The operation comes from the method: GET = read (list with `?list=true`), POST/PUT = update
//! (the core picks create with its existence check), DELETE = delete, PATCH = patch (which
//! requires `application/merge-patch+json`), LIST = list. Reads, deletes and lists take their
//! data from the query, the others from the body.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::core::error::Error;
use crate::core::request::{Request, Response};
use crate::http::error;
use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::http::state::HttpState;
use crate::policy::Operation;
use crate::util::strconv::parse_bool_str;

/// Hands the request to the core and renders its answer.
pub async fn serve(state: &HttpState, request: &HttpRequest) -> Reply {
    serve_checked(state, request).await.unwrap_or_else(|e| request.error_reply(e))
}

/// Like [`serve`], but hands the core's error back (the dispatcher forwards `Standby` errors).
pub async fn serve_checked(state: &HttpState, request: &HttpRequest) -> Result<Reply, Error> {
    let for_core = match core_request(request) {
        Ok(r) => r,
        Err(reply) => return Ok(reply),
    };
    let is_list = for_core.operation == Operation::List;
    match state.core.handle(for_core).await {
        Ok(resp) if is_list && is_empty_listing(&resp) => Ok(error::empty(StatusCode::NOT_FOUND)),
        Ok(resp) => Ok(Reply::from_response(resp, &request.request_id)),
        Err(e) => Err(e),
    }
}

/// Vault's HTTP layer answers a LIST that found nothing with 404 `{"errors":[]}`: no data and
/// no warnings, or an empty (or missing) `keys` with no other data. Wrapped listings pass.
fn is_empty_listing(resp: &Response) -> bool {
    if resp.wrap_info.is_some() || resp.raw_body.is_some() || resp.auth.is_some() || resp.data_json.is_some()
    {
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

/// Builds the core request. `Err` is a finished reply.
pub fn core_request(request: &HttpRequest) -> Result<Request, Reply> {
    let mut operation = match request.method.as_str() {
        "GET" => Operation::Read,
        "POST" | "PUT" => Operation::Update,
        "DELETE" => Operation::Delete,
        "PATCH" => Operation::Patch,
        "LIST" => Operation::List,
        _ => return Err(error::method_not_allowed()),
    };
    let mut data = match operation {
        Operation::Read | Operation::Delete | Operation::List => query_data(&request.query),
        _ => request.json_body().map_err(|e| request.error_reply(e))?,
    };
    if operation == Operation::Patch {
        let ct = request.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media = ct.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/merge-patch+json") {
            let shown = if ct.is_empty() { "application/x-www-form-urlencoded" } else { ct };
            return Err(request.error_reply(Error::UnsupportedMediaType(format!(
                "PATCH requires Content-Type of application/merge-patch+json, provided {shown}"
            ))));
        }
    }
    if operation == Operation::Read {
        if let Some(v) = data.remove("list") {
            let s = v.as_str().unwrap_or("");
            match parse_bool_str(s) {
                Some(true) => operation = Operation::List,
                Some(false) => {}
                None => return Err(error::empty(StatusCode::BAD_REQUEST)),
            }
        }
    }
    let mut path = request.path.clone();
    if operation == Operation::List && !path.ends_with('/') {
        path.push('/');
    }
    let wrap_ttl = match request.headers.get("x-vault-wrap-ttl").and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) if v.trim().is_empty() => None,
        Some(v) => match crate::util::duration::parse_str_seconds_signed(v) {
            Ok(s) if s < 0 => {
                return Err(request.error_reply(Error::bad(
                    "error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative",
                )))
            }
            Ok(0) => None,
            Ok(s) => Some(s as u64),
            Err(e) => {
                return Err(
                    request.error_reply(Error::bad(format!("error parsing X-Vault-Wrap-TTL header: {e}")))
                )
            }
        },
    };
    let mut headers = BTreeMap::new();
    for name in ["user-agent", "x-vault-request"] {
        if let Some(v) = request.headers.get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name.to_owned(), v.to_owned());
        }
    }
    Ok(Request {
        id: request.request_id.clone(),
        operation,
        path,
        data,
        token: request.token(),
        remote_addr: Some(request.remote.ip()),
        wrap_ttl,
        headers,
    })
}
