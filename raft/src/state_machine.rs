//! The replicated state machine (`RaftStateMachine`), held in memory, and its snapshots.
//!
//! * The records live in an ordered map in memory ([`State`]), rebuilt at every open from the
//!   newest snapshot file, after which openraft re-applies the log up to the committed index
//!   before the node serves anything (`get_initial_state`). The log (the WAL) always holds every
//!   entry after the newest snapshot file: snapshots are written (temp file + fsync + rename +
//!   fsync of the directory) before openraft may purge what they cover, and a purge waits for
//!   the state machine to have applied it. This is "rebuildable from snapshot + log"
//!   (`reference/raft-storage.md`), the shape of openraft's own examples and of Databend's meta
//!   service; the state machine needs no fsync of its own and no crash marker.
//!   An earlier version kept the records in sled trees (`sm_data`, `sm_meta`): sled's
//!   copy-on-write insert (a whole leaf cloned and logged per key) was 14 µs of every replicated
//!   write on each of the three nodes (`bench/RESULTS.md`). Those trees are dropped at open.
//! * `apply` writes every entry's batch (its preconditions checked first), `last_applied` and
//!   the membership while readers are held off (`Shared::readers`, an async lock: a waiting
//!   reader never blocks a worker thread). Each key an entry puts is stored at version = the
//!   entry's log index. Applying never reads a clock or randomness, never fails and never
//!   panics: an entry that cannot be applied (unknown format, invalid key) yields
//!   [`ApplyResult::Rejected`] and writes nothing.
//! * A snapshot is a consistent dump (applies are excluded while it is copied). Installing one
//!   verifies it completely, writes the file durably, then replaces the contents (readers
//!   excluded) and announces [`Changes::All`].
//! * Memory: every record is held once in memory (storage keys and barrier-sealed values; no
//!   plaintext secret is ever in a record), plus a second copy while a snapshot is built.
//!
//! Records: the map holds, per storage key, `format (u8 = 1) | version u64 BE | value`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use coffer_storage::{ChangeFeed, Changes};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use sha2::{Digest as _, Sha256};

use crate::apply::{apply_command, needs_scan};
pub(crate) use crate::apply::{decode_record, record_version, STAGE_PREFIX};
use crate::db::{write_file_durably, Db};
use crate::error::RaftError;
use crate::snapshot;
use crate::types::{
    entry_version, ApplyResult, LogEntry, LogId, NodeId, OrStorageError, SnapshotMeta, StoredMembership,
    TypeConfig,
};

/// sled trees of the version that kept the records in sled; dropped at open.
const LEGACY_TREES: [&str; 2] = ["sm_data", "sm_meta"];
const SNAPSHOT_FILE: &str = "current.snap";
/// How much of the snapshot file [`Shared::store_snapshot_file`] reads to find its metadata
/// (the membership of a cluster of any sane size fits many times over).
const PEEK_BYTES: u64 = 64 * 1024;

/// The state machine's contents.
#[derive(Default)]
pub(crate) struct State {
    /// Storage key → record.
    pub(crate) records: BTreeMap<Vec<u8>, Vec<u8>>,
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
}

/// State shared by the state machine, its snapshot builders and the read side.
pub(crate) struct Shared {
    db: Arc<Db>,
    state: RwLock<State>,
    snapshot_dir: PathBuf,
    /// Readers of the records take it for reading, writers (applies, installs) for writing,
    /// before they take `state`: a reader that waits for a long install yields its worker
    /// thread instead of blocking it (the chaos soak once stopped every worker of a node on a
    /// blocking lock). `state` itself is then never contended by readers and writers.
    readers: tokio::sync::RwLock<()>,
    /// Serializes writes of the snapshot file.
    file_lock: Mutex<()>,
    pub(crate) changes: ChangeFeed,
    /// Snapshots installed from a leader since the node started (metrics).
    pub(crate) snapshot_installs: std::sync::atomic::AtomicU64,
    /// Index of the last entry applied (or installed through a snapshot), published after the
    /// apply that records it: the log store's `purge` waits on it (see [`LogStore`]).
    ///
    /// [`LogStore`]: crate::log_store::LogStore
    applied_index: tokio::sync::watch::Sender<u64>,
    /// Index of the last entry the durable snapshot file covers, published once the file is
    /// written: the log store's `purge` waits on it, so every entry is always in the log or in
    /// the snapshot file (the state machine itself is in memory).
    snapshot_index: tokio::sync::watch::Sender<u64>,
}

