//! Secrets engines and the backend contract.
//!
//! A backend receives a [`Ctx`]: the operation, the path relative to its mount, the request
//! data and the mount's [`View`](coffer_storage::View). Inside, the relative path is parsed once
//! into a typed enum and matched exhaustively (no ordered regex routing).

pub mod cubbyhole;
pub mod kv;
pub mod sys;
pub mod transit;

use std::sync::{Arc, Weak};

use async_trait::async_trait;

use crate::core::error::{Error, Result};
use crate::core::mounts::MountEntry;
use crate::core::request::{Ctx, Response};
use crate::core::Core;

/// The contract between the core and an engine or auth method.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Relative paths served without a token (e.g. `login`).
    fn unauthenticated(&self, _path: &str) -> bool {
        false
    }

    /// Relative paths that need `sudo` in addition to the operation's capability.
    fn root_protected(&self, _path: &str) -> bool {
        false
    }

    /// Existence check for create-vs-update: `Some(true)` = exists (update), `Some(false)` =
    /// create, `None` = this path has no existence check (always update).
    async fn exists(&self, _ctx: &Ctx) -> Result<Option<bool>> {
        Ok(None)
    }

    /// Handles a request.
    async fn handle(&self, ctx: &Ctx) -> Result<Response>;

    /// Renewal of a token this auth method issued (Vault's `AuthRenew`): the TTL parameters as
    /// they are now, or an error when the login's basis is gone. `internal` is the
    /// [`LoginSpec::internal`](crate::core::request::LoginSpec) the login returned. `None` = the
    /// backend has no opinion (the token's own parameters apply).
    async fn renew_auth(
        &self,
        _view: &coffer_storage::View,
        _internal: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<AuthRenew>> {
        Ok(None)
    }

    /// Housekeeping the core runs about once a minute on every mount (Vault's `PeriodicFunc`),
    /// e.g. AppRole's tidy of expired secret IDs.
    async fn periodic(&self, _view: &coffer_storage::View, _mount: &MountEntry) -> Result<()> {
        Ok(())
    }
}

/// TTL parameters an auth method supplies when one of its tokens is renewed (seconds; 0 = the
/// mount's default or maximum).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthRenew {
    pub ttl: u64,
    pub max_ttl: u64,
    pub period: u64,
}

/// The factory the router uses to build a backend for a mount entry.
pub fn factory(core: Weak<Core>) -> impl Fn(&MountEntry) -> Result<Arc<dyn Backend>> + Send + Sync {
    move |entry: &MountEntry| -> Result<Arc<dyn Backend>> {
        let b: Arc<dyn Backend> = match entry.kind.as_str() {
            "kv" | "generic" => match entry.kv_version() {
                "1" | "" => Arc::new(kv::v1::KvV1),
                "2" => Arc::new(kv::v2::KvV2::new(core.clone(), entry)),
                other => return Err(Error::bad(format!("unsupported kv version {other}"))),
            },
            "cubbyhole" => Arc::new(cubbyhole::Cubbyhole),
            "system" => Arc::new(sys::Sys::new(core.clone())),
            "identity" => Arc::new(Unsupported),
            "transit" => transit::Transit::new(core.clone(), entry),
            "token" => Arc::new(crate::auth::token::TokenBackend::new(core.clone())),
            "approle" => Arc::new(crate::auth::approle::AppRole::new(core.clone())),
            other => return Err(Error::bad(format!("plugin not found in the catalog: {other}"))),
        };
        Ok(b)
    }
}

/// Mount types that can be enabled through `sys/mounts`.
pub const SECRET_TYPES: &[&str] = &["kv", "generic", "kv-v1", "kv-v2", "transit"];
/// Mount types that can be enabled through `sys/auth`.
pub const AUTH_TYPES: &[&str] = &["approle"];
/// Auth method types whose mounts take Vault's `user_lockout_config` (only AppRole is built in).
pub const LOCKOUT_TYPES: &[&str] = &["approle", "ldap", "userpass"];

/// A placeholder for built-in mounts coffer lists but does not implement (identity).
struct Unsupported;

#[async_trait]
impl Backend for Unsupported {
    async fn handle(&self, _ctx: &Ctx) -> Result<Response> {
        Err(Error::UnsupportedPath)
    }
}
