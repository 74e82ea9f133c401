//! `auth/token/lookup`, `lookup-self`, `lookup-accessor` and `LIST auth/token/accessors`.
//!
//! A lookup by token answers only for a live token (403 `bad token` otherwise, never saying
//! why); a lookup by accessor never shows the token's ID.

use super::render::lookup_data;
use super::{invalid_accessor, named_accessor, token_for_accessor};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::core::Active;
use crate::secret::ClientToken;

/// `lookup-self` (and `lookup` without a `token`): the caller's own token.
pub fn lookup_self(req: &BackendRequest) -> Result<Response> {
    let entry = req.token.as_ref().ok_or(Error::NoToken)?;
    // Echoing the caller's own token back to its owner, as Vault does.
    let id = req.client_token.as_ref().map(|t| t.expose()).unwrap_or("");
    Ok(Response::data(lookup_data(entry, id, req.now)))
}

/// `lookup`: the token in the `token` field.
pub async fn lookup(active: &Active, req: &BackendRequest) -> Result<Response> {
    let t = fields::string_or_empty(&req.data, "token")?;
    if t.is_empty() {
        return lookup_self(req);
    }
    let token = ClientToken::new(t);
    match active.tokens.lookup(&token, req.now).await? {
        Some((entry, _)) => Ok(Response::data(lookup_data(&entry, token.expose(), req.now))),
        None => Err(Error::Forbidden("bad token".into())),
    }
}

/// `lookup-accessor`: the token behind the `accessor` field, without its ID.
pub async fn lookup_accessor(active: &Active, req: &BackendRequest) -> Result<Response> {
    let accessor = named_accessor(req)?;
    let id = token_for_accessor(active, &accessor).await?;
    let (entry, _) = active.tokens.lookup_hmac(&id, req.now).await?.ok_or_else(invalid_accessor)?;
    Ok(Response::data(lookup_data(&entry, "", req.now)))
}

/// `LIST accessors`: the accessors of every live token, sorted.
pub async fn accessors(active: &Active, req: &BackendRequest) -> Result<Response> {
    let now_ns = req.now.unix_timestamp_nanos();
    let mut keys = Vec::new();
    for id in active.tokens.all_ids().await? {
        if let Some((e, _)) = active.tokens.get_by_hmac(&id).await? {
            if !e.accessor.is_empty() && !e.expired_at(now_ns) {
                keys.push(e.accessor);
            }
        }
    }
    keys.sort();
    Ok(Response::keys(keys))
}
