//! The audit log: one line per request and response, every leaf hashed, the hash chain, fail
//! closed when no device can write.

use std::io::BufReader;

use serde_json::{json, Value};

use crate::harness::Server;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l}: {e}")))
        .collect()
}

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

    let report = coffer::audit::verify(BufReader::new(std::fs::File::open(&log).unwrap()), "").unwrap();
    assert_eq!(report.first_error, None);
    assert_eq!(report.lines as usize, lines(&log).len());
    assert_eq!(report.chains, 1);
    assert_eq!(s.call("DELETE", "sys/audit/file", None).0, 204);
    assert_eq!(s.call("GET", "sys/audit", None).1["data"], json!({}));
}

#[test]
fn verify_finds_altered_and_missing_lines() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    s.call("PUT", "sys/audit/file", Some(json!({"type": "file", "options": {"file_path": log}})));
    for i in 0..5 {
        s.call("GET", &format!("sys/mounts/x{i}"), None);
    }
    let original = std::fs::read_to_string(&log).unwrap();
    let all: Vec<&str> = original.lines().collect();
    assert!(all.len() >= 10);
    let check =
        |text: String| coffer::audit::verify(BufReader::new(text.as_bytes()), "").unwrap().first_error;
    assert_eq!(check(original.clone()), None);
    // Alter line 4 (1-based): line 5 no longer follows from it.
    let mut altered: Vec<String> = all.iter().map(|l| l.to_string()).collect();
    altered[3] = altered[3]
        .replace("\"type\":\"request\"", "\"type\":\"requesT\"")
        .replace("\"type\":\"response\"", "\"type\":\"responsE\"");
    assert_ne!(altered[3], all[3]);
    let (line, msg) = check(altered.join("\n") + "\n").expect("alteration detected");
    assert_eq!(line, 5, "{msg}");
    // Delete line 6: line 7 (now 6) has a sequence gap.
    let mut missing: Vec<&str> = all.clone();
    missing.remove(5);
    let (line, msg) = check(missing.join("\n") + "\n").expect("deletion detected");
    assert_eq!(line, 6, "{msg}");
    assert!(msg.contains("missing"), "{msg}");
    // Truncating the head is detected as a chain without its start.
    let (line, _) = check(all[2..].join("\n") + "\n").expect("head truncation detected");
    assert_eq!(line, 1);
}

#[test]
fn reopened_device_continues_the_chain() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    s.call("PUT", "sys/audit/a", Some(json!({"type": "file", "options": {"file_path": log}})));
    s.call("GET", "sys/mounts", None);
    s.call("DELETE", "sys/audit/a", None);
    s.call("PUT", "sys/audit/b", Some(json!({"type": "file", "options": {"file_path": log}})));
    s.call("GET", "sys/mounts", None);
    let report = coffer::audit::verify(BufReader::new(std::fs::File::open(&log).unwrap()), "").unwrap();
    assert_eq!(report.first_error, None);
    assert_eq!(report.chains, 1, "the second device continued the first one's chain");
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
    // Space back: requests work again.
    std::fs::remove_file(&filler).unwrap();
    let (st, body) = s.call("GET", "kv1/app", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["password"], secret);
}
