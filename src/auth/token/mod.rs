//! `auth/token/*`: create, lookup, renew, revoke, roles, accessors, tidy (contract §3).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::core::backend::Backend;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{Auth, BackendRequest, Response};
use crate::core::token::store::NewToken;
use crate::core::token::{sanitize_policies, TokenEntry, TokenType};
use crate::core::{Active, Core};
use crate::policy::Operation;
use crate::secret::ClientToken;
use crate::util::duration::format_go_seconds;
use crate::util::timefmt::rfc3339_nano;

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

/// The token backend.
pub struct TokenBackend {
    core: Weak<Core>,
}

impl TokenBackend {
    /// Bound to its core.
    pub fn new(core: Weak<Core>) -> Self {
        Self { core }
    }

    fn core(&self) -> Result<Arc<Core>> {
        self.core.upgrade().ok_or_else(|| Error::Unavailable("server is shutting down".into()))
    }
}

/// A parsed `auth/token/` path.
#[derive(Debug, PartialEq, Eq)]
enum TokenPath<'a> {
    Accessors,
    Create,
    CreateOrphan,
    CreateRole(&'a str),
    Lookup,
    LookupAccessor,
    LookupSelf,
    Renew,
    RenewAccessor,
    RenewSelf,
    Revoke,
    RevokeAccessor,
    RevokeOrphan,
    RevokeSelf,
    Role(&'a str),
    Roles,
    Tidy,
    Unknown,
}

fn parse(path: &str) -> TokenPath<'_> {
    let p = path.trim_end_matches('/');
    match p {
        "accessors" => TokenPath::Accessors,
        "create" => TokenPath::Create,
        "create-orphan" => TokenPath::CreateOrphan,
        "lookup" => TokenPath::Lookup,
        "lookup-accessor" => TokenPath::LookupAccessor,
        "lookup-self" => TokenPath::LookupSelf,
        "renew" => TokenPath::Renew,
        "renew-accessor" => TokenPath::RenewAccessor,
        "renew-self" => TokenPath::RenewSelf,
        "revoke" => TokenPath::Revoke,
        "revoke-accessor" => TokenPath::RevokeAccessor,
        "revoke-orphan" => TokenPath::RevokeOrphan,
        "revoke-self" => TokenPath::RevokeSelf,
        "roles" => TokenPath::Roles,
        "tidy" => TokenPath::Tidy,
        _ => {
            if let Some(r) = p.strip_prefix("create/").filter(|r| !r.is_empty() && !r.contains('/')) {
                TokenPath::CreateRole(r)
            } else if let Some(r) = p.strip_prefix("roles/").filter(|r| !r.is_empty() && !r.contains('/')) {
                TokenPath::Role(r)
            } else {
                TokenPath::Unknown
            }
        }
    }
}

