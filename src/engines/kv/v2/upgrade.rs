//! Migration of version 1 secrets after a mount is upgraded to version 2.
//!
//! A KV v1 mount stores each secret at its own path in the mount's view; version 2 keeps
//! everything below [`ROOT`](super::record::ROOT). After `sys/mounts/<m>/tune` switches a mount
//! to version 2, the first request to the new backend moves every key outside `kv2/` into the
//! versioned layout as version 1, then serves. Requests arriving meanwhile wait for it.
//!
//! Each key moves in one batch: write its metadata and version 1, delete the v1 record,
//! guarded by the v1 record's storage version and the absence of v2 metadata for that key.
//! Two nodes migrating at once therefore never both move a key, and a crash leaves every key
//! either fully v1 or fully v2; the next backend instance finishes the job. The tune endpoint
//! refuses the upgrade when v1 secrets live below `kv2/` themselves (they would be mistaken
//! for versioned records).

use coffer_storage::Batch;

use crate::core::error::Result;

use super::record::{encode, meta_key, version_key, Config, KeyMeta, Store, VersionData, FORMAT, ROOT};

/// Whether the view holds anything outside the v2 layout.
pub async fn needs_migration(store: &Store) -> Result<bool> {
    Ok(store.view.list("").await?.iter().any(|k| k != ROOT))
}

/// Moves every v1 secret into the v2 layout. Returns how many keys moved.
pub async fn migrate(store: &Store, now: i64) -> Result<usize> {
    if !needs_migration(store).await? {
        return Ok(0);
    }
    let mut moved = 0;
    for key in store.view.list_recursive("").await? {
        if key.starts_with(ROOT) {
            continue;
        }
        let Some(entry) = store.view.get(&key).await? else { continue };
        let data = crate::engines::kv::v1::decode(&entry.value)?;
        if migrate_one(store, &key, data, entry.version, now).await? {
            moved += 1;
        }
    }
    Ok(moved)
}

async fn migrate_one(
    store: &Store,
    key: &str,
    data: serde_json::Map<String, serde_json::Value>,
    v1_version: u64,
    now: i64,
) -> Result<bool> {
    // As Vault does: version 1 added with a window of one version (so `oldest_version` is 1)
    // and without `delete_version_after`.
    let window = Config { format: FORMAT, max_versions: 1, ..Config::default() };
    let mut meta = KeyMeta::new(now);
    let (version, _) = meta.add_version(&window, now);
    let batch = Batch::new()
        .put(version_key(key, version), encode(&VersionData { format: FORMAT, data })?)
        .put(meta_key(key), encode(&meta)?)
        .delete(key)
        .require_version(key, v1_version)
        .require_absent(meta_key(key));
    // A lost race means another migrator (or a v1 writer still in flight) touched the key;
    // whatever is left outside `kv2/` is picked up by the next pass.
    store.apply(batch).await
}
