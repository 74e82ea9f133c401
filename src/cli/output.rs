//! Output the way the Vault CLI prints it: `Key  Value` tables underlined with dashes and
//! columns glued by four spaces (empty cells print `n/a`), values rendered like Go's `%v`
//! (`map[a:1 b:2]`, `[x y]`, `<nil>`), TTL-looking fields as durations (`768h`, `1m30s`),
//! `-format=json` as two-space indented JSON, and `-field=NAME` as one raw value.
//!
//! The functions here build strings; the commands print them.

use std::io::IsTerminal;

use serde_json::{Map, Value};

use crate::util::duration::format_go_seconds;

/// `-format`: how results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Two-space indented JSON.
    Json,
    /// Human-readable tables (the default).
    #[default]
    Table,
}

impl Format {
    /// `VAULT_FORMAT` / `BAO_FORMAT` / `COFFER_FORMAT`, when valid.
    pub fn from_env() -> Option<Format> {
        ["COFFER_FORMAT", "BAO_FORMAT", "VAULT_FORMAT"].iter().find_map(|k| {
            match std::env::var(k).ok()?.as_str() {
                "json" => Some(Format::Json),
                "table" => Some(Format::Table),
                _ => None,
            }
        })
    }
}

/// Go's `%v` of a JSON-decoded value.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys.iter().map(|k| format!("{k}:{}", go_value(&m[*k]))).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%q` of a string list: `["a" "b"]`.
pub fn go_quoted_list(v: Option<&Value>) -> String {
    let items: Vec<String> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter().map(|x| serde_json::to_string(&Value::String(go_value(x))).unwrap_or_default()).collect()
        })
        .unwrap_or_default();
    format!("[{}]", items.join(" "))
}

/// Go's `time.Duration` string for whole seconds without trailing zero units (`1h`, `1h30m`).
pub fn human_duration(secs: i64) -> String {
    let mut s = format_go_seconds(secs);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(i) = s.find("h0m") {
        if i > 0 {
            s.replace_range(i + 1..i + 3, "");
        }
    }
    s
}

/// The CLI's guess that a field holds seconds worth printing as a duration.
pub fn looks_like_duration(k: &str) -> bool {
    k == "period"
        || k.ends_with("_period")
        || k == "ttl"
        || k.ends_with("_ttl")
        || k == "duration"
        || k.ends_with("_duration")
        || k == "lease_max"
        || k == "ttl_max"
}

/// A value of field `k` as the table shows it.
pub fn table_value(k: &str, v: &Value) -> String {
    if looks_like_duration(k) {
        if let Some(i) = v.as_i64() {
            return human_duration(i);
        }
    }
    go_value(v)
}

/// Aligns rows into columns glued by four spaces; empty cells print `n/a`; trailing spaces
/// are trimmed.
pub fn columns(rows: &[Vec<String>]) -> String {
    let cell = |c: &String| {
        let t = c.trim();
        if t.is_empty() {
            "n/a".to_owned()
        } else {
            t.to_owned()
        }
    };
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 4));
            }
        }
        out.push(line.trim_end().to_owned());
    }
    out.join("\n")
}

/// A table whose first row is a header, underlined with dashes.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut all = Vec::with_capacity(rows.len() + 2);
    all.push(header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    all.push(header.iter().map(|h| "-".repeat(h.len())).collect());
    all.extend(rows);
    columns(&all)
}

/// `Key  Value` rows of a map, keys sorted, durations humanised.
pub fn map_rows(m: &Map<String, Value>) -> Vec<Vec<String>> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys.into_iter().map(|k| vec![k.clone(), table_value(k, &m[k])]).collect()
}

/// A map as a `Key  Value` table; `None` when the map is empty.
pub fn map_table(m: &Map<String, Value>) -> Option<String> {
    (!m.is_empty()).then(|| table(&["Key", "Value"], map_rows(m)))
}

