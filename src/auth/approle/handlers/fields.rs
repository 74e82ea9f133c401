//! The single-field sub-paths of a role (`role/<name>/bind-secret-id`, `token-ttl`,
//! `secret-id-bound-cidrs`, ...): read one setting, set it (parsed before storage is touched,
//! with the same cross-field checks as a full role write), or reset it to its default.

use serde_json::{json, Map, Value};

use super::{missing, modify_role, with_warnings};
use crate::auth::approle::cidr;
use crate::auth::approle::path::{RoleField, RoleName};
use crate::auth::approle::role::{duration_field, list_or_null, parse_policies, period_too_long};
use crate::auth::approle::store::Store;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};

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

/// A non-negative integer field of a sub-path.
fn count_field(d: &Map<String, Value>, key: &str, negative: &str) -> Result<Option<u64>> {
    match fields::int(d, key)? {
        None => Ok(None),
        Some(v) => u64::try_from(v).map(Some).map_err(|_| Error::bad(negative.to_owned())),
    }
}

/// A duration field of a sub-path; token TTLs use tokenutil's negative-value wording.
fn ttl_field(d: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match crate::auth::approle::role::signed_duration(d, key)? {
        None => Ok(None),
        Some(v) => u64::try_from(v).map(Some).map_err(|_| Error::bad(format!("'{key}' cannot be negative"))),
    }
}

/// `POST role/<name>/<field>`.
pub async fn write_field(
    req: &BackendRequest,
    store: &Store<'_>,
    name: &RoleName,
    field: RoleField,
    mount_max: u64,
) -> Result<Response> {
    let d = &req.data;
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
