//! Storage of transit keys through the mount's view, with a cache of decoded keys.
//!
//! Every change is a read-modify-write guarded by a precondition on the record's storage
//! version (`Batch::require_version` / `require_absent`, applied with `View::try_apply`, where a
//! lost precondition is `Ok(None)`); a lost race re-reads and re-applies the change, so concurrent
//! rotations on any node each add a version.
//!
//! # The cache
//!
//! The cache maps a name to the key decoded from one storage version. An entry is served
//! without touching storage only while nothing can have changed the record since it was read:
//!
//! * no change was applied to this node's storage since: the count of the node's replicated
//!   change feed ([`SystemView::applied_changes`]) is the one recorded with the entry. Every
//!   entry a cluster node applies (writes on the leader, on another node, a snapshot install)
//!   moves it before the write is acknowledged;
//! * no key record was written through any key store of this process since: [`KEY_WRITES`],
//!   moved after every write attempt (this covers a single node, whose change feed does not
//!   count local writes, and a mount whose backend was rebuilt while requests were in flight).
//!
//! Otherwise the record is read; when its storage version is the cached one the entry is
//! confirmed, else the record is decoded again. Without a change count (a system view that has
//! none, unit tests) every read goes to storage, as before. Entries are also dropped eagerly by
//! the core's invalidation hook ([`Backend::invalidate`]) and by every local change; the cache
//! lives in the mount's backend, which the core drops on seal and unmount (keys zeroize on drop).
//!
//! [`Backend::invalidate`]: crate::core::backend::Backend::invalidate

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use coffer_storage::{Batch, View};

use super::key::TransitKey;
use crate::core::backend::SystemView;
use crate::core::error::{Error, Result};

/// Where key records live in the mount's view (Vault's layout: `policy/<name>`).
pub const RECORD_PREFIX: &str = "policy/";

/// Storage key of a key's record.
pub fn record_key(name: &str) -> String {
    format!("{RECORD_PREFIX}{name}")
}

/// Key record writes attempted through any key store of this process (see the module
/// documentation). Only ever compared for equality; shared by every mount and core of the
/// process, so a write elsewhere costs a storage read here, never a stale key.
pub static KEY_WRITES: AtomicU64 = AtomicU64::new(0);

/// What the state of storage was when an entry was read or confirmed.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    /// The node's change count ([`SystemView::applied_changes`]).
    applied: u64,
    /// [`KEY_WRITES`].
    writes: u64,
}

/// One decoded key.
struct Cached {
    /// Storage version of the record it was decoded from.
    version: u64,
    stamp: Stamp,
    key: Arc<TransitKey>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Cached>,
    /// Moved by every invalidation: a read that started before one does not fill the cache.
    generation: u64,
}

/// The decoded-key cache and the storage operations on key records.
#[derive(Default)]
pub struct KeyStore {
    cache: Mutex<Cache>,
    /// Maximum number of cached policies (0 = unlimited).
    limit: AtomicUsize,
    /// The node's change count; `None`: every read goes to storage.
    system: Option<Arc<dyn SystemView>>,
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
    /// A store whose cache serves keys without storage reads while `system`'s change count
    /// says nothing changed.
    pub fn new(system: Arc<dyn SystemView>) -> Self {
        Self { system: Some(system), ..Self::default() }
    }

