//! S1 on a cluster: secrets written through followers never reach any node's data directory
//! (raft log, state machine, snapshots), any node's trace-level log, the audit file, or error
//! bodies.

use std::time::Duration;

use serde_json::json;

use super::crash::reconfigure;
use super::harness::{eventually, Options, TestCluster};
use crate::canary::{files_under, forms, random_canary};

#[test]
fn no_canary_reaches_any_nodes_raft_log_state_machine_snapshots_or_logs() {
    let mut c = TestCluster::start(Options {
        log_level: "trace",
        snapshot_threshold: 30,
        trailing_logs: 5,
        ..Options::default()
    });
    // A file audit device on the cluster, created through the API (allowed by
    // `unsafe_allow_api_audit_creation`, set one node at a time). The device table is
    // replicated, so every node writes the same file (declared devices, each node with a file
    // of its own: `cluster::audit`).
    let audit = c.dir().join("audit.log");
    let first = c.leader();
    let order: Vec<usize> = (1..=3).filter(|n| *n != first).chain([first]).collect();
    for i in order {
        reconfigure(&mut c, i, |v| v["unsafe_allow_api_audit_creation"] = json!(true));
    }
    let leader = c.leader();
    let (st, b) = c.call(
        leader,
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": audit.display().to_string()}})),
    );
    assert_eq!(st, 204, "{b}");
    let leader = c.leader();
    let f = c.other_than(leader);
    let (st, b) = c.call(f, "GET", "sys/audit", None);
    assert_eq!((st, b["data"]["file/"]["type"].clone()), (200, json!("file")), "{b}");
    let mut secrets = vec![c.root.clone(), c.static_key().to_owned()];
    secrets.extend(c.shares.iter().cloned());
    assert_eq!(
        c.call(f, "POST", "sys/mounts/kv", Some(json!({"type": "kv", "options": {"version": "2"}}))).0,
        204
    );
    assert_eq!(c.call(f, "POST", "sys/mounts/kv1", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(c.call(f, "POST", "sys/mounts/transit", Some(json!({"type": "transit"}))).0, 204);
    assert_eq!(c.call(f, "POST", "sys/auth/approle", Some(json!({"type": "approle"}))).0, 204);
    for i in 0..40 {
        let node = 1 + i % 3;
        let v2 = random_canary("kv2");
        let v1 = random_canary("kv1");
        assert_eq!(c.call(node, "POST", &format!("kv/data/c{i}"), Some(json!({"data": {"v": v2}}))).0, 200);
        assert_eq!(c.call(node, "POST", &format!("kv1/c{i}"), Some(json!({ "v": v1 }))).0, 204);
        let pt = random_canary("transit");
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&pt);
        let (st, b) = c.call(node, "POST", "transit/encrypt/k", Some(json!({ "plaintext": b64 })));
        assert_eq!(st, 200, "{b}");
        secrets.extend([v2, v1, pt, b64]);
    }
    assert_eq!(c.call(f, "POST", "auth/approle/role/r", Some(json!({"token_policies": "default"}))).0, 204);
    for _ in 0..5 {
        let (_, b) = c.call(f, "POST", "auth/approle/role/r/secret-id", Some(json!({})));
        secrets.push(b["data"]["secret_id"].as_str().unwrap().to_owned());
        let (_, b) = c.call(f, "POST", "auth/token/create", Some(json!({"ttl": "1h"})));
        secrets.push(b["auth"]["client_token"].as_str().unwrap().to_owned());
    }
    // Secrets in refused requests and error bodies.
    let bad = random_canary("refused");
    let (st, body) =
        c.call(f, "POST", "kv/data/x", Some(json!({"data": {"v": bad}, "options": {"cas": 99}})));
    assert_eq!(st, 400);
    assert!(!body.to_string().contains(&bad), "an error body echoed the secret");
    secrets.push(bad);
    // Every node has built or installed a snapshot by now; let them settle, then stop them so
    // every byte is on disk.
    c.wait_same_digest(Duration::from_secs(30));
    eventually("a snapshot on disk", Duration::from_secs(30), || {
        let mut files = Vec::new();
        files_under(c.dir(), &mut files);
        files.iter().any(|(p, _)| p.contains("snapshot")).then_some(())
    });
    let logs: Vec<String> = (1..=3).map(|n| c.log(n)).collect();
    for n in 1..=3 {
        c.kill(n);
    }
    let mut raw = Vec::new();
    files_under(c.dir(), &mut raw);
    // Every needle is ASCII, which a lossy UTF-8 view keeps byte for byte; `str::contains` is
    // far faster than a byte-window scan in a debug build.
    let files: Vec<(String, String)> =
        raw.into_iter().map(|(p, b)| (p, String::from_utf8_lossy(&b).into_owned())).collect();
    let mut hits = Vec::new();
    for s in &secrets {
        for form in forms(s) {
            for (path, bytes) in &files {
                if path.ends_with(".json") {
                    continue; // the node configurations the harness wrote
                }
                if bytes.contains(&form) {
                    hits.push(format!("{path}: {}", &s[..s.len().min(16)]));
                }
            }
            for (n, log) in logs.iter().enumerate() {
                if log.contains(&form) {
                    hits.push(format!("node {} log: {}", n + 1, &s[..s.len().min(16)]));
                }
            }
        }
    }
    assert!(files.len() > 6, "scanned only {} files", files.len());
    let audit_text =
        files.iter().find(|(p, _)| p.ends_with("audit.log")).map(|(_, t)| t.as_str()).unwrap_or("");
    assert!(
        audit_text.lines().count() > 100 && audit_text.contains("hmac-sha256:"),
        "the audit file was not written: {} lines",
        audit_text.lines().count()
    );
    assert!(hits.is_empty(), "{} secrets found in clear: {hits:?}", hits.len());
}
