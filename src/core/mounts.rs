//! Mount tables (secrets engines and auth methods) and the router.
//!
//! Both tables are stored behind the barrier (`core/mounts`, `core/auth`) as versioned JSON
//! ([`MOUNT_TABLE_VERSION`]) and changed with storage preconditions, so concurrent changes on
//! different nodes cannot lose a mount. A mount's data lives at `logical/<uuid>/` (secrets) or
//! `auth/<uuid>/` (auth methods), reached only through the mount's [`View`].
//!
//! The router maps a request path to the mount with the longest matching prefix. Auth mounts
//! are routed under `auth/`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use coffer_storage::{Barrier, View};

use crate::core::backend::Backend;
use crate::core::error::{Error, Result};

/// Format version of the stored mount tables.
pub const MOUNT_TABLE_VERSION: u32 = 1;
/// Storage key of the secrets-engine table.
pub const MOUNTS_PATH: &str = "core/mounts";
/// Storage key of the auth-method table.
pub const AUTH_PATH: &str = "core/auth";

/// Which table a mount belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Auth,
    Secrets,
}

/// Per-mount tunables.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountConfig {
    /// Seconds; 0 = system default.
    pub default_lease_ttl: u64,
    /// Seconds; 0 = system default.
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default)]
    pub audit_non_hmac_request_keys: Vec<String>,
    #[serde(default)]
    pub audit_non_hmac_response_keys: Vec<String>,
    #[serde(default)]
    pub listing_visibility: String,
    #[serde(default)]
    pub passthrough_request_headers: Vec<String>,
    #[serde(default)]
    pub allowed_response_headers: Vec<String>,
    /// Auth mounts only (`default-service` when unset).
    #[serde(default)]
    pub token_type: Option<String>,
    /// Auth mounts with user lockout (AppRole): Vault's `user_lockout_config` tunables.
    #[serde(default)]
    pub user_lockout_config: Option<UserLockoutConfig>,
}

impl MountConfig {
    /// The default lease TTL in force on this mount: its tune, else `system` (seconds).
    pub fn default_lease_ttl_or(&self, system: u64) -> u64 {
        if self.default_lease_ttl > 0 {
            self.default_lease_ttl
        } else {
            system
        }
    }

    /// The maximum lease TTL in force on this mount: its tune, else `system` (seconds).
    pub fn max_lease_ttl_or(&self, system: u64) -> u64 {
        if self.max_lease_ttl > 0 {
            self.max_lease_ttl
        } else {
            system
        }
    }
}

/// Vault's per-mount `user_lockout_config`. Zero values mean "use the default" (5 attempts,
/// 15 minutes locked, counter reset after 15 minutes).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserLockoutConfig {
    /// Failed logins that lock the user out; 0 = default.
    #[serde(default)]
    pub lockout_threshold: u64,
    /// Seconds a lockout lasts; 0 = default.
    #[serde(default)]
    pub lockout_duration: u64,
    /// Seconds without failures after which the failure counter starts over; 0 = default.
    #[serde(default)]
    pub lockout_counter_reset: u64,
    #[serde(default)]
    pub disable_lockout: bool,
}

impl UserLockoutConfig {
    /// The four keys Vault shows (with a `user_` prefix) in `sys/auth` and tune output.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("user_lockout_counter_reset_duration".into(), json!(self.lockout_counter_reset));
        m.insert("user_lockout_disable".into(), json!(self.disable_lockout));
        m.insert("user_lockout_duration".into(), json!(self.lockout_duration));
        m.insert("user_lockout_threshold".into(), json!(self.lockout_threshold));
        m
    }
}

/// One mounted engine or auth method.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountEntry {
    /// Mount path with trailing `/`, without the `auth/` prefix for auth mounts.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub accessor: String,
    pub uuid: String,
    pub local: bool,
    pub seal_wrap: bool,
    pub external_entropy_access: bool,
    pub options: Option<BTreeMap<String, String>>,
    pub config: MountConfig,
    pub table: Table,
}

impl MountEntry {
    /// Full routing prefix (`secret/`, `auth/approle/`).
    pub fn route_prefix(&self) -> String {
        match self.table {
            Table::Auth => format!("auth/{}", self.path),
            Table::Secrets => self.path.clone(),
        }
    }

    /// Storage prefix of the mount's view.
    pub fn storage_prefix(&self) -> String {
        match self.table {
            Table::Auth => format!("auth/{}/", self.uuid),
            Table::Secrets => format!("logical/{}/", self.uuid),
        }
    }

