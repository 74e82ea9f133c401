//! Handlers for roles, their single-field sub-paths, role IDs and secret IDs.
//!
//! Status codes follow Vault where the contract pins them, including its quirks: secret ID
//! lookup of an unknown secret is 204, of a missing role 500; accessor lookup of an unknown
//! accessor is a 404 envelope with `data.error`; accessor destroy of an unknown accessor is 500;
//! a duplicate custom secret ID is 500. Everything else a client can cause is a 4xx.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::cidr;
use super::path::{RoleField, RoleName};
use super::role::{
    duration_field, list_or_null, parse_policies, period_too_long, RoleEntry, RoleUpdate, MAX_HMAC_INPUT,
};
use super::secret_id::{check_custom, NewSecretId, SecretId, SecretIdEntry, SECRET_ID_VERSION};
use super::store::Store;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};

fn role_missing(name: &RoleName) -> String {
    format!("role {:?} does not exist", name.given())
}

fn with_warnings(mut resp: Response, warnings: Vec<String>) -> Response {
    resp.warnings.extend(warnings);
    resp
}

/// Reads, changes and writes back a role under a precondition, retrying when another writer
/// got there first. `Ok(None)` when the role does not exist.
async fn modify_role<T>(
    store: &Store<'_>,
    name: &RoleName,
    mut change: impl FnMut(&mut RoleEntry) -> Result<T>,
) -> Result<Option<T>> {
    loop {
        let Some((cur, version)) = store.role(name.canonical()).await? else { return Ok(None) };
        let mut role = cur.clone();
        let out = change(&mut role)?;
        role.check_constraints()?;
        if store.put_role(&role, Some((&cur, version))).await? {
            return Ok(Some(out));
        }
    }
}

/// `LIST role/`.
pub async fn list_roles(store: &Store<'_>) -> Result<Response> {
    let names = store.role_names().await?;
    if names.is_empty() {
        return Err(Error::NotFound(None));
    }
    Ok(Response::keys(names))
}

/// `GET role/<name>`.
pub async fn read_role(store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let Some((role, _)) = store.role(name.canonical()).await? else { return Err(Error::NotFound(None)) };
    let mut resp = Response::data(role.read_data());
    if role.check_constraints().is_err() {
        resp = resp.warn(
            "Role does not have any constraints set on it. Updates to this role will require a constraint to be set",
        );
    }
    Ok(resp)
}

/// `POST role/<name>`: create or update.
pub async fn write_role(
    ctx: &BackendRequest,
    store: &Store<'_>,
    name: &RoleName,
    mount_max: u64,
) -> Result<Response> {
    if name.given().len() > MAX_HMAC_INPUT {
        return Err(Error::bad(format!("role_name is longer than maximum of {MAX_HMAC_INPUT} bytes")));
    }
    loop {
        let current = store.role(name.canonical()).await?;
        let create = current.is_none();
        let mut role = match &current {
            Some((r, _)) => r.clone(),
            None => RoleEntry::new(name.canonical(), uuid::Uuid::new_v4().to_string()),
        };
        let update = RoleUpdate::parse(&ctx.data)?;
        let generate_id = create && update.role_id.is_none();
        let warnings = update.apply(&mut role, create, mount_max)?;
        if generate_id {
            role.role_id = uuid::Uuid::new_v4().to_string();
        }
        if role.role_id.is_empty() {
            return Err(Error::bad("invalid role_id supplied, or failed to generate a role_id"));
        }
        role.check_constraints()?;
        if store.put_role(&role, current.as_ref().map(|(r, v)| (r, *v))).await? {
            return Ok(with_warnings(Response::empty(), warnings));
        }
    }
}

/// `DELETE role/<name>`: the role, its secret IDs and accessors, and its role ID index.
pub async fn delete_role(store: &Store<'_>, name: &RoleName) -> Result<Response> {
    if let Some((role, _)) = store.role(name.canonical()).await? {
        store.delete_role(&role).await?;
    }
    Ok(Response::empty())
}

