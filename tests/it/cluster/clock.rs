//! R15: a node whose clock is 30 minutes off (either way) changes no Raft outcome and no TTL
//! decision. The skew is the debug-build fault knob `COFFER_FAULT_CLOCK_SKEW_S` on node 1,
//! which offsets every wall-clock reading of that process (Raft's timers are monotonic and do
//! not read it). The cluster's time is the median of the voters' clocks, estimated by the
//! leader and followed by the followers, so the skewed node is outvoted both as leader and as
//! follower.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::harness::{eventually, Options, TestCluster};

const SKEWED: usize = 1;
/// How far a time the cluster reports may be from the test's own clock.
const TOLERANCE_S: i64 = 10;

fn real_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn rfc3339(v: &Value, what: &str) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{what} {s:?}: {e}")).unix_timestamp()
}

fn near(what: &str, got: i64, want: i64) {
    assert!(
        (got - want).abs() <= TOLERANCE_S,
        "{what}: {got} is {} s from the real clock's {want} (a skewed clock decided it)",
        got - want
    );
}

/// Raft term as node `i` reports it.
fn term(c: &TestCluster, i: usize) -> u64 {
    let text = reqwest::blocking::Client::new()
        .get(format!("{}/v1/sys/metrics?format=prometheus", c.nodes[i - 1].addr()))
        .header("X-Vault-Token", &c.root)
        .send()
        .and_then(|r| r.text())
        .unwrap_or_else(|e| panic!("metrics of node {i}: {e}"));
    crate::metrics::sample(&text, "coffer_raft_term")
        .unwrap_or_else(|| panic!("no coffer_raft_term on node {i}")) as u64
}

/// The term once every node reports the same one.
fn agreed_term(c: &TestCluster) -> u64 {
    eventually("every node to report the same term", Duration::from_secs(15), || {
        let t: Vec<u64> = (1..=c.nodes.len()).map(|i| term(c, i)).collect();
        t.windows(2).all(|w| w[0] == w[1]).then_some(t[0])
    })
}

/// Steps the leader down until `want` leads (elections are random: bounded attempts).
fn make_leader(c: &TestCluster, want: usize) {
    for _ in 0..12 {
        let leader = c.leader();
        if leader == want {
            return;
        }
        let (st, b) = c.call(leader, "PUT", "sys/step-down", None);
        assert_eq!(st, 204, "{b}");
        c.wait_leader_except(Some(leader));
    }
    panic!("node {want} never won an election in 12 step-downs");
}

