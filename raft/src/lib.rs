//! coffer's replicated storage: openraft 0.9.25 (log in a WAL, metadata in sled, state machine in
//! memory rebuilt from snapshot + log), with a mutual-TLS HTTP/2 network.
//!
//! This crate is the only one that names openraft. It depends on `coffer-storage` and on
//! nothing above it; the root crate uses it through the [`Storage`](coffer_storage::Storage) and
//! [`Replication`](coffer_storage::Replication) traits plus the node lifecycle API below.
//!
//! ```text
//!   core (root crate) ── Storage + Replication ──▶ RaftStorage ─▶ RaftNode
//!                                                                  │
//!        ┌──────────────────────────┬───────────────────────┬─────┴──────────────────┐
//!   LogStore (log_store)     StateMachine (state_machine)  NetworkFactory (network)  serve_cluster (server)
//!   WAL + sled tree log_meta  in memory + snapshot file     reqwest, h2, mTLS;         hyper h2, mTLS;
//!                                                          channel (ALPN coffer-rpc)  channel
//!        └──────────── one sled Db + fsync rule (db) ──┘    └──── TLS configs + PKI (tls) ───┘
//! ```
//!
//! # What goes through Raft
//!
//! One log entry carries one [`types::Command`]: a `coffer_storage::Batch` (ciphertext only —
//! the barrier sits above this crate) plus the leader's wall clock in unix nanoseconds. The state
//! machine applies a batch with its preconditions atomically (readers held off), together with
//! `last_applied` and the membership; every key an entry writes gets the entry's log index
//! as its version, so versions are strictly increasing and identical on every replica. Applying
//! never reads a clock or randomness and never panics: an entry it cannot apply is answered with
//! [`types::ApplyResult::Rejected`]. [`RaftNode::digest`] hashes the applied state so tests and
//! operators can compare replicas.
//!
//! # Durability (see `state_machine`, `log_store`, `db`)
//!
//! The log's entries are in a WAL of segment files ([`wal`]): an append is one `pwrite` and one
//! `fdatasync` before the flush callback; a torn last write is cut off at open, any other
//! damage refused. sled's `flush()` does not fsync on Linux, so every durability point in sled
//! is flush + `fsync` of its data file: votes before returning, `last_purged` before segments
//! are removed. The state machine is held in memory and rebuilt at every open from the snapshot
//! file and the log ([`state_machine`]); a purge waits until a durable snapshot file covers what
//! it removes. Snapshot files are written temp + fsync + rename + fsync(dir). A failed fsync or WAL write calls the
//! [`db::FatalHook`] (default: exit code 74) — nothing is acknowledged after the disk failed.
//! Log entries are capped at [`MAX_ENTRY_BYTES`]. Every record and file carries a format
//! version; an unknown one is refused with a clear error.
//!
//! Group commit: openraft 0.9 appends each client write on its own and awaits the flush callback
//! before the next append (`RaftCore::append_to_log`), so one fsync per write is the floor at
//! this layer; batches coming in one `append` (followers, catch-up) share one fsync.
//!
//! # Node lifecycle (see [`node`])
//!
//! ```ignore
//! let node = RaftNode::open(RaftConfig::new(id, dir, NodeInfo { name, api_addr, cluster_addr })).await?;
//! node.set_tls(&ca_cert_pem, &node_cert)?;               // after unseal; until then "pending"
//! tokio::spawn(serve_cluster(listener, node.clone(), Some(extra_handler)));
//! if node.is_pristine()? {
//!     node.initialize_single().await?;                   // first node of a new cluster, or:
//!     node.accept_join().await?;                          // joining node, then on the leader:
//!     leader.join_voter(id, info).await?;                 //   refuses an id already in use (R13)
//! }
//! let storage = node.storage();                           // Storage + Replication for the core
//! ```
//!
//! Other operations: [`RaftNode::add_learner`], [`RaftNode::change_membership`] (serialized),
//! [`RaftNode::remove_node`], [`RaftNode::metrics`], [`RaftNode::trigger_snapshot`],
//! [`RaftNode::export_snapshot`] / [`RaftNode::restore_snapshot`] (restore runs through the
//! log: staged chunks then one atomic commit), [`RaftNode::step_down`],
//! [`RaftNode::linearize`] (ReadIndex barrier shared by concurrent callers),
//! [`RaftNode::shutdown`]. Timeouts (heartbeat 150 ms, election 600–1000 ms, write/read 5 s,
//! snapshot threshold) come from [`RaftConfig`].
//!
//! # The cluster port (see [`server`], [`network`], [`tls`])
//!
//! HTTP/2 over TLS 1.3 with a required client certificate from the per-cluster CA
//! ([`tls::generate_ca`], [`tls::issue_node_cert`]). Raft RPCs are JSON POSTs under
//! [`network::paths::PREFIX`]; every other path goes to the root crate's [`ExtraHandler`]
//! (forwarded client requests, join). [`network::ClusterClient::post_json`] is the matching
//! client, usable for forwarding.
//!
//! # Errors
//!
//! [`RaftError`] for the node API; `From<RaftError> for StorageError` maps `NotLeader` (with the
//! leader's API address) and turns "no quorum / timed out / stopped" into `Unavailable`. A
//! write whose confirmation timed out has an **unknown** outcome (it may still commit).

#![forbid(unsafe_code)]

mod apply;
pub mod channel;
pub mod db;
mod entry_codec;
pub mod error;
mod log_parts;
pub mod log_store;
pub mod network;
pub mod node;
pub mod server;
pub mod snapshot;
pub mod state_machine;
pub mod storage;
pub mod tls;
pub mod types;
mod wal;

// The public interface is:
pub use error::RaftError;
pub use network::ClusterClient;
pub use node::{NodeMetrics, RaftConfig, RaftNode, RoleName};
pub use server::{serve_cluster, ExtraHandler};
pub use storage::RaftStorage;
pub use types::{NodeId, NodeInfo};

/// Largest log entry payload (sum of key and value bytes of a batch) a leader proposes.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod suite_tests;
#[cfg(test)]
mod wal_tests;
