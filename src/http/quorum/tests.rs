//! The quorum endpoints end to end through the HTTP layer's types (an in-process core, no
//! sockets): authentication, the legacy and authenticated shapes, errors, sealed nodes, static
//! seals.

use std::collections::BTreeSet;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{json, Value};

use super::*;
use crate::core::generate_root::decode_token;
use crate::core::quorum::fixtures::{self, Node};
use crate::core::token::store::NewToken;
use crate::core::CoreConfig;
use crate::http::routes::Endpoint;

struct Client {
    state: HttpState,
}

impl Client {
    fn new(node: &Node) -> Self {
        Self { state: HttpState::new(node.core.clone(), 1 << 20, std::time::Duration::from_secs(30)) }
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, form_urlencoded::parse(q.as_bytes()).into_owned().collect()),
            None => (path, Vec::new()),
        };
        let mut headers = HeaderMap::new();
        if !token.is_empty() {
            headers.insert("x-vault-token", token.parse().unwrap());
        }
        let request = HttpRequest {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: path.to_owned(),
            query,
            headers,
            body: body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
            remote: "127.0.0.1:1".parse().unwrap(),
            request_id: "rid".into(),
            target: format!("/v1/{path}"),
            budget: None,
        };
        let Endpoint::Quorum(endpoint) = Endpoint::parse(path) else { panic!("{path} is not a quorum path") };
        let reply = serve(&self.state, &request, endpoint).await;
        let v =
            if reply.body.is_empty() { Value::Null } else { serde_json::from_slice(&reply.body).unwrap() };
        (reply.status.as_u16(), v)
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

const ROOT_GEN_KEYS: &[&str] = &[
    "nonce",
    "started",
    "progress",
    "required",
    "complete",
    "encoded_token",
    "encoded_root_token",
    "pgp_fingerprint",
    "otp",
    "otp_length",
];
const REKEY_STATUS_KEYS: &[&str] = &[
    "nonce",
    "started",
    "t",
    "n",
    "progress",
    "required",
    "pgp_fingerprints",
    "backup",
    "verification_required",
];

async fn token_without_policies(node: &Node) -> String {
    let active = node.core.active().unwrap();
    let spec = NewToken {
        policies: vec!["default".into()],
        path: "auth/token/create".into(),
        ..NewToken::default()
    };
    let (t, _) = active.tokens.create(spec, coffer_storage::clock::now()).await.unwrap();
    t.expose().to_owned()
}

#[tokio::test]
async fn authenticated_by_default() {
    let node = fixtures::shamir(5, 3).await;
    let c = Client::new(&node);
    let weak = token_without_policies(&node).await;
    for (method, path) in [
        ("GET", "sys/generate-root/attempt"),
        ("PUT", "sys/generate-root/attempt"),
        ("DELETE", "sys/generate-root/attempt"),
        ("PUT", "sys/generate-root/update"),
        ("GET", "sys/rekey/init"),
        ("PUT", "sys/rekey/init"),
        ("DELETE", "sys/rekey/init"),
        ("PUT", "sys/rekey/update"),
        ("GET", "sys/rekey/verify"),
        ("GET", "sys/generate-root-token/attempt"),
        ("GET", "sys/rekey/backup"),
    ] {
        let (st, body) = c.call(method, path, "", Some(json!({}))).await;
        assert_eq!((st, &body), (403, &json!({"errors": ["permission denied"]})), "{method} {path}");
        let (st, _) = c.call(method, path, "hvs.unknownunknownunknown", Some(json!({}))).await;
        assert_eq!(st, 403, "{method} {path} with an unknown token");
        let (st, _) = c.call(method, path, &weak, Some(json!({}))).await;
        assert_eq!(st, 403, "{method} {path} without a granting policy");
    }
    assert!(!node.core.generate_root_status().await.unwrap().started, "nothing was started");
    let (st, body) = c.call("GET", "sys/generate-root/attempt", &node.root_token, None).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&body), set(ROOT_GEN_KEYS));
    assert_eq!(body["otp_length"], 28);
    assert_eq!(body["required"], 3);
}

