//! `sys/tools/random[/<source>][/<bytes>]` and `sys/tools/hash[/<algorithm>]`: the same helpers
//! transit serves (vaultrs uses the sys paths).

use crate::core::error::{Error, Result};
use crate::core::request::{BackendRequest, Response};
use crate::engines::transit::tools;
use crate::policy::Operation;

/// Handles a `tools/...` path (relative to `sys/`, without the `tools/` prefix).
pub fn handle(ctx: &BackendRequest, rest: &str) -> Result<Response> {
    if !matches!(ctx.operation, Operation::Create | Operation::Update) {
        return Err(Error::UnsupportedOperation);
    }
    let rest = rest.trim_end_matches('/');
    if let Some(tail) = rest.strip_prefix("random") {
        if tail.is_empty() || tail.starts_with('/') {
            let (source, bytes) = tools::random_url_parts(tail);
            return tools::random(&ctx.data, source, bytes);
        }
    }
    if let Some(tail) = rest.strip_prefix("hash") {
        match tail.strip_prefix('/') {
            None if tail.is_empty() => return tools::hash(&ctx.data, None),
            Some(alg) if !alg.contains('/') => return tools::hash(&ctx.data, Some(alg)),
            _ => {}
        }
    }
    Err(Error::UnsupportedPath)
}