/// A response envelope (a "secret") as the Vault CLI's table: lease, auth, wrap info, then the
/// data's keys. `None` when there is nothing to show.
pub fn secret_table(secret: &Value) -> Option<String> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let lease_duration = secret.get("lease_duration").and_then(Value::as_i64).unwrap_or(0);
    if lease_duration > 0 {
        let lease_id = secret.get("lease_id").and_then(Value::as_str).unwrap_or("");
        if lease_id.is_empty() {
            rows.push(vec!["refresh_interval".into(), human_duration(lease_duration)]);
        } else {
            rows.push(vec!["lease_id".into(), lease_id.into()]);
            rows.push(vec!["lease_duration".into(), human_duration(lease_duration)]);
            rows.push(vec![
                "lease_renewable".into(),
                go_value(secret.get("renewable").unwrap_or(&Value::Bool(false))),
            ]);
        }
    }
    if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        rows.extend(auth_rows(auth));
    }
    if let Some(w) = secret.get("wrap_info").filter(|w| w.is_object()) {
        let s = |k: &str| w.get(k).map(go_value).unwrap_or_default();
        rows.push(vec!["wrapping_token:".into(), s("token")]);
        rows.push(vec!["wrapping_accessor:".into(), s("accessor")]);
        rows.push(vec![
            "wrapping_token_ttl:".into(),
            table_value("ttl", w.get("ttl").unwrap_or(&Value::Null)),
        ]);
        rows.push(vec!["wrapping_token_creation_time:".into(), s("creation_time")]);
        rows.push(vec!["wrapping_token_creation_path:".into(), s("creation_path")]);
        if w.get("wrapped_accessor").and_then(Value::as_str).is_some_and(|a| !a.is_empty()) {
            rows.push(vec!["wrapped_accessor:".into(), s("wrapped_accessor")]);
        }
    }
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        rows.extend(map_rows(data));
    }
    (!rows.is_empty()).then(|| table(&["Key", "Value"], rows))
}

/// The `token ...` rows of an `auth` block.
fn auth_rows(auth: &Value) -> Vec<Vec<String>> {
    let s = |k: &str| auth.get(k).map(go_value).unwrap_or_default();
    let duration = auth.get("lease_duration").and_then(Value::as_i64).unwrap_or(0);
    let mut rows = vec![
        vec!["token".into(), s("client_token")],
        vec!["token_accessor".into(), s("accessor")],
        vec!["token_duration".into(), if duration == 0 { "∞".into() } else { human_duration(duration) }],
        vec!["token_renewable".into(), auth.get("renewable").map(go_value).unwrap_or_else(|| "false".into())],
        vec!["token_policies".into(), go_quoted_list(auth.get("token_policies"))],
        vec!["identity_policies".into(), go_quoted_list(auth.get("identity_policies"))],
        vec!["policies".into(), go_quoted_list(auth.get("policies"))],
    ];
    if let Some(meta) = auth.get("metadata").and_then(Value::as_object) {
        let mut keys: Vec<&String> = meta.keys().collect();
        keys.sort();
        for k in keys {
            rows.push(vec![format!("token_meta_{k}"), go_value(&meta[k])]);
        }
    }
    rows
}

/// The warnings block the CLI prints to stderr before a table.
pub fn warnings_block(secret: &Value) -> Option<String> {
    let w = secret.get("warnings")?.as_array()?;
    if w.is_empty() {
        return None;
    }
    let mut out = String::from("WARNING! The following warnings were returned from Vault:\n\n");
    for item in w {
        out.push_str(&wrap_with_padding(&format!("* {}", go_value(item)), 2));
        out.push_str("\n\n");
    }
    Some(out.trim_end_matches('\n').to_owned() + "\n")
}

/// Greedy word wrap at 78 columns minus `pad`, each line indented by `pad` spaces.
pub fn wrap_with_padding(s: &str, pad: usize) -> String {
    let width = 78usize.saturating_sub(pad).max(10);
    let mut lines: Vec<String> = Vec::new();
    for para in s.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines.iter().map(|l| format!("{}{l}", " ".repeat(pad))).collect::<Vec<_>>().join("\n")
}

