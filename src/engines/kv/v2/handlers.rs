//! The KV v2 endpoints. Each read-modify-write runs in a loop: read the metadata record (and
//! its storage version), decide, and apply one batch guarded by that version. A lost race
//! re-reads and decides again, so a `cas` that no longer matches fails with Vault's mismatch
//! error while an unconditional write simply lands on top of the winner.

use serde_json::{json, Map, Value};

use coffer_storage::Batch;

use crate::core::error::{Error, Result};
use crate::core::request::{BackendRequest, Response};
use crate::policy::Operation;

use super::merge::{merge_patch, strip_values};
use super::params::{custom_metadata, validate_custom_metadata, weak_int, FieldType, Input};
use super::record::{
    encode, meta_key, nanos, version_key, Config, KeyMeta, Store, VersionData, CONFIG_KEY, DVA_DISABLED,
    FORMAT, META_PREFIX,
};

/// Attempts before a heavily contended change gives up (each failed attempt means another
/// writer succeeded, so this bounds starvation, not correctness).
const MAX_ATTEMPTS: usize = 256;

const DATA_SCHEMA: &[(&str, FieldType)] = &[
    ("data", FieldType::Map),
    ("options", FieldType::Map),
    ("path", FieldType::String),
    ("version", FieldType::Int),
];
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
const VERSIONS_SCHEMA: &[(&str, FieldType)] =
    &[("path", FieldType::String), ("versions", FieldType::CommaIntSlice)];
const SUBKEYS_SCHEMA: &[(&str, FieldType)] =
    &[("depth", FieldType::Int), ("path", FieldType::String), ("version", FieldType::Int)];
const CONFIG_SCHEMA: &[(&str, FieldType)] = &[
    ("cas_required", FieldType::Bool),
    ("delete_version_after", FieldType::SignedDurationSecond),
    ("max_versions", FieldType::Int),
    ("metadata_cas_required", FieldType::Bool),
];

/// Warning for operations on `data`, `metadata`, ... without a key.
pub const ROOT_WARNING: &str = "Non-listing operations on the root of a K/V v2 mount are not supported.";

/// Vault's warning for paths a v2 mount does not serve, naming the CLI verb.
pub fn invalid_path_warning(op: Operation) -> String {
    let verb = match op {
        Operation::Create | Operation::Update => "put",
        Operation::Delete => "delete",
        Operation::List => "list",
        Operation::Patch => "patch",
        Operation::Read => "get",
    };
    format!(
        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv {verb}' for this operation."
    )
}

/// A 404 whose body is a full envelope (Vault's `RespondWithStatusCode`), not an error list.
pub fn raw_404(ctx: &BackendRequest, data: Option<Map<String, Value>>, warning: Option<String>) -> Error {
    let mut r =
        Response { data, status: Some(404), mount_type: ctx.mount.kind.clone(), ..Response::default() };
    r.warnings.extend(warning);
    Error::Raw(Box::new(r))
}

fn too_busy() -> Error {
    Error::Unavailable("too many concurrent changes to this key, please retry".into())
}

fn with_warning(mut resp: Response, input: &Input<'_>) -> Response {
    resp.warnings.extend(input.ignored_warning());
    resp
}

/// The `data` document of a write or patch. Vault stores a `null` document for
/// `"data": null` (and then fails to patch it); coffer refuses it like a missing one.
fn document(input: &Input<'_>) -> Result<Map<String, Value>> {
    match input.raw("data") {
        None | Some(Value::Null) => Err(Error::bad("no data provided")),
        Some(_) => Ok(input.map("data")?.unwrap_or_default()),
    }
}

/// The `cas` option: absent, or an integer (Vault's weak decoding; `null` is 0).
fn cas_option(input: &Input<'_>) -> Result<Option<i64>> {
    let Some(options) = input.map("options")? else { return Ok(None) };
    match options.get("cas") {
        None => Ok(None),
        Some(v) => weak_int(v).map(Some).ok_or_else(|| Error::bad("error parsing check-and-set parameter")),
    }
}

fn check_cas(cas: Option<i64>, config: &Config, meta: &KeyMeta) -> Result<()> {
    match cas {
        Some(c) if u64::try_from(c).ok() != Some(meta.current_version) => {
            Err(Error::bad("check-and-set parameter did not match the current version"))
        }
        Some(_) => Ok(()),
        None if config.cas_required || meta.cas_required => {
            Err(Error::bad("check-and-set parameter required for this call"))
        }
        None => Ok(()),
    }
}

