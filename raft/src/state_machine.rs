//! The replicated state machine on sled (`RaftStateMachine`) and its snapshots.
//!
//! * `apply` writes every entry's batch (its preconditions checked first), `last_applied` and
//!   the membership with plain sled writes while readers are held off (`Shared::readers`, an
//!   async lock: a waiting reader never blocks a worker thread): no sled transaction, whose IO
//!   buffer sled writes out twice, each through its thread pool. Each key an entry puts is
//!   stored at version = the entry's log index. Applying never reads a clock or randomness and
//!   never panics: an entry that cannot be applied (unknown format, invalid key) yields
//!   [`ApplyResult::Rejected`] and writes nothing.
//! * No sled transaction or `apply_batch` runs anywhere in the node's database. sled's
//!   concurrency control is process-wide and starts lock-free; the first transaction switches
//!   it to a lock, under load. The first version of this design still installed snapshots in a
//!   transaction, and the chaos soak hung a node that was being sent a snapshot (every worker
//!   thread blocked: readers then waited on a blocking lock); see `bench/SOAK.md`.
//! * `apply` is not fsynced: the log is (the WAL), and it holds every entry after the newest
//!   snapshot file. While a node runs, `sm_meta` holds a `dirty` marker (set durably at open,
//!   removed durably after a clean stop's last apply). A node that finds it at open did not
//!   stop cleanly and may hold part of an apply: its state machine is rebuilt from the snapshot
//!   file and openraft re-applies the log from there ("rebuildable from snapshot + log",
//!   `reference/raft-storage.md`).
//! * A snapshot is a consistent dump taken while applies are excluded (`Shared::apply_lock`),
//!   written with temp file + fsync + rename + fsync of the directory. Installing one verifies
//!   it completely, writes the file the same way, then replaces the contents (plain writes,
//!   readers excluded; a crash in between is completed from the file at the next open) and
//!   announces [`Changes::All`].
//!
//! Records: tree `sm_data` maps a storage key to `format (u8 = 1) | version u64 BE | value`;
//! tree `sm_meta` holds `format`, `last_applied` and `membership` (JSON).

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use coffer_storage::{ChangeFeed, Changes};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use sha2::{Digest as _, Sha256};
use sled::transaction::ConflictableTransactionError;

use crate::apply::{apply_command, needs_scan};
pub(crate) use crate::apply::{decode_record, record_version, RECORD_FORMAT, STAGE_PREFIX};
use crate::db::{write_file_durably, Db};
use crate::error::RaftError;
use crate::snapshot;
use crate::types::{
    entry_version, ApplyResult, LogEntry, LogId, NodeId, OrStorageError, SnapshotMeta, StoredMembership,
    TypeConfig,
};

const KEY_FORMAT: &[u8] = b"format";
const KEY_LAST_APPLIED: &[u8] = b"last_applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
/// Present while a node runs (and after it crashed): the state machine may hold part of an
/// apply, so the next open rebuilds it from the snapshot file and the log.
const KEY_DIRTY: &[u8] = b"dirty";
const SNAPSHOT_FILE: &str = "current.snap";

/// State shared by the state machine, its snapshot builders and the read side.
pub(crate) struct Shared {
    db: Arc<Db>,
    pub(crate) data: sled::Tree,
    meta: sled::Tree,
    snapshot_dir: PathBuf,
    /// Readers of the data tree take it for reading, writers (applies, installs, the clean
    /// stop) for writing, so a reader never sees part of an apply. An async lock: a reader that
    /// waits for an apply yields its worker thread instead of blocking it.
    readers: tokio::sync::RwLock<()>,
    /// Serializes the writers with consistent dumps (taken after `readers`, never held across
    /// an await).
    apply_lock: Mutex<()>,
    /// Serializes writes of the snapshot file.
    file_lock: Mutex<()>,
    pub(crate) changes: ChangeFeed,
    /// Snapshots installed from a leader since the node started (metrics).
    pub(crate) snapshot_installs: std::sync::atomic::AtomicU64,
    /// Index of the last entry applied (or installed through a snapshot), published after the
    /// transaction that records it: the log store's `purge` waits on it (see [`LogStore`]).
    ///
    /// [`LogStore`]: crate::log_store::LogStore
    applied_index: tokio::sync::watch::Sender<u64>,
}

/// A consistent view of the state machine.
pub(crate) struct Dump {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
}

fn sm_read_err(e: impl std::fmt::Display) -> OrStorageError {
    StorageIOError::<NodeId>::read_state_machine(AnyError::error(e)).into()
}

fn sm_write_err(e: impl std::fmt::Display) -> OrStorageError {
    StorageIOError::<NodeId>::write_state_machine(AnyError::error(e)).into()
}

