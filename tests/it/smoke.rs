//! The dev server answers the basics.

use serde_json::json;

use crate::harness::Server;

#[test]
fn dev_server_serves_kv_v1() {
    let s = Server::dev();
    let (st, body) = s.call("GET", "sys/seal-status", None);
    assert_eq!(st, 200);
    assert_eq!(body["sealed"], false);
    assert_eq!(s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(s.call("PUT", "kv1/app", Some(json!({"user": "ada", "n": 3}))).0, 204);
    let (st, body) = s.call("GET", "kv1/app", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"], json!({"user": "ada", "n": 3}));
    let (st, body) = s.call("LIST", "kv1/", None);
    assert_eq!(st, 200);
    assert_eq!(body["data"]["keys"], json!(["app"]));
}