/// A consistent view of the state machine (tests compare snapshots with it).
#[cfg(test)]
pub(crate) struct Dump {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Snapshot metadata for the state at `last_applied`, with a fresh id.
fn fresh_meta(last_applied: Option<LogId>, membership: StoredMembership) -> SnapshotMeta {
    let index = last_applied.map(|l| l.index).unwrap_or(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id: format!("{index}-{nanos}"),
    }
}

fn sm_read_err(e: impl std::fmt::Display) -> OrStorageError {
    StorageIOError::<NodeId>::read_state_machine(AnyError::error(e)).into()
}

fn snap_err(e: impl std::fmt::Display) -> OrStorageError {
    StorageIOError::<NodeId>::write_snapshot(None, AnyError::error(e)).into()
}

impl Shared {
    /// An empty state machine over `db`'s directory; [`Shared::load_at_open`] fills it.
    pub(crate) fn open(db: Arc<Db>) -> Result<Arc<Self>, RaftError> {
        let snapshot_dir = db.dir().join("snapshots");
        coffer_storage::sled_store::create_private_dir(&snapshot_dir)
            .map_err(|e| RaftError::Io(e.to_string()))?;
        let (applied_index, _) = tokio::sync::watch::channel(0);
        let (snapshot_index, _) = tokio::sync::watch::channel(0);
        Ok(Arc::new(Self {
            db,
            state: RwLock::new(State::default()),
            snapshot_dir,
            readers: tokio::sync::RwLock::new(()),
            file_lock: Mutex::new(()),
            changes: ChangeFeed::new(),
            snapshot_installs: std::sync::atomic::AtomicU64::new(0),
            applied_index,
            snapshot_index,
        }))
    }

    /// Readers hold this while reading the records, so they never see part of an apply.
    pub(crate) async fn read_guard(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.readers.read().await
    }

    /// The contents, for reading (readers take [`Shared::read_guard`] first).
    pub(crate) fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Empties the contents (tests reuse one state machine across cases).
    #[cfg(test)]
    pub(crate) fn clear_for_tests(&self) {
        *self.state_mut() = State::default();
    }

    /// Called once before the node applies anything: loads the newest snapshot file (if any);
    /// openraft then re-applies the log from there. Drops the sled trees of the version that
    /// kept the records in sled (what they held is in the snapshot file and the log).
    pub(crate) fn load_at_open(&self) -> Result<(), RaftError> {
        let corrupt = |reason: String| RaftError::Corrupt { what: "raft snapshot".into(), reason };
        if let Some((meta, bytes)) = self.read_snapshot_file().map_err(corrupt)? {
            let decoded = snapshot::decode(&bytes).map_err(corrupt)?;
            if decoded.meta.last_log_id != meta.last_log_id {
                return Err(corrupt("the snapshot file's contents do not match its metadata".into()));
            }
            self.replace_at_start(decoded).map_err(corrupt)?;
            self.publish_snapshot(meta.last_log_id);
        }
        let names = self.db.db.tree_names();
        for legacy in LEGACY_TREES {
            if names.iter().any(|n| n.as_ref() == legacy.as_bytes()) {
                self.db
                    .db
                    .drop_tree(legacy)
                    .map_err(|e| RaftError::Io(format!("cannot drop the old tree {legacy}: {e}")))?;
                tracing::info!(tree = legacy, "dropped the state machine's old sled tree");
            }
        }
        Ok(())
    }

    /// Follows the index the durable snapshot file covers.
    pub(crate) fn snapshot_index(&self) -> tokio::sync::watch::Receiver<u64> {
        self.snapshot_index.subscribe()
    }

    fn publish_snapshot(&self, last: Option<LogId>) {
        let index = last.map_or(0, |l| l.index);
        self.snapshot_index.send_if_modified(|a| {
            let newer = index > *a;
            if newer {
                *a = index;
            }
            newer
        });
    }

    /// Follows the index of the last applied (or installed) entry.
    pub(crate) fn applied_index(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_index.subscribe()
    }

    fn publish_applied(&self, index: u64) {
        self.applied_index.send_if_modified(|a| {
            let newer = index > *a;
            if newer {
                *a = index;
            }
            newer
        });
    }

