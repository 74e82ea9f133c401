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
//! shares keep working, and the new key lives only in memory (`verify`).
//!
//! # State
//!
//! One operation per target, in memory only ([`Rekeys`]); shares are dropped (zeroized) when
//! a threshold is reached, on cancel, on completion and when the node seals.

mod verify;

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

impl Core {
    fn check_rekey_target(&self, target: RekeyTarget) -> Result<()> {
        match (target, &self.seal_source) {
            (RekeyTarget::Recovery, SealSource::Shamir) => Err(Error::bad("recovery rekeying not supported")),
            _ => Ok(()),
        }
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
        let cfg = self.initialized_seal_config(Error::bad("server is not yet initialized")).await?;
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
        let cfg = self.initialized_seal_config(Error::bad("Vault is not initialized")).await?;
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
        let cfg = self.initialized_seal_config(Error::bad("Vault is not initialized")).await?;
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
        let cfg_entry = self.seal_record(seal::SEAL_CONFIG_PATH, "seal config vanished").await?;
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
        let record_entry = self.seal_record(record_path, &format!("{record_path} vanished")).await?;
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
mod tests;
