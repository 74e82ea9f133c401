//! A view: a mount's chroot into the barrier.
//!
//! Every key a view reads or writes is its prefix followed by the relative key, so an engine
//! cannot name a key outside its own subtree; keys that would look like an escape (`..`
//! segments, a leading `/`) are refused outright.

use std::sync::Arc;

use crate::barrier::{Barrier, BarrierError, PlainEntry};
use crate::{Batch, Expect, Op, Precondition, StorageError};

/// A prefix-confined handle on the barrier.
#[derive(Clone)]
pub struct View {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("prefix", &self.prefix).finish()
    }
}

impl View {
    /// A view of `barrier` below `prefix` (a trailing `/` is added if missing).
    pub fn new(barrier: Arc<Barrier>, prefix: &str) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self { barrier, prefix }
    }

    /// The absolute prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A narrower view below `sub`.
    pub fn sub(&self, sub: &str) -> Self {
        Self::new(Arc::clone(&self.barrier), &format!("{}{}", self.prefix, sub.trim_start_matches('/')))
    }

    fn full(&self, key: &str) -> Result<String, BarrierError> {
        check_relative(key)?;
        Ok([self.prefix.as_str(), key].concat())
    }

    /// Reads a key.
    pub async fn get(&self, key: &str) -> Result<Option<PlainEntry>, BarrierError> {
        self.barrier.get(&self.full(key)?).await
    }

    /// The stored version of a relative key, without decrypting it ([`Barrier::version`]).
    pub async fn version(&self, key: &str) -> Result<Option<u64>, BarrierError> {
        self.barrier.version(&self.full(key)?).await
    }

    /// Lists immediate children of `prefix` (relative; empty or ending in `/`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        if !prefix.is_empty() {
            check_relative(prefix.trim_end_matches('/'))?;
        }
        self.barrier.list(&format!("{}{}", self.prefix, prefix)).await
    }

    /// Applies a batch of relative keys atomically.
    pub async fn apply(&self, batch: Batch) -> Result<u64, BarrierError> {
        let mut ops = Vec::with_capacity(batch.ops.len());
        for op in batch.ops {
            ops.push(match op {
                Op::Delete { key } => Op::Delete { key: self.full(&key)? },
                Op::Put { key, value } => Op::Put { key: self.full(&key)?, value },
            });
        }
        let mut preconditions = Vec::with_capacity(batch.preconditions.len());
        for p in batch.preconditions {
            preconditions.push(Precondition { key: self.full(&p.key)?, expect: p.expect });
        }
        self.barrier.apply(Batch { ops, preconditions }).await
    }

    /// Puts one key.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, BarrierError> {
        self.apply(Batch::new().put(key, value)).await
    }

    /// Puts one key only if it is still at `expected` (`None` = absent).
    pub async fn put_if(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, BarrierError> {
        self.apply(Batch::new().put(key, value).require(key, expected)).await
    }

    /// Applies a batch whose preconditions may legitimately fail (a lost compare-and-set
    /// race): `Ok(Some(version))` when it applied, `Ok(None)` when a precondition did not hold
    /// and nothing was written. Any other failure is an error.
    pub async fn try_apply(&self, batch: Batch) -> Result<Option<u64>, BarrierError> {
        match self.apply(batch).await {
            Ok(v) => Ok(Some(v)),
            Err(BarrierError::Storage(StorageError::PreconditionFailed { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes one key.
    pub async fn delete(&self, key: &str) -> Result<u64, BarrierError> {
        self.apply(Batch::new().delete(key)).await
    }

    /// Every key below `prefix` (relative, recursive), depth first.
    pub async fn list_recursive(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        let mut out = Vec::new();
        let mut stack = vec![prefix.to_owned()];
        while let Some(p) = stack.pop() {
            for child in self.list(&p).await? {
                let full = format!("{p}{child}");
                if child.ends_with('/') {
                    stack.push(full);
                } else {
                    out.push(full);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes every key of the view (mount disable), in batches.
    pub async fn clear(&self) -> Result<(), BarrierError> {
        let keys = self.list_recursive("").await?;
        for chunk in keys.chunks(256) {
            let mut b = Batch::new();
            for k in chunk {
                b = b.delete(k.clone());
            }
            self.apply(b).await?;
        }
        Ok(())
    }
}

fn check_relative(key: &str) -> Result<(), BarrierError> {
    let bad = |reason| Err(BarrierError::Storage(StorageError::InvalidKey { key: key.to_owned(), reason }));
    if key.starts_with('/') {
        return bad("key starts with '/'");
    }
    if key.split('/').any(|seg| seg == "..") {
        return bad("key has a '..' segment");
    }
    Ok(())
}

/// Convenience for callers that build preconditions from a read.
pub fn expect_from(version: Option<u64>) -> Expect {
    match version {
        None => Expect::Absent,
        Some(v) => Expect::Version(v),
    }
}
