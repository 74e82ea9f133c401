//! Rekeying: Vault's `sys/rekey/{init,update,verify}` for the unseal shares and
//! `sys/rekey-recovery-key/{init,update,verify}` for the recovery shares (plain JSON), and
//! `sys/rekey/backup` / `sys/rekey/recovery-key-backup`, which never hold a backup.

use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::core::error::Error;
use crate::core::fields;
use crate::core::rekey::{
    RekeyParams, RekeyStatus, RekeyTarget, RekeyUpdate, RekeyVerifyStatus, RekeyVerifyUpdate,
};
use crate::core::seal::render_shares;
use crate::http::admission::{guarded, Access, BodyStyle, Outcome};
use crate::http::error::method_not_allowed;
use crate::http::quorum::wire::{acl_operation, cancel_nonce, key_and_nonce, secret_json};
use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::http::state::HttpState;
use crate::policy::Operation;

/// Which endpoint of a rekey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `init`: status (GET), start (PUT/POST), cancel (DELETE).
    Init,
    /// `update`: give one current key share (PUT/POST).
    Update,
    /// `verify`: status (GET), give one new share (PUT/POST), restart (DELETE).
    Verify,
}

fn status_json(s: &RekeyStatus) -> Value {
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

fn params(body: &Map<String, Value>) -> Result<RekeyParams, Error> {
    Ok(RekeyParams {
        secret_shares: fields::int_or(body, "secret_shares", 0)?,
        secret_threshold: fields::int_or(body, "secret_threshold", 0)?,
        require_verification: fields::boolean_or(body, "require_verification", false)?,
        pgp_keys: fields::comma_strings(body, "pgp_keys")?.map(|k| k.len()).unwrap_or(0),
        backup: fields::boolean_or(body, "backup", false)?,
    })
}

/// `sys/rekey/*` and `sys/rekey-recovery-key/*` (`init`, `update`, `verify`).
pub async fn serve_legacy(
    state: &HttpState,
    request: &HttpRequest,
    step: Step,
    target: RekeyTarget,
) -> Reply {
    let Some(acl_op) = acl_operation(&request.method) else { return method_not_allowed() };
    if step == Step::Update && acl_op != Operation::Update {
        return method_not_allowed();
    }
    let access =
        Access { operation: acl_op, sudo: false, anonymous_ok: state.core.config.unauthenticated_rekey };
    guarded(state, request, access, BodyStyle::Plain, |anonymous| async move {
        let core = &state.core;
        match (step, acl_op) {
            (Step::Init, Operation::Read) => {
                Ok(secret_json(status_json(&core.rekey_status(target).await?)).into())
            }
            (Step::Init, Operation::Update) => {
                let params = params(&request.json_body()?)?;
                Ok(secret_json(status_json(&core.rekey_init(target, params).await?)).into())
            }
            (Step::Init, _) => {
                let nonce = cancel_nonce(request)?;
                core.rekey_cancel(target, nonce.as_deref(), anonymous).await?;
                Ok(Reply::no_content().into())
            }
            (Step::Verify, Operation::Read) => {
                Ok(secret_json(verify_status_json(&core.rekey_verify_status(target).await?)).into())
            }
            (Step::Verify, Operation::Update) => {
                let (key, nonce) = key_and_nonce(request)?;
                match core.rekey_verify_update(target, key, &nonce).await? {
                    RekeyVerifyUpdate::Progress(s) => Ok(secret_json(verify_status_json(&s)).into()),
                    RekeyVerifyUpdate::Complete { nonce } => {
                        Ok(secret_json(json!({ "nonce": nonce, "complete": true })).into())
                    }
                }
            }
            (Step::Verify, _) => {
                let nonce = cancel_nonce(request)?;
                let s = core.rekey_verify_restart(target, nonce.as_deref(), anonymous).await?;
                Ok(secret_json(verify_status_json(&s)).into())
            }
            (Step::Update, _) => {
                let (key, nonce) = key_and_nonce(request)?;
                match core.rekey_update(target, key, &nonce).await? {
                    RekeyUpdate::Progress(s) => Ok(secret_json(status_json(&s)).into()),
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
pub async fn serve_backup(state: &HttpState, request: &HttpRequest) -> Reply {
    let acl_op = match acl_operation(&request.method) {
        Some(o @ (Operation::Read | Operation::Delete)) => o,
        _ => return method_not_allowed(),
    };
    let access = Access { operation: acl_op, sudo: true, anonymous_ok: false };
    guarded(state, request, access, BodyStyle::Plain, |_| async move {
        match acl_op {
            Operation::Read => Err(Error::bad("no backed-up keys found")),
            _ => Ok(Reply::no_content().into()),
        }
    })
    .await
}
