//! Token roles (`auth/token/roles/<name>`): stored settings that `create/<role>` applies.
//! Role names are case-insensitive (stored lower-case). A role record is versioned JSON in the
//! token store's view under `roles/<name>`; definitions are last-writer-wins, as in Vault.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::core::Active;
use crate::policy::Operation;

/// Format version of stored token roles.
const ROLE_VERSION: u8 = 1;

/// A token role (`auth/token/roles/<name>`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TokenRole {
    pub v: u8,
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    #[serde(default)]
    pub allowed_policies_glob: Vec<String>,
    #[serde(default)]
    pub disallowed_policies_glob: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    pub allowed_entity_aliases: Option<Vec<String>>,
    pub token_period: u64,
    pub token_explicit_max_ttl: u64,
    pub token_no_default_policy: bool,
    pub token_type: String,
    #[serde(default)]
    pub token_bound_cidrs: Vec<ipnet::IpNet>,
    #[serde(default)]
    pub token_ttl: u64,
    #[serde(default)]
    pub token_max_ttl: u64,
    #[serde(default)]
    pub token_num_uses: u64,
}

fn key(name: &str) -> String {
    format!("roles/{}", name.to_lowercase())
}

/// `auth/token/roles/<name>`: read, write or delete one role.
pub async fn handle(active: &Active, req: &BackendRequest, name: &str) -> Result<Response> {
    match req.operation {
        Operation::Read => match read(active, name).await? {
            Some(role) => Ok(Response::data(role_data(&role))),
            None => Err(Error::NotFound(None)),
        },
        Operation::Create | Operation::Update => write(active, req, name).await,
        Operation::Delete => {
            active.tokens.view().delete(&key(name)).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// `LIST auth/token/roles`.
pub async fn list(active: &Active) -> Result<Response> {
    Ok(Response::keys(active.tokens.view().list("roles/").await?))
}

/// Reads a role (any case of its name).
pub async fn read(active: &Active, name: &str) -> Result<Option<TokenRole>> {
    let Some(e) = active.tokens.view().get(&key(name)).await? else { return Ok(None) };
    let role: TokenRole = serde_json::from_slice(&e.value)
        .map_err(|err| Error::internal(format!("corrupt token role: {err}")))?;
    if role.v != ROLE_VERSION {
        return Err(Error::internal(format!("unsupported token role version {}", role.v)));
    }
    Ok(Some(role))
}

/// The `data` of a role read.
fn role_data(role: &TokenRole) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("allowed_entity_aliases".into(), json!(role.allowed_entity_aliases));
    m.insert("allowed_policies".into(), json!(role.allowed_policies));
    m.insert("allowed_policies_glob".into(), json!(role.allowed_policies_glob));
    m.insert("disallowed_policies".into(), json!(role.disallowed_policies));
    m.insert("disallowed_policies_glob".into(), json!(role.disallowed_policies_glob));
    m.insert("explicit_max_ttl".into(), json!(role.token_explicit_max_ttl));
    m.insert("name".into(), json!(role.name));
    m.insert("orphan".into(), json!(role.orphan));
    m.insert("path_suffix".into(), json!(role.path_suffix));
    m.insert("period".into(), json!(role.token_period));
    m.insert("renewable".into(), json!(role.renewable));
    m.insert("token_explicit_max_ttl".into(), json!(role.token_explicit_max_ttl));
    m.insert("token_no_default_policy".into(), json!(role.token_no_default_policy));
    m.insert("token_period".into(), json!(role.token_period));
    m.insert("token_type".into(), json!(role.token_type));
    if !role.token_bound_cidrs.is_empty() {
        m.insert(
            "token_bound_cidrs".into(),
            json!(role.token_bound_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
        );
    }
    m
}

/// Creates or updates a role from the request fields (absent fields keep their values).
async fn write(active: &Active, req: &BackendRequest, name: &str) -> Result<Response> {
    let data = &req.data;
    let name = name.to_lowercase();
    let mut role = read(active, &name).await?.unwrap_or(TokenRole {
        v: ROLE_VERSION,
        name: name.clone(),
        renewable: true,
        token_type: "default-service".into(),
        ..TokenRole::default()
    });
    let policies = |k: &str| -> Result<Option<Vec<String>>> {
        Ok(fields::comma_strings(data, k)?.map(|v| {
            let mut v: Vec<String> =
                v.iter().map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect();
            v.sort();
            v.dedup();
            v
        }))
    };
    if let Some(v) = policies("allowed_policies")? {
        role.allowed_policies = v;
    }
    if let Some(v) = policies("disallowed_policies")? {
        role.disallowed_policies = v;
    }
    if let Some(v) = policies("allowed_policies_glob")? {
        role.allowed_policies_glob = v;
    }
    if let Some(v) = policies("disallowed_policies_glob")? {
        role.disallowed_policies_glob = v;
    }
    if let Some(v) = fields::boolean(data, "orphan")? {
        role.orphan = v;
    }
    if let Some(v) = fields::boolean(data, "renewable")? {
        role.renewable = v;
    }
    if let Some(v) = fields::string(data, "path_suffix")? {
        if v.contains("..") {
            return Err(Error::bad("error validating path_suffix: path_suffix cannot contain '..'"));
        }
        role.path_suffix = v;
    }
    if let Some(v) = fields::comma_strings(data, "allowed_entity_aliases")? {
        role.allowed_entity_aliases = Some(v);
    }
    if let Some(v) = fields::duration_secs(data, "token_period")?.or(fields::duration_secs(data, "period")?) {
        role.token_period = v;
    }
    if let Some(v) = fields::duration_secs(data, "token_explicit_max_ttl")?
        .or(fields::duration_secs(data, "explicit_max_ttl")?)
    {
        role.token_explicit_max_ttl = v;
    }
    if let Some(v) = fields::boolean(data, "token_no_default_policy")? {
        role.token_no_default_policy = v;
    }
    if let Some(v) =
        fields::comma_strings(data, "token_bound_cidrs")?.or(fields::comma_strings(data, "bound_cidrs")?)
    {
        let mut cidrs = Vec::new();
        for c in v {
            cidrs.push(parse_cidr(&c)?);
        }
        role.token_bound_cidrs = cidrs;
    }
    let mut warnings = Vec::new();
    if let Some(t) = fields::string(data, "token_type")? {
        role.token_type = match t.as_str() {
            "" | "default" | "default-service" => "default-service".into(),
            "default-batch" => "default-batch".into(),
            "service" => "service".into(),
            "batch" => "batch".into(),
            other => return Err(Error::bad(format!("invalid 'token_type' value \"{other}\""))),
        };
    }
    if matches!(role.token_type.as_str(), "batch" | "default-batch") {
        if !role.orphan {
            return Err(Error::bad(
                "'token_type' cannot be 'batch' when role is set to generate non-orphan tokens",
            ));
        }
        if role.token_period > 0 {
            return Err(Error::bad(
                "'token_type' cannot be 'batch' when role is set to generate periodic tokens",
            ));
        }
        if role.token_explicit_max_ttl > 0 {
            warnings.push("explicit max TTL is not supported on batch tokens and will be ignored".to_owned());
        }
    }
    // Last writer wins for role definitions, as in Vault.
    active.tokens.view().put(&key(&name), serde_json::to_vec(&role)?).await?;
    let mut resp = Response::empty();
    resp.warnings = warnings;
    Ok(resp)
}

/// Parses an address or CIDR (`10.0.0.1` means `/32`).
fn parse_cidr(s: &str) -> Result<ipnet::IpNet> {
    crate::util::net::parse_addr_or_block(s)
        .ok_or_else(|| Error::bad(format!("invalid CIDR block or IP address {:?}", s.trim())))
}