    /// Sets the cache size (0 = unlimited) and trims the cache.
    pub fn set_limit(&self, n: usize) {
        self.limit.store(n, Ordering::Relaxed);
        let mut c = self.lock();
        if n > 0 && c.entries.len() > n {
            c.entries.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state of storage now, when the node counts its changes.
    fn stamp(&self) -> Option<Stamp> {
        let applied = self.system.as_ref()?.applied_changes()?;
        Some(Stamp { applied, writes: KEY_WRITES.load(Ordering::SeqCst) })
    }

    /// Drops a cached key.
    pub fn invalidate(&self, name: &str) {
        let mut c = self.lock();
        c.generation = c.generation.wrapping_add(1);
        c.entries.remove(name);
    }

    /// Drops every cached key (unmount, seal).
    pub fn clear(&self) {
        let mut c = self.lock();
        c.generation = c.generation.wrapping_add(1);
        c.entries.clear();
    }

    /// After a write attempt on `name` (whether or not it applied).
    fn wrote(&self, name: &str) {
        KEY_WRITES.fetch_add(1, Ordering::SeqCst);
        self.invalidate(name);
    }

    /// The cached key when nothing can have changed it since it was read.
    fn fresh(&self, name: &str) -> Option<Arc<TransitKey>> {
        let now = self.stamp()?;
        let c = self.lock();
        let e = c.entries.get(name)?;
        (e.stamp == now).then(|| Arc::clone(&e.key))
    }

    /// Records the key decoded (or confirmed) from storage `version`, read at `stamp`, unless
    /// an invalidation happened since `generation`.
    fn remember(
        &self,
        name: &str,
        version: u64,
        stamp: Option<Stamp>,
        generation: u64,
        key: &Arc<TransitKey>,
    ) {
        let Some(stamp) = stamp else { return };
        let limit = self.limit.load(Ordering::Relaxed);
        let mut c = self.lock();
        if c.generation != generation {
            return;
        }
        if limit > 0 && c.entries.len() >= limit && !c.entries.contains_key(name) {
            // Evict one arbitrary entry; the cache is an optimisation, not a store.
            if let Some(k) = c.entries.keys().next().cloned() {
                c.entries.remove(&k);
            }
        }
        c.entries.insert(name.to_owned(), Cached { version, stamp, key: Arc::clone(key) });
    }

    /// Loads a key (from the cache when nothing changed; decoded again only when its storage
    /// version changed).
    pub async fn get(&self, view: &View, name: &str) -> Result<Option<Arc<TransitKey>>> {
        if let Some(p) = self.fresh(name) {
            return Ok(Some(p));
        }
        let stamp = self.stamp();
        let generation = self.lock().generation;
        let Some(entry) = view.get(&record_key(name)).await? else {
            self.invalidate(name);
            return Ok(None);
        };
        let cached = {
            let c = self.lock();
            c.entries.get(name).filter(|e| e.version == entry.version).map(|e| Arc::clone(&e.key))
        };
        let p = match cached {
            Some(p) => p,
            None => Arc::new(TransitKey::decode(&entry.value).map_err(Error::internal)?),
        };
        self.remember(name, entry.version, stamp, generation, &p);
        Ok(Some(p))
    }

    /// Whether a key exists.
    pub async fn exists(&self, view: &View, name: &str) -> Result<bool> {
        if self.fresh(name).is_some() {
            return Ok(true);
        }
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
            let applied = view.try_apply(batch).await;
            self.wrote(name);
            if applied?.is_some() {
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
            let applied = view.try_apply(batch).await;
            self.wrote(name);
            if applied?.is_some() {
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
        self.wrote(&p.name);
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
            let applied = view.try_apply(batch).await;
            self.wrote(name);
            if applied?.is_some() {
                return Ok(Some(true));
            }
        }
    }

    /// Names of all keys.
    pub async fn list(&self, view: &View) -> Result<Vec<String>> {
        Ok(view.list(RECORD_PREFIX).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::engines::transit::key::NewKey;

    /// A system view whose change count the test moves, as applying a replicated entry does.
    struct Counted(AtomicU64);

    impl SystemView for Counted {
        fn default_lease_ttl(&self) -> u64 {
            0
        }
        fn max_lease_ttl(&self) -> u64 {
            0
        }
        fn is_leader(&self) -> bool {
            true
        }
        fn applied_changes(&self) -> Option<u64> {
            Some(self.0.load(Ordering::SeqCst))
        }
    }

    async fn view() -> View {
        View::new(coffer_storage::testing::mem_barrier().await, "logical/test/")
    }

    /// Writes version 2 of `name` straight to storage, bypassing every key store (what a
    /// rotation on another node looks like to this one).
    async fn rotate_behind_the_cache(view: &View, name: &str) {
        let entry = view.get(&record_key(name)).await.unwrap().unwrap();
        let mut p = TransitKey::decode(&entry.value).unwrap();
        p.rotate_in_memory(coffer_storage::clock::now()).unwrap();
        view.put(&record_key(name), p.encode().unwrap().to_vec()).await.unwrap();
    }

    async fn create(store: &KeyStore, view: &View, name: &str) {
        let now = coffer_storage::clock::now();
        store.upsert(view, name, || Ok(TransitKey::create(name, &NewKey::DEFAULTS, now)?)).await.unwrap();
    }

    #[tokio::test]
    async fn a_replicated_change_is_never_served_from_the_cache() {
        let v = view().await;
        let system = Arc::new(Counted(AtomicU64::new(7)));
        let store = KeyStore::new(system.clone());
        create(&store, &v, "k").await;
        assert_eq!(store.get(&v, "k").await.unwrap().unwrap().latest_version, 1);
        rotate_behind_the_cache(&v, "k").await;
        // Without a change on this node's feed the cache answers (no storage read), unless a
        // test running in parallel wrote a key meanwhile (the process-wide count moved).
        let writes = KEY_WRITES.load(Ordering::SeqCst);
        let served = store.get(&v, "k").await.unwrap().unwrap().latest_version;
        if KEY_WRITES.load(Ordering::SeqCst) == writes {
            assert_eq!(served, 1);
        }
        // The replicated write moved the feed: the record is read and decoded again.
        system.0.fetch_add(1, Ordering::SeqCst);
        assert_eq!(store.get(&v, "k").await.unwrap().unwrap().latest_version, 2);
        // A replicated delete likewise.
        v.delete(&record_key("k")).await.unwrap();
        system.0.fetch_add(1, Ordering::SeqCst);
        assert!(store.get(&v, "k").await.unwrap().is_none());
        assert!(!store.exists(&v, "k").await.unwrap());
    }

    #[tokio::test]
    async fn a_write_through_another_backend_of_the_mount_is_never_served_stale() {
        // A mount whose backend is rebuilt (tune) while requests are in flight has two stores
        // over one view; a single node's change feed does not count local writes.
        let v = view().await;
        let system = Arc::new(Counted(AtomicU64::new(0)));
        let (old, new) = (KeyStore::new(system.clone()), KeyStore::new(system));
        create(&old, &v, "k").await;
        assert_eq!(new.get(&v, "k").await.unwrap().unwrap().latest_version, 1);
        let rotated = old
            .modify(&v, "k", |p| {
                p.rotate_in_memory(coffer_storage::clock::now())?;
                Ok(Change::Write(()))
            })
            .await
            .unwrap();
        assert!(rotated.is_some());
        assert_eq!(new.get(&v, "k").await.unwrap().unwrap().latest_version, 2);
    }

    #[tokio::test]
    async fn without_a_change_count_every_read_goes_to_storage() {
        let v = view().await;
        let store = KeyStore::default();
        create(&store, &v, "k").await;
        assert_eq!(store.get(&v, "k").await.unwrap().unwrap().latest_version, 1);
        rotate_behind_the_cache(&v, "k").await;
        assert_eq!(store.get(&v, "k").await.unwrap().unwrap().latest_version, 2);
    }
}
