//! The token store through the API: create, lookup, renew, revoke trees, use counts, TTLs,
//! roles, cubbyhole isolation and response wrapping.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{wait_for, Server};

fn create(s: &Server, token: &str, body: Value) -> (String, String) {
    let (st, b) = s.call_as(token, "POST", "auth/token/create", Some(body));
    assert_eq!(st, 200, "{b}");
    (
        b["auth"]["client_token"].as_str().unwrap().to_owned(),
        b["auth"]["accessor"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn create_lookup_and_auth_block_shape() {
    let s = Server::dev();
    let (st, b) = s.call(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["web", "db"], "ttl": "1h", "meta": {"user": "ada"}, "display_name": "My App!"})),
    );
    assert_eq!(st, 200, "{b}");
    let auth = &b["auth"];
    assert!(auth["client_token"].as_str().unwrap().starts_with("hvs."));
    assert_eq!(auth["client_token"].as_str().unwrap().len(), 28);
    assert_eq!(auth["policies"], json!(["db", "default", "web"]));
    assert_eq!(auth["token_policies"], json!(["db", "default", "web"]));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["orphan"], false);
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["metadata"], json!({"user": "ada"}));
    assert_eq!(b["warnings"], json!(["Policy \"db\" does not exist", "Policy \"web\" does not exist"]));
    for k in ["accessor", "entity_id", "num_uses", "mfa_requirement"] {
        assert!(auth.get(k).is_some(), "auth lacks {k}");
    }
    let tok = auth["client_token"].as_str().unwrap();
    let (st, l) = s.call("POST", "auth/token/lookup", Some(json!({"token": tok})));
    assert_eq!(st, 200, "{l}");
    assert_eq!(l["data"]["display_name"], "token-My-App");
    assert_eq!(l["data"]["id"], tok);
    assert_eq!(l["data"]["creation_ttl"], 3600);
    assert!(l["data"]["ttl"].as_u64().unwrap() <= 3600);
    let (st, la) = s.call("POST", "auth/token/lookup-accessor", Some(json!({"accessor": auth["accessor"]})));
    assert_eq!(st, 200);
    assert_eq!(la["data"]["id"], "");
    let (st, ls) = s.call_as(tok, "GET", "auth/token/lookup-self", None);
    assert_eq!(st, 200);
    assert_eq!(ls["data"]["id"], tok);
    let (st, e) = s.call("POST", "auth/token/lookup", Some(json!({"token": "hvs.nope"})));
    assert_eq!((st, e), (403, json!({"errors": ["bad token"]})));
}

#[test]
fn revoking_a_parent_revokes_descendants_but_not_orphans() {
    let s = Server::dev();
    let (parent, _) = create(&s, &s.token, json!({"policies": ["root"]}));
    let (child, _) = create(&s, &parent, json!({}));
    let (grandchild, _) = create(&s, &child, json!({}));
    let (orphan, _) = create(&s, &parent, json!({"no_parent": true}));
    let (st, b) = s.call_as(&orphan, "GET", "auth/token/lookup-self", None);
    assert_eq!((st, b["data"]["orphan"].clone()), (200, json!(true)));
    assert_eq!(s.call("POST", "auth/token/revoke", Some(json!({"token": parent}))).0, 204);
    for t in [&parent, &child, &grandchild] {
        let (st, b) = s.call_as(t, "GET", "auth/token/lookup-self", None);
        assert_eq!(st, 403, "revoked token still works: {b}");
        assert_eq!(b, json!({"errors": ["permission denied", "invalid token"]}));
    }
    assert_eq!(s.call_as(&orphan, "GET", "auth/token/lookup-self", None).0, 200);
    // revoke-orphan keeps children alive.
    let (p2, _) = create(&s, &s.token, json!({"policies": ["root"]}));
    let (c2, _) = create(&s, &p2, json!({}));
    assert_eq!(s.call("POST", "auth/token/revoke-orphan", Some(json!({"token": p2}))).0, 204);
    assert_eq!(s.call_as(&p2, "GET", "auth/token/lookup-self", None).0, 403);
    let (st, b) = s.call_as(&c2, "GET", "auth/token/lookup-self", None);
    assert_eq!(st, 200);
    assert_eq!(b["data"]["orphan"], true);
}

