//! The route table: which endpoint serves a request, and where in a cluster it may be served.
//!
//! [`Endpoint::parse`] reads a logical path once into the endpoint that serves it: one of the
//! `sys/` endpoints the HTTP layer serves itself ([`UnroutedPath`], [`QuorumPath`]) or the core's
//! router. The dispatcher matches on it, and [`placement`] classifies every request (method,
//! path, headers) from the same parse, so an endpoint cannot exist without a placement.
//!
//! # Placement rule
//!
//! * **Node-local** ([`Placement::NodeLocal`]): the node's own state, served where the request
//!   lands, sealed or not, standby or not: `sys/health`, `sys/seal-status`, `sys/leader`,
//!   `sys/metrics`, `sys/init`, `sys/unseal`, `sys/seal` (a standby refuses it, as Vault's does: it is never
//!   forwarded), and the raft steps that run on the node joining a cluster
//!   (`sys/storage/raft/join`, `sys/storage/raft/bootstrap`).
//! * **Leader-bound** ([`Placement::LeaderBound`]): everything that changes state or reads state
//!   only the leader holds:
//!   - every method but `GET` and `LIST` (writes, deletes, patches, and methods no endpoint
//!     serves: the leader answers those as a single node would);
//!   - logins (any `auth/` path with a `login` segment) and token creation
//!     (`auth/token/create*`), whatever the method;
//!   - `sys/wrapping/{wrap,unwrap,rewrap}`, and any request asking for a wrapped response
//!     (`X-Vault-Wrap-TTL` with any value): wrapping stores a token;
//!   - the generate-root and rekey ceremonies (their progress lives on the leader),
//!     `sys/step-down`;
//!   - the rest of `sys/storage/raft/` (membership, snapshots, autopilot: the leader's view).
//! * **Read after a read barrier** ([`Placement::ReadAfterBarrier`]): every other `GET` or
//!   `LIST` on a logical path. Reads have no side effects, so any unsealed node may serve one
//!   once it has applied everything the leader had committed when the read arrived.
//!
//! A request's token can have a side effect the table cannot see: a limited-use token spends
//! a use on every request (a storage write). The core's `Standby { leader }` error is the
//! backstop for that and for anything else the table gets wrong: a write refused by a
//! follower's storage comes back as a standby error and is sent to the leader
//! ([`crate::http::error`]).
//!
//! The dispatcher consults [`Endpoint`] today; Raft forwarding will consult [`placement`] before
//! a request reaches the core.

use http::{HeaderMap, Method};

use crate::core::rekey::RekeyTarget;

/// Where in a cluster a request may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Served by the leader only.
    LeaderBound,
    /// Served by the node it reached, in any state.
    NodeLocal,
    /// A read any unsealed node may serve after a read barrier.
    ReadAfterBarrier,
}

/// The endpoint that serves a logical path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Everything else: the core's router.
    Logical,
    /// Root token generation and rekeying (`http::quorum`).
    Quorum(QuorumPath),
    /// The seal lifecycle and the node's status (`http::unrouted`).
    Unrouted(UnroutedPath),
    /// Integrated storage: `sys/storage/raft/*` (`http::raft`).
    Raft(RaftPath),
    /// `sys/metrics`: this node's metrics (`http::metrics`).
    Metrics,
}

/// The `sys/storage/raft/` endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftPath {
    /// `join`: this (new) node asks a leader for a join challenge.
    Join,
    /// `bootstrap`: Vault's raft-as-HA-only bootstrap (refused: raft is coffer's storage).
    Bootstrap,
    /// `bootstrap/challenge` (leader).
    Challenge,
    /// `bootstrap/answer` (leader).
    Answer,
    /// `configuration`.
    Configuration,
    /// `remove-peer`.
    RemovePeer,
    /// `autopilot/state`.
    AutopilotState,
    /// `autopilot/configuration`.
    AutopilotConfiguration,
    /// `snapshot`: save (GET) or restore (POST).
    Snapshot,
    /// `snapshot-force`: restore without the same-keys check.
    SnapshotForce,
    /// `digest` (coffer): this node's applied index and state digest (served where it lands).
    Digest,
}

/// The `sys/` endpoints served outside the router because they must work while sealed or
/// uninitialised, or act on the node itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnroutedPath {
    /// `sys/health`.
    Health,
    /// `sys/init`.
    Init,
    /// `sys/leader`.
    Leader,
    /// `sys/seal`.
    Seal,
    /// `sys/seal-status`.
    SealStatus,
    /// `sys/step-down`.
    StepDown,
    /// `sys/unseal`.
    Unseal,
}

/// The quorum-operation paths: root token generation and rekeying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumPath {
    /// `sys/generate-root/attempt` (legacy, plain JSON).
    GenerateRootAttempt,
    /// `sys/generate-root/update` (legacy, plain JSON).
    GenerateRootUpdate,
    /// `sys/generate-root-token/attempt` (authenticated, envelope).
    GenerateRootTokenAttempt,
    /// `sys/generate-root-token/update` (authenticated, envelope).
    GenerateRootTokenUpdate,
    /// `sys/rekey/backup` or `sys/rekey/recovery-key-backup`.
    RekeyBackup(RekeyTarget),
    /// `sys/rekey/init` or `sys/rekey-recovery-key/init`.
    RekeyInit(RekeyTarget),
    /// `sys/rekey/update` or `sys/rekey-recovery-key/update`.
    RekeyUpdate(RekeyTarget),
    /// `sys/rekey/verify` or `sys/rekey-recovery-key/verify`.
    RekeyVerify(RekeyTarget),
}

