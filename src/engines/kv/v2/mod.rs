//! KV version 2: versioned secrets with check-and-set, soft deletion, destruction, metadata,
//! subkeys and `delete_version_after`, as Vault's `kv` engine with `options.version=2`.
//!
//! # What it trusts and guarantees
//!
//! * Storage is reached only through the mount's view (see `record` for the layout). Every
//!   change to a secret is **one** batch guarded by the storage version of the secret's
//!   metadata record as it was read, so two writers racing with the same `cas` can never both
//!   win: the loser re-reads, sees the new current version and fails with Vault's mismatch
//!   error. Destroy and version pruning delete the data records in the same batch.
//! * Destroyed versions keep only their metadata; their data record is deleted from storage.
//! * Timestamps are taken once per request ([`BackendRequest::now`]) and rendered as RFC 3339 with
//!   nanoseconds; durations as Go duration strings.
//! * Errors never contain submitted values (CVE-2025-4166), only field names and JSON types.
//!
//! # Upgrade from version 1
//!
//! After a version 1 mount is tuned to version 2, the first request migrates its secrets
//! (see `upgrade`); the cleaner re-checks for stragglers on every tick.
//!
//! # Background cleaner
//!
//! The core's leader-gated scheduler runs [`Backend::periodic`] about every
//! [`SWEEP_INTERVAL`]: it finishes any version 1 migration and records versions whose
//! `delete_version_after` expiry has passed as soft-deleted. Reads never depend on it: an
//! expired version is hidden as soon as its time has passed.
//!
//! # Files
//!
//! `path` parses the relative path once; `data` and `metadata` are the endpoints; `reply` holds
//! what they share (retry bound, Vault's warnings and 404 envelope); `record` the storage layout
//! and records; `params` Vault's field decoding; `merge` JSON merge patch and subkeys.

mod data;
mod merge;
mod metadata;
mod params;
mod path;
mod record;
mod reply;
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use coffer_storage::View;

use crate::core::backend::{Backend, BackendEnv};
use crate::core::error::{Error, Result};
use crate::core::mounts::MountEntry;
use crate::core::request::{BackendRequest, Response};
use crate::policy::Operation;

use self::data::VersionOp;
use self::path::KvPath;
use self::record::Store;
use self::reply::{invalid_path_warning, raw_404, ROOT_WARNING};

pub use self::record::ROOT as STORAGE_ROOT;

/// How often the cleaner looks for expired versions.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The KV v2 backend.
pub struct KvV2 {
    inner: Arc<Inner>,
}

/// State shared with the cleaner, which holds it weakly and stops when it is gone.
#[derive(Default)]
struct Inner {
    /// Set once version 1 secrets left behind by an upgrade have been migrated.
    ready: tokio::sync::OnceCell<()>,
    /// The mount's decoded metadata records.
    metas: Arc<record::MetaCache>,
}

impl Inner {
    /// Migrates version 1 secrets on first use; later calls return at once.
    async fn ready(&self, store: &Store, now: time::OffsetDateTime) -> Result<()> {
        self.ready
            .get_or_try_init(|| async {
                let moved = upgrade::migrate(store, record::nanos(now)).await?;
                if moved > 0 {
                    tracing::info!(prefix = %store.view.prefix(), keys = moved, "migrated kv version 1 secrets to version 2");
                }
                Ok::<(), Error>(())
            })
            .await
            .map(|_| ())
    }
}

impl KvV2 {
    /// A backend for a mount (the version cleaner runs through [`Backend::periodic`]).
    pub fn new(_env: BackendEnv) -> Self {
        Self { inner: Arc::new(Inner::default()) }
    }
}

/// One cleaner pass: finish any version-1 migration, then soft-delete versions past their
/// `delete_version_after`.
async fn clean(inner: &Inner, store: &Store, now: time::OffsetDateTime) -> Result<usize> {
    inner.ready(store, now).await?;
    // Version 1 writes still in flight during an upgrade land after the first pass.
    upgrade::migrate(store, record::nanos(now)).await?;
    data::sweep_expired(store, record::nanos(now)).await
}

#[async_trait]
impl Backend for KvV2 {
    fn periodic_interval(&self) -> Option<Duration> {
        Some(SWEEP_INTERVAL)
    }

    /// The version cleaner (leader only, by the scheduler).
    async fn periodic(&self, view: &View, mount: &MountEntry, now: time::OffsetDateTime) -> Result<()> {
        let store = Store::new(view.clone(), &self.inner.metas);
        match clean(&self.inner, &store, now).await? {
            0 => {}
            n => {
                tracing::debug!(mount = %mount.route_prefix(), versions = n, "kv v2 cleaner soft-deleted expired versions")
            }
        }
        Ok(())
    }

    async fn exists(&self, req: &BackendRequest) -> Result<Option<bool>> {
        let store = Store::new(req.view.clone(), &self.inner.metas);
        self.inner.ready(&store, req.now).await?;
        match KvPath::parse(&req.path) {
            KvPath::Data(key) | KvPath::Metadata(key) => Ok(Some(metadata::key_exists(&store, key).await?)),
            _ => Ok(None),
        }
    }

    async fn handle(&self, req: &BackendRequest) -> Result<Response> {
        use Operation::{Create, Delete, List, Patch, Read, Update};
        let store = Store::new(req.view.clone(), &self.inner.metas);
        self.inner.ready(&store, req.now).await?;
        match (KvPath::parse(&req.path), req.operation) {
            (KvPath::Root, _) => Err(raw_404(req, None, Some(ROOT_WARNING.to_owned()))),
            (KvPath::Invalid, op) => Err(raw_404(req, None, Some(invalid_path_warning(op)))),
            (KvPath::Config, Read) => metadata::config_read(req, &store).await,
            (KvPath::Config, Create | Update) => metadata::config_write(req, &store).await,
            (KvPath::Data(key), Read) => data::data_read(req, &store, key).await,
            (KvPath::Data(key), Create | Update) => data::data_write(req, &store, key).await,
            (KvPath::Data(key), Patch) => data::data_patch(req, &store, key).await,
            (KvPath::Data(key), Delete) => data::data_delete(req, &store, key).await,
            (KvPath::Metadata(key), Read) => metadata::metadata_read(req, &store, key).await,
            (KvPath::Metadata(key), Create | Update) => metadata::metadata_write(req, &store, key).await,
            (KvPath::Metadata(key), Patch) => metadata::metadata_patch(req, &store, key).await,
            (KvPath::Metadata(key), Delete) => metadata::metadata_delete(req, &store, key).await,
            (KvPath::Metadata(prefix), List) => metadata::metadata_list(req, &store, prefix).await,
            (KvPath::DetailedMetadata(prefix), List) => metadata::detailed_list(req, &store, prefix).await,
            (KvPath::Delete(key), Create | Update) => {
                data::versions(req, &store, key, VersionOp::Delete).await
            }
            (KvPath::Undelete(key), Create | Update) => {
                data::versions(req, &store, key, VersionOp::Undelete).await
            }
            (KvPath::Destroy(key), Create | Update) => {
                data::versions(req, &store, key, VersionOp::Destroy).await
            }
            (KvPath::Subkeys(key), Read) => data::subkeys(req, &store, key).await,
            _ => Err(Error::UnsupportedOperation),
        }
    }
}

#[cfg(test)]
mod tests;