/// `GET role/<name>/<field>`.
pub async fn read_field(store: &Store<'_>, name: &RoleName, field: RoleField) -> Result<Response> {
    let Some((r, _)) = store.role(name.canonical()).await? else { return Err(Error::NotFound(None)) };
    let mut m = Map::new();
    let mut warnings = Vec::new();
    match field {
        RoleField::BindSecretId => {
            m.insert("bind_secret_id".into(), json!(r.bind_secret_id));
        }
        RoleField::BoundCidrList => {
            // Vault migrated this field into `secret_id_bound_cidrs` and shows it as null.
            m.insert("bound_cidr_list".into(), Value::Null);
            warnings.push(
                "The \"bound_cidr_list\" field is deprecated and will be removed. Please use \"secret_id_bound_cidrs\" instead."
                    .to_owned(),
            );
        }
        RoleField::LocalSecretIds => {
            m.insert("local_secret_ids".into(), json!(r.local_secret_ids));
        }
        RoleField::Period => {
            m.insert("token_period".into(), json!(r.token_period));
            if r.period > 0 {
                m.insert("period".into(), json!(r.period));
            }
        }
        RoleField::Policies => {
            m.insert("token_policies".into(), json!(r.token_policies));
            if !r.policies.is_empty() {
                m.insert("policies".into(), json!(r.policies));
            }
        }
        RoleField::SecretIdBoundCidrs => {
            m.insert("secret_id_bound_cidrs".into(), list_or_null(&r.secret_id_bound_cidrs));
        }
        RoleField::SecretIdNumUses => {
            m.insert("secret_id_num_uses".into(), json!(r.secret_id_num_uses));
        }
        RoleField::SecretIdTtl => {
            m.insert("secret_id_ttl".into(), json!(r.secret_id_ttl));
        }
        RoleField::TokenBoundCidrs => {
            m.insert("token_bound_cidrs".into(), list_or_null(&r.token_bound_cidrs));
        }
        RoleField::TokenMaxTtl => {
            m.insert("token_max_ttl".into(), json!(r.token_max_ttl));
        }
        RoleField::TokenNumUses => {
            m.insert("token_num_uses".into(), json!(r.token_num_uses));
        }
        RoleField::TokenTtl => {
            m.insert("token_ttl".into(), json!(r.token_ttl));
        }
    }
    Ok(with_warnings(Response::data(m), warnings))
}

fn missing(field: &str) -> Error {
    Error::bad(format!("missing {field}"))
}

/// A non-negative integer field of a sub-path.
fn count_field(d: &Map<String, Value>, key: &str, negative: &str) -> Result<Option<u64>> {
    match fields::int(d, key)? {
        None => Ok(None),
        Some(v) => u64::try_from(v).map(Some).map_err(|_| Error::bad(negative.to_owned())),
    }
}

/// A duration field of a sub-path; token TTLs use tokenutil's negative-value wording.
fn ttl_field(d: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match super::role::signed_duration(d, key)? {
        None => Ok(None),
        Some(v) => u64::try_from(v).map(Some).map_err(|_| Error::bad(format!("'{key}' cannot be negative"))),
    }
}