/// Sorted `Keys` list table of a list response's `data.keys`.
pub fn list_table(keys: &[String]) -> String {
    let mut keys = keys.to_vec();
    keys.sort();
    table(&["Keys"], keys.into_iter().map(|k| vec![k]).collect())
}

/// `data.keys` of a list response as strings.
pub fn list_keys(secret: &Value) -> Option<Vec<String>> {
    let keys = secret.get("data")?.get("keys")?.as_array()?;
    Some(keys.iter().map(go_value).collect())
}

/// `=== Title ===` padded to `total` columns, as the kv commands print section headers.
pub fn pad_equal_signs(header: &str, total: usize) -> String {
    let mut n = total as i64 - (header.len() as i64 + 2);
    if n <= 0 {
        n = 4;
    }
    if n % 2 != 0 {
        n += 1;
    }
    let side = "=".repeat((n / 2) as usize);
    format!("{side} {header} {side}")
}

/// The section header of a map table (`== Data ==` sized to the table).
pub fn header_for_map(header: &str, m: &Map<String, Value>) -> String {
    let max = m.keys().map(String::len).max().unwrap_or(0);
    pad_equal_signs(header, max + 4 + 5)
}

/// Two-space indented JSON with object keys sorted (Go's `json.MarshalIndent` of a map).
pub fn json_pretty(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v, 0, None);
    out
}

/// Top-level key order of the Go client's `api.Secret`; keys after it are sorted.
const SECRET_ORDER: &[&str] = &[
    "request_id",
    "lease_id",
    "lease_duration",
    "renewable",
    "data",
    "warnings",
    "auth",
    "wrap_info",
    "mount_type",
];

/// A response envelope as the Vault CLI prints it with `-format=json`: envelope keys in the Go
/// struct's order, `auth`/`wrap_info` only when set, everything nested sorted.
pub fn json_secret(secret: &Value) -> String {
    let Some(m) = secret.as_object() else { return json_pretty(secret) };
    let mut shown = Map::new();
    for k in SECRET_ORDER {
        match (*k, m.get(*k)) {
            ("auth" | "wrap_info", None | Some(Value::Null)) => {}
            ("mount_type", None) => {}
            ("mount_type", Some(Value::String(s))) if s.is_empty() => {}
            ("request_id" | "lease_id", None) => {
                shown.insert((*k).into(), Value::String(String::new()));
            }
            ("lease_duration", None) => {
                shown.insert((*k).into(), Value::from(0));
            }
            ("renewable", None) => {
                shown.insert((*k).into(), Value::Bool(false));
            }
            (_, None) => {
                shown.insert((*k).into(), Value::Null);
            }
            (_, Some(v)) => {
                shown.insert((*k).into(), v.clone());
            }
        }
    }
    let mut out = String::new();
    write_json(&mut out, &Value::Object(shown), 0, Some(SECRET_ORDER));
    out
}

fn write_json(out: &mut String, v: &Value, indent: usize, order: Option<&[&str]>) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push_str("[\n");
            for (i, x) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                write_json(out, x, indent + 1, None);
                if i + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::Object(m) if !m.is_empty() => {
            let mut keys: Vec<&String> = m.keys().collect();
            match order {
                Some(order) => {
                    keys.sort_by_key(|k| (order.iter().position(|o| o == k).unwrap_or(order.len()), *k))
                }
                None => keys.sort(),
            }
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(": ");
                write_json(out, &m[*k], indent + 1, None);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
        scalar => out.push_str(&serde_json::to_string(scalar).unwrap_or_default()),
    }
}

