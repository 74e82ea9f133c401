//! Cluster RPCs, the ReadIndex read barrier shared by concurrent callers, step-down and
//! shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, RaftError as OrRaftError};

use super::*;
use crate::error::RaftError;

/// At most this many scheduler passes gather readers into a read-barrier round before it
/// closes (see [`RaftNode::linearize`]).
const GATHER_PASSES: usize = 4;

/// Whether, and for how long, a failed read-index attempt is worth repeating.
#[derive(Debug, Clone, Copy)]
enum Retry {
    No,
    /// Until the read's deadline (no leader known yet, leadership moved, peer unreachable).
    UntilDeadline,
    /// For one election timeout from the read's start (the leader could not confirm itself).
    WithinElectionTimeout,
}

impl RaftNode {
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
        fn bad(e: impl std::fmt::Display) -> (StatusCode, Vec<u8>) {
            let msg = serde_json::json!({ "errors": [format!("malformed raft request: {e}")] });
            (StatusCode::BAD_REQUEST, msg.to_string().into_bytes())
        }
        match path {
            paths::APPEND => match crate::network::decode_append(body) {
                Ok((req, json)) => {
                    self.log.offer_received(&json);
                    let answer = self.raft.append_entries(req).await;
                    self.log.forget_received(&json);
                    reply(&answer)
                }
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
        if let Some(index) = self.lease_read_index().await {
            self.lease_reads.fetch_add(1, Ordering::Relaxed);
            return ReadIndexAnswer::Index(index);
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

    /// The read index without a heartbeat round, when this node's leadership lease holds.
    ///
    /// A majority of the voters **other than this node** accepted this leadership (the current,
    /// committed vote) in append-entries requests sent within the lease window (two thirds of
    /// `election_timeout_min`, ending after the commit index was read). Each of them refuses to
    /// vote for another candidate for `election_timeout_max` after receiving such a request
    /// (openraft's leader lease) and cannot stand itself before that lease and then its
    /// election timeout have passed without hearing from this leader; the nodes left are fewer
    /// than a majority. So no other leader can have been elected, let alone have committed
    /// anything, before the window ends. This node itself is not counted: an openraft leader
    /// may grant its vote to a candidate once its own lease (from its election) expired. Time is
    /// measured on the monotonic clock (the requests' send instants are taken before they
    /// leave), so wall-clock skew does not matter, only the rate of the clocks, far inside the
    /// window's margin.
    ///
    /// The vote, the voters and the commit index are read inside the Raft core (its own state,
    /// not the metrics, which trail it). The index is the core's commit index, taken only once
    /// the leader has committed an entry of its own term (before that, entries of earlier
    /// terms may be committed without this leader knowing: the heartbeat round handles that
    /// case). `None`: fall back to a heartbeat round.
    async fn lease_read_index(&self) -> Option<u64> {
        if self.role() != Role::Leader || self.is_stepping_down() {
            return None;
        }
        let me = self.id;
        let state = self
            .raft
            .with_raft_state(move |st| {
                let vote = *st.vote_ref();
                let membership = st.membership_state.effective().membership();
                let single = membership.get_joint_config().len() == 1;
                let voters: Vec<NodeId> = membership.voter_ids().collect();
                let committed = st.committed.filter(|c| c.leader_id == *vote.leader_id()).map(|c| c.index);
                let leading = st.server_state == ServerState::Leader
                    && vote.is_committed()
                    && vote.leader_id().voted_for() == Some(me);
                (vote, single && leading, voters, committed)
            })
            .await;
        let Ok((vote, usable, voters, Some(committed))) = state else { return None };
        if !usable {
            return None;
        }
        // The window ends now, after the commit index was read: a stall before that read (a
        // starved or stopped process, a busy core queue) must shorten the lease, not extend it.
        let since = Instant::now().checked_sub(self.config.election_timeout_min * 2 / 3)?;
        let acked = voters.iter().filter(|v| **v != me && self.lease.acked_since(**v, &vote, since)).count();
        (acked * 2 > voters.len()).then_some(committed)
    }

    /// One read-barrier round: obtain a read index (locally on the leader, over the cluster port
    /// on a follower) and wait until it is applied here. While no leader is known, or the
    /// leader changes or cannot be reached, it keeps trying until the round's deadline: a read
    /// that arrives during an election waits for its outcome instead of failing at once.
    async fn read_round(&self) -> Result<(), String> {
        let started = Instant::now();
        let deadline = started + self.config.read_timeout;
        // A leader that cannot confirm its leadership is retried for one election timeout
        // only: long enough to ride out a starved or slow heartbeat round, short enough that a
        // leader cut off from its quorum refuses within two election timeouts (R3).
        let unconfirmed_until = started + self.election_timeout();
        let mut pause = Duration::from_millis(10);
        let index = loop {
            match self.read_index_once(deadline).await {
                Ok(i) => break i,
                Err((msg, retry)) => {
                    let until = match retry {
                        Retry::No => return Err(msg),
                        Retry::UntilDeadline => deadline,
                        Retry::WithinElectionTimeout => unconfirmed_until.min(deadline),
                    };
                    if Instant::now() + pause >= until {
                        return Err(msg);
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
            }
        };
        // The state machine's own applied index (published once an apply's writes are all in;
        // readers then see them whole): cheaper to follow than openraft's metrics, which are
        // cloned on every change.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut applied = self.shared.applied_index();
        let reached =
            tokio::time::timeout(remaining, applied.wait_for(|a| *a >= index)).await.map(|r| r.is_ok());
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err("the state machine stopped".into()),
            Err(_) => Err(format!("local state did not reach the read index {index} in time")),
        }
    }

    /// Obtains a read index once; the error says whether trying again may help.
    async fn read_index_once(&self, deadline: Instant) -> Result<u64, (String, Retry)> {
        if self.is_stepping_down() {
            return Err(("leader is stepping down".into(), Retry::No));
        }
        if self.role() == Role::Leader {
            return match self.read_index().await {
                ReadIndexAnswer::Index(i) => Ok(i),
                ReadIndexAnswer::NotLeader { .. } => {
                    Err(("leadership changed during the read".into(), Retry::UntilDeadline))
                }
                // A heartbeat round that missed its quorum (a busy or starved machine, a slow
                // follower): another round may well succeed.
                ReadIndexAnswer::Unavailable(m) => Err((m, Retry::WithinElectionTimeout)),
            };
        }
        let Some(leader) = self.leader() else {
            return Err(("no leader is known".into(), Retry::UntilDeadline));
        };
        if leader.node_id == self.id {
            return Err(("leadership changed during the read".into(), Retry::UntilDeadline));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let answer: Result<ReadIndexAnswer, TransportError> =
            self.client.read_index(&leader.cluster_addr, remaining).await;
        match answer {
            Ok(ReadIndexAnswer::Index(i)) => Ok(i),
            Ok(ReadIndexAnswer::NotLeader { .. }) => {
                Err(("the leader changed during the read".into(), Retry::UntilDeadline))
            }
            Ok(ReadIndexAnswer::Unavailable(m)) => Err((m, Retry::WithinElectionTimeout)),
            Err(e @ TransportError::Timeout { .. }) => Err((e.to_string(), Retry::No)),
            Err(e) => Err((e.to_string(), Retry::UntilDeadline)),
        }
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
                        // Let the reads that are ready now (requests already read, waiting for
                        // this worker, or arriving with the next poll of the sockets) join before
                        // the round closes: spawned or woken, this task would otherwise run next,
                        // ahead of them, and each round would carry a fraction of the reads that
                        // could share it. One scheduler pass at a time, while passes still bring
                        // readers (a lone reader waits one pass); a later start is always sound.
                        let mut joined = tx.receiver_count();
                        for _ in 0..GATHER_PASSES {
                            tokio::task::yield_now().await;
                            let now = tx.receiver_count();
                            if now == joined {
                                break;
                            }
                            joined = now;
                        }
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
        let limit = self.election_timeout() * 3 + self.config.heartbeat_interval;
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
        self.shutting_down.store(true, Ordering::SeqCst);
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
