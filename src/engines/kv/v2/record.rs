//! Stored records of a KV v2 mount and their layout in the mount's view.
//!
//! ```text
//!   kv2/config                  engine settings               (Config)
//!   kv2/meta/<key>              one per secret                (KeyMeta: versions, settings)
//!   kv2/versions/<key>/<n>      one per live version          (the secret data of version n)
//! ```
//!
//! A version record is parsed from the right (`<n>` is the last segment), so keys that contain
//! `/` cannot collide. Every change to a secret is one storage batch guarded by the version of
//! its metadata record as read, so concurrent writers never both win; destroying and pruning
//! delete version records in the same batch as the metadata update.
//!
//! Every record carries `format` (currently 1) and is decoded through [`decode`], the single
//! place a future format migration goes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use coffer_storage::{Batch, View};

use crate::core::error::{Error, Result};
use crate::util::duration::format_go_seconds;
use crate::util::timefmt::rfc3339_nano;

/// Current format of every KV v2 record.
pub const FORMAT: u32 = 1;
/// Versions kept per key when neither the key nor the engine sets `max_versions`.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;
/// Engine `delete_version_after` value meaning "disabled on every key" (Vault's -1s).
pub const DVA_DISABLED: i64 = -1;

/// The view prefix under which all v2 records live.
pub const ROOT: &str = "kv2/";
/// The engine settings record.
pub const CONFIG_KEY: &str = "kv2/config";
/// Prefix of the per-key metadata records.
pub const META_PREFIX: &str = "kv2/meta/";

/// Storage key of a secret's metadata.
pub fn meta_key(key: &str) -> String {
    [META_PREFIX, key].concat()
}

/// Storage key of one version's data.
pub fn version_key(key: &str, version: u64) -> String {
    format!("kv2/versions/{key}/{version}")
}

/// Engine settings (`<mount>/config`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
pub struct Config {
    pub format: u32,
    /// 0 = default (10).
    pub max_versions: u32,
    pub cas_required: bool,
    /// OpenBao: every metadata write must carry `metadata_cas`.
    #[serde(default)]
    pub metadata_cas_required: bool,
    /// Seconds: 0 = unset, [`DVA_DISABLED`] = disabled on all keys.
    pub delete_version_after: i64,
}

impl Config {
    /// The `config` read response.
    pub fn to_json(&self) -> Map<String, Value> {
        obj(json!({
            "cas_required": self.cas_required,
            "delete_version_after": format_go_seconds(self.delete_version_after),
            "max_versions": self.max_versions,
            "metadata_cas_required": self.metadata_cas_required,
        }))
    }

    fn dva_disabled(&self) -> bool {
        self.delete_version_after == DVA_DISABLED
    }
}

/// One version in a key's history.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
pub struct VersionMeta {
    /// Unix nanoseconds.
    pub created_time: i64,
    /// When the version was soft-deleted (explicit delete, or an expiry the cleaner swept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<i64>,
    /// Scheduled deletion from `delete_version_after`, not yet swept. Reads treat a past value
    /// exactly like `deletion_time`; clients see whichever is set as `deletion_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    pub destroyed: bool,
}

impl VersionMeta {
    /// The `deletion_time` clients see.
    pub fn shown_deletion(&self) -> Option<i64> {
        self.deletion_time.or(self.expires_at)
    }

    /// Soft-deleted as of `now`. An explicit deletion (`deletion_time`, only ever set to the
    /// time of a delete or of the sweep that found an expiry) counts at once, whatever `now` is;
    /// only a scheduled one (`expires_at`) waits for its time (Vault: strictly before now).
    ///
    /// Comparing `deletion_time` with `now` as well would make a delete's visibility depend on
    /// the reading node's clock: a follower's cluster time trails the leader's by the delivery
    /// delay of the append-entries that carried it, and moves back when a late one arrives, so
    /// a read right after an acknowledged delete could return the deleted version (found by the
    /// chaos test: a delete acknowledged, then a read a few milliseconds later, on another node
    /// or the same one, returning the version it deleted).
    pub fn is_deleted(&self, now: i64) -> bool {
        self.deletion_time.is_some() || self.expires_at.is_some_and(|t| t < now)
    }

