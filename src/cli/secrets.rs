//! `coffer secrets enable|disable|list|tune`: `sys/mounts` as `vault secrets` uses it.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::output::{self, Format};
use super::{duration_to_api, ensure_trailing_slash, parse_duration_flag, sanitize_path, BackendRequest};

/// `coffer secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCmd {
    /// Enable a secrets engine.
    Enable(EnableArgs),
    /// Disable a secrets engine (deletes all its data).
    Disable(PathArg),
    /// List the enabled secrets engines.
    List(ListArgs),
    /// Change a secrets engine's settings.
    Tune(TuneArgs),
}

/// Arguments of `secrets enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// Mount path (default: the type).
    #[arg(long)]
    pub path: Option<String>,
    /// Human-readable description.
    #[arg(long)]
    pub description: Option<String>,
    /// KV version (1 or 2); same as -options=version=N.
    #[arg(long)]
    pub version: Option<u32>,
    /// Engine options as k=v (repeatable).
    #[arg(long = "options", value_name = "K=V")]
    pub options: Vec<String>,
    /// Default lease TTL (Go duration or seconds).
    #[arg(long, value_parser = parse_duration_flag)]
    pub default_lease_ttl: Option<i64>,
    /// Maximum lease TTL (Go duration or seconds).
    #[arg(long, value_parser = parse_duration_flag)]
    pub max_lease_ttl: Option<i64>,
    /// Do not replicate the mount to other clusters.
    #[arg(long)]
    pub local: bool,
    /// Seal-wrap the engine's critical values.
    #[arg(long)]
    pub seal_wrap: bool,
    /// Engine type (kv, transit, ...).
    pub plugin_type: String,
}

/// A mount path argument.
#[derive(Debug, Args)]
pub struct PathArg {
    /// Mount path.
    pub path: String,
}

/// Arguments of `secrets list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Show every column.
    #[arg(long)]
    pub detailed: bool,
}

/// Arguments of `secrets tune`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// New description.
    #[arg(long)]
    pub description: Option<String>,
    /// Default lease TTL (Go duration or seconds).
    #[arg(long, value_parser = parse_duration_flag)]
    pub default_lease_ttl: Option<i64>,
    /// Maximum lease TTL (Go duration or seconds).
    #[arg(long, value_parser = parse_duration_flag)]
    pub max_lease_ttl: Option<i64>,
    /// Engine options as k=v (repeatable).
    #[arg(long = "options", value_name = "K=V")]
    pub options: Vec<String>,
    /// KV version (upgrade 1 → 2).
    #[arg(long)]
    pub version: Option<u32>,
    /// Mount path.
    pub path: String,
}

/// Runs a secrets subcommand.
pub async fn run(ctx: &BackendRequest, cmd: SecretsCmd) -> anyhow::Result<u8> {
    let client = ctx.client()?;
    match cmd {
        SecretsCmd::Enable(a) => {
            let path = ensure_trailing_slash(&sanitize_path(a.path.as_deref().unwrap_or(&a.plugin_type)));
            let body = mount_body(
                &a.plugin_type,
                a.description.as_deref(),
                &a.options,
                a.version,
                a.default_lease_ttl,
                a.max_lease_ttl,
                a.local,
                a.seal_wrap,
            )?;
            client
                .write(&format!("sys/mounts/{}", path.trim_end_matches('/')), &body)
                .await
                .context("Error enabling")?;
            outln!("Success! Enabled the {} secrets engine at: {path}", a.plugin_type);
            Ok(0)
        }
        SecretsCmd::Disable(a) => {
            let path = ensure_trailing_slash(&sanitize_path(&a.path));
            client
                .delete(&format!("sys/mounts/{}", path.trim_end_matches('/')))
                .await
                .context("Error disabling secrets engine")?;
            outln!("Success! Disabled the secrets engine (if it existed) at: {path}");
            Ok(0)
        }
        SecretsCmd::List(a) => {
            let resp = client
                .read("sys/mounts")
                .await
                .context("Error listing secrets engines")?
                .unwrap_or(Value::Null);
            let mounts = mount_map(&resp);
            match ctx.format() {
                Format::Json => outln!("{}", output::json_pretty(&Value::Object(mounts))),
                Format::Table => outln!("{}", mounts_table(&mounts, a.detailed, false)),
            }
            Ok(0)
        }
        SecretsCmd::Tune(a) => {
            let path = ensure_trailing_slash(&sanitize_path(&a.path));
            let mut body = Map::new();
            if let Some(d) = a.description {
                body.insert("description".into(), json!(d));
            }
            if let Some(t) = a.default_lease_ttl {
                body.insert("default_lease_ttl".into(), json!(duration_to_api(t)));
            }
            if let Some(t) = a.max_lease_ttl {
                body.insert("max_lease_ttl".into(), json!(duration_to_api(t)));
            }
            let opts = options_map(&a.options, a.version)?;
            if !opts.is_empty() {
                body.insert("options".into(), Value::Object(opts));
            }
            client
                .write(&format!("sys/mounts/{}/tune", path.trim_end_matches('/')), &Value::Object(body))
                .await
                .context("Error tuning secrets engine")?;
            outln!("Success! Tuned the secrets engine at: {path}");
            Ok(0)
        }
    }
}

/// `-options=k=v` flags plus `-version` as a JSON object of strings.
pub fn options_map(options: &[String], version: Option<u32>) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for o in options {
        let Some((k, v)) = o.split_once('=') else {
            return Err(super::usage(format!("invalid option \"{o}\": format must be key=value")));
        };
        m.insert(k.to_owned(), json!(v));
    }
    if let Some(v) = version {
        m.insert("version".into(), json!(v.to_string()));
    }
    Ok(m)
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
    let mut config = Map::new();
    if let Some(t) = default_lease_ttl {
        config.insert("default_lease_ttl".into(), json!(duration_to_api(t)));
    }
    if let Some(t) = max_lease_ttl {
        config.insert("max_lease_ttl".into(), json!(duration_to_api(t)));
    }
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
