//! Raft RPC client: openraft's `RaftNetworkFactory`/`RaftNetwork` over HTTP/2 with mutual TLS.
//!
//! One [`ClusterClient`] per node holds a pooled reqwest client built from the cluster TLS
//! material. It starts **pending** (no TLS yet: every RPC fails as `Unreachable`) and gets its
//! configuration later with [`ClusterClient::set_tls`] — a sealed node learns the cluster CA
//! only after unseal. Requests are bodies POSTed to the paths in [`paths`] (JSON, except an
//! append-entries request: a binary frame, see [`encode_append`]); each carries the RPC's
//! `soft_ttl` as its timeout.
//!
//! Error mapping (openraft backs off on `Unreachable`, retries at once on `Network`):
//! connection refused / TLS failure / no TLS yet → `Unreachable`; timeout → `Timeout`; a
//! non-200 status or an undecodable body → `Network`; an error returned by the peer's Raft →
//! `RemoteError`.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError as OrRaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::RaftLogId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::channel::{Channel, Frame};
use crate::entry_codec::{put_bytes, put_len};
use crate::error::RaftError;
use crate::log_parts::{ReceivedBodies, Recent};
use crate::tls::NodeCert;
use crate::types::{LogId, NodeId, NodeInfo, TypeConfig};

/// URL paths of the cluster port that this crate serves.
pub mod paths {
    /// Every raft path starts with this; other paths go to the root crate's handler.
    pub const PREFIX: &str = "/v1/raft/";
    pub const APPEND: &str = "/v1/raft/append";
    pub const VOTE: &str = "/v1/raft/vote";
    pub const SNAPSHOT: &str = "/v1/raft/snapshot";
    pub const READ_INDEX: &str = "/v1/raft/read-index";
}

/// Clock headers of the cluster port (see `coffer_storage::clock`): every request carries the
/// sender's cluster time, every raft answer the responder's raw clock, both in nanoseconds
/// since the Unix epoch.
pub mod clock_headers {
    pub const SENDER_CLUSTER_TIME: &str = "x-coffer-cluster-time";
    pub const RESPONDER_RAW_TIME: &str = "x-coffer-raw-time";
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

/// How often an idle or busy cluster connection is pinged, and how long a ping may go
/// unanswered before the connection is dropped.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// HTTP/2 + mTLS client for the cluster port, shared by all peers of a node.
#[derive(Default)]
pub struct ClusterClient {
    client: RwLock<Option<reqwest::Client>>,
    /// The RPC channel ([`crate::channel`]) for append-entries and read-index, configured
    /// with `client`.
    channel: RwLock<Option<Arc<Channel>>>,
    /// Local address outgoing connections are made from (the node's cluster IP), so a peer —
    /// or a test's fault proxy — can tell nodes apart by source address.
    source: Option<std::net::IpAddr>,
    /// The peers' clocks as measured from this node's append-entries answers.
    pub(crate) clocks: coffer_storage::clock::PeerClocks,
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
        Self { source: source.filter(|ip| !ip.is_unspecified()), ..Self::default() }
    }

