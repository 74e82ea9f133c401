//! `transit_ciphertext`: `vault:v<N>:<base64>` strings through every transit key type's
//! decrypt, signatures through Ed25519 verify, and stored key records through their decoder.

use std::collections::BTreeMap;

use coffer_storage::fuzzing::{bytes_from, Structured};
use coffer_storage::keys::SecretBytes;
use proptest::collection::vec;
use proptest::prelude::*;
use time::OffsetDateTime;

use super::SUITE;
use crate::engines::transit::cipher::go_atoi;
use crate::engines::transit::crypto::{b64, go_b64_decode, KeyType};
use crate::engines::transit::key::{NewKey, TransitKey};
use crate::engines::transit::signature::SignOptions;

const DICT: &[&[u8]] = &[
    b"vault:v",
    b"vault:v1:",
    b"vault:v2:",
    b"vault:v0:",
    b"vault:v-1:",
    b"vault:v+1:",
    b"vault:v01:",
    b"vault:v9223372036854775808:",
    b":",
    b"=",
    b"==",
    b"\n",
    b"\r",
    b"AAAA",
    b"////",
    b"++++",
    b"\"v\":1",
    b"\"policy\"",
    b"\"keys\"",
    b"\"latest_version\"",
    b"\"min_decryption_version\"",
    b"\"type\"",
    b"\"derived\"",
    b"\"convergent_encryption\"",
    b"\"key\"",
];

/// Plaintexts of the genuine ciphertexts.
const PLAINTEXTS: [&[u8]; 3] = [b"", b"the quick brown fox", &[0xff; 48]];
/// The message genuine signatures sign.
const MESSAGE: &[u8] = b"fuzz message";

/// One test key: fixed (public, test-only) material, the context it needs, and the genuine
/// ciphertexts (or signatures) made with it: `(version, payload) -> plaintext`.
struct TestKey {
    name: &'static str,
    key: TransitKey,
    context: &'static [u8],
    genuine: BTreeMap<(i64, Vec<u8>), Vec<u8>>,
}

fn test_key(name: &'static str, opts: NewKey, versions: u8, context: &'static [u8]) -> TestKey {
    let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let mut key = TransitKey::create(name, &opts, now).unwrap();
    for _ in 1..versions {
        key.rotate_in_memory(now).unwrap();
    }
    let kind = opts.kind;
    if kind != KeyType::Ed25519 {
        for (v, entry) in key.keys.iter_mut() {
            let fill = (name.len() as u8) ^ ((*v as u8) << 4);
            entry.key = Some(SecretBytes::from_slice(&vec![fill; kind.key_len()]));
        }
    }
    TestKey { name, key, context, genuine: BTreeMap::new() }
}

fn test_keys() -> Vec<TestKey> {
    const D: NewKey = NewKey::DEFAULTS;
    vec![
        test_key("aes256", D, 2, b""),
        test_key("aes128", NewKey { kind: KeyType::Aes128Gcm96, ..D }, 1, b""),
        test_key("chacha", NewKey { kind: KeyType::ChaCha20Poly1305, ..D }, 1, b""),
        test_key("derived", NewKey { derived: true, ..D }, 2, b"fuzz-context"),
        test_key("convergent", NewKey { derived: true, convergent: true, ..D }, 1, b"conv-context"),
        test_key("ed25519", NewKey { kind: KeyType::Ed25519, ..D }, 2, b""),
    ]
}

/// `vault:v<N>:<base64>` as transit reads it: the version (0 read as 1) and the decoded bytes.
fn normalize(s: &str) -> Option<(i64, Vec<u8>)> {
    let (v, data) = s.strip_prefix("vault:v")?.split_once(':')?;
    let ver = go_atoi(v)?;
    Some((if ver == 0 { 1 } else { ver }, go_b64_decode(data).ok()?))
}

/// Records what `text` is (if it opens with `k`) as genuine.
fn learn(k: &mut TestKey, text: &str) {
    let Some(norm) = normalize(text) else { return };
    if k.key.key_type() == Some(KeyType::Ed25519) {
        if k.key.verify(k.context, MESSAGE, text, &SignOptions::DEFAULT).unwrap_or(false) {
            k.genuine.insert(norm, MESSAGE.to_vec());
        }
    } else if let Ok(pt) = k.key.decrypt(k.context, text, b"") {
        k.genuine.insert(norm, pt.expose().to_vec());
    }
}

