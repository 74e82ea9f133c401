//! What every KV v2 endpoint shares: the retry bound of read-modify-write loops, Vault's
//! warnings for the mount root and for paths a v2 mount does not serve, and its 404 with a full
//! envelope.

use serde_json::{Map, Value};

use super::params::Input;
use crate::core::error::Error;
use crate::core::request::{BackendRequest, Response};
use crate::policy::Operation;

/// Attempts before a heavily contended change gives up (each failed attempt means another
/// writer succeeded, so this bounds starvation, not correctness).
pub const MAX_ATTEMPTS: usize = 256;

/// Warning for operations on `data`, `metadata`, ... without a key.
pub const ROOT_WARNING: &str = "Non-listing operations on the root of a K/V v2 mount are not supported.";

/// Vault's warning for paths a v2 mount does not serve, naming the CLI verb.
pub fn invalid_path_warning(op: Operation) -> String {
    let verb = match op {
        Operation::Create | Operation::Update => "put",
        Operation::Delete => "delete",
        Operation::List => "list",
        Operation::Patch => "patch",
        Operation::Read => "get",
    };
    format!(
        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv {verb}' for this operation."
    )
}

/// A 404 whose body is a full envelope (Vault's `RespondWithStatusCode`), not an error list.
pub fn raw_404(req: &BackendRequest, data: Option<Map<String, Value>>, warning: Option<String>) -> Error {
    let mut r =
        Response { data, status: Some(404), mount_type: req.mount.kind.clone(), ..Response::default() };
    r.warnings.extend(warning);
    Error::Raw(Box::new(r))
}

/// The error of a change that lost [`MAX_ATTEMPTS`] races in a row.
pub fn too_busy() -> Error {
    Error::Unavailable("too many concurrent changes to this key, please retry".into())
}

/// `resp` with the warning about ignored request fields, if any.
pub fn with_warning(mut resp: Response, input: &Input<'_>) -> Response {
    resp.warnings.extend(input.ignored_warning());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_path_names_the_cli_verb() {
        assert!(invalid_path_warning(Operation::Update).ends_with("use 'vault kv put' for this operation."));
        assert!(invalid_path_warning(Operation::Read).contains("'vault kv get'"));
    }
}