    /// Installs (or replaces) the TLS material.
    pub fn set_tls(&self, ca_cert_pem: &str, node: &NodeCert) -> Result<(), RaftError> {
        let cfg = crate::tls::client_config(ca_cert_pem, node)?;
        let channel = Arc::new(Channel::new(cfg.clone(), self.source));
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(cfg)
            .http2_prior_knowledge()
            // A connection that went silent (a partition that swallowed its packets, a peer
            // host gone without a reset) would otherwise stay in the pool and hold every RPC
            // to that peer until each times out: pings find it and drop it, and the next RPC
            // connects afresh.
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .http2_keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(2))
            .local_address(self.source)
            .no_proxy()
            .build()
            .map_err(|e| RaftError::Tls(format!("cannot build cluster client: {e}")))?;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = Some(client);
        *self.channel.write().unwrap_or_else(|p| p.into_inner()) = Some(channel);
        Ok(())
    }

    /// Leader side of the cluster clock: records a follower's clock reading and moves this
    /// node's correction to the median of the voters' clocks.
    fn observe_peer_clock(&self, peer: NodeId, r: PeerClockReading) {
        use coffer_storage::clock;
        self.clocks.observe(peer, r.sent_raw_ns, r.rtt, r.peer_raw_ns);
        if let Some(c) = self.clocks.leader_correction(clock::correction_ns()) {
            if c != clock::correction_ns() && !clock::set_correction_ns(c) {
                tracing::warn!(correction_ns = c, "refusing a cluster clock correction of more than a year");
            }
        }
    }

    /// Drops the TLS material (seal): back to pending.
    pub fn clear_tls(&self) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = None;
        *self.channel.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// True once TLS material is installed.
    pub fn is_ready(&self) -> bool {
        self.client.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Asks the leader at `addr` for a read index (see [`Self::rpc_timed`]).
    pub(crate) async fn read_index<A: DeserializeOwned>(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<A, TransportError> {
        self.rpc_timed(addr, paths::READ_INDEX, &(), timeout).await.map(|(a, _)| a)
    }

    /// A raft RPC: append-entries and read-index go over the RPC channel ([`crate::channel`])
    /// unless the peer does not offer it, everything else over HTTP/2 ([`Self::post_json_timed`]).
    /// Same answers, errors and clock reading either way.
    pub(crate) async fn rpc_timed<Q: Serialize, A: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Q,
        timeout: Duration,
    ) -> Result<(A, Option<PeerClockReading>), TransportError> {
        self.rpc_json_timed(addr, path, encode_body(addr, body)?, timeout).await
    }

    /// [`Self::rpc_timed`] with the body already encoded (JSON, or an append-entries frame).
    pub(crate) async fn rpc_json_timed<A: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(A, Option<PeerClockReading>), TransportError> {
        let channel = self.channel.read().unwrap_or_else(|p| p.into_inner()).clone();
        let op = crate::channel::op_of(path);
        let (Some(channel), Some(op)) = (channel, op) else {
            return self.post_bytes_timed(addr, path, body, timeout).await;
        };
        if channel.uses_fallback(addr) {
            return self.post_bytes_timed(addr, path, body, timeout).await;
        }
        let now = i64::try_from(coffer_storage::clock::now_unix_ns()).unwrap_or(i64::MAX);
        let request = Frame { code: u16::from(op), time_ns: now, body };
        let sent_raw_ns = coffer_storage::clock::raw_unix_ns();
        let started = std::time::Instant::now();
        match tokio::time::timeout(timeout, channel.call(addr, &request)).await {
            Ok(Ok(Some(answer))) => {
                let reading =
                    PeerClockReading { sent_raw_ns, rtt: started.elapsed(), peer_raw_ns: answer.time_ns };
                Ok((decode_answer(addr, answer.code, &answer.body)?, Some(reading)))
            }
            Ok(Ok(None)) => {
                let left = timeout.saturating_sub(started.elapsed());
                self.post_bytes_timed(addr, path, request.body, left).await
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TransportError::Timeout { addr: addr.to_owned(), timeout }),
        }
    }

    /// POSTs `body` as JSON to `https://{addr}{path}` and decodes a JSON answer.
    pub async fn post_json<Q: Serialize, A: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Q,
        timeout: Duration,
    ) -> Result<A, TransportError> {
        self.post_json_timed(addr, path, body, timeout).await.map(|(a, _)| a)
    }

    /// [`Self::post_json`], also returning what the answer says about the peer's clock.
    pub(crate) async fn post_json_timed<Q: Serialize, A: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Q,
        timeout: Duration,
    ) -> Result<(A, Option<PeerClockReading>), TransportError> {
        self.post_bytes_timed(addr, path, encode_body(addr, body)?, timeout).await
    }

    /// [`Self::post_json_timed`] with the body already encoded (as JSON, or an append-entries
    /// request in its binary form).
    async fn post_bytes_timed<A: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Result<(A, Option<PeerClockReading>), TransportError> {
        let client = self.client.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(client) = client else {
            return Err(TransportError::Unreachable {
                addr: addr.to_owned(),
                reason: "cluster TLS is not configured yet".into(),
                sent: false,
            });
        };
        let url = format!("https://{addr}{path}");
        let content_type = if bytes.first() == Some(&APPEND_FORMAT) {
            "application/octet-stream"
        } else {
            "application/json"
        };
        let send = async {
            let sent_raw_ns = coffer_storage::clock::raw_unix_ns();
            let started = std::time::Instant::now();
            let resp = client
                .post(&url)
                .header(http::header::CONTENT_TYPE, content_type)
                .header(clock_headers::SENDER_CLUSTER_TIME, coffer_storage::clock::now_unix_ns())
                .body(bytes)
                .send()
                .await
                .map_err(|e| classify(addr, e))?;
            let reading = resp
                .headers()
                .get(clock_headers::RESPONDER_RAW_TIME)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .map(|peer_raw_ns| PeerClockReading { sent_raw_ns, rtt: started.elapsed(), peer_raw_ns });
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| classify(addr, e))?;
            Ok((decode_answer(addr, status.as_u16(), &body)?, reading))
        };
        match tokio::time::timeout(timeout, send).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout { addr: addr.to_owned(), timeout }),
        }
    }
}

