//! Errors of the raft layer.

use coffer_storage::{LeaderInfo, StorageError};

use crate::types::NodeId;

/// Everything the raft layer's API can fail with. Becomes an HTTP status only in the root
/// crate's `http::error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaftError {
    /// The configuration is invalid (timeouts, addresses); the message names the setting.
    #[error("invalid raft configuration: {0}")]
    Config(String),
    /// Stored data could not be interpreted (damaged record, unknown format version).
    #[error("corrupt raft data ({what}): {reason}")]
    Corrupt { what: String, reason: String },
    /// The data directory belongs to another node id.
    #[error(
        "raft data directory belongs to node {stored}, but this node is configured as node {configured}"
    )]
    IdentityMismatch { stored: NodeId, configured: NodeId },
    /// R13: a node with an empty log asked to join under an id that is already a member. Its
    /// data was probably wiped; it must be removed and rejoin under a new id.
    #[error(
        "node id {node_id} is already a member of the cluster; a node that lost its data must not \
         rejoin under its old id: remove node {node_id} and join with a new node id"
    )]
    IdInUse { node_id: NodeId },
    /// The operation needs the leader.
    #[error("this node is not the leader")]
    NotLeader { leader: Option<LeaderInfo> },
    /// The cluster is already initialized (bootstrap refused).
    #[error("the cluster is already initialized")]
    AlreadyInitialized,
    /// Reading or writing local files failed.
    #[error("raft storage I/O error: {0}")]
    Io(String),
    /// A snapshot file or stream was refused (bad magic, checksum, format, metadata).
    #[error("invalid snapshot: {0}")]
    Snapshot(String),
    /// TLS material could not be built or is missing.
    #[error("cluster TLS: {0}")]
    Tls(String),
    /// No quorum, no leader, timed out or shutting down; the outcome of a write is unknown.
    #[error("raft unavailable: {0}")]
    Unavailable(String),
}

impl From<RaftError> for StorageError {
    fn from(e: RaftError) -> Self {
        match e {
            RaftError::NotLeader { leader } => {
                StorageError::NotLeader { leader_api_addr: leader.map(|l| l.api_addr) }
            }
            RaftError::Corrupt { what, reason } => StorageError::Corrupt { key: what, reason },
            RaftError::Io(m) => StorageError::Io(m),
            other => StorageError::Unavailable(other.to_string()),
        }
    }
}
