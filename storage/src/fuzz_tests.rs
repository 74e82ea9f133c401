//! Fuzz targets of the storage crate and the tamper-detection test (security.md S2).
//!
//! * `barrier_decode`: any bytes stored under a key, read through the [`Barrier`], give a typed
//!   error ([`BarrierError::Decrypt`] or [`BarrierError::UnknownTerm`]) and never a panic; a read
//!   succeeds only for a genuine ciphertext of that key, with its plaintext.
//! * `keyring_decode`: any keyring plaintext decodes to a keyring or a typed refusal; what
//!   decodes round-trips through `encode`, and the barrier unseals with it (sealed under the
//!   root key) or refuses it as [`BarrierError::KeyringCorrupt`].
//! * `barrier_detects_random_corruptions`: 1,000 random corruptions of stored values (bit
//!   flips, byte and term edits, truncations, extensions, moves and swaps between keys) on the
//!   sled store and 1,000 on the memory store, each read back through the barrier: every one is
//!   refused with a typed error.
//!
//! The corpora are written by `write_fuzz_corpus` (ignored; run it with `--ignored` after a
//! format change). They use the fixed, public test keys below: a corpus ciphertext decrypts
//! only in these tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::aead;
use crate::barrier::{Keyring, KEYRING_PATH};
use crate::fuzzing::{bytes_from, report, Suite};
use crate::keys::RootKey;
use crate::{Barrier, BarrierError, Batch, MemStorage, SledStorage, Storage};

static SUITE: Suite = Suite::new("coffer-storage", 2);

/// Test-only root key (public: it protects nothing but these tests' corpora).
const ROOT: [u8; 32] = [0x11; 32];
/// Test-only data keys of terms 1 and 2.
const TERM_KEYS: [(u32, [u8; 32]); 2] = [(1, [0x21; 32]), (2, [0x22; 32])];
/// The key every `barrier_decode` input is stored under.
const VALUE_KEY: &str = "logical/fuzz/value";
/// Plaintexts of the genuine ciphertexts in the `barrier_decode` corpus (`genuine-<i>`).
const PLAINTEXTS: [&[u8]; 4] = [b"", b"x", b"correct horse battery staple", &[0u8; 64]];
/// Plaintext of `unknown-term.bin`: sealed under term 2, its header then set to term 9.
const UNKNOWN_TERM_PLAINTEXT: &[u8] = b"unknown term";

const BARRIER_DICT: &[&[u8]] = &[
    &[0, 0, 0, 0],
    &[0, 0, 0, 1],
    &[0, 0, 0, 2],
    &[0, 0, 0, 3],
    &[0xff, 0xff, 0xff, 0xff],
    &[aead::FORMAT],
    &[1],
    &[0; 12],
    &[0; 16],
];

const KEYRING_DICT: &[&[u8]] = &[
    &[2],
    &[1],
    &[0, 0, 0, 0],
    &[0, 0, 0, 1],
    &[0, 0, 0, 2],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x80, 0, 0, 0, 0, 0, 0, 0],
    &[0x21; 32],
];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Keyring plaintext (format 2) holding the fixed test terms; `active` must be one of them.
fn keyring_plain(active: u32) -> Vec<u8> {
    let mut out = vec![2u8];
    out.extend_from_slice(&active.to_be_bytes());
    out.extend_from_slice(&(TERM_KEYS.len() as u32).to_be_bytes());
    for (term, key) in TERM_KEYS {
        out.extend_from_slice(&term.to_be_bytes());
        out.extend_from_slice(&1_700_000_000_000_000_000i64.to_be_bytes());
        out.extend_from_slice(&7u64.to_be_bytes());
        out.extend_from_slice(&key);
    }
    out
}

/// A barrier over `storage` unsealed with the fixed test keyring.
async fn fixed_barrier(storage: Arc<dyn Storage>) -> Barrier {
    let sealed = aead::seal(&ROOT, 0, KEYRING_PATH.as_bytes(), &keyring_plain(2)).unwrap();
    storage.apply(Batch::new().put(KEYRING_PATH, sealed)).await.unwrap();
    let b = Barrier::new(storage);
    b.unseal(RootKey::from_slice(&ROOT).unwrap()).await.unwrap();
    b
}

