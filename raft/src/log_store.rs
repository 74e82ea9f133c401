//! The Raft log (`RaftLogStorage`): entries in the WAL's segment files ([`crate::wal`]); vote,
//! purge point and node id in sled; the committed log id in the file `<raft dir>/committed`.
//!
//! Durability (see `reference/raft-storage.md` §2.5):
//! * `append` writes the entries with one `pwrite` to the WAL (readable on return), then
//!   `fdatasync`s the segment, and only then calls the flush callback. Concurrent client writes
//!   share one entry (`node::writes`), and a follower's batch shares one sync.
//! * `save_vote` is durable before it returns (a node must never vote twice in a term).
//! * `truncate` is durable before it returns.
//! * `purge` makes `last_purged` durable first, then removes segments; entries at or below
//!   `last_purged` are never read, and their segments are removed at the next open. It first
//!   waits until the state machine has applied (or installed) the purged entries: openraft
//!   0.9's follower asks for the purge up to a snapshot it is still installing, in parallel
//!   with the install, and a purge made durable before the install would, after a crash in
//!   between, leave entries that are neither in the log nor in the state machine. The sled
//!   `sync` that makes `last_purged` durable also makes the state machine (same sled database)
//!   durable up to the purge point, so the state machine never needs an fsync of its own
//!   before that: after a crash it is re-applied from the log.
//! * `save_committed` is not synced: losing it only means re-applying from the state machine's
//!   durable `last_applied`.
//!
//! Records: `format (u8 = 4) | CRC-32(format ‖ index BE ‖ body) (u32 LE) | body`, the body
//! being the entry in its binary form ([`crate::entry_codec`]); the checksum binds the entry to
//! its index and its format, so a damaged record or one moved to another index is refused when
//! read (and the entry's own index is checked against it after decoding). The checksum guards
//! against damage (torn or misdirected writes, bit rot), not against a writer of the disk, who
//! could recompute it; CRC-32 (etcd's WAL uses CRC-32C) costs a tenth of SHA-256 on every
//! append of every node. Older records are still read (a WAL holds them until its old segments
//! are purged): format 3 (`3 | CRC-32(index BE ‖ JSON) | JSON(Entry)`, written by builds
//! before `4ba462b`) and format 2 (`2 | SHA-256(index BE ‖ JSON) | JSON`, before `b6372ab`).
//!
//! Tree `log_meta` holds `format` (of the layout: 2 = entries in the WAL; 1 = entries in the
//! sled tree `log`, migrated to the WAL at the first open), `vote`, `last_purged` (JSON),
//! `node_id`, and `committed` as builds before `1d23338` wrote it (still read). Records of
//! format 1 (`1 | JSON(Entry)`, written before checksums) are still read from a layout-1 tree
//! and rewritten with checksums when migrated.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader, StorageIOError, Vote};
use sha2::{Digest as _, Sha256};

use crate::db::Db;
use crate::error::RaftError;
use crate::types::{LogEntry, LogId, NodeId, OrStorageError, TypeConfig};
use crate::wal::{Wal, WalError};

/// Format of the layout (the `format` key of `log_meta`): 2 = entries in the WAL.
pub const LOG_FORMAT: u8 = 2;
/// The layout before the WAL: entries in the sled tree `log` (migrated at open).
const LOG_FORMAT_SLED_TREE: u8 = 1;
/// Format of the log records this build writes (binary, with a CRC-32 checksum).
pub const RECORD_FORMAT: u8 = 4;
/// Format of log records holding JSON with a CRC-32 checksum; still read.
const RECORD_FORMAT_JSON: u8 = 3;
/// Format of log records holding JSON with a SHA-256 checksum; still read.
const RECORD_FORMAT_SHA256: u8 = 2;
/// Format of log records written before checksums; still read.
const RECORD_FORMAT_V1: u8 = 1;

