//! What every request of one listener shares: the core, the body size limit, the body budget and
//! the body read timeout.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::ClusterNode;
use crate::core::Core;
use crate::http::budget::BodyBudget;

/// Shared state of a listener.
pub struct HttpState {
    pub core: Arc<Core>,
    /// Largest accepted request body, in bytes.
    pub max_request_size: usize,
    /// Memory budget for request bodies in flight, charged as bytes arrive (security.md S4,
    /// S25; see [`BodyBudget`]).
    pub body_budget: Arc<BodyBudget>,
    /// How long a request may take to deliver its body after its headers, waiting for body
    /// budget included (`http_read_timeout`).
    pub read_timeout: Duration,
    /// This node's cluster membership (raft storage); `None` for a standalone server.
    pub cluster: Option<Arc<ClusterNode>>,
    /// `telemetry { unauthenticated_metrics_access = true }`: `sys/metrics` without a token.
    pub unauthenticated_metrics: bool,
}

/// Default body budget: 32 MiB, or the largest request when that is bigger.
pub const DEFAULT_BODY_BUDGET: usize = 32 * 1024 * 1024;

impl HttpState {
    /// State for a listener with the given body limit and `http_read_timeout`.
    pub fn new(core: Arc<Core>, max_request_size: usize, read_timeout: Duration) -> Self {
        let pool = DEFAULT_BODY_BUDGET.max(max_request_size);
        Self {
            core,
            max_request_size,
            body_budget: Arc::new(BodyBudget::new(pool)),
            read_timeout,
            cluster: None,
            unauthenticated_metrics: false,
        }
    }

    /// The same, serving `sys/metrics` without a token when `open` is set.
    pub fn with_unauthenticated_metrics(mut self, open: bool) -> Self {
        self.unauthenticated_metrics = open;
        self
    }

    /// The same, on a cluster member.
    pub fn with_cluster(mut self, cluster: Option<Arc<ClusterNode>>) -> Self {
        self.cluster = cluster;
        self
    }
}
