//! Raft RPC client: openraft's `RaftNetworkFactory`/`RaftNetwork` over HTTP/2 with mutual TLS.
//!
//! One [`ClusterClient`] per node holds a pooled reqwest client built from the cluster TLS
//! material. It starts **pending** (no TLS yet: every RPC fails as `Unreachable`) and gets its
//! configuration later with [`ClusterClient::set_tls`] — a sealed node learns the cluster CA
//! only after unseal. Requests are JSON bodies POSTed to the paths in [`paths`]; each carries
//! the RPC's `soft_ttl` as its timeout.
//!
//! Error mapping (openraft backs off on `Unreachable`, retries at once on `Network`):
//! connection refused / TLS failure / no TLS yet → `Unreachable`; timeout → `Timeout`; a
//! non-200 status or an undecodable body → `Network`; an error returned by the peer's Raft →
//! `RemoteError`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError as OrRaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::RaftError;
use crate::tls::NodeCert;
use crate::types::{NodeId, NodeInfo, TypeConfig};

/// URL paths of the cluster port that this crate serves.
pub mod paths {
    /// Every raft path starts with this; other paths go to the root crate's handler.
    pub const PREFIX: &str = "/v1/raft/";
    pub const APPEND: &str = "/v1/raft/append";
    pub const VOTE: &str = "/v1/raft/vote";
    pub const SNAPSHOT: &str = "/v1/raft/snapshot";
    pub const READ_INDEX: &str = "/v1/raft/read-index";
}

/// A transport failure of a cluster request.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (connection, TLS handshake, no TLS material yet).
    /// `sent` is false when the request certainly never left this node (it failed while
    /// connecting), so sending it again cannot run it twice.
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable { addr: String, reason: String, sent: bool },
    /// The request did not complete in time.
    #[error("request to {addr} timed out after {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    /// The peer answered, but not with a usable response.
    #[error("bad response from {addr}: {reason}")]
    BadResponse { addr: String, reason: String },
}

/// HTTP/2 + mTLS client for the cluster port, shared by all peers of a node.
#[derive(Default)]
pub struct ClusterClient {
    client: RwLock<Option<reqwest::Client>>,
    /// Local address outgoing connections are made from (the node's cluster IP), so a peer —
    /// or a test's fault proxy — can tell nodes apart by source address.
    source: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient").field("ready", &self.is_ready()).finish()
    }
}

impl ClusterClient {
    /// A pending client: every request fails as unreachable until [`Self::set_tls`].
    pub fn pending() -> Self {
        Self::default()
    }

    /// A pending client whose connections leave from `source`.
    pub fn pending_from(source: Option<std::net::IpAddr>) -> Self {
        Self { client: RwLock::new(None), source: source.filter(|ip| !ip.is_unspecified()) }
    }

    /// Installs (or replaces) the TLS material.
    pub fn set_tls(&self, ca_cert_pem: &str, node: &NodeCert) -> Result<(), RaftError> {
        let cfg = crate::tls::client_config(ca_cert_pem, node)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(cfg)
            .http2_prior_knowledge()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(2))
            .local_address(self.source)
            .no_proxy()
            .build()
            .map_err(|e| RaftError::Tls(format!("cannot build cluster client: {e}")))?;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = Some(client);
        Ok(())
    }

    /// Drops the TLS material (seal): back to pending.
    pub fn clear_tls(&self) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// True once TLS material is installed.
    pub fn is_ready(&self) -> bool {
        self.client.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// POSTs `body` as JSON to `https://{addr}{path}` and decodes a JSON answer.
    pub async fn post_json<Q: Serialize, A: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Q,
        timeout: Duration,
    ) -> Result<A, TransportError> {
        let client = self.client.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(client) = client else {
            return Err(TransportError::Unreachable {
                addr: addr.to_owned(),
                reason: "cluster TLS is not configured yet".into(),
                sent: false,
            });
        };
        let bytes = serde_json::to_vec(body).map_err(|e| TransportError::BadResponse {
            addr: addr.to_owned(),
            reason: format!("encode: {e}"),
        })?;
        let url = format!("https://{addr}{path}");
        let send = async {
            let resp = client
                .post(&url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(bytes)
                .send()
                .await
                .map_err(|e| classify(addr, e))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| classify(addr, e))?;
            if !status.is_success() {
                return Err(TransportError::BadResponse {
                    addr: addr.to_owned(),
                    reason: format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ),
                });
            }
            serde_json::from_slice(&body).map_err(|e| TransportError::BadResponse {
                addr: addr.to_owned(),
                reason: format!("decode: {e}"),
            })
        };
        match tokio::time::timeout(timeout, send).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout { addr: addr.to_owned(), timeout }),
        }
    }
}

fn classify(addr: &str, e: reqwest::Error) -> TransportError {
    let reason = error_chain(&e);
    if e.is_timeout() {
        TransportError::Timeout { addr: addr.to_owned(), timeout: Duration::ZERO }
    } else if e.is_connect() || e.is_request() {
        TransportError::Unreachable { addr: addr.to_owned(), reason, sent: !e.is_connect() }
    } else {
        TransportError::BadResponse { addr: addr.to_owned(), reason }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Creates one [`Network`] per peer (openraft's factory).
#[derive(Clone)]
pub struct NetworkFactory {
    pub(crate) id: NodeId,
    pub(crate) client: Arc<ClusterClient>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        Network { id: self.id, target, addr: node.cluster_addr.clone(), client: Arc::clone(&self.client) }
    }
}

/// The connection to one peer.
pub struct Network {
    id: NodeId,
    target: NodeId,
    addr: String,
    client: Arc<ClusterClient>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, NodeInfo, OrRaftError<NodeId, E>>>;

impl Network {
    async fn call<Q, A, E>(
        &self,
        path: &str,
        action: RPCTypes,
        req: &Q,
        option: &RPCOption,
    ) -> RpcResult<A, E>
    where
        Q: Serialize,
        A: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.soft_ttl();
        let answer: Result<Result<A, OrRaftError<NodeId, E>>, TransportError> =
            self.client.post_json(&self.addr, path, req, timeout).await;
        match answer {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e @ TransportError::Unreachable { .. }) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(TransportError::Timeout { .. }) => {
                Err(RPCError::Timeout(Timeout { action, id: self.id, target: self.target, timeout }))
            }
            Err(e @ TransportError::BadResponse { .. }) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(paths::APPEND, RPCTypes::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(paths::SNAPSHOT, RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(paths::VOTE, RPCTypes::Vote, &rpc, &option).await
    }
}
