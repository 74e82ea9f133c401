//! HTTP side of the quorum operations: root token generation and rekeying.
//!
//! # Endpoints
//!
//! | path | body style | who may call |
//! | --- | --- | --- |
//! | `sys/generate-root/{attempt,update}` | plain JSON (Vault's legacy shape) | see below |
//! | `sys/rekey/{init,update,verify}`, `sys/rekey-recovery-key/{init,update,verify}` | plain JSON | see below |
//! | `sys/generate-root-token/{attempt,update}` | envelope (`data`) | token with the ACL capability |
//! | `sys/rekey/backup`, `sys/rekey/recovery-key-backup` | errors only (no backups exist) | token with `sudo` |
//!
//! # Authentication of the legacy endpoints
//!
//! Vault serves `sys/generate-root/*` and `sys/rekey/*` without a token, which lets anyone start
//! or cancel an operation and hog its single slot (CVE-2025-4656, CVE-2026-5807). OpenBao
//! disables them by default (`disable_unauthed_generate_root_endpoints`,
//! `disable_unauthed_rekey_endpoints`: the paths then answer 405) and offers authenticated
//! replacements (`sys/generate-root-token/*`, `sys/rotate/root/*`) that need a token whose
//! policy grants the operation's capability on the path (no `sudo`).
//!
//! coffer keeps the legacy paths but, unless `CoreConfig::unauthenticated_generate_root` /
//! `unauthenticated_rekey` is set, applies that same rule to them: a valid token whose ACL
//! allows `read` (GET), `update` (PUT/POST) or `delete` (DELETE) on the request path. So hvac
//! and older CLIs keep working when they send a token, and anonymous callers get 403.
//! "Valid" means what it means on every other endpoint
//! ([`Core::authenticate`](crate::core::Core::authenticate): live, from one of the token's
//! `bound_cidrs`, a use spent), and every request is audited (`http::sys::guarded`): the
//! shares in request bodies and the OTPs, nonces, encoded tokens and new shares in responses
//! reach the audit devices only hashed.
//! With the setting on, no token is needed; an anonymous caller must then give the operation's
//! `nonce` (query parameter or body) to cancel it (or restart a verification). That stops blind
//! `DELETE`s, not a determined attacker (the status endpoints show the nonce to anyone, as
//! clients need it): keep unauthenticated access off where that matters.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::core::authn::wipe_json;
use crate::core::error::Error;
use crate::core::fields;
use crate::core::generate_root::{GenerateRootProgress, GenerateRootStatus};
use crate::core::quorum::decode_key;
use crate::core::rekey::{
    RekeyParams, RekeyStatus, RekeyTarget, RekeyUpdate, RekeyVerifyStatus, RekeyVerifyUpdate,
};
use crate::core::request::Response;
use crate::core::seal::render_shares;
use crate::http::handler::{HttpState, Parsed, Reply};
use crate::http::sys::{guarded, Access, BodyStyle, Outcome};
use crate::policy::Operation;

/// The quorum-operation paths, parsed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpPath {
    /// `sys/generate-root/attempt` (legacy, plain JSON).
    GenerateRootAttempt,
    /// `sys/generate-root/update` (legacy, plain JSON).
    GenerateRootUpdate,
    /// `sys/generate-root-token/attempt` (authenticated, envelope).
    GenerateRootTokenAttempt,
    /// `sys/generate-root-token/update` (authenticated, envelope).
    GenerateRootTokenUpdate,
    /// `sys/rekey/backup` or `sys/rekey/recovery-key-backup`.
    RekeyBackup(RekeyTarget),
    /// `sys/rekey/init` or `sys/rekey-recovery-key/init`.
    RekeyInit(RekeyTarget),
    /// `sys/rekey/update` or `sys/rekey-recovery-key/update`.
    RekeyUpdate(RekeyTarget),
    /// `sys/rekey/verify` or `sys/rekey-recovery-key/verify`.
    RekeyVerify(RekeyTarget),
}

impl OpPath {
    /// Parses a logical path (no `/v1/`, no trailing `/`).
    pub fn parse(path: &str) -> Option<Self> {
        use RekeyTarget::{Barrier, Recovery};
        Some(match path {
            "sys/generate-root/attempt" => OpPath::GenerateRootAttempt,
            "sys/generate-root/update" => OpPath::GenerateRootUpdate,
            "sys/generate-root-token/attempt" => OpPath::GenerateRootTokenAttempt,
            "sys/generate-root-token/update" => OpPath::GenerateRootTokenUpdate,
            "sys/rekey/init" => OpPath::RekeyInit(Barrier),
            "sys/rekey/update" => OpPath::RekeyUpdate(Barrier),
            "sys/rekey/verify" => OpPath::RekeyVerify(Barrier),
            "sys/rekey/backup" => OpPath::RekeyBackup(Barrier),
            "sys/rekey/recovery-key-backup" => OpPath::RekeyBackup(Recovery),
            "sys/rekey-recovery-key/init" => OpPath::RekeyInit(Recovery),
            "sys/rekey-recovery-key/update" => OpPath::RekeyUpdate(Recovery),
            "sys/rekey-recovery-key/verify" => OpPath::RekeyVerify(Recovery),
            _ => return None,
        })
    }
}

