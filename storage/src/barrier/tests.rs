use std::sync::Arc;

use super::*;
use crate::mem::MemStorage;

async fn unsealed() -> (Arc<MemStorage>, Arc<Barrier>) {
    let mem = Arc::new(MemStorage::new());
    let b = Arc::new(Barrier::new(mem.clone()));
    let root = RootKey::generate().unwrap();
    b.initialize(&root).await.unwrap();
    b.unseal(root).await.unwrap();
    (mem, b)
}

#[tokio::test]
async fn values_below_the_barrier_are_ciphertext() {
    let (mem, b) = unsealed().await;
    b.put("logical/abc/secret", b"correct horse battery staple".to_vec()).await.unwrap();
    for (k, v) in mem.dump().unwrap() {
        assert!(!v.windows(7).any(|w| w == b"correct"), "plaintext at {k}");
    }
    let e = b.get("logical/abc/secret").await.unwrap().unwrap();
    assert_eq!(e.value.as_slice(), b"correct horse battery staple");
}

#[tokio::test]
async fn bit_flips_truncations_and_moves_fail() {
    let (mem, b) = unsealed().await;
    b.put("a/one", b"value-one".to_vec()).await.unwrap();
    b.put("a/two", b"value-two".to_vec()).await.unwrap();
    let raw = mem.get("a/one").await.unwrap().unwrap().value;
    // Every single-bit flip.
    for i in 0..raw.len() {
        for bit in 0..8 {
            let mut bad = raw.clone();
            bad[i] ^= 1 << bit;
            mem.apply(Batch::new().put("a/one", bad)).await.unwrap();
            let r = b.get("a/one").await;
            assert!(
                matches!(r, Err(BarrierError::Decrypt { .. }) | Err(BarrierError::UnknownTerm { .. })),
                "flip at {i}/{bit} gave {r:?}"
            );
        }
    }
    // Every truncation.
    for len in 0..raw.len() {
        mem.apply(Batch::new().put("a/one", raw[..len].to_vec())).await.unwrap();
        assert!(b.get("a/one").await.is_err(), "truncation to {len} accepted");
    }
    // A value moved to another key.
    mem.apply(Batch::new().put("a/two", raw.clone())).await.unwrap();
    assert!(matches!(b.get("a/two").await, Err(BarrierError::Decrypt { .. })));
    // Restoring the original bytes works again.
    mem.apply(Batch::new().put("a/one", raw)).await.unwrap();
    assert_eq!(b.get("a/one").await.unwrap().unwrap().value.as_slice(), b"value-one");
}

#[tokio::test]
async fn sealed_barrier_refuses_everything() {
    let (_mem, b) = unsealed().await;
    b.put("x", b"1".to_vec()).await.unwrap();
    b.seal();
    assert!(b.is_sealed());
    assert!(matches!(b.get("x").await, Err(BarrierError::Sealed)));
    assert!(matches!(b.put("x", vec![]).await, Err(BarrierError::Sealed)));
    assert!(matches!(b.list("").await, Err(BarrierError::Sealed)));
}

#[tokio::test]
async fn wrong_root_key_is_refused_and_initialize_is_once() {
    let mem = Arc::new(MemStorage::new());
    let b = Barrier::new(mem.clone());
    assert!(!b.is_initialized().await.unwrap());
    let root = RootKey::generate().unwrap();
    b.initialize(&root).await.unwrap();
    assert!(b.is_initialized().await.unwrap());
    assert!(matches!(b.initialize(&root).await, Err(BarrierError::AlreadyInitialized)));
    assert!(matches!(b.unseal(RootKey::generate().unwrap()).await, Err(BarrierError::WrongRootKey)));
    assert!(b.is_sealed());
    b.unseal(root).await.unwrap();
    assert!(!b.is_sealed());
}

#[tokio::test]
async fn rotation_keeps_old_terms_readable() {
    let (mem, b) = unsealed().await;
    b.put("old", b"before".to_vec()).await.unwrap();
    assert_eq!(b.key_status().unwrap().term, 1);
    let s = b.rotate().await.unwrap();
    assert_eq!(s.term, 2);
    b.put("new", b"after".to_vec()).await.unwrap();
    assert_eq!(aead::term_of(&mem.get("old").await.unwrap().unwrap().value), Some(1));
    assert_eq!(aead::term_of(&mem.get("new").await.unwrap().unwrap().value), Some(2));
    assert_eq!(b.get("old").await.unwrap().unwrap().value.as_slice(), b"before");
    assert_eq!(b.get("new").await.unwrap().unwrap().value.as_slice(), b"after");
}