pub(crate) const KEY_FORMAT: &[u8] = b"format";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_NODE_ID: &[u8] = b"node_id";
const KEY_ADMITTED: &[u8] = b"admitted";

/// The log store. Cheap to clone (the log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    wal: Arc<Wal>,
    meta: sled::Tree,
    /// Index covered by the durable snapshot file, which `purge` waits for (none: a log store on its
    /// own, as in openraft's storage suite).
    snapshot_index: Option<tokio::sync::watch::Receiver<u64>>,
    /// The newest entries, decoded: replication reads what was just appended without reading
    /// it back from disk, verifying its checksum and decoding it once per follower.
    recent: Arc<Mutex<Recent>>,
    /// Bodies of entries received from the leader, written to the WAL as they came.
    received: Arc<Mutex<Received>>,
    /// `<raft dir>/committed`: the committed log id, written in place on every commit (see
    /// [`LogStore::save_committed`]).
    committed: Arc<std::fs::File>,
}

use crate::log_parts::{decode_committed, encode_committed, Received, Recent, COMMITTED_FILE};

/// How long a purge waits for a snapshot file that covers the entries it removes before the
/// storage fails (and the node stops): a snapshot install that takes longer is stuck.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.db.dir()).finish()
    }
}

fn read_err(e: impl std::fmt::Display) -> OrStorageError {
    StorageIOError::<NodeId>::read_logs(AnyError::error(e)).into()
}

fn write_err(e: impl std::fmt::Display) -> OrStorageError {
    StorageIOError::<NodeId>::write_logs(AnyError::error(e)).into()
}

/// Length of a record's checksum.
const CHECKSUM_LEN: usize = 4;
/// Length of the checksum of a format-2 record.
const SHA256_LEN: usize = 32;

/// The checksum of a record of this build: `CRC-32(format ‖ index BE ‖ body)`, little-endian.
/// It detects damage to a record and its move to another index; the format byte is covered
/// because a record of format 3 has a checksum of the same length (over `index ‖ JSON`), and a
/// format byte changed from 4 to 3 must not pass as a JSON record.
fn checksum(index: u64, body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = crc32fast::Hasher::new();
    h.update(&[RECORD_FORMAT]);
    h.update(&index.to_be_bytes());
    h.update(body);
    h.finalize().to_le_bytes()
}

/// The checksum of a format-3 record: `CRC-32(index BE ‖ json)`, little-endian.
fn checksum_json(index: u64, json: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_be_bytes());
    h.update(json);
    h.finalize().to_le_bytes()
}

/// The checksum of a format-2 record: `SHA-256(index BE ‖ json)`.
fn checksum_sha256(index: u64, json: &[u8]) -> [u8; SHA256_LEN] {
    let mut h = Sha256::new();
    h.update(index.to_be_bytes());
    h.update(json);
    h.finalize().into()
}

/// What a record of format 2, 3 or 4 holds, once its checksum is verified.
enum Body<'a> {
    Binary(&'a [u8]),
    Json(&'a [u8]),
}

/// The body of a record of format 4, 3 or 2 once its checksum is verified, `None` for another
/// format, or why not.
fn checked_body(index: u64, raw: &[u8]) -> Result<Option<Body<'_>>, String> {
    let Some((&format, rest)) = raw.split_first() else { return Ok(None) };
    let sum_len = match format {
        RECORD_FORMAT | RECORD_FORMAT_JSON => CHECKSUM_LEN,
        RECORD_FORMAT_SHA256 => SHA256_LEN,
        _ => return Ok(None),
    };
    if rest.len() < sum_len {
        return Err(format!("log record {index} is truncated"));
    }
    let (sum, body) = rest.split_at(sum_len);
    let good = match format {
        RECORD_FORMAT => checksum(index, body).as_slice() == sum,
        RECORD_FORMAT_JSON => checksum_json(index, body).as_slice() == sum,
        _ => checksum_sha256(index, body).as_slice() == sum,
    };
    if !good {
        return Err(format!("log record {index} is damaged (checksum mismatch)"));
    }
    Ok(Some(if format == RECORD_FORMAT { Body::Binary(body) } else { Body::Json(body) }))
}

