//! The core: seal state, request lifecycle, tokens, ACL, routing.
//!
//! # Request lifecycle ([`Core::handle`])
//!
//! 1. Sealed → `Vault is sealed` (503).
//! 2. The token (if any) goes through [`Core::authenticate`], the one check every
//!    token-authenticated endpoint shares (the special `sys/` handlers too, see [`authn`]):
//!    looked up by HMAC, live, from one of its `bound_cidrs`, one use spent if limited.
//!    Unknown, expired or spent → 403 `invalid token`; wrong network → 403.
//! 3. The router finds the longest mount prefix. Paths a backend declares unauthenticated
//!    (logins) may go without a token (a bad one is ignored); everything else needs one.
//! 4. For writes the backend's existence check picks `create` or `update`.
//! 5. The ACL of the token's policies must allow the operation (and `sudo` on root-protected
//!    paths).
//! 6. The request record is audited (fail closed); refusals in steps 2-5 are audited too, with
//!    a request and a response record carrying the error.
//! 7. The backend handles the request with its mount's view. A login response is turned into a
//!    token here, so no backend ever creates tokens itself. The response is audited; a token
//!    whose last use the request spent is revoked.

pub mod authn;
pub mod backend;
pub mod cluster;
pub mod envelope;
pub mod error;
pub mod fields;
pub mod generate_root;
mod invalidation;
pub mod mounts;
mod pipeline;
pub mod policy_store;
pub mod quorum;
pub mod rekey;
pub mod request;
pub mod scheduler;
pub mod seal;
pub mod shamir;
pub mod token;
mod unseal;
pub mod wrapping;

use std::sync::{Arc, RwLock, Weak};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use coffer_storage::replication::{Replication, SingleNode};
use coffer_storage::{Barrier, Storage};

use crate::core::policy_store::PolicyStore;
use crate::core::token::TokenStore;
use crate::metrics::{BarrierReadings, Metrics, Readings, Route};

use self::backend::{BackendEnv, Registry, SystemView};
use self::error::{Error, Result};
use self::mounts::{Factory, MountEntry, Mounts};
use self::seal::{Progress, SealSource};

/// Version string reported by `sys/seal-status` and `sys/health`: the Vault API level coffer
/// implements, with coffer's own version as build metadata.
pub const VERSION: &str = concat!("1.17.0+coffer.", env!("CARGO_PKG_VERSION"));

/// Release date of this build's API level, reported as `build_date`.
pub const BUILD_DATE: &str = "2026-11-24T00:00:00Z";

/// System default and maximum lease TTL (Vault's 768h).
pub const DEFAULT_MAX_TTL: u64 = 768 * 3600;

/// Settings the core needs from the server configuration.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Seconds.
    pub default_lease_ttl: u64,
    /// Seconds.
    pub max_lease_ttl: u64,
    /// `inmem`, `file` or `raft`, as `seal-status` reports it.
    pub storage_type: String,
    pub cluster_name: Option<String>,
    pub api_addr: Option<String>,
    pub cluster_addr: Option<String>,
    /// Serve `sys/generate-root/*` without a token (Vault's default; off by default here, as in
    /// OpenBao).
    pub unauthenticated_generate_root: bool,
    /// Serve `sys/rekey/*` without a token (off by default).
    pub unauthenticated_rekey: bool,
    /// Declared audit devices and the rules for API-created ones.
    pub audit: crate::audit::AuditSettings,
    /// How often the leader-gated scheduler looks for due housekeeping jobs.
    pub scheduler_tick: std::time::Duration,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            default_lease_ttl: DEFAULT_MAX_TTL,
            max_lease_ttl: DEFAULT_MAX_TTL,
            storage_type: "inmem".into(),
            cluster_name: None,
            api_addr: None,
            cluster_addr: None,
            unauthenticated_generate_root: false,
            unauthenticated_rekey: false,
            audit: crate::audit::AuditSettings::default(),
            scheduler_tick: scheduler::DEFAULT_TICK,
        }
    }
}

/// Cluster identity, created at init and stored behind the barrier.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub version: u8,
    pub name: String,
    pub id: String,
}

/// Storage key of the cluster identity.
pub const CLUSTER_PATH: &str = "core/cluster";

