//! Rekeying: new key shares for the same root key (`sys/rekey/*`,
//! `sys/rekey-recovery-key/*`).
//!
//! # Targets
//!
//! * [`RekeyTarget::Barrier`] with a Shamir seal: a quorum of the current unseal shares
//!   authorizes a new unseal key (KEK). The root key is re-wrapped under it and the seal
//!   configuration rewritten with the new share counts, both in **one** storage batch guarded by
//!   the versions read before, so a crash leaves either the old or the new key hierarchy, never
//!   a mix. The keyring and every value stay as they are; the old shares stop working at once.
//! * [`RekeyTarget::Barrier`] with the static seal (OpenBao's auto-unseal behaviour): a quorum
//!   of recovery shares is required, shares and threshold are forced to 1 (shown as 0), no
//!   verification and no PGP; no shares are returned. The unseal key is the configured static
//!   key, which coffer cannot change, so completing only proves the quorum.
//! * [`RekeyTarget::Recovery`] (static seal only): a quorum of recovery shares authorizes a new
//!   recovery key; the recovery check record and the seal configuration are replaced in one
//!   batch. With a Shamir seal every recovery operation answers "recovery rekeying not
//!   supported".
//!
//! # Verification
//!
//! With `require_verification` the new shares are returned but not yet used: holders must
//! submit a threshold of the *new* shares to `verify` before the switch. Until then the old
//! shares keep working, and the new key lives only in memory.
//!
//! # State
//!
//! One operation per target, in memory only ([`Rekeys`]); shares are dropped (zeroized) when
//! a threshold is reached, on cancel, on completion and when the node seals.

use zeroize::Zeroizing;

use coffer_storage::keys::{SecretBytes, UnsealKey};
use coffer_storage::{Batch, StorageError};

use crate::core::error::{Error, Result};
use crate::core::quorum::{self, Shares};
use crate::core::seal::{self, SealSource, StoredSealConfig};
use crate::core::Core;

/// Which key a rekey replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RekeyTarget {
    /// The unseal key (`sys/rekey/*`).
    Barrier,
    /// The recovery key of the static seal (`sys/rekey-recovery-key/*`).
    Recovery,
}

/// Parameters of `PUT sys/rekey/init`.
#[derive(Debug, Default)]
pub struct RekeyParams {
    pub secret_shares: i64,
    pub secret_threshold: i64,
    pub require_verification: bool,
    /// Number of PGP keys given (PGP is not supported; any is refused).
    pub pgp_keys: usize,
    pub backup: bool,
}

/// The new key waiting for verification.
struct PendingKey {
    key: SecretBytes,
    nonce: String,
    shares: Shares,
}

/// One rekey operation in progress.
struct RekeyOp {
    nonce: String,
    /// New share count and threshold (0/0 for a static-seal barrier rekey, as OpenBao shows).
    shares: u8,
    threshold: u8,
    verification_required: bool,
    progress: Shares,
    pending: Option<PendingKey>,
}

/// Operations in progress, one per target.
#[derive(Default)]
pub struct Rekeys {
    barrier: Option<RekeyOp>,
    recovery: Option<RekeyOp>,
}

impl std::fmt::Debug for Rekeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rekeys")
            .field("barrier", &self.barrier.is_some())
            .field("recovery", &self.recovery.is_some())
            .finish()
    }
}

impl Rekeys {
    fn slot(&mut self, target: RekeyTarget) -> &mut Option<RekeyOp> {
        match target {
            RekeyTarget::Barrier => &mut self.barrier,
            RekeyTarget::Recovery => &mut self.recovery,
        }
    }
}

/// What `GET sys/rekey/init` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RekeyStatus {
    pub started: bool,
    pub nonce: String,
    pub t: u8,
    pub n: u8,
    pub progress: usize,
    pub required: u8,
    pub verification_required: bool,
    /// Set once new shares wait for verification.
    pub verification_nonce: Option<String>,
}

/// New shares handed out when the update phase completes.
pub struct RekeyResult {
    pub nonce: String,
    /// The new shares (empty for a static-seal barrier rekey).
    pub keys: Vec<SecretBytes>,
    pub verification_required: bool,
    pub verification_nonce: Option<String>,
}

impl std::fmt::Debug for RekeyResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RekeyResult")
            .field("nonce", &self.nonce)
            .field("keys", &self.keys.len())
            .field("verification_required", &self.verification_required)
            .finish_non_exhaustive()
    }
}

/// The answer to one submitted share in the update phase.
#[derive(Debug)]
pub enum RekeyUpdate {
    Progress(RekeyStatus),
    Complete(RekeyResult),
}

