//! Forwarding a request from a standby to the leader over the cluster port.
//!
//! The standby sends the request as it received it (method, path and query, headers, body and
//! the client's address) to the leader's cluster port, which runs it through its own HTTP
//! handler and sends back status, headers and body; the standby relays them unchanged, so
//! clients cannot tell. The cluster port is mutual TLS with certificates from the cluster CA:
//! only members can forward, which is why the leader may trust the client address it is given
//! (CIDR-bound tokens and audit records see the real client).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use coffer_raft::network::TransportError;
use coffer_storage::replication::Role;

use super::ClusterNode;
use crate::core::error::{Error, Result};

/// Path of forwarded requests on the cluster port.
pub const FORWARD_PATH: &str = "/v1/cluster/forward";
/// Format version of forwarded requests and responses.
pub const FORWARD_VERSION: u8 = 1;
/// How long a forwarded request may take end to end.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(90);
/// Header the leader adds so a forwarded request is never forwarded again.
pub const FORWARDED_HEADER: &str = "x-coffer-forwarded";

/// Headers that describe one hop, not the request.
const HOP_HEADERS: &[&str] =
    &["host", "connection", "content-length", "transfer-encoding", "keep-alive", "te", "trailer", "upgrade"];

/// A request as a standby forwards it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedRequest {
    pub v: u8,
    pub method: String,
    /// `/v1/...` with the query string.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    /// Base64 of the body.
    pub body: String,
    /// The client's address, as the standby saw it.
    pub remote_addr: IpAddr,
}

/// The leader's response, relayed unchanged.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedResponse {
    pub v: u8,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Base64 of the body.
    pub body: String,
}

impl ForwardedRequest {
    /// Builds a forwarded request from its parts (hop-by-hop headers dropped).
    pub fn new(
        method: &str,
        path_and_query: &str,
        headers: &http::HeaderMap,
        body: &[u8],
        remote_addr: IpAddr,
    ) -> Self {
        let headers = headers
            .iter()
            .filter(|(k, _)| !HOP_HEADERS.contains(&k.as_str()))
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
            .collect();
        Self {
            v: FORWARD_VERSION,
            method: method.to_owned(),
            path_and_query: path_and_query.to_owned(),
            headers,
            body: B64.encode(body),
            remote_addr,
        }
    }

    /// The body bytes.
    pub fn body_bytes(&self) -> Result<Vec<u8>> {
        B64.decode(&self.body).map_err(|_| Error::bad("forwarded request body is not base64"))
    }
}

impl ForwardedResponse {
    /// A response from its parts.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: &[u8]) -> Self {
        Self { v: FORWARD_VERSION, status, headers, body: B64.encode(body) }
    }

    /// The body bytes.
    pub fn body_bytes(&self) -> Result<Vec<u8>> {
        B64.decode(&self.body).map_err(|_| Error::internal("forwarded response body is not base64"))
    }
}

impl ClusterNode {
    /// Sends `req` to the leader and returns its response. `Standby` errors carry the leader's
    /// API address (for a 307) when it is known but unreachable.
    ///
    /// During an election the request waits for its outcome (up to three election timeouts)
    /// instead of failing at once: while no leader is known, and when the leader could not be
    /// connected to (the request never left this node, so sending it to the next leader cannot
    /// run it twice). A request that may have reached the leader is never sent again.
    pub async fn forward(&self, req: &ForwardedRequest) -> Result<ForwardedResponse> {
        let deadline = Instant::now() + self.raft.election_timeout() * 3;
        let mut pause = Duration::from_millis(10);
        let result = loop {
            let attempt = self.forward_once(req).await;
            match attempt {
                Err(Attempt::NoLeader | Attempt::NotSent(_)) if Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Ok(resp) => break Ok(resp),
                Err(a) => break Err(a.into_error()),
            }
        };
        match &result {
            Ok(_) => self.stats.forwarded.inc(),
            Err(_) => self.stats.forward_failures.inc(),
        }
        result
    }

    async fn forward_once(&self, req: &ForwardedRequest) -> std::result::Result<ForwardedResponse, Attempt> {
        if self.raft.role() == Role::Leader {
            return Err(Attempt::Failed(Error::Unavailable(
                "this node became the active node while the request waited for one; retry".into(),
            )));
        }
        let Some(leader) = self.raft.leader() else {
            return Err(Attempt::NoLeader);
        };
        self.raft
            .cluster_client()
            .post_json(&leader.cluster_addr, FORWARD_PATH, req, FORWARD_TIMEOUT)
            .await
            .map_err(|e| {
                tracing::warn!(leader = %leader.cluster_addr, error = %e, "forwarding to the leader failed");
                let not_sent = matches!(e, TransportError::Unreachable { sent: false, .. });
                let err =
                    Error::Unavailable(format!("could not forward the request to the active node: {e}"));
                if not_sent {
                    Attempt::NotSent(err)
                } else {
                    Attempt::Failed(err)
                }
            })
    }
}

/// One forwarding attempt's failure.
enum Attempt {
    /// No leader is known (an election is under way).
    NoLeader,
    /// The leader could not be connected to; the request was not sent.
    NotSent(Error),
    /// Anything else, including a request that may have reached the leader.
    Failed(Error),
}

impl Attempt {
    fn into_error(self) -> Error {
        match self {
            Attempt::NoLeader => Error::Standby { leader: None },
            Attempt::NotSent(e) | Attempt::Failed(e) => e,
        }
    }
}
