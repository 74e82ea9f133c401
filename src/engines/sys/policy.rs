//! Policy endpoints: `sys/policies/acl[/<name>]`, the legacy `sys/policy[/<name>]`, and
//! `sys/capabilities`, `sys/capabilities-self`, `sys/capabilities-accessor`.
//!
//! Deliberate differences from OpenBao 2.7.2 (the contract, `vault-api.md` §4.6, decides):
//! `GET sys/policies/acl/<name>` returns exactly `name` and `policy` (no `version`, `modified`,
//! `cas_required`, ...), and the legacy read exactly `name` and `rules`; a write whose name had
//! to be lower-cased answers 200 with the warning `policy name was converted to <name>` (OpenBao
//! answers 204); `sys/capabilities` without a token is a 400, not OpenBao's 500. OpenBao's
//! `cas`/`cas_required`/`expiration` write parameters and `PATCH` are not implemented.

use base64::Engine;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::core::{obj, Active};
use crate::policy::Operation;
use crate::secret::ClientToken;

/// `LIST sys/policies/acl` (or `GET ?list=true`): stored names, then `root`.
pub async fn list_acl(active: &Active) -> Result<Response> {
    Ok(Response::keys(names_with_root(active).await?))
}

async fn names_with_root(active: &Active) -> Result<Vec<String>> {
    let mut names = active.policies.list().await?;
    names.push("root".to_owned());
    Ok(names)
}

/// `GET sys/policies/acl/<name>`.
pub async fn read_acl(active: &Active, name: &str) -> Result<Response> {
    let Some(p) = active.policies.get(name).await? else { return Err(Error::NotFound(None)) };
    Ok(Response::data(obj([("name", json!(p.name)), ("policy", json!(p.raw))])))
}

/// The policy text of a write: the server tries base64 first and keeps the decoded text when it
/// decodes (to UTF-8), as Vault does.
fn policy_text(raw: String) -> String {
    match base64::engine::general_purpose::STANDARD.decode(raw.as_bytes()) {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or(raw),
        Err(_) => raw,
    }
}

const MISSING_POLICY: &str = "'policy' parameter not supplied or empty";

async fn write(active: &Active, name: &str, text: String, mut warnings: Vec<String>) -> Result<Response> {
    let out = active.policies.set(name, &text).await?;
    if out.renamed {
        warnings.push(format!("policy name was converted to {}", out.name));
    }
    let mut resp = Response::empty();
    resp.warnings = warnings;
    Ok(resp)
}

/// `PUT|POST sys/policies/acl/<name>`.
pub async fn write_acl(active: &Active, name: &str, data: &Map<String, Value>) -> Result<Response> {
    let text = fields::string_or_empty(data, "policy")?;
    if text.is_empty() {
        return Err(Error::bad(MISSING_POLICY));
    }
    write(active, name, policy_text(text), Vec::new()).await
}

/// `DELETE sys/policies/acl/<name>` and `sys/policy/<name>`.
pub async fn delete(active: &Active, name: &str) -> Result<Response> {
    active.policies.delete(name).await?;
    Ok(Response::empty())
}

/// `GET|LIST sys/policy` (legacy): `keys` and `policies`, also at the top level.
pub async fn list_legacy(active: &Active) -> Result<Response> {
    let names = names_with_root(active).await?;
    Ok(Response::data(obj([("keys", json!(names)), ("policies", json!(names))])).top_level())
}

/// `GET sys/policy/<name>` (legacy): `name` and `rules`, also at the top level.
pub async fn read_legacy(active: &Active, name: &str) -> Result<Response> {
    let Some(p) = active.policies.get(name).await? else { return Err(Error::NotFound(None)) };
    Ok(Response::data(obj([("name", json!(p.name)), ("rules", json!(p.raw))])).top_level())
}

/// `PUT|POST sys/policy/<name>` (legacy): `policy`, or the deprecated `rules`.
pub async fn write_legacy(active: &Active, name: &str, data: &Map<String, Value>) -> Result<Response> {
    let mut warnings = Vec::new();
    let mut text = fields::string_or_empty(data, "policy")?;
    if text.is_empty() {
        text = fields::string_or_empty(data, "rules")?;
        if !text.is_empty() {
            warnings.push("'rules' is deprecated, please use 'policy' instead".to_owned());
        }
    }
    if text.is_empty() {
        return Err(Error::bad(MISSING_POLICY));
    }
    write(active, name, policy_text(text), warnings).await
}

/// Vault's multierror rendering of one message (several capability errors use it).
fn one_error(msg: &str) -> Error {
    Error::bad(format!("1 error occurred:\n\t* {msg}\n\n"))
}