fn check_key(k: &TestKey, text: &str) -> Result<(), String> {
    let ed = k.key.key_type() == Some(KeyType::Ed25519);
    let outcome = if ed {
        k.key.verify(k.context, MESSAGE, text, &SignOptions::DEFAULT).map(|ok| ok.then(|| MESSAGE.to_vec()))
    } else {
        k.key.decrypt(k.context, text, b"").map(|pt| Some(pt.expose().to_vec()))
    };
    match outcome {
        Err(e) if e.is_internal() => {
            Err(format!("{}: client input gave a server error: {}", k.name, e.message()))
        }
        Err(_) | Ok(None) => Ok(()),
        Ok(Some(pt)) => match normalize(text).and_then(|n| k.genuine.get(&n)) {
            Some(want) if *want == pt => Ok(()),
            Some(_) => Err(format!("{}: a genuine input opened to the wrong plaintext", k.name)),
            None => Err(format!("{}: accepted an input that is not genuine", k.name)),
        },
    }
}

fn check(keys: &[TestKey], raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw);
    for k in keys {
        check_key(k, &text)?;
    }
    // The same bytes as a stored key record: a key or a typed refusal; what decodes encodes.
    if let Ok(key) = TransitKey::decode(raw) {
        let again = key.encode().map_err(|e| format!("decoded key does not encode: {e}"))?;
        TransitKey::decode(&again).map_err(|e| format!("re-encoded key refused: {e}"))?;
    }
    Ok(())
}

#[test]
fn transit_ciphertext() {
    let mut t = SUITE.target("transit_ciphertext", 1500);
    let mut keys = test_keys();
    let corpus = t.seeds();
    // Genuine inputs: the corpus files that open (made with the fixed keys), and fresh ones.
    let mut seeds = corpus.clone();
    for k in &mut keys {
        for c in &corpus {
            learn(k, &String::from_utf8_lossy(c));
        }
        for ver in 1..=k.key.latest_version {
            let fresh: Vec<String> = if k.key.key_type() == Some(KeyType::Ed25519) {
                vec![k.key.sign(ver, k.context, MESSAGE, &SignOptions::DEFAULT).unwrap().text]
            } else {
                PLAINTEXTS.iter().map(|p| k.key.encrypt(ver, k.context, p, b"").unwrap()).collect()
            };
            for f in fresh {
                learn(k, &f);
                seeds.push(f.into_bytes());
            }
        }
        assert!(!k.genuine.is_empty(), "{}: no genuine input", k.name);
    }
    let learned: usize = keys.iter().map(|k| k.genuine.len()).sum();
    t.replay(|b| check(&keys, b));
    let n = t.cases();
    t.generate_n(n, bytes_from(seeds, DICT), |b| check(&keys, b));
    // Go's base64 decoder round-trips the standard encoding.
    t.generate_n(n / 4, vec(any::<u8>(), 0..64).prop_map(Structured), |Structured(b)| {
        match go_b64_decode(&b64(b)) {
            Ok(back) if back == *b => Ok(()),
            other => Err(format!("base64 round trip gave {other:?}")),
        }
    });
    t.note(format!("genuine inputs known: {learned}"));
    t.finish();
}

/// Rewrites this target's corpus (ciphertexts under the fixed test keys, signatures, a key
/// record): `cargo test --lib write_transit_corpus -- --ignored`.
#[test]
#[ignore]
fn write_transit_corpus() {
    use coffer_storage::fuzzing::write_corpus_file;
    for k in test_keys() {
        for ver in 1..=k.key.latest_version {
            if k.key.key_type() == Some(KeyType::Ed25519) {
                let sig = k.key.sign(ver, k.context, MESSAGE, &SignOptions::DEFAULT).unwrap().text;
                write_corpus_file(
                    "transit_ciphertext",
                    &format!("{}-v{ver}-signature.txt", k.name),
                    sig.as_bytes(),
                );
                continue;
            }
            for (i, p) in PLAINTEXTS.iter().enumerate() {
                let ct = k.key.encrypt(ver, k.context, p, b"").unwrap();
                write_corpus_file("transit_ciphertext", &format!("{}-v{ver}-{i}.txt", k.name), ct.as_bytes());
            }
        }
    }
    let record = test_keys().remove(0).key.encode().unwrap();
    write_corpus_file("transit_ciphertext", "key-record.json", &record);
    write_corpus_file("transit_ciphertext", "no-prefix.txt", b"v1:AAAA");
    write_corpus_file(
        "transit_ciphertext",
        "too-new.txt",
        b"vault:v9:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    write_corpus_file("transit_ciphertext", "negative-version.txt", b"vault:v-3:AAAA");
    write_corpus_file("transit_ciphertext", "short-payload.txt", b"vault:v1:AAAA");
    write_corpus_file("transit_ciphertext", "newlines.txt", b"vault:v1:AAAA\r\nAAAA\nAAAA");
}
