//! Keeping what the core holds in memory true to storage when writes arrive from elsewhere.
//!
//! On a cluster, a standby's store changes under it as the leader's entries are applied. The
//! [`Replication`](coffer_storage::replication::Replication) change stream names the keys each
//! applied entry wrote; this module maps them to the caches that depend on them and reloads:
//!
//! | keys | reloaded |
//! |---|---|
//! | `core/keyring` | the barrier keyring (rotations made on the leader) |
//! | `core/mounts`, `core/auth` | the mount and auth tables (the router) |
//! | `sys/policy/…` | parsed policies and compiled ACLs |
//! | `core/audit` | the audit device table |
//! | `logical/<uuid>/…`, `auth/<uuid>/…` | that mount's backend caches ([`Backend::invalidate`]) |
//!
//! A receiver that lagged behind (missed changes) or a [`Changes::All`] (snapshot installed)
//! reloads everything. The task lives as long as the unsealed state it was started for.
//!
//! [`Backend::invalidate`]: crate::core::backend::Backend::invalidate

use std::sync::{Arc, Weak};

use coffer_storage::barrier::KEYRING_PATH;
use coffer_storage::replication::Changes;
use tokio::sync::broadcast::{self, error::RecvError};

use super::mounts::{AUTH_PATH, MOUNTS_PATH};
use super::{Active, Core};

/// Storage prefix of the policy store.
pub(crate) const POLICY_PREFIX: &str = "sys/policy/";

/// What a set of changed keys requires (borrowing the keys: a follower classifies every key
/// of every entry it applies).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reload<'a> {
    pub keyring: bool,
    pub mounts: bool,
    pub policies: bool,
    pub audit: bool,
    /// (storage prefix of a mount, key relative to it)
    pub mount_keys: Vec<(&'a str, &'a str)>,
}

impl<'a> Reload<'a> {
    /// Everything (lagged receiver, snapshot install).
    pub fn all() -> Self {
        Self { keyring: true, mounts: true, policies: true, audit: true, mount_keys: Vec::new() }
    }

    /// Classifies changed keys.
    pub fn of(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut r = Self::default();
        for key in keys {
            if key == KEYRING_PATH {
                r.keyring = true;
            } else if key == MOUNTS_PATH || key == AUTH_PATH {
                r.mounts = true;
            } else if key.starts_with(POLICY_PREFIX) {
                r.policies = true;
            } else if key == crate::audit::TABLE_PATH {
                r.audit = true;
            } else if let Some((prefix, rest)) = mount_key(key) {
                r.mount_keys.push((prefix, rest));
            }
        }
        r
    }
}

/// Splits `logical/<uuid>/rest` or `auth/<uuid>/rest` into the mount's storage prefix and the
/// relative key.
fn mount_key(key: &str) -> Option<(&str, &str)> {
    let root_len = if key.starts_with("logical/") {
        "logical/".len()
    } else if key.starts_with("auth/") {
        "auth/".len()
    } else {
        return None;
    };
    let slash = key[root_len..].find('/')? + root_len + 1;
    Some((&key[..slash], &key[slash..]))
}

/// Starts the invalidation task for `active` (no-op outside a Tokio runtime).
pub(crate) fn spawn(core: &Core, active: &Arc<Active>, mut changes: broadcast::Receiver<Changes>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak_core = core.me.clone();
    let weak_active: Weak<Active> = Arc::downgrade(active);
    tokio::spawn(async move {
        loop {
            let (change, events) = match changes.recv().await {
                Ok(change) => (Some(change), 1),
                Err(RecvError::Lagged(missed)) => (None, missed),
                Err(RecvError::Closed) => return,
            };
            let reload = match &change {
                Some(Changes::Keys { keys, .. }) => Reload::of(keys.iter().map(String::as_str)),
                _ => Reload::all(),
            };
            let Some(core) = weak_core.upgrade() else { return };
            let Some(active) = weak_active.upgrade() else { return };
            if !core.active().map(|a| Arc::ptr_eq(&a, &active)).unwrap_or(false) {
                return;
            }
            if let Some(delay) = injected_delay() {
                tokio::time::sleep(delay).await;
            }
            core.apply_reload(&active, reload).await;
            active.handled.send_modify(|n| *n += events);
        }
    });
}