#[tokio::test]
async fn unauthenticated_when_configured() {
    let config = CoreConfig {
        unauthenticated_generate_root: true,
        unauthenticated_rekey: true,
        ..CoreConfig::default()
    };
    let node = fixtures::shamir_with(config, 1, 1).await;
    let c = Client::new(&node);
    let (st, body) = c.call("PUT", "sys/generate-root/attempt", "", Some(json!({}))).await;
    assert_eq!(st, 200, "{body}");
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    let otp = body["otp"].as_str().unwrap().to_owned();
    assert_eq!(otp.len(), 28);
    // An anonymous cancel must name the attempt.
    let (st, _) = c.call("DELETE", "sys/generate-root/attempt", "", None).await;
    assert_eq!(st, 400);
    let (st, _) = c.call("DELETE", "sys/generate-root/attempt?nonce=wrong", "", None).await;
    assert_eq!(st, 400);
    assert!(node.core.generate_root_status().await.unwrap().started);
    let (st, body) = c
        .call("PUT", "sys/generate-root/update", "", Some(json!({"key": node.shares[0], "nonce": nonce})))
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(keys(&body), set(ROOT_GEN_KEYS));
    assert_eq!((body["complete"].clone(), body["otp_length"].clone()), (json!(true), json!(0)));
    assert_eq!(body["encoded_token"], body["encoded_root_token"]);
    let token = decode_token(body["encoded_token"].as_str().unwrap(), &otp).unwrap();
    assert!(token.starts_with("hvs."));

    // Cancels: with the nonce anonymously, or with a token that may delete.
    let (_, body) = c.call("PUT", "sys/generate-root/attempt", "", Some(json!({}))).await;
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    let (st, _) = c.call("DELETE", &format!("sys/generate-root/attempt?nonce={nonce}"), "", None).await;
    assert_eq!(st, 204);
    c.call("PUT", "sys/generate-root/attempt", "", Some(json!({}))).await;
    let (st, _) = c.call("DELETE", "sys/generate-root/attempt", &node.root_token, None).await;
    assert_eq!(st, 204);

    // Rekey works anonymously too; an anonymous cancel takes the nonce in the body.
    let (st, body) =
        c.call("PUT", "sys/rekey/init", "", Some(json!({"secret_shares": 3, "secret_threshold": 2}))).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(keys(&body), set(REKEY_STATUS_KEYS));
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    let (st, _) = c.call("DELETE", "sys/rekey/init", "", None).await;
    assert_eq!(st, 400);
    let (st, _) = c.call("DELETE", "sys/rekey/init", "", Some(json!({"nonce": nonce}))).await;
    assert_eq!(st, 204);
    // The authenticated-only paths stay authenticated.
    assert_eq!(c.call("GET", "sys/generate-root-token/attempt", "", None).await.0, 403);
    assert_eq!(c.call("GET", "sys/rekey/backup", "", None).await.0, 403);
}

#[tokio::test]
async fn legacy_generate_root_shapes_and_errors() {
    let node = fixtures::shamir(5, 3).await;
    let c = Client::new(&node);
    let t = node.root_token.as_str();
    let (st, body) = c.call("PUT", "sys/generate-root/attempt", t, Some(json!({"otp": "short"}))).await;
    assert_eq!((st, body), (400, json!({"errors": ["OTP string has incorrect length"]})));
    let (st, _) = c.call("PUT", "sys/generate-root/attempt", t, Some(json!({"pgp_key": "abc"}))).await;
    assert_eq!(st, 400);
    let (st, body) = c.call("PUT", "sys/generate-root/update", t, Some(json!({}))).await;
    assert_eq!((st, body), (400, json!({"errors": ["'key' must be specified in request body as JSON"]})));
    let (st, body) =
        c.call("PUT", "sys/generate-root/update", t, Some(json!({"key": "zz!", "nonce": "x"}))).await;
    assert_eq!((st, body), (400, json!({"errors": ["'key' must be a valid hex or base64 string"]})));
    let (st, body) = c.call("PUT", "sys/generate-root/update", t, Some(json!({"key": node.shares[0]}))).await;
    assert_eq!((st, body), (400, json!({"errors": ["no root generation in progress"]})));
    assert_eq!(c.call("PATCH", "sys/generate-root/attempt", t, None).await.0, 405);
    assert_eq!(c.call("GET", "sys/generate-root/update", t, None).await.0, 405);

    let (st, body) = c.call("POST", "sys/generate-root/attempt", t, Some(json!({}))).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&body), set(ROOT_GEN_KEYS));
    assert_eq!((body["started"].clone(), body["progress"].clone()), (json!(true), json!(0)));
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    let otp = body["otp"].as_str().unwrap().to_owned();
    let (_, status) = c.call("GET", "sys/generate-root/attempt", t, None).await;
    assert_eq!(status["otp"], "", "the OTP is shown once");
    let mut last = Value::Null;
    // Vault's update struct has no JSON tags: field names match case-insensitively.
    for i in 0..3 {
        let (st, body) = c
            .call("PUT", "sys/generate-root/update", t, Some(json!({"Key": node.shares[i], "Nonce": nonce})))
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["progress"], i + 1);
        last = body;
    }
    assert_eq!(last["complete"], true);
    let token = decode_token(last["encoded_token"].as_str().unwrap(), &otp).unwrap();
    let (st, _) = c.call("GET", "sys/rekey/init", &token, None).await;
    assert_eq!(st, 200, "the generated token is a working root token");
}