#[test]
fn ttl_expiry_is_enforced() {
    let s = Server::dev();
    let (t, _) = create(&s, &s.token, json!({"ttl": "2s", "policies": ["default"]}));
    assert_eq!(s.call_as(&t, "GET", "auth/token/lookup-self", None).0, 200);
    wait_for("token to expire", Duration::from_secs(30), || {
        (s.call_as(&t, "GET", "auth/token/lookup-self", None).0 == 403).then_some(())
    });
}

#[test]
fn num_uses_is_exact_under_concurrency() {
    let s = Server::dev();
    let (t, _) = create(&s, &s.token, json!({"num_uses": 3, "policies": ["default"]}));
    let ok = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..50 {
            sc.spawn(|| {
                let (st, _) = s.call_as(&t, "GET", "auth/token/lookup-self", None);
                if st == 200 {
                    ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                } else {
                    assert_eq!(st, 403);
                }
            });
        }
    });
    assert_eq!(ok.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(s.call_as(&t, "GET", "auth/token/lookup-self", None).0, 403);
    // A limited-use token cannot create children.
    let (t2, _) = create(&s, &s.token, json!({"num_uses": 5, "policies": ["root"]}));
    let (st, b) = s.call_as(&t2, "POST", "auth/token/create", Some(json!({})));
    assert_eq!((st, b), (400, json!({"errors": ["restricted use token cannot generate child tokens"]})));
}

#[test]
fn renewal_and_capping() {
    let s = Server::dev();
    let (t, a) =
        create(&s, &s.token, json!({"policies": ["default"], "ttl": "10m", "explicit_max_ttl": "15m"}));
    let (st, b) = s.call_as(&t, "POST", "auth/token/renew-self", Some(json!({"increment": "1h"})));
    assert_eq!(st, 200, "{b}");
    assert!(b["auth"]["lease_duration"].as_u64().unwrap() <= 900);
    assert_eq!(
        b["warnings"],
        json!(["TTL of \"1h\" exceeded the effective max_ttl of \"15m\"; TTL value is capped accordingly"])
    );
    assert_eq!(b["auth"]["client_token"], t);
    let (st, b) =
        s.call("POST", "auth/token/renew-accessor", Some(json!({"accessor": a, "increment": "60"})));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["auth"]["client_token"], "");
    assert_eq!(b["auth"]["lease_duration"], 60);
    let (t2, _) = create(&s, &s.token, json!({"policies": ["default"], "renewable": false}));
    assert_eq!(
        s.call("POST", "auth/token/renew", Some(json!({"token": t2}))),
        (400, json!({"errors": ["lease is not renewable"]}))
    );
    assert_eq!(
        s.call("POST", "auth/token/renew-self", None),
        (400, json!({"errors": ["lease is not renewable"]}))
    );
    assert_eq!(
        s.call("POST", "auth/token/renew", Some(json!({"token": "hvs.none"}))),
        (400, json!({"errors": ["token not found"]}))
    );
}

#[test]
fn validation_errors_match_vault() {
    let s = Server::dev();
    let cases = [
        (json!({"num_uses": -1}), "number of uses cannot be negative"),
        (json!({"type": "foo"}), "invalid 'token_type' value"),
        (json!({"id": "hvs.abc"}), "custom token ID cannot have the 'hvs.' prefix"),
        (json!({"id": "s.abc"}), "custom token ID cannot have the 's.' prefix"),
        (json!({"id": "a.b"}), "custom token ID cannot have a '.' in the value"),
        (json!({"type": "batch", "period": "1h"}), "batch tokens cannot have \"period\" set"),
        (json!({"type": "batch", "num_uses": 3}), "batch tokens cannot have \"num_uses\" set"),
        (json!({"num_uses": "abc"}), "Field validation failed: error converting input for field \"num_uses\": '' cannot parse value as 'int': strconv.ParseInt: invalid syntax"),
    ];
    for (body, msg) in cases {
        let (st, b) = s.call("POST", "auth/token/create", Some(body.clone()));
        assert_eq!((st, b), (400, json!({"errors": [msg]})), "for {body}");
    }
    let (st, _) = s.call("POST", "auth/token/create", Some(json!({"id": "custom1"})));
    assert_eq!(st, 200);
    assert_eq!(
        s.call("POST", "auth/token/create", Some(json!({"id": "custom1"}))),
        (400, json!({"errors": ["cannot create a token with a duplicate ID"]}))
    );
    let (st, b) = s.call("POST", "auth/token/create", Some(json!({"type": "batch", "policies": ["x"]})));
    assert_eq!(st, 200, "{b}");
    assert!(b["auth"]["client_token"].as_str().unwrap().starts_with("hvb."));
    assert_eq!(b["auth"]["renewable"], false);
    let (st, b) = s.call("POST", "auth/token/create", Some(json!({"ttl": "1000h"})));
    assert_eq!(st, 200);
    assert_eq!(b["auth"]["lease_duration"], 2_764_800);
}