/// Looks up `-field=NAME` in a response envelope the way the Vault CLI does: the `token*` names
/// read the auth block, `wrapping_*` the wrap info, `lease_*`/`refresh_interval` the lease,
/// anything else a key of `data`.
pub fn secret_field(secret: &Value, name: &str) -> Option<Value> {
    let auth = secret.get("auth").filter(|a| a.is_object());
    if let Some(auth) = auth {
        let from_auth = |k: &str| auth.get(k).cloned();
        let hit = match name {
            "token" => from_auth("client_token"),
            "token_accessor" => from_auth("accessor"),
            "token_duration" => {
                auth.get("lease_duration").and_then(Value::as_i64).map(|d| Value::String(human_duration(d)))
            }
            "token_renewable" => from_auth("renewable"),
            "token_policies" => from_auth("token_policies"),
            "identity_policies" => from_auth("identity_policies"),
            "policies" => from_auth("policies"),
            other => other
                .strip_prefix("token_meta_")
                .and_then(|m| auth.get("metadata").and_then(|md| md.get(m)).cloned()),
        };
        if hit.is_some() {
            return hit;
        }
    }
    if let Some(w) = secret.get("wrap_info").filter(|w| w.is_object()) {
        let hit = match name {
            "wrapping_token" => w.get("token").cloned(),
            "wrapping_accessor" => w.get("accessor").cloned(),
            "wrapping_token_ttl" => w.get("ttl").cloned(),
            "wrapping_token_creation_time" => w.get("creation_time").cloned(),
            "wrapping_token_creation_path" => w.get("creation_path").cloned(),
            "wrapped_accessor" => w.get("wrapped_accessor").cloned(),
            _ => None,
        };
        if hit.is_some() {
            return hit;
        }
    }
    match name {
        "lease_id" | "lease_duration" | "renewable" if secret.get(name).is_some() => {
            return secret.get(name).cloned();
        }
        "lease_renewable" => return secret.get("renewable").cloned(),
        "refresh_interval" => return secret.get("lease_duration").cloned(),
        _ => {}
    }
    secret.get("data").and_then(|d| d.get(name)).cloned()
}

/// The text `-field` prints for a value: raw strings, Go `%v` for the rest in table format,
/// JSON in json format.
pub fn field_text(v: &Value, format: Format) -> String {
    match (format, v) {
        (_, Value::String(s)) => s.clone(),
        (Format::Table, v) => go_value(v),
        (Format::Json, v) => json_pretty(v),
    }
}

