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

use serde_json::Value;
use time::OffsetDateTime;

use super::error::{InvalidKey, ParseError, PathError};
use super::model::{Caps, ParamMap, PathRule, Policy};
use super::tree::{assign_json_lines, hcl_body, Entry, JsonNode, Node};
use crate::util::duration::parse_go_duration;

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
mod tests;
