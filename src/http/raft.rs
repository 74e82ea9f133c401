//! `sys/storage/raft/*`: joining, the join handshake, peers, autopilot and snapshots.
//!
//! `join` runs on the new node (unauthenticated, as in Vault: it only makes the node ask a
//! leader for a challenge). `bootstrap/challenge` and `bootstrap/answer` run on the leader
//! (unauthenticated: the answer proves possession of the cluster's keys). Everything else needs
//! a token whose ACL grants the operation on the path, and runs on the leader (standbys forward
//! it; snapshots are redirected). On a server without raft storage every path answers 400
//! `raft storage is not in use`.

use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cluster::join::{AnswerRequest, ChallengeRequest};
use crate::cluster::{ClusterNode, JoinTarget};
use crate::core::error::Error;
use crate::core::fields;
use crate::http::admission::{guarded, Access, BodyStyle};
use crate::http::error;
use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::http::routes::RaftPath;
use crate::http::state::HttpState;
use crate::policy::Operation;

fn envelope(request: &HttpRequest, data: Value) -> Reply {
    let body = json!({
        "request_id": request.request_id,
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": null,
        "mount_type": "system",
    });
    Reply::json_value(StatusCode::OK, &body)
}

fn token_access(operation: Operation) -> Access {
    Access { operation, sudo: false, anonymous_ok: false }
}

/// Serves a raft endpoint.
pub async fn serve(state: &HttpState, request: &HttpRequest, path: RaftPath) -> Reply {
    let Some(cluster) = state.cluster.as_ref() else {
        return request.error_reply(Error::bad("raft storage is not in use"));
    };
    let m = &request.method;
    let write = *m == Method::POST || *m == Method::PUT;
    match path {
        RaftPath::Join if write => join(cluster, request).await,
        RaftPath::Bootstrap if write => request.error_reply(Error::bad(
            "raft is this node's storage; sys/storage/raft/bootstrap is for raft used as HA storage only",
        )),
        RaftPath::Challenge if write => {
            let body: ChallengeRequest = match request.json_body().map(Value::Object).and_then(|v| {
                serde_json::from_value(v).map_err(|e| Error::bad(format!("invalid challenge request: {e}")))
            }) {
                Ok(b) => b,
                Err(e) => return request.error_reply(e),
            };
            match cluster.challenge(body).await {
                Ok(c) => Reply::json_value(StatusCode::OK, &json!(c)),
                Err(e) => request.error_reply(e),
            }
        }
        RaftPath::Answer if write => {
            let body: AnswerRequest = match request.json_body().map(Value::Object).and_then(|v| {
                serde_json::from_value(v).map_err(|e| Error::bad(format!("invalid answer: {e}")))
            }) {
                Ok(b) => b,
                Err(e) => return request.error_reply(e),
            };
            match cluster.answer(body).await {
                Ok(a) => Reply::json_value(StatusCode::OK, &json!(a)),
                Err(e) => request.error_reply(e),
            }
        }
        RaftPath::Configuration if *m == Method::GET => {
            guarded(state, request, token_access(Operation::Read), BodyStyle::Envelope, |_| async {
                Ok(envelope(request, cluster.configuration()).into())
            })
            .await
        }
        RaftPath::Digest if *m == Method::GET => {
            guarded(state, request, token_access(Operation::Read), BodyStyle::Envelope, |_| async {
                Ok(envelope(request, cluster.digest()?).into())
            })
            .await
        }
        RaftPath::RemovePeer if write => {
            guarded(state, request, token_access(Operation::Update), BodyStyle::Envelope, |_| async {
                let body = request.json_body()?;
                let id = fields::string_or_empty(&body, "server_id")?;
                cluster.remove_peer(id.trim()).await?;
                Ok(Reply::no_content().into())
            })
            .await
        }
        RaftPath::AutopilotState if *m == Method::GET => {
            guarded(state, request, token_access(Operation::Read), BodyStyle::Envelope, |_| async {
                Ok(envelope(request, cluster.autopilot_state()).into())
            })
            .await
        }
        RaftPath::AutopilotConfiguration if *m == Method::GET => {
            guarded(state, request, token_access(Operation::Read), BodyStyle::Envelope, |_| async {
                Ok(envelope(request, cluster.autopilot_config().await?.to_json()).into())
            })
            .await
        }
        RaftPath::AutopilotConfiguration if write => {
            guarded(state, request, token_access(Operation::Update), BodyStyle::Envelope, |_| async {
                let body = request.json_body()?;
                let mut a = cluster.autopilot_config().await?;
                if let Some(v) = fields::boolean(&body, "cleanup_dead_servers")? {
                    a.cleanup_dead_servers = v;
                }
                for (key, slot) in [
                    ("last_contact_threshold", &mut a.last_contact_threshold),
                    ("dead_server_last_contact_threshold", &mut a.dead_server_last_contact_threshold),
                    ("server_stabilization_time", &mut a.server_stabilization_time),
                ] {
                    if let Some(v) = fields::duration_secs(&body, key)? {
                        *slot = v;
                    }
                }
                for (key, slot) in [("max_trailing_logs", &mut a.max_trailing_logs), ("min_quorum", &mut a.min_quorum)] {
                    if let Some(v) = fields::int(&body, key)? {
                        *slot = u64::try_from(v).map_err(|_| Error::bad(format!("{key} cannot be negative")))?;
                    }
                }
                if let Some(v) = fields::boolean(&body, "disable_upgrade_migration")? {
                    a.disable_upgrade_migration = v;
                }
                if a.cleanup_dead_servers {
                    if a.min_quorum < 3 {
                        return Err(Error::bad("min_quorum must be set when cleanup_dead_servers is set and it should at least be 3"));
                    }
                    if a.dead_server_last_contact_threshold < 60 {
                        return Err(Error::bad("dead_server_last_contact_threshold should not be set to less than 1m"));
                    }
                }
                cluster.set_autopilot_config(&a).await?;
                Ok(Reply::no_content().into())
            })
            .await
        }
        RaftPath::Snapshot if *m == Method::GET => {
            guarded(state, request, token_access(Operation::Read), BodyStyle::Envelope, |_| async {
                let archive = cluster.snapshot_save().await?;
                let mut reply = Reply { status: StatusCode::OK, body: archive, headers: Vec::new() };
                reply.headers.push((http::header::CONTENT_TYPE, HeaderValue::from_static("application/gzip")));
                reply.headers.push((
                    HeaderName::from_static("content-disposition"),
                    HeaderValue::from_static("attachment; filename=\"raft.snap\""),
                ));
                Ok(reply.into())
            })
            .await
        }
        RaftPath::Snapshot | RaftPath::SnapshotForce if write => {
            let force = path == RaftPath::SnapshotForce;
            guarded(state, request, token_access(Operation::Update), BodyStyle::Envelope, |_| async {
                cluster.snapshot_restore(&request.body, force).await?;
                Ok(Reply::no_content().into())
            })
            .await
        }
        _ => error::method_not_allowed(),
    }
}

