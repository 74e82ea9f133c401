//! `sys/mounts/<path>/tune` and `sys/auth/<path>/tune`: reading and changing a mount's
//! configuration (lease TTLs, audit keys, headers, listing visibility, token type, AppRole's
//! `user_lockout_config`) and the kv version upgrade. The same parser applies the `config`
//! object of an enable, so a setting is checked the same way on both paths.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{find, normalize};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::mounts::{MountConfig, Table};
use crate::core::request::Response;
use crate::core::{Active, Core};

/// A TTL setting: absent, `system` (0 = the system's), or a duration.
fn parse_ttl_field(v: Option<&Value>, name: &str) -> Result<Option<u64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "system" || s.is_empty() => Ok(Some(0)),
        Some(v) => crate::util::duration::parse_seconds(v).map(Some).map_err(|e| {
            Error::bad(format!("unable to parse {name} of {}: {e}", v.to_string().trim_matches('"')))
        }),
    }
}

/// A list setting (a JSON array or a comma-separated string).
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
pub(super) fn apply_config(
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

/// `GET sys/mounts/<path>/tune`: the settings in force (the system's where the mount has none).
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

/// `POST sys/mounts/<path>/tune`: changes the given settings; `options.version=2` upgrades a
/// kv version 1 mount.
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
