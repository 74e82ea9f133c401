//! What generate-root and rekey share: collecting key shares toward a quorum, combining them,
//! and checking the combined key against the seal.
//!
//! # What a quorum proves
//!
//! * Shamir seal: the combined key is the unseal key. It must decrypt the wrapped root key at
//!   [`ROOT_KEY_PATH`](crate::core::seal::ROOT_KEY_PATH) *and* the result must equal the root key
//!   the unsealed barrier holds (so a swapped storage record cannot pass).
//! * Static seal: the combined key is the recovery key. It must open the recovery check record
//!   at [`RECOVERY_CHECK_PATH`](crate::core::seal::RECOVERY_CHECK_PATH).
//!
//! Shares are never stored: they live in [`Shares`] (locked, zeroized memory) until the
//! threshold is reached, then they are combined and dropped, whatever the outcome.

use base64::Engine;
use subtle::ConstantTimeEq;

use coffer_storage::keys::{SecretBytes, UnsealKey};
use coffer_storage::Entry;

use crate::core::error::{Error, Result};
use crate::core::seal::{self, SealSource};
use crate::core::shamir::{self, ShamirError};
use crate::core::Core;

/// Shortest accepted key share (Vault's barrier minimum key length).
pub const MIN_KEY_LEN: usize = 16;
/// Longest accepted key share: a 32-byte key plus the Shamir x-coordinate.
pub const MAX_KEY_LEN: usize = 33;

/// Key shares collected toward one quorum. Each share zeroizes on drop.
#[derive(Default)]
pub struct Shares(Vec<SecretBytes>);

impl Shares {
    /// Number of shares collected.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no share has been given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an identical share was already given (constant-time per comparison).
    pub fn contains(&self, key: &SecretBytes) -> bool {
        self.0.iter().fold(false, |found, s| found | s.ct_eq(key.expose()))
    }

    /// Adds a share.
    pub fn push(&mut self, key: SecretBytes) {
        self.0.push(key);
    }

    /// Forgets every share.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Combines the collected shares into the key and forgets them, whether or not combining
    /// works. With a threshold of one the share is the key itself.
    pub fn combine(&mut self, threshold: u8) -> Result<SecretBytes, ShamirError> {
        let shares = std::mem::take(&mut self.0);
        if threshold <= 1 {
            return shares.into_iter().next().ok_or(ShamirError::TooFewParts);
        }
        let parts: Vec<&[u8]> = shares.iter().map(SecretBytes::expose).collect();
        shamir::combine(&parts)
    }
}

/// Decodes a key share as clients send it: hex first, then standard base64 when hex fails or
/// gives a length outside the accepted range (Vault's order, so a base64 share that happens to
/// be valid hex still works). The length itself is checked by the operation, whose error text
/// differs per endpoint.
pub fn decode_key(s: &str) -> Result<SecretBytes> {
    let s = s.trim();
    if let Ok(bytes) = hex::decode(s) {
        let bytes = zeroize::Zeroizing::new(bytes);
        if (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
            return Ok(SecretBytes::from_slice(&bytes));
        }
    }
    match base64::engine::general_purpose::STANDARD.decode(s) {
        Ok(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            Ok(SecretBytes::from_slice(&bytes))
        }
        Err(_) => Err(Error::bad("'key' must be a valid hex or base64 string")),
    }
}

/// Vault's key length check; `None` when the length is acceptable.
pub fn key_length_problem(key: &SecretBytes) -> Option<String> {
    if key.len() < MIN_KEY_LEN {
        Some(format!("key is shorter than minimum {MIN_KEY_LEN} bytes"))
    } else if key.len() > MAX_KEY_LEN {
        Some(format!("key is longer than maximum {MAX_KEY_LEN} bytes"))
    } else {
        None
    }
}

/// Checks the nonce a caller gave to cancel (or restart) an operation. `required` is set for
/// anonymous callers (unauthenticated endpoints), who must prove they know the operation.
pub fn check_cancel_nonce(current: &str, given: Option<&str>, required: bool) -> Result<()> {
    match given.filter(|g| !g.is_empty()) {
        Some(g) if bool::from(g.as_bytes().ct_eq(current.as_bytes())) => Ok(()),
        Some(_) => Err(Error::bad("the given nonce does not match the operation in progress")),
        None if required => {
            Err(Error::bad("the nonce of the operation in progress is required to cancel it"))
        }
        None => Ok(()),
    }
}

impl Core {
    /// The share threshold that authorizes quorum operations: unseal shares for a Shamir seal,
    /// recovery shares for the static seal.
    pub(crate) fn quorum_threshold(&self, cfg: &seal::StoredSealConfig) -> u8 {
        match self.seal_source {
            SealSource::Shamir => cfg.secret_threshold,
            SealSource::Static { .. } => cfg.recovery_threshold,
        }
    }

    /// The seal configuration of an initialised node; `not_initialized` when there is none
    /// (each endpoint words it differently).
    pub(crate) async fn initialized_seal_config(
        &self,
        not_initialized: Error,
    ) -> Result<seal::StoredSealConfig> {
        seal::read_config(self.barrier.raw().as_ref()).await?.ok_or(not_initialized)
    }

