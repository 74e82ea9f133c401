//! The KV v2 metadata endpoints: `metadata/<key>` (read, write, patch, delete), the listings
//! (`LIST metadata/`, OpenBao's `detailed-metadata/` with `after`/`limit`) and the mount's
//! `config`. Writes are guarded by the record's storage version as read (and, with OpenBao's
//! `metadata_cas`, by the metadata version the client names).

use serde_json::{json, Map, Value};

use coffer_storage::Batch;

use super::params::{custom_metadata, validate_custom_metadata, FieldType, Input};
use super::record::{
    encode, meta_key, nanos, version_key, Config, KeyMeta, Store, CONFIG_KEY, DVA_DISABLED, META_PREFIX,
};
use super::reply::{too_busy, with_warning, MAX_ATTEMPTS};
use crate::core::error::{Error, Result};
use crate::core::request::{BackendRequest, Response};

const METADATA_SCHEMA: &[(&str, FieldType)] = &[
    ("after", FieldType::String),
    ("cas_required", FieldType::Bool),
    ("custom_metadata", FieldType::Map),
    ("delete_version_after", FieldType::DurationSecond),
    ("limit", FieldType::Int),
    ("max_versions", FieldType::Int),
    ("metadata_cas", FieldType::Int),
    ("metadata_cas_required", FieldType::Bool),
    ("path", FieldType::String),
];
const LIST_SCHEMA: &[(&str, FieldType)] =
    &[("after", FieldType::String), ("limit", FieldType::Int), ("path", FieldType::String)];
const CONFIG_SCHEMA: &[(&str, FieldType)] = &[
    ("cas_required", FieldType::Bool),
    ("delete_version_after", FieldType::SignedDurationSecond),
    ("max_versions", FieldType::Int),
    ("metadata_cas_required", FieldType::Bool),
];

/// `GET metadata/<key>`.
pub async fn metadata_read(req: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&req.data, METADATA_SCHEMA, true)?;
    let Some((meta, _)) = store.meta(key).await? else { return Err(Error::NotFound(None)) };
    Ok(with_warning(Response::data(meta.to_json()), &input))
}