/// Serves one quorum-operation request.
pub async fn handle(state: &HttpState, p: &Parsed, op: OpPath) -> Reply {
    match op {
        OpPath::GenerateRootAttempt | OpPath::GenerateRootUpdate => legacy_generate_root(state, p, op).await,
        OpPath::GenerateRootTokenAttempt | OpPath::GenerateRootTokenUpdate => {
            generate_root_token(state, p, op).await
        }
        OpPath::RekeyInit(t) | OpPath::RekeyUpdate(t) | OpPath::RekeyVerify(t) => {
            legacy_rekey(state, p, op, t).await
        }
        OpPath::RekeyBackup(_) => rekey_backup(state, p).await,
    }
}

fn method_not_allowed() -> Reply {
    Reply::json(StatusCode::METHOD_NOT_ALLOWED, b"{\"errors\":[]}".to_vec())
}

/// The ACL operation an HTTP method stands for on these endpoints.
fn operation(method: &Method) -> Option<Operation> {
    match *method {
        Method::GET => Some(Operation::Read),
        Method::PUT | Method::POST => Some(Operation::Update),
        Method::DELETE => Some(Operation::Delete),
        _ => None,
    }
}

/// Renders a plain JSON body that may hold secrets; the intermediate strings are wiped.
fn secret_json(mut v: Value) -> Reply {
    let body = Zeroizing::new(v.to_string());
    wipe_json(&mut v);
    Reply::json(StatusCode::OK, body.as_bytes().to_vec())
}

/// Case-insensitive field lookup (Vault's update request structs have no JSON tags).
fn field_ci<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

fn string_ci(body: &Map<String, Value>, name: &str) -> Option<Zeroizing<String>> {
    match field_ci(body, name) {
        Some(Value::String(s)) => Some(Zeroizing::new(s.clone())),
        Some(Value::Number(n)) => Some(Zeroizing::new(n.to_string())),
        _ => None,
    }
}

/// `key` and `nonce` of an update request (legacy wording of the errors).
fn key_and_nonce(p: &Parsed) -> Result<(coffer_storage::keys::SecretBytes, String), Error> {
    let mut body = p.json_body()?;
    let key = string_ci(&body, "key").filter(|k| !k.is_empty());
    let nonce = string_ci(&body, "nonce").map(|n| n.as_str().to_owned()).unwrap_or_default();
    body.values_mut().for_each(wipe_json);
    let Some(key) = key else { return Err(Error::bad("'key' must be specified in request body as JSON")) };
    Ok((decode_key(&key)?, nonce))
}

/// The nonce a DELETE carries, from the query string or the body.
fn cancel_nonce(p: &Parsed) -> Result<Option<String>, Error> {
    if let Some(n) = p.query_param("nonce") {
        return Ok(Some(n.to_owned()));
    }
    let body = p.json_body()?;
    Ok(string_ci(&body, "nonce").map(|n| n.as_str().to_owned()))
}

fn legacy_root_status(s: &GenerateRootStatus) -> Value {
    json!({
        "nonce": s.nonce,
        "started": s.started,
        "progress": s.progress,
        "required": s.required,
        "complete": false,
        "encoded_token": "",
        "encoded_root_token": "",
        "pgp_fingerprint": "",
        "otp": s.otp.as_ref().map(|o| o.as_str()).unwrap_or(""),
        "otp_length": s.otp_length,
    })
}

fn legacy_root_progress(r: &GenerateRootProgress) -> Value {
    let encoded = r.encoded_token.as_ref().map(|e| e.as_str()).unwrap_or("");
    json!({
        "nonce": r.nonce,
        "started": true,
        "progress": r.progress,
        "required": r.required,
        "complete": r.complete(),
        "encoded_token": encoded,
        "encoded_root_token": encoded,
        "pgp_fingerprint": "",
        "otp": "",
        "otp_length": 0,
    })
}

