//! Weakly typed request parameters, decoded the way Vault's `framework.FieldData` does.
//!
//! Clients send the same field in different shapes (`"10"` or `10`, `"a,b"` or `["a","b"]`,
//! `"true"` or `true`); every endpoint reads its fields through these functions so the rules
//! are the same everywhere. `null` always means "not given". Error texts follow Vault's
//! `Field validation failed: error converting input for field "x": ...`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::core::error::{Error, Result};
use crate::util::duration;

fn conv_err(key: &str, ty: &str, detail: &str) -> Error {
    Error::BadRequest(format!(
        "Field validation failed: error converting input for field \"{key}\": '' cannot parse value as '{ty}': {detail}"
    ))
}

fn present<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    match data.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

/// A string field. Numbers and booleans are accepted and printed, as Vault's weak decoding does.
pub fn string(data: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match present(data, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(conv_err(key, "string", "expected a string")),
    }
}

/// [`string_or_empty`] borrowed from the request when it is a JSON string (no copy: a field
/// holding a secret leaves no second copy to zeroize).
pub fn str_or_empty<'a>(data: &'a Map<String, Value>, key: &str) -> Result<std::borrow::Cow<'a, str>> {
    match present(data, key) {
        Some(Value::String(s)) => Ok(std::borrow::Cow::Borrowed(s.as_str())),
        _ => string_or_empty(data, key).map(std::borrow::Cow::Owned),
    }
}

/// A string field, defaulting to "".
pub fn string_or_empty(data: &Map<String, Value>, key: &str) -> Result<String> {
    Ok(string(data, key)?.unwrap_or_default())
}

pub use crate::util::strconv::parse_bool_str;

/// A boolean field: JSON bool, `"true"`-style strings, or the numbers 0 and 1.
pub fn boolean(data: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match present(data, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => parse_bool_str(s.trim())
            .map(Some)
            .ok_or_else(|| conv_err(key, "bool", "strconv.ParseBool: invalid syntax")),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(conv_err(key, "bool", "strconv.ParseBool: invalid syntax")),
        },
        Some(_) => Err(conv_err(key, "bool", "strconv.ParseBool: invalid syntax")),
    }
}

/// A boolean field with a default.
pub fn boolean_or(data: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
    Ok(boolean(data, key)?.unwrap_or(default))
}

/// An integer field: JSON number (integral) or numeric string.
pub fn int(data: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    match present(data, key) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18) {
                Ok(Some(f as i64))
            } else {
                Err(conv_err(key, "int", "strconv.ParseInt: invalid syntax"))
            }
        }
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(Some(0));
            }
            t.parse::<i64>().map(Some).map_err(|_| conv_err(key, "int", "strconv.ParseInt: invalid syntax"))
        }
        Some(Value::Bool(b)) => Ok(Some(i64::from(*b))),
        Some(_) => Err(conv_err(key, "int", "strconv.ParseInt: invalid syntax")),
    }
}

/// An integer field with a default.
pub fn int_or(data: &Map<String, Value>, key: &str, default: i64) -> Result<i64> {
    Ok(int(data, key)?.unwrap_or(default))
}

/// A duration field in whole seconds (non-negative).
pub fn duration_secs(data: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match present(data, key) {
        None => Ok(None),
        Some(v) => duration::parse_seconds(v).map(Some).map_err(|e| Error::BadRequest(e.to_string())),
    }
}

/// A signed duration field in whole seconds (KV `delete_version_after`).
pub fn duration_secs_signed(data: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    match present(data, key) {
        None => Ok(None),
        Some(v) => duration::parse_seconds_signed(v).map(Some).map_err(|e| Error::BadRequest(e.to_string())),
    }
}

/// A list of strings: JSON array (items stringified) or one comma-separated string; items
/// trimmed, empty items dropped.
pub fn comma_strings(data: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>> {
    match present(data, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(split_comma(s))),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => {
                        let t = s.trim();
                        if !t.is_empty() {
                            out.push(t.to_owned());
                        }
                    }
                    Value::Number(n) => out.push(n.to_string()),
                    Value::Bool(b) => out.push(b.to_string()),
                    _ => return Err(conv_err(key, "slice", "expected strings")),
                }
            }
            Ok(Some(out))
        }
        Some(Value::Number(n)) => Ok(Some(vec![n.to_string()])),
        Some(_) => Err(conv_err(key, "slice", "expected a list or a comma-separated string")),
    }
}

