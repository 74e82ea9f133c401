//! One leader-gated scheduler for every periodic job: the token tidy, and each mount's
//! [`Backend::periodic`](crate::core::backend::Backend::periodic) (KV v2 version expiry,
//! transit automatic rotation, AppRole's secret-ID tidy), and storing the audit devices the
//! configuration declares when the unseal could not (see [`store_declared_audit_devices`]).
//!
//! One task per unsealed period. Every [`CoreConfig::scheduler_tick`](super::CoreConfig) it
//! runs the jobs that are due, and only while this node is the leader: on a standby nothing
//! runs (the leader's writes replicate), and a node that loses leadership stops at the next
//! tick, or at once when the role changes. The task ends when the node seals (the unsealed
//! state it was started for is gone). A job's next run is counted from the end of its last
//! one, so a slow job never piles up.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{Active, Core};

/// Default granularity of the scheduler.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);
/// How often expired tokens are tidied.
pub const TOKEN_TIDY_EVERY: Duration = Duration::from_secs(60);

/// Key of the token tidy job in the due-time table (mount jobs use the mount's UUID).
const TOKEN_TIDY: &str = "core/token-tidy";

/// What the scheduler is doing, for tests and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Scheduler loops that have looked at the clock (leader or not).
    pub ticks: std::sync::atomic::AtomicU64,
    /// Scheduler tasks alive (0 or 1 outside transitions).
    pub running: std::sync::atomic::AtomicUsize,
    /// Jobs run (mount jobs and token tidy).
    pub jobs_run: std::sync::atomic::AtomicU64,
}

/// Counts a running scheduler task for as long as it lives.
struct Running(Weak<Core>);

impl Running {
    fn new(core: &Core) -> Self {
        core.scheduler_stats.running.fetch_add(1, Ordering::SeqCst);
        Running(core.me.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(core) = self.0.upgrade() {
            core.scheduler_stats.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Starts the scheduler for `active` (no-op outside a Tokio runtime).
pub(crate) fn spawn(core: &Core, active: &Arc<Active>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak_core = core.me.clone();
    let weak_active = Arc::downgrade(active);
    let tick = core.config.scheduler_tick.max(Duration::from_millis(1));
    let mut role = core.replication.watch_role();
    let running = Running::new(core);
    tokio::spawn(async move {
        let _running = running;
        // Jobs first run one interval after the node became able to run them.
        let mut due: HashMap<String, Instant> = HashMap::new();
        let mut audit_table_stored = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                changed = role.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            let Some(core) = weak_core.upgrade() else { return };
            let Some(active) = current(&core, &weak_active) else { return };
            core.scheduler_stats.ticks.fetch_add(1, Ordering::SeqCst);
            if !core.replication.role().is_leader() {
                // Not (or no longer) the leader: forget the schedule; a new leader starts over.
                due.clear();
                audit_table_stored = false;
                continue;
            }
            if !audit_table_stored {
                audit_table_stored = store_declared_audit_devices(&core, &active).await;
            }
            run_due(&core, &active, &mut due).await;
        }
    });
}

/// Once per leadership: brings the stored audit table in line with the devices the
/// configuration declares, keeping the definitions this node runs, and reopens what changed.
/// A node unsealed while it could not write (a standby, or a restarted leader whose cluster
/// links were not up yet) runs its declared devices without storing them; without this, the
/// table would never hold them and every node would run definitions of its own. True once
/// done.
async fn store_declared_audit_devices(core: &Core, active: &Active) -> bool {
    let running = active.audit.configs();
    match crate::audit::table::reconcile_keeping(core.barrier(), &core.config.audit, &running).await {
        Ok((configs, true)) => {
            let keep = active.audit.devices();
            let (devices, broken) = crate::audit::open_devices(core.barrier(), configs, &keep).await;
            active.audit.set(devices, broken);
            true
        }
        Ok((_, false)) => false,
        Err(e) => {
            tracing::warn!(error = %e, "could not store the audit devices the configuration declares; will retry");
            false
        }
    }
}

/// The unsealed state this scheduler was started for, if it is still the node's.
fn current(core: &Core, started_for: &Weak<Active>) -> Option<Arc<Active>> {
    let mine = started_for.upgrade()?;
    let now = core.active().ok()?;
    Arc::ptr_eq(&mine, &now).then_some(mine)
}

/// Runs every job whose time has come; the first sighting of a job schedules it.
async fn run_due(core: &Arc<Core>, active: &Arc<Active>, due: &mut HashMap<String, Instant>) {
    let now = Instant::now();
    let mut is_due = |key: &str, every: Duration| -> bool {
        match due.get(key) {
            Some(at) if *at <= now => true,
            Some(_) => false,
            None => {
                due.insert(key.to_owned(), now + every);
                false
            }
        }
    };
    let mut ran = Vec::new();
    for route in active.mounts.all() {
        let Some(every) = route.backend.periodic_interval() else { continue };
        if !is_due(&route.entry.uuid, every) {
            continue;
        }
        core.scheduler_stats.jobs_run.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = route.backend.periodic(&route.view, &route.entry, coffer_storage::clock::now()).await
        {
            tracing::warn!(mount = %route.entry.route_prefix(), error = %e, "periodic task failed");
        }
        ran.push((route.entry.uuid.clone(), every));
        if !core.replication.role().is_leader() {
            return;
        }
    }
    if is_due(TOKEN_TIDY, TOKEN_TIDY_EVERY) {
        core.scheduler_stats.jobs_run.fetch_add(1, Ordering::SeqCst);
        match core.tidy_tokens().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "token tidy removed expired tokens"),
            Err(e) => tracing::warn!(error = %e, "token tidy failed"),
        }
        ran.push((TOKEN_TIDY.to_owned(), TOKEN_TIDY_EVERY));
    }
    let end = Instant::now();
    for (key, every) in ran {
        due.insert(key, end + every);
    }
}

impl Core {
    /// Runs every periodic job now, due or not, if this node is the leader (tests, and an
    /// operator-triggered tidy).
    pub async fn run_periodic_jobs(&self) -> super::error::Result<()> {
        if !self.replication.role().is_leader() {
            return Ok(());
        }
        let active = self.active()?;
        let now = coffer_storage::clock::now();
        for route in active.mounts.all() {
            if route.backend.periodic_interval().is_some() {
                route.backend.periodic(&route.view, &route.entry, now).await?;
            }
        }
        self.tidy_tokens().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
