//! The replicated state machine on sled (`RaftStateMachine`) and its snapshots.
//!
//! * `apply` runs **one sled transaction** per call that applies every entry's batch (its
//!   preconditions checked inside the transaction), `last_applied` and the membership. Each key
//!   an entry puts is stored at version = the entry's log index. Applying never reads a clock
//!   or randomness and never panics: an entry that cannot be applied (unknown format, invalid
//!   key) yields [`ApplyResult::Rejected`] and writes nothing.
//! * `apply` is not fsynced on its own: the log is (the WAL), and openraft re-applies from it
//!   after a crash, up to the committed index (kept in sled and in `<raft dir>/committed`).
//!   Before a snapshot is written (after which logs may be purged) the state machine is
//!   synced, so it is always durable at least up to the newest snapshot.
//! * A snapshot is a consistent dump taken while applies are excluded (`Shared::apply_lock`),
//!   written with temp file + fsync + rename + fsync of the directory. Installing one verifies
//!   it completely, writes the file the same way, then replaces the contents in one
//!   transaction and announces [`Changes::All`].
//!
//! Records: tree `sm_data` maps a storage key to `format (u8 = 1) | version u64 BE | value`;
//! tree `sm_meta` holds `format`, `last_applied` and `membership` (JSON).

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use coffer_storage::{ChangeFeed, Changes};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use sha2::{Digest as _, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

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
const SNAPSHOT_FILE: &str = "current.snap";

/// State shared by the state machine, its snapshot builders and the read side.
pub(crate) struct Shared {
    db: Arc<Db>,
    pub(crate) data: sled::Tree,
    meta: sled::Tree,
    snapshot_dir: PathBuf,
    /// Applies take it for writing; consistent dumps for reading.
    apply_lock: RwLock<()>,
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
            apply_lock: RwLock::new(()),
            file_lock: Mutex::new(()),
            changes: ChangeFeed::new(),
            snapshot_installs: std::sync::atomic::AtomicU64::new(0),
            applied_index,
        }))
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
        let _g = self.apply_lock.read().unwrap_or_else(|p| p.into_inner());
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

    /// Applies `segment` in one transaction together with `last_applied` and membership.
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
        let outcome = (&self.data, &self.meta).transaction(|(d, m)| {
            let (results, changed) = apply_entries(d, segment, scan)?;
            m.insert(KEY_LAST_APPLIED, last_json.as_slice())?;
            if let Some(mj) = &membership_json {
                m.insert(KEY_MEMBERSHIP, mj.as_slice())?;
            }
            Ok((results, changed))
        });
        let outcome = outcome.map_err(|e: TransactionError<String>| {
            Box::new(OrStorageError::from(StorageIOError::<NodeId>::apply(last, AnyError::error(e))))
        })?;
        self.publish_applied(last.index);
        Ok(outcome)
    }

    /// Replaces the whole state with a verified snapshot, in one transaction.
    pub(crate) fn replace_with(&self, decoded: snapshot::Decoded) -> Result<(), String> {
        let _g = self.apply_lock.write().unwrap_or_else(|p| p.into_inner());
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
        (&self.data, &self.meta)
            .transaction(|(d, m)| {
                for k in &stale {
                    d.remove(k)?;
                }
                for (k, v) in &decoded.records {
                    d.insert(k.as_slice(), v.as_slice())?;
                }
                m.insert(KEY_LAST_APPLIED, last.as_slice())?;
                m.insert(KEY_MEMBERSHIP, membership.as_slice())?;
                Ok::<(), ConflictableTransactionError<String>>(())
            })
            .map_err(|e: TransactionError<String>| e.to_string())?;
        // An installed snapshot may be older than what was applied (openraft does not install
        // those, but the watch only ever moves forward).
        self.publish_applied(decoded.meta.last_log_id.map_or(0, |l| l.index));
        Ok(())
    }
}

/// Applies the entries of a segment to the data tree, in order (inside the apply transaction).
fn apply_entries(
    d: &sled::transaction::TransactionalTree,
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
            let _g = self.shared.apply_lock.write().unwrap_or_else(|p| p.into_inner());
            // One transaction per run of ordinary entries; a restore abort/commit gets its own,
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
}
