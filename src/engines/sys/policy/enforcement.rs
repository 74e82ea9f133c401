//! ACL enforcement through the whole core request path, with tokens made directly in the token
//! store (until `auth/token/create` lands, the integration tests cannot mint child tokens).

use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Map, Value};

use coffer_storage::MemStorage;

use crate::core::error::Error;
use crate::core::request::{Request, Response};
use crate::core::seal::{InitParams, SealSource};
use crate::core::token::store::NewToken;
use crate::core::{Core, CoreConfig};
use crate::policy::Operation;
use crate::secret::ClientToken;

struct Env {
    core: Arc<Core>,
}

impl Env {
    async fn new() -> Env {
        let core = Core::standalone(
            CoreConfig::default(),
            Arc::new(MemStorage::new()),
            SealSource::Shamir,
            std::sync::Arc::new(crate::builtin::Builtin),
        );
        let params = InitParams {
            secret_shares: 1,
            secret_threshold: 1,
            root_token_id: Some("root".into()),
            ..InitParams::default()
        };
        let init = core.init(params).await.unwrap();
        let key = base64::engine::general_purpose::STANDARD.encode(init.keys[0].expose());
        core.unseal(Some(&key), false).await.unwrap();
        let env = Env { core };
        env.root(Operation::Update, "sys/mounts/kv", json!({"type": "kv"})).await.unwrap();
        env.root(Operation::Update, "kv/app", json!({"user": "ada"})).await.unwrap();
        env
    }

    async fn call(
        &self,
        token: &str,
        op: Operation,
        path: &str,
        data: Value,
        wrap_ttl: Option<u64>,
    ) -> Result<Response, Error> {
        let mut req = Request::new(op, path);
        req.token = Some(ClientToken::new(token.to_owned()));
        req.data = data.as_object().cloned().unwrap_or_default();
        req.wrap_ttl = wrap_ttl;
        self.core.handle(req).await
    }

    async fn root(&self, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        self.call("root", op, path, data, None).await
    }

    async fn policy(&self, name: &str, text: &str) {
        self.root(Operation::Update, &format!("sys/policies/acl/{name}"), json!({"policy": text}))
            .await
            .unwrap();
    }

    /// A token with `policies` (plus `default`), made in the token store directly.
    async fn token(&self, policies: &[&str]) -> (String, String) {
        let active = self.core.active().unwrap();
        let mut p: Vec<String> = policies.iter().map(|s| s.to_string()).collect();
        p.push("default".into());
        let spec = NewToken { policies: p, path: "auth/token/create".into(), ..NewToken::default() };
        let (token, entry) = active.tokens.create(spec, coffer_storage::clock::now()).await.unwrap();
        (token.expose().to_owned(), entry.accessor)
    }
}

fn denied(r: Result<Response, Error>) -> bool {
    matches!(r, Err(Error::PermissionDenied))
}

fn data(r: Result<Response, Error>) -> Map<String, Value> {
    r.unwrap().data.unwrap_or_default()
}

