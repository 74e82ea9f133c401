//! Cubbyhole: per-token private storage. It is the kv v1 engine over the caller's own subtree:
//! each token sees only `<its id hmac>/` of the mount's view (a request without a token is
//! refused before any storage access), and the core deletes that subtree when the token is
//! revoked. Unlike the kv engine, a `ttl` field is plain data here (no lease), as in Vault.

use async_trait::async_trait;

use coffer_storage::View;

use crate::core::backend::Backend;
use crate::core::error::{Error, Result};
use crate::core::request::{BackendRequest, Response};
use crate::engines::kv::v1::{self, TtlField};

/// The cubbyhole backend.
pub struct Cubbyhole;

/// The caller's cubbyhole: the mount's view narrowed to the token's id HMAC.
fn token_view(req: &BackendRequest) -> Result<View> {
    let token = req.token.as_ref().ok_or(Error::PermissionDenied)?;
    Ok(req.view.sub(&format!("{}/", token.id_hmac)))
}

#[async_trait]
impl Backend for Cubbyhole {
    async fn exists(&self, req: &BackendRequest) -> Result<Option<bool>> {
        if req.path.is_empty() || req.path.ends_with('/') {
            return Ok(Some(false));
        }
        v1::exists_in(&token_view(req)?, req).await
    }

    async fn handle(&self, req: &BackendRequest) -> Result<Response> {
        v1::handle_in(&token_view(req)?, req, TtlField::Data).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::core::error::Error;
    use crate::core::quorum::fixtures::{self, Node};
    use crate::core::request::{Request, Response};
    use crate::policy::Operation;
    use crate::secret::ClientToken;

    async fn call(node: &Node, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        let mut req = Request::new(op, path);
        req.token = Some(ClientToken::new(node.root_token.clone()));
        req.data = data.as_object().cloned().unwrap_or_default();
        node.core.handle(req).await
    }

    #[tokio::test]
    async fn cubbyhole_keeps_ttl_as_data_where_kv_v1_makes_it_a_lease() {
        let node = fixtures::shamir(1, 1).await;
        call(&node, Operation::Update, "sys/mounts/kv", json!({"type": "kv"})).await.unwrap();
        // kv v1 refuses a ttl it cannot parse and reports a parsed one as the lease.
        let bad = call(&node, Operation::Update, "kv/a", json!({"ttl": "soon"})).await;
        assert!(matches!(bad, Err(Error::BadRequest(m)) if m == "failed to parse ttl for entry"));
        call(&node, Operation::Update, "kv/a", json!({"ttl": "1h", "v": 1})).await.unwrap();
        assert_eq!(call(&node, Operation::Read, "kv/a", json!({})).await.unwrap().lease_duration, 3600);
        // Cubbyhole stores any ttl and reports no lease.
        call(&node, Operation::Update, "cubbyhole/a", json!({"ttl": "soon"})).await.unwrap();
        call(&node, Operation::Update, "cubbyhole/b", json!({"ttl": "1h"})).await.unwrap();
        for key in ["a", "b"] {
            let read = call(&node, Operation::Read, &format!("cubbyhole/{key}"), json!({})).await.unwrap();
            assert_eq!(read.lease_duration, 0);
            assert!(read.data.unwrap().contains_key("ttl"));
        }
        let listed = call(&node, Operation::List, "cubbyhole/", json!({})).await.unwrap();
        assert_eq!(listed.data.unwrap()["keys"], json!(["a", "b"]));
    }
}
