//! In-memory [`Storage`]: for `--dev`, `storage "inmem"` and unit tests.
//!
//! Nothing is durable. Everything else (atomic batches, preconditions, versions, listing) behaves
//! exactly as the durable stores do, which the conformance suite checks.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{children, validate_key, Batch, Entry, Expect, Op, Storage, StorageError};

/// A `BTreeMap` behind a mutex, with a global version counter.
#[derive(Default)]
pub struct MemStorage {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: BTreeMap<String, Entry>,
    version: u64,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StorageError> {
        // A poisoned lock means a panic happened while the map was being changed; the map may be
        // half-updated, so refuse to serve rather than guess.
        self.inner.lock().map_err(|_| StorageError::Io("memory store lock poisoned".into()))
    }

    /// Every key and raw value, for tests that search storage for plaintext.
    pub fn dump(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let inner = self.lock()?;
        Ok(inner.map.iter().map(|(k, e)| (k.clone(), e.value.clone())).collect())
    }
}

impl std::fmt::Debug for MemStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemStorage")
    }
}

#[async_trait]
impl Storage for MemStorage {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        validate_key(key)?;
        Ok(self.lock()?.map.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let inner = self.lock()?;
        let keys = inner
            .map
            .range(prefix.to_owned()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(children(prefix, keys))
    }

    async fn apply(&self, batch: Batch) -> Result<u64, StorageError> {
        for op in &batch.ops {
            validate_key(op.key())?;
        }
        let mut inner = self.lock()?;
        for pre in &batch.preconditions {
            let current = inner.map.get(&pre.key).map(|e| e.version);
            let ok = match pre.expect {
                Expect::Absent => current.is_none(),
                Expect::Version(v) => current == Some(v),
            };
            if !ok {
                return Err(StorageError::PreconditionFailed { key: pre.key.clone() });
            }
        }
        inner.version += 1;
        let version = inner.version;
        for op in batch.ops {
            match op {
                Op::Delete { key } => {
                    inner.map.remove(&key);
                }
                Op::Put { key, value } => {
                    inner.map.insert(key, Entry { value, version });
                }
            }
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        crate::testing::conformance(&MemStorage::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_concurrent() {
        crate::testing::conformance_concurrent(std::sync::Arc::new(MemStorage::new())).await;
    }
}
