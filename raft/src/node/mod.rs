//! A cluster member: opening its data, joining and leaving, RPC handling, read barriers.
//!
//! # Lifecycle
//!
//! 1. [`RaftNode::open`] opens (or creates) the data directory. A directory records the node id
//!    it was created for; opening it under another id fails ([`RaftError::IdentityMismatch`]).
//!    A node with existing data rejoins the cluster under its id by itself.
//! 2. Give it TLS material with [`RaftNode::set_tls`] (a sealed node runs "pending": its RPCs
//!    fail as unreachable and its cluster port closes connections).
//! 3. A brand-new node either bootstraps a cluster ([`RaftNode::initialize`]) or joins one: it
//!    calls [`RaftNode::accept_join`] (from then on it answers raft RPCs), and the leader calls
//!    [`RaftNode::join_voter`] (or [`RaftNode::add_learner`] + [`RaftNode::change_membership`]).
//!
//! # R13: a wiped node restarted under its old id
//!
//! A node whose data directory is **pristine** (no vote, no log — it was never part of a
//! cluster, or its data was wiped) refuses every raft RPC until it was admitted
//! ([`RaftNode::accept_join`] or [`RaftNode::initialize`], recorded durably). So a wiped node
//! restarted under its old id never answers the leader (which would otherwise see the
//! follower's log "revert" — openraft panics on that). When such a node tries to join again,
//! the leader refuses: [`RaftNode::join_voter`] fails with [`RaftError::IdInUse`] for an id that
//! is already a member. The fix is operator action: `remove_node(old)`, rejoin with a new id.
//!
//! # Reads
//!
//! [`RaftNode::linearize`] is a ReadIndex barrier: the leader confirms its leadership with a
//! quorum (`get_read_log_id`); a follower asks the leader for that read index over the
//! cluster port; then both wait until their state machine applied it. Concurrent callers share
//! one round: a caller joins the next round that has not started yet, so every round it
//! relies on began after it arrived. A round waits for the readers that are ready in the same
//! scheduler passes (a few at most) before it closes, so concurrent requests read in one poll of
//! the sockets share it instead of the first running ahead alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use coffer_storage::{ChangeFeed, Changes, LeaderInfo, Role};
use openraft::{ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::db::{default_fatal, Db, FatalHook};
use crate::error::RaftError;
use crate::log_store::LogStore;
use crate::network::{paths, ClusterClient, NetworkFactory, TransportError};
use crate::state_machine::{Shared, StateMachine};
use crate::tls::NodeCert;
use crate::types::{NodeId, NodeInfo, Raft};

/// Settings of one node. [`RaftConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct RaftConfig {
    pub node_id: NodeId,
    /// Data directory (sled database and snapshots).
    pub dir: PathBuf,
    /// This node's addresses, published in the membership.
    pub info: NodeInfo,
    /// Raft cluster name (openraft's `cluster_name`).
    pub cluster_name: String,
    /// Leader heartbeat interval (default 150 ms).
    pub heartbeat_interval: Duration,
    /// openraft's election timeout range (default 300–500 ms). A follower that accepted a
    /// leader stands for election only once it has heard nothing from it for openraft's leader
    /// lease (`election_timeout_max`) **plus** a timeout drawn from this range, so 800–1000 ms
    /// by default; [`RaftConfig::set_election_timeout`] sets both from that total.
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot after this many applied entries since the last one (default 10 000).
    pub snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot, for slightly lagging followers (default 1 000).
    pub logs_to_keep_after_snapshot: u64,
    /// Bound on a write (propose → commit → apply); after it the outcome is unknown (5 s).
    pub write_timeout: Duration,
    /// Bound on a read barrier (5 s).
    pub read_timeout: Duration,
    /// Bound on a membership change (30 s).
    pub membership_timeout: Duration,
    /// Called on a durability failure; the default exits the process with code 74.
    pub fatal: FatalHook,
    /// Local IP the node's outgoing cluster connections leave from (its cluster listener's
    /// IP); `None` lets the OS choose.
    pub source_address: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for RaftConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftConfig")
            .field("node_id", &self.node_id)
            .field("dir", &self.dir)
            .field("info", &self.info)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("election_timeout", &(self.election_timeout_min, self.election_timeout_max))
            .field("snapshot_threshold", &self.snapshot_threshold)
            .finish_non_exhaustive()
    }
}

