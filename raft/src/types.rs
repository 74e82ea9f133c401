//! The openraft type configuration and the records that travel in the log.

use std::fmt;
use std::sync::Arc;

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
    /// What to do. Shared: openraft clones an entry each time it reads it from the log (once
    /// per follower to replicate it, once to apply it), and a group entry holds hundreds of
    /// client batches; the clone of an `Arc` copies none of them.
    pub action: Arc<Action>,
}

/// The action of a [`Command`]. Internally tagged (`{"type":"write","batch":…}`); read by
/// [`action_de`], which takes the fields in any order without serde's buffering of tagged enums
/// (and, unlike serde's derived reader, refuses fields on the variants that have none).
#[derive(Clone, PartialEq, Eq, Serialize)]
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

/// Reading an [`Action`]. The derived reader of an internally tagged enum buffers the whole
/// action, every batch and operation of it, into serde's generic `Content` before choosing the
/// variant, and then reads it a second time from there; this one reads the fields straight into
/// place, in any order, with the derived form's refusals: an unknown, repeated, missing or
/// foreign field is an error.
mod action_de {
    use std::fmt;

    use coffer_storage::Batch;
    use serde::de::{Error, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    use super::Action;

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum Field {
        Type,
        Batch,
        Batches,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Write,
        WriteMany,
        RestoreAbort,
        RestoreStage,
        RestoreCommit,
    }

    impl<'de> Deserialize<'de> for Action {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(ActionVisitor)
        }
    }

    struct ActionVisitor;

    impl<'de> Visitor<'de> for ActionVisitor {
        type Value = Action;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a log action")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Action, A::Error> {
            let (mut kind, mut batch, mut batches) = (None, None, None);
            while let Some(field) = map.next_key()? {
                match field {
                    Field::Type if kind.is_none() => kind = Some(map.next_value::<Kind>()?),
                    Field::Batch if batch.is_none() => batch = Some(map.next_value::<Batch>()?),
                    Field::Batches if batches.is_none() => batches = Some(map.next_value::<Vec<Batch>>()?),
                    Field::Type => return Err(A::Error::duplicate_field("type")),
                    Field::Batch => return Err(A::Error::duplicate_field("batch")),
                    Field::Batches => return Err(A::Error::duplicate_field("batches")),
                }
            }
            let kind = kind.ok_or_else(|| A::Error::missing_field("type"))?;
            // A field the variant does not have is refused, as `deny_unknown_fields` does.
            let takes_batch = matches!(kind, Kind::Write | Kind::RestoreStage);
            if batches.is_some() && !matches!(kind, Kind::WriteMany) {
                return Err(A::Error::unknown_field("batches", if takes_batch { &["batch"] } else { &[] }));
            }
            if batch.is_some() && !takes_batch {
                let expected: &[&str] = if matches!(kind, Kind::WriteMany) { &["batches"] } else { &[] };
                return Err(A::Error::unknown_field("batch", expected));
            }
            let batch = || batch.ok_or_else(|| A::Error::missing_field("batch"));
            Ok(match kind {
                Kind::Write => Action::Write { batch: batch()? },
                Kind::RestoreStage => Action::RestoreStage { batch: batch()? },
                Kind::WriteMany => {
                    Action::WriteMany { batches: batches.ok_or_else(|| A::Error::missing_field("batches"))? }
                }
                Kind::RestoreAbort => Action::RestoreAbort,
                Kind::RestoreCommit => Action::RestoreCommit,
            })
        }
    }
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
        Self { format: COMMAND_FORMAT, timestamp_ns, action: Arc::new(action) }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are ciphertext, but keep logs small and value-free anyway.
        if let Action::WriteMany { batches } = &*self.action {
            let ops: usize = batches.iter().map(|b| b.ops.len()).sum();
            return f
                .debug_struct("Command::WriteMany")
                .field("format", &self.format)
                .field("timestamp_ns", &self.timestamp_ns)
                .field("batches", &batches.len())
                .field("ops", &ops)
                .finish();
        }
        let (name, batch) = match &*self.action {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The reader of [`Action`] replaced serde's derived one: kept here as the reference.
    #[derive(Deserialize, Debug)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    enum DerivedAction {
        Write { batch: Batch },
        WriteMany { batches: Vec<Batch> },
        RestoreAbort,
        RestoreStage { batch: Batch },
        RestoreCommit,
    }

    impl From<DerivedAction> for Action {
        fn from(a: DerivedAction) -> Action {
            match a {
                DerivedAction::Write { batch } => Action::Write { batch },
                DerivedAction::WriteMany { batches } => Action::WriteMany { batches },
                DerivedAction::RestoreAbort => Action::RestoreAbort,
                DerivedAction::RestoreStage { batch } => Action::RestoreStage { batch },
                DerivedAction::RestoreCommit => Action::RestoreCommit,
            }
        }
    }

    /// Every combination of tag, fields (present, missing, repeated, foreign, unknown,
    /// malformed) and order: the hand-written reader accepts exactly what the derived one
    /// accepts, reads the same action, and reads back what the (derived) writer wrote.
    #[test]
    fn the_action_reader_agrees_with_the_derived_one() {
        let batch = r#"{"ops":[{"op":"put","key":"a","value":"AP8H"},{"key":"b","op":"delete"}],"preconditions":[{"key":"a","expect":"Absent"}]}"#;
        let batches = format!(r#"[{batch},{{"ops":[],"preconditions":[]}}]"#);
        let parts: Vec<(&str, String)> = vec![
            ("type", r#""write""#.into()),
            ("type", r#""write_many""#.into()),
            ("type", r#""restore_abort""#.into()),
            ("type", r#""restore_stage""#.into()),
            ("type", r#""restore_commit""#.into()),
            ("type", r#""erase""#.into()),
            ("batch", batch.into()),
            ("batches", batches),
            ("batch", "5".into()),
            ("other", "null".into()),
        ];
        let mut accepted = 0;
        for len in 0..=4u32 {
            for mut n in 0..parts.len().pow(len) {
                let mut fields = Vec::new();
                for _ in 0..len {
                    let (k, v) = &parts[n % parts.len()];
                    fields.push(format!(r#""{k}":{v}"#));
                    n /= parts.len();
                }
                let json = format!("{{{}}}", fields.join(","));
                let ours = serde_json::from_str::<Action>(&json);
                let derived = serde_json::from_str::<DerivedAction>(&json).map(Action::from);
                match (ours, derived) {
                    (Ok(a), Ok(b)) => {
                        assert!(a == b, "{json}: read differently");
                        let back = serde_json::to_string(&a).unwrap();
                        assert!(serde_json::from_str::<Action>(&back).unwrap() == a, "{json}");
                        accepted += 1;
                    }
                    (Err(_), Err(_)) => {}
                    // Stricter on one point: serde's derived reader ignores every other field
                    // of a unit variant (`deny_unknown_fields` does not reach them); the writer
                    // never writes any, so refusing them loses nothing.
                    (Err(_), Ok(Action::RestoreAbort | Action::RestoreCommit)) => {}
                    (ours, derived) => {
                        panic!("{json}: ours accepted {}, derived accepted {}", ours.is_ok(), derived.is_ok())
                    }
                }
            }
        }
        assert!(accepted >= 5, "{accepted}");
    }
}
