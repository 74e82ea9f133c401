//! The operations behind `sys/storage/raft/*`: peers, autopilot, snapshots.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use coffer_storage::Batch;

use super::{node_id_of, raft_error, snapshot, ClusterNode};
use crate::core::error::{Error, Result};

/// Where the autopilot settings live (behind the barrier).
const AUTOPILOT_PATH: &str = "core/raft/autopilot";
const AUTOPILOT_VERSION: u8 = 1;

/// Vault's autopilot settings. coffer stores and reports them; it does not remove dead
/// servers on its own.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Autopilot {
    #[serde(default = "v1")]
    pub v: u8,
    pub cleanup_dead_servers: bool,
    /// Seconds.
    pub last_contact_threshold: u64,
    pub dead_server_last_contact_threshold: u64,
    pub max_trailing_logs: u64,
    pub min_quorum: u64,
    pub server_stabilization_time: u64,
    pub disable_upgrade_migration: bool,
}

fn v1() -> u8 {
    AUTOPILOT_VERSION
}

impl Default for Autopilot {
    fn default() -> Self {
        Self {
            v: AUTOPILOT_VERSION,
            cleanup_dead_servers: false,
            last_contact_threshold: 10,
            dead_server_last_contact_threshold: 24 * 3600,
            max_trailing_logs: 1000,
            min_quorum: 0,
            server_stabilization_time: 10,
            disable_upgrade_migration: false,
        }
    }
}

impl Autopilot {
    /// Vault's read shape (durations as Go strings).
    pub fn to_json(&self) -> Value {
        let d = |s: u64| crate::util::duration::format_go_seconds(s as i64);
        json!({
            "cleanup_dead_servers": self.cleanup_dead_servers,
            "last_contact_threshold": d(self.last_contact_threshold),
            "dead_server_last_contact_threshold": d(self.dead_server_last_contact_threshold),
            "max_trailing_logs": self.max_trailing_logs,
            "min_quorum": self.min_quorum,
            "server_stabilization_time": d(self.server_stabilization_time),
            "disable_upgrade_migration": self.disable_upgrade_migration,
        })
    }
}

impl ClusterNode {
    /// `sys/storage/raft/configuration`.
    pub fn configuration(&self) -> Value {
        let m = self.raft.metrics();
        let servers: Vec<Value> = m
            .nodes
            .iter()
            .map(|(id, info)| {
                json!({
                    "node_id": if info.name.is_empty() { id.to_string() } else { info.name.clone() },
                    "address": info.cluster_addr,
                    "leader": m.leader == Some(*id),
                    "protocol_version": "3",
                    "voter": m.voters.contains(id),
                })
            })
            .collect();
        json!({ "config": { "index": m.committed_index.unwrap_or(0), "servers": servers } })
    }

    /// `sys/storage/raft/digest` (coffer): this node's applied index and a SHA-256 over its
    /// replicated state at that index; equal on every member at the same index.
    pub fn digest(&self) -> Result<Value> {
        let (index, digest) = self.raft.digest().map_err(raft_error)?;
        Ok(json!({ "applied_index": index, "digest": hex::encode(digest) }))
    }

    /// `sys/storage/raft/remove-peer`.
    pub async fn remove_peer(&self, server_id: &str) -> Result<()> {
        if server_id.trim().is_empty() {
            return Err(Error::bad("no server id provided"));
        }
        let m = self.raft.metrics();
        // Accept the node's name, or its numeric raft id.
        let id = m
            .nodes
            .iter()
            .find(|(id, n)| n.name == server_id || id.to_string() == server_id)
            .map(|(id, _)| *id)
            .unwrap_or_else(|| node_id_of(server_id));
        if !m.nodes.contains_key(&id) {
            return Ok(());
        }
        self.raft.remove_node(id).await.map_err(raft_error)
    }

    /// `sys/storage/raft/autopilot/state`.
    pub fn autopilot_state(&self) -> Value {
        let m = self.raft.metrics();
        let last = m.last_log_index.unwrap_or(0);
        let name = |id: &u64| {
            m.nodes
                .get(id)
                .map(|n| n.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| id.to_string())
        };
        let healthy_of = |id: &u64| -> bool {
            if m.leader == Some(*id) {
                return true;
            }
            match m.matched.get(id) {
                Some(Some(i)) => last.saturating_sub(*i) <= 1000,
                _ => false,
            }
        };
        let mut servers = serde_json::Map::new();
        for (id, info) in &m.nodes {
            let status = if m.leader == Some(*id) {
                "leader"
            } else if m.voters.contains(id) {
                "voter"
            } else {
                "non-voter"
            };
            servers.insert(
                name(id),
                json!({
                    "id": name(id),
                    "name": name(id),
                    "address": info.cluster_addr,
                    "node_status": if healthy_of(id) { "alive" } else { "unknown" },
                    "last_contact": "0s",
                    "last_term": m.term,
                    "last_index": m.matched.get(id).copied().flatten().unwrap_or(if m.leader == Some(*id) { last } else { 0 }),
                    "healthy": healthy_of(id),
                    "stable_since": crate::util::timefmt::GO_ZERO_TIME,
                    "status": status,
                    "meta": null,
                    "version": crate::core::VERSION,
                }),
            );
        }
        let healthy_voters = m.voters.iter().filter(|v| healthy_of(v)).count();
        let quorum = m.voters.len() / 2 + 1;
        json!({
            "healthy": m.leader.is_some() && healthy_voters == m.voters.len(),
            "failure_tolerance": healthy_voters.saturating_sub(quorum),
            "leader": m.leader.as_ref().map(name).unwrap_or_default(),
            "voters": m.voters.iter().map(name).collect::<Vec<_>>(),
            "non_voters": if m.learners.is_empty() { Value::Null } else { json!(m.learners.iter().map(name).collect::<Vec<_>>()) },
            "servers": servers,
        })
    }

    /// The stored autopilot settings (defaults when never set).
    pub async fn autopilot_config(&self) -> Result<Autopilot> {
        let core = self.core()?;
        match core.barrier().get(AUTOPILOT_PATH).await? {
            Some(e) => serde_json::from_slice(&e.value)
                .map_err(|err| Error::internal(format!("corrupt autopilot settings: {err}"))),
            None => Ok(Autopilot::default()),
        }
    }

    /// Stores autopilot settings.
    pub async fn set_autopilot_config(&self, a: &Autopilot) -> Result<()> {
        let core = self.core()?;
        core.barrier().apply(Batch::new().put(AUTOPILOT_PATH, serde_json::to_vec(a)?)).await?;
        Ok(())
    }

    /// `GET sys/storage/raft/snapshot`: an archive of the replicated state.
    pub async fn snapshot_save(&self) -> Result<Vec<u8>> {
        let core = self.core()?;
        let active = core.active()?;
        let mut state = Vec::new();
        let index = self.raft.export_snapshot(&mut state).await.map_err(raft_error)?;
        let cluster_id = active.cluster.id.clone();
        core.barrier().with_root_key(|root| snapshot::pack(root, &state, index, &cluster_id))?
    }

    /// `POST sys/storage/raft/snapshot[-force]`: replaces the replicated state with an archive's.
    pub async fn snapshot_restore(&self, archive: &[u8], force: bool) -> Result<()> {
        let core = self.core()?;
        let unpacked = core.barrier().with_root_key(|root| snapshot::unpack(root, archive, force))??;
        self.raft.restore_snapshot(&unpacked.state).await.map_err(raft_error)?;
        tracing::info!(index = unpacked.meta.index, from = %unpacked.meta.cluster_id, "snapshot restored");
        Ok(())
    }
}