/// The `data` of a lookup response for `entry`; `id` is the token when known (empty for
/// accessor lookups).
pub fn lookup_data(entry: &TokenEntry, id: &str, now: OffsetDateTime) -> Map<String, Value> {
    let now_ns = now.unix_timestamp_nanos();
    let (expire_time, ttl) = match entry.expire_time_ns {
        Some(ns) => {
            let t = OffsetDateTime::from_unix_timestamp_nanos(ns).map(rfc3339_nano).ok();
            let remaining = ((ns - now_ns).max(0) / 1_000_000_000) as u64;
            (t.map(Value::from).unwrap_or(Value::Null), remaining)
        }
        None => (Value::Null, 0),
    };
    let mut m = Map::new();
    m.insert("accessor".into(), json!(entry.accessor));
    m.insert("creation_time".into(), json!(entry.creation_time));
    m.insert("creation_ttl".into(), json!(entry.ttl));
    m.insert("display_name".into(), json!(entry.display_name));
    m.insert("entity_id".into(), json!(entry.entity_id));
    m.insert("expire_time".into(), expire_time);
    m.insert("explicit_max_ttl".into(), json!(entry.explicit_max_ttl));
    m.insert("id".into(), json!(id));
    let issue =
        OffsetDateTime::from_unix_timestamp_nanos(entry.issue_time_ns).map(rfc3339_nano).unwrap_or_default();
    m.insert("issue_time".into(), json!(issue));
    m.insert("meta".into(), json!(entry.meta));
    m.insert("num_uses".into(), json!(entry.num_uses));
    m.insert("orphan".into(), json!(entry.parent.is_none()));
    m.insert("path".into(), json!(entry.path));
    m.insert("policies".into(), json!(entry.policies));
    m.insert("renewable".into(), json!(entry.renewable && entry.expire_time_ns.is_some()));
    m.insert("ttl".into(), json!(ttl));
    m.insert("type".into(), json!(entry.token_type.as_str()));
    if entry.period > 0 {
        m.insert("period".into(), json!(entry.period));
    }
    if let Some(r) = &entry.role {
        m.insert("role".into(), json!(r));
    }
    if !entry.bound_cidrs.is_empty() {
        m.insert(
            "bound_cidrs".into(),
            json!(entry.bound_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
        );
    }
    if let Some(ns) = entry.last_renewal_ns {
        m.insert("last_renewal_time".into(), json!((ns / 1_000_000_000) as i64));
        if let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(ns) {
            m.insert("last_renewal".into(), json!(rfc3339_nano(t)));
        }
    }
    m
}

/// The `auth` block for a token entry (create and renew responses).
pub fn auth_block(entry: &TokenEntry, client_token: &str, lease_duration: u64) -> Auth {
    Auth {
        client_token: client_token.to_owned(),
        accessor: entry.accessor.clone(),
        policies: entry.policies.clone(),
        token_policies: entry.policies.clone(),
        identity_policies: Vec::new(),
        metadata: entry.meta.clone(),
        lease_duration,
        renewable: entry.renewable && entry.expire_time_ns.is_some(),
        entity_id: entry.entity_id.clone(),
        token_type: entry.token_type.as_str().into(),
        orphan: entry.parent.is_none(),
        mfa_requirement: None,
        num_uses: entry.num_uses,
    }
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

/// Vault's TTL calculation with capping warnings. Returns (ttl seconds, warning).
pub fn calculate_ttl(
    requested: u64,
    default_ttl: u64,
    period: u64,
    max_ttl: u64,
    explicit_max_ttl: u64,
    requested_label: &str,
) -> (u64, Option<String>) {
    let mut max = max_ttl;
    if explicit_max_ttl > 0 && (max == 0 || explicit_max_ttl < max) {
        max = explicit_max_ttl;
    }
    if period > 0 {
        if max > 0 && period > max {
            return (
                max,
                Some(format!(
                    "period of \"{}\" exceeded the effective max_ttl of \"{}\"; period value is capped accordingly",
                    label_or(requested_label, period),
                    go_short(max)
                )),
            );
        }
        return (period, None);
    }
    let ttl = if requested > 0 { requested } else { default_ttl };
    if max > 0 && ttl > max {
        let shown = if requested > 0 { label_or(requested_label, requested) } else { go_short(ttl) };
        return (
            max,
            Some(format!("TTL of \"{shown}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly", go_short(max))),
        );
    }
    (ttl, None)
}

fn label_or(label: &str, secs: u64) -> String {
    if label.is_empty() {
        go_short(secs)
    } else {
        label.to_owned()
    }
}

/// Go's duration string without zero trailing units (`768h`, `5m`, `1h30m`), as Vault prints
/// capped TTLs.
fn go_short(secs: u64) -> String {
    let s = format_go_seconds(secs as i64);
    let s = s.strip_suffix("0s").filter(|r| !r.is_empty()).map(str::to_owned).unwrap_or(s);
    s.strip_suffix("0m").filter(|r| r.ends_with('h')).map(str::to_owned).unwrap_or(s)
}

impl TokenBackend {
    async fn create(
        &self,
        core: &Core,
        active: &Active,
        ctx: &BackendRequest,
        kind: CreateKind<'_>,
    ) -> Result<Response> {
        let parent = ctx.token.as_ref().ok_or(Error::NoToken)?;
        if parent.token_type == TokenType::Batch {
            return Err(Error::bad("batch tokens cannot create more tokens"));
        }
        if parent.num_uses > 0 {
            return Err(Error::bad("restricted use token cannot generate child tokens"));
        }
        let d = &ctx.data;
        let acl = active.policies.acl(&parent.policies).await?;
        let is_sudo =
            parent.is_root() || acl.check(Operation::Update, &format!("auth/token/{}", ctx.path), d).sudo;
        let role = match kind {
            CreateKind::Role(name) => Some(
                read_role(active, &name.to_lowercase())
                    .await?
                    .ok_or_else(|| Error::bad(format!("unknown role {name}")))?,
            ),
            _ => None,
        };
        let type_str = fields::string_or_empty(d, "type")?;
        let token_type = match type_str.as_str() {
            "" => match role.as_ref().map(|r| r.token_type.as_str()) {
                Some("batch" | "default-batch") => TokenType::Batch,
                _ => TokenType::Service,
            },
            "service" => TokenType::Service,
            "batch" => TokenType::Batch,
            _ => return Err(Error::bad("invalid 'token_type' value")),
        };
        let num_uses = fields::int_or(d, "num_uses", 0)?;
        if num_uses < 0 {
            return Err(Error::bad("number of uses cannot be negative"));
        }
        let mut num_uses = num_uses as u64;
        let ttl_label = fields::string(d, "ttl")?.or(fields::string(d, "lease")?).unwrap_or_default();
        let ttl = fields::duration_secs(d, "ttl")?.or(fields::duration_secs(d, "lease")?).unwrap_or(0);
        let mut explicit_max_ttl = fields::duration_secs(d, "explicit_max_ttl")?.unwrap_or(0);
        let mut period = fields::duration_secs(d, "period")?.unwrap_or(0);
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
        let custom_id = fields::string(d, "id")?.filter(|s| !s.is_empty()).map(ClientToken::new);
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
        let no_parent = fields::boolean_or(d, "no_parent", false)?;
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
        let mut no_default = fields::boolean_or(d, "no_default_policy", false)?;
        let requested: Option<Vec<String>> = fields::comma_strings(d, "policies")?;
        let mut renewable = fields::boolean_or(d, "renewable", true)?;
        let mut bound_cidrs = Vec::new();
        let mut path = format!("auth/token/{}", ctx.path.trim_end_matches('/'));
        let policies: Vec<String>;
        if let Some(role) = &role {
            no_default = no_default || role.token_no_default_policy;
            let req = requested.clone().unwrap_or_default();
            let req = sanitize_policies(&req, !no_default);
            if !role.allowed_policies.is_empty() || !role.allowed_policies_glob.is_empty() {
                let allowed = sanitize_policies(&role.allowed_policies, !no_default);
                if requested.is_none() {
                    policies = allowed;
                } else {
                    let ok =
                        req.iter().all(|p| allowed.contains(p) || glob_any(&role.allowed_policies_glob, p));
                    if !ok {
                        return Err(Error::bad(format!(
                            "token policies ({}) must be subset of the role's allowed policies ({}) or glob policies ({})",
                            go_list(&req),
                            go_list(&allowed),
                            go_list(&role.allowed_policies_glob)
                        )));
                    }
                    policies = req;
                }
            } else {
                let base =
                    if requested.is_some() { req } else { sanitize_policies(&parent.policies, !no_default) };
                if !parent.is_root()
                    && !is_sudo
                    && !base.iter().all(|p| p == "default" || parent.policies.contains(p))
                {
                    return Err(Error::bad("child policies must be subset of parent"));
                }
                policies = base;
            }
            if let Some(bad) = policies
                .iter()
                .find(|p| role.disallowed_policies.contains(p) || glob_any(&role.disallowed_policies_glob, p))
            {
                return Err(Error::bad(format!("token policy {bad} is disallowed by this role")));
            }
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
        } else {
            let base = match &requested {
                Some(p) => sanitize_policies(p, !no_default),
                None => {
                    let mut p = parent.policies.clone();
                    if no_default {
                        p.retain(|x| x != "default");
                    }
                    sanitize_policies(&p, false)
                }
            };
            if !parent.is_root()
                && !is_sudo
                && !base.iter().all(|p| p == "default" || parent.policies.contains(p))
            {
                return Err(Error::bad("child policies must be subset of parent"));
            }
            policies = base;
            if period > 0 && !is_sudo {
                return Err(Error::bad("root or sudo privileges required to create periodic token"));
            }
        }
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
        let meta = fields::kv_pairs(d, "meta")?;
        let sys_max = if ctx.mount.config.max_lease_ttl > 0 {
            ctx.mount.config.max_lease_ttl
        } else {
            core.config.max_lease_ttl
        };
        let sys_default = if ctx.mount.config.default_lease_ttl > 0 {
            ctx.mount.config.default_lease_ttl
        } else {
            core.config.default_lease_ttl
        };
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
            display_name: display_name(&fields::string_or_empty(d, "display_name")?),
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
        let (token, entry) = active.tokens.create(spec, ctx.now).await?;
        let mut resp = Response::empty();
        resp.auth = Some(auth_block(&entry, token.expose(), ttl));
        resp.warnings = warnings;
        Ok(resp)
    }

    async fn renew(
        &self,
        core: &Core,
        active: &Active,
        ctx: &BackendRequest,
        target: RenewTarget,
    ) -> Result<Response> {
        let increment_label = fields::string(&ctx.data, "increment")?.unwrap_or_default();
        let increment = fields::duration_secs(&ctx.data, "increment")?.unwrap_or(0);
        let (id_hmac, shown_token) = match target {
            RenewTarget::SelfToken => {
                let e = ctx.token.as_ref().ok_or(Error::NoToken)?;
                let shown = ctx.client_token.as_ref().map(|t| t.expose().to_owned()).unwrap_or_default();
                (e.id_hmac.clone(), shown)
            }
            RenewTarget::Token => {
                let t = fields::string_or_empty(&ctx.data, "token")?;
                if t.is_empty() {
                    return Err(Error::bad("missing token ID"));
                }
                (active.tokens.hmac(&t), t)
            }
            RenewTarget::Accessor => {
                let a = fields::string_or_empty(&ctx.data, "accessor")?;
                if a.is_empty() {
                    return Err(Error::bad("1 error occurred:\n\t* missing accessor\n\n"));
                }
                let id = active
                    .tokens
                    .hmac_for_accessor(&a)
                    .await?
                    .ok_or_else(|| Error::bad("1 error occurred:\n\t* invalid accessor\n\n"))?;
                (id, String::new())
            }
        };
        loop {
            let Some((mut entry, version)) = active.tokens.lookup_hmac(&id_hmac, ctx.now).await? else {
                return Err(Error::bad("token not found"));
            };
            // The limit is the issuing mount's (the auth method that created the token, e.g. a
            // tuned `auth/approle/`), then the system's: never the mount the renewal request
            // happens to arrive on (S21).
            let issuing = active.mounts.route(&entry.path);
            let mount_max = issuing.as_ref().map(|r| r.route.entry.config.max_lease_ttl).unwrap_or(0);
            let sys_max = if mount_max > 0 { mount_max } else { core.config.max_lease_ttl };
            if entry.token_type == TokenType::Batch {
                return Err(Error::bad("batch tokens cannot be renewed"));
            }
            if !entry.renewable || entry.expire_time_ns.is_none() {
                return Err(Error::bad("lease is not renewable"));
            }
            // Tokens from an auth method renew on the method's current settings (a deleted role
            // refuses renewal), as Vault's backend renew callbacks do.
            let mut method_ttl = 0;
            let mut method_max = 0;
            if entry.path.starts_with("auth/") && !entry.path.starts_with("auth/token/") {
                if let Some(routed) = &issuing {
                    if let Some(r) =
                        routed.route.backend.renew_auth(&routed.route.view, &entry.internal).await?
                    {
                        method_ttl = r.ttl;
                        method_max = r.max_ttl;
                        entry.period = r.period;
                    }
                }
            }
            let now_ns = ctx.now.unix_timestamp_nanos();
            let creation_ns = i128::from(entry.creation_time) * 1_000_000_000;
            let mut max = sys_max;
            if method_max > 0 && method_max < max {
                max = method_max;
            }
            if entry.explicit_max_ttl > 0 && entry.explicit_max_ttl < max {
                max = entry.explicit_max_ttl;
            }
            let max_valid_ns = creation_ns + i128::from(max) * 1_000_000_000;
            let remaining_max = ((max_valid_ns - now_ns) / 1_000_000_000).max(0) as u64;
            let mut warnings = Vec::new();
            let ttl = if entry.period > 0 {
                if entry.explicit_max_ttl > 0 {
                    entry.period.min(remaining_max)
                } else {
                    entry.period
                }
            } else {
                let wanted = if increment > 0 {
                    increment
                } else if method_ttl > 0 {
                    method_ttl
                } else {
                    entry.ttl
                };
                if wanted > remaining_max {
                    if remaining_max == 0 {
                        return Err(Error::bad("past the max TTL, cannot renew"));
                    }
                    let shown =
                        if increment_label.is_empty() { go_short(wanted) } else { increment_label.clone() };
                    warnings.push(format!(
                        "TTL of \"{shown}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                        go_short(max)
                    ));
                    remaining_max
                } else {
                    wanted
                }
            };
            let old_expire = entry.expire_time_ns;
            entry.expire_time_ns = Some(now_ns + i128::from(ttl) * 1_000_000_000);
            entry.last_renewal_ns = Some(now_ns);
            if active.tokens.update_with_old_expiry(&entry, version, old_expire).await? {
                let mut resp = Response::empty();
                resp.auth = Some(auth_block(&entry, &shown_token, ttl));
                resp.warnings = warnings;
                return Ok(resp);
            }
        }
    }
}

enum CreateKind<'a> {
    Normal,
    Orphan,
    Role(&'a str),
}

enum RenewTarget {
    Accessor,
    SelfToken,
    Token,
}

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

async fn read_role(active: &Active, name: &str) -> Result<Option<TokenRole>> {
    let Some(e) = active.tokens.view().get(&format!("roles/{name}")).await? else { return Ok(None) };
    let role: TokenRole = serde_json::from_slice(&e.value)
        .map_err(|err| Error::internal(format!("corrupt token role: {err}")))?;
    if role.v != ROLE_VERSION {
        return Err(Error::internal(format!("unsupported token role version {}", role.v)));
    }
    Ok(Some(role))
}

fn role_json(r: &TokenRole) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("allowed_entity_aliases".into(), json!(r.allowed_entity_aliases));
    m.insert("allowed_policies".into(), json!(r.allowed_policies));
    m.insert("allowed_policies_glob".into(), json!(r.allowed_policies_glob));
    m.insert("disallowed_policies".into(), json!(r.disallowed_policies));
    m.insert("disallowed_policies_glob".into(), json!(r.disallowed_policies_glob));
    m.insert("explicit_max_ttl".into(), json!(r.token_explicit_max_ttl));
    m.insert("name".into(), json!(r.name));
    m.insert("orphan".into(), json!(r.orphan));
    m.insert("path_suffix".into(), json!(r.path_suffix));
    m.insert("period".into(), json!(r.token_period));
    m.insert("renewable".into(), json!(r.renewable));
    m.insert("token_explicit_max_ttl".into(), json!(r.token_explicit_max_ttl));
    m.insert("token_no_default_policy".into(), json!(r.token_no_default_policy));
    m.insert("token_period".into(), json!(r.token_period));
    m.insert("token_type".into(), json!(r.token_type));
    if !r.token_bound_cidrs.is_empty() {
        m.insert(
            "token_bound_cidrs".into(),
            json!(r.token_bound_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
        );
    }
    m
}

async fn write_role(active: &Active, ctx: &BackendRequest, name: &str) -> Result<Response> {
    let d = &ctx.data;
    let name = name.to_lowercase();
    let existing = read_role(active, &name).await?;
    let mut r = existing.clone().unwrap_or(TokenRole {
        v: ROLE_VERSION,
        name: name.clone(),
        renewable: true,
        token_type: "default-service".into(),
        ..TokenRole::default()
    });
    let policies = |k: &str| -> Result<Option<Vec<String>>> {
        Ok(fields::comma_strings(d, k)?.map(|v| {
            let mut v: Vec<String> =
                v.iter().map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect();
            v.sort();
            v.dedup();
            v
        }))
    };
    if let Some(v) = policies("allowed_policies")? {
        r.allowed_policies = v;
    }
    if let Some(v) = policies("disallowed_policies")? {
        r.disallowed_policies = v;
    }
    if let Some(v) = policies("allowed_policies_glob")? {
        r.allowed_policies_glob = v;
    }
    if let Some(v) = policies("disallowed_policies_glob")? {
        r.disallowed_policies_glob = v;
    }
    if let Some(v) = fields::boolean(d, "orphan")? {
        r.orphan = v;
    }
    if let Some(v) = fields::boolean(d, "renewable")? {
        r.renewable = v;
    }
    if let Some(v) = fields::string(d, "path_suffix")? {
        if v.contains("..") {
            return Err(Error::bad("error validating path_suffix: path_suffix cannot contain '..'"));
        }
        r.path_suffix = v;
    }
    if let Some(v) = fields::comma_strings(d, "allowed_entity_aliases")? {
        r.allowed_entity_aliases = Some(v);
    }
    if let Some(v) = fields::duration_secs(d, "token_period")?.or(fields::duration_secs(d, "period")?) {
        r.token_period = v;
    }
    if let Some(v) =
        fields::duration_secs(d, "token_explicit_max_ttl")?.or(fields::duration_secs(d, "explicit_max_ttl")?)
    {
        r.token_explicit_max_ttl = v;
    }
    if let Some(v) = fields::boolean(d, "token_no_default_policy")? {
        r.token_no_default_policy = v;
    }
    if let Some(v) =
        fields::comma_strings(d, "token_bound_cidrs")?.or(fields::comma_strings(d, "bound_cidrs")?)
    {
        let mut cidrs = Vec::new();
        for c in v {
            cidrs.push(parse_cidr(&c)?);
        }
        r.token_bound_cidrs = cidrs;
    }
    let mut warnings = Vec::new();
    if let Some(t) = fields::string(d, "token_type")? {
        r.token_type = match t.as_str() {
            "" | "default" | "default-service" => "default-service".into(),
            "default-batch" => "default-batch".into(),
            "service" => "service".into(),
            "batch" => "batch".into(),
            other => return Err(Error::bad(format!("invalid 'token_type' value \"{other}\""))),
        };
    }
    if matches!(r.token_type.as_str(), "batch" | "default-batch") {
        if !r.orphan {
            return Err(Error::bad(
                "'token_type' cannot be 'batch' when role is set to generate non-orphan tokens",
            ));
        }
        if r.token_period > 0 {
            return Err(Error::bad(
                "'token_type' cannot be 'batch' when role is set to generate periodic tokens",
            ));
        }
        if r.token_explicit_max_ttl > 0 {
            warnings.push("explicit max TTL is not supported on batch tokens and will be ignored".to_owned());
        }
    }
    // Last writer wins for role definitions, as in Vault.
    active.tokens.view().put(&format!("roles/{name}"), serde_json::to_vec(&r)?).await?;
    let mut resp = Response::empty();
    resp.warnings = warnings;
    Ok(resp)
}

/// Parses an address or CIDR (`10.0.0.1` means `/32`).
pub fn parse_cidr(s: &str) -> Result<ipnet::IpNet> {
    crate::util::net::parse_addr_or_block(s)
        .ok_or_else(|| Error::bad(format!("invalid CIDR block or IP address {:?}", s.trim())))
}

#[async_trait]
impl Backend for TokenBackend {
    fn root_protected(&self, path: &str) -> bool {
        path.starts_with("revoke-orphan") || path.starts_with("accessors")
    }

    async fn exists(&self, ctx: &BackendRequest) -> Result<Option<bool>> {
        match parse(&ctx.path) {
            TokenPath::Role(name) => {
                let core = self.core()?;
                let active = core.active()?;
                Ok(Some(read_role(&active, &name.to_lowercase()).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    async fn handle(&self, ctx: &BackendRequest) -> Result<Response> {
        let core = self.core()?;
        let active = core.active()?;
        let op = ctx.operation;
        let write = matches!(op, Operation::Create | Operation::Update);
        match parse(&ctx.path) {
            TokenPath::Create if write => self.create(&core, &active, ctx, CreateKind::Normal).await,
            TokenPath::CreateOrphan if write => self.create(&core, &active, ctx, CreateKind::Orphan).await,
            TokenPath::CreateRole(r) if write => self.create(&core, &active, ctx, CreateKind::Role(r)).await,
            TokenPath::LookupSelf if matches!(op, Operation::Read) || write => {
                let entry = ctx.token.as_ref().ok_or(Error::NoToken)?;
                // Echoing the caller's own token back to its owner, as Vault does.
                let id = ctx.client_token.as_ref().map(|t| t.expose()).unwrap_or("");
                Ok(Response::data(lookup_data(entry, id, ctx.now)))
            }
            TokenPath::Lookup if matches!(op, Operation::Read) || write => {
                let t = fields::string_or_empty(&ctx.data, "token")?;
                if t.is_empty() {
                    let entry = ctx.token.as_ref().ok_or(Error::NoToken)?;
                    let id = ctx.client_token.as_ref().map(|t| t.expose()).unwrap_or("");
                    return Ok(Response::data(lookup_data(entry, id, ctx.now)));
                }
                let token = ClientToken::new(t);
                match active.tokens.lookup(&token, ctx.now).await? {
                    Some((entry, _)) => Ok(Response::data(lookup_data(&entry, token.expose(), ctx.now))),
                    None => Err(Error::Forbidden("bad token".into())),
                }
            }
            TokenPath::LookupAccessor if write || matches!(op, Operation::Read) => {
                let a = fields::string_or_empty(&ctx.data, "accessor")?;
                if a.is_empty() {
                    return Err(Error::bad("1 error occurred:\n\t* missing accessor\n\n"));
                }
                let invalid = || Error::bad("1 error occurred:\n\t* invalid accessor\n\n");
                let id = active.tokens.hmac_for_accessor(&a).await?.ok_or_else(invalid)?;
                let (entry, _) = active.tokens.lookup_hmac(&id, ctx.now).await?.ok_or_else(invalid)?;
                Ok(Response::data(lookup_data(&entry, "", ctx.now)))
            }
            TokenPath::RenewSelf if write => self.renew(&core, &active, ctx, RenewTarget::SelfToken).await,
            TokenPath::Renew if write => self.renew(&core, &active, ctx, RenewTarget::Token).await,
            TokenPath::RenewAccessor if write => self.renew(&core, &active, ctx, RenewTarget::Accessor).await,
            TokenPath::RevokeSelf if write => {
                let entry = ctx.token.as_ref().ok_or(Error::NoToken)?;
                if entry.token_type == TokenType::Batch {
                    return Err(Error::bad("batch tokens cannot be revoked"));
                }
                core.revoke_tree(&active, &entry.id_hmac).await?;
                Ok(Response::empty())
            }
            TokenPath::Revoke if write => {
                let t = fields::string_or_empty(&ctx.data, "token")?;
                if t.is_empty() {
                    return Err(Error::bad("missing token ID"));
                }
                let id = active.tokens.hmac(&t);
                if let Some((entry, _)) = active.tokens.get_by_hmac(&id).await? {
                    if entry.token_type == TokenType::Batch {
                        return Err(Error::bad("batch tokens cannot be revoked"));
                    }
                    core.revoke_tree(&active, &id).await?;
                }
                Ok(Response::empty())
            }
            TokenPath::RevokeAccessor if write => {
                let a = fields::string_or_empty(&ctx.data, "accessor")?;
                if a.is_empty() {
                    return Err(Error::bad("1 error occurred:\n\t* missing accessor\n\n"));
                }
                match active.tokens.hmac_for_accessor(&a).await? {
                    Some(id) => {
                        core.revoke_tree(&active, &id).await?;
                        Ok(Response::empty())
                    }
                    None => Ok(Response::empty().warn("No token found with this accessor")),
                }
            }
            TokenPath::RevokeOrphan if write => {
                let t = fields::string_or_empty(&ctx.data, "token")?;
                if t.is_empty() {
                    return Err(Error::bad("missing token ID"));
                }
                let caller = ctx.token.as_ref().ok_or(Error::NoToken)?;
                let acl = active.policies.acl(&caller.policies).await?;
                if !caller.is_root()
                    && !acl.check(Operation::Update, "auth/token/revoke-orphan", &ctx.data).sudo
                {
                    return Err(Error::bad("root or sudo privileges required to revoke and orphan"));
                }
                let id = active.tokens.hmac(&t);
                if let Some(entry) = active.tokens.revoke_orphan(&id).await? {
                    core.cleanup_revoked(&active, &[entry]).await;
                }
                Ok(Response::empty())
            }
            TokenPath::Accessors if matches!(op, Operation::List) => {
                let mut keys = Vec::new();
                for id in active.tokens.all_ids().await? {
                    if let Some((e, _)) = active.tokens.get_by_hmac(&id).await? {
                        if !e.accessor.is_empty() && !e.expired_at(ctx.now.unix_timestamp_nanos()) {
                            keys.push(e.accessor);
                        }
                    }
                }
                keys.sort();
                Ok(Response::keys(keys))
            }
            TokenPath::Roles if matches!(op, Operation::List) => {
                Ok(Response::keys(active.tokens.view().list("roles/").await?))
            }
            TokenPath::Role(name) => match op {
                Operation::Read => match read_role(&active, &name.to_lowercase()).await? {
                    Some(r) => Ok(Response::data(role_json(&r))),
                    None => Err(Error::NotFound(None)),
                },
                Operation::Create | Operation::Update => write_role(&active, ctx, name).await,
                Operation::Delete => {
                    active.tokens.view().delete(&format!("roles/{}", name.to_lowercase())).await?;
                    Ok(Response::empty())
                }
                _ => Err(Error::UnsupportedOperation),
            },
            TokenPath::Tidy if write => {
                let weak = self.core.clone();
                tokio::spawn(async move {
                    if let Some(core) = weak.upgrade() {
                        if let Err(e) = core.tidy_tokens_full().await {
                            tracing::warn!(error = %e, "token tidy failed");
                        }
                    }
                });
                Ok(Response::empty()
                    .warn("Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs.")
                    .with_status(202))
            }
            TokenPath::Unknown => Err(Error::UnsupportedPath),
            _ => Err(Error::UnsupportedOperation),
        }
    }
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

    #[test]
    fn ttl_capping_messages() {
        assert_eq!(
            calculate_ttl(1000 * 3600, 768 * 3600, 0, 768 * 3600, 0, "1000h"),
            (768 * 3600, Some("TTL of \"1000h\" exceeded the effective max_ttl of \"768h\"; TTL value is capped accordingly".into()))
        );
        assert_eq!(
            calculate_ttl(1800, 768 * 3600, 0, 768 * 3600, 300, "30m"),
            (300, Some("TTL of \"30m\" exceeded the effective max_ttl of \"5m\"; TTL value is capped accordingly".into()))
        );
        assert_eq!(calculate_ttl(0, 768 * 3600, 1800, 768 * 3600, 0, ""), (1800, None));
        assert_eq!(calculate_ttl(300, 768 * 3600, 0, 768 * 3600, 0, "5m"), (300, None));
    }

    #[test]
    fn paths() {
        assert_eq!(parse("create/r1"), TokenPath::CreateRole("r1"));
        assert_eq!(parse("roles/r1"), TokenPath::Role("r1"));
        assert_eq!(parse("lookup-self"), TokenPath::LookupSelf);
        assert_eq!(parse("zzz"), TokenPath::Unknown);
    }
}