impl RaftConfig {
    /// Defaults for node `node_id` storing its data in `dir`.
    pub fn new(node_id: NodeId, dir: impl Into<PathBuf>, info: NodeInfo) -> Self {
        Self {
            node_id,
            dir: dir.into(),
            info,
            cluster_name: "coffer".into(),
            heartbeat_interval: Duration::from_millis(150),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(500),
            snapshot_threshold: 10_000,
            logs_to_keep_after_snapshot: 1_000,
            write_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            membership_timeout: Duration::from_secs(30),
            fatal: Arc::new(default_fatal),
            source_address: None,
        }
    }

    /// Sets the election timeouts from `longest`: the longest a follower waits without hearing
    /// from the leader before it stands for election (the operator's `election_timeout`).
    ///
    /// openraft 0.9 makes a follower that accepted a leader wait for its leader lease (which is
    /// `election_timeout_max`) and then for a timeout drawn from
    /// `election_timeout_min..election_timeout_max`; after a refused candidacy, only for the
    /// drawn timeout. So the lease and the range's top are each half of `longest`, and the range
    /// starts at 60 % of its top (but above the heartbeat interval): a follower stands after
    /// 80–100 % of `longest` of silence, and a candidacy that split the vote is retried after
    /// 30–50 % of it. Mapping `longest` straight onto the range's top (as before) let a fail-over
    /// take lease + timeout + a retried candidacy, over three seconds at a one-second setting.
    pub fn set_election_timeout(&mut self, longest: Duration) {
        // Whole milliseconds, as openraft takes them.
        let heartbeat = u64::try_from(self.heartbeat_interval.as_millis()).unwrap_or(u64::MAX);
        let max = u64::try_from(longest.as_millis() / 2).unwrap_or(u64::MAX);
        let min = (max * 3 / 5).max(heartbeat.saturating_add(heartbeat / 4 + 1)).min(max.saturating_sub(1));
        self.election_timeout_max = Duration::from_millis(max);
        self.election_timeout_min = Duration::from_millis(min);
    }

    fn openraft_config(&self) -> Result<openraft::Config, RaftError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let cfg = openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            install_snapshot_timeout: 5_000,
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_threshold),
            max_in_snapshot_log_to_keep: self.logs_to_keep_after_snapshot,
            snapshot_max_chunk_size: 1024 * 1024,
            // Purge in batches, but never in batches so large that a small threshold never purges.
            purge_batch_size: (self.snapshot_threshold / 4).clamp(1, 256),
            ..Default::default()
        };
        cfg.validate().map_err(|e| RaftError::Config(e.to_string()))
    }
}

/// A point-in-time view of the node, for `sys/storage/raft/*`, `sys/leader` and tests.
#[derive(Clone, Debug, Serialize)]
pub struct NodeMetrics {
    pub node_id: NodeId,
    pub role: RoleName,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// Leader only: time since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// Leader only: the last log index each member is known to hold.
    pub matched: BTreeMap<NodeId, Option<u64>>,
}

/// Serializable name of a [`Role`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Leader,
    Learner,
    Standby,
    Unknown,
}

impl From<Role> for RoleName {
    fn from(r: Role) -> Self {
        match r {
            Role::Leader => RoleName::Leader,
            Role::Learner => RoleName::Learner,
            Role::Standby => RoleName::Standby,
            _ => RoleName::Unknown,
        }
    }
}

/// Answer of the read-index RPC.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ReadIndexAnswer {
    Index(u64),
    NotLeader { leader: Option<NodeId> },
    Unavailable(String),
}

/// One shared read-barrier round.
type RoundResult = Option<Result<(), String>>;

