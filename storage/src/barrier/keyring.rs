//! The keyring: numbered data keys ("terms"), one of them active for encryption.
//!
//! Persisted at [`KEYRING_PATH`](super::KEYRING_PATH), encrypted with the root key (term 0).
//! Plaintext layout, version 2 (all integers big-endian; version 1 lacked `encryptions`):
//!
//! ```text
//! format u8 = 2 | active_term u32 | count u32 |
//!     count × { term u32 | install_unix_nanos i64 | encryptions u64 | key [32] }
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::keys::{DataKey, KEY_LEN};

const FORMAT: u8 = 2;
const FORMAT_V1: u8 = 1;
const RECORD_LEN_V1: usize = 4 + 8 + KEY_LEN;
const RECORD_LEN: usize = 4 + 8 + 8 + KEY_LEN;

/// One term's key and bookkeeping.
pub struct TermKey {
    pub key: DataKey,
    pub install_time: OffsetDateTime,
    /// Encryptions performed with this term since this node loaded the keyring.
    pub encryptions: AtomicU64,
}

/// All terms; the active one encrypts new values, every one decrypts.
pub struct Keyring {
    pub(crate) terms: BTreeMap<u32, TermKey>,
    pub(crate) active: u32,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("terms", &self.terms.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring with a single fresh term 1.
    pub fn new_first() -> Result<Self, rand::Error> {
        let mut terms = BTreeMap::new();
        terms.insert(
            1,
            TermKey {
                key: DataKey::generate()?,
                install_time: crate::clock::now(),
                encryptions: AtomicU64::new(0),
            },
        );
        Ok(Self { terms, active: 1 })
    }

    /// The active term number.
    pub fn active_term(&self) -> u32 {
        self.active
    }

    /// The active term's key record.
    pub fn active(&self) -> Option<&TermKey> {
        self.terms.get(&self.active)
    }

    /// Key of `term`, if present.
    pub fn term(&self, term: u32) -> Option<&TermKey> {
        self.terms.get(&term)
    }

    /// A copy of this keyring with one more term, active. Does not change `self`.
    pub fn with_new_term(&self) -> Result<Self, rand::Error> {
        let mut terms = BTreeMap::new();
        for (t, k) in &self.terms {
            terms.insert(
                *t,
                TermKey {
                    key: k.key.duplicate(),
                    install_time: k.install_time,
                    encryptions: AtomicU64::new(k.encryptions.load(Ordering::Relaxed)),
                },
            );
        }
        let next = self.terms.keys().next_back().copied().unwrap_or(0) + 1;
        terms.insert(
            next,
            TermKey {
                key: DataKey::generate()?,
                install_time: crate::clock::now(),
                encryptions: AtomicU64::new(0),
            },
        );
        Ok(Self { terms, active: next })
    }

    /// Serialises to the plaintext layout (zeroized when dropped).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(9 + RECORD_LEN * self.terms.len()));
        out.push(FORMAT);
        out.extend_from_slice(&self.active.to_be_bytes());
        out.extend_from_slice(&(self.terms.len() as u32).to_be_bytes());
        for (term, k) in &self.terms {
            out.extend_from_slice(&term.to_be_bytes());
            let nanos = k.install_time.unix_timestamp_nanos() as i64;
            out.extend_from_slice(&nanos.to_be_bytes());
            out.extend_from_slice(&k.encryptions.load(Ordering::Relaxed).to_be_bytes());
            out.extend_from_slice(k.key.expose());
        }
        out
    }

    /// Parses the plaintext layout.
    pub fn decode(raw: &[u8]) -> Result<Self, String> {
        if raw.len() < 9 {
            return Err("keyring too short".into());
        }
        let record_len = match raw[0] {
            FORMAT => RECORD_LEN,
            FORMAT_V1 => RECORD_LEN_V1,
            other => return Err(format!("unknown keyring format {other}")),
        };
        let be32 = |b: &[u8]| -> u32 {
            let mut a = [0u8; 4];
            a.copy_from_slice(b);
            u32::from_be_bytes(a)
        };
        let active = be32(&raw[1..5]);
        let count = be32(&raw[5..9]) as usize;
        let body = &raw[9..];
        if body.len() != count.checked_mul(record_len).ok_or("keyring count overflows")? {
            return Err("keyring length does not match its term count".into());
        }
        let mut terms = BTreeMap::new();
        for rec in body.chunks_exact(record_len) {
            let term = be32(&rec[..4]);
            let mut n = [0u8; 8];
            n.copy_from_slice(&rec[4..12]);
            let install_time = OffsetDateTime::from_unix_timestamp_nanos(i64::from_be_bytes(n) as i128)
                .map_err(|_| "keyring install time out of range")?;
            let (encryptions, key_bytes) = if record_len == RECORD_LEN {
                let mut c = [0u8; 8];
                c.copy_from_slice(&rec[12..20]);
                (u64::from_be_bytes(c), &rec[20..])
            } else {
                (0, &rec[12..])
            };
            let key = DataKey::from_slice(key_bytes).ok_or("keyring key length")?;
            let encryptions = AtomicU64::new(encryptions);
            if terms.insert(term, TermKey { key, install_time, encryptions }).is_some() {
                return Err(format!("keyring repeats term {term}"));
            }
        }
        if !terms.contains_key(&active) || active == 0 {
            return Err(format!("keyring active term {active} is missing"));
        }
        Ok(Self { terms, active })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let k = Keyring::new_first().unwrap().with_new_term().unwrap();
        let raw = k.encode();
        let d = Keyring::decode(&raw).unwrap();
        assert_eq!(d.active, 2);
        assert_eq!(d.terms.len(), 2);
        for (t, v) in &k.terms {
            assert!(d.terms[t].key.ct_eq(v.key.expose()));
        }
    }

    #[test]
    fn damaged_keyrings_are_refused() {
        let raw = Keyring::new_first().unwrap().encode();
        assert!(Keyring::decode(&raw[..raw.len() - 1]).is_err());
        let mut bad = raw.to_vec();
        bad[0] = 9;
        assert!(Keyring::decode(&bad).is_err());
        let mut bad = raw.to_vec();
        bad[4] = 7; // active term 7 does not exist
        assert!(Keyring::decode(&bad).is_err());
    }
}