fn term_key(term: u32) -> &'static [u8; 32] {
    &TERM_KEYS.iter().find(|(t, _)| *t == term).unwrap().1
}

// ---------------------------------------------------------------------------------------------
// barrier_decode

#[test]
fn barrier_decode() {
    let mut t = SUITE.target("barrier_decode", 1500);
    let corpus = t.corpus();
    // Genuine ciphertexts and their plaintexts: the only inputs a read may accept.
    let mut genuine: BTreeMap<Vec<u8>, &[u8]> = corpus
        .iter()
        .filter_map(|(name, bytes)| {
            let i: usize = name.strip_prefix("genuine-")?.strip_suffix(".bin")?.parse().ok()?;
            Some((bytes.clone(), PLAINTEXTS[i]))
        })
        .collect();
    assert_eq!(genuine.len(), PLAINTEXTS.len(), "corpus lost its genuine ciphertexts");
    // `unknown-term.bin` is a genuine term-2 ciphertext whose header names term 9 (the term
    // selects the key and is not under the tag). A mutation that writes term 2 back restores
    // the genuine ciphertext, which must then be accepted, with its plaintext.
    let (_, unknown) =
        corpus.iter().find(|(name, _)| name == "unknown-term.bin").expect("corpus lost unknown-term.bin");
    let mut restored = unknown.clone();
    restored[..4].copy_from_slice(&2u32.to_be_bytes());
    genuine.insert(restored, UNKNOWN_TERM_PLAINTEXT);
    let rt = rt();
    let mem = Arc::new(MemStorage::new());
    let barrier = rt.block_on(fixed_barrier(mem.clone()));
    let check = |raw: &[u8]| -> Result<(), String> {
        rt.block_on(async {
            mem.apply(Batch::new().put(VALUE_KEY, raw.to_vec())).await.map_err(|e| e.to_string())?;
            match barrier.get(VALUE_KEY).await {
                Ok(Some(entry)) => match genuine.get(raw) {
                    Some(plain) if entry.value.as_slice() == *plain => Ok(()),
                    Some(_) => Err("a genuine ciphertext decrypted to the wrong plaintext".into()),
                    None => Err(format!(
                        "accepted a value that is not a genuine ciphertext ({} bytes)",
                        raw.len()
                    )),
                },
                Ok(None) => Err("the stored value vanished".into()),
                Err(BarrierError::Decrypt { key } | BarrierError::UnknownTerm { key, .. })
                    if key == VALUE_KEY =>
                {
                    Ok(())
                }
                Err(e) => Err(format!("unexpected error kind: {e}")),
            }
        })
    };
    t.replay(check);
    t.generate(bytes_from(t.seeds(), BARRIER_DICT), |b| check(b));
    t.finish();
}

// ---------------------------------------------------------------------------------------------
// keyring_decode

