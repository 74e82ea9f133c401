//! Request parameters of the KV v2 endpoints, decoded the way Vault's `framework.FieldData`
//! and `mapstructure.WeakDecode` do, with Vault's error texts.
//!
//! Vault validates every schema field present in a request before the handler runs, so a bad
//! `version` on a write fails even though writes ignore it. Where that validation happens
//! decides the wording: writes to `data/` and `metadata/` are validated inside the existence
//! check (no prefix), every other request by the request handler (prefix
//! `Field validation failed: `). [`Input`] carries that choice.
//!
//! No error ever contains a submitted value (CVE-2025-4166): texts name the field, the JSON
//! type and an index, never the value itself. Custom metadata *keys* are named, as Vault does;
//! they are not secret (they are returned by every metadata read).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::core::error::{Error, Result};
use crate::util::duration;

/// What a schema field is decoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Bool,
    CommaIntSlice,
    DurationSecond,
    Int,
    Map,
    SignedDurationSecond,
    String,
}

/// A request's data seen through an endpoint's schema.
pub struct Input<'a> {
    data: &'a Map<String, Value>,
    schema: &'static [(&'static str, FieldType)],
    prefixed: bool,
}

impl<'a> Input<'a> {
    /// Validates every schema field present in `data`; `prefixed` selects the
    /// `Field validation failed: ` wording.
    pub fn new(
        data: &'a Map<String, Value>,
        schema: &'static [(&'static str, FieldType)],
        prefixed: bool,
    ) -> Result<Self> {
        let input = Self { data, schema, prefixed };
        for (name, ty) in schema {
            if let Some(v) = input.raw(name) {
                input.decode(name, *ty, v)?;
            }
        }
        Ok(input)
    }

    /// The raw value of a field, `None` when absent. A JSON `null` is present and decodes to
    /// the type's zero value (`0`, `false`, `""`, an empty map or list), as Vault's field data
    /// does: `{"max_versions": null}` sets 0.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.data.get(name)
    }

    /// Vault's warning for request keys outside the schema, if any.
    pub fn ignored_warning(&self) -> Option<String> {
        let mut unknown: Vec<&str> = self
            .data
            .keys()
            .map(String::as_str)
            .filter(|k| !self.schema.iter().any(|(n, _)| n == k))
            .collect();
        unknown.sort_unstable();
        (!unknown.is_empty())
            .then(|| format!("Endpoint ignored these unrecognized parameters: [{}]", unknown.join(" ")))
    }

    /// An error about one field, in the wording this input uses.
    pub fn field_error(&self, name: &str, detail: &str) -> Error {
        field_error(self.prefixed, name, detail)
    }

    fn decode(&self, name: &str, ty: FieldType, v: &Value) -> Result<Decoded> {
        let err = |detail: String| self.field_error(name, &detail);
        match ty {
            FieldType::Bool if v.is_null() => Ok(Decoded::Bool(false)),
            FieldType::Bool => weak_bool(v).map(Decoded::Bool).ok_or_else(|| err(BOOL_ERR.into())),
            FieldType::CommaIntSlice => comma_ints(v).map(Decoded::Ints).map_err(|i| {
                err(format!(
                    "decoding failed due to the following error(s):\n\n'[{i}]' cannot parse value as 'int': strconv.ParseInt: invalid syntax"
                ))
            }),
            FieldType::DurationSecond => {
                let secs = duration_secs(v).ok_or_else(|| err(DURATION_ERR.into()))?;
                if secs < 0 {
                    return Err(err(format!("cannot provide negative value '{secs}'")));
                }
                Ok(Decoded::Int(secs))
            }
            FieldType::Int => weak_int(v).map(Decoded::Int).ok_or_else(|| err(INT_ERR.into())),
            FieldType::Map if v.is_null() => Ok(Decoded::Map(Map::new())),
            FieldType::Map => weak_map(v).map(Decoded::Map).map_err(|e| err(e.to_string())),
            FieldType::SignedDurationSecond => {
                duration_secs(v).map(Decoded::Int).ok_or_else(|| err(DURATION_ERR.into()))
            }
            FieldType::String => match v {
                Value::Null => Ok(Decoded::String(String::new())),
                Value::String(s) => Ok(Decoded::String(s.clone())),
                Value::Number(n) => Ok(Decoded::String(n.to_string())),
                Value::Bool(b) => Ok(Decoded::String(if *b { "1" } else { "0" }.into())),
                other => Err(err(format!(
                    "'' expected type 'string', got unconvertible type '{}'",
                    go_type(other)
                ))),
            },
        }
    }

    fn typed(&self, name: &str) -> Result<Option<Decoded>> {
        let Some(v) = self.raw(name) else { return Ok(None) };
        let ty = self
            .schema
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| Error::internal(format!("kv v2: field {name} is not in the schema")))?;
        self.decode(name, ty, v).map(Some)
    }

    /// An integer field.
    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.typed(name)? {
            Some(Decoded::Int(i)) => Ok(Some(i)),
            None => Ok(None),
            Some(_) => Err(Error::internal(format!("kv v2: field {name} is not an int"))),
        }
    }

    /// A boolean field.
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.typed(name)? {
            Some(Decoded::Bool(b)) => Ok(Some(b)),
            None => Ok(None),
            Some(_) => Err(Error::internal(format!("kv v2: field {name} is not a bool"))),
        }
    }

    /// A map field.
    pub fn map(&self, name: &str) -> Result<Option<Map<String, Value>>> {
        match self.typed(name)? {
            Some(Decoded::Map(m)) => Ok(Some(m)),
            None => Ok(None),
            Some(_) => Err(Error::internal(format!("kv v2: field {name} is not a map"))),
        }
    }

    /// A string field.
    pub fn string(&self, name: &str) -> Result<Option<String>> {
        match self.typed(name)? {
            Some(Decoded::String(s)) => Ok(Some(s)),
            None => Ok(None),
            Some(_) => Err(Error::internal(format!("kv v2: field {name} is not a string"))),
        }
    }

    /// A comma-int-slice field (`versions`).
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        match self.typed(name)? {
            Some(Decoded::Ints(v)) => Ok(v),
            None => Ok(Vec::new()),
            Some(_) => Err(Error::internal(format!("kv v2: field {name} is not an int slice"))),
        }
    }

    /// `max_versions`: an int that must fit Vault's `uint32`.
    pub fn max_versions(&self) -> Result<Option<u32>> {
        match self.int("max_versions")? {
            None => Ok(None),
            // Vault stores `uint32(n)`, so -1 silently becomes 4294967295; coffer refuses.
            Some(n) if n < 0 => {
                Err(self.field_error("max_versions", &format!("cannot provide negative value '{n}'")))
            }
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| self.field_error("max_versions", "value out of range for 'uint32'")),
        }
    }
}

