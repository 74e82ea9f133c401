//! What `coffer secrets`, `coffer auth` and `coffer audit` share: their three tables
//! (`sys/mounts`, `sys/auth`, `sys/audit`) are enabled, disabled and listed the same way, with
//! the Vault CLI's messages for each, and secrets engines and auth methods take the same body.

use anyhow::Context;
use clap::Args;
use serde_json::{json, Map, Value};

use super::output::{self, Format};
use super::{data, duration_to_api, ensure_trailing_slash, parse_duration_flag, sanitize_path, Invocation};
use crate::client::Client;

/// A mount path argument.
#[derive(Debug, Args)]
pub struct PathArg {
    /// Mount path.
    pub path: String,
}

/// The table entry every `enable` makes: where, described how, replicated or not.
#[derive(Debug, Args)]
pub struct EntryFlags {
    /// Path of the new entry (default: the type).
    #[arg(long)]
    pub path: Option<String>,
    /// Human-readable description.
    #[arg(long)]
    pub description: Option<String>,
    /// Do not replicate the entry to other clusters.
    #[arg(long)]
    pub local: bool,
}

/// Settings of a secrets engine or auth method, given at `enable` (and `secrets tune`).
#[derive(Debug, Args)]
pub struct MountTuning {
    /// Options as k=v (repeatable).
    #[arg(long = "options", value_name = "K=V")]
    pub options: Vec<String>,
    /// Default lease TTL (Go duration or seconds).
    #[arg(long, value_parser = parse_duration_flag)]
    pub default_lease_ttl: Option<i64>,
    /// Maximum lease TTL (Go duration or seconds).
    #[arg(long, value_parser = parse_duration_flag)]
    pub max_lease_ttl: Option<i64>,
}

impl MountTuning {
    /// The lease TTLs as the API takes them ([`lease_ttls`]).
    pub fn lease_ttls(&self) -> Map<String, Value> {
        lease_ttls(self.default_lease_ttl, self.max_lease_ttl)
    }
}

/// Arguments of `secrets list`, `auth list` and `audit list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Show every column.
    #[arg(long)]
    pub detailed: bool,
}

/// One of the three tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountTable {
    AuditDevices,
    AuthMethods,
    SecretsEngines,
}

impl MountTable {
    /// The API path of the table.
    pub fn api_path(self) -> &'static str {
        match self {
            MountTable::AuditDevices => "sys/audit",
            MountTable::AuthMethods => "sys/auth",
            MountTable::SecretsEngines => "sys/mounts",
        }
    }

    fn enable_failed(self) -> &'static str {
        match self {
            MountTable::AuditDevices => "Error enabling audit device",
            MountTable::AuthMethods | MountTable::SecretsEngines => "Error enabling",
        }
    }

    fn enabled(self, kind: &str, path: &str) -> String {
        match self {
            MountTable::AuditDevices => format!("Success! Enabled the {kind} audit device at: {path}"),
            MountTable::AuthMethods => format!("Success! Enabled {kind} auth method at: {path}"),
            MountTable::SecretsEngines => format!("Success! Enabled the {kind} secrets engine at: {path}"),
        }
    }

    fn disable_failed(self) -> &'static str {
        match self {
            MountTable::AuditDevices => "Error disabling audit device",
            MountTable::AuthMethods => "Error disabling auth method",
            MountTable::SecretsEngines => "Error disabling secrets engine",
        }
    }

    fn disabled(self, path: &str) -> String {
        match self {
            MountTable::AuditDevices => {
                format!("Success! Disabled audit device (if it was enabled) at: {path}")
            }
            MountTable::AuthMethods => {
                format!("Success! Disabled the auth method (if it existed) at: {path}")
            }
            MountTable::SecretsEngines => {
                format!("Success! Disabled the secrets engine (if it existed) at: {path}")
            }
        }
    }

    fn list_failed(self) -> &'static str {
        match self {
            MountTable::AuditDevices => "Error listing audits",
            MountTable::AuthMethods => "Error listing enabled authentications",
            MountTable::SecretsEngines => "Error listing secrets engines",
        }
    }
}

/// A mount path as the CLI sends it: no surrounding slashes or spaces, one trailing slash.
pub fn mount_path(path: &str) -> String {
    ensure_trailing_slash(&sanitize_path(path))
}

