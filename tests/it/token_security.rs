//! Regression tests for token-store holes found in review (security.md S11, S19, S21, S22) and
//! Vault's empty-LIST answer. Each test is named after what it prevents.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{wait_for, Server};

fn token_of(b: &Value) -> String {
    b["auth"]["client_token"].as_str().unwrap_or_default().to_owned()
}

/// A token whose only grant is `update` on `auth/token/create/*` (and the default policy).
fn role_user(s: &Server) -> String {
    let policy = r#"path "auth/token/create/*" { capabilities = ["update"] }"#;
    let (st, b) = s.call("PUT", "sys/policies/acl/role-user", Some(json!({ "policy": policy })));
    assert_eq!(st, 204, "{b}");
    let (st, b) = s.call("POST", "auth/token/create", Some(json!({"policies": ["role-user"], "ttl": "1h"})));
    assert_eq!(st, 200, "{b}");
    token_of(&b)
}

#[test]
fn token_roles_never_give_a_non_root_parent_a_root_token() {
    let s = Server::dev();
    let user = role_user(&s);
    let roles = [
        ("glob-star", json!({"allowed_policies_glob": "*"})),
        ("allows-root", json!({"allowed_policies": "root"})),
        ("orphan-root", json!({"allowed_policies": "root,web", "orphan": true})),
        ("periodic-root", json!({"allowed_policies": "root", "token_period": "1h"})),
        ("batch-root", json!({"allowed_policies_glob": "*", "orphan": true, "token_type": "batch"})),
        ("no-list", json!({})),
    ];
    for (name, body) in &roles {
        let (st, b) = s.call("POST", &format!("auth/token/roles/{name}"), Some(body.clone()));
        assert!(st == 204 || st == 200, "role {name}: {b}");
    }
    // Every path a role offers, with every way of asking for root.
    let asks = [
        json!({"policies": ["root"]}),
        json!({"policies": "root"}),
        json!({"policies": ["root"], "no_parent": true}),
        json!({"policies": ["root"], "period": "1h"}),
        json!({"policies": ["root"], "type": "batch"}),
        json!({"policies": ["web", "root"], "ttl": "1m"}),
        json!({}),
    ];
    let mut tried = 0;
    for (name, _) in &roles {
        for ask in &asks {
            let (st, b) = s.call_as(&user, "POST", &format!("auth/token/create/{name}"), Some(ask.clone()));
            tried += 1;
            if st == 200 {
                let pols = &b["auth"]["policies"];
                assert!(
                    !pols.as_array().unwrap().iter().any(|p| p == "root"),
                    "role {name} with {ask} gave a non-root parent a root token: {b}"
                );
            } else {
                assert!(st == 400 || st == 403, "role {name} with {ask}: {st} {b}");
                assert!(b["errors"].is_array(), "{b}");
            }
        }
    }
    assert_eq!(tried, roles.len() * asks.len());
    // The plain paths are outside this token's grant.
    for path in ["auth/token/create", "auth/token/create-orphan"] {
        let (st, _) = s.call_as(&user, "POST", path, Some(json!({"policies": ["root"]})));
        assert_eq!(st, 403, "{path}");
    }
    // The exact message for the role that lists root.
    let (st, b) =
        s.call_as(&user, "POST", "auth/token/create/allows-root", Some(json!({"policies": ["root"]})));
    assert_eq!(st, 400);
    assert_eq!(b, json!({"errors": ["root tokens may not be created without parent token being root"]}));
    // A role may still list root: a root parent can use it.
    let (st, b) = s.call("POST", "auth/token/create/allows-root", Some(json!({})));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["auth"]["policies"], json!(["root"]));
}

