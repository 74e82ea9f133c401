//! The verification phase of a rekey (`sys/rekey/verify`, `sys/rekey-recovery-key/verify`):
//! with `require_verification`, the new key waits in memory until a threshold of the *new*
//! shares combines to it; only then is it installed (in one guarded batch). A wrong combination
//! draws a new verification nonce and resets the verification progress; the old shares keep
//! working until the switch.

use coffer_storage::keys::SecretBytes;

use super::{PendingKey, RekeyOp, RekeyTarget, RekeyVerifyStatus, RekeyVerifyUpdate};
use crate::core::error::{Error, Result};
use crate::core::quorum;
use crate::core::Core;

/// What the verification phase of `op` shows.
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
    /// `GET sys/rekey/verify`.
    pub async fn rekey_verify_status(&self, target: RekeyTarget) -> Result<RekeyVerifyStatus> {
        self.check_rekey_target(target)?;
        self.initialized_seal_config(Error::bad("server is not yet initialized")).await?;
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
        self.initialized_seal_config(Error::bad("server is not yet initialized")).await?;
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
}
