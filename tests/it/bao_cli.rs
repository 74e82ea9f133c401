//! The official OpenBao CLI (`bao`, a Go `api`-based client) pointed at coffer.

use serde_json::{json, Value};

use crate::harness::{bao_cli, bao_cli_as, bao_cli_at, require_bao, Server};

fn ok(s: &Server, args: &[&str]) -> String {
    ok_as(s, &s.token, args)
}

fn ok_as(s: &Server, token: &str, args: &[&str]) -> String {
    let (code, out, err) = bao_cli_as(s, token, args);
    assert_eq!(code, 0, "bao {args:?} failed:\nstdout: {out}\nstderr: {err}");
    out
}

#[test]
fn bao_cli_status_mounts_and_kv_v1() {
    if !require_bao("bao_cli_status_mounts_and_kv_v1") {
        return;
    }
    let s = Server::dev();
    let out = ok(&s, &["status", "-format=json"]);
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["sealed"], false);
    assert_eq!(st["initialized"], true);
    ok(&s, &["secrets", "enable", "-path=kv1", "kv"]);
    let mounts: Value = serde_json::from_str(&ok(&s, &["secrets", "list", "-format=json"])).unwrap();
    assert_eq!(mounts["kv1/"]["type"], "kv");
    ok(&s, &["write", "kv1/app", "user=ada", "password=s3cret"]);
    let read: Value = serde_json::from_str(&ok(&s, &["read", "-format=json", "kv1/app"])).unwrap();
    assert_eq!(read["data"]["user"], "ada");
    assert_eq!(read["data"]["password"], "s3cret");
    assert_eq!(ok(&s, &["read", "-field=user", "kv1/app"]).trim(), "ada");
    ok(&s, &["write", "kv1/dir/nested", "x=1"]);
    let list: Value = serde_json::from_str(&ok(&s, &["list", "-format=json", "kv1/"])).unwrap();
    assert_eq!(list, serde_json::json!(["app", "dir/"]));
    ok(&s, &["delete", "kv1/app"]);
    let (code, _, _) = bao_cli(&s, &["read", "kv1/app"]);
    assert_ne!(code, 0, "reading a deleted key must fail");
    let tok: Value = serde_json::from_str(&ok(&s, &["token", "lookup", "-format=json"])).unwrap();
    assert_eq!(tok["data"]["policies"], serde_json::json!(["root"]));
    ok(&s, &["secrets", "disable", "kv1"]);
}

fn bao_json(s: &Server, args: &[&str]) -> Value {
    bao_json_as(s, &s.token, args)
}