/// A request's JSON body.
fn encode_body<Q: Serialize>(addr: &str, body: &Q) -> Result<Vec<u8>, TransportError> {
    serde_json::to_vec(body)
        .map_err(|e| TransportError::BadResponse { addr: addr.to_owned(), reason: format!("encode: {e}") })
}

/// A cluster answer's JSON body, when its status is a success.
fn decode_answer<A: DeserializeOwned>(addr: &str, status: u16, body: &[u8]) -> Result<A, TransportError> {
    if !(200..300).contains(&status) {
        return Err(TransportError::BadResponse {
            addr: addr.to_owned(),
            reason: format!("status {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
        });
    }
    serde_json::from_slice(body)
        .map_err(|e| TransportError::BadResponse { addr: addr.to_owned(), reason: format!("decode: {e}") })
}

/// A peer's raw clock read from its answer, with when the request left and how long it took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerClockReading {
    sent_raw_ns: i64,
    rtt: Duration,
    peer_raw_ns: i64,
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

/// When each peer last accepted this node's leadership: the send time of the newest
/// append-entries request (heartbeats included) it answered without refusing the vote it
/// carried, and that vote. A follower that accepts one does not vote for another candidate for
/// openraft's leader lease (`election_timeout_max`) after receiving it, and cannot stand itself
/// before that lease and then its election timeout have passed without hearing from
/// the leader: the basis of lease reads ([`crate::node::RaftNode`]'s read barrier).
#[derive(Default)]
pub(crate) struct LeaseAcks {
    acks: std::sync::Mutex<std::collections::HashMap<NodeId, (openraft::Vote<NodeId>, std::time::Instant)>>,
}

impl LeaseAcks {
    fn record(&self, peer: NodeId, vote: openraft::Vote<NodeId>, sent: std::time::Instant) {
        let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        match acks.get(&peer) {
            Some((v, t)) if *v == vote && *t >= sent => {}
            _ => {
                acks.insert(peer, (vote, sent));
            }
        }
    }

    /// Whether `peer` accepted `vote` in a request sent at or after `since`.
    pub(crate) fn acked_since(
        &self,
        peer: NodeId,
        vote: &openraft::Vote<NodeId>,
        since: std::time::Instant,
    ) -> bool {
        let acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        acks.get(&peer).is_some_and(|(v, t)| v == vote && *t >= since)
    }
}

/// Creates one [`Network`] per peer (openraft's factory).
#[derive(Clone)]
pub struct NetworkFactory {
    pub(crate) id: NodeId,
    pub(crate) client: Arc<ClusterClient>,
    pub(crate) lease: Arc<LeaseAcks>,
    /// The log's newest entries with their binary form (see [`encode_append`]).
    pub(crate) recent: Arc<Mutex<Recent>>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        Network {
            id: self.id,
            target,
            addr: node.cluster_addr.clone(),
            client: Arc::clone(&self.client),
            lease: Arc::clone(&self.lease),
            recent: Arc::clone(&self.recent),
        }
    }
}

/// The connection to one peer.
pub struct Network {
    id: NodeId,
    target: NodeId,
    addr: String,
    client: Arc<ClusterClient>,
    lease: Arc<LeaseAcks>,
    recent: Arc<Mutex<Recent>>,
}

/// First byte of an append-entries request in its binary form (a JSON body starts with `{`).
pub(crate) const APPEND_FORMAT: u8 = 2;

/// The fields of an append-entries request other than its entries (JSON in the binary form).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendHead {
    vote: openraft::Vote<NodeId>,
    prev_log_id: Option<LogId>,
    leader_commit: Option<LogId>,
}