    /// A seal record (outside the barrier) that every initialised node has; its absence is an
    /// internal error with the log-only text `missing`.
    pub(crate) async fn seal_record(&self, path: &str, missing: &str) -> Result<Entry> {
        self.barrier.raw().get(path).await?.ok_or_else(|| Error::internal(missing))
    }

    /// Whether `key` (combined from shares) is this node's unseal key (Shamir) or recovery key
    /// (static seal). `Err` only for storage failures.
    pub(crate) async fn quorum_key_matches(&self, key: &SecretBytes) -> Result<bool> {
        match &self.seal_source {
            SealSource::Shamir => {
                let Some(kek) = UnsealKey::from_slice(key.expose()) else { return Ok(false) };
                let wrapped = self.seal_record(seal::ROOT_KEY_PATH, "wrapped root key missing").await?;
                let Ok(root) = seal::unwrap_root_key(&kek, &wrapped.value) else { return Ok(false) };
                Ok(self.barrier.with_root_key(|current| current.ct_eq(root.expose()))?)
            }
            SealSource::Static { .. } => {
                let check =
                    self.seal_record(seal::RECOVERY_CHECK_PATH, "recovery check record missing").await?;
                Ok(seal::verify_recovery(key.expose(), &check.value))
            }
        }
    }
}

