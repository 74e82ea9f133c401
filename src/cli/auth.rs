//! `coffer auth enable|disable|list`: `sys/auth` as `vault auth` uses it.

use clap::{Args, Subcommand};

use super::mounts::{self, enable_body, EntryFlags, ListArgs, MountTable, MountTuning, PathArg};
use super::Invocation;

/// `coffer auth` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Enable an auth method.
    Enable(EnableArgs),
    /// Disable an auth method (revokes the tokens it issued).
    Disable(PathArg),
    /// List the enabled auth methods.
    List(ListArgs),
}

/// Arguments of `auth enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    #[command(flatten)]
    pub entry: EntryFlags,
    #[command(flatten)]
    pub tuning: MountTuning,
    /// Auth method type (approle, userpass, ...).
    pub method_type: String,
}

/// Runs an auth subcommand.
pub async fn run(inv: &Invocation, cmd: AuthCmd) -> anyhow::Result<u8> {
    let client = inv.client()?;
    let table = MountTable::AuthMethods;
    match cmd {
        AuthCmd::Enable(a) => {
            let body = enable_body(&a.method_type, &a.entry, &a.tuning, None, false)?;
            mounts::enable(&client, table, &a.method_type, a.entry.path.as_deref(), &body).await
        }
        AuthCmd::Disable(a) => mounts::disable(&client, table, &a.path).await,
        AuthCmd::List(a) => mounts::list(inv, &client, table, a.detailed).await,
    }
}