/// What `GET sys/rekey/verify` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RekeyVerifyStatus {
    pub started: bool,
    pub nonce: String,
    pub t: u8,
    pub n: u8,
    pub progress: usize,
}

/// The answer to one submitted share in the verification phase.
#[derive(Debug, PartialEq, Eq)]
pub enum RekeyVerifyUpdate {
    Progress(RekeyVerifyStatus),
    /// The new shares are in force; `nonce` is the verification nonce.
    Complete {
        nonce: String,
    },
}

const UNSEAL_KEY_MISMATCH: &str =
    "failed to read root key: invalid key: failed to decrypt keys from storage: cipher: message authentication failed";
const RECOVERY_KEY_MISMATCH: &str =
    "recovery key verification failed: recovery key does not match submitted values";

fn verify_status(op: &RekeyOp) -> RekeyVerifyStatus {
    RekeyVerifyStatus {
        started: op.pending.is_some(),
        nonce: op.pending.as_ref().map(|p| p.nonce.clone()).unwrap_or_default(),
        t: op.threshold,
        n: op.shares,
        progress: op.pending.as_ref().map(|p| p.shares.len()).unwrap_or(0),
    }
}

impl Core {
    fn check_rekey_target(&self, target: RekeyTarget) -> Result<()> {
        match (target, &self.seal_source) {
            (RekeyTarget::Recovery, SealSource::Shamir) => Err(Error::bad("recovery rekeying not supported")),
            _ => Ok(()),
        }
    }

    /// Seal config of an initialised node, or the given error.
    async fn rekey_config(&self, uninitialized: &'static str) -> Result<StoredSealConfig> {
        seal::read_config(self.barrier.raw().as_ref()).await?.ok_or_else(|| Error::bad(uninitialized))
    }

    fn rekey_status_of(&self, cfg: &StoredSealConfig, op: Option<&RekeyOp>) -> RekeyStatus {
        let required = self.quorum_threshold(cfg);
        match op {
            None => RekeyStatus { required, ..RekeyStatus::default() },
            Some(op) => RekeyStatus {
                started: true,
                nonce: op.nonce.clone(),
                t: op.threshold,
                n: op.shares,
                progress: op.progress.len(),
                required,
                verification_required: op.verification_required,
                verification_nonce: op.pending.as_ref().map(|p| p.nonce.clone()),
            },
        }
    }

    /// `GET sys/rekey/init` (or the recovery variant).
    pub async fn rekey_status(&self, target: RekeyTarget) -> Result<RekeyStatus> {
        self.check_rekey_target(target)?;
        let cfg = self.rekey_config("server is not yet initialized").await?;
        self.active()?;
        let mut rekeys = self.rekeys.lock().await;
        let op = rekeys.slot(target).as_ref();
        Ok(self.rekey_status_of(&cfg, op))
    }

    /// `PUT sys/rekey/init`: starts an operation with the new share counts.
    pub async fn rekey_init(&self, target: RekeyTarget, params: RekeyParams) -> Result<RekeyStatus> {
        self.check_rekey_target(target)?;
        if params.backup && params.pgp_keys == 0 {
            return Err(Error::bad(
                "cannot request a backup of the new keys without providing PGP keys for encryption",
            ));
        }
        if params.pgp_keys > 0 && i64::try_from(params.pgp_keys).ok() != Some(params.secret_shares) {
            return Err(Error::bad("incorrect number of PGP keys for rekey"));
        }
        let static_barrier =
            target == RekeyTarget::Barrier && matches!(self.seal_source, SealSource::Static { .. });
        let (shares, threshold) = if static_barrier {
            if params.pgp_keys > 0 {
                return Err(Error::bad(
                    "PGP key encryption not supported when rekeying the barrier key with recovery keys",
                ));
            }
            if params.require_verification {
                return Err(Error::bad(
                    "requiring verification not supported when rekeying the barrier key with recovery keys",
                ));
            }
            (0, 0)
        } else {
            if params.pgp_keys > 0 {
                return Err(Error::bad("PGP-encrypted key shares are not supported by this server"));
            }
            let prefix = match target {
                RekeyTarget::Barrier => "invalid rekey seal configuration",
                RekeyTarget::Recovery => "invalid recovery configuration",
            };
            seal::validate_shares_as(prefix, params.secret_shares, params.secret_threshold)?
        };
        self.active()?;
        let cfg = self.rekey_config("Vault is not initialized").await?;
        let mut rekeys = self.rekeys.lock().await;
        let slot = rekeys.slot(target);
        if slot.is_some() {
            return Err(Error::bad("rekey already in progress"));
        }
        let nonce = uuid::Uuid::new_v4().to_string();
        tracing::info!(
            nonce = %nonce, ?target, shares, threshold,
            verification_required = params.require_verification, "rekey initialized"
        );
        *slot = Some(RekeyOp {
            nonce,
            shares,
            threshold,
            verification_required: params.require_verification,
            progress: Shares::default(),
            pending: None,
        });
        Ok(self.rekey_status_of(&cfg, slot.as_ref()))
    }

