//! Documents whose string values may be references: TOML, JSON, YAML and `.env`.
//!
//! A document is parsed once, its string values are visited (to collect references) and
//! replaced (to render the resolved document). The `[vault]` section (TOML/YAML/JSON key
//! `vault`) configures the resolver and is left untouched.

use std::path::Path;

use zeroize::Zeroizing;

/// Supported formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Env,
    Json,
    Toml,
    Yaml,
}

impl Format {
    /// From a file name (`.toml`, `.json`, `.yaml`/`.yml`, `.env` or a name starting `.env`).
    pub fn from_path(p: &Path) -> Option<Format> {
        let name = p.file_name()?.to_str()?;
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "env" => Some(Format::Env),
            _ if name.starts_with(".env") => Some(Format::Env),
            _ => None,
        }
    }

    /// From a `--format` value.
    pub fn from_name(s: &str) -> Option<Format> {
        match s {
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "env" | "dotenv" => Some(Format::Env),
            _ => None,
        }
    }
}

/// A parse failure (the message never contains values).
#[derive(Debug, thiserror::Error)]
#[error("cannot parse {format:?} document: {reason}")]
pub struct DocError {
    pub format: Format,
    pub reason: String,
}

#[derive(Clone)]
struct EnvLine {
    /// Text before the value (`export KEY=`), or the whole line for comments/blank lines.
    head: String,
    /// The value (unquoted) when this is an assignment.
    value: Option<String>,
    quote: Option<char>,
    key: String,
}

enum Inner {
    Env(Vec<EnvLine>),
    Json(serde_json::Value),
    Toml(toml_edit::DocumentMut),
    Yaml(serde_yaml_ng::Value),
}

/// A parsed document.
pub struct Document {
    format: Format,
    inner: Inner,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Document({:?})", self.format)
    }
}

fn parse_env(text: &str) -> Result<Vec<EnvLine>, DocError> {
    let err = |line: usize, problem: &str| DocError {
        format: Format::Env,
        reason: format!("line {line}: {problem}"),
    };
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            out.push(EnvLine { head: raw.to_owned(), value: None, quote: None, key: String::new() });
            continue;
        }
        let (key_part, value_part) = raw.split_once('=').ok_or_else(|| err(i + 1, "expected KEY=VALUE"))?;
        let key = key_part.trim().trim_start_matches("export ").trim().to_owned();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return Err(err(i + 1, "invalid variable name"));
        }
        let v = value_part.trim();
        let (value, quote) = if let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            (inner.replace("\\n", "\n").replace("\\\"", "\"").replace("\\\\", "\\"), Some('"'))
        } else if let Some(inner) = v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
            (inner.to_owned(), Some('\''))
        } else {
            // Unquoted: an inline comment starts at " #".
            let v = match v.find(" #") {
                Some(i) => v[..i].trim_end(),
                None => v,
            };
            (v.to_owned(), None)
        };
        out.push(EnvLine { head: format!("{key_part}="), value: Some(value), quote, key });
    }
    Ok(out)
}

fn env_quote(value: &str) -> String {
    let plain =
        !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:@+,%=".contains(c));
    if plain {
        value.to_owned()
    } else {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        format!("\"{escaped}\"")
    }
}