#[tokio::test]
async fn second_barrier_follows_rotation_by_reload() {
    let (mem, a) = unsealed().await;
    // A second node over the same storage with the same root key.
    let root = a.with_root_key(|k| k.duplicate()).unwrap();
    let b = Barrier::new(mem.clone());
    b.unseal(root).await.unwrap();
    a.rotate().await.unwrap();
    a.put("k", b"from-a".to_vec()).await.unwrap();
    // b has not reloaded yet: get reloads on an unknown term.
    assert_eq!(b.get("k").await.unwrap().unwrap().value.as_slice(), b"from-a");
    // Concurrent rotation from b must not lose a's term.
    b.rotate().await.unwrap();
    a.reload_keyring().await.unwrap();
    assert_eq!(a.key_status().unwrap().term, 3);
}

#[tokio::test]
async fn automatic_rotation_at_the_limit() {
    let (_mem, b) = unsealed().await;
    b.set_rotation_limit(1000);
    for i in 0..1000 {
        b.put(&format!("k{i}"), vec![1]).await.unwrap();
    }
    assert_eq!(b.key_status().unwrap().term, 2, "must rotate once the 1000th encryption happened");
    for i in 0..1000 {
        assert!(b.get(&format!("k{i}")).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn views_are_confined() {
    let (mem, b) = unsealed().await;
    let v = crate::View::new(Arc::clone(&b), "logical/uuid-1/");
    v.put("foo/bar", b"x".to_vec()).await.unwrap();
    assert!(mem.get("logical/uuid-1/foo/bar").await.unwrap().is_some());
    assert!(v.get("../uuid-2/x").await.is_err());
    assert!(v.get("/abs").await.is_err());
    assert_eq!(v.list("").await.unwrap(), vec!["foo/"]);
    assert_eq!(v.list("foo/").await.unwrap(), vec!["bar"]);
    let other = crate::View::new(Arc::clone(&b), "logical/uuid-2/");
    assert!(other.get("foo/bar").await.unwrap().is_none());
    v.clear().await.unwrap();
    assert!(v.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn barrier_passes_storage_conformance_semantics_through_views() {
    let (_mem, b) = unsealed().await;
    let v = crate::View::new(Arc::clone(&b), "t/");
    let ver = v.put_if("k", b"1".to_vec(), None).await.unwrap();
    assert!(matches!(
        v.put_if("k", b"2".to_vec(), None).await,
        Err(BarrierError::Storage(StorageError::PreconditionFailed { .. }))
    ));
    v.put_if("k", b"2".to_vec(), Some(ver)).await.unwrap();
    assert_eq!(v.get("k").await.unwrap().unwrap().value.as_slice(), b"2");
}

#[tokio::test]
async fn encryption_counts_survive_a_restart() {
    let (mem, b) = unsealed().await;
    b.set_persist_every(10);
    for i in 0..25 {
        b.put(&format!("k{i}"), vec![1]).await.unwrap();
    }
    assert_eq!(b.key_status().unwrap().encryptions, 25);
    // A new process over the same storage: the count resumes from the last persisted value.
    let root = b.with_root_key(|k| k.duplicate()).unwrap();
    let b2 = Barrier::new(mem.clone());
    b2.unseal(root).await.unwrap();
    assert_eq!(b2.key_status().unwrap().encryptions, 20, "persisted at 10 and 20");
    // Rotation still works after the record was rewritten for counts.
    assert_eq!(b.rotate().await.unwrap().term, 2);
}

#[test]
fn version_1_keyrings_still_decode() {
    let k = Keyring::new_first().unwrap();
    let v2 = k.encode();
    // Rebuild the version-1 layout: format 1, records without the count.
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&v2[1..9]);
    v1.extend_from_slice(&v2[9..21]);
    v1.extend_from_slice(&v2[29..]);
    let d = Keyring::decode(&v1).unwrap();
    assert_eq!(d.active_term(), 1);
    assert!(d.term(1).unwrap().key.ct_eq(k.term(1).unwrap().key.expose()));
}

#[tokio::test]
async fn counters_follow_encryptions_decryptions_and_failures() {
    let (mem, b) = unsealed().await;
    let start = (b.counters().encryptions(), b.counters().decryptions(), b.counters().decrypt_failures());
    b.apply(Batch::new().put("c/one", b"1".to_vec()).put("c/two", b"2".to_vec()).delete("c/three"))
        .await
        .unwrap();
    assert_eq!(b.counters().encryptions(), start.0 + 2, "two puts, a delete encrypts nothing");
    b.get("c/one").await.unwrap();
    assert!(b.get("c/missing").await.unwrap().is_none());
    assert_eq!(b.counters().decryptions(), start.1 + 1, "a missing key decrypts nothing");
    let raw = mem.get("c/one").await.unwrap().unwrap().value;
    mem.apply(Batch::new().put("c/two", raw)).await.unwrap();
    assert!(b.get("c/two").await.is_err());
    assert_eq!(b.counters().decrypt_failures(), start.2 + 1);
    assert_eq!(b.counters().decryptions(), start.1 + 1);
}
