//! The three front ends: native TOML, Vault/OpenBao HCL and Vault's JSON form, each turned into
//! one `serde_json::Value` tree in Vault's shape for `raw.rs`.
//!
//! The shape: top-level scalars as they are; labelled blocks (`storage`, `backend`, `listener`,
//! `seal`) as lists of one-key objects, `"listener": [{"tcp": {...}}, {"tcp": {...}}]`; nested
//! unlabelled blocks (`retry_join`) as lists. Native TOML writes the label as `type`:
//!
//! ```toml
//! [storage]
//! type = "file"
//! path = "/var/lib/coffer"
//!
//! [[listener]]
//! type = "tcp"        # the default
//! address = "127.0.0.1:8200"
//! ```
//!
//! Vault keys that mean nothing to coffer are removed here with a warning; Vault keys whose
//! absence would change behaviour in a way an operator must know about are refused.

use serde_json::{Map, Value};

use super::de::{index, join, value_kind};
use super::error::ConfigError;
use super::unsupported::strip_unsupported;

/// Which front end reads a file, chosen by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Hcl,
    Json,
    Toml,
}

impl Format {
    /// `.toml`, `.hcl` or `.json` (case-insensitive).
    pub fn from_path(path: &std::path::Path) -> Result<Format, ConfigError> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("toml") => Ok(Format::Toml),
            Some("hcl") => Ok(Format::Hcl),
            Some("json") => Ok(Format::Json),
            _ => Err(ConfigError::UnsupportedExtension { ext }),
        }
    }
}

/// Keys that hold labelled blocks (`listener "tcp" { }`).
const LABELLED_BLOCKS: &[&str] = &["backend", "ha_backend", "ha_storage", "listener", "seal", "storage"];

/// Parses `text` in `format` into the Vault-shaped tree and the warnings for ignored keys.
pub fn to_tree(text: &str, format: Format) -> Result<(Value, Vec<String>), ConfigError> {
    let mut tree = match format {
        Format::Toml => {
            let v: toml::Value = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
            let v = serde_json::to_value(v).map_err(|e| syntax("TOML", e))?;
            toml_to_vault_shape(v)?
        }
        Format::Hcl => {
            let body = hcl::parse(text).map_err(|e| hcl_error(&e))?;
            // Audit blocks have two labels (type and path); the generic conversion would nest
            // them, so they are taken out here and flattened.
            let (audits, rest): (Vec<hcl::Structure>, Vec<hcl::Structure>) = body
                .into_iter()
                .partition(|s| matches!(s, hcl::Structure::Block(b) if b.identifier.as_str() == "audit"));
            let v = hcl::Value::from(hcl::Body::from_iter(rest));
            let mut v = serde_json::to_value(v).map_err(|e| syntax("HCL", e))?;
            if !audits.is_empty() {
                let n = audits.len();
                let blocks = audits
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, s)| match s {
                        hcl::Structure::Block(b) => Some(hcl_audit_block(&index("audit", i, n), b)),
                        hcl::Structure::Attribute(_) => None,
                    })
                    .collect::<Result<Vec<Value>, ConfigError>>()?;
                if let Value::Object(top) = &mut v {
                    top.insert("audit".into(), Value::Array(blocks));
                }
            }
            normalize_blocks(v)?
        }
        Format::Json => {
            let v: Value = serde_json::from_str(text).map_err(|e| syntax("JSON", e))?;
            normalize_blocks(v)?
        }
    };
    if let Value::Object(top) = &mut tree {
        normalize_audit(top)?;
    }
    let mut warnings = Vec::new();
    strip_unsupported(&mut tree, &mut warnings)?;
    Ok((tree, warnings))
}

/// A TOML syntax error with its position. The parser's own rendering quotes the source line,
/// which may hold an inline secret, so only the message and the position are kept.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
            ConfigError::Syntax { language: "TOML", at: Some((line, column)), message }
        }
        None => ConfigError::Syntax { language: "TOML", at: None, message },
    }
}

/// An HCL syntax error with its position, without the quoted source line (see [`toml_error`]).
fn hcl_error(e: &hcl::Error) -> ConfigError {
    match e {
        hcl::Error::Parse(p) => ConfigError::Syntax {
            language: "HCL",
            at: Some((p.location().line(), p.location().column())),
            message: p.message().trim().replace('\n', "; "),
        },
        other => syntax("HCL", other),
    }
}

/// One HCL `audit "TYPE" "PATH" { ... }` block as a flat object (`type`, `path` and the body).
/// The labels may also be written inside the block.
fn hcl_audit_block(path: &str, b: hcl::Block) -> Result<Value, ConfigError> {
    let labels: Vec<String> = b.labels.iter().map(|l| l.as_str().to_owned()).collect();
    let body = serde_json::to_value(hcl::Value::from(b.body)).map_err(|e| syntax("HCL", e))?;
    let Value::Object(mut body) = body else {
        return Err(ConfigError::setting(path, "expected a block"));
    };
    if labels.len() > 2 {
        return Err(ConfigError::setting(
            path,
            format!("expected audit \"TYPE\" \"PATH\" {{ ... }}, found {} labels", labels.len()),
        ));
    }
    for (label, key) in labels.into_iter().zip(["type", "path"]) {
        if body.contains_key(key) {
            return Err(ConfigError::setting(
                &join(path, key),
                "given both as a block label and in the block",
            ));
        }
        body.insert(key.to_owned(), Value::String(label));
    }
    Ok(Value::Object(body))
}