impl Document {
    /// Parses `text` in `format`.
    pub fn parse(format: Format, text: &str) -> Result<Self, DocError> {
        let err = |reason: String| DocError { format, reason };
        let inner = match format {
            Format::Env => Inner::Env(parse_env(text)?),
            Format::Json => Inner::Json(
                serde_json::from_str(text)
                    .map_err(|e| err(format!("line {} column {}", e.line(), e.column())))?,
            ),
            Format::Toml => {
                Inner::Toml(text.parse::<toml_edit::DocumentMut>().map_err(|e| err(e.message().to_owned()))?)
            }
            Format::Yaml => Inner::Yaml(serde_yaml_ng::from_str(text).map_err(|e| {
                err(e
                    .location()
                    .map(|l| format!("line {} column {}", l.line(), l.column()))
                    .unwrap_or_else(|| "invalid YAML".into()))
            })?),
        };
        Ok(Self { format, inner })
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Applies `f` to every string value outside the `vault` section; `f` returns the
    /// replacement, or `None` to keep the value.
    pub fn visit_strings(&mut self, f: &mut dyn FnMut(&str) -> Option<Zeroizing<String>>) {
        match &mut self.inner {
            Inner::Env(lines) => {
                for l in lines.iter_mut() {
                    if let Some(v) = &l.value {
                        if let Some(new) = f(v) {
                            l.value = Some(new.as_str().to_owned());
                            l.quote = Some('*');
                        }
                    }
                }
            }
            Inner::Json(v) => {
                if let serde_json::Value::Object(m) = v {
                    for (k, x) in m.iter_mut() {
                        if k != "vault" {
                            visit_json(x, f);
                        }
                    }
                } else {
                    visit_json(v, f);
                }
            }
            Inner::Toml(doc) => {
                for (k, item) in doc.as_table_mut().iter_mut() {
                    if k.get() != "vault" {
                        visit_toml_item(item, f);
                    }
                }
            }
            Inner::Yaml(v) => {
                if let serde_yaml_ng::Value::Mapping(m) = v {
                    for (k, x) in m.iter_mut() {
                        if k.as_str() != Some("vault") {
                            visit_yaml(x, f);
                        }
                    }
                } else {
                    visit_yaml(v, f);
                }
            }
        }
    }

    /// Every string value outside the `vault` section.
    pub fn strings(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit_strings(&mut |s| {
            out.push(s.to_owned());
            None
        });
        out
    }

    /// `.env` documents: (key, value) pairs in order.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        match &self.inner {
            Inner::Env(lines) => {
                lines.iter().filter_map(|l| l.value.clone().map(|v| (l.key.clone(), v))).collect()
            }
            _ => Vec::new(),
        }
    }

    /// A setting of the `vault` section (`[vault] key = "..."`), if present: a string, or a
    /// boolean or integer as text (`skip_verify = true` counts like `skip_verify = "true"`).
    pub fn vault_setting(&self, key: &str) -> Option<String> {
        match &self.inner {
            Inner::Env(lines) => {
                let env_key = format!("VAULT_{}", key.to_uppercase());
                lines.iter().find(|l| l.key == env_key).and_then(|l| l.value.clone())
            }
            Inner::Json(v) => match v.get("vault")?.get(key)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Bool(b) => Some(b.to_string()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
            Inner::Toml(doc) => {
                let v = doc.get("vault")?.get(key)?;
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_bool().map(|b| b.to_string()))
                    .or_else(|| v.as_integer().map(|i| i.to_string()))
            }
            Inner::Yaml(v) => match v.get("vault")?.get(key)? {
                serde_yaml_ng::Value::String(s) => Some(s.clone()),
                serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
                serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
        }
    }

    /// Renders the document (zeroized when dropped: it may hold resolved secrets).
    pub fn render(&self) -> Zeroizing<String> {
        Zeroizing::new(match &self.inner {
            Inner::Env(lines) => {
                let mut s = String::new();
                for l in lines {
                    match (&l.value, l.quote) {
                        (None, _) => s.push_str(&l.head),
                        (Some(v), Some('*')) => {
                            s.push_str(&l.head);
                            s.push_str(&env_quote(v));
                        }
                        (Some(v), Some(q)) => {
                            s.push_str(&l.head);
                            s.push(q);
                            if q == '"' {
                                s.push_str(
                                    &v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"),
                                );
                            } else {
                                s.push_str(v);
                            }
                            s.push(q);
                        }
                        (Some(v), None) => {
                            s.push_str(&l.head);
                            s.push_str(v);
                        }
                    }
                    s.push('\n');
                }
                s
            }
            Inner::Json(v) => {
                let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
                s.push('\n');
                s
            }
            Inner::Toml(doc) => doc.to_string(),
            Inner::Yaml(v) => serde_yaml_ng::to_string(v).unwrap_or_default(),
        })
    }
}

fn visit_json(v: &mut serde_json::Value, f: &mut dyn FnMut(&str) -> Option<Zeroizing<String>>) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new.as_str().to_owned();
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| visit_json(x, f)),
        serde_json::Value::Object(m) => m.values_mut().for_each(|x| visit_json(x, f)),
        _ => {}
    }
}

fn visit_yaml(v: &mut serde_yaml_ng::Value, f: &mut dyn FnMut(&str) -> Option<Zeroizing<String>>) {
    match v {
        serde_yaml_ng::Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new.as_str().to_owned();
            }
        }
        serde_yaml_ng::Value::Sequence(a) => a.iter_mut().for_each(|x| visit_yaml(x, f)),
        serde_yaml_ng::Value::Mapping(m) => m.values_mut().for_each(|x| visit_yaml(x, f)),
        serde_yaml_ng::Value::Tagged(t) => visit_yaml(&mut t.value, f),
        _ => {}
    }
}

