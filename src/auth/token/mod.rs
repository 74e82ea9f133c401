//! `auth/token/*`: the token auth method's endpoints (contract §3). The token store and the
//! token lifecycle (tree revocation, expiry tidy) live in the core (`core::token`); this backend
//! parses the path once (`path`) and dispatches to one handler per concept:
//!
//! ```text
//!   create    create, create-orphan, create/<role>        (S19: no privilege escalation)
//!   renew     renew, renew-self, renew-accessor           (S21: the tightest limit wins)
//!   lookup    lookup, lookup-self, lookup-accessor, LIST accessors
//!   revoke    revoke, revoke-self, revoke-accessor, revoke-orphan, tidy
//!   roles     roles/<name>, LIST roles
//! ```
//!
//! `render` shapes token entries into lookup data and `auth` blocks; `ttl` holds Vault's TTL
//! arithmetic and its capping warnings.

mod create;
mod lookup;
mod path;
mod render;
mod renew;
mod revoke;
mod roles;
mod ttl;

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use serde_json::{Map, Value};

use self::create::CreateKind;
use self::path::TokenPath;
use self::renew::RenewTarget;
use crate::core::backend::Backend;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::core::token::TokenEntry;
use crate::core::{Active, Core};
use crate::policy::Operation;

/// The token backend.
pub struct TokenBackend {
    core: Weak<Core>,
}

impl TokenBackend {
    /// Bound to its core.
    pub fn new(core: Weak<Core>) -> Self {
        Self { core }
    }

    fn core(&self) -> Result<Arc<Core>> {
        self.core.upgrade().ok_or_else(|| Error::Unavailable("server is shutting down".into()))
    }
}

#[async_trait]
impl Backend for TokenBackend {
    fn root_protected(&self, path: &str) -> bool {
        path.starts_with("revoke-orphan") || path.starts_with("accessors")
    }

    async fn exists(&self, req: &BackendRequest) -> Result<Option<bool>> {
        match TokenPath::parse(&req.path) {
            TokenPath::Role(name) => {
                let core = self.core()?;
                let active = core.active()?;
                Ok(Some(roles::read(&active, name).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    async fn handle(&self, req: &BackendRequest) -> Result<Response> {
        let core = self.core()?;
        let active = core.active()?;
        let op = req.operation;
        let write = matches!(op, Operation::Create | Operation::Update);
        let read_or_write = write || op == Operation::Read;
        match TokenPath::parse(&req.path) {
            TokenPath::Create if write => create::create(&core, &active, req, CreateKind::Normal).await,
            TokenPath::CreateOrphan if write => create::create(&core, &active, req, CreateKind::Orphan).await,
            TokenPath::CreateRole(r) if write => {
                create::create(&core, &active, req, CreateKind::Role(r)).await
            }
            TokenPath::LookupSelf if read_or_write => lookup::lookup_self(req),
            TokenPath::Lookup if read_or_write => lookup::lookup(&active, req).await,
            TokenPath::LookupAccessor if read_or_write => lookup::lookup_accessor(&active, req).await,
            TokenPath::RenewSelf if write => renew::renew(&core, &active, req, RenewTarget::SelfToken).await,
            TokenPath::Renew if write => renew::renew(&core, &active, req, RenewTarget::Token).await,
            TokenPath::RenewAccessor if write => {
                renew::renew(&core, &active, req, RenewTarget::Accessor).await
            }
            TokenPath::RevokeSelf if write => revoke::revoke_self(&core, &active, req).await,
            TokenPath::Revoke if write => revoke::revoke(&core, &active, req).await,
            TokenPath::RevokeAccessor if write => revoke::revoke_accessor(&core, &active, req).await,
            TokenPath::RevokeOrphan if write => revoke::revoke_orphan(&core, &active, req).await,
            TokenPath::Accessors if op == Operation::List => lookup::accessors(&active, req).await,
            TokenPath::Roles if op == Operation::List => roles::list(&active).await,
            TokenPath::Role(name) => roles::handle(&active, req, name).await,
            TokenPath::Tidy if write => Ok(revoke::start_tidy(self.core.clone())),
            TokenPath::Unknown => Err(Error::UnsupportedPath),
            _ => Err(Error::UnsupportedOperation),
        }
    }
}

/// The `token` field a revoke or renew names: 400 `missing token ID` when absent or empty.
fn named_token(req: &BackendRequest) -> Result<String> {
    let token = fields::string_or_empty(&req.data, "token")?;
    if token.is_empty() {
        return Err(Error::bad("missing token ID"));
    }
    Ok(token)
}

/// The `accessor` field: 400 with Vault's multi-error text when absent or empty.
fn named_accessor(req: &BackendRequest) -> Result<String> {
    let accessor = fields::string_or_empty(&req.data, "accessor")?;
    if accessor.is_empty() {
        return Err(Error::bad("1 error occurred:\n\t* missing accessor\n\n"));
    }
    Ok(accessor)
}

/// Vault's answer for an accessor that names no live token.
fn invalid_accessor() -> Error {
    Error::bad("1 error occurred:\n\t* invalid accessor\n\n")
}

/// The id HMAC of the token behind `accessor` ([`invalid_accessor`] when there is none).
async fn token_for_accessor(active: &Active, accessor: &str) -> Result<String> {
    active.tokens.hmac_for_accessor(accessor).await?.ok_or_else(invalid_accessor)
}

/// True if `caller` is root or its policies grant `sudo` on `path`.
async fn caller_has_sudo(
    active: &Active,
    caller: &TokenEntry,
    path: &str,
    data: &Map<String, Value>,
) -> Result<bool> {
    let acl = active.policies.acl(&caller.policies).await?;
    Ok(caller.is_root() || acl.check(Operation::Update, path, data).sudo)
}
