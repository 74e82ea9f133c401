//! `sys/metrics` on one node: who may read it (a token with `read` on `sys/metrics`, or anyone
//! on a listener whose `telemetry` block opens it), its three formats, and counters that move
//! with the requests served. The cluster's Raft metrics are in `cluster/metrics.rs`.

use serde_json::{json, Value};

use crate::harness::{self, Server};

/// `GET /v1/sys/metrics?<query>` on `addr` with `token` ("" for none): (status, content type,
/// body).
pub fn scrape(addr: &str, token: &str, query: &str) -> (u16, String, String) {
    let c = harness::http_client(None);
    let mut r = c.get(format!("{addr}/v1/sys/metrics{query}"));
    if !token.is_empty() {
        r = r.header("X-Vault-Token", token);
    }
    let resp = r.send().expect("scrape");
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, ct, resp.text().unwrap_or_default())
}

/// The value of one series (`name{labels}` exactly as exposed) in Prometheus text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Like [`sample`], 0 when the series is absent (a family shows only the series it has seen).
pub fn count(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or(0.0)
}

/// A server with two plain-HTTP listeners: `closed` (metrics need a token) and `open`
/// (`telemetry { unauthenticated_metrics_access = true }`), initialised and unsealed with one
/// Shamir share.
struct TwoListeners {
    s: Server,
    closed: String,
    open: String,
    unseal_key: String,
    _dir: tempfile::TempDir,
}

fn two_listeners() -> TwoListeners {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (harness::free_port(), harness::free_port());
    let config = dir.path().join("coffer.hcl");
    std::fs::write(
        &config,
        format!(
            r#"
            disable_mlock = true
            storage "inmem" {{}}
            listener "tcp" {{
              address     = "127.0.0.1:{p1}"
              tls_disable = 1
            }}
            listener "tcp" {{
              address     = "127.0.0.1:{p2}"
              tls_disable = 1
              telemetry {{
                unauthenticated_metrics_access = true
              }}
            }}
            "#
        ),
    )
    .unwrap();
    let mut s = Server::with_config(&config, None, &[]);
    let (st, init) =
        s.call_as("", "PUT", "sys/init", Some(json!({"secret_shares": 1, "secret_threshold": 1})));
    assert_eq!(st, 200, "{init}");
    s.token = init["root_token"].as_str().unwrap().to_owned();
    let unseal_key = init["keys"][0].as_str().unwrap().to_owned();
    assert_eq!(s.call_as("", "PUT", "sys/unseal", Some(json!({ "key": unseal_key }))).0, 200);
    let (closed, open) = (format!("http://127.0.0.1:{p1}"), format!("http://127.0.0.1:{p2}"));
    TwoListeners { s, closed, open, unseal_key, _dir: dir }
}

