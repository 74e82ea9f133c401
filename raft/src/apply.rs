//! How one replicated command applies to the state machine's data tree, and the format of
//! the records it writes (split from `state_machine` to keep files small).
//!
//! Records: the state machine's map holds, per storage key, `format (u8 = 1) | version u64 BE |
//! value` (the same bytes a snapshot carries).
//! Applying never reads a clock or randomness and never panics: an entry that cannot be applied
//! yields [`ApplyResult::Rejected`] and writes nothing.

use std::collections::BTreeSet;

use coffer_storage::replication::written_keys;
use coffer_storage::{validate_key, Batch, Changes, Entry, Expect, Op};
use openraft::EntryPayload;

use crate::types::{entry_version, Action, ApplyResult, Command, LogEntry, COMMAND_FORMAT, MAX_GROUP};

/// Format of state machine records.
pub const RECORD_FORMAT: u8 = 1;

pub(crate) fn encode_record(version: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    out.push(RECORD_FORMAT);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn decode_record(key: &str, raw: &[u8]) -> Result<Entry, coffer_storage::StorageError> {
    match record_version(raw) {
        Some(version) => Ok(Entry { value: raw[9..].to_vec(), version }),
        None => Err(coffer_storage::StorageError::Corrupt {
            key: key.to_owned(),
            reason: "unreadable state machine record".into(),
        }),
    }
}

pub(crate) fn record_version(raw: &[u8]) -> Option<u64> {
    if raw.len() < 9 || raw[0] != RECORD_FORMAT {
        return None;
    }
    let arr: [u8; 8] = raw[1..9].try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// The records as applying sees them (see `state_machine`: applied in memory while readers
/// are held off). Applying cannot fail on storage: the map is in memory.
pub(crate) trait DataTree {
    fn get(&self, key: &[u8]) -> Option<&[u8]>;
    fn insert(&mut self, key: &[u8], value: Vec<u8>);
    fn remove(&mut self, key: &[u8]);
}

impl DataTree for std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        std::collections::BTreeMap::get(self, key).map(Vec::as_slice)
    }
    fn insert(&mut self, key: &[u8], value: Vec<u8>) {
        // Overwrites keep the key's allocation.
        match self.get_mut(key) {
            Some(v) => *v = value,
            None => {
                std::collections::BTreeMap::insert(self, key.to_vec(), value);
            }
        }
    }
    fn remove(&mut self, key: &[u8]) {
        std::collections::BTreeMap::remove(self, key);
    }
}

/// Prefix of the staging area of a snapshot restore. Storage keys cannot contain NUL
/// (`validate_key`), so no client key can reach it; [`crate::RaftStorage`] hides it from lists.
pub(crate) const STAGE_PREFIX: &[u8] = b"\0restore/";

