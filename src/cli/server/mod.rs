//! `coffer server`: load the configuration, harden the process, open storage, serve.

mod dev_cluster;
mod logging;
mod raft;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use base64::Engine;
use clap::Args;

use coffer_raft::RaftNode;
use coffer_storage::replication::{Replication, SingleNode};
use coffer_storage::{MemStorage, SledStorage, Storage, WithLocal};

use crate::cluster::ClusterNode;
use crate::config::{Config, ListenerConfig, ListenerLimits, SealConfig, StorageConfig};
use crate::core::request::Request;
use crate::core::seal::{InitParams, SealSource};
use crate::core::{Core, CoreConfig};
use crate::http::{self, ConnLimits, Listener};
use crate::policy::Operation;
use crate::secret::ClientToken;

/// Arguments of `coffer server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Configuration file (TOML, or Vault-style HCL / JSON).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Development mode: in memory, initialised, unsealed, plain HTTP on 127.0.0.1:8200.
    #[arg(long)]
    pub dev: bool,
    /// Root token ID to create in dev mode.
    #[arg(long, value_name = "ID", env = "VAULT_DEV_ROOT_TOKEN_ID")]
    pub dev_root_token_id: Option<String>,
    /// Address the dev server listens on (with --dev-cluster: the first node's).
    #[arg(long, value_name = "ADDR", env = "VAULT_DEV_LISTEN_ADDRESS", default_value = "127.0.0.1:8200")]
    pub dev_listen_address: String,
    /// Development cluster: N raft nodes in this process on loopback (API ports from
    /// --dev-listen-address upwards in steps of two, each cluster port one above its API
    /// port), initialised and unsealed, data in a temporary directory removed at exit.
    #[arg(long, value_name = "N", conflicts_with_all = ["dev", "config"])]
    pub dev_cluster: Option<u8>,
    /// Log level (trace, debug, info, warn, error).
    #[arg(long, value_name = "LEVEL", env = "COFFER_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    if let Some(n) = args.dev_cluster {
        return dev_cluster::run(&args, n).await;
    }
    let mut config = if args.dev {
        dev_config(&args)?
    } else {
        let Some(path) = &args.config else {
            bail!("either --config FILE, --dev or --dev-cluster N is required")
        };
        crate::config::load(path).with_context(|| format!("invalid configuration in {}", path.display()))?
    };
    prepare_process(&config, args.log_level.as_deref())?;
    let node = open_node(&mut config).await?;
    let mut bound = Vec::new();
    for l in &config.listeners {
        bound.push(bind(l).await?);
    }
    // A dev server is set up completely (root token, `secret/` mount) before it serves: a
    // client that sees it healthy can use it at once. Connections made meanwhile wait in the
    // listen backlog.
    if args.dev {
        let keys = dev_bootstrap(&node.core, args.dev_root_token_id.clone()).await?;
        print_dev_banner(&args, &keys);
    }
    let serving = serve_node(node, bound);
    wait_for_signal().await;
    tracing::info!("shutting down");
    serving.stop(true).await;
    Ok(())
}

/// Once per process: logging, the TLS crypto provider, configuration warnings, hardening.
fn prepare_process(config: &Config, log_level: Option<&str>) -> anyhow::Result<()> {
    let level =
        log_level.map(str::to_owned).or_else(|| config.log_level.clone()).unwrap_or_else(|| "info".into());
    logging::init(&level);
    let _ = rustls::crypto::ring::default_provider().install_default();
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }

    let hardening = crate::process::harden(config.disable_mlock);
    if !hardening.core_dumps_disabled {
        tracing::warn!("could not disable core dumps (RLIMIT_CORE)");
    }
    if !hardening.non_dumpable {
        tracing::warn!("could not set PR_SET_DUMPABLE=0");
    }
    if config.disable_mlock {
        tracing::warn!("disable_mlock is set: key material may be swapped to disk");
    } else if let Some(e) = &hardening.mlock_error {
        bail!(
            "failed to lock memory ({e}); grant CAP_IPC_LOCK or raise RLIMIT_MEMLOCK, or set disable_mlock = true to run without it"
        );
    }
    Ok(())
}

/// A node whose storage is open and whose core exists (auto-unsealed with a static seal), not
/// yet serving.
struct Node {
    core: Arc<Core>,
    cluster: Option<Arc<ClusterNode>>,
    raft_server: Option<raft::RaftServer>,
    /// The first listener's request size limit and read timeout (for forwarded requests).
    forward_limits: (usize, std::time::Duration),
}

