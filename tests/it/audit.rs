//! The audit log: one line per request and response, every leaf hashed, fail closed when no
//! device can write; devices declared in the configuration (API creation only when the
//! configuration allows it, never a prefix, `log_raw` or a file in the storage directory
//! against the rules); the keyed, anchored hash chain and `coffer audit verify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::{self, run_to_exit, Server};

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l}: {e}")))
        .collect()
}

/// The 32-byte static seal key of [`Node`]s.
pub const KEY_HEX: &str = "5f1c0a7e3b9d2c4816e0a7b5c3d9f1e2a4b6c8d0e2f41638a5c7e9f0b2d4f6a8";

/// A production-shaped node: HCL configuration, file storage in `<dir>/data`, a static seal (so
/// it unseals itself after a restart), initialised, `s.token` the root token.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub s: Server,
}

impl Node {
    /// The configuration text for a node in `dir`, with `extra` (top-level settings and audit
    /// blocks) appended.
    pub fn config_text(dir: &Path, extra: &str) -> String {
        format!(
            r#"
            disable_mlock = true
            storage "file" {{
              path = "{data}"
            }}
            listener "tcp" {{
              address     = "127.0.0.1:0"
              tls_disable = 1
            }}
            seal "static" {{
              current_key_id = "it-1"
              current_key    = "env://COFFER_IT_UNSEAL_KEY"
            }}
            {extra}
            "#,
            data = dir.join("data").display()
        )
    }

    /// Starts and initialises a node; `extra` gets the node's directory.
    pub fn start(extra: impl FnOnce(&Path) -> String) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("coffer.hcl");
        std::fs::write(&config, Self::config_text(dir.path(), &extra(dir.path()))).unwrap();
        let mut s = Server::with_config(&config, None, &[("COFFER_IT_UNSEAL_KEY", KEY_HEX)]);
        let (st, v) =
            s.call_as("", "PUT", "sys/init", Some(json!({"recovery_shares": 1, "recovery_threshold": 1})));
        assert_eq!(st, 200, "{v}");
        s.token = v["root_token"].as_str().unwrap().to_owned();
        assert_eq!(s.call_as("", "GET", "sys/seal-status", None).1["sealed"], false);
        Node { dir, config, s }
    }

    /// Stops the server (SIGTERM, or SIGKILL when `kill`) and starts it again on the same
    /// data; waits until it has unsealed itself.
    pub fn restart(&mut self, kill: bool) {
        if kill {
            self.s.kill();
        } else {
            assert!(self.s.terminate().success(), "{}", self.s.stderr.text());
        }
        let token = self.s.token.clone();
        self.s = Server::with_config(&self.config, None, &[("COFFER_IT_UNSEAL_KEY", KEY_HEX)]);
        self.s.token = token;
        let s = &self.s;
        harness::wait_for("auto-unseal", harness::DEADLINE, || {
            (s.call_as("", "GET", "sys/seal-status", None).1["sealed"] == false).then_some(())
        });
    }
}

