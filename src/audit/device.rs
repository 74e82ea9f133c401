//! The `file` audit device (a path, `stdout`, or `discard`), with the hash chain.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::Mutex;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{auth_json, hash_tree, hash_value, omit_empty, AuthInfo, DeviceConfig, RequestInfo, GENESIS};
use crate::core::error::{Error, Result};
use crate::core::fields::parse_bool_str;
use crate::util::timefmt::rfc3339_nano;

enum Sink {
    Discard,
    File(File),
    Stdout,
}

struct State {
    sink: Sink,
    seq: u64,
    prev: String,
}

/// An open audit device.
pub struct Device {
    config: DeviceConfig,
    log_raw: bool,
    hmac_accessor: bool,
    elide_list_responses: bool,
    prefix: String,
    state: Mutex<State>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("path", &self.config.path).finish_non_exhaustive()
    }
}

fn opt_bool(o: &BTreeMap<String, String>, k: &str, default: bool) -> Result<bool> {
    match o.get(k) {
        None => Ok(default),
        Some(v) => parse_bool_str(v)
            .ok_or_else(|| Error::bad(format!("unable to parse '{k}': invalid boolean {v:?}"))),
    }
}

/// Reads the last complete line of a file (for chain continuation).
fn last_line(f: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let start = len.saturating_sub(1024 * 1024);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let from = trimmed.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    Ok(Some(trimmed[from..].to_vec()))
}

/// Hex SHA-256 of a line (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

impl Device {
    /// Validates options and opens the sink.
    pub fn open(config: DeviceConfig) -> Result<Self> {
        if config.kind != "file" {
            return Err(Error::bad(format!(
                "unknown backend type: {:?} (only \"file\" audit devices are supported)",
                config.kind
            )));
        }
        let o = &config.options;
        let path = o
            .get("file_path")
            .or_else(|| o.get("path"))
            .cloned()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::bad("file_path is required"))?;
        if let Some(f) = o.get("format") {
            if f != "json" {
                return Err(Error::bad(format!(
                    "unsupported audit format {f:?}: only \"json\" is supported"
                )));
            }
        }
        let prefix = o.get("prefix").cloned().unwrap_or_default();
        if prefix.chars().any(|c| c.is_control()) {
            return Err(Error::bad("audit prefix may not contain control characters"));
        }
        let mode = match o.get("mode") {
            None => 0o600,
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .map_err(|_| Error::bad(format!("invalid file mode {m:?}")))?,
        };
        // CVE-2025-6000 class: an audit file must never become an executable or special file.
        if mode & 0o111 != 0 || mode > 0o777 {
            return Err(Error::bad(format!(
                "file mode {mode:o} is not allowed for audit files (no execute bits, no special bits)"
            )));
        }
        let (sink, seq, prev) = match path.as_str() {
            "stdout" => (Sink::Stdout, 0, GENESIS.to_owned()),
            "discard" => (Sink::Discard, 0, GENESIS.to_owned()),
            p => {
                if let Ok(meta) = std::fs::symlink_metadata(p) {
                    if !meta.file_type().is_file() {
                        return Err(Error::bad(format!(
                            "audit file path {p:?} exists and is not a regular file"
                        )));
                    }
                    if meta.permissions().mode() & 0o111 != 0 {
                        return Err(Error::bad(format!(
                            "audit file {p:?} is executable; refusing to write to it"
                        )));
                    }
                }
                let mut f = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(true)
                    .mode(mode)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(p)
                    .map_err(|e| {
                        Error::bad(format!("sanity check failed; unable to open {p:?} for writing: {e}"))
                    })?;
                let (seq, prev) =
                    match last_line(&mut f).map_err(|e| Error::bad(format!("cannot read {p:?}: {e}")))? {
                        None => (0, GENESIS.to_owned()),
                        Some(line) => {
                            let seq = serde_json::from_slice::<Value>(strip_prefix_bytes(&line, &prefix))
                                .ok()
                                .and_then(|v| v["chain"]["seq"].as_u64())
                                .map(|s| s + 1)
                                .unwrap_or(0);
                            (seq, if seq == 0 { GENESIS.to_owned() } else { line_hash(&line) })
                        }
                    };
                (Sink::File(f), seq, prev)
            }
        };
        Ok(Self {
            log_raw: opt_bool(o, "log_raw", false)?,
            hmac_accessor: opt_bool(o, "hmac_accessor", true)?,
            elide_list_responses: opt_bool(o, "elide_list_responses", false)?,
            prefix,
            state: Mutex::new(State { sink, seq, prev }),
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

    /// `sys/audit-hash` for this device.
    pub fn hash(&self, input: &str) -> String {
        hash_value(&self.config.salt, input)
    }

    fn h(&self, s: &str) -> Value {
        if self.log_raw || s.is_empty() {
            json!(s)
        } else {
            json!(self.hash(s))
        }
    }

    fn h_acc(&self, s: &str) -> Value {
        if self.hmac_accessor {
            self.h(s)
        } else {
            json!(s)
        }
    }

    fn tree(&self, v: &Value) -> Value {
        if self.log_raw {
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
            if self.elide_list_responses {
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

    /// Appends one line (with its chain link) and flushes it to the OS.
    pub fn write(&self, mut entry: Value) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = entry.as_object_mut() {
            o.insert("chain".into(), json!({"seq": st.seq, "prev": st.prev}));
        }
        let mut line = self.prefix.clone().into_bytes();
        line.extend_from_slice(&serde_json::to_vec(&entry).map_err(std::io::Error::other)?);
        match &mut st.sink {
            Sink::Discard => {}
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line)?;
                out.write_all(b"\n")?;
                out.flush()?;
            }
            Sink::File(f) => {
                let mut buf = line.clone();
                buf.push(b'\n');
                f.write_all(&buf)?;
                f.flush()?;
            }
        }
        st.prev = line_hash(&line);
        st.seq += 1;
        Ok(())
    }
}

fn strip_prefix_bytes<'a>(line: &'a [u8], prefix: &str) -> &'a [u8] {
    line.strip_prefix(prefix.as_bytes()).unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::audit::AuditBroker;

