//! Operator work on a cluster: snapshots moved between clusters, and quorum ceremonies whose
//! calls land on different nodes.

use std::time::Duration;

use serde_json::json;

use super::harness::{eventually, Options, TestCluster};
use crate::harness::http_client;

#[test]
fn a_snapshot_saved_on_one_cluster_restores_into_another() {
    let a = TestCluster::start(Options::default());
    let la = a.leader();
    let fa = a.other_than(la);
    assert_eq!(
        a.call(fa, "POST", "sys/mounts/kv", Some(json!({"type": "kv", "options": {"version": "2"}}))).0,
        204
    );
    assert_eq!(a.call(fa, "POST", "kv/data/app", Some(json!({"data": {"from": "a"}}))).0, 200);
    // Saved through a standby (forwarded to the leader): a gzip'd tar ending in SHA256SUMS.sealed.
    let client = http_client(None);
    let r = client
        .get(format!("{}/v1/sys/storage/raft/snapshot", a.nodes[fa - 1].addr()))
        .header("X-Vault-Token", &a.root)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    let archive = r.bytes().unwrap().to_vec();
    assert_eq!(&archive[..2], &[0x1f, 0x8b], "not gzip");

    // Another cluster with the same static seal key but its own root key and data.
    let mut b =
        TestCluster::start(Options { static_key: Some(a.static_key().to_owned()), ..Options::default() });
    let lb = b.leader();
    let fb = b.other_than(lb);
    assert_eq!(
        b.call(fb, "POST", "sys/mounts/kv", Some(json!({"type": "kv", "options": {"version": "2"}}))).0,
        204
    );
    assert_eq!(b.call(fb, "POST", "kv/data/app", Some(json!({"data": {"from": "b"}}))).0, 200);
    let post = |path: &str| {
        client
            .post(format!("{}/v1/{path}", b.nodes[fb - 1].addr()))
            .header("X-Vault-Token", &b.root)
            .body(archive.clone())
            .send()
            .unwrap()
    };
    // Other keys: refused unless forced; nothing changes.
    let r = post("sys/storage/raft/snapshot");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("different set of unseal keys"));
    assert_eq!(b.call(fb, "GET", "kv/data/app", None).1["data"]["data"]["from"], "b");
    // A damaged archive is refused and changes nothing.
    let mut damaged = archive.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x55;
    let r = client
        .post(format!("{}/v1/sys/storage/raft/snapshot-force", b.nodes[fb - 1].addr()))
        .header("X-Vault-Token", &b.root)
        .body(damaged)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "{:?}", r.text());
    assert_eq!(b.call(fb, "GET", "kv/data/app", None).1["data"]["data"]["from"], "b");
    // Forced: every node of B now holds A's data, unsealed again with A's keys; A's token works.
    let r = post("sys/storage/raft/snapshot-force");
    assert_eq!(r.status().as_u16(), 204, "{:?}", r.text());
    for n in 1..=3 {
        eventually(&format!("node {n} of B to serve A's data"), Duration::from_secs(60), || {
            let (st, body) = b.call_as(n, &a.root, "GET", "kv/data/app", None);
            (st == 200 && body["data"]["data"]["from"] == "a").then_some(())
        });
    }
    b.root = a.root.clone();
    b.wait_same_digest(Duration::from_secs(30));
}

#[test]
fn generate_root_and_rekey_complete_when_their_calls_go_to_different_nodes() {
    let c = TestCluster::start(Options::default());
    let leader = c.leader();
    let f1 = c.other_than(leader);
    let f2 = (1..=3).find(|n| *n != leader && *n != f1).unwrap();
    // Root generation (recovery shares: static seal): attempt on one node, updates on others.
    let (st, b) = c.call(f1, "PUT", "sys/generate-root-token/attempt", Some(json!({})));
    assert_eq!(st, 200, "{b}");
    let nonce = b["data"]["nonce"].as_str().unwrap().to_owned();
    let otp = b["data"]["otp"].as_str().unwrap().to_owned();
    let (st, b) = c.call(
        f2,
        "PUT",
        "sys/generate-root-token/update",
        Some(json!({"nonce": nonce, "key": c.shares[0]})),
    );
    assert_eq!((st, b["data"]["progress"].clone()), (200, json!(1)), "{b}");
    let (st, b) = c.call(
        leader,
        "PUT",
        "sys/generate-root-token/update",
        Some(json!({"nonce": nonce, "key": c.shares[1]})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["complete"], true, "{b}");
    let encoded = b["data"]["encoded_token"].as_str().unwrap().to_owned();
    // The CLI decodes locally: base64(token XOR otp).
    let token = coffer::core::generate_root::decode_token(&encoded, &otp).unwrap().to_string();
    let (st, b) = c.call_as(f2, &token, "GET", "auth/token/lookup-self", None);
    assert_eq!((st, b["data"]["policies"].clone()), (200, json!(["root"])), "{b}");
    // Recovery key rekey: init on one node, updates on the others; the new shares work.
    let (st, b) = c.call(
        f2,
        "PUT",
        "sys/rekey-recovery-key/init",
        Some(json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    assert_eq!(st, 200, "{b}");
    let nonce = b["nonce"].as_str().unwrap().to_owned();
    let (st, b) =
        c.call(f1, "PUT", "sys/rekey-recovery-key/update", Some(json!({"nonce": nonce, "key": c.shares[0]})));
    assert_eq!(st, 200, "{b}");
    let (st, b) = c.call(
        leader,
        "PUT",
        "sys/rekey-recovery-key/update",
        Some(json!({"nonce": nonce, "key": c.shares[2]})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["complete"], true, "{b}");
    let new_keys: Vec<String> =
        b["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    assert_eq!(new_keys.len(), 3);
    // The new recovery shares authorise a new root generation started on yet another node.
    let (_, b) = c.call(f2, "PUT", "sys/generate-root-token/attempt", Some(json!({})));
    let nonce = b["data"]["nonce"].as_str().unwrap().to_owned();
    c.call(
        leader,
        "PUT",
        "sys/generate-root-token/update",
        Some(json!({"nonce": nonce, "key": new_keys[0]})),
    );
    let (st, b) = c.call(
        f1,
        "PUT",
        "sys/generate-root-token/update",
        Some(json!({"nonce": nonce, "key": new_keys[1]})),
    );
    assert_eq!((st, b["data"]["complete"].clone()), (200, json!(true)), "{b}");
}
