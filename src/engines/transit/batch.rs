//! `batch_input` decoding and batch response status, as Vault's transit does it.
//!
//! Encrypt, decrypt and rewrap decode items strictly (strings must be strings); sign, verify and
//! hmac take maps of strings. A `batch_input` of the wrong JSON type (not an array, an element
//! that is not an object, a field of the wrong type) fails the whole request with a 400
//! `failed to parse batch input: ...` (Vault's text; OpenBao answers 500, which is its bug: the
//! input is the client's mistake, not the server's). Per-item failures are
//! reported in `batch_results[i].error` with the item's `reference` echoed; the request status is
//! 400 if any item had a user error, else 500 if any had an internal error, unless some item
//! succeeded and `partial_failure_response_code` overrides it.

use serde_json::{json, Map, Value};

use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::Response;

/// One decoded item of encrypt/decrypt/rewrap. Its strings borrow from the request (no copy
/// of a plaintext is made here, so none needs zeroizing).
#[derive(Default)]
pub struct Item<'a> {
    pub plaintext: &'a str,
    pub ciphertext: &'a str,
    pub context: &'a str,
    pub key_version: i64,
    pub associated_data: &'a str,
    pub nonce: &'a str,
    pub reference: &'a str,
}

/// Go's `%T` of a decoded JSON value.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// What an item must carry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Require {
    Ciphertext,
    Nothing,
    Plaintext,
}

/// The raw `batch_input` when given (JSON `null` counts as absent, as in Vault).
pub fn raw(data: &Map<String, Value>) -> Option<&Value> {
    data.get("batch_input").filter(|v| !v.is_null())
}

/// The request's items: the decoded `batch_input` when present (which must not be empty), else
/// the one item `single` builds from the top-level fields.
pub fn items_or<'v, T>(
    raw: Option<&'v Value>,
    decode: impl FnOnce(&'v Value) -> Result<Vec<T>>,
    single: impl FnOnce() -> Result<T>,
) -> Result<Vec<T>> {
    match raw {
        Some(r) => {
            let items = decode(r)?;
            if items.is_empty() {
                return Err(Error::bad("missing batch input to process"));
            }
            Ok(items)
        }
        None => Ok(vec![single()?]),
    }
}

/// Decodes encrypt/decrypt/rewrap items (Vault's `decodeBatchRequestItems`).
pub fn decode_items(raw: &Value, require: Require) -> Result<Vec<Item<'_>>> {
    let fail = |m: String| Error::bad(format!("failed to parse batch input: {m}"));
    let Value::Array(items) = raw else {
        return Err(fail(format!("source data must be an array or slice, got {}", go_type(raw))));
    };
    let mut out = Vec::with_capacity(items.len());
    let mut errs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(fail(format!("[{i}] expected a map, got '{}'", go_type(item))));
        };
        let mut it = Item::default();
        let string = |key: &str, required: Option<&str>, allow_null: bool, errs: &mut Vec<String>| -> &str {
            match m.get(key) {
                Some(Value::String(s)) => s.as_str(),
                Some(Value::Null) if allow_null => "",
                Some(v) => {
                    errs.push(format!(
                        "'[{i}].{key}' expected type 'string', got unconvertible type '{}'",
                        go_type(v)
                    ));
                    ""
                }
                None => {
                    if let Some(msg) = required {
                        errs.push(format!("'[{i}].{key}' {msg}"));
                    }
                    ""
                }
            }
        };
        it.context = string("context", None, true, &mut errs);
        it.ciphertext = string(
            "ciphertext",
            (require == Require::Ciphertext).then_some("missing ciphertext to decrypt"),
            true,
            &mut errs,
        );
        if m.contains_key("plaintext") || require == Require::Plaintext {
            it.plaintext = string(
                "plaintext",
                (require == Require::Plaintext).then_some("missing plaintext to encrypt"),
                false,
                &mut errs,
            );
        }
        match m.get("key_version") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) => it.key_version = v,
                None => errs.push(format!(
                    "error decoding json.Number into [{i}].key_version: strconv.ParseInt: parsing \"{n}\": invalid syntax"
                )),
            },
            Some(v) => {
                errs.push(format!("'[{i}].key_version' expected type 'int', got unconvertible type '{}'", go_type(v)))
            }
        }
        it.associated_data = string("associated_data", None, true, &mut errs);
        it.nonce = string("nonce", None, true, &mut errs);
        it.reference = string("reference", None, true, &mut errs);
        out.push(it);
    }
    if !errs.is_empty() {
        return Err(fail(errs.join("\n")));
    }
    Ok(out)
}

