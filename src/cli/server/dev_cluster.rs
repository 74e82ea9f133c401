//! `coffer server --dev-cluster N`: N raft nodes in this process, for trying a cluster.
//!
//! Layout: node *i* (1-based) serves its API on the host of `--dev-listen-address` at the
//! given port + 2(*i* − 1), and its cluster port one above that (with the default
//! `127.0.0.1:8200` and three nodes: API 8200, 8202, 8204; cluster 8201, 8203, 8205). Port 0
//! gives every listener an ephemeral port (tests). One host address keeps it working where
//! only 127.0.0.1 is configured on loopback (macOS).
//!
//! Each node is a full server (its own raft storage, core, API listener and cluster port) in one
//! tokio runtime; the data lives in one temporary directory that is removed at exit. The nodes
//! are set up as an operator would: node 1 is initialised with one Shamir key share (as `--dev`
//! does) and gets the `secret/` KV v2 mount, then every other node runs the join handshake with
//! node 1 and is unsealed with the same key. The banner is printed once every node is an
//! unsealed voter.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use coffer_storage::replication::Role;

use super::{
    dev_bootstrap, listener, open_node, prepare_process, serve_node, wait_for_signal, DevKeys, ServerArgs,
    Serving,
};
use crate::cluster::JoinTarget;
use crate::config::{Config, ListenerConfig, ListenerLimits, RaftTuning, SealConfig, StorageConfig};

/// Largest cluster `--dev-cluster` starts.
const MAX_NODES: u8 = 7;
/// How long setting up the cluster (joins, replication) may take.
const SETUP_DEADLINE: Duration = Duration::from_secs(60);

/// A temporary directory removed when dropped (at exit, and on every error path).
struct TempRoot(PathBuf);

impl TempRoot {
    fn create() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("coffer-dev-cluster-{}", uuid::Uuid::new_v4().simple()));
        let mut builder = std::fs::DirBuilder::new();
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "could not remove the dev cluster's data");
        }
    }
}

/// One node of the dev cluster as it is printed.
struct NodeAddrs {
    name: String,
    api_addr: String,
    cluster_addr: Option<SocketAddr>,
}

/// The configuration of node `index` (0-based) listening on `api`, with its data under `root`.
fn node_config(root: &Path, index: usize, api: SocketAddr, cluster: SocketAddr) -> Config {
    let name = format!("node{}", index + 1);
    Config {
        storage: StorageConfig::Raft {
            path: root.join(&name),
            node_id: Some(name),
            retry_join: Vec::new(),
            tuning: RaftTuning::default(),
        },
        listeners: vec![ListenerConfig {
            address: api,
            tls: None,
            max_request_size: crate::config::limits::DEFAULT_MAX_REQUEST_SIZE,
            limits: ListenerLimits::default(),
            cluster_address: Some(cluster),
            disable_unauthed_generate_root_endpoints: true,
            disable_unauthed_rekey_endpoints: true,
            // As the single-node dev server: metrics are readable without a token.
            unauthenticated_metrics_access: true,
        }],
        seal: SealConfig::Shamir,
        api_addr: Some(format!("http://{api}")),
        cluster_addr: None,
        cluster_name: None,
        disable_mlock: true,
        default_lease_ttl: crate::core::DEFAULT_MAX_TTL,
        max_lease_ttl: crate::core::DEFAULT_MAX_TTL,
        log_level: None,
        audit: Vec::new(),
        // As the single-node dev server: audit devices may be created through the API.
        unsafe_allow_api_audit_creation: true,
        allow_audit_log_prefixing: false,
        warnings: Vec::new(),
    }
}

/// The API and cluster bind addresses of node `index` (0-based) for the base address `base`.
fn node_addresses(base: SocketAddr, index: usize) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    if base.port() == 0 {
        return Ok((base, base));
    }
    let offset = u16::try_from(index * 2).context("too many nodes")?;
    let api = base.port().checked_add(offset);
    let cluster = api.and_then(|p| p.checked_add(1));
    match (api, cluster) {
        (Some(a), Some(c)) => Ok((SocketAddr::new(base.ip(), a), SocketAddr::new(base.ip(), c))),
        _ => bail!("--dev-listen-address {base}: the ports of {} nodes do not fit below 65536", index + 1),
    }
}

/// Runs an `n`-node dev cluster until SIGINT/SIGTERM.
pub async fn run(args: &ServerArgs, n: u8) -> anyhow::Result<()> {
    if n == 0 || n > MAX_NODES {
        bail!("--dev-cluster takes a node count from 1 to {MAX_NODES} (3 is the usual choice), not {n}");
    }
    let base: SocketAddr = args
        .dev_listen_address
        .parse()
        .with_context(|| format!("invalid --dev-listen-address {}", args.dev_listen_address))?;
    let root = TempRoot::create()?;
    let mut nodes: Vec<Serving> = Vec::new();
    let result = start(args, base, n, &root, &mut nodes).await;
    if result.is_ok() {
        wait_for_signal().await;
        tracing::info!("shutting down the dev cluster");
    }
    // Every node goes away: stop raft everywhere first so that no leader waits for a successor.
    let stopping: Vec<_> = nodes.into_iter().map(|s| tokio::spawn(s.stop(false))).collect();
    for t in stopping {
        let _ = t.await;
    }
    drop(root);
    result
}

