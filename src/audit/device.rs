//! The `file` audit device (a path, `stdout`, or `discard`) and its keyed hash chain.
//!
//! # Chain state
//!
//! A device keeps its chain key and its chain head ([`HeadRecord`]) behind the barrier. Each
//! line is appended (and, with `fsync = true`, synced) under the device's lock; then the new
//! head is handed to a background writer, which persists the newest head it has been given,
//! at most every [`HEAD_WRITE_INTERVAL`], and once more when the device closes (seal,
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
//! segment; the old one is remembered in the head record.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffer_storage::Barrier;
use serde_json::{json, Value};

use super::chain::{self, ChainKey, HeadRecord, Link, Segment, GENESIS, HEAD_RECORD_VERSION};
use super::error::AuditError;
use super::options::{parse_file_options, FileOptions, SinkPath};
use super::{auth_json, hash_tree, hash_value, omit_empty, AuthInfo, DeviceConfig, RequestInfo};
use crate::util::timefmt::rfc3339_nano;

/// The background writer persists the chain head at most this often.
pub const HEAD_WRITE_INTERVAL: Duration = Duration::from_millis(100);

/// Earlier segments remembered in the head record.
const EARLIER_SEGMENTS: usize = 16;

enum Sink {
    Discard,
    File(File),
    Stdout,
}

struct State {
    sink: Sink,
    next_seq: u64,
    prev: String,
}

/// The newest head and its persistence, shared with the background writer.
struct HeadSync {
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
    /// Hands over a newer head; older ones (a concurrent writer that finished later) are
    /// ignored, so callers need not publish in order.
    fn publish(&self, link: Link) {
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

    fn snapshot(&self) -> HeadRecord {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
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
        self.head.closed.store(true, Ordering::Release);
        self.head.notify.notify_one();
    }
}

/// A line of the file as the reopen scan sees it.
struct ScannedLine {
    /// Offset just past the line's newline.
    end: u64,
    /// The link, if the line is a chained line whose MAC verifies under the device's key.
    link: Option<chain::LineLink>,
}

/// Reads the complete lines of `f` in `[from, to)`; a partial first line (when `from` is not a
/// line start) is the caller's concern. Returns the lines and the offset after the last
/// complete one.
fn scan(f: &mut File, from: u64, to: u64, key: &ChainKey, prefix: &str) -> std::io::Result<Vec<ScannedLine>> {
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(from))?;
    f.take(to.saturating_sub(from)).read_to_end(&mut buf)?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(nl) = buf[pos..].iter().position(|b| *b == b'\n') {
        let line = &buf[pos..pos + nl];
        let link = chain::parse_line(line, prefix)
            .ok()
            .and_then(|(link, signed)| key.verify(signed, &link.mac).then_some(link));
        pos += nl + 1;
        out.push(ScannedLine { end: from + pos as u64, link });
    }
    Ok(out)
}

/// How the file relates to the stored head of its segment.
enum Tail {
    /// The file ends at the stored head or authentically extends it; continue after `last`
    /// (or from the segment start when `last` is `None`), truncating a partial line at `len`.
    Continue { last: Option<Link>, extra: u64, len: u64 },
    /// The file does not hold the stored head (truncated or altered); the reason is logged.
    Damaged(String),
}