#[test]
fn keyring_decode() {
    let mut t = SUITE.target("keyring_decode", 1500);
    let rt = rt();
    let check = |raw: &[u8]| -> Result<(), String> {
        let decoded = Keyring::decode(raw);
        if let Ok(k) = &decoded {
            // Round trip: what decodes, encodes to the same keyring.
            let again =
                Keyring::decode(&k.encode()).map_err(|e| format!("re-encoded keyring refused: {e}"))?;
            if again.active_term() != k.active_term() || again.terms.len() != k.terms.len() {
                return Err("round trip changed the terms".into());
            }
            for (term, tk) in &k.terms {
                let other = again.term(*term).ok_or("round trip lost a term")?;
                let same = other.key.ct_eq(tk.key.expose())
                    && other.install_time == tk.install_time
                    && other.encryptions.load(std::sync::atomic::Ordering::Relaxed)
                        == tk.encryptions.load(std::sync::atomic::Ordering::Relaxed);
                if !same {
                    return Err(format!("round trip changed term {term}"));
                }
            }
        }
        // The same plaintext as the barrier finds it: sealed under the root key.
        rt.block_on(async {
            let mem = Arc::new(MemStorage::new());
            let sealed = aead::seal(&ROOT, 0, KEYRING_PATH.as_bytes(), raw).unwrap();
            mem.apply(Batch::new().put(KEYRING_PATH, sealed)).await.unwrap();
            let b = Barrier::new(mem);
            match (b.unseal(RootKey::from_slice(&ROOT).unwrap()).await, &decoded) {
                (Ok(()), Ok(k)) => match b.key_status() {
                    Ok(s) if s.term == k.active_term() => Ok(()),
                    other => Err(format!("unsealed with a keyring but key status is {other:?}")),
                },
                (Err(BarrierError::KeyringCorrupt(_)), Err(_)) => Ok(()),
                (r, d) => Err(format!("unseal gave {r:?} for a keyring that decodes: {}", d.is_ok())),
            }
        })
    };
    t.replay(check);
    t.generate(bytes_from(t.seeds(), KEYRING_DICT), |b| check(b));
    // The sealed record itself: any damage is the root key's failure or a damaged keyring.
    let sealed = aead::seal(&ROOT, 0, KEYRING_PATH.as_bytes(), &keyring_plain(1)).unwrap();
    let n = t.cases() / 4;
    t.generate_n(n, bytes_from(vec![sealed.clone()], BARRIER_DICT), |raw| {
        rt.block_on(async {
            let mem = Arc::new(MemStorage::new());
            mem.apply(Batch::new().put(KEYRING_PATH, raw.clone())).await.unwrap();
            let b = Barrier::new(mem);
            match b.unseal(RootKey::from_slice(&ROOT).unwrap()).await {
                Ok(()) if *raw == sealed => Ok(()),
                Ok(()) => Err("unsealed with a damaged keyring record".into()),
                Err(BarrierError::WrongRootKey | BarrierError::KeyringCorrupt(_)) => Ok(()),
                Err(e) => Err(format!("unexpected error kind: {e}")),
            }
        })
    });
    t.finish();
}

// ---------------------------------------------------------------------------------------------
// S2: tamper detection

/// How a stored value is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Corruption {
    BitFlip,
    ByteSet,
    TermEdit,
    FormatEdit,
    Truncate,
    Extend,
    ZeroFill,
    MoveFromOtherKey,
    SwapWithOtherKey,
}

const KINDS: [Corruption; 9] = [
    Corruption::BitFlip,
    Corruption::ByteSet,
    Corruption::TermEdit,
    Corruption::FormatEdit,
    Corruption::Truncate,
    Corruption::Extend,
    Corruption::ZeroFill,
    Corruption::MoveFromOtherKey,
    Corruption::SwapWithOtherKey,
];

/// Damaged values for `key` (and, for a swap, for the other key too). Always different from
/// what is stored.
fn corrupt(rng: &mut StdRng, kind: Corruption, key: usize, originals: &[Vec<u8>]) -> Vec<(usize, Vec<u8>)> {
    let orig = &originals[key];
    let other = loop {
        let o = rng.gen_range(0..originals.len());
        if o != key {
            break o;
        }
    };
    let mut v = orig.clone();
    match kind {
        Corruption::BitFlip => {
            let i = rng.gen_range(0..v.len());
            v[i] ^= 1 << rng.gen_range(0..8);
        }
        Corruption::ByteSet => {
            let i = rng.gen_range(0..v.len());
            v[i] = v[i].wrapping_add(rng.gen_range(1..=255));
        }
        Corruption::TermEdit => {
            // Another term: an existing one (wrong key), 0 (the root key's) or unknown.
            let term = match rng.gen_range(0..3) {
                0 => u32::from_be_bytes([v[0], v[1], v[2], v[3]]) % 2 + 1,
                1 => 0,
                _ => rng.gen_range(3..=u32::MAX),
            };
            let cur = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            let term = if term == cur { cur % 2 + 1 } else { term };
            v[..4].copy_from_slice(&term.to_be_bytes());
        }
        Corruption::FormatEdit => v[4] = v[4].wrapping_add(rng.gen_range(1..=255)),
        Corruption::Truncate => v.truncate(rng.gen_range(0..v.len())),
        Corruption::Extend => {
            let n = rng.gen_range(1..64);
            v.extend((0..n).map(|_| rng.gen::<u8>()));
        }
        Corruption::ZeroFill => {
            let from = rng.gen_range(0..v.len());
            let to = rng.gen_range(from + 1..=v.len());
            let before = v.clone();
            v[from..to].fill(0);
            if v == before {
                v[from] = 1;
            }
        }
        Corruption::MoveFromOtherKey => return vec![(key, originals[other].clone())],
        Corruption::SwapWithOtherKey => {
            return vec![(key, originals[other].clone()), (other, orig.clone())];
        }
    }
    assert_ne!(&v, orig, "{kind:?} left the value unchanged");
    vec![(key, v)]
}

