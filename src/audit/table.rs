//! The stored device table (`core/audit`, behind the barrier) and its reconciliation with the
//! devices the configuration declares.

use std::sync::Arc;

use coffer_storage::{Barrier, BarrierError, Batch, StorageError};

use super::chain;
use super::error::AuditError;
use super::options::{AuditSettings, DeclaredDevice};
use super::{DeviceConfig, Source, StoredTable, TABLE_PATH, TABLE_VERSION};

/// The stored table, its storage version, and whether it was in an older format (it is then
/// upgraded in memory: every device gets an id).
pub async fn read(barrier: &Barrier) -> Result<(Vec<DeviceConfig>, Option<u64>, bool), AuditError> {
    let Some(e) = barrier.get(TABLE_PATH).await? else {
        return Ok((Vec::new(), None, false));
    };
    let t: StoredTable = serde_json::from_slice(&e.value)
        .map_err(|err| AuditError::State(format!("corrupt audit table: {err}")))?;
    match t.version {
        TABLE_VERSION => Ok((t.devices, Some(e.version), false)),
        1 => {
            let mut devices = t.devices;
            for d in &mut devices {
                d.source = Source::Api;
                if d.id.is_empty() {
                    d.id = uuid::Uuid::new_v4().to_string();
                }
            }
            Ok((devices, Some(e.version), true))
        }
        v => Err(AuditError::State(format!("unsupported audit table version {v}"))),
    }
}

/// Writes the table if it is still at `expected`; `Ok(false)` on a lost race.
pub async fn write(
    barrier: &Barrier,
    devices: &[DeviceConfig],
    expected: Option<u64>,
) -> Result<bool, AuditError> {
    let t = StoredTable { version: TABLE_VERSION, devices: devices.to_vec() };
    let bytes = serde_json::to_vec(&t).map_err(|e| AuditError::State(e.to_string()))?;
    Ok(barrier.try_apply(Batch::new().put(TABLE_PATH, bytes).require(TABLE_PATH, expected)).await?.is_some())
}

/// Deletes a device's chain key and head (after it was disabled). Best effort.
pub async fn forget_chain(barrier: &Barrier, id: &str) {
    if id.is_empty() {
        return;
    }
    // This node's records, and those an older build kept in replicated storage (a batch never
    // mixes the two). Other nodes keep their own records of the device (a few hundred bytes
    // under an id that is never reused).
    let replicated = Batch::new().delete(chain::legacy_key_path(id)).delete(chain::legacy_head_path(id));
    let local = Batch::new().delete(chain::key_path(id)).delete(chain::head_path(id));
    for batch in [replicated, local] {
        if let Err(e) = barrier.apply(batch).await {
            tracing::warn!(error = %e, "could not delete the chain records of a disabled audit device");
        }
    }
}

/// The id of the device a configuration declares at `path`: the same on every node, so each
/// node's chain records (node-local, by id) still name its device when the stored table
/// arrives from another node.
fn declared_id(path: &str) -> String {
    use sha2::Digest;
    format!("declared-{}", hex::encode(&sha2::Sha256::digest(path.as_bytes())[..16]))
}

/// The definition of a declared device: the one this node runs already (same id and salt) when
/// there is one, else a new one.
fn new_config(d: &DeclaredDevice, running: &[DeviceConfig]) -> DeviceConfig {
    let (id, salt) = match running.iter().find(|r| r.path == d.path && r.source == Source::Config) {
        Some(r) => (r.id.clone(), r.salt.clone()),
        None => (declared_id(&d.path), uuid::Uuid::new_v4().to_string()),
    };
    DeviceConfig {
        path: d.path.clone(),
        kind: d.kind.clone(),
        description: d.description.clone(),
        options: d.options.clone(),
        local: d.local,
        salt,
        id,
        source: Source::Config,
    }
}

/// The stored table as this node runs it: a device the configuration manages runs with this
/// node's own declaration of it, where it has one (its id and salt stay the table's). The nodes
/// of a cluster may declare different files for the same device; the table holds the last
/// leader's.
pub fn as_declared_here(mut configs: Vec<DeviceConfig>, settings: &AuditSettings) -> Vec<DeviceConfig> {
    for c in configs.iter_mut().filter(|c| c.source == Source::Config) {
        if let Some(d) = settings.declared.iter().find(|d| d.path == c.path) {
            c.kind = d.kind.clone();
            c.description = d.description.clone();
            c.options = d.options.clone();
            c.local = d.local;
        }
    }
    configs
}

