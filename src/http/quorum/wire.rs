//! What root generation and rekeying share on the wire: the ACL operation an HTTP method stands
//! for, the `key` and `nonce` of update requests, the nonce of a cancel, and replies that carry
//! secrets (wiped after rendering).

use coffer_storage::keys::SecretBytes;
use http::{Method, StatusCode};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::core::authn::wipe_json;
use crate::core::error::Error;
use crate::core::quorum::decode_key;
use crate::http::body::field_ignoring_case;
use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::policy::Operation;

/// The ACL operation an HTTP method stands for on these endpoints.
pub fn acl_operation(method: &Method) -> Option<Operation> {
    match *method {
        Method::GET => Some(Operation::Read),
        Method::PUT | Method::POST => Some(Operation::Update),
        Method::DELETE => Some(Operation::Delete),
        _ => None,
    }
}

/// Renders a plain JSON body that may hold secrets; the intermediate strings are wiped.
pub fn secret_json(mut v: Value) -> Reply {
    let body = Zeroizing::new(v.to_string());
    wipe_json(&mut v);
    Reply::json(StatusCode::OK, body.as_bytes().to_vec())
}

/// A string (or number) field, its name matched in any case (Vault's update request structs
/// have no JSON tags).
fn string_ignoring_case(body: &Map<String, Value>, name: &str) -> Option<Zeroizing<String>> {
    match field_ignoring_case(body, name) {
        Some(Value::String(s)) => Some(Zeroizing::new(s.clone())),
        Some(Value::Number(n)) => Some(Zeroizing::new(n.to_string())),
        _ => None,
    }
}

/// `key` and `nonce` of an update request (legacy wording of the errors).
pub fn key_and_nonce(request: &HttpRequest) -> Result<(SecretBytes, String), Error> {
    let mut body = request.json_body()?;
    let key = string_ignoring_case(&body, "key").filter(|k| !k.is_empty());
    let nonce = string_ignoring_case(&body, "nonce").map(|n| n.as_str().to_owned()).unwrap_or_default();
    body.values_mut().for_each(wipe_json);
    let Some(key) = key else { return Err(Error::bad("'key' must be specified in request body as JSON")) };
    Ok((decode_key(&key)?, nonce))
}

/// The nonce a DELETE carries, from the query string or the body.
pub fn cancel_nonce(request: &HttpRequest) -> Result<Option<String>, Error> {
    if let Some(n) = request.query_param("nonce") {
        return Ok(Some(n.to_owned()));
    }
    let body = request.json_body()?;
    Ok(string_ignoring_case(&body, "nonce").map(|n| n.as_str().to_owned()))
}