/// The keys below `prefix`, after `after` and at most `limit`; 404 when there are none.
async fn list_keys(store: &Store, prefix: &str, input: &Input<'_>) -> Result<Vec<String>> {
    let mut prefix = prefix.to_owned();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let after = input.string("after")?.unwrap_or_default();
    let limit = input.int("limit")?.unwrap_or(0);
    let mut keys: Vec<String> = store
        .view
        .list(&format!("{META_PREFIX}{prefix}"))
        .await?
        .into_iter()
        .filter(|k| after.is_empty() || k.as_str() > after.as_str())
        .collect();
    if limit > 0 {
        keys.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    if keys.is_empty() {
        return Err(Error::NotFound(None));
    }
    Ok(keys)
}

/// `LIST metadata/<prefix>/` (OpenBao's `after`/`limit` pagination included).
pub async fn metadata_list(req: &BackendRequest, store: &Store, prefix: &str) -> Result<Response> {
    let input = Input::new(&req.data, METADATA_SCHEMA, true)?;
    let keys = list_keys(store, prefix, &input).await?;
    Ok(with_warning(Response::keys(keys), &input))
}

/// `LIST detailed-metadata/<prefix>/` (OpenBao): keys plus each key's metadata.
pub async fn detailed_list(req: &BackendRequest, store: &Store, prefix: &str) -> Result<Response> {
    let input = Input::new(&req.data, LIST_SCHEMA, true)?;
    let keys = list_keys(store, prefix, &input).await?;
    let base =
        if prefix.is_empty() || prefix.ends_with('/') { prefix.to_owned() } else { format!("{prefix}/") };
    let mut info = Map::new();
    for k in &keys {
        let v = if k.ends_with('/') {
            json!({})
        } else {
            match store.meta(&format!("{base}{k}")).await? {
                Some((m, _)) => Value::Object(m.to_json()),
                None => json!({}),
            }
        };
        info.insert(k.clone(), v);
    }
    let mut data = Map::new();
    data.insert("key_info".into(), Value::Object(info));
    data.insert("keys".into(), json!(keys));
    Ok(with_warning(Response::data(data), &input))
}

/// Settings a metadata write or patch may change.
struct MetaUpdate {
    max_versions: Option<u32>,
    cas_required: Option<bool>,
    delete_version_after: Option<i64>,
    metadata_cas_required: Option<bool>,
    metadata_cas: Option<i64>,
}

impl MetaUpdate {
    /// The settings the request names.
    fn parse(input: &Input<'_>) -> Result<Self> {
        Ok(Self {
            max_versions: input.max_versions()?,
            cas_required: input.bool("cas_required")?,
            delete_version_after: input.int("delete_version_after")?,
            metadata_cas_required: input.bool("metadata_cas_required")?,
            metadata_cas: input.int("metadata_cas")?,
        })
    }

    /// Vault's warning when a setting the mount config mandates is turned off.
    fn warnings(&self, config: &Config) -> Vec<String> {
        if self.cas_required == Some(false) && config.cas_required {
            vec!["\"cas_required\" set to false, but is mandated by backend config. This value will be ignored."
                .to_owned()]
        } else {
            Vec::new()
        }
    }

    /// OpenBao's metadata check-and-set.
    fn check_cas(&self, config: &Config, existing: Option<&KeyMeta>) -> Result<()> {
        let required =
            config.metadata_cas_required || existing.map(|m| m.metadata_cas_required).unwrap_or(false);
        match (self.metadata_cas, existing) {
            (None, _) if required => {
                Err(Error::bad("metadata check-and-set parameter required for this call"))
            }
            (Some(c), None) if c != 0 => Err(Error::bad("metadata_cas must be 0 when creating new metadata")),
            (Some(c), Some(m)) if u64::try_from(c).ok() != Some(m.current_metadata_version) => {
                Err(Error::bad("metadata check-and-set parameter does not match the current version"))
            }
            _ => Ok(()),
        }
    }

    /// Applies the named settings and bumps the metadata version.
    fn apply(&self, meta: &mut KeyMeta, now: i64) {
        if let Some(v) = self.max_versions {
            meta.max_versions = v;
        }
        if let Some(v) = self.cas_required {
            meta.cas_required = v;
        }
        if let Some(v) = self.delete_version_after {
            meta.delete_version_after = v;
        }
        if let Some(v) = self.metadata_cas_required {
            meta.metadata_cas_required = v;
        }
        meta.current_metadata_version += 1;
        meta.updated_time = now;
    }
}

/// The reply to a metadata write: empty, or the warnings.
fn meta_response(warnings: Vec<String>, input: &Input<'_>) -> Response {
    if warnings.is_empty() {
        return Response::empty();
    }
    let mut r = Response::empty();
    r.warnings = warnings;
    with_warning(r, input)
}

/// `POST|PUT metadata/<key>`: only given settings change; creates metadata for a new key.
pub async fn metadata_write(req: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&req.data, METADATA_SCHEMA, false)?;
    if key.is_empty() {
        return Err(Error::bad("missing path"));
    }
    let update = MetaUpdate::parse(&input)?;
    // `"custom_metadata": null` clears it, as Vault's map decoding of `nil` does.
    let custom = match req.data.get("custom_metadata") {
        None => None,
        Some(Value::Null) => Some(Default::default()),
        Some(_) => {
            let m = custom_metadata(&input.map("custom_metadata")?.unwrap_or_default(), false)?;
            validate_custom_metadata(&m)?;
            Some(m)
        }
    };
    if update.max_versions.is_none()
        && update.cas_required.is_none()
        && update.delete_version_after.is_none()
        && update.metadata_cas_required.is_none()
        && custom.is_none()
    {
        return Ok(Response::empty());
    }
    let (config, _) = store.config().await?;
    let warnings = update.warnings(&config);
    let now = nanos(req.now);
    for _ in 0..MAX_ATTEMPTS {
        let existing = store.meta(key).await?;
        update.check_cas(&config, existing.as_ref().map(|(m, _)| m))?;
        let (mut meta, read_at) = match existing {
            Some((m, v)) => (m, Some(v)),
            None => (KeyMeta::new(now), None),
        };
        update.apply(&mut meta, now);
        if let Some(c) = &custom {
            meta.custom_metadata = c.clone();
        }
        let batch = Batch::new().put(meta_key(key), encode(&meta)?).require(meta_key(key), read_at);
        if store.apply(batch).await? {
            return Ok(meta_response(warnings, &input));
        }
    }
    Err(too_busy())
}

