//! Storage of transit keys through the mount's view, with a cache of decoded keys.
//!
//! Every change is a read-modify-write guarded by a precondition on the record's storage
//! version (`Batch::require_version` / `require_absent`, applied with `View::try_apply`, where a
//! lost precondition is `Ok(None)`); a lost race re-reads and re-applies the change, so concurrent
//! rotations on any node each add a version. The cache maps a name to the key decoded from
//! one storage version; a read whose storage version differs (a change here or on another node)
//! decodes again, and every local change drops the entry, so the cache never serves stale keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use coffer_storage::{Batch, View};

use super::key::TransitKey;
use crate::core::error::{Error, Result};

/// Where key records live in the mount's view (Vault's layout: `policy/<name>`).
pub const RECORD_PREFIX: &str = "policy/";

/// Storage key of a key's record.
pub fn record_key(name: &str) -> String {
    format!("{RECORD_PREFIX}{name}")
}

/// The decoded-key cache and the storage operations on key records.
#[derive(Default)]
pub struct KeyStore {
    cache: Mutex<HashMap<String, (u64, Arc<TransitKey>)>>,
    /// Maximum number of cached policies (0 = unlimited).
    limit: AtomicUsize,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("limit", &self.limit.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

/// What a [`KeyStore::modify`] closure decided.
pub enum Change<T> {
    /// Leave the record as it is.
    Keep(T),
    /// Write the changed key.
    Write(T),
}

/// Outcome of an upsert.
pub struct Upserted {
    pub key: Arc<TransitKey>,
    /// True when this call created the key.
    pub created: bool,
}

impl KeyStore {
    /// Sets the cache size (0 = unlimited) and trims the cache.
    pub fn set_limit(&self, n: usize) {
        self.limit.store(n, Ordering::Relaxed);
        let mut c = self.lock();
        if n > 0 && c.len() > n {
            c.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Arc<TransitKey>)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops a cached key.
    pub fn invalidate(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Drops every cached key (unmount, seal).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn remember(&self, name: &str, version: u64, p: Arc<TransitKey>) {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut c = self.lock();
        if limit > 0 && c.len() >= limit && !c.contains_key(name) {
            // Evict one arbitrary entry; the cache is an optimisation, not a store.
            if let Some(k) = c.keys().next().cloned() {
                c.remove(&k);
            }
        }
        c.insert(name.to_owned(), (version, p));
    }

    /// Loads a key (cached when its storage version is unchanged).
    pub async fn get(&self, view: &View, name: &str) -> Result<Option<Arc<TransitKey>>> {
        let Some(entry) = view.get(&record_key(name)).await? else {
            self.invalidate(name);
            return Ok(None);
        };
        if let Some((v, p)) = self.lock().get(name) {
            if *v == entry.version {
                return Ok(Some(Arc::clone(p)));
            }
        }
        let p = Arc::new(TransitKey::decode(&entry.value).map_err(Error::internal)?);
        self.remember(name, entry.version, Arc::clone(&p));
        Ok(Some(p))
    }

    /// Whether a key exists.
    pub async fn exists(&self, view: &View, name: &str) -> Result<bool> {
        Ok(view.get(&record_key(name)).await?.is_some())
    }

    /// Creates a key unless one exists; returns the stored one either way.
    pub async fn upsert(
        &self,
        view: &View,
        name: &str,
        make: impl Fn() -> Result<TransitKey>,
    ) -> Result<Upserted> {
        loop {
            if let Some(p) = self.get(view, name).await? {
                return Ok(Upserted { key: p, created: false });
            }
            let p = make()?;
            let mut raw = p.encode().map_err(Error::internal)?;
            let key = record_key(name);
            let batch = Batch::new().put(&key, std::mem::take(&mut *raw)).require_absent(&key);
            if view.try_apply(batch).await?.is_some() {
                self.invalidate(name);
                return Ok(Upserted { key: Arc::new(p), created: true });
            }
        }
    }

    /// Applies `change` to the stored key under a version precondition, retrying on races.
    /// `Ok(None)` when the key does not exist.
    pub async fn modify<T>(
        &self,
        view: &View,
        name: &str,
        mut change: impl FnMut(&mut TransitKey) -> Result<Change<T>>,
    ) -> Result<Option<(Arc<TransitKey>, T)>> {
        let key = record_key(name);
        loop {
            let Some(entry) = view.get(&key).await? else { return Ok(None) };
            let mut p = TransitKey::decode(&entry.value).map_err(Error::internal)?;
            let out = match change(&mut p)? {
                Change::Keep(out) => return Ok(Some((Arc::new(p), out))),
                Change::Write(out) => out,
            };
            let mut raw = p.encode().map_err(Error::internal)?;
            let batch =
                Batch::new().put(&key, std::mem::take(&mut *raw)).require_version(&key, entry.version);
            if view.try_apply(batch).await?.is_some() {
                self.invalidate(name);
                return Ok(Some((Arc::new(p), out)));
            }
        }
    }

    /// Writes a key (restore): only when absent unless `force`.
    pub async fn put(&self, view: &View, p: &TransitKey, force: bool) -> Result<bool> {
        let key = record_key(&p.name);
        let mut raw = p.encode().map_err(Error::internal)?;
        let batch = Batch::new().put(&key, std::mem::take(&mut *raw));
        let batch = if force { batch } else { batch.require_absent(&key) };
        let applied = view.try_apply(batch).await;
        self.invalidate(&p.name);
        Ok(applied?.is_some())
    }

    /// Deletes a key if `allowed` says so for its current state. `Ok(None)` when missing.
    pub async fn delete(
        &self,
        view: &View,
        name: &str,
        allowed: impl Fn(&TransitKey) -> bool,
    ) -> Result<Option<bool>> {
        let key = record_key(name);
        loop {
            let Some(entry) = view.get(&key).await? else { return Ok(None) };
            let p = TransitKey::decode(&entry.value).map_err(Error::internal)?;
            if !allowed(&p) {
                return Ok(Some(false));
            }
            let batch = Batch::new().delete(&key).require_version(&key, entry.version);
            if view.try_apply(batch).await?.is_some() {
                self.invalidate(name);
                return Ok(Some(true));
            }
        }
    }

    /// Names of all keys.
    pub async fn list(&self, view: &View) -> Result<Vec<String>> {
        Ok(view.list(RECORD_PREFIX).await?)
    }
}
