//! The neutral tree both policy syntaxes lower into: HCL (through `hcl-rs`'s span-keeping
//! `edit` parser) and JSON become one [`Node`] tree that keeps key order, duplicates and line
//! numbers, so one decoder ([`super::parse`]) applies Vault's checks to both.

use std::fmt;

use serde_json::Value;

use hcl::edit::expr::{Expression, ObjectKey, UnaryOperator};
use hcl::edit::structure::{Body, Structure};
use hcl::edit::Span;

use super::error::ParseError;

/// A value in a policy document.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    Bool(bool),
    List(Vec<Node>),
    Null,
    Num(serde_json::Number),
    /// Entries in document order (duplicates kept).
    Obj(Vec<Entry>),
    Str(String),
}

/// A key with its value: an HCL attribute or block, or an object/JSON member.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Entry {
    pub(super) key: String,
    /// 1-based line of the key.
    pub(super) line: usize,
    /// `Some` for HCL blocks (their labels), `None` for attributes and object members.
    pub(super) labels: Option<Vec<String>>,
    pub(super) value: Node,
}

impl Node {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Node::Bool(_) => "bool",
            Node::List(_) => "list",
            Node::Null => "null",
            Node::Num(_) => "number",
            Node::Obj(_) => "object",
            Node::Str(_) => "string",
        }
    }

    /// The value as JSON (for parameter values and control groups).
    pub(super) fn to_json(&self) -> Value {
        match self {
            Node::Bool(b) => Value::Bool(*b),
            Node::List(l) => Value::Array(l.iter().map(Node::to_json).collect()),
            Node::Null => Value::Null,
            Node::Num(n) => Value::Number(n.clone()),
            Node::Obj(entries) => {
                Value::Object(entries.iter().map(|e| (e.key.clone(), e.value.to_json())).collect())
            }
            Node::Str(s) => Value::String(s.clone()),
        }
    }

    /// A scalar printed the way Go's weak decoding prints it into a string.
    pub(super) fn scalar_string(&self) -> Option<String> {
        match self {
            Node::Str(s) => Some(s.clone()),
            Node::Num(n) => Some(n.to_string()),
            Node::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map(|s| s.matches('\n').count()).unwrap_or(0) + 1
}

// --- HCL

pub(super) fn hcl_body(text: &str, body: &Body) -> Result<Vec<Entry>, ParseError> {
    let mut out = Vec::with_capacity(body.len());
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => out.push(Entry {
                key: a.key.as_str().to_owned(),
                line: a.key.span().map(|r| line_of(text, r.start)).unwrap_or(0),
                labels: None,
                value: hcl_expr(text, &a.value)?,
            }),
            Structure::Block(b) => out.push(Entry {
                key: b.ident.as_str().to_owned(),
                line: b.ident.span().map(|r| line_of(text, r.start)).unwrap_or(0),
                labels: Some(b.labels.iter().map(|l| l.as_str().to_owned()).collect()),
                value: Node::Obj(hcl_body(text, &b.body)?),
            }),
        }
    }
    Ok(out)
}

pub(super) fn hcl_number(n: &hcl::Number, negate: bool) -> Option<serde_json::Number> {
    if let Some(i) = n.as_i64() {
        return Some(serde_json::Number::from(if negate { i.checked_neg()? } else { i }));
    }
    if let (Some(u), false) = (n.as_u64(), negate) {
        return Some(serde_json::Number::from(u));
    }
    let f = n.as_f64()?;
    serde_json::Number::from_f64(if negate { -f } else { f })
}