/// Everything that exists only while unsealed.
pub struct Active {
    pub audit: crate::audit::AuditBroker,
    pub mounts: Mounts,
    pub tokens: TokenStore,
    pub policies: PolicyStore,
    pub cluster: ClusterInfo,
    pub since: OffsetDateTime,
    /// How many replicated change events the invalidation task has handled, counted like
    /// [`coffer_storage::ChangeFeed::published`]: caches reflect every change published up to
    /// this count.
    pub(crate) handled: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Active {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Active").field("cluster", &self.cluster).finish_non_exhaustive()
    }
}

/// Public seal state, as `sys/seal-status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub kind: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: u8,
    pub n: u8,
    pub progress: usize,
    pub nonce: String,
    pub version: String,
    pub build_date: String,
    pub migration: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub recovery_seal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_seal_type: Option<String>,
    pub storage_type: String,
}

/// The daemon's core.
pub struct Core {
    pub config: CoreConfig,
    barrier: Arc<Barrier>,
    seal_source: SealSource,
    unseal_progress: tokio::sync::Mutex<Progress>,
    /// Root token generation in progress (memory only; see `generate_root`).
    root_generation: tokio::sync::Mutex<Option<generate_root::RootGeneration>>,
    /// Rekey operations in progress (memory only; see `rekey`).
    rekeys: tokio::sync::Mutex<rekey::Rekeys>,
    active: RwLock<Option<Arc<Active>>>,
    /// Serialises init / unseal / seal transitions and the completion of quorum operations
    /// (generate-root, rekey). Lock order: `transition`, then any other lock.
    transition: tokio::sync::Mutex<()>,
    /// Builds backends for mount entries (from the [`Registry`] the server gave).
    factory: Box<Factory>,
    registry: Arc<dyn Registry>,
    /// This node's place in the cluster (`SingleNode` for a standalone server).
    replication: Arc<dyn Replication>,
    /// The leader-gated scheduler's counters.
    pub scheduler_stats: scheduler::Stats,
    /// What `sys/metrics` shows: recorded by the HTTP layer and the request pipeline.
    metrics: Arc<Metrics>,
    /// Init/unseal/seal/join hooks of a replicated deployment (unset when standalone).
    cluster: std::sync::OnceLock<Arc<dyn cluster::ClusterHooks>>,
    me: Weak<Core>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("sealed", &self.is_sealed()).finish_non_exhaustive()
    }
}

impl Core {
    /// A sealed core over `storage`, replicated as `replication` says, with the backends of
    /// `registry`.
    pub fn new(
        config: CoreConfig,
        storage: Arc<dyn Storage>,
        replication: Arc<dyn Replication>,
        seal_source: SealSource,
        registry: Arc<dyn Registry>,
    ) -> Arc<Self> {
        let system: Arc<dyn SystemView> = Arc::new(CoreSystemView {
            default_lease_ttl: config.default_lease_ttl,
            max_lease_ttl: config.max_lease_ttl,
            replication: Arc::clone(&replication),
        });
        Arc::new_cyclic(|me: &Weak<Core>| {
            let (weak, reg) = (me.clone(), Arc::clone(&registry));
            let factory: Box<Factory> = Box::new(move |entry: &MountEntry| {
                reg.build(&weak, BackendEnv { mount: entry.clone(), system: Arc::clone(&system) })
            });
            Self {
                config,
                barrier: Arc::new(Barrier::new(storage)),
                seal_source,
                unseal_progress: tokio::sync::Mutex::new(Progress::default()),
                root_generation: tokio::sync::Mutex::new(None),
                rekeys: tokio::sync::Mutex::new(rekey::Rekeys::default()),
                active: RwLock::new(None),
                transition: tokio::sync::Mutex::new(()),
                factory,
                registry,
                replication,
                scheduler_stats: scheduler::Stats::default(),
                metrics: Arc::new(Metrics::new()),
                cluster: std::sync::OnceLock::new(),
                me: me.clone(),
            }
        })
    }

    /// A standalone core (one node, no replication) with the built-in backends: what tests and
    /// `--dev` use.
    pub fn standalone(
        config: CoreConfig,
        storage: Arc<dyn Storage>,
        seal_source: SealSource,
        registry: Arc<dyn Registry>,
    ) -> Arc<Self> {
        Self::new(config, storage, Arc::new(SingleNode::new()), seal_source, registry)
    }

    /// Installs the cluster hooks (once, before the node serves).
    pub fn set_cluster_hooks(&self, hooks: Arc<dyn cluster::ClusterHooks>) {
        if self.cluster.set(hooks).is_err() {
            tracing::warn!("cluster hooks were already installed; keeping the first");
        }
    }

