//! Real clients against a cluster with every request sent to a follower: the `bao` CLI,
//! vaultrs, hvac and node-vault run the same flows as against a single node, unchanged.

use serde_json::json;

use super::harness::{Options, TestCluster};
use crate::harness::require_bao;

fn follower_with_secret_kv2() -> (TestCluster, usize) {
    let c = TestCluster::start(Options::default());
    let leader = c.leader();
    let f = c.other_than(leader);
    let (st, b) =
        c.call(f, "POST", "sys/mounts/secret", Some(json!({"type": "kv", "options": {"version": "2"}})));
    assert_eq!(st, 204, "{b}");
    (c, f)
}

#[test]
fn bao_cli_and_vaultrs_flows_pass_against_a_follower() {
    if !require_bao("bao_cli_and_vaultrs_flows_pass_against_a_follower") {
        return;
    }
    let (c, f) = follower_with_secret_kv2();
    let addr = c.nodes[f - 1].addr();
    crate::bao_cli::policy_token_and_approle_flow(&addr, &c.root);
    crate::lifecycle::vaultrs_policy_flow(&addr, &c.root);
    // The CLI's raft commands work against a follower too.
    let (code, out, err) =
        crate::harness::bao_cli_at(&addr, None, &c.root, &["operator", "raft", "list-peers"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("true").count(), 3, "{out}");
    assert!(out.contains("leader") && out.contains("follower"), "{out}");
}

#[test]
fn hvac_and_node_vault_pass_against_a_follower() {
    let (c, f) = follower_with_secret_kv2();
    let addr = c.nodes[f - 1].addr();
    let hvac = crate::clients::run_hvac(&addr, &c.root);
    // node-vault mounts its own paths (transit, approle): give it a fresh cluster's follower.
    let (c2, f2) = follower_with_secret_kv2();
    let node = crate::clients::run_node_vault(&c2.nodes[f2 - 1].addr(), &c2.root);
    if std::env::var("COFFER_REQUIRE_BAO").as_deref() == Ok("1") {
        assert!(hvac && node, "hvac ({hvac}) and node-vault ({node}) are required in CI");
    }
}
