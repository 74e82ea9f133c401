//! A three-node cluster from Vault-style configurations: formation, HA status, writes through
//! followers, reads on every node, the join handshake with Shamir keys.

use std::time::Duration;

use serde_json::json;

use super::harness::{eventually, Options, Seal, TestCluster};

#[test]
fn three_nodes_join_from_vault_style_configs_and_report_ha_status() {
    let c = TestCluster::start(Options::default());
    let leader = c.leader();
    let (st, b) = c.call(leader, "GET", "sys/storage/raft/configuration", None);
    assert_eq!(st, 200, "{b}");
    let servers = b["data"]["config"]["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{b}");
    assert_eq!(servers.iter().filter(|s| s["leader"] == true).count(), 1);
    let mut names: Vec<&str> = servers.iter().map(|s| s["node_id"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["node1", "node2", "node3"]);
    for n in 1..=3 {
        let (st, b) = c.call_as(n, "", "GET", "sys/leader", None);
        assert_eq!(st, 200);
        assert_eq!(b["ha_enabled"], true);
        assert_eq!(b["is_self"], n == leader, "node {n}: {b}");
        assert_eq!(b["leader_address"], c.nodes[leader - 1].addr(), "node {n}: {b}");
        assert!(b["leader_cluster_address"].as_str().unwrap().starts_with("https://"), "{b}");
        assert!(b["raft_applied_index"].as_u64().unwrap() > 0, "{b}");
        // Health: 200 on the leader, 429 on standbys, 200 with standbyok.
        let (st, b) = c.call_as(n, "", "GET", "sys/health", None);
        let want = if n == leader { 200 } else { 429 };
        assert_eq!(st, want, "node {n} health: {b}");
        assert_eq!(b["standby"], n != leader);
        let (st, _) = c.call_as(n, "", "GET", "sys/health?standbyok=true", None);
        assert_eq!(st, 200);
    }
    // A standby refuses to seal, as Vault's does.
    let follower = c.other_than(leader);
    let (st, b) = c.call(follower, "PUT", "sys/seal", None);
    assert_eq!(
        (st, b),
        (500, json!({"errors": ["vault cannot seal when in standby mode; please restart instead"]}))
    );
}

#[test]
fn writes_through_followers_are_read_on_every_node() {
    let c = TestCluster::start(Options::default());
    let leader = c.leader();
    let f1 = c.other_than(leader);
    let f2 = (1..=3).find(|n| *n != leader && *n != f1).unwrap();
    // Mount, policy, token, secret: all written through followers.
    assert_eq!(
        c.call(f1, "POST", "sys/mounts/kv", Some(json!({"type": "kv", "options": {"version": "2"}}))).0,
        204
    );
    let policy = r#"path "kv/data/app/*" { capabilities = ["read", "create", "update"] }"#;
    assert_eq!(c.call(f2, "PUT", "sys/policies/acl/app", Some(json!({ "policy": policy }))).0, 204);
    let (st, b) = c.call(f1, "POST", "auth/token/create", Some(json!({"policies": ["app"], "ttl": "1h"})));
    assert_eq!(st, 200, "{b}");
    let token = b["auth"]["client_token"].as_str().unwrap().to_owned();
    for version in 1..=5 {
        let writer = [f1, f2, leader][version % 3];
        let (st, b) =
            c.call_as(writer, &token, "POST", "kv/data/app/db", Some(json!({"data": {"v": version}})));
        assert_eq!(st, 200, "write via node {writer}: {b}");
        assert_eq!(b["data"]["version"], version);
        // Linearizable reads: every node sees the write as soon as it is acknowledged.
        for reader in 1..=3 {
            let (st, b) = c.call_as(reader, &token, "GET", "kv/data/app/db", None);
            assert_eq!(st, 200, "read on node {reader}: {b}");
            assert_eq!(b["data"]["data"]["v"], version, "stale read on node {reader}");
        }
    }
    // The policy written elsewhere is enforced everywhere.
    for n in 1..=3 {
        assert_eq!(c.call_as(n, &token, "GET", "kv/data/other/x", None).0, 403, "node {n}");
    }
    // A token whose uses are spent on one node is spent on every node.
    let (_, b) = c.call(f1, "POST", "auth/token/create", Some(json!({"num_uses": 2})));
    let limited = b["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(c.call_as(f1, &limited, "GET", "auth/token/lookup-self", None).0, 200);
    assert_eq!(c.call_as(f2, &limited, "GET", "auth/token/lookup-self", None).0, 200);
    assert_eq!(c.call_as(leader, &limited, "GET", "auth/token/lookup-self", None).0, 403);
    // Barrier key rotation on a follower: every node reports the new term at once.
    assert_eq!(c.call(f2, "POST", "sys/rotate", None).0, 204);
    for n in 1..=3 {
        let (st, b) = c.call(n, "GET", "sys/key-status", None);
        assert_eq!((st, b["data"]["term"].clone()), (200, json!(2)), "node {n}: {b}");
    }
    // Transit rotation on one node: encryptions on every node use the new version.
    assert_eq!(c.call(f1, "POST", "sys/mounts/transit", Some(json!({"type": "transit"}))).0, 204);
    assert!(matches!(c.call(f2, "POST", "transit/keys/k", Some(json!({}))).0, 200 | 204));
    assert_eq!(c.call(f1, "POST", "transit/keys/k/rotate", Some(json!({}))).0, 200);
    for n in 1..=3 {
        let (st, b) = c.call(n, "POST", "transit/encrypt/k", Some(json!({"plaintext": "aGk="})));
        assert_eq!(st, 200, "{b}");
        assert!(b["data"]["ciphertext"].as_str().unwrap().starts_with("vault:v2:"), "node {n}: {b}");
    }
    // AppRole secret_id_num_uses = 2: logins spread over the nodes, exactly two succeed.
    assert_eq!(c.call(f1, "POST", "sys/auth/approle", Some(json!({"type": "approle"}))).0, 204);
    assert_eq!(c.call(f2, "POST", "auth/approle/role/r", Some(json!({"secret_id_num_uses": 2}))).0, 204);
    let (_, b) = c.call(leader, "GET", "auth/approle/role/r/role-id", None);
    let role_id = b["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, b) = c.call(f1, "POST", "auth/approle/role/r/secret-id", Some(json!({})));
    let secret_id = b["data"]["secret_id"].as_str().unwrap().to_owned();
    let logins: Vec<u16> = (0..6)
        .map(|i| {
            let node = [f1, f2, leader][i % 3];
            c.call_as(
                node,
                "",
                "POST",
                "auth/approle/login",
                Some(json!({"role_id": role_id, "secret_id": secret_id})),
            )
            .0
        })
        .collect();
    assert_eq!(logins.iter().filter(|s| **s == 200).count(), 2, "{logins:?}");
}

#[test]
fn shamir_nodes_join_after_being_unsealed_with_the_clusters_keys() {
    // Configurations with only keys OpenBao accepts, and OpenBao's steps: start all three, init
    // one, unseal each.
    let c = TestCluster::launch(Options { seal: Seal::Shamir, vault_compatible: true, ..Options::default() });
    let mut c = c;
    c.init();
    // The joiners asked node 1 for a challenge (retry_join); they unseal with node 1's shares.
    c.unseal(2);
    c.unseal(3);
    c.wait_for_members(3);
    let leader = c.leader();
    let f = c.other_than(leader);
    assert_eq!(c.call(f, "POST", "sys/mounts/kv", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(c.call(f, "POST", "kv/x", Some(json!({"a": "b"}))).0, 204);
    for n in 1..=3 {
        let (st, b) = c.call(n, "GET", "kv/x", None);
        assert_eq!((st, b["data"]["a"].clone()), (200, json!("b")), "node {n}");
    }
    // Every node agrees on the replicated state.
    let (index, _) = c.wait_same_digest(Duration::from_secs(30));
    assert!(index > 0);
    // A joiner refuses `sys/init`: it belongs to a cluster now.
    let (st, _) =
        c.call_as(f, "", "PUT", "sys/init", Some(json!({"secret_shares": 1, "secret_threshold": 1})));
    assert_eq!(st, 400);
    eventually("health on every node", Duration::from_secs(10), || {
        (1..=3).all(|n| c.call_as(n, "", "GET", "sys/health?standbyok=true", None).0 == 200).then_some(())
    });
}

#[test]
fn step_down_redirects_and_read_consistency_headers() {
    let c = TestCluster::start(Options::default());
    let leader = c.leader();
    let f = c.other_than(leader);
    assert_eq!(c.call(f, "POST", "sys/mounts/kv", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(c.call(f, "POST", "kv/a", Some(json!({"v": "1"}))).0, 204);
    // Without forwarding (the client asks), a standby answers 307 to the leader's api_addr.
    let client =
        reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client
        .post(format!("{}/v1/kv/b", c.nodes[f - 1].addr()))
        .header("X-Vault-Token", &c.root)
        .header("X-Vault-No-Request-Forwarding", "true")
        .json(&json!({"v": "2"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(r.headers()["location"], format!("{}/v1/kv/b", c.nodes[leader - 1].addr()));
    // Reads: stale on request, forwarded on request, linearizable by default.
    for header in [
        ("X-Coffer-Consistency", "stale"),
        ("X-Vault-Inconsistent", "forward-active-node"),
        ("X-Coffer-Consistency", "linearizable"),
    ] {
        let r = client
            .get(format!("{}/v1/kv/a", c.nodes[f - 1].addr()))
            .header("X-Vault-Token", &c.root)
            .header(header.0, header.1)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{header:?}");
    }
    // Step-down sent to a follower is forwarded; another node takes over.
    let (st, b) = c.call(f, "PUT", "sys/step-down", None);
    assert_eq!(st, 204, "{b}");
    let new = c.wait_leader_except(Some(leader));
    assert_ne!(new, leader);
    assert_eq!(c.call(new, "POST", "kv/c", Some(json!({"v": "3"}))).0, 204);
    eventually("the old leader to follow the new one", Duration::from_secs(20), || {
        let (_, b) = c.call_as(leader, "", "GET", "sys/leader", None);
        (b["is_self"] == false && b["leader_address"] == c.nodes[new - 1].addr()).then_some(())
    });
}

/// A read barrier covers what a node caches, not only its storage: a follower applies an
/// entry, then reloads its mount router, policies and backend caches asynchronously, and a
/// read must not land in between.
#[test]
fn reads_on_any_node_see_mounts_and_policies_changed_just_before() {
    // Every node reloads its caches 150 ms late, as a loaded follower might.
    let options = Options { env: vec![("COFFER_FAULT_SLOW_INVALIDATION_MS", "150")], ..Options::default() };
    let c = TestCluster::start(options);
    assert_eq!(
        c.call(1, "POST", "sys/mounts/kv", Some(json!({"type": "kv", "options": {"version": "2"}}))).0,
        204
    );
    let policy = |paths: &[String]| {
        let rules: String = paths
            .iter()
            .map(|p| {
                format!("path \"kv/data/{p}\" {{ capabilities = [\"read\", \"update\", \"create\"] }}\n")
            })
            .collect();
        json!({ "policy": rules })
    };
    let mut granted = vec!["base".to_owned()];
    assert_eq!(c.call(1, "PUT", "sys/policies/acl/grow", Some(policy(&granted))).0, 204);
    let (st, b) = c.call(2, "POST", "auth/token/create", Some(json!({"policies": ["grow"], "ttl": "1h"})));
    assert_eq!(st, 200, "{b}");
    let token = b["auth"]["client_token"].as_str().unwrap().to_owned();
    for i in 0..12usize {
        let writer = i % 3 + 1;
        // A new mount, then a wider policy, both through `writer`…
        let (st, b) = c.call(writer, "POST", &format!("sys/mounts/m{i}"), Some(json!({"type": "kv"})));
        assert_eq!(st, 204, "{b}");
        granted.push(format!("p{i}"));
        assert_eq!(c.call(writer, "PUT", "sys/policies/acl/grow", Some(policy(&granted))).0, 204);
        assert_eq!(c.call(writer, "POST", &format!("kv/data/p{i}"), Some(json!({"data": {"i": i}}))).0, 200);
        // …are in force on every node as soon as they are acknowledged.
        for reader in 1..=3 {
            let (st, b) = c.call(reader, "GET", "sys/mounts", None);
            assert_eq!(st, 200, "{b}");
            assert!(b["data"][format!("m{i}/")].is_object(), "node {reader} does not list m{i}/ yet");
            let (st, b) = c.call_as(reader, &token, "GET", &format!("kv/data/p{i}"), None);
            assert_eq!(st, 200, "node {reader} still enforces the old policy: {b}");
            assert_eq!(b["data"]["data"]["i"], i);
        }
    }
}