/// Starts, sets up and announces the cluster; the nodes started so far are pushed to `nodes`
/// (so that they are stopped on error too).
async fn start(
    args: &ServerArgs,
    base: SocketAddr,
    n: u8,
    root: &TempRoot,
    nodes: &mut Vec<Serving>,
) -> anyhow::Result<()> {
    let mut addrs = Vec::new();
    for index in 0..usize::from(n) {
        let (api_bind, cluster_bind) = node_addresses(base, index)?;
        let tcp = tokio::net::TcpListener::bind(api_bind)
            .await
            .with_context(|| format!("cannot listen on {api_bind}"))?;
        let api = tcp.local_addr()?;
        let mut config = node_config(root.path(), index, api, cluster_bind);
        if index == 0 {
            prepare_process(&config, args.log_level.as_deref())?;
        }
        let node = open_node(&mut config).await?;
        let first = config.listeners.first().context("dev node without a listener")?;
        let bound = listener(tcp, first)?;
        let cluster_addr = node.cluster.as_ref().and_then(|c| c.settings().cluster_addr.parse().ok());
        addrs.push(NodeAddrs {
            name: format!("node{}", index + 1),
            api_addr: format!("http://{api}"),
            cluster_addr,
        });
        nodes.push(serve_node(node, vec![bound]));
    }
    let Some((first, others)) = nodes.split_first() else { bail!("no nodes") };
    let keys = dev_bootstrap(&first.core, args.dev_root_token_id.clone()).await?;
    let leader_api_addr = addrs.first().map(|a| a.api_addr.clone()).unwrap_or_default();
    for (node, a) in others.iter().zip(addrs.iter().skip(1)) {
        let cluster = node.cluster.as_ref().context("dev node without raft")?;
        let target =
            JoinTarget { leader_api_addr: leader_api_addr.clone(), leader_ca_cert: None, non_voter: false };
        cluster.request_join(target).await.map_err(|e| anyhow::anyhow!("{}: join failed: {e}", a.name))?;
        // Unsealing a joining node proves the key to the leader, installs its cluster
        // certificate and waits for the replicated data.
        node.core
            .unseal(Some(&keys.unseal_key), false)
            .await
            .map_err(|e| anyhow::anyhow!("{}: unseal failed: {e}", a.name))?;
    }
    wait_until_formed(nodes, usize::from(n)).await?;
    print_banner(root.path(), nodes, &addrs, &keys);
    Ok(())
}

/// Waits (bounded) until the cluster has `n` voters that all agree on one leader and every
/// node is unsealed.
async fn wait_until_formed(nodes: &[Serving], n: usize) -> anyhow::Result<()> {
    let end = tokio::time::Instant::now() + SETUP_DEADLINE;
    loop {
        let formed = nodes.iter().all(|s| {
            let Some(c) = &s.cluster else { return false };
            let m = c.raft().metrics();
            !s.core.is_sealed() && m.voters.len() == n && m.leader.is_some()
        });
        if formed {
            return Ok(());
        }
        if tokio::time::Instant::now() >= end {
            bail!("the dev cluster did not form within {SETUP_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn print_banner(dir: &Path, nodes: &[Serving], addrs: &[NodeAddrs], keys: &DevKeys) {
    let mut lines = String::new();
    let mut leader = None;
    for (s, a) in nodes.iter().zip(addrs) {
        let role = match s.cluster.as_ref().map(|c| c.raft().role()) {
            Some(Role::Leader) => {
                leader = Some(a);
                "leader"
            }
            _ => "standby",
        };
        let cluster = a.cluster_addr.map(|c| c.to_string()).unwrap_or_default();
        lines.push_str(&format!("    {}: {} (cluster {cluster}, {role})\n", a.name, a.api_addr));
    }
    let first = addrs.first().map(|a| a.api_addr.as_str()).unwrap_or_default();
    let leader = leader.map(|a| format!("{} {}", a.name, a.api_addr)).unwrap_or_else(|| "(electing)".into());
    // Dev mode prints its unseal key and root token on purpose, as Vault's dev server does.
    println!(
        "WARNING! dev cluster mode is enabled! In this mode, coffer runs {n} raft nodes in\n\
         this process on loopback, keeps their data in a temporary directory that is removed\n\
         at exit, and starts them initialised and unsealed with a single unseal key.\n\n\
         Nodes:\n{lines}\n\
         Leader: {leader}\n\
         Data: {dir}\n\n\
         Every node serves reads and writes (standbys forward writes to the leader). You may\n\
         need to set the following environment variables:\n\n    \
         $ export VAULT_ADDR='{first}'\n\n\
         The unseal key and root token are displayed below in case you want to\n\
         seal/unseal a node or re-authenticate.\n\n\
         Unseal Key: {key}\n\
         Root Token: {token}\n\n\
         Development mode should NOT be used in production installations!\n",
        n = nodes.len(),
        dir = dir.display(),
        key = keys.unseal_key.as_str(),
        token = keys.root_token.expose(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_take_consecutive_port_pairs() {
        let base: SocketAddr = "127.0.0.1:8200".parse().unwrap();
        let got: Vec<_> = (0..3).map(|i| node_addresses(base, i).unwrap()).collect();
        let want: Vec<(SocketAddr, SocketAddr)> = [(8200, 8201), (8202, 8203), (8204, 8205)]
            .iter()
            .map(|(a, c)| (SocketAddr::new(base.ip(), *a), SocketAddr::new(base.ip(), *c)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn port_zero_means_ephemeral_ports_everywhere() {
        let base: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(node_addresses(base, 2).unwrap(), (base, base));
    }

    #[test]
    fn ports_past_65535_are_refused() {
        let base: SocketAddr = "127.0.0.1:65533".parse().unwrap();
        assert!(node_addresses(base, 0).is_ok());
        assert!(node_addresses(base, 1).is_err());
    }
}
