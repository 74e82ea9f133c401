//! The node's one sled database and the durability rule every write path follows.
//!
//! sled 0.34's `flush()` is `pwrite` + `sync_file_range`: it survives a process crash but not a
//! power cut. `Db::sync` therefore flushes **and** `fsync`s sled's data file `<dir>/db` (the
//! same rule as `coffer_storage::sled_store`). A failed sync is fatal: the [`FatalHook`] runs
//! (the default exits the process with code 74) and the error is returned, so nothing is
//! acknowledged after the disk failed.
//!
//! Tree: `log_meta` (the log store's vote, purge point, ...; the state machine is in memory, see
//! [`crate::state_machine`]). The log's entries are in the WAL ([`crate::wal`]), synced
//! through [`Db::sync_wal`] under the same failure rule.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use coffer_storage::sled_store::FatalHook;

use crate::error::RaftError;

/// sled segment size. Items above a quarter of it (4 MiB) go to blob files that sled never
/// fsyncs, so log entries are capped well below that ([`crate::MAX_ENTRY_BYTES`]).
const SEGMENT_SIZE: usize = 16 * 1024 * 1024;

/// The default [`FatalHook`]: log and exit with code 74 (`EX_IOERR`), like the storage crate.
pub fn default_fatal(msg: &str) {
    tracing::error!(
        error = msg,
        "raft storage durability failure; stopping to avoid losing acknowledged writes"
    );
    std::process::exit(74);
}

/// Shared handle: the sled database, its data file and the sync lock.
pub(crate) struct Db {
    pub(crate) db: sled::Db,
    dir: PathBuf,
    data_file: File,
    fatal: FatalHook,
    /// Held while syncing: concurrent syncs queue instead of racing.
    sync_lock: tokio::sync::Mutex<()>,
    syncs: AtomicU64,
    fail_next_sync: std::sync::Mutex<Option<String>>,
    /// The fatal hook ran (it runs once, however many paths see the failure).
    failed: std::sync::atomic::AtomicBool,
}

impl Db {
    pub(crate) fn open(dir: &Path, fatal: FatalHook) -> Result<Arc<Self>, RaftError> {
        coffer_storage::sled_store::create_private_dir(dir).map_err(|e| RaftError::Io(e.to_string()))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 * 1024 * 1024)
            .segment_size(SEGMENT_SIZE)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| RaftError::Io(format!("cannot open raft store at {}: {e}", dir.display())))?;
        db.flush().map_err(|e| RaftError::Io(format!("sled flush failed: {e}")))?;
        let data_path = dir.join("db");
        let data_file = File::open(&data_path)
            .map_err(|e| RaftError::Io(format!("cannot open {}: {e}", data_path.display())))?;
        data_file.sync_all().map_err(|e| RaftError::Io(format!("fsync failed: {e}")))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| RaftError::Io(format!("fsync of {} failed: {e}", dir.display())))?;
        Ok(Arc::new(Self {
            db,
            dir: dir.to_owned(),
            data_file,
            fatal,
            sync_lock: tokio::sync::Mutex::new(()),
            syncs: AtomicU64::new(0),
            fail_next_sync: std::sync::Mutex::new(None),
            failed: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn tree(&self, name: &str) -> Result<sled::Tree, RaftError> {
        self.db.open_tree(name).map_err(|e| RaftError::Io(format!("cannot open tree {name}: {e}")))
    }

    /// Number of completed flush+fsync rounds.
    pub(crate) fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Runs the fatal hook (in production: the process exits), once.
    pub(crate) fn fail_stop(&self, msg: &str) {
        if !self.failed.swap(true, Ordering::SeqCst) {
            (self.fatal)(msg);
        }
    }

    /// Failure injection: the next sync fails with `msg` (tests of the fail-stop path).
    pub(crate) fn fail_next_sync(&self, msg: &str) {
        *self.fail_next_sync.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.to_owned());
    }

    /// Flush + fsync everything written so far. On failure the fatal hook runs first.
    pub(crate) async fn sync(self: &Arc<Self>) -> Result<(), std::io::Error> {
        let _guard = self.sync_lock.lock().await;
        let injected = self.injected_failure();
        let this = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || match injected {
            Some(msg) => Err(format!("fsync of raft data file failed: {msg}")),
            None => this.flush_and_fsync(),
        })
        .await;
        self.settle(joined(result)?)
    }

    /// [`Db::sync`] on the calling thread (start-up work outside the runtime's hot path).
    pub(crate) fn sync_blocking(&self) -> Result<(), String> {
        let result = match self.injected_failure() {
            Some(msg) => Err(format!("fsync of raft data file failed: {msg}")),
            None => self.flush_and_fsync(),
        };
        self.settle(result).map_err(|e| e.to_string())
    }

    /// Makes a WAL write durable (`fdatasync` of its segment, and of the directory when it
    /// changed), with the same failure rule as [`Db::sync`]. Counted in [`Db::sync_count`].
    pub(crate) async fn sync_wal(&self, to_sync: crate::wal::ToSync) -> Result<(), std::io::Error> {
        let injected = self.injected_failure();
        let result = tokio::task::spawn_blocking(move || match injected {
            Some(msg) => Err(format!("fsync of the raft log failed: {msg}")),
            None => to_sync.run().map_err(|e| format!("fsync of the raft log failed: {e}")),
        })
        .await;
        self.settle(joined(result)?)
    }

    fn injected_failure(&self) -> Option<String> {
        self.fail_next_sync
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .or_else(|| injected_sync_failure(&self.dir))
    }

    fn flush_and_fsync(&self) -> Result<(), String> {
        self.db.flush().map_err(|e| format!("sled flush failed: {e}"))?;
        self.data_file.sync_all().map_err(|e| format!("fsync of raft data file failed: {e}"))
    }

    fn settle(&self, result: Result<(), String>) -> Result<(), std::io::Error> {
        match result {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(msg) => {
                self.fail_stop(&msg);
                Err(std::io::Error::other(msg))
            }
        }
    }
}

/// The outcome of a blocking sync task. A task cancelled because the runtime is shutting down
/// is not a disk failure: an error (nothing is acknowledged), without the fatal hook. A sync
/// task that panicked is one.
fn joined(
    r: Result<Result<(), String>, tokio::task::JoinError>,
) -> Result<Result<(), String>, std::io::Error> {
    match r {
        Ok(r) => Ok(r),
        Err(e) if e.is_cancelled() => {
            Err(std::io::Error::other("sync cancelled: the runtime is shutting down"))
        }
        Err(e) => Ok(Err(format!("sync task failed: {e}"))),
    }
}

/// Fault injection for tests, in debug builds only: with `COFFER_FAULT_FAIL_SYNC=<name>` set, a
/// sync fails while a file `<name>` exists in the raft directory, so a test can make one chosen
/// node's next fsync fail from outside the process. Release builds never read it.
fn injected_sync_failure(dir: &Path) -> Option<String> {
    if !cfg!(debug_assertions) {
        return None;
    }
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let name = NAME.get_or_init(|| std::env::var("COFFER_FAULT_FAIL_SYNC").ok().filter(|n| !n.is_empty()));
    let name = name.as_deref()?;
    dir.join(name).exists().then(|| "injected failure (COFFER_FAULT_FAIL_SYNC)".to_owned())
}

/// Writes `bytes` to `path` durably: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_file_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().ok_or_else(|| std::io::Error::other("path has no parent directory"))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("snapshot")));
    {
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}
