//! The conformance suite every [`Storage`] implementation must pass.
//!
//! Call [`conformance`] with a fresh, empty store. It panics (test failure) with a message naming
//! the broken rule. The same suite runs against `MemStorage`, `SledStorage`, the
//! replication wrapper and `RaftStorage` (raft crate tests).
//!
//! [`unsealed_barrier`] and [`mem_barrier`] give the tests of the layers above the barrier an
//! unsealed barrier to start from.
//!
//! Test code only: the module exists in this crate's test builds and, for other crates' tests,
//! behind the `testing` cargo feature, which they enable as a dev-dependency feature, so no
//! production build contains it.

// Test code: a failed expectation is a failed test, with the expectation as its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::keys::RootKey;
use crate::{Barrier, Batch, MemStorage, Storage, StorageError};

/// A barrier over `storage`, initialised with a fresh random root key and unsealed: the
/// starting point of tests of the layers above the barrier.
pub async fn unsealed_barrier(storage: Arc<dyn Storage>) -> Arc<Barrier> {
    let barrier = Arc::new(Barrier::new(storage));
    let root = RootKey::generate().expect("random root key");
    barrier.initialize(&root).await.expect("barrier initialises");
    barrier.unseal(root).await.expect("barrier unseals");
    barrier
}

/// [`unsealed_barrier`] over a fresh [`MemStorage`].
pub async fn mem_barrier() -> Arc<Barrier> {
    unsealed_barrier(Arc::new(MemStorage::new())).await
}

/// Runs every check against an empty store.
pub async fn conformance<S: Storage + ?Sized>(s: &S) {
    get_missing(s).await;
    put_get_delete(s).await;
    versions_increase(s).await;
    batch_is_atomic(s).await;
    preconditions(s).await;
    listing(s).await;
    invalid_keys(s).await;
    binary_values(s).await;
}

