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
//! With the setting on, no token is needed; an anonymous caller must then give the operation's
//! `nonce` (query parameter or body) to cancel it (or restart a verification), so a blind
//! `DELETE` cannot end somebody else's ceremony.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::core::error::Error;
use crate::core::fields;
use crate::core::generate_root::{GenerateRootProgress, GenerateRootStatus};
use crate::core::quorum::decode_key;
use crate::core::rekey::{
    RekeyParams, RekeyStatus, RekeyTarget, RekeyUpdate, RekeyVerifyStatus, RekeyVerifyUpdate,
};
use crate::core::request::{Operation, Response};
use crate::core::seal::render_shares;
use crate::http::handler::{HttpState, Parsed, Reply};

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

/// Who is calling, as far as these endpoints care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// No valid token (only possible where unauthenticated access is configured).
    Anonymous,
    /// A token whose ACL allows the operation on the path.
    Authorized,
}

/// Serves one quorum-operation request.
pub async fn handle(state: &HttpState, p: &Parsed, op: OpPath) -> Reply {
    let rid = &p.request_id;
    let result = match op {
        OpPath::GenerateRootAttempt | OpPath::GenerateRootUpdate => legacy_generate_root(state, p, op).await,
        OpPath::GenerateRootTokenAttempt | OpPath::GenerateRootTokenUpdate => {
            return match generate_root_token(state, p, op).await {
                Ok(resp) => Reply::from_response(resp, rid),
                Err(e) => Reply::error(e, rid),
            };
        }
        OpPath::RekeyInit(t) | OpPath::RekeyUpdate(t) | OpPath::RekeyVerify(t) => {
            legacy_rekey(state, p, op, t).await
        }
        OpPath::RekeyBackup(_) => rekey_backup(state, p).await,
    };
    match result {
        Ok(reply) => reply,
        Err(e) => Reply::error(e, rid),
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

/// Checks the caller's token against the ACL on `p.path`. With `unauthenticated` a missing or
/// insufficient token is not an error (the caller is anonymous), as Vault ignores tokens there.
async fn authorize(
    state: &HttpState,
    p: &Parsed,
    op: Operation,
    sudo: bool,
    unauthenticated: bool,
) -> Result<Caller, Error> {
    let token = p.token();
    let path = p.path.trim_end_matches('/');
    let checked = async {
        let (active, entry) = state.core.authenticate(token.as_ref()).await?;
        state.core.check_acl(&active, &entry, op, path, sudo).await
    }
    .await;
    match checked {
        Ok(()) => Ok(Caller::Authorized),
        Err(_) if unauthenticated => Ok(Caller::Anonymous),
        Err(e) => Err(e),
    }
}

/// Renders a plain JSON body that may hold secrets; the intermediate strings are wiped.
fn secret_json(mut v: Value) -> Reply {
    let body = Zeroizing::new(v.to_string());
    wipe(&mut v);
    Reply::json(StatusCode::OK, body.as_bytes().to_vec())
}

fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(m) => m.values_mut().for_each(wipe),
        _ => {}
    }
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
    let body = p.json_body()?;
    let key = string_ci(&body, "key").filter(|k| !k.is_empty());
    let Some(key) = key else { return Err(Error::bad("'key' must be specified in request body as JSON")) };
    let key = decode_key(&key)?;
    let nonce = string_ci(&body, "nonce").map(|n| n.as_str().to_owned()).unwrap_or_default();
    Ok((key, nonce))
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

async fn legacy_generate_root(state: &HttpState, p: &Parsed, op: OpPath) -> Result<Reply, Error> {
    let Some(acl_op) = operation(&p.method) else { return Ok(method_not_allowed()) };
    let unauth = state.core.config.unauthenticated_generate_root;
    match (op, acl_op) {
        (OpPath::GenerateRootAttempt, Operation::Read) => {
            authorize(state, p, acl_op, false, unauth).await?;
            let status = state.core.generate_root_status().await?;
            Ok(secret_json(legacy_root_status(&status)))
        }
        (OpPath::GenerateRootAttempt, Operation::Update) => {
            authorize(state, p, acl_op, false, unauth).await?;
            let body = p.json_body()?;
            let otp = fields::string(&body, "otp")?.map(Zeroizing::new);
            let pgp = fields::string(&body, "pgp_key")?.is_some_and(|k| !k.is_empty());
            let status = state.core.generate_root_init(otp, pgp).await?;
            Ok(secret_json(legacy_root_status(&status)))
        }
        (OpPath::GenerateRootAttempt, _) => {
            let caller = authorize(state, p, acl_op, false, unauth).await?;
            let nonce = cancel_nonce(p)?;
            state.core.generate_root_cancel(nonce.as_deref(), caller == Caller::Anonymous).await?;
            Ok(Reply::no_content())
        }
        (_, Operation::Update) => {
            authorize(state, p, acl_op, false, unauth).await?;
            let (key, nonce) = key_and_nonce(p)?;
            let progress = state.core.generate_root_update(key, &nonce).await?;
            Ok(secret_json(legacy_root_progress(&progress)))
        }
        _ => Ok(method_not_allowed()),
    }
}

/// OpenBao's authenticated `sys/generate-root-token/*` (what `bao operator generate-root` uses).
async fn generate_root_token(state: &HttpState, p: &Parsed, op: OpPath) -> Result<Response, Error> {
    let acl_op = operation(&p.method).ok_or(Error::UnsupportedOperation)?;
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
            authorize(state, p, acl_op, false, false).await?;
            Ok(Response::data(status_data(&state.core.generate_root_status().await?)))
        }
        (OpPath::GenerateRootTokenAttempt, Operation::Update) => {
            authorize(state, p, acl_op, false, false).await?;
            let body = p.json_body()?;
            let otp = fields::string(&body, "otp")?.map(Zeroizing::new);
            let pgp = fields::string(&body, "pgp_key")?.is_some_and(|k| !k.is_empty());
            Ok(Response::data(status_data(&state.core.generate_root_init(otp, pgp).await?)))
        }
        (OpPath::GenerateRootTokenAttempt, _) => {
            authorize(state, p, acl_op, false, false).await?;
            let nonce = cancel_nonce(p)?;
            state.core.generate_root_cancel(nonce.as_deref(), false).await?;
            Ok(Response::empty())
        }
        (_, Operation::Update) => {
            authorize(state, p, acl_op, false, false).await?;
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

async fn legacy_rekey(
    state: &HttpState,
    p: &Parsed,
    op: OpPath,
    target: RekeyTarget,
) -> Result<Reply, Error> {
    let Some(acl_op) = operation(&p.method) else { return Ok(method_not_allowed()) };
    let unauth = state.core.config.unauthenticated_rekey;
    let core = &state.core;
    match (op, acl_op) {
        (OpPath::RekeyInit(_), Operation::Read) => {
            authorize(state, p, acl_op, false, unauth).await?;
            Ok(secret_json(rekey_status_json(&core.rekey_status(target).await?)))
        }
        (OpPath::RekeyInit(_), Operation::Update) => {
            authorize(state, p, acl_op, false, unauth).await?;
            let params = rekey_params(&p.json_body()?)?;
            Ok(secret_json(rekey_status_json(&core.rekey_init(target, params).await?)))
        }
        (OpPath::RekeyInit(_), _) => {
            let caller = authorize(state, p, acl_op, false, unauth).await?;
            let nonce = cancel_nonce(p)?;
            core.rekey_cancel(target, nonce.as_deref(), caller == Caller::Anonymous).await?;
            Ok(Reply::no_content())
        }
        (OpPath::RekeyUpdate(_), Operation::Update) => {
            authorize(state, p, acl_op, false, unauth).await?;
            let (key, nonce) = key_and_nonce(p)?;
            match core.rekey_update(target, key, &nonce).await? {
                RekeyUpdate::Progress(s) => Ok(secret_json(rekey_status_json(&s))),
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
                    Ok(secret_json(v))
                }
            }
        }
        (OpPath::RekeyVerify(_), Operation::Read) => {
            authorize(state, p, acl_op, false, unauth).await?;
            Ok(secret_json(verify_status_json(&core.rekey_verify_status(target).await?)))
        }
        (OpPath::RekeyVerify(_), Operation::Update) => {
            authorize(state, p, acl_op, false, unauth).await?;
            let (key, nonce) = key_and_nonce(p)?;
            match core.rekey_verify_update(target, key, &nonce).await? {
                RekeyVerifyUpdate::Progress(s) => Ok(secret_json(verify_status_json(&s))),
                RekeyVerifyUpdate::Complete { nonce } => {
                    Ok(secret_json(json!({ "nonce": nonce, "complete": true })))
                }
            }
        }
        (OpPath::RekeyVerify(_), _) => {
            let caller = authorize(state, p, acl_op, false, unauth).await?;
            let nonce = cancel_nonce(p)?;
            let s = core.rekey_verify_restart(target, nonce.as_deref(), caller == Caller::Anonymous).await?;
            Ok(secret_json(verify_status_json(&s)))
        }
        _ => Ok(method_not_allowed()),
    }
}

/// `sys/rekey/backup`: PGP-encrypted backups are not supported, so there is never one to read.
async fn rekey_backup(state: &HttpState, p: &Parsed) -> Result<Reply, Error> {
    let Some(acl_op) = operation(&p.method) else { return Ok(method_not_allowed()) };
    match acl_op {
        Operation::Read => {
            authorize(state, p, acl_op, true, false).await?;
            Err(Error::bad("no backed-up keys found"))
        }
        Operation::Delete => {
            authorize(state, p, acl_op, true, false).await?;
            Ok(Reply::no_content())
        }
        _ => Ok(method_not_allowed()),
    }
}
