//! `role/<name>` (list, read, write, delete) and `role/<name>/role-id`. A role ID is claimed
//! by one role only (the store's index is written in the same batch as the role).

use serde_json::json;

use super::{missing, modify_role, with_warnings};
use crate::auth::approle::path::RoleName;
use crate::auth::approle::role::{RoleEntry, RoleUpdate, MAX_HMAC_INPUT};
use crate::auth::approle::store::Store;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};

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
    req: &BackendRequest,
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
        let update = RoleUpdate::parse(&req.data)?;
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

/// `GET role/<name>/role-id`.
pub async fn read_role_id(store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let Some((r, _)) = store.role(name.canonical()).await? else { return Err(Error::NotFound(None)) };
    Ok(Response::json(json!({ "role_id": r.role_id })))
}

/// `POST role/<name>/role-id`.
pub async fn write_role_id(req: &BackendRequest, store: &Store<'_>, name: &RoleName) -> Result<Response> {
    let role_id = fields::string(&req.data, "role_id")?.unwrap_or_default();
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
