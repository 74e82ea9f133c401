//! Special `sys/` handlers that bypass the router because they must work while sealed or
//! uninitialised: init, seal-status, unseal, seal, leader, health, step-down. Their bodies are
//! plain JSON objects, not the envelope. Root generation and rekeying live in
//! [`sys_ops`](crate::http::sys_ops), dispatched from here.
//!
//! Every one of them that takes a token (seal, step-down, and all of `sys_ops`) goes through
//! `guarded` (seal through its parts): [`Core::admit`](crate::core::Core::admit) checks the
//! token exactly as routed requests are checked (validity, expiry, `bound_cidrs` against the
//! peer address, `num_uses`), then the ACL, and writes the audit request record; the outcome
//! is audited before it leaves (fail closed: no record, no action).

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::core::authn::{wipe_json, SpecialRequest};
use crate::core::error::Error;
use crate::core::fields;
use crate::core::seal::{render_shares, InitParams};
use crate::core::VERSION;
use crate::http::handler::{HttpState, Parsed, Reply};
use crate::policy::Operation;
use crate::util::timefmt::{rfc3339_nano, GO_ZERO_TIME};

fn json_reply(status: StatusCode, v: &Value) -> Reply {
    Reply::json(status, v.to_string().into_bytes())
}

fn method_not_allowed() -> Reply {
    Reply::json(StatusCode::METHOD_NOT_ALLOWED, b"{\"errors\":[]}".to_vec())
}

/// Handles the path if it is one of the special ones; `None` lets the router take it.
pub async fn special(state: &HttpState, p: &Parsed) -> Option<Reply> {
    let path = p.path.trim_end_matches('/');
    let rid = &p.request_id;
    let r = match path {
        "sys/init" => init(state, p).await,
        "sys/seal-status" => match p.method {
            Method::GET => match state.core.seal_status().await {
                Ok(s) => json_reply(StatusCode::OK, &json!(s)),
                Err(e) => Reply::error(e, rid),
            },
            _ => method_not_allowed(),
        },
        "sys/unseal" => unseal(state, p).await,
        "sys/seal" => seal(state, p).await,
        "sys/leader" => match p.method {
            Method::GET => leader(state),
            _ => method_not_allowed(),
        },
        "sys/health" => health(state, p).await,
        "sys/step-down" => step_down(state, p).await,
        other => match crate::http::sys_ops::OpPath::parse(other) {
            Some(op) => crate::http::sys_ops::handle(state, p, op).await,
            None => return None,
        },
    };
    Some(r)
}

async fn init(state: &HttpState, p: &Parsed) -> Reply {
    let rid = &p.request_id;
    match p.method {
        Method::GET => match state.core.is_initialized().await {
            Ok(i) => json_reply(StatusCode::OK, &json!({ "initialized": i })),
            Err(e) => Reply::error(e, rid),
        },
        Method::PUT | Method::POST => {
            let body = match p.json_body() {
                Ok(b) => b,
                Err(e) => return Reply::error(e, rid),
            };
            let params = match init_params(&body) {
                Ok(x) => x,
                Err(e) => return Reply::error(e, rid),
            };
            match state.core.init(params).await {
                Ok(result) => {
                    let (keys, keys_b64) = render_shares(&result.keys);
                    let (rkeys, rkeys_b64) = render_shares(&result.recovery_keys);
                    let as_strs =
                        |v: &[Zeroizing<String>]| v.iter().map(|s| s.as_str().to_owned()).collect::<Vec<_>>();
                    let mut m = Map::new();
                    m.insert("keys".into(), json!(as_strs(&keys)));
                    m.insert("keys_base64".into(), json!(as_strs(&keys_b64)));
                    if !result.recovery_keys.is_empty() {
                        m.insert("recovery_keys".into(), json!(as_strs(&rkeys)));
                        m.insert("recovery_keys_base64".into(), json!(as_strs(&rkeys_b64)));
                    }
                    m.insert("root_token".into(), json!(result.root_token.expose()));
                    let body = Zeroizing::new(Value::Object(m).to_string());
                    Reply::json(StatusCode::OK, body.as_bytes().to_vec())
                }
                Err(e) => Reply::error(e, rid),
            }
        }
        _ => method_not_allowed(),
    }
}

