//! `coffer operator raft ...`: list-peers, join, remove-peer, snapshot save|restore, as
//! `vault operator raft` calls them (`sys/storage/raft/configuration`, `join`, `remove-peer`,
//! `snapshot`, `snapshot-force`). Works against coffer, Vault and OpenBao.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::{get, put};
use crate::cli::output::{self, Format};
use crate::cli::{print_data, print_secret, usage, Invocation};
use crate::client::Client;

/// `coffer operator raft` subcommands.
#[derive(Debug, Subcommand)]
pub enum RaftCmd {
    /// List the cluster's members: node name, cluster address, leader or follower, voter.
    ListPeers,
    /// Join this (uninitialised) node to the cluster led by LEADER_API_ADDR; unseal it with
    /// the cluster's keys afterwards.
    Join(JoinArgs),
    /// Remove a node from the cluster by its node id.
    RemovePeer(RemovePeerArgs),
    /// Save or restore a snapshot of the cluster's data.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
}

/// Arguments of `operator raft join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// CA certificate (PEM, or `@FILE`) to verify the leader's API certificate.
    #[arg(long, value_name = "PEM|@FILE")]
    pub leader_ca_cert: Option<String>,
    /// Join as a non-voter.
    #[arg(long)]
    pub non_voter: bool,
    /// Keep retrying in the background until the join succeeds.
    #[arg(long)]
    pub retry: bool,
    /// The leader's API address (`https://10.0.0.1:8200`).
    pub leader_api_addr: String,
}

/// Arguments of `operator raft remove-peer`.
#[derive(Debug, Args)]
pub struct RemovePeerArgs {
    /// The node id (`node_id` in the node's `storage "raft"` block) to remove.
    pub server_id: String,
}

/// `coffer operator raft snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Save a snapshot (a gzip archive) to FILE.
    Save {
        /// Where to write the snapshot (created with mode 0600).
        file: PathBuf,
    },
    /// Restore the cluster's data from a snapshot FILE.
    Restore {
        /// Restore a snapshot taken on a cluster with other unseal keys.
        #[arg(long)]
        force: bool,
        /// The snapshot to restore.
        file: PathBuf,
    },
}

/// Runs an `operator raft` subcommand.
pub async fn run(inv: &Invocation, client: &Client, cmd: RaftCmd) -> anyhow::Result<u8> {
    match cmd {
        RaftCmd::ListPeers => list_peers(inv, client).await,
        RaftCmd::Join(a) => join(inv, client, a).await,
        RaftCmd::RemovePeer(a) => {
            if a.server_id.trim().is_empty() {
                return Err(usage("the node id to remove must not be empty"));
            }
            put(client, "sys/storage/raft/remove-peer", Some(&json!({"server_id": a.server_id})))
                .await
                .context("Error removing the peer from raft")?;
            outln!("Peer removed successfully!");
            Ok(0)
        }
        RaftCmd::Snapshot(SnapshotCmd::Save { file }) => {
            let bytes = client
                .send_bytes(Method::GET, "sys/storage/raft/snapshot", None)
                .await
                .context("Error taking the snapshot")?;
            write_private(&file, &bytes).with_context(|| format!("Error writing {}", file.display()))?;
            Ok(0)
        }
        RaftCmd::Snapshot(SnapshotCmd::Restore { force, file }) => {
            let bytes = std::fs::read(&file).with_context(|| format!("Error reading {}", file.display()))?;
            let path = if force { "sys/storage/raft/snapshot-force" } else { "sys/storage/raft/snapshot" };
            client
                .send_bytes(Method::POST, path, Some(bytes))
                .await
                .context("Error installing the snapshot")?;
            Ok(0)
        }
    }
}

async fn list_peers(inv: &Invocation, client: &Client) -> anyhow::Result<u8> {
    let secret = get(client, "sys/storage/raft/configuration")
        .await
        .context("Error reading the raft cluster configuration")?;
    if inv.format() == Format::Json {
        return print_secret(inv, &secret, None);
    }
    outln!("{}", peers_table(&secret));
    Ok(0)
}

/// `Node  Address  State  Voter` rows from a `sys/storage/raft/configuration` answer.
pub fn peers_table(secret: &Value) -> String {
    let servers =
        secret.pointer("/data/config/servers").and_then(Value::as_array).cloned().unwrap_or_default();
    let rows = servers
        .iter()
        .map(|s| {
            let text = |k: &str| s.get(k).map(output::go_value).unwrap_or_default();
            let leader = s.get("leader").and_then(Value::as_bool).unwrap_or(false);
            vec![
                text("node_id"),
                text("address"),
                if leader { "leader" } else { "follower" }.to_owned(),
                text("voter"),
            ]
        })
        .collect();
    output::table(&["Node", "Address", "State", "Voter"], rows)
}

async fn join(inv: &Invocation, client: &Client, a: JoinArgs) -> anyhow::Result<u8> {
    let leader_ca_cert = match a.leader_ca_cert.as_deref() {
        Some(v) => match v.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path).with_context(|| format!("Error reading {path}"))?,
            None => v.to_owned(),
        },
        None => String::new(),
    };
    let body = json!({
        "leader_api_addr": a.leader_api_addr,
        "leader_ca_cert": leader_ca_cert,
        "non_voter": a.non_voter,
        "retry": a.retry,
    });
    let resp = put(client, "sys/storage/raft/join", Some(&body))
        .await
        .context("Error joining the node to the Raft cluster")?;
    let joined = resp.get("joined").cloned().unwrap_or(Value::Bool(false));
    match inv.format() {
        Format::Json => print_data(inv, &json!({ "joined": joined })),
        Format::Table => {
            outln!(
                "{}",
                output::table(&["Key", "Value"], vec![vec!["Joined".into(), output::go_value(&joined)]])
            )
        }
    }
    Ok(0)
}

/// Writes `bytes` to a new or truncated file readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_table_shows_leader_and_followers() {
        let secret = json!({"data": {"config": {"index": 0, "servers": [
            {"node_id": "node1", "address": "127.0.0.1:8201", "leader": true, "voter": true},
            {"node_id": "node2", "address": "127.0.0.1:8203", "leader": false, "voter": false},
        ]}}});
        let text = peers_table(&secret);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["Node", "Address", "State", "Voter"]);
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["node1", "127.0.0.1:8201", "leader", "true"]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["node2", "127.0.0.1:8203", "follower", "false"]
        );
    }
}
