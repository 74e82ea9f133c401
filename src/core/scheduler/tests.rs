//! The scheduler runs housekeeping only on the leader, stops when leadership goes and resumes
//! when it returns, and ends with the unsealed period.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::watch;

use coffer_storage::keys::UnsealKey;
use coffer_storage::replication::{ChangeFeed, LeaderInfo, Replication, Role};
use coffer_storage::{MemStorage, StorageError, View};

use crate::core::backend::{Backend, BackendEnv, Registry};
use crate::core::error::Result;
use crate::core::mounts::{MountEntry, Table};
use crate::core::request::{BackendRequest, Request, Response};
use crate::core::seal::{InitParams, SealSource};
use crate::core::{Core, CoreConfig};
use crate::policy::Operation;
use crate::secret::ClientToken;

/// A replication whose role the test sets.
struct Switch {
    role: watch::Sender<Role>,
    changes: ChangeFeed,
}

#[async_trait]
impl Replication for Switch {
    fn role(&self) -> Role {
        *self.role.borrow()
    }
    fn watch_role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }
    fn leader(&self) -> Option<LeaderInfo> {
        None
    }
    fn changes(&self) -> &ChangeFeed {
        &self.changes
    }
    async fn linearize(&self) -> std::result::Result<(), StorageError> {
        Ok(())
    }
    async fn step_down(&self) -> std::result::Result<(), StorageError> {
        self.role.send_replace(Role::Standby);
        Ok(())
    }
    fn is_ha(&self) -> bool {
        true
    }
}

/// A backend whose housekeeping counts its runs.
struct Counter(Arc<AtomicUsize>);

#[async_trait]
impl Backend for Counter {
    async fn handle(&self, _req: &BackendRequest) -> Result<Response> {
        Ok(Response::empty())
    }
    fn periodic_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(5))
    }
    async fn periodic(&self, _view: &View, _mount: &MountEntry, _now: time::OffsetDateTime) -> Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The built-in backends plus `counter`.
struct WithCounter(Arc<AtomicUsize>);

impl Registry for WithCounter {
    fn build(&self, core: &Weak<Core>, env: BackendEnv) -> Result<Arc<dyn Backend>> {
        match env.mount.kind.as_str() {
            "counter" => Ok(Arc::new(Counter(Arc::clone(&self.0)))),
            _ => crate::builtin::Builtin.build(core, env),
        }
    }
    fn mountable(&self, table: Table, kind: &str) -> bool {
        kind == "counter" || crate::builtin::Builtin.mountable(table, kind)
    }
    fn supports_lockout(&self, kind: &str) -> bool {
        crate::builtin::Builtin.supports_lockout(kind)
    }
    fn default_mounts(&self, table: Table) -> Vec<MountEntry> {
        crate::builtin::Builtin.default_mounts(table)
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housekeeping_runs_only_on_the_leader_and_stops_on_step_down_and_seal() {
    let (role, _) = watch::channel(Role::Leader);
    let switch = Arc::new(Switch { role, changes: ChangeFeed::new() });
    let runs = Arc::new(AtomicUsize::new(0));
    let config = CoreConfig { scheduler_tick: Duration::from_millis(2), ..CoreConfig::default() };
    let core = Core::new(
        config,
        Arc::new(MemStorage::new()),
        Arc::clone(&switch) as Arc<dyn Replication>,
        SealSource::Static { key: UnsealKey::generate().unwrap(), key_id: "k1".into() },
        Arc::new(WithCounter(Arc::clone(&runs))),
    );
    let init = core.init(InitParams::default()).await.unwrap();
    let mut req = Request::new(Operation::Update, "sys/mounts/count");
    req.token = Some(ClientToken::new(init.root_token.expose().to_owned()));
    req.data = json!({"type": "counter"}).as_object().unwrap().clone();
    core.handle(req).await.unwrap();
    let stats = &core.scheduler_stats;
    assert_eq!(stats.running.load(Ordering::SeqCst), 1);

    // Leader: the job runs, again and again.
    until("the job ran twice", || runs.load(Ordering::SeqCst) >= 2).await;

    // Step-down: the scheduler keeps ticking but runs nothing.
    switch.step_down().await.unwrap();
    let ticks = stats.ticks.load(Ordering::SeqCst);
    until("the scheduler ticked as a standby", || stats.ticks.load(Ordering::SeqCst) >= ticks + 2).await;
    let frozen = runs.load(Ordering::SeqCst);
    let ticks = stats.ticks.load(Ordering::SeqCst);
    until("twenty standby ticks", || stats.ticks.load(Ordering::SeqCst) >= ticks + 20).await;
    assert_eq!(runs.load(Ordering::SeqCst), frozen, "housekeeping ran on a standby");

    // Leader again: it resumes.
    switch.role.send_replace(Role::Leader);
    until("the job ran on the new leader", || runs.load(Ordering::SeqCst) > frozen + 1).await;

    // Seal: the scheduler ends.
    core.seal().await;
    until("the scheduler ended with the seal", || stats.running.load(Ordering::SeqCst) == 0).await;
    let after = runs.load(Ordering::SeqCst);
    core.start().await.unwrap();
    assert!(!core.is_sealed());
    until("a new scheduler runs after unseal", || runs.load(Ordering::SeqCst) > after).await;
    assert_eq!(stats.running.load(Ordering::SeqCst), 1, "one scheduler per unsealed period");
}