fn init_params(body: &Map<String, Value>) -> Result<InitParams, Error> {
    let list_present = |k: &str| matches!(body.get(k), Some(Value::Array(a)) if !a.is_empty());
    let str_present = |k: &str| matches!(body.get(k), Some(Value::String(s)) if !s.is_empty());
    Ok(InitParams {
        secret_shares: fields::int_or(body, "secret_shares", 0)?,
        secret_threshold: fields::int_or(body, "secret_threshold", 0)?,
        recovery_shares: fields::int_or(body, "recovery_shares", 0)?,
        recovery_threshold: fields::int_or(body, "recovery_threshold", 0)?,
        pgp_keys: list_present("pgp_keys") || list_present("recovery_pgp_keys"),
        root_token_pgp_key: str_present("root_token_pgp_key"),
        root_token_id: None,
    })
}

/// Case-insensitive field lookup (Vault's unseal struct has no JSON tags).
fn field_ci<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

async fn unseal(state: &HttpState, p: &Parsed) -> Reply {
    let rid = &p.request_id;
    if !matches!(p.method, Method::PUT | Method::POST) {
        return method_not_allowed();
    }
    let body = match p.json_body() {
        Ok(b) => b,
        Err(e) => return Reply::error(e, rid),
    };
    let reset = match field_ci(&body, "reset") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => fields::parse_bool_str(s).unwrap_or(false),
        Some(_) => false,
    };
    let key = match field_ci(&body, "key") {
        Some(Value::String(s)) => Some(Zeroizing::new(s.clone())),
        _ => None,
    };
    match state.core.unseal(key.as_deref().map(String::as_str), reset).await {
        Ok(s) => json_reply(StatusCode::OK, &json!(s)),
        Err(e) => Reply::error(e, rid),
    }
}

async fn seal(state: &HttpState, p: &Parsed) -> Reply {
    let rid = &p.request_id;
    if !matches!(p.method, Method::PUT | Method::POST) {
        return method_not_allowed();
    }
    let access = Access { operation: Operation::Update, sudo: true, anonymous_ok: false };
    let admitted = match state.core.admit(special_request(p, access)).await {
        Ok(a) => a,
        Err(e) => return Reply::error(e, rid),
    };
    // Sealing cannot fail, and afterwards nothing can be written: the response record is
    // written and a spent token revoked first. No record, no seal.
    if let Err(e) = state.core.conclude(admitted, Ok(None)).await {
        return Reply::error(e, rid);
    }
    state.core.seal().await;
    Reply::no_content()
}

async fn step_down(state: &HttpState, p: &Parsed) -> Reply {
    if !matches!(p.method, Method::PUT | Method::POST) {
        return method_not_allowed();
    }
    let access = Access { operation: Operation::Update, sudo: true, anonymous_ok: false };
    // A single node is always the active node; there is nobody to step down to.
    guarded(state, p, access, BodyStyle::Plain, |_| async { Ok(Reply::no_content().into()) }).await
}

/// Who may call a special endpoint: a token whose ACL grants `operation` on the request path
/// (with `sudo` when set), or anyone when `anonymous_ok`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Access {
    pub operation: Operation,
    pub sudo: bool,
    pub anonymous_ok: bool,
}

/// How a special endpoint's reply body reads, for its audit record.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BodyStyle {
    /// The Vault envelope (`data`, `auth`, `wrap_info`, `warnings`).
    Envelope,
    /// A plain JSON object (legacy endpoints); audited as the response's `data`, so every leaf
    /// of it is hashed.
    Plain,
}