fn visit_toml_value(v: &mut toml_edit::Value, f: &mut dyn FnMut(&str) -> Option<Zeroizing<String>>) {
    match v {
        toml_edit::Value::String(s) => {
            if let Some(new) = f(s.value()) {
                let decor = s.decor().clone();
                let mut formatted = toml_edit::Formatted::new(new.as_str().to_owned());
                *formatted.decor_mut() = decor;
                *s = formatted;
            }
        }
        toml_edit::Value::Array(a) => a.iter_mut().for_each(|x| visit_toml_value(x, f)),
        toml_edit::Value::InlineTable(t) => t.iter_mut().for_each(|(_, x)| visit_toml_value(x, f)),
        _ => {}
    }
}

fn visit_toml_item(item: &mut toml_edit::Item, f: &mut dyn FnMut(&str) -> Option<Zeroizing<String>>) {
    match item {
        toml_edit::Item::Value(v) => visit_toml_value(v, f),
        toml_edit::Item::Table(t) => t.iter_mut().for_each(|(_, x)| visit_toml_item(x, f)),
        toml_edit::Item::ArrayOfTables(a) => {
            for t in a.iter_mut() {
                t.iter_mut().for_each(|(_, x)| visit_toml_item(x, f));
            }
        }
        toml_edit::Item::None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(s: &str) -> Option<Zeroizing<String>> {
        s.starts_with("vault:").then(|| Zeroizing::new(s.to_uppercase()))
    }

    #[test]
    fn toml_keeps_layout_and_skips_vault_section() {
        let text = "# platform config\n[vault]\nrole_id = \"vault:not/replaced\"\n\n[ai]\nkey = \"vault:ai/k\" # comment\nplain = \"x\"\nlist = [\"vault:a\", 3]\n";
        let mut d = Document::parse(Format::Toml, text).unwrap();
        d.visit_strings(&mut upper);
        let out = d.render();
        assert!(out.contains("# platform config"));
        assert!(out.contains("key = \"VAULT:AI/K\" # comment"), "{}", out.as_str());
        assert!(out.contains("role_id = \"vault:not/replaced\""));
        assert!(out.contains("\"VAULT:A\""));
        assert_eq!(d.vault_setting("role_id").as_deref(), Some("vault:not/replaced"));
    }

    #[test]
    fn vault_settings_may_be_booleans() {
        let toml = Document::parse(Format::Toml, "[vault]\nskip_verify = true\n").unwrap();
        let json = Document::parse(Format::Json, r#"{"vault": {"skip_verify": true}}"#).unwrap();
        let yaml = Document::parse(Format::Yaml, "vault:\n  skip_verify: true\n").unwrap();
        for d in [toml, json, yaml] {
            assert_eq!(d.vault_setting("skip_verify").as_deref(), Some("true"), "{d:?}");
        }
    }

    #[test]
    fn json_yaml_env() {
        let mut d =
            Document::parse(Format::Json, r#"{"a":{"b":["vault:x", 1]},"vault":{"address":"vault:keep"}}"#)
                .unwrap();
        d.visit_strings(&mut upper);
        let v: serde_json::Value = serde_json::from_str(&d.render()).unwrap();
        assert_eq!(v["a"]["b"][0], "VAULT:X");
        assert_eq!(v["vault"]["address"], "vault:keep");

        let mut d = Document::parse(Format::Yaml, "a:\n  b: vault:y\nc: [vault:z, 2]\n").unwrap();
        d.visit_strings(&mut upper);
        let out = d.render();
        assert!(out.contains("VAULT:Y") && out.contains("VAULT:Z"), "{}", out.as_str());

        let text = "# c\nexport A=vault:p\nB=\"quoted value\"\nC='vault:q'\nD=plain # note\n\n";
        let mut d = Document::parse(Format::Env, text).unwrap();
        assert_eq!(d.env_pairs()[1], ("B".into(), "quoted value".into()));
        assert_eq!(d.env_pairs()[3], ("D".into(), "plain".into()));
        d.visit_strings(&mut |s| {
            (s == "vault:p").then(|| Zeroizing::new("has space\nand newline".to_owned()))
        });
        let out = d.render();
        assert!(out.contains("export A=\"has space\\nand newline\""), "{}", out.as_str());
        assert!(out.contains("B=\"quoted value\""));
        assert!(out.contains("C='vault:q'"));
        assert!(out.starts_with("# c\n"));
        assert!(Document::parse(Format::Env, "NOEQUALS\n").is_err());
    }

    #[test]
    fn formats_from_names() {
        assert_eq!(Format::from_path(Path::new("a/b.toml")), Some(Format::Toml));
        assert_eq!(Format::from_path(Path::new(".env.production")), Some(Format::Env));
        assert_eq!(Format::from_path(Path::new("x.yml")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("x.txt")), None);
    }
}
