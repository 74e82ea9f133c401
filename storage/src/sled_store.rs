//! Durable [`Storage`] on sled 0.34.7 — the only module of coffer that names sled.
//!
//! # Durability rules (see `reference/raft-storage.md` §2)
//!
//! sled 0.34's `flush()` writes its buffers with `pwrite` + `sync_file_range`, which survives a
//! process crash but not a power cut or kernel crash: it persists neither file metadata nor the
//! device cache. So [`SledStorage::apply`] acknowledges a batch only after
//!
//! 1. the batch committed in one sled transaction (preconditions checked inside it),
//! 2. `Db::flush()` wrote sled's buffers, and
//! 3. `File::sync_all()` on sled's data file `<dir>/db` (opened once at start) returned `Ok`.
//!
//! Concurrent writers share steps 2–3 (group commit): a writer waits for the sync lock, and if a
//! sync that started after its commit already completed, it returns at once; otherwise it syncs
//! everything committed so far, for itself and every writer queued behind it.
//!
//! Values are capped at [`MAX_VALUE_SIZE`], well below sled's blob threshold (a quarter of the
//! 8 MiB segment): sled writes larger items to separate blob files that it never fsyncs.
//!
//! A failed flush or fsync is fatal: the process exits with a message (see [`FatalHook`]), so no
//! write is ever acknowledged after the disk failed us.
//!
//! # On-disk record format
//!
//! Tree `data`: key = storage key (UTF-8), value = `format (u8 = 1) | version (u64 BE) | bytes`.
//! Tree `meta`: `format` = `1`, `version` = last assigned version (u64 BE).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::{children, validate_key, Batch, Entry, Expect, Op, Storage, StorageError};

/// Largest value accepted in one entry (1 MiB, Vault's raft `max_entry_size`).
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;
/// sled segment size; items above a quarter of it become never-synced blob files.
const SEGMENT_SIZE: usize = 8 * 1024 * 1024;
const RECORD_FORMAT: u8 = 1;
const META_FORMAT_KEY: &[u8] = b"format";
const META_VERSION_KEY: &[u8] = b"version";

/// Called when the store can no longer guarantee durability; must not return normally in
/// production (the default exits the process).
pub type FatalHook = Arc<dyn Fn(&str) + Send + Sync>;

/// sled-backed storage with fsync-before-acknowledge and group commit.
pub struct SledStorage {
    db: sled::Db,
    data: sled::Tree,
    meta: sled::Tree,
    dir: PathBuf,
    /// `<dir>/db`, opened once; `sync_all` on it makes sled's flushed writes durable.
    data_file: Arc<File>,
    /// Highest version committed to sled's memory.
    committed: AtomicU64,
    /// Highest version known to be on stable storage. Holding the lock = being the syncer.
    synced: tokio::sync::Mutex<u64>,
    fatal: FatalHook,
    syncs: AtomicU64,
    /// Failure injection for tests: the next sync reports this error.
    fail_next_sync: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for SledStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStorage").field("dir", &self.dir).finish()
    }
}

fn io<E: std::fmt::Display>(e: E) -> StorageError {
    StorageError::Io(e.to_string())
}

