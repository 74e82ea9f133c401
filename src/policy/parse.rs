//! Policy documents (HCL or JSON) parsed into a typed [`Policy`].
//!
//! Vault's grammar is HCL v1; coffer reads HCL through `hcl-rs` (whose `edit` parser keeps byte
//! spans, so errors can name lines the way Vault does) and JSON through `serde_json`. Both are
//! first lowered into one small tree ([`Node`]) that keeps key order, duplicates and line
//! numbers, and a single decoder turns that tree into [`PathRule`]s, applying Vault's checks in
//! Vault's order so the first error reported is the one Vault reports, with the same text.
//!
//! Deliberate differences from HCL v1, all rejected with a syntax error rather than guessed at:
//! a one-line block may hold only one attribute (`path "a" { x = 1 y = 2 }` is HCL v1 only),
//! string interpolation (`${...}`) and HCL2 expressions (function calls, operators other than a
//! leading `-` on a number) are not values.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use time::OffsetDateTime;

use hcl::edit::expr::{Expression, ObjectKey, UnaryOperator};
use hcl::edit::structure::{Body, Structure};
use hcl::edit::Span;

use crate::util::duration::parse_go_duration;

// ---------------------------------------------------------------------------------------------
// Capabilities

/// A set of capabilities (Vault's bitmap).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Caps(u16);

impl Caps {
    pub const CREATE: Caps = Caps(1 << 1);
    pub const DELETE: Caps = Caps(1 << 4);
    pub const DENY: Caps = Caps(1);
    pub const LIST: Caps = Caps(1 << 5);
    pub const NONE: Caps = Caps(0);
    pub const PATCH: Caps = Caps(1 << 7);
    pub const READ: Caps = Caps(1 << 2);
    pub const SCAN: Caps = Caps(1 << 8);
    pub const SUDO: Caps = Caps(1 << 6);
    pub const UPDATE: Caps = Caps(1 << 3);