    /// Applies `segment` together with `last_applied` and membership (the caller holds
    /// `readers` for writing).
    fn apply_segment(
        &self,
        segment: &[LogEntry],
        scan: Option<&[Vec<u8>]>,
    ) -> (Vec<ApplyResult>, Vec<Changes>) {
        let Some(last) = segment.last().map(|e| e.log_id) else {
            return (Vec::new(), Vec::new());
        };
        let mut state = self.state_mut();
        let (results, changed) = apply_entries(&mut state.records, segment, scan);
        for e in segment {
            if let EntryPayload::Membership(m) = &e.payload {
                state.membership = StoredMembership::new(Some(e.log_id), m.clone());
            }
        }
        state.last_applied = Some(last);
        drop(state);
        self.publish_applied(last.index);
        (results, changed)
    }

    /// Replaces the whole state with a verified snapshot. Runs on a blocking thread.
    pub(crate) fn replace_with(&self, decoded: snapshot::Decoded) -> Result<(), String> {
        let _readers = self.readers.blocking_write();
        self.replace_locked(decoded);
        Ok(())
    }

    /// [`Shared::replace_with`] at start, before the node serves anything (from async code: the
    /// locks are free then).
    pub(crate) fn replace_at_start(&self, decoded: snapshot::Decoded) -> Result<(), String> {
        let _readers = self.readers.try_write().map_err(|e| format!("state machine busy at start: {e}"))?;
        self.replace_locked(decoded);
        Ok(())
    }

    /// [`Shared::replace_with`] once readers are excluded.
    fn replace_locked(&self, decoded: snapshot::Decoded) {
        let records: BTreeMap<Vec<u8>, Vec<u8>> = decoded.records.into_iter().collect();
        let index = decoded.meta.last_log_id.map_or(0, |l| l.index);
        let old = {
            let mut state = self.state_mut();
            let old = std::mem::replace(&mut state.records, records);
            state.last_applied = decoded.meta.last_log_id;
            state.membership = decoded.meta.last_membership;
            old
        };
        drop(old); // freed outside the lock
                   // An installed snapshot may be older than what was applied (openraft does not install
                   // those, but the watch only ever moves forward).
        self.publish_applied(index);
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshot_dir.join(SNAPSHOT_FILE)
    }

    /// `(last_applied, membership)`.
    pub(crate) fn applied_state(&self) -> Result<(Option<LogId>, StoredMembership), String> {
        let state = self.state();
        Ok((state.last_applied, state.membership.clone()))
    }

    /// A consistent dump (applies are excluded while it is copied).
    #[cfg(test)]
    pub(crate) fn dump(&self) -> Result<Dump, String> {
        let state = self.state();
        let records = state.records.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(Dump { last_applied: state.last_applied, membership: state.membership.clone(), records })
    }

    /// `(applied index, SHA-256 over the applied state)`: equal on every replica at the same
    /// applied index (the state machine is deterministic).
    pub(crate) fn digest(&self) -> Result<(u64, [u8; 32]), String> {
        let state = self.state();
        let index = state.last_applied.map(|l| l.index).unwrap_or(0);
        let mut h = Sha256::new();
        h.update(index.to_be_bytes());
        for (k, v) in &state.records {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k);
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
        }
        Ok((index, h.finalize().into()))
    }

    /// Encodes a dump as snapshot bytes with fresh metadata.
    #[cfg(test)]
    pub(crate) fn encode_dump(dump: &Dump) -> Result<(SnapshotMeta, Vec<u8>), String> {
        let meta = fresh_meta(dump.last_applied, dump.membership.clone());
        let bytes = snapshot::encode(&meta, &dump.records)?;
        Ok((meta, bytes))
    }

    /// A snapshot of the applied state as it is now, with fresh metadata.
    pub(crate) fn encode_current(&self) -> Result<(SnapshotMeta, Vec<u8>), String> {
        let (meta, body) = self.encode_current_body()?;
        Ok((meta, snapshot::seal(body)))
    }

    /// [`Self::encode_current`] without the checksum: the records are written straight into
    /// the snapshot's bytes while applies are held off (one copy, no allocation per record;
    /// the copy into a dump it replaced allocated twice per record).
    pub(crate) fn encode_current_body(&self) -> Result<(SnapshotMeta, Vec<u8>), String> {
        let state = self.state();
        let meta = fresh_meta(state.last_applied, state.membership.clone());
        let size = state.records.iter().map(|(k, v)| k.len() + v.len()).sum();
        let records = state.records.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
        let body = snapshot::encode_body(&meta, records, size)?;
        Ok((meta, body))
    }