/// Runs the `coffer` CLI against `s` (its own HOME, only VAULT_ADDR and VAULT_TOKEN set).
fn coffer_cli(s: &Server, args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(harness::coffer_bin());
    cmd.args(args).env("HOME", home.path()).env("VAULT_ADDR", &s.addr).env("VAULT_TOKEN", &s.token);
    for k in ["BAO_ADDR", "BAO_TOKEN", "COFFER_ADDR", "COFFER_TOKEN", "VAULT_FORMAT", "VAULT_CACERT"] {
        cmd.env_remove(k);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An `audit "file" NAME` block writing to `file`.
fn audit_block(name: &str, file: &Path, options: &str) -> String {
    format!(
        "audit \"file\" \"{name}\" {{\n  options {{\n    file_path = \"{}\"\n    {options}\n  }}\n}}\n",
        file.display()
    )
}

// ---------------------------------------------------------------------------------------------
// Hashing and fail-closed (dev server: API creation is allowed there, as in OpenBao's).

#[test]
fn audit_lines_hash_every_leaf_and_chain() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (st, b) =
        s.call("PUT", "sys/audit/file", Some(json!({"type": "file", "options": {"file_path": log}})));
    assert_eq!(st, 204, "{b}");
    let (st, b) = s.call("GET", "sys/audit", None);
    assert_eq!(st, 200);
    assert_eq!(b["file/"]["type"], "file");
    assert_eq!(b["data"]["file/"]["options"]["file_path"], json!(log));

    s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    let secret = "canary-value-8c1f2d";
    assert_eq!(
        s.call("PUT", "kv1/app", Some(json!({"password": secret, "port": 31415926535u64, "on": true}))).0,
        204
    );
    assert_eq!(s.call("GET", "kv1/app", None).0, 200);
    let (_, t) = s.call("POST", "auth/token/create", Some(json!({"policies": ["default"]})));
    let child = t["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(s.call_as(&child, "GET", "kv1/app", None).0, 403);

    let text = std::fs::read_to_string(&log).unwrap();
    for leak in [secret, &s.token, &child, "31415926535"] {
        assert!(!text.contains(leak), "audit log contains {leak} in the clear");
    }
    let entries = lines(&log);
    assert!(entries.len() >= 8, "expected request+response lines, got {}", entries.len());
    let write_req = entries
        .iter()
        .find(|e| {
            e["type"] == "request"
                && e["request"]["path"] == "kv1/app"
                && e["request"]["operation"] == "create"
        })
        .expect("request line for the write");
    let (st, h) = s.call("POST", "sys/audit-hash/file", Some(json!({"input": secret})));
    assert_eq!(st, 200);
    assert_eq!(write_req["request"]["data"]["password"], h["data"]["hash"]);
    assert_eq!(h["hash"], h["data"]["hash"], "audit-hash is injected at the top level");
    let (_, hn) = s.call("POST", "sys/audit-hash/file", Some(json!({"input": "31415926535"})));
    assert_eq!(write_req["request"]["data"]["port"], hn["data"]["hash"], "numbers are hashed too");
    let read_resp = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "kv1/app"
                && e["request"]["operation"] == "read"
                && e["error"].is_null()
        })
        .expect("response line for the read");
    assert_eq!(read_resp["response"]["data"]["password"], h["data"]["hash"]);
    let denied = entries
        .iter()
        .find(|e| e["type"] == "response" && e["error"] == "permission denied")
        .expect("a denied request is logged");
    assert_eq!(denied["auth"]["policy_results"]["allowed"], Value::Null, "omitempty drops false");
    assert!(denied["auth"]["client_token"].as_str().unwrap().starts_with("hmac-sha256:"));

    // Every line carries a chain link of format 2, numbered from 0.
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["chain"]["v"], 2, "{e}");
        assert_eq!(e["chain"]["seq"], i, "{e}");
        assert_eq!(e["chain"]["mac"].as_str().map(str::len), Some(64), "{e}");
    }
    let (st, v) = s.call("GET", "sys/audit-verify/file", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["intact"], true, "{v}");
    assert!(v["data"]["lines"].as_u64().unwrap() >= entries.len() as u64, "{v}");
    assert_eq!(s.call("DELETE", "sys/audit/file", None).0, 204);
    assert_eq!(s.call("GET", "sys/audit", None).1["data"], json!({}));
}

