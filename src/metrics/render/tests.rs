use std::time::Duration;

use super::*;
use crate::metrics::{ClusterReadings, Route, Timing};

fn sample_metrics() -> (Metrics, Readings) {
    let m = Metrics::new();
    m.record_request(Route::of_mount(false, "kv"), 200, Duration::from_micros(300));
    m.record_request(Route::of_mount(false, "kv"), 404, Duration::from_millis(2));
    m.record_request(
        Route::of_sys_path("sys/health").unwrap_or(Route::UNKNOWN),
        200,
        Duration::from_micros(80),
    );
    m.record_token_lookup(TokenLookup::Valid);
    m.record_token_lookup(TokenLookup::Valid);
    m.record_token_lookup(TokenLookup::Invalid);
    m.record_audit_failure(AuditRecord::Response);
    let commit = Timing::default();
    commit.observe(Duration::from_millis(4));
    let r = Readings {
        unsealed: true,
        barrier: crate::metrics::BarrierReadings { encryptions: 7, decryptions: 9, decrypt_failures: 0 },
        cluster: Some(ClusterReadings {
            is_leader: true,
            term: 3,
            last_log_index: 42,
            commit_index: 41,
            applied_index: 40,
            leader_changes: 2,
            snapshot_installs: 0,
            read_index_rounds: 11,
            lease_reads: 8,
            forwarded: 5,
            forward_failures: 1,
            commit_latency: commit.snapshot(),
        }),
    };
    (m, r)
}

#[test]
fn prometheus_text_has_typed_families_and_only_the_series_that_were_hit() {
    let (m, r) = sample_metrics();
    let text = text(families(&m, &r), Format::Prometheus).unwrap();
    for line in [
        "# TYPE coffer_http_requests_total counter",
        "coffer_http_requests_total{route=\"kv\",status=\"2xx\"} 1",
        "coffer_http_requests_total{route=\"kv\",status=\"4xx\"} 1",
        "coffer_http_requests_total{route=\"sys/health\",status=\"2xx\"} 1",
        "# TYPE coffer_http_request_duration_seconds histogram",
        "coffer_http_request_duration_seconds_bucket{route=\"kv\",status=\"2xx\",le=\"0.00025\"} 0",
        "coffer_http_request_duration_seconds_bucket{route=\"kv\",status=\"2xx\",le=\"0.0005\"} 1",
        "coffer_http_request_duration_seconds_bucket{route=\"kv\",status=\"2xx\",le=\"+Inf\"} 1",
        "coffer_http_request_duration_seconds_count{route=\"kv\",status=\"2xx\"} 1",
        "coffer_token_lookups_total{result=\"valid\"} 2",
        "coffer_token_lookups_total{result=\"invalid\"} 1",
        "coffer_token_lookups_total{result=\"wrong_network\"} 0",
        "coffer_audit_failures_total{record=\"response\"} 1",
        "# TYPE coffer_core_unsealed gauge",
        "coffer_core_unsealed 1",
        "coffer_barrier_encryptions_total 7",
        "coffer_raft_read_index_rounds_total 11",
        "coffer_raft_lease_reads_total 8",
        "coffer_barrier_decryptions_total 9",
        "coffer_raft_is_leader 1",
        "coffer_raft_term 3",
        "coffer_raft_commit_index 41",
        "coffer_raft_applied_index 40",
        "coffer_raft_leader_changes_total 2",
        "coffer_raft_commit_duration_seconds_count 1",
        "coffer_cluster_forwarded_requests_total{result=\"ok\"} 5",
        "coffer_cluster_forwarded_requests_total{result=\"error\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Only the series that saw requests: no sys/mounts, no 5xx.
    assert!(!text.contains("route=\"sys/mounts\""), "{text}");
    assert!(!text.contains("status=\"5xx\""), "{text}");
    assert!(!text.contains("# EOF"));
    // Every sample belongs to a family announced by a TYPE line (a 0.0.4 parser needs it).
    let typed: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(
            typed.iter().any(|t| name == *t
                || ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s) == Some(*t))),
            "sample {name} has no TYPE line"
        );
    }
}

#[test]
fn openmetrics_ends_with_eof_and_a_standalone_node_has_no_raft_metrics() {
    let (m, mut r) = sample_metrics();
    r.cluster = None;
    let text = text(families(&m, &r), Format::OpenMetrics).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE coffer_http_requests counter"), "{text}");
    assert!(!text.contains("coffer_raft"), "{text}");
}

#[test]
fn json_has_vaults_shape() {
    let (m, r) = sample_metrics();
    let now = time::macros::datetime!(2026-12-05 23:56:30 UTC);
    let v = json(&families(&m, &r), 10.0, now);
    assert_eq!(v["Timestamp"], "2026-12-05 23:56:30 +0000 UTC");
    assert_eq!(v["Points"], serde_json::json!([]));
    let find = |kind: &str, name: &str, label: Option<(&str, &str)>| -> Value {
        v[kind]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["Name"] == name && label.is_none_or(|(k, val)| e["Labels"][k] == val))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {kind}: {v}"))
    };
    assert_eq!(find("Gauges", "coffer_core_unsealed", None)["Value"], 1);
    let c = find("Counters", "coffer_token_lookups", Some(("result", "valid")));
    assert_eq!((c["Count"].as_u64(), c["Sum"].as_u64(), c["Max"].as_u64()), (Some(2), Some(2), Some(1)));
    assert!((c["Rate"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{c}");
    let s = find("Samples", "coffer_http_request_duration_seconds", Some(("status", "4xx")));
    assert_eq!(s["Labels"], serde_json::json!({"route": "kv", "status": "4xx"}));
    assert_eq!(s["Count"], 1);
    assert!((s["Mean"].as_f64().unwrap() - 2.0).abs() < 1e-9, "milliseconds: {s}");
    for key in ["Rate", "Sum", "Min", "Max", "Stddev"] {
        assert!(s[key].is_number(), "{key} in {s}");
    }
}
