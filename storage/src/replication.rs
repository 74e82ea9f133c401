//! What the core needs to know about replication, whatever the store.
//!
//! A standalone server uses [`SingleNode`] (always the leader, nothing to wait for); a cluster
//! uses the raft crate's `RaftStorage`. The core builds three things on [`Replication`]:
//!
//! * **Invalidation** — [`Replication::changes`] is a [`ChangeFeed`]: for every entry applied
//!   on *this* node, the keys it changed and the version it wrote them at. The core maps keys
//!   to caches (keyring, mount table, policies, …) and reloads them. A receiver that lags
//!   ([`broadcast::error::RecvError::Lagged`]) has missed changes and **must reload
//!   everything**, exactly as on [`Changes::All`] (sent when a snapshot replaced the state).
//!   The feed counts what it published, and a [`Subscription`] says how many events came
//!   before it, so a subscriber can tell when it has handled everything applied so far: a read
//!   barrier covers caches too, not only storage.
//! * **Leader-only work** — [`Replication::watch_role`] tells a scheduler when to start or stop
//!   periodic jobs.
//! * **Read freshness** — [`Replication::linearize`] is a read barrier: after `Ok(())`, local
//!   reads reflect every write acknowledged anywhere in the cluster before the call started.
//!
//! Writes on a non-leader fail in [`Storage::apply`] with [`StorageError::NotLeader`], which
//! carries the leader's API address for a redirect; [`Replication::leader`] gives the cluster
//! address too, for forwarding.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use crate::{Batch, Entry, Op, Storage, StorageError};

/// How many [`Changes`] a subscriber may fall behind before it lags (and must reload all).
pub const CHANGES_CAPACITY: usize = 1024;

/// This node's part in replication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Accepts writes; runs leader-only jobs.
    Leader,
    /// Receives the log but does not vote (catching up, or a non-voting member).
    Learner,
    /// A voting member following a leader (or electing one).
    Standby,
    /// Starting, not yet part of a cluster, or shut down.
    Unknown,
}

impl Role {
    /// True for [`Role::Leader`].
    pub fn is_leader(self) -> bool {
        self == Role::Leader
    }
}

/// Where the current leader can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    pub node_id: u64,
    /// Client API address (`https://host:8200`), for redirects.
    pub api_addr: String,
    /// Cluster address (`host:8201`), for forwarding over the mTLS cluster port.
    pub cluster_addr: String,
}

/// What one applied entry changed on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Changes {
    /// The state was replaced wholesale (snapshot installed or restored): reload everything.
    All { version: u64 },
    /// These keys were put or deleted at `version`. A batch that wrote nothing (a failed
    /// precondition, a check-only batch) produces no event.
    Keys { version: u64, keys: Arc<[String]> },
}

impl Changes {
    /// The version (log index on a cluster) of the change.
    pub fn version(&self) -> u64 {
        match self {
            Changes::All { version } | Changes::Keys { version, .. } => *version,
        }
    }
}

/// The stream of [`Changes`] applied on one node, counted.
///
/// Events are numbered from 1 in publication order; [`ChangeFeed::published`] is the number of
/// the last one. A subscriber that counts what it receives (plus what it skipped when it
/// lagged) from [`Subscription::seen`] knows it has handled everything published up to a
/// given moment once its count reaches [`ChangeFeed::published`] read at that moment.
pub struct ChangeFeed {
    // Publishing and subscribing hold the lock so that a subscription's `seen` and its
    // receiver's first event agree exactly.
    tx: Mutex<broadcast::Sender<Changes>>,
    published: AtomicU64,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed").field("published", &self.published()).finish()
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

/// A receiver of a [`ChangeFeed`] and how many events were published before it.
#[derive(Debug)]
pub struct Subscription {
    pub rx: broadcast::Receiver<Changes>,
    /// Events published before `rx` was created (none of them reach `rx`).
    pub seen: u64,
}

impl ChangeFeed {
    /// An empty feed.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CHANGES_CAPACITY);
        Self { tx: Mutex::new(tx), published: AtomicU64::new(0) }
    }

    /// Publishes `changes` to every current subscriber (none is fine).
    pub fn publish(&self, changes: Changes) {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        self.published.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(changes);
    }

    /// Changes published from now on.
    pub fn subscribe(&self) -> Subscription {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        Subscription { rx: tx.subscribe(), seen: self.published.load(Ordering::SeqCst) }
    }

    /// How many events were published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }
}

/// Replication as the core sees it. Object safe: the core holds an `Arc<dyn Replication>`.
#[async_trait]
pub trait Replication: Send + Sync + 'static {
    /// The role right now.
    fn role(&self) -> Role;

    /// A receiver that sees every role change (starts with the current role).
    fn watch_role(&self) -> watch::Receiver<Role>;

    /// The current leader, if one is known.
    fn leader(&self) -> Option<LeaderInfo>;

    /// Changes applied on this node. On `RecvError::Lagged` reload everything.
    fn changes(&self) -> &ChangeFeed;

    /// Read barrier: returns once local reads reflect every write acknowledged (anywhere)
    /// before this call started. Bounded in time: without a leader or quorum it fails with
    /// [`StorageError::Unavailable`]. Concurrent callers share one round.
    async fn linearize(&self) -> Result<(), StorageError>;

    /// Gives up leadership (no-op when not the leader, or when there is nobody to hand over
    /// to). Returns once the request is made, not when another node has taken over.
    async fn step_down(&self) -> Result<(), StorageError>;

    /// True for a replicated (high-availability) store.
    fn is_ha(&self) -> bool;
}