/// Opens storage and raft (when configured), creates the core and auto-unseals it.
async fn open_node(config: &mut Config) -> anyhow::Result<Node> {
    let mut raft_server = None;
    let (storage, replication): (Arc<dyn Storage>, Arc<dyn Replication>) = match &config.storage {
        StorageConfig::Memory => (Arc::new(MemStorage::new()), Arc::new(SingleNode::new())),
        StorageConfig::File { path } => (
            Arc::new(
                SledStorage::open(path)
                    .with_context(|| format!("cannot open storage at {}", path.display()))?,
            ),
            Arc::new(SingleNode::new()),
        ),
        StorageConfig::Raft { path, node_id, retry_join, tuning } => {
            let server = raft::open(config, path, node_id.as_deref(), retry_join, tuning).await?;
            let replicated = Arc::new(server.raft.storage());
            // This node's own state (its audit chain heads), never replicated: `local/` keys.
            let local_dir = path.join("local");
            let local = SledStorage::open(&local_dir)
                .with_context(|| format!("cannot open node-local storage at {}", local_dir.display()))?;
            raft_server = Some(server);
            let storage = WithLocal::new(replicated.clone(), Arc::new(local));
            (Arc::new(storage) as Arc<dyn Storage>, replicated as Arc<dyn Replication>)
        }
    };
    let seal = match std::mem::replace(&mut config.seal, SealConfig::Shamir) {
        SealConfig::Shamir => SealSource::Shamir,
        SealConfig::Static(s) => {
            tracing::info!(key_id = %s.current_key_id, "static seal configured");
            SealSource::Static { key: s.current_key, key_id: s.current_key_id }
        }
    };
    let unauthenticated_generate_root = config.unauthenticated_generate_root();
    let unauthenticated_rekey = config.unauthenticated_rekey();
    if unauthenticated_generate_root {
        tracing::warn!(
            "sys/generate-root is served without a token (disable_unauthed_generate_root_endpoints = false)"
        );
    }
    if unauthenticated_rekey {
        tracing::warn!("sys/rekey is served without a token (disable_unauthed_rekey_endpoints = false)");
    }
    let core_config = CoreConfig {
        default_lease_ttl: config.default_lease_ttl,
        max_lease_ttl: config.max_lease_ttl,
        storage_type: config.storage.type_name().into(),
        cluster_name: config.cluster_name.clone(),
        api_addr: config.api_addr.clone(),
        cluster_addr: config.cluster_addr.clone(),
        unauthenticated_generate_root,
        unauthenticated_rekey,
        audit: config.audit_settings(),
        ..CoreConfig::default()
    };
    let core = Core::new(core_config, storage, replication, seal, Arc::new(crate::builtin::Builtin));
    let cluster = raft_server.as_ref().map(|s| Arc::clone(&s.cluster));
    if let Some(c) = &cluster {
        c.attach(&core);
    }
    core.start().await.context("auto-unseal failed")?;
    let forward_limits = config
        .listeners
        .first()
        .map(|l| (l.max_request_size, l.limits.read_timeout))
        .unwrap_or((crate::config::limits::DEFAULT_MAX_REQUEST_SIZE, std::time::Duration::from_secs(30)));
    Ok(Node { core, cluster, raft_server, forward_limits })
}

/// A node that serves its listeners (and its cluster port, on raft).
struct Serving {
    core: Arc<Core>,
    cluster: Option<Arc<ClusterNode>>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    cluster_port: Option<(tokio::task::JoinHandle<()>, Arc<RaftNode>)>,
}

/// Starts serving `listeners` (and the cluster port), then starts `retry_join`.
fn serve_node(node: Node, listeners: Vec<Listener>) -> Serving {
    let Node { core, cluster, raft_server, forward_limits: (max, read_timeout) } = node;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut cluster_port = None;
    if let Some(server) = raft_server {
        let state = Arc::new(
            http::state::HttpState::new(Arc::clone(&core), max, read_timeout).with_cluster(cluster.clone()),
        );
        let raft = Arc::clone(&server.raft);
        cluster_port = Some((raft::serve_cluster_port(server, state), raft));
    }
    let tasks = listeners
        .into_iter()
        .map(|l| tokio::spawn(http::serve(Arc::clone(&core), l, cluster.clone(), rx.clone())))
        .collect();
    if let Some(c) = &cluster {
        c.spawn_retry_join();
    }
    Serving { core, cluster, shutdown: tx, tasks, cluster_port }
}

impl Serving {
    /// Stops serving, seals, and stops raft. With `hand_over`, a leader hands leadership to
    /// another node before it seals; without, raft stops first (every node is going away).
    async fn stop(self, hand_over: bool) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if hand_over {
            self.core.seal().await;
        }
        if let Some((task, raft)) = self.cluster_port {
            task.abort();
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(error = %e, "raft shutdown");
            }
        }
        if !hand_over {
            self.core.seal().await;
        }
    }
}

async fn bind(l: &ListenerConfig) -> anyhow::Result<Listener> {
    let tcp = tokio::net::TcpListener::bind(l.address)
        .await
        .with_context(|| format!("cannot listen on {}", l.address))?;
    listener(tcp, l)
}