    /// `{created_time, deletion_time, destroyed}`.
    pub fn to_json(&self) -> Value {
        json!({
            "created_time": timestamp(self.created_time),
            "deletion_time": self.shown_deletion().map(timestamp).unwrap_or_default(),
            "destroyed": self.destroyed,
        })
    }
}

/// Everything known about one secret except its data.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
pub struct KeyMeta {
    pub format: u32,
    pub current_version: u64,
    pub oldest_version: u64,
    /// 0 = engine setting.
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds, 0 = engine setting.
    pub delete_version_after: i64,
    pub custom_metadata: BTreeMap<String, String>,
    pub created_time: i64,
    pub updated_time: i64,
    /// OpenBao: bumped by every metadata write, checked against `metadata_cas`.
    #[serde(default)]
    pub current_metadata_version: u64,
    #[serde(default)]
    pub metadata_cas_required: bool,
    pub versions: BTreeMap<u64, VersionMeta>,
}

impl KeyMeta {
    /// A key with no versions yet.
    pub fn new(now: i64) -> Self {
        Self { format: FORMAT, created_time: now, updated_time: now, ..Self::default() }
    }

    /// `custom_metadata` as Vault renders it (`null` when empty).
    pub fn custom_json(&self) -> Value {
        if self.custom_metadata.is_empty() {
            Value::Null
        } else {
            json!(self.custom_metadata)
        }
    }

    /// The per-version block of data reads and writes.
    pub fn version_block(&self, version: u64, vm: &VersionMeta) -> Map<String, Value> {
        obj(json!({
            "created_time": timestamp(vm.created_time),
            "custom_metadata": self.custom_json(),
            "deletion_time": vm.shown_deletion().map(timestamp).unwrap_or_default(),
            "destroyed": vm.destroyed,
            "version": version,
        }))
    }

    /// The `metadata/<key>` read response.
    pub fn to_json(&self) -> Map<String, Value> {
        let versions: Map<String, Value> =
            self.versions.iter().map(|(n, vm)| (n.to_string(), vm.to_json())).collect();
        obj(json!({
            "cas_required": self.cas_required,
            "created_time": timestamp(self.created_time),
            "current_metadata_version": self.current_metadata_version,
            "current_version": self.current_version,
            "custom_metadata": self.custom_json(),
            "delete_version_after": format_go_seconds(self.delete_version_after),
            "max_versions": self.max_versions,
            "metadata_cas_required": self.metadata_cas_required,
            "oldest_version": self.oldest_version,
            "updated_time": timestamp(self.updated_time),
            "versions": versions,
        }))
    }

    /// Deletion time for a version created (or undeleted) at `from`: `from` plus the smaller
    /// non-zero of the engine's and the key's `delete_version_after`, unless disabled.
    pub fn expiry(&self, config: &Config, from: i64) -> Option<i64> {
        if config.dva_disabled() {
            return None;
        }
        let secs = match (config.delete_version_after.max(0), self.delete_version_after) {
            (0, 0) => return None,
            (0, k) => k,
            (c, 0) => c,
            (c, k) => c.min(k),
        };
        Some(from.saturating_add(secs.saturating_mul(1_000_000_000)))
    }

    /// Adds version `current + 1` and slides the window of kept versions (Vault's
    /// `AddVersion`). Returns the new version number and the versions to erase.
    pub fn add_version(&mut self, config: &Config, now: i64) -> (u64, Vec<u64>) {
        let version = self.current_version + 1;
        self.current_version = version;
        let expires_at = self.expiry(config, now);
        self.versions
            .insert(version, VersionMeta { created_time: now, expires_at, ..VersionMeta::default() });
        self.updated_time = now;
        if self.created_time == 0 {
            self.created_time = now;
        }
        let max = match self.max_versions.max(config.max_versions) {
            0 => DEFAULT_MAX_VERSIONS,
            m => m,
        };
        let mut pruned = Vec::new();
        if self.current_version - self.oldest_version >= u64::from(max) {
            let last = self.current_version - u64::from(max);
            for v in self.oldest_version..=last {
                if self.versions.remove(&v).is_some() {
                    pruned.push(v);
                }
            }
            self.oldest_version = last + 1;
        }
        (version, pruned)
    }
}