/// `sys/storage/raft/join` on the new node.
async fn join(cluster: &std::sync::Arc<ClusterNode>, request: &HttpRequest) -> Reply {
    let body = match request.json_body() {
        Ok(b) => b,
        Err(e) => return request.error_reply(e),
    };
    let parse = || -> Result<(JoinTarget, bool), Error> {
        if fields::boolean(&body, "auto_join")?.unwrap_or(false)
            || fields::string(&body, "auto_join")?.is_some_and(|s| !s.is_empty() && s != "false")
        {
            return Err(Error::bad("cloud auto-join is not supported; give leader_api_addr"));
        }
        let leader = fields::string_or_empty(&body, "leader_api_addr")?;
        let leader = leader.trim();
        if leader.is_empty() {
            return Err(Error::bad("leader_api_addr is required"));
        }
        if !(leader.starts_with("http://") || leader.starts_with("https://")) {
            return Err(Error::bad("leader_api_addr must start with http:// or https://"));
        }
        let ca = fields::string(&body, "leader_ca_cert")?.filter(|s| !s.trim().is_empty());
        let non_voter = fields::boolean(&body, "non_voter")?.unwrap_or(false);
        let retry = fields::boolean(&body, "retry")?.unwrap_or(false);
        Ok((JoinTarget { leader_api_addr: leader.to_owned(), leader_ca_cert: ca, non_voter }, retry))
    };
    let (target, retry) = match parse() {
        Ok(x) => x,
        Err(e) => return request.error_reply(e),
    };
    match cluster.request_join(target.clone()).await {
        Ok(()) => Reply::json_value(StatusCode::OK, &json!({ "joined": true })),
        Err(e) if retry => {
            tracing::info!(leader = %target.leader_api_addr, error = %e, "join failed; retrying in the background");
            cluster.spawn_join_retry(vec![target]);
            Reply::json_value(StatusCode::OK, &json!({ "joined": true }))
        }
        Err(Error::BadRequest(m)) => request.error_reply(Error::BadRequest(m)),
        Err(e) => request.error_reply(Error::InternalVisible(format!("failed to join raft cluster: {e}"))),
    }
}
