//! The barrier's value format: `term (u32 BE) | format (u8) | nonce (12) | ciphertext + tag`,
//! AES-256-GCM with a random 96-bit nonce and the full storage key as associated data.
//!
//! Format 2 is OpenBao's "AESGCMVersion2" layout (path bound as AAD); there is no format 1 here,
//! because coffer never wrote values without associated data. Term 0 is reserved for values
//! encrypted directly with the root key (the keyring) or the unseal key (the wrapped root key).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use rand::RngCore;
use zeroize::Zeroizing;

/// The nonce type of AES-256-GCM.
type Nonce = aes_gcm::aead::Nonce<Aes256Gcm>;

/// Format byte of values written by this build.
pub const FORMAT: u8 = 2;
/// Length of the header before the ciphertext.
pub const HEADER_LEN: usize = 4 + 1 + NONCE_LEN;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a value could not be sealed or opened. Deliberately coarse: the caller reports a
/// generic decryption failure and never echoes bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AeadError {
    #[error("ciphertext is truncated")]
    Truncated,
    #[error("unknown value format {0}")]
    UnknownFormat(u8),
    #[error("message authentication failed")]
    Authentication,
    #[error("random number generator failed")]
    Rng,
    #[error("invalid key length")]
    KeyLength,
    /// The header names another term than the key the caller holds (the term is not covered by
    /// the tag, so it is checked explicitly: a damaged header is never silently accepted).
    #[error("value is recorded under term {found}, not the expected term")]
    WrongTerm { found: u32 },
}

/// Term recorded in a value's header, if the value is long enough to have one.
pub fn term_of(value: &[u8]) -> Option<u32> {
    let b: [u8; 4] = value.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Encrypts `plaintext` under `key`, recording `term`, binding `aad`.
pub fn seal(key: &[u8], term: u32, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| AeadError::KeyLength)?;
    let mut nonce = [0u8; NONCE_LEN];
    // An RNG failure must never degrade into a predictable nonce.
    rand::rngs::OsRng.try_fill_bytes(&mut nonce).map_err(|_| AeadError::Rng)?;
    let ct = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| AeadError::Authentication)?;
    let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
    out.extend_from_slice(&term.to_be_bytes());
    out.push(FORMAT);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts a value produced by [`seal`] with the same key, `term` and `aad`.
pub fn open(key: &[u8], term: u32, aad: &[u8], value: &[u8]) -> Result<Zeroizing<Vec<u8>>, AeadError> {
    if value.len() < HEADER_LEN + TAG_LEN {
        return Err(AeadError::Truncated);
    }
    match term_of(value) {
        Some(found) if found == term => {}
        Some(found) => return Err(AeadError::WrongTerm { found }),
        None => return Err(AeadError::Truncated),
    }
    if value[4] != FORMAT {
        return Err(AeadError::UnknownFormat(value[4]));
    }
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| AeadError::KeyLength)?;
    let nonce = <&Nonce>::try_from(&value[5..HEADER_LEN]).map_err(|_| AeadError::Truncated)?;
    cipher
        .decrypt(nonce, Payload { msg: &value[HEADER_LEN..], aad })
        .map(Zeroizing::new)
        .map_err(|_| AeadError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [9; 32];

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector is hex")
    }

    #[test]
    fn opens_the_gcm_specifications_aes_256_test_case() {
        // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16 (AES-256, 60-byte
        // plaintext, 20 bytes of associated data): the cipher under the barrier is standard
        // AES-256-GCM, whichever crate version provides it.
        let key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let nonce = unhex("cafebabefacedbaddecaf888");
        let plain = unhex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let sealed = unhex(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662\
             76fc6ece0f4e1768cddf8853bb2d551b",
        );
        let mut value = 7u32.to_be_bytes().to_vec();
        value.push(FORMAT);
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&sealed);
        assert_eq!(open(&key, 7, &aad, &value).unwrap().as_slice(), plain.as_slice());
        let last = value.len() - 1;
        value[last] ^= 1;
        assert_eq!(open(&key, 7, &aad, &value), Err(AeadError::Authentication));
    }

    #[test]
    fn round_trip_and_layout() {
        let ct = seal(&KEY, 7, b"logical/x", b"secret").unwrap();
        assert_eq!(term_of(&ct), Some(7));
        assert_eq!(ct[4], FORMAT);
        assert_eq!(ct.len(), HEADER_LEN + 6 + TAG_LEN);
        assert_eq!(open(&KEY, 7, b"logical/x", &ct).unwrap().as_slice(), b"secret");
    }

    #[test]
    fn wrong_aad_key_or_any_bit_flip_fails() {
        let ct = seal(&KEY, 1, b"a", b"payload").unwrap();
        assert_eq!(open(&KEY, 1, b"b", &ct), Err(AeadError::Authentication));
        assert_eq!(open(&[8; 32], 1, b"a", &ct), Err(AeadError::Authentication));
        for i in 0..ct.len() {
            for bit in 0..8 {
                let mut bad = ct.clone();
                bad[i] ^= 1 << bit;
                assert!(open(&KEY, 1, b"a", &bad).is_err(), "flip at byte {i} bit {bit} accepted");
            }
        }
        for len in 0..ct.len() {
            assert!(open(&KEY, 1, b"a", &ct[..len]).is_err(), "truncation to {len} accepted");
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let a = seal(&KEY, 1, b"k", b"same").unwrap();
        let b = seal(&KEY, 1, b"k", b"same").unwrap();
        assert_ne!(a, b);
    }
}
