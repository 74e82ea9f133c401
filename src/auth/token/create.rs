//! `auth/token/create`, `create-orphan` and `create/<role>`: minting a child token.
//!
//! Guarantees (S19): only a root token creates a root token, whichever path computed the policy
//! set; a child's policies are a subset of its parent's unless the caller has `sudo` or a role
//! allows them; a child never escapes its parent's `bound_cidrs`; batch and limited-use parents
//! cannot create tokens; `response-wrapping` is never assignable. Error texts are Vault's.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::caller_has_sudo;
use super::render::auth_block;
use super::roles::{self, TokenRole};
use super::ttl::calculate_ttl;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::core::token::store::NewToken;
use crate::core::token::{sanitize_policies, TokenEntry, TokenType};
use crate::core::{Active, Core};
use crate::secret::ClientToken;

/// Which create endpoint was called.
pub enum CreateKind<'a> {
    /// `create`: a child of the caller (an orphan with `no_parent` and sudo).
    Normal,
    /// `create-orphan`: no parent, policies still bounded by the caller's.
    Orphan,
    /// `create/<role>`: the role's settings and allowed policies apply.
    Role(&'a str),
}

/// Creates a token as a child (or orphan) of the caller's token.
pub async fn create(
    core: &Core,
    active: &Active,
    req: &BackendRequest,
    kind: CreateKind<'_>,
) -> Result<Response> {
    let parent = req.token.as_ref().ok_or(Error::NoToken)?;
    if parent.token_type == TokenType::Batch {
        return Err(Error::bad("batch tokens cannot create more tokens"));
    }
    if parent.num_uses > 0 {
        return Err(Error::bad("restricted use token cannot generate child tokens"));
    }
    let data = &req.data;
    let is_sudo = caller_has_sudo(active, parent, &format!("auth/token/{}", req.path), data).await?;
    let role = match kind {
        CreateKind::Role(name) => {
            Some(roles::read(active, name).await?.ok_or_else(|| Error::bad(format!("unknown role {name}")))?)
        }
        _ => None,
    };
    let token_type = token_type(&fields::string_or_empty(data, "type")?, role.as_ref())?;
    let num_uses = fields::int_or(data, "num_uses", 0)?;
    if num_uses < 0 {
        return Err(Error::bad("number of uses cannot be negative"));
    }
    let mut num_uses = num_uses as u64;
    let ttl_label = fields::string(data, "ttl")?.or(fields::string(data, "lease")?).unwrap_or_default();
    let ttl = fields::duration_secs(data, "ttl")?.or(fields::duration_secs(data, "lease")?).unwrap_or(0);
    let mut explicit_max_ttl = fields::duration_secs(data, "explicit_max_ttl")?.unwrap_or(0);
    let mut period = fields::duration_secs(data, "period")?.unwrap_or(0);
    if token_type == TokenType::Batch {
        if period > 0 {
            return Err(Error::bad("batch tokens cannot have \"period\" set"));
        }
        if num_uses > 0 {
            return Err(Error::bad("batch tokens cannot have \"num_uses\" set"));
        }
        if explicit_max_ttl > 0 {
            return Err(Error::bad("batch tokens cannot have \"explicit_max_ttl\" set"));
        }
    }
    let custom_id = custom_id(data, is_sudo)?;
    let no_parent = fields::boolean_or(data, "no_parent", false)?;
    let orphan = match kind {
        CreateKind::Orphan => true,
        CreateKind::Role(_) => role.as_ref().map(|r| r.orphan).unwrap_or(false),
        CreateKind::Normal => {
            if no_parent && !is_sudo {
                return Err(Error::bad("root or sudo privileges required to create orphan token"));
            }
            no_parent
        }
    };
    let mut no_default = fields::boolean_or(data, "no_default_policy", false)?;
    let requested: Option<Vec<String>> = fields::comma_strings(data, "policies")?;
    let mut renewable = fields::boolean_or(data, "renewable", true)?;
    let mut bound_cidrs = Vec::new();
    let mut path = format!("auth/token/{}", req.path.trim_end_matches('/'));
    let policies = if let Some(role) = &role {
        no_default = no_default || role.token_no_default_policy;
        let policies = role_policies(role, parent, requested.as_deref(), no_default, is_sudo)?;
        if role.token_period > 0 {
            period = role.token_period;
        }
        if role.token_explicit_max_ttl > 0
            && (explicit_max_ttl == 0 || role.token_explicit_max_ttl < explicit_max_ttl)
        {
            explicit_max_ttl = role.token_explicit_max_ttl;
        }
        renewable = renewable && role.renewable;
        bound_cidrs = role.token_bound_cidrs.clone();
        if num_uses == 0 {
            num_uses = role.token_num_uses;
        }
        if !role.path_suffix.is_empty() {
            path = format!("{path}/{}", role.path_suffix);
        }
        policies
    } else {
        let policies = plain_policies(parent, requested.as_deref(), no_default, is_sudo)?;
        if period > 0 && !is_sudo {
            return Err(Error::bad("root or sudo privileges required to create periodic token"));
        }
        policies
    };
    // Only a root token may create a root token, whatever path computed the policy set
    // (plain, orphan, role with `allowed_policies`/`_glob`, batch, periodic): checked once,
    // on the final set (S19).
    if policies.iter().any(|p| p == "root") && !parent.is_root() {
        return Err(Error::bad("root tokens may not be created without parent token being root"));
    }
    // A child never escapes its parent's network binding (Vault 1.0.2 regression class).
    if bound_cidrs.is_empty() {
        bound_cidrs = parent.bound_cidrs.clone();
    }
    if policies.iter().any(|p| p == "response-wrapping") {
        return Err(Error::bad("cannot assign policy \"response-wrapping\""));
    }
    if token_type == TokenType::Batch {
        if policies.iter().any(|p| p == "root") {
            return Err(Error::bad("batch tokens cannot be root tokens"));
        }
        renewable = false;
    }
    let meta = fields::kv_pairs(data, "meta")?;
    let sys_max = req.mount.config.max_lease_ttl_or(core.config.max_lease_ttl);
    let sys_default = req.mount.config.default_lease_ttl_or(core.config.default_lease_ttl);
    let is_root_policy = policies.iter().any(|p| p == "root");
    let mut warnings = Vec::new();
    let ttl = if ttl == 0 && period == 0 && explicit_max_ttl == 0 && is_root_policy {
        0
    } else {
        let default = if is_root_policy && explicit_max_ttl > 0 { explicit_max_ttl } else { sys_default };
        let (t, w) = calculate_ttl(ttl, default, period, sys_max, explicit_max_ttl, &ttl_label);
        warnings.extend(w);
        t
    };
    if ttl == 0 {
        renewable = false;
    }
    let spec = NewToken {
        policies: policies.clone(),
        path,
        meta,
        display_name: display_name(&fields::string_or_empty(data, "display_name")?),
        num_uses,
        ttl,
        explicit_max_ttl,
        period,
        parent: if orphan { None } else { Some(parent.id_hmac.clone()) },
        token_type,
        bound_cidrs,
        role: role.as_ref().map(|r| r.name.clone()),
        renewable,
        internal: BTreeMap::new(),
        custom_id,
        is_wrapping: false,
    };
    for p in &policies {
        if p != "root" && p != "default" && !active.policies.exists(p).await? {
            warnings.push(format!("Policy \"{p}\" does not exist"));
        }
    }
    let (token, entry) = active.tokens.create(spec, req.now).await?;
    let mut resp = Response::empty();
    resp.auth = Some(auth_block(&entry, token.expose(), ttl));
    resp.warnings = warnings;
    Ok(resp)
}

