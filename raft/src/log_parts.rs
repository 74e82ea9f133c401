//! Parts of the log store kept apart to keep files small: the cache of the newest entries,
//! the `committed` file's format, and the migration of a layout-1 log (sled tree) to the WAL.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use openraft::RaftLogId;
use sha2::{Digest as _, Sha256};

use crate::db::Db;
use crate::error::RaftError;
use crate::log_store::{
    decode_entry, encode_entry, index_key, verify_record, wal_error, KEY_FORMAT, LOG_FORMAT,
};
use crate::types::{LogEntry, LogId};
use crate::wal::Wal;

/// Bounds of [`Recent`] (and of [`Received`]).
pub(crate) const RECENT_BYTES: usize = 16 << 20;
pub(crate) const RECENT_ENTRIES: usize = 4096;

/// The newest entries of the log, contiguous up to its last entry (or empty), each with the
/// binary form it was written to the log as ([`crate::entry_codec`]): replication sends those
/// bytes instead of encoding the entry again for every follower.
#[derive(Default)]
pub(crate) struct Recent {
    entries: VecDeque<(LogEntry, usize, Bytes)>,
    bytes: usize,
}

impl Recent {
    /// Adds the log's next entry, `body` being its binary form and `size` what the entry takes
    /// in the log.
    pub(crate) fn push(&mut self, entry: LogEntry, size: usize, body: Bytes) {
        let index = entry.get_log_id().index;
        if self.entries.back().is_some_and(|(e, _, _)| e.get_log_id().index + 1 != index) {
            self.clear();
        }
        self.entries.push_back((entry, size, body));
        self.bytes += size;
        while self.bytes > RECENT_BYTES || self.entries.len() > RECENT_ENTRIES {
            self.pop_front();
        }
    }

    /// The binary form of the entry with exactly this log id, if it is here.
    pub(crate) fn body_of(&self, log_id: &LogId) -> Option<Bytes> {
        let first = self.entries.front()?.0.get_log_id().index;
        let at = usize::try_from(log_id.index.checked_sub(first)?).ok()?;
        let (entry, _, body) = self.entries.get(at)?;
        (entry.get_log_id() == log_id).then(|| body.clone())
    }

