//! ACL policies over HTTP: CRUD through `sys/policies/acl` and the legacy `sys/policy`, the
//! built-ins, `sys/capabilities*`, and a differential run of the same calls against OpenBao.
//!
//! Token-enforcement tests with child tokens need `auth/token/create`; until it exists they are
//! unit tests (`engines::sys::policy::enforcement`).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::harness::{require_bao_dev, Server};

const TEXT: &str = "# Team A\npath \"secret/data/team-a/*\" {\n  capabilities = [\"create\", \"read\", \"update\", \"patch\", \"delete\", \"list\"]\n}\n\n   path \"sys/mounts/+\"   {   capabilities = [\"read\"]   }\n// trailing comment, ünïcode\n";

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn crud_through_both_apis_keeps_text_verbatim() {
    let s = Server::dev();
    let (st, body) = s.call("LIST", "sys/policies/acl", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["keys"], json!(["default", "root"]));

    assert_eq!(s.call("PUT", "sys/policies/acl/team-a", Some(json!({"policy": TEXT}))).0, 204);
    let (st, body) = s.call("GET", "sys/policies/acl/team-a", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"], json!({"name": "team-a", "policy": TEXT}), "exactly name and policy, verbatim");

    // Legacy read of the same policy: `name` and `rules`, also at the top level.
    let (st, body) = s.call("GET", "sys/policy/team-a", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"], json!({"name": "team-a", "rules": TEXT}));
    assert_eq!(body["rules"], json!(TEXT));
    assert_eq!(body["name"], json!("team-a"));

    // Legacy write with the deprecated `rules`, then read through the new API.
    let (st, body) = s.call("PUT", "sys/policy/legacy", Some(json!({"rules": "path \"a\" {}"})));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["warnings"], json!(["'rules' is deprecated, please use 'policy' instead"]));
    assert_eq!(s.call("GET", "sys/policies/acl/legacy", None).1["data"]["policy"], json!("path \"a\" {}"));

    let (st, body) = s.call("GET", "sys/policy", None);
    assert_eq!(st, 200);
    assert_eq!(body["keys"], json!(["default", "legacy", "team-a", "root"]));
    assert_eq!(body["policies"], body["keys"]);
    assert_eq!(body["data"]["keys"], body["keys"]);
    assert_eq!(s.call("GET", "sys/policies/acl?list=true", None).1["data"]["keys"], body["keys"]);

    // Base64 text is decoded and stored decoded.
    let b64 = "cGF0aCAiYSIgeyBjYXBhYmlsaXRpZXMgPSBbInJlYWQiXSB9"; // path "a" { capabilities = ["read"] }
    assert_eq!(s.call("POST", "sys/policies/acl/b64", Some(json!({"policy": b64}))).0, 204);
    assert_eq!(
        s.call("GET", "sys/policies/acl/b64", None).1["data"]["policy"],
        json!("path \"a\" { capabilities = [\"read\"] }")
    );

    // JSON documents.
    let doc = r#"{"path": {"kv/*": {"capabilities": ["read"]}}}"#;
    assert_eq!(s.call("PUT", "sys/policy/json-doc", Some(json!({"policy": doc}))).0, 204);
    assert_eq!(s.call("GET", "sys/policy/json-doc", None).1["rules"], json!(doc));

    // Mixed case: stored lower-cased, with a warning.
    let (st, body) = s.call("PUT", "sys/policies/acl/MiXed", Some(json!({"policy": "path \"a\" {}"})));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["warnings"], json!(["policy name was converted to mixed"]));
    assert_eq!(s.call("GET", "sys/policies/acl/MIXED", None).1["data"]["name"], json!("mixed"));

    // Update replaces the text.
    assert_eq!(s.call("PUT", "sys/policies/acl/team-a", Some(json!({"policy": "path \"b\" {}"}))).0, 204);
    assert_eq!(s.call("GET", "sys/policies/acl/team-a", None).1["data"]["policy"], json!("path \"b\" {}"));

    // Delete through both APIs; deleting twice is fine.
    assert_eq!(s.call("DELETE", "sys/policies/acl/team-a", None).0, 204);
    assert_eq!(s.call("DELETE", "sys/policy/legacy", None).0, 204);
    assert_eq!(s.call("DELETE", "sys/policy/legacy", None).0, 204);
    let (st, body) = s.call("GET", "sys/policies/acl/team-a", None);
    assert_eq!((st, body), (404, json!({"errors": []})));
    assert_eq!(s.call("GET", "sys/policy/legacy", None).0, 404);
    assert_eq!(
        s.call("LIST", "sys/policies/acl", None).1["data"]["keys"],
        json!(["b64", "default", "json-doc", "mixed", "root"])
    );
}

