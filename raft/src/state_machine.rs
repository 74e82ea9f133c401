//! The replicated state machine on sled (`RaftStateMachine`) and its snapshots.
//!
//! * `apply` runs **one sled transaction** per call that applies every entry's batch (its
//!   preconditions checked inside the transaction), `last_applied` and the membership. Each key
//!   an entry puts is stored at version = the entry's log index. Applying never reads a clock
//!   or randomness and never panics: an entry that cannot be applied (unknown format, invalid
//!   key) yields [`ApplyResult::Rejected`] and writes nothing.
//! * `apply` is not fsynced on its own: the log is, and openraft re-applies from the durable
//!   log after a crash. Before a snapshot is written (after which logs may be purged) the state
//!   machine is synced, so it is always durable at least up to the newest snapshot.
//! * A snapshot is a consistent dump taken while applies are excluded ([`Shared::apply_lock`]),
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

use coffer_storage::replication::written_keys;
use coffer_storage::{validate_key, Changes, Entry, Expect, Op};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use sha2::{Digest as _, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional, TransactionalTree};
use tokio::sync::broadcast;

use crate::db::{write_file_durably, Db};
use crate::error::RaftError;
use crate::snapshot;
use crate::types::{
    Action, ApplyResult, Command, LogEntry, LogId, NodeId, OrStorageError, SnapshotMeta, StoredMembership,
    TypeConfig, COMMAND_FORMAT,
};

/// Format of state machine records.
pub const RECORD_FORMAT: u8 = 1;
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
    pub(crate) changes: broadcast::Sender<Changes>,
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

fn record_version(raw: &[u8]) -> Option<u64> {
    if raw.len() < 9 || raw[0] != RECORD_FORMAT {
        return None;
    }
    let arr: [u8; 8] = raw[1..9].try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

impl Shared {
    pub(crate) fn open(db: Arc<Db>, changes: broadcast::Sender<Changes>) -> Result<Arc<Self>, RaftError> {
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
        Ok(Arc::new(Self {
            db,
            data,
            meta,
            snapshot_dir,
            apply_lock: RwLock::new(()),
            file_lock: Mutex::new(()),
            changes,
        }))
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
    fn store_snapshot_file(&self, meta: &SnapshotMeta, bytes: &[u8]) -> Result<(), String> {
        let _g = self.file_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.read_snapshot_file()? {
            if existing.0.last_log_id > meta.last_log_id {
                return Ok(());
            }
        }
        write_file_durably(&self.snapshot_path(), bytes).map_err(|e| format!("cannot write snapshot: {e}"))
    }

    fn read_snapshot_file(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, String> {
        match std::fs::read(self.snapshot_path()) {
            Ok(bytes) => {
                let meta = snapshot::decode_meta(&bytes)?;
                Ok(Some((meta, bytes)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read snapshot: {e}")),
        }
    }

    /// Replaces the whole state with a verified snapshot, in one transaction.
    fn replace_with(&self, decoded: snapshot::Decoded) -> Result<(), String> {
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
            .map_err(|e: TransactionError<String>| e.to_string())
    }
}

/// Outcome of one normal entry inside the apply transaction.
fn apply_command(
    d: &TransactionalTree,
    cmd: &Command,
    index: u64,
) -> Result<(ApplyResult, Vec<String>), ConflictableTransactionError<String>> {
    if cmd.format != COMMAND_FORMAT {
        return Ok((
            ApplyResult::Rejected {
                reason: format!("command format {} is not supported (expected {COMMAND_FORMAT})", cmd.format),
            },
            Vec::new(),
        ));
    }
    let Action::Write { batch } = &cmd.action;
    for key in batch.ops.iter().map(Op::key).chain(batch.preconditions.iter().map(|p| p.key.as_str())) {
        if let Err(e) = validate_key(key) {
            return Ok((ApplyResult::Rejected { reason: e.to_string() }, Vec::new()));
        }
    }
    for pre in &batch.preconditions {
        let current = d.get(pre.key.as_bytes())?;
        let ok = match pre.expect {
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current.as_deref().and_then(record_version) == Some(v),
        };
        if !ok {
            return Ok((ApplyResult::PreconditionFailed { key: pre.key.clone() }, Vec::new()));
        }
    }
    for op in &batch.ops {
        match op {
            Op::Delete { key } => {
                d.remove(key.as_bytes())?;
            }
            Op::Put { key, value } => {
                d.insert(key.as_bytes(), encode_record(index, value))?;
            }
        }
    }
    Ok((ApplyResult::Applied { version: index }, written_keys(batch)))
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
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(Vec::new());
        };
        let last_json = serde_json::to_vec(&Some(last)).map_err(sm_write_err)?;
        let mut membership_json = None;
        for e in &entries {
            if let EntryPayload::Membership(m) = &e.payload {
                let stored = StoredMembership::new(Some(e.log_id), m.clone());
                membership_json = Some(serde_json::to_vec(&stored).map_err(sm_write_err)?);
            }
        }
        let shared = Arc::clone(&self.shared);
        let outcome = {
            let _g = shared.apply_lock.write().unwrap_or_else(|p| p.into_inner());
            (&shared.data, &shared.meta).transaction(|(d, m)| {
                let mut results = Vec::with_capacity(entries.len());
                let mut changed = Vec::new();
                for e in &entries {
                    match &e.payload {
                        EntryPayload::Blank | EntryPayload::Membership(_) => results.push(ApplyResult::Noop),
                        EntryPayload::Normal(cmd) => {
                            let (r, keys) = apply_command(d, cmd, e.log_id.index)?;
                            if !keys.is_empty() {
                                changed.push(Changes::Keys { version: e.log_id.index, keys: keys.into() });
                            }
                            results.push(r);
                        }
                    }
                }
                m.insert(KEY_LAST_APPLIED, last_json.as_slice())?;
                if let Some(mj) = &membership_json {
                    m.insert(KEY_MEMBERSHIP, mj.as_slice())?;
                }
                Ok((results, changed))
            })
        };
        let (results, changed) = outcome.map_err(|e: TransactionError<String>| {
            OrStorageError::from(StorageIOError::<NodeId>::apply(last, AnyError::error(e)))
        })?;
        for c in changed {
            // No receivers is fine.
            let _ = self.shared.changes.send(c);
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
        let _ = self.shared.changes.send(Changes::All { version: index });
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
