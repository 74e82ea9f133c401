//! `coffer audit enable|list|disable`: `sys/audit` as `vault audit` uses it.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::mounts::{self, EntryFlags, ListArgs, MountTable, PathArg};
use super::output::{self, Format};
use super::{data, Exit, Invocation};

/// `coffer audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Enable an audit device.
    Enable(EnableArgs),
    /// List the enabled audit devices.
    List(ListArgs),
    /// Disable an audit device.
    Disable(PathArg),
    /// Have the server verify an audit log (exit 0 intact, 1 tampered); -offline checks
    /// the file's structure only.
    Verify(VerifyArgs),
}

/// Arguments of `audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Check only that the lines parse and link to each other, without the server. This
    /// proves nothing about tampering: anyone can write a file that passes.
    #[arg(long)]
    pub offline: bool,
    /// The device whose file to verify (default: the device whose file_path is FILE).
    #[arg(long, value_name = "PATH")]
    pub device: Option<String>,
    /// With -offline: the device's line prefix, if it has one.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// The audit log file.
    pub file: std::path::PathBuf,
}

/// `coffer audit verify -offline FILE`: structure only, said plainly.
fn verify_offline(a: &VerifyArgs) -> anyhow::Result<u8> {
    let f =
        std::fs::File::open(&a.file).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", a.file.display()))?;
    let r = crate::audit::verify::verify_structure(std::io::BufReader::new(f), &a.prefix)?;
    let name = a.file.display();
    match r.first_error {
        None => {
            let range = match (r.first_seq, r.last_seq) {
                (Some(f), Some(l)) => format!(", sequences {f}..={l}"),
                _ => String::new(),
            };
            outln!("{name}: structure intact: {} line(s){range}.", r.lines);
            outln!(
                "STRUCTURE ONLY: the lines parse and link to each other as written, but their MACs were NOT checked \
(that needs the device's chain key, which only the server has). A line edited together with its chain fields, \
removed lines at the end, or a rewritten file are not detected by this check. Run `coffer audit verify {name}` \
against the server for a real verification."
            );
            Ok(0)
        }
        Some((line, msg)) => {
            outln!("{name}: BROKEN at line {line}: {msg}");
            outln!("(structure-only check; run `coffer audit verify {name}` against the server for the full verification)");
            Ok(1)
        }
    }
}

/// The device whose `file_path` is `file` (compared as given and canonicalized).
fn device_for_file(devices: &serde_json::Map<String, Value>, file: &std::path::Path) -> Option<String> {
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    let want = canon(file);
    devices.iter().find_map(|(path, d)| {
        let opts = d.get("options")?;
        let f = opts.get("file_path").or_else(|| opts.get("path"))?.as_str()?;
        let f = std::path::Path::new(f);
        (f == file || (want.is_some() && canon(f) == want)).then(|| path.clone())
    })
}

/// `coffer audit verify FILE`: the server verifies its own device's file.
async fn verify(inv: &Invocation, a: &VerifyArgs) -> anyhow::Result<u8> {
    let client = inv.client()?;
    let device = match &a.device {
        Some(d) => mounts::mount_path(d),
        None => {
            let devices = mounts::read_table(&client, MountTable::AuditDevices).await?;
            device_for_file(&devices, &a.file).ok_or_else(|| Exit {
                code: 2,
                message: format!(
                    "No audit device of this server writes to {}. The server verifies only its own devices' files \
(name one with -device); -offline checks a file's structure without the server.",
                    a.file.display()
                ),
            })?
        }
    };
    let resp = client
        .read(&format!("sys/audit-verify/{}", device.trim_end_matches('/')))
        .await
        .context("Error verifying the audit log")?
        .unwrap_or(Value::Null);
    let data = resp.get("data").cloned().unwrap_or(Value::Null);
    if inv.format() == Format::Json {
        outln!("{}", output::json_pretty(&data));
    }
    let intact = data.get("intact").and_then(Value::as_bool).unwrap_or(false);
    let file = data.get("file_path").and_then(Value::as_str).unwrap_or_default().to_owned();
    let n = |k: &str| data.get(k).and_then(Value::as_u64);
    if inv.format() != Format::Json {
        let range = match (n("first_sequence"), n("last_sequence")) {
            (Some(f), Some(l)) => format!(", sequences {f}..={l}"),
            _ => String::new(),
        };
        if intact {
            outln!(
                "{file}: intact: {} line(s){range} verified under device {device}'s chain key, up to the server's chain head",
                n("lines").unwrap_or(0)
            );
        } else {
            let p = data.get("problem").cloned().unwrap_or(Value::Null);
            let kind =
                p.get("kind").and_then(Value::as_str).unwrap_or("altered").to_uppercase().replace('_', " ");
            let line = p.get("line").and_then(Value::as_u64).unwrap_or(0);
            let msg = p.get("message").and_then(Value::as_str).unwrap_or_default();
            outln!("{file}: TAMPERED ({kind}) at line {line}: {msg}");
        }
        if let Some(skipped) = n("skipped_bytes").filter(|b| *b > 0) {
            outln!("note: the first {skipped} byte(s) of the file precede this device's chain and were not checked");
        }
        for e in data.get("earlier_segments").and_then(Value::as_array).into_iter().flatten() {
            outln!(
                "note: sequences {}..={} were written to {} and are not in this file: {} (noticed {})",
                e.get("first_sequence").and_then(Value::as_u64).unwrap_or(0),
                e.get("last_sequence").and_then(Value::as_u64).unwrap_or(0),
                e.get("file").and_then(Value::as_str).unwrap_or_default(),
                e.get("reason").and_then(Value::as_str).unwrap_or_default(),
                e.get("noticed").and_then(Value::as_str).unwrap_or_default(),
            );
        }
    }
    Ok(if intact { 0 } else { 1 })
}

/// Arguments of `audit enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    #[command(flatten)]
    pub entry: EntryFlags,
    /// Device type (file, socket, syslog).
    pub device_type: String,
    /// Device options as k=v (file_path=/var/log/audit.log).
    pub options: Vec<String>,
}

/// Runs an audit subcommand.
pub async fn run(inv: &Invocation, cmd: AuditCmd) -> anyhow::Result<u8> {
    if let AuditCmd::Verify(a) = &cmd {
        return if a.offline { verify_offline(a) } else { verify(inv, a).await };
    }
    let client = inv.client()?;
    match cmd {
        AuditCmd::Verify(a) => verify(inv, &a).await,
        AuditCmd::Enable(a) => {
            let body = json!({
                "type": a.device_type,
                "description": a.entry.description.unwrap_or_default(),
                "options": data::parse_args(&a.options)?,
                "local": a.entry.local,
            });
            let path = a.entry.path.as_deref();
            mounts::enable(&client, MountTable::AuditDevices, &a.device_type, path, &body).await
        }
        AuditCmd::Disable(a) => mounts::disable(&client, MountTable::AuditDevices, &a.path).await,
        AuditCmd::List(a) => {
            let devices = mounts::read_table(&client, MountTable::AuditDevices).await?;
            if inv.format() == Format::Json {
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