#[test]
fn builtins_and_errors() {
    let s = Server::dev();
    let (st, body) = s.call("GET", "sys/policies/acl/default", None);
    assert_eq!(st, 200);
    let default = body["data"]["policy"].as_str().unwrap().to_owned();
    assert!(default.contains("path \"auth/token/lookup-self\""), "{default}");
    assert!(default.contains("path \"cubbyhole/*\""));
    assert_eq!(s.call("GET", "sys/policies/acl/root", None).1["data"], json!({"name": "root", "policy": ""}));
    let rw = s.call("GET", "sys/policies/acl/response-wrapping", None).1;
    assert!(rw["data"]["policy"].as_str().unwrap().contains("cubbyhole/response"));

    let err = |method: &str, path: &str, body: Option<Value>| {
        let (st, b) = s.call(method, path, body);
        (st, b["errors"][0].as_str().unwrap_or_default().to_owned())
    };
    let pol = |t: &str| Some(json!({"policy": t}));
    assert_eq!(err("DELETE", "sys/policies/acl/default", None), (400, "cannot delete default policy".into()));
    assert_eq!(err("DELETE", "sys/policy/Default", None), (400, "cannot delete default policy".into()));
    for name in ["root", "Root", "ROOT"] {
        assert_eq!(
            err("PUT", &format!("sys/policies/acl/{name}"), pol("path \"a\" {}")),
            (400, "cannot update \"root\" policy".into())
        );
        assert_eq!(
            err("DELETE", &format!("sys/policies/acl/{name}"), None),
            (400, "cannot delete \"root\" policy".into())
        );
    }
    assert_eq!(
        err("PUT", "sys/policies/acl/response-wrapping", pol("path \"a\" {}")),
        (400, "cannot update \"response-wrapping\" policy".into())
    );
    assert_eq!(
        err("PUT", "sys/policies/acl/x", Some(json!({}))),
        (400, "'policy' parameter not supplied or empty".into())
    );
    assert_eq!(err("PUT", "sys/policy/x", pol("")), (400, "'policy' parameter not supplied or empty".into()));
    assert_eq!(
        err("PUT", "sys/policies/acl/x", pol("path \"a\" { capabilities = [\"foo\"] }")),
        (400, "failed to parse policy: path \"a\": path \"a\": invalid capability \"foo\"".into())
    );
    let (st, msg) = err("PUT", "sys/policies/acl/x", pol("path \"a\" { capabilities = "));
    assert_eq!(st, 400);
    assert!(msg.starts_with("failed to parse policy: "), "{msg}");
    assert_eq!(s.call("GET", "sys/policies/acl/x", None).0, 404, "nothing stored on error");
    assert_eq!(s.call("GET", "sys/policies/acl", None).0, 405);
}

#[test]
fn capabilities_for_root() {
    let s = Server::dev();
    let (st, body) = s.call("POST", "sys/capabilities-self", Some(json!({"paths": ["secret/data/x"]})));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"], json!({"secret/data/x": ["root"], "capabilities": ["root"]}));
    assert_eq!(body["capabilities"], json!(["root"]), "injected at the top level");
    let (st, body) = s.call("PUT", "sys/capabilities-self", Some(json!({"paths": ["a", "b"]})));
    assert_eq!(st, 200);
    assert_eq!(body["data"], json!({"a": ["root"], "b": ["root"]}));
    let (st, body) = s.call("POST", "sys/capabilities", Some(json!({"token": s.token, "path": "x"})));
    assert_eq!(st, 200);
    assert_eq!(body["data"]["capabilities"], json!(["root"]));
    let (st, body) = s.call("POST", "sys/capabilities-self", Some(json!({})));
    assert_eq!((st, body), (400, json!({"errors": ["paths must be supplied"]})));
    // Without a token, nothing.
    assert_eq!(s.call_as("", "POST", "sys/capabilities-self", Some(json!({"paths": ["a"]}))).0, 403);
}