    /// `DELETE sys/rekey/init`: drops the operation (and any new key awaiting verification).
    pub async fn rekey_cancel(
        &self,
        target: RekeyTarget,
        nonce: Option<&str>,
        nonce_required: bool,
    ) -> Result<()> {
        self.check_rekey_target(target)?;
        self.active()?;
        let mut rekeys = self.rekeys.lock().await;
        let slot = rekeys.slot(target);
        if let Some(op) = slot.as_ref() {
            quorum::check_cancel_nonce(&op.nonce, nonce, nonce_required)?;
            tracing::info!(nonce = %op.nonce, ?target, "rekey cancelled");
        }
        *slot = None;
        Ok(())
    }

    /// `PUT sys/rekey/update`: one current share. At the threshold the shares are combined and
    /// checked; a wrong key resets the progress and keeps the operation.
    pub async fn rekey_update(
        &self,
        target: RekeyTarget,
        key: SecretBytes,
        nonce: &str,
    ) -> Result<RekeyUpdate> {
        self.check_rekey_target(target)?;
        if let Some(problem) = quorum::key_length_problem(&key) {
            return Err(Error::bad(problem));
        }
        let _t = self.transition.lock().await;
        self.active()?;
        let cfg = self.rekey_config("Vault is not initialized").await?;
        let mut rekeys = self.rekeys.lock().await;
        let slot = rekeys.slot(target);
        let Some(op) = slot.as_mut() else {
            return Err(Error::bad(match target {
                RekeyTarget::Barrier => "no barrier rekey in progress",
                RekeyTarget::Recovery => "no recovery rekey in progress",
            }));
        };
        if let Some(pending) = &op.pending {
            return Err(Error::bad(format!(
                "rekey operation already finished; verification must be performed; nonce for the verification operation is {:?}",
                pending.nonce
            )));
        }
        if nonce != op.nonce {
            return Err(Error::bad(format!(
                "incorrect nonce supplied; nonce for this rekey operation is {:?}",
                op.nonce
            )));
        }
        if op.progress.contains(&key) {
            return Err(Error::bad(match target {
                RekeyTarget::Barrier => {
                    "given key has already been provided during this generation operation"
                }
                RekeyTarget::Recovery => "given key has already been provided during this rekey operation",
            }));
        }
        op.progress.push(key);
        let required = self.quorum_threshold(&cfg);
        if op.progress.len() < usize::from(required) {
            return Ok(RekeyUpdate::Progress(self.rekey_status_of(&cfg, Some(op))));
        }
        let combined = op.progress.combine(required).map_err(|e| {
            Error::bad(match target {
                RekeyTarget::Barrier => format!("failed to compute root key: {e}"),
                RekeyTarget::Recovery => format!("failed to compute recovery key: {e}"),
            })
        })?;
        if !self.quorum_key_matches(&combined).await? {
            tracing::warn!(nonce = %op.nonce, ?target, "rekey: wrong key shares, progress reset");
            return Err(Error::bad(match self.seal_source {
                SealSource::Shamir => UNSEAL_KEY_MISMATCH,
                SealSource::Static { .. } => RECOVERY_KEY_MISMATCH,
            }));
        }
        drop(combined);

        if target == RekeyTarget::Barrier && matches!(self.seal_source, SealSource::Static { .. }) {
            // The static key is configured outside coffer: the quorum is all there is to check.
            let nonce = op.nonce.clone();
            *slot = None;
            tracing::info!(nonce = %nonce, "rekey with recovery keys completed; the static seal key is unchanged");
            return Ok(RekeyUpdate::Complete(RekeyResult {
                nonce,
                keys: Vec::new(),
                verification_required: false,
                verification_nonce: None,
            }));
        }

        let new_key = SecretBytes::random(coffer_storage::keys::KEY_LEN)
            .map_err(|e| Error::internal(format!("rng: {e}")))?;
        let keys = seal::split_key(new_key.expose(), op.shares, op.threshold)?;
        if op.verification_required {
            let vnonce = uuid::Uuid::new_v4().to_string();
            op.pending = Some(PendingKey { key: new_key, nonce: vnonce.clone(), shares: Shares::default() });
            return Ok(RekeyUpdate::Complete(RekeyResult {
                nonce: op.nonce.clone(),
                keys,
                verification_required: true,
                verification_nonce: Some(vnonce),
            }));
        }
        self.install_new_key(target, &new_key, op.shares, op.threshold).await?;
        let nonce = op.nonce.clone();
        *slot = None;
        Ok(RekeyUpdate::Complete(RekeyResult {
            nonce,
            keys,
            verification_required: false,
            verification_nonce: None,
        }))
    }

