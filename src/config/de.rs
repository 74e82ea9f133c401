//! A serde deserializer over `serde_json::Value` that knows where it is.
//!
//! All three front ends (TOML, HCL, JSON) produce one `serde_json::Value` tree in Vault's shape;
//! the raw structs are deserialized from it with this deserializer so that every error names the
//! key it is about (`listener.tcp.adress: unknown key`), which plain serde cannot do. Errors never
//! repeat a string value from the file: an unexpected value is described by its kind only, so a
//! misplaced secret cannot end up in a message.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::{Map, Value};

/// A deserialization error with the dotted path of the key it is about.
#[derive(Debug)]
pub struct DeError {
    path: Option<String>,
    message: String,
    /// For `missing_field`: the key that is missing below `path`.
    missing: Option<&'static str>,
    /// For `unknown_field`: the offending key is the path itself.
    names_key: bool,
}

impl DeError {
    fn new(message: String) -> Self {
        Self { path: None, message, missing: None, names_key: false }
    }

    /// Attaches the path of the value being deserialized unless a deeper one is known already.
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            let mut p = path.to_owned();
            if let Some(field) = self.missing.take() {
                p = join(path, field);
            }
            self.path = Some(p);
        }
        self
    }

    /// The dotted key path, when known.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// What is wrong, without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) if !p.is_empty() => write!(f, "{p}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(format!("expected {exp}, found {}", kind(&unexp)))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(format!("invalid {}: expected {exp}", kind(&unexp)))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut message = "unknown key".to_owned();
        if let Some(s) = suggestion(field, expected) {
            message.push_str(&format!(" (did you mean `{s}`?)"));
        }
        Self { names_key: true, ..Self::new(message) }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        // Block labels are types (`storage "consul"`), not secrets: naming them helps.
        Self::new(format!("unsupported type \"{variant}\" (supported: {})", expected.join(", ")))
    }

    fn missing_field(field: &'static str) -> Self {
        Self { missing: Some(field), ..Self::new("required".to_owned()) }
    }
}

