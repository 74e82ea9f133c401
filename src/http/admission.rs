//! Admission and audit for the endpoints served outside the router that take a token (seal,
//! step-down, root generation, rekeying).
//!
//! [`guarded`] (and `sys/seal` through its parts) goes through
//! [`Core::admit`](crate::core::Core::admit), which checks the token exactly as routed requests
//! are checked (validity, expiry, `bound_cidrs` against the peer address, `num_uses`), then the
//! ACL, and writes the audit request record; the outcome is audited before it leaves (fail
//! closed: no record, no action).

use std::future::Future;

use serde_json::{json, Map, Value};

use crate::core::authn::{wipe_json, SpecialRequest};
use crate::core::error::Error;
use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::http::state::HttpState;
use crate::policy::Operation;

/// Who may call an endpoint: a token whose ACL grants `operation` on the request path (with
/// `sudo` when set), or anyone when `anonymous_ok`.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    pub operation: Operation,
    pub sudo: bool,
    pub anonymous_ok: bool,
}

/// How an endpoint's reply body reads, for its audit record.
#[derive(Clone, Copy, Debug)]
pub enum BodyStyle {
    /// The Vault envelope (`data`, `auth`, `wrap_info`, `warnings`).
    Envelope,
    /// A plain JSON object (legacy endpoints); audited as the response's `data`, so every leaf
    /// of it is hashed.
    Plain,
}

/// What an endpoint's action produced.
pub enum Outcome {
    Reply(Reply),
    /// A reply carrying the only copy of unseal key shares already in force (a rekey completed
    /// without verification). It reaches the client even if its response record cannot be
    /// written: withholding it would leave nobody able to unseal. Its request record was
    /// written before the rekey acted.
    MustDeliver(Reply),
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Self {
        Outcome::Reply(r)
    }
}

/// The request as [`Core::admit`](crate::core::Core::admit) takes it: the path, the caller's
/// token and address, and the body (writes) or query (reads, deletes) for the audit record.
pub fn admission_request(request: &HttpRequest, access: Access) -> SpecialRequest {
    let data = match access.operation {
        Operation::Create | Operation::Patch | Operation::Update => request.json_body().ok(),
        Operation::Delete | Operation::List | Operation::Read => {
            let mut m = Map::new();
            for (k, v) in &request.query {
                m.entry(k.clone()).or_insert_with(|| Value::String(v.clone()));
            }
            Some(m)
        }
    };
    SpecialRequest {
        id: request.request_id.clone(),
        operation: access.operation,
        path: request.path.trim_end_matches('/').to_owned(),
        data,
        token: request.token(),
        remote_addr: Some(request.remote.ip()),
        sudo: access.sudo,
        anonymous_ok: access.anonymous_ok,
    }
}

/// Serves an endpoint: admits the request (the token checks every endpoint shares, the ACL,
/// the audit request record; a refusal is audited and answered here), runs `action` (given
/// `true` for an anonymous caller), and audits its outcome before it leaves. When the response
/// record cannot be written the client gets that error instead.
pub async fn guarded<F, Fut>(
    state: &HttpState,
    request: &HttpRequest,
    access: Access,
    style: BodyStyle,
    action: F,
) -> Reply
where
    F: FnOnce(bool) -> Fut,
    Fut: Future<Output = Result<Outcome, Error>>,
{
    let admitted = match state.core.admit(admission_request(request, access)).await {
        Ok(a) => a,
        Err(e) => return request.error_reply(e),
    };
    let result = action(admitted.is_anonymous()).await;
    let concluded = match &result {
        Ok(Outcome::Reply(reply) | Outcome::MustDeliver(reply)) => {
            let mut audited = audit_view(reply, style);
            let written = state.core.conclude(admitted, Ok(audited.as_ref())).await;
            if let Some(v) = audited.as_mut() {
                wipe_json(v);
            }
            written
        }
        Err(e) => state.core.conclude(admitted, Err(e)).await,
    };
    match (concluded, result) {
        (Ok(()), Ok(Outcome::Reply(reply) | Outcome::MustDeliver(reply))) => reply,
        (Ok(()), Err(e)) => request.error_reply(e),
        (Err(e), Ok(Outcome::MustDeliver(reply))) => {
            tracing::error!(request_id = %request.request_id, error = %e, "rekey response not audited; new shares sent anyway");
            reply
        }
        (Err(e), _) => request.error_reply(e),
    }
}

/// A reply as its response record shows it (the devices hash every leaf of `data`).
fn audit_view(reply: &Reply, style: BodyStyle) -> Option<Value> {
    if reply.body.is_empty() {
        return None;
    }
    let v: Value = serde_json::from_slice(&reply.body).ok()?;
    Some(match style {
        BodyStyle::Envelope => v,
        BodyStyle::Plain => json!({ "data": v }),
    })
}
