//! The metrics operators scrape from `sys/metrics`: what is counted, and how it is shown.
//!
//! A leaf module (it imports only `util`): every layer may record into it. Two kinds of values:
//!
//! * **Recorded** as things happen, in [`Metrics`]: requests by route family and status class
//!   with their latency ([`Metrics::record_request`]), token lookups, audit failures. The
//!   recording path is a few relaxed atomics on preallocated slots: no lock, no allocation, no
//!   label lookup by string.
//! * **Read** when a scrape arrives, into [`Readings`]: the seal state, the barrier's
//!   encryption counts (kept by the storage crate), and on a cluster the Raft state and
//!   counters (kept by the raft crate and the cluster glue). The layer that owns each value
//!   fills in its part; nothing here holds a reference to the core or the cluster.
//!
//! [`render`] turns both into the Prometheus text format, OpenMetrics, or Vault's JSON shape,
//! through the `prometheus-client` crate's encoders.
//!
//! Labels come from fixed lists ([`route`]), never from a request's path or body, so the number
//! of series is bounded and no secret can become a label.

pub mod render;
pub mod route;
pub mod timing;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use render::Format;
pub use route::Route;
pub use timing::{Timing, TimingSnapshot};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a token lookup found (label `result` of `coffer_token_lookups_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenLookup {
    /// Unknown, expired or spent.
    Invalid,
    /// A live token used from outside its `bound_cidrs`.
    WrongNetwork,
    Valid,
}

impl TokenLookup {
    const ALL: [TokenLookup; 3] = [TokenLookup::Invalid, TokenLookup::Valid, TokenLookup::WrongNetwork];

    fn label(self) -> &'static str {
        match self {
            TokenLookup::Invalid => "invalid",
            TokenLookup::Valid => "valid",
            TokenLookup::WrongNetwork => "wrong_network",
        }
    }
}

/// Which audit record could not be written (label `record` of `coffer_audit_failures_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditRecord {
    Request,
    Response,
}

/// The values recorded as requests are served. One per node (the core owns it).
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// One latency histogram per (route family, status class): `route * 5 + class`.
    requests: Box<[Timing]>,
    /// By [`TokenLookup`] (`ALL` order).
    token_lookups: [Counter; 3],
    /// Request, response.
    audit_failures: [Counter; 2],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics; uptime counts from now.
    pub fn new() -> Self {
        let slots = route::ROUTES.len() * route::STATUS_CLASSES.len();
        Self {
            started: Instant::now(),
            requests: (0..slots).map(|_| Timing::default()).collect(),
            token_lookups: Default::default(),
            audit_failures: Default::default(),
        }
    }

    /// Records one answered request.
    pub fn record_request(&self, route: Route, status: u16, elapsed: Duration) {
        let slot = route.index() * route::STATUS_CLASSES.len() + route::status_class(status);
        if let Some(t) = self.requests.get(slot) {
            t.observe(elapsed);
        }
    }

    /// Records one token lookup and what it found.
    pub fn record_token_lookup(&self, result: TokenLookup) {
        let i = TokenLookup::ALL.iter().position(|r| *r == result).unwrap_or(0);
        self.token_lookups[i].inc();
    }

    /// Records an audit record that no device wrote (the request failed closed).
    pub fn record_audit_failure(&self, record: AuditRecord) {
        self.audit_failures[record as usize].inc();
    }

    /// Requests recorded so far for `route` (every status), for tests.
    pub fn requests_for(&self, route: Route) -> u64 {
        let n = route::STATUS_CLASSES.len();
        let start = route.index() * n;
        self.requests.get(start..start + n).map(|s| s.iter().map(Timing::count).sum()).unwrap_or(0)
    }

    /// Time since these metrics started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Values read from their owners when a scrape arrives.
#[derive(Clone, Debug, Default)]
pub struct Readings {
    /// The node holds its keys (`coffer_core_unsealed`).
    pub unsealed: bool,
    pub barrier: BarrierReadings,
    /// Present on a Raft cluster member.
    pub cluster: Option<ClusterReadings>,
}

/// The barrier's counts since the process started.
#[derive(Clone, Debug, Default)]
pub struct BarrierReadings {
    /// Values encrypted (each put of a batch).
    pub encryptions: u64,
    /// Values decrypted.
    pub decryptions: u64,
    /// Values that failed to decrypt (tampered, moved, or encrypted under another key).
    pub decrypt_failures: u64,
}

/// A cluster member's Raft state and counters.
#[derive(Clone, Debug, Default)]
pub struct ClusterReadings {
    pub is_leader: bool,
    pub term: u64,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// Times this node saw the cluster's leader change (a new leader or a new term's leader).
    pub leader_changes: u64,
    /// Snapshots this node installed from a leader.
    pub snapshot_installs: u64,
    /// Read barriers (read-index rounds) this node ran for linearizable reads.
    pub read_index_rounds: u64,
    /// Read indexes this node answered as the leader from its lease (no heartbeat round).
    pub lease_reads: u64,
    /// Requests this node forwarded to the leader, answered and failed.
    pub forwarded: u64,
    pub forward_failures: u64,
    /// Latency of replicated writes on this node (propose → commit → apply), in seconds.
    pub commit_latency: TimingSnapshot,
}