/// Decodes sign/verify/hmac items: maps of strings (Vault decodes them into `map[string]string`).
pub fn decode_string_maps(raw: &Value) -> Result<Vec<Map<String, Value>>> {
    let fail = |m: String| Error::bad(format!("failed to parse batch input: {m}"));
    let Value::Array(items) = raw else {
        return Err(fail(format!("source data must be an array or slice, got {}", go_type(raw))));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(fail(format!("'[{i}]' expected a map, got '{}'", go_type(item))));
        };
        let mut clean = Map::new();
        for (k, v) in m {
            match v {
                Value::Null => {}
                Value::String(_) => {
                    clean.insert(k.clone(), v.clone());
                }
                other => {
                    return Err(fail(format!(
                        "'[{i}][{k}]' expected type 'string', got unconvertible type '{}'",
                        go_type(other)
                    )))
                }
            }
        }
        out.push(clean);
    }
    Ok(out)
}

/// A string from a string map (absent → `None`).
pub fn get<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// The `batch_results` answer of sign, verify and hmac: each item's result with its `reference`.
pub fn results_with_references(results: Vec<Map<String, Value>>, items: &[Map<String, Value>]) -> Response {
    let results: Vec<Value> = results
        .into_iter()
        .zip(items)
        .map(|(mut r, item)| {
            r.insert("reference".into(), json!(get(item, "reference").unwrap_or("")));
            Value::Object(r)
        })
        .collect();
    Response::json(json!({"batch_results": results}))
}

/// Outcome flags of a batch.
#[derive(Default)]
pub struct Flags {
    pub success: bool,
    pub user_error: bool,
    pub internal_error: bool,
}

/// Vault's `batchRequestResponse`: the final status of an encrypt/decrypt batch.
pub fn respond(data: &Map<String, Value>, mut resp: Response, flags: &Flags) -> Result<Response> {
    if !(flags.user_error || flags.internal_error) {
        return Ok(resp);
    }
    let mut code = if flags.user_error { 400 } else { 500 };
    if flags.success {
        if let Some(c) = fields::int(data, "partial_failure_response_code")? {
            if (1..=599).contains(&c) {
                code = c as u16;
            } else {
                resp.warnings.push(format!(
                    "invalid HTTP response code override from partial_failure_response_code, reverting to {code}"
                ));
            }
        }
    }
    if code == 200 {
        return Ok(resp);
    }
    Err(Error::Raw(Box::new(resp.with_status(code))))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strict_decoding_reports_every_item() {
        let raw = json!([{"context": "YQ=="}, {"plaintext": 5}]);
        let e = decode_items(&raw, Require::Plaintext).err().unwrap();
        assert_eq!(
            e.to_string(),
            "failed to parse batch input: '[0].plaintext' missing plaintext to encrypt\n'[1].plaintext' expected type 'string', got unconvertible type 'json.Number'"
        );
        assert_eq!(e.kind(), crate::core::error::ErrorKind::BadRequest);
        let raw = json!([{"plaintext": "", "reference": "r"}]);
        let ok = decode_items(&raw, Require::Plaintext).unwrap();
        assert_eq!(ok[0].reference, "r");
    }
}
