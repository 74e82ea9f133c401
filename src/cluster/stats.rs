//! What a cluster member adds to `sys/metrics`: its Raft state (read from the Raft node when
//! scraped), the requests it forwarded to the leader, and the latency of its replicated writes
//! (told by the Raft node as each write is applied).

use std::sync::Arc;

use coffer_raft::{RaftNode, RoleName};

use super::ClusterNode;
use crate::metrics::{ClusterReadings, Counter, Timing};

/// Counters kept by the glue.
#[derive(Debug, Default)]
pub(crate) struct ClusterStats {
    pub(crate) forwarded: Counter,
    pub(crate) forward_failures: Counter,
    commit_latency: Arc<Timing>,
}

impl ClusterStats {
    /// Counters for `raft`, whose write latencies they record from now on.
    pub(crate) fn for_node(raft: &RaftNode) -> Self {
        let stats = Self::default();
        let latency = Arc::clone(&stats.commit_latency);
        raft.set_write_observer(Arc::new(move |d| latency.observe(d)));
        stats
    }
}

impl ClusterNode {
    /// This node's Raft readings for `sys/metrics`.
    pub fn metric_readings(&self) -> ClusterReadings {
        let m = self.raft.metrics();
        ClusterReadings {
            is_leader: m.role == RoleName::Leader,
            term: m.term,
            last_log_index: m.last_log_index.unwrap_or(0),
            commit_index: m.committed_index.unwrap_or(0),
            applied_index: m.applied_index.unwrap_or(0),
            leader_changes: self.raft.leader_changes(),
            snapshot_installs: self.raft.snapshot_installs(),
            read_index_rounds: self.raft.read_rounds(),
            lease_reads: self.raft.lease_reads(),
            forwarded: self.stats.forwarded.get(),
            forward_failures: self.stats.forward_failures.get(),
            commit_latency: self.stats.commit_latency.snapshot(),
        }
    }
}
