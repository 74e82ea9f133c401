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
pub mod envelope;
pub mod error;
pub mod fields;
pub mod generate_root;
pub mod mounts;
pub mod policy_store;
pub mod quorum;
pub mod rekey;
pub mod request;
pub mod seal;
pub mod shamir;
pub mod token;
pub mod wrapping;

use std::sync::{Arc, RwLock, Weak};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use coffer_storage::keys::{RootKey, UnsealKey};
use coffer_storage::{Barrier, Storage};

use crate::core::policy_store::PolicyStore;
use crate::core::token::store::NewToken;
use crate::core::token::{sanitize_policies, TokenEntry, TokenStore, TokenType};
use crate::secret::ClientToken;

use self::authn::{Authenticated, Refusal, Trail, TrailStart};
use self::error::{Error, Result};
use self::mounts::{new_accessor, Factory, MountConfig, MountEntry, Mounts, Table};
use self::request::{Auth, Ctx, LoginSpec, Request, Response};
use self::seal::{InitParams, InitResult, Progress, SealSource, StoredSealConfig};
use crate::policy::Operation;

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

const CLUSTER_PATH: &str = "core/cluster";

/// Everything that exists only while unsealed.
pub struct Active {
    pub audit: crate::audit::AuditBroker,
    pub mounts: Mounts,
    pub tokens: TokenStore,
    pub policies: PolicyStore,
    pub cluster: ClusterInfo,
    pub since: OffsetDateTime,
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
    factory: Box<Factory>,
    me: Weak<Core>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("sealed", &self.is_sealed()).finish_non_exhaustive()
    }
}

