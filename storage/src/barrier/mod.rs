//! The encryption barrier: everything above it is plaintext, everything below is ciphertext.
//!
//! # Key hierarchy
//!
//! unseal key (Shamir shares or static key; held by the seal, not here) → root key (decrypts
//! the keyring) → keyring of numbered data keys ("terms") → values.
//!
//! # Storage keys the barrier owns
//!
//! * [`KEYRING_PATH`] (`core/keyring`): the keyring, encrypted with the root key under term 0
//!   and bound to its path. Replicated like any other value; a node that sees it change (after
//!   a rotation on another node) calls [`Barrier::reload_keyring`].
//!
//! # Value format
//!
//! See [`crate::aead`]: `term | format | nonce | ct+tag`, AAD = the full storage key, so a value
//! copied to another key, truncated or altered fails to decrypt. An unknown term is reported as
//! such (a node that has not reloaded a rotated keyring yet).
//!
//! # Sealing
//!
//! Sealed = no keyring in memory. [`Barrier::seal`] drops it; the keys zeroize as the last
//! reference goes. Every operation on a sealed barrier fails with [`BarrierError::Sealed`].
//!
//! # Rotation
//!
//! [`Barrier::rotate`] writes a keyring with one more term, guarded by a precondition on the
//! keyring's stored version so two concurrent rotations cannot lose a term. Terms are counted
//! ([`TermKey::encryptions`]); the counts are persisted with the keyring every
//! [`DEFAULT_PERSIST_EVERY`] encryptions, so they survive restarts, and past the operation limit
//! (NIST's bound for random 96-bit nonces, as OpenBao) the barrier rotates by itself.

pub mod keyring;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;
use zeroize::{Zeroize, Zeroizing};

use crate::aead::{self, AeadError};
use crate::keys::RootKey;
use crate::{Batch, Op, Storage, StorageError};

pub use keyring::{Keyring, TermKey};

/// Where the encrypted keyring lives.
pub const KEYRING_PATH: &str = "core/keyring";
/// Default number of encryptions per term before an automatic rotation (≈ 0.9 × 2^32).
pub const DEFAULT_ROTATION_LIMIT: u64 = 3_865_470_566;
/// Encryption counts are persisted (with the keyring) at least this often, so a restart loses
/// at most this many from the count that drives automatic rotation.
pub const DEFAULT_PERSIST_EVERY: u64 = 100_000;

/// Errors of the barrier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    #[error("barrier is already initialized")]
    AlreadyInitialized,
    /// Authentication failed or the value is malformed. Never carries the value.
    #[error("failed to decrypt the value stored at {key:?}")]
    Decrypt { key: String },
    #[error("barrier is not initialized")]
    NotInitialized,
    #[error("random number generator failed")]
    Rng,
    #[error("Vault is sealed")]
    Sealed,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("no decryption key available for term {term} (key {key:?})")]
    UnknownTerm { key: String, term: u32 },
    #[error("keyring is damaged: {0}")]
    KeyringCorrupt(String),
    #[error("unseal failed, invalid key")]
    WrongRootKey,
}

/// A decrypted value; the plaintext is wiped when dropped.
pub struct PlainEntry {
    pub value: Zeroizing<Vec<u8>>,
    pub version: u64,
}

impl std::fmt::Debug for PlainEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainEntry").field("version", &self.version).finish_non_exhaustive()
    }
}

/// State of the active term, for `sys/key-status`.
#[derive(Clone, Debug)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: OffsetDateTime,
    pub encryptions: u64,
}

/// What the barrier did since it was created, for the server's metrics: values encrypted,
/// values decrypted, and values that failed to decrypt (damaged, moved to another key, or under
/// a term this node does not know). Relaxed atomics; read them with the accessors.
#[derive(Debug, Default)]
pub struct BarrierCounters {
    encryptions: AtomicU64,
    decryptions: AtomicU64,
    decrypt_failures: AtomicU64,
}

impl BarrierCounters {
    /// Values encrypted (each put of an applied batch).
    pub fn encryptions(&self) -> u64 {
        self.encryptions.load(Ordering::Relaxed)
    }

    /// Values read and decrypted.
    pub fn decryptions(&self) -> u64 {
        self.decryptions.load(Ordering::Relaxed)
    }

    /// Values read that did not decrypt.
    pub fn decrypt_failures(&self) -> u64 {
        self.decrypt_failures.load(Ordering::Relaxed)
    }
}

