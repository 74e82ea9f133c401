//! Forwarding a request from a standby to the leader over the cluster port.
//!
//! The standby sends the request as it received it (method, path and query, headers, body and
//! the client's address) to the leader's cluster port, which runs it through its own HTTP
//! handler and sends back status, headers and body; the standby relays them unchanged, so
//! clients cannot tell. The cluster port is mutual TLS with certificates from the cluster CA:
//! only members can forward, which is why the leader may trust the client address it is given
//! (CIDR-bound tokens and audit records see the real client).

use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

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
    pub async fn forward(&self, req: &ForwardedRequest) -> Result<ForwardedResponse> {
        let result = self.forward_once(req).await;
        match &result {
            Ok(_) => self.stats.forwarded.inc(),
            Err(_) => self.stats.forward_failures.inc(),
        }
        result
    }

    async fn forward_once(&self, req: &ForwardedRequest) -> Result<ForwardedResponse> {
        if self.raft.role() == Role::Leader {
            return Err(Error::internal("a leader does not forward"));
        }
        let Some(leader) = self.raft.leader() else {
            return Err(Error::Standby { leader: None });
        };
        self.raft
            .cluster_client()
            .post_json(&leader.cluster_addr, FORWARD_PATH, req, FORWARD_TIMEOUT)
            .await
            .map_err(|e| {
                tracing::warn!(leader = %leader.cluster_addr, error = %e, "forwarding to the leader failed");
                Error::Unavailable(format!("could not forward the request to the active node: {e}"))
            })
    }
}
