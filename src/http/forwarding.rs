//! Where a request is served on a cluster: here, on the leader (forwarded over the cluster
//! port, or a 307 to the leader's `api_addr`), or here after a read barrier.
//!
//! The route table ([`placement`]) decides first:
//! - node-local requests are served where they land;
//! - leader-bound requests on the leader run after the same barrier as reads (below): what the
//!   leader reads before it proposes (a check-and-set version, a transit key version, a use
//!   count) is then current even on a leader elected a moment ago or deposed without knowing;
//! - leader-bound requests on a standby are forwarded to the leader (or redirected when
//!   forwarding is off, or when the client sent `X-Vault-No-Request-Forwarding`). Raft
//!   snapshots are forwarded too: Vault redirects them, and its own CLI, which does not follow
//!   that redirect, then fails with "incomplete snapshot" against a standby;
//! - reads are served by any unsealed node after a read barrier: the node waits until it has
//!   applied everything the leader had committed when the read arrived (ReadIndex), so a read
//!   on any node sees every write acknowledged before it. `X-Coffer-Consistency: stale` (or the
//!   node's `read_consistency = "stale"`) skips the barrier; Vault's
//!   `X-Vault-Inconsistent: forward-active-node` sends the read to the leader. On the leader the
//!   barrier confirms leadership with a quorum, so a leader cut off from the majority stops
//!   serving reads instead of serving stale ones.
//!
//! After the core ran a request locally, a `Standby` error (a write the follower's storage
//! refused: a limited-use token, anything the table did not foresee) is forwarded too: nothing
//! was written here, so running it on the leader is safe.

use http::{HeaderMap, HeaderValue, StatusCode};

use crate::cluster::forward::{ForwardedRequest, ForwardedResponse, FORWARDED_HEADER};
use crate::cluster::ClusterNode;
use crate::core::error::Error;
use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::http::routes::{placement, Endpoint, Placement};
use crate::http::state::HttpState;

/// What the cluster decided for a request.
pub enum Decision {
    /// Serve it here.
    Local,
    /// Already answered (forwarded, redirected, or refused).
    Answered(Reply),
}

fn header_is(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
}

/// Decides where `request` is served (before the core sees it).
pub async fn decide(
    state: &HttpState,
    cluster: &ClusterNode,
    request: &HttpRequest,
    _endpoint: Endpoint,
) -> Decision {
    let placed = placement(&request.method, &request.path, &request.headers);
    // A sealed node serves nothing but its own status; the core answers "Vault is sealed".
    if placed == Placement::NodeLocal || state.core.is_sealed() {
        return Decision::Local;
    }
    // A request a standby forwarded is served here, whatever this node thinks, after the
    // barrier: never forwarded again (no loops); a write this node cannot commit fails here.
    if request.headers.contains_key(FORWARDED_HEADER) {
        return match barrier(state).await {
            Ok(()) => Decision::Local,
            Err(reply) => Decision::Answered(request.error_reply(reply)),
        };
    }
    let is_leader = cluster.raft().role().is_leader();
    match placed {
        Placement::NodeLocal => Decision::Local,
        // The leader decides leader-bound requests from its own state (a kv v2 check-and-set,
        // the key version transit encrypts under, a token's use count) before it proposes
        // anything. That state must be current: a new leader may not have applied what its
        // predecessor committed, and a deposed one may not know yet that it was replaced.
        // The barrier confirms leadership with a quorum and waits for the apply and the caches.
        Placement::LeaderBound if is_leader => match barrier(state).await {
            Ok(()) if cluster.raft().role().is_leader() => Decision::Local,
            Ok(()) => Decision::Answered(to_leader(cluster, request, false).await),
            Err(e) => Decision::Answered(request.error_reply(e)),
        },
        Placement::LeaderBound => Decision::Answered(to_leader(cluster, request, false).await),
        Placement::ReadAfterBarrier => {
            if !is_leader && header_is(&request.headers, "x-vault-inconsistent", "forward-active-node") {
                return Decision::Answered(to_leader(cluster, request, false).await);
            }
            let stale = match request.headers.get("x-coffer-consistency").and_then(|v| v.to_str().ok()) {
                Some(v) if v.trim().eq_ignore_ascii_case("stale") => true,
                Some(v) if v.trim().eq_ignore_ascii_case("linearizable") => false,
                _ => cluster.settings().stale_reads_by_default,
            };
            if stale {
                return Decision::Local;
            }
            match barrier(state).await {
                Ok(()) => Decision::Local,
                Err(e) => Decision::Answered(request.error_reply(e)),
            }
        }
    }
}

/// The read barrier: this node has applied (and its caches hold) everything the cluster had
/// committed when the request arrived, confirmed by a quorum.
async fn barrier(state: &HttpState) -> Result<(), Error> {
    state.core.linearize().await.map_err(|e| {
        tracing::debug!(error = %e, "read barrier failed");
        Error::Unavailable(
            "cannot confirm this node is up to date with the cluster (no quorum or no leader); retry".into(),
        )
    })
}

/// Sends a leader-bound request to the leader: forwarded when forwarding is on (and the client
/// did not ask otherwise), else a 307 to the leader's API address.
pub async fn to_leader(cluster: &ClusterNode, request: &HttpRequest, redirect_only: bool) -> Reply {
    let no_forwarding = redirect_only
        || !cluster.settings().forwarding
        || request.headers.contains_key("x-vault-no-request-forwarding");
    if no_forwarding {
        let leader = cluster.raft().leader().map(|l| l.api_addr);
        return request.error_reply(Error::Standby { leader });
    }
    let fwd = ForwardedRequest::new(
        request.method.as_str(),
        &request.target,
        &request.headers,
        &request.body,
        request.remote.ip(),
    );
    match cluster.forward(&fwd).await {
        Ok(resp) => reply_of(resp).unwrap_or_else(|e| request.error_reply(e)),
        Err(e) => request.error_reply(e),
    }
}

/// The leader's response as this node's reply.
fn reply_of(resp: ForwardedResponse) -> Result<Reply, Error> {
    let status =
        StatusCode::from_u16(resp.status).map_err(|_| Error::internal("forwarded status is invalid"))?;
    let body = resp.body_bytes()?;
    let headers = resp
        .headers
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "cache-control" | "content-length"))
        .filter_map(|(k, v)| {
            let name = http::header::HeaderName::from_bytes(k.as_bytes()).ok()?;
            let value = HeaderValue::from_str(v).ok()?;
            Some((name, value))
        })
        .collect();
    Ok(Reply { status, body, headers })
}
