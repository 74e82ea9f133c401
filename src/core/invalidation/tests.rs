//! Invalidation: key classification, and two cores over one replicated store where writes
//! made through one ("elsewhere") take effect on the other through the change stream alone.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use coffer_storage::keys::UnsealKey;
use coffer_storage::replication::SingleNode;
use coffer_storage::MemStorage;

use super::*;
use crate::core::error::Error;
use crate::core::request::Request;
use crate::core::seal::{InitParams, SealSource};
use crate::core::CoreConfig;
use crate::policy::Operation;
use crate::secret::ClientToken;

#[test]
fn keys_map_to_the_caches_they_feed() {
    let r = Reload::of(["core/keyring", "sys/policy/app", "logical/abc-123/policy/k1", "auth/u1/role/x"]);
    assert!(r.keyring && r.policies && !r.mounts && !r.audit);
    assert_eq!(r.mount_keys, vec![("logical/abc-123/", "policy/k1"), ("auth/u1/", "role/x")]);
    assert!(Reload::of(["core/mounts"]).mounts);
    assert!(Reload::of(["core/auth"]).mounts);
    assert!(Reload::of(["core/audit"]).audit);
    assert_eq!(Reload::of(["sys/token/id/x", "core/cluster"]), Reload::default());
    assert!(mount_key("logical/nouuid").is_none());
}

/// Two static-seal cores over one store whose writes publish their keys to both (as a Raft
/// node's applied entries do): `here` caches, `elsewhere` writes.
struct TwoNodes {
    here: Arc<Core>,
    elsewhere: Arc<Core>,
    root: String,
}

async fn two_nodes() -> TwoNodes {
    let single = Arc::new(SingleNode::new());
    let storage: Arc<dyn coffer_storage::Storage> = Arc::new(single.wrap(MemStorage::new()));
    let key = UnsealKey::generate().unwrap();
    let raw = key.expose().to_vec();
    let node = |key: UnsealKey| {
        Core::new(
            CoreConfig::default(),
            Arc::clone(&storage),
            Arc::clone(&single) as Arc<dyn coffer_storage::replication::Replication>,
            SealSource::Static { key, key_id: "k1".into() },
            Arc::new(crate::builtin::Builtin),
        )
    };
    let here = node(key);
    let init = here.init(InitParams::default()).await.unwrap();
    let elsewhere = node(UnsealKey::from_slice(&raw).unwrap());
    elsewhere.start().await.unwrap();
    assert!(!here.is_sealed() && !elsewhere.is_sealed());
    TwoNodes { here, elsewhere, root: init.root_token.expose().to_owned() }
}

async fn call(core: &Core, token: &str, op: Operation, path: &str, data: Value) -> Result<Value, Error> {
    let mut req = Request::new(op, path);
    req.token = Some(ClientToken::new(token.to_owned()));
    if let Value::Object(m) = data {
        req.data = m;
    }
    let resp = core.handle(req).await?;
    Ok(json!({ "data": resp.data, "auth": resp.auth.map(|a| a.client_token) }))
}

/// Polls `f` until it is true or ten seconds pass.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(std::time::Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_elsewhere_take_effect_here() {
    let n = two_nodes().await;
    let (here, elsewhere, root) = (&n.here, &n.elsewhere, n.root.as_str());
    call(here, root, Operation::Update, "sys/mounts/kv", json!({"type": "kv"})).await.unwrap();
    call(here, root, Operation::Update, "kv/x", json!({"v": "1"})).await.unwrap();

    // A policy: `here` compiles and caches the token's ACL while `app` does not exist yet.
    let t =
        call(here, root, Operation::Update, "auth/token/create", json!({"policies": ["app"]})).await.unwrap();
    let token = t["auth"].as_str().unwrap().to_owned();
    assert!(matches!(
        call(here, &token, Operation::Read, "kv/x", json!({})).await,
        Err(Error::PermissionDenied)
    ));
    let policy = r#"path "kv/*" { capabilities = ["read"] }"#;
    call(elsewhere, root, Operation::Update, "sys/policies/acl/app", json!({ "policy": policy }))
        .await
        .unwrap();
    eventually("the policy written elsewhere allows the read here", async || {
        call(here, &token, Operation::Read, "kv/x", json!({})).await.is_ok()
    })
    .await;

    // A mount: enabled elsewhere, routed here.
    call(elsewhere, root, Operation::Update, "sys/mounts/transit", json!({"type": "transit"})).await.unwrap();
    eventually("the mount made elsewhere routes here", async || {
        call(here, root, Operation::Update, "transit/keys/k", json!({})).await.is_ok()
    })
    .await;

    // A keyring rotation: data written elsewhere under the new term reads here.
    call(elsewhere, root, Operation::Update, "sys/rotate", json!({})).await.unwrap();
    call(elsewhere, root, Operation::Update, "kv/y", json!({"v": "2"})).await.unwrap();
    eventually("a value under the new barrier term decrypts here", async || {
        call(here, root, Operation::Read, "kv/y", json!({})).await.is_ok()
    })
    .await;
    let status = here.barrier().key_status().unwrap();
    assert_eq!(status.term, 2, "the keyring here did not follow the rotation");

    // A transit rotation: encryptions here use the new version.
    let ct = |v: &Value| v["data"]["ciphertext"].as_str().unwrap_or_default().to_owned();
    let c1 =
        call(here, root, Operation::Update, "transit/encrypt/k", json!({"plaintext": "aGk="})).await.unwrap();
    assert!(ct(&c1).starts_with("vault:v1:"), "{c1}");
    call(elsewhere, root, Operation::Update, "transit/keys/k/rotate", json!({})).await.unwrap();
    eventually("encryptions here use the version rotated elsewhere", async || {
        let c = call(here, root, Operation::Update, "transit/encrypt/k", json!({"plaintext": "aGk="})).await;
        c.map(|v| ct(&v).starts_with("vault:v2:")).unwrap_or(false)
    })
    .await;
}
