//! `sys/mounts` and `sys/auth`: listing, reading, enabling and disabling mounts, and
//! `sys/remount`. Secrets mounts never take or overlap the reserved paths (`sys/`, `auth/`,
//! `audit/`, `cubbyhole/`, `identity/`); singleton types are neither mounted again nor
//! unmounted; two mounts never nest. Tuning is in [`tune`], the UI listings in [`ui`].

mod tune;
mod ui;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::mounts::{new_accessor, table_json, MountConfig, MountEntry, Table};
use crate::core::request::Response;
use crate::core::{Active, Core};

use self::tune::apply_config;
pub use self::tune::{read_tune, tune};
pub use self::ui::{ui_list, ui_mount};

/// Paths no mount may take or overlap (secrets table).
const RESERVED: &[&str] = &["sys/", "auth/", "audit/", "cubbyhole/", "identity/"];
/// Types that exist once and cannot be mounted again.
const SINGLETONS: &[&str] = &["system", "cubbyhole", "identity", "token"];

/// A mount path as stored: no leading `/`, one trailing `/`.
fn normalize(path: &str) -> String {
    let mut p = path.trim().trim_matches('/').to_owned();
    p.push('/');
    p
}

/// What the log calls a mount of `table`.
fn table_name(table: Table) -> &'static str {
    match table {
        Table::Auth => "auth",
        Table::Secrets => "secret engine",
    }
}