#[test]
fn metrics_need_read_on_sys_metrics_unless_the_listener_opens_them() {
    let t = two_listeners();
    let prom = "?format=prometheus";
    // Closed listener: no token, a bad token → 403; the root token → Prometheus text.
    let (st, _, body) = scrape(&t.closed, "", prom);
    assert_eq!(st, 403, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["errors"].is_array(), "{body}");
    assert_eq!(scrape(&t.closed, "not-a-token", prom).0, 403);
    let (st, ct, body) = scrape(&t.closed, &t.s.token, prom);
    assert_eq!(st, 200, "{body}");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert_eq!(sample(&body, "coffer_core_unsealed"), Some(1.0), "{body}");
    // Open listener: no token needed.
    let (st, ct, body) = scrape(&t.open, "", prom);
    assert_eq!((st, ct.starts_with("text/plain; version=0.0.4")), (200, true), "{body}");

    // A token whose policy grants read on sys/metrics may scrape; one without it may not.
    let policy = r#"path "sys/metrics" { capabilities = ["read"] }"#;
    assert_eq!(t.s.call("PUT", "sys/policies/acl/scraper", Some(json!({ "policy": policy }))).0, 204);
    let token = |policies: Value| {
        let (st, b) = t.s.call("POST", "auth/token/create", Some(json!({ "policies": policies })));
        assert_eq!(st, 200, "{b}");
        b["auth"]["client_token"].as_str().unwrap().to_owned()
    };
    let scraper = token(json!(["scraper"]));
    let other = token(json!(["default"]));
    assert_eq!(scrape(&t.closed, &scraper, prom).0, 200);
    assert_eq!(scrape(&t.closed, &other, prom).0, 403);

    // JSON by default, in Vault's shape; OpenMetrics when the client asks for it; an unknown
    // format is a 400 that does not repeat it.
    let (st, ct, body) = scrape(&t.closed, &scraper, "");
    assert_eq!((st, ct.as_str()), (200, "application/json"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    for key in ["Timestamp", "Gauges", "Points", "Counters", "Samples"] {
        assert!(!v[key].is_null(), "{key} missing in {v}");
    }
    assert!(v["Gauges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["Name"] == "coffer_core_unsealed" && g["Value"] == 1));
    let resp = harness::http_client(None)
        .get(format!("{}/v1/sys/metrics", t.open))
        .header("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(resp.text().unwrap().ends_with("# EOF\n"));
    let (st, _, body) = scrape(&t.open, "", "?format=xml-canary-9f2");
    assert_eq!(st, 400, "{body}");
    assert!(!body.contains("canary"), "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["errors"].is_array(), "{body}");

    // Sealed: the open listener still answers (the seal state is what an operator watches);
    // the closed one cannot check a token.
    assert_eq!(t.s.call("PUT", "sys/seal", None).0, 204);
    let (st, _, body) = scrape(&t.open, "", prom);
    assert_eq!((st, sample(&body, "coffer_core_unsealed")), (200, Some(0.0)), "{body}");
    assert_eq!(scrape(&t.closed, &t.s.token, prom).0, 503);
    assert_eq!(t.s.call_as("", "PUT", "sys/unseal", Some(json!({ "key": t.unseal_key }))).0, 200);
    assert_eq!(sample(&scrape(&t.open, "", prom).2, "coffer_core_unsealed"), Some(1.0));
}

#[test]
fn scraped_counters_move_with_the_requests_served() {
    let t = two_listeners();
    let s = &t.s;
    // Mount names and secret paths are operator and client data: they never become labels.
    let mount = "team-canary-7c1";
    let (st, b) = s.call(
        "POST",
        &format!("sys/mounts/{mount}"),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204, "{b}");
    let before = scrape(&t.closed, &s.token, "?format=prometheus").2;

    for i in 0..3 {
        let (st, b) =
            s.call("POST", &format!("{mount}/data/app-canary-{i}"), Some(json!({"data": {"v": i}})));
        assert_eq!(st, 200, "{b}");
    }
    for i in 0..2 {
        assert_eq!(s.call("GET", &format!("{mount}/data/app-canary-{i}"), None).0, 200);
    }
    assert_eq!(s.call("GET", &format!("{mount}/data/missing-canary"), None).0, 404);
    assert_eq!(s.call_as("bogus-token", "GET", &format!("{mount}/data/app-canary-0"), None).0, 403);
    assert_eq!(s.call("GET", "sys/mounts", None).0, 200);

    let after = scrape(&t.closed, &s.token, "?format=prometheus").2;
    let moved = |series: &str| count(&after, series) - count(&before, series);
    assert_eq!(moved("coffer_http_requests_total{route=\"kv\",status=\"2xx\"}"), 5.0, "{after}");
    assert_eq!(moved("coffer_http_requests_total{route=\"kv\",status=\"4xx\"}"), 2.0, "{after}");
    assert_eq!(moved("coffer_http_request_duration_seconds_count{route=\"kv\",status=\"2xx\"}"), 5.0);
    assert_eq!(
        moved("coffer_http_request_duration_seconds_bucket{route=\"kv\",status=\"2xx\",le=\"+Inf\"}"),
        5.0
    );
    assert!(moved("coffer_http_request_duration_seconds_sum{route=\"kv\",status=\"2xx\"}") > 0.0);
    assert!(moved("coffer_http_requests_total{route=\"sys/mounts\",status=\"2xx\"}") >= 1.0);
    // The first scrape itself was counted (the second is counted after it is answered).
    assert!(count(&after, "coffer_http_requests_total{route=\"sys/metrics\",status=\"2xx\"}") >= 1.0);
    assert!(moved("coffer_token_lookups_total{result=\"valid\"}") >= 7.0, "{after}");
    assert_eq!(moved("coffer_token_lookups_total{result=\"invalid\"}"), 1.0, "{after}");
    assert!(moved("coffer_barrier_encryptions_total") >= 3.0, "{after}");
    assert!(moved("coffer_barrier_decryptions_total") >= 2.0, "{after}");
    assert_eq!(count(&after, "coffer_barrier_decrypt_failures_total"), 0.0);
    assert!(!after.contains("canary") && !after.contains("team-"), "a path became a label:\n{after}");
    // A standalone server shows no Raft metrics.
    assert!(!after.contains("coffer_raft_"), "{after}");

    // Requests refused before their path is read are counted too, under `invalid`.
    let resp = harness::http_client(None)
        .get(format!("{}/v1/{mount}/data/a%00b", t.closed))
        .header("X-Vault-Token", &s.token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let last = scrape(&t.open, "", "?format=prometheus").2;
    assert_eq!(count(&last, "coffer_http_requests_total{route=\"invalid\",status=\"4xx\"}"), 1.0, "{last}");
}