async fn legacy_generate_root(state: &HttpState, p: &Parsed, op: OpPath) -> Reply {
    let Some(acl_op) = operation(&p.method) else { return method_not_allowed() };
    if op == OpPath::GenerateRootUpdate && acl_op != Operation::Update {
        return method_not_allowed();
    }
    let access = Access {
        operation: acl_op,
        sudo: false,
        anonymous_ok: state.core.config.unauthenticated_generate_root,
    };
    guarded(state, p, access, BodyStyle::Plain, |anonymous| async move {
        let core = &state.core;
        match (op, acl_op) {
            (OpPath::GenerateRootAttempt, Operation::Read) => {
                let status = core.generate_root_status().await?;
                Ok(secret_json(legacy_root_status(&status)).into())
            }
            (OpPath::GenerateRootAttempt, Operation::Update) => {
                let body = p.json_body()?;
                let otp = fields::string(&body, "otp")?.map(Zeroizing::new);
                let pgp = fields::string(&body, "pgp_key")?.is_some_and(|k| !k.is_empty());
                let status = core.generate_root_init(otp, pgp).await?;
                Ok(secret_json(legacy_root_status(&status)).into())
            }
            (OpPath::GenerateRootAttempt, _) => {
                let nonce = cancel_nonce(p)?;
                core.generate_root_cancel(nonce.as_deref(), anonymous).await?;
                Ok(Reply::no_content().into())
            }
            _ => {
                let (key, nonce) = key_and_nonce(p)?;
                let progress = core.generate_root_update(key, &nonce).await?;
                Ok(secret_json(legacy_root_progress(&progress)).into())
            }
        }
    })
    .await
}

/// OpenBao's authenticated `sys/generate-root-token/*` (what `bao operator generate-root` uses).
async fn generate_root_token(state: &HttpState, p: &Parsed, op: OpPath) -> Reply {
    let rid = &p.request_id;
    let acl_op = match operation(&p.method) {
        Some(o) if op == OpPath::GenerateRootTokenAttempt || o == Operation::Update => o,
        _ => return Reply::error(Error::UnsupportedOperation, rid),
    };
    let access = Access { operation: acl_op, sudo: false, anonymous_ok: false };
    guarded(state, p, access, BodyStyle::Envelope, |_| async move {
        let resp = generate_root_token_action(state, p, op, acl_op).await?;
        Ok(Reply::from_response(resp, rid).into())
    })
    .await
}

