//! Secret IDs of a role: create (generated or custom), list (their accessors), look up and
//! destroy by secret ID or by accessor. An accessor is honoured only under the role it belongs
//! to (CVE-2023-24999); a secret ID is never echoed back except to the caller who created it.

use serde_json::json;
use time::OffsetDateTime;

use super::{missing, role_missing};
use crate::auth::approle::login::secret_field;
use crate::auth::approle::path::RoleName;
use crate::auth::approle::secret_id::{
    check_custom, NewSecretId, SecretId, SecretIdEntry, SECRET_ID_VERSION,
};
use crate::auth::approle::store::Store;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};

/// `POST role/<name>/secret-id` (`custom` = None) and `.../custom-secret-id`.
pub async fn create_secret_id(
    req: &BackendRequest,
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
    let params = NewSecretId::parse(&req.data, &role)?;
    let secret = custom.unwrap_or_else(SecretId::generate);
    let now: OffsetDateTime = req.now;
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
pub async fn lookup_secret_id(req: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let secret = secret_field(&req.data, "secret_id")?;
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
pub async fn destroy_secret_id(req: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let secret = secret_field(&req.data, "secret_id")?;
    if secret.is_empty() {
        return Err(missing("secret_id"));
    }
    let Some((role, _)) = store.role(name.canonical()).await? else {
        return Err(Error::NotFound(Some(role_missing(name))));
    };
    store.destroy_secret_id(&role.id, &store.secret_hmac(&role.id, &secret)).await?;
    Ok(Response::empty())
}

/// The `secret_id_accessor` field (required).
fn accessor_field(req: &BackendRequest) -> Result<String> {
    let a = fields::string(&req.data, "secret_id_accessor")?.unwrap_or_default();
    if a.is_empty() {
        return Err(missing("secret_id_accessor"));
    }
    Ok(a)
}

/// Vault's text for an accessor that names no secret ID.
fn no_accessor(accessor: &str) -> String {
    format!("failed to find accessor entry for secret_id_accessor: {accessor:?}")
}

/// `POST role/<name>/secret-id-accessor/lookup`.
pub async fn lookup_accessor(req: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let accessor = accessor_field(req)?;
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
pub async fn destroy_accessor(req: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let accessor = accessor_field(req)?;
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
