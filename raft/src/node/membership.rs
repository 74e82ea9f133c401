//! Bootstrapping, admitting and removing members (membership changes are serialized).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use openraft::error::{InitializeError, RaftError as OrRaftError};
use openraft::ChangeMembers;

use super::*;
use crate::error::RaftError;
use crate::types::{NodeId, NodeInfo};

impl RaftNode {
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

    /// Read indexes this node answered as leader from its lease, without a heartbeat round.
    pub fn lease_reads(&self) -> u64 {
        self.lease_reads.load(Ordering::Relaxed)
    }

    /// True once the node answers raft RPCs (see the module docs, R13).
    pub fn is_admitted(&self) -> bool {
        self.admitted.load(Ordering::SeqCst)
    }

    pub(super) fn membership_nodes(&self) -> BTreeMap<NodeId, NodeInfo> {
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
}