    fn config(path: &str) -> DeviceConfig {
        DeviceConfig {
            path: "file/".into(),
            kind: "file".into(),
            description: String::new(),
            options: [("file_path".to_owned(), path.to_owned())].into_iter().collect(),
            local: false,
            salt: "salt".into(),
        }
    }

    /// A device whose writes always fail (ENOSPC from /dev/full), bypassing `open`'s checks.
    fn full_device() -> Device {
        let f = OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        Device {
            config: config("/dev/full"),
            log_raw: false,
            hmac_accessor: true,
            elide_list_responses: false,
            prefix: String::new(),
            state: Mutex::new(State { sink: Sink::File(f), seq: 0, prev: GENESIS.into() }),
        }
    }

    #[test]
    fn broker_fails_closed_when_no_device_writes() {
        let broker = AuditBroker::new(vec![Arc::new(full_device())]);
        let req = RequestInfo { path: "kv/x".into(), ..RequestInfo::default() };
        assert!(broker.log_request(None, &req, "").is_err(), "a failed write must fail the request");
        // One working device is enough.
        let dir = tempfile::tempdir().unwrap();
        let ok = Device::open(config(dir.path().join("a.log").to_str().unwrap())).unwrap();
        let broker = AuditBroker::new(vec![Arc::new(full_device()), Arc::new(ok)]);
        assert!(broker.log_request(None, &req, "").is_ok());
        // No device at all: nothing to fail.
        assert!(AuditBroker::default().log_request(None, &req, "").is_ok());
    }

    #[test]
    fn broken_devices_count_as_failures() {
        let broker = AuditBroker::open_all(vec![config("/nonexistent-dir/for/sure/audit.log")]);
        assert!(!broker.is_empty());
        let req = RequestInfo::default();
        assert!(broker.log_request(None, &req, "").is_err());
    }
}