/// At unseal: makes the table match the configuration, as OpenBao's declarative devices do.
///
/// - A declared device missing from the table is added (new salt, new chain).
/// - A declared device whose definition changed is updated in place; its salt and chain carry
///   over (a new `file_path` starts a new chain segment in the new file).
/// - A device created through the API at a path the configuration now declares is replaced by
///   the declared one (with a warning): the configuration is the operator's word.
/// - A configuration-managed device no longer declared is removed.
///
/// Returns the table as stored. A node that cannot write (a standby, or a leader without a
/// quorum yet) returns the table it would have stored and runs it; the leader reconciles again
/// once it can write ([`reconcile_keeping`]).
pub async fn reconcile(
    barrier: &Arc<Barrier>,
    settings: &AuditSettings,
) -> Result<Vec<DeviceConfig>, AuditError> {
    Ok(reconcile_keeping(barrier, settings, &[]).await?.0)
}

/// [`reconcile`], reusing the definitions of the declared devices in `running` (the devices
/// this node runs), so they carry on unchanged. Also says whether the table is stored as
/// returned (false when this node could not write it).
pub async fn reconcile_keeping(
    barrier: &Arc<Barrier>,
    settings: &AuditSettings,
    running: &[DeviceConfig],
) -> Result<(Vec<DeviceConfig>, bool), AuditError> {
    loop {
        let (mut devices, version, upgraded) = read(barrier).await?;
        let mut changed = upgraded;
        let mut removed: Vec<DeviceConfig> = Vec::new();
        let declared = |path: &str| settings.declared.iter().any(|d| d.path == path);
        let (keep, gone): (Vec<DeviceConfig>, Vec<DeviceConfig>) =
            devices.into_iter().partition(|d| d.source != Source::Config || declared(&d.path));
        devices = keep;
        for d in gone {
            tracing::info!(device = %d.path, "disabling an audit device no longer declared in the configuration");
            changed = true;
            removed.push(d);
        }
        for decl in &settings.declared {
            match devices.iter_mut().find(|d| d.path == decl.path) {
                None => {
                    tracing::info!(device = %decl.path, "enabling an audit device declared in the configuration");
                    devices.push(new_config(decl, running));
                    changed = true;
                }
                Some(d) if d.source == Source::Config => {
                    if d.kind != decl.kind
                        || d.description != decl.description
                        || d.local != decl.local
                        || d.options != decl.options
                    {
                        tracing::info!(device = %decl.path, "updating an audit device whose declaration changed");
                        d.kind = decl.kind.clone();
                        d.description = decl.description.clone();
                        d.local = decl.local;
                        d.options = decl.options.clone();
                        changed = true;
                    }
                }
                Some(d) => {
                    tracing::warn!(device = %decl.path, "an audit device created through the API is replaced by the one the configuration declares at the same path");
                    removed.push(std::mem::replace(d, new_config(decl, running)));
                    changed = true;
                }
            }
        }
        if changed {
            match write(barrier, &devices, version).await {
                Ok(true) => {}
                Ok(false) => continue,
                // On a cluster, a standby (or a node that has not rejoined yet) cannot write the
                // shared table: it runs the declared devices from its own configuration, and the
                // active node stores the table when it unseals with the same declarations.
                Err(AuditError::Barrier(BarrierError::Storage(
                    e @ (StorageError::NotLeader { .. } | StorageError::Unavailable(_)),
                ))) => {
                    tracing::warn!(error = %e, "audit devices declared in the configuration run here without updating the stored table (this node cannot write now)");
                    return Ok((devices, false));
                }
                Err(e) => return Err(e),
            }
        }
        for d in &removed {
            forget_chain(barrier, &d.id).await;
        }
        return Ok((devices, true));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use coffer_storage::testing::mem_barrier as barrier;

    use super::*;

    fn declared(path: &str, file: &str) -> DeclaredDevice {
        DeclaredDevice {
            path: path.into(),
            kind: "file".into(),
            description: String::new(),
            local: false,
            options: BTreeMap::from([("file_path".to_owned(), file.to_owned())]),
        }
    }

    #[tokio::test]
    async fn declared_devices_are_added_updated_and_removed() {
        let b = barrier().await;
        // An API device and a stale config device already stored.
        let api = DeviceConfig { source: Source::Api, ..new_config(&declared("api/", "/tmp/api.log"), &[]) };
        let stale = new_config(&declared("old/", "/tmp/old.log"), &[]);
        let taken =
            DeviceConfig { source: Source::Api, ..new_config(&declared("x/", "/tmp/planted.log"), &[]) };
        assert!(write(&b, &[api.clone(), stale, taken], None).await.unwrap());

        let settings = AuditSettings {
            declared: vec![declared("file/", "/var/log/a.log"), declared("x/", "/var/log/x.log")],
            ..AuditSettings::default()
        };
        let t = reconcile(&b, &settings).await.unwrap();
        let paths: Vec<(&str, Source)> = t.iter().map(|d| (d.path.as_str(), d.source)).collect();
        assert_eq!(paths, [("api/", Source::Api), ("x/", Source::Config), ("file/", Source::Config)]);
        assert_eq!(t[1].options["file_path"], "/var/log/x.log", "the declaration replaced the API device");
        let (stored, _, _) = read(&b).await.unwrap();
        assert_eq!(stored.len(), 3);

        // Unchanged configuration: nothing is rewritten, salts stay.
        let (_, v1, _) = read(&b).await.unwrap();
        let again = reconcile(&b, &settings).await.unwrap();
        let (_, v2, _) = read(&b).await.unwrap();
        assert_eq!(v1, v2);
        assert_eq!(again[2].salt, t[2].salt);

        // A changed declaration keeps salt and id.
        let mut changed = settings.clone();
        changed.declared[0].options.insert("fsync".into(), "true".into());
        let t2 = reconcile(&b, &changed).await.unwrap();
        let f = t2.iter().find(|d| d.path == "file/").unwrap();
        assert_eq!((f.salt.as_str(), f.id.as_str()), (t[2].salt.as_str(), t[2].id.as_str()));
        assert_eq!(f.options["fsync"], "true");
    }

    #[tokio::test]
    async fn version_1_tables_are_read_and_upgraded() {
        let b = barrier().await;
        let v1 = serde_json::json!({"version": 1, "devices": [{"path": "file/", "type": "file",
            "description": "", "options": {"file_path": "/tmp/a.log"}, "local": false, "salt": "s"}]});
        b.put(TABLE_PATH, serde_json::to_vec(&v1).unwrap()).await.unwrap();
        let t = reconcile(&b, &AuditSettings::default()).await.unwrap();
        assert_eq!(t.len(), 1);
        assert!(!t[0].id.is_empty());
        assert_eq!(t[0].source, Source::Api);
        let (again, _, upgraded) = read(&b).await.unwrap();
        assert!(!upgraded, "written back in format {TABLE_VERSION}");
        assert_eq!(again[0].id, t[0].id);
    }

    /// A store that turns into a standby: reads work, writes are refused as on a follower.
    struct Standby {
        inner: coffer_storage::mem::MemStorage,
        standby: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl coffer_storage::Storage for Standby {
        async fn get(&self, key: &str) -> Result<Option<coffer_storage::Entry>, StorageError> {
            self.inner.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.inner.list(prefix).await
        }
        async fn apply(&self, batch: Batch) -> Result<u64, StorageError> {
            if self.standby.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StorageError::NotLeader { leader_api_addr: None });
            }
            self.inner.apply(batch).await
        }
    }

    /// A node restarted with an audit block while another node leads must still unseal
    /// (found by the cluster canary test: "auto-unseal failed: node is not active").
    #[tokio::test]
    async fn a_standby_runs_declared_devices_without_writing_the_table() {
        let store = Arc::new(Standby {
            inner: coffer_storage::mem::MemStorage::new(),
            standby: std::sync::atomic::AtomicBool::new(false),
        });
        let b = coffer_storage::testing::unsealed_barrier(store.clone()).await;
        store.standby.store(true, std::sync::atomic::Ordering::SeqCst);
        let settings =
            AuditSettings { declared: vec![declared("file/", "/tmp/a.log")], ..AuditSettings::default() };
        let devices = reconcile(&b, &settings).await.unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].path, "file/");
        let (stored, _, _) = read(&b).await.unwrap();
        assert!(stored.is_empty(), "nothing written by a standby");
    }
}