/// What a special endpoint's action produced.
pub(crate) enum Outcome {
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
pub(crate) fn special_request(p: &Parsed, access: Access) -> SpecialRequest {
    let data = match access.operation {
        Operation::Create | Operation::Patch | Operation::Update => p.json_body().ok(),
        Operation::Delete | Operation::List | Operation::Read => {
            let mut m = Map::new();
            for (k, v) in &p.query {
                m.entry(k.clone()).or_insert_with(|| Value::String(v.clone()));
            }
            Some(m)
        }
    };
    SpecialRequest {
        id: p.request_id.clone(),
        operation: access.operation,
        path: p.path.trim_end_matches('/').to_owned(),
        data,
        token: p.token(),
        remote_addr: Some(p.remote.ip()),
        sudo: access.sudo,
        anonymous_ok: access.anonymous_ok,
    }
}

/// Serves a special endpoint: admits the request (the token checks every endpoint shares, the
/// ACL, the audit request record; a refusal is audited and answered here), runs `action`
/// (given `true` for an anonymous caller), and audits its outcome before it leaves. When the
/// response record cannot be written the client gets that error instead.
pub(crate) async fn guarded<F, Fut>(
    state: &HttpState,
    p: &Parsed,
    access: Access,
    style: BodyStyle,
    action: F,
) -> Reply
where
    F: FnOnce(bool) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome, Error>>,
{
    let rid = &p.request_id;
    let admitted = match state.core.admit(special_request(p, access)).await {
        Ok(a) => a,
        Err(e) => return Reply::error(e, rid),
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
        (Ok(()), Err(e)) => Reply::error(e, rid),
        (Err(e), Ok(Outcome::MustDeliver(reply))) => {
            tracing::error!(request_id = %rid, error = %e, "rekey response not audited; new shares sent anyway");
            reply
        }
        (Err(e), _) => Reply::error(e, rid),
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

fn leader(state: &HttpState) -> Reply {
    let active = state.core.active().ok();
    json_reply(
        StatusCode::OK,
        &json!({
            "ha_enabled": false,
            "is_self": false,
            "active_time": active.as_ref().map(|a| rfc3339_nano(a.since)).unwrap_or_else(|| GO_ZERO_TIME.to_owned()),
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
        }),
    )
}

async fn health(state: &HttpState, p: &Parsed) -> Reply {
    let rid = &p.request_id;
    let head = match p.method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return method_not_allowed(),
    };
    let bad = || Reply::json(StatusCode::BAD_REQUEST, b"{\"errors\":[]}".to_vec());
    let code = |name: &str, default: u16| -> Result<u16, ()> {
        match p.query_param(name) {
            None => Ok(default),
            Some(v) => v.parse::<u16>().map_err(|_| ()).and_then(|c| {
                if (100..=999).contains(&c) {
                    Ok(c)
                } else {
                    Err(())
                }
            }),
        }
    };
    let flag = |name: &str| -> Result<bool, ()> {
        match p.query_param(name) {
            None | Some("") => Ok(false),
            Some(v) => fields::parse_bool_str(v).ok_or(()),
        }
    };
    let Ok(standbyok) = flag("standbyok") else { return bad() };
    let Ok(_perfstandbyok) = flag("perfstandbyok") else { return bad() };
    let codes = (
        code("activecode", 200),
        code("standbycode", 429),
        code("sealedcode", 503),
        code("uninitcode", 501),
        code("drsecondarycode", 472),
        code("performancestandbycode", 473),
        code("removedcode", 530),
        code("haunhealthycode", 474),
    );
    let (Ok(activecode), Ok(standbycode), Ok(sealedcode), Ok(uninitcode), Ok(_), Ok(_), Ok(_), Ok(_)) = codes
    else {
        return bad();
    };
    let initialized = match state.core.is_initialized().await {
        Ok(i) => i,
        Err(e) => return Reply::error(e, rid),
    };
    let active = state.core.active().ok();
    let sealed = active.is_none();
    let standby = false;
    let status = if !initialized {
        uninitcode
    } else if sealed {
        sealedcode
    } else if standby && !standbyok {
        standbycode
    } else {
        activecode
    };
    let mut body = json!({
        "initialized": initialized,
        "sealed": sealed,
        "standby": standby,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": time::OffsetDateTime::now_utc().unix_timestamp(),
        "version": VERSION,
    });
    if let (Some(a), Some(o)) = (&active, body.as_object_mut()) {
        o.insert("cluster_name".into(), json!(a.cluster.name));
        o.insert("cluster_id".into(), json!(a.cluster.id));
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if head {
        return Reply::json(status, Vec::new());
    }
    json_reply(status, &body)
}
