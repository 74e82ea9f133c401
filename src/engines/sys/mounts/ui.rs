//! The UI's mount listings: `sys/internal/ui/mounts` (the mounts the caller may see) and
//! `sys/internal/ui/mounts/<path>` (the CLI's kv preflight). A mount is visible with
//! `listing_visibility = "unauth"`, or when the caller's policies grant access below it.

use serde_json::{json, Map, Value};

use crate::core::error::{Error, Result};
use crate::core::mounts::{MountEntry, Table};
use crate::core::request::{BackendRequest, Response};
use crate::core::Active;

/// `sys/internal/ui/mounts` (no path): mounts the caller can see.
pub async fn ui_list(active: &Active, req: &BackendRequest) -> Result<Response> {
    let acl = match &req.token {
        Some(t) => Some(active.policies.acl(&t.policies).await?),
        None => None,
    };
    let visible = |e: &MountEntry| -> bool {
        if e.config.listing_visibility == "unauth" {
            return true;
        }
        match &acl {
            Some(a) => a.is_root() || a.has_mount_access(&e.route_prefix()),
            None => false,
        }
    };
    let listing = |table: Table| -> Map<String, Value> {
        active
            .mounts
            .entries(table)
            .iter()
            .filter(|e| visible(e))
            .map(|e| (e.path.clone(), e.to_json()))
            .collect()
    };
    Ok(Response::json(json!({"secret": listing(Table::Secrets), "auth": listing(Table::Auth)})))
}

/// `sys/internal/ui/mounts/<path>`: the CLI's kv preflight.
pub async fn ui_mount(active: &Active, req: &BackendRequest, path: &str) -> Result<Response> {
    if path.is_empty() {
        return Err(Error::bad("path not set"));
    }
    let denied = || {
        let mut p = path.trim_end_matches('/').to_owned();
        p.push('/');
        Error::Forbidden(format!(
            "preflight capability check returned 403, please ensure client's policies grant access to path \"{p}\""
        ))
    };
    let Some(routed) = active.mounts.route(path) else { return Err(denied()) };
    let entry = &routed.route.entry;
    let allowed = match &req.token {
        Some(t) => {
            let acl = active.policies.acl(&t.policies).await?;
            acl.is_root() || acl.has_mount_access(&entry.route_prefix())
        }
        None => entry.config.listing_visibility == "unauth",
    };
    if !allowed {
        return Err(denied());
    }
    let mut v = entry.to_json();
    if let Some(o) = v.as_object_mut() {
        o.insert("path".into(), json!(entry.route_prefix()));
    }
    Ok(Response::json(v))
}