impl Endpoint {
    /// The endpoint for a logical path (no `/v1/`; a trailing `/` is ignored).
    pub fn parse(path: &str) -> Self {
        use RekeyTarget::{Barrier, Recovery};
        match path.trim_end_matches('/') {
            "sys/health" => Endpoint::Unrouted(UnroutedPath::Health),
            "sys/init" => Endpoint::Unrouted(UnroutedPath::Init),
            "sys/leader" => Endpoint::Unrouted(UnroutedPath::Leader),
            "sys/seal" => Endpoint::Unrouted(UnroutedPath::Seal),
            "sys/seal-status" => Endpoint::Unrouted(UnroutedPath::SealStatus),
            "sys/step-down" => Endpoint::Unrouted(UnroutedPath::StepDown),
            "sys/unseal" => Endpoint::Unrouted(UnroutedPath::Unseal),
            "sys/generate-root/attempt" => Endpoint::Quorum(QuorumPath::GenerateRootAttempt),
            "sys/generate-root/update" => Endpoint::Quorum(QuorumPath::GenerateRootUpdate),
            "sys/generate-root-token/attempt" => Endpoint::Quorum(QuorumPath::GenerateRootTokenAttempt),
            "sys/generate-root-token/update" => Endpoint::Quorum(QuorumPath::GenerateRootTokenUpdate),
            "sys/rekey/init" => Endpoint::Quorum(QuorumPath::RekeyInit(Barrier)),
            "sys/rekey/update" => Endpoint::Quorum(QuorumPath::RekeyUpdate(Barrier)),
            "sys/rekey/verify" => Endpoint::Quorum(QuorumPath::RekeyVerify(Barrier)),
            "sys/rekey/backup" => Endpoint::Quorum(QuorumPath::RekeyBackup(Barrier)),
            "sys/rekey/recovery-key-backup" => Endpoint::Quorum(QuorumPath::RekeyBackup(Recovery)),
            "sys/rekey-recovery-key/init" => Endpoint::Quorum(QuorumPath::RekeyInit(Recovery)),
            "sys/rekey-recovery-key/update" => Endpoint::Quorum(QuorumPath::RekeyUpdate(Recovery)),
            "sys/rekey-recovery-key/verify" => Endpoint::Quorum(QuorumPath::RekeyVerify(Recovery)),
            "sys/storage/raft/join" => Endpoint::Raft(RaftPath::Join),
            "sys/storage/raft/bootstrap" => Endpoint::Raft(RaftPath::Bootstrap),
            "sys/storage/raft/bootstrap/challenge" => Endpoint::Raft(RaftPath::Challenge),
            "sys/storage/raft/bootstrap/answer" => Endpoint::Raft(RaftPath::Answer),
            "sys/storage/raft/configuration" => Endpoint::Raft(RaftPath::Configuration),
            "sys/storage/raft/remove-peer" => Endpoint::Raft(RaftPath::RemovePeer),
            "sys/storage/raft/autopilot/state" => Endpoint::Raft(RaftPath::AutopilotState),
            "sys/storage/raft/autopilot/configuration" => Endpoint::Raft(RaftPath::AutopilotConfiguration),
            "sys/storage/raft/snapshot" => Endpoint::Raft(RaftPath::Snapshot),
            "sys/storage/raft/snapshot-force" => Endpoint::Raft(RaftPath::SnapshotForce),
            "sys/storage/raft/digest" => Endpoint::Raft(RaftPath::Digest),
            "sys/metrics" => Endpoint::Metrics,
            _ => Endpoint::Logical,
        }
    }
}

/// Where a request may be served (see the module docs for the rule).
pub fn placement(method: &Method, path: &str, headers: &HeaderMap) -> Placement {
    match Endpoint::parse(path) {
        Endpoint::Unrouted(UnroutedPath::StepDown) | Endpoint::Quorum(_) => Placement::LeaderBound,
        Endpoint::Unrouted(_)
        | Endpoint::Metrics
        | Endpoint::Raft(RaftPath::Join | RaftPath::Bootstrap | RaftPath::Digest) => Placement::NodeLocal,
        Endpoint::Raft(_) => Placement::LeaderBound,
        Endpoint::Logical => logical_placement(method, path.trim_end_matches('/'), headers),
    }
}

fn logical_placement(method: &Method, path: &str, headers: &HeaderMap) -> Placement {
    if matches!(path, "sys/storage/raft/join" | "sys/storage/raft/bootstrap") {
        return Placement::NodeLocal;
    }
    let is_read = *method == Method::GET || method.as_str() == "LIST";
    if !is_read || has_side_effects(path) || wants_wrapping(headers) {
        return Placement::LeaderBound;
    }
    Placement::ReadAfterBarrier
}

/// Paths whose every method changes state or needs the leader.
fn has_side_effects(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["auth", "token", op, ..] if op.starts_with("create") => true,
        ["auth", rest @ ..] => rest.contains(&"login"),
        ["sys", "wrapping", "wrap" | "unwrap" | "rewrap"] => true,
        ["sys", "storage", "raft", ..] => true,
        _ => false,
    }
}

/// `X-Vault-Wrap-TTL` is set: the response is wrapped in a token the leader must store.
fn wants_wrapping(headers: &HeaderMap) -> bool {
    headers.get("x-vault-wrap-ttl").is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

#[cfg(test)]
mod tests;