impl Core {
    /// A sealed core over `storage`.
    pub fn new(config: CoreConfig, storage: Arc<dyn Storage>, seal_source: SealSource) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<Core>| Self {
            config,
            barrier: Arc::new(Barrier::new(storage)),
            seal_source,
            unseal_progress: tokio::sync::Mutex::new(Progress::default()),
            root_generation: tokio::sync::Mutex::new(None),
            rekeys: tokio::sync::Mutex::new(rekey::Rekeys::default()),
            active: RwLock::new(None),
            transition: tokio::sync::Mutex::new(()),
            factory: Box::new(crate::engines::factory(me.clone())),
            me: me.clone(),
        })
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

    /// Whether `sys/init` has happened.
    pub async fn is_initialized(&self) -> Result<bool> {
        Ok(seal::read_config(self.barrier.raw().as_ref()).await?.is_some())
    }

    /// At start: a static-seal node that is initialised unseals itself.
    pub async fn start(&self) -> Result<()> {
        if let SealSource::Static { key, .. } = &self.seal_source {
            if self.is_initialized().await? {
                let key = key.duplicate();
                let _t = self.transition.lock().await;
                self.unseal_with_key(&key).await?;
                tracing::info!("unsealed with the static seal key");
            }
        }
        Ok(())
    }

    /// `sys/seal-status`.
    pub async fn seal_status(&self) -> Result<SealStatus> {
        let cfg = seal::read_config(self.barrier.raw().as_ref()).await?;
        let progress = self.unseal_progress.lock().await;
        let active = self.active().ok();
        let (t, n, recovery) = match (&cfg, &self.seal_source) {
            (Some(c), SealSource::Static { .. }) => (c.recovery_threshold, c.recovery_shares, true),
            (Some(c), SealSource::Shamir) => (c.secret_threshold, c.secret_shares, false),
            (None, s) => (0, 0, matches!(s, SealSource::Static { .. })),
        };
        Ok(SealStatus {
            kind: self.seal_source.kind().into(),
            initialized: cfg.is_some(),
            sealed: active.is_none(),
            t,
            n,
            progress: progress.shares.len(),
            nonce: progress.nonce.clone(),
            version: VERSION.into(),
            build_date: BUILD_DATE.into(),
            migration: false,
            cluster_name: active.as_ref().map(|a| a.cluster.name.clone()),
            cluster_id: active.as_ref().map(|a| a.cluster.id.clone()),
            recovery_seal: recovery,
            recovery_seal_type: recovery.then(|| "shamir".into()),
            storage_type: self.config.storage_type.clone(),
        })
    }

    /// `sys/init`.
    pub async fn init(&self, params: InitParams) -> Result<InitResult> {
        let _t = self.transition.lock().await;
        if self.is_initialized().await? {
            return Err(Error::bad("Vault is already initialized"));
        }
        if params.pgp_keys || params.root_token_pgp_key {
            return Err(Error::bad("PGP-encrypted key shares are not supported by this server"));
        }
        let root = RootKey::generate().map_err(|e| Error::internal(format!("rng: {e}")))?;
        let keyring = Barrier::keyring_record(&root)?;
        let (config, unseal_key, keys, recovery_keys, check) = match &self.seal_source {
            SealSource::Shamir => {
                if params.recovery_shares != 0 || params.recovery_threshold != 0 {
                    return Err(Error::bad(
                        "parameters recovery_shares,recovery_threshold,recovery_pgp_keys not applicable to seal type shamir",
                    ));
                }
                let (n, t) = seal::validate_shares(params.secret_shares, params.secret_threshold)?;
                let kek = UnsealKey::generate().map_err(|e| Error::internal(format!("rng: {e}")))?;
                let shares = seal::split_key(kek.expose(), n, t)?;
                let cfg = StoredSealConfig {
                    version: seal::SEAL_CONFIG_VERSION,
                    kind: "shamir".into(),
                    secret_shares: n,
                    secret_threshold: t,
                    recovery_shares: 0,
                    recovery_threshold: 0,
                };
                (cfg, kek, shares, Vec::new(), None)
            }
            SealSource::Static { key, .. } => {
                // Vault's defaults for recovery shares when none are given.
                let rs = if params.recovery_shares == 0 { 5 } else { params.recovery_shares };
                let rt = if params.recovery_threshold == 0 { 3.min(rs) } else { params.recovery_threshold };
                let (n, t) = seal::validate_shares(rs, rt)?;
                let recovery = UnsealKey::generate().map_err(|e| Error::internal(format!("rng: {e}")))?;
                let shares = seal::split_key(recovery.expose(), n, t)?;
                let check = seal::recovery_check(recovery.expose())?;
                let cfg = StoredSealConfig {
                    version: seal::SEAL_CONFIG_VERSION,
                    kind: "static".into(),
                    secret_shares: 1,
                    secret_threshold: 1,
                    recovery_shares: n,
                    recovery_threshold: t,
                };
                (cfg, key.duplicate(), Vec::new(), shares, Some(check))
            }
        };
        let wrapped = seal::wrap_root_key(&unseal_key, &root)?;
        seal::write_init_records(self.barrier.raw().as_ref(), &config, keyring, wrapped, check).await?;

        // Set up the new store while unsealed: mounts, policies, cluster identity, root token.
        self.barrier.unseal(root).await?;
        let active = self.post_unseal().await?;
        let root_token = self.create_root_token(&active, params.root_token_id).await?;
        if matches!(self.seal_source, SealSource::Shamir) {
            self.seal_locked().await;
        }
        tracing::info!(seal = self.seal_source.kind(), "storage initialized");
        Ok(InitResult { keys, recovery_keys, root_token })
    }

    /// Issues a root token (init, generate-root).
    pub async fn create_root_token(&self, active: &Active, custom_id: Option<String>) -> Result<ClientToken> {
        let spec = NewToken {
            policies: vec!["root".into()],
            path: "auth/token/root".into(),
            display_name: "root".into(),
            custom_id: custom_id.map(ClientToken::new),
            renewable: false,
            ..NewToken::default()
        };
        let (token, _) = active.tokens.create(spec, OffsetDateTime::now_utc()).await?;
        Ok(token)
    }

    /// `sys/unseal` with a share (or `reset`).
    pub async fn unseal(&self, key: Option<&str>, reset: bool) -> Result<SealStatus> {
        let Some(cfg) = seal::read_config(self.barrier.raw().as_ref()).await? else {
            return Err(Error::bad("Vault is not initialized"));
        };
        if reset {
            if !self.is_sealed() {
                return Err(Error::bad("vault is unsealed"));
            }
            self.unseal_progress.lock().await.reset();
            return self.seal_status().await;
        }
        if !self.is_sealed() {
            return self.seal_status().await;
        }
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(Error::bad(
                "'key' must be specified in request body as JSON, or 'reset' set to true",
            ));
        };
        let share = shamir::decode_share(key)?;
        let _t = self.transition.lock().await;
        let key_material = {
            let mut progress = self.unseal_progress.lock().await;
            if !progress.add(share) {
                drop(progress);
                return self.seal_status().await;
            }
            let threshold = match self.seal_source {
                SealSource::Shamir => cfg.secret_threshold,
                SealSource::Static { .. } => cfg.recovery_threshold,
            };
            if progress.shares.len() < usize::from(threshold) {
                drop(progress);
                return self.seal_status().await;
            }
            let combined = seal::combine_shares(&progress.shares, threshold);
            progress.reset();
            combined?
        };
        let result = match &self.seal_source {
            SealSource::Shamir => {
                let Some(kek) = UnsealKey::from_secret(key_material) else {
                    return Err(Error::bad("unseal failed, invalid key"));
                };
                self.unseal_with_key(&kek).await
            }
            SealSource::Static { key, .. } => {
                // With a static seal, operators prove quorum with recovery shares; the barrier
                // is then opened with the configured key.
                let check = self
                    .barrier
                    .raw()
                    .get(seal::RECOVERY_CHECK_PATH)
                    .await?
                    .ok_or_else(|| Error::internal("recovery check record missing"))?;
                if !seal::verify_recovery(key_material.expose(), &check.value) {
                    return Err(Error::bad("unseal failed, invalid key"));
                }
                let key = key.duplicate();
                self.unseal_with_key(&key).await
            }
        };
        result?;
        self.seal_status().await
    }

    /// Opens the barrier with the unseal key and brings the node up. Caller holds `transition`.
    async fn unseal_with_key(&self, kek: &UnsealKey) -> Result<()> {
        let wrapped = self
            .barrier
            .raw()
            .get(seal::ROOT_KEY_PATH)
            .await?
            .ok_or_else(|| Error::internal("wrapped root key missing"))?;
        let root = seal::unwrap_root_key(kek, &wrapped.value)?;
        self.barrier.unseal(root).await.map_err(|e| match e {
            coffer_storage::BarrierError::WrongRootKey => Error::bad("unseal failed, invalid key"),
            other => other.into(),
        })?;
        if let Err(e) = self.post_unseal().await {
            self.barrier.seal();
            return Err(e);
        }
        tracing::info!("vault is unsealed");
        Ok(())
    }

    /// Loads (creating on first unseal) everything the unsealed node serves.
    async fn post_unseal(&self) -> Result<Arc<Active>> {
        let cluster = match self.barrier.get(CLUSTER_PATH).await? {
            Some(e) => serde_json::from_slice::<ClusterInfo>(&e.value)
                .map_err(|err| Error::internal(format!("corrupt cluster info: {err}")))?,
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                let name = self
                    .config
                    .cluster_name
                    .clone()
                    .unwrap_or_else(|| format!("vault-cluster-{}", &id.replace('-', "")[..8]));
                let info = ClusterInfo { version: 1, name, id };
                match self
                    .barrier
                    .apply(
                        coffer_storage::Batch::new()
                            .put(CLUSTER_PATH, serde_json::to_vec(&info)?)
                            .require_absent(CLUSTER_PATH),
                    )
                    .await
                {
                    Ok(_) => info,
                    Err(e) if error::is_precondition_failure(&e) => {
                        let e = self
                            .barrier
                            .get(CLUSTER_PATH)
                            .await?
                            .ok_or_else(|| Error::internal("cluster info vanished"))?;
                        serde_json::from_slice(&e.value)?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let mounts = Mounts::new(Arc::clone(&self.barrier));
        for (table, defaults) in
            [(Table::Secrets, default_secret_mounts()), (Table::Auth, default_auth_mounts())]
        {
            let (entries, _) = mounts.read_table(table).await?;
            if entries.is_empty() {
                mounts
                    .modify(table, self.factory(), |e| {
                        if e.is_empty() {
                            e.extend(defaults.iter().cloned());
                        }
                        Ok(())
                    })
                    .await?;
            }
        }
        mounts.reload(self.factory()).await?;
        let tokens = TokenStore::open(self.barrier.view("sys/token/")).await?;
        let policies = PolicyStore::open(self.barrier.view("sys/policy/")).await?;
        let audit = crate::audit::AuditBroker::load(&self.barrier, &self.config.audit).await?;
        let active =
            Arc::new(Active { audit, mounts, tokens, policies, cluster, since: OffsetDateTime::now_utc() });
        self.set_active(Some(Arc::clone(&active)));
        if tokio::runtime::Handle::try_current().is_ok() {
            self.spawn_tidy(&active);
        }
        Ok(active)
    }

    /// Seals (caller holds `transition`).
    async fn seal_locked(&self) {
        if let Ok(active) = self.active() {
            // Store the audit chain heads while the barrier is still open.
            active.audit.close().await;
        }
        self.set_active(None);
        self.barrier.seal();
        self.unseal_progress.lock().await.reset();
        // Quorum operations need the unsealed node; their shares go with it.
        *self.root_generation.lock().await = None;
        *self.rekeys.lock().await = rekey::Rekeys::default();
    }

    /// Seals the node: drops all unsealed state and zeroizes the keyring.
    pub async fn seal(&self) {
        let _t = self.transition.lock().await;
        self.seal_locked().await;
        tracing::info!("vault is sealed");
    }

    /// Paths served without a token that do not belong to a backend's own list.
    fn core_unauthenticated(path: &str) -> bool {
        path == "sys/wrapping/lookup"
            || path == "sys/internal/ui/mounts"
            || path.starts_with("sys/internal/ui/mounts/")
            || path == "sys/internal/ui/mounts/"
    }

    /// Runs a routed request through the lifecycle described in the module docs.
    pub async fn handle(&self, req: Request) -> Result<Response> {
        let active = self.active()?;
        let now = OffsetDateTime::now_utc();
        if req.operation.is_write() && req.path.ends_with('/') {
            return Err(Error::bad("cannot write to a path ending in '/'"));
        }
        let Request { id, operation, path, data, token, remote_addr, wrap_ttl, headers: _ } = req;
        let routed = active.mounts.route(&path);
        let unauth = Self::core_unauthenticated(&path)
            || routed.as_ref().is_some_and(|r| r.route.backend.unauthenticated(&r.relative));
        let token = token.filter(|t| !t.expose().is_empty());
        let mut trail = Trail::new(
            &active,
            TrailStart {
                id: &id,
                operation,
                path: &path,
                mount: routed.as_ref().map(|r| r.route.entry.as_ref()),
                token: token.as_ref(),
                remote_addr,
                data: Some(&data),
                wrap_ttl,
            },
        );
        let caller = match token {
            None => None,
            Some(t) => match self.authenticate(&active, t, remote_addr, now).await? {
                Ok(c) => {
                    trail.set_caller(&c.entry, false, Vec::new());
                    Some(c)
                }
                // Unwrapping with a spent wrapping token is a wrapping error, not an auth one.
                Err(Refusal::Invalid) if path == "sys/wrapping/unwrap" => {
                    return trail.refuse(Error::bad(wrapping::INVALID_WRAPPING_TOKEN));
                }
                // On paths that need no token (logins), a bad token is ignored, as Vault does.
                Err(Refusal::Invalid) if unauth => {
                    trail.forget_token();
                    None
                }
                Err(refusal) => {
                    trail.set_refused(&refusal);
                    return trail.refuse(refusal.error());
                }
            },
        };
        let result = self
            .handle_authenticated(
                &active,
                &mut trail,
                Routing { id, operation, path, data, routed, unauth, remote_addr, wrap_ttl, now },
                caller.as_ref(),
            )
            .await;
        // A limited-use token whose last use this request spent is revoked now that it is done.
        if let Some(c) = &caller {
            self.finish_use(&active, c).await;
        }
        result
    }

    async fn handle_authenticated(
        &self,
        active: &Arc<Active>,
        trail: &mut Trail,
        req: Routing,
        caller: Option<&Authenticated>,
    ) -> Result<Response> {
        let Routing { id: request_id, operation, path, data, routed, unauth, remote_addr, wrap_ttl, now } =
            req;
        let token = caller.map(|c| Arc::clone(&c.entry));
        if token.is_none() && !unauth {
            return trail.refuse(Error::NoToken);
        }
        let Some(routed) = routed else {
            return trail.refuse(match &token {
                Some(t) if t.is_root() => {
                    Error::NotFound(Some(format!("no handler for route \"{path}\". route entry not found.")))
                }
                _ => Error::PermissionDenied,
            });
        };
        let mut ctx = Ctx {
            request_id: request_id.clone(),
            operation,
            path: routed.relative.clone(),
            data,
            view: routed.route.view.clone(),
            mount: Arc::clone(&routed.route.entry),
            token: token.clone(),
            client_token: caller.map(|c| c.token.duplicate()),
            remote_addr,
            now,
            wrap_ttl,
        };
        if ctx.operation == Operation::Update {
            if let Some(exists) = routed.route.backend.exists(&ctx).await? {
                ctx.operation = if exists { Operation::Update } else { Operation::Create };
                trail.set_operation(ctx.operation);
            }
        }
        if let Some(entry) = &token {
            if !unauth {
                let acl = active.policies.acl(&entry.policies).await?;
                let d = acl.check_request(ctx.operation, &path, &ctx.data, ctx.wrap_ttl);
                let needs_sudo = routed.route.backend.root_protected(&routed.relative);
                let denied = !d.allowed || (needs_sudo && !d.sudo);
                trail.set_caller(entry, !denied, d.granting_policies);
                if denied {
                    return trail.refuse(Error::PermissionDenied);
                }
            } else {
                trail.set_caller(entry, true, Vec::new());
            }
        }
        // Fail closed: no audit record, no request.
        trail.request("")?;
        let result = self.run_backend(active, &routed, &ctx, &request_id, &path, wrap_ttl, now).await;
        if trail.is_recording() {
            match &result {
                Ok(resp) => {
                    let rendered: serde_json::Value = match &resp.raw_body {
                        Some(raw) => serde_json::from_slice(raw).unwrap_or(serde_json::Value::Null),
                        None => serde_json::json!({
                            "data": resp.data,
                            "auth": resp.auth,
                            "wrap_info": resp.wrap_info,
                            "warnings": if resp.warnings.is_empty() { None } else { Some(&resp.warnings) },
                        }),
                    };
                    trail.response(Some(&rendered), "")?;
                }
                Err(e) => trail.response(None, &authn::audit_error(e))?,
            }
        }
        result
    }

    async fn run_backend(
        &self,
        active: &Arc<Active>,
        routed: &mounts::Routed,
        ctx: &Ctx,
        request_id: &str,
        path: &str,
        wrap_ttl: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<Response> {
        let mut resp = routed.route.backend.handle(ctx).await?;
        if let Some(spec) = resp.login.take() {
            resp.auth = Some(self.issue_login(active, spec, &routed.route.entry, now).await?);
        }
        resp.mount_type = routed.route.entry.kind.clone();
        let wrap = match (wrap_ttl, resp.wrap_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(ttl) = wrap.filter(|t| *t > 0) {
            if resp.raw_body.is_none() && !resp.is_empty() && resp.wrap_info.is_none() {
                return self.wrap_response(active, resp, request_id, ttl, path, now).await;
            }
        }
        Ok(resp)
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

    /// Revokes a token and its descendants, and erases their cubbyholes.
    pub async fn revoke_tree(&self, active: &Active, id_hmac: &str) -> Result<()> {
        let revoked = active.tokens.revoke_tree(id_hmac).await?;
        self.cleanup_revoked(active, &revoked).await;
        Ok(())
    }

    /// Erases the cubbyholes of revoked tokens (best effort; tidy retries).
    pub async fn cleanup_revoked(&self, active: &Active, revoked: &[TokenEntry]) {
        let Some(route) = active.mounts.get("cubbyhole/") else { return };
        for e in revoked {
            if let Err(err) = route.view.sub(&format!("{}/", e.id_hmac)).clear().await {
                tracing::warn!(error = %err, accessor = %e.accessor, "could not erase a revoked token's cubbyhole");
            }
        }
    }

    /// Removes expired tokens (with their children and cubbyholes), walking the expiry index
    /// in bounded rounds and yielding between tokens so requests keep flowing.
    pub async fn tidy_tokens(&self) -> Result<usize> {
        let active = self.active()?;
        let mut removed = 0;
        loop {
            let now = OffsetDateTime::now_utc();
            let due = active.tokens.due_for_expiry(now, 256).await?;
            if due.is_empty() {
                return Ok(removed);
            }
            for id in due {
                self.revoke_tree(&active, &id).await?;
                removed += 1;
                tokio::task::yield_now().await;
            }
        }
    }

    /// A full scan for records the index cannot find (`auth/token/tidy`): tokens whose last use
    /// was consumed but whose revocation was interrupted, and expired tokens without an index
    /// entry. Yields between tokens.
    pub async fn tidy_tokens_full(&self) -> Result<usize> {
        let mut removed = self.tidy_tokens().await?;
        let active = self.active()?;
        let now_ns = OffsetDateTime::now_utc().unix_timestamp_nanos();
        for id in active.tokens.all_ids().await? {
            if let Some((e, _)) = active.tokens.get_by_hmac(&id).await? {
                if e.unusable_at(now_ns) {
                    self.revoke_tree(&active, &id).await?;
                    removed += 1;
                }
            }
            tokio::task::yield_now().await;
        }
        Ok(removed)
    }

    /// Starts the background tidy loop for this unsealed period; it ends when the node seals.
    fn spawn_tidy(&self, active: &Arc<Active>) {
        let weak_core = self.me.clone();
        let weak_active = Arc::downgrade(active);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (Some(core), Some(active)) = (weak_core.upgrade(), weak_active.upgrade()) else { return };
                let current = core.active().ok();
                if !current.map(|c| Arc::ptr_eq(&c, &active)).unwrap_or(false) {
                    return;
                }
                // Mount housekeeping (AppRole's secret ID tidy, ...).
                for route in active.mounts.all() {
                    if let Err(e) = route.backend.periodic(&route.view, &route.entry).await {
                        tracing::warn!(mount = %route.entry.route_prefix(), error = %e, "periodic task failed");
                    }
                }
                drop(active);
                match core.tidy_tokens().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "token tidy removed expired tokens"),
                    Err(e) => tracing::warn!(error = %e, "token tidy failed"),
                }
            }
        });
    }

    /// Turns a backend's login spec into a token and the `auth` block.
    pub async fn issue_login(
        &self,
        active: &Active,
        spec: LoginSpec,
        mount: &MountEntry,
        now: OffsetDateTime,
    ) -> Result<Auth> {
        // Auth methods never mint root or wrapping tokens, whatever their configuration says.
        if spec.policies.iter().any(|p| p.trim().eq_ignore_ascii_case("root")) {
            return Err(Error::bad("auth methods cannot create root tokens"));
        }
        crate::core::policy_store::check_assignable(&spec.policies)?;
        let sys_max = self.config.max_lease_ttl;
        let mut max = if mount.config.max_lease_ttl > 0 { mount.config.max_lease_ttl } else { sys_max };
        if spec.max_ttl > 0 && spec.max_ttl < max {
            max = spec.max_ttl;
        }
        if spec.explicit_max_ttl > 0 && spec.explicit_max_ttl < max {
            max = spec.explicit_max_ttl;
        }
        let default = if mount.config.default_lease_ttl > 0 {
            mount.config.default_lease_ttl
        } else {
            self.config.default_lease_ttl
        };
        let ttl = if spec.period > 0 {
            spec.period.min(max)
        } else if spec.ttl > 0 {
            spec.ttl.min(max)
        } else {
            default.min(max)
        };
        let policies = sanitize_policies(&spec.policies, !spec.no_default_policy);
        let token_type = if spec.token_type == "batch" { TokenType::Batch } else { TokenType::Service };
        let new = NewToken {
            policies: policies.clone(),
            path: spec.path.clone(),
            meta: (!spec.metadata.is_empty()).then(|| spec.metadata.clone()),
            display_name: spec.display_name.clone(),
            num_uses: spec.num_uses,
            ttl,
            explicit_max_ttl: spec.explicit_max_ttl,
            period: spec.period,
            parent: None,
            token_type,
            bound_cidrs: spec.bound_cidrs.clone(),
            role: None,
            renewable: spec.renewable,
            internal: spec.internal.clone(),
            custom_id: None,
            is_wrapping: false,
        };
        let (token, entry) = active.tokens.create(new, now).await?;
        Ok(Auth {
            client_token: token.expose().to_owned(),
            accessor: entry.accessor,
            policies: policies.clone(),
            token_policies: policies,
            identity_policies: Vec::new(),
            metadata: (!spec.metadata.is_empty()).then_some(spec.metadata),
            lease_duration: ttl,
            renewable: spec.renewable,
            entity_id: String::new(),
            token_type: token_type.as_str().into(),
            orphan: true,
            mfa_requirement: None,
            num_uses: spec.num_uses,
        })
    }
}

