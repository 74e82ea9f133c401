//! The `file` audit device (a path, `stdout`, or `discard`) and its keyed hash chain.
//!
//! # Chain state
//!
//! A device keeps its chain key and its chain head ([`HeadRecord`]) behind the barrier. Each
//! line is appended (and, with `fsync = true`, synced) under the device's lock; then the new
//! head is handed to a background writer (`head`), which persists the newest head it has been
//! given, at most every [`HEAD_WRITE_INTERVAL`], and once more when the device closes (seal,
//! shutdown, disable). A request never waits for a storage write.
//!
//! # Reopening
//!
//! At unseal a device continues its chain from the stored head, not from whatever the file
//! ends with. Lines after the stored head are accepted if they authentically extend it (their
//! MACs verify and they chain): that is a crash between an append and the next head write, not
//! tampering. A file that ends before the stored head, or whose head line differs, is logged
//! and left as it is for `coffer audit verify` to report. A file that no longer holds the
//! device's segment at all (rotated, replaced, truncated below the segment start) gets a new
//! segment; the old one is remembered in the head record (`reopen`).
//!
//! What a line contains (and what is hashed) is in `entries`.

mod entries;
mod head;
mod reopen;

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use coffer_storage::Barrier;
use serde_json::Value;

use self::head::HeadSync;
pub use self::head::HEAD_WRITE_INTERVAL;
use super::chain::{self, ChainKey, HeadRecord, Link};
use super::error::AuditError;
use super::options::{parse_file_options, FileOptions};
use super::{hash_value, DeviceConfig};

/// Where a device's lines go.
enum Sink {
    Discard,
    File(File),
    Stdout,
}

/// The chain position, under the device's lock.
struct State {
    sink: Sink,
    next_seq: u64,
    prev: String,
}

/// `fsync = true`: group commit. Lines are appended under the device lock; the sync happens
/// outside it, and one `fdatasync` covers every line written before it started.
struct Syncer {
    /// A second descriptor of the audit file.
    file: File,
    /// Lines appended so far.
    written: AtomicU64,
    /// Lines known to be on disk; the lock also serialises the syncs.
    synced: Mutex<u64>,
}

/// An open audit device.
pub struct Device {
    config: DeviceConfig,
    opts: FileOptions,
    key: ChainKey,
    state: Mutex<State>,
    head: Arc<HeadSync>,
    syncer: Option<Syncer>,
    fsyncs: AtomicU64,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("path", &self.config.path).finish_non_exhaustive()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // Ends the background writer (close() has stored the final head where it could).
        self.head.stop();
    }
}

impl Device {
    /// Opens the device: loads (or creates) its chain key and head, opens the sink and works
    /// out where the chain continues (see the module docs). Spawns the head writer, so it must
    /// run inside a tokio runtime.
    pub async fn open(config: DeviceConfig, barrier: Arc<Barrier>) -> Result<Self, AuditError> {
        if config.kind != "file" {
            return Err(AuditError::invalid(
                "type",
                format!(
                    "unknown backend type: {:?} (only \"file\" audit devices are supported)",
                    config.kind
                ),
            ));
        }
        if config.id.is_empty() {
            return Err(AuditError::State("device has no id".into()));
        }
        let opts = parse_file_options(&config.options)?;
        let (stored_head, legacy) = match barrier.get(&chain::head_path(&config.id)).await? {
            Some(e) => (Some(HeadRecord::from_record(&e.value)?), false),
            None => match barrier.get(&chain::legacy_head_path(&config.id)).await? {
                Some(e) => (Some(HeadRecord::from_record(&e.value)?), true),
                None => (None, false),
            },
        };
        let key = match barrier.get(&chain::key_path(&config.id)).await? {
            Some(e) => ChainKey::from_record(&e.value)?,
            None => {
                let key = match barrier.get(&chain::legacy_key_path(&config.id)).await? {
                    Some(e) => ChainKey::from_record(&e.value)?,
                    None if stored_head.is_some() => {
                        return Err(AuditError::State(format!(
                            "the chain key of audit device {} is missing",
                            config.path
                        )))
                    }
                    None => ChainKey::generate()?,
                };
                // Node-local, so opening a device never waits for a quorum (a restarted leader
                // opens its devices before its cluster links are up).
                barrier.put(&chain::key_path(&config.id), key.to_record()).await?;
                key
            }
        };
        let (sink, head) = reopen::resume(&config.path, &opts, &key, stored_head.as_ref())?;
        let (next_seq, prev) = head.next();
        let stored = !legacy && stored_head.as_ref() == Some(&head);
        let head =
            HeadSync::start(barrier, chain::head_path(&config.id), head, stored, config.path.clone()).await?;
        let syncer = match (&sink, opts.fsync) {
            (Sink::File(f), true) => Some(Syncer {
                file: f
                    .try_clone()
                    .map_err(|e| AuditError::Io(format!("cannot duplicate the audit file handle: {e}")))?,
                written: AtomicU64::new(0),
                synced: Mutex::new(0),
            }),
            _ => None,
        };
        Ok(Self {
            syncer,
            opts,
            key,
            state: Mutex::new(State { sink, next_seq, prev }),
            head,
            fsyncs: AtomicU64::new(0),
            config,
        })
    }

    /// Mount path of the device (`file/`).
    pub fn path(&self) -> &str {
        &self.config.path
    }

    /// The stored definition.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// The parsed options.
    pub fn options(&self) -> &FileOptions {
        &self.opts
    }

    /// `sys/audit-hash` for this device.
    pub fn hash(&self, input: &str) -> String {
        hash_value(&self.config.salt, input)
    }

    /// The chain key (for verification inside this module).
    pub(super) fn chain_key(&self) -> &ChainKey {
        &self.key
    }

    /// The newest head (what the server has written so far).
    pub fn head(&self) -> HeadRecord {
        self.head.snapshot()
    }

    /// Lines synced with `fsync = true` so far.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Head records written to storage so far (the initial one included).
    pub fn head_writes(&self) -> u64 {
        self.head.writes()
    }

    /// Stores the newest head and stops the background writer (seal, shutdown, disable).
    pub async fn close(&self) {
        self.head.close(&self.config.path).await;
    }

    /// Appends one line with its chain link and, with `fsync = true`, waits until it is on
    /// disk (group commit: concurrent writers share one `fdatasync`). Then hands the new head to
    /// the background writer, so a stored head never names a line that is not in the file.
    pub fn write(&self, entry: Value) -> std::io::Result<()> {
        let body = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (line, mac) = chain::seal_line(&self.key, &self.opts.prefix, &body, st.next_seq, &st.prev);
        match &mut st.sink {
            Sink::Discard => {}
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line)?;
                out.flush()?;
            }
            Sink::File(f) => {
                let before = f.metadata()?.len();
                if let Err(e) = f.write_all(&line) {
                    // Never leave half a line for the next one to be glued to.
                    let _ = f.set_len(before);
                    return Err(e);
                }
            }
        }
        // The line is in the file: the chain moves on (even if a sync below fails).
        let seq = st.next_seq;
        st.next_seq += 1;
        st.prev = mac.clone();
        let written = self.syncer.as_ref().map(|s| s.written.fetch_add(1, Ordering::AcqRel) + 1);
        drop(st);
        if let (Some(s), Some(mine)) = (&self.syncer, written) {
            let mut synced = s.synced.lock().unwrap_or_else(|p| p.into_inner());
            if *synced < mine {
                let upto = s.written.load(Ordering::Acquire);
                s.file.sync_data()?;
                *synced = upto;
                self.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.head.publish(Link { seq, mac });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
