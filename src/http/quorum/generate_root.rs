//! Root token generation: Vault's legacy `sys/generate-root/{attempt,update}` (plain JSON) and
//! OpenBao's authenticated `sys/generate-root-token/{attempt,update}` (the envelope, what
//! `bao operator generate-root` uses). Both drive the same attempt in the core.

use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::core::error::Error;
use crate::core::fields;
use crate::core::generate_root::{GenerateRootProgress, GenerateRootStatus};
use crate::core::quorum::decode_key;
use crate::core::request::Response;
use crate::http::admission::{guarded, Access, BodyStyle};
use crate::http::error::method_not_allowed;
use crate::http::quorum::wire::{acl_operation, cancel_nonce, key_and_nonce, secret_json};
use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::http::state::HttpState;
use crate::policy::Operation;

/// Which endpoint of a generate-root pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `attempt`: status (GET), start (PUT/POST), cancel (DELETE).
    Attempt,
    /// `update`: give one key share (PUT/POST).
    Update,
}

fn legacy_status(s: &GenerateRootStatus) -> Value {
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

fn legacy_progress(r: &GenerateRootProgress) -> Value {
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

/// The `otp` and whether a `pgp_key` was given, from a start request.
fn start_params(request: &HttpRequest) -> Result<(Option<Zeroizing<String>>, bool), Error> {
    let body = request.json_body()?;
    let otp = fields::string(&body, "otp")?.map(Zeroizing::new);
    let pgp = fields::string(&body, "pgp_key")?.is_some_and(|k| !k.is_empty());
    Ok((otp, pgp))
}

/// `sys/generate-root/{attempt,update}`.
pub async fn serve_legacy(state: &HttpState, request: &HttpRequest, step: Step) -> Reply {
    let Some(acl_op) = acl_operation(&request.method) else { return method_not_allowed() };
    if step == Step::Update && acl_op != Operation::Update {
        return method_not_allowed();
    }
    let access = Access {
        operation: acl_op,
        sudo: false,
        anonymous_ok: state.core.config.unauthenticated_generate_root,
    };
    guarded(state, request, access, BodyStyle::Plain, |anonymous| async move {
        let core = &state.core;
        match (step, acl_op) {
            (Step::Attempt, Operation::Read) => {
                let status = core.generate_root_status().await?;
                Ok(secret_json(legacy_status(&status)).into())
            }
            (Step::Attempt, Operation::Update) => {
                let (otp, pgp) = start_params(request)?;
                let status = core.generate_root_init(otp, pgp).await?;
                Ok(secret_json(legacy_status(&status)).into())
            }
            (Step::Attempt, _) => {
                let nonce = cancel_nonce(request)?;
                core.generate_root_cancel(nonce.as_deref(), anonymous).await?;
                Ok(Reply::no_content().into())
            }
            (Step::Update, _) => {
                let (key, nonce) = key_and_nonce(request)?;
                let progress = core.generate_root_update(key, &nonce).await?;
                Ok(secret_json(legacy_progress(&progress)).into())
            }
        }
    })
    .await
}

/// OpenBao's authenticated `sys/generate-root-token/{attempt,update}`.
pub async fn serve_authenticated(state: &HttpState, request: &HttpRequest, step: Step) -> Reply {
    let acl_op = match acl_operation(&request.method) {
        Some(o) if step == Step::Attempt || o == Operation::Update => o,
        _ => return request.error_reply(Error::UnsupportedOperation),
    };
    let access = Access { operation: acl_op, sudo: false, anonymous_ok: false };
    guarded(state, request, access, BodyStyle::Envelope, |_| async move {
        let resp = authenticated_action(state, request, step, acl_op).await?;
        Ok(Reply::from_response(resp, &request.request_id).into())
    })
    .await
}

fn status_data(s: &GenerateRootStatus) -> Map<String, Value> {
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
}

fn progress_data(r: &GenerateRootProgress) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("started".into(), json!(true));
    d.insert("complete".into(), json!(r.complete()));
    d.insert("progress".into(), json!(r.progress));
    d.insert("required".into(), json!(r.required));
    d.insert("nonce".into(), json!(r.nonce));
    d.insert("encoded_token".into(), json!(r.encoded_token.as_ref().map(|e| e.as_str()).unwrap_or("")));
    d.insert("pgp_fingerprint".into(), json!(""));
    d
}

async fn authenticated_action(
    state: &HttpState,
    request: &HttpRequest,
    step: Step,
    acl_op: Operation,
) -> Result<Response, Error> {
    let core = &state.core;
    match (step, acl_op) {
        (Step::Attempt, Operation::Read) => {
            Ok(Response::data(status_data(&core.generate_root_status().await?)))
        }
        (Step::Attempt, Operation::Update) => {
            let (otp, pgp) = start_params(request)?;
            Ok(Response::data(status_data(&core.generate_root_init(otp, pgp).await?)))
        }
        (Step::Attempt, _) => {
            let nonce = cancel_nonce(request)?;
            core.generate_root_cancel(nonce.as_deref(), false).await?;
            Ok(Response::empty())
        }
        (Step::Update, Operation::Update) => {
            let body = request.json_body()?;
            let nonce = fields::string(&body, "nonce")?.unwrap_or_default();
            let key = fields::string(&body, "key")?.map(Zeroizing::new).unwrap_or_default();
            if nonce.is_empty() {
                return Err(Error::bad("nonce is required"));
            }
            if key.is_empty() {
                return Err(Error::bad("key is required"));
            }
            let progress = core.generate_root_update(decode_key(&key)?, &nonce).await?;
            Ok(Response::data(progress_data(&progress)))
        }
        (Step::Update, _) => Err(Error::UnsupportedOperation),
    }
}