impl SledStorage {
    /// Opens (or creates) the store in `dir`, with the default fatal hook (exit the process).
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with_hook(dir, Arc::new(default_fatal))
    }

    /// Opens the store with a custom reaction to durability failures (tests).
    pub fn open_with_hook(dir: &Path, fatal: FatalHook) -> Result<Self, StorageError> {
        create_private_dir(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 * 1024 * 1024)
            .segment_size(SEGMENT_SIZE)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| StorageError::Io(format!("cannot open sled store at {}: {e}", dir.display())))?;
        let data = db.open_tree("data").map_err(io)?;
        let meta = db.open_tree("meta").map_err(io)?;
        match meta.get(META_FORMAT_KEY).map_err(io)? {
            None => {
                meta.insert(META_FORMAT_KEY, &[RECORD_FORMAT]).map_err(io)?;
            }
            Some(v) if v.as_ref() == [RECORD_FORMAT] => {}
            Some(v) => {
                return Err(StorageError::Corrupt {
                    key: "meta/format".into(),
                    reason: format!(
                        "store format {:?} is not supported by this build (expected {RECORD_FORMAT})",
                        v.as_ref()
                    ),
                })
            }
        }
        let committed = match meta.get(META_VERSION_KEY).map_err(io)? {
            None => 0,
            Some(v) => decode_u64(&v).ok_or_else(|| StorageError::Corrupt {
                key: "meta/version".into(),
                reason: "not a u64".into(),
            })?,
        };
        db.flush().map_err(io)?;
        let data_path = dir.join("db");
        let data_file = File::open(&data_path)
            .map_err(|e| StorageError::Io(format!("cannot open {}: {e}", data_path.display())))?;
        data_file.sync_all().map_err(io)?;
        // The directory entry of a newly created data file must be durable too.
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        restrict_permissions(dir)?;
        Ok(Self {
            db,
            data,
            meta,
            dir: dir.to_owned(),
            data_file: Arc::new(data_file),
            committed: AtomicU64::new(committed),
            synced: tokio::sync::Mutex::new(committed),
            fatal,
            syncs: AtomicU64::new(0),
            fail_next_sync: std::sync::Mutex::new(None),
        })
    }

    /// Directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of flush+fsync rounds performed since open (group-commit tests read it).
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Makes the next flush+fsync fail with `msg` (failure injection for tests of the fail-stop
    /// path; the data itself is untouched).
    pub fn fail_next_sync(&self, msg: &str) {
        *self.fail_next_sync.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.to_owned());
    }

    /// Makes every write up to `version` durable, sharing the sync with concurrent writers.
    async fn make_durable(&self, version: u64) -> Result<(), StorageError> {
        let mut synced = self.synced.lock().await;
        if *synced >= version {
            return Ok(());
        }
        // Everything committed so far is covered by this sync: transactions serialise on the
        // version counter, so every version <= target has committed to sled's memory.
        let target = self.committed.load(Ordering::SeqCst);
        let injected = self.fail_next_sync.lock().unwrap_or_else(|p| p.into_inner()).take();
        let db = self.db.clone();
        let file = Arc::clone(&self.data_file);
        let result = tokio::task::spawn_blocking(move || -> Result<(), String> {
            if let Some(msg) = injected {
                return Err(format!("fsync of sled data file failed: {msg}"));
            }
            db.flush().map_err(|e| format!("sled flush failed: {e}"))?;
            file.sync_all().map_err(|e| format!("fsync of sled data file failed: {e}"))?;
            Ok(())
        })
        .await
        .map_err(|e| format!("sync task failed: {e}"))
        .and_then(|r| r);
        match result {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                *synced = target.max(version);
                Ok(())
            }
            Err(msg) => {
                // Fail-stop: the data may or may not be on disk; acknowledging anything from
                // now on could lose it. The hook exits the process in production.
                (self.fatal)(&msg);
                Err(StorageError::Unavailable(msg))
            }
        }
    }
}

fn default_fatal(msg: &str) {
    tracing::error!(error = msg, "storage durability failure; stopping to avoid losing acknowledged writes");
    // A process that cannot sync must not keep acknowledging writes.
    std::process::exit(74);
}

