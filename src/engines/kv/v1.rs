//! KV version 1: a plain JSON object per path, no versions.
//!
//! Stored value: `{"v":1,"data":{...}}` (format version 1).

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::core::backend::Backend;
use crate::core::error::{Error, Result};
use crate::core::request::{BackendRequest, Response};
use crate::policy::Operation;
use crate::util::duration;

const FORMAT: u64 = 1;

/// Default lease shown on reads when the mount has none (Vault's 768h).
pub const DEFAULT_LEASE: u64 = 768 * 3600;

/// The KV v1 backend (stateless; data lives in the mount's view).
pub struct KvV1;

/// Encodes a secret for storage.
pub fn encode(data: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut m = Map::new();
    m.insert("v".into(), Value::from(FORMAT));
    m.insert("data".into(), Value::Object(data.clone()));
    Ok(serde_json::to_vec(&Value::Object(m))?)
}

/// Decodes a stored secret.
pub fn decode(raw: &[u8]) -> Result<Map<String, Value>> {
    let v: Value =
        serde_json::from_slice(raw).map_err(|e| Error::internal(format!("corrupt kv record: {e}")))?;
    match (v.get("v").and_then(Value::as_u64), v.get("data")) {
        (Some(FORMAT), Some(Value::Object(m))) => Ok(m.clone()),
        _ => Err(Error::internal("unsupported kv record format")),
    }
}

#[async_trait]
impl Backend for KvV1 {
    async fn exists(&self, ctx: &BackendRequest) -> Result<Option<bool>> {
        if ctx.path.is_empty() || ctx.path.ends_with('/') {
            return Ok(Some(false));
        }
        Ok(Some(ctx.view.get(&ctx.path).await?.is_some()))
    }

    async fn handle(&self, ctx: &BackendRequest) -> Result<Response> {
        match ctx.operation {
            Operation::List => {
                let prefix = if ctx.path.is_empty() || ctx.path.ends_with('/') {
                    ctx.path.clone()
                } else {
                    format!("{}/", ctx.path)
                };
                Ok(Response::keys(ctx.view.list(&prefix).await?))
            }
            Operation::Read => {
                if ctx.path.is_empty() {
                    return Err(Error::NotFound(None));
                }
                let Some(e) = ctx.view.get(&ctx.path).await? else { return Err(Error::NotFound(None)) };
                let data = decode(&e.value)?;
                let mut lease = if ctx.mount.config.default_lease_ttl > 0 {
                    ctx.mount.config.default_lease_ttl
                } else {
                    DEFAULT_LEASE
                };
                if let Some(ttl) = data.get("ttl").or_else(|| data.get("lease")) {
                    if let Ok(secs) = duration::parse_seconds(ttl) {
                        lease = secs;
                    }
                }
                let mut resp = Response::data(data);
                resp.lease_duration = lease;
                Ok(resp)
            }
            Operation::Create | Operation::Update => {
                if ctx.path.is_empty() {
                    return Err(Error::bad("missing path"));
                }
                if ctx.data.is_empty() {
                    return Err(Error::bad("missing data fields"));
                }
                if let Some(ttl) = ctx.data.get("ttl") {
                    if duration::parse_seconds(ttl).is_err() {
                        return Err(Error::bad("failed to parse ttl for entry"));
                    }
                }
                ctx.view.put(&ctx.path, encode(&ctx.data)?).await?;
                Ok(Response::empty())
            }
            Operation::Delete => {
                if !ctx.path.is_empty() {
                    ctx.view.delete(&ctx.path).await?;
                }
                Ok(Response::empty())
            }
            Operation::Patch => Err(Error::UnsupportedOperation),
        }
    }
}