/// `PUT <table>/<path>` (the path defaults to the type), then the success message.
pub async fn enable(
    client: &Client,
    table: MountTable,
    kind: &str,
    path: Option<&str>,
    body: &Value,
) -> anyhow::Result<u8> {
    let path = mount_path(path.unwrap_or(kind));
    let api_path = format!("{}/{}", table.api_path(), path.trim_end_matches('/'));
    client.write(&api_path, body).await.context(table.enable_failed())?;
    outln!("{}", table.enabled(kind, &path));
    Ok(0)
}

/// `DELETE <table>/<path>`, then the success message (also when nothing was there).
pub async fn disable(client: &Client, table: MountTable, path: &str) -> anyhow::Result<u8> {
    let path = mount_path(path);
    let api_path = format!("{}/{}", table.api_path(), path.trim_end_matches('/'));
    client.delete(&api_path).await.context(table.disable_failed())?;
    outln!("{}", table.disabled(&path));
    Ok(0)
}

/// `secrets list` / `auth list`: the entries as JSON, or the Vault CLI's table.
pub async fn list(
    inv: &Invocation,
    client: &Client,
    table: MountTable,
    detailed: bool,
) -> anyhow::Result<u8> {
    let mounts = read_table(client, table).await?;
    match inv.format() {
        Format::Json => outln!("{}", output::json_pretty(&Value::Object(mounts))),
        Format::Table => outln!("{}", mounts_table(&mounts, detailed, table == MountTable::AuthMethods)),
    }
    Ok(0)
}

/// The table's entries by path.
pub async fn read_table(client: &Client, table: MountTable) -> anyhow::Result<Map<String, Value>> {
    let resp = client.read(table.api_path()).await.context(table.list_failed())?.unwrap_or(Value::Null);
    Ok(mount_map(&resp))
}

/// The mounts of a `sys/mounts` / `sys/auth` / `sys/audit` response: `data`, or the
/// top-level keys ending in `/` for servers that only inject them there.
pub fn mount_map(resp: &Value) -> Map<String, Value> {
    if let Some(d) = resp.get("data").and_then(Value::as_object) {
        return d.clone();
    }
    resp.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| k.ends_with('/') && v.is_object())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// `-options=k=v` flags plus `-version` as a JSON object of strings.
pub fn options_map(options: &[String], version: Option<u32>) -> anyhow::Result<Map<String, Value>> {
    let mut m = data::flag_map(options, "option")?;
    if let Some(v) = version {
        m.insert("version".into(), json!(v.to_string()));
    }
    Ok(m)
}

/// The body of `POST sys/mounts/<p>` or `sys/auth/<p>`, as the Vault CLI builds it, from the
/// flags of `secrets enable` / `auth enable`.
pub fn enable_body(
    kind: &str,
    entry: &EntryFlags,
    tuning: &MountTuning,
    version: Option<u32>,
    seal_wrap: bool,
) -> anyhow::Result<Value> {
    mount_body(
        kind,
        entry.description.as_deref(),
        &tuning.options,
        version,
        tuning.default_lease_ttl,
        tuning.max_lease_ttl,
        entry.local,
        seal_wrap,
    )
}

/// `default_lease_ttl` / `max_lease_ttl` as the API takes them (Go durations), when given.
pub fn lease_ttls(default_lease_ttl: Option<i64>, max_lease_ttl: Option<i64>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(t) = default_lease_ttl {
        m.insert("default_lease_ttl".into(), json!(duration_to_api(t)));
    }
    if let Some(t) = max_lease_ttl {
        m.insert("max_lease_ttl".into(), json!(duration_to_api(t)));
    }
    m
}

/// The body of `POST sys/mounts/<p>` or `sys/auth/<p>`, as the Vault CLI builds it.
pub fn mount_body(
    kind: &str,
    description: Option<&str>,
    options: &[String],
    version: Option<u32>,
    default_lease_ttl: Option<i64>,
    max_lease_ttl: Option<i64>,
    local: bool,
    seal_wrap: bool,
) -> anyhow::Result<Value> {
    let mut config = lease_ttls(default_lease_ttl, max_lease_ttl);
    config.insert("force_no_cache".into(), json!(false));
    let mut body = json!({
        "type": kind,
        "description": description.unwrap_or(""),
        "config": config,
        "local": local,
        "seal_wrap": seal_wrap,
        "external_entropy_access": false,
    });
    let opts = options_map(options, version)?;
    if !opts.is_empty() {
        body["options"] = Value::Object(opts);
    }
    Ok(body)
}

