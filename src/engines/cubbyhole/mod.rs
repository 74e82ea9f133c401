//! Cubbyhole: per-token private storage. Each token sees only `<its id hmac>/` of the mount's
//! view; the core deletes that subtree when the token is revoked.

use async_trait::async_trait;

use crate::core::backend::Backend;
use crate::core::error::{Error, Result};
use crate::core::request::{BackendRequest, Response};
use crate::engines::kv::v1::{decode, encode};
use crate::policy::Operation;

/// The cubbyhole backend.
pub struct Cubbyhole;

fn token_view(ctx: &BackendRequest) -> Result<coffer_storage::View> {
    let token = ctx.token.as_ref().ok_or(Error::PermissionDenied)?;
    Ok(ctx.view.sub(&format!("{}/", token.id_hmac)))
}

#[async_trait]
impl Backend for Cubbyhole {
    async fn exists(&self, ctx: &BackendRequest) -> Result<Option<bool>> {
        if ctx.path.is_empty() || ctx.path.ends_with('/') {
            return Ok(Some(false));
        }
        Ok(Some(token_view(ctx)?.get(&ctx.path).await?.is_some()))
    }

    async fn handle(&self, ctx: &BackendRequest) -> Result<Response> {
        let view = token_view(ctx)?;
        match ctx.operation {
            Operation::List => {
                let prefix = if ctx.path.is_empty() || ctx.path.ends_with('/') {
                    ctx.path.clone()
                } else {
                    format!("{}/", ctx.path)
                };
                Ok(Response::keys(view.list(&prefix).await?))
            }
            Operation::Read => {
                if ctx.path.is_empty() {
                    return Err(Error::NotFound(None));
                }
                let Some(e) = view.get(&ctx.path).await? else { return Err(Error::NotFound(None)) };
                Ok(Response::data(decode(&e.value)?))
            }
            Operation::Create | Operation::Update => {
                if ctx.path.is_empty() {
                    return Err(Error::bad("missing path"));
                }
                if ctx.data.is_empty() {
                    return Err(Error::bad("missing data fields"));
                }
                view.put(&ctx.path, encode(&ctx.data)?).await?;
                Ok(Response::empty())
            }
            Operation::Delete => {
                if !ctx.path.is_empty() {
                    view.delete(&ctx.path).await?;
                }
                Ok(Response::empty())
            }
            Operation::Patch => Err(Error::UnsupportedOperation),
        }
    }
}