/// Every TTL decision in one leadership: made through every node, judged on every node.
fn check_ttl_decisions(c: &TestCluster, round: &str) {
    let n = c.nodes.len();
    let leader = c.leader();
    let before = agreed_term(c);

    // Every node reports the cluster's time, whatever its own clock says.
    eventually("every node's server_time_utc to follow the cluster's clock", Duration::from_secs(15), || {
        (1..=n)
            .all(|i| {
                let (_, b) = c.call_as(i, "", "GET", "sys/health", None);
                b["server_time_utc"].as_i64().is_some_and(|t| (t - real_now()).abs() <= 2)
            })
            .then_some(())
    });

    // Tokens created through each node (the leader decides: forwarded from followers) have the
    // same expiry, 10 minutes from real time, on every node.
    for via in 1..=n {
        let (st, b) =
            c.call(via, "POST", "auth/token/create", Some(json!({"ttl": "10m", "policies": ["default"]})));
        assert_eq!(st, 200, "{round}: create via node {via}: {b}");
        let token = b["auth"]["client_token"].as_str().unwrap().to_owned();
        assert_eq!(b["auth"]["lease_duration"], 600, "{round}: via node {via}");
        let mut expiries = Vec::new();
        for on in 1..=n {
            let (st, l) = c.call(on, "POST", "auth/token/lookup", Some(json!({"token": token})));
            assert_eq!(st, 200, "{round}: token from node {via} looked up on node {on}: {l}");
            let ttl = l["data"]["ttl"].as_i64().unwrap();
            assert!((590..=600).contains(&ttl), "{round}: token from node {via}: ttl {ttl} on node {on}");
            near(
                &format!("{round}: creation_time via {via} on {on}"),
                l["data"]["creation_time"].as_i64().unwrap(),
                real_now(),
            );
            let exp = rfc3339(&l["data"]["expire_time"], "expire_time");
            near(&format!("{round}: expire_time via {via} on {on}"), exp, real_now() + 600);
            expiries.push(exp);
        }
        assert!(
            expiries.windows(2).all(|w| w[0] == w[1]),
            "{round}: expiries differ between nodes: {expiries:?}"
        );
    }

    // A short-lived token created through the skewed node: valid on every node until its TTL
    // has really passed, expired on every node soon after.
    let t0 = Instant::now();
    let (st, b) =
        c.call(SKEWED, "POST", "auth/token/create", Some(json!({"ttl": "6s", "policies": ["default"]})));
    assert_eq!(st, 200, "{round}: {b}");
    let token = b["auth"]["client_token"].as_str().unwrap().to_owned();
    let mut expired_at = vec![None; n];
    let deadline = t0 + Duration::from_secs(30);
    while expired_at.iter().any(Option::is_none) && Instant::now() < deadline {
        for on in 1..=n {
            if expired_at[on - 1].is_some() {
                continue;
            }
            let asked = t0.elapsed();
            let (st, l) = c.call_as(on, &token, "GET", "auth/token/lookup-self", None);
            match st {
                200 => {}
                403 => {
                    assert!(
                        asked >= Duration::from_millis(5_500),
                        "{round}: node {on} refused a 6 s token after {asked:?}: {l}"
                    );
                    expired_at[on - 1] = Some(asked);
                }
                other => panic!("{round}: lookup-self on node {on}: {other} {l}"),
            }
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
    for (i, e) in expired_at.iter().enumerate() {
        let e = e.unwrap_or_else(|| panic!("{round}: node {} still accepts a 6 s token after 30 s", i + 1));
        assert!(
            e <= Duration::from_secs(6 + TOLERANCE_S as u64),
            "{round}: node {} expired it after {e:?}",
            i + 1
        );
    }

    // AppRole: a secret ID with a 10-minute TTL made through the skewed node expires 10 minutes
    // from real time on every node, and logs in through every node.
    let (st, b) = c.call(SKEWED, "POST", "auth/approle/role/clock/secret-id", None);
    assert_eq!(st, 200, "{round}: {b}");
    let secret_id = b["data"]["secret_id"].as_str().unwrap().to_owned();
    let (_, r) = c.call(SKEWED, "GET", "auth/approle/role/clock/role-id", None);
    let role_id = r["data"]["role_id"].as_str().unwrap().to_owned();
    for on in 1..=n {
        let (st, l) = c.call(
            on,
            "POST",
            "auth/approle/role/clock/secret-id/lookup",
            Some(json!({"secret_id": secret_id})),
        );
        assert_eq!(st, 200, "{round}: {l}");
        near(
            &format!("{round}: secret ID expiration on {on}"),
            rfc3339(&l["data"]["expiration_time"], "expiration_time"),
            real_now() + 600,
        );
        let (st, login) = c.call_as(
            on,
            "",
            "POST",
            "auth/approle/login",
            Some(json!({"role_id": role_id, "secret_id": secret_id})),
        );
        assert_eq!(st, 200, "{round}: login via node {on}: {login}");
        assert_eq!(login["auth"]["lease_duration"], 600, "{round}: login via node {on}");
    }

    // kv v2 versions written through the skewed node carry the real time on every node.
    let (st, b) = c.call(SKEWED, "POST", &format!("kvc/data/{round}"), Some(json!({"data": {"v": "1"}})));
    assert_eq!(st, 200, "{round}: {b}");
    near(
        &format!("{round}: kv created_time"),
        rfc3339(&b["data"]["created_time"], "created_time"),
        real_now(),
    );
    for on in 1..=n {
        let (st, m) = c.call(on, "GET", &format!("kvc/metadata/{round}"), None);
        assert_eq!(st, 200, "{round}: {m}");
        near(
            &format!("{round}: kv metadata created_time on {on}"),
            rfc3339(&m["data"]["created_time"], "created_time"),
            real_now(),
        );
    }

    // No Raft outcome changed: the same leader, the same term, on every node.
    assert_eq!(c.leader(), leader, "{round}: leadership moved");
    let after: Vec<u64> = (1..=n).map(|i| term(c, i)).collect();
    assert!(
        after.iter().all(|&t| t == before),
        "{round}: terms moved without a fault: {before} -> {after:?}"
    );
}

#[test]
fn a_node_thirty_minutes_off_changes_no_ttl_decision_and_no_raft_outcome() {
    for skew in ["-1800", "1800"] {
        let c = TestCluster::start(Options {
            node_env: vec![(SKEWED, "COFFER_FAULT_CLOCK_SKEW_S", skew)],
            ..Options::default()
        });
        assert_eq!(
            c.call(1, "POST", "sys/mounts/kvc", Some(json!({"type": "kv", "options": {"version": "2"}}))).0,
            204
        );
        assert_eq!(c.call(1, "POST", "sys/auth/approle", Some(json!({"type": "approle"}))).0, 204);
        let role = json!({"secret_id_ttl": "10m", "token_ttl": "10m", "token_policies": ["default"]});
        assert_eq!(c.call(1, "POST", "auth/approle/role/clock", Some(role)).0, 204);

        // The skewed node leads, then follows.
        make_leader(&c, SKEWED);
        check_ttl_decisions(&c, &format!("skew{skew}-leader"));
        let (st, b) = c.call(SKEWED, "PUT", "sys/step-down", None);
        assert_eq!(st, 204, "{b}");
        c.wait_leader_except(Some(SKEWED));
        check_ttl_decisions(&c, &format!("skew{skew}-follower"));
    }
}