/// A decoded field value.
enum Decoded {
    Bool(bool),
    Int(i64),
    Ints(Vec<i64>),
    Map(Map<String, Value>),
    String(String),
}

const BOOL_ERR: &str = "'' cannot parse value as 'bool': strconv.ParseBool: invalid syntax";
const INT_ERR: &str = "'' cannot parse value as 'int': strconv.ParseInt: invalid syntax";
/// Vault quotes the offending input here; coffer does not echo submitted values.
const DURATION_ERR: &str = "time: invalid duration";

/// `[Field validation failed: ]error converting input for field "<name>": <detail>`.
pub fn field_error(prefixed: bool, name: &str, detail: &str) -> Error {
    let prefix = if prefixed { "Field validation failed: " } else { "" };
    Error::bad(format!("{prefix}error converting input for field \"{name}\": {detail}"))
}

/// Go's name for the type a JSON value decodes to (`json.Number` with `UseNumber`).
pub fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "[]interface {}",
        Value::Bool(_) => "bool",
        Value::Null => "<nil>",
        Value::Number(_) => "json.Number",
        Value::Object(_) => "map[string]interface {}",
        Value::String(_) => "string",
    }
}

/// Weak integer: integral JSON numbers, numeric strings (`""` = 0), booleans.
pub fn weak_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if s.trim().is_empty() => Some(0),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Null => Some(0),
        _ => None,
    }
}

/// Weak boolean: JSON bools, Go `ParseBool` strings, the numbers 0 and 1.
pub fn weak_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => crate::util::strconv::parse_bool_str(s.trim()),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// A weakly decoded map failed: `'<index>' expected type ..., got unconvertible type '<t>'`.
#[derive(Debug, thiserror::Error)]
#[error("'{index}' expected type 'map[string]interface {{}}', got unconvertible type '{got}'")]
pub struct MapError {
    index: String,
    got: &'static str,
}