#[tokio::test]
async fn policies_grant_exactly_what_they_say() {
    let env = Env::new().await;
    env.policy("reader", r#"path "kv/*" { capabilities = ["read", "list"] }"#).await;
    let (t, _) = env.token(&["reader"]).await;
    assert_eq!(data(env.call(&t, Operation::Read, "kv/app", json!({}), None).await)["user"], "ada");
    assert!(env.call(&t, Operation::List, "kv/", json!({}), None).await.is_ok());
    assert!(denied(env.call(&t, Operation::Update, "kv/app", json!({"x": 1}), None).await));
    assert!(denied(env.call(&t, Operation::Delete, "kv/app", json!({}), None).await));
    assert!(denied(env.call(&t, Operation::Read, "sys/mounts", json!({}), None).await));
    assert!(denied(env.call(&t, Operation::List, "sys/policies/acl", json!({}), None).await));
    // The default policy is attached: capabilities-self works and reports the grant.
    let caps = data(
        env.call(&t, Operation::Update, "sys/capabilities-self", json!({"paths": ["kv/app"]}), None).await,
    );
    assert_eq!(caps["kv/app"], json!(["list", "read"]));
    assert_eq!(caps["capabilities"], json!(["list", "read"]));
    // Cubbyhole comes from `default`.
    assert!(env.call(&t, Operation::Update, "cubbyhole/mine", json!({"a": "b"}), None).await.is_ok());
}

#[tokio::test]
async fn changes_apply_to_existing_tokens_immediately() {
    let env = Env::new().await;
    env.policy("p", r#"path "kv/app" { capabilities = ["read"] }"#).await;
    let (t, _) = env.token(&["p"]).await;
    assert!(env.call(&t, Operation::Read, "kv/app", json!({}), None).await.is_ok());
    env.policy("p", r#"path "kv/app" { capabilities = ["deny"] }"#).await;
    assert!(denied(env.call(&t, Operation::Read, "kv/app", json!({}), None).await));
    env.policy("p", r#"path "kv/app" { capabilities = ["read"] }"#).await;
    assert!(env.call(&t, Operation::Read, "kv/app", json!({}), None).await.is_ok());
    env.root(Operation::Delete, "sys/policies/acl/p", json!({})).await.unwrap();
    assert!(denied(env.call(&t, Operation::Read, "kv/app", json!({}), None).await), "deleted = empty");
    // Recreated under a differently cased name: same policy.
    env.root(
        Operation::Update,
        "sys/policy/P",
        json!({"policy": r#"path "kv/app" { capabilities = ["read"] }"#}),
    )
    .await
    .unwrap();
    assert!(env.call(&t, Operation::Read, "kv/app", json!({}), None).await.is_ok());
}

#[tokio::test]
async fn deny_across_policies_wins() {
    let env = Env::new().await;
    env.policy("grant", r#"path "kv/app" { capabilities = ["read", "update"] }"#).await;
    env.policy("block", r#"path "kv/app" { capabilities = ["deny"] }"#).await;
    let (t, _) = env.token(&["grant", "block"]).await;
    assert!(denied(env.call(&t, Operation::Read, "kv/app", json!({}), None).await));
    let (t2, _) = env.token(&["grant"]).await;
    assert!(env.call(&t2, Operation::Read, "kv/app", json!({}), None).await.is_ok());
}

#[tokio::test]
async fn create_and_update_are_distinct() {
    let env = Env::new().await;
    // kv v1 has an existence check: writing a new key is `create`, an existing one `update`.
    env.policy("c", r#"path "kv/*" { capabilities = ["create"] }"#).await;
    let (t, _) = env.token(&["c"]).await;
    assert!(env.call(&t, Operation::Update, "kv/new", json!({"a": 1}), None).await.is_ok());
    assert!(denied(env.call(&t, Operation::Update, "kv/app", json!({"a": 1}), None).await));
}

#[tokio::test]
async fn root_protected_paths_need_sudo() {
    let env = Env::new().await;
    env.policy("nosudo", r#"path "sys/auth/*" { capabilities = ["create", "update", "read"] }"#).await;
    env.policy("sudo", r#"path "sys/auth/*" { capabilities = ["create", "update", "read", "sudo"] }"#).await;
    let (plain, _) = env.token(&["nosudo"]).await;
    let (su, _) = env.token(&["sudo"]).await;
    let body = json!({"type": "approle"});
    assert!(denied(env.call(&plain, Operation::Update, "sys/auth/x", body.clone(), None).await));
    // With sudo the ACL lets it through (the handler may still refuse the type).
    assert!(!denied(env.call(&su, Operation::Update, "sys/auth/x", body, None).await));
    // sys/mounts/* is not root-protected.
    env.policy("mounts", r#"path "sys/mounts/*" { capabilities = ["update", "create"] }"#).await;
    let (m, _) = env.token(&["mounts"]).await;
    assert!(env.call(&m, Operation::Update, "sys/mounts/kv2", json!({"type": "kv"}), None).await.is_ok());
}

#[tokio::test]
async fn parameter_constraints_are_enforced() {
    let env = Env::new().await;
    env.policy(
        "params",
        "path \"kv/*\" {\n  capabilities = [\"create\", \"update\"]\n  allowed_parameters = {\n    \"env\" = [\"dev\", \"stage-*\"]\n    \"owner\" = []\n  }\n  denied_parameters = {\n    \"owner\" = [\"root\"]\n  }\n}",
    )
    .await;
    let (t, _) = env.token(&["params"]).await;
    let w = |v: Value| env.call(&t, Operation::Update, "kv/p", v, None);
    assert!(w(json!({"env": "dev"})).await.is_ok());
    assert!(w(json!({"env": "stage-2", "owner": "ada"})).await.is_ok());
    assert!(denied(w(json!({"env": "prod"})).await));
    assert!(denied(w(json!({"owner": "root"})).await));
    assert!(denied(w(json!({"other": "x"})).await));
}

#[tokio::test]
async fn wrapping_ttl_bounds_are_enforced() {
    let env = Env::new().await;
    env.policy("wrap", "path \"kv/app\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = \"1m\"\n  max_wrapping_ttl = \"1h\"\n}")
        .await;
    let (t, _) = env.token(&["wrap"]).await;
    assert!(denied(env.call(&t, Operation::Read, "kv/app", json!({}), None).await));
    assert!(denied(env.call(&t, Operation::Read, "kv/app", json!({}), Some(30)).await));
    assert!(denied(env.call(&t, Operation::Read, "kv/app", json!({}), Some(7200)).await));
    assert!(!denied(env.call(&t, Operation::Read, "kv/app", json!({}), Some(300)).await));
}

#[tokio::test]
async fn capabilities_endpoints() {
    let env = Env::new().await;
    env.policy("p", r#"path "kv/+/cfg" { capabilities = ["read", "sudo"] }"#).await;
    let (t, accessor) = env.token(&["p"]).await;
    let d = data(
        env.root(Operation::Update, "sys/capabilities", json!({"token": t, "paths": ["kv/a/cfg", "kv/a"]}))
            .await,
    );
    assert_eq!(d["kv/a/cfg"], json!(["read", "sudo"]));
    assert_eq!(d["kv/a"], json!(["deny"]));
    assert!(!d.contains_key("capabilities"));
    let d = data(
        env.root(
            Operation::Update,
            "sys/capabilities-accessor",
            json!({"accessor": accessor, "path": "kv/b/cfg"}),
        )
        .await,
    );
    assert_eq!(d["capabilities"], json!(["read", "sudo"]));
    let d = data(
        env.root(Operation::Update, "sys/capabilities-self", json!({"paths": "kv/a,cubbyhole/x"})).await,
    );
    assert_eq!(d["kv/a"], json!(["root"]));
    let e =
        env.root(Operation::Update, "sys/capabilities", json!({"token": "hvs.nope", "paths": ["a"]})).await;
    assert_eq!(e.unwrap_err().to_string(), "1 error occurred:\n\t* invalid token\n\n");
    // sys/capabilities itself is not in `default`.
    assert!(denied(
        env.call(&t, Operation::Update, "sys/capabilities", json!({"token": t, "paths": ["a"]}), None).await
    ));
}

#[tokio::test]
async fn mount_preflight_uses_mount_access() {
    let env = Env::new().await;
    env.policy("p", r#"path "kv/+/x" { capabilities = ["read"] }"#).await;
    let (t, _) = env.token(&["p"]).await;
    assert!(env.call(&t, Operation::Read, "sys/internal/ui/mounts/kv", json!({}), None).await.is_ok());
    let e = env.call(&t, Operation::Read, "sys/internal/ui/mounts/secret-none", json!({}), None).await;
    assert!(matches!(e, Err(Error::Forbidden(_))));
    let (bare, _) = env.token(&[]).await;
    let e = env.call(&bare, Operation::Read, "sys/internal/ui/mounts/kv", json!({}), None).await;
    assert!(matches!(e, Err(Error::Forbidden(_))));
    // `default` grants cubbyhole.
    assert!(env
        .call(&bare, Operation::Read, "sys/internal/ui/mounts/cubbyhole", json!({}), None)
        .await
        .is_ok());
}

#[tokio::test]
async fn policies_endpoints_are_themselves_protected() {
    let env = Env::new().await;
    env.policy(
        "admin",
        r#"path "sys/policies/acl/team-*" { capabilities = ["create", "read", "update", "delete"] }"#,
    )
    .await;
    let (t, _) = env.token(&["admin"]).await;
    let text = r#"path "kv/team" { capabilities = ["read"] }"#;
    assert!(env
        .call(&t, Operation::Update, "sys/policies/acl/team-a", json!({"policy": text}), None)
        .await
        .is_ok());
    assert!(denied(
        env.call(&t, Operation::Update, "sys/policies/acl/other", json!({"policy": text}), None).await
    ));
    assert!(denied(
        env.call(&t, Operation::Update, "sys/policies/acl/default", json!({"policy": text}), None).await
    ));
    let d = data(env.call(&t, Operation::Read, "sys/policies/acl/team-a", json!({}), None).await);
    assert_eq!(d, json!({"name": "team-a", "policy": text}).as_object().cloned().unwrap());
}
