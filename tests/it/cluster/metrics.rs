//! `sys/metrics` on a cluster: every node reports its own Raft state (term, leadership, commit
//! and applied index), its forwarded requests and its write latency; a follower that caught up
//! through a snapshot counts the install.

use std::time::Duration;

use serde_json::json;

use super::harness::{eventually, Options, TestCluster};
use crate::metrics::{count, sample, scrape};

/// Node `i`'s metrics in the Prometheus text format (the root token; the harness's listeners
/// keep metrics behind a token).
fn prom(c: &TestCluster, i: usize) -> String {
    let (st, _, body) = scrape(&c.nodes[i - 1].addr(), &c.root, "?format=prometheus");
    assert_eq!(st, 200, "node {i}: {body}");
    body
}

#[test]
fn raft_metrics_report_leadership_progress_and_forwarding_per_node() {
    let c = TestCluster::start(Options::default());
    let leader = c.leader();
    let follower = c.other_than(leader);
    // Every node knows the term and who leads; exactly one says it is the leader (the gauge
    // follows the role, which settles right after the election).
    eventually("one node reporting is_leader", Duration::from_secs(30), || {
        let leaders: Vec<usize> =
            (1..=3).filter(|i| sample(&prom(&c, *i), "coffer_raft_is_leader") == Some(1.0)).collect();
        (leaders == [leader]).then_some(())
    });
    for i in 1..=3 {
        let m = prom(&c, i);
        assert!(sample(&m, "coffer_raft_term").unwrap() >= 1.0, "node {i}: {m}");
        assert!(sample(&m, "coffer_raft_leader_changes_total").unwrap() >= 1.0, "node {i}: {m}");
        assert!(sample(&m, "coffer_raft_applied_index").unwrap() >= 1.0, "node {i}: {m}");
        assert_eq!(sample(&m, "coffer_core_unsealed"), Some(1.0), "node {i}");
    }

    assert_eq!(
        c.call(leader, "POST", "sys/mounts/kv", Some(json!({"type": "kv", "options": {"version": "2"}}))).0,
        204
    );
    let (lead0, fol0) = (prom(&c, leader), prom(&c, follower));
    let writes = 5;
    for i in 0..writes {
        let (st, b) = c.call(follower, "POST", &format!("kv/data/m{i}"), Some(json!({"data": {"i": i}})));
        assert_eq!(st, 200, "{b}");
    }
    let (lead1, fol1) = (prom(&c, leader), prom(&c, follower));
    let moved = |a: &str, b: &str, series: &str| count(b, series) - count(a, series);
    let w = f64::from(writes);
    // The follower forwarded every write and answered it (its own request metrics).
    assert_eq!(moved(&fol0, &fol1, "coffer_cluster_forwarded_requests_total{result=\"ok\"}"), w, "{fol1}");
    assert_eq!(moved(&fol0, &fol1, "coffer_http_requests_total{route=\"kv\",status=\"2xx\"}"), w);
    // The leader ran them: its request metrics, commit latencies and indexes moved.
    assert_eq!(
        moved(&lead0, &lead1, "coffer_http_requests_total{route=\"kv\",status=\"2xx\"}"),
        w,
        "{lead1}"
    );
    assert!(moved(&lead0, &lead1, "coffer_raft_commit_duration_seconds_count") >= w, "{lead1}");
    assert!(moved(&lead0, &lead1, "coffer_raft_commit_duration_seconds_sum") > 0.0);
    for series in ["coffer_raft_applied_index", "coffer_raft_commit_index", "coffer_raft_last_log_index"] {
        assert!(moved(&lead0, &lead1, series) >= w, "{series}: {lead1}");
    }
    // The leader forwards nothing; the follower proposes nothing itself.
    assert_eq!(count(&lead1, "coffer_cluster_forwarded_requests_total{result=\"ok\"}"), 0.0);
    assert_eq!(count(&fol1, "coffer_raft_commit_duration_seconds_count"), 0.0, "{fol1}");
    // The follower applies the writes too.
    let target = sample(&lead1, "coffer_raft_applied_index").unwrap();
    eventually("the follower to apply the writes", Duration::from_secs(30), || {
        (sample(&prom(&c, follower), "coffer_raft_applied_index")? >= target).then_some(())
    });

    // A read on the follower runs a read barrier there (a read-index round with the leader).
    let (st, b) = c.call(follower, "GET", "kv/data/m0", None);
    assert_eq!(st, 200, "{b}");
    let fol2 = prom(&c, follower);
    assert!(moved(&fol1, &fol2, "coffer_raft_read_index_rounds_total") >= 1.0, "{fol2}");
    assert!(prom(&c, leader).contains("coffer_raft_lease_reads_total"));
}

#[test]
fn a_follower_that_catches_up_through_a_snapshot_counts_the_install() {
    let mut c =
        TestCluster::start(Options { snapshot_threshold: 20, trailing_logs: 5, ..Options::default() });
    let leader = c.leader();
    assert_eq!(c.call(leader, "POST", "sys/mounts/kv", Some(json!({"type": "kv"}))).0, 204);
    let lagging = c.other_than(leader);
    assert_eq!(count(&prom(&c, lagging), "coffer_raft_snapshot_installs_total"), 0.0);
    c.kill(lagging);
    for i in 0..60 {
        assert_eq!(c.call(leader, "PUT", &format!("kv/s{i}"), Some(json!({ "i": i }))).0, 204);
    }
    // Restarted (counters start again from zero), it is sent a snapshot: the entries it misses
    // were purged from the leader's log.
    c.start_node(lagging);
    eventually("the lagging node to install a snapshot", Duration::from_secs(60), || {
        let (st, _, body) = scrape(&c.nodes[lagging - 1].addr(), &c.root, "?format=prometheus");
        (st == 200 && count(&body, "coffer_raft_snapshot_installs_total") >= 1.0).then_some(())
    });
    assert_eq!(count(&prom(&c, leader), "coffer_raft_snapshot_installs_total"), 0.0);
}