/// Runs the same call on coffer and OpenBao and compares status, error texts and body keys.
/// `extras` are keys OpenBao adds that coffer leaves out on purpose (contract §4.6).
fn same(c: &Server, b: &Server, method: &str, path: &str, body: Option<Value>) -> (Value, Value) {
    let (cs, cb) = c.call(method, path, body.clone());
    let (bs, bb) = b.call(method, path, body);
    let what = format!("{method} {path}:\n coffer {cs} {cb}\n bao    {bs} {bb}");
    assert_eq!(cs, bs, "status of {what}");
    if cs >= 400 {
        assert_eq!(cb["errors"], bb["errors"], "errors of {what}");
        return (cb, bb);
    }
    if cs == 204 {
        return (cb, bb);
    }
    const EXTRAS: [&str; 5] = [
        "version",
        "cas_required",
        "allow_wildcards_in_identity_templates",
        "allow_slashes_in_identity_templates",
        "modified",
    ];
    for (ours, theirs, level) in
        [(keys(&cb), keys(&bb), "top level"), (keys(&cb["data"]), keys(&bb["data"]), "data")]
    {
        let ours: BTreeSet<String> = ours.into_iter().filter(|k| k != "mount_type").collect();
        let theirs: BTreeSet<String> = theirs.into_iter().filter(|k| !EXTRAS.contains(&k.as_str())).collect();
        assert_eq!(ours, theirs, "{level} keys of {what}");
    }
    (cb, bb)
}

