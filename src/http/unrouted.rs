//! The `sys/` endpoints the HTTP layer serves itself, outside the core's router, because they
//! must work while sealed or uninitialised (init, seal-status, unseal, leader, health) or act on
//! the node itself (seal, step-down). Their bodies are plain JSON objects, not the envelope.
//! Root generation and rekeying, also served outside the router, are in
//! [`quorum`](crate::http::quorum).
//!
//! The two that take a token (seal, step-down) go through [`admission`](crate::http::admission):
//! the token is checked as on every routed request, then the ACL (`sudo`), and both the request
//! and its outcome are audited.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::core::error::Error;
use crate::core::fields;
use crate::core::seal::{render_shares, InitParams};
use crate::core::VERSION;
use crate::http::admission::{admission_request, guarded, Access, BodyStyle};
use crate::http::body::field_ignoring_case;
use crate::http::error::{self, method_not_allowed};
use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::http::routes::UnroutedPath;
use crate::http::state::HttpState;
use crate::policy::Operation;
use crate::util::timefmt::{rfc3339_nano, GO_ZERO_TIME};

/// Serves one of the endpoints.
pub async fn serve(state: &HttpState, request: &HttpRequest, endpoint: UnroutedPath) -> Reply {
    match endpoint {
        UnroutedPath::Health => health(state, request).await,
        UnroutedPath::Init => init(state, request).await,
        UnroutedPath::Leader => match request.method {
            Method::GET => leader(state),
            _ => method_not_allowed(),
        },
        UnroutedPath::Seal => seal(state, request).await,
        UnroutedPath::SealStatus => match request.method {
            Method::GET => match state.core.seal_status().await {
                Ok(s) => Reply::json_value(StatusCode::OK, &json!(s)),
                Err(e) => request.error_reply(e),
            },
            _ => method_not_allowed(),
        },
        UnroutedPath::StepDown => step_down(state, request).await,
        UnroutedPath::Unseal => unseal(state, request).await,
    }
}