/// Runs the concurrency checks; needs an `Arc` so tasks can share the store.
pub async fn conformance_concurrent<S: Storage>(s: Arc<S>) {
    // 20 writers race to create the same key with "absent" preconditions: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.apply(Batch::new().put("race/key", vec![i]).require_absent("race/key")).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task panicked") {
            Ok(_) => wins += 1,
            Err(StorageError::PreconditionFailed { key }) => assert_eq!(key, "race/key"),
            Err(e) => panic!("unexpected error in race: {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one creator must win a race on an absent key");

    // Compare-and-set chain: 10 writers each try to bump a counter from the version they read;
    // retries allowed. The final value must equal the number of successful increments.
    s.apply(Batch::new().put("race/counter", 0u64.to_be_bytes().to_vec())).await.expect("seed");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            loop {
                let e = s.get("race/counter").await.expect("get").expect("present");
                let n = u64::from_be_bytes(e.value.as_slice().try_into().expect("8 bytes"));
                let b = Batch::new()
                    .put("race/counter", (n + 1).to_be_bytes().to_vec())
                    .require_version("race/counter", e.version);
                match s.apply(b).await {
                    Ok(_) => return,
                    Err(StorageError::PreconditionFailed { .. }) => continue,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task panicked");
    }
    let e = s.get("race/counter").await.expect("get").expect("present");
    assert_eq!(u64::from_be_bytes(e.value.as_slice().try_into().expect("8 bytes")), 10, "lost update");
}

async fn get_missing<S: Storage + ?Sized>(s: &S) {
    assert!(s.get("missing").await.expect("get").is_none(), "missing key must read as None");
    assert!(s.list("").await.expect("list").is_empty(), "new store must list empty");
}

async fn put_get_delete<S: Storage + ?Sized>(s: &S) {
    let v = s.apply(Batch::new().put("pgd/a", b"hello".to_vec())).await.expect("put");
    let e = s.get("pgd/a").await.expect("get").expect("present after put");
    assert_eq!(e.value, b"hello");
    assert_eq!(e.version, v, "entry version must be the version apply returned");
    s.apply(Batch::new().put("pgd/a", b"world".to_vec())).await.expect("overwrite");
    assert_eq!(s.get("pgd/a").await.expect("get").expect("present").value, b"world");
    s.apply(Batch::new().delete("pgd/a")).await.expect("delete");
    assert!(s.get("pgd/a").await.expect("get").is_none(), "deleted key must be gone");
    // Deleting an absent key is not an error.
    s.apply(Batch::new().delete("pgd/never")).await.expect("delete absent");
}

async fn versions_increase<S: Storage + ?Sized>(s: &S) {
    let v1 = s.apply(Batch::new().put("ver/a", vec![1])).await.expect("put");
    let v2 = s.apply(Batch::new().put("ver/b", vec![2])).await.expect("put");
    let v3 = s.apply(Batch::new().put("ver/a", vec![3])).await.expect("put");
    assert!(v1 < v2 && v2 < v3, "versions must strictly increase: {v1} {v2} {v3}");
    assert_eq!(s.get("ver/b").await.expect("get").expect("present").version, v2);
    assert_eq!(s.get("ver/a").await.expect("get").expect("present").version, v3);
}

async fn batch_is_atomic<S: Storage + ?Sized>(s: &S) {
    let v = s
        .apply(Batch::new().put("atom/x", vec![1]).put("atom/y", vec![2]).delete("atom/z"))
        .await
        .expect("batch");
    assert_eq!(s.get("atom/x").await.expect("get").expect("x").version, v);
    assert_eq!(s.get("atom/y").await.expect("get").expect("y").version, v);
    // A batch whose precondition fails writes none of its ops.
    let err = s
        .apply(Batch::new().put("atom/x", vec![9]).put("atom/new", vec![9]).require_absent("atom/y"))
        .await
        .expect_err("precondition must fail");
    assert!(matches!(err, StorageError::PreconditionFailed { ref key } if key == "atom/y"), "{err:?}");
    assert_eq!(s.get("atom/x").await.expect("get").expect("x").value, vec![1], "partial write");
    assert!(s.get("atom/new").await.expect("get").is_none(), "partial write");
}

async fn preconditions<S: Storage + ?Sized>(s: &S) {
    // Absent holds for a new key, then fails once it exists.
    let v = s.apply(Batch::new().put("pre/k", vec![1]).require_absent("pre/k")).await.expect("create");
    assert!(matches!(
        s.apply(Batch::new().put("pre/k", vec![2]).require_absent("pre/k")).await,
        Err(StorageError::PreconditionFailed { .. })
    ));
    // Version holds only for the exact version.
    assert!(matches!(
        s.apply(Batch::new().put("pre/k", vec![2]).require_version("pre/k", v + 1000)).await,
        Err(StorageError::PreconditionFailed { .. })
    ));
    let v2 = s
        .apply(Batch::new().put("pre/k", vec![2]).require_version("pre/k", v))
        .await
        .expect("cas with right version");
    // The old version no longer matches.
    assert!(matches!(
        s.apply(Batch::new().put("pre/k", vec![3]).require_version("pre/k", v)).await,
        Err(StorageError::PreconditionFailed { .. })
    ));
    // A version precondition on a missing key fails.
    assert!(matches!(
        s.apply(Batch::new().put("pre/other", vec![1]).require_version("pre/missing", v2)).await,
        Err(StorageError::PreconditionFailed { .. })
    ));
    // Preconditions alone (no ops) are checked too.
    s.apply(Batch::new().require_version("pre/k", v2)).await.expect("check-only batch");
    assert!(matches!(
        s.apply(Batch::new().require_absent("pre/k")).await,
        Err(StorageError::PreconditionFailed { .. })
    ));
    // After delete, absent holds again.
    s.apply(Batch::new().delete("pre/k").require_version("pre/k", v2)).await.expect("cas delete");
    s.apply(Batch::new().require_absent("pre/k")).await.expect("absent after delete");
}

async fn listing<S: Storage + ?Sized>(s: &S) {
    for k in ["ls/a", "ls/b/c", "ls/b/d/e", "ls/f", "lsx/g", "ls2"] {
        s.apply(Batch::new().put(k, vec![0])).await.expect("put");
    }
    assert_eq!(s.list("ls/").await.expect("list"), vec!["a", "b/", "f"]);
    assert_eq!(s.list("ls/b/").await.expect("list"), vec!["c", "d/"]);
    assert_eq!(s.list("ls/b/d/").await.expect("list"), vec!["e"]);
    assert!(s.list("ls/none/").await.expect("list").is_empty());
    let root = s.list("").await.expect("list");
    for want in ["ls/", "ls2", "lsx/"] {
        assert!(root.contains(&want.to_owned()), "root listing {root:?} lacks {want}");
    }
    s.apply(Batch::new().delete("ls/b/d/e")).await.expect("delete");
    assert_eq!(s.list("ls/b/").await.expect("list"), vec!["c"], "empty folders must vanish");
}

async fn invalid_keys<S: Storage + ?Sized>(s: &S) {
    for bad in ["", "ends/with/"] {
        assert!(
            matches!(s.apply(Batch::new().put(bad, vec![1])).await, Err(StorageError::InvalidKey { .. })),
            "key {bad:?} must be refused"
        );
    }
}

async fn binary_values<S: Storage + ?Sized>(s: &S) {
    let value: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s.apply(Batch::new().put("bin/v", value.clone())).await.expect("put");
    assert_eq!(s.get("bin/v").await.expect("get").expect("present").value, value);
    s.apply(Batch::new().put("bin/empty", Vec::new())).await.expect("put empty");
    assert_eq!(s.get("bin/empty").await.expect("get").expect("present").value, Vec::<u8>::new());
}