/// Adds a version holding `data` and commits it with the metadata in one guarded batch.
/// `Ok(None)` when a concurrent change won the race.
pub(super) async fn commit_version(
    store: &Store,
    key: &str,
    mut meta: KeyMeta,
    read_at: Option<u64>,
    config: &Config,
    data: Map<String, Value>,
    now: i64,
) -> Result<Option<Map<String, Value>>> {
    let (version, pruned) = meta.add_version(config, now);
    let block = match meta.versions.get(&version) {
        Some(vm) => meta.version_block(version, vm),
        None => return Err(Error::internal("kv v2: new version missing from its metadata")),
    };
    let mut batch = Batch::new()
        .put(version_key(key, version), encode(&VersionData { format: FORMAT, data })?)
        .put(meta_key(key), encode(&meta)?)
        .require(meta_key(key), read_at);
    for p in pruned {
        batch = batch.delete(version_key(key, p));
    }
    Ok(store.apply(batch).await?.then_some(block))
}

/// `GET data/<key>[?version=N]`.
pub async fn data_read(ctx: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&ctx.data, DATA_SCHEMA, true)?;
    let asked = input.int("version")?.filter(|v| *v > 0);
    let now = nanos(ctx.now);
    for _ in 0..MAX_ATTEMPTS {
        let Some((meta, _)) = store.meta(key).await? else { return Err(Error::NotFound(None)) };
        let version = asked.map(|v| v as u64).unwrap_or(meta.current_version);
        let Some(vm) = meta.versions.get(&version) else { return Err(Error::NotFound(None)) };
        let mut out = Map::new();
        out.insert("data".into(), Value::Null);
        out.insert("metadata".into(), Value::Object(meta.version_block(version, vm)));
        if vm.is_deleted(now) || vm.destroyed {
            return Err(raw_404(ctx, Some(out), None));
        }
        // Destroyed or pruned between the two reads: look again.
        let Some(data) = store.data(key, version).await? else { continue };
        out.insert("data".into(), Value::Object(data));
        return Ok(with_warning(Response::data(out), &input));
    }
    Err(too_busy())
}

/// `POST|PUT data/<key>`.
pub async fn data_write(ctx: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&ctx.data, DATA_SCHEMA, false)?;
    if key.is_empty() {
        return Err(Error::bad("missing path"));
    }
    let (config, _) = store.config().await?;
    let data = document(&input)?;
    let cas = cas_option(&input)?;
    let now = nanos(ctx.now);
    for _ in 0..MAX_ATTEMPTS {
        let (meta, read_at) = match store.meta(key).await? {
            Some((m, v)) => (m, Some(v)),
            None => (KeyMeta::new(now), None),
        };
        check_cas(cas, &config, &meta)?;
        if let Some(block) = commit_version(store, key, meta, read_at, &config, data.clone(), now).await? {
            return Ok(with_warning(Response::data(block), &input));
        }
    }
    Err(too_busy())
}

/// `PATCH data/<key>`: a JSON merge patch of the current version, stored as a new version.
pub async fn data_patch(ctx: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&ctx.data, DATA_SCHEMA, true)?;
    let patch = document(&input)?;
    let cas = cas_option(&input)?;
    let now = nanos(ctx.now);
    let (config, _) = store.config().await?;
    for _ in 0..MAX_ATTEMPTS {
        let Some((meta, read_at)) = store.meta(key).await? else { return Err(Error::NotFound(None)) };
        check_cas(cas, &config, &meta)?;
        let current = meta.current_version;
        let Some(vm) = meta.versions.get(&current) else { return Err(Error::NotFound(None)) };
        if vm.is_deleted(now) || vm.destroyed {
            return Err(raw_404(ctx, Some(meta.version_block(current, vm)), None));
        }
        let Some(existing) = store.data(key, current).await? else { continue };
        let mut doc = Value::Object(existing);
        merge_patch(&mut doc, &Value::Object(patch.clone()));
        let Value::Object(merged) = doc else {
            return Err(Error::internal("kv v2: merge patch of an object gave a non-object"));
        };
        if let Some(block) = commit_version(store, key, meta, Some(read_at), &config, merged, now).await? {
            return Ok(with_warning(Response::data(block), &input));
        }
    }
    Err(too_busy())
}

/// `DELETE data/<key>`: soft-deletes the current version.
pub async fn data_delete(ctx: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    Input::new(&ctx.data, DATA_SCHEMA, true)?;
    let now = nanos(ctx.now);
    for _ in 0..MAX_ATTEMPTS {
        let Some((mut meta, read_at)) = store.meta(key).await? else { return Ok(Response::empty()) };
        let current = meta.current_version;
        let Some(vm) = meta.versions.get_mut(&current) else { return Ok(Response::empty()) };
        if vm.destroyed || vm.is_deleted(now) {
            return Ok(Response::empty());
        }
        vm.deletion_time = Some(now);
        vm.expires_at = None;
        let batch = Batch::new().put(meta_key(key), encode(&meta)?).require_version(meta_key(key), read_at);
        if store.apply(batch).await? {
            return Ok(Response::empty());
        }
    }
    Err(too_busy())
}

