//! `auth/token/revoke`, `revoke-self`, `revoke-accessor`, `revoke-orphan` and `tidy`.
//!
//! Revoking a token revokes its whole subtree (and erases the cubbyholes) through the core's
//! token lifecycle; `revoke-orphan` (root or sudo only) revokes one token and orphans its
//! children. Batch tokens cannot be revoked. Revoking an unknown token is not an error.

use std::sync::Weak;

use super::{caller_has_sudo, named_accessor, named_token};
use crate::core::error::{Error, Result};
use crate::core::request::{BackendRequest, Response};
use crate::core::token::TokenType;
use crate::core::{Active, Core};

/// `revoke-self`: the caller's token and its descendants.
pub async fn revoke_self(core: &Core, active: &Active, req: &BackendRequest) -> Result<Response> {
    let entry = req.token.as_ref().ok_or(Error::NoToken)?;
    if entry.token_type == TokenType::Batch {
        return Err(Error::bad("batch tokens cannot be revoked"));
    }
    core.revoke_tree(active, &entry.id_hmac).await?;
    Ok(Response::empty())
}

/// `revoke`: the token in the `token` field and its descendants.
pub async fn revoke(core: &Core, active: &Active, req: &BackendRequest) -> Result<Response> {
    let id = active.tokens.hmac(&named_token(req)?);
    if let Some((entry, _)) = active.tokens.get_by_hmac(&id).await? {
        if entry.token_type == TokenType::Batch {
            return Err(Error::bad("batch tokens cannot be revoked"));
        }
        core.revoke_tree(active, &id).await?;
    }
    Ok(Response::empty())
}

/// `revoke-accessor`: the token behind the `accessor` field and its descendants.
pub async fn revoke_accessor(core: &Core, active: &Active, req: &BackendRequest) -> Result<Response> {
    let accessor = named_accessor(req)?;
    match active.tokens.hmac_for_accessor(&accessor).await? {
        Some(id) => {
            core.revoke_tree(active, &id).await?;
            Ok(Response::empty())
        }
        None => Ok(Response::empty().warn("No token found with this accessor")),
    }
}

/// `revoke-orphan`: the token in the `token` field only; its children become orphans.
pub async fn revoke_orphan(core: &Core, active: &Active, req: &BackendRequest) -> Result<Response> {
    let token = named_token(req)?;
    let caller = req.token.as_ref().ok_or(Error::NoToken)?;
    if !caller_has_sudo(active, caller, "auth/token/revoke-orphan", &req.data).await? {
        return Err(Error::bad("root or sudo privileges required to revoke and orphan"));
    }
    let id = active.tokens.hmac(&token);
    if let Some(entry) = active.tokens.revoke_orphan(&id).await? {
        core.cleanup_revoked(active, &[entry]).await;
    }
    Ok(Response::empty())
}

/// `tidy`: starts a full token tidy in the background and answers 202 at once.
pub fn start_tidy(core: Weak<Core>) -> Response {
    tokio::spawn(async move {
        if let Some(core) = core.upgrade() {
            if let Err(e) = core.tidy_tokens_full().await {
                tracing::warn!(error = %e, "token tidy failed");
            }
        }
    });
    Response::empty()
        .warn("Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs.")
        .with_status(202)
}