/// A version's data as stored.
#[derive(Deserialize, Serialize)]
pub struct VersionData {
    pub format: u32,
    pub data: Map<String, Value>,
}

/// RFC 3339 with nanoseconds, as Vault prints timestamps.
pub fn timestamp(unix_nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nanos))
        .map(rfc3339_nano)
        .unwrap_or_else(|_| crate::util::timefmt::GO_ZERO_TIME.to_owned())
}

/// Unix nanoseconds of a time (saturating far outside 1678..2262).
pub fn nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A stored record that carries its format version.
pub trait Record: DeserializeOwned {
    fn format(&self) -> u32;
}

impl Record for Config {
    fn format(&self) -> u32 {
        self.format
    }
}

impl Record for KeyMeta {
    fn format(&self) -> u32 {
        self.format
    }
}

impl Record for VersionData {
    fn format(&self) -> u32 {
        self.format
    }
}

/// Decodes a stored record, checking its format version. One parse when the record is of the
/// current format (every read of a secret decodes two records); the format alone is read only
/// to explain a failure.
pub fn decode<T: Record>(what: &str, raw: &[u8]) -> Result<T> {
    #[derive(Deserialize)]
    struct Head {
        format: u32,
    }
    let full = serde_json::from_slice::<T>(raw);
    if let Ok(record) = &full {
        if record.format() == FORMAT {
            return full.map_err(|e| Error::internal(format!("corrupt kv v2 {what} record: {e}")));
        }
    }
    let head: Head = serde_json::from_slice(raw)
        .map_err(|e| Error::internal(format!("corrupt kv v2 {what} record: {e}")))?;
    match (head.format, full) {
        (FORMAT, Err(e)) => Err(Error::internal(format!("corrupt kv v2 {what} record: {e}"))),
        (other, _) => Err(Error::internal(format!("unsupported kv v2 {what} record format {other}"))),
    }
}

/// Typed access to a mount's records.
#[derive(Clone, Debug)]
pub struct Store {
    pub view: View,
    metas: Arc<MetaCache>,
}

/// How many decoded metadata records a mount keeps, and how many bytes of records (as stored,
/// before decoding) they may add up to; past either, all are dropped. Anyone who may write a
/// mount decides how large its metadata records are (custom metadata, version counts), so the
/// memory bound is in bytes, not only in records.
const META_CACHE_CAP: usize = 4096;
const META_CACHE_BYTES: usize = 4 << 20;
/// Records larger than this are decoded on every use and never kept.
const META_CACHE_MAX_RECORD: usize = 16 << 10;

/// A mount's decoded metadata records, each with the storage version it was decoded from.
///
/// An entry is used only when the record's storage version, read from storage for every use,
/// is still the one it was decoded from. Versions are never reused for different contents (a
/// write, and a snapshot restore, stamp records with the version of the log entry that wrote
/// them), so a hit returns exactly what decoding the stored record would: no invalidation is
/// needed, replicated changes included, and a read is as fresh as the storage read behind it.
/// The version check costs a storage lookup; a hit saves the record's decryption and JSON
/// decoding. Metadata holds no secret values (Vault serves it under a capability of its own).
#[derive(Debug, Default)]
pub struct MetaCache {
    inner: Mutex<Metas>,
}

#[derive(Debug, Default)]
struct Metas {
    /// Key → (storage version, decoded record, stored size).
    map: HashMap<String, (u64, Arc<KeyMeta>, usize)>,
    bytes: usize,
}

impl MetaCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Metas> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Metas {
    /// The record of `key` if it was decoded from storage version `version`.
    fn get(&self, key: &str, version: u64) -> Option<Arc<KeyMeta>> {
        self.map.get(key).filter(|(v, _, _)| *v == version).map(|(_, m, _)| Arc::clone(m))
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, _, size)) = self.map.remove(key) {
            self.bytes -= size;
        }
    }

    /// Keeps `meta` (stored as `size` bytes) as `key`'s record at `version`.
    fn put(&mut self, key: &str, version: u64, meta: Arc<KeyMeta>, size: usize) {
        self.remove(key);
        if size > META_CACHE_MAX_RECORD {
            return;
        }
        if self.map.len() >= META_CACHE_CAP || self.bytes + size > META_CACHE_BYTES {
            self.map.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.map.insert(key.to_owned(), (version, meta, size));
    }
}