struct Unsealed {
    root: RootKey,
    keyring: Keyring,
    /// Storage version of the keyring record this state was loaded from (or last wrote).
    stored_version: AtomicU64,
}

/// Encrypting wrapper around an untrusted [`Storage`].
pub struct Barrier {
    storage: Arc<dyn Storage>,
    state: RwLock<Option<Arc<Unsealed>>>,
    rotation_limit: AtomicU64,
    /// The keyring (with its encryption counts) is rewritten every this many encryptions.
    persist_every: AtomicU64,
    rotating: tokio::sync::Mutex<()>,
    auto_rotating: std::sync::atomic::AtomicBool,
    counters: BarrierCounters,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier").field("sealed", &self.is_sealed()).finish()
    }
}

impl Barrier {
    /// A sealed barrier over `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            state: RwLock::new(None),
            rotation_limit: AtomicU64::new(DEFAULT_ROTATION_LIMIT),
            persist_every: AtomicU64::new(DEFAULT_PERSIST_EVERY),
            rotating: tokio::sync::Mutex::new(()),
            auto_rotating: std::sync::atomic::AtomicBool::new(false),
            counters: BarrierCounters::default(),
        }
    }

    /// What this barrier encrypted and decrypted so far.
    pub fn counters(&self) -> &BarrierCounters {
        &self.counters
    }

    /// The storage below the barrier (ciphertext only), for the seal's own raw records.
    pub fn raw(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Changes how often encryption counts are persisted (tests lower it).
    pub fn set_persist_every(&self, n: u64) {
        self.persist_every.store(n.max(1), Ordering::SeqCst);
    }

    /// Rewrites the keyring record with the current encryption counts. A concurrent change of
    /// the record (rotation elsewhere) wins: the counts are then written with the next persist.
    pub async fn persist_counts(&self) -> Result<(), BarrierError> {
        let _serial = self.rotating.lock().await;
        let cur = self.current()?;
        let sealed = encrypt_keyring(&cur.root, &cur.keyring)?;
        let expected = cur.stored_version.load(Ordering::SeqCst);
        let batch = Batch::new().put(KEYRING_PATH, sealed).require_version(KEYRING_PATH, expected);
        match self.storage.apply(batch).await {
            Ok(v) => {
                cur.stored_version.store(v, Ordering::SeqCst);
                Ok(())
            }
            Err(StorageError::PreconditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes the automatic rotation threshold (tests lower it).
    pub fn set_rotation_limit(&self, limit: u64) {
        self.rotation_limit.store(limit.max(1), Ordering::SeqCst);
    }

    fn current(&self) -> Result<Arc<Unsealed>, BarrierError> {
        // A poisoned lock only means another thread panicked while swapping the Arc; the Option
        // inside is always a complete value, so keep using it.
        let guard = self.state.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or(BarrierError::Sealed)
    }

    fn install(&self, state: Option<Arc<Unsealed>>) {
        let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
        *guard = state;
    }

    /// True when no keyring is loaded.
    pub fn is_sealed(&self) -> bool {
        self.current().is_err()
    }

    /// Whether a keyring has been written.
    pub async fn is_initialized(&self) -> Result<bool, BarrierError> {
        Ok(self.storage.get(KEYRING_PATH).await?.is_some())
    }

    /// Writes a fresh keyring encrypted with `root`. Fails if one exists. Leaves the barrier
    /// sealed.
    pub async fn initialize(&self, root: &RootKey) -> Result<(), BarrierError> {
        let keyring = Keyring::new_first().map_err(|_| BarrierError::Rng)?;
        let sealed = encrypt_keyring(root, &keyring)?;
        match self.storage.apply(Batch::new().put(KEYRING_PATH, sealed).require_absent(KEYRING_PATH)).await {
            Ok(_) => Ok(()),
            Err(StorageError::PreconditionFailed { .. }) => Err(BarrierError::AlreadyInitialized),
            Err(e) => Err(e.into()),
        }
    }

    /// The record [`initialize`](Self::initialize) would write, for callers that must write it
    /// atomically with their own records: `(KEYRING_PATH, ciphertext)`.
    pub fn keyring_record(root: &RootKey) -> Result<(String, Vec<u8>), BarrierError> {
        let keyring = Keyring::new_first().map_err(|_| BarrierError::Rng)?;
        Ok((KEYRING_PATH.to_owned(), encrypt_keyring(root, &keyring)?))
    }

    /// Loads the keyring with `root`. A wrong root key yields [`BarrierError::WrongRootKey`].
    pub async fn unseal(&self, root: RootKey) -> Result<(), BarrierError> {
        let entry = self.storage.get(KEYRING_PATH).await?.ok_or(BarrierError::NotInitialized)?;
        let keyring = decrypt_keyring(&root, &entry.value)?;
        self.install(Some(Arc::new(Unsealed {
            root,
            keyring,
            stored_version: AtomicU64::new(entry.version),
        })));
        Ok(())
    }

    /// Re-reads the keyring (another node rotated it). No-op when sealed.
    pub async fn reload_keyring(&self) -> Result<(), BarrierError> {
        let Ok(cur) = self.current() else { return Ok(()) };
        let entry = self.storage.get(KEYRING_PATH).await?.ok_or(BarrierError::NotInitialized)?;
        if entry.version == cur.stored_version.load(Ordering::SeqCst) {
            return Ok(());
        }
        let keyring = decrypt_keyring(&cur.root, &entry.value)?;
        let root = cur.root.duplicate();
        self.install(Some(Arc::new(Unsealed {
            root,
            keyring,
            stored_version: AtomicU64::new(entry.version),
        })));
        Ok(())
    }

    /// Drops the keyring; the key material is zeroized when the last in-flight use ends.
    pub fn seal(&self) {
        self.install(None);
    }

    /// The root key, for operations that re-wrap it (rekey). Errors when sealed.
    pub fn with_root_key<T>(&self, f: impl FnOnce(&RootKey) -> T) -> Result<T, BarrierError> {
        let cur = self.current()?;
        Ok(f(&cur.root))
    }

    /// Active term, its install time and encryption count.
    pub fn key_status(&self) -> Result<KeyStatus, BarrierError> {
        let cur = self.current()?;
        let active =
            cur.keyring.active().ok_or_else(|| BarrierError::KeyringCorrupt("no active term".into()))?;
        Ok(KeyStatus {
            term: cur.keyring.active_term(),
            install_time: active.install_time,
            encryptions: active.encryptions.load(Ordering::Relaxed),
        })
    }

    /// Adds a term and makes it active. Old terms keep decrypting.
    pub async fn rotate(&self) -> Result<KeyStatus, BarrierError> {
        let _serial = self.rotating.lock().await;
        loop {
            self.reload_keyring().await?;
            let cur = self.current()?;
            let next = cur.keyring.with_new_term().map_err(|_| BarrierError::Rng)?;
            let sealed = encrypt_keyring(&cur.root, &next)?;
            let batch = Batch::new()
                .put(KEYRING_PATH, sealed)
                .require_version(KEYRING_PATH, cur.stored_version.load(Ordering::SeqCst));
            match self.storage.apply(batch).await {
                Ok(version) => {
                    let root = cur.root.duplicate();
                    self.install(Some(Arc::new(Unsealed {
                        root,
                        keyring: next,
                        stored_version: AtomicU64::new(version),
                    })));
                    return self.key_status();
                }
                // Another node rotated first: load its keyring and add our term on top.
                Err(StorageError::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads and decrypts one key.
    pub async fn get(&self, key: &str) -> Result<Option<PlainEntry>, BarrierError> {
        self.current()?;
        let Some(entry) = self.storage.get(key).await? else { return Ok(None) };
        let opened = match self.open(key, &entry.value) {
            // Possibly rotated on another node: reload once before giving up.
            Err(BarrierError::UnknownTerm { .. }) => {
                self.reload_keyring().await?;
                self.open(key, &entry.value)
            }
            other => other,
        };
        match &opened {
            Ok(_) => self.counters.decryptions.fetch_add(1, Ordering::Relaxed),
            Err(BarrierError::Sealed) => 0,
            Err(_) => self.counters.decrypt_failures.fetch_add(1, Ordering::Relaxed),
        };
        let value = opened?;
        Ok(Some(PlainEntry { value, version: entry.version }))
    }

    /// The version of `key` as stored, without decrypting it (`None` when absent). Equal
    /// versions of one key mean equal bytes (see [`crate::Storage`]), so a caller holding what
    /// it decrypted and decoded at a version can tell whether it is still current.
    pub async fn version(&self, key: &str) -> Result<Option<u64>, BarrierError> {
        self.current()?;
        Ok(self.storage.get(key).await?.map(|e| e.version))
    }

    fn open(&self, key: &str, value: &[u8]) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let cur = self.current()?;
        let term = aead::term_of(value).ok_or_else(|| BarrierError::Decrypt { key: key.into() })?;
        if term == 0 {
            // Term 0 values are encrypted with the root or unseal key, never a data key.
            return Err(BarrierError::Decrypt { key: key.into() });
        }
        let tk = cur.keyring.term(term).ok_or_else(|| BarrierError::UnknownTerm { key: key.into(), term })?;
        aead::open(tk.key.expose(), term, key.as_bytes(), value)
            .map_err(|_| BarrierError::Decrypt { key: key.into() })
    }

    /// Lists immediate children (names are not secret; see the threat model).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        self.current()?;
        Ok(self.storage.list(prefix).await?)
    }

    /// Encrypts every put with the active term and applies the batch atomically. Plaintext
    /// buffers are wiped once encrypted.
    pub async fn apply(&self, batch: Batch) -> Result<u64, BarrierError> {
        let cur = self.current()?;
        let active =
            cur.keyring.active().ok_or_else(|| BarrierError::KeyringCorrupt("no active term".into()))?;
        let term = cur.keyring.active_term();
        let mut ops = Vec::with_capacity(batch.ops.len());
        let mut count = 0u64;
        for op in batch.ops {
            match op {
                Op::Delete { key } => ops.push(Op::Delete { key }),
                Op::Put { key, mut value } => {
                    let sealed =
                        aead::seal(active.key.expose(), term, key.as_bytes(), &value).map_err(|e| match e {
                            AeadError::Rng => BarrierError::Rng,
                            _ => BarrierError::Decrypt { key: key.clone() },
                        });
                    value.zeroize();
                    ops.push(Op::Put { key, value: sealed? });
                    count += 1;
                }
            }
        }
        self.counters.encryptions.fetch_add(count, Ordering::Relaxed);
        let before = active.encryptions.fetch_add(count, Ordering::Relaxed);
        let total = before + count;
        let every = self.persist_every.load(Ordering::Relaxed);
        let version = self.storage.apply(Batch { ops, preconditions: batch.preconditions }).await?;
        drop(cur);
        if count > 0 && before / every != total / every {
            if let Err(e) = self.persist_counts().await {
                tracing::warn!(error = %e, "could not persist keyring encryption counts");
            }
        }
        if count > 0
            && total >= self.rotation_limit.load(Ordering::Relaxed)
            && !self.auto_rotating.swap(true, Ordering::SeqCst)
        {
            // Only the term that crossed the limit triggers a rotation; the new term starts at 0.
            let still_active = self.key_status().map(|s| s.term == term).unwrap_or(false);
            if still_active {
                match self.rotate().await {
                    Ok(s) => tracing::info!(
                        term = s.term,
                        "keyring rotated: active term reached its encryption limit"
                    ),
                    Err(e) => tracing::error!(error = %e, "automatic keyring rotation failed"),
                }
            }
            self.auto_rotating.store(false, Ordering::SeqCst);
        }
        Ok(version)
    }

    /// Convenience: put one key.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, BarrierError> {
        self.apply(Batch::new().put(key, value)).await
    }

    /// Convenience: delete one key.
    pub async fn delete(&self, key: &str) -> Result<u64, BarrierError> {
        self.apply(Batch::new().delete(key)).await
    }

    /// Like [`apply`](Self::apply), but a failed precondition is `Ok(None)` (a lost
    /// compare-and-set race) rather than an error; `Ok(Some(version))` when it applied.
    pub async fn try_apply(&self, batch: Batch) -> Result<Option<u64>, BarrierError> {
        match self.apply(batch).await {
            Ok(v) => Ok(Some(v)),
            Err(BarrierError::Storage(StorageError::PreconditionFailed { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn encrypt_keyring(root: &RootKey, keyring: &Keyring) -> Result<Vec<u8>, BarrierError> {
    let plain = keyring.encode();
    aead::seal(root.expose(), 0, KEYRING_PATH.as_bytes(), &plain).map_err(|e| match e {
        AeadError::Rng => BarrierError::Rng,
        other => BarrierError::KeyringCorrupt(other.to_string()),
    })
}

fn decrypt_keyring(root: &RootKey, value: &[u8]) -> Result<Keyring, BarrierError> {
    let plain = aead::open(root.expose(), 0, KEYRING_PATH.as_bytes(), value).map_err(|e| match e {
        AeadError::Authentication => BarrierError::WrongRootKey,
        other => BarrierError::KeyringCorrupt(other.to_string()),
    })?;
    Keyring::decode(&plain).map_err(BarrierError::KeyringCorrupt)
}

#[cfg(test)]
mod tests;