    /// Stores `bytes` as the current snapshot unless a newer one is already there.
    ///
    /// The file there is judged by its header alone when the header names an older snapshot
    /// (then it is replaced whatever the rest of it holds); only one that claims to be newer is
    /// read and verified whole before it is kept. Reading and verifying every snapshot whole
    /// before replacing it cost 1.2 % of a follower's CPU under 64 writers.
    pub(crate) fn store_snapshot_file(&self, meta: &SnapshotMeta, bytes: &[u8]) -> Result<(), String> {
        let _g = self.file_lock.lock().unwrap_or_else(|p| p.into_inner());
        let older = self.peek_snapshot_file().is_some_and(|m| m.last_log_id <= meta.last_log_id);
        if !older {
            if let Some(existing) = self.read_snapshot_file()? {
                if existing.0.last_log_id > meta.last_log_id {
                    self.publish_snapshot(existing.0.last_log_id);
                    return Ok(());
                }
            }
        }
        write_file_durably(&self.snapshot_path(), bytes)
            .map_err(|e| format!("cannot write snapshot: {e}"))?;
        self.publish_snapshot(meta.last_log_id);
        Ok(())
    }

    /// The metadata in the header of the snapshot file, unverified ([`snapshot::peek_meta`]).
    fn peek_snapshot_file(&self) -> Option<SnapshotMeta> {
        use std::io::Read as _;
        let mut head = Vec::new();
        let file = std::fs::File::open(self.snapshot_path()).ok()?;
        file.take(PEEK_BYTES).read_to_end(&mut head).ok()?;
        snapshot::peek_meta(&head)
    }