/// The token type asked for (`type`), else the role's default, else service.
fn token_type(asked: &str, role: Option<&TokenRole>) -> Result<TokenType> {
    match asked {
        "" => match role.map(|r| r.token_type.as_str()) {
            Some("batch" | "default-batch") => Ok(TokenType::Batch),
            _ => Ok(TokenType::Service),
        },
        "service" => Ok(TokenType::Service),
        "batch" => Ok(TokenType::Batch),
        _ => Err(Error::bad("invalid 'token_type' value")),
    }
}

/// A caller-chosen token ID (`id`): sudo only, and never shaped like a generated token.
fn custom_id(data: &Map<String, Value>, is_sudo: bool) -> Result<Option<ClientToken>> {
    let custom_id = fields::string(data, "id")?.filter(|s| !s.is_empty()).map(ClientToken::new);
    if let Some(id) = custom_id.as_ref().map(ClientToken::expose) {
        if !is_sudo {
            return Err(Error::bad("root or sudo privileges required to specify token id"));
        }
        if id.starts_with("hvs.") {
            return Err(Error::bad("custom token ID cannot have the 'hvs.' prefix"));
        }
        if id.starts_with("s.") {
            return Err(Error::bad("custom token ID cannot have the 's.' prefix"));
        }
        if id.contains('.') {
            return Err(Error::bad("custom token ID cannot have a '.' in the value"));
        }
    }
    Ok(custom_id)
}