/// Nodes for the generate-root and rekey tests: a core over `MemStorage`, initialised and
/// unsealed, with the shares its operators hold.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;

    use coffer_storage::keys::{SecretBytes, UnsealKey};
    use coffer_storage::{Batch, Entry, MemStorage, Storage, StorageError};

    use crate::core::seal::{render_shares, InitParams, SealSource};
    use crate::core::{Core, CoreConfig};

    /// A store whose `apply` can be made to fail, to show that an operation writes all or
    /// nothing, and that counts the batches it applied, to show that one writes nothing.
    pub struct FlakyStorage {
        inner: MemStorage,
        pub fail_apply: AtomicBool,
        applied: AtomicU64,
    }

    impl FlakyStorage {
        /// How many batches were applied so far.
        pub fn applied(&self) -> u64 {
            self.applied.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Storage for FlakyStorage {
        async fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
            self.inner.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.inner.list(prefix).await
        }
        async fn apply(&self, batch: Batch) -> Result<u64, StorageError> {
            if self.fail_apply.load(Ordering::SeqCst) {
                return Err(StorageError::Unavailable("injected failure".into()));
            }
            let version = self.inner.apply(batch).await?;
            self.applied.fetch_add(1, Ordering::SeqCst);
            Ok(version)
        }
    }

    pub struct Node {
        pub core: Arc<Core>,
        pub storage: Arc<FlakyStorage>,
        /// Hex shares: unseal shares (Shamir) or recovery shares (static seal).
        pub shares: Vec<String>,
        /// The static seal key, to restart the node over the same storage.
        pub static_key: Option<Vec<u8>>,
        pub root_token: String,
    }

    impl Node {
        /// Share `i` as the operation takes it.
        pub fn share(&self, i: usize) -> SecretBytes {
            super::decode_key(&self.shares[i]).unwrap()
        }

        /// A share of the right length that belongs to no quorum of this node (see
        /// [`stranger_to`]).
        pub fn stranger(&self) -> SecretBytes {
            let shares: Vec<SecretBytes> = (0..self.shares.len()).map(|i| self.share(i)).collect();
            stranger_to(&shares)
        }

        /// A fresh core over the same storage (a restart), started.
        pub async fn restart(&self) -> Arc<Core> {
            let seal = match &self.static_key {
                None => SealSource::Shamir,
                Some(k) => SealSource::Static { key: UnsealKey::from_slice(k).unwrap(), key_id: "k1".into() },
            };
            let core = Core::standalone(
                CoreConfig::default(),
                self.storage.clone(),
                seal,
                std::sync::Arc::new(crate::builtin::Builtin),
            );
            core.start().await.unwrap();
            core
        }
    }

    fn hex_shares(shares: &[SecretBytes]) -> Vec<String> {
        render_shares(shares).0.iter().map(|s| s.as_str().to_owned()).collect()
    }

    fn storage() -> Arc<FlakyStorage> {
        Arc::new(FlakyStorage {
            inner: MemStorage::new(),
            fail_apply: AtomicBool::new(false),
            applied: AtomicU64::new(0),
        })
    }

    /// A Shamir node initialised with `n` shares and threshold `t`, unsealed.
    pub async fn shamir(n: i64, t: i64) -> Node {
        shamir_with(CoreConfig::default(), n, t).await
    }

    /// Same, with a core configuration.
    pub async fn shamir_with(config: CoreConfig, n: i64, t: i64) -> Node {
        let storage = storage();
        let core = Core::standalone(
            config,
            storage.clone(),
            SealSource::Shamir,
            std::sync::Arc::new(crate::builtin::Builtin),
        );
        let init = core
            .init(InitParams { secret_shares: n, secret_threshold: t, ..InitParams::default() })
            .await
            .unwrap();
        let shares = hex_shares(&init.keys);
        for s in &shares[..t as usize] {
            core.unseal(Some(s), false).await.unwrap();
        }
        assert!(!core.is_sealed());
        let root_token = init.root_token.expose().to_owned();
        Node { core, storage, shares, static_key: None, root_token }
    }

    /// A static-seal node with `n` recovery shares and threshold `t` (unsealed by init).
    pub async fn static_seal(n: i64, t: i64) -> Node {
        let storage = storage();
        let key = UnsealKey::generate().unwrap();
        let static_key = key.expose().to_vec();
        let core = Core::standalone(
            CoreConfig::default(),
            storage.clone(),
            SealSource::Static { key, key_id: "k1".into() },
            std::sync::Arc::new(crate::builtin::Builtin),
        );
        let init = core
            .init(InitParams { recovery_shares: n, recovery_threshold: t, ..InitParams::default() })
            .await
            .unwrap();
        assert!(init.keys.is_empty());
        assert!(!core.is_sealed());
        let root_token = init.root_token.expose().to_owned();
        Node {
            core,
            storage,
            shares: hex_shares(&init.recovery_keys),
            static_key: Some(static_key),
            root_token,
        }
    }

    /// A share that belongs to no quorum: random bytes with a share index (its last byte, the
    /// x coordinate) that no share of `shares` has and that is not 0. A fully random stranger
    /// had a 1-in-256 chance of index 0 and a k-in-256 chance of repeating the index of one of
    /// k shares already submitted; either made the combination fail with "duplicate part
    /// detected" instead of the key mismatch the tests expect (about 1 run in 100).
    pub fn stranger_to(shares: &[SecretBytes]) -> SecretBytes {
        let mut s = SecretBytes::random(33).unwrap();
        let taken: Vec<u8> = shares.iter().filter_map(|p| p.expose().last().copied()).collect();
        let index = (1..=255u8).find(|x| !taken.contains(x)).expect("at most 255 shares exist");
        s.expose_mut()[32] = index;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_hex_then_base64() {
        let hex_share = "ab".repeat(33);
        assert_eq!(decode_key(&hex_share).unwrap().len(), 33);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(decode_key(&b64).unwrap().ct_eq(&[7u8; 32]));
        // Valid hex of the wrong length falls back to base64 ("abcd" is 3 bytes of base64).
        assert_eq!(decode_key("abcd").unwrap().len(), 3);
        assert_eq!(decode_key("zz!").unwrap_err().to_string(), "'key' must be a valid hex or base64 string");
        assert_eq!(
            key_length_problem(&decode_key("abcd").unwrap()).unwrap(),
            "key is shorter than minimum 16 bytes"
        );
        assert_eq!(
            key_length_problem(&SecretBytes::from_slice(&[1; 40])).unwrap(),
            "key is longer than maximum 33 bytes"
        );
        assert!(key_length_problem(&SecretBytes::from_slice(&[1; 32])).is_none());
    }

    #[test]
    fn shares_detect_duplicates_and_clear_on_combine() {
        let parts = shamir::split(&[9u8; 32], 3, 2).unwrap();
        let mut shares = Shares::default();
        shares.push(parts[0].duplicate());
        assert!(shares.contains(&parts[0]));
        assert!(!shares.contains(&parts[1]));
        shares.push(parts[1].duplicate());
        let key = shares.combine(2).unwrap();
        assert!(key.ct_eq(&[9u8; 32]));
        assert!(shares.is_empty());
        // A failed combination forgets the shares too.
        shares.push(parts[0].duplicate());
        shares.push(parts[0].duplicate());
        assert_eq!(shares.combine(2).unwrap_err(), ShamirError::Duplicate);
        assert!(shares.is_empty());
    }

    /// The fixture's stranger share must fail as a wrong key, never as a duplicate: its index is
    /// one no real share has (here the single index 254 shares leave free), and never 0.
    #[test]
    fn stranger_share_never_repeats_an_index() {
        let parts = shamir::split(&[9u8; 32], 254, 2).unwrap();
        let used: Vec<u8> = parts.iter().map(|p| p.expose()[32]).collect();
        let free = (1..=255u8).find(|x| !used.contains(x)).unwrap();
        let s = fixtures::stranger_to(&parts);
        assert_eq!((s.len(), s.expose()[32]), (33, free));
        for p in &parts[..2] {
            let mut shares = Shares::default();
            shares.push(p.duplicate());
            shares.push(s.duplicate());
            assert!(shares.combine(2).is_ok(), "a stranger combines (to a wrong key)");
        }
    }

    #[test]
    fn cancel_nonce_rules() {
        assert!(check_cancel_nonce("n1", Some("n1"), true).is_ok());
        assert!(check_cancel_nonce("n1", None, false).is_ok());
        assert!(check_cancel_nonce("n1", Some(""), false).is_ok());
        assert!(check_cancel_nonce("n1", None, true).is_err());
        assert!(check_cancel_nonce("n1", Some("n2"), false).is_err());
    }
}
