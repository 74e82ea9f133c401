//! Handlers for roles, their single-field sub-paths, role IDs and secret IDs.
//!
//! Status codes follow Vault where the contract pins them, including its quirks: secret ID
//! lookup of an unknown secret is 204, of a missing role 500; accessor lookup of an unknown
//! accessor is a 404 envelope with `data.error`; accessor destroy of an unknown accessor is 500;
//! a duplicate custom secret ID is 500. Everything else a client can cause is a 4xx.
//!
//! `roles` serves `role/<name>` and `role/<name>/role-id`; `fields` the single-field
//! sub-paths (`role/<name>/token-ttl`, ...); `secret_ids` secret IDs and their accessors. Every
//! role change is a read-modify-write guarded by the role record's version (`modify_role`).

mod fields;
mod roles;
mod secret_ids;

use super::path::RoleName;
use super::role::RoleEntry;
use super::store::Store;
use crate::core::error::{Error, Result};
use crate::core::request::Response;

pub use self::fields::{delete_field, read_field, write_field};
pub use self::roles::{delete_role, list_roles, read_role, read_role_id, write_role, write_role_id};
pub use self::secret_ids::{
    create_secret_id, destroy_accessor, destroy_secret_id, list_secret_ids, lookup_accessor, lookup_secret_id,
};

/// Vault's text for a role that does not exist.
fn role_missing(name: &RoleName) -> String {
    format!("role {:?} does not exist", name.given())
}

/// `resp` with `warnings` added.
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

/// Vault's 400 for a required field that is absent or empty.
fn missing(field: &str) -> Error {
    Error::bad(format!("missing {field}"))
}