/// CVE-2025-6000 / HCSEC-2025-14: an audit device must not become a way to write executable
/// or special files (the RCE building block was an API-created file device with a chosen mode
/// and prefix).
#[test]
fn cve_2025_6000_audit_device_cannot_create_executables_or_special_files() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("payload.sh");
    let (st, b) = s.call(
        "PUT",
        "sys/audit/x",
        Some(json!({"type": "file", "options": {"file_path": exe, "mode": "0755"}})),
    );
    assert_eq!(st, 400, "{b}");
    assert!(!exe.exists());
    std::fs::write(&exe, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        s.call("PUT", "sys/audit/x", Some(json!({"type": "file", "options": {"file_path": exe}}))).0,
        400
    );
    assert_eq!(
        s.call("PUT", "sys/audit/x", Some(json!({"type": "file", "options": {"file_path": "/dev/null"}}))).0,
        400,
        "special files are refused"
    );
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path().join("target"), &link).unwrap();
    assert_eq!(
        s.call("PUT", "sys/audit/x", Some(json!({"type": "file", "options": {"file_path": link}}))).0,
        400
    );
    assert_eq!(
        s.call(
            "PUT",
            "sys/audit/x",
            Some(json!({"type": "file", "options": {"file_path": dir.path().join("ok"), "prefix": "a\nb"}}))
        )
        .0,
        400,
        "prefixes cannot inject lines"
    );
    assert_eq!(s.call("PUT", "sys/audit/x", Some(json!({"type": "socket", "options": {}}))).0, 400);
}

/// Fail closed (security.md S9): with the only device unable to write, requests fail and no
/// secret leaves the server.
#[test]
fn audit_fails_closed_when_the_device_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("COFFER_REQUIRE_ROOT").is_err(),
            "cannot mount a tmpfs but COFFER_REQUIRE_ROOT is set"
        );
        eprintln!("skipping: cannot mount a small tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let s = Server::dev();
    s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    let secret = "fail-closed-canary-77aa";
    assert_eq!(s.call("PUT", "kv1/app", Some(json!({"password": secret}))).0, 204);
    let log = mnt.join("audit.log");
    assert_eq!(
        s.call("PUT", "sys/audit/file", Some(json!({"type": "file", "options": {"file_path": log}}))).0,
        204
    );
    assert_eq!(s.call("GET", "kv1/app", None).0, 200);
    // Fill the filesystem.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 128 * 1024]);
    let (st, body) = s.call("GET", "kv1/app", None);
    assert_eq!(st, 500, "{body}");
    assert!(!body.to_string().contains(secret), "secret leaked although the audit write failed");
    // The failure shows in the metrics operators scrape (dev listeners serve them without a
    // token, as OpenBao's do).
    let (st, _, metrics) = crate::metrics::scrape(&s.addr, "", "?format=prometheus");
    assert_eq!(st, 200, "{metrics}");
    let failed = |record: &str| {
        crate::metrics::count(&metrics, &format!("coffer_audit_failures_total{{record=\"{record}\"}}"))
    };
    assert!(failed("request") + failed("response") >= 1.0, "{metrics}");
    // Space back: requests work again, and the failed writes left no half line behind.
    std::fs::remove_file(&filler).unwrap();
    let (st, body) = s.call("GET", "kv1/app", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["password"], secret);
    let (st, v) = s.call("GET", "sys/audit-verify/file", None);
    assert_eq!((st, &v["data"]["intact"]), (200, &json!(true)), "{v}");
}

// ---------------------------------------------------------------------------------------------
// Item 6: devices come from the configuration (CVE-2025-6000 class).

/// Without `unsafe_allow_api_audit_creation`, `sys/audit/<path>` creates nothing: a caller with
/// sudo on sys/audit cannot make the server write to a file of its choosing.
#[test]
fn api_audit_device_creation_is_refused_without_the_unsafe_flag() {
    let n = Node::start(|_| String::new());
    let target = n.dir.path().join("authorized_keys");
    let (st, v) =
        n.s.call("PUT", "sys/audit/x", Some(json!({"type": "file", "options": {"file_path": target}})));
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["errors"][0],
        "cannot enable audit device via API; use declarative, config-based audit device management instead"
    );
    assert!(!target.exists(), "the refused device created its file");
    assert_eq!(n.s.call("GET", "sys/audit", None).1["data"], json!({}));

    // The operator can opt in (OpenBao's escape hatch); then the API works.
    let n = Node::start(|_| "unsafe_allow_api_audit_creation = true".into());
    let log = n.dir.path().join("api.log");
    let (st, v) =
        n.s.call("PUT", "sys/audit/x", Some(json!({"type": "file", "options": {"file_path": log}})));
    assert_eq!(st, 204, "{v}");
    assert!(
        n.s.stderr.text().contains("unsafe_allow_api_audit_creation"),
        "the opt-in is logged as a warning"
    );
}

