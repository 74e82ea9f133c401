//! The KV v2 data endpoints: `data/<key>` (read, write, patch, delete), `subkeys/<key>`,
//! `delete|undelete|destroy/<key>`, and the sweep of versions past `delete_version_after`.
//!
//! Each read-modify-write runs in a loop: read the metadata record (and its storage version),
//! decide, and apply one batch guarded by that version. A lost race re-reads and decides
//! again, so a `cas` that no longer matches fails with Vault's mismatch error while an
//! unconditional write simply lands on top of the winner. Destroy and pruning delete the data
//! records in the same batch as the metadata change.

use serde_json::{Map, Value};

use coffer_storage::Batch;

use super::merge::{merge_patch, strip_values};
use super::params::{weak_int, FieldType, Input};
use super::record::{
    encode, meta_key, nanos, version_key, Config, KeyMeta, Store, VersionData, FORMAT, META_PREFIX,
};
use super::reply::{raw_404, too_busy, with_warning, MAX_ATTEMPTS};
use crate::core::error::{Error, Result};
use crate::core::request::{BackendRequest, Response};

const DATA_SCHEMA: &[(&str, FieldType)] = &[
    ("data", FieldType::Map),
    ("options", FieldType::Map),
    ("path", FieldType::String),
    ("version", FieldType::Int),
];
const VERSIONS_SCHEMA: &[(&str, FieldType)] =
    &[("path", FieldType::String), ("versions", FieldType::CommaIntSlice)];
const SUBKEYS_SCHEMA: &[(&str, FieldType)] =
    &[("depth", FieldType::Int), ("path", FieldType::String), ("version", FieldType::Int)];
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

/// Vault's `cas` rule: the given version must be the current one; without one, the write
/// is refused when the mount or the key requires `cas`.
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
    let meta_record = encode(&meta)?;
    let meta_size = meta_record.len();
    let mut batch = Batch::new()
        .put(version_key(key, version), encode(&VersionData { format: FORMAT, data })?)
        .put(meta_key(key), meta_record)
        .require(meta_key(key), read_at);
    for p in pruned {
        batch = batch.delete(version_key(key, p));
    }
    Ok(store.apply_with_meta(batch, key, meta, meta_size).await?.then_some(block))
}

/// `GET data/<key>[?version=N]`.
pub async fn data_read(req: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&req.data, DATA_SCHEMA, true)?;
    let asked = input.int("version")?.filter(|v| *v > 0);
    let (mut out, data) = read_live(req, store, key, asked, "data").await?;
    out.insert("data".into(), Value::Object(data));
    Ok(with_warning(Response::data(out), &input))
}

/// Reads version `asked` (or the current one) of `key` for a read-only endpoint: a response
/// body holding the version's `metadata` block, and the version's data. A deleted or destroyed
/// version is Vault's 404 envelope with that body and `empty_field: null`; an unknown key or
/// version is a plain 404.
async fn read_live(
    req: &BackendRequest,
    store: &Store,
    key: &str,
    asked: Option<i64>,
    empty_field: &str,
) -> Result<(Map<String, Value>, Map<String, Value>)> {
    let now = nanos(req.now);
    for _ in 0..MAX_ATTEMPTS {
        let Some((meta, _)) = store.meta_shared(key).await? else { return Err(Error::NotFound(None)) };
        let version = asked.map(|v| v as u64).unwrap_or(meta.current_version);
        let Some(vm) = meta.versions.get(&version) else { return Err(Error::NotFound(None)) };
        let mut out = Map::new();
        out.insert(empty_field.into(), Value::Null);
        out.insert("metadata".into(), Value::Object(meta.version_block(version, vm)));
        if vm.is_deleted(now) || vm.destroyed {
            return Err(raw_404(req, Some(out), None));
        }
        // Destroyed or pruned between the two reads: look again.
        let Some(data) = store.data(key, version).await? else { continue };
        return Ok((out, data));
    }
    Err(too_busy())
}

/// `POST|PUT data/<key>`.
pub async fn data_write(req: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&req.data, DATA_SCHEMA, false)?;
    if key.is_empty() {
        return Err(Error::bad("missing path"));
    }
    let (config, _) = store.config().await?;
    let data = document(&input)?;
    let cas = cas_option(&input)?;
    let now = nanos(req.now);
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
pub async fn data_patch(req: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&req.data, DATA_SCHEMA, true)?;
    let patch = document(&input)?;
    let cas = cas_option(&input)?;
    let now = nanos(req.now);
    let (config, _) = store.config().await?;
    for _ in 0..MAX_ATTEMPTS {
        let Some((meta, read_at)) = store.meta(key).await? else { return Err(Error::NotFound(None)) };
        check_cas(cas, &config, &meta)?;
        let current = meta.current_version;
        let Some(vm) = meta.versions.get(&current) else { return Err(Error::NotFound(None)) };
        if vm.is_deleted(now) || vm.destroyed {
            return Err(raw_404(req, Some(meta.version_block(current, vm)), None));
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
pub async fn data_delete(req: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    Input::new(&req.data, DATA_SCHEMA, true)?;
    let now = nanos(req.now);
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
pub async fn subkeys(req: &BackendRequest, store: &Store, key: &str) -> Result<Response> {
    let input = Input::new(&req.data, SUBKEYS_SCHEMA, true)?;
    let asked = input.int("version")?.filter(|v| *v > 0);
    let depth = input.int("depth")?.unwrap_or(0);
    let (mut out, mut data) = read_live(req, store, key, asked, "subkeys").await?;
    strip_values(&mut data, depth);
    out.insert("subkeys".into(), Value::Object(data));
    Ok(with_warning(Response::data(out), &input))
}

/// Which of delete / undelete / destroy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionOp {
    Delete,
    Destroy,
    Undelete,
}

/// `POST delete|undelete|destroy/<key>` with `versions`.
pub async fn versions(req: &BackendRequest, store: &Store, key: &str, op: VersionOp) -> Result<Response> {
    let input = Input::new(&req.data, VERSIONS_SCHEMA, true)?;
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
    let now = nanos(req.now);
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
}