/// `POST role/<name>/<field>`.
pub async fn write_field(
    ctx: &BackendRequest,
    store: &Store<'_>,
    name: &RoleName,
    field: RoleField,
    mount_max: u64,
) -> Result<Response> {
    let d = &ctx.data;
    // Parse once, before touching storage (Vault's framework conversions come first).
    enum Change {
        Bind(bool),
        Keep,
        Period(u64, bool),
        Policies(Vec<String>, bool),
        SecretCidrs(Vec<String>),
        SecretNumUses(u64),
        SecretTtl(u64),
        TokenCidrs(Vec<String>),
        TokenMaxTtl(u64),
        TokenNumUses(u64),
        TokenTtl(u64),
    }
    let change = match field {
        RoleField::LocalSecretIds => return Err(Error::UnsupportedOperation),
        RoleField::BindSecretId => fields::boolean(d, "bind_secret_id")?.map(Change::Bind),
        RoleField::SecretIdNumUses => {
            count_field(d, "secret_id_num_uses", "secret_id_num_uses cannot be negative")?
                .map(Change::SecretNumUses)
        }
        RoleField::SecretIdTtl => duration_field(d, "secret_id_ttl")?.map(Change::SecretTtl),
        RoleField::TokenTtl => ttl_field(d, "token_ttl")?.map(Change::TokenTtl),
        RoleField::TokenMaxTtl => ttl_field(d, "token_max_ttl")?.map(Change::TokenMaxTtl),
        RoleField::TokenNumUses => {
            count_field(d, "token_num_uses", "'token_num_uses' cannot be negative")?.map(Change::TokenNumUses)
        }
        RoleField::Period => match ttl_field(d, "token_period")? {
            Some(p) => Some(Change::Period(p, d.get("period").is_some_and(|v| !v.is_null()))),
            None => duration_field(d, "period")?.map(|p| Change::Period(p, true)),
        },
        RoleField::Policies => match fields::comma_strings(d, "token_policies")? {
            Some(p) => Some(Change::Policies(p, fields::comma_strings(d, "policies")?.is_some())),
            None => fields::comma_strings(d, "policies")?.map(|p| Change::Policies(p, true)),
        },
        RoleField::SecretIdBoundCidrs | RoleField::BoundCidrList => {
            let key =
                if field == RoleField::BoundCidrList { "bound_cidr_list" } else { "secret_id_bound_cidrs" };
            match fields::comma_strings(d, key)? {
                None => Some(Change::Keep),
                Some(c) if c.is_empty() => return Err(missing("bound_cidr_list")),
                Some(c) => {
                    cidr::validate_blocks(&c)
                        .map_err(|e| Error::bad(format!("failed to validate CIDR blocks: {e}")))?;
                    Some(Change::SecretCidrs(c))
                }
            }
        }
        RoleField::TokenBoundCidrs => match fields::comma_strings(d, "token_bound_cidrs")? {
            None => Some(Change::Keep),
            Some(c) => Some(Change::TokenCidrs(
                c.iter()
                    .map(|s| cidr::parse_addr(s))
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::bad(format!("failed to parse token_bound_cidrs: {e}")))?,
            )),
        },
    };
    let done = modify_role(store, name, |r| {
        let Some(change) = &change else {
            return Err(missing(match field {
                RoleField::BindSecretId => "bind_secret_id",
                RoleField::Period => "period",
                RoleField::Policies => "token_policies",
                RoleField::SecretIdNumUses => "secret_id_num_uses",
                RoleField::SecretIdTtl => "secret_id_ttl",
                RoleField::TokenMaxTtl => "token_max_ttl",
                RoleField::TokenNumUses => "token_num_uses",
                RoleField::TokenTtl => "token_ttl",
                _ => "bound_cidr_list",
            }));
        };
        match change {
            Change::Bind(b) => r.bind_secret_id = *b,
            Change::Keep => {}
            Change::Period(p, legacy) => {
                r.token_period = *p;
                r.period = if *legacy { *p } else { 0 };
                if r.token_period > mount_max {
                    return Err(period_too_long(r.token_period, mount_max));
                }
            }
            Change::Policies(p, legacy) => {
                r.token_policies = parse_policies(p);
                r.policies = if *legacy { r.token_policies.clone() } else { Vec::new() };
            }
            Change::SecretCidrs(c) => {
                r.secret_id_bound_cidrs = c.iter().map(|s| s.trim().to_owned()).collect()
            }
            Change::SecretNumUses(n) => r.secret_id_num_uses = *n,
            Change::SecretTtl(t) => r.secret_id_ttl = *t,
            Change::TokenCidrs(c) => r.token_bound_cidrs = c.clone(),
            Change::TokenMaxTtl(t) => {
                if *t > 0 && r.token_ttl > *t {
                    return Err(Error::bad("token_max_ttl should be greater than or equal to token_ttl"));
                }
                r.token_max_ttl = *t;
            }
            Change::TokenNumUses(n) => r.token_num_uses = *n,
            Change::TokenTtl(t) => {
                if r.token_max_ttl > 0 && *t > r.token_max_ttl {
                    return Err(Error::bad("token_ttl should not be greater than token_max_ttl"));
                }
                r.token_ttl = *t;
            }
        }
        Ok(())
    })
    .await?;
    match done {
        Some(()) => Ok(Response::empty()),
        None => Err(Error::UnsupportedPath),
    }
}