/// A `prefix` needs `allow_audit_log_prefixing`, even where API creation is allowed: the
/// advisory's exploit wrote an `ssh-ed25519 ...` line into an existing 0600 file.
#[test]
fn audit_prefix_is_refused_without_allow_audit_log_prefixing() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("authorized_keys");
    std::fs::write(&keys, "ssh-ed25519 AAAAlegit admin\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (st, v) = s.call(
        "PUT",
        "sys/audit/x",
        Some(json!({"type": "file", "options": {"file_path": keys, "prefix": "ssh-ed25519 AAAAattacker evil "}})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(v["errors"][0].as_str().unwrap().starts_with("audit log prefixing is not allowed"), "{v}");
    s.call("GET", "sys/mounts", None);
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), "ssh-ed25519 AAAAlegit admin\n");

    // From the configuration too: the server refuses to start and names the key.
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("coffer.hcl");
    let log = cfg_dir.path().join("a.log");
    std::fs::write(&cfg, Node::config_text(cfg_dir.path(), &audit_block("main", &log, "prefix = \"x \"")))
        .unwrap();
    let (status, stderr) = run_to_exit(harness::config_command(&cfg, &[("COFFER_IT_UNSEAL_KEY", KEY_HEX)]));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("audit.options.prefix: audit log prefixing is not allowed"), "{stderr}");
}

/// `log_raw` (secrets in the clear in the log) is for the operator's configuration only; the
/// API refuses it even where API creation is allowed.
#[test]
fn log_raw_is_refused_over_the_api_even_with_the_unsafe_flag() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("raw.log");
    let (st, v) = s.call(
        "PUT",
        "sys/audit/raw",
        Some(json!({"type": "file", "options": {"file_path": log, "log_raw": "true"}})),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["errors"][0],
        "log_raw can only be set on audit devices declared in the server configuration"
    );
    assert!(!log.exists());
    let (st, v) = s.call(
        "PUT",
        "sys/audit/raw",
        Some(json!({"type": "file", "options": {"file_path": log, "log_raw": "false"}})),
    );
    assert_eq!(st, 204, "log_raw=false is harmless: {v}");
}

/// No audit file inside the storage directory, whatever the route (the API, a symlinked
/// directory, `..`, or the configuration).
#[test]
fn audit_file_inside_the_storage_directory_is_refused() {
    let n = Node::start(|_| "unsafe_allow_api_audit_creation = true".into());
    let data = n.dir.path().join("data");
    let link = n.dir.path().join("innocent");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    for file in [data.join("audit.log"), link.join("audit.log"), n.dir.path().join("x/../data/db.log")] {
        let (st, v) =
            n.s.call("PUT", "sys/audit/x", Some(json!({"type": "file", "options": {"file_path": file}})));
        assert_eq!(st, 400, "{}: {v}", file.display());
        assert!(v["errors"][0].as_str().unwrap().contains("inside the storage directory"), "{v}");
    }
    assert!(!data.join("audit.log").exists() && !data.join("db.log").exists());

    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("coffer.hcl");
    std::fs::write(
        &cfg,
        Node::config_text(cfg_dir.path(), &audit_block("main", &cfg_dir.path().join("data/audit.log"), "")),
    )
    .unwrap();
    let (status, stderr) = run_to_exit(harness::config_command(&cfg, &[("COFFER_IT_UNSEAL_KEY", KEY_HEX)]));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("audit.options.file_path: file_path"), "{stderr}");
    assert!(stderr.contains("inside the storage directory"), "{stderr}");
}