/// The paths of a capabilities request: `paths`, or the deprecated `path`.
fn requested_paths(data: &Map<String, Value>) -> Result<Vec<String>> {
    for key in ["paths", "path"] {
        // Explicitly empty entries are an error of their own (the comma-list decoder drops them).
        if let Some(Value::Array(items)) = data.get(key) {
            if items.iter().any(|i| i.as_str().is_some_and(|s| s.trim().is_empty())) {
                return Err(one_error("missing path"));
            }
        }
        if let Some(paths) = fields::comma_strings(data, key)?.filter(|p| !p.is_empty()) {
            return Ok(paths);
        }
    }
    Err(Error::bad("paths must be supplied"))
}

async fn capabilities_of(active: &Active, policies: &[String], paths: &[String]) -> Result<Response> {
    let acl = active.policies.acl(policies).await?;
    let mut data = Map::new();
    for p in paths {
        data.insert(p.clone(), json!(acl.capabilities(p)));
    }
    if paths.len() == 1 {
        data.insert("capabilities".into(), json!(acl.capabilities(&paths[0])));
    }
    Ok(Response::data(data).top_level())
}

/// `POST sys/capabilities-self`.
pub async fn capabilities_self(active: &Active, req: &BackendRequest) -> Result<Response> {
    let paths = requested_paths(&req.data)?;
    let Some(entry) = &req.token else { return Err(Error::NoToken) };
    capabilities_of(active, &entry.policies, &paths).await
}

/// `POST sys/capabilities` (`token`, `paths`).
pub async fn capabilities_token(
    active: &Active,
    req: &BackendRequest,
    now: OffsetDateTime,
) -> Result<Response> {
    let token = fields::string_or_empty(&req.data, "token")?;
    if token.is_empty() {
        return Err(one_error("no token found"));
    }
    let token = ClientToken::new(token);
    let paths = requested_paths(&req.data)?;
    let Some((entry, _)) = active.tokens.lookup(&token, now).await? else {
        return Err(one_error("invalid token"));
    };
    capabilities_of(active, &entry.policies, &paths).await
}

/// `POST sys/capabilities-accessor` (`accessor`, `paths`).
pub async fn capabilities_accessor(
    active: &Active,
    req: &BackendRequest,
    now: OffsetDateTime,
) -> Result<Response> {
    let accessor = fields::string_or_empty(&req.data, "accessor")?;
    if accessor.is_empty() {
        return Err(Error::bad("missing accessor"));
    }
    let paths = requested_paths(&req.data)?;
    let invalid = || one_error("invalid accessor");
    let id = active.tokens.hmac_for_accessor(&accessor).await?.ok_or_else(invalid)?;
    let (entry, _) = active.tokens.lookup_hmac(&id, now).await?.ok_or_else(invalid)?;
    capabilities_of(active, &entry.policies, &paths).await
}

/// True for the operations a capabilities endpoint answers (POST/PUT).
pub fn is_write(op: Operation) -> bool {
    matches!(op, Operation::Create | Operation::Update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn paths_come_from_paths_then_path() {
        assert_eq!(requested_paths(&data(json!({"paths": ["a", "b"]}))).unwrap(), vec!["a", "b"]);
        assert_eq!(requested_paths(&data(json!({"paths": "a, b"}))).unwrap(), vec!["a", "b"]);
        assert_eq!(requested_paths(&data(json!({"path": "a"}))).unwrap(), vec!["a"]);
        assert_eq!(requested_paths(&data(json!({"path": "a", "paths": ["x"]}))).unwrap(), vec!["x"]);
        assert_eq!(requested_paths(&data(json!({}))).unwrap_err().to_string(), "paths must be supplied");
        assert_eq!(
            requested_paths(&data(json!({"paths": []}))).unwrap_err().to_string(),
            "paths must be supplied"
        );
        assert_eq!(
            requested_paths(&data(json!({"paths": [""]}))).unwrap_err().to_string(),
            "1 error occurred:\n\t* missing path\n\n"
        );
    }

    #[test]
    fn base64_policy_text_is_decoded() {
        let text = "path \"a\" { capabilities = [\"read\"] }";
        let b64 = base64::engine::general_purpose::STANDARD.encode(text);
        assert_eq!(policy_text(b64), text);
        assert_eq!(policy_text(text.to_owned()), text);
        // Valid base64 that is not UTF-8 is kept as given.
        assert_eq!(policy_text("////".to_owned()), "////");
    }
}

#[cfg(test)]
mod enforcement;