/// The policies of a token created through `role`: the requested ones if the role allows them
/// (by name or glob), else the role's allowed set; with no allowed set, a subset of the
/// parent's. Never one the role disallows.
fn role_policies(
    role: &TokenRole,
    parent: &TokenEntry,
    requested: Option<&[String]>,
    no_default: bool,
    is_sudo: bool,
) -> Result<Vec<String>> {
    let asked = sanitize_policies(requested.unwrap_or_default(), !no_default);
    let policies = if !role.allowed_policies.is_empty() || !role.allowed_policies_glob.is_empty() {
        let allowed = sanitize_policies(&role.allowed_policies, !no_default);
        if requested.is_none() {
            allowed
        } else {
            let ok = asked.iter().all(|p| allowed.contains(p) || glob_any(&role.allowed_policies_glob, p));
            if !ok {
                return Err(Error::bad(format!(
                    "token policies ({}) must be subset of the role's allowed policies ({}) or glob policies ({})",
                    go_list(&asked),
                    go_list(&allowed),
                    go_list(&role.allowed_policies_glob)
                )));
            }
            asked
        }
    } else {
        let base = if requested.is_some() { asked } else { sanitize_policies(&parent.policies, !no_default) };
        check_subset_of_parent(parent, &base, is_sudo)?;
        base
    };
    if let Some(bad) = policies
        .iter()
        .find(|p| role.disallowed_policies.contains(p) || glob_any(&role.disallowed_policies_glob, p))
    {
        return Err(Error::bad(format!("token policy {bad} is disallowed by this role")));
    }
    Ok(policies)
}

/// The policies of a token created without a role: the requested ones, else the parent's
/// (without `default` when `no_default_policy`); a subset of the parent's unless sudo.
fn plain_policies(
    parent: &TokenEntry,
    requested: Option<&[String]>,
    no_default: bool,
    is_sudo: bool,
) -> Result<Vec<String>> {
    let base = match requested {
        Some(p) => sanitize_policies(p, !no_default),
        None => {
            let mut p = parent.policies.clone();
            if no_default {
                p.retain(|x| x != "default");
            }
            sanitize_policies(&p, false)
        }
    };
    check_subset_of_parent(parent, &base, is_sudo)?;
    Ok(base)
}

/// A non-root, non-sudo parent may only hand out its own policies (and `default`).
fn check_subset_of_parent(parent: &TokenEntry, policies: &[String], is_sudo: bool) -> Result<()> {
    if !parent.is_root()
        && !is_sudo
        && !policies.iter().all(|p| p == "default" || parent.policies.contains(p))
    {
        return Err(Error::bad("child policies must be subset of parent"));
    }
    Ok(())
}

/// Vault's display-name rule: `token-<name>` with runs of characters outside `[A-Za-z0-9-]`
/// replaced by `-` and a trailing `-` removed; `token` stays `token`.
pub fn display_name(given: &str) -> String {
    if given.is_empty() || given == "token" {
        return "token".into();
    }
    let full = format!("token-{given}");
    let mut out = String::with_capacity(full.len());
    let mut in_run = false;
    for c in full.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// True if `p` matches one of `globs` (a trailing `*` matches any suffix).
fn glob_any(globs: &[String], p: &str) -> bool {
    globs.iter().any(|g| match g.strip_suffix('*') {
        Some(prefix) => p.starts_with(prefix),
        None => g == p,
    })
}

/// Go's `%q` rendering of a string slice: `["a" "b"]`.
fn go_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(display_name("My App!"), "token-My-App");
        assert_eq!(display_name("token"), "token");
        assert_eq!(display_name(""), "token");
        assert_eq!(display_name("a b  c"), "token-a-b-c");
    }
}
