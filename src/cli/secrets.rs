//! `coffer secrets enable|disable|list|tune`: `sys/mounts` as `vault secrets` uses it.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::mounts::{self, enable_body, options_map, EntryFlags, ListArgs, MountTable, MountTuning, PathArg};
use super::Invocation;

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
    #[command(flatten)]
    pub entry: EntryFlags,
    /// KV version (1 or 2); same as -options=version=N.
    #[arg(long)]
    pub version: Option<u32>,
    #[command(flatten)]
    pub tuning: MountTuning,
    /// Seal-wrap the engine's critical values.
    #[arg(long)]
    pub seal_wrap: bool,
    /// Engine type (kv, transit, ...).
    pub plugin_type: String,
}

/// Arguments of `secrets tune`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// New description.
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub tuning: MountTuning,
    /// KV version (upgrade 1 → 2).
    #[arg(long)]
    pub version: Option<u32>,
    /// Mount path.
    pub path: String,
}

/// Runs a secrets subcommand.
pub async fn run(inv: &Invocation, cmd: SecretsCmd) -> anyhow::Result<u8> {
    let client = inv.client()?;
    let table = MountTable::SecretsEngines;
    match cmd {
        SecretsCmd::Enable(a) => {
            let body = enable_body(&a.plugin_type, &a.entry, &a.tuning, a.version, a.seal_wrap)?;
            mounts::enable(&client, table, &a.plugin_type, a.entry.path.as_deref(), &body).await
        }
        SecretsCmd::Disable(a) => mounts::disable(&client, table, &a.path).await,
        SecretsCmd::List(a) => mounts::list(inv, &client, table, a.detailed).await,
        SecretsCmd::Tune(a) => {
            let path = mounts::mount_path(&a.path);
            let mut body = Map::new();
            if let Some(d) = a.description {
                body.insert("description".into(), json!(d));
            }
            body.extend(a.tuning.lease_ttls());
            let opts = options_map(&a.tuning.options, a.version)?;
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
