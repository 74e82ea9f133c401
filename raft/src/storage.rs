//! [`RaftStorage`]: the replicated store as the core sees it (`Storage` + `Replication`).
//!
//! * `get`/`list` read the local state machine (call [`Replication::linearize`] first for a
//!   fresh read on any node).
//! * `apply` proposes the batch through Raft on the leader and returns the entry's log index
//!   as the version. On a follower it fails with `NotLeader { leader_api_addr }`; without a
//!   quorum, or when the entry was not applied within the write timeout, with `Unavailable`
//!   (the outcome is then unknown: the entry may still commit). Never hangs.
//! * Keys and sizes are checked before proposing, so the state machine rejects nothing a
//!   correct leader proposes.

use std::sync::Arc;

use async_trait::async_trait;
use coffer_storage::{
    children, validate_key, Batch, ChangeFeed, Entry, LeaderInfo, Op, Replication, Role, Storage,
    StorageError,
};
use tokio::sync::watch;

use crate::node::RaftNode;
use crate::state_machine::{decode_record, STAGE_PREFIX};
use crate::types::ApplyResult;
use crate::MAX_ENTRY_BYTES;

/// The replicated store of one node. Cheap to clone.
#[derive(Clone)]
pub struct RaftStorage {
    node: Arc<RaftNode>,
}

impl std::fmt::Debug for RaftStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStorage").field("node", &self.node.id()).finish()
    }
}

impl RaftStorage {
    /// The store of `node`.
    pub fn new(node: Arc<RaftNode>) -> Self {
        Self { node }
    }

    /// The node behind the store.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }
}

fn check_batch(batch: &Batch) -> Result<(), StorageError> {
    let mut total = 0usize;
    for op in &batch.ops {
        validate_key(op.key())?;
        total += op.key().len();
        if let Op::Put { value, .. } = op {
            total += value.len();
        }
        if total > MAX_ENTRY_BYTES {
            return Err(StorageError::TooLarge {
                key: op.key().to_owned(),
                size: total,
                max: MAX_ENTRY_BYTES,
            });
        }
    }
    for pre in &batch.preconditions {
        validate_key(&pre.key)?;
    }
    Ok(())
}

#[async_trait]
impl Storage for RaftStorage {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        validate_key(key)?;
        let sm = self.node.sm();
        let _g = sm.read_guard().await;
        let state = sm.state();
        match state.records.get(key.as_bytes()) {
            None => Ok(None),
            Some(raw) => decode_record(key, raw).map(Some),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let sm = self.node.sm();
        let _g = sm.read_guard().await;
        let state = sm.state();
        let from = std::ops::Bound::Included(prefix.as_bytes());
        let range = state.records.range::<[u8], _>((from, std::ops::Bound::Unbounded));
        for (k, _) in range.take_while(|(k, _)| k.starts_with(prefix.as_bytes())) {
            if k.starts_with(STAGE_PREFIX) {
                continue; // restore staging area: not client data
            }
            let k = String::from_utf8(k.clone())
                .map_err(|_| StorageError::Corrupt { key: prefix.into(), reason: "non UTF-8 key".into() })?;
            keys.push(k);
        }
        Ok(children(prefix, keys.iter().map(String::as_str)))
    }

    async fn apply(&self, batch: Batch) -> Result<u64, StorageError> {
        check_batch(&batch)?;
        if self.node.is_stepping_down() {
            return Err(StorageError::NotLeader { leader_api_addr: None });
        }
        let started = std::time::Instant::now();
        let data = self.node.write_batch(batch).await?;
        self.node.observe_write(started.elapsed());
        match data {
            ApplyResult::Applied { version } => Ok(version),
            ApplyResult::Many(_) => Err(StorageError::Io("a grouped write returned a group result".into())),
            ApplyResult::PreconditionFailed { key } => Err(StorageError::PreconditionFailed { key }),
            ApplyResult::Rejected { reason } => {
                Err(StorageError::Unavailable(format!("entry rejected by the state machine: {reason}")))
            }
            ApplyResult::Noop => Err(StorageError::Io("write produced no result".into())),
        }
    }
}

#[async_trait]
impl Replication for RaftStorage {
    fn role(&self) -> Role {
        self.node.role()
    }

    fn watch_role(&self) -> watch::Receiver<Role> {
        self.node.watch_role()
    }

    fn leader(&self) -> Option<LeaderInfo> {
        self.node.leader()
    }

    fn changes(&self) -> &ChangeFeed {
        self.node.changes()
    }

    async fn linearize(&self) -> Result<(), StorageError> {
        self.node.linearize().await.map_err(StorageError::from)
    }

    async fn step_down(&self) -> Result<(), StorageError> {
        self.node.step_down().await.map_err(StorageError::from)
    }

    fn is_ha(&self) -> bool {
        true
    }
}
