//! The official OpenBao CLI (`bao`, a Go `api`-based client) pointed at coffer.

use serde_json::Value;

use crate::harness::{bao_cli, require_bao, Server};

fn ok(s: &Server, args: &[&str]) -> String {
    let (code, out, err) = bao_cli(s, args);
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