/// Brings `audit` into one shape: a list of flat objects with `type` and `path`. Accepted:
/// flat objects (`[[audit]] type = "file" path = "x"` in TOML, or JSON with `type`), and
/// Vault/OpenBao's JSON form keyed by type, then path (`{"audit": [{"file": {"x": {..}}}]}`).
fn normalize_audit(top: &mut Map<String, Value>) -> Result<(), ConfigError> {
    let Some(value) = top.remove("audit") else { return Ok(()) };
    let items = block_list(value).map_err(|other| {
        ConfigError::setting(
            "audit",
            format!("expected a block (audit \"TYPE\" \"PATH\" {{ ... }}), found {}", value_kind(&other)),
        )
    })?;
    let mut out = Vec::new();
    for item in items {
        let Value::Object(m) = item else {
            return Err(ConfigError::setting(
                "audit",
                format!("expected a block, found {}", value_kind(&item)),
            ));
        };
        if m.get("type").is_some_and(Value::is_string) {
            out.push(Value::Object(m));
            continue;
        }
        for (kind, by_path) in m {
            let at_kind = join("audit", &kind);
            for group in one_or_many(by_path) {
                let Value::Object(paths) = group else {
                    return Err(ConfigError::setting(
                        &at_kind,
                        format!("expected blocks keyed by the device path, found {}", value_kind(&group)),
                    ));
                };
                for (path, body) in paths {
                    let at_path = join(&at_kind, &path);
                    for body in one_or_many(body) {
                        let Value::Object(mut body) = body else {
                            return Err(ConfigError::setting(
                                &at_path,
                                format!("expected a block, found {}", value_kind(&body)),
                            ));
                        };
                        for key in ["type", "path"] {
                            if body.contains_key(key) {
                                return Err(ConfigError::setting(
                                    &join(&at_path, key),
                                    "given both as a label and in the block",
                                ));
                            }
                        }
                        body.insert("type".into(), Value::String(kind.clone()));
                        body.insert("path".into(), Value::String(path.clone()));
                        out.push(Value::Object(body));
                    }
                }
            }
        }
    }
    top.insert("audit".into(), Value::Array(out));
    Ok(())
}

/// Native TOML: `[storage] type = "file"` becomes `"storage": [{"file": {...}}]`, and so on.
fn toml_to_vault_shape(v: Value) -> Result<Value, ConfigError> {
    let Value::Object(mut top) = v else {
        return Err(ConfigError::Document("expected a TOML document".into()));
    };
    for key in LABELLED_BLOCKS {
        let Some(value) = top.remove(*key) else { continue };
        let items = block_list(value).map_err(|other| {
            ConfigError::setting(key, format!("expected a table, found {}", value_kind(&other)))
        })?;
        let n = items.len();
        let mut out = Vec::with_capacity(n);
        for (i, item) in items.into_iter().enumerate() {
            let path = index(key, i, n);
            let Value::Object(mut body) = item else {
                return Err(ConfigError::setting(
                    &path,
                    format!("expected a table, found {}", value_kind(&item)),
                ));
            };
            let label = match body.remove("type") {
                Some(Value::String(t)) => t,
                None if *key == "listener" => "tcp".to_owned(),
                None => {
                    return Err(ConfigError::setting(
                        &join(&path, "type"),
                        "required (for example type = \"file\")",
                    ));
                }
                Some(other) => {
                    return Err(ConfigError::setting(
                        &join(&path, "type"),
                        format!("expected a string, found {}", value_kind(&other)),
                    ));
                }
            };
            out.push(Value::Object(Map::from_iter([(label, Value::Object(body))])));
        }
        top.insert((*key).to_owned(), Value::Array(out));
    }
    Ok(Value::Object(top))
}

/// Vault HCL and JSON: every labelled block becomes a list of one-key objects, whichever of the
/// forms HCL and Vault's JSON allow was used (`{"tcp": {..}}`, `{"tcp": [{..}, {..}]}`,
/// `[{"tcp": {..}}]`, `{"tcp": {..}, "unix": {..}}`).
fn normalize_blocks(v: Value) -> Result<Value, ConfigError> {
    let Value::Object(mut top) = v else {
        return Err(ConfigError::Document(format!(
            "expected an object at the top, found {}",
            value_kind(&v)
        )));
    };
    for key in LABELLED_BLOCKS {
        let Some(value) = top.remove(*key) else { continue };
        let mut out = Vec::new();
        let groups = block_list(value).map_err(|other| {
            ConfigError::setting(
                key,
                format!("expected a block ({key} \"TYPE\" {{ ... }}), found {}", value_kind(&other)),
            )
        })?;
        for group in groups {
            let Value::Object(labels) = group else {
                return Err(ConfigError::setting(
                    key,
                    format!("expected a block, found {}", value_kind(&group)),
                ));
            };
            for (label, body) in labels {
                for b in one_or_many(body) {
                    out.push(Value::Object(Map::from_iter([(label.clone(), b)])));
                }
            }
        }
        top.insert((*key).to_owned(), Value::Array(out));
    }
    Ok(Value::Object(top))
}

/// A block or a list of blocks as a list; anything else is given back for the error message.
fn block_list(value: Value) -> Result<Vec<Value>, Value> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(m) => Ok(vec![Value::Object(m)]),
        other => Err(other),
    }
}

/// A list as its elements, any other value as a list of itself.
fn one_or_many(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => vec![other],
    }
}

/// A syntax error without a position.
fn syntax(language: &'static str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Syntax { language, at: None, message: e.to_string() }
}

#[cfg(test)]
mod tests;