impl Store {
    /// The engine settings (defaults when never written) and the record's storage version.
    pub async fn config(&self) -> Result<(Config, Option<u64>)> {
        match self.view.get(CONFIG_KEY).await? {
            None => Ok((Config { format: FORMAT, ..Config::default() }, None)),
            Some(e) => Ok((decode("config", &e.value)?, Some(e.version))),
        }
    }

    /// The store of a mount whose decoded metadata `metas` keeps.
    pub fn new(view: View, metas: &Arc<MetaCache>) -> Self {
        Self { view, metas: Arc::clone(metas) }
    }

    /// A key's metadata and its storage version, to change and write back.
    pub async fn meta(&self, key: &str) -> Result<Option<(KeyMeta, u64)>> {
        Ok(self.meta_shared(key).await?.map(|(m, v)| (KeyMeta::clone(&m), v)))
    }

    /// A key's metadata and its storage version, shared with the mount's cache ([`MetaCache`]).
    pub async fn meta_shared(&self, key: &str) -> Result<Option<(Arc<KeyMeta>, u64)>> {
        // Keys never end in `/` (writes to such paths are refused before they get here).
        if key.is_empty() || key.ends_with('/') {
            return Ok(None);
        }
        let mkey = meta_key(key);
        if self.metas.lock().map.contains_key(key) {
            let stored = self.view.version(&mkey).await?;
            let mut metas = self.metas.lock();
            match stored {
                None => {
                    metas.remove(key);
                    return Ok(None);
                }
                Some(v) => {
                    if let Some(meta) = metas.get(key, v) {
                        return Ok(Some((meta, v)));
                    }
                }
            }
        }
        let Some(e) = self.view.get(&mkey).await? else {
            self.metas.lock().remove(key);
            return Ok(None);
        };
        let meta: Arc<KeyMeta> = Arc::new(decode("metadata", &e.value)?);
        // A slower reader may put back an older version: the next use's version check skips it.
        self.metas.lock().put(key, e.version, Arc::clone(&meta), e.value.len());
        Ok(Some((meta, e.version)))
    }

    /// The data of one version; `Ok(None)` if it is gone.
    pub async fn data(&self, key: &str, version: u64) -> Result<Option<Map<String, Value>>> {
        match self.view.get(&version_key(key, version)).await? {
            None => Ok(None),
            Some(e) => Ok(Some(decode::<VersionData>("version", &e.value)?.data)),
        }
    }

    /// Applies a batch; `Ok(false)` when a precondition failed (a concurrent change won).
    pub async fn apply(&self, batch: Batch) -> Result<bool> {
        Ok(self.view.try_apply(batch).await?.is_some())
    }

    /// Applies a batch that writes `meta` (stored as `size` bytes) as `key`'s metadata record
    /// and keeps it decoded (the next read or write of the key then skips decoding it);
    /// `Ok(false)` as [`Self::apply`].
    pub async fn apply_with_meta(&self, batch: Batch, key: &str, meta: KeyMeta, size: usize) -> Result<bool> {
        let Some(version) = self.view.try_apply(batch).await? else { return Ok(false) };
        self.metas.lock().put(key, version, Arc::new(meta), size);
        Ok(true)
    }
}