/// True if one of two mount paths contains the other (they would nest or collide).
fn overlaps(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `GET sys/mounts` or `sys/auth`.
pub fn list(active: &Active, table: Table) -> Response {
    Response::data(table_json(&active.mounts.entries(table))).top_level()
}

/// The mount of `table` at `path`.
fn find(active: &Active, table: Table, path: &str) -> Option<Arc<MountEntry>> {
    let p = normalize(path);
    active.mounts.entries(table).into_iter().find(|e| e.path == p)
}

/// `GET sys/mounts/<path>` or `sys/auth/<path>`.
pub fn read(active: &Active, table: Table, path: &str) -> Result<Response> {
    let Some(e) = find(active, table, path) else {
        return Err(match table {
            Table::Secrets => Error::bad(format!("No secret engine mount at {}", normalize(path))),
            Table::Auth => Error::bad(format!("No auth engine at {}", normalize(path))),
        });
    };
    match e.to_json() {
        Value::Object(m) => Ok(Response::data(m).top_level()),
        _ => Err(Error::internal("mount entry did not render as an object")),
    }
}

/// `POST sys/mounts/<path>` or `sys/auth/<path>`: mounts a backend of `type`.
pub async fn enable(
    core: &Core,
    active: &Active,
    table: Table,
    path: &str,
    data: &Map<String, Value>,
) -> Result<Response> {
    let path = normalize(path);
    if path == "/" {
        return Err(Error::bad("path cannot be empty"));
    }
    let mut kind = fields::string(data, "type")?.unwrap_or_default();
    if kind.is_empty() {
        return Err(Error::bad(match table {
            Table::Secrets => "backend type must be specified as a string",
            Table::Auth => "backend type must be specified as a string",
        }));
    }
    let mut options: Option<BTreeMap<String, String>> = fields::kv_pairs(data, "options")?;
    match kind.as_str() {
        "kv-v1" | "generic" => {
            kind = "kv".into();
            options.get_or_insert_with(BTreeMap::new).insert("version".into(), "1".into());
        }
        "kv-v2" => {
            kind = "kv".into();
            options.get_or_insert_with(BTreeMap::new).insert("version".into(), "2".into());
        }
        _ => {}
    }
    if SINGLETONS.contains(&kind.as_str()) {
        return Err(Error::Forbidden(format!("mount type of \"{kind}\" is not mountable")));
    }
    if !core.registry().mountable(table, &kind) {
        return Err(Error::bad(format!("plugin not found in the catalog: {kind}")));
    }
    if kind == "kv" {
        let o = options.get_or_insert_with(BTreeMap::new);
        if let Some(v) = o.get("version") {
            if !matches!(v.as_str(), "1" | "2" | "") {
                return Err(Error::bad(format!("invalid kv version {v}")));
            }
        }
    } else if options.as_ref().map(|o| o.contains_key("version")).unwrap_or(false) {
        return Err(Error::bad(format!("secrets engine \"{kind}\" does not allow setting a version")));
    }
    if table == Table::Secrets {
        for r in RESERVED {
            if overlaps(&path, r) {
                return Err(Error::Forbidden(format!("cannot mount \"{path}\"")));
            }
        }
    }
    let mut config = MountConfig::default();
    if let Some(c) = fields::map(data, "config")? {
        apply_config(&mut config, c, table, &kind, core.registry().supports_lockout(&kind))?;
    }
    let entry = MountEntry {
        path: path.clone(),
        kind: kind.clone(),
        description: fields::string_or_empty(data, "description")?,
        accessor: new_accessor(&kind, table),
        uuid: uuid::Uuid::new_v4().to_string(),
        local: fields::boolean_or(data, "local", false)?,
        seal_wrap: fields::boolean_or(data, "seal_wrap", false)?,
        external_entropy_access: fields::boolean_or(data, "external_entropy_access", false)?,
        options,
        config,
        table,
    };
    // Build the backend once up front so a bad option fails before anything is stored.
    (core.factory())(&entry)?;
    active
        .mounts
        .modify(table, core.factory(), |entries| {
            for e in entries.iter() {
                if overlaps(&e.path, &path) {
                    return Err(Error::Conflict(format!("path is already in use at {}", e.path)));
                }
            }
            entries.push(entry.clone());
            Ok(())
        })
        .await?;
    tracing::info!(path = %entry.route_prefix(), kind = %entry.kind, "enabled {}", table_name(table));
    Ok(Response::empty())
}

/// `DELETE sys/mounts/<path>` or `sys/auth/<path>`: unmounts and erases the mount's data.
pub async fn disable(core: &Core, active: &Active, table: Table, path: &str) -> Result<Response> {
    let path = normalize(path);
    let Some(entry) = find(active, table, &path) else { return Ok(Response::empty()) };
    if SINGLETONS.contains(&entry.kind.as_str()) {
        return Err(Error::bad(format!("cannot unmount \"{path}\"")));
    }
    let removed = active
        .mounts
        .modify(table, core.factory(), |entries| {
            let before = entries.len();
            entries.retain(|e| e.path != path);
            Ok(before != entries.len())
        })
        .await?;
    if removed {
        coffer_storage::View::new(std::sync::Arc::clone(core.barrier()), &entry.storage_prefix())
            .clear()
            .await?;
        tracing::info!(path = %entry.route_prefix(), "disabled {}", table_name(table));
    }
    Ok(Response::empty())
}

/// Moves a mount (same table) to a new path; the data stays under the mount's uuid.
pub async fn remount(
    core: &Core,
    active: &Active,
    data: &Map<String, Value>,
) -> Result<(String, String, String)> {
    let from = fields::string_or_empty(data, "from")?;
    let to = fields::string_or_empty(data, "to")?;
    if from.is_empty() || to.is_empty() {
        return Err(Error::bad("both 'from' and 'to' path must be specified as a string"));
    }
    let (table, from_p, to_p) = match (from.strip_prefix("auth/"), to.strip_prefix("auth/")) {
        (Some(f), Some(t)) => (Table::Auth, normalize(f), normalize(t)),
        (None, None) => (Table::Secrets, normalize(&from), normalize(&to)),
        _ => return Err(Error::bad("cannot remount across secret engine and auth mount tables")),
    };
    if table == Table::Secrets {
        for r in RESERVED {
            if from_p.starts_with(r) {
                return Err(Error::bad(format!("cannot remount \"{from_p}\"")));
            }
            if overlaps(&to_p, r) {
                return Err(Error::bad(format!("cannot remount to destination \"{to_p}\"")));
            }
        }
    }
    active
        .mounts
        .modify(table, core.factory(), |entries| {
            if SINGLETONS.iter().any(|s| entries.iter().any(|e| e.path == from_p && e.kind == *s)) {
                return Err(Error::bad(format!("cannot remount \"{from_p}\"")));
            }
            if !entries.iter().any(|e| e.path == from_p) {
                return Err(Error::bad(format!("no matching mount at \"{from_p}\"")));
            }
            if let Some(c) = entries.iter().find(|e| e.path != from_p && overlaps(&e.path, &to_p)) {
                return Err(Error::Conflict(format!("path is already in use at {}", c.path)));
            }
            for e in entries.iter_mut() {
                if e.path == from_p {
                    e.path = to_p.clone();
                }
            }
            Ok(())
        })
        .await?;
    Ok((uuid::Uuid::new_v4().to_string(), from_p, to_p))
}
