//! `coffer server` with `storage "raft"`: open the node's raft data, bind the cluster port, and
//! wire the cluster glue to the core and the HTTP layer.
//!
//! Addresses, as Vault derives them: the cluster listener is the first listener's
//! `cluster_address`, or its address with the port plus one; the node advertises `api_addr`
//! (default: the first listener's address) and `cluster_addr` (default: the cluster listener).
//! A node's name is `storage.raft.node_id`, or a name generated once and kept in
//! `<path>/node-id`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;

use coffer_raft::{NodeInfo, RaftConfig, RaftNode};

use crate::cluster::forward::{ForwardedRequest, FORWARD_PATH};
use crate::cluster::{node_id_of, ClusterNode, ClusterSettings, JoinTarget};
use crate::config::{Config, RaftTuning, RetryJoin};
use crate::http::state::HttpState;

/// An opened raft node, its glue and its bound cluster port.
pub struct RaftServer {
    pub raft: Arc<RaftNode>,
    pub cluster: Arc<ClusterNode>,
    pub cluster_listener: tokio::net::TcpListener,
}

/// The node name: configured, or generated once and kept with the data.
fn node_name(dir: &Path, configured: Option<&str>) -> anyhow::Result<String> {
    if let Some(n) = configured {
        return Ok(n.to_owned());
    }
    let file = dir.join("node-id");
    match std::fs::read_to_string(&file) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let name = uuid::Uuid::new_v4().to_string();
            std::fs::write(&file, &name).with_context(|| format!("cannot write {}", file.display()))?;
            Ok(name)
        }
    }
}

fn strip_scheme(addr: &str) -> &str {
    addr.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/')
}

fn retry_targets(list: &[RetryJoin]) -> anyhow::Result<Vec<JoinTarget>> {
    list.iter()
        .map(|j| {
            let leader_ca_cert = match &j.leader_ca_cert_file {
                Some(f) => {
                    Some(std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?)
                }
                None => None,
            };
            Ok(JoinTarget { leader_api_addr: j.leader_api_addr.clone(), leader_ca_cert, non_voter: false })
        })
        .collect()
}

/// Opens the raft node for `config` (storage must be raft).
pub async fn open(
    config: &Config,
    dir: &Path,
    node_id: Option<&str>,
    retry_join: &[RetryJoin],
    tuning: &RaftTuning,
) -> anyhow::Result<RaftServer> {
    let Some(first) = config.listeners.first() else { bail!("raft storage needs a listener") };
    let scheme = if first.tls.is_some() { "https" } else { "http" };
    let cluster_bind: SocketAddr = first
        .cluster_address
        .unwrap_or_else(|| SocketAddr::new(first.address.ip(), first.address.port().saturating_add(1)));
    let cluster_listener = tokio::net::TcpListener::bind(cluster_bind)
        .await
        .with_context(|| format!("cannot listen on the cluster address {cluster_bind}"))?;
    let bound = cluster_listener.local_addr()?;
    let api_addr = config.api_addr.clone().unwrap_or_else(|| format!("{scheme}://{}", first.address));
    let cluster_addr = match &config.cluster_addr {
        Some(a) => strip_scheme(a).to_owned(),
        None => bound.to_string(),
    };
    let name = node_name(dir, node_id)?;
    let mut rc = RaftConfig::new(
        node_id_of(&name),
        dir.join("raft"),
        NodeInfo { name: name.clone(), api_addr: api_addr.clone(), cluster_addr: cluster_addr.clone() },
    );
    rc.cluster_name = "coffer".into();
    rc.heartbeat_interval = tuning.heartbeat_interval;
    rc.set_election_timeout(tuning.election_timeout);
    rc.snapshot_threshold = tuning.snapshot_threshold;
    rc.logs_to_keep_after_snapshot = tuning.trailing_logs;
    rc.source_address = Some(bound.ip());
    // A read on a cut-off node fails within two election timeouts (R3) instead of waiting longer.
    rc.read_timeout = tuning.election_timeout * 2;
    let raft =
        RaftNode::open(rc).await.with_context(|| format!("cannot open raft storage in {}", dir.display()))?;
    tracing::info!(node = %name, api = %api_addr, cluster = %cluster_addr, "raft node opened");
    let settings = ClusterSettings {
        node_name: name,
        api_addr,
        cluster_addr,
        forwarding: tuning.request_forwarding,
        stale_reads_by_default: tuning.stale_reads,
        retry_join: retry_targets(retry_join)?,
    };
    let cluster = ClusterNode::new(Arc::clone(&raft), settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(RaftServer { raft, cluster, cluster_listener })
}

/// Serves the cluster port: raft RPCs, and requests standbys forward, which run through
/// `http` as if they had arrived here.
pub fn serve_cluster_port(server: RaftServer, http: Arc<HttpState>) -> tokio::task::JoinHandle<()> {
    let extra: coffer_raft::ExtraHandler = Arc::new(move |req: http::Request<Bytes>| {
        let http = Arc::clone(&http);
        Box::pin(async move {
            let reply = |status: u16, body: Vec<u8>| {
                http::Response::builder()
                    .status(status)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Bytes::from(body))
                    .unwrap_or_else(|_| http::Response::new(Bytes::new()))
            };
            if req.uri().path() != FORWARD_PATH || req.method() != http::Method::POST {
                return reply(404, br#"{"errors":[]}"#.to_vec());
            }
            let fwd: ForwardedRequest = match serde_json::from_slice(req.body()) {
                Ok(f) => f,
                Err(_) => return reply(400, br#"{"errors":["invalid forwarded request"]}"#.to_vec()),
            };
            let resp = crate::http::dispatch::serve_forwarded(&http, fwd).await;
            reply(200, serde_json::to_vec(&resp).unwrap_or_default())
        })
    });
    tokio::spawn(coffer_raft::serve_cluster(server.cluster_listener, server.raft, Some(extra)))
}