/// One round: `threads` creators hammer `auth/token/create` under `parent` while it is revoked.
/// Returns (children created, children still valid afterwards).
fn revoke_under_creation(s: &Server, threads: usize) -> (usize, usize) {
    let (st, b) = s.call("POST", "auth/token/create", Some(json!({"policies": ["root"], "ttl": "1h"})));
    assert_eq!(st, 200, "{b}");
    let parent = token_of(&b);
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (addr, parent, created, stop, count, start) = (
            s.addr.clone(),
            parent.clone(),
            Arc::clone(&created),
            Arc::clone(&stop),
            Arc::clone(&count),
            Arc::clone(&start),
        );
        handles.push(std::thread::spawn(move || {
            let client =
                reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
            start.wait();
            // Keep creating until the parent is refused (revoked) and the main thread says stop.
            let mut refused = false;
            while !(refused && stop.load(Ordering::SeqCst)) {
                let r = client
                    .post(format!("{addr}/v1/auth/token/create"))
                    .header("X-Vault-Token", &parent)
                    .json(&json!({"ttl": "1h"}))
                    .send();
                let Ok(r) = r else { continue };
                if r.status().as_u16() == 200 {
                    let b: Value = r.json().unwrap();
                    created.lock().unwrap().push(token_of(&b));
                    count.fetch_add(1, Ordering::SeqCst);
                } else {
                    refused = true;
                }
            }
        }));
    }
    start.wait();
    // Let a tree grow, then revoke it while the creators keep going.
    wait_for("children to be created", Duration::from_secs(60), || {
        (count.load(Ordering::SeqCst) >= 150).then_some(())
    });
    let (st, b) = s.call("POST", "auth/token/revoke", Some(json!({"token": parent})));
    assert_eq!(st, 204, "{b}");
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    let created = created.lock().unwrap().clone();
    let client = s.client();
    let mut survivors = 0;
    for t in &created {
        let r = client
            .post(format!("{}/v1/auth/token/lookup", s.addr))
            .header("X-Vault-Token", &s.token)
            .json(&json!({"token": t}))
            .send()
            .unwrap();
        if r.status().as_u16() == 200 {
            survivors += 1;
        }
    }
    (created.len(), survivors)
}

#[test]
fn children_created_during_revocation_never_outlive_their_parent() {
    let s = Server::dev();
    let mut report = Vec::new();
    for _ in 0..5 {
        let (created, survivors) = revoke_under_creation(&s, 8);
        report.push((created, survivors));
    }
    let survivors: usize = report.iter().map(|r| r.1).sum();
    assert_eq!(survivors, 0, "children outlived a revoked parent (created, survivors) per round: {report:?}");
}

