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
//! relies on began after it arrived.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use coffer_storage::{Changes, LeaderInfo, Role};
use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError as OrRaftError};
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
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
    /// Election timeout range (default 600–1000 ms): a new leader within ~1–2 s of a crash.
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
            election_timeout_min: Duration::from_millis(600),
            election_timeout_max: Duration::from_millis(1000),
            snapshot_threshold: 10_000,
            logs_to_keep_after_snapshot: 1_000,
            write_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            membership_timeout: Duration::from_secs(30),
            fatal: Arc::new(default_fatal),
        }
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
    membership_lock: tokio::sync::Mutex<()>,
    /// The round not yet started that new linearize callers join.
    next_round: Mutex<Option<watch::Receiver<RoundResult>>>,
    /// Held by the round in flight.
    round_lock: Arc<tokio::sync::Mutex<()>>,
    /// Set while handing leadership over: writes and reads are refused meanwhile.
    stepping_down: AtomicBool,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        let (changes, _) = broadcast::channel(coffer_storage::replication::CHANGES_CAPACITY);
        let shared = Shared::open(Arc::clone(&db), changes)?;
        let client = Arc::new(ClusterClient::pending());
        let network = NetworkFactory { id: config.node_id, client: Arc::clone(&client) };
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
        let node = Arc::new(Self {
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
            membership_lock: tokio::sync::Mutex::new(()),
            next_round: Mutex::new(None),
            round_lock: Arc::new(tokio::sync::Mutex::new(())),
            stepping_down: AtomicBool::new(false),
            watcher: Mutex::new(None),
        });
        let weak = Arc::downgrade(&node);
        let mut metrics = node.raft.metrics();
        let handle = tokio::spawn(async move {
            loop {
                let role = role_of(&metrics.borrow_and_update());
                match weak.upgrade() {
                    Some(n) => {
                        n.role.send_if_modified(|r| std::mem::replace(r, role) != role);
                    }
                    None => return,
                }
                if metrics.changed().await.is_err() {
                    if let Some(n) = weak.upgrade() {
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

    /// Receives the changes applied on this node.
    pub fn subscribe(&self) -> broadcast::Receiver<Changes> {
        self.shared.changes.subscribe()
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

    /// Number of fsyncs performed (tests and benchmarks).
    pub fn sync_count(&self) -> u64 {
        self.db.sync_count()
    }

    /// Failure injection for tests: the next fsync fails (the fatal hook runs).
    pub fn fail_next_sync(&self, msg: &str) {
        self.db.fail_next_sync(msg)
    }

    /// Bootstraps a new cluster with `members` (usually just this node). Fails with
    /// [`RaftError::AlreadyInitialized`] on a node that is already part of a cluster.
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeInfo>) -> Result<(), RaftError> {
        self.accept_join().await?;
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(OrRaftError::APIError(InitializeError::NotAllowed(_))) => Err(RaftError::AlreadyInitialized),
            Err(e) => Err(RaftError::Unavailable(e.to_string())),
        }
    }

    /// Bootstraps a single-node cluster of this node.
    pub async fn initialize_single(&self) -> Result<(), RaftError> {
        self.initialize(BTreeMap::from([(self.id, self.config.info.clone())])).await
    }

    /// Joining side: from now on this node answers raft RPCs (recorded durably). Call it
    /// before asking the leader to admit the node.
    pub async fn accept_join(&self) -> Result<(), RaftError> {
        if !self.admitted.load(Ordering::SeqCst) {
            self.log.record_admitted().await?;
            self.admitted.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Raft RPCs refused so far because the node was not admitted (R13). A growing number on
    /// a pristine node means a leader still counts it as a member: it was probably wiped.
    pub fn refused_rpcs(&self) -> u64 {
        self.refused_rpcs.load(Ordering::Relaxed)
    }

    /// Read-barrier rounds run so far (concurrent [`Self::linearize`] callers share rounds).
    pub fn read_rounds(&self) -> u64 {
        self.read_rounds.load(Ordering::Relaxed)
    }

    /// True once the node answers raft RPCs (see the module docs, R13).
    pub fn is_admitted(&self) -> bool {
        self.admitted.load(Ordering::SeqCst)
    }

    fn membership_nodes(&self) -> BTreeMap<NodeId, NodeInfo> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config.membership().nodes().map(|(id, n)| (*id, n.clone())).collect()
    }

    /// Leader side of a join: refuses an id that is already a member (R13), then adds the node
    /// as a learner, waits until it caught up, and makes it a voter. The check and the changes
    /// hold the membership lock together, so two joins under one id cannot both pass.
    pub async fn join_voter(&self, id: NodeId, info: NodeInfo) -> Result<(), RaftError> {
        let _g = self.membership_lock.lock().await;
        if self.membership_nodes().contains_key(&id) {
            return Err(RaftError::IdInUse { node_id: id });
        }
        self.add_learner_locked(id, info).await?;
        self.change_membership_locked(ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await
    }

    /// Adds a learner and waits (bounded) until it caught up with the leader's log.
    pub async fn add_learner(&self, id: NodeId, info: NodeInfo) -> Result<(), RaftError> {
        let _g = self.membership_lock.lock().await;
        self.add_learner_locked(id, info).await
    }

    async fn add_learner_locked(&self, id: NodeId, info: NodeInfo) -> Result<(), RaftError> {
        let fut = self.raft.add_learner(id, info, true);
        match tokio::time::timeout(self.config.membership_timeout, fut).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.map_write_error(e)),
            Err(_) => Err(RaftError::Unavailable(format!("learner {id} did not catch up in time"))),
        }
    }

    /// Changes the membership (serialized with every other membership change on this node).
    pub async fn change_membership(&self, change: ChangeMembers<NodeId, NodeInfo>) -> Result<(), RaftError> {
        let _g = self.membership_lock.lock().await;
        self.change_membership_locked(change).await
    }

    async fn change_membership_locked(
        &self,
        change: ChangeMembers<NodeId, NodeInfo>,
    ) -> Result<(), RaftError> {
        let fut = self.raft.change_membership(change, false);
        match tokio::time::timeout(self.config.membership_timeout, fut).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.map_write_error(e)),
            Err(_) => Err(RaftError::Unavailable("membership change timed out".into())),
        }
    }

    /// Removes a node: demotes it if it is a voter, then drops it from the membership.
    pub async fn remove_node(&self, id: NodeId) -> Result<(), RaftError> {
        let is_voter = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let v = m.membership_config.membership().voter_ids().any(|v| v == id);
            v
        };
        if is_voter {
            self.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await?;
        }
        self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await
    }

    /// Asks Raft to build a snapshot now (returns once requested).
    pub async fn trigger_snapshot(&self) -> Result<(), RaftError> {
        self.raft.trigger().snapshot().await.map_err(|e| RaftError::Unavailable(e.to_string()))
    }

    /// Writes a consistent snapshot of the applied state (the snapshot file format, with a
    /// checksum) to `w`. Returns the applied index it covers.
    pub async fn export_snapshot<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        w: &mut W,
    ) -> Result<u64, RaftError> {
        use tokio::io::AsyncWriteExt;
        let shared = Arc::clone(&self.shared);
        let (meta, bytes) = tokio::task::spawn_blocking(move || {
            let dump = shared.dump()?;
            Shared::encode_dump(&dump)
        })
        .await
        .map_err(io)?
        .map_err(io)?;
        w.write_all(&bytes).await.map_err(io)?;
        w.flush().await.map_err(io)?;
        Ok(meta.last_log_id.map(|l| l.index).unwrap_or(0))
    }

    /// Restores a snapshot written by [`Self::export_snapshot`] as the cluster's new state,
    /// through the Raft log (leader only): a `RestoreAbort` entry clears any half-staged
    /// restore, `RestoreStage` entries (each below [`crate::MAX_ENTRY_BYTES`]) stage the data in
    /// a reserved key space, and one `RestoreCommit` entry swaps it in atomically on every
    /// replica, announcing `Changes::All`. Every restored key gets the commit entry's index as
    /// its version (versions stay strictly increasing). The file is verified completely
    /// (checksum, format, keys) before anything is proposed, so a damaged file changes nothing.
    /// Returns the commit index. openraft 0.9 has no API to make a leader install a snapshot
    /// and force followers to follow, hence the log-based design.
    pub async fn restore_snapshot(&self, bytes: &[u8]) -> Result<u64, RaftError> {
        use coffer_storage::Batch;

        use crate::types::Action;
        let decoded = crate::snapshot::decode(bytes).map_err(RaftError::Snapshot)?;
        let mut batches = vec![Batch::new()];
        let mut size = 0usize;
        for (k, raw) in &decoded.records {
            if k.starts_with(crate::state_machine::STAGE_PREFIX) {
                continue; // a restore that was in progress when the snapshot was taken
            }
            let key = std::str::from_utf8(k)
                .map_err(|_| RaftError::Snapshot("snapshot holds a key that is not UTF-8".into()))?;
            coffer_storage::validate_key(key).map_err(|e| RaftError::Snapshot(e.to_string()))?;
            let entry = crate::state_machine::decode_record(key, raw)
                .map_err(|e| RaftError::Snapshot(e.to_string()))?;
            let item = key.len() + entry.value.len();
            if item > crate::MAX_ENTRY_BYTES {
                return Err(RaftError::Snapshot(format!("value of {key:?} is larger than an entry may be")));
            }
            if size + item > crate::MAX_ENTRY_BYTES {
                batches.push(Batch::new());
                size = 0;
            }
            size += item;
            if let Some(b) = batches.last_mut() {
                b.ops.push(coffer_storage::Op::Put { key: key.to_owned(), value: entry.value });
            }
        }
        let _g = self.membership_lock.lock().await;
        self.propose(Action::RestoreAbort).await?;
        for batch in batches.into_iter().filter(|b| !b.ops.is_empty()) {
            self.propose(Action::RestoreStage { batch }).await?;
        }
        self.propose(Action::RestoreCommit).await
    }

    /// Proposes one command and waits (bounded) for its result; returns the entry's index.
    async fn propose(&self, action: crate::types::Action) -> Result<u64, RaftError> {
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let fut = self.raft.client_write(crate::types::Command::new(action, now_ns));
        let resp = match tokio::time::timeout(self.config.write_timeout, fut).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.map_write_error(e)),
            Err(_) => {
                return Err(RaftError::Unavailable("proposal not confirmed in time; outcome unknown".into()))
            }
        };
        match resp.data {
            crate::types::ApplyResult::Applied { version } => Ok(version),
            crate::types::ApplyResult::Rejected { reason } => Err(RaftError::Snapshot(reason)),
            other => Err(RaftError::Unavailable(format!("unexpected apply result {other:?}"))),
        }
    }

    pub(crate) fn map_write_error(
        &self,
        e: OrRaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>,
    ) -> RaftError {
        match e {
            OrRaftError::APIError(ClientWriteError::ForwardToLeader(f)) => RaftError::NotLeader {
                leader: match (f.leader_id, f.leader_node) {
                    (Some(id), Some(n)) => {
                        Some(LeaderInfo { node_id: id, api_addr: n.api_addr, cluster_addr: n.cluster_addr })
                    }
                    _ => None,
                },
            },
            OrRaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                RaftError::Unavailable(format!("membership change refused: {c}"))
            }
            OrRaftError::Fatal(f) => RaftError::Unavailable(format!("raft stopped: {f}")),
        }
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        self.config.write_timeout
    }

    pub(crate) fn is_stepping_down(&self) -> bool {
        self.stepping_down.load(Ordering::SeqCst)
    }

    pub(crate) fn sm(&self) -> &Shared {
        &self.shared
    }

    /// Handles one raft RPC from the cluster port: `(status, JSON body)`.
    pub async fn handle_rpc(&self, path: &str, body: &[u8]) -> (http::StatusCode, Vec<u8>) {
        use http::StatusCode;
        if !self.admitted.load(Ordering::SeqCst) {
            // R13: a pristine node never answers raft traffic before it was admitted.
            self.refused_rpcs.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                path,
                "refusing raft RPC: this node has no raft state and was not admitted to a cluster"
            );
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                br#"{"errors":["node has no raft state and was not admitted to a cluster"]}"#.to_vec(),
            );
        }
        fn reply<T: Serialize>(v: &T) -> (StatusCode, Vec<u8>) {
            match serde_json::to_vec(v) {
                Ok(b) => (StatusCode::OK, b),
                Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, br#"{"errors":["encode failed"]}"#.to_vec()),
            }
        }
        fn bad(e: serde_json::Error) -> (StatusCode, Vec<u8>) {
            let msg = serde_json::json!({ "errors": [format!("malformed raft request: {e}")] });
            (StatusCode::BAD_REQUEST, msg.to_string().into_bytes())
        }
        match path {
            paths::APPEND => match serde_json::from_slice(body) {
                Ok(req) => reply(&self.raft.append_entries(req).await),
                Err(e) => bad(e),
            },
            paths::VOTE => match serde_json::from_slice(body) {
                Ok(req) => reply(&self.raft.vote(req).await),
                Err(e) => bad(e),
            },
            paths::SNAPSHOT => match serde_json::from_slice(body) {
                Ok(req) => reply(&self.raft.install_snapshot(req).await),
                Err(e) => bad(e),
            },
            paths::READ_INDEX => reply(&self.read_index().await),
            _ => (StatusCode::NOT_FOUND, br#"{"errors":["no such raft RPC"]}"#.to_vec()),
        }
    }

    /// Leader side of a follower's read barrier.
    async fn read_index(&self) -> ReadIndexAnswer {
        if self.is_stepping_down() {
            return ReadIndexAnswer::NotLeader { leader: None };
        }
        let fut = self.raft.get_read_log_id();
        match tokio::time::timeout(self.config.read_timeout, fut).await {
            Ok(Ok((read, _applied))) => ReadIndexAnswer::Index(read.map(|l| l.index).unwrap_or(0)),
            Ok(Err(OrRaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                ReadIndexAnswer::NotLeader { leader: f.leader_id }
            }
            Ok(Err(e)) => ReadIndexAnswer::Unavailable(e.to_string()),
            Err(_) => ReadIndexAnswer::Unavailable("leader could not confirm its leadership in time".into()),
        }
    }

    /// One read-barrier round: obtain a read index (locally on the leader, over the cluster port
    /// on a follower) and wait until it is applied here.
    async fn read_round(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.config.read_timeout;
        if self.is_stepping_down() {
            return Err("leader is stepping down".into());
        }
        let index = if self.role() == Role::Leader {
            match self.read_index().await {
                ReadIndexAnswer::Index(i) => i,
                ReadIndexAnswer::NotLeader { .. } => return Err("leadership changed during the read".into()),
                ReadIndexAnswer::Unavailable(m) => return Err(m),
            }
        } else {
            let leader = self.leader().ok_or("no leader is known")?;
            if leader.node_id == self.id {
                return Err("leadership changed during the read".into());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let answer: Result<ReadIndexAnswer, TransportError> =
                self.client.post_json(&leader.cluster_addr, paths::READ_INDEX, &(), remaining).await;
            match answer {
                Ok(ReadIndexAnswer::Index(i)) => i,
                Ok(ReadIndexAnswer::NotLeader { .. }) => {
                    return Err("the leader changed during the read".into())
                }
                Ok(ReadIndexAnswer::Unavailable(m)) => return Err(m),
                Err(e) => return Err(e.to_string()),
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(remaining))
            .applied_index_at_least(Some(index), "linearize")
            .await
            .map(|_| ())
            .map_err(|e| format!("local state did not reach the read index {index} in time: {e}"))
    }

    /// Read barrier shared by concurrent callers (see the module docs).
    pub async fn linearize(self: &Arc<Self>) -> Result<(), RaftError> {
        let mut rx = {
            let mut next = self.next_round.lock().unwrap_or_else(|p| p.into_inner());
            match next.as_ref() {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel::<RoundResult>(None);
                    *next = Some(rx.clone());
                    let node = Arc::clone(self);
                    let round_lock = Arc::clone(&self.round_lock);
                    // The round runs in its own task so a caller that gives up cannot cancel it
                    // for the others.
                    tokio::spawn(async move {
                        let _in_flight = round_lock.lock().await;
                        // Close the round to newcomers: they will wait for the next one.
                        node.next_round.lock().unwrap_or_else(|p| p.into_inner()).take();
                        node.read_rounds.fetch_add(1, Ordering::Relaxed);
                        let r = node.read_round().await;
                        tx.send_replace(Some(r));
                    });
                    rx
                }
            }
        };
        let outcome = rx.wait_for(|r| r.is_some()).await.map(|r| r.clone());
        match outcome {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(m))) => Err(RaftError::Unavailable(format!("read barrier failed: {m}"))),
            _ => Err(RaftError::Unavailable("read barrier abandoned".into())),
        }
    }

    /// Hands leadership over: stops heartbeats and elections on this node so a follower takes
    /// over after its election timeout, refusing writes and reads meanwhile. Returns once
    /// another node leads or after three election timeouts (then this node resumes).
    pub async fn step_down(&self) -> Result<(), RaftError> {
        if self.role() != Role::Leader {
            return Ok(());
        }
        let others = self.membership_nodes().len() > 1;
        if !others {
            return Ok(());
        }
        self.stepping_down.store(true, Ordering::SeqCst);
        self.raft.runtime_config().heartbeat(false);
        self.raft.runtime_config().elect(false);
        let limit = self.config.election_timeout_max * 3 + self.config.heartbeat_interval;
        let me = self.id;
        let waited = self
            .raft
            .wait(Some(limit))
            .metrics(|m| m.current_leader.is_some_and(|l| l != me), "another leader")
            .await;
        self.raft.runtime_config().heartbeat(true);
        self.raft.runtime_config().elect(true);
        self.stepping_down.store(false, Ordering::SeqCst);
        match waited {
            Ok(_) => Ok(()),
            Err(_) => Err(RaftError::Unavailable("no other node took over leadership in time".into())),
        }
    }

    /// Stops Raft (the data stays) and waits (bounded) until Raft's tasks released the store,
    /// so that once the last `Arc<RaftNode>` is dropped the data directory can be opened again
    /// in this process. The node cannot be used afterwards.
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        let r = self.raft.shutdown().await.map_err(|e| RaftError::Unavailable(format!("shutdown: {e}")));
        if let Some(h) = self.watcher.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
        self.role.send_replace(Role::Unknown);
        // The node itself holds the db three times: directly, through its log store and
        // through the state machine's shared part (which it holds once).
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.shared) > 1 || Arc::strong_count(&self.db) > 3 {
            if Instant::now() > deadline {
                return Err(RaftError::Unavailable("raft tasks did not release the store in time".into()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        r
    }
}
