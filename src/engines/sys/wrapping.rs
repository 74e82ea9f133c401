//! `sys/wrapping/{wrap,unwrap,lookup,rewrap}` (contract §10).

use serde_json::{json, Map, Value};

use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::core::wrapping::INVALID_WRAPPING_TOKEN;
use crate::core::{obj, Active, Core};
use crate::secret::ClientToken;

/// The wrapping token a request names (the `token` field, or else the caller's own token),
/// taken for this request alone. A token in the body is consumed here with a storage
/// precondition; a token in the header was consumed as the request's last use by the core.
/// Either way, of concurrent requests naming the same token exactly one gets it (S22).
async fn take_target(
    core: &Core,
    active: &Active,
    req: &BackendRequest,
) -> Result<crate::core::token::TokenEntry> {
    let given = fields::string_or_empty(&req.data, "token")?;
    if !given.is_empty() {
        let entry = core.wrapping_entry(active, &ClientToken::new(given), req.now).await?;
        if !active.tokens.consume(&entry.id_hmac, req.now).await? {
            return Err(Error::bad(INVALID_WRAPPING_TOKEN));
        }
        return Ok(entry);
    }
    match &req.token {
        Some(e) if e.is_wrapping => Ok((**e).clone()),
        _ => Err(Error::bad(INVALID_WRAPPING_TOKEN)),
    }
}

pub async fn unwrap(core: &Core, active: &Active, req: &BackendRequest) -> Result<Response> {
    let entry = take_target(core, active, req).await?;
    let rec = core.wrapped_record(active, &entry).await?.ok_or_else(|| Error::bad(INVALID_WRAPPING_TOKEN))?;
    // Single use: the token (and its cubbyhole) goes away now, whichever way it was presented.
    core.revoke_tree(active, &entry.id_hmac).await?;
    let mut resp = Response::empty();
    resp.raw_body = Some(rec.response.into_bytes());
    resp.status = Some(200);
    Ok(resp)
}

pub async fn lookup(core: &Core, active: &Active, req: &BackendRequest) -> Result<Response> {
    let given = fields::string_or_empty(&req.data, "token")?;
    if given.is_empty() {
        return Err(Error::bad("missing \"token\" value in input"));
    }
    let entry = core.wrapping_entry(active, &ClientToken::new(given), req.now).await?;
    let rec = core.wrapped_record(active, &entry).await?.ok_or_else(|| Error::bad(INVALID_WRAPPING_TOKEN))?;
    Ok(Response::data(obj([
        ("creation_path", json!(rec.creation_path)),
        ("creation_time", json!(rec.creation_time)),
        ("creation_ttl", json!(rec.creation_ttl)),
    ])))
}

pub async fn wrap(req: &BackendRequest) -> Result<Response> {
    if req.wrap_ttl.unwrap_or(0) == 0 {
        return Err(Error::bad("endpoint requires response wrapping to be used"));
    }
    let data: Map<String, Value> = req.data.clone();
    Ok(Response::data(data))
}

pub async fn rewrap(core: &Core, active: &Active, req: &BackendRequest) -> Result<Response> {
    let given = fields::string_or_empty(&req.data, "token")?;
    if given.is_empty() {
        return Err(Error::Forbidden("error validating wrapping token: empty token in request body".into()));
    }
    let entry = core.wrapping_entry(active, &ClientToken::new(given), req.now).await?;
    // Rewrapping spends the old token: only one concurrent rewrap may succeed.
    if !active.tokens.consume(&entry.id_hmac, req.now).await? {
        return Err(Error::bad(INVALID_WRAPPING_TOKEN));
    }
    let rec = core.wrapped_record(active, &entry).await?.ok_or_else(|| Error::bad(INVALID_WRAPPING_TOKEN))?;
    let resp = core
        .store_wrapped(active, rec.response, rec.creation_ttl, &rec.creation_path, String::new(), req.now)
        .await?;
    core.revoke_tree(active, &entry.id_hmac).await?;
    Ok(resp)
}
