//! The chain head's persistence: the newest head a device has written is handed to a
//! background writer, which stores it behind the barrier at most every
//! [`HEAD_WRITE_INTERVAL`] and once more at close. A request never waits for a storage write,
//! and a stored head never names a line that is not in the file (heads are published only after
//! their line was appended).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffer_storage::Barrier;

use crate::audit::chain::{HeadRecord, Link};
use crate::audit::error::AuditError;

/// The background writer persists the chain head at most this often.
pub const HEAD_WRITE_INTERVAL: Duration = Duration::from_millis(100);

/// The newest head and its persistence, shared with the background writer.
pub struct HeadSync {
    barrier: Arc<Barrier>,
    storage_key: String,
    /// The newest head and its generation (bumped on every change).
    record: Mutex<(HeadRecord, u64)>,
    /// The generation last written to storage; also serialises writers.
    persisted: tokio::sync::Mutex<u64>,
    notify: tokio::sync::Notify,
    closed: AtomicBool,
    /// Head records written (for tests and diagnostics).
    writes: AtomicU64,
}

impl HeadSync {
    /// Starts the writer for `head`, stored at `storage_key`. `stored` says whether storage
    /// holds exactly this head already; if not, it is written before this returns. Spawns the
    /// background writer, so it must run inside a tokio runtime.
    pub async fn start(
        barrier: Arc<Barrier>,
        storage_key: String,
        head: HeadRecord,
        stored: bool,
        device: String,
    ) -> Result<Arc<Self>, AuditError> {
        let sync = Arc::new(HeadSync {
            barrier,
            storage_key,
            record: Mutex::new((head, 1)),
            persisted: tokio::sync::Mutex::new(0),
            notify: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            writes: AtomicU64::new(0),
        });
        if stored {
            *sync.persisted.lock().await = 1;
        } else {
            sync.persist().await?;
        }
        tokio::spawn(Arc::clone(&sync).run(device));
        Ok(sync)
    }

    /// Hands over a newer head; older ones (a concurrent writer that finished later) are
    /// ignored, so callers need not publish in order.
    pub fn publish(&self, link: Link) {
        {
            let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
            if r.0.last.as_ref().is_some_and(|l| l.seq >= link.seq) {
                return;
            }
            r.0.last = Some(link);
            r.1 += 1;
        }
        self.notify.notify_one();
    }

    /// The newest head.
    pub fn snapshot(&self) -> HeadRecord {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Head records written to storage so far (the initial one included).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Stops the background writer without a last write (the device is dropped).
    pub fn stop(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Stores the newest head and stops the background writer (seal, shutdown, disable).
    pub async fn close(&self, device: &str) {
        self.closed.store(true, Ordering::Release);
        if let Err(e) = self.persist().await {
            tracing::warn!(device = %device, error = %e, "could not store the audit chain head at close; the next start accepts the file's authentic tail");
        }
        self.notify.notify_one();
    }

    /// Writes the newest head unless it is already stored.
    async fn persist(&self) -> Result<(), AuditError> {
        let mut done = self.persisted.lock().await;
        let (bytes, generation) = {
            let r = self.record.lock().unwrap_or_else(|p| p.into_inner());
            (serde_json::to_vec(&r.0).map_err(|e| AuditError::State(e.to_string()))?, r.1)
        };
        if generation <= *done {
            return Ok(());
        }
        self.barrier.put(&self.storage_key, bytes).await?;
        *done = generation;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The background writer: group-commits heads until the device closes.
    async fn run(self: Arc<Self>, device: String) {
        loop {
            self.notify.notified().await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = self.persist().await {
                tracing::warn!(device = %device, error = %e, "could not store the audit chain head; will retry");
                // Retry on the next line or at close.
                self.notify.notify_one();
            }
            tokio::time::sleep(HEAD_WRITE_INTERVAL).await;
        }
    }
}