/// Writes values through a barrier over `storage`, then damages them `n` times in rounds of
/// ten (one batch of damage, reads of every damaged key, one batch restoring them) and reads
/// every damaged key through the barrier. Returns the count per kind.
async fn corruptions_detected(
    storage: Arc<dyn Storage>,
    n: usize,
    rng: &mut StdRng,
) -> BTreeMap<Corruption, usize> {
    let barrier = fixed_barrier(storage.clone()).await;
    let keys: Vec<String> = (0..40).map(|i| format!("logical/{i:02}/secret")).collect();
    let plain: Vec<Vec<u8>> =
        (0..keys.len()).map(|i| format!("value {i} ").repeat(i % 7 + 1).into_bytes()).collect();
    // Half the values under term 1, half under term 2, so term edits can land on a real key.
    for (i, (k, p)) in keys.iter().zip(&plain).enumerate() {
        if i == keys.len() / 2 {
            barrier.seal();
            let sealed = aead::seal(&ROOT, 0, KEYRING_PATH.as_bytes(), &keyring_plain(1)).unwrap();
            storage.apply(Batch::new().put(KEYRING_PATH, sealed)).await.unwrap();
            barrier.unseal(RootKey::from_slice(&ROOT).unwrap()).await.unwrap();
        }
        barrier.put(k, p.clone()).await.unwrap();
    }
    let mut originals = Vec::new();
    for k in &keys {
        originals.push(storage.get(k).await.unwrap().unwrap().value);
    }
    assert!(
        originals.iter().any(|v| aead::term_of(v) == Some(1))
            && originals.iter().any(|v| aead::term_of(v) == Some(2))
    );
    let mut counts = BTreeMap::new();
    let mut done = 0;
    while done < n {
        // One round: up to ten distinct keys damaged at once.
        let mut batch = Batch::new();
        let mut touched: Vec<(usize, Corruption)> = Vec::new();
        while touched.len() < 10 && done < n {
            let key = rng.gen_range(0..keys.len());
            let kind = KINDS[rng.gen_range(0..KINDS.len())];
            let edits = corrupt(rng, kind, key, &originals);
            if edits.iter().any(|(k, _)| touched.iter().any(|(t, _)| t == k)) {
                continue;
            }
            for (k, v) in edits {
                batch = batch.put(keys[k].clone(), v);
                touched.push((k, kind));
            }
            *counts.entry(kind).or_insert(0) += 1;
            done += 1;
        }
        storage.apply(batch).await.unwrap();
        for (k, kind) in &touched {
            match barrier.get(&keys[*k]).await {
                Err(BarrierError::Decrypt { key } | BarrierError::UnknownTerm { key, .. })
                    if key == keys[*k] => {}
                Ok(Some(e)) => panic!(
                    "{kind:?} of {} was accepted; plaintext {}",
                    keys[*k],
                    if e.value.as_slice() == plain[*k].as_slice() { "unchanged" } else { "WRONG" }
                ),
                other => panic!("{kind:?} of {}: unexpected outcome {other:?}", keys[*k]),
            }
        }
        let mut restore = Batch::new();
        for (k, _) in &touched {
            restore = restore.put(keys[*k].clone(), originals[*k].clone());
        }
        storage.apply(restore).await.unwrap();
    }
    // Every original reads back: the reads above failed because of the damage alone.
    for (k, p) in keys.iter().zip(&plain) {
        assert_eq!(barrier.get(k).await.unwrap().unwrap().value.as_slice(), p.as_slice(), "{k}");
    }
    counts
}

#[tokio::test]
async fn barrier_detects_random_corruptions() {
    let seed = std::env::var(crate::fuzzing::SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen::<u64>());
    let n = crate::fuzzing::cases(1000) as usize;
    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn Storage> = Arc::new(SledStorage::open(&dir.path().join("store")).unwrap());
    let on_sled = corruptions_detected(sled, n, &mut rng).await;
    let on_mem = corruptions_detected(Arc::new(MemStorage::new()), n, &mut rng).await;
    for counts in [&on_sled, &on_mem] {
        assert_eq!(counts.values().sum::<usize>(), n);
        assert!(
            KINDS.iter().all(|k| counts.contains_key(k)),
            "a corruption kind was never tried: {counts:?}"
        );
    }
    report(&format!(
        "S2 tamper detection: {n} corruptions of stored values on sled and {n} in memory, all {} refused \
         by the barrier, {:.1} s (seed {seed}) [sled: {on_sled:?}]",
        2 * n,
        started.elapsed().as_secs_f64()
    ));
}

