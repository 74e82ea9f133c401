//! Audit on a cluster: every node runs the devices its configuration declares with its own file
//! and keeps its own chain's key and head (node-local storage), so a follower's truncated audit
//! tail is found after its restart, and auditing never writes to the replicated state.

use std::time::Duration;

use serde_json::json;

use super::crash::reconfigure;
use super::harness::{Options, TestCluster};

#[test]
fn every_node_anchors_its_own_audit_chain_and_finds_its_truncated_tail() {
    let mut c = TestCluster::start(Options::default());
    let first = c.leader();
    let order: Vec<usize> = (1..=3).filter(|n| *n != first).chain([first]).collect();
    let file = |c: &TestCluster, i: usize| c.dir().join(format!("audit-node{i}.log"));
    for i in order {
        let path = file(&c, i).display().to_string();
        reconfigure(&mut c, i, |v| {
            v["audit"] = json!([{"type": "file", "path": "file", "options": {"file_path": path}}]);
        });
    }
    let leader = c.leader();
    assert_eq!(c.call(leader, "POST", "sys/mounts/kv", Some(json!({"type": "kv"}))).0, 204);
    for i in 0..30 {
        let n = 1 + i % 3;
        let (st, b) = c.call(n, "POST", &format!("kv/k{i}"), Some(json!({"v": i})));
        assert_eq!(st, 204, "node {n}: {b}");
        assert_eq!(c.call(n, "GET", &format!("kv/k{i}"), None).0, 200);
    }
    // Audit heads never go through Raft: reads alone leave every node's state as it is.
    let settled = c.wait_same_digest(Duration::from_secs(30));
    for n in 1..=3 {
        for i in 0..10 {
            assert_eq!(c.call(n, "GET", &format!("kv/k{i}"), None).0, 200);
        }
    }
    // A follower stops cleanly (its last head stored), loses the last line of its file, and
    // comes back: it reports the truncation of its own chain.
    let leader = c.leader();
    let f = c.other_than(leader);
    let status = c.nodes[f - 1].server.take().expect("the follower runs").terminate();
    assert!(status.success(), "node {f} exit: {status:?}");
    let text = std::fs::read_to_string(file(&c, f)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 20, "node {f} audited {} lines", lines.len());
    std::fs::write(file(&c, f), format!("{}\n", lines[..lines.len() - 1].join("\n"))).unwrap();
    c.start_node(f);
    c.wait_for_members(3);
    let (st, b) = c.call(f, "GET", "sys/audit-verify/file", None);
    assert_eq!(st, 200, "{b}");
    // The chain carried on from the stored head after the restart: the cut line is missing
    // before the first line written since.
    let problem = &b["data"]["problem"];
    assert_eq!((&b["data"]["intact"], &problem["kind"]), (&json!(false), &json!("missing")), "{b}");
    assert_eq!(problem["line"].as_u64(), Some(lines.len() as u64), "{b}");
    for n in (1..=3).filter(|n| *n != f) {
        let (st, b) = c.call(n, "GET", "sys/audit-verify/file", None);
        assert_eq!((st, b["data"]["intact"].clone()), (200, json!(true)), "node {n}: {b}");
    }
    let after = c.wait_same_digest(Duration::from_secs(30));
    assert_eq!(after.0, settled.0, "audited reads and a restart wrote nothing to the replicated state");
    for n in 1..=3 {
        let log = c.log(n);
        assert!(!log.contains("could not store the audit chain head"), "node {n}:\n{log}");
    }
}
