//! `coffer auth enable|disable|list`: `sys/auth` as `vault auth` uses it.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::output::{self, Format};
use super::secrets::{mount_body, mount_map, mounts_table};
use super::{ensure_trailing_slash, parse_duration_flag, sanitize_path, BackendRequest};

/// `coffer auth` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Enable an auth method.
    Enable(EnableArgs),
    /// Disable an auth method (revokes the tokens it issued).
    Disable(super::secrets::PathArg),
    /// List the enabled auth methods.
    List(super::secrets::ListArgs),
}

/// Arguments of `auth enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// Mount path under auth/ (default: the type).
    #[arg(long)]
    pub path: Option<String>,
    /// Human-readable description.
    #[arg(long)]
    pub description: Option<String>,
    /// Method options as k=v (repeatable).
    #[arg(long = "options", value_name = "K=V")]
    pub options: Vec<String>,
    /// Default lease TTL of issued tokens (Go duration or seconds).
    #[arg(long, value_parser = parse_duration_flag)]
    pub default_lease_ttl: Option<i64>,
    /// Maximum lease TTL of issued tokens (Go duration or seconds).
    #[arg(long, value_parser = parse_duration_flag)]
    pub max_lease_ttl: Option<i64>,
    /// Do not replicate the mount to other clusters.
    #[arg(long)]
    pub local: bool,
    /// Auth method type (approle, userpass, ...).
    pub method_type: String,
}

/// Runs an auth subcommand.
pub async fn run(ctx: &BackendRequest, cmd: AuthCmd) -> anyhow::Result<u8> {
    let client = ctx.client()?;
    match cmd {
        AuthCmd::Enable(a) => {
            let path = ensure_trailing_slash(&sanitize_path(a.path.as_deref().unwrap_or(&a.method_type)));
            let body = mount_body(
                &a.method_type,
                a.description.as_deref(),
                &a.options,
                None,
                a.default_lease_ttl,
                a.max_lease_ttl,
                a.local,
                false,
            )?;
            client
                .write(&format!("sys/auth/{}", path.trim_end_matches('/')), &body)
                .await
                .context("Error enabling")?;
            outln!("Success! Enabled {} auth method at: {path}", a.method_type);
            Ok(0)
        }
        AuthCmd::Disable(a) => {
            let path = ensure_trailing_slash(&sanitize_path(&a.path));
            client
                .delete(&format!("sys/auth/{}", path.trim_end_matches('/')))
                .await
                .context("Error disabling auth method")?;
            outln!("Success! Disabled the auth method (if it existed) at: {path}");
            Ok(0)
        }
        AuthCmd::List(a) => {
            let resp = client
                .read("sys/auth")
                .await
                .context("Error listing enabled authentications")?
                .unwrap_or(Value::Null);
            let mounts = mount_map(&resp);
            match ctx.format() {
                Format::Json => outln!("{}", output::json_pretty(&Value::Object(mounts))),
                Format::Table => outln!("{}", mounts_table(&mounts, a.detailed, true)),
            }
            Ok(0)
        }
    }
}