fn decode_u64(b: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = b.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

fn encode_record(version: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    out.push(RECORD_FORMAT);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_record(key: &str, raw: &[u8]) -> Result<Entry, StorageError> {
    if raw.len() < 9 {
        return Err(StorageError::Corrupt { key: key.into(), reason: "record too short".into() });
    }
    if raw[0] != RECORD_FORMAT {
        return Err(StorageError::Corrupt {
            key: key.into(),
            reason: format!("unknown record format {}", raw[0]),
        });
    }
    let version = decode_u64(&raw[1..9])
        .ok_or_else(|| StorageError::Corrupt { key: key.into(), reason: "bad version".into() })?;
    Ok(Entry { value: raw[9..].to_vec(), version })
}

fn record_version(raw: &[u8]) -> Option<u64> {
    if raw.len() < 9 || raw[0] != RECORD_FORMAT {
        return None;
    }
    decode_u64(&raw[1..9])
}

/// Creates `dir` (and parents) with mode 0700, or tightens an existing one.
pub fn create_private_dir(dir: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StorageError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| StorageError::Io(format!("cannot chmod {}: {e}", dir.display())))
}

/// Sets 0700 on directories and 0600 on files below `dir`.
fn restrict_permissions(dir: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let ft = entry.file_type().map_err(io)?;
        if ft.is_dir() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
            restrict_permissions(&path)?;
        } else if ft.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    Ok(())
}

#[async_trait]
impl Storage for SledStorage {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        validate_key(key)?;
        match self.data.get(key.as_bytes()).map_err(io)? {
            None => Ok(None),
            Some(raw) => decode_record(key, &raw).map(Some),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        for item in self.data.scan_prefix(prefix.as_bytes()) {
            let (k, _) = item.map_err(io)?;
            let k = String::from_utf8(k.to_vec())
                .map_err(|_| StorageError::Corrupt { key: prefix.into(), reason: "non UTF-8 key".into() })?;
            keys.push(k);
        }
        Ok(children(prefix, keys.iter().map(String::as_str)))
    }

    async fn apply(&self, batch: Batch) -> Result<u64, StorageError> {
        for op in &batch.ops {
            validate_key(op.key())?;
            if let Op::Put { key, value } = op {
                if value.len() > MAX_VALUE_SIZE {
                    return Err(StorageError::TooLarge {
                        key: key.clone(),
                        size: value.len(),
                        max: MAX_VALUE_SIZE,
                    });
                }
            }
        }
        let data = self.data.clone();
        let meta = self.meta.clone();
        // sled transactions are blocking and may re-run their closure on conflict, so the
        // closure only borrows the batch.
        let outcome = tokio::task::spawn_blocking(move || {
            let r = (&data, &meta).transaction(|(data, meta)| {
                for pre in &batch.preconditions {
                    let current = data.get(pre.key.as_bytes())?;
                    let current_version = current.as_deref().and_then(record_version);
                    let ok = match pre.expect {
                        Expect::Absent => current.is_none(),
                        Expect::Version(v) => current_version == Some(v),
                    };
                    if !ok {
                        return Err(ConflictableTransactionError::Abort(pre.key.clone()));
                    }
                }
                let last = meta.get(META_VERSION_KEY)?.and_then(|v| decode_u64(&v)).unwrap_or(0);
                let version = last + 1;
                meta.insert(META_VERSION_KEY, &version.to_be_bytes())?;
                for op in &batch.ops {
                    match op {
                        Op::Delete { key } => {
                            data.remove(key.as_bytes())?;
                        }
                        Op::Put { key, value } => {
                            data.insert(key.as_bytes(), encode_record(version, value))?;
                        }
                    }
                }
                Ok(version)
            });
            r
        })
        .await
        .map_err(|e| StorageError::Io(format!("storage task failed: {e}")))?;
        let version = match outcome {
            Ok(v) => v,
            Err(TransactionError::Abort(key)) => return Err(StorageError::PreconditionFailed { key }),
            Err(TransactionError::Storage(e)) => return Err(io(e)),
        };
        self.committed.fetch_max(version, Ordering::SeqCst);
        self.make_durable(version).await?;
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStorage::open(&dir.path().join("store")).unwrap();
        crate::testing::conformance(&s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_concurrent() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStorage::open(&dir.path().join("store")).unwrap();
        crate::testing::conformance_concurrent(Arc::new(s)).await;
    }

    #[tokio::test]
    async fn data_survives_reopen_and_versions_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let v1 = {
            let s = SledStorage::open(&path).unwrap();
            s.apply(Batch::new().put("a/b", b"one".to_vec())).await.unwrap()
        };
        let s = SledStorage::open(&path).unwrap();
        let e = s.get("a/b").await.unwrap().unwrap();
        assert_eq!(e.value, b"one");
        assert_eq!(e.version, v1);
        let v2 = s.apply(Batch::new().put("c", b"two".to_vec())).await.unwrap();
        assert!(v2 > v1, "versions must keep increasing across restarts");
    }