/// A device declared in the configuration is enabled at unseal, logs requests, shows its
/// options (fsync included) in sys/audit, survives restarts with its chain, and cannot be
/// disabled or replaced through the API.
#[test]
fn config_declared_audit_device_is_enabled_after_unseal_and_logs_requests() {
    let mut n = Node::start(|dir| audit_block("main", &dir.join("audit.log"), "fsync = true"));
    let log = n.dir.path().join("audit.log");
    let (st, v) = n.s.call("GET", "sys/audit", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["main/"]["type"], "file", "{v}");
    assert_eq!(v["data"]["main/"]["options"]["fsync"], "true", "{v}");
    assert_eq!(v["data"]["main/"]["options"]["file_path"], json!(log), "{v}");

    assert_eq!(n.s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(n.s.call("PUT", "kv1/app", Some(json!({"password": "hunter2"}))).0, 204);
    assert_eq!(n.s.call("GET", "kv1/app", None).0, 200);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("hunter2"));
    let entries = lines(&log);
    assert!(
        entries.iter().any(|e| e["type"] == "response" && e["request"]["path"] == "kv1/app"),
        "the kv requests are in the log"
    );

    let (st, v) = n.s.call("DELETE", "sys/audit/main", None);
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["errors"][0], "cannot disable configuration-managed audit device");
    let other = n.dir.path().join("other.log");
    assert_eq!(
        n.s.call("PUT", "sys/audit/main", Some(json!({"type": "file", "options": {"file_path": other}}))).0,
        400
    );

    n.restart(false);
    assert_eq!(n.s.call("GET", "sys/audit", None).1["data"]["main/"]["type"], "file");
    assert_eq!(n.s.call("GET", "kv1/app", None).0, 200);
    let (st, v) = n.s.call("GET", "sys/audit-verify/main", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["intact"], true, "{v}");
    assert_eq!(v["data"]["first_sequence"], 0, "one chain across the restart: {v}");
}

// ---------------------------------------------------------------------------------------------
// Item 7: the keyed, anchored chain and `coffer audit verify`.

