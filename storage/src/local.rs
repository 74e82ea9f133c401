//! Node-local keys on a replicated store.
//!
//! Some state belongs to one node and must never be replicated: the head of an audit device's
//! hash chain describes *this node's* audit file, and a follower must be able to store it
//! without a round trip to the leader (it cannot write the replicated store at all). Keys under
//! [`LOCAL_PREFIX`] are that state. [`WithLocal`] routes them to a store of the node's own and
//! everything else to the replicated one; the barrier above encrypts both alike (the full key is
//! the associated data, so a value cannot move between the stores unnoticed).
//!
//! A single-node store needs no split: all of it is local, and `local/` keys live beside the
//! rest. On a cluster, `local/` keys are in no raft entry, snapshot or state digest, and a
//! restored snapshot leaves them as they are.
//!
//! A batch either touches only local keys or none: mixing the two would need an atomic commit
//! across two stores, which nothing needs, so it is refused as [`StorageError::InvalidKey`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::{children, Batch, Entry, Storage, StorageError};

/// Keys under this prefix belong to the node that writes them.
pub const LOCAL_PREFIX: &str = "local/";

/// Whether `key` is node-local.
pub fn is_local(key: &str) -> bool {
    key.starts_with(LOCAL_PREFIX)
}

/// A replicated store plus a store of this node's own for [`LOCAL_PREFIX`] keys.
pub struct WithLocal {
    shared: Arc<dyn Storage>,
    local: Arc<dyn Storage>,
}

impl std::fmt::Debug for WithLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithLocal").finish_non_exhaustive()
    }
}

impl WithLocal {
    /// Routes `local/` keys to `local`, the rest to `shared`.
    pub fn new(shared: Arc<dyn Storage>, local: Arc<dyn Storage>) -> Self {
        Self { shared, local }
    }

    fn route(&self, key: &str) -> &Arc<dyn Storage> {
        if is_local(key) {
            &self.local
        } else {
            &self.shared
        }
    }
}

#[async_trait]
impl Storage for WithLocal {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        self.route(key).get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        if is_local(prefix) {
            return self.local.list(prefix).await;
        }
        let mut out = self.shared.list(prefix).await?;
        if LOCAL_PREFIX.starts_with(prefix) {
            // The listing of an ancestor of `local/` (the root) shows it too.
            let mut local = Vec::new();
            if !self.local.list(LOCAL_PREFIX).await?.is_empty() {
                local.push(LOCAL_PREFIX.to_owned());
            }
            out.extend(children(prefix, local.iter().map(String::as_str)));
            out.sort();
            out.dedup();
        }
        Ok(out)
    }

    async fn apply(&self, batch: Batch) -> Result<u64, StorageError> {
        let keys =
            batch.ops.iter().map(|op| op.key()).chain(batch.preconditions.iter().map(|p| p.key.as_str()));
        let (mut local, mut shared) = (None, None);
        for key in keys {
            if is_local(key) {
                local.get_or_insert(key);
            } else {
                shared.get_or_insert(key);
            }
        }
        match (local, shared) {
            (Some(key), Some(_)) => Err(StorageError::InvalidKey {
                key: key.to_owned(),
                reason: "a batch cannot mix node-local and replicated keys",
            }),
            (Some(_), None) => self.local.apply(batch).await,
            (None, _) => self.shared.apply(batch).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mem::MemStorage;

    fn split() -> (WithLocal, Arc<MemStorage>, Arc<MemStorage>) {
        let (shared, local) = (Arc::new(MemStorage::new()), Arc::new(MemStorage::new()));
        (WithLocal::new(shared.clone(), local.clone()), shared, local)
    }

    #[tokio::test]
    async fn conformance() {
        crate::testing::conformance(&split().0).await;
    }

    #[tokio::test]
    async fn local_keys_reach_only_the_local_store() {
        let (s, shared, local) = split();
        s.apply(Batch::new().put("local/audit/h", b"l".to_vec())).await.unwrap();
        s.apply(Batch::new().put("core/x", b"s".to_vec()).put("locals/y", b"s".to_vec())).await.unwrap();
        assert!(shared.get("local/audit/h").await.unwrap().is_none());
        assert_eq!(local.get("local/audit/h").await.unwrap().unwrap().value, b"l");
        assert!(local.get("core/x").await.unwrap().is_none());
        assert!(local.get("locals/y").await.unwrap().is_none(), "only the exact prefix is local");
        assert_eq!(s.get("local/audit/h").await.unwrap().unwrap().value, b"l");
        assert_eq!(s.get("core/x").await.unwrap().unwrap().value, b"s");
        assert_eq!(s.list("").await.unwrap(), ["core/", "local/", "locals/"]);
        assert_eq!(s.list("local/").await.unwrap(), ["audit/"]);
        assert_eq!(s.list("core/").await.unwrap(), ["x"]);
        // Preconditions are checked in the store that holds the key.
        let err =
            s.apply(Batch::new().put("local/audit/h", b"m".to_vec()).require_absent("local/audit/h")).await;
        assert!(matches!(err, Err(StorageError::PreconditionFailed { .. })), "{err:?}");
        s.apply(Batch::new().delete("local/audit/h")).await.unwrap();
        assert!(local.get("local/audit/h").await.unwrap().is_none());
        assert_eq!(s.list("").await.unwrap(), ["core/", "locals/"]);
    }

    #[tokio::test]
    async fn batches_mixing_local_and_replicated_keys_are_refused_whole() {
        let (s, shared, local) = split();
        for batch in [
            Batch::new().put("local/a", vec![1]).put("core/a", vec![1]),
            Batch::new().put("core/a", vec![1]).require_absent("local/a"),
            Batch::new().delete("local/a").require_absent("core/a"),
        ] {
            let err = s.apply(batch).await;
            assert!(matches!(err, Err(StorageError::InvalidKey { .. })), "{err:?}");
        }
        assert!(shared.get("core/a").await.unwrap().is_none());
        assert!(local.list("").await.unwrap().is_empty());
    }
}