/// Weak map decoding (mapstructure): an object as is; a list of objects merged in order (an
/// empty list is an empty map); anything else is an error naming the offending element.
pub fn weak_map(v: &Value) -> Result<Map<String, Value>, MapError> {
    fn merge_into(out: &mut Map<String, Value>, v: &Value, index: String) -> Result<(), MapError> {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    out.insert(k.clone(), x.clone());
                }
                Ok(())
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    merge_into(out, item, format!("{index}[{i}]"))?;
                }
                Ok(())
            }
            other => Err(MapError { index, got: go_type(other) }),
        }
    }
    let mut out = Map::new();
    merge_into(&mut out, v, String::new())?;
    Ok(out)
}

/// Comma-separated ints: a list (of numbers or numeric strings), a `"1,2"` string or a number.
/// `Err(i)` names the first element that is not an integer.
fn comma_ints(v: &Value) -> Result<Vec<i64>, usize> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().enumerate().map(|(i, x)| weak_int(x).ok_or(i)).collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
            .map(|(i, p)| p.parse().map_err(|_| i))
            .collect(),
        other => weak_int(other).map(|i| vec![i]).ok_or(0),
    }
}

/// Duration in whole seconds: numbers are seconds, strings numeric seconds or Go durations.
fn duration_secs(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
        other => duration::parse_seconds_signed(other).ok(),
    }
}

/// Custom metadata from a decoded map: values weakly decoded to strings. With `skip_nulls`
/// (patch), `null` values are left out (they delete keys); otherwise they become `""`.
pub fn custom_metadata(raw: &Map<String, Value>, skip_nulls: bool) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let s = match v {
            Value::Null if skip_nulls => continue,
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
            other => {
                return Err(Error::bad(format!(
                    "{CUSTOM_METADATA_PREFIX}: '' expected type 'string', got unconvertible type '{}'",
                    go_type(other)
                )))
            }
        };
        out.insert(k.clone(), s);
    }
    Ok(out)
}

/// Prefix of every custom metadata validation error.
pub const CUSTOM_METADATA_PREFIX: &str = "custom_metadata validation failed";
const MAX_CUSTOM_KEYS: usize = 64;
const MAX_CUSTOM_KEY_LEN: usize = 128;
const MAX_CUSTOM_VALUE_LEN: usize = 512;

