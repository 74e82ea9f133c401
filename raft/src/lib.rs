//! placeholder

#![forbid(unsafe_code)]

pub mod db;
pub mod error;
pub mod log_store;
pub mod network;
pub mod node;
pub mod server;
pub mod snapshot;
pub mod state_machine;
pub mod storage;
pub mod tls;
pub mod types;

pub use error::RaftError;
pub use node::{NodeMetrics, RaftConfig, RaftNode};
pub use server::{serve_cluster, ExtraHandler};
pub use storage::RaftStorage;
pub use types::{NodeId, NodeInfo};

/// Largest log entry payload (sum of key and value bytes of a batch) a leader proposes.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

#[cfg(test)]
mod suite_tests;