fn bao_json_as(s: &Server, token: &str, args: &[&str]) -> Value {
    let out = ok_as(s, token, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bao {args:?} printed non-JSON ({e}): {out}"))
}

#[test]
fn bao_cli_operator_init_unseal_seal() {
    if !require_bao("bao_cli_operator_init_unseal_seal") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = crate::harness::make_tls(dir.path());
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[storage]\ntype = \"file\"\npath = \"data\"\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"server.pem\"\ntls_key_file = \"server-key.pem\"\n",
    )
    .unwrap();
    let mut s = Server::with_config(&cfg, Some(tls.ca_pem.clone()), &[]);
    let (code, out, _) = bao_cli(&s, &["status"]);
    assert_eq!(code, 2, "status exits 2 while sealed/uninitialised: {out}");
    let init = bao_json(&s, &["operator", "init", "-key-shares=3", "-key-threshold=2", "-format=json"]);
    let keys: Vec<String> =
        init["unseal_keys_b64"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    assert_eq!(keys.len(), 3);
    s.token = init["root_token"].as_str().unwrap().to_owned();
    let st = bao_json(&s, &["operator", "unseal", "-format=json", &keys[0]]);
    assert_eq!((st["sealed"].clone(), st["progress"].clone()), (json!(true), json!(1)));
    let st = bao_json(&s, &["operator", "unseal", "-format=json", &keys[2]]);
    assert_eq!(st["sealed"], false);
    ok(&s, &["status"]);
    ok(&s, &["secrets", "enable", "-path=kv1", "kv"]);
    ok(&s, &["write", "kv1/x", "a=b"]);
    ok(&s, &["operator", "seal"]);
    let (code, _, _) = bao_cli(&s, &["status"]);
    assert_eq!(code, 2);
    bao_json(&s, &["operator", "unseal", "-format=json", &keys[1]]);
    bao_json(&s, &["operator", "unseal", "-format=json", &keys[0]]);
    assert_eq!(bao_json(&s, &["read", "-format=json", "kv1/x"])["data"]["a"], "b");
    assert!(s.terminate().success());
}

/// Issue 3's flows through the bao CLI: a policy that allows only secret/data/app/* limits a
/// token; AppRole role → role-id → wrapped secret-id → unwrap → login → use → uses exhausted.
#[test]
fn bao_cli_policy_token_and_approle_flow() {
    if !require_bao("bao_cli_policy_token_and_approle_flow") {
        return;
    }
    let s = Server::dev();
    policy_token_and_approle_flow(&s.addr, &s.token);
}

/// Policies, tokens, kv v2 and a wrapped AppRole secret ID through the `bao` CLI, against the
/// server at `addr` (a dev server, or any node of a cluster) whose `secret/` is kv v2.
pub fn policy_token_and_approle_flow(addr: &str, root: &str) {
    let ok_as = |token: &str, args: &[&str]| -> String {
        let (code, out, err) = bao_cli_at(addr, None, token, args);
        assert_eq!(code, 0, "bao {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    };
    let ok = |args: &[&str]| ok_as(root, args);
    let json_as =
        |token: &str, args: &[&str]| -> Value { serde_json::from_str(&ok_as(token, args)).unwrap() };
    let json = |args: &[&str]| json_as(root, args);
    let cli_as = |token: &str, args: &[&str]| bao_cli_at(addr, None, token, args);
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("app.hcl");
    std::fs::write(&pol, "path \"secret/data/app/*\" {\n  capabilities = [\"read\", \"create\", \"update\"]\n}\npath \"sys/internal/ui/mounts/*\" {\n  capabilities = [\"read\"]\n}\npath \"auth/token/create\" {\n  capabilities = [\"update\"]\n}\n").unwrap();
    ok(&["policy", "write", "app", pol.to_str().unwrap()]);
    assert!(ok(&["policy", "read", "app"]).contains("secret/data/app/*"));
    ok(&["kv", "put", "secret/app/db", "password=p"]);
    ok(&["kv", "put", "secret/other/x", "password=q"]);
    let tok = json(&["token", "create", "-policy=app", "-ttl=10m", "-format=json"]);
    let app_token = tok["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(
        json_as(&app_token, &["kv", "get", "-format=json", "secret/app/db"])["data"]["data"]["password"],
        "p"
    );
    let (code, _, err) = cli_as(&app_token, &["kv", "get", "secret/other/x"]);
    assert_ne!(code, 0);
    assert!(err.contains("permission denied") || err.contains("403"), "{err}");
    ok_as(&app_token, &["kv", "put", "secret/app/new", "k=v"]);
    let (code, _, _) = cli_as(&app_token, &["kv", "put", "secret/other/new", "k=v"]);
    assert_ne!(code, 0);
    // Revoking the parent token revokes what it created.
    let child = json_as(&app_token, &["token", "create", "-policy=app", "-format=json"]);
    let child_token = child["auth"]["client_token"].as_str().unwrap().to_owned();
    ok(&["token", "revoke", &app_token]);
    let (code, _, _) = cli_as(&child_token, &["token", "lookup"]);
    assert_ne!(code, 0, "child of a revoked token still works");

    ok(&["auth", "enable", "approle"]);
    ok(&["write", "auth/approle/role/web", "token_policies=app", "secret_id_num_uses=1", "token_num_uses=2"]);
    let role_id = json(&["read", "-format=json", "auth/approle/role/web/role-id"])["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrapped = json(&["write", "-wrap-ttl=60s", "-f", "-format=json", "auth/approle/role/web/secret-id"]);
    let wt = wrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    assert!(!wrapped["wrap_info"]["wrapped_accessor"].as_str().unwrap_or("").is_empty());
    let un = json_as(&wt, &["unwrap", "-format=json"]);
    let sid = un["data"]["secret_id"].as_str().unwrap().to_owned();
    let login = json_as(
        "",
        &[
            "write",
            "-format=json",
            "auth/approle/login",
            &format!("role_id={role_id}"),
            &format!("secret_id={sid}"),
        ],
    );
    let t = login["auth"]["client_token"].as_str().unwrap().to_owned();
    ok_as(&t, &["kv", "get", "secret/app/db"]); // the CLI makes 2 requests: preflight + read
    let (code, _, err) = cli_as(&t, &["kv", "get", "secret/app/db"]);
    assert_ne!(code, 0, "token_num_uses exhausted must be refused");
    assert!(err.contains("permission denied") || err.contains("403"), "{err}");
    // The secret ID was single-use.
    let (code, _, _) = cli_as(
        "",
        &["write", "auth/approle/login", &format!("role_id={role_id}"), &format!("secret_id={sid}")],
    );
    assert_ne!(code, 0);
}