/// What an unexpected value is, without its content.
fn kind(unexp: &de::Unexpected<'_>) -> &'static str {
    use de::Unexpected as U;
    match unexp {
        U::Bool(_) => "a boolean",
        U::Unsigned(_) | U::Signed(_) | U::Float(_) => "a number",
        U::Char(_) | U::Str(_) => "a string",
        U::Bytes(_) => "bytes",
        U::Unit | U::Option => "null",
        U::NewtypeStruct | U::NewtypeVariant | U::TupleVariant | U::StructVariant | U::UnitVariant => {
            "a block"
        }
        U::Seq => "a list",
        U::Map => "a block or map",
        U::Enum => "a block",
        U::Other(_) => "a value of another type",
    }
}

/// The expected key closest to `field` when it looks like a typo.
fn suggestion(field: &str, expected: &[&'static str]) -> Option<&'static str> {
    expected
        .iter()
        .map(|e| (edit_distance(field, e), *e))
        .filter(|(d, e)| *d <= 2.max(e.len() / 5) && *d < e.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `parent.key`, or `key` at the top.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `name[i]` when a list has several elements, `name` when it has one (as a block usually does).
pub fn index(parent: &str, i: usize, len: usize) -> String {
    if len > 1 {
        format!("{parent}[{i}]")
    } else {
        parent.to_owned()
    }
}

/// Deserializes `T` from `value`, naming keys relative to `path` ("" for the document root).
pub fn from_value<T: de::DeserializeOwned>(value: Value, path: &str) -> Result<T, DeError> {
    T::deserialize(ValueDe { value, path: path.to_owned() })
}

/// A value and where it sits in the document.
struct ValueDe {
    value: Value,
    path: String,
}

impl<'de> de::Deserializer<'de> for ValueDe {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let path = self.path;
        let r = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let len = items.len();
                visitor.visit_seq(SeqDe { items: items.into_iter().enumerate(), len, path: &path })
            }
            Value::Object(map) => visitor.visit_map(MapDe::new(map, &path)),
        };
        r.map_err(|e| e.at(&path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = self.path;
        let r = match self.value {
            Value::Object(map) if map.len() == 1 => {
                let Some((variant, value)) = map.into_iter().next() else {
                    return Err(DeError::new("expected one block".into()).at(&path));
                };
                visitor.visit_enum(EnumDe { variant, value, path: &path })
            }
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Object(_) => Err(DeError::new("expected exactly one labelled block".into())),
            other => Err(DeError::new(format!("expected a block, found {}", value_kind(&other)))),
        };
        r.map_err(|e| e.at(&path))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// What a JSON value is, without its content.
pub fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a block or map",
    }
}

struct SeqDe<'p> {
    items: std::iter::Enumerate<std::vec::IntoIter<Value>>,
    len: usize,
    path: &'p str,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, value)) => {
                let path = index(self.path, i, self.len);
                seed.deserialize(ValueDe { value, path: path.clone() }).map(Some).map_err(|e| e.at(&path))
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'p> {
    entries: serde_json::map::IntoIter,
    pending: Option<(String, Value)>,
    path: &'p str,
}

impl<'p> MapDe<'p> {
    fn new(map: Map<String, Value>, path: &'p str) -> Self {
        Self { entries: map.into_iter(), pending: None, path }
    }
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        let path = join(self.path, &key);
        let k = seed.deserialize(key.clone().into_deserializer()).map_err(|e: DeError| {
            if e.names_key {
                DeError { path: Some(path.clone()), ..e }
            } else {
                e.at(&path)
            }
        })?;
        self.pending = Some((key, value));
        Ok(Some(k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(DeError::new("value requested before its key".into()).at(self.path));
        };
        let path = join(self.path, &key);
        seed.deserialize(ValueDe { value, path: path.clone() }).map_err(|e| e.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumDe<'p> {
    variant: String,
    value: Value,
    path: &'p str,
}

impl<'de, 'p> de::EnumAccess<'de> for EnumDe<'p> {
    type Error = DeError;
    type Variant = VariantDe;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, VariantDe), DeError> {
        let path = join(self.path, &self.variant);
        let v = seed.deserialize(self.variant.into_deserializer()).map_err(|e: DeError| e.at(self.path))?;
        Ok((v, VariantDe { value: self.value, path }))
    }
}

struct VariantDe {
    value: Value,
    path: String,
}

impl<'de> de::VariantAccess<'de> for VariantDe {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let path = self.path.clone();
        seed.deserialize(ValueDe { value: self.value, path: self.path }).map_err(|e| e.at(&path))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(ValueDe { value: self.value, path: self.path }, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(ValueDe { value: self.value, path: self.path }, visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        address: String,
        #[serde(default)]
        port: Option<u16>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Tcp(Inner),
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        listener: Vec<Kind>,
        #[serde(default)]
        name: Option<String>,
    }

    fn err(v: Value) -> String {
        from_value::<Outer>(v, "").unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_is_named_with_its_path_and_a_suggestion() {
        assert_eq!(
            err(json!({"listener": [{"tcp": {"adress": "x"}}]})),
            "listener.tcp.adress: unknown key (did you mean `address`?)"
        );
        assert_eq!(err(json!({"listner": []})), "listner: unknown key (did you mean `listener`?)");
        assert_eq!(err(json!({"zzz": 1})), "zzz: unknown key");
    }

    #[test]
    fn list_elements_are_indexed_when_there_are_several() {
        assert_eq!(
            err(json!({"listener": [{"tcp": {"address": "a"}}, {"tcp": {"address": "b", "port": "x"}}]})),
            "listener[1].tcp.port: expected u16, found a string"
        );
    }

    #[test]
    fn missing_key_names_the_key() {
        assert_eq!(err(json!({"listener": [{"tcp": {}}]})), "listener.tcp.address: required");
        assert_eq!(err(json!({})), "listener: required");
    }

    #[test]
    fn unknown_variant_names_the_block() {
        assert_eq!(
            err(json!({"listener": [{"unix": {}}]})),
            "listener: unsupported type \"unix\" (supported: tcp)"
        );
    }

    #[test]
    fn type_errors_never_echo_values() {
        let e = err(json!({"listener": [], "name": 12345678}));
        assert_eq!(e, "name: expected a string, found a number");
        let e = err(json!({"listener": [{"tcp": {"address": "a", "port": "hunter2"}}]}));
        assert!(!e.contains("hunter2"), "{e}");
        let e = err(json!({"listener": "hunter2"}));
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn valid_document_deserializes() {
        let o: Outer =
            from_value(json!({"listener": [{"tcp": {"address": "a", "port": 8200}}], "name": "n"}), "")
                .unwrap();
        assert_eq!(o.name.as_deref(), Some("n"));
        let Kind::Tcp(inner) = &o.listener[0];
        assert_eq!(inner.address, "a");
        assert_eq!(inner.port, Some(8200));
    }

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("adress", "address"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("tls_disabled", "tls_disable"), 1);
        assert_eq!(suggestion("foo", &["address", "tls_disable"]), None);
    }
}