/// A running cluster member.
pub struct RaftNode {
    id: NodeId,
    config: RaftConfig,
    raft: Raft,
    db: Arc<Db>,
    log: LogStore,
    shared: Arc<Shared>,
    client: Arc<ClusterClient>,
    server_tls: RwLock<Option<Arc<rustls::ServerConfig>>>,
    role: watch::Sender<Role>,
    admitted: AtomicBool,
    /// Raft RPCs refused because the node was not admitted (R13).
    refused_rpcs: AtomicU64,
    /// Read-barrier rounds run (each serves every caller that joined it).
    read_rounds: AtomicU64,
    /// Read indexes this node answered as leader from its lease (no heartbeat round).
    lease_reads: AtomicU64,
    /// Which peers accepted this node's leadership, and when (lease reads).
    lease: Arc<crate::network::LeaseAcks>,
    /// Times this node saw a new leader (a new term's leader, or another node).
    leader_changes: AtomicU64,
    /// Told the latency of every write this node proposed and saw applied (metrics).
    write_observer: OnceLock<Arc<dyn Fn(Duration) + Send + Sync>>,
    membership_lock: tokio::sync::Mutex<()>,
    /// The round not yet started that new linearize callers join.
    next_round: Mutex<Option<watch::Receiver<RoundResult>>>,
    /// Held by the round in flight.
    round_lock: Arc<tokio::sync::Mutex<()>>,
    /// Set while handing leadership over: writes and reads are refused meanwhile.
    stepping_down: AtomicBool,
    /// Set by [`Self::shutdown`]: the core stopping afterwards is expected.
    shutting_down: AtomicBool,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Group-commit queue of client writes ([`writes`]).
    writes: writes::WriteQueue,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode").field("id", &self.id).field("info", &self.config.info).finish()
    }
}

fn io(e: impl std::fmt::Display) -> RaftError {
    RaftError::Io(e.to_string())
}

fn role_of(m: &openraft::RaftMetrics<NodeId, NodeInfo>) -> Role {
    let membership = m.membership_config.membership();
    match m.state {
        ServerState::Leader => Role::Leader,
        ServerState::Shutdown => Role::Unknown,
        _ if membership.get_node(&m.id).is_none() => Role::Unknown,
        ServerState::Learner => Role::Learner,
        _ if membership.voter_ids().any(|v| v == m.id) => Role::Standby,
        _ => Role::Learner,
    }
}

/// How long the watcher waits, once the Raft core's metrics ended, before it declares the core
/// dead (see `open`).
const CORE_STOP_GRACE: Duration = Duration::from_millis(200);

