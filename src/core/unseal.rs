//! Init, unseal and seal: the transitions between the sealed and the unsealed node.

use std::sync::Arc;

use coffer_storage::keys::{RootKey, UnsealKey};
use coffer_storage::{Barrier, View};

use super::error::{Error, Result};
use super::mounts::{Mounts, Table};
use super::policy_store::PolicyStore;
use super::seal::{self, InitParams, InitResult, SealSource, StoredSealConfig};
use super::token::store::NewToken;
use super::token::TokenStore;
use super::{rekey, shamir, Active, ClusterInfo, Core, SealStatus, BUILD_DATE, CLUSTER_PATH, VERSION};
use crate::secret::ClientToken;

impl Core {
    /// `sys/seal-status`.
    pub async fn seal_status(&self) -> Result<SealStatus> {
        let cfg = self.seal_config().await?;
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
        if self.cluster_hooks().and_then(|h| h.join_ticket()).is_some() {
            return Err(Error::bad("this node is joining a cluster; unseal it with the cluster's keys"));
        }
        if let Some(hooks) = self.cluster_hooks() {
            hooks.before_init().await?;
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
        let (token, _) = active.tokens.create(spec, coffer_storage::clock::now()).await?;
        Ok(token)
    }

    /// `sys/unseal` with a share (or `reset`).
    pub async fn unseal(&self, key: Option<&str>, reset: bool) -> Result<SealStatus> {
        let Some(cfg) = self.seal_config().await? else {
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
                self.finish_join(&kek).await?;
                self.unseal_with_key(&kek).await
            }
            SealSource::Static { key, .. } => {
                // With a static seal, operators prove quorum with recovery shares; the barrier
                // is then opened with the configured key.
                let check = match self.barrier.raw().get(seal::RECOVERY_CHECK_PATH).await? {
                    Some(c) => c.value,
                    None => self
                        .cluster_hooks()
                        .and_then(|h| h.join_ticket())
                        .and_then(|t| t.recovery_check)
                        .ok_or_else(|| Error::internal("recovery check record missing"))?,
                };
                if !seal::verify_recovery(key_material.expose(), &check) {
                    return Err(Error::bad("unseal failed, invalid key"));
                }
                let key = key.duplicate();
                self.finish_join(&key).await?;
                self.unseal_with_key(&key).await
            }
        };
        result?;
        self.seal_status().await
    }

    /// Opens the barrier with the unseal key and brings the node up. Caller holds `transition`.
    pub(super) async fn unseal_with_key(&self, kek: &UnsealKey) -> Result<()> {
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

    /// The seal configuration: the stored one, or a join ticket's while this node is joining.
    pub async fn seal_config(&self) -> Result<Option<StoredSealConfig>> {
        if let Some(cfg) = seal::read_config(self.barrier.raw().as_ref()).await? {
            return Ok(Some(cfg));
        }
        Ok(self.cluster_hooks().and_then(|h| h.join_ticket()).map(|t| t.seal_config))
    }

    /// On a joining node with the unseal key in hand: unwrap the root key from the ticket and let
    /// the cluster glue prove it to the leader and wait for the replicated data. A node that is
    /// not joining (or whose data already arrived) does nothing here.
    async fn finish_join(&self, kek: &UnsealKey) -> Result<()> {
        let Some(hooks) = self.cluster_hooks() else { return Ok(()) };
        if seal::read_config(self.barrier.raw().as_ref()).await?.is_some() {
            return Ok(());
        }
        let Some(ticket) = hooks.join_ticket() else { return Ok(()) };
        let root = seal::unwrap_root_key(kek, &ticket.wrapped_root_key)?;
        hooks.complete_join(&root).await
    }

    /// A static-seal node that holds a join ticket joins and unseals by itself (the static key
    /// unwraps the root key). Called by the cluster glue when the ticket arrives.
    pub async fn join_with_static_key(&self) -> Result<()> {
        let SealSource::Static { key, .. } = &self.seal_source else { return Ok(()) };
        let key = key.duplicate();
        let _t = self.transition.lock().await;
        if !self.is_sealed() {
            return Ok(());
        }
        self.finish_join(&key).await?;
        self.unseal_with_key(&key).await
    }

    /// Loads (creating on first unseal) everything the unsealed node serves.
    async fn post_unseal(&self) -> Result<Arc<Active>> {
        // Subscribe before loading anything: a change applied while the caches load is then
        // either in what they read or in what the invalidation task receives.
        let changes = self.replication.changes().subscribe();
        let (handled, _) = tokio::sync::watch::channel(changes.seen);
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
                let batch = coffer_storage::Batch::new()
                    .put(CLUSTER_PATH, serde_json::to_vec(&info)?)
                    .require_absent(CLUSTER_PATH);
                match self.barrier.try_apply(batch).await? {
                    Some(_) => info,
                    // Another node created it first: use theirs.
                    None => {
                        let e = self
                            .barrier
                            .get(CLUSTER_PATH)
                            .await?
                            .ok_or_else(|| Error::internal("cluster info vanished"))?;
                        serde_json::from_slice(&e.value)?
                    }
                }
            }
        };
        let mounts = Mounts::new(Arc::clone(&self.barrier));
        for table in [Table::Secrets, Table::Auth] {
            let defaults = self.registry().default_mounts(table);
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
        let tokens = TokenStore::open(View::new(Arc::clone(&self.barrier), "sys/token/")).await?;
        let policies =
            PolicyStore::open(View::new(Arc::clone(&self.barrier), super::invalidation::POLICY_PREFIX))
                .await?;
        let audit = crate::audit::AuditBroker::load(&self.barrier, &self.config.audit).await?;
        let active = Arc::new(Active {
            audit,
            mounts,
            tokens,
            policies,
            cluster,
            since: coffer_storage::clock::now(),
            handled,
        });
        self.set_active(Some(Arc::clone(&active)));
        super::invalidation::spawn(self, &active, changes.rx);
        super::scheduler::spawn(self, &active);
        if let Some(hooks) = self.cluster_hooks() {
            if let Err(e) = hooks.after_unseal(&self.barrier).await {
                self.set_active(None);
                return Err(e);
            }
        }
        Ok(active)
    }

    /// Seals (caller holds `transition`).
    async fn seal_locked(&self) {
        if let Ok(active) = self.active() {
            // Store the audit chain heads while the barrier is still open.
            active.audit.close().await;
        }
        if let Some(hooks) = self.cluster_hooks() {
            hooks.before_seal().await;
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
}