pub(super) fn hcl_expr(text: &str, e: &Expression) -> Result<Node, ParseError> {
    let unsupported = |what: &str| {
        let line = e.span().map(|r| line_of(text, r.start)).unwrap_or(0);
        ParseError::Syntax(format!("line {line}: {what} is not supported in policies"))
    };
    Ok(match e {
        Expression::Null(_) => Node::Null,
        Expression::Bool(b) => Node::Bool(*b.value()),
        Expression::Number(n) => {
            Node::Num(hcl_number(n.value(), false).ok_or_else(|| unsupported("this number"))?)
        }
        Expression::String(s) => Node::Str(s.value().clone()),
        Expression::Array(a) => Node::List(a.iter().map(|x| hcl_expr(text, x)).collect::<Result<_, _>>()?),
        Expression::Object(o) => {
            let mut entries = Vec::with_capacity(o.len());
            for (k, v) in o.iter() {
                let key = match k {
                    ObjectKey::Ident(i) => i.as_str().to_owned(),
                    ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                    ObjectKey::Expression(_) => return Err(unsupported("a computed object key")),
                };
                entries.push(Entry {
                    key,
                    line: k.span().map(|r| line_of(text, r.start)).unwrap_or(0),
                    labels: None,
                    value: hcl_expr(text, v.expr())?,
                });
            }
            Node::Obj(entries)
        }
        Expression::Parenthesis(p) => hcl_expr(text, p.inner())?,
        Expression::UnaryOp(op) => match (op.operator.value(), &op.expr) {
            (UnaryOperator::Neg, Expression::Number(n)) => {
                Node::Num(hcl_number(n.value(), true).ok_or_else(|| unsupported("this number"))?)
            }
            _ => return Err(unsupported("an operator")),
        },
        Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            return Err(unsupported("a string template"))
        }
        _ => return Err(unsupported("an expression")),
    })
}

// --- JSON

/// Deserialises JSON into [`Node`] keeping member order and duplicates.
pub(super) struct JsonNode(pub(super) Node);

impl<'de> serde::Deserialize<'de> for JsonNode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonNode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<JsonNode, E> {
                Ok(JsonNode(Node::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<JsonNode, E> {
                Ok(JsonNode(Node::Num(v.into())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<JsonNode, E> {
                Ok(JsonNode(Node::Num(v.into())))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<JsonNode, E> {
                serde_json::Number::from_f64(v)
                    .map(|n| JsonNode(Node::Num(n)))
                    .ok_or_else(|| E::custom("number out of range"))
            }
            fn visit_str<E>(self, v: &str) -> Result<JsonNode, E> {
                Ok(JsonNode(Node::Str(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<JsonNode, E> {
                Ok(JsonNode(Node::Str(v)))
            }
            fn visit_unit<E>(self) -> Result<JsonNode, E> {
                Ok(JsonNode(Node::Null))
            }
            fn visit_none<E>(self) -> Result<JsonNode, E> {
                Ok(JsonNode(Node::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonNode, A::Error> {
                let mut out = Vec::new();
                while let Some(JsonNode(n)) = seq.next_element()? {
                    out.push(n);
                }
                Ok(JsonNode(Node::List(out)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonNode, A::Error> {
                let mut out = Vec::new();
                while let Some((key, JsonNode(value))) = map.next_entry::<String, JsonNode>()? {
                    out.push(Entry { key, line: 0, labels: None, value });
                }
                Ok(JsonNode(Node::Obj(out)))
            }
        }
        d.deserialize_any(V)
    }
}

/// serde_json reports no positions for members, so lines are found afterwards: each key's line
/// is the first line at or after its parent's where `"key"` is followed by `:`. Only error
/// messages use them.
pub(super) fn assign_json_lines(text: &str, node: &mut Node, from: usize) {
    match node {
        Node::Obj(entries) => {
            for e in entries {
                let needle = serde_json::to_string(&e.key).unwrap_or_default();
                let mut search = text.get(from..).map(|_| from).unwrap_or(text.len());
                e.line = 0;
                let mut start = from;
                while let Some(i) = text.get(search..).and_then(|t| t.find(&needle)) {
                    let at = search + i;
                    let after = text[at + needle.len()..].trim_start();
                    if after.starts_with(':') {
                        e.line = line_of(text, at);
                        start = at;
                        break;
                    }
                    search = at + needle.len();
                }
                assign_json_lines(text, &mut e.value, start);
            }
        }
        Node::List(items) => {
            for i in items {
                assign_json_lines(text, i, from);
            }
        }
        _ => {}
    }
}