/// Serialises a record.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(record)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_delete_counts_whatever_the_readers_clock_says() {
        let now = 1_000_000;
        let deleted_later = VersionMeta { deletion_time: Some(now + 50_000_000), ..VersionMeta::default() };
        assert!(deleted_later.is_deleted(now), "a delete stamped by a clock ahead of this one");
        let scheduled = VersionMeta { expires_at: Some(now + 1), ..VersionMeta::default() };
        assert!(!scheduled.is_deleted(now), "a scheduled deletion waits for its time");
        assert!(scheduled.is_deleted(now + 2));
        assert!(!VersionMeta::default().is_deleted(now));
    }

    #[test]
    fn decoded_metadata_is_bounded_in_records_and_bytes() {
        let meta = Arc::new(KeyMeta::new(1));
        let mut m = Metas::default();
        m.put("big", 1, Arc::clone(&meta), META_CACHE_MAX_RECORD + 1);
        assert!(m.get("big", 1).is_none(), "a record over the size limit is not kept");
        m.put("k", 7, Arc::clone(&meta), 100);
        assert!(m.get("k", 7).is_some() && m.get("k", 8).is_none(), "only at the version it came from");
        m.put("k", 8, Arc::clone(&meta), 50);
        assert_eq!((m.map.len(), m.bytes), (1, 50), "a newer version replaces the entry and its size");
        // Bytes: records of the largest kept size fill the budget, the next one starts afresh.
        let mut m = Metas::default();
        let per = META_CACHE_MAX_RECORD;
        for i in 0..META_CACHE_BYTES / per {
            m.put(&format!("b{i}"), 1, Arc::clone(&meta), per);
        }
        assert!(m.bytes <= META_CACHE_BYTES);
        m.put("one-more", 1, Arc::clone(&meta), per);
        assert_eq!((m.map.len(), m.bytes), (1, per));
        // Records: the count is bounded too.
        for i in 0..=META_CACHE_CAP {
            m.put(&format!("c{i}"), 1, Arc::clone(&meta), 1);
        }
        assert!(m.map.len() <= META_CACHE_CAP && m.bytes == m.map.len());
    }

    #[test]
    fn pruning_follows_vaults_window() {
        let cfg = Config::default();
        let mut m = KeyMeta::new(1);
        m.max_versions = 2;
        let mut all_pruned = Vec::new();
        for i in 0..4 {
            let (v, pruned) = m.add_version(&cfg, 10 + i);
            assert_eq!(v, (i + 1) as u64);
            all_pruned.extend(pruned);
        }
        assert_eq!(m.oldest_version, 3);
        assert_eq!(m.versions.keys().copied().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(all_pruned, vec![1, 2]);
        // Default of 10: the tenth write moves oldest_version to 1 without dropping anything.
        let mut m = KeyMeta::new(1);
        for i in 0..10 {
            assert!(m.add_version(&cfg, i).1.is_empty());
        }
        assert_eq!(m.oldest_version, 1);
        assert_eq!(m.add_version(&cfg, 11).1, vec![1]);
    }

    #[test]
    fn expiry_takes_the_smaller_setting() {
        let mut cfg = Config::default();
        let mut m = KeyMeta::new(0);
        assert_eq!(m.expiry(&cfg, 0), None);
        cfg.delete_version_after = 10;
        assert_eq!(m.expiry(&cfg, 0), Some(10_000_000_000));
        m.delete_version_after = 5;
        assert_eq!(m.expiry(&cfg, 0), Some(5_000_000_000));
        cfg.delete_version_after = DVA_DISABLED;
        assert_eq!(m.expiry(&cfg, 0), None);
    }

    #[test]
    fn records_carry_a_format() {
        let raw = encode(&KeyMeta::new(5)).unwrap();
        let back: KeyMeta = decode("metadata", &raw).unwrap();
        assert_eq!(back.created_time, 5);
        let err = |raw: &[u8]| format!("{:?}", decode::<KeyMeta>("metadata", raw).err().unwrap());
        assert!(err(br#"{"format":9}"#).contains("unsupported kv v2 metadata record format 9"));
        // A whole record of another format: refused for its format, not taken as this one.
        let mut other = KeyMeta::new(5);
        other.format = FORMAT + 1;
        let msg = err(&encode(&other).unwrap());
        assert!(msg.contains(&format!("unsupported kv v2 metadata record format {}", FORMAT + 1)), "{msg}");
        assert!(err(br#"{"format":1,"current_version":"x"}"#).contains("corrupt kv v2 metadata record"));
        assert!(err(b"not json").contains("corrupt kv v2 metadata record"));
        assert_eq!(timestamp(1_521_685_446_945_319_214), "2018-03-22T02:24:06.945319214Z");
    }
}