/// `GET subkeys/<key>[?version=N&depth=D]`.
pub async fn subkeys(ctx: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&ctx.data, SUBKEYS_SCHEMA, true)?;
    let asked = input.int("version")?.filter(|v| *v > 0);
    let depth = input.int("depth")?.unwrap_or(0);
    let now = nanos(ctx.now);
    for _ in 0..MAX_ATTEMPTS {
        let Some((meta, _)) = store.meta(key).await? else { return Err(Error::NotFound(None)) };
        let version = asked.map(|v| v as u64).unwrap_or(meta.current_version);
        let Some(vm) = meta.versions.get(&version) else { return Err(Error::NotFound(None)) };
        let mut out = Map::new();
        out.insert("metadata".into(), Value::Object(meta.version_block(version, vm)));
        out.insert("subkeys".into(), Value::Null);
        if vm.is_deleted(now) || vm.destroyed {
            return Err(raw_404(ctx, Some(out), None));
        }
        let Some(mut data) = store.data(key, version).await? else { continue };
        strip_values(&mut data, depth);
        out.insert("subkeys".into(), Value::Object(data));
        return Ok(with_warning(Response::data(out), &input));
    }
    Err(too_busy())
}

/// Which of delete / undelete / destroy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionOp {
    Delete,
    Destroy,
    Undelete,
}