#[tokio::test]
async fn generate_root_token_endpoint_uses_the_envelope() {
    let node = fixtures::shamir(1, 1).await;
    let c = Client::new(&node);
    let t = node.root_token.as_str();
    let (st, body) = c.call("GET", "sys/generate-root-token/attempt", t, None).await;
    assert_eq!(st, 200);
    assert_eq!(
        body["data"],
        json!({"complete": false, "otp": "", "otp_length": 28, "progress": 0, "required": 1, "started": false})
    );
    let (_, body) = c.call("PUT", "sys/generate-root-token/attempt", t, Some(json!({}))).await;
    let d = body["data"].clone();
    assert_eq!(
        keys(&d),
        set(&[
            "complete",
            "nonce",
            "otp",
            "otp_length",
            "pgp_fingerprint",
            "progress",
            "required",
            "started"
        ])
    );
    let (st, body) =
        c.call("PUT", "sys/generate-root-token/update", t, Some(json!({"key": node.shares[0]}))).await;
    assert_eq!((st, body), (400, json!({"errors": ["nonce is required"]})));
    let (st, body) = c.call("GET", "sys/generate-root-token/update", t, None).await;
    assert_eq!((st, body), (405, json!({"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]})));
    let (st, body) = c
        .call(
            "PUT",
            "sys/generate-root-token/update",
            t,
            Some(json!({"key": node.shares[0], "nonce": d["nonce"]})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        keys(&body["data"]),
        set(&["complete", "encoded_token", "nonce", "pgp_fingerprint", "progress", "required", "started"])
    );
    let token =
        decode_token(body["data"]["encoded_token"].as_str().unwrap(), d["otp"].as_str().unwrap()).unwrap();
    assert!(token.starts_with("hvs."));
    assert_eq!(c.call("DELETE", "sys/generate-root-token/attempt", t, None).await.0, 204);
}

#[tokio::test]
async fn legacy_rekey_flow_with_verification() {
    let node = fixtures::shamir(5, 3).await;
    let c = Client::new(&node);
    let t = node.root_token.as_str();
    let (st, body) = c.call("GET", "sys/rekey/init", t, None).await;
    assert_eq!(st, 200);
    assert_eq!(
        body,
        json!({"nonce": "", "started": false, "t": 0, "n": 0, "progress": 0, "required": 3,
               "pgp_fingerprints": null, "backup": false, "verification_required": false})
    );
    let (st, body) = c.call("GET", "sys/rekey/verify", t, None).await;
    assert_eq!((st, body), (400, json!({"errors": ["no rekey configuration found"]})));
    let (st, body) =
        c.call("PUT", "sys/rekey/init", t, Some(json!({"secret_shares": 2, "secret_threshold": 3}))).await;
    assert_eq!(
        (st, body),
        (
            400,
            json!({"errors": ["invalid rekey seal configuration: threshold cannot be larger than shares"]})
        )
    );
    let (st, body) = c
        .call(
            "PUT",
            "sys/rekey/init",
            t,
            Some(json!({"secret_shares": 3, "secret_threshold": 2, "require_verification": true})),
        )
        .await;
    assert_eq!(st, 200);
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    let mut done = Value::Null;
    for i in 0..3 {
        let (st, body) =
            c.call("PUT", "sys/rekey/update", t, Some(json!({"key": node.shares[i], "nonce": nonce}))).await;
        assert_eq!(st, 200, "{body}");
        done = body;
    }
    assert_eq!(
        keys(&done),
        set(&[
            "nonce",
            "complete",
            "keys",
            "keys_base64",
            "pgp_fingerprints",
            "backup",
            "verification_required",
            "verification_nonce"
        ])
    );
    assert_eq!(done["keys"].as_array().unwrap().len(), 3);
    let vnonce = done["verification_nonce"].as_str().unwrap().to_owned();
    let (_, status) = c.call("GET", "sys/rekey/init", t, None).await;
    assert_eq!(status["verification_nonce"], vnonce.as_str());
    let (_, vs) = c.call("GET", "sys/rekey/verify", t, None).await;
    assert_eq!(vs, json!({"nonce": vnonce, "started": true, "t": 2, "n": 3, "progress": 0}));
    // base64 shares work as well as hex.
    let (st, body) = c
        .call("PUT", "sys/rekey/verify", t, Some(json!({"key": done["keys_base64"][0], "nonce": vnonce})))
        .await;
    assert_eq!((st, body["progress"].clone()), (200, json!(1)));
    let (st, body) =
        c.call("PUT", "sys/rekey/verify", t, Some(json!({"key": done["keys"][2], "nonce": vnonce}))).await;
    assert_eq!((st, body), (200, json!({"nonce": vnonce, "complete": true})));
    let ss = node.core.seal_status().await.unwrap();
    assert_eq!((ss.t, ss.n), (2, 3));

    let (st, body) = c.call("GET", "sys/rekey/backup", t, None).await;
    assert_eq!((st, body), (400, json!({"errors": ["no backed-up keys found"]})));
    assert_eq!(c.call("DELETE", "sys/rekey/backup", t, None).await.0, 204);
    let (st, body) = c.call("GET", "sys/rekey-recovery-key/init", t, None).await;
    assert_eq!((st, body), (400, json!({"errors": ["recovery rekeying not supported"]})));
}

#[tokio::test]
async fn sealed_node_answers_503() {
    let node = fixtures::shamir(1, 1).await;
    let c = Client::new(&node);
    node.core.seal().await;
    for (m, p) in
        [("GET", "sys/generate-root/attempt"), ("GET", "sys/rekey/init"), ("PUT", "sys/rekey/update")]
    {
        let (st, body) = c.call(m, p, &node.root_token, Some(json!({"key": node.shares[0]}))).await;
        assert_eq!((st, body), (503, json!({"errors": ["Vault is sealed"]})), "{m} {p}");
    }
}

#[tokio::test]
async fn static_seal_endpoints() {
    let node = fixtures::static_seal(3, 2).await;
    let c = Client::new(&node);
    let t = node.root_token.as_str();
    // sys/rekey/* on a static seal: recovery shares, forced 1/1 shown as 0/0, no keys back.
    let (st, init) = c.call("PUT", "sys/rekey/init", t, Some(json!({}))).await;
    assert_eq!(st, 200, "{init}");
    assert_eq!(
        (init["t"].clone(), init["n"].clone(), init["required"].clone()),
        (json!(0), json!(0), json!(2))
    );
    let nonce = init["nonce"].as_str().unwrap().to_owned();
    c.call("PUT", "sys/rekey/update", t, Some(json!({"key": node.shares[0], "nonce": nonce}))).await;
    let (st, done) =
        c.call("PUT", "sys/rekey/update", t, Some(json!({"key": node.shares[2], "nonce": nonce}))).await;
    assert_eq!(st, 200, "{done}");
    assert_eq!(
        done,
        json!({"nonce": nonce, "complete": true, "keys": [], "keys_base64": [], "pgp_fingerprints": null,
               "backup": false, "verification_required": false})
    );
    // sys/rekey-recovery-key/*: new recovery shares.
    let (st, init) = c
        .call(
            "PUT",
            "sys/rekey-recovery-key/init",
            t,
            Some(json!({"secret_shares": 4, "secret_threshold": 3})),
        )
        .await;
    assert_eq!(st, 200, "{init}");
    let nonce = init["nonce"].as_str().unwrap().to_owned();
    c.call("PUT", "sys/rekey-recovery-key/update", t, Some(json!({"key": node.shares[1], "nonce": nonce})))
        .await;
    let (st, done) = c
        .call("PUT", "sys/rekey-recovery-key/update", t, Some(json!({"key": node.shares[2], "nonce": nonce})))
        .await;
    assert_eq!(st, 200, "{done}");
    let new: Vec<String> =
        done["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    assert_eq!(new.len(), 4);
    let ss = node.core.seal_status().await.unwrap();
    assert_eq!((ss.t, ss.n, ss.recovery_seal), (3, 4, true));
    // generate-root now wants three of the new recovery shares; an old one is refused.
    let (_, init) = c.call("PUT", "sys/generate-root/attempt", t, Some(json!({}))).await;
    let nonce = init["nonce"].as_str().unwrap().to_owned();
    for k in [&new[3], &node.shares[0]] {
        c.call("PUT", "sys/generate-root/update", t, Some(json!({"key": k, "nonce": nonce}))).await;
    }
    let (st, body) =
        c.call("PUT", "sys/generate-root/update", t, Some(json!({"key": new[1], "nonce": nonce}))).await;
    assert_eq!(st, 400, "{body}");
    for k in [&new[3], &new[0]] {
        c.call("PUT", "sys/generate-root/update", t, Some(json!({"key": k, "nonce": nonce}))).await;
    }
    let (st, body) =
        c.call("PUT", "sys/generate-root/update", t, Some(json!({"key": new[1], "nonce": nonce}))).await;
    assert_eq!((st, body["complete"].clone()), (200, json!(true)), "{body}");
    let token = decode_token(body["encoded_token"].as_str().unwrap(), init["otp"].as_str().unwrap()).unwrap();
    assert!(token.starts_with("hvs."));
}
