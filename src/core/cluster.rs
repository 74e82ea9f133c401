//! What a replicated deployment adds to the core's lifecycle.
//!
//! The core knows replication only through two traits: [`Replication`] from the storage crate
//! (role, leader, change stream, read barrier) and [`ClusterHooks`] here, which the server's
//! cluster glue (above the core, on top of the Raft crate) implements:
//!
//! - **init**: before `sys/init` writes anything, a node that is not yet a cluster member
//!   becomes a cluster of one ([`ClusterHooks::before_init`]);
//! - **unseal / seal**: once the barrier is open the node installs its cluster TLS (the
//!   per-cluster CA lives behind the barrier), and drops it before sealing;
//! - **join**: a node that asked a leader to join holds a [`JoinTicket`] (the cluster's seal
//!   configuration and wrapped root key). `sys/unseal` on such a node combines the shares against
//!   the ticket, and [`ClusterHooks::complete_join`] proves the root key to the leader, installs
//!   TLS and waits until the replicated data arrived; the node then unseals as usual.
//!
//! A standalone server has no hooks.
//!
//! [`Replication`]: coffer_storage::replication::Replication

use std::sync::Arc;

use async_trait::async_trait;

use coffer_storage::keys::RootKey;
use coffer_storage::Barrier;

use super::error::Result;
use super::seal::StoredSealConfig;

/// What a joining node learned from the leader: enough to combine unseal shares and unwrap the
/// root key (which proves to the leader that the node holds the cluster's keys). Nothing in it
/// is secret on its own: the wrapped root key needs the unseal key.
#[derive(Clone, Debug)]
pub struct JoinTicket {
    pub seal_config: StoredSealConfig,
    /// The root key wrapped by the unseal key (the record at `core/root-key`).
    pub wrapped_root_key: Vec<u8>,
    /// The recovery check record, for static seals (verifies recovery shares).
    pub recovery_check: Option<Vec<u8>>,
}

/// The cluster side of init, unseal, seal and join.
#[async_trait]
pub trait ClusterHooks: Send + Sync + 'static {
    /// Before `sys/init` writes its records: make this node a one-member cluster if it is not
    /// a member of one, and wait until it leads it.
    async fn before_init(&self) -> Result<()>;

    /// The barrier just opened: install this node's cluster TLS, creating the cluster CA
    /// behind the barrier when there is none yet (first unseal after init, on the leader).
    async fn after_unseal(&self, barrier: &Arc<Barrier>) -> Result<()>;

    /// The node is about to seal: stop cluster traffic that needs the barrier's keys.
    async fn before_seal(&self);

    /// The ticket of a join in progress, if this node is joining.
    fn join_ticket(&self) -> Option<JoinTicket>;

    /// Finishes a join with the unwrapped root key: answers the leader's challenge, installs
    /// the TLS material it returns, and waits until this node's store holds the replicated
    /// data (the seal records and the keyring).
    async fn complete_join(&self, root: &RootKey) -> Result<()>;
}