    #[tokio::test]
    async fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let s = SledStorage::open(&path).unwrap();
        s.apply(Batch::new().put("k", vec![1; 10])).await.unwrap();
        drop(s);
        let _ = SledStorage::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mode = std::fs::metadata(path.join("db")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn a_failed_sync_is_fatal_and_never_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let fatal_calls = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let calls = Arc::clone(&fatal_calls);
        let hook: FatalHook = Arc::new(move |m: &str| calls.lock().unwrap().push(m.to_owned()));
        let s = SledStorage::open_with_hook(&dir.path().join("store"), hook).unwrap();
        s.apply(Batch::new().put("before", b"1".to_vec())).await.unwrap();
        s.fail_next_sync("EIO (injected)");
        let err = s.apply(Batch::new().put("k", b"v".to_vec())).await.unwrap_err();
        assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
        let calls = fatal_calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "the fatal hook (process exit in production) must run once");
        assert!(calls[0].contains("fsync") && calls[0].contains("EIO"), "{calls:?}");
    }

    #[test]
    fn the_default_hook_exits_the_process() {
        // Run the default hook in a child process: it must exit non-zero with a message.
        if std::env::var("COFFER_SLED_FATAL_CHILD").is_ok() {
            default_fatal("injected failure");
            unreachable!("default_fatal returned");
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args(["--exact", "sled_store::tests::the_default_hook_exits_the_process", "--nocapture"])
            .env("COFFER_SLED_FATAL_CHILD", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(74), "{}", String::from_utf8_lossy(&out.stderr));
    }

    #[tokio::test]
    async fn oversized_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStorage::open(&dir.path().join("store")).unwrap();
        let err = s.apply(Batch::new().put("big", vec![0; MAX_VALUE_SIZE + 1])).await.unwrap_err();
        assert!(matches!(err, StorageError::TooLarge { .. }), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_share_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SledStorage::open(&dir.path().join("store")).unwrap());
        let base = s.committed.load(Ordering::SeqCst);
        let before = s.sync_count();
        // Hold the syncer role so every writer commits and then queues behind it.
        let guard = s.synced.lock().await;
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                s.apply(Batch::new().put(format!("k{i}"), vec![i; 100])).await.unwrap()
            }));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while s.committed.load(Ordering::SeqCst) < base + 16 {
            assert!(std::time::Instant::now() < deadline, "writers did not commit");
            tokio::task::yield_now().await;
        }
        // Nobody may have been acknowledged yet: all wait for a sync.
        assert!(tasks.iter().all(|t| !t.is_finished()));
        drop(guard);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.sync_count() - before, 1, "one sync must cover all queued writers");
        for i in 0..16 {
            assert!(s.get(&format!("k{i}")).await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn precondition_failure_writes_nothing_and_needs_no_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStorage::open(&dir.path().join("store")).unwrap();
        s.apply(Batch::new().put("a", b"1".to_vec())).await.unwrap();
        let before = s.sync_count();
        let err = s.apply(Batch::new().put("b", b"2".to_vec()).require_absent("a")).await.unwrap_err();
        assert!(matches!(err, StorageError::PreconditionFailed { ref key } if key == "a"));
        assert!(s.get("b").await.unwrap().is_none());
        assert_eq!(s.sync_count(), before);
    }
}