/// An append-entries request in its binary form:
///
/// ```text
/// 2 | head length u32 LE | head (JSON: vote, prev_log_id, leader_commit)
///   | entry count u32 LE | (entry length u32 LE | entry (crate::entry_codec))*
/// ```
///
/// Each entry's bytes are taken from the log's cache of what it wrote for that entry (the
/// entries a leader sends are nearly always the ones it just appended): an entry is encoded
/// once, for the log, not once more for every follower. An entry not in the cache under exactly
/// its log id is encoded here. Followers also read the JSON form (`serde_json` of the request),
/// which leaders before `4ba462b` send.
pub(crate) fn encode_append(
    rpc: &AppendEntriesRequest<TypeConfig>,
    recent: &Mutex<Recent>,
) -> Result<Vec<u8>, String> {
    let cached: Vec<Option<bytes::Bytes>> = {
        let recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        rpc.entries.iter().map(|e| recent.body_of(e.get_log_id())).collect()
    };
    let head = AppendHead { vote: rpc.vote, prev_log_id: rpc.prev_log_id, leader_commit: rpc.leader_commit };
    let head = serde_json::to_vec(&head).map_err(|e| e.to_string())?;
    let size: usize = cached.iter().flatten().map(|b| 4 + b.len()).sum();
    let mut out = Vec::with_capacity(1 + 4 + head.len() + 4 + size + 256);
    out.push(APPEND_FORMAT);
    put_bytes(&mut out, &head)?;
    put_len(&mut out, rpc.entries.len())?;
    for (entry, body) in rpc.entries.iter().zip(&cached) {
        match body {
            Some(body) => put_bytes(&mut out, body)?,
            None => crate::entry_codec::encode_framed(entry, &mut out)?,
        }
    }
    Ok(out)
}

/// Reads an append-entries request body, binary ([`encode_append`]) or JSON, and keeps the
/// binary form of each entry as received, for the log to write as it came
/// ([`crate::log_store::LogStore::offer_received`]; none from a JSON body: the log encodes
/// those entries itself).
pub(crate) fn decode_append(
    body: &[u8],
) -> Result<(AppendEntriesRequest<TypeConfig>, ReceivedBodies), String> {
    let Some((&APPEND_FORMAT, rest)) = body.split_first() else {
        let rpc = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        return Ok((rpc, Vec::new()));
    };
    let mut r = crate::entry_codec::Reader::new(rest);
    let head: AppendHead = serde_json::from_slice(r.bytes()?).map_err(|e| e.to_string())?;
    // An entry takes at least its length and 25 bytes (log id and payload tag).
    let count = r.count(29)?;
    let mut entries = Vec::with_capacity(count);
    let mut bodies = Vec::with_capacity(count);
    for _ in 0..count {
        let bytes = r.bytes()?;
        let entry = crate::entry_codec::decode(bytes)?;
        bodies.push((*entry.get_log_id(), bytes::Bytes::copy_from_slice(bytes)));
        entries.push(entry);
    }
    if r.remaining() != 0 {
        return Err(format!("{} bytes after the append-entries request", r.remaining()));
    }
    let rpc = AppendEntriesRequest {
        vote: head.vote,
        prev_log_id: head.prev_log_id,
        entries,
        leader_commit: head.leader_commit,
    };
    Ok((rpc, bodies))
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
        self.call_json(path, action, encode_body(&self.addr, req), option).await
    }

    /// [`Self::call`] with the request already encoded (JSON, or an append-entries frame).
    async fn call_json<A, E>(
        &self,
        path: &str,
        action: RPCTypes,
        body: Result<Vec<u8>, TransportError>,
        option: &RPCOption,
    ) -> RpcResult<A, E>
    where
        A: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.soft_ttl();
        let answer: Result<(Result<A, OrRaftError<NodeId, E>>, _), TransportError> = match body {
            Ok(body) => self.client.rpc_json_timed(&self.addr, path, body, timeout).await,
            Err(e) => Err(e),
        };
        let answer = answer.map(|(a, reading)| {
            // Only a leader sends append-entries: its peers' clocks set the cluster's time.
            if let (RPCTypes::AppendEntries, Some(r)) = (&action, reading) {
                self.client.observe_peer_clock(self.target, r);
            }
            a
        });
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
        // Taken before the request leaves: the lease counts from no later than the peer's
        // receipt.
        let sent = std::time::Instant::now();
        let vote = rpc.vote;
        let body = encode_append(&rpc, &self.recent).map_err(|e| TransportError::BadResponse {
            addr: self.addr.clone(),
            reason: format!("encode: {e}"),
        });
        let answer = self.call_json(paths::APPEND, RPCTypes::AppendEntries, body, &option).await;
        if let Ok(a) = &answer {
            if !matches!(a, AppendEntriesResponse::HigherVote(_)) {
                self.lease.record(self.target, vote, sent);
            }
        }
        answer
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