#[test]
fn roles_constrain_policies() {
    let s = Server::dev();
    assert_eq!(
        s.call(
            "POST",
            "auth/token/roles/r1",
            Some(json!({"allowed_policies": ["testpolicy"], "orphan": true}))
        )
        .0,
        204
    );
    let (st, b) = s.call("GET", "auth/token/roles/r1", None);
    assert_eq!(st, 200);
    assert_eq!(b["data"]["allowed_policies"], json!(["testpolicy"]));
    assert_eq!(b["data"]["token_type"], "default-service");
    let (st, b) = s.call("POST", "auth/token/create/r1", Some(json!({})));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["auth"]["policies"], json!(["default", "testpolicy"]));
    assert_eq!(b["auth"]["orphan"], true);
    let (st, b) = s.call("POST", "auth/token/create/r1", Some(json!({"policies": ["zzz"]})));
    assert_eq!(st, 400);
    assert_eq!(
        b["errors"][0],
        "token policies ([\"default\" \"zzz\"]) must be subset of the role's allowed policies ([\"default\" \"testpolicy\"]) or glob policies ([])"
    );
    assert_eq!(
        s.call("POST", "auth/token/create/nope", Some(json!({}))),
        (400, json!({"errors": ["unknown role nope"]}))
    );
    assert_eq!(s.call("LIST", "auth/token/roles", None).1["data"]["keys"], json!(["r1"]));
    assert_eq!(s.call("GET", "auth/token/roles/none", None), (404, json!({"errors": []})));
}

#[test]
fn cubbyholes_are_per_token_and_die_with_it() {
    let s = Server::dev();
    let (a, _) = create(&s, &s.token, json!({"policies": ["default"]}));
    let (b, _) = create(&s, &s.token, json!({"policies": ["default"]}));
    assert_eq!(s.call_as(&a, "PUT", "cubbyhole/note", Some(json!({"v": "for-a"}))).0, 204);
    assert_eq!(s.call_as(&a, "GET", "cubbyhole/note", None).1["data"]["v"], "for-a");
    assert_eq!(s.call_as(&b, "GET", "cubbyhole/note", None).0, 404);
    assert_eq!(s.call_as(&a, "POST", "auth/token/revoke-self", None).0, 204);
    // A new token with the same cubbyhole path sees nothing.
    let (c, _) = create(&s, &s.token, json!({"policies": ["default"]}));
    assert_eq!(s.call_as(&c, "GET", "cubbyhole/note", None).0, 404);
}

