//! `sys/mounts`, `sys/auth`, tuning, remount and the UI preflight.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::mounts::{new_accessor, table_json, MountConfig, MountEntry, Table};
use crate::core::request::{BackendRequest, Response};
use crate::core::{Active, Core};

/// Paths no mount may take or overlap (secrets table).
const RESERVED: &[&str] = &["sys/", "auth/", "audit/", "cubbyhole/", "identity/"];
/// Types that exist once and cannot be mounted again.
const SINGLETONS: &[&str] = &["system", "cubbyhole", "identity", "token"];

fn normalize(path: &str) -> String {
    let mut p = path.trim().trim_matches('/').to_owned();
    p.push('/');
    p
}

fn table_name(table: Table) -> &'static str {
    match table {
        Table::Auth => "auth",
        Table::Secrets => "secret engine",
    }
}

pub fn list(active: &Active, table: Table) -> Response {
    Response::data(table_json(&active.mounts.entries(table))).top_level()
}

fn find(active: &Active, table: Table, path: &str) -> Option<Arc<MountEntry>> {
    let p = normalize(path);
    active.mounts.entries(table).into_iter().find(|e| e.path == p)
}

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

fn parse_ttl_field(v: Option<&Value>, name: &str) -> Result<Option<u64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "system" || s.is_empty() => Ok(Some(0)),
        Some(v) => crate::util::duration::parse_seconds(v).map(Some).map_err(|e| {
            Error::bad(format!("unable to parse {name} of {}: {e}", v.to_string().trim_matches('"')))
        }),
    }
}

fn strings(m: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>> {
    fields::comma_strings(m, key)
}

/// Applies `user_lockout_config` (Vault's API names, and the config-file names as aliases).
fn apply_lockout(
    cfg: &mut MountConfig,
    m: &Map<String, Value>,
    table: Table,
    kind: &str,
    supports_lockout: bool,
) -> Result<()> {
    let Some(raw) = fields::map(m, "user_lockout_config")? else { return Ok(()) };
    if table != Table::Auth || !supports_lockout {
        return Err(Error::bad(format!(
            "tuning of user lockout configuration for auth type \"{kind}\" not allowed"
        )));
    }
    let mut l = cfg.user_lockout_config.clone().unwrap_or_default();
    if let Some(v) = fields::string(raw, "lockout_threshold")?.filter(|v| !v.is_empty()) {
        l.lockout_threshold = v.trim().parse().map_err(|_| {
            Error::bad(format!(
                "unable to parse user lockout threshold: strconv.ParseUint: parsing {v:?}: invalid syntax"
            ))
        })?;
    }
    let duration = |key: &str, what: &str| -> Result<Option<u64>> {
        match raw.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(v) => crate::util::duration::parse_seconds(v)
                .map(Some)
                .map_err(|e| Error::bad(format!("unable to parse user lockout {what}: {e}"))),
        }
    };
    if let Some(v) = duration("lockout_duration", "duration")? {
        l.lockout_duration = v;
    }
    for key in ["lockout_counter_reset_duration", "lockout_counter_reset"] {
        if let Some(v) = duration(key, "counter reset duration")? {
            l.lockout_counter_reset = v;
        }
    }
    for key in ["lockout_disable", "disable_lockout"] {
        if let Some(v) = fields::boolean(raw, key)? {
            l.disable_lockout = v;
        }
    }
    cfg.user_lockout_config = Some(l);
    Ok(())
}

/// Applies a `config` object (enable) or tune body onto a mount config.
fn apply_config(
    cfg: &mut MountConfig,
    m: &Map<String, Value>,
    table: Table,
    kind: &str,
    supports_lockout: bool,
) -> Result<()> {
    apply_lockout(cfg, m, table, kind, supports_lockout)?;
    if let Some(v) = parse_ttl_field(m.get("default_lease_ttl"), "default TTL")? {
        cfg.default_lease_ttl = v;
    }
    if let Some(v) = parse_ttl_field(m.get("max_lease_ttl"), "max TTL")? {
        cfg.max_lease_ttl = v;
    }
    if let Some(v) = fields::boolean(m, "force_no_cache")? {
        cfg.force_no_cache = v;
    }
    if let Some(v) = strings(m, "audit_non_hmac_request_keys")? {
        cfg.audit_non_hmac_request_keys = v;
    }
    if let Some(v) = strings(m, "audit_non_hmac_response_keys")? {
        cfg.audit_non_hmac_response_keys = v;
    }
    if let Some(v) = fields::string(m, "listing_visibility")? {
        if !matches!(v.as_str(), "" | "unauth" | "hidden") {
            return Err(Error::bad(format!("invalid listing_visibility {v}")));
        }
        cfg.listing_visibility = v;
    }
    if let Some(v) = strings(m, "passthrough_request_headers")? {
        cfg.passthrough_request_headers = v;
    }
    if let Some(v) = strings(m, "allowed_response_headers")? {
        cfg.allowed_response_headers = v;
    }
    if table == Table::Auth {
        if let Some(v) = fields::string(m, "token_type")? {
            if !matches!(v.as_str(), "default-service" | "default-batch" | "service" | "batch") {
                return Err(Error::bad(format!("invalid value for 'token_type': {v}")));
            }
            cfg.token_type = Some(v);
        }
    }
    if cfg.default_lease_ttl > 0 && cfg.max_lease_ttl > 0 && cfg.default_lease_ttl > cfg.max_lease_ttl {
        return Err(Error::bad("given default lease TTL greater than given max lease TTL"));
    }
    Ok(())
}

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
            if path.starts_with(r) || r.starts_with(&path) {
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
                if e.path == path || path.starts_with(&e.path) || e.path.starts_with(&path) {
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

pub fn read_tune(core: &Core, active: &Active, table: Table, path: &str) -> Result<Response> {
    let Some(e) = find(active, table, path) else {
        return Err(Error::bad(format!("cannot fetch sysview for path \"{}\"", normalize(path))));
    };
    let def = e.config.default_lease_ttl_or(core.config.default_lease_ttl);
    let max = e.config.max_lease_ttl_or(core.config.max_lease_ttl);
    let mut m = Map::new();
    m.insert("default_lease_ttl".into(), json!(def));
    m.insert("max_lease_ttl".into(), json!(max));
    m.insert("force_no_cache".into(), json!(e.config.force_no_cache));
    m.insert("description".into(), json!(e.description));
    if let Some(o) = &e.options {
        if !o.is_empty() {
            m.insert("options".into(), json!(o));
        }
    }
    if table == Table::Auth {
        m.insert(
            "token_type".into(),
            json!(e.config.token_type.clone().unwrap_or_else(|| "default-service".into())),
        );
    }
    for (k, v) in [
        ("audit_non_hmac_request_keys", &e.config.audit_non_hmac_request_keys),
        ("audit_non_hmac_response_keys", &e.config.audit_non_hmac_response_keys),
        ("passthrough_request_headers", &e.config.passthrough_request_headers),
        ("allowed_response_headers", &e.config.allowed_response_headers),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), json!(v));
        }
    }
    if !e.config.listing_visibility.is_empty() {
        m.insert("listing_visibility".into(), json!(e.config.listing_visibility));
    }
    if let Some(l) = &e.config.user_lockout_config {
        m.extend(l.to_json());
    }
    Ok(Response::data(m).top_level())
}

