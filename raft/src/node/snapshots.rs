//! Snapshots: trigger, export, restore through the log, and proposing commands.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError as OrRaftError};

use super::*;
use crate::error::RaftError;
use crate::types::{NodeId, NodeInfo};

impl RaftNode {
    /// Asks Raft to build a snapshot now (returns once requested).
    pub async fn trigger_snapshot(&self) -> Result<(), RaftError> {
        self.raft.trigger().snapshot().await.map_err(|e| RaftError::Unavailable(e.to_string()))
    }

    /// Writes a consistent snapshot of the applied state (the snapshot file format, with a
    /// checksum) to `w`. Returns the applied index it covers.
    pub async fn export_snapshot<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        w: &mut W,
    ) -> Result<u64, RaftError> {
        use tokio::io::AsyncWriteExt;
        let shared = Arc::clone(&self.shared);
        let (meta, bytes) =
            tokio::task::spawn_blocking(move || shared.encode_current()).await.map_err(io)?.map_err(io)?;
        w.write_all(&bytes).await.map_err(io)?;
        w.flush().await.map_err(io)?;
        Ok(meta.last_log_id.map(|l| l.index).unwrap_or(0))
    }

    /// Restores a snapshot written by [`Self::export_snapshot`] as the cluster's new state,
    /// through the Raft log (leader only): a `RestoreAbort` entry clears any half-staged
    /// restore, `RestoreStage` entries (each below [`crate::MAX_ENTRY_BYTES`]) stage the data in
    /// a reserved key space, and one `RestoreCommit` entry swaps it in atomically on every
    /// replica, announcing `Changes::All`. Every restored key gets the commit entry's index as
    /// its version (versions stay strictly increasing). The file is verified completely
    /// (checksum, format, keys) before anything is proposed, so a damaged file changes nothing.
    /// Returns the commit index. openraft 0.9 has no API to make a leader install a snapshot
    /// and force followers to follow, hence the log-based design.
    pub async fn restore_snapshot(&self, bytes: &[u8]) -> Result<u64, RaftError> {
        use coffer_storage::Batch;

        use crate::types::Action;
        let decoded = crate::snapshot::decode(bytes).map_err(RaftError::Snapshot)?;
        let mut batches = vec![Batch::new()];
        let mut size = 0usize;
        for (k, raw) in &decoded.records {
            if k.starts_with(crate::state_machine::STAGE_PREFIX) {
                continue; // a restore that was in progress when the snapshot was taken
            }
            let key = std::str::from_utf8(k)
                .map_err(|_| RaftError::Snapshot("snapshot holds a key that is not UTF-8".into()))?;
            coffer_storage::validate_key(key).map_err(|e| RaftError::Snapshot(e.to_string()))?;
            let entry = crate::state_machine::decode_record(key, raw)
                .map_err(|e| RaftError::Snapshot(e.to_string()))?;
            let item = key.len() + entry.value.len();
            if item > crate::MAX_ENTRY_BYTES {
                return Err(RaftError::Snapshot(format!("value of {key:?} is larger than an entry may be")));
            }
            if size + item > crate::MAX_ENTRY_BYTES {
                batches.push(Batch::new());
                size = 0;
            }
            size += item;
            if let Some(b) = batches.last_mut() {
                b.ops.push(coffer_storage::Op::Put { key: key.to_owned(), value: entry.value });
            }
        }
        let _g = self.membership_lock.lock().await;
        self.propose(Action::RestoreAbort).await?;
        for batch in batches.into_iter().filter(|b| !b.ops.is_empty()) {
            self.propose(Action::RestoreStage { batch }).await?;
        }
        // The entry's version; the caller wants the log index it committed at.
        Ok(self.propose(Action::RestoreCommit).await? >> crate::types::VERSION_SHIFT)
    }

    /// Proposes one command and waits (bounded) for its result; returns the entry's index.
    async fn propose(&self, action: crate::types::Action) -> Result<u64, RaftError> {
        let now_ns = coffer_storage::clock::now_unix_ns();
        let fut = self.raft.client_write(crate::types::Command::new(action, now_ns));
        let resp = match tokio::time::timeout(self.config.write_timeout, fut).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.map_write_error(e)),
            Err(_) => {
                return Err(RaftError::Unavailable("proposal not confirmed in time; outcome unknown".into()))
            }
        };
        match resp.data {
            crate::types::ApplyResult::Applied { version } => Ok(version),
            crate::types::ApplyResult::Rejected { reason } => Err(RaftError::Snapshot(reason)),
            other => Err(RaftError::Unavailable(format!("unexpected apply result {other:?}"))),
        }
    }

    pub(crate) fn map_write_error(
        &self,
        e: OrRaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>,
    ) -> RaftError {
        match e {
            OrRaftError::APIError(ClientWriteError::ForwardToLeader(f)) => RaftError::NotLeader {
                leader: match (f.leader_id, f.leader_node) {
                    (Some(id), Some(n)) => {
                        Some(LeaderInfo { node_id: id, api_addr: n.api_addr, cluster_addr: n.cluster_addr })
                    }
                    _ => None,
                },
            },
            OrRaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                RaftError::Unavailable(format!("membership change refused: {c}"))
            }
            OrRaftError::Fatal(f) => RaftError::Unavailable(format!("raft stopped: {f}")),
        }
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        self.config.write_timeout
    }

    pub(crate) fn is_stepping_down(&self) -> bool {
        self.stepping_down.load(Ordering::SeqCst)
    }

    pub(crate) fn sm(&self) -> &Shared {
        &self.shared
    }
}