/// Splits `"a, b,,c"` into `["a","b","c"]`.
pub fn split_comma(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

/// A list of integers: JSON array of numbers or numeric strings, or `"1,2,3"`.
pub fn comma_ints(data: &Map<String, Value>, key: &str) -> Result<Option<Vec<i64>>> {
    let bad = || conv_err(key, "[]int", "strconv.ParseInt: invalid syntax");
    match present(data, key) {
        None => Ok(None),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Number(n) => out.push(n.as_i64().ok_or_else(bad)?),
                    Value::String(s) => out.push(s.trim().parse().map_err(|_| bad())?),
                    _ => return Err(bad()),
                }
            }
            Ok(Some(out))
        }
        Some(Value::String(s)) => {
            let mut out = Vec::new();
            for part in split_comma(s) {
                out.push(part.parse().map_err(|_| bad())?);
            }
            Ok(Some(out))
        }
        Some(Value::Number(n)) => Ok(Some(vec![n.as_i64().ok_or_else(bad)?])),
        Some(_) => Err(bad()),
    }
}

/// String→string pairs: JSON object (values stringified) or a list of `"k=v"` strings.
pub fn kv_pairs(data: &Map<String, Value>, key: &str) -> Result<Option<BTreeMap<String, String>>> {
    let bad = || conv_err(key, "map", "expected a map of strings or a list of key=value strings");
    match present(data, key) {
        None => Ok(None),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => String::new(),
                    _ => return Err(bad()),
                };
                out.insert(k.clone(), s);
            }
            Ok(Some(out))
        }
        Some(Value::Array(items)) => {
            let mut out = BTreeMap::new();
            for item in items {
                let Value::String(s) = item else { return Err(bad()) };
                let (k, v) = s.split_once('=').ok_or_else(bad)?;
                out.insert(k.to_owned(), v.to_owned());
            }
            Ok(Some(out))
        }
        Some(_) => Err(bad()),
    }
}

/// A JSON object field.
pub fn map<'a>(data: &'a Map<String, Value>, key: &str) -> Result<Option<&'a Map<String, Value>>> {
    match present(data, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(conv_err(key, "map", "expected a map")),
    }
}

/// Keys of `data` not in `known`, sorted (for the "ignored parameters" warning).
pub fn unknown_keys(data: &Map<String, Value>, known: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = data.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
    out.sort();
    out
}

/// Vault's warning for ignored parameters, if any.
pub fn ignored_warning(data: &Map<String, Value>, known: &[&str]) -> Option<String> {
    let unknown = unknown_keys(data, known);
    (!unknown.is_empty())
        .then(|| format!("Endpoint ignored these unrecognized parameters: [{}]", unknown.join(" ")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn weak_decoding() {
        let d = m(json!({"a": "10", "b": 10, "c": "true", "d": 1, "e": "x,y , z", "f": ["p", "q"],
                         "g": null, "h": "5m", "i": ["k=v", "k2=v2"], "j": {"k": 1}, "l": "1,2"}));
        assert_eq!(int(&d, "a").unwrap(), Some(10));
        assert_eq!(int(&d, "b").unwrap(), Some(10));
        assert_eq!(boolean(&d, "c").unwrap(), Some(true));
        assert_eq!(boolean(&d, "d").unwrap(), Some(true));
        assert_eq!(comma_strings(&d, "e").unwrap().unwrap(), vec!["x", "y", "z"]);
        assert_eq!(comma_strings(&d, "f").unwrap().unwrap(), vec!["p", "q"]);
        assert_eq!(string(&d, "g").unwrap(), None);
        assert_eq!(duration_secs(&d, "h").unwrap(), Some(300));
        assert_eq!(kv_pairs(&d, "i").unwrap().unwrap()["k2"], "v2");
        assert_eq!(kv_pairs(&d, "j").unwrap().unwrap()["k"], "1");
        assert_eq!(comma_ints(&d, "l").unwrap().unwrap(), vec![1, 2]);
        assert_eq!(string(&d, "b").unwrap().unwrap(), "10");
    }

    #[test]
    fn errors_name_the_field() {
        let d = m(json!({"num_uses": "abc", "renewable": "maybe"}));
        let e = int(&d, "num_uses").unwrap_err().to_string();
        assert_eq!(
            e,
            "Field validation failed: error converting input for field \"num_uses\": '' cannot parse value as 'int': strconv.ParseInt: invalid syntax"
        );
        assert!(boolean(&d, "renewable").unwrap_err().to_string().contains("\"renewable\""));
    }
}