/// `PATCH metadata/<key>`: a merge patch of the settings; `null` custom metadata entries
/// remove keys.
pub async fn metadata_patch(req: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&req.data, METADATA_SCHEMA, true)?;
    if key.is_empty() {
        return Err(Error::bad("missing path"));
    }
    let update = MetaUpdate::parse(&input)?;
    // `None`: unchanged; `Some(None)`: cleared; `Some(Some(patch))`: merged.
    let custom: Option<Option<Map<String, Value>>> = match req.data.get("custom_metadata") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => {
            let raw = input.map("custom_metadata")?.unwrap_or_default();
            validate_custom_metadata(&custom_metadata(&raw, true)?)?;
            Some(Some(raw))
        }
    };
    let (config, _) = store.config().await?;
    let now = nanos(req.now);
    for _ in 0..MAX_ATTEMPTS {
        let Some((mut meta, read_at)) = store.meta(key).await? else { return Err(Error::NotFound(None)) };
        update.check_cas(&config, Some(&meta))?;
        update.apply(&mut meta, now);
        match &custom {
            None => {}
            Some(None) => meta.custom_metadata.clear(),
            Some(Some(patch)) => {
                let set = custom_metadata(patch, true)?;
                for (k, v) in patch {
                    if v.is_null() {
                        meta.custom_metadata.remove(k);
                    }
                }
                meta.custom_metadata.extend(set);
            }
        }
        let batch = Batch::new().put(meta_key(key), encode(&meta)?).require_version(meta_key(key), read_at);
        if store.apply(batch).await? {
            return Ok(meta_response(update.warnings(&config), &input));
        }
    }
    Err(too_busy())
}

/// `DELETE metadata/<key>`: the key, its history and every version's data.
pub async fn metadata_delete(req: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    Input::new(&req.data, METADATA_SCHEMA, true)?;
    for _ in 0..MAX_ATTEMPTS {
        let Some((meta, read_at)) = store.meta(key).await? else { return Ok(Response::empty()) };
        let mut batch = Batch::new().delete(meta_key(key)).require_version(meta_key(key), read_at);
        for n in meta.versions.keys() {
            batch = batch.delete(version_key(key, *n));
        }
        if store.apply(batch).await? {
            return Ok(Response::empty());
        }
    }
    Err(too_busy())
}

/// `GET config`.
pub async fn config_read(req: &BackendRequest, store: &Store) -> Result<Response> {
    let input = Input::new(&req.data, CONFIG_SCHEMA, true)?;
    let (config, _) = store.config().await?;
    Ok(with_warning(Response::data(config.to_json()), &input))
}

/// `POST|PUT config`: only given settings change.
pub async fn config_write(req: &BackendRequest, store: &Store) -> Result<Response> {
    let input = Input::new(&req.data, CONFIG_SCHEMA, true)?;
    let max_versions = input.max_versions()?;
    let cas_required = input.bool("cas_required")?;
    let metadata_cas_required = input.bool("metadata_cas_required")?;
    let dva = input.int("delete_version_after")?;
    if max_versions.is_none() && cas_required.is_none() && metadata_cas_required.is_none() && dva.is_none() {
        return Ok(Response::empty());
    }
    for _ in 0..MAX_ATTEMPTS {
        let (mut config, read_at) = store.config().await?;
        if let Some(v) = max_versions {
            config.max_versions = v;
        }
        if let Some(v) = cas_required {
            config.cas_required = v;
        }
        if let Some(v) = metadata_cas_required {
            config.metadata_cas_required = v;
        }
        if let Some(v) = dva {
            config.delete_version_after = if v < 0 { DVA_DISABLED } else { v };
        }
        let batch = Batch::new().put(CONFIG_KEY, encode(&config)?).require(CONFIG_KEY, read_at);
        if store.apply(batch).await? {
            return Ok(Response::empty());
        }
    }
    Err(too_busy())
}

/// Used by the existence check: a key exists when its metadata does.
pub async fn key_exists(store: &Store, key: &str) -> Result<bool> {
    Ok(store.meta(key).await?.is_some())
}