    pub(crate) fn read_snapshot_file(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, String> {
        match std::fs::read(self.snapshot_path()) {
            Ok(bytes) => {
                let meta = snapshot::decode_meta(&bytes)?;
                Ok(Some((meta, bytes)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read snapshot: {e}")),
        }
    }
}

/// Applies the entries of a segment to the data tree, in order.
fn apply_entries(
    d: &mut impl crate::apply::DataTree,
    segment: &[LogEntry],
    scan: Option<&[Vec<u8>]>,
) -> (Vec<ApplyResult>, Vec<Changes>) {
    let mut results = Vec::with_capacity(segment.len());
    let mut changed = Vec::new();
    for e in segment {
        match &e.payload {
            EntryPayload::Blank | EntryPayload::Membership(_) => results.push(ApplyResult::Noop),
            EntryPayload::Normal(cmd) => {
                let (r, change) = apply_command(d, cmd, e.log_id.index, scan);
                changed.extend(change);
                results.push(r);
            }
        }
    }
    (results, changed)
}

/// The state machine handed to openraft.
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateMachine")
    }
}

impl StateMachine {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// Builds a snapshot from the state copied when openraft asked for the builder (in the state
/// machine's task, so no apply waits on the copy while readers queue behind it); the checksum
/// and the file are done in a task of their own.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    /// The metadata and the snapshot's bytes without their checksum.
    body: Result<(SnapshotMeta, Vec<u8>), String>,
    /// How long the copy held applies off.
    copy_time: std::time::Duration,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, OrStorageError> {
        let (meta, body) =
            std::mem::replace(&mut self.body, Err("snapshot builder used twice".into())).map_err(snap_err)?;
        let started = std::time::Instant::now();
        // The state machine must be durable up to the snapshot before logs may be purged.
        self.shared.db.sync().await.map_err(snap_err)?;
        let shared = Arc::clone(&self.shared);
        let (meta, bytes) = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let bytes = snapshot::seal(body);
            shared.store_snapshot_file(&meta, &bytes)?;
            Ok((meta, bytes))
        })
        .await
        .map_err(snap_err)?
        .map_err(snap_err)?;
        // Vault logs its snapshots at info too; an operator sees how long applies waited.
        tracing::info!(
            index = meta.last_log_id.map(|l| l.index).unwrap_or(0),
            bytes = bytes.len(),
            copy_ms = self.copy_time.as_secs_f64() * 1e3,
            checksum_and_file_ms = started.elapsed().as_secs_f64() * 1e3,
            "snapshot built"
        );
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), OrStorageError> {
        self.shared.applied_state().map_err(sm_read_err)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, OrStorageError>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        let mut results = Vec::with_capacity(entries.len());
        let mut changed = Vec::new();
        {
            let _readers = self.shared.readers.write().await;
            // One segment per run of ordinary entries; a restore abort/commit gets its own,
            // after a scan of the keys as the preceding entries left them.
            let mut start = 0;
            while start < entries.len() {
                let end = if needs_scan(&entries[start]) {
                    start + 1
                } else {
                    entries[start..].iter().position(needs_scan).map_or(entries.len(), |p| start + p)
                };
                let segment = &entries[start..end];
                let scan = needs_scan(&segment[0])
                    .then(|| self.shared.state().records.keys().cloned().collect::<Vec<_>>());
                let (r, c) = self.shared.apply_segment(segment, scan.as_deref());
                results.extend(r);
                changed.extend(c);
                start = end;
            }
        }
        for c in changed {
            self.shared.changes.publish(c);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let started = std::time::Instant::now();
        let body = self.shared.encode_current_body();
        SnapshotBuilder { shared: Arc::clone(&self.shared), body, copy_time: started.elapsed() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, OrStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), OrStorageError> {
        let bytes = snapshot.into_inner();
        let decoded = snapshot::decode(&bytes).map_err(snap_err)?;
        if decoded.meta.last_log_id != meta.last_log_id
            || decoded.meta.last_membership != meta.last_membership
        {
            return Err(snap_err("snapshot contents do not match its metadata"));
        }
        let shared = Arc::clone(&self.shared);
        let meta2 = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            shared.store_snapshot_file(&meta2, &bytes)?;
            shared.replace_with(decoded)
        })
        .await
        .map_err(snap_err)?
        .map_err(snap_err)?;
        self.shared.db.sync().await.map_err(snap_err)?;
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        self.shared.snapshot_installs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shared.changes.publish(Changes::All { version: entry_version(index, 0) });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, OrStorageError> {
        let shared = Arc::clone(&self.shared);
        let found = tokio::task::spawn_blocking(move || shared.read_snapshot_file())
            .await
            .map_err(snap_err)?
            .map_err(|e| {
                OrStorageError::from(StorageIOError::<NodeId>::read_snapshot(None, AnyError::error(e)))
            })?;
        Ok(found.map(|(meta, bytes)| Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use coffer_storage::Batch;
    use openraft::{CommittedLeaderId, Entry};

    use super::*;
    use crate::db::FatalHook;
    use crate::types::{Action, Command, MAX_GROUP};

    fn sm() -> (tempfile::TempDir, StateMachine, tokio::sync::broadcast::Receiver<Changes>) {
        let dir = tempfile::tempdir().unwrap();
        let hook: FatalHook = Arc::new(|m: &str| panic!("fatal: {m}"));
        let db = Db::open(&dir.path().join("raft"), hook).unwrap();
        let shared = Shared::open(db).unwrap();
        let rx = shared.changes.subscribe().rx;
        (dir, StateMachine::new(shared), rx)
    }

    fn entry(index: u64, action: Action) -> LogEntry {
        Entry {
            log_id: openraft::LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::new(action, 0)),
        }
    }

    fn write(index: u64, batch: Batch) -> LogEntry {
        entry(index, Action::Write { batch })
    }

    fn value(sm: &StateMachine, key: &str) -> Option<(Vec<u8>, u64)> {
        sm.shared.state().records.get(key.as_bytes()).map(|raw| {
            let e = decode_record(key, &raw).unwrap();
            (e.value, e.version)
        })
    }

    /// A snapshot of the live state (records written straight into its bytes under the lock)
    /// decodes to exactly what a dump of that state holds, at the applied index, and verifies.
    #[tokio::test]
    async fn a_snapshot_of_the_live_state_is_the_dump_of_that_state() {
        let (_d, mut sm, _rx) = sm();
        let (meta, bytes) = sm.shared.encode_current().unwrap();
        let empty = snapshot::decode(&bytes).unwrap();
        assert!(empty.records.is_empty() && meta.last_log_id.is_none());
        let entries: Vec<LogEntry> = (1..=40u64)
            .map(|i| {
                let mut b = Batch::new().put(format!("k/{i:03}"), vec![i as u8; i as usize * 3]);
                if i % 7 == 0 {
                    b = b.delete(format!("k/{:03}", i - 1));
                }
                write(i, b)
            })
            .collect();
        sm.apply(entries).await.unwrap();
        let (meta, bytes) = sm.shared.encode_current().unwrap();
        let decoded = snapshot::decode(&bytes).unwrap();
        let dump = sm.shared.dump().unwrap();
        assert_eq!(meta.last_log_id.map(|l| l.index), Some(40));
        assert_eq!(decoded.meta.last_log_id, dump.last_applied);
        assert_eq!(decoded.meta.last_membership, dump.membership);
        assert_eq!(decoded.records, dump.records);
        assert_eq!(decoded.records.len(), 40 - 5);
        // Byte for byte what encoding the dump under the same metadata gives.
        assert_eq!(bytes, snapshot::encode(&meta, &dump.records).unwrap());
    }

    #[tokio::test]
    async fn bad_entries_are_rejected_without_panicking_and_write_nothing() {
        let (_d, mut sm, _rx) = sm();
        let mut unknown = Command::write(Batch::new().put("a", vec![1]), 0);
        unknown.format = 99;
        let results = sm
            .apply(vec![
                Entry {
                    log_id: openraft::LogId::new(CommittedLeaderId::new(1, 1), 1),
                    payload: EntryPayload::Normal(unknown),
                },
                write(2, Batch::new().put("ok", vec![1]).put("", vec![2])),
                write(3, Batch::new().put("bad\0key", vec![2])),
                write(4, Batch::new().put("x", vec![1]).require_version("ok", 2)),
            ])
            .await
            .unwrap();
        assert!(matches!(results[0], ApplyResult::Rejected { .. }), "{results:?}");
        assert!(matches!(results[1], ApplyResult::Rejected { .. }), "{results:?}");
        assert!(matches!(results[2], ApplyResult::Rejected { .. }), "{results:?}");
        assert!(matches!(results[3], ApplyResult::PreconditionFailed { .. }), "{results:?}");
        assert!(value(&sm, "a").is_none() && value(&sm, "ok").is_none() && value(&sm, "x").is_none());
        // Every entry still counts as applied.
        assert_eq!(sm.applied_state().await.unwrap().0.map(|l| l.index), Some(4));
    }

    #[tokio::test]
    async fn a_group_entry_applies_each_batch_alone_in_order() {
        let (_d, mut sm, mut rx) = sm();
        let batches = vec![
            Batch::new().put("k", vec![1]).require_absent("k"),
            // Sees batch 0's write: its precondition holds at batch 0's version.
            Batch::new().put("k", vec![2]).require_version("k", entry_version(3, 0)),
            // Fails alone (k is no longer at batch 0's version); batch 3 still applies.
            Batch::new().put("k", vec![9]).require_version("k", entry_version(3, 0)),
            Batch::new().put("other", vec![4]),
            Batch::new().put("bad\0key", vec![5]),
        ];
        let results = sm.apply(vec![entry(3, Action::WriteMany { batches })]).await.unwrap();
        let ApplyResult::Many(r) = &results[0] else { panic!("{results:?}") };
        assert_eq!(r[0], ApplyResult::Applied { version: entry_version(3, 0) });
        assert_eq!(r[1], ApplyResult::Applied { version: entry_version(3, 1) });
        assert_eq!(r[2], ApplyResult::PreconditionFailed { key: "k".into() });
        assert_eq!(r[3], ApplyResult::Applied { version: entry_version(3, 3) });
        assert!(matches!(r[4], ApplyResult::Rejected { .. }));
        assert_eq!(value(&sm, "k"), Some((vec![2], entry_version(3, 1))));
        assert_eq!(value(&sm, "other"), Some((vec![4], entry_version(3, 3))));
        let mut versions = Vec::new();
        while let Ok(Changes::Keys { version, .. }) = rx.try_recv() {
            versions.push(version);
        }
        assert_eq!(versions, vec![entry_version(3, 0), entry_version(3, 1), entry_version(3, 3)]);
        assert!(entry_version(4, 0) > entry_version(3, MAX_GROUP), "versions increase across entries");
    }

    #[tokio::test]
    async fn a_restore_in_one_apply_call_replaces_everything_at_the_commit_index() {
        let (_d, mut sm, mut rx) = sm();
        let results = sm
            .apply(vec![
                write(1, Batch::new().put("old/a", vec![1]).put("old/b", vec![2])),
                entry(2, Action::RestoreStage { batch: Batch::new().put("stale/x", vec![0]) }),
                entry(3, Action::RestoreAbort),
                entry(
                    4,
                    Action::RestoreStage { batch: Batch::new().put("old/a", vec![9]).put("new/c", vec![3]) },
                ),
                write(5, Batch::new().put("old/b", vec![5])),
                entry(6, Action::RestoreCommit),
                write(7, Batch::new().put("after", vec![7]).require_version("old/a", entry_version(6, 0))),
            ])
            .await
            .unwrap();
        assert!(results.iter().all(|r| matches!(r, ApplyResult::Applied { .. })), "{results:?}");
        assert_eq!(value(&sm, "old/a"), Some((vec![9], entry_version(6, 0))));
        assert_eq!(value(&sm, "new/c"), Some((vec![3], entry_version(6, 0))));
        assert_eq!(value(&sm, "old/b"), None, "keys outside the restored snapshot disappear");
        assert_eq!(value(&sm, "stale/x"), None, "aborted staging is never committed");
        assert_eq!(value(&sm, "after"), Some((vec![7], entry_version(7, 0))));
        let keys: Vec<_> = sm.shared.state().records.keys().cloned().collect();
        assert!(keys.iter().all(|k| !k.starts_with(STAGE_PREFIX)), "staging area left behind");
        let mut got = Vec::new();
        while let Ok(c) = rx.try_recv() {
            got.push(c);
        }
        assert!(got.contains(&Changes::All { version: entry_version(6, 0) }), "{got:?}");
    }

    /// A reader that waits while an apply or an install holds the state machine must not block
    /// its worker thread: with a blocking lock, one slow install (or a stalled write) stopped
    /// every worker of a node in the chaos soak, and the node answered nothing at all. Here the
    /// runtime has a single thread; the reader waits, and another task still runs on it.
    fn snap_meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(CommittedLeaderId::new(1, 1), index)),
            last_membership: Default::default(),
            snapshot_id: format!("{index}-1"),
        }
    }