/// Finds where the chain continues in a file that still holds the segment (see module docs).
fn recover_tail(
    f: &mut File,
    head: &HeadRecord,
    file_len: u64,
    key: &ChainKey,
    prefix: &str,
) -> std::io::Result<Tail> {
    let seg = &head.segment;
    // The line the scan must find: the stored head, or nothing (an empty segment).
    let anchor = head.last.as_ref().filter(|l| l.seq >= seg.start_seq);
    let mut window: u64 = 1 << 20;
    let lines = loop {
        let begin = file_len.saturating_sub(window).max(seg.start_offset);
        let mut lines = scan(f, begin, file_len, key, prefix)?;
        if begin > seg.start_offset && !lines.is_empty() {
            // The first "line" may be the end of a longer one.
            lines.remove(0);
        }
        let reached = begin == seg.start_offset
            || anchor.is_some_and(|a| lines.iter().filter_map(|l| l.link.as_ref()).any(|l| l.seq <= a.seq));
        if reached {
            break lines;
        }
        window = window.saturating_mul(4);
    };
    let (mut expected_seq, mut prev, mut idx) = match anchor {
        None => (seg.start_seq, seg.start_prev.clone(), 0usize),
        Some(a) => {
            let Some(i) = lines.iter().position(|l| l.link.as_ref().is_some_and(|k| k.seq == a.seq)) else {
                return Ok(Tail::Damaged(format!(
                    "the file does not contain the last line the server wrote (sequence {}): it was truncated or altered",
                    a.seq
                )));
            };
            if lines[i].link.as_ref().map(|k| k.mac.as_str()) != Some(a.mac.as_str()) {
                return Ok(Tail::Damaged(format!(
                    "the line with sequence {} is not the one the server wrote",
                    a.seq
                )));
            }
            (a.seq + 1, a.mac.clone(), i + 1)
        }
    };
    let mut last = anchor.cloned();
    let mut end = match anchor {
        None => seg.start_offset,
        Some(_) => lines[idx - 1].end,
    };
    let mut extra = 0;
    while let Some(l) = lines.get(idx) {
        match &l.link {
            Some(k) if k.seq == expected_seq && k.prev == prev => {
                last = Some(Link { seq: k.seq, mac: k.mac.clone() });
                prev = k.mac.clone();
                expected_seq += 1;
                end = l.end;
                extra += 1;
                idx += 1;
            }
            _ => break,
        }
    }
    if idx < lines.len() {
        return Ok(Tail::Damaged(format!(
            "{} line(s) after sequence {} do not extend the chain",
            lines.len() - idx,
            expected_seq.saturating_sub(1)
        )));
    }
    Ok(Tail::Continue { last, extra, len: end })
}

/// `device:inode` of an open file, to tell a file from its replacement.
fn file_id(f: &File) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok(format!("{}:{}", m.dev(), m.ino()))
}

fn ends_with_newline(f: &mut File, len: u64) -> std::io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut b)?;
    Ok(b[0] == b'\n')
}

fn io_err(p: &std::path::Path, what: &str, e: std::io::Error) -> AuditError {
    AuditError::Io(format!("{what} {:?}: {e}", p.display().to_string()))
}