impl RaftNode {
    /// Opens the node's data and starts Raft. See the module docs for the lifecycle.
    pub async fn open(config: RaftConfig) -> Result<Arc<Self>, RaftError> {
        let or_config = Arc::new(config.openraft_config()?);
        let db = Db::open(&config.dir, Arc::clone(&config.fatal))?;
        let log = LogStore::open(Arc::clone(&db))?;
        match log.stored_node_id()? {
            Some(stored) if stored != config.node_id => {
                return Err(RaftError::IdentityMismatch { stored, configured: config.node_id })
            }
            Some(_) => {}
            None => log.record_node_id(config.node_id).await?,
        }
        let admitted = !log.is_pristine()? || log.is_admitted()?;
        let shared = Shared::open(Arc::clone(&db))?;
        shared.load_at_open()?;
        let mut log = log;
        log.purge_after_snapshot(shared.snapshot_index());
        recovery::reconcile_log_with_state_machine(&mut log, &shared).await?;
        let client = Arc::new(ClusterClient::pending_from(config.source_address));
        let lease = Arc::new(crate::network::LeaseAcks::default());
        let network = NetworkFactory {
            id: config.node_id,
            client: Arc::clone(&client),
            lease: Arc::clone(&lease),
            recent: log.recent_handle(),
        };
        let raft = Raft::new(
            config.node_id,
            or_config,
            network,
            log.clone(),
            StateMachine::new(Arc::clone(&shared)),
        )
        .await
        .map_err(|e| RaftError::Unavailable(format!("cannot start raft: {e}")))?;
        let (role, _) = watch::channel(Role::Unknown);
        let node = Arc::new_cyclic(|me| Self {
            writes: writes::start(me.clone()),
            id: config.node_id,
            config,
            raft,
            db,
            log,
            shared,
            client,
            server_tls: RwLock::new(None),
            role,
            admitted: AtomicBool::new(admitted),
            refused_rpcs: AtomicU64::new(0),
            read_rounds: AtomicU64::new(0),
            lease_reads: AtomicU64::new(0),
            lease,
            leader_changes: AtomicU64::new(0),
            write_observer: OnceLock::new(),
            membership_lock: tokio::sync::Mutex::new(()),
            next_round: Mutex::new(None),
            round_lock: Arc::new(tokio::sync::Mutex::new(())),
            stepping_down: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            watcher: Mutex::new(None),
        });
        let weak = Arc::downgrade(&node);
        let mut metrics = node.raft.metrics();
        let handle = tokio::spawn(async move {
            let mut seen_leader = None;
            loop {
                let (role, leader, broken) = {
                    let m = metrics.borrow_and_update();
                    // openraft stops its core on a storage error it was handed (a write the
                    // disk refused, a full disk): the node can no longer take part, and must
                    // not linger as a process that answers but never catches up.
                    let broken = match &m.running_state {
                        Err(openraft::error::Fatal::StorageError(e)) => {
                            Some(format!("raft storage error: {e}"))
                        }
                        Err(openraft::error::Fatal::Panicked) => Some("raft core panicked".to_owned()),
                        _ => None,
                    };
                    (role_of(&m), m.current_leader.map(|l| (m.current_term, l)), broken)
                };
                if let Some(msg) = broken {
                    // A runtime shutting down (the end of a process or a test) cancels the
                    // core's pending storage work, which the core reports as a storage error:
                    // this task is dropped during the grace period then.
                    tokio::time::sleep(CORE_STOP_GRACE).await;
                    if let Some(n) = weak.upgrade() {
                        n.db.fail_stop(&msg);
                    }
                    return;
                }
                match weak.upgrade() {
                    Some(n) => {
                        n.role.send_if_modified(|r| std::mem::replace(r, role) != role);
                        if leader.is_some() && leader != seen_leader {
                            seen_leader = leader;
                            n.leader_changes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => return,
                }
                if metrics.changed().await.is_err() {
                    // The core's metrics sender is gone. Either the core task ended on its own (a
                    // panic unwinds without publishing `Panicked`), or the runtime is shutting
                    // down and drops every task: then this one is dropped during the grace
                    // period below instead of stopping the process.
                    tokio::time::sleep(CORE_STOP_GRACE).await;
                    if let Some(n) = weak.upgrade() {
                        if !n.shutting_down.load(Ordering::SeqCst) {
                            n.db.fail_stop("raft core stopped unexpectedly (panicked)");
                        }
                        n.role.send_replace(Role::Unknown);
                    }
                    return;
                }
            }
        });
        *node.watcher.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's published addresses.
    pub fn info(&self) -> &NodeInfo {
        &self.config.info
    }

    /// The openraft handle (advanced use and tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// A [`coffer_storage::Storage`] + [`coffer_storage::Replication`] view of this node.
    pub fn storage(self: &Arc<Self>) -> crate::RaftStorage {
        crate::RaftStorage::new(Arc::clone(self))
    }

    /// True when the data directory has never held a vote or log entry: the node must
    /// bootstrap or join (and must not be an existing member, R13).
    pub fn is_pristine(&self) -> Result<bool, RaftError> {
        self.log.is_pristine()
    }

    /// Installs the cluster TLS material for both the client and the server side.
    pub fn set_tls(&self, ca_cert_pem: &str, node: &NodeCert) -> Result<(), RaftError> {
        let server = crate::tls::server_config(ca_cert_pem, node)?;
        self.client.set_tls(ca_cert_pem, node)?;
        *self.server_tls.write().unwrap_or_else(|p| p.into_inner()) = Some(server);
        Ok(())
    }

    /// Forgets the TLS material (on seal): RPCs become unreachable, the port closes connections.
    pub fn clear_tls(&self) {
        self.client.clear_tls();
        *self.server_tls.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The server TLS configuration, once installed.
    pub fn server_tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.server_tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The cluster client (the root crate forwards requests with it).
    pub fn cluster_client(&self) -> &Arc<ClusterClient> {
        &self.client
    }

    /// Receives the changes applied on this node from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Changes> {
        self.shared.changes.subscribe().rx
    }

    /// The counted feed of changes applied on this node.
    pub fn changes(&self) -> &ChangeFeed {
        &self.shared.changes
    }

    /// The longest a follower waits without hearing from the leader before it stands for
    /// election: openraft's leader lease plus the longest drawn election timeout.
    pub fn election_timeout(&self) -> Duration {
        self.config.election_timeout_max * 2
    }

    /// The role right now.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Role changes.
    pub fn watch_role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// The current leader and its addresses.
    pub fn leader(&self) -> Option<LeaderInfo> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?;
        Some(LeaderInfo {
            node_id: id,
            api_addr: node.api_addr.clone(),
            cluster_addr: node.cluster_addr.clone(),
        })
    }

    /// Current metrics.
    pub fn metrics(&self) -> NodeMetrics {
        let role = self.role();
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let learners: Vec<NodeId> = membership.learner_ids().collect();
        let nodes = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        NodeMetrics {
            node_id: self.id,
            role: role.into(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            committed_index: self.raft_committed(),
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters,
            learners,
            nodes,
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            matched: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
                .unwrap_or_default(),
        }
    }

    fn raft_committed(&self) -> Option<u64> {
        // openraft 0.9 metrics do not carry the commit index; the stored one is close enough
        // for display (it is saved before entries are applied).
        self.log.committed_index()
    }

    /// `(applied index, SHA-256 of the applied state)`: equal on every replica at the same index.
    pub fn digest(&self) -> Result<(u64, [u8; 32]), RaftError> {
        self.shared.digest().map_err(io)
    }

    /// Times this node saw the leader change (the first leader it saw included).
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    /// Snapshots this node installed from a leader since it started.
    pub fn snapshot_installs(&self) -> u64 {
        self.shared.snapshot_installs.load(Ordering::Relaxed)
    }

    /// Installs the function told the latency (propose → commit → apply) of every write this
    /// node proposes through [`crate::RaftStorage`] and sees applied (once; later calls are
    /// ignored). It runs on the write path: it must be cheap.
    pub fn set_write_observer(&self, observe: Arc<dyn Fn(Duration) + Send + Sync>) {
        let _ = self.write_observer.set(observe);
    }

    pub(crate) fn observe_write(&self, latency: Duration) {
        if let Some(f) = self.write_observer.get() {
            f(latency);
        }
    }

    /// Number of fsyncs performed (tests and benchmarks).
    pub fn sync_count(&self) -> u64 {
        self.db.sync_count()
    }

    /// Failure injection for tests: the next fsync fails (the fatal hook runs).
    pub fn fail_next_sync(&self, msg: &str) {
        self.db.fail_next_sync(msg)
    }
}

mod membership;
mod reads;
mod recovery;
mod snapshots;
pub mod writes;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(heartbeat_ms: u64, longest_ms: u64) -> RaftConfig {
        let info = NodeInfo { name: "n".into(), api_addr: "a".into(), cluster_addr: "c".into() };
        let mut c = RaftConfig::new(1, "/nonexistent", info);
        c.heartbeat_interval = Duration::from_millis(heartbeat_ms);
        c.set_election_timeout(Duration::from_millis(longest_ms));
        c
    }

    /// A follower stands after lease + drawn timeout: 80–100 % of the configured timeout, so the
    /// defaults are what `set_election_timeout` makes of the default one second.
    #[test]
    fn the_configured_election_timeout_bounds_lease_plus_drawn_timeout() {
        let c = config(150, 1000);
        let d = RaftConfig::new(1, "/nonexistent", c.info.clone());
        assert_eq!(
            (c.election_timeout_min, c.election_timeout_max),
            (d.election_timeout_min, d.election_timeout_max)
        );
        for (hb, longest) in [(150, 1000), (100, 300), (150, 450), (50, 5000), (10, 30), (10, 31)] {
            let c = config(hb, longest);
            let (min, max) = (c.election_timeout_min, c.election_timeout_max);
            assert!(max + max <= Duration::from_millis(longest), "{hb} {longest}: {min:?} {max:?}");
            assert!(min < max && min > c.heartbeat_interval, "{hb} {longest}: {min:?} {max:?}");
            assert!(c.openraft_config().is_ok(), "{hb} {longest}");
        }
    }
}