/// `DELETE role/<name>/<field>`: back to the field's default.
pub async fn delete_field(store: &Store<'_>, name: &RoleName, field: RoleField) -> Result<Response> {
    if field == RoleField::LocalSecretIds {
        return Err(Error::UnsupportedOperation);
    }
    modify_role(store, name, |r| {
        match field {
            RoleField::BindSecretId => r.bind_secret_id = true,
            RoleField::BoundCidrList | RoleField::SecretIdBoundCidrs => r.secret_id_bound_cidrs.clear(),
            RoleField::LocalSecretIds => {}
            RoleField::Period => {
                r.token_period = 0;
                r.period = 0;
            }
            RoleField::Policies => {
                r.token_policies.clear();
                r.policies.clear();
            }
            RoleField::SecretIdNumUses => r.secret_id_num_uses = 0,
            RoleField::SecretIdTtl => r.secret_id_ttl = 0,
            RoleField::TokenBoundCidrs => r.token_bound_cidrs.clear(),
            RoleField::TokenMaxTtl => r.token_max_ttl = 0,
            RoleField::TokenNumUses => r.token_num_uses = 0,
            RoleField::TokenTtl => r.token_ttl = 0,
        }
        Ok(())
    })
    .await?;
    Ok(Response::empty())
}

/// `GET role/<name>/role-id`.
pub async fn read_role_id(store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let Some((r, _)) = store.role(name.canonical()).await? else { return Err(Error::NotFound(None)) };
    Ok(Response::json(json!({ "role_id": r.role_id })))
}

/// `POST role/<name>/role-id`.
pub async fn write_role_id(ctx: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let role_id = fields::string(&ctx.data, "role_id")?.unwrap_or_default();
    let done = modify_role(store, name, |r| {
        if role_id.is_empty() {
            return Err(missing("role_id"));
        }
        r.role_id = role_id.clone();
        Ok(())
    })
    .await?;
    done.map(|()| Response::empty()).ok_or(Error::UnsupportedPath)
}

/// `POST role/<name>/secret-id` (`custom` = None) and `.../custom-secret-id`.
pub async fn create_secret_id(
    ctx: &BackendRequest,
    store: &Store<'_>,
    name: &RoleName,
    custom: Option<SecretId>,
    mount_max: u64,
) -> Result<Response> {
    if let Some(c) = &custom {
        if c.is_empty() {
            return Err(missing("secret_id"));
        }
        check_custom(c)?;
    }
    let Some((role, _)) = store.role(name.canonical()).await? else {
        return Err(Error::NotFound(Some(role_missing(name))));
    };
    if !role.bind_secret_id {
        return Err(Error::bad("bind_secret_id is not set on the role"));
    }
    let params = NewSecretId::parse(&ctx.data, &role)?;
    let secret = custom.unwrap_or_else(SecretId::generate);
    let now: OffsetDateTime = ctx.now;
    let now_ns = now.unix_timestamp_nanos();
    // Vault caps the lifetime (not the stored TTL) at the mount's maximum.
    let effective_ttl = params.ttl.min(mount_max);
    let mut entry = SecretIdEntry {
        v: SECRET_ID_VERSION,
        accessor: String::new(),
        num_uses: params.num_uses,
        ttl: params.ttl,
        creation_ns: now_ns,
        expiration_ns: (effective_ttl > 0).then(|| now_ns + i128::from(effective_ttl) * 1_000_000_000),
        last_updated_ns: now_ns,
        metadata: params.metadata,
        cidr_list: params.cidr_list,
        token_bound_cidrs: params.token_bound_cidrs,
    };
    store.create_secret_id(&role, &secret, &mut entry).await?;
    let mut resp = Response::json(json!({
        // Declassified for the caller who asked for it (possibly response-wrapped by the core).
        "secret_id": secret.expose(),
        "secret_id_accessor": entry.accessor,
        "secret_id_num_uses": entry.num_uses,
        "secret_id_ttl": effective_ttl,
    }));
    resp.wrapped_accessor = Some(entry.accessor);
    Ok(resp)
}