/// Opens the file sink: a regular, non-executable file, never through a symbolic link.
fn open_file(p: &std::path::Path, mode: u32) -> Result<File, AuditError> {
    if let Ok(meta) = std::fs::symlink_metadata(p) {
        if !meta.file_type().is_file() {
            return Err(AuditError::invalid(
                "options.file_path",
                format!("audit file path {:?} exists and is not a regular file", p.display().to_string()),
            ));
        }
        if meta.permissions().mode() & 0o111 != 0 {
            return Err(AuditError::invalid(
                "options.file_path",
                format!("audit file {:?} is executable; refusing to write to it", p.display().to_string()),
            ));
        }
    }
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| io_err(p, "sanity check failed; unable to open", e))
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
        let stored_head = match barrier.get(&chain::head_path(&config.id)).await? {
            Some(e) => Some(HeadRecord::from_record(&e.value)?),
            None => None,
        };
        let key = match barrier.get(&chain::key_path(&config.id)).await? {
            Some(e) => ChainKey::from_record(&e.value)?,
            None if stored_head.is_some() => {
                return Err(AuditError::State(format!(
                    "the chain key of audit device {} is missing",
                    config.path
                )))
            }
            None => {
                let k = ChainKey::generate()?;
                barrier.put(&chain::key_path(&config.id), k.to_record()).await?;
                k
            }
        };
        let sink_name = opts.sink.display();
        let mut head = stored_head.clone().unwrap_or_else(|| HeadRecord {
            version: HEAD_RECORD_VERSION,
            last: None,
            segment: Segment {
                file: sink_name.clone(),
                file_id: None,
                start_seq: 0,
                start_offset: 0,
                start_prev: GENESIS.into(),
            },
            earlier: Vec::new(),
        });
        let new_segment = |head: &mut HeadRecord, offset: u64, reason: Option<&str>| {
            let (seq, prev) = head.next();
            if let (Some(reason), Some(last)) = (reason, &head.last) {
                if last.seq >= head.segment.start_seq {
                    head.earlier.push(chain::EarlierSegment {
                        file: head.segment.file.clone(),
                        first_seq: head.segment.start_seq,
                        last_seq: last.seq,
                        reason: reason.to_owned(),
                        noticed: rfc3339_nano(time::OffsetDateTime::now_utc()),
                    });
                    let n = head.earlier.len();
                    if n > EARLIER_SEGMENTS {
                        head.earlier.drain(..n - EARLIER_SEGMENTS);
                    }
                }
            }
            head.segment = Segment {
                file: sink_name.clone(),
                file_id: None,
                start_seq: seq,
                start_offset: offset,
                start_prev: prev,
            };
        };
        let (sink, next_seq, prev) = match &opts.sink {
            SinkPath::Discard | SinkPath::Stdout => {
                if stored_head.as_ref().is_some_and(|h| h.segment.file != sink_name) {
                    new_segment(&mut head, 0, Some("the device now writes elsewhere"));
                }
                let sink = if opts.sink == SinkPath::Stdout { Sink::Stdout } else { Sink::Discard };
                let (n, p) = head.next();
                (sink, n, p)
            }
            SinkPath::File(p) => {
                let mut f = open_file(p, opts.mode)?;
                let len = f.seek(SeekFrom::End(0)).map_err(|e| io_err(p, "cannot read", e))?;
                let id = file_id(&f).map_err(|e| io_err(p, "cannot read", e))?;
                let same_path = stored_head.as_ref().is_some_and(|h| h.segment.file == sink_name);
                // The same file as before, unless it was replaced (rotated, or deleted and
                // recreated): then its inode differs.
                let present = same_path && head.segment.file_id.as_deref().is_none_or(|s| s == id);
                if present {
                    match recover_tail(&mut f, &head, len, &key, &opts.prefix)
                        .map_err(|e| io_err(p, "cannot read", e))?
                    {
                        Tail::Continue { last, extra, len: end } => {
                            if extra > 0 {
                                tracing::info!(device = %config.path, lines = extra, "audit log lines written after the last stored chain head verify; continuing after them");
                            }
                            if end < len {
                                tracing::warn!(device = %config.path, bytes = len - end, "removing an incomplete last line (an interrupted write) from the audit file");
                                f.set_len(end).map_err(|e| io_err(p, "cannot truncate", e))?;
                            }
                            head.last = last;
                        }
                        Tail::Damaged(reason) => {
                            tracing::error!(device = %config.path, file = %sink_name, "audit file damaged: {reason}; continuing the chain from the stored head (coffer audit verify will report it)");
                            if !ends_with_newline(&mut f, len).map_err(|e| io_err(p, "cannot read", e))? {
                                f.write_all(b"\n").map_err(|e| io_err(p, "cannot write", e))?;
                            }
                        }
                    }
                } else {
                    let mut offset = len;
                    if !ends_with_newline(&mut f, len).map_err(|e| io_err(p, "cannot read", e))? {
                        f.write_all(b"\n").map_err(|e| io_err(p, "cannot write", e))?;
                        offset += 1;
                    }
                    let reason = if same_path {
                        tracing::warn!(device = %config.path, file = %sink_name, "the audit file was replaced (rotated, or deleted and recreated); starting a new chain segment in it");
                        Some("the file was replaced (rotated, or deleted and recreated) while the server was down")
                    } else if stored_head.is_some() {
                        Some("the device now writes to another file")
                    } else {
                        None
                    };
                    new_segment(&mut head, offset, reason);
                    head.segment.file_id = Some(id);
                }
                let (n, p) = head.next();
                (Sink::File(f), n, p)
            }
        };
        let sync = Arc::new(HeadSync {
            barrier,
            storage_key: chain::head_path(&config.id),
            record: Mutex::new((head.clone(), 1)),
            persisted: tokio::sync::Mutex::new(0),
            notify: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            writes: AtomicU64::new(0),
        });
        if stored_head.as_ref() != Some(&head) {
            sync.persist().await?;
        } else {
            *sync.persisted.lock().await = 1;
        }
        tokio::spawn(Arc::clone(&sync).run(config.path.clone()));
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
            head: sync,
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
        self.head.writes.load(Ordering::Relaxed)
    }

    /// Stores the newest head and stops the background writer (seal, shutdown, disable).
    pub async fn close(&self) {
        self.head.closed.store(true, Ordering::Release);
        if let Err(e) = self.head.persist().await {
            tracing::warn!(device = %self.config.path, error = %e, "could not store the audit chain head at close; the next start accepts the file's authentic tail");
        }
        self.head.notify.notify_one();
    }

    fn h(&self, s: &str) -> Value {
        if self.opts.log_raw || s.is_empty() {
            json!(s)
        } else {
            json!(self.hash(s))
        }
    }

    fn h_acc(&self, s: &str) -> Value {
        if self.opts.hmac_accessor {
            self.h(s)
        } else {
            json!(s)
        }
    }

    fn tree(&self, v: &Value) -> Value {
        if self.opts.log_raw {
            v.clone()
        } else {
            hash_tree(&self.config.salt, v, &[])
        }
    }

    fn auth(&self, a: Option<&AuthInfo>) -> Value {
        let Some(a) = a else { return Value::Null };
        let mut v = auth_json(a);
        v["client_token"] = self.h(&a.client_token);
        v["accessor"] = self.h_acc(&a.accessor);
        if let Some(m) = &a.metadata {
            v["metadata"] = self.tree(&json!(m));
        }
        v
    }

    fn request(&self, r: &RequestInfo) -> Value {
        json!({
            "id": r.id,
            "operation": r.operation,
            "mount_point": r.mount_point,
            "mount_type": r.mount_type,
            "mount_accessor": r.mount_accessor,
            "client_token": self.h(&r.client_token),
            "client_token_accessor": self.h_acc(&r.client_token_accessor),
            "namespace": {"id": "root"},
            "path": r.path,
            "data": r.data.as_ref().map(|d| self.tree(&Value::Object(d.clone()))),
            "remote_address": r.remote_address,
            "wrap_ttl": r.wrap_ttl,
            "headers": r.headers,
        })
    }

    /// The request entry for this device (hashed).
    pub fn request_line(&self, auth: Option<&AuthInfo>, req: &RequestInfo, error: &str) -> Value {
        omit_empty(json!({
            "time": rfc3339_nano(time::OffsetDateTime::now_utc()),
            "type": "request",
            "auth": self.auth(auth),
            "request": self.request(req),
            "error": error,
        }))
    }

    /// The response entry for this device (hashed). `resp` is the rendered envelope.
    pub fn response_line(
        &self,
        auth: Option<&AuthInfo>,
        req: &RequestInfo,
        resp: Option<&Value>,
        error: &str,
    ) -> Value {
        let response = resp.map(|r| {
            let mut data = r.get("data").cloned().unwrap_or(Value::Null);
            if self.opts.elide_list_responses {
                if let Some(keys) = data.get("keys").and_then(Value::as_array).map(|k| k.len()) {
                    data["keys"] = json!(keys);
                }
            }
            let mut out = json!({
                "mount_point": req.mount_point,
                "mount_type": req.mount_type,
                "mount_accessor": req.mount_accessor,
                "data": if data.is_null() { Value::Null } else { self.tree(&data) },
                "warnings": r.get("warnings").cloned().unwrap_or(Value::Null),
            });
            if let Some(a) = r.get("auth").filter(|a| !a.is_null()) {
                let mut a = a.clone();
                if let Some(t) = a.get("client_token").and_then(Value::as_str).map(str::to_owned) {
                    a["client_token"] = self.h(&t);
                }
                if let Some(t) = a.get("accessor").and_then(Value::as_str).map(str::to_owned) {
                    a["accessor"] = self.h_acc(&t);
                }
                if let Some(m) = a.get("metadata").filter(|m| !m.is_null()).cloned() {
                    a["metadata"] = self.tree(&m);
                }
                out["auth"] = a;
            }
            if let Some(w) = r.get("wrap_info").filter(|w| !w.is_null()) {
                let mut w = w.clone();
                for k in ["token"] {
                    if let Some(t) = w.get(k).and_then(Value::as_str).map(str::to_owned) {
                        w[k] = self.h(&t);
                    }
                }
                for k in ["accessor", "wrapped_accessor"] {
                    if let Some(t) = w.get(k).and_then(Value::as_str).map(str::to_owned) {
                        w[k] = self.h_acc(&t);
                    }
                }
                out["wrap_info"] = w;
            }
            out
        });
        omit_empty(json!({
            "time": rfc3339_nano(time::OffsetDateTime::now_utc()),
            "type": "response",
            "auth": self.auth(auth),
            "request": self.request(req),
            "response": response,
            "error": error,
        }))
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
mod tests {
    use std::collections::BTreeMap;
    use std::io::BufRead;

    use coffer_storage::keys::RootKey;
    use coffer_storage::MemStorage;

    use super::*;
    use crate::audit::{verify, AuditBroker, Source};

    async fn barrier() -> Arc<Barrier> {
        let b = Arc::new(Barrier::new(Arc::new(MemStorage::new())));
        let root = RootKey::generate().unwrap();
        b.initialize(&root).await.unwrap();
        b.unseal(root).await.unwrap();
        b
    }

    fn config_with(path: &str, extra: &[(&str, &str)]) -> DeviceConfig {
        let mut options: BTreeMap<String, String> = [("file_path".to_owned(), path.to_owned())].into();
        for (k, v) in extra {
            options.insert((*k).into(), (*v).into());
        }
        DeviceConfig {
            path: "file/".into(),
            kind: "file".into(),
            description: String::new(),
            options,
            local: false,
            salt: "salt".into(),
            id: "dev-1".into(),
            source: Source::Api,
        }
    }

    fn config(path: &str) -> DeviceConfig {
        config_with(path, &[])
    }

    fn entry(i: usize) -> Value {
        json!({"time": "t", "type": "request", "request": {"path": format!("kv/{i}")}})
    }

    async fn check(dev: &Device) -> verify::Report {
        verify::verify_device(dev).unwrap()
    }

    #[tokio::test]
    async fn broker_fails_closed_when_no_device_writes() {
        let b = barrier().await;
        let dir = tempfile::tempdir().unwrap();
        // /dev/full is refused by open (not a regular file): it counts as broken.
        let broker = AuditBroker::open_configs(&b, vec![config("/dev/full")]).await;
        let req = RequestInfo { path: "kv1/x".into(), ..RequestInfo::default() };
        assert!(broker.log_request(None, &req, "").is_err(), "a broken device must fail the request");
        let ok = config(dir.path().join("a.log").to_str().unwrap());
        let ok = DeviceConfig { id: "dev-2".into(), path: "ok/".into(), ..ok };
        let broker = AuditBroker::open_configs(&b, vec![config("/dev/full"), ok]).await;
        assert!(broker.log_request(None, &req, "").is_ok(), "one working device is enough");
        assert!(AuditBroker::default().log_request(None, &req, "").is_ok());
    }

    #[tokio::test]
    async fn fsync_option_syncs_every_line() {
        let b = barrier().await;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let synced = Device::open(config_with(p.to_str().unwrap(), &[("fsync", "true")]), Arc::clone(&b))
            .await
            .unwrap();
        for i in 0..5 {
            synced.write(entry(i)).unwrap();
        }
        assert_eq!(synced.fsyncs(), 5);
        let q = dir.path().join("b.log");
        let plain = Device::open(DeviceConfig { id: "dev-2".into(), ..config(q.to_str().unwrap()) }, b)
            .await
            .unwrap();
        for i in 0..5 {
            plain.write(entry(i)).unwrap();
        }
        assert_eq!(plain.fsyncs(), 0, "fsync is off by default");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_keep_one_intact_chain_with_fsync() {
        let b = barrier().await;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let dev =
            Arc::new(Device::open(config_with(p.to_str().unwrap(), &[("fsync", "true")]), b).await.unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dev = Arc::clone(&dev);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        dev.write(entry(t * 100 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(dev.fsyncs() >= 1 && dev.fsyncs() <= 200, "{}", dev.fsyncs());
        assert_eq!(dev.head().last.map(|l| l.seq), Some(199));
        let r = check(&dev).await;
        assert_eq!((&r.problem, r.lines), (&None, 200), "{r:?}");
    }

    #[tokio::test]
    async fn reopen_accepts_an_authentic_tail_beyond_the_stored_head() {
        let b = barrier().await;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let cfg = config(p.to_str().unwrap());
        let dev = Device::open(cfg.clone(), Arc::clone(&b)).await.unwrap();
        for i in 0..3 {
            dev.write(entry(i)).unwrap();
        }
        dev.close().await;
        let stored = dev.head();
        assert_eq!(stored.last.as_ref().map(|l| l.seq), Some(2));
        drop(dev);
        // A "crash" after more appends but before their head was stored: open a device whose
        // head writer never runs (dropped without close).
        let dev = Device::open(cfg.clone(), Arc::clone(&b)).await.unwrap();
        dev.head.closed.store(true, Ordering::Release);
        for i in 3..6 {
            dev.write(entry(i)).unwrap();
        }
        drop(dev);
        let dev = Device::open(cfg.clone(), Arc::clone(&b)).await.unwrap();
        assert_eq!(dev.head().last.map(|l| l.seq), Some(5), "continues after the authentic tail");
        dev.write(entry(6)).unwrap();
        let r = check(&dev).await;
        assert_eq!(r.problem, None, "{r:?}");
        assert_eq!((r.first_seq, r.last_seq, r.lines), (Some(0), Some(6), 7));
        dev.close().await;
        drop(dev);

        // The same tail without its MACs' key (forged lines) is not accepted.
        let text = std::fs::read_to_string(&p).unwrap();
        let forged = text.lines().last().unwrap().replace("kv/6", "kv/X");
        std::fs::write(&p, format!("{text}{forged}\n")).unwrap();
        let dev = Device::open(cfg, b).await.unwrap();
        assert_eq!(dev.head().last.map(|l| l.seq), Some(6), "a forged line does not move the head");
        let r = check(&dev).await;
        assert_eq!(r.problem.as_ref().map(|p| p.line), Some(8), "{r:?}");
    }

    #[tokio::test]
    async fn reopen_drops_an_interrupted_last_line() {
        let b = barrier().await;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let cfg = config(p.to_str().unwrap());
        let dev = Device::open(cfg.clone(), Arc::clone(&b)).await.unwrap();
        dev.write(entry(0)).unwrap();
        dev.close().await;
        drop(dev);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"time\":\"t\",\"type\":\"req").unwrap();
        let dev = Device::open(cfg, b).await.unwrap();
        dev.write(entry(1)).unwrap();
        let r = check(&dev).await;
        assert_eq!(r.problem, None, "{r:?}");
        assert_eq!(std::io::BufReader::new(File::open(&p).unwrap()).lines().count(), 2);
    }

    #[tokio::test]
    async fn a_replaced_file_starts_a_new_segment_and_remembers_the_old_one() {
        let b = barrier().await;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let cfg = config(p.to_str().unwrap());
        let dev = Device::open(cfg.clone(), Arc::clone(&b)).await.unwrap();
        for i in 0..4 {
            dev.write(entry(i)).unwrap();
        }
        dev.close().await;
        drop(dev);
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        let dev = Device::open(cfg, b).await.unwrap();
        dev.write(entry(4)).unwrap();
        let h = dev.head();
        assert_eq!((h.segment.start_seq, h.segment.start_offset), (4, 0));
        assert_eq!(h.earlier.len(), 1);
        assert_eq!((h.earlier[0].first_seq, h.earlier[0].last_seq), (0, 3));
        let r = check(&dev).await;
        assert_eq!(r.problem, None, "{r:?}");
        assert_eq!(r.first_seq, Some(4));
    }

    #[tokio::test]
    async fn head_writes_are_coalesced_off_the_request_path() {
        let b = barrier().await;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let dev = Device::open(config(p.to_str().unwrap()), b).await.unwrap();
        let before = dev.head_writes();
        for i in 0..500 {
            dev.write(entry(i)).unwrap();
        }
        // 500 lines written in far less than 500 × HEAD_WRITE_INTERVAL: at most a few heads.
        let during = dev.head_writes() - before;
        assert!(during <= 3, "{during} head writes for 500 lines");
        dev.close().await;
        assert_eq!(dev.head().last.map(|l| l.seq), Some(499));
    }
}