async fn generate_root_token_action(
    state: &HttpState,
    p: &Parsed,
    op: OpPath,
    acl_op: Operation,
) -> Result<Response, Error> {
    let status_data = |s: &GenerateRootStatus| {
        let mut d = Map::new();
        d.insert("started".into(), json!(s.started));
        d.insert("complete".into(), json!(false));
        d.insert("progress".into(), json!(s.progress));
        d.insert("required".into(), json!(s.required));
        d.insert("otp".into(), json!(s.otp.as_ref().map(|o| o.as_str()).unwrap_or("")));
        d.insert("otp_length".into(), json!(s.otp_length));
        if s.started {
            d.insert("nonce".into(), json!(s.nonce));
            d.insert("pgp_fingerprint".into(), json!(""));
        }
        d
    };
    match (op, acl_op) {
        (OpPath::GenerateRootTokenAttempt, Operation::Read) => {
            Ok(Response::data(status_data(&state.core.generate_root_status().await?)))
        }
        (OpPath::GenerateRootTokenAttempt, Operation::Update) => {
            let body = p.json_body()?;
            let otp = fields::string(&body, "otp")?.map(Zeroizing::new);
            let pgp = fields::string(&body, "pgp_key")?.is_some_and(|k| !k.is_empty());
            Ok(Response::data(status_data(&state.core.generate_root_init(otp, pgp).await?)))
        }
        (OpPath::GenerateRootTokenAttempt, _) => {
            let nonce = cancel_nonce(p)?;
            state.core.generate_root_cancel(nonce.as_deref(), false).await?;
            Ok(Response::empty())
        }
        (_, Operation::Update) => {
            let body = p.json_body()?;
            let nonce = fields::string(&body, "nonce")?.unwrap_or_default();
            let key = fields::string(&body, "key")?.map(Zeroizing::new).unwrap_or_default();
            if nonce.is_empty() {
                return Err(Error::bad("nonce is required"));
            }
            if key.is_empty() {
                return Err(Error::bad("key is required"));
            }
            let r = state.core.generate_root_update(decode_key(&key)?, &nonce).await?;
            let mut d = Map::new();
            d.insert("started".into(), json!(true));
            d.insert("complete".into(), json!(r.complete()));
            d.insert("progress".into(), json!(r.progress));
            d.insert("required".into(), json!(r.required));
            d.insert("nonce".into(), json!(r.nonce));
            d.insert(
                "encoded_token".into(),
                json!(r.encoded_token.as_ref().map(|e| e.as_str()).unwrap_or("")),
            );
            d.insert("pgp_fingerprint".into(), json!(""));
            Ok(Response::data(d))
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

fn rekey_status_json(s: &RekeyStatus) -> Value {
    let mut v = json!({
        "nonce": s.nonce,
        "started": s.started,
        "t": s.t,
        "n": s.n,
        "progress": s.progress,
        "required": s.required,
        "pgp_fingerprints": null,
        "backup": false,
        "verification_required": s.verification_required,
    });
    if let (Some(vn), Some(o)) = (&s.verification_nonce, v.as_object_mut()) {
        o.insert("verification_nonce".into(), json!(vn));
    }
    v
}

fn verify_status_json(s: &RekeyVerifyStatus) -> Value {
    json!({ "nonce": s.nonce, "started": s.started, "t": s.t, "n": s.n, "progress": s.progress })
}

fn rekey_params(body: &Map<String, Value>) -> Result<RekeyParams, Error> {
    Ok(RekeyParams {
        secret_shares: fields::int_or(body, "secret_shares", 0)?,
        secret_threshold: fields::int_or(body, "secret_threshold", 0)?,
        require_verification: fields::boolean_or(body, "require_verification", false)?,
        pgp_keys: fields::comma_strings(body, "pgp_keys")?.map(|k| k.len()).unwrap_or(0),
        backup: fields::boolean_or(body, "backup", false)?,
    })
}

async fn legacy_rekey(state: &HttpState, p: &Parsed, op: OpPath, target: RekeyTarget) -> Reply {
    let Some(acl_op) = operation(&p.method) else { return method_not_allowed() };
    if matches!(op, OpPath::RekeyUpdate(_)) && acl_op != Operation::Update {
        return method_not_allowed();
    }
    let access =
        Access { operation: acl_op, sudo: false, anonymous_ok: state.core.config.unauthenticated_rekey };
    guarded(state, p, access, BodyStyle::Plain, |anonymous| async move {
        let core = &state.core;
        match (op, acl_op) {
            (OpPath::RekeyInit(_), Operation::Read) => {
                Ok(secret_json(rekey_status_json(&core.rekey_status(target).await?)).into())
            }
            (OpPath::RekeyInit(_), Operation::Update) => {
                let params = rekey_params(&p.json_body()?)?;
                Ok(secret_json(rekey_status_json(&core.rekey_init(target, params).await?)).into())
            }
            (OpPath::RekeyInit(_), _) => {
                let nonce = cancel_nonce(p)?;
                core.rekey_cancel(target, nonce.as_deref(), anonymous).await?;
                Ok(Reply::no_content().into())
            }
            (OpPath::RekeyVerify(_), Operation::Read) => {
                Ok(secret_json(verify_status_json(&core.rekey_verify_status(target).await?)).into())
            }
            (OpPath::RekeyVerify(_), Operation::Update) => {
                let (key, nonce) = key_and_nonce(p)?;
                match core.rekey_verify_update(target, key, &nonce).await? {
                    RekeyVerifyUpdate::Progress(s) => Ok(secret_json(verify_status_json(&s)).into()),
                    RekeyVerifyUpdate::Complete { nonce } => {
                        Ok(secret_json(json!({ "nonce": nonce, "complete": true })).into())
                    }
                }
            }
            (OpPath::RekeyVerify(_), _) => {
                let nonce = cancel_nonce(p)?;
                let s = core.rekey_verify_restart(target, nonce.as_deref(), anonymous).await?;
                Ok(secret_json(verify_status_json(&s)).into())
            }
            _ => {
                let (key, nonce) = key_and_nonce(p)?;
                match core.rekey_update(target, key, &nonce).await? {
                    RekeyUpdate::Progress(s) => Ok(secret_json(rekey_status_json(&s)).into()),
                    RekeyUpdate::Complete(r) => {
                        let (hex, b64) = render_shares(&r.keys);
                        let strs =
                            |v: &[Zeroizing<String>]| v.iter().map(|s| json!(s.as_str())).collect::<Vec<_>>();
                        let mut v = json!({
                            "nonce": r.nonce,
                            "complete": true,
                            "keys": strs(&hex),
                            "keys_base64": strs(&b64),
                            "pgp_fingerprints": null,
                            "backup": false,
                            "verification_required": r.verification_required,
                        });
                        if let (Some(vn), Some(o)) = (&r.verification_nonce, v.as_object_mut()) {
                            o.insert("verification_nonce".into(), json!(vn));
                        }
                        let reply = secret_json(v);
                        // Without verification the new shares are in force already.
                        Ok(if r.verification_required { reply.into() } else { Outcome::MustDeliver(reply) })
                    }
                }
            }
        }
    })
    .await
}

/// `sys/rekey/backup`: PGP-encrypted backups are not supported, so there is never one to read.
async fn rekey_backup(state: &HttpState, p: &Parsed) -> Reply {
    let acl_op = match operation(&p.method) {
        Some(o @ (Operation::Read | Operation::Delete)) => o,
        _ => return method_not_allowed(),
    };
    let access = Access { operation: acl_op, sudo: true, anonymous_ok: false };
    guarded(state, p, access, BodyStyle::Plain, |_| async move {
        match acl_op {
            Operation::Read => Err(Error::bad("no backed-up keys found")),
            _ => Ok(Reply::no_content().into()),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::Bytes;
    use http::HeaderMap;
    use time::OffsetDateTime;

    use super::*;
    use crate::core::generate_root::decode_token;
    use crate::core::quorum::fixtures::{self, Node};
    use crate::core::token::store::NewToken;
    use crate::core::CoreConfig;

    struct Client {
        state: HttpState,
    }

    impl Client {
        fn new(node: &Node) -> Self {
            Self { state: HttpState::new(node.core.clone(), 1 << 20) }
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
            let p = Parsed {
                method: Method::from_bytes(method.as_bytes()).unwrap(),
                path: path.to_owned(),
                query,
                headers,
                body: body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
                remote: "127.0.0.1:1".parse().unwrap(),
                request_id: "rid".into(),
                _budget: None,
            };
            let reply = crate::http::sys::special(&self.state, &p).await.expect("a quorum-operation path");
            let v = if reply.body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&reply.body).unwrap()
            };
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
        let (t, _) = active.tokens.create(spec, OffsetDateTime::now_utc()).await.unwrap();
        t.expose().to_owned()
    }

    #[test]
    fn parses_paths() {
        assert_eq!(OpPath::parse("sys/generate-root/attempt"), Some(OpPath::GenerateRootAttempt));
        assert_eq!(
            OpPath::parse("sys/rekey-recovery-key/verify"),
            Some(OpPath::RekeyVerify(RekeyTarget::Recovery))
        );
        assert_eq!(
            OpPath::parse("sys/rekey/recovery-key-backup"),
            Some(OpPath::RekeyBackup(RekeyTarget::Recovery))
        );
        assert_eq!(OpPath::parse("sys/rekey"), None);
        assert_eq!(OpPath::parse("sys/generate-root"), None);
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
        let (st, body) = c
            .call("PUT", "sys/rekey/init", "", Some(json!({"secret_shares": 3, "secret_threshold": 2})))
            .await;
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
        let (st, body) =
            c.call("PUT", "sys/generate-root/update", t, Some(json!({"key": node.shares[0]}))).await;
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
                .call(
                    "PUT",
                    "sys/generate-root/update",
                    t,
                    Some(json!({"Key": node.shares[i], "Nonce": nonce})),
                )
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
        assert_eq!(
            (st, body),
            (405, json!({"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]}))
        );
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
            set(&[
                "complete",
                "encoded_token",
                "nonce",
                "pgp_fingerprint",
                "progress",
                "required",
                "started"
            ])
        );
        let token = decode_token(body["data"]["encoded_token"].as_str().unwrap(), d["otp"].as_str().unwrap())
            .unwrap();
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
        let (st, body) = c
            .call("PUT", "sys/rekey/init", t, Some(json!({"secret_shares": 2, "secret_threshold": 3})))
            .await;
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
            let (st, body) = c
                .call("PUT", "sys/rekey/update", t, Some(json!({"key": node.shares[i], "nonce": nonce})))
                .await;
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
        let (st, body) = c
            .call("PUT", "sys/rekey/verify", t, Some(json!({"key": done["keys"][2], "nonce": vnonce})))
            .await;
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
        c.call(
            "PUT",
            "sys/rekey-recovery-key/update",
            t,
            Some(json!({"key": node.shares[1], "nonce": nonce})),
        )
        .await;
        let (st, done) = c
            .call(
                "PUT",
                "sys/rekey-recovery-key/update",
                t,
                Some(json!({"key": node.shares[2], "nonce": nonce})),
            )
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
        let token =
            decode_token(body["encoded_token"].as_str().unwrap(), init["otp"].as_str().unwrap()).unwrap();
        assert!(token.starts_with("hvs."));
    }
}
