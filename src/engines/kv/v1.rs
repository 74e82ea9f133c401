//! KV version 1: a plain JSON object per path, no versions.
//!
//! Stored value: `{"v":1,"data":{...}}` (format version 1). The handler works on any view, so
//! cubbyhole is this engine over each token's own subtree (see [`handle_in`]).

use async_trait::async_trait;
use serde_json::{Map, Value};

use coffer_storage::View;

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

/// What a kv v1 tree does with a `ttl` field: the kv engine reports it as the read's lease (and
/// refuses a write whose `ttl` does not parse); cubbyhole keeps it as plain data and reports no
/// lease, as Vault's does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlField {
    /// Plain data: no lease on reads, no check on writes (cubbyhole).
    Data,
    /// The lease of reads, checked on writes (the kv engine).
    Lease,
}

#[async_trait]
impl Backend for KvV1 {
    async fn exists(&self, req: &BackendRequest) -> Result<Option<bool>> {
        exists_in(&req.view, req).await
    }

    async fn handle(&self, req: &BackendRequest) -> Result<Response> {
        handle_in(&req.view, req, TtlField::Lease).await
    }
}

/// The existence check of a kv v1 tree stored in `view` (the mount's view, or a narrower one).
pub async fn exists_in(view: &View, req: &BackendRequest) -> Result<Option<bool>> {
    if req.path.is_empty() || req.path.ends_with('/') {
        return Ok(Some(false));
    }
    Ok(Some(view.get(&req.path).await?.is_some()))
}

/// Serves a kv v1 request against the tree stored in `view` (the mount's view, or a narrower
/// one such as a token's cubbyhole): list, read, write and delete of whole JSON objects.
pub async fn handle_in(view: &View, req: &BackendRequest, ttl_field: TtlField) -> Result<Response> {
    match req.operation {
        Operation::List => {
            let prefix = if req.path.is_empty() || req.path.ends_with('/') {
                req.path.clone()
            } else {
                format!("{}/", req.path)
            };
            Ok(Response::keys(view.list(&prefix).await?))
        }
        Operation::Read => {
            if req.path.is_empty() {
                return Err(Error::NotFound(None));
            }
            let Some(e) = view.get(&req.path).await? else { return Err(Error::NotFound(None)) };
            let data = decode(&e.value)?;
            let lease = match ttl_field {
                TtlField::Data => 0,
                TtlField::Lease => lease_of(req, &data),
            };
            let mut resp = Response::data(data);
            resp.lease_duration = lease;
            Ok(resp)
        }
        Operation::Create | Operation::Update => {
            if req.path.is_empty() {
                return Err(Error::bad("missing path"));
            }
            if req.data.is_empty() {
                return Err(Error::bad("missing data fields"));
            }
            if ttl_field == TtlField::Lease {
                if let Some(ttl) = req.data.get("ttl") {
                    if duration::parse_seconds(ttl).is_err() {
                        return Err(Error::bad("failed to parse ttl for entry"));
                    }
                }
            }
            view.put(&req.path, encode(&req.data)?).await?;
            Ok(Response::empty())
        }
        Operation::Delete => {
            if !req.path.is_empty() {
                view.delete(&req.path).await?;
            }
            Ok(Response::empty())
        }
        Operation::Patch => Err(Error::UnsupportedOperation),
    }
}

/// The lease a read reports: the secret's own `ttl` (or `lease`) when it parses, else the
/// mount's default lease, else Vault's 768h.
fn lease_of(req: &BackendRequest, data: &Map<String, Value>) -> u64 {
    let mount_default = req.mount.config.default_lease_ttl;
    let fallback = if mount_default > 0 { mount_default } else { DEFAULT_LEASE };
    data.get("ttl")
        .or_else(|| data.get("lease"))
        .and_then(|ttl| duration::parse_seconds(ttl).ok())
        .unwrap_or(fallback)
}