    fn pop_front(&mut self) {
        if let Some((_, size, _)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Drops the entries from `index` on.
    pub(crate) fn truncate(&mut self, index: u64) {
        while self.entries.back().is_some_and(|(e, _, _)| e.get_log_id().index >= index) {
            if let Some((_, size, _)) = self.entries.pop_back() {
                self.bytes -= size;
            }
        }
    }

    /// Drops the entries up to `index`.
    pub(crate) fn purge(&mut self, index: u64) {
        while self.entries.front().is_some_and(|(e, _, _)| e.get_log_id().index <= index) {
            self.pop_front();
        }
    }

    /// `start..=end` when the cache holds everything from `start` to the log's end.
    pub(crate) fn get(&self, start: u64, end: u64) -> Option<Vec<LogEntry>> {
        let first = self.entries.front()?.0.get_log_id().index;
        let at = usize::try_from(start.checked_sub(first)?).ok()?;
        let mut out = Vec::new();
        for (e, _, _) in self.entries.iter().skip(at) {
            if e.get_log_id().index > end {
                break;
            }
            out.push(e.clone());
        }
        Some(out)
    }
}

/// The entries of one append-entries request: each log id with its binary form as received.
pub(crate) type ReceivedBodies = Vec<(LogId, Bytes)>;

/// The binary form of entries a follower received from its leader, by log id, until its log
/// appends them: the follower writes those bytes to its WAL (and keeps them in [`Recent`])
/// instead of encoding each entry again. The bytes are the entry as the leader's log holds it
/// (`network::encode_append` sends exactly that), decoded once on arrival into the entry the
/// log appends, so they always decode to that entry. Bounded like [`Recent`]; an append
/// request's leftovers (entries the log already had) are dropped when the request ends.
#[derive(Default)]
pub(crate) struct Received {
    /// By index: the log id the body is of, and the body.
    bodies: std::collections::HashMap<u64, (LogId, Bytes)>,
    bytes: usize,
}

impl Received {
    /// Offers the bodies of one request's entries.
    pub(crate) fn offer(&mut self, entries: &[(LogId, Bytes)]) {
        let size: usize = entries.iter().map(|(_, j)| j.len()).sum();
        if self.bytes + size > RECENT_BYTES || self.bodies.len() + entries.len() > RECENT_ENTRIES {
            self.bodies.clear();
            self.bytes = 0;
        }
        for (id, body) in entries {
            if let Some((_, old)) = self.bodies.insert(id.index, (*id, body.clone())) {
                self.bytes -= old.len();
            }
            self.bytes += body.len();
        }
    }

    /// Takes the body received for exactly this log id (the body of another entry at its
    /// index, from another leader's request, is dropped).
    pub(crate) fn take(&mut self, id: &LogId) -> Option<Bytes> {
        let (of, body) = self.bodies.remove(&id.index)?;
        self.bytes -= body.len();
        (of == *id).then_some(body)
    }

    /// Drops what is left of one request's entries.
    pub(crate) fn forget(&mut self, entries: &[(LogId, Bytes)]) {
        for (id, _) in entries {
            if self.bodies.get(&id.index).is_some_and(|(of, _)| of == id) {
                self.take(id);
            }
        }
    }
}

pub(crate) const COMMITTED_FILE: &str = "committed";
const COMMITTED_MAGIC: &[u8; 8] = b"coffercm";
/// Format of the `committed` file.
const COMMITTED_FORMAT: u8 = 1;

/// `magic | format | len (u16 LE) | JSON(LogId) | SHA-256(JSON)[..8]`.
pub(crate) fn encode_committed(json: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(json.len()).ok()?;
    let mut out = Vec::with_capacity(8 + 1 + 2 + json.len() + 8);
    out.extend_from_slice(COMMITTED_MAGIC);
    out.push(COMMITTED_FORMAT);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(&Sha256::digest(json)[..8]);
    Some(out)
}

/// The committed log id in the file, `None` when absent or not whole (it is only a hint).
pub(crate) fn decode_committed(raw: &[u8]) -> Option<LogId> {
    let rest = raw.strip_prefix(COMMITTED_MAGIC.as_slice())?;
    let (&format, rest) = rest.split_first()?;
    if format != COMMITTED_FORMAT || rest.len() < 2 {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let json = rest.get(2..2 + len)?;
    let sum = rest.get(2 + len..2 + len + 8)?;
    if Sha256::digest(json)[..8] != *sum {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// Moves the entries of a layout-1 store (sled tree `log`) into the WAL: written and synced,
/// then layout 2 recorded durably, then the tree cleared. A migration stopped before layout 2
/// was recorded starts again from an empty WAL; a hole in the old log stays a hole (the start-up
/// reconciliation judges it).
pub(crate) fn migrate_tree_to_wal(
    db: &Arc<Db>,
    tree: &sled::Tree,
    meta: &sled::Tree,
    wal_dir: &std::path::Path,
    purged: Option<u64>,
) -> Result<(), RaftError> {
    let io = |e: sled::Error| RaftError::Io(e.to_string());
    let corrupt = |reason: String| RaftError::Corrupt { what: "raft log".into(), reason };
    if wal_dir.exists() {
        std::fs::remove_dir_all(wal_dir)
            .map_err(|e| RaftError::Io(format!("cannot reset {}: {e}", wal_dir.display())))?;
    }
    let (wal, _) = Wal::open(wal_dir, purged, verify_record).map_err(wal_error)?;
    let mut run: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut moved = 0usize;
    let flush = |run: &mut Vec<(u64, Vec<u8>)>| -> Result<(), RaftError> {
        let to_sync = wal.append(run, true).map_err(wal_error)?;
        to_sync.run().map_err(|e| RaftError::Io(format!("cannot sync the raft log: {e}")))?;
        run.clear();
        Ok(())
    };
    let start = purged.map_or(0, |p| p.saturating_add(1));
    for item in tree.range(index_key(start)..) {
        let (key, raw) = item.map_err(io)?;
        let entry = decode_entry(&key, &raw).map_err(corrupt)?;
        let index = entry.get_log_id().index;
        if run.last().is_some_and(|(last, _)| index != last + 1) || run.len() >= 1024 {
            flush(&mut run)?;
        }
        run.push((index, encode_entry(&entry).map_err(|e| corrupt(e.to_string()))?));
        moved += 1;
    }
    if !run.is_empty() {
        flush(&mut run)?;
    }
    meta.insert(KEY_FORMAT, &[LOG_FORMAT]).map_err(io)?;
    db.sync_blocking().map_err(RaftError::Io)?;
    tree.clear().map_err(io)?;
    tracing::info!(entries = moved, "raft log: moved the entries from the sled tree to the WAL (layout 2)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(term: u64, index: u64) -> LogId {
        openraft::LogId::new(openraft::CommittedLeaderId::new(term, 1), index)
    }

    #[test]
    fn a_received_body_is_taken_only_for_its_own_log_id() {
        let mut r = Received::default();
        r.offer(&[(id(2, 5), Bytes::from_static(b"five")), (id(2, 6), Bytes::from_static(b"six"))]);
        // Another leader's entry at the same index is not this body's entry.
        assert_eq!(r.take(&id(3, 5)), None);
        assert_eq!(r.take(&id(2, 5)), None, "dropped when the index was asked for another entry");
        assert_eq!(r.take(&id(2, 6)).as_deref(), Some(&b"six"[..]));
        assert_eq!(r.take(&id(2, 6)), None, "taken once");
        assert_eq!(r.bytes, 0);
        // A request forgets its own leftovers, not a newer request's entry at the same index.
        let first = [(id(2, 7), Bytes::from_static(b"old"))];
        r.offer(&first);
        r.offer(&[(id(3, 7), Bytes::from_static(b"new"))]);
        r.forget(&first);
        assert_eq!(r.take(&id(3, 7)).as_deref(), Some(&b"new"[..]));
        assert_eq!((r.bodies.len(), r.bytes), (0, 0));
    }

    #[test]
    fn received_bodies_are_bounded() {
        let mut r = Received::default();
        for i in 0..(RECENT_ENTRIES as u64 + 10) {
            r.offer(&[(id(1, i), Bytes::from_static(b"x"))]);
            assert!(r.bodies.len() <= RECENT_ENTRIES && r.bytes == r.bodies.len());
        }
    }
}