// ---------------------------------------------------------------------------------------------
// Corpus

/// Rewrites the corpora of this crate's targets. Run after a format change:
/// `cargo test -p coffer-storage --lib write_fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_corpus() {
    use crate::fuzzing::write_corpus_file;
    for (i, p) in PLAINTEXTS.iter().enumerate() {
        let term = if i % 2 == 0 { 2 } else { 1 };
        let ct = aead::seal(term_key(term), term, VALUE_KEY.as_bytes(), p).unwrap();
        write_corpus_file("barrier_decode", &format!("genuine-{i}.bin"), &ct);
    }
    let other_key = aead::seal(term_key(2), 2, b"logical/fuzz/other", b"moved").unwrap();
    write_corpus_file("barrier_decode", "moved-from-other-key.bin", &other_key);
    let root_sealed = aead::seal(&ROOT, 0, VALUE_KEY.as_bytes(), b"term zero").unwrap();
    write_corpus_file("barrier_decode", "term-0.bin", &root_sealed);
    let mut unknown = aead::seal(term_key(2), 2, VALUE_KEY.as_bytes(), UNKNOWN_TERM_PLAINTEXT).unwrap();
    unknown[..4].copy_from_slice(&9u32.to_be_bytes());
    write_corpus_file("barrier_decode", "unknown-term.bin", &unknown);
    write_corpus_file("barrier_decode", "empty.bin", b"");
    write_corpus_file(
        "barrier_decode",
        "header-only.bin",
        &[0, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );

    write_corpus_file("keyring_decode", "v2-two-terms.bin", &keyring_plain(2));
    write_corpus_file("keyring_decode", "v2-active-1.bin", &keyring_plain(1));
    let mut v1 = vec![1u8, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    v1.extend_from_slice(&1_600_000_000_000_000_000i64.to_be_bytes()[..]);
    v1.extend_from_slice(&[0x21; 32]);
    write_corpus_file("keyring_decode", "v1-one-term.bin", &v1);
    let mut missing_active = keyring_plain(2);
    missing_active[1..5].copy_from_slice(&5u32.to_be_bytes());
    write_corpus_file("keyring_decode", "active-term-missing.bin", &missing_active);
    let mut repeated = keyring_plain(2);
    let first_term_at = 9;
    repeated[first_term_at..first_term_at + 4].copy_from_slice(&2u32.to_be_bytes());
    write_corpus_file("keyring_decode", "repeated-term.bin", &repeated);
    let mut huge_count = keyring_plain(2);
    huge_count[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
    write_corpus_file("keyring_decode", "huge-count.bin", &huge_count);
    write_corpus_file("keyring_decode", "too-short.bin", &[2, 0, 0]);
}

// ---------------------------------------------------------------------------------------------
// Regressions found by the targets above

/// The term in a value's header is not covered by the GCM tag; the keyring record (term 0)
/// was opened without looking at it, so a damaged header was silently accepted. Found by
/// `keyring_decode`.
#[tokio::test]
async fn keyring_record_with_a_damaged_term_header_is_refused() {
    for term in [1u32, 2, 0x0100_0000, u32::MAX] {
        let mem = Arc::new(MemStorage::new());
        let mut sealed = aead::seal(&ROOT, 0, KEYRING_PATH.as_bytes(), &keyring_plain(2)).unwrap();
        sealed[..4].copy_from_slice(&term.to_be_bytes());
        mem.apply(Batch::new().put(KEYRING_PATH, sealed)).await.unwrap();
        let b = Barrier::new(mem);
        let r = b.unseal(RootKey::from_slice(&ROOT).unwrap()).await;
        assert!(matches!(r, Err(BarrierError::KeyringCorrupt(_))), "term {term}: {r:?}");
        assert!(b.is_sealed());
    }
}