/// A routed request after its token is checked, as `handle_authenticated` takes it.
struct Routing {
    id: String,
    operation: Operation,
    path: String,
    data: serde_json::Map<String, serde_json::Value>,
    routed: Option<mounts::Routed>,
    /// The path needs no token (logins, `sys/wrapping/lookup`, ...).
    unauth: bool,
    remote_addr: Option<std::net::IpAddr>,
    wrap_ttl: Option<u64>,
    now: OffsetDateTime,
}

fn builtin(path: &str, kind: &str, description: &str, local: bool, table: Table) -> MountEntry {
    MountEntry {
        path: path.into(),
        kind: kind.into(),
        description: description.into(),
        accessor: new_accessor(kind, table),
        uuid: uuid::Uuid::new_v4().to_string(),
        local,
        seal_wrap: kind == "system",
        external_entropy_access: false,
        options: None,
        config: MountConfig::default(),
        table,
    }
}

fn default_secret_mounts() -> Vec<MountEntry> {
    vec![
        builtin("cubbyhole/", "cubbyhole", "per-token private secret storage", true, Table::Secrets),
        builtin("identity/", "identity", "identity store", false, Table::Secrets),
        builtin(
            "sys/",
            "system",
            "system endpoints used for control, policy and debugging",
            false,
            Table::Secrets,
        ),
    ]
}

fn default_auth_mounts() -> Vec<MountEntry> {
    vec![builtin("token/", "token", "token based credentials", false, Table::Auth)]
}

/// Helper for backends: a data map from pairs.
pub fn obj(
    pairs: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
) -> serde_json::Map<String, serde_json::Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
