//! Request bodies as JSON objects: JSON by default, form-encoded only when declared so, within
//! limits on nesting depth and on the number of strings (Vault's `max_request_json_strings`,
//! CVE-2025-6203). The size of a body is bounded before it gets here (`request`).

use std::collections::BTreeMap;

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::core::error::Error;

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

/// A body field whose name matches `name` in any case (Vault's unseal, generate-root and rekey
/// update structs have no JSON tags, so Go matches their fields case-insensitively).
pub fn field_ignoring_case<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

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