/// `LIST role/<name>/secret-id`.
pub async fn list_secret_ids(store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let Some((role, _)) = store.role(name.canonical()).await? else {
        return Err(Error::bad(role_missing(name)));
    };
    let keys = store.accessors(&role.id).await?;
    if keys.is_empty() {
        return Err(Error::NotFound(None));
    }
    Ok(Response::keys(keys))
}

/// `POST role/<name>/secret-id/lookup`.
pub async fn lookup_secret_id(ctx: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let secret = super::login::secret_field(&ctx.data, "secret_id")?;
    if secret.is_empty() {
        return Err(missing("secret_id"));
    }
    let Some((role, _)) = store.role(name.canonical()).await? else {
        return Err(Error::InternalVisible(role_missing(name)));
    };
    let h = store.secret_hmac(&role.id, &secret);
    match store.secret_id(&role.id, &h).await? {
        Some((entry, _)) => Ok(Response::data(entry.lookup_data())),
        None => Ok(Response::empty()),
    }
}

/// `POST|DELETE role/<name>/secret-id/destroy`.
pub async fn destroy_secret_id(ctx: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let secret = super::login::secret_field(&ctx.data, "secret_id")?;
    if secret.is_empty() {
        return Err(missing("secret_id"));
    }
    let Some((role, _)) = store.role(name.canonical()).await? else {
        return Err(Error::NotFound(Some(role_missing(name))));
    };
    store.destroy_secret_id(&role.id, &store.secret_hmac(&role.id, &secret)).await?;
    Ok(Response::empty())
}

fn accessor_field(ctx: &BackendRequest) -> Result<String> {
    let a = fields::string(&ctx.data, "secret_id_accessor")?.unwrap_or_default();
    if a.is_empty() {
        return Err(missing("secret_id_accessor"));
    }
    Ok(a)
}

fn no_accessor(accessor: &str) -> String {
    format!("failed to find accessor entry for secret_id_accessor: {accessor:?}")
}

/// `POST role/<name>/secret-id-accessor/lookup`.
pub async fn lookup_accessor(ctx: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let accessor = accessor_field(ctx)?;
    let Some((role, _)) = store.role(name.canonical()).await? else {
        return Err(Error::NotFound(Some(role_missing(name))));
    };
    let Some((index, _)) = store.accessor(&accessor).await? else {
        let mut resp = Response::json(json!({ "error": no_accessor(&accessor) }));
        resp.status = Some(404);
        return Err(Error::Raw(Box::new(resp)));
    };
    // An accessor of another role is looked up under this role's secret IDs: not found.
    if index.role != role.id {
        return Ok(Response::empty());
    }
    match store.secret_id(&role.id, &index.secret).await? {
        Some((entry, _)) => Ok(Response::data(entry.lookup_data())),
        None => Ok(Response::empty()),
    }
}

/// `POST|DELETE role/<name>/secret-id-accessor/destroy`. The accessor must belong to the role
/// in the URL (CVE-2023-24999): otherwise 403 and nothing is deleted.
pub async fn destroy_accessor(ctx: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let accessor = accessor_field(ctx)?;
    let Some((role, _)) = store.role(name.canonical()).await? else {
        return Err(Error::NotFound(Some(role_missing(name))));
    };
    loop {
        let Some((index, _)) = store.accessor(&accessor).await? else {
            return Err(Error::InternalVisible(no_accessor(&accessor)));
        };
        if index.role != role.id {
            return Err(Error::Forbidden("invalid secret id accessor".into()));
        }
        let Some((entry, version)) = store.secret_id(&role.id, &index.secret).await? else {
            return Err(Error::Forbidden("invalid secret id accessor".into()));
        };
        if store.delete_secret_id(&role.id, &index.secret, &entry, version).await? {
            return Ok(Response::empty());
        }
    }
}