/// Vault's limits on custom metadata, reported all at once in Go's multi-error format.
pub fn validate_custom_metadata(m: &BTreeMap<String, String>) -> Result<()> {
    let mut errs = Vec::new();
    if m.len() > MAX_CUSTOM_KEYS {
        errs.push(format!(
            "{CUSTOM_METADATA_PREFIX}: payload must contain at most {MAX_CUSTOM_KEYS} keys, provided {}",
            m.len()
        ));
        return Err(Error::bad(multi_error(&errs)));
    }
    for (k, v) in m {
        let qk = go_quote(k);
        if k.is_empty() || k.len() > MAX_CUSTOM_KEY_LEN {
            errs.push(format!(
                "{CUSTOM_METADATA_PREFIX}: length of key {qk} is {} but must be 0 < len(key) <= {MAX_CUSTOM_KEY_LEN}",
                k.len()
            ));
        }
        if v.is_empty() || v.len() > MAX_CUSTOM_VALUE_LEN {
            errs.push(format!(
                "{CUSTOM_METADATA_PREFIX}: length of value for key {qk} is {} but must be 0 < len(value) <= {MAX_CUSTOM_VALUE_LEN}",
                v.len()
            ));
        }
        if !printable(k) {
            let visible: String = k.chars().filter(|c| is_print(*c)).collect();
            errs.push(format!(
                "{CUSTOM_METADATA_PREFIX}: key {qk} ({visible}) contains unprintable characters"
            ));
        }
        if !printable(v) {
            errs.push(format!(
                "{CUSTOM_METADATA_PREFIX}: value for key {qk} contains unprintable characters"
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Error::bad(multi_error(&errs)))
    }
}

/// Go's `multierror` rendering: `1 error occurred:\n\t* e\n\n`.
pub fn multi_error(errs: &[String]) -> String {
    let head = if errs.len() == 1 {
        "1 error occurred:".to_owned()
    } else {
        format!("{} errors occurred:", errs.len())
    };
    let mut out = head;
    out.push('\n');
    for e in errs {
        out.push_str("\t* ");
        out.push_str(e);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Go's `unicode.IsPrint`, closely enough: graphic characters and the ASCII space.
fn is_print(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace() || ('\u{200b}'..='\u{200f}').contains(&c))
}

fn printable(s: &str) -> bool {
    s.chars().all(is_print)
}

/// Go's `%q` for a string.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SCHEMA: &[(&str, FieldType)] = &[
        ("data", FieldType::Map),
        ("version", FieldType::Int),
        ("versions", FieldType::CommaIntSlice),
        ("dva", FieldType::DurationSecond),
        ("flag", FieldType::Bool),
    ];

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn errors_use_vaults_wording_and_never_echo_values() {
        let d = m(json!({"data": "secret-canary"}));
        let e = Input::new(&d, SCHEMA, false).err().unwrap().to_string();
        assert_eq!(
            e,
            "error converting input for field \"data\": '' expected type 'map[string]interface {}', got unconvertible type 'string'"
        );
        let d = m(json!({"data": [{"a": 1}, 7]}));
        let e = Input::new(&d, SCHEMA, true).err().unwrap().to_string();
        assert_eq!(
            e,
            "Field validation failed: error converting input for field \"data\": '[1]' expected type 'map[string]interface {}', got unconvertible type 'json.Number'"
        );
        let d = m(json!({"versions": "1,secret-canary"}));
        let e = Input::new(&d, SCHEMA, true).err().unwrap().to_string();
        assert!(e.ends_with("'[1]' cannot parse value as 'int': strconv.ParseInt: invalid syntax"), "{e}");
        let d = m(json!({"dva": "secret-canary"}));
        let e = Input::new(&d, SCHEMA, true).err().unwrap().to_string();
        assert!(!e.contains("canary"), "{e}");
        let d = m(json!({"dva": "-1h"}));
        let e = Input::new(&d, SCHEMA, false).err().unwrap().to_string();
        assert_eq!(e, "error converting input for field \"dva\": cannot provide negative value '-3600'");
    }

    #[test]
    fn weak_decoding() {
        let d = m(json!({"data": [{"a": 1}, {"b": 2}], "version": "3", "versions": [1, "2"], "flag": 1}));
        let i = Input::new(&d, SCHEMA, true).unwrap();
        assert_eq!(i.map("data").unwrap().unwrap(), m(json!({"a": 1, "b": 2})));
        assert_eq!(i.int("version").unwrap(), Some(3));
        assert_eq!(i.ints("versions").unwrap(), vec![1, 2]);
        assert_eq!(i.bool("flag").unwrap(), Some(true));
        assert!(weak_int(&json!(1.5)).is_none());
        assert_eq!(weak_map(&json!([])).unwrap(), Map::new());
        let d = m(json!({"x": 1, "a": 2, "version": 1}));
        let i = Input::new(&d, SCHEMA, true).unwrap();
        assert_eq!(i.ignored_warning().unwrap(), "Endpoint ignored these unrecognized parameters: [a x]");
    }

    #[test]
    fn null_is_the_zero_value() {
        let d = m(json!({"data": null, "version": null, "versions": null, "dva": null, "flag": null}));
        let i = Input::new(&d, SCHEMA, true).unwrap();
        assert_eq!(i.map("data").unwrap(), Some(Map::new()));
        assert_eq!(i.int("version").unwrap(), Some(0));
        assert_eq!(i.ints("versions").unwrap(), Vec::<i64>::new());
        assert_eq!(i.int("dva").unwrap(), Some(0));
        assert_eq!(i.bool("flag").unwrap(), Some(false));
    }

    #[test]
    fn custom_metadata_rules() {
        let cm = custom_metadata(&m(json!({"a": "1", "b": 2, "c": true})), false).unwrap();
        assert_eq!(cm["b"], "2");
        assert_eq!(cm["c"], "1");
        let e = validate_custom_metadata(&custom_metadata(&m(json!({"a": null})), false).unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "1 error occurred:\n\t* custom_metadata validation failed: length of value for key \"a\" is 0 but must be 0 < len(value) <= 512\n\n"
        );
        let e = validate_custom_metadata(&BTreeMap::from([("k\u{1}".to_owned(), "v".to_owned())]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key \"k\\x01\" (k) contains unprintable characters"), "{e}");
        let many: BTreeMap<String, String> = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(validate_custom_metadata(&many).unwrap_err().to_string().contains("provided 65"));
        assert!(custom_metadata(&m(json!({"a": {"n": 1}})), false).is_err());
    }
}