    /// `GET sys/rekey/verify`.
    pub async fn rekey_verify_status(&self, target: RekeyTarget) -> Result<RekeyVerifyStatus> {
        self.check_rekey_target(target)?;
        self.rekey_config("server is not yet initialized").await?;
        self.active()?;
        let mut rekeys = self.rekeys.lock().await;
        let op = rekeys.slot(target).as_ref().ok_or_else(|| Error::bad("no rekey configuration found"))?;
        Ok(verify_status(op))
    }

    /// `DELETE sys/rekey/verify`: forgets the verification progress and draws a new
    /// verification nonce. `nonce_required` is set for anonymous callers.
    pub async fn rekey_verify_restart(
        &self,
        target: RekeyTarget,
        nonce: Option<&str>,
        nonce_required: bool,
    ) -> Result<RekeyVerifyStatus> {
        self.check_rekey_target(target)?;
        self.rekey_config("server is not yet initialized").await?;
        self.active()?;
        let mut rekeys = self.rekeys.lock().await;
        let op = rekeys.slot(target).as_mut().ok_or_else(|| Error::bad("no rekey configuration found"))?;
        if let Some(pending) = op.pending.as_mut() {
            quorum::check_cancel_nonce(&pending.nonce, nonce, nonce_required)?;
            pending.shares.clear();
            pending.nonce = uuid::Uuid::new_v4().to_string();
        }
        Ok(verify_status(op))
    }

    /// `PUT sys/rekey/verify`: one *new* share. At the new threshold the shares must combine to
    /// the pending key; then it replaces the old one. A wrong combination draws a new
    /// verification nonce and resets the verification progress.
    pub async fn rekey_verify_update(
        &self,
        target: RekeyTarget,
        key: SecretBytes,
        nonce: &str,
    ) -> Result<RekeyVerifyUpdate> {
        self.check_rekey_target(target)?;
        if let Some(problem) = quorum::key_length_problem(&key) {
            return Err(Error::bad(problem));
        }
        let _t = self.transition.lock().await;
        self.active()?;
        let mut rekeys = self.rekeys.lock().await;
        let slot = rekeys.slot(target);
        let Some(op) = slot.as_mut() else { return Err(Error::bad("no rekey in progress")) };
        let (shares, threshold) = (op.shares, op.threshold);
        let Some(pending) = op.pending.as_mut() else {
            return Err(Error::bad("no rekey verification in progress"));
        };
        if nonce != pending.nonce {
            return Err(Error::bad(format!(
                "incorrect nonce supplied; nonce for this verify operation is {:?}",
                pending.nonce
            )));
        }
        if pending.shares.contains(&key) {
            return Err(Error::bad("given key has already been provided during this verify operation"));
        }
        pending.shares.push(key);
        if pending.shares.len() < usize::from(threshold) {
            return Ok(RekeyVerifyUpdate::Progress(verify_status(op)));
        }
        let combined = pending.shares.combine(threshold);
        let rotate = |p: &mut PendingKey| p.nonce = uuid::Uuid::new_v4().to_string();
        let combined = match combined {
            Ok(c) => c,
            Err(e) => {
                rotate(pending);
                return Err(Error::bad(format!("failed to compute key for verification: {e}")));
            }
        };
        if !pending.key.ct_eq(combined.expose()) {
            rotate(pending);
            tracing::warn!(?target, "rekey verification failed; verification nonce rotated");
            return Err(Error::bad("rekey verification failed; incorrect key shares supplied"));
        }
        drop(combined);
        if let Err(e) = self.install_new_key(target, &pending.key, shares, threshold).await {
            rotate(pending);
            return Err(e);
        }
        let vnonce = pending.nonce.clone();
        *slot = None;
        Ok(RekeyVerifyUpdate::Complete { nonce: vnonce })
    }