    /// Every named capability with its name, in alphabetical order of the names.
    const NAMED: [(&'static str, Caps); 9] = [
        ("create", Caps::CREATE),
        ("delete", Caps::DELETE),
        ("deny", Caps::DENY),
        ("list", Caps::LIST),
        ("patch", Caps::PATCH),
        ("read", Caps::READ),
        ("scan", Caps::SCAN),
        ("sudo", Caps::SUDO),
        ("update", Caps::UPDATE),
    ];

    /// The capability called `name` (exact, case-sensitive, as Vault).
    pub fn from_name(name: &str) -> Option<Caps> {
        Self::NAMED.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    /// True if every bit of `other` is set.
    pub fn contains(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any bit of `other` is set.
    pub fn intersects(self, other: Caps) -> bool {
        self.0 & other.0 != 0
    }

    /// The raw bit set (a map key for single capabilities).
    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True for an explicit deny.
    pub fn is_deny(self) -> bool {
        self.contains(Caps::DENY)
    }

    /// Names of the set bits, alphabetical.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMED.iter().filter(|(_, c)| self.contains(*c)).map(|(n, _)| *n).collect()
    }

    /// Each single capability contained in `self`.
    pub fn iter(self) -> impl Iterator<Item = Caps> {
        Self::NAMED.into_iter().map(|(_, c)| c).filter(move |c| self.contains(*c))
    }
}

impl std::ops::BitOr for Caps {
    type Output = Caps;
    fn bitor(self, rhs: Caps) -> Caps {
        Caps(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Caps {
    fn bitor_assign(&mut self, rhs: Caps) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Caps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Caps{:?}", self.names())
    }
}

// ---------------------------------------------------------------------------------------------
// Typed policy

/// A parsed policy document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// Stanzas in document order (expired ones already dropped).
    pub paths: Vec<PathRule>,
}

/// What a path pattern matches, decided once at parse time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPattern {
    /// No wildcard: the path itself.
    Exact(String),
    /// Ends in `*` and has no `+` segment: everything starting with the string (the `*` is
    /// stripped).
    Prefix(String),
    /// Has a `+` segment (Vault's test: the pattern is `+`, contains `/+` or starts with `+/`).
    /// `pattern` is the full text (a trailing `*` kept); matching splits it on `/`.
    Segments { pattern: String },
    /// Uses identity templating (`{{...}}`). coffer has no identity store, so these stanzas
    /// never match, as in Vault for a token without an entity.
    Templated(String),
}

impl PathPattern {
    /// Classifies a path as Vault does (after the leading `/` has been stripped).
    pub fn classify(path: &str) -> PathPattern {
        if path.contains("{{") && path.contains("}}") {
            return PathPattern::Templated(path.to_owned());
        }
        if path == "+" || path.contains("/+") || path.starts_with("+/") {
            return PathPattern::Segments { pattern: path.to_owned() };
        }
        match path.strip_suffix('*') {
            Some(prefix) => PathPattern::Prefix(prefix.to_owned()),
            None => PathPattern::Exact(path.to_owned()),
        }
    }

    /// The pattern as written (with its `*`), for merging equal patterns.
    pub fn text(&self) -> String {
        match self {
            PathPattern::Exact(p) | PathPattern::Segments { pattern: p } | PathPattern::Templated(p) => {
                p.clone()
            }
            PathPattern::Prefix(p) => format!("{p}*"),
        }
    }
}

/// Parameter constraints: lower-cased parameter name → allowed (or denied) values; an empty
/// list means any value.
pub type ParamMap = BTreeMap<String, Vec<Value>>;

/// One `path "..." { ... }` stanza.
#[derive(Clone, Debug, PartialEq)]
pub struct PathRule {
    /// The path as written in the document (before the leading `/` is stripped).
    pub raw_path: String,
    pub pattern: PathPattern,
    pub capabilities: Caps,
    /// `None` when not given (or for a deny stanza, whose other keys Vault ignores).
    pub allowed_parameters: Option<ParamMap>,
    pub denied_parameters: Option<ParamMap>,
    pub required_parameters: Vec<String>,
    /// Nanoseconds; 0 = unset (negative values are kept and, as in Vault, have no effect).
    pub min_wrapping_ttl_ns: i128,
    pub max_wrapping_ttl_ns: i128,
    pub mfa_methods: Vec<String>,
    /// OpenBao: largest page a LIST may ask for; 0 = unset.
    pub pagination_limit: i64,
    /// OpenBao: the stanza stops applying at this time.
    pub expiration: Option<OffsetDateTime>,
    /// OpenBao: accepted and kept; coffer does not filter list responses.
    pub response_keys_filter_path: Option<String>,
    /// Enterprise control groups: accepted and kept, not enforced (OpenBao does not enforce
    /// them either).
    pub control_group: Option<Value>,
}

impl PathRule {
    fn new(raw_path: String) -> Self {
        let stripped = raw_path.strip_prefix('/').unwrap_or(&raw_path).to_owned();
        PathRule {
            pattern: PathPattern::classify(&stripped),
            raw_path,
            capabilities: Caps::NONE,
            allowed_parameters: None,
            denied_parameters: None,
            required_parameters: Vec::new(),
            min_wrapping_ttl_ns: 0,
            max_wrapping_ttl_ns: 0,
            mfa_methods: Vec::new(),
            pagination_limit: 0,
            expiration: None,
            response_keys_filter_path: None,
            control_group: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Go's `%q` for the strings that appear in messages.
fn q(s: &str) -> String {
    format!("{s:?}")
}

/// `hashicorp/go-multierror`'s rendering.
fn multierror(items: &[String]) -> String {
    let mut out = if items.len() == 1 {
        "1 error occurred:\n".to_owned()
    } else {
        format!("{} errors occurred:\n", items.len())
    };
    for i in items {
        out.push_str("\t* ");
        out.push_str(i);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A key that is not allowed where it appears, with its 1-based line (0 where Vault says 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidKey {
    pub key: String,
    pub line: usize,
}

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid key {} on line {}", q(&self.key), self.line)
    }
}

fn invalid_keys(keys: &[InvalidKey]) -> String {
    multierror(&keys.iter().map(ToString::to_string).collect::<Vec<_>>())
}

/// What is wrong inside one path stanza. `Display` is the part after `path "<p>": `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("error handling control_group: {}", multierror(&["requires at least one factor but had none".to_owned()]))]
    ControlGroupWithoutFactor,
    #[error("error parsing {field}: {message}")]
    Duration { field: &'static str, message: String },
    #[error("path {}: invalid expiration time: could not parse string as date and time", q(.path))]
    Expiration { path: String },
    #[error("list_scan_response_keys_filter_path needs to be used on a path with the list capability")]
    FilterNeedsList,
    #[error("path {}: invalid capability {}", q(.path), q(.capability))]
    InvalidCapability { path: String, capability: String },
    #[error("{}", invalid_keys(.0))]
    InvalidKeys(Vec<InvalidKey>),
    #[error("path {}: invalid policy {}", q(.path), q(.policy))]
    InvalidPolicy { path: String, policy: String },
    #[error("path {}: strconv.ParseInt: parsing {}: invalid syntax", q(.path), q(.value))]
    PaginationLimit { path: String, value: String },
    #[error("path {}: {key}: expected {expected}", q(.path))]
    Type { path: String, key: String, expected: &'static str },
    #[error("path {}: invalid use of wildcards ('+*' is forbidden)", q(.path))]
    WildcardPlusStar { path: String },
    #[error("max_wrapping_ttl cannot be less than min_wrapping_ttl")]
    WrapTtlOrder,
}

/// Why a policy document was rejected. `Display` is Vault's message (a 400 on write).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Unknown top-level keys (only `name` and `path` are allowed).
    #[error("failed to parse policy: {}", invalid_keys(.0))]
    InvalidTopLevelKeys(Vec<InvalidKey>),
    /// A problem in the stanza for `path` (as written).
    #[error("failed to parse policy: path {}: {error}", q(.path))]
    Path { path: String, error: PathError },
    /// Not valid HCL or JSON, or a value HCL v1 has no equivalent for.
    #[error("failed to parse policy: {0}")]
    Syntax(String),
}

// ---------------------------------------------------------------------------------------------
// The neutral tree both syntaxes lower into

/// A value in a policy document.
#[derive(Clone, Debug, PartialEq)]
enum Node {
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
struct Entry {
    key: String,
    /// 1-based line of the key.
    line: usize,
    /// `Some` for HCL blocks (their labels), `None` for attributes and object members.
    labels: Option<Vec<String>>,
    value: Node,
}

impl Node {
    fn kind(&self) -> &'static str {
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
    fn to_json(&self) -> Value {
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
    fn scalar_string(&self) -> Option<String> {
        match self {
            Node::Str(s) => Some(s.clone()),
            Node::Num(n) => Some(n.to_string()),
            Node::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map(|s| s.matches('\n').count()).unwrap_or(0) + 1
}

// --- HCL

fn hcl_body(text: &str, body: &Body) -> Result<Vec<Entry>, ParseError> {
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

fn hcl_number(n: &hcl::Number, negate: bool) -> Option<serde_json::Number> {
    if let Some(i) = n.as_i64() {
        return Some(serde_json::Number::from(if negate { i.checked_neg()? } else { i }));
    }
    if let (Some(u), false) = (n.as_u64(), negate) {
        return Some(serde_json::Number::from(u));
    }
    let f = n.as_f64()?;
    serde_json::Number::from_f64(if negate { -f } else { f })
}

fn hcl_expr(text: &str, e: &Expression) -> Result<Node, ParseError> {
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
struct JsonNode(Node);

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
fn assign_json_lines(text: &str, node: &mut Node, from: usize) {
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

// ---------------------------------------------------------------------------------------------
// Decoding

const PATH_KEYS: &[&str] = &[
    "allowed_parameters",
    "capabilities",
    "comment",
    "control_group",
    "denied_parameters",
    "expiration",
    "list_scan_response_keys_filter_path",
    "max_wrapping_ttl",
    "mfa_methods",
    "min_wrapping_ttl",
    "pagination_limit",
    "policy",
    "required_parameters",
];

/// A stanza before decoding: the path as written and its body.
struct RawStanza {
    path: String,
    body: Vec<Entry>,
}

/// The value of a block or attribute as an object body, as HCL v1 flattens blocks: a block
/// `k "l1" "l2" { b }` is the object `{ l1 = { l2 = { b } } }`.
fn block_value(entry: &Entry) -> Node {
    let mut value = entry.value.clone();
    if let Some(labels) = &entry.labels {
        for l in labels.iter().rev() {
            value = Node::Obj(vec![Entry { key: l.clone(), line: entry.line, labels: None, value }]);
        }
    }
    value
}

/// Deepest nesting of brackets a document may have. Real policies use five or six levels; the
/// HCL parser recurses per level and would exhaust a worker thread's stack long before the
/// request size limit is reached, so depth is checked before parsing.
pub const MAX_DEPTH: usize = 32;

/// Rejects documents nested deeper than [`MAX_DEPTH`]. Brackets inside double-quoted strings
/// are skipped; anything else (comments, heredocs) counts, which can only over-estimate.
fn check_depth(text: &str) -> Result<(), ParseError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' | '(' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ParseError::Syntax(format!("nesting deeper than {MAX_DEPTH} levels")));
                }
            }
            ']' | '}' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parses a policy document. Stanzas whose `expiration` is before `now` are dropped.
pub fn parse(text: &str, now: OffsetDateTime) -> Result<Policy, ParseError> {
    check_depth(text)?;
    let stanzas =
        if text.trim_start().starts_with('{') { parse_json_stanzas(text)? } else { parse_hcl_stanzas(text)? };
    let mut paths = Vec::with_capacity(stanzas.len());
    for s in stanzas {
        if let Some(rule) =
            decode_stanza(&s, now).map_err(|error| ParseError::Path { path: s.path.clone(), error })?
        {
            paths.push(rule);
        }
    }
    Ok(Policy { paths })
}

fn parse_hcl_stanzas(text: &str) -> Result<Vec<RawStanza>, ParseError> {
    // The message names the position only: the offending source line is not echoed back.
    let body = hcl::edit::parser::parse_body(text).map_err(|e| {
        let loc = e.location();
        ParseError::Syntax(format!(
            "HCL parse error in line {}, column {}: {}",
            loc.line(),
            loc.column(),
            e.message()
        ))
    })?;
    let entries = hcl_body(text, &body)?;
    check_top_level(&entries, true)?;
    let mut out = Vec::new();
    for e in entries.into_iter().filter(|e| e.key == "path") {
        match (&e.labels, e.value) {
            // `path "p" ... { body }`: the first label is the path (HCL v1 ignores the rest);
            // `path { body }` is a stanza for the path "path", as in Vault.
            (Some(labels), Node::Obj(body)) => {
                let path = labels.first().cloned().unwrap_or_else(|| "path".to_owned());
                out.push(RawStanza { path, body });
            }
            // `path = { ... }`: Vault reads the object as the body of a stanza named "path".
            (None, Node::Obj(body)) => out.push(RawStanza { path: "path".to_owned(), body }),
            (_, other) => {
                return Err(ParseError::Syntax(format!(
                    "line {}: path must be a block, not a {}",
                    e.line,
                    other.kind()
                )))
            }
        }
    }
    Ok(out)
}

fn parse_json_stanzas(text: &str) -> Result<Vec<RawStanza>, ParseError> {
    let JsonNode(mut root) =
        serde_json::from_str::<JsonNode>(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
    assign_json_lines(text, &mut root, 0);
    let Node::Obj(entries) = root else {
        return Err(ParseError::Syntax("does not contain a root object".to_owned()));
    };
    check_top_level(&entries, false)?;
    let mut out = Vec::new();
    let wrong = |line: usize, n: &Node| {
        ParseError::Syntax(format!("line {line}: path must be an object of paths, not a {}", n.kind()))
    };
    for e in entries.into_iter().filter(|e| e.key == "path") {
        // `"path": {"p": {...}}` or `"path": [{"p": {...}}, ...]`; a stanza body may itself be a
        // list of objects (repeated stanzas).
        let groups = match e.value {
            Node::Obj(members) => vec![members],
            Node::List(items) => items
                .into_iter()
                .map(|i| match i {
                    Node::Obj(m) => Ok(m),
                    other => Err(wrong(e.line, &other)),
                })
                .collect::<Result<_, _>>()?,
            other => return Err(wrong(e.line, &other)),
        };
        for members in groups {
            for m in members {
                match m.value {
                    Node::Obj(body) => out.push(RawStanza { path: m.key, body }),
                    Node::List(items) => {
                        for i in items {
                            match i {
                                Node::Obj(body) => out.push(RawStanza { path: m.key.clone(), body }),
                                other => return Err(wrong(m.line, &other)),
                            }
                        }
                    }
                    other => return Err(wrong(m.line, &other)),
                }
            }
        }
    }
    Ok(out)
}

fn check_top_level(entries: &[Entry], hcl: bool) -> Result<(), ParseError> {
    let bad: Vec<InvalidKey> = entries
        .iter()
        .filter(|e| e.key != "name" && e.key != "path")
        // HCL v1 reports top-level blocks on "line 0"; Vault shows that as is.
        .map(|e| InvalidKey { key: e.key.clone(), line: if hcl && e.labels.is_some() { 0 } else { e.line } })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ParseError::InvalidTopLevelKeys(bad))
    }
}

/// Typed fields of a stanza before Vault's semantic checks.
#[derive(Default)]
struct StanzaFields {
    capabilities: Vec<String>,
    policy: Option<String>,
    allowed: Option<ParamMap>,
    denied: Option<ParamMap>,
    required: Vec<String>,
    mfa: Vec<String>,
    min_ttl: Option<Node>,
    max_ttl: Option<Node>,
    pagination: i64,
    expiration: Option<String>,
    filter_path: Option<String>,
    control_group: Option<Value>,
}

fn type_err(path: &str, key: &str, expected: &'static str) -> PathError {
    PathError::Type { path: path.to_owned(), key: key.to_owned(), expected }
}

fn string_list(path: &str, key: &str, n: &Node) -> Result<Vec<String>, PathError> {
    match n {
        Node::List(items) => items
            .iter()
            .map(|i| i.scalar_string().ok_or_else(|| type_err(path, key, "a list of strings")))
            .collect(),
        _ => Err(type_err(path, key, "a list of strings")),
    }
}

fn param_map(path: &str, key: &str, n: &Node) -> Result<ParamMap, PathError> {
    let Node::Obj(entries) = n else { return Err(type_err(path, key, "an object of lists")) };
    let mut out = ParamMap::new();
    for e in entries {
        let values = match block_value(e) {
            Node::List(items) => items.iter().map(Node::to_json).collect(),
            _ => return Err(type_err(path, key, "an object of lists")),
        };
        out.insert(e.key.to_lowercase(), values);
    }
    Ok(out)
}

fn decode_fields(s: &RawStanza) -> Result<StanzaFields, PathError> {
    let path = s.path.as_str();
    let mut f = StanzaFields::default();
    for e in &s.body {
        let v = block_value(e);
        match e.key.as_str() {
            "capabilities" => f.capabilities = string_list(path, &e.key, &v)?,
            "policy" => f.policy = Some(v.scalar_string().ok_or_else(|| type_err(path, &e.key, "a string"))?),
            "allowed_parameters" => f.allowed = Some(param_map(path, &e.key, &v)?),
            "denied_parameters" => f.denied = Some(param_map(path, &e.key, &v)?),
            "required_parameters" => f.required = string_list(path, &e.key, &v)?,
            "mfa_methods" => f.mfa = string_list(path, &e.key, &v)?,
            "min_wrapping_ttl" => f.min_ttl = Some(v),
            "max_wrapping_ttl" => f.max_ttl = Some(v),
            "pagination_limit" => {
                f.pagination = match &v {
                    Node::Num(n) => n.as_i64().ok_or_else(|| PathError::PaginationLimit {
                        path: path.to_owned(),
                        value: n.to_string(),
                    })?,
                    Node::Str(t) => t.trim().parse::<i64>().map_err(|_| PathError::PaginationLimit {
                        path: path.to_owned(),
                        value: t.clone(),
                    })?,
                    _ => return Err(type_err(path, &e.key, "an integer")),
                }
            }
            "expiration" => {
                f.expiration = Some(v.scalar_string().ok_or_else(|| type_err(path, &e.key, "a string"))?)
            }
            "list_scan_response_keys_filter_path" => {
                f.filter_path = Some(v.scalar_string().ok_or_else(|| type_err(path, &e.key, "a string"))?)
            }
            "comment" => {}
            "control_group" => {
                let has_factor =
                    matches!(&v, Node::Obj(entries) if entries.iter().any(|e| e.key == "factor"));
                if !has_factor {
                    return Err(PathError::ControlGroupWithoutFactor);
                }
                f.control_group = Some(v.to_json());
            }
            // Unknown keys were rejected before decoding.
            _ => {}
        }
    }
    Ok(f)
}

/// Vault's `parseutil.ParseDurationSecond`, in nanoseconds.
fn wrap_ttl_ns(field: &'static str, n: &Node) -> Result<i128, PathError> {
    let err = |message: String| PathError::Duration { field, message };
    match n {
        Node::Num(num) => {
            if let Some(i) = num.as_i64() {
                Ok(i128::from(i) * 1_000_000_000)
            } else {
                let f = num.as_f64().unwrap_or(0.0);
                Ok((f * 1e9) as i128)
            }
        }
        Node::Str(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(0);
            }
            if let Ok(i) = t.parse::<i64>() {
                return Ok(i128::from(i) * 1_000_000_000);
            }
            parse_go_duration(t).map_err(|e| err(e.0))
        }
        Node::Null => Ok(0),
        _ => Err(err("could not parse duration from input".to_owned())),
    }
}

/// Vault's `parseutil.ParseAbsoluteTime`: RFC 3339, or Unix seconds.
fn parse_expiration(s: &str) -> Option<OffsetDateTime> {
    if let Some(t) = crate::util::timefmt::parse_rfc3339(s.trim()) {
        return Some(t);
    }
    s.trim().parse::<i64>().ok().and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
}

/// One stanza, with Vault's checks in Vault's order. `Ok(None)` for an expired stanza.
fn decode_stanza(s: &RawStanza, now: OffsetDateTime) -> Result<Option<PathRule>, PathError> {
    let bad: Vec<InvalidKey> = s
        .body
        .iter()
        .filter(|e| !PATH_KEYS.contains(&e.key.as_str()))
        .map(|e| InvalidKey { key: e.key.clone(), line: e.line })
        .collect();
    if !bad.is_empty() {
        return Err(PathError::InvalidKeys(bad));
    }
    let f = decode_fields(s)?;
    let mut rule = PathRule::new(s.path.clone());
    if let Some(exp) = &f.expiration {
        let t = parse_expiration(exp).ok_or_else(|| PathError::Expiration { path: s.path.clone() })?;
        if now > t {
            return Ok(None);
        }
        rule.expiration = Some(t);
    }
    let stripped = s.path.strip_prefix('/').unwrap_or(&s.path);
    if stripped.contains("+*") {
        return Err(PathError::WildcardPlusStar { path: stripped.to_owned() });
    }
    let mut caps_named = f.capabilities.clone();
    if let Some(p) = &f.policy {
        if !p.is_empty() {
            let legacy: &[&str] = match p.as_str() {
                "deny" => &["deny"],
                "read" => &["read", "list"],
                "write" => &["create", "read", "update", "delete", "list"],
                "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
                _ => return Err(PathError::InvalidPolicy { path: s.path.clone(), policy: p.clone() }),
            };
            if p == "deny" {
                caps_named = vec!["deny".to_owned()];
            } else {
                caps_named.extend(legacy.iter().map(|c| (*c).to_owned()));
            }
        }
    }
    for c in &caps_named {
        match Caps::from_name(c) {
            // A deny ends the stanza: Vault ignores every other key (and later capabilities).
            Some(Caps::DENY) => {
                rule.capabilities = Caps::DENY;
                return Ok(Some(rule));
            }
            Some(cap) => rule.capabilities |= cap,
            None => return Err(PathError::InvalidCapability { path: s.path.clone(), capability: c.clone() }),
        }
    }
    rule.allowed_parameters = f.allowed;
    rule.denied_parameters = f.denied;
    if let Some(n) = &f.min_ttl {
        rule.min_wrapping_ttl_ns = wrap_ttl_ns("min_wrapping_ttl", n)?;
    }
    if let Some(n) = &f.max_ttl {
        rule.max_wrapping_ttl_ns = wrap_ttl_ns("max_wrapping_ttl", n)?;
    }
    rule.mfa_methods = f.mfa;
    if rule.min_wrapping_ttl_ns != 0
        && rule.max_wrapping_ttl_ns != 0
        && rule.max_wrapping_ttl_ns < rule.min_wrapping_ttl_ns
    {
        return Err(PathError::WrapTtlOrder);
    }
    rule.required_parameters = f.required;
    if let Some(fp) = f.filter_path.filter(|p| !p.is_empty()) {
        if !rule.capabilities.contains(Caps::LIST) {
            return Err(PathError::FilterNeedsList);
        }
        rule.response_keys_filter_path = Some(fp);
    }
    rule.pagination_limit = f.pagination;
    rule.control_group = f.control_group;
    Ok(Some(rule))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn p(text: &str) -> Policy {
        parse(text, NOW).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        parse(text, NOW).expect_err(text).to_string()
    }

    fn one(text: &str) -> PathRule {
        let mut pol = p(text);
        assert_eq!(pol.paths.len(), 1, "{text}");
        pol.paths.remove(0)
    }

    #[test]
    fn capabilities_block() {
        let r = one(
            r#"path "secret/data/app/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }"#,
        );
        assert_eq!(r.raw_path, "secret/data/app/*");
        assert_eq!(r.pattern, PathPattern::Prefix("secret/data/app/".into()));
        assert_eq!(r.capabilities.names(), vec!["create", "delete", "list", "patch", "read", "update"]);
    }

    #[test]
    fn every_capability_name() {
        let r = one(
            r#"path "a" { capabilities = ["create","read","update","patch","delete","list","sudo","scan"] }"#,
        );
        assert_eq!(
            r.capabilities.names(),
            vec!["create", "delete", "list", "patch", "read", "scan", "sudo", "update"]
        );
    }

    #[test]
    fn json_documents() {
        let r = one(r#"{"path": {"secret/data/x": {"capabilities": ["read"]}}}"#);
        assert_eq!(r.pattern, PathPattern::Exact("secret/data/x".into()));
        assert_eq!(r.capabilities, Caps::READ);
        let pol =
            p(r#"{"name":"n","path":[{"a":{"capabilities":["read"]}},{"b":{"capabilities":["list"]}}]}"#);
        assert_eq!(pol.paths.len(), 2);
        assert_eq!(pol.paths[1].capabilities, Caps::LIST);
        let pol = p(r#"{"path": {"a": [{"capabilities":["read"]}, {"capabilities":["list"]}]}}"#);
        assert_eq!(pol.paths.len(), 2);
        let r = one(r#"  {"path": {"a": {"policy": "write", "allowed_parameters": {"K": ["v", 1, true]}}}}"#);
        assert_eq!(r.capabilities.names(), vec!["create", "delete", "list", "read", "update"]);
        assert_eq!(
            r.allowed_parameters,
            Some(BTreeMap::from([("k".to_owned(), vec![json!("v"), json!(1), json!(true)])]))
        );
    }

    #[test]
    fn legacy_policy_shorthand() {
        assert_eq!(one(r#"path "a" { policy = "deny" }"#).capabilities, Caps::DENY);
        assert_eq!(one(r#"path "a" { policy = "read" }"#).capabilities.names(), vec!["list", "read"]);
        assert_eq!(
            one(r#"path "a" { policy = "write" }"#).capabilities.names(),
            vec!["create", "delete", "list", "read", "update"]
        );
        assert_eq!(
            one(r#"path "a" { policy = "sudo" }"#).capabilities.names(),
            vec!["create", "delete", "list", "read", "sudo", "update"]
        );
        // `deny` replaces capabilities; the others add to them.
        assert_eq!(
            one("path \"a\" {\n policy = \"deny\"\n capabilities = [\"read\"]\n}").capabilities,
            Caps::DENY
        );
        assert_eq!(
            one("path \"a\" {\n policy = \"read\"\n capabilities = [\"patch\"]\n}").capabilities.names(),
            vec!["list", "patch", "read"]
        );
        assert_eq!(
            err(r#"path "a" { policy = "nope" }"#),
            r#"failed to parse policy: path "a": path "a": invalid policy "nope""#
        );
        assert_eq!(
            err("path \"a\" {\n policy = \"read\"\n capabilities = [\"bogus\"]\n}"),
            r#"failed to parse policy: path "a": path "a": invalid capability "bogus""#
        );
    }

    #[test]
    fn deny_short_circuits_like_vault() {
        // Vault stops at `deny`: a later invalid capability and other keys are not examined.
        let r = one(r#"path "a" { capabilities = ["read", "deny", "bogus"] }"#);
        assert_eq!(r.capabilities, Caps::DENY);
        let r = one("path \"a\" {\n capabilities = [\"deny\"]\n allowed_parameters = { x = [] }\n min_wrapping_ttl = \"1h\"\n max_wrapping_ttl = \"1m\"\n}");
        assert_eq!(r.capabilities, Caps::DENY);
        assert_eq!(r.allowed_parameters, None);
        assert_eq!(r.min_wrapping_ttl_ns, 0);
    }

    #[test]
    fn all_keys() {
        let r = one(r#"path "a" {
  capabilities = ["read", "list"]
  allowed_parameters = {
    "Foo" = []
    "bar" = ["x*", 1, true]
  }
  denied_parameters = {
    "*" = []
  }
  min_wrapping_ttl = 60
  max_wrapping_ttl = "1h"
  required_parameters = ["q"]
  mfa_methods = ["m"]
  pagination_limit = 5
  comment = "hi"
  expiration = "2099-01-01T00:00:00Z"
  list_scan_response_keys_filter_path = "{{ .path }}"
  control_group {
    factor "ops" {
      identity {
        group_names = ["managers"]
        approvals = 1
      }
    }
  }
}"#);
        let allowed = r.allowed_parameters.clone().unwrap();
        assert_eq!(allowed["foo"], Vec::<Value>::new());
        assert_eq!(allowed["bar"], vec![json!("x*"), json!(1), json!(true)]);
        assert_eq!(r.denied_parameters.clone().unwrap()["*"], Vec::<Value>::new());
        assert_eq!(r.min_wrapping_ttl_ns, 60_000_000_000);
        assert_eq!(r.max_wrapping_ttl_ns, 3_600_000_000_000);
        assert_eq!(r.required_parameters, vec!["q"]);
        assert_eq!(r.mfa_methods, vec!["m"]);
        assert_eq!(r.pagination_limit, 5);
        assert_eq!(r.expiration, Some(datetime!(2099-01-01 00:00 UTC)));
        assert_eq!(r.response_keys_filter_path.as_deref(), Some("{{ .path }}"));
        assert!(r.control_group.is_some());
    }

    #[test]
    fn block_forms_of_parameter_maps() {
        let r = one(
            "path \"a\" {\n capabilities = [\"read\"]\n allowed_parameters {\n x = []\n Y = [\"v\"]\n }\n}",
        );
        assert_eq!(r.allowed_parameters.unwrap().keys().collect::<Vec<_>>(), vec!["x", "y"]);
    }

    #[test]
    fn wrapping_ttl_forms() {
        assert_eq!(one(r#"path "a" { min_wrapping_ttl = "1.5s" }"#).min_wrapping_ttl_ns, 1_500_000_000);
        assert_eq!(one(r#"path "a" { min_wrapping_ttl = "90" }"#).min_wrapping_ttl_ns, 90_000_000_000);
        assert_eq!(one(r#"path "a" { min_wrapping_ttl = "-5s" }"#).min_wrapping_ttl_ns, -5_000_000_000);
        assert_eq!(one(r#"path "a" { min_wrapping_ttl = -5 }"#).min_wrapping_ttl_ns, -5_000_000_000);
        assert_eq!(
            err(r#"path "a" { min_wrapping_ttl = "abc" }"#),
            r#"failed to parse policy: path "a": error parsing min_wrapping_ttl: time: invalid duration "abc""#
        );
        assert_eq!(
            err(r#"path "a" { max_wrapping_ttl = true }"#),
            r#"failed to parse policy: path "a": error parsing max_wrapping_ttl: could not parse duration from input"#
        );
        assert_eq!(
            err("path \"a\" {\n min_wrapping_ttl = \"10m\"\n max_wrapping_ttl = \"1m\"\n}"),
            r#"failed to parse policy: path "a": max_wrapping_ttl cannot be less than min_wrapping_ttl"#
        );
    }

    #[test]
    fn patterns() {
        let pat = |s: &str| one(&format!("path \"{s}\" {{ capabilities = [\"read\"] }}")).pattern;
        assert_eq!(pat("/secret/x"), PathPattern::Exact("secret/x".into()));
        assert_eq!(pat("//secret/x"), PathPattern::Exact("/secret/x".into()), "only one / is stripped");
        assert_eq!(pat("secret/*"), PathPattern::Prefix("secret/".into()));
        assert_eq!(pat("*"), PathPattern::Prefix("".into()));
        assert_eq!(pat("secret/a*b"), PathPattern::Exact("secret/a*b".into()), "inner * is literal");
        assert_eq!(pat("secret/+/config"), PathPattern::Segments { pattern: "secret/+/config".into() });
        assert_eq!(pat("+/x"), PathPattern::Segments { pattern: "+/x".into() });
        assert_eq!(pat("+"), PathPattern::Segments { pattern: "+".into() });
        assert_eq!(pat("a/+/b*"), PathPattern::Segments { pattern: "a/+/b*".into() });
        assert_eq!(pat("a+/b"), PathPattern::Exact("a+/b".into()), "+ inside a segment is literal");
        assert_eq!(
            pat("identity/entity/id/{{identity.entity.id}}"),
            PathPattern::Templated("identity/entity/id/{{identity.entity.id}}".into())
        );
    }

    #[test]
    fn plus_star_is_forbidden() {
        assert_eq!(
            err(r#"path "a+*" { capabilities = ["read"] }"#),
            r#"failed to parse policy: path "a+*": path "a+*": invalid use of wildcards ('+*' is forbidden)"#
        );
        assert_eq!(
            err(r#"path "/x/+*" { policy = "read" }"#),
            r#"failed to parse policy: path "/x/+*": path "x/+*": invalid use of wildcards ('+*' is forbidden)"#
        );
    }

    #[test]
    fn invalid_capability() {
        assert_eq!(
            err(r#"path "a" { capabilities = ["foo"] }"#),
            r#"failed to parse policy: path "a": path "a": invalid capability "foo""#
        );
        assert_eq!(
            err(r#"path "a" { capabilities = ["Read"] }"#),
            r#"failed to parse policy: path "a": path "a": invalid capability "Read""#
        );
        assert_eq!(
            err(r#"path "a" { capabilities = [1] }"#),
            r#"failed to parse policy: path "a": path "a": invalid capability "1""#
        );
        assert_eq!(
            err("path \"a\" { capabilities = [\"read\"] }\npath \"b\" { capabilities = [\"bad\"] }"),
            r#"failed to parse policy: path "b": path "b": invalid capability "bad""#
        );
        assert_eq!(
            err(r#"{"path":{"a":{"capabilities":["rxead"]}}}"#),
            r#"failed to parse policy: path "a": path "a": invalid capability "rxead""#
        );
    }

    #[test]
    fn unknown_keys() {
        assert_eq!(
            err("\n\npath \"a\" {\n capabilities=[\"read\"]\n\n bogus = 1\n}\n"),
            "failed to parse policy: path \"a\": 1 error occurred:\n\t* invalid key \"bogus\" on line 6\n\n"
        );
        assert_eq!(
            err("path \"a\" {\n capabilities=[\"read\"]\n bogus = 1\n other = 2\n}\n"),
            "failed to parse policy: path \"a\": 2 errors occurred:\n\t* invalid key \"bogus\" on line 3\n\t* invalid key \"other\" on line 4\n\n"
        );
        assert_eq!(
            err("\n\nbogus = 1\n"),
            "failed to parse policy: 1 error occurred:\n\t* invalid key \"bogus\" on line 3\n\n"
        );
        assert_eq!(
            err("\n\nbogus \"x\" {\n}\n"),
            "failed to parse policy: 1 error occurred:\n\t* invalid key \"bogus\" on line 0\n\n"
        );
        assert_eq!(
            err("{\n\"path\": {\n\"a\": {\n\"bogus\": 1}}}"),
            "failed to parse policy: path \"a\": 1 error occurred:\n\t* invalid key \"bogus\" on line 4\n\n"
        );
        assert_eq!(
            err(r#"{"foo":1}"#),
            "failed to parse policy: 1 error occurred:\n\t* invalid key \"foo\" on line 1\n\n"
        );
        // `path = {...}` is a stanza for the path "path" in Vault, so "a" is an unknown key.
        assert_eq!(
            err(r#"path = { "a" = { capabilities = ["read"] } }"#),
            "failed to parse policy: path \"path\": 1 error occurred:\n\t* invalid key \"a\" on line 1\n\n"
        );
    }

    #[test]
    fn type_errors() {
        assert_eq!(
            err(r#"path "a" { capabilities = "read" }"#),
            r#"failed to parse policy: path "a": path "a": capabilities: expected a list of strings"#
        );
        assert_eq!(
            err(r#"path "a" { allowed_parameters = { "x" = "y" } }"#),
            r#"failed to parse policy: path "a": path "a": allowed_parameters: expected an object of lists"#
        );
        assert_eq!(
            err(r#"path "a" { required_parameters = "y" }"#),
            r#"failed to parse policy: path "a": path "a": required_parameters: expected a list of strings"#
        );
        assert_eq!(
            err(r#"path "a" { pagination_limit = "x" }"#),
            r#"failed to parse policy: path "a": path "a": strconv.ParseInt: parsing "x": invalid syntax"#
        );
        assert_eq!(
            err(r#"{"path": "a"}"#),
            "failed to parse policy: line 1: path must be an object of paths, not a string"
        );
    }

    #[test]
    fn expiration() {
        // An expired stanza is dropped before its other keys are validated (as in OpenBao).
        assert!(p("path \"a\" {\n expiration = \"2001-01-01T00:00:00Z\"\n capabilities = [\"bogus\"]\n}")
            .paths
            .is_empty());
        assert_eq!(
            err(r#"path "a" { expiration = "tomorrow" }"#),
            r#"failed to parse policy: path "a": path "a": invalid expiration time: could not parse string as date and time"#
        );
        assert_eq!(
            one(r#"path "a" { expiration = "4102444800" }"#).expiration,
            Some(datetime!(2100-01-01 00:00 UTC))
        );
    }

    #[test]
    fn filter_path_needs_list() {
        assert_eq!(
            err("path \"a\" {\n capabilities = [\"read\"]\n list_scan_response_keys_filter_path = \"x\"\n}"),
            "failed to parse policy: path \"a\": list_scan_response_keys_filter_path needs to be used on a path with the list capability"
        );
    }

    #[test]
    fn control_group_needs_a_factor() {
        assert_eq!(
            err(r#"path "a" { control_group = { ttl = "4h" } }"#),
            "failed to parse policy: path \"a\": error handling control_group: 1 error occurred:\n\t* requires at least one factor but had none\n\n"
        );
    }

    #[test]
    fn degenerate_documents() {
        assert!(p("# just a comment").paths.is_empty());
        assert!(p("").paths.is_empty());
        assert_eq!(one(r#"path "a" { }"#).capabilities, Caps::NONE);
        assert_eq!(one(r#"path "a" { capabilities = [] }"#).capabilities, Caps::NONE);
        assert_eq!(p("name = \"zz\"\npath \"a\" { capabilities = [\"read\"] }").paths.len(), 1);
        // Repeated stanzas are kept (the ACL merges them).
        assert_eq!(
            p("path \"a\" { capabilities = [\"read\"] }\npath \"a\" { capabilities = [\"list\"] }")
                .paths
                .len(),
            2
        );
        // Extra labels are ignored, as HCL v1 does; no label means the path "path".
        assert_eq!(one(r#"path "b" "c" { capabilities = ["read"] }"#).raw_path, "b");
        assert_eq!(one("path {\n capabilities = [\"read\"]\n}").raw_path, "path");
    }

    #[test]
    fn syntax_errors() {
        assert!(err(r#"path "a" { capabilities = ["read"] "#).starts_with("failed to parse policy: "));
        assert!(err("{\"path\": ").starts_with("failed to parse policy: "));
        assert!(err(r#"path "a" { capabilities = ["${var.x}"] }"#).contains("string template"));
        assert!(err(r#"path "a" { capabilities = upper("x") }"#).starts_with("failed to parse policy: "));
        assert!(err("[1]").starts_with("failed to parse policy: "));
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        for open in ["[", "{", "("] {
            let close = match open {
                "[" => "]",
                "{" => "}",
                _ => ")",
            };
            let text =
                format!("path \"a\" {{ capabilities = {}{} }}", open.repeat(100_000), close.repeat(100_000));
            assert_eq!(err(&text), "failed to parse policy: nesting deeper than 32 levels");
        }
        let json = format!("{{\"path\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(err(&json), "failed to parse policy: nesting deeper than 32 levels");
        // Brackets inside strings do not count, escaped quotes do not end a string.
        let text =
            format!("path \"{}\\\"{}\" {{ capabilities = [\"read\"] }}", "{".repeat(100), "[".repeat(100));
        assert_eq!(p(&text).paths.len(), 1);
        // The limit itself is fine.
        let ok = format!(
            "path \"a\" {{ allowed_parameters = {{ k = {}{} }} }}",
            "[".repeat(MAX_DEPTH - 2),
            "]".repeat(MAX_DEPTH - 2)
        );
        assert_eq!(p(&ok).paths.len(), 1);
    }

    #[test]
    fn caps_helpers() {
        assert_eq!(Caps::from_name("sudo"), Some(Caps::SUDO));
        assert_eq!(Caps::from_name("root"), None);
        let c = Caps::READ | Caps::LIST;
        assert!(c.contains(Caps::READ) && !c.contains(Caps::UPDATE) && c.intersects(Caps::LIST | Caps::SUDO));
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![Caps::LIST, Caps::READ]);
        assert_eq!(format!("{c:?}"), r#"Caps["list", "read"]"#);
    }
}