    /// The cluster hooks, when replicated.
    pub fn cluster_hooks(&self) -> Option<&Arc<dyn cluster::ClusterHooks>> {
        self.cluster.get()
    }

    /// The backend types this server offers.
    pub fn registry(&self) -> &dyn Registry {
        self.registry.as_ref()
    }

    /// This node's replication (role, leader, change stream).
    pub fn replication(&self) -> &Arc<dyn Replication> {
        &self.replication
    }

    /// This node's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The values `sys/metrics` reads from the core when scraped: seal state and the barrier's
    /// counts (a cluster member adds its Raft readings).
    pub fn metric_readings(&self) -> Readings {
        let counters = self.barrier.counters();
        Readings {
            unsealed: !self.is_sealed(),
            barrier: BarrierReadings {
                encryptions: counters.encryptions(),
                decryptions: counters.decryptions(),
                decrypt_failures: counters.decrypt_failures(),
            },
            cluster: None,
        }
    }

    /// The route family of a logical path, for the request metrics: the `sys/` endpoint, or the
    /// type of the mount serving it (unknown while sealed or when no mount serves it).
    pub fn route_family(&self, path: &str) -> Route {
        if let Some(route) = Route::of_sys_path(path) {
            return route;
        }
        let Ok(active) = self.active() else { return Route::UNKNOWN };
        match active.mounts.entry_for(path) {
            Some(e) => Route::of_mount(e.table == mounts::Table::Auth, &e.kind),
            None => Route::UNKNOWN,
        }
    }

    /// The barrier.
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// How this node unseals.
    pub fn seal_source(&self) -> &SealSource {
        &self.seal_source
    }

    /// The mount factory.
    pub fn factory(&self) -> &Factory {
        &self.factory
    }

    /// A strong reference to self.
    pub fn arc(&self) -> Result<Arc<Core>> {
        self.me.upgrade().ok_or_else(|| Error::Unavailable("server is shutting down".into()))
    }

    /// The unsealed state, or `Vault is sealed`.
    pub fn active(&self) -> Result<Arc<Active>> {
        self.active.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(Error::Sealed)
    }

    fn set_active(&self, a: Option<Arc<Active>>) {
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = a;
    }

    /// True while sealed.
    pub fn is_sealed(&self) -> bool {
        self.active().is_err()
    }

    /// Whether `sys/init` has happened (on a joining node: whether it holds a join ticket).
    pub async fn is_initialized(&self) -> Result<bool> {
        Ok(self.seal_config().await?.is_some())
    }

    /// At start: a static-seal node that is initialised unseals itself.
    pub async fn start(&self) -> Result<()> {
        if let SealSource::Static { key, .. } = &self.seal_source {
            if seal::read_config(self.barrier.raw().as_ref()).await?.is_some() {
                let key = key.duplicate();
                let _t = self.transition.lock().await;
                self.unseal_with_key(&key).await?;
                tracing::info!("unsealed with the static seal key");
            }
        }
        Ok(())
    }

    /// The stored audit device table and its version.
    pub async fn read_audit_table(&self) -> Result<(Vec<crate::audit::DeviceConfig>, Option<u64>)> {
        let (devices, version, _) = crate::audit::table::read(&self.barrier).await?;
        Ok((devices, version))
    }

    /// Writes the audit table if it is still at `expected`; `Ok(false)` on a lost race.
    pub async fn write_audit_table(
        &self,
        devices: &[crate::audit::DeviceConfig],
        expected: Option<u64>,
    ) -> Result<bool> {
        Ok(crate::audit::table::write(&self.barrier, devices, expected).await?)
    }
}

/// The [`SystemView`] backends get: the server's TTL limits and the leader check.
struct CoreSystemView {
    default_lease_ttl: u64,
    max_lease_ttl: u64,
    replication: Arc<dyn Replication>,
}

impl SystemView for CoreSystemView {
    fn default_lease_ttl(&self) -> u64 {
        self.default_lease_ttl
    }

    fn max_lease_ttl(&self) -> u64 {
        self.max_lease_ttl
    }

    fn is_leader(&self) -> bool {
        self.replication.role().is_leader()
    }

    fn applied_changes(&self) -> Option<u64> {
        Some(self.replication.changes().published())
    }
}

/// Helper for backends: a data map from pairs.
pub fn obj(
    pairs: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
) -> serde_json::Map<String, serde_json::Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