/// The `secrets list` / `auth list` table (`auth` adds the Version column and token type).
pub fn mounts_table(mounts: &Map<String, Value>, detailed: bool, auth: bool) -> String {
    let mut paths: Vec<&String> = mounts.keys().collect();
    paths.sort();
    let s = |m: &Value, k: &str| m.get(k).map(output::go_value).unwrap_or_default();
    let cfg = |m: &Value, k: &str| m.get("config").and_then(|c| c.get(k)).cloned().unwrap_or(Value::Null);
    if !detailed {
        let mut header = vec!["Path", "Type", "Accessor", "Description"];
        if auth {
            header.push("Version");
        }
        let rows = paths
            .iter()
            .map(|p| {
                let m = &mounts[*p];
                let mut r = vec![(*p).clone(), s(m, "type"), s(m, "accessor"), s(m, "description")];
                if auth {
                    r.push(s(m, "plugin_version"));
                }
                r
            })
            .collect();
        return output::table(&header, rows);
    }
    let mut header = vec!["Path", "Plugin", "Accessor", "Default TTL", "Max TTL"];
    if auth {
        header.push("Token Type");
    } else {
        header.push("Force No Cache");
    }
    header.extend([
        "Replication",
        "Seal Wrap",
        "External Entropy Access",
        "Options",
        "Description",
        "UUID",
        "Version",
        "Running Version",
        "Running SHA256",
        "Deprecation Status",
    ]);
    let rows = paths
        .iter()
        .map(|p| {
            let m = &mounts[*p];
            let kind = s(m, "type");
            let ttl = |k: &str| {
                if !auth && (kind == "system" || kind == "cubbyhole") {
                    return "n/a".to_owned();
                }
                match cfg(m, k).as_i64() {
                    Some(0) | None => "system".to_owned(),
                    Some(n) => n.to_string(),
                }
            };
            let plugin =
                m.get("plugin_name").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_owned);
            let mut r = vec![
                (*p).clone(),
                plugin.unwrap_or_else(|| kind.clone()),
                s(m, "accessor"),
                ttl("default_lease_ttl"),
                ttl("max_lease_ttl"),
            ];
            if auth {
                r.push(output::go_value(&cfg(m, "token_type")));
            } else {
                r.push(output::go_value(&cfg(m, "force_no_cache")).replace("<nil>", "false"));
            }
            let local = m.get("local").and_then(Value::as_bool).unwrap_or(false);
            r.push(if local { "local" } else { "replicated" }.into());
            r.push(m.get("seal_wrap").and_then(Value::as_bool).unwrap_or(false).to_string());
            r.push(m.get("external_entropy_access").and_then(Value::as_bool).unwrap_or(false).to_string());
            r.push(match m.get("options") {
                Some(Value::Null) | None => "map[]".into(),
                Some(o) => output::go_value(o),
            });
            for k in [
                "description",
                "uuid",
                "plugin_version",
                "running_plugin_version",
                "running_sha256",
                "deprecation_status",
            ] {
                r.push(s(m, k));
            }
            r
        })
        .collect();
    output::table(&header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_body_like_vault() {
        let b =
            mount_body("kv", Some("d"), &["a=b".into()], Some(2), Some(3600), None, false, false).unwrap();
        assert_eq!(
            b,
            json!({"type": "kv", "description": "d", "config": {"default_lease_ttl": "1h0m0s", "force_no_cache": false},
                   "local": false, "seal_wrap": false, "external_entropy_access": false,
                   "options": {"a": "b", "version": "2"}})
        );
        assert!(mount_body("kv", None, &["novalue".into()], None, None, None, false, false).is_err());
    }

    #[test]
    fn list_table() {
        let mounts = json!({"data": {
            "sys/": {"type": "system", "accessor": "system_1", "description": "system endpoints", "config": {"default_lease_ttl": 0}},
            "kv/": {"type": "kv", "accessor": "kv_1", "description": "", "options": {"version": "2"},
                    "config": {"default_lease_ttl": 3600, "max_lease_ttl": 0}, "local": false, "uuid": "u"}}});
        let m = mount_map(&mounts);
        assert_eq!(
            mounts_table(&m, false, false),
            "Path    Type      Accessor    Description\n----    ----      --------    -----------\nkv/     kv        kv_1        n/a\nsys/    system    system_1    system endpoints"
        );
        let d = mounts_table(&m, true, false);
        assert!(
            d.lines().nth(2).unwrap().starts_with("kv/     kv        kv_1        3600           system"),
            "{d}"
        );
        assert!(d.contains("map[version:2]"));
        // Top-level injection only (no data).
        let top = json!({"kv/": {"type": "kv"}, "request_id": "r"});
        assert_eq!(mount_map(&top).len(), 1);
    }
}