#[test]
fn differential_against_openbao() {
    let Some(bao) = require_bao_dev("policy::differential_against_openbao") else { return };
    let c = Server::dev();
    let pol = |t: &str| Some(json!({"policy": t}));

    let (cb, bb) = same(&c, &bao, "LIST", "sys/policies/acl", None);
    assert_eq!(cb["data"]["keys"], bb["data"]["keys"]);
    same(&c, &bao, "GET", "sys/policies/acl", None);

    // The default policy is OpenBao's, byte for byte.
    let (cb, bb) = same(&c, &bao, "GET", "sys/policies/acl/default", None);
    assert_eq!(cb["data"]["policy"], bb["data"]["policy"]);
    let (cb, bb) = same(&c, &bao, "GET", "sys/policies/acl/response-wrapping", None);
    assert_eq!(cb["data"]["policy"], bb["data"]["policy"]);
    let (cb, bb) = same(&c, &bao, "GET", "sys/policy/root", None);
    assert_eq!(cb["rules"], bb["rules"]);

    // Writes and reads.
    same(&c, &bao, "PUT", "sys/policies/acl/diff-a", pol(TEXT));
    let (cb, bb) = same(&c, &bao, "GET", "sys/policies/acl/diff-a", None);
    assert_eq!(cb["data"]["policy"], bb["data"]["policy"]);
    assert_eq!(cb["data"]["name"], bb["data"]["name"]);
    let (cb, bb) = same(&c, &bao, "GET", "sys/policy/diff-a", None);
    assert_eq!(cb["rules"], bb["rules"]);
    let (cb, bb) = same(&c, &bao, "PUT", "sys/policy/diff-b", Some(json!({"rules": "path \"a\" {}"})));
    assert_eq!(cb["warnings"], bb["warnings"]);
    same(
        &c,
        &bao,
        "PUT",
        "sys/policy/diff-c",
        Some(json!({"rules": "path \"x\" {}", "policy": "path \"y\" {}"})),
    );
    let (cb, bb) = same(&c, &bao, "GET", "sys/policy/diff-c", None);
    assert_eq!(cb["rules"], bb["rules"]);
    same(
        &c,
        &bao,
        "PUT",
        "sys/policies/acl/diff-b64",
        pol("cGF0aCAiYSIgeyBjYXBhYmlsaXRpZXMgPSBbInJlYWQiXSB9"),
    );
    let (cb, bb) = same(&c, &bao, "GET", "sys/policies/acl/diff-b64", None);
    assert_eq!(cb["data"]["policy"], bb["data"]["policy"]);
    same(&c, &bao, "PUT", "sys/policies/acl/diff-json", pol(r#"{"path": {"a/*": {"policy": "write"}}}"#));
    let (cb, bb) = same(&c, &bao, "GET", "sys/policy", None);
    assert_eq!(cb["keys"], bb["keys"]);
    assert_eq!(cb["policies"], bb["policies"]);
    let (cb, bb) = same(&c, &bao, "LIST", "sys/policy", None);
    assert_eq!(cb["keys"], bb["keys"]);

    // Errors, with OpenBao's texts.
    for (method, path, body) in [
        ("PUT", "sys/policies/acl/bad", Some(json!({}))),
        ("PUT", "sys/policies/acl/bad", pol("")),
        ("PUT", "sys/policy/bad", Some(json!({"rules": ""}))),
        ("PUT", "sys/policies/acl/bad", pol("path \"a\" { capabilities = [\"foo\"] }")),
        ("PUT", "sys/policies/acl/bad", pol("path \"a\" { capabilities = [\"Read\"] }")),
        ("PUT", "sys/policies/acl/bad", pol("path \"a+*\" { capabilities = [\"read\"] }")),
        ("PUT", "sys/policies/acl/bad", pol("path \"a\" { policy = \"nope\" }")),
        ("PUT", "sys/policies/acl/bad", pol("\n\npath \"a\" {\n capabilities=[\"read\"]\n\n bogus = 1\n}\n")),
        (
            "PUT",
            "sys/policies/acl/bad",
            pol("path \"a\" {\n capabilities=[\"read\"]\n bogus = 1\n other = 2\n}\n"),
        ),
        ("PUT", "sys/policies/acl/bad", pol("\n\nbogus = 1\n")),
        ("PUT", "sys/policies/acl/bad", pol("{\n\"path\": {\n\"a\": {\n\"bogus\": 1}}}")),
        (
            "PUT",
            "sys/policies/acl/bad",
            pol("path \"a\" {\n min_wrapping_ttl = \"10m\"\n max_wrapping_ttl = \"1m\"\n}"),
        ),
        ("PUT", "sys/policies/acl/bad", pol("path \"a\" { min_wrapping_ttl = \"abc\" }")),
        ("PUT", "sys/policies/acl/bad", pol("path \"a\" { expiration = \"tomorrow\" }")),
        ("PUT", "sys/policies/acl/bad", pol("path \"a\" { control_group = { ttl = \"4h\" } }")),
        ("PUT", "sys/policies/acl/root", pol("path \"a\" {}")),
        ("PUT", "sys/policies/acl/Root", pol("path \"a\" {}")),
        ("PUT", "sys/policy/root", pol("path \"a\" {}")),
        ("PUT", "sys/policies/acl/response-wrapping", pol("path \"a\" {}")),
        ("DELETE", "sys/policies/acl/root", None),
        ("DELETE", "sys/policies/acl/default", None),
        ("DELETE", "sys/policy/DEFAULT", None),
        ("DELETE", "sys/policies/acl/response-wrapping", None),
        ("GET", "sys/policies/acl/nonexistent", None),
        ("GET", "sys/policy/nonexistent", None),
        ("POST", "sys/capabilities-self", Some(json!({}))),
        ("POST", "sys/capabilities-self", Some(json!({"paths": []}))),
        ("POST", "sys/capabilities-self", Some(json!({"paths": [""]}))),
        ("GET", "sys/capabilities-self", None),
        ("POST", "sys/capabilities", Some(json!({"token": "hvs.not-a-token", "paths": ["a"]}))),
        ("POST", "sys/capabilities", Some(json!({"token": "hvs.not-a-token"}))),
        ("POST", "sys/capabilities-accessor", Some(json!({"paths": ["a"]}))),
        ("POST", "sys/capabilities-accessor", Some(json!({"accessor": "nope", "paths": ["a"]}))),
    ] {
        same(&c, &bao, method, path, body);
    }
    // Deleting what does not exist succeeds.
    same(&c, &bao, "DELETE", "sys/policies/acl/nonexistent", None);
    same(&c, &bao, "DELETE", "sys/policy/diff-b", None);
    same(&c, &bao, "GET", "sys/policy/diff-b", None);

    // Capabilities: shapes and values for the root token.
    for body in [
        json!({"paths": ["secret/data/x"]}),
        json!({"paths": ["a", "b/c"]}),
        json!({"path": "a"}),
        json!({"path": "a", "paths": ["x"]}),
        json!({"paths": "a, b"}),
        json!({"paths": ["a", "a"]}),
    ] {
        let (cb, bb) = same(&c, &bao, "POST", "sys/capabilities-self", Some(body));
        assert_eq!(cb["data"], bb["data"]);
    }
    // sys/capabilities with each server's own root token.
    let (cs, cb) = c.call("POST", "sys/capabilities", Some(json!({"token": c.token, "paths": ["x", "y"]})));
    let (bs, bb) =
        bao.call("POST", "sys/capabilities", Some(json!({"token": bao.token, "paths": ["x", "y"]})));
    assert_eq!((cs, &cb["data"]), (bs, &bb["data"]));
}