#[test]
fn renewal_never_exceeds_the_issuing_auth_mounts_max_lease_ttl() {
    let s = Server::dev();
    assert_eq!(s.call("POST", "sys/auth/approle", Some(json!({"type": "approle"}))).0, 204);
    let (st, b) = s.call("POST", "sys/auth/approle/tune", Some(json!({"max_lease_ttl": "60s"})));
    assert_eq!(st, 204, "{b}");
    let (st, b) = s.call("POST", "auth/approle/role/web", Some(json!({"token_policies": "default"})));
    assert_eq!(st, 204, "{b}");
    let (_, b) = s.call("GET", "auth/approle/role/web/role-id", None);
    let role_id = b["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, b) = s.call("POST", "auth/approle/role/web/secret-id", Some(json!({})));
    let secret_id = b["data"]["secret_id"].as_str().unwrap().to_owned();
    let login = |s: &Server| {
        let (st, b) =
            s.call("POST", "auth/approle/login", Some(json!({"role_id": role_id, "secret_id": secret_id})));
        assert_eq!(st, 200, "{b}");
        assert!(b["auth"]["lease_duration"].as_u64().unwrap() <= 60, "{b}");
        (token_of(&b), b["auth"]["accessor"].as_str().unwrap().to_owned())
    };
    // renew-self with a huge increment.
    let (tok, accessor) = login(&s);
    let (st, b) = s.call_as(&tok, "POST", "auth/token/renew-self", Some(json!({"increment": "24h"})));
    assert_eq!(st, 200, "{b}");
    let ttl = b["auth"]["lease_duration"].as_u64().unwrap();
    assert!(ttl <= 60, "renew-self went past the approle mount's max: {b}");
    let w = b["warnings"][0].as_str().unwrap_or_default();
    assert!(w.contains("exceeded the effective max_ttl of \"1m\""), "{b}");
    // renew (by token) and renew-accessor, sent by root through the token mount.
    let (st, b) = s.call("POST", "auth/token/renew", Some(json!({"token": tok, "increment": 86400})));
    assert_eq!(st, 200, "{b}");
    assert!(b["auth"]["lease_duration"].as_u64().unwrap() <= 60, "{b}");
    let (st, b) =
        s.call("POST", "auth/token/renew-accessor", Some(json!({"accessor": accessor, "increment": "720h"})));
    assert_eq!(st, 200, "{b}");
    assert!(b["auth"]["lease_duration"].as_u64().unwrap() <= 60, "{b}");
    let (_, b) = s.call("POST", "auth/token/lookup", Some(json!({"token": tok})));
    assert!(b["data"]["ttl"].as_u64().unwrap() <= 60, "{b}");
    // A role's token_max_ttl below the mount's wins.
    let (st, _) = s.call("POST", "auth/approle/role/web", Some(json!({"token_max_ttl": "30s"})));
    assert_eq!(st, 204);
    let (tok, _) = login(&s);
    let (st, b) = s.call_as(&tok, "POST", "auth/token/renew-self", Some(json!({"increment": "1h"})));
    assert_eq!(st, 200, "{b}");
    assert!(b["auth"]["lease_duration"].as_u64().unwrap() <= 30, "{b}");
}

#[test]
fn a_wrapping_token_unwraps_exactly_once_under_concurrency() {
    let s = Server::dev();
    for round in 0..5 {
        let client = s.client();
        let r = client
            .post(format!("{}/v1/sys/wrapping/wrap", s.addr))
            .header("X-Vault-Token", &s.token)
            .header("X-Vault-Wrap-TTL", "5m")
            // A large response keeps each unwrap busy long enough for a broken server to let
            // two of them read it.
            .json(&json!({"round": round, "secret": "wrapped-value", "bulk": "x".repeat(512 * 1024)}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let b: Value = r.json().unwrap();
        let wrapping = b["wrap_info"]["token"].as_str().unwrap().to_owned();
        // Three in four send the wrapping token in the body (root's token in the header), the rest in
        // the header: exactly one of the 32 may get the data.
        let go = Arc::new(Barrier::new(32));
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let (addr, root, wrapping, go) =
                    (s.addr.clone(), s.token.clone(), wrapping.clone(), Arc::clone(&go));
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    go.wait();
                    let req = client.post(format!("{addr}/v1/sys/wrapping/unwrap"));
                    let req = if i % 4 != 0 {
                        req.header("X-Vault-Token", &root).json(&json!({"token": wrapping}))
                    } else {
                        req.header("X-Vault-Token", &wrapping)
                    };
                    let r = req.send().unwrap();
                    let st = r.status().as_u16();
                    let b: Value = r.json().unwrap_or(Value::Null);
                    (st, b)
                })
            })
            .collect();
        let results: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|(st, _)| *st == 200).collect();
        let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
        assert_eq!(winners.len(), 1, "round {round}: {} unwraps got the data: {statuses:?}", winners.len());
        assert_eq!(winners[0].1["data"]["secret"], "wrapped-value");
        for (st, b) in results.iter().filter(|(st, _)| *st != 200) {
            assert!(*st == 400 || *st == 403, "round {round}: {st} {b}");
        }
    }
}

#[test]
fn empty_lists_answer_404_like_vault() {
    let s = Server::dev();
    for path in ["auth/token/roles", "cubbyhole/"] {
        let (st, b) = s.call("LIST", path, None);
        assert_eq!((st, b), (404, json!({"errors": []})), "LIST {path}");
    }
    // Non-empty lists still answer 200.
    assert_eq!(s.call("POST", "auth/token/roles/r1", Some(json!({}))).0, 204);
    let (st, b) = s.call("LIST", "auth/token/roles", None);
    assert_eq!((st, b["data"]["keys"].clone()), (200, json!(["r1"])));
    assert_eq!(s.call("POST", "cubbyhole/x", Some(json!({"a": "b"}))).0, 204);
    let (st, b) = s.call("GET", "cubbyhole/?list=true", None);
    assert_eq!((st, b["data"]["keys"].clone()), (200, json!(["x"])));
}