/// Fault injection for tests, in debug builds only: `COFFER_FAULT_SLOW_INVALIDATION_MS` delays
/// every cache reload, widening the window between applying an entry and reloading what it
/// changed (a loaded follower). Release builds never read it.
fn injected_delay() -> Option<std::time::Duration> {
    if !cfg!(debug_assertions) {
        return None;
    }
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        let ms = std::env::var("COFFER_FAULT_SLOW_INVALIDATION_MS").ok()?.parse::<u64>().ok()?;
        Some(std::time::Duration::from_millis(ms))
    })
}

/// How long a read waits for this node's caches to catch up with what it has applied.
const CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Core {
    /// Read barrier for this node: returns once storage *and* the caches built on it (mount
    /// router, policies, keyring, backend caches) reflect every write acknowledged anywhere
    /// before the call. Storage alone is not enough: a follower applies an entry, then
    /// reloads its caches asynchronously.
    pub async fn linearize(&self) -> crate::core::error::Result<()> {
        self.replication.linearize().await?;
        let target = self.replication.changes().published();
        let active = self.active()?;
        let mut handled = active.handled.subscribe();
        let caught_up =
            tokio::time::timeout(CACHE_WAIT, handled.wait_for(|n| *n >= target)).await.map(|r| r.map(|_| ()));
        match caught_up {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(crate::core::error::Error::Sealed),
            Err(_) => Err(crate::core::error::Error::Unavailable(
                "this node's caches did not catch up with the replicated state in time; retry".into(),
            )),
        }
    }
}

impl Core {
    /// Reloads what `reload` names. Failures are logged: the cache stays as it was and the
    /// next change (or a restart) retries; a standby never crashes on a replicated write.
    pub(crate) async fn apply_reload(&self, active: &Active, reload: Reload<'_>) {
        let everything = reload == Reload::all();
        if reload.keyring {
            match self.barrier.reload_keyring().await {
                Ok(()) => {}
                // The stored keyring is no longer ours (a snapshot of another cluster was
                // restored): seal, then unseal again with what the restored data says. A static
                // seal does that by itself; with Shamir, operators unseal with that cluster's
                // shares.
                Err(coffer_storage::BarrierError::WrongRootKey) => {
                    tracing::warn!(
                        "the replicated keyring belongs to other keys (snapshot restore); sealing"
                    );
                    self.reseal_after_restore().await;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not reload the barrier keyring after a replicated change")
                }
            }
        }
        if reload.mounts {
            if let Err(e) = active.mounts.reload(self.factory()).await {
                tracing::error!(error = %e, "could not reload the mount tables after a replicated change");
            }
        }
        if reload.policies {
            active.policies.invalidate();
        }
        if reload.audit {
            match self.read_audit_table().await {
                Ok((configs, _)) => {
                    let configs = crate::audit::table::as_declared_here(configs, &self.config.audit);
                    let keep = active.audit.devices();
                    let (devices, broken) = crate::audit::open_devices(self.barrier(), configs, &keep).await;
                    active.audit.set(devices, broken);
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not reload the audit table after a replicated change")
                }
            }
        }
        // The router's own snapshot, not a copy of every route (once per applied batch on a
        // follower).
        let routes = active.mounts.snapshot();
        if everything {
            for r in routes.values() {
                r.backend.invalidate(None);
            }
            return;
        }
        for (prefix, key) in &reload.mount_keys {
            if let Some(r) = routes.values().find(|r| r.view.prefix() == *prefix) {
                r.backend.invalidate(Some(key));
            }
        }
    }
}

impl Core {
    /// Seals after a restore replaced the keys, and auto-unseals when the seal allows it.
    async fn reseal_after_restore(&self) {
        let Ok(me) = self.arc() else { return };
        // Sealing waits for this very task's unsealed state to go: do it from another task.
        tokio::spawn(async move {
            me.seal().await;
            if let Err(e) = me.start().await {
                tracing::error!(error = %e, "could not unseal with the restored keys; unseal with that cluster's keys");
            }
        });
    }
}

#[cfg(test)]
mod tests;