pub async fn tune(
    core: &Core,
    active: &Active,
    table: Table,
    path: &str,
    data: &Map<String, Value>,
) -> Result<Response> {
    let path = normalize(path);
    let Some(existing) = find(active, table, &path) else {
        return Err(Error::bad(format!("cannot fetch sysview for path \"{path}\"")));
    };
    let mut warnings = Vec::new();
    let new_options = fields::kv_pairs(data, "options")?;
    if let Some(o) = &new_options {
        if let Some(v) = o.get("version") {
            if existing.kind != "kv" {
                return Err(Error::bad(format!(
                    "secrets engine \"{}\" does not allow setting a version",
                    existing.kind
                )));
            }
            let cur = match existing.kv_version() {
                "" => "1",
                v => v,
            };
            match (cur, v.as_str()) {
                (a, b) if a == b => {}
                ("1", "2") => {
                    // Version 1 secrets are migrated by the v2 backend on first use; secrets
                    // stored below its own layout prefix would be mistaken for v2 records.
                    let view = coffer_storage::View::new(
                        std::sync::Arc::clone(core.barrier()),
                        &existing.storage_prefix(),
                    );
                    let root = crate::engines::kv::v2::STORAGE_ROOT;
                    if view.list("").await?.iter().any(|k| k == root) {
                        return Err(Error::bad(format!(
                            "cannot upgrade mount \"{path}\" to kv version 2: it holds version 1 secrets below \"{root}\", which version 2 uses for its own records; move them first"
                        )));
                    }
                    warnings.push(
                        "Upgrading mount from version 1 to version 2. This mount will be unavailable for a brief period and will resume service shortly."
                            .to_owned(),
                    )
                }
                ("2", "1") => return Err(Error::bad("cannot downgrade mount from version 2")),
                _ => return Err(Error::bad(format!("invalid kv version {v}"))),
            }
        }
    }
    active
        .mounts
        .modify(table, core.factory(), |entries| {
            let Some(e) = entries.iter_mut().find(|e| e.path == path) else {
                return Err(Error::bad(format!("cannot fetch sysview for path \"{path}\"")));
            };
            let mut cfg = e.config.clone();
            apply_config(&mut cfg, data, table, &e.kind, core.registry().supports_lockout(&e.kind))?;
            e.config = cfg;
            if let Some(d) = fields::string(data, "description")? {
                e.description = d;
            }
            if let Some(o) = &new_options {
                let cur = e.options.get_or_insert_with(BTreeMap::new);
                for (k, v) in o {
                    cur.insert(k.clone(), v.clone());
                }
            }
            Ok(())
        })
        .await?;
    let mut resp = Response::empty();
    resp.warnings = warnings;
    Ok(resp)
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
            if to_p.starts_with(r) || r.starts_with(&to_p) {
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
            if let Some(c) = entries.iter().find(|e| {
                e.path != from_p && (e.path == to_p || to_p.starts_with(&e.path) || e.path.starts_with(&to_p))
            }) {
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

/// `sys/internal/ui/mounts` (no path): mounts the caller can see.
pub async fn ui_list(active: &Active, ctx: &BackendRequest) -> Result<Response> {
    let acl = match &ctx.token {
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
    let secret: Map<String, Value> = active
        .mounts
        .entries(Table::Secrets)
        .iter()
        .filter(|e| visible(e))
        .map(|e| (e.path.clone(), e.to_json()))
        .collect();
    let auth: Map<String, Value> = active
        .mounts
        .entries(Table::Auth)
        .iter()
        .filter(|e| visible(e))
        .map(|e| (e.path.clone(), e.to_json()))
        .collect();
    Ok(Response::json(json!({"secret": secret, "auth": auth})))
}

/// `sys/internal/ui/mounts/<path>`: the CLI's kv preflight.
pub async fn ui_mount(active: &Active, ctx: &BackendRequest, path: &str) -> Result<Response> {
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
    let allowed = match &ctx.token {
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