/// Replication of a standalone server: always the leader, reads always fresh.
pub struct SingleNode {
    role: watch::Sender<Role>,
    changes: ChangeFeed,
}

impl std::fmt::Debug for SingleNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SingleNode")
    }
}

impl Default for SingleNode {
    fn default() -> Self {
        Self::new()
    }
}

impl SingleNode {
    /// A standalone node that reports no changes (nobody else writes its storage).
    pub fn new() -> Self {
        let (role, _) = watch::channel(Role::Leader);
        Self { role, changes: ChangeFeed::new() }
    }

    /// Wraps `storage` so that every successful apply through the wrapper is reported to
    /// [`Replication::subscribe`] receivers of `self`.
    pub fn wrap<S: Storage>(self: &Arc<Self>, storage: S) -> Observed<S> {
        Observed { inner: storage, node: Arc::clone(self) }
    }

    fn publish(&self, changes: Changes) {
        self.changes.publish(changes);
    }
}

#[async_trait]
impl Replication for SingleNode {
    fn role(&self) -> Role {
        Role::Leader
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

    async fn linearize(&self) -> Result<(), StorageError> {
        Ok(())
    }

    async fn step_down(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn is_ha(&self) -> bool {
        false
    }
}

/// A [`Storage`] whose applies are reported by the [`SingleNode`] that wrapped it.
pub struct Observed<S> {
    inner: S,
    node: Arc<SingleNode>,
}

impl<S> std::fmt::Debug for Observed<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observed")
    }
}

impl<S> Observed<S> {
    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: Storage> Storage for Observed<S> {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn apply(&self, batch: Batch) -> Result<u64, StorageError> {
        let keys = written_keys(&batch);
        let version = self.inner.apply(batch).await?;
        if !keys.is_empty() {
            self.node.publish(Changes::Keys { version, keys: keys.into() });
        }
        Ok(version)
    }
}

/// The keys a batch writes, deduplicated in order of first appearance.
pub fn written_keys(batch: &Batch) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(batch.ops.len());
    for op in &batch.ops {
        let key = match op {
            Op::Delete { key } | Op::Put { key, .. } => key,
        };
        if !out.iter().any(|k| k == key) {
            out.push(key.clone());
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::MemStorage;

    #[tokio::test]
    async fn single_node_is_always_leader_and_linearize_is_free() {
        let node = SingleNode::new();
        assert_eq!(node.role(), Role::Leader);
        assert_eq!(*node.watch_role().borrow(), Role::Leader);
        assert!(node.leader().is_none());
        assert!(!node.is_ha());
        node.linearize().await.unwrap();
        node.step_down().await.unwrap();
    }

    #[tokio::test]
    async fn wrapped_storage_reports_written_keys_with_their_version() {
        let node = Arc::new(SingleNode::new());
        let store = node.wrap(MemStorage::new());
        let mut rx = node.changes().subscribe().rx;
        let v = store.apply(Batch::new().put("a", vec![1]).delete("b")).await.unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(got, Changes::Keys { version: v, keys: vec!["a".to_owned(), "b".to_owned()].into() });
        // A failed precondition changes nothing and reports nothing; a check-only batch neither.
        assert!(store.apply(Batch::new().put("c", vec![1]).require_absent("a")).await.is_err());
        store.apply(Batch::new().require_version("a", v)).await.unwrap();
        let v2 = store.apply(Batch::new().put("d", vec![2])).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().version(), v2, "only the write to d was reported");
    }

    #[tokio::test]
    async fn wrapped_storage_passes_conformance() {
        let node = Arc::new(SingleNode::new());
        crate::testing::conformance(&node.wrap(MemStorage::new())).await;
    }

    #[tokio::test]
    async fn a_subscription_counts_what_came_before_it() {
        let feed = ChangeFeed::new();
        feed.publish(Changes::All { version: 1 });
        feed.publish(Changes::All { version: 2 });
        let mut sub = feed.subscribe();
        assert_eq!(sub.seen, 2);
        feed.publish(Changes::All { version: 3 });
        assert_eq!(feed.published(), 3);
        assert_eq!(sub.rx.recv().await.unwrap().version(), 3, "events before the subscription never arrive");
        assert!(sub.rx.try_recv().is_err());
    }

    #[test]
    fn written_keys_dedups_in_order() {
        let b = Batch::new().put("x", vec![]).delete("y").put("x", vec![1]);
        assert_eq!(written_keys(&b), vec!["x", "y"]);
    }
}
