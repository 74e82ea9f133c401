//! The openraft type configuration and the records that travel in the log.

use std::fmt;

use coffer_storage::Batch;
use serde::{Deserialize, Serialize};

/// A node's identity in the cluster. Never reused for a node with an empty log (see
/// [`crate::node`], R13).
pub type NodeId = u64;

/// Format version of [`Command`]; a node refuses (as an error response, never a panic) a
/// command of a format it does not know.
pub const COMMAND_FORMAT: u8 = 1;

/// What a cluster member publishes about itself; stored in the Raft membership, so every node
/// knows how to reach every other one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    /// The operator's name for the node (`node_id` in the configuration; `""` when unnamed).
    #[serde(default)]
    pub name: String,
    /// Client API address (`https://host:8200`): where clients are redirected.
    pub api_addr: String,
    /// Cluster address (`host:8201`): raft RPCs and forwarded requests, mTLS only.
    pub cluster_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{api: {}, cluster: {}}}", self.api_addr, self.cluster_addr)
    }
}

/// One replicated log command (`TypeConfig::D`).
///
/// The leader stamps it with its clock; applying it never reads a clock, so every replica
/// decides TTLs the same way.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// [`COMMAND_FORMAT`] of the proposer.
    pub format: u8,
    /// The leader's wall clock when it proposed the command, in unix nanoseconds.
    pub timestamp_ns: u64,
    /// What to do.
    pub action: Action,
}

/// The action of a [`Command`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Action {
    /// Apply a storage batch atomically; every key it puts gets [`entry_version`]`(index, 0)`
    /// as its version.
    Write { batch: Batch },
    /// Several independent client batches committed as one entry (group commit: one fsync and
    /// one replication round for all of them). Each applies atomically on its own, in order, as
    /// if it were its own entry: batch `i` sees the writes of batches before it, its
    /// preconditions are checked alone, and its keys get [`entry_version`]`(index, i)`.
    WriteMany { batches: Vec<Batch> },
    /// Snapshot restore, step 1 of 3: forget any staged restore data.
    RestoreAbort,
    /// Snapshot restore, step 2 of 3 (repeated): stage these puts in a reserved key space that
    /// no client key can reach (keys starting with NUL). Staged data is part of the state
    /// machine, so it replicates and snapshots like everything else.
    RestoreStage { batch: Batch },
    /// Snapshot restore, step 3 of 3: atomically replace every key with the staged data (all
    /// restored keys get this entry's index as their version) and announce `Changes::All`.
    RestoreCommit,
}

/// Bits of a stored version below the log index: room for the batches of one
/// [`Action::WriteMany`] entry.
pub const VERSION_SHIFT: u32 = 16;
/// Most batches in one [`Action::WriteMany`] entry.
pub const MAX_GROUP: usize = (1 << VERSION_SHIFT) - 1;

/// The storage version of batch `sub` of the entry at log `index`: strictly increasing across
/// the whole store, equal on every replica.
pub fn entry_version(index: u64, sub: usize) -> u64 {
    (index << VERSION_SHIFT) | (sub as u64 & ((1 << VERSION_SHIFT) - 1))
}

impl Command {
    /// A write of `batch`, stamped with `timestamp_ns`.
    pub fn write(batch: Batch, timestamp_ns: u64) -> Self {
        Self::new(Action::Write { batch }, timestamp_ns)
    }

    /// A command carrying `action`, stamped with `timestamp_ns`.
    pub fn new(action: Action, timestamp_ns: u64) -> Self {
        Self { format: COMMAND_FORMAT, timestamp_ns, action }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are ciphertext, but keep logs small and value-free anyway.
        if let Action::WriteMany { batches } = &self.action {
            let ops: usize = batches.iter().map(|b| b.ops.len()).sum();
            return f
                .debug_struct("Command::WriteMany")
                .field("format", &self.format)
                .field("timestamp_ns", &self.timestamp_ns)
                .field("batches", &batches.len())
                .field("ops", &ops)
                .finish();
        }
        let (name, batch) = match &self.action {
            Action::Write { batch } => ("Command::Write", Some(batch)),
            Action::WriteMany { .. } => ("Command::WriteMany", None),
            Action::RestoreAbort => ("Command::RestoreAbort", None),
            Action::RestoreStage { batch } => ("Command::RestoreStage", Some(batch)),
            Action::RestoreCommit => ("Command::RestoreCommit", None),
        };
        let mut d = f.debug_struct(name);
        d.field("format", &self.format).field("timestamp_ns", &self.timestamp_ns);
        if let Some(b) = batch {
            d.field("ops", &b.ops.len()).field("preconditions", &b.preconditions.len());
        }
        d.finish()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The outcome of applying one log entry (`TypeConfig::R`). Deterministic: every replica
/// computes the same result for the same entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ApplyResult {
    /// The batch was applied; its keys are at this version ([`entry_version`]).
    Applied { version: u64 },
    /// One result per batch of a [`Action::WriteMany`] entry, in order.
    Many(Vec<ApplyResult>),
    /// A blank or membership entry: nothing for a client.
    Noop,
    /// A precondition on `key` did not hold; nothing was written.
    PreconditionFailed { key: String },
    /// The command could not be applied (unknown format, invalid key); nothing was written.
    Rejected { reason: String },
}

openraft::declare_raft_types!(
    /// coffer's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// The openraft handle for this configuration.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type LogEntry = openraft::Entry<TypeConfig>;
/// openraft's storage error for this configuration.
pub type OrStorageError = openraft::StorageError<NodeId>;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// Membership as stored with its log id.
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