async fn init(state: &HttpState, request: &HttpRequest) -> Reply {
    match request.method {
        Method::GET => match state.core.is_initialized().await {
            Ok(i) => Reply::json_value(StatusCode::OK, &json!({ "initialized": i })),
            Err(e) => request.error_reply(e),
        },
        Method::PUT | Method::POST => {
            let params = match request.json_body().and_then(|body| init_params(&body)) {
                Ok(x) => x,
                Err(e) => return request.error_reply(e),
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
                Err(e) => request.error_reply(e),
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

async fn unseal(state: &HttpState, request: &HttpRequest) -> Reply {
    if !matches!(request.method, Method::PUT | Method::POST) {
        return method_not_allowed();
    }
    let body = match request.json_body() {
        Ok(b) => b,
        Err(e) => return request.error_reply(e),
    };
    // Vault's unseal struct has no JSON tags: field names match case-insensitively.
    let reset = match field_ignoring_case(&body, "reset") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => fields::parse_bool_str(s).unwrap_or(false),
        Some(_) => false,
    };
    let key = match field_ignoring_case(&body, "key") {
        Some(Value::String(s)) => Some(Zeroizing::new(s.clone())),
        _ => None,
    };
    match state.core.unseal(key.as_deref().map(String::as_str), reset).await {
        Ok(s) => Reply::json_value(StatusCode::OK, &json!(s)),
        Err(e) => request.error_reply(e),
    }
}

async fn seal(state: &HttpState, request: &HttpRequest) -> Reply {
    if !matches!(request.method, Method::PUT | Method::POST) {
        return method_not_allowed();
    }
    let access = Access { operation: Operation::Update, sudo: true, anonymous_ok: false };
    let admitted = match state.core.admit(admission_request(request, access)).await {
        Ok(a) => a,
        Err(e) => return request.error_reply(e),
    };
    if state.core.replication().is_ha() && !state.core.replication().role().is_leader() {
        let refusal =
            Error::InternalVisible("vault cannot seal when in standby mode; please restart instead".into());
        let _ = state.core.conclude(admitted, Err(&refusal)).await;
        return request.error_reply(refusal);
    }
    // Sealing cannot fail, and afterwards nothing can be written: the response record is
    // written and a spent token revoked first. No record, no seal.
    if let Err(e) = state.core.conclude(admitted, Ok(None)).await {
        return request.error_reply(e);
    }
    state.core.seal().await;
    Reply::no_content()
}

async fn step_down(state: &HttpState, request: &HttpRequest) -> Reply {
    if !matches!(request.method, Method::PUT | Method::POST) {
        return method_not_allowed();
    }
    let access = Access { operation: Operation::Update, sudo: true, anonymous_ok: false };
    // A single node is always the active node (nobody to step down to); a cluster leader hands
    // leadership over and does not stand for election for a while.
    guarded(state, request, access, BodyStyle::Plain, |_| async {
        state.core.replication().step_down().await.map_err(Error::from)?;
        Ok(Reply::no_content().into())
    })
    .await
}

fn leader(state: &HttpState) -> Reply {
    let active = state.core.active().ok();
    let Some(cluster) = &state.cluster else {
        return Reply::json_value(
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
        );
    };
    let raft = cluster.raft();
    let is_self = raft.role().is_leader() && active.is_some();
    let leader = raft.leader();
    let metrics = raft.metrics();
    Reply::json_value(
        StatusCode::OK,
        &json!({
            "ha_enabled": true,
            "is_self": is_self,
            "active_time": match (&active, is_self) {
                (Some(a), true) => rfc3339_nano(a.since),
                _ => GO_ZERO_TIME.to_owned(),
            },
            "leader_address": leader.as_ref().map(|l| l.api_addr.clone()).unwrap_or_default(),
            "leader_cluster_address": leader.as_ref().map(|l| format!("https://{}", l.cluster_addr)).unwrap_or_default(),
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
            "raft_committed_index": metrics.committed_index.unwrap_or(0),
            "raft_applied_index": metrics.applied_index.unwrap_or(0),
        }),
    )
}

/// `sys/health` query parameters, checked before the node's state is looked at.
struct HealthQuery {
    standbyok: bool,
    activecode: u16,
    standbycode: u16,
    sealedcode: u16,
    uninitcode: u16,
}

impl HealthQuery {
    /// `None`: a bad flag or status code (400 with an empty error list, as Vault answers).
    fn parse(request: &HttpRequest) -> Option<Self> {
        let code = |name: &str, default: u16| -> Option<u16> {
            match request.query_param(name) {
                None => Some(default),
                Some(v) => v.parse::<u16>().ok().filter(|c| (100..=999).contains(c)),
            }
        };
        let flag = |name: &str| -> Option<bool> {
            match request.query_param(name) {
                None | Some("") => Some(false),
                Some(v) => fields::parse_bool_str(v),
            }
        };
        let standbyok = flag("standbyok")?;
        flag("perfstandbyok")?;
        let query = HealthQuery {
            standbyok,
            activecode: code("activecode", 200)?,
            standbycode: code("standbycode", 429)?,
            sealedcode: code("sealedcode", 503)?,
            uninitcode: code("uninitcode", 501)?,
        };
        // Accepted and checked for Vault's clients; this server never is in these states.
        for (name, default) in [
            ("drsecondarycode", 472),
            ("performancestandbycode", 473),
            ("removedcode", 530),
            ("haunhealthycode", 474),
        ] {
            code(name, default)?;
        }
        Some(query)
    }
}

async fn health(state: &HttpState, request: &HttpRequest) -> Reply {
    let head = match request.method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return method_not_allowed(),
    };
    let Some(query) = HealthQuery::parse(request) else {
        return error::empty(StatusCode::BAD_REQUEST);
    };
    let initialized = match state.core.is_initialized().await {
        Ok(i) => i,
        Err(e) => return request.error_reply(e),
    };
    let active = state.core.active().ok();
    let sealed = active.is_none();
    let standby = !sealed && state.core.replication().is_ha() && !state.core.replication().role().is_leader();
    let status = if !initialized {
        query.uninitcode
    } else if sealed {
        query.sealedcode
    } else if standby && !query.standbyok {
        query.standbycode
    } else {
        query.activecode
    };
    let mut body = json!({
        "initialized": initialized,
        "sealed": sealed,
        "standby": standby,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": coffer_storage::clock::now().unix_timestamp(),
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
    Reply::json_value(status, &body)
}