    /// KV version from the options ("1" when absent).
    pub fn kv_version(&self) -> &str {
        self.options.as_ref().and_then(|o| o.get("version")).map(String::as_str).unwrap_or("1")
    }

    /// The JSON object `sys/mounts` and `sys/auth` show for this mount.
    pub fn to_json(&self) -> Value {
        let mut config = json!({
            "default_lease_ttl": self.config.default_lease_ttl,
            "force_no_cache": self.config.force_no_cache,
            "max_lease_ttl": self.config.max_lease_ttl,
        });
        if let Some(c) = config.as_object_mut() {
            if !self.config.audit_non_hmac_request_keys.is_empty() {
                c.insert(
                    "audit_non_hmac_request_keys".into(),
                    json!(self.config.audit_non_hmac_request_keys),
                );
            }
            if !self.config.audit_non_hmac_response_keys.is_empty() {
                c.insert(
                    "audit_non_hmac_response_keys".into(),
                    json!(self.config.audit_non_hmac_response_keys),
                );
            }
            if !self.config.listing_visibility.is_empty() {
                c.insert("listing_visibility".into(), json!(self.config.listing_visibility));
            }
            if !self.config.passthrough_request_headers.is_empty() {
                c.insert(
                    "passthrough_request_headers".into(),
                    json!(self.config.passthrough_request_headers),
                );
            }
            if !self.config.allowed_response_headers.is_empty() {
                c.insert("allowed_response_headers".into(), json!(self.config.allowed_response_headers));
            }
            if self.table == Table::Auth {
                c.insert(
                    "token_type".into(),
                    json!(self.config.token_type.clone().unwrap_or_else(|| "default-service".into())),
                );
            }
            if let Some(l) = &self.config.user_lockout_config {
                c.insert("user_lockout_config".into(), Value::Object(l.to_json()));
            }
        }
        let mut v = json!({
            "accessor": self.accessor,
            "config": config,
            "description": self.description,
            "external_entropy_access": self.external_entropy_access,
            "local": self.local,
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": format!("v{}+builtin.coffer", env!("CARGO_PKG_VERSION")),
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.kind,
            "uuid": self.uuid,
        });
        if matches!(self.kind.as_str(), "kv" | "transit" | "approle") {
            if let Some(o) = v.as_object_mut() {
                o.insert("deprecation_status".into(), json!("supported"));
            }
        }
        v
    }
}

#[derive(Serialize, Deserialize)]
struct StoredTable {
    version: u32,
    entries: Vec<MountEntry>,
}

/// A routed mount: entry, backend and view.
#[derive(Clone)]
pub struct Route {
    pub entry: Arc<MountEntry>,
    pub backend: Arc<dyn Backend>,
    pub view: View,
}

/// Result of routing a path.
pub struct Routed {
    pub route: Route,
    /// Path relative to the mount.
    pub relative: String,
}

/// Both mount tables and the router built from them.
pub struct Mounts {
    barrier: Arc<Barrier>,
    /// Routing prefix → route, longest first when matching.
    routes: RwLock<Arc<BTreeMap<String, Route>>>,
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Mounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mounts")
    }
}

/// Builds a backend for a mount entry.
pub type Factory = dyn Fn(&MountEntry) -> Result<Arc<dyn Backend>> + Send + Sync;