fn plain_err(e: sled::Error) -> crate::apply::ApplyError {
    ConflictableTransactionError::Abort(e.to_string())
}

fn snap_err(e: impl std::fmt::Display) -> OrStorageError {
    StorageIOError::<NodeId>::write_snapshot(None, AnyError::error(e)).into()
}

impl Shared {
    pub(crate) fn open(db: Arc<Db>) -> Result<Arc<Self>, RaftError> {
        let data = db.tree("sm_data")?;
        let meta = db.tree("sm_meta")?;
        let io = |e: sled::Error| RaftError::Io(e.to_string());
        match meta.get(KEY_FORMAT).map_err(io)? {
            None => {
                meta.insert(KEY_FORMAT, &[RECORD_FORMAT]).map_err(io)?;
            }
            Some(v) if v.as_ref() == [RECORD_FORMAT] => {}
            Some(v) => {
                return Err(RaftError::Corrupt {
                    what: "state machine format".into(),
                    reason: format!(
                        "format {:?} is not supported by this build (expected {RECORD_FORMAT})",
                        v.as_ref()
                    ),
                })
            }
        }
        let snapshot_dir = db.dir().join("snapshots");
        coffer_storage::sled_store::create_private_dir(&snapshot_dir)
            .map_err(|e| RaftError::Io(e.to_string()))?;
        let applied: Option<LogId> = match meta.get(KEY_LAST_APPLIED).map_err(io)? {
            None => None,
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| RaftError::Corrupt {
                what: "state machine last_applied".into(),
                reason: e.to_string(),
            })?,
        };
        let (applied_index, _) = tokio::sync::watch::channel(applied.map_or(0, |l| l.index));
        Ok(Arc::new(Self {
            db,
            data,
            meta,
            snapshot_dir,
            readers: tokio::sync::RwLock::new(()),
            apply_lock: Mutex::new(()),
            file_lock: Mutex::new(()),
            changes: ChangeFeed::new(),
            snapshot_installs: std::sync::atomic::AtomicU64::new(0),
            applied_index,
        }))
    }

    /// Readers hold this while reading the data tree, so they never see part of an apply.
    pub(crate) async fn read_guard(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.readers.read().await
    }

    fn writer_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.apply_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called once before the node applies anything. When the previous run did not end with
    /// [`Shared::mark_clean`] (it crashed, or was killed), the state machine may hold part of an
    /// apply (applies write without transactions and are not synced): it is rebuilt from the
    /// snapshot file (or emptied when there is none), and openraft re-applies the log from
    /// there — the log always holds every entry after the newest snapshot. Then the marker is
    /// set, durably, for this run.
    pub(crate) fn recover_and_mark_dirty(&self) -> Result<bool, RaftError> {
        let io = |e: sled::Error| RaftError::Io(e.to_string());
        let corrupt = |reason: String| RaftError::Corrupt { what: "raft snapshot".into(), reason };
        let crashed = self.meta.get(KEY_DIRTY).map_err(io)?.is_some();
        if crashed {
            // Before the node serves anything: the locks are free.
            let _readers = self.readers.try_write().map_err(|e| RaftError::Io(e.to_string()))?;
            match self.read_snapshot_file().map_err(corrupt)? {
                Some((meta, bytes)) => {
                    let decoded = snapshot::decode(&bytes).map_err(corrupt)?;
                    if decoded.meta.last_log_id != meta.last_log_id {
                        return Err(corrupt("the snapshot file's contents do not match its metadata".into()));
                    }
                    self.replace_locked(decoded).map_err(corrupt)?;
                }
                None => {
                    let _g = self.writer_lock();
                    self.data.clear().map_err(io)?;
                    self.meta.remove(KEY_LAST_APPLIED).map_err(io)?;
                    self.meta.remove(KEY_MEMBERSHIP).map_err(io)?;
                }
            }
            let (applied, _) = self.applied_state().map_err(corrupt)?;
            self.applied_index.send_replace(applied.map_or(0, |l| l.index));
            tracing::warn!(
                ?applied,
                "the node did not stop cleanly: state machine rebuilt from its snapshot; the log is re-applied"
            );
        }
        self.meta.insert(KEY_DIRTY, &[1]).map_err(io)?;
        self.db.sync_blocking().map_err(RaftError::Io)?;
        Ok(crashed)
    }

    /// After the last apply of a clean stop: everything applied made durable, then the marker
    /// removed (durably), so the next open trusts the state machine as it is.
    /// Runs on a blocking thread.
    pub(crate) fn mark_clean(&self) -> Result<(), String> {
        let _readers = self.readers.blocking_write();
        let _g = self.writer_lock();
        self.db.sync_blocking()?;
        self.meta.remove(KEY_DIRTY).map_err(|e| e.to_string())?;
        self.db.sync_blocking()
    }

    /// The database (tests reach the trees through it).
    #[cfg(test)]
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshot_dir.join(SNAPSHOT_FILE)
    }

    fn meta_json<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, String> {
        match self.meta.get(key).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// `(last_applied, membership)` as stored.
    pub(crate) fn applied_state(&self) -> Result<(Option<LogId>, StoredMembership), String> {
        let last = self.meta_json::<Option<LogId>>(KEY_LAST_APPLIED)?.flatten();
        let membership = self.meta_json::<StoredMembership>(KEY_MEMBERSHIP)?.unwrap_or_default();
        Ok((last, membership))
    }

    /// A consistent dump (applies are excluded while it is taken).
    pub(crate) fn dump(&self) -> Result<Dump, String> {
        let _g = self.writer_lock();
        let (last_applied, membership) = self.applied_state()?;
        let mut records = Vec::new();
        for item in self.data.iter() {
            let (k, v) = item.map_err(|e| e.to_string())?;
            records.push((k.to_vec(), v.to_vec()));
        }
        Ok(Dump { last_applied, membership, records })
    }

    /// `(applied index, SHA-256 over the applied state)`: equal on every replica at the same
    /// applied index (the state machine is deterministic).
    pub(crate) fn digest(&self) -> Result<(u64, [u8; 32]), String> {
        let dump = self.dump()?;
        let index = dump.last_applied.map(|l| l.index).unwrap_or(0);
        let mut h = Sha256::new();
        h.update(index.to_be_bytes());
        for (k, v) in &dump.records {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k);
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
        }
        Ok((index, h.finalize().into()))
    }

    /// Encodes a dump as snapshot bytes with fresh metadata.
    pub(crate) fn encode_dump(dump: &Dump) -> Result<(SnapshotMeta, Vec<u8>), String> {
        let index = dump.last_applied.map(|l| l.index).unwrap_or(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let meta = SnapshotMeta {
            last_log_id: dump.last_applied,
            last_membership: dump.membership.clone(),
            snapshot_id: format!("{index}-{nanos}"),
        };
        let bytes = snapshot::encode(&meta, &dump.records)?;
        Ok((meta, bytes))
    }

    /// Stores `bytes` as the current snapshot unless a newer one is already there.
    pub(crate) fn store_snapshot_file(&self, meta: &SnapshotMeta, bytes: &[u8]) -> Result<(), String> {
        let _g = self.file_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.read_snapshot_file()? {
            if existing.0.last_log_id > meta.last_log_id {
                return Ok(());
            }
        }
        write_file_durably(&self.snapshot_path(), bytes).map_err(|e| format!("cannot write snapshot: {e}"))
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

    /// Applies `segment` together with `last_applied` and membership (the caller holds the
    /// write locks).
    fn apply_segment(
        &self,
        segment: &[LogEntry],
        scan: Option<&[sled::IVec]>,
    ) -> Result<(Vec<ApplyResult>, Vec<Changes>), Box<OrStorageError>> {
        let Some(last) = segment.last().map(|e| e.log_id) else {
            return Ok((Vec::new(), Vec::new()));
        };
        let last_json = serde_json::to_vec(&Some(last)).map_err(|e| Box::new(sm_write_err(e)))?;
        let mut membership_json = None;
        for e in segment {
            if let EntryPayload::Membership(m) = &e.payload {
                let stored = StoredMembership::new(Some(e.log_id), m.clone());
                membership_json = Some(serde_json::to_vec(&stored).map_err(|e| Box::new(sm_write_err(e)))?);
            }
        }
        // Plain writes: no sled transaction (its IO buffer is written out twice, each write
        // handed to sled's thread pool). Readers are kept out by `readers`; a crash in the
        // middle is undone by the rebuild at the next open (see the module docs).
        let step = || -> Result<_, crate::apply::ApplyError> {
            let (results, changed) = apply_entries(&self.data, segment, scan)?;
            if let Some(mj) = &membership_json {
                self.meta.insert(KEY_MEMBERSHIP, mj.as_slice()).map_err(plain_err)?;
            }
            self.meta.insert(KEY_LAST_APPLIED, last_json.as_slice()).map_err(plain_err)?;
            Ok((results, changed))
        };
        let outcome = step().map_err(|e| {
            let msg = match e {
                ConflictableTransactionError::Abort(m) => m,
                other => format!("{other:?}"),
            };
            Box::new(OrStorageError::from(StorageIOError::<NodeId>::apply(last, AnyError::error(msg))))
        })?;
        self.publish_applied(last.index);
        Ok(outcome)
    }

    /// Replaces the whole state with a verified snapshot. Runs on a blocking thread.
    pub(crate) fn replace_with(&self, decoded: snapshot::Decoded) -> Result<(), String> {
        let _readers = self.readers.blocking_write();
        self.replace_locked(decoded)
    }

    /// [`Shared::replace_with`] at start, before the node serves anything (from async code: the
    /// locks are free then).
    pub(crate) fn replace_at_start(&self, decoded: snapshot::Decoded) -> Result<(), String> {
        let _readers = self.readers.try_write().map_err(|e| format!("state machine busy at start: {e}"))?;
        self.replace_locked(decoded)
    }

    /// [`Shared::replace_with`] once readers are excluded: plain writes, like applies (a crash
    /// in the middle is undone at the next open: the snapshot file is written first).
    fn replace_locked(&self, decoded: snapshot::Decoded) -> Result<(), String> {
        let _g = self.writer_lock();
        let incoming: BTreeSet<&[u8]> = decoded.records.iter().map(|(k, _)| k.as_slice()).collect();
        let mut stale = Vec::new();
        for item in self.data.iter().keys() {
            let k = item.map_err(|e| e.to_string())?;
            if !incoming.contains(k.as_ref()) {
                stale.push(k);
            }
        }
        let last = serde_json::to_vec(&decoded.meta.last_log_id).map_err(|e| e.to_string())?;
        let membership = serde_json::to_vec(&decoded.meta.last_membership).map_err(|e| e.to_string())?;
        let err = |e: sled::Error| e.to_string();
        for k in &stale {
            self.data.remove(k).map_err(err)?;
        }
        for (k, v) in &decoded.records {
            self.data.insert(k.as_slice(), v.as_slice()).map_err(err)?;
        }
        self.meta.insert(KEY_MEMBERSHIP, membership.as_slice()).map_err(err)?;
        self.meta.insert(KEY_LAST_APPLIED, last.as_slice()).map_err(err)?;
        // An installed snapshot may be older than what was applied (openraft does not install
        // those, but the watch only ever moves forward).
        self.publish_applied(decoded.meta.last_log_id.map_or(0, |l| l.index));
        Ok(())
    }
}

/// Applies the entries of a segment to the data tree, in order.
fn apply_entries(
    d: &impl crate::apply::DataTree,
    segment: &[LogEntry],
    scan: Option<&[sled::IVec]>,
) -> Result<(Vec<ApplyResult>, Vec<Changes>), crate::apply::ApplyError> {
    let mut results = Vec::with_capacity(segment.len());
    let mut changed = Vec::new();
    for e in segment {
        match &e.payload {
            EntryPayload::Blank | EntryPayload::Membership(_) => results.push(ApplyResult::Noop),
            EntryPayload::Normal(cmd) => {
                let (r, change) = apply_command(d, cmd, e.log_id.index, scan)?;
                changed.extend(change);
                results.push(r);
            }
        }
    }
    Ok((results, changed))
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

/// Builds a snapshot from a dump taken when openraft asked for the builder.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    dump: Result<Dump, String>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, OrStorageError> {
        let dump =
            std::mem::replace(&mut self.dump, Err("snapshot builder used twice".into())).map_err(snap_err)?;
        // The state machine must be durable up to the snapshot before logs may be purged.
        self.shared.db.sync().await.map_err(snap_err)?;
        let shared = Arc::clone(&self.shared);
        let (meta, bytes) = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let (meta, bytes) = Shared::encode_dump(&dump)?;
            shared.store_snapshot_file(&meta, &bytes)?;
            Ok((meta, bytes))
        })
        .await
        .map_err(snap_err)?
        .map_err(snap_err)?;
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
            let _g = self.shared.writer_lock();
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
                let scan = if needs_scan(&segment[0]) {
                    let mut keys = Vec::new();
                    for k in self.shared.data.iter().keys() {
                        keys.push(k.map_err(sm_read_err)?);
                    }
                    Some(keys)
                } else {
                    None
                };
                let (r, c) = self.shared.apply_segment(segment, scan.as_deref()).map_err(|e| *e)?;
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
        SnapshotBuilder { shared: Arc::clone(&self.shared), dump: self.shared.dump() }
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
        sm.shared.data.get(key).unwrap().map(|raw| {
            let e = decode_record(key, &raw).unwrap();
            (e.value, e.version)
        })
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
        let keys: Vec<_> = sm.shared.data.iter().keys().map(|k| k.unwrap().to_vec()).collect();
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