/// `l`'s settings on a bound socket.
fn listener(tcp: tokio::net::TcpListener, l: &ListenerConfig) -> anyhow::Result<Listener> {
    let local = tcp.local_addr()?;
    let tls = match &l.tls {
        Some(files) => Some(http::tls_config(&files.cert_file, &files.key_file)?),
        None => {
            tracing::warn!(address = %local, "TLS is disabled on this listener (tls_disable): traffic, tokens and secrets travel in clear text");
            None
        }
    };
    tracing::info!(address = %local, tls = tls.is_some(), "listening");
    Ok(Listener {
        tcp,
        tls,
        max_request_size: l.max_request_size,
        limits: conn_limits(&l.limits),
        unauthenticated_metrics_access: l.unauthenticated_metrics_access,
    })
}

/// The configured limits as the HTTP layer takes them.
fn conn_limits(l: &ListenerLimits) -> ConnLimits {
    ConnLimits {
        read_header_timeout: l.read_header_timeout,
        read_timeout: l.read_timeout,
        idle_timeout: l.idle_timeout,
        write_timeout: l.write_timeout,
        tls_handshake_timeout: l.tls_handshake_timeout,
        max_connections: l.max_connections,
    }
}

fn dev_config(args: &ServerArgs) -> anyhow::Result<Config> {
    let address = args
        .dev_listen_address
        .parse()
        .with_context(|| format!("invalid --dev-listen-address {}", args.dev_listen_address))?;
    Ok(Config {
        storage: StorageConfig::Memory,
        listeners: vec![ListenerConfig {
            address,
            tls: None,
            max_request_size: crate::config::limits::DEFAULT_MAX_REQUEST_SIZE,
            limits: ListenerLimits::default(),
            cluster_address: None,
            disable_unauthed_generate_root_endpoints: true,
            disable_unauthed_rekey_endpoints: true,
            // As `bao server -dev`: metrics are readable without a token.
            unauthenticated_metrics_access: true,
        }],
        seal: SealConfig::Shamir,
        api_addr: Some(format!("http://{}", args.dev_listen_address)),
        cluster_addr: None,
        cluster_name: None,
        disable_mlock: true,
        default_lease_ttl: crate::core::DEFAULT_MAX_TTL,
        max_lease_ttl: crate::core::DEFAULT_MAX_TTL,
        log_level: None,
        audit: Vec::new(),
        // As OpenBao's dev server: audit devices may be created through the API.
        unsafe_allow_api_audit_creation: true,
        allow_audit_log_prefixing: false,
        warnings: Vec::new(),
    })
}

/// What a dev server prints: its unseal key (base64) and root token.
struct DevKeys {
    unseal_key: zeroize::Zeroizing<String>,
    root_token: ClientToken,
}

/// Initialises a dev server's core with one key share, unseals it, and mounts `secret/` as
/// KV version 2 (as Vault's dev server does).
async fn dev_bootstrap(core: &Arc<Core>, root_token_id: Option<String>) -> anyhow::Result<DevKeys> {
    let params = InitParams { secret_shares: 1, secret_threshold: 1, root_token_id, ..InitParams::default() };
    let result = core.init(params).await.map_err(|e| anyhow::anyhow!("dev init failed: {e}"))?;
    let key = result.keys.first().context("dev init returned no key")?;
    let unseal_key = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.expose()));
    core.unseal(Some(&unseal_key), false).await.map_err(|e| anyhow::anyhow!("dev unseal failed: {e}"))?;
    // Mounted through the normal request path with the root token, so it is audited and
    // stored like any other mount.
    let mut req = Request::new(Operation::Update, "sys/mounts/secret");
    req.token = Some(result.root_token.duplicate());
    if let serde_json::Value::Object(m) = serde_json::json!({
        "type": "kv",
        "description": "key/value secret storage",
        "options": {"version": "2"},
    }) {
        req.data = m;
    }
    core.handle(req).await.map_err(|e| anyhow::anyhow!("dev mount of secret/ failed: {e}"))?;
    Ok(DevKeys { unseal_key, root_token: result.root_token })
}

fn print_dev_banner(args: &ServerArgs, keys: &DevKeys) {
    // Dev mode prints its unseal key and root token on purpose, as Vault's dev server does.
    println!(
        "WARNING! dev mode is enabled! In this mode, coffer runs entirely in-memory\n\
         and starts unsealed with a single unseal key. The root token is already\n\
         authenticated to the CLI, so you can immediately begin using coffer.\n\n\
         You may need to set the following environment variables:\n\n    \
         $ export VAULT_ADDR='http://{addr}'\n\n\
         The unseal key and root token are displayed below in case you want to\n\
         seal/unseal the Vault or re-authenticate.\n\n\
         Unseal Key: {key}\n\
         Root Token: {token}\n\n\
         Development mode should NOT be used in production installations!\n",
        addr = args.dev_listen_address,
        key = keys.unseal_key.as_str(),
        token = keys.root_token.expose(),
    );
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        // Without signal handlers, run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