/// Prints a raw value: with a newline on a terminal, without one when piped (so `$(...)` and
/// files get the exact value), as the Vault CLI does.
pub fn print_raw(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    if out.is_terminal() {
        let _ = writeln!(out, "{s}");
    } else {
        let _ = write!(out, "{s}");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn go_values() {
        assert_eq!(go_value(&json!(null)), "<nil>");
        assert_eq!(go_value(&json!({"b": "two", "a": 1})), "map[a:1 b:two]");
        assert_eq!(go_value(&json!(["x", 2, true, {"k": null}])), "[x 2 true map[k:<nil>]]");
        assert_eq!(go_value(&json!("")), "");
        assert_eq!(go_quoted_list(Some(&json!(["default", "web"]))), r#"["default" "web"]"#);
        assert_eq!(go_quoted_list(None), "[]");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(2764800), "768h");
        assert_eq!(human_duration(5400), "1h30m");
        assert_eq!(human_duration(3599), "59m59s");
        assert_eq!(human_duration(90), "1m30s");
        assert_eq!(human_duration(120), "2m");
        assert_eq!(human_duration(3601), "1h1s"); // Go strips "0m" too
        assert_eq!(table_value("creation_ttl", &json!(0)), "0s");
        assert_eq!(table_value("ttl", &json!("5m")), "5m");
        assert_eq!(table_value("num_uses", &json!(3600)), "3600");
    }

    #[test]
    fn tables_like_vault() {
        let t =
            table(&["Key", "Value"], vec![vec!["a".into(), "1".into()], vec!["metadata".into(), "".into()]]);
        assert_eq!(t, "Key         Value\n---         -----\na           1\nmetadata    n/a");
        assert_eq!(list_table(&["b".into(), "a/".into()]), "Keys\n----\na/\nb");
    }

    #[test]
    fn secret_tables() {
        let kv1 = json!({"request_id": "r", "lease_id": "", "lease_duration": 2764800, "renewable": false,
                         "data": {"x": "1", "big": {"k": "v"}}, "warnings": null});
        assert_eq!(
            secret_table(&kv1).unwrap(),
            "Key                 Value\n---                 -----\nrefresh_interval    768h\nbig                 map[k:v]\nx                   1"
        );
        let login = json!({"lease_duration": 0, "data": null, "auth": {
            "client_token": "hvs.X", "accessor": "acc", "lease_duration": 3600, "renewable": true,
            "token_policies": ["default"], "policies": ["default"], "identity_policies": null,
            "metadata": {"role_name": "r"}}});
        assert_eq!(
            secret_table(&login).unwrap(),
            "Key                     Value\n\
             ---                     -----\n\
             token                   hvs.X\n\
             token_accessor          acc\n\
             token_duration          1h\n\
             token_renewable         true\n\
             token_policies          [\"default\"]\n\
             identity_policies       []\n\
             policies                [\"default\"]\n\
             token_meta_role_name    r"
        );
        assert!(secret_table(&json!({"data": null, "lease_duration": 0})).is_none());
    }

    #[test]
    fn json_output_order() {
        let s = json!({"warnings": null, "data": {"b": 1, "a": [1, {}]}, "request_id": "r",
                       "lease_id": "", "lease_duration": 0, "renewable": false, "auth": null});
        assert_eq!(
            json_secret(&s),
            "{\n  \"request_id\": \"r\",\n  \"lease_id\": \"\",\n  \"lease_duration\": 0,\n  \"renewable\": false,\n  \"data\": {\n    \"a\": [\n      1,\n      {}\n    ],\n    \"b\": 1\n  },\n  \"warnings\": null\n}"
        );
        assert_eq!(json_pretty(&json!([])), "[]");
    }

    #[test]
    fn fields() {
        let s = json!({"lease_duration": 60, "lease_id": "l", "renewable": true,
                       "data": {"value": "s3cret", "n": 3, "token": "data-token"},
                       "auth": {"client_token": "hvs.T", "accessor": "A", "lease_duration": 3600,
                                "metadata": {"role_name": "web"}}});
        assert_eq!(secret_field(&s, "token"), Some(json!("hvs.T")));
        assert_eq!(secret_field(&s, "token_accessor"), Some(json!("A")));
        assert_eq!(secret_field(&s, "token_duration"), Some(json!("1h")));
        assert_eq!(secret_field(&s, "token_meta_role_name"), Some(json!("web")));
        assert_eq!(secret_field(&s, "value"), Some(json!("s3cret")));
        assert_eq!(secret_field(&s, "lease_id"), Some(json!("l")));
        assert_eq!(secret_field(&s, "refresh_interval"), Some(json!(60)));
        assert_eq!(secret_field(&s, "missing"), None);
        assert_eq!(field_text(&json!({"a": 1}), Format::Table), "map[a:1]");
        assert_eq!(field_text(&json!({"a": 1}), Format::Json), "{\n  \"a\": 1\n}");
        assert_eq!(field_text(&json!("raw"), Format::Json), "raw");
    }

    #[test]
    fn section_headers() {
        let m: Map<String, Value> = serde_json::from_value(json!({"a": 1, "b": 2})).unwrap();
        assert_eq!(header_for_map("Data", &m), "== Data ==");
        let m: Map<String, Value> = serde_json::from_value(json!({"custom_metadata": 1})).unwrap();
        assert_eq!(header_for_map("Metadata", &m), "======= Metadata =======");
        assert_eq!(pad_equal_signs("Secret Path", "secret/data/foo".len()), "= Secret Path =");
    }

    #[test]
    fn warnings_are_wrapped() {
        let s = json!({"warnings": ["short one"]});
        assert_eq!(
            warnings_block(&s).unwrap(),
            "WARNING! The following warnings were returned from Vault:\n\n  * short one\n"
        );
        assert!(warnings_block(&json!({"warnings": null})).is_none());
        let long = "word ".repeat(40);
        assert!(wrap_with_padding(&long, 2).lines().all(|l| l.len() <= 78));
    }
}
