//! The contract between the core and the backends it routes to (secrets engines and auth
//! methods), and what a backend may see of the system.
//!
//! A backend receives a [`BackendRequest`](crate::core::request::BackendRequest): the
//! operation, the path relative to its mount, the request data and the mount's
//! [`View`](coffer_storage::View). Inside, the relative path is parsed once into a typed enum
//! and matched exhaustively (no ordered regex routing).
//!
//! Backends are built by a [`Registry`] the server hands to the core (`crate::builtin`), so the
//! core never names a backend type. Most backends see only a [`BackendEnv`]: their mount, and a
//! narrow [`SystemView`] (TTL limits, whether this node is the leader). Housekeeping
//! ([`Backend::periodic`]) is run by the core's leader-gated scheduler, never by tasks a backend
//! spawns itself; cached state is dropped through [`Backend::invalidate`] when replicated writes
//! change the keys below the mount.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use coffer_storage::View;

use crate::core::error::Result;
use crate::core::mounts::{MountEntry, Table};
use crate::core::request::{BackendRequest, Response};
use crate::core::Core;
use crate::policy::Operation;

/// The contract between the core and an engine or auth method.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Relative paths served without a token (e.g. `login`).
    fn unauthenticated(&self, _path: &str) -> bool {
        false
    }

    /// Whether a request that presents no token may be served on `path` all the same, decided
    /// from the mount's stored state (a resource its operator made public, e.g. transit's
    /// `jwks/<name>` of a `jwks_public` key). Asked only when no token was presented and
    /// [`unauthenticated`](Self::unauthenticated) said no; a presented token is always checked
    /// against its ACL.
    async fn anonymous_allowed(&self, _view: &View, _operation: Operation, _path: &str) -> Result<bool> {
        Ok(false)
    }

    /// Relative paths that need `sudo` in addition to the operation's capability.
    fn root_protected(&self, _path: &str) -> bool {
        false
    }

    /// Existence check for create-vs-update: `Some(true)` = exists (update), `Some(false)` =
    /// create, `None` = this path has no existence check (always update).
    async fn exists(&self, _req: &BackendRequest) -> Result<Option<bool>> {
        Ok(None)
    }

    /// Handles a request.
    async fn handle(&self, req: &BackendRequest) -> Result<Response>;

    /// Renewal of a token this auth method issued (Vault's `AuthRenew`): the TTL parameters as
    /// they are now, or an error when the login's basis is gone. `internal` is the
    /// [`LoginSpec::internal`](crate::core::request::LoginSpec) the login returned. `None` = the
    /// backend has no opinion (the token's own parameters apply).
    async fn renew_auth(
        &self,
        _view: &View,
        _internal: &BTreeMap<String, String>,
    ) -> Result<Option<AuthRenew>> {
        Ok(None)
    }

    /// How often [`periodic`](Self::periodic) should run; `None` = never.
    fn periodic_interval(&self) -> Option<Duration> {
        None
    }

    /// Housekeeping (Vault's `PeriodicFunc`): AppRole's tidy of expired secret IDs, KV v2's
    /// expiry of old versions, transit's automatic rotation. Run by the core's scheduler on the
    /// leader only, at about [`periodic_interval`](Self::periodic_interval).
    async fn periodic(&self, _view: &View, _mount: &MountEntry, _now: OffsetDateTime) -> Result<()> {
        Ok(())
    }

    /// Replicated writes changed `key` (relative to the mount's view): drop whatever is cached
    /// about it. `None` = anything may have changed (drop every cache).
    fn invalidate(&self, _key: Option<&str>) {}
}

/// TTL parameters an auth method supplies when one of its tokens is renewed (seconds; 0 = the
/// mount's default or maximum).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthRenew {
    pub ttl: u64,
    pub max_ttl: u64,
    pub period: u64,
}

/// What a backend may ask of the system (Vault's `SystemView`, narrowed).
pub trait SystemView: Send + Sync {
    /// The system default lease TTL, seconds.
    fn default_lease_ttl(&self) -> u64;
    /// The system maximum lease TTL, seconds.
    fn max_lease_ttl(&self) -> u64;
    /// True while this node is the leader (writes and housekeeping happen there).
    fn is_leader(&self) -> bool;
    /// How many change events this node's replicated change feed has published: it moves
    /// whenever another node's write (or a snapshot) reaches this node's storage, before the
    /// write is acknowledged. `None` when unknown (caches must then check storage).
    fn applied_changes(&self) -> Option<u64> {
        None
    }
}

/// Everything a backend is built with: its mount and the system view.
#[derive(Clone)]
pub struct BackendEnv {
    pub mount: MountEntry,
    pub system: Arc<dyn SystemView>,
}

impl std::fmt::Debug for BackendEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendEnv").field("mount", &self.mount.route_prefix()).finish_non_exhaustive()
    }
}

/// The set of backend types a server offers and the mounts a new store starts with.
pub trait Registry: Send + Sync + 'static {
    /// Builds the backend for a mount. `core` is for the few built-in backends that manage the
    /// core itself (`sys/`, `auth/token/`); engines and auth methods get only `env`.
    fn build(&self, core: &Weak<Core>, env: BackendEnv) -> Result<Arc<dyn Backend>>;

    /// Whether `kind` can be mounted in `table` through the API (`sys/mounts`, `sys/auth`).
    fn mountable(&self, table: Table, kind: &str) -> bool;

    /// Whether auth mounts of `kind` take Vault's `user_lockout_config`.
    fn supports_lockout(&self, kind: &str) -> bool;

    /// The mounts a new store starts with, per table.
    fn default_mounts(&self, table: Table) -> Vec<MountEntry>;
}

/// A fixed system view (tests): Vault's default TTLs, always the leader.
#[cfg(test)]
pub(crate) struct FixedSystemView;

#[cfg(test)]
impl SystemView for FixedSystemView {
    fn default_lease_ttl(&self) -> u64 {
        crate::core::DEFAULT_MAX_TTL
    }

    fn max_lease_ttl(&self) -> u64 {
        crate::core::DEFAULT_MAX_TTL
    }

    fn is_leader(&self) -> bool {
        true
    }
}

/// An environment for a backend under test, mounted at `<kind>/`.
#[cfg(test)]
pub(crate) fn test_env(kind: &str) -> BackendEnv {
    let table = if kind == "approle" { Table::Auth } else { Table::Secrets };
    BackendEnv {
        mount: MountEntry {
            path: format!("{kind}/"),
            kind: kind.into(),
            description: String::new(),
            accessor: crate::core::mounts::new_accessor(kind, table),
            uuid: uuid::Uuid::new_v4().to_string(),
            local: false,
            seal_wrap: false,
            external_entropy_access: false,
            options: None,
            config: Default::default(),
            table,
        },
        system: Arc::new(FixedSystemView),
    }
}
