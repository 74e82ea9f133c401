//! `coffer audit enable|list|disable`: `sys/audit` as `vault audit` uses it.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::output::{self, Format};
use super::secrets::mount_map;
use super::{data, ensure_trailing_slash, sanitize_path, usage, Ctx, Exit};

/// `coffer audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Enable an audit device.
    Enable(EnableArgs),
    /// List the enabled audit devices.
    List(super::secrets::ListArgs),
    /// Disable an audit device.
    Disable(super::secrets::PathArg),
    /// Check the hash chain of an audit log file (exit 0 intact, 1 tampered).
    Verify(VerifyArgs),
}

/// Arguments of `audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The device's line prefix, if it was configured with one.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// The audit log file.
    pub file: std::path::PathBuf,
}

/// `coffer audit verify FILE`: works offline, on the file alone.
pub fn verify(a: &VerifyArgs) -> anyhow::Result<u8> {
    let f =
        std::fs::File::open(&a.file).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", a.file.display()))?;
    let report = crate::audit::verify(std::io::BufReader::new(f), &a.prefix)?;
    match report.first_error {
        None => {
            println!("{}: {} line(s) in {} chain(s), intact", a.file.display(), report.lines, report.chains);
            Ok(0)
        }
        Some((line, msg)) => {
            println!("{}: TAMPERED at line {line}: {msg}", a.file.display());
            Ok(1)
        }
    }
}

/// Arguments of `audit enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// Device path (default: the type).
    #[arg(long)]
    pub path: Option<String>,
    /// Human-readable description.
    #[arg(long)]
    pub description: Option<String>,
    /// Do not replicate the device to other clusters.
    #[arg(long)]
    pub local: bool,
    /// Device type (file, socket, syslog).
    pub device_type: String,
    /// Device options as k=v (file_path=/var/log/audit.log).
    pub options: Vec<String>,
}

/// Runs an audit subcommand.
pub async fn run(ctx: &Ctx, cmd: AuditCmd) -> anyhow::Result<u8> {
    if let AuditCmd::Verify(a) = &cmd {
        return verify(a);
    }
    let client = ctx.client()?;
    match cmd {
        AuditCmd::Verify(a) => verify(&a),
        AuditCmd::Enable(a) => {
            let path = ensure_trailing_slash(&sanitize_path(a.path.as_deref().unwrap_or(&a.device_type)));
            let opts = data::parse(&a.options, &mut std::io::stdin())
                .map_err(|e| usage(format!("Failed to parse K=V data: {e:#}")))?;
            let body = json!({
                "type": a.device_type,
                "description": a.description.unwrap_or_default(),
                "options": opts,
                "local": a.local,
            });
            client
                .write(&format!("sys/audit/{}", path.trim_end_matches('/')), &body)
                .await
                .context("Error enabling audit device")?;
            outln!("Success! Enabled the {} audit device at: {path}", a.device_type);
            Ok(0)
        }
        AuditCmd::Disable(a) => {
            let path = ensure_trailing_slash(&sanitize_path(&a.path));
            client
                .delete(&format!("sys/audit/{}", path.trim_end_matches('/')))
                .await
                .context("Error disabling audit device")?;
            outln!("Success! Disabled audit device (if it was enabled) at: {path}");
            Ok(0)
        }
        AuditCmd::List(a) => {
            let resp = client.read("sys/audit").await.context("Error listing audits")?.unwrap_or(Value::Null);
            let devices = mount_map(&resp);
            if ctx.format() == Format::Json {
                outln!("{}", output::json_pretty(&Value::Object(devices)));
                return Ok(0);
            }
            if devices.is_empty() {
                return Err(Exit { code: 2, message: "No audit devices are enabled.".into() }.into());
            }
            let mut paths: Vec<&String> = devices.keys().collect();
            paths.sort();
            let s = |m: &Value, k: &str| m.get(k).map(output::go_value).unwrap_or_default();
            let rows = paths
                .iter()
                .map(|p| {
                    let m = &devices[*p];
                    let mut r = vec![(*p).clone(), s(m, "type"), s(m, "description")];
                    if a.detailed {
                        let local = m.get("local").and_then(Value::as_bool).unwrap_or(false);
                        r.push(if local { "local" } else { "replicated" }.into());
                        r.push(s(m, "options"));
                    }
                    r
                })
                .collect();
            let header: &[&str] = if a.detailed {
                &["Path", "Type", "Description", "Replication", "Options"]
            } else {
                &["Path", "Type", "Description"]
            };
            outln!("{}", output::table(header, rows));
            Ok(0)
        }
    }
}