/// Where an entry's body starts in its record (after the format byte and the checksum).
pub(crate) const RECORD_BODY_AT: usize = 1 + CHECKSUM_LEN;

/// `format | checksum | body` (the body at [`RECORD_BODY_AT`]).
pub(crate) fn encode_entry(entry: &LogEntry) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(256);
    out.push(RECORD_FORMAT);
    out.extend_from_slice(&[0; CHECKSUM_LEN]);
    crate::entry_codec::encode(entry, &mut out)?;
    let (head, body) = out.split_at_mut(RECORD_BODY_AT);
    head[1..].copy_from_slice(&checksum(entry.get_log_id().index, body));
    Ok(out)
}

/// The log record of an entry whose binary form is `body` (as [`encode_entry`] writes it).
pub(crate) fn record_of_body(index: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_BODY_AT + body.len());
    out.push(RECORD_FORMAT);
    out.extend_from_slice(&checksum(index, body));
    out.extend_from_slice(body);
    out
}

/// Decodes the record stored under `key` (the big-endian index), verifying its checksum and
/// that it holds the entry of that index.
pub(crate) fn decode_entry(key: &[u8], raw: &[u8]) -> Result<LogEntry, String> {
    let index = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| "log record key is not a big-endian u64".to_owned())?;
    let json = |json: &[u8]| -> Result<LogEntry, String> {
        serde_json::from_slice(json).map_err(|e| format!("undecodable log record {index}: {e}"))
    };
    let entry = match (checked_body(index, raw)?, raw.split_first()) {
        (Some(Body::Binary(body)), _) => {
            crate::entry_codec::decode(body).map_err(|e| format!("undecodable log record {index}: {e}"))?
        }
        (Some(Body::Json(body)), _) => json(body)?,
        (None, Some((&RECORD_FORMAT_V1, body))) => json(body)?,
        (None, Some((f, _))) => {
            return Err(format!(
                "log record format {f} is not supported by this build (expected {RECORD_FORMAT})"
            ))
        }
        (None, None) => return Err(format!("log record {index} is empty")),
    };
    if entry.get_log_id().index != index {
        return Err(format!("log record {index} holds the entry of index {}", entry.get_log_id().index));
    }
    Ok(entry)
}

pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    pub(crate) fn open(db: Arc<Db>) -> Result<Self, RaftError> {
        let meta = db.tree("log_meta")?;
        let io = |e: sled::Error| RaftError::Io(e.to_string());
        let format = match meta.get(KEY_FORMAT).map_err(io)? {
            None => None,
            Some(v) if v.as_ref() == [LOG_FORMAT] || v.as_ref() == [LOG_FORMAT_SLED_TREE] => Some(v[0]),
            Some(v) => {
                return Err(RaftError::Corrupt {
                    what: "raft log format".into(),
                    reason: format!(
                        "format {:?} is not supported by this build (expected {LOG_FORMAT})",
                        v.as_ref()
                    ),
                })
            }
        };
        let purged: Option<LogId> = match meta.get(KEY_LAST_PURGED).map_err(io)? {
            None => None,
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| RaftError::Corrupt {
                what: "raft log purge point".into(),
                reason: e.to_string(),
            })?,
        };
        let wal_dir = db.dir().join("wal");
        let tree = db.tree("log")?;
        if format == Some(LOG_FORMAT_SLED_TREE) {
            crate::log_parts::migrate_tree_to_wal(&db, &tree, &meta, &wal_dir, purged.map(|p| p.index))?;
        } else if format.is_none() {
            meta.insert(KEY_FORMAT, &[LOG_FORMAT]).map_err(io)?;
        }
        if !tree.is_empty() {
            // A migration that recorded format 2 and was stopped before clearing the tree.
            tree.clear().map_err(io)?;
        }
        let (wal, repaired) =
            Wal::open(&wal_dir, purged.map(|p| p.index), verify_record).map_err(wal_error)?;
        if let Some(what) = repaired {
            tracing::warn!(what, "raft log: repaired a write torn by a crash (never acknowledged)");
        }
        let committed_path = db.dir().join(COMMITTED_FILE);
        let committed = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&committed_path)
                .map_err(|e| RaftError::Io(format!("cannot open {}: {e}", committed_path.display())))?
        };
        Ok(Self {
            db,
            wal: Arc::new(wal),
            meta,
            snapshot_index: None,
            recent: Arc::default(),
            received: Arc::default(),
            committed: Arc::new(committed),
        })
    }

    fn meta_json<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, String> {
        match self.meta.get(key).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// The highest index from `from` on (from the first entry when `None`) that is missing
    /// while a later entry is present: a hole in the log (`None` when the entries are
    /// contiguous to the last one).
    pub(crate) fn highest_gap_from(&self, from: Option<u64>) -> Result<Option<u64>, String> {
        Ok(self.wal.highest_gap_from(from))
    }

    /// The cache of the newest entries, shared with replication (see [`Recent`]).
    pub(crate) fn recent_handle(&self) -> Arc<Mutex<Recent>> {
        Arc::clone(&self.recent)
    }

    /// Offers the bodies of the entries of an append-entries request as received (see
    /// [`Received`]); [`Self::forget_received`] when the request is done.
    pub(crate) fn offer_received(&self, entries: &[(LogId, Bytes)]) {
        self.received.lock().unwrap_or_else(|p| p.into_inner()).offer(entries);
    }

    /// Drops what the log did not take of a request's entries.
    pub(crate) fn forget_received(&self, entries: &[(LogId, Bytes)]) {
        self.received.lock().unwrap_or_else(|p| p.into_inner()).forget(entries);
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A failed write to the WAL stops the node like a failed fsync: what it holds after a
    /// partial write is unknown until the next open repairs or refuses it.
    fn fail_stop(&self, e: WalError) -> OrStorageError {
        let msg = format!("raft log write failed: {e}");
        self.db.fail_stop(&msg);
        write_err(msg)
    }

    /// Makes `purge` wait until the snapshot file covers the entries it removes (the state
    /// machine is in memory: the snapshot file and the log are all a restart has).
    pub(crate) fn purge_after_snapshot(&mut self, snapshot: tokio::sync::watch::Receiver<u64>) {
        self.snapshot_index = Some(snapshot);
    }

    pub(crate) fn last_purged(&self) -> Result<Option<LogId>, String> {
        self.meta_json(KEY_LAST_PURGED)
    }

    /// The node id recorded in this data directory, if any.
    pub(crate) fn stored_node_id(&self) -> Result<Option<NodeId>, RaftError> {
        match self.meta.get(KEY_NODE_ID).map_err(|e| RaftError::Io(e.to_string()))? {
            None => Ok(None),
            Some(raw) => {
                let arr: [u8; 8] = raw
                    .as_ref()
                    .try_into()
                    .map_err(|_| RaftError::Corrupt { what: "node id".into(), reason: "not a u64".into() })?;
                Ok(Some(u64::from_be_bytes(arr)))
            }
        }
    }

    /// Records the node id (durably) on first start.
    pub(crate) async fn record_node_id(&self, id: NodeId) -> Result<(), RaftError> {
        self.meta.insert(KEY_NODE_ID, &id.to_be_bytes()).map_err(|e| RaftError::Io(e.to_string()))?;
        self.db.sync().await.map_err(|e| RaftError::Io(e.to_string()))
    }

    /// True once the node was admitted to a cluster (bootstrap or join), see `node` (R13).
    pub(crate) fn is_admitted(&self) -> Result<bool, RaftError> {
        Ok(self.meta.get(KEY_ADMITTED).map_err(|e| RaftError::Io(e.to_string()))?.is_some())
    }

    /// Records admission durably.
    pub(crate) async fn record_admitted(&self) -> Result<(), RaftError> {
        self.meta.insert(KEY_ADMITTED, &[1]).map_err(|e| RaftError::Io(e.to_string()))?;
        self.db.sync().await.map_err(|e| RaftError::Io(e.to_string()))
    }

    /// The WAL (tests that damage or inspect it on disk).
    #[cfg(test)]
    pub(crate) fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Appends and syncs entries without openraft's flush callback (tests that build logs).
    #[cfg(test)]
    pub(crate) fn append_for_test(&self, entries: &[LogEntry]) -> Result<(), String> {
        let records: Vec<(u64, Vec<u8>)> = entries
            .iter()
            .map(|e| (e.get_log_id().index, encode_entry(e).map_err(|e| e.to_string())))
            .map(|(i, r)| r.map(|r| (i, r)))
            .collect::<Result<_, _>>()?;
        self.wal.append(&records, false).map_err(|e| e.to_string())?.run().map_err(|e| e.to_string())
    }

    /// The last saved committed index (informational).
    pub(crate) fn committed_index(&self) -> Option<u64> {
        self.stored_committed().ok().flatten().map(|l| l.index)
    }

    /// The newer of sled's and the file's committed log id.
    fn stored_committed(&self) -> Result<Option<LogId>, String> {
        use std::os::unix::fs::FileExt as _;
        let in_sled = self.meta_json::<Option<LogId>>(KEY_COMMITTED)?.flatten();
        let mut buf = vec![0u8; 512];
        let n = self.committed.read_at(&mut buf, 0).map_err(|e| e.to_string())?;
        let in_file = decode_committed(&buf[..n]);
        Ok(in_sled.max(in_file))
    }

    /// True when this store has never held a vote or a log entry.
    pub(crate) fn is_pristine(&self) -> Result<bool, RaftError> {
        let io = |e: sled::Error| RaftError::Io(e.to_string());
        Ok(self.meta.get(KEY_VOTE).map_err(io)?.is_none()
            && self.meta.get(KEY_LAST_PURGED).map_err(io)?.is_none()
            && self.wal.is_empty())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, OrStorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => match i.checked_add(1) {
                Some(s) => s,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(0) => return Ok(Vec::new()),
            Bound::Excluded(i) => i - 1,
            Bound::Unbounded => u64::MAX,
        };
        if start > end {
            return Ok(Vec::new());
        }
        if let Some(hit) = self.recent().get(start, end) {
            return Ok(hit);
        }
        let records = self.wal.read(start, end).map_err(read_err)?;
        records.iter().map(|(index, raw)| decode_entry(&index_key(*index), raw).map_err(read_err)).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, OrStorageError> {
        let last_purged_log_id = self.last_purged().map_err(read_err)?;
        let last = match self.wal.bounds() {
            None => None,
            Some((_, last)) => {
                let records = self.wal.read(last, last).map_err(read_err)?;
                let (index, raw) =
                    records.first().ok_or_else(|| read_err(format!("log entry {last} vanished")))?;
                Some(*decode_entry(&index_key(*index), raw).map_err(read_err)?.get_log_id())
            }
        };
        Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), OrStorageError> {
        let raw =
            serde_json::to_vec(vote).map_err(|e| StorageIOError::<NodeId>::write_vote(AnyError::new(&e)))?;
        self.meta
            .insert(KEY_VOTE, raw)
            .map_err(|e| StorageIOError::<NodeId>::write_vote(AnyError::new(&e)))?;
        self.db.sync().await.map_err(|e| StorageIOError::<NodeId>::write_vote(AnyError::new(&e)))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, OrStorageError> {
        self.meta_json(KEY_VOTE)
            .map_err(|_| StorageIOError::<NodeId>::read_vote(AnyError::error("bad vote")).into())
    }

    /// Written in place to `<raft dir>/committed` (one `pwrite`, no sync): it survives a killed
    /// process at once, and a node that did not stop cleanly re-applies its own log up to it
    /// before it can unseal and reach its peers (see `state_machine`). Only entries already
    /// durable in the log are ever committed. (Builds before `1d23338` also wrote it to sled's
    /// `log_meta`, which is still read: the newer of the two counts. Dropping that insert took
    /// 2.3 % off a follower's CPU under 64 writers.)
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), OrStorageError> {
        use std::os::unix::fs::FileExt as _;
        if let Some(c) = committed {
            let json = serde_json::to_vec(&c).map_err(write_err)?;
            if let Some(bytes) = encode_committed(&json) {
                self.committed.write_all_at(&bytes, 0).map_err(write_err)?;
            }
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, OrStorageError> {
        Ok(self.stored_committed().map_err(read_err)?)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), OrStorageError>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        let mut records = Vec::new();
        let mut decoded = Vec::new();
        {
            let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
            for entry in entries {
                let record = match received.take(entry.get_log_id()) {
                    Some(body) => record_of_body(entry.get_log_id().index, &body),
                    None => encode_entry(&entry).map_err(write_err)?,
                };
                records.push((entry.get_log_id().index, record));
                decoded.push(entry);
            }
        }
        let to_sync = self.wal.append(&records, false).map_err(|e| self.fail_stop(e))?;
        {
            let mut recent = self.recent();
            for (entry, (_, raw)) in decoded.into_iter().zip(records) {
                let size = raw.len();
                recent.push(entry, size, Bytes::from(raw).slice(RECORD_BODY_AT.min(size)..));
            }
        }
        // Acknowledge only once the entries are on stable storage.
        match self.db.sync_wal(to_sync).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(e));
                Err(write_err(msg))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), OrStorageError> {
        self.recent().truncate(log_id.index);
        let to_sync = self.wal.truncate(log_id.index).map_err(|e| self.fail_stop(e))?;
        self.db.sync_wal(to_sync).await.map_err(write_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), OrStorageError> {
        if self.last_purged().map_err(write_err)? >= Some(log_id) {
            return Ok(());
        }
        if let Some(covered) = &self.snapshot_index {
            let mut covered = covered.clone();
            let waited = tokio::time::timeout(PURGE_WAIT, covered.wait_for(|a| *a >= log_id.index)).await;
            match waited {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => {
                    return Err(write_err(
                        "the state machine stopped before a snapshot covered the purged entries",
                    ))
                }
                Err(_) => {
                    return Err(write_err(format!(
                        "no snapshot file covered {log_id} within {PURGE_WAIT:?}; not purging"
                    )))
                }
            }
        }
        let raw = serde_json::to_vec(&log_id).map_err(write_err)?;
        self.meta.insert(KEY_LAST_PURGED, raw).map_err(write_err)?;
        self.db.sync().await.map_err(write_err)?;
        self.recent().purge(log_id.index);
        self.wal.purge(log_id.index).map_err(|e| {
            self.db.fail_stop(&e.to_string());
            StorageIOError::<NodeId>::new(ErrorSubject::Logs, ErrorVerb::Delete, AnyError::error(e)).into()
        })
    }
}

/// Checks a record's format and checksum without decoding its body (the WAL's open scan).
pub(crate) fn verify_record(index: u64, raw: &[u8]) -> Result<(), String> {
    match (checked_body(index, raw)?, raw.first()) {
        (Some(_), _) => Ok(()),
        (None, Some(f)) => Err(format!("log record {index} has format {f} (expected {RECORD_FORMAT})")),
        (None, None) => Err(format!("log record {index} is empty")),
    }
}

pub(crate) fn wal_error(e: WalError) -> RaftError {
    match e {
        WalError::Corrupt(reason) => RaftError::Corrupt { what: "raft log".into(), reason },
        WalError::Io(m) => RaftError::Io(m),
    }
}