#[test]
fn response_wrapping_round_trip() {
    let s = Server::dev();
    let c = s.client();
    // Wrap a token creation.
    let resp = c
        .post(format!("{}/v1/auth/token/create", s.addr))
        .header("X-Vault-Token", &s.token)
        .header("X-Vault-Wrap-TTL", "5m")
        .json(&json!({"policies": ["default"]}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let w: Value = resp.json().unwrap();
    assert_eq!(w["request_id"], "");
    assert_eq!(w["auth"], Value::Null);
    let wi = &w["wrap_info"];
    assert_eq!(wi["ttl"], 300);
    assert_eq!(wi["creation_path"], "auth/token/create");
    assert!(!wi["wrapped_accessor"].as_str().unwrap().is_empty());
    let wt = wi["token"].as_str().unwrap().to_owned();
    let (st, l) = s.call_as("", "POST", "sys/wrapping/lookup", Some(json!({"token": wt})));
    assert_eq!(st, 200, "{l}");
    assert_eq!(l["data"]["creation_ttl"], 300);
    let (st, u) = s.call_as(&wt, "POST", "sys/wrapping/unwrap", None);
    assert_eq!(st, 200, "{u}");
    let inner = u["auth"]["client_token"].as_str().unwrap();
    assert_eq!(u["auth"]["accessor"], wi["wrapped_accessor"]);
    assert_eq!(s.call_as(inner, "GET", "auth/token/lookup-self", None).0, 200);
    assert_eq!(
        s.call_as(&wt, "POST", "sys/wrapping/unwrap", None),
        (400, json!({"errors": ["wrapping token is not valid or does not exist"]}))
    );
    assert_eq!(
        s.call("POST", "sys/wrapping/unwrap", Some(json!({"token": wt}))),
        (400, json!({"errors": ["wrapping token is not valid or does not exist"]}))
    );
    // sys/wrapping/wrap needs the header.
    assert_eq!(
        s.call("POST", "sys/wrapping/wrap", Some(json!({"foo": "bar"}))),
        (400, json!({"errors": ["endpoint requires response wrapping to be used"]}))
    );
    let w: Value = c
        .post(format!("{}/v1/sys/wrapping/wrap", s.addr))
        .header("X-Vault-Token", &s.token)
        .header("X-Vault-Wrap-TTL", "60")
        .json(&json!({"foo": "bar"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let wt = w["wrap_info"]["token"].as_str().unwrap().to_owned();
    let (st, rw) = s.call("POST", "sys/wrapping/rewrap", Some(json!({"token": wt})));
    assert_eq!(st, 200, "{rw}");
    let wt2 = rw["wrap_info"]["token"].as_str().unwrap().to_owned();
    assert_ne!(wt, wt2);
    assert_eq!(s.call("POST", "sys/wrapping/unwrap", Some(json!({"token": wt}))).0, 400);
    let (st, u) = s.call("POST", "sys/wrapping/unwrap", Some(json!({"token": wt2})));
    assert_eq!(st, 200);
    assert_eq!(u["data"], json!({"foo": "bar"}));
    // Negative wrap TTL.
    let r = c
        .post(format!("{}/v1/auth/token/create", s.addr))
        .header("X-Vault-Token", &s.token)
        .header("X-Vault-Wrap-TTL", "-5m")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn approle_tokens_renew_on_the_role_and_logins_ignore_bad_tokens() {
    let s = Server::dev();
    assert_eq!(s.call("POST", "sys/auth/approle", Some(json!({"type": "approle"}))).0, 204);
    assert_eq!(
        s.call("POST", "auth/approle/role/r", Some(json!({"token_ttl": "60s", "token_max_ttl": "120s"}))).0,
        204
    );
    let role_id =
        s.call("GET", "auth/approle/role/r/role-id", None).1["data"]["role_id"].as_str().unwrap().to_owned();
    let sid = s.call("POST", "auth/approle/role/r/secret-id", None).1["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A stale token in the client does not break a login (Vault ignores it there).
    let (st, b) = s.call_as(
        "hvs.stale-token",
        "POST",
        "auth/approle/login",
        Some(json!({"role_id": role_id, "secret_id": sid})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["auth"]["lease_duration"], 60);
    let t = b["auth"]["client_token"].as_str().unwrap().to_owned();
    let (st, r) = s.call_as(&t, "POST", "auth/token/renew-self", Some(json!({"increment": "1h"})));
    assert_eq!(st, 200, "{r}");
    assert!(r["auth"]["lease_duration"].as_u64().unwrap() <= 120, "capped by the role's token_max_ttl: {r}");
    // The role goes away: its tokens can no longer be renewed.
    assert_eq!(s.call("DELETE", "auth/approle/role/r", None).0, 204);
    let (st, r) = s.call_as(&t, "POST", "auth/token/renew-self", None);
    assert_eq!(st, 400, "{r}");
    // Auth methods never mint root tokens.
    s.call("POST", "auth/approle/role/evil", Some(json!({"token_policies": "root"})));
    let role_id = s.call("GET", "auth/approle/role/evil/role-id", None).1["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sid = s.call("POST", "auth/approle/role/evil/secret-id", None).1["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, _) =
        s.call_as("", "POST", "auth/approle/login", Some(json!({"role_id": role_id, "secret_id": sid})));
    assert_eq!(st, 400);
}