/// `POST delete|undelete|destroy/<key>` with `versions`.
pub async fn versions(ctx: &BackendRequest, store: &Store, key: &str, op: VersionOp) -> Result<Response> {
    let input = Input::new(&ctx.data, VERSIONS_SCHEMA, true)?;
    let wanted = input.ints("versions")?;
    if wanted.is_empty() {
        return Err(Error::bad(match op {
            VersionOp::Destroy => "no version number provided",
            VersionOp::Delete | VersionOp::Undelete => "No version number provided",
        }));
    }
    let config = match op {
        VersionOp::Undelete => Some(store.config().await?.0),
        VersionOp::Delete | VersionOp::Destroy => None,
    };
    let now = nanos(ctx.now);
    for _ in 0..MAX_ATTEMPTS {
        let Some((mut meta, read_at)) = store.meta(key).await? else { return Ok(Response::empty()) };
        let expiry = config.as_ref().and_then(|c| meta.expiry(c, now));
        let mut changed = false;
        let mut erase = Vec::new();
        for n in wanted.iter().filter_map(|v| u64::try_from(*v).ok()) {
            let Some(vm) = meta.versions.get_mut(&n) else { continue };
            if vm.destroyed {
                continue;
            }
            match op {
                VersionOp::Delete => {
                    if !vm.is_deleted(now) {
                        vm.deletion_time = Some(now);
                        vm.expires_at = None;
                        changed = true;
                    }
                }
                VersionOp::Undelete => {
                    vm.deletion_time = None;
                    vm.expires_at = expiry;
                    changed = true;
                }
                VersionOp::Destroy => {
                    vm.destroyed = true;
                    erase.push(n);
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(Response::empty());
        }
        let mut batch =
            Batch::new().put(meta_key(key), encode(&meta)?).require_version(meta_key(key), read_at);
        // Destroy erases the data in the same batch that marks it destroyed.
        for n in erase {
            batch = batch.delete(version_key(key, n));
        }
        if store.apply(batch).await? {
            return Ok(Response::empty());
        }
    }
    Err(too_busy())
}

/// `GET metadata/<key>`.
pub async fn metadata_read(ctx: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&ctx.data, METADATA_SCHEMA, true)?;
    let Some((meta, _)) = store.meta(key).await? else { return Err(Error::NotFound(None)) };
    Ok(with_warning(Response::data(meta.to_json()), &input))
}

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
pub async fn metadata_list(ctx: &BackendRequest, store: &Store, prefix: &str) -> Result<Response> {
    let input = Input::new(&ctx.data, METADATA_SCHEMA, true)?;
    let keys = list_keys(store, prefix, &input).await?;
    Ok(with_warning(Response::keys(keys), &input))
}

/// `LIST detailed-metadata/<prefix>/` (OpenBao): keys plus each key's metadata.
pub async fn detailed_list(ctx: &BackendRequest, store: &Store, prefix: &str) -> Result<Response> {
    let input = Input::new(&ctx.data, LIST_SCHEMA, true)?;
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
    fn parse(input: &Input<'_>) -> Result<Self> {
        Ok(Self {
            max_versions: input.max_versions()?,
            cas_required: input.bool("cas_required")?,
            delete_version_after: input.int("delete_version_after")?,
            metadata_cas_required: input.bool("metadata_cas_required")?,
            metadata_cas: input.int("metadata_cas")?,
        })
    }

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

fn meta_response(warnings: Vec<String>, input: &Input<'_>) -> Response {
    if warnings.is_empty() {
        return Response::empty();
    }
    let mut r = Response::empty();
    r.warnings = warnings;
    with_warning(r, input)
}

/// `POST|PUT metadata/<key>`: only given settings change; creates metadata for a new key.
pub async fn metadata_write(ctx: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&ctx.data, METADATA_SCHEMA, false)?;
    if key.is_empty() {
        return Err(Error::bad("missing path"));
    }
    let update = MetaUpdate::parse(&input)?;
    // `"custom_metadata": null` clears it, as Vault's map decoding of `nil` does.
    let custom = match ctx.data.get("custom_metadata") {
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
    let now = nanos(ctx.now);
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
pub async fn metadata_patch(ctx: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&ctx.data, METADATA_SCHEMA, true)?;
    if key.is_empty() {
        return Err(Error::bad("missing path"));
    }
    let update = MetaUpdate::parse(&input)?;
    // `None`: unchanged; `Some(None)`: cleared; `Some(Some(patch))`: merged.
    let custom: Option<Option<Map<String, Value>>> = match ctx.data.get("custom_metadata") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => {
            let raw = input.map("custom_metadata")?.unwrap_or_default();
            validate_custom_metadata(&custom_metadata(&raw, true)?)?;
            Some(Some(raw))
        }
    };
    let (config, _) = store.config().await?;
    let now = nanos(ctx.now);
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
pub async fn metadata_delete(ctx: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    Input::new(&ctx.data, METADATA_SCHEMA, true)?;
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
pub async fn config_read(ctx: &BackendRequest, store: &Store) -> Result<Response> {
    let input = Input::new(&ctx.data, CONFIG_SCHEMA, true)?;
    let (config, _) = store.config().await?;
    Ok(with_warning(Response::data(config.to_json()), &input))
}

/// `POST|PUT config`: only given settings change.
pub async fn config_write(ctx: &BackendRequest, store: &Store) -> Result<Response> {
    let input = Input::new(&ctx.data, CONFIG_SCHEMA, true)?;
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

/// Soft-deletes every version whose scheduled deletion (`delete_version_after`) has passed,
/// recording it as an actual deletion. Reads already hide such versions; the sweep makes the
/// stored history say so. Returns how many versions it swept.
pub async fn sweep_expired(store: &Store, now: i64) -> Result<usize> {
    let mut swept = 0;
    for full in store.view.list_recursive(META_PREFIX).await? {
        // Let requests run between keys: the sweep is housekeeping (reads already hide
        // expired versions), never a reason for latency.
        tokio::task::yield_now().await;
        let Some(key) = full.strip_prefix(META_PREFIX) else { continue };
        for _ in 0..MAX_ATTEMPTS {
            let Some((mut meta, read_at)) = store.meta(key).await? else { break };
            let mut n = 0;
            for vm in meta.versions.values_mut() {
                if let Some(t) = vm.expires_at.filter(|t| *t < now) {
                    if vm.deletion_time.is_none() {
                        vm.deletion_time = Some(t);
                    }
                    vm.expires_at = None;
                    n += 1;
                }
            }
            if n == 0 {
                break;
            }
            let batch =
                Batch::new().put(meta_key(key), encode(&meta)?).require_version(meta_key(key), read_at);
            if store.apply(batch).await? {
                swept += n;
                break;
            }
        }
    }
    Ok(swept)
}

/// Used by the existence check: a key exists when its metadata does.
pub async fn key_exists(store: &Store, key: &str) -> Result<bool> {
    Ok(store.meta(key).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_rules() {
        let cfg = Config::default();
        let mut m = KeyMeta::new(0);
        assert!(check_cas(None, &cfg, &m).is_ok());
        assert!(check_cas(Some(0), &cfg, &m).is_ok());
        assert!(check_cas(Some(1), &cfg, &m).is_err());
        m.current_version = 3;
        assert!(check_cas(Some(3), &cfg, &m).is_ok());
        assert!(check_cas(Some(-1), &cfg, &m).is_err());
        m.cas_required = true;
        assert_eq!(
            check_cas(None, &cfg, &m).unwrap_err().to_string(),
            "check-and-set parameter required for this call"
        );
    }

    #[test]
    fn invalid_path_names_the_cli_verb() {
        assert!(invalid_path_warning(Operation::Update).ends_with("use 'vault kv put' for this operation."));
        assert!(invalid_path_warning(Operation::Read).contains("'vault kv get'"));
    }
}