fn staged_key(key: &str) -> Vec<u8> {
    let mut k = STAGE_PREFIX.to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

/// True for entries that need a fresh scan of all keys (and so their own transaction).
pub(crate) fn needs_scan(e: &LogEntry) -> bool {
    matches!(&e.payload, EntryPayload::Normal(c) if matches!(*c.action, Action::RestoreAbort | Action::RestoreCommit))
}

fn rejected(reason: impl Into<String>) -> (ApplyResult, Option<Changes>) {
    (ApplyResult::Rejected { reason: reason.into() }, None)
}

/// Outcome of one normal entry inside the apply transaction. `scan` holds every key of the
/// data tree before this entry (given for restore abort/commit only).
pub(crate) fn apply_command(
    d: &mut impl DataTree,
    cmd: &Command,
    index: u64,
    scan: Option<&[Vec<u8>]>,
) -> (ApplyResult, Vec<Changes>) {
    let one = |r: (ApplyResult, Option<Changes>)| (r.0, r.1.into_iter().collect::<Vec<_>>());
    if cmd.format != COMMAND_FORMAT {
        return one(rejected(format!(
            "command format {} is not supported (expected {COMMAND_FORMAT})",
            cmd.format
        )));
    }
    let version = entry_version(index, 0);
    match &*cmd.action {
        Action::Write { batch } => one(apply_write(d, batch, version)),
        Action::WriteMany { batches } => {
            if batches.len() > MAX_GROUP {
                return one(rejected(format!("{} batches in one entry (most {MAX_GROUP})", batches.len())));
            }
            let mut results = Vec::with_capacity(batches.len());
            let mut changes = Vec::new();
            for (i, batch) in batches.iter().enumerate() {
                let (r, c) = apply_write(d, batch, entry_version(index, i));
                results.push(r);
                changes.extend(c);
            }
            (ApplyResult::Many(results), changes)
        }
        Action::RestoreStage { batch } => one(apply_stage(d, batch, version)),
        Action::RestoreAbort | Action::RestoreCommit => {
            let Some(scan) = scan else {
                return one(rejected("restore step applied without a key scan"));
            };
            let commit = matches!(*cmd.action, Action::RestoreCommit);
            let restored: BTreeSet<&[u8]> =
                scan.iter().filter_map(|k| k.strip_prefix(STAGE_PREFIX)).collect();
            for k in scan {
                if let Some(real) = k.strip_prefix(STAGE_PREFIX) {
                    if commit {
                        if let Some(raw) = d.get(k) {
                            let record = encode_record(version, raw.get(9..).unwrap_or_default());
                            d.insert(real, record);
                        }
                    }
                    d.remove(k);
                } else if commit && !restored.contains(&k[..]) {
                    // Commit replaces everything: keys the snapshot does not hold disappear.
                    d.remove(k);
                }
            }
            let change = commit.then_some(Changes::All { version });
            one((ApplyResult::Applied { version }, change))
        }
    }
}

fn invalid_keys(batch: &Batch) -> Option<(ApplyResult, Option<Changes>)> {
    for key in batch.ops.iter().map(Op::key).chain(batch.preconditions.iter().map(|p| p.key.as_str())) {
        if let Err(e) = validate_key(key) {
            return Some(rejected(e.to_string()));
        }
    }
    None
}

/// A restore stage: puts into the staging area.
fn apply_stage(d: &mut impl DataTree, batch: &Batch, version: u64) -> (ApplyResult, Option<Changes>) {
    if let Some(r) = invalid_keys(batch) {
        return r;
    }
    if !batch.preconditions.is_empty() {
        return rejected("a restore stage carries no preconditions");
    }
    // Checked before anything is staged: a rejected entry writes nothing.
    if batch.ops.iter().any(|op| matches!(op, Op::Delete { .. })) {
        return rejected("a restore stage only puts");
    }
    for op in &batch.ops {
        if let Op::Put { key, value } = op {
            d.insert(&staged_key(key), encode_record(version, value));
        }
    }
    (ApplyResult::Applied { version }, None)
}

/// One client batch: preconditions, then its writes at `version`.
fn apply_write(d: &mut impl DataTree, batch: &Batch, version: u64) -> (ApplyResult, Option<Changes>) {
    if let Some(r) = invalid_keys(batch) {
        return r;
    }
    for pre in &batch.preconditions {
        let current = d.get(pre.key.as_bytes());
        let ok = match pre.expect {
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current.and_then(record_version) == Some(v),
        };
        if !ok {
            return (ApplyResult::PreconditionFailed { key: pre.key.clone() }, None);
        }
    }
    for op in &batch.ops {
        match op {
            Op::Delete { key } => {
                d.remove(key.as_bytes());
            }
            Op::Put { key, value } => {
                d.insert(key.as_bytes(), encode_record(version, value));
            }
        }
    }
    let keys = written_keys(batch);
    let change = (!keys.is_empty()).then(|| Changes::Keys { version, keys: keys.into() });
    (ApplyResult::Applied { version }, change)
}