impl Mounts {
    /// Empty router over `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self { barrier, routes: RwLock::new(Arc::new(BTreeMap::new())), lock: tokio::sync::Mutex::new(()) }
    }

    /// The routes as they are now (the router's own copy: cheap to take, never changed).
    pub(crate) fn snapshot(&self) -> Arc<BTreeMap<String, Route>> {
        self.routes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn table_path(table: Table) -> &'static str {
        match table {
            Table::Auth => AUTH_PATH,
            Table::Secrets => MOUNTS_PATH,
        }
    }

    /// Reads one stored table with its storage version.
    pub async fn read_table(&self, table: Table) -> Result<(Vec<MountEntry>, Option<u64>)> {
        let Some(e) = self.barrier.get(Self::table_path(table)).await? else { return Ok((Vec::new(), None)) };
        let stored: StoredTable = serde_json::from_slice(&e.value)
            .map_err(|err| Error::internal(format!("corrupt mount table: {err}")))?;
        if stored.version != MOUNT_TABLE_VERSION {
            return Err(Error::internal(format!("unsupported mount table version {}", stored.version)));
        }
        Ok((stored.entries, Some(e.version)))
    }

    async fn write_table(&self, table: Table, entries: &[MountEntry], expected: Option<u64>) -> Result<bool> {
        let stored = StoredTable { version: MOUNT_TABLE_VERSION, entries: entries.to_vec() };
        let batch = coffer_storage::Batch::new()
            .put(Self::table_path(table), serde_json::to_vec(&stored)?)
            .require(Self::table_path(table), expected);
        Ok(self.barrier.try_apply(batch).await?.is_some())
    }

    /// Rebuilds the router from storage (at unseal and when another node changed a table).
    pub async fn reload(&self, factory: &Factory) -> Result<()> {
        let mut routes = BTreeMap::new();
        let old = self.snapshot();
        for table in [Table::Secrets, Table::Auth] {
            let (entries, _) = self.read_table(table).await?;
            for entry in entries {
                let prefix = entry.route_prefix();
                // Keep live backends (and their caches) for unchanged mounts.
                let backend = match old.get(&prefix) {
                    Some(r) if r.entry.uuid == entry.uuid && r.entry.kind == entry.kind => {
                        if r.entry.options == entry.options {
                            Arc::clone(&r.backend)
                        } else {
                            factory(&entry)?
                        }
                    }
                    _ => factory(&entry)?,
                };
                let view = View::new(Arc::clone(&self.barrier), &entry.storage_prefix());
                routes.insert(prefix, Route { entry: Arc::new(entry), backend, view });
            }
        }
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
        Ok(())
    }

    /// Applies `change` to a table under a precondition, retrying on concurrent changes, then
    /// reloads the router.
    pub async fn modify<T>(
        &self,
        table: Table,
        factory: &Factory,
        mut change: impl FnMut(&mut Vec<MountEntry>) -> Result<T>,
    ) -> Result<T> {
        let _g = self.lock.lock().await;
        loop {
            let (mut entries, version) = self.read_table(table).await?;
            let out = change(&mut entries)?;
            if self.write_table(table, &entries, version).await? {
                self.reload(factory).await?;
                return Ok(out);
            }
        }
    }

    /// Finds the mount for a logical path.
    pub fn route(&self, path: &str) -> Option<Routed> {
        let routes = self.snapshot();
        // Try the path itself and, for a bare mount name (`secret`), with a trailing slash.
        let mut probe = path.to_owned();
        if !probe.ends_with('/') {
            probe.push('/');
        }
        // Mount tables are small (tens of entries): a linear longest-prefix scan is cheapest.
        let best = routes.iter().filter(|(p, _)| probe.starts_with(p.as_str())).max_by_key(|(p, _)| p.len());
        let (prefix, route) = best?;
        let relative = path.get(prefix.len()..).unwrap_or("").to_owned();
        Some(Routed { route: route.clone(), relative })
    }

    /// The entry of the mount serving a logical path, found without allocating (the request
    /// metrics label requests with its type).
    pub fn entry_for(&self, path: &str) -> Option<Arc<MountEntry>> {
        let routes = self.snapshot();
        let serves = |prefix: &str| {
            path.starts_with(prefix) || prefix.strip_suffix('/').is_some_and(|bare| bare == path)
        };
        let best = routes.iter().filter(|(p, _)| serves(p)).max_by_key(|(p, _)| p.len());
        best.map(|(_, route)| Arc::clone(&route.entry))
    }

    /// The route registered at exactly `prefix`.
    pub fn get(&self, prefix: &str) -> Option<Route> {
        self.snapshot().get(prefix).cloned()
    }

    /// Every route, by prefix.
    pub fn all(&self) -> Vec<Route> {
        self.snapshot().values().cloned().collect()
    }

    /// Entries of one table, sorted by path.
    pub fn entries(&self, table: Table) -> Vec<Arc<MountEntry>> {
        let mut v: Vec<Arc<MountEntry>> = self
            .snapshot()
            .values()
            .filter(|r| r.entry.table == table)
            .map(|r| Arc::clone(&r.entry))
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }
}

/// A fresh accessor, `<type>_<8 hex>` (`auth_<type>_<8 hex>` for auth mounts).
pub fn new_accessor(kind: &str, table: Table) -> String {
    let r: u32 = rand::random();
    match table {
        Table::Auth => format!("auth_{kind}_{r:08x}"),
        Table::Secrets => format!("{kind}_{r:08x}"),
    }
}

/// Data map of all entries of a table, keyed by path (and `auth/`-less for auth).
pub fn table_json(entries: &[Arc<MountEntry>]) -> Map<String, Value> {
    entries.iter().map(|e| (e.path.clone(), e.to_json())).collect()
}