    /// An older snapshot file is replaced, whatever its body holds; a newer one is kept only
    /// when it verifies whole.
    #[test]
    fn a_snapshot_replaces_an_older_file_and_keeps_a_verified_newer_one() {
        let (_d, sm, _rx) = sm();
        let shared = &sm.shared;
        let recs = |n: u8| vec![(b"k".to_vec(), vec![1, 0, 0, 0, 0, 0, 0, 0, n, 9])];
        let at = |i: u64| snapshot::encode(&snap_meta(i), &recs(i as u8)).unwrap();
        let stored = || shared.read_snapshot_file().unwrap().unwrap().0.last_log_id.unwrap().index;
        shared.store_snapshot_file(&snap_meta(5), &at(5)).unwrap();
        assert_eq!(stored(), 5);
        shared.store_snapshot_file(&snap_meta(3), &at(3)).unwrap();
        assert_eq!(stored(), 5, "a newer snapshot was replaced by an older one");
        // An older file with a damaged body is replaced (judged by its header).
        let mut damaged = at(5);
        let n = damaged.len();
        damaged[n - 40] ^= 1;
        std::fs::write(shared.snapshot_path(), &damaged).unwrap();
        shared.store_snapshot_file(&snap_meta(7), &at(7)).unwrap();
        assert_eq!(stored(), 7);
        // A file whose header claims a newer snapshot but does not verify is never kept silently.
        let mut damaged = at(9);
        let n = damaged.len();
        damaged[n - 40] ^= 1;
        std::fs::write(shared.snapshot_path(), &damaged).unwrap();
        assert!(shared.store_snapshot_file(&snap_meta(8), &at(8)).is_err());
    }

    #[test]
    fn a_reader_waiting_for_a_writer_does_not_block_its_thread() {
        let (_dir, sm, _rx) = sm();
        let shared = Arc::clone(&sm.shared);
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let w = Arc::clone(&shared);
        let writer = std::thread::spawn(move || {
            let _g = w.readers.blocking_write();
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        held_rx.recv().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let r = Arc::clone(&shared);
        let runner = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let reader = tokio::spawn(async move {
                    let _g = r.read_guard().await;
                });
                tokio::task::yield_now().await; // the reader is polled and waits
                let other = tokio::spawn(async { 7 });
                assert_eq!(other.await.unwrap(), 7);
                done_tx.send(()).unwrap();
                reader.await.unwrap();
            });
        });
        let progressed = done_rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok();
        release_tx.send(()).unwrap();
        assert!(progressed, "a reader waiting for the writer blocked the runtime's only thread");
        runner.join().unwrap();
        writer.join().unwrap();
    }
}