    /// Puts a verified new key in force: one batch that replaces the key record (wrapped root
    /// key, or recovery check) and the seal configuration, guarded by their current versions.
    async fn install_new_key(
        &self,
        target: RekeyTarget,
        new_key: &SecretBytes,
        shares: u8,
        threshold: u8,
    ) -> Result<()> {
        let raw = self.barrier.raw();
        let cfg_entry =
            raw.get(seal::SEAL_CONFIG_PATH).await?.ok_or_else(|| Error::internal("seal config vanished"))?;
        let mut cfg =
            seal::read_config(raw.as_ref()).await?.ok_or_else(|| Error::internal("seal config vanished"))?;
        let (record_path, record) = match target {
            RekeyTarget::Barrier => {
                let kek = UnsealKey::from_slice(new_key.expose())
                    .ok_or_else(|| Error::internal("new unseal key has the wrong length"))?;
                let wrapped = self.barrier.with_root_key(|root| seal::wrap_root_key(&kek, root))??;
                cfg.secret_shares = shares;
                cfg.secret_threshold = threshold;
                (seal::ROOT_KEY_PATH, wrapped)
            }
            RekeyTarget::Recovery => {
                cfg.recovery_shares = shares;
                cfg.recovery_threshold = threshold;
                (seal::RECOVERY_CHECK_PATH, seal::recovery_check(new_key.expose())?)
            }
        };
        let record_entry =
            raw.get(record_path).await?.ok_or_else(|| Error::internal(format!("{record_path} vanished")))?;
        let cfg_bytes = Zeroizing::new(serde_json::to_vec(&cfg)?);
        let batch = Batch::new()
            .put(record_path, record)
            .require_version(record_path, record_entry.version)
            .put(seal::SEAL_CONFIG_PATH, cfg_bytes.to_vec())
            .require_version(seal::SEAL_CONFIG_PATH, cfg_entry.version);
        match raw.apply(batch).await {
            Ok(_) => {
                tracing::info!(?target, shares, threshold, "rekey completed: new key shares in force");
                Ok(())
            }
            Err(StorageError::PreconditionFailed { .. }) => {
                Err(Error::internal("seal records changed while the rekey was completing"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::core::generate_root::decode_token;
    use crate::core::quorum::fixtures::{self, Node};
    use crate::core::seal::render_shares;

    fn msg(e: Error) -> String {
        assert_eq!(e.kind(), crate::core::error::ErrorKind::BadRequest, "{e}");
        e.to_string()
    }

    fn params(n: i64, t: i64, verify: bool) -> RekeyParams {
        RekeyParams {
            secret_shares: n,
            secret_threshold: t,
            require_verification: verify,
            ..RekeyParams::default()
        }
    }

    fn hex(keys: &[SecretBytes]) -> Vec<String> {
        render_shares(keys).0.iter().map(|s| s.as_str().to_owned()).collect()
    }

    /// Feeds shares to the update phase until it completes.
    async fn run_update(
        node: &Node,
        target: RekeyTarget,
        nonce: &str,
        shares: &[SecretBytes],
    ) -> RekeyResult {
        for (i, s) in shares.iter().enumerate() {
            match node.core.rekey_update(target, s.duplicate(), nonce).await.unwrap() {
                RekeyUpdate::Progress(st) => assert_eq!(st.progress, i + 1),
                RekeyUpdate::Complete(r) => {
                    assert_eq!(i + 1, shares.len(), "completed early");
                    return r;
                }
            }
        }
        panic!("update did not complete");
    }

    /// Whether a generate-root quorum of `shares` is accepted.
    async fn quorum_accepted(node: &Node, shares: &[SecretBytes]) -> bool {
        let init = node.core.generate_root_init(None, false).await.unwrap();
        let mut outcome = false;
        for s in shares {
            match node.core.generate_root_update(s.duplicate(), &init.nonce).await {
                Ok(p) if p.complete() => {
                    decode_token(p.encoded_token.as_ref().unwrap(), init.otp.as_ref().unwrap()).unwrap();
                    outcome = true;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        node.core.generate_root_cancel(None, false).await.unwrap();
        outcome
    }

    /// Seals and tries to unseal with `shares`; true if the node came up.
    async fn unseals_with(node: &Node, shares: &[String]) -> bool {
        node.core.seal().await;
        for s in shares {
            if node.core.unseal(Some(s), false).await.is_err() {
                break;
            }
        }
        let up = !node.core.is_sealed();
        node.core.unseal(None, true).await.ok();
        up
    }

    #[tokio::test]
    async fn shamir_rekey_five_three_to_three_two() {
        let node = fixtures::shamir(5, 3).await;
        let s = node.core.rekey_status(RekeyTarget::Barrier).await.unwrap();
        assert_eq!(s, RekeyStatus { required: 3, ..RekeyStatus::default() });

        let st = node.core.rekey_init(RekeyTarget::Barrier, params(3, 2, false)).await.unwrap();
        assert_eq!((st.started, st.t, st.n, st.required, st.progress), (true, 2, 3, 3, 0));
        assert_eq!(node.core.rekey_status(RekeyTarget::Barrier).await.unwrap(), st);
        let e = node.core.rekey_init(RekeyTarget::Barrier, params(3, 2, false)).await.unwrap_err();
        assert_eq!(msg(e), "rekey already in progress");

        let old: Vec<SecretBytes> = [0, 2, 4].iter().map(|&i| node.share(i)).collect();
        let r = run_update(&node, RekeyTarget::Barrier, &st.nonce, &old).await;
        assert_eq!(r.nonce, st.nonce);
        assert!(!r.verification_required && r.verification_nonce.is_none());
        assert_eq!(r.keys.len(), 3);
        assert!(r.keys.iter().all(|k| k.len() == 33));
        assert!(!node.core.rekey_status(RekeyTarget::Barrier).await.unwrap().started);
        let ss = node.core.seal_status().await.unwrap();
        assert_eq!((ss.t, ss.n), (2, 3));

        // Old shares no longer authorize anything; new ones do.
        let old_quorum: Vec<SecretBytes> = (0..3).map(|i| node.share(i)).collect();
        assert!(!quorum_accepted(&node, &old_quorum).await);
        assert!(quorum_accepted(&node, &r.keys[1..]).await);
        let new = hex(&r.keys);
        assert!(!unseals_with(&node, &node.shares[..3]).await, "old shares must not unseal");
        assert!(unseals_with(&node, &new[..2]).await);
        assert!(unseals_with(&node, &[new[2].clone(), new[0].clone()]).await);

        // The data behind the barrier is untouched (same root key, same keyring).
        let restarted = node.restart().await;
        for s in &new[..2] {
            restarted.unseal(Some(s), false).await.unwrap();
        }
        assert!(!restarted.is_sealed());
    }

    #[tokio::test]
    async fn shamir_rekey_with_verification() {
        let node = fixtures::shamir(5, 3).await;
        let st = node.core.rekey_init(RekeyTarget::Barrier, params(1, 1, true)).await.unwrap();
        assert!(st.verification_required);
        let e = node.core.rekey_verify_update(RekeyTarget::Barrier, node.share(0), "x").await.unwrap_err();
        assert_eq!(msg(e), "no rekey verification in progress");
        let vs = node.core.rekey_verify_status(RekeyTarget::Barrier).await.unwrap();
        assert_eq!(vs, RekeyVerifyStatus { started: false, nonce: String::new(), t: 1, n: 1, progress: 0 });

        let old: Vec<SecretBytes> = (0..3).map(|i| node.share(i)).collect();
        let r = run_update(&node, RekeyTarget::Barrier, &st.nonce, &old).await;
        assert_eq!(r.keys.len(), 1);
        assert_eq!(r.keys[0].len(), 32, "a single share is the key itself");
        let vn = r.verification_nonce.clone().unwrap();
        let status = node.core.rekey_status(RekeyTarget::Barrier).await.unwrap();
        assert_eq!(status.verification_nonce.as_deref(), Some(vn.as_str()));
        let e = node.core.rekey_update(RekeyTarget::Barrier, node.share(3), &st.nonce).await.unwrap_err();
        assert_eq!(
            msg(e),
            format!("rekey operation already finished; verification must be performed; nonce for the verification operation is \"{vn}\"")
        );

        // Until verified, the old shares stay in force and the new one does nothing.
        assert!(quorum_accepted(&node, &old).await);
        assert!(!quorum_accepted(&node, &[r.keys[0].duplicate()]).await);

        let e = node
            .core
            .rekey_verify_update(RekeyTarget::Barrier, r.keys[0].duplicate(), "x")
            .await
            .unwrap_err();
        assert_eq!(msg(e), format!("incorrect nonce supplied; nonce for this verify operation is \"{vn}\""));
        // A wrong key fails verification and draws a new nonce.
        let e = node.core.rekey_verify_update(RekeyTarget::Barrier, node.share(0), &vn).await.unwrap_err();
        assert_eq!(msg(e), "rekey verification failed; incorrect key shares supplied");
        let vs = node.core.rekey_verify_status(RekeyTarget::Barrier).await.unwrap();
        assert!(vs.started && vs.nonce != vn && vs.progress == 0);
        // Restarting draws yet another; anonymous restarts need the current one.
        assert!(node.core.rekey_verify_restart(RekeyTarget::Barrier, None, true).await.is_err());
        let vs2 = node.core.rekey_verify_restart(RekeyTarget::Barrier, Some(&vs.nonce), true).await.unwrap();
        assert_ne!(vs2.nonce, vs.nonce);

        let done = node
            .core
            .rekey_verify_update(RekeyTarget::Barrier, r.keys[0].duplicate(), &vs2.nonce)
            .await
            .unwrap();
        assert_eq!(done, RekeyVerifyUpdate::Complete { nonce: vs2.nonce.clone() });
        let e = node.core.rekey_verify_status(RekeyTarget::Barrier).await.unwrap_err();
        assert_eq!(msg(e), "no rekey configuration found");
        assert!(!quorum_accepted(&node, &old).await);
        assert!(quorum_accepted(&node, &[r.keys[0].duplicate()]).await);
        assert!(unseals_with(&node, &hex(&r.keys)).await);
        assert_eq!(
            (node.core.seal_status().await.unwrap().t, node.core.seal_status().await.unwrap().n),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn rekey_rejects_bad_input_and_wrong_shares() {
        let node = fixtures::shamir(5, 3).await;
        let b = RekeyTarget::Barrier;
        let e = node.core.rekey_update(b, node.share(0), "x").await.unwrap_err();
        assert_eq!(msg(e), "no barrier rekey in progress");
        for (p, text) in [
            (params(2, 3, false), "invalid rekey seal configuration: threshold cannot be larger than shares"),
            (
                params(3, 1, false),
                "invalid rekey seal configuration: threshold must be greater than one for multiple shares",
            ),
            (params(0, 0, false), "invalid rekey seal configuration: shares must be at least one"),
            (params(300, 2, false), "invalid rekey seal configuration: shares must be less than 256"),
            (
                RekeyParams { backup: true, ..params(3, 2, false) },
                "cannot request a backup of the new keys without providing PGP keys for encryption",
            ),
            (RekeyParams { pgp_keys: 2, ..params(3, 2, false) }, "incorrect number of PGP keys for rekey"),
            (
                RekeyParams { pgp_keys: 3, ..params(3, 2, false) },
                "PGP-encrypted key shares are not supported by this server",
            ),
        ] {
            assert_eq!(msg(node.core.rekey_init(b, p).await.unwrap_err()), text);
        }
        for e in [
            node.core.rekey_status(RekeyTarget::Recovery).await.unwrap_err(),
            node.core.rekey_init(RekeyTarget::Recovery, params(3, 2, false)).await.unwrap_err(),
            node.core.rekey_update(RekeyTarget::Recovery, node.share(0), "x").await.unwrap_err(),
            node.core.rekey_verify_status(RekeyTarget::Recovery).await.unwrap_err(),
            node.core.rekey_cancel(RekeyTarget::Recovery, None, false).await.unwrap_err(),
        ] {
            assert_eq!(msg(e), "recovery rekeying not supported");
        }

        let st = node.core.rekey_init(b, params(3, 2, false)).await.unwrap();
        let e = node.core.rekey_update(b, node.share(0), "nope").await.unwrap_err();
        assert_eq!(
            msg(e),
            format!("incorrect nonce supplied; nonce for this rekey operation is \"{}\"", st.nonce)
        );
        let e = node.core.rekey_update(b, SecretBytes::from_slice(&[0; 10]), &st.nonce).await.unwrap_err();
        assert_eq!(msg(e), "key is shorter than minimum 16 bytes");
        node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap();
        let e = node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap_err();
        assert_eq!(msg(e), "given key has already been provided during this generation operation");
        node.core.rekey_update(b, node.share(1), &st.nonce).await.unwrap();
        let e = node.core.rekey_update(b, node.stranger(), &st.nonce).await.unwrap_err();
        assert_eq!(msg(e), UNSEAL_KEY_MISMATCH);
        let s = node.core.rekey_status(b).await.unwrap();
        assert_eq!((s.started, s.progress, s.nonce.as_str()), (true, 0, st.nonce.as_str()));
        // Shares of different lengths cannot be combined.
        node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap();
        node.core.rekey_update(b, node.share(1), &st.nonce).await.unwrap();
        let e = node.core.rekey_update(b, SecretBytes::random(20).unwrap(), &st.nonce).await.unwrap_err();
        assert_eq!(msg(e), "failed to compute root key: all parts must be the same length");
        assert_eq!(node.core.rekey_status(b).await.unwrap().progress, 0);

        // Nothing changed on disk: the old shares still unseal.
        assert!(unseals_with(&node, &node.shares[2..]).await);

        // Cancel: anonymous callers need the nonce.
        let st = node.core.rekey_init(b, params(3, 2, false)).await.unwrap();
        assert!(node.core.rekey_cancel(b, None, true).await.is_err());
        assert!(node.core.rekey_cancel(b, Some("x"), false).await.is_err());
        node.core.rekey_cancel(b, Some(&st.nonce), true).await.unwrap();
        assert!(!node.core.rekey_status(b).await.unwrap().started);
        node.core.rekey_cancel(b, None, true).await.unwrap();
    }

    #[tokio::test]
    async fn failed_write_leaves_the_old_key_hierarchy() {
        let node = fixtures::shamir(5, 3).await;
        let b = RekeyTarget::Barrier;
        let st = node.core.rekey_init(b, params(3, 2, false)).await.unwrap();
        node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap();
        node.core.rekey_update(b, node.share(1), &st.nonce).await.unwrap();
        node.storage.fail_apply.store(true, Ordering::SeqCst);
        let e = node.core.rekey_update(b, node.share(2), &st.nonce).await.unwrap_err();
        assert_eq!(e.kind(), crate::core::error::ErrorKind::Unavailable);
        node.storage.fail_apply.store(false, Ordering::SeqCst);
        let ss = node.core.seal_status().await.unwrap();
        assert_eq!((ss.t, ss.n), (3, 5));
        assert!(unseals_with(&node, &node.shares[..3]).await);
    }

    #[tokio::test]
    async fn static_seal_barrier_rekey_only_proves_the_quorum() {
        let node = fixtures::static_seal(5, 3).await;
        let b = RekeyTarget::Barrier;
        let e = node.core.rekey_init(b, params(3, 2, true)).await.unwrap_err();
        assert_eq!(
            msg(e),
            "requiring verification not supported when rekeying the barrier key with recovery keys"
        );
        let st = node.core.rekey_init(b, RekeyParams::default()).await.unwrap();
        assert_eq!((st.started, st.t, st.n, st.required), (true, 0, 0, 3));
        node.core.rekey_update(b, node.share(0), &st.nonce).await.unwrap();
        node.core.rekey_update(b, node.share(1), &st.nonce).await.unwrap();
        let e = node.core.rekey_update(b, node.stranger(), &st.nonce).await.unwrap_err();
        assert_eq!(msg(e), RECOVERY_KEY_MISMATCH);
        let shares: Vec<SecretBytes> = (2..5).map(|i| node.share(i)).collect();
        let r = run_update(&node, b, &st.nonce, &shares).await;
        assert!(r.keys.is_empty());
        assert!(!node.core.rekey_status(b).await.unwrap().started);
        // Nothing changed: the recovery shares still work and the node restarts by itself.
        assert!(quorum_accepted(&node, &shares).await);
        assert!(!node.restart().await.is_sealed());
    }

    #[tokio::test]
    async fn static_seal_recovery_rekey_replaces_recovery_key() {
        let node = fixtures::static_seal(5, 3).await;
        let rc = RekeyTarget::Recovery;
        let e = node.core.rekey_init(rc, params(3, 4, false)).await.unwrap_err();
        assert_eq!(msg(e), "invalid recovery configuration: threshold cannot be larger than shares");
        let st = node.core.rekey_init(rc, params(3, 2, true)).await.unwrap();
        assert_eq!((st.t, st.n, st.required), (2, 3, 3));
        assert!(!node.core.rekey_status(RekeyTarget::Barrier).await.unwrap().started, "targets are separate");
        node.core.rekey_update(rc, node.share(0), &st.nonce).await.unwrap();
        let e = node.core.rekey_update(rc, node.share(0), &st.nonce).await.unwrap_err();
        assert_eq!(msg(e), "given key has already been provided during this rekey operation");
        let old: Vec<SecretBytes> = (1..4).map(|i| node.share(i)).collect();
        node.core.rekey_cancel(rc, None, false).await.unwrap();
        let st = node.core.rekey_init(rc, params(3, 2, true)).await.unwrap();
        let r = run_update(&node, rc, &st.nonce, &old).await;
        assert_eq!(r.keys.len(), 3);
        let vn = r.verification_nonce.clone().unwrap();
        for (i, k) in r.keys[..2].iter().enumerate() {
            match node.core.rekey_verify_update(rc, k.duplicate(), &vn).await.unwrap() {
                RekeyVerifyUpdate::Progress(p) => assert_eq!((i, p.progress), (0, 1)),
                RekeyVerifyUpdate::Complete { nonce } => assert_eq!((i, nonce.as_str()), (1, vn.as_str())),
            }
        }
        let ss = node.core.seal_status().await.unwrap();
        assert_eq!((ss.t, ss.n), (2, 3));
        assert!(!quorum_accepted(&node, &old).await, "old recovery shares are refused");
        assert!(quorum_accepted(&node, &r.keys[1..]).await);

        // Persisted: after a restart (auto-unsealed by the static key) the new shares work, and
        // unsealing a sealed node takes them too.
        let restarted = node.restart().await;
        let again = Node {
            core: restarted,
            storage: node.storage.clone(),
            shares: hex(&r.keys),
            static_key: None,
            root_token: node.root_token.clone(),
        };
        assert!(quorum_accepted(&again, &r.keys[..2]).await);
        assert!(unseals_with(&again, &again.shares[..2]).await);
        assert!(!unseals_with(&again, &node.shares[..3]).await);
    }
}