/// A node with a declared device `main` and some traffic; returns the node and its log.
fn node_with_traffic() -> (Node, PathBuf) {
    let n = Node::start(|dir| audit_block("main", &dir.join("audit.log"), ""));
    let log = n.dir.path().join("audit.log");
    assert_eq!(n.s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"}))).0, 204);
    for i in 0..6 {
        assert_eq!(n.s.call("PUT", &format!("kv1/k{i}"), Some(json!({"v": i}))).0, 204);
        assert_eq!(n.s.call("GET", &format!("kv1/k{i}"), None).0, 200);
    }
    (n, log)
}

fn read_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(log: &Path, lines: &[String]) {
    std::fs::write(log, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// What someone without the chain key can do after editing line `k` (0-based): recompute
/// every link from there with plain SHA-256, which is all an unkeyed chain asks for. Works on
/// both line formats (`prev` = hash of the previous line; or `mac` = hash of the line).
fn edit_and_recompute(lines: &mut [String], k: usize) {
    let before = lines[k].clone();
    lines[k] = lines[k].replacen("\"operation\":\"read\"", "\"operation\":\"delete\"", 1);
    assert_ne!(lines[k], before, "line {k} is a read");
    let link = |line: &str| -> String {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["chain"]["mac"].as_str() {
            Some(m) => m.to_owned(),
            None => sha256_hex(line.as_bytes()),
        }
    };
    for i in k..lines.len() {
        if i > k {
            let v: Value = serde_json::from_str(&lines[i]).unwrap();
            let old = v["chain"]["prev"].as_str().unwrap().to_owned();
            let new = link(&lines[i - 1]);
            lines[i] = lines[i].replacen(&format!("\"prev\":\"{old}\""), &format!("\"prev\":\"{new}\""), 1);
        }
        if let Some(cut) = lines[i].rfind(",\"mac\":\"") {
            let signed = lines[i][..cut].to_owned();
            lines[i] = format!("{signed},\"mac\":\"{}\"}}}}", sha256_hex(signed.as_bytes()));
        }
    }
}

/// Editing a line and recomputing the chain the unkeyed way (the old plain-SHA-256 chain let
/// this pass) is reported at the edited line.
#[test]
fn verify_reports_a_line_edited_with_its_hash_recomputed() {
    let (n, log) = node_with_traffic();
    let mut all = read_lines(&log);
    let k = all.iter().rposition(|l| l.contains("\"operation\":\"read\"") && l.contains("kv1/k2")).unwrap();
    assert!(k + 3 < all.len());
    edit_and_recompute(&mut all, k);
    write_lines(&log, &all);
    let (code, out, err) = coffer_cli(&n.s, &["audit", "verify", log.to_str().unwrap()]);
    assert_eq!(code, 1, "tampering must be reported\n{out}{err}");
    assert!(out.contains("TAMPERED (ALTERED)"), "{out}");
    assert!(out.contains(&format!("at line {}:", k + 1)), "the edited line is named: {out}");
}

/// Deleting a line in the middle is reported at the line after the gap.
#[test]
fn verify_reports_a_deleted_middle_line() {
    let (n, log) = node_with_traffic();
    let mut all = read_lines(&log);
    let k = all.len() / 2;
    all.remove(k);
    write_lines(&log, &all);
    let (code, out, err) = coffer_cli(&n.s, &["audit", "verify", log.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("TAMPERED (MISSING) at line {}: 1 line(s) missing", k + 1)), "{out}");
}

/// Cutting off the last lines (which the old, unanchored chain could not notice) is reported:
/// the server knows how far its chain went.
#[test]
fn verify_reports_a_truncated_tail() {
    let (n, log) = node_with_traffic();
    let all = read_lines(&log);
    let keep = all.len() - 3;
    write_lines(&log, &all[..keep]);
    let (code, out, err) = coffer_cli(&n.s, &["audit", "verify", log.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    // The verify request's own lines follow the cut, so the cut shows as a gap before them
    // (with nothing after the cut the kind is "truncated"; see the unit tests in verify.rs).
    assert!(out.contains(&format!("TAMPERED (MISSING) at line {}: 3 line(s) missing", keep + 1)), "{out}");
}

/// The chain continues from the head stored behind the barrier across a clean restart and a
/// crash (SIGKILL: lines written after the last stored head are accepted because they
/// authentically extend it), and verify says intact.
#[test]
fn verify_says_intact_across_restarts_and_a_crash() {
    let (mut n, log) = node_with_traffic();
    n.restart(false);
    for i in 0..3 {
        assert_eq!(n.s.call("GET", &format!("kv1/k{i}"), None).0, 200);
    }
    // Kill right after a burst, so the last lines are likely newer than the stored head.
    for i in 0..20 {
        n.s.call("GET", &format!("kv1/k{}", i % 6), None);
    }
    n.restart(true);
    assert_eq!(n.s.call("GET", "kv1/k0", None).0, 200);
    let (code, out, err) = coffer_cli(&n.s, &["audit", "verify", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}\nserver log:\n{}", n.s.stderr.text());
    assert!(out.contains(": intact: "), "{out}");
    let entries = lines(&log);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["chain"]["seq"], i, "one chain, no gap or restart at 0: {e}");
    }
    assert!(!n.s.stderr.text().contains("audit file damaged"), "{}", n.s.stderr.text());
}

/// Verification is of the server's own device files only: no endpoint takes a file path (it
/// would be a file-read primitive), it needs sudo, and the CLI refuses a file no device writes.
#[test]
fn verify_reads_only_the_devices_own_file() {
    let (n, log) = node_with_traffic();
    let (st, v) = n.s.call("GET", "sys/audit-verify/nope", None);
    assert_eq!(st, 400, "{v}");
    let (st, _) = n.s.call("GET", "sys/audit-verify/main?file_path=/etc/shadow", None);
    assert_eq!(st, 200, "query parameters are ignored, the device's own file is read");
    // sudo is required.
    n.s.call(
        "PUT",
        "sys/policies/acl/reader",
        Some(json!({"policy": "path \"sys/audit-verify/*\" { capabilities = [\"read\"] }"})),
    );
    let (_, t) = n.s.call("POST", "auth/token/create", Some(json!({"policies": ["reader"]})));
    let tok = t["auth"]["client_token"].as_str().unwrap();
    assert_eq!(n.s.call_as(tok, "GET", "sys/audit-verify/main", None).0, 403);
    let stranger = n.dir.path().join("stranger.log");
    std::fs::write(&stranger, "{}\n").unwrap();
    let (code, out, err) = coffer_cli(&n.s, &["audit", "verify", stranger.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("No audit device of this server writes to"), "{err}");
    // The device can also be named.
    let (code, out, _) = coffer_cli(&n.s, &["audit", "verify", "-device=main", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

/// `-offline` works without the server and says plainly that it checks structure only.
#[test]
fn offline_verify_says_it_checks_structure_only() {
    let (n, log) = node_with_traffic();
    let (code, out, err) = coffer_cli(&n.s, &["audit", "verify", "-offline", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("structure intact"), "{out}");
    assert!(out.contains("STRUCTURE ONLY") && out.contains("NOT checked"), "{out}");
    let mut all = read_lines(&log);
    all.remove(3);
    write_lines(&log, &all);
    let (code, out, _) = coffer_cli(&n.s, &["audit", "verify", "-offline", log.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at line 4"), "{out}");
}

/// A new device on a file that already has content starts its chain after that content; the
/// earlier bytes are reported as not covered, not as tampering.
#[test]
fn a_device_on_a_used_file_starts_its_chain_after_the_existing_content() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    s.call("PUT", "sys/audit/a", Some(json!({"type": "file", "options": {"file_path": log}})));
    s.call("GET", "sys/mounts", None);
    assert_eq!(s.call("DELETE", "sys/audit/a", None).0, 204);
    let before = std::fs::metadata(&log).unwrap().len();
    assert_eq!(
        s.call("PUT", "sys/audit/b", Some(json!({"type": "file", "options": {"file_path": log}}))).0,
        204
    );
    s.call("GET", "sys/mounts", None);
    let (st, v) = s.call("GET", "sys/audit-verify/b", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["intact"], true, "{v}");
    assert_eq!(v["data"]["skipped_bytes"], before, "{v}");
    assert_eq!(v["data"]["first_sequence"], 0, "{v}");
    // Two devices cannot share one file.
    let (st, v) = s.call("PUT", "sys/audit/c", Some(json!({"type": "file", "options": {"file_path": log}})));
    assert_eq!(st, 400, "{v}");
}

/// `fsync` is a boolean option: shown in sys/audit, refused when it is not a boolean.
#[test]
fn fsync_option_is_validated_and_shown() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (st, v) = s.call(
        "PUT",
        "sys/audit/f",
        Some(json!({"type": "file", "options": {"file_path": log, "fsync": "sometimes"}})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(v["errors"][0].as_str().unwrap().contains("unable to parse 'fsync'"), "{v}");
    let (st, v) = s.call(
        "PUT",
        "sys/audit/f",
        Some(json!({"type": "file", "options": {"file_path": log, "fsync": "true"}})),
    );
    assert_eq!(st, 204, "{v}");
    assert_eq!(s.call("GET", "sys/audit", None).1["data"]["f/"]["options"]["fsync"], "true");
    assert_eq!(s.call("GET", "sys/mounts", None).0, 200);
    assert!(std::fs::read_to_string(&log).unwrap().contains("sys/mounts"));
}
