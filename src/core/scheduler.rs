//! One leader-gated scheduler for every periodic job: the token tidy, and each mount's
//! [`Backend::periodic`](crate::core::backend::Backend::periodic) (KV v2 version expiry,
//! transit automatic rotation, AppRole's secret-ID tidy).
//!
//! One task per unsealed period. Every [`CoreConfig::scheduler_tick`](super::CoreConfig) it
//! runs the jobs that are due, and only while this node is the leader: on a standby nothing
//! runs (the leader's writes replicate), and a node that loses leadership stops at the next
//! tick, or at once when the role changes. The task ends when the node seals (the unsealed
//! state it was started for is gone). A job's next run is counted from the end of its last
//! one, so a slow job never piles up.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::{Active, Core};

/// Default granularity of the scheduler.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);
/// How often expired tokens are tidied.
pub const TOKEN_TIDY_EVERY: Duration = Duration::from_secs(60);

/// Key of the token tidy job in the due-time table (mount jobs use the mount's UUID).
const TOKEN_TIDY: &str = "core/token-tidy";

/// Starts the scheduler for `active` (no-op outside a Tokio runtime).
pub(crate) fn spawn(core: &Core, active: &Arc<Active>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak_core = core.me.clone();
    let weak_active = Arc::downgrade(active);
    let tick = core.config.scheduler_tick.max(Duration::from_millis(1));
    let mut role = core.replication.watch_role();
    tokio::spawn(async move {
        // Jobs first run one interval after the node became able to run them.
        let mut due: HashMap<String, Instant> = HashMap::new();
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
            if !core.replication.role().is_leader() {
                // Not (or no longer) the leader: forget the schedule; a new leader starts over.
                due.clear();
                continue;
            }
            run_due(&core, &active, &mut due).await;
        }
    });
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
        if let Err(e) = route.backend.periodic(&route.view, &route.entry, OffsetDateTime::now_utc()).await {
            tracing::warn!(mount = %route.entry.route_prefix(), error = %e, "periodic task failed");
        }
        ran.push((route.entry.uuid.clone(), every));
        if !core.replication.role().is_leader() {
            return;
        }
    }
    if is_due(TOKEN_TIDY, TOKEN_TIDY_EVERY) {
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
        let now = OffsetDateTime::now_utc();
        for route in active.mounts.all() {
            if route.backend.periodic_interval().is_some() {
                route.backend.periodic(&route.view, &route.entry, now).await?;
            }
        }
        self.tidy_tokens().await?;
        Ok(())
    }
}
