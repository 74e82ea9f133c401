//! Seal state: initialisation, unsealing with Shamir shares or a static key, sealing.
//!
//! # Raw records (below the barrier, readable while sealed)
//!
//! * [`SEAL_CONFIG_PATH`]: JSON [`StoredSealConfig`] — seal type, share counts (versioned).
//! * [`ROOT_KEY_PATH`]: the root key encrypted with the unseal key (AES-256-GCM, term 0, the path
//!   as associated data). A wrong unseal key fails authentication: "unseal failed, invalid key".
//! * [`RECOVERY_CHECK_PATH`] (static seal only): a known constant encrypted with the recovery key,
//!   so recovery shares can be verified without unsealing.
//!
//! A rekey ([`crate::core::rekey`]) replaces the wrapped root key (or the recovery check) and the
//! seal configuration together, in one batch guarded by their versions.
//!
//! The unseal key is the Shamir secret (or, with one share, the share itself), or the static
//! key read from `env:`/`file:` at start. Unseal progress is per node, in memory only, zeroized
//! on reset, completion or failure.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use coffer_storage::aead;
use coffer_storage::keys::{RootKey, SecretBytes, UnsealKey};
use coffer_storage::{Batch, StorageError};

use crate::core::error::{Error, Result};
use crate::core::shamir;
use crate::secret::ClientToken;

/// Raw key of the seal configuration.
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// Raw key of the wrapped root key.
pub const ROOT_KEY_PATH: &str = "core/root-key";
/// Raw key of the recovery-key check value (static seal).
pub const RECOVERY_CHECK_PATH: &str = "core/recovery-check";
/// Plaintext of the recovery check value.
const RECOVERY_CHECK_PLAINTEXT: &[u8] = b"coffer recovery key check v1";
/// Format version of [`StoredSealConfig`].
pub const SEAL_CONFIG_VERSION: u8 = 1;

/// Where the unseal key comes from, per the server configuration.
pub enum SealSource {
    /// Operators submit Shamir shares.
    Shamir,
    /// A 32-byte key read at start from `env:NAME` or `file:PATH`.
    Static { key: UnsealKey, key_id: String },
}

impl std::fmt::Debug for SealSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealSource::Shamir => f.write_str("Shamir"),
            SealSource::Static { key_id, .. } => write!(f, "Static({key_id})"),
        }
    }
}

impl SealSource {
    /// Seal type name as `seal-status` reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            SealSource::Shamir => "shamir",
            SealSource::Static { .. } => "static",
        }
    }
}

/// The stored seal configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredSealConfig {
    pub version: u8,
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: u8,
    pub secret_threshold: u8,
    #[serde(default)]
    pub recovery_shares: u8,
    #[serde(default)]
    pub recovery_threshold: u8,
}

/// Parameters of `sys/init`.
#[derive(Debug, Default)]
pub struct InitParams {
    pub secret_shares: i64,
    pub secret_threshold: i64,
    pub recovery_shares: i64,
    pub recovery_threshold: i64,
    pub pgp_keys: bool,
    pub root_token_pgp_key: bool,
    /// Dev mode: a chosen root token ID.
    pub root_token_id: Option<String>,
}

/// What `sys/init` returns once. Never stored; printed to the caller only.
pub struct InitResult {
    pub keys: Vec<SecretBytes>,
    pub recovery_keys: Vec<SecretBytes>,
    pub root_token: ClientToken,
}

impl std::fmt::Debug for InitResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InitResult([redacted])")
    }
}

/// Shares collected towards one unseal (or recovery) attempt.
#[derive(Default)]
pub struct Progress {
    pub nonce: String,
    pub shares: Vec<SecretBytes>,
}

impl Progress {
    /// Adds a share unless an identical one was already submitted. Returns whether it was new.
    pub fn add(&mut self, share: SecretBytes) -> bool {
        if self.shares.iter().any(|s| s.ct_eq(share.expose())) {
            return false;
        }
        if self.nonce.is_empty() {
            self.nonce = uuid::Uuid::new_v4().to_string();
        }
        self.shares.push(share);
        true
    }

    /// Forgets everything (shares zeroize on drop).
    pub fn reset(&mut self) {
        self.shares.clear();
        self.nonce.clear();
    }
}

/// Validates Vault's share/threshold rules for `sys/init`.
pub fn validate_shares(shares: i64, threshold: i64) -> Result<(u8, u8)> {
    validate_shares_as("invalid seal configuration", shares, threshold)
}

/// Vault's share/threshold rules (`SealConfig.Validate`), with the message prefix the calling
/// endpoint uses (`invalid seal configuration`, `invalid rekey seal configuration`, ...).
pub fn validate_shares_as(prefix: &str, shares: i64, threshold: i64) -> Result<(u8, u8)> {
    let rule = if shares < 1 {
        Some("shares must be at least one")
    } else if threshold < 1 {
        Some("threshold must be at least one")
    } else if shares > 1 && threshold < 2 {
        Some("threshold must be greater than one for multiple shares")
    } else if shares > 255 {
        Some("shares must be less than 256")
    } else if threshold > 255 {
        Some("threshold must be less than 256")
    } else if threshold > shares {
        Some("threshold cannot be larger than shares")
    } else {
        None
    };
    match rule {
        Some(m) => Err(Error::bad(format!("{prefix}: {m}"))),
        // Both are within 1..=255 here.
        None => Ok((shares as u8, threshold as u8)),
    }
}

/// Splits a 32-byte key into shares (one share = the key itself).
pub fn split_key(key: &[u8], shares: u8, threshold: u8) -> Result<Vec<SecretBytes>> {
    if shares == 1 {
        return Ok(vec![SecretBytes::from_slice(key)]);
    }
    shamir::split(key, usize::from(shares), usize::from(threshold))
        .map_err(|e| Error::internal(e.to_string()))
}

/// Combines collected shares into a 32-byte key.
pub fn combine_shares(shares: &[SecretBytes], threshold: u8) -> Result<SecretBytes> {
    if threshold == 1 {
        let only = shares.first().ok_or_else(|| Error::bad("no key provided"))?;
        return Ok(only.duplicate());
    }
    let parts: Vec<&[u8]> = shares.iter().map(SecretBytes::expose).collect();
    shamir::combine(&parts)
        .map_err(|e| Error::bad(format!("invalid key: failed to compute combined key: {e}")))
}

/// Encrypts the root key under the unseal key.
pub fn wrap_root_key(unseal: &UnsealKey, root: &RootKey) -> Result<Vec<u8>> {
    aead::seal(unseal.expose(), 0, ROOT_KEY_PATH.as_bytes(), root.expose())
        .map_err(|e| Error::internal(e.to_string()))
}

/// Decrypts the root key; a wrong unseal key gives "unseal failed, invalid key".
pub fn unwrap_root_key(unseal: &UnsealKey, wrapped: &[u8]) -> Result<RootKey> {
    let plain = aead::open(unseal.expose(), 0, ROOT_KEY_PATH.as_bytes(), wrapped)
        .map_err(|_| Error::bad("unseal failed, invalid key"))?;
    RootKey::from_slice(&plain).ok_or_else(|| Error::internal("stored root key has the wrong length"))
}

/// The recovery check record for a recovery key.
pub fn recovery_check(recovery: &[u8]) -> Result<Vec<u8>> {
    aead::seal(recovery, 0, RECOVERY_CHECK_PATH.as_bytes(), RECOVERY_CHECK_PLAINTEXT)
        .map_err(|e| Error::internal(e.to_string()))
}

/// True if `recovery` opens the stored check record.
pub fn verify_recovery(recovery: &[u8], check: &[u8]) -> bool {
    aead::open(recovery, 0, RECOVERY_CHECK_PATH.as_bytes(), check).is_ok()
}

/// Reads the seal config (raw).
pub async fn read_config(raw: &dyn coffer_storage::Storage) -> Result<Option<StoredSealConfig>> {
    let Some(e) = raw.get(SEAL_CONFIG_PATH).await? else { return Ok(None) };
    let cfg: StoredSealConfig = serde_json::from_slice(&e.value)
        .map_err(|err| Error::internal(format!("corrupt seal config: {err}")))?;
    if cfg.version != SEAL_CONFIG_VERSION {
        return Err(Error::internal(format!("unsupported seal config version {}", cfg.version)));
    }
    Ok(Some(cfg))
}

/// Writes the records of a new initialisation in one batch, failing if any exists.
pub async fn write_init_records(
    raw: &dyn coffer_storage::Storage,
    config: &StoredSealConfig,
    keyring: (String, Vec<u8>),
    wrapped_root: Vec<u8>,
    recovery_check: Option<Vec<u8>>,
) -> Result<()> {
    let mut batch = Batch::new()
        .put(SEAL_CONFIG_PATH, serde_json::to_vec(config)?)
        .require_absent(SEAL_CONFIG_PATH)
        .put(ROOT_KEY_PATH, wrapped_root)
        .require_absent(keyring.0.clone())
        .put(keyring.0, keyring.1);
    if let Some(check) = recovery_check {
        batch = batch.put(RECOVERY_CHECK_PATH, check);
    }
    match raw.apply(batch).await {
        Ok(_) => Ok(()),
        Err(StorageError::PreconditionFailed { .. }) => Err(Error::bad("Vault is already initialized")),
        Err(e) => Err(e.into()),
    }
}

/// Hex and base64 renderings of shares, for the init/rekey responses (zeroized on drop).
pub fn render_shares(shares: &[SecretBytes]) -> (Vec<Zeroizing<String>>, Vec<Zeroizing<String>>) {
    use base64::Engine;
    let hex: Vec<Zeroizing<String>> =
        shares.iter().map(|s| Zeroizing::new(hex::encode(s.expose()))).collect();
    let b64: Vec<Zeroizing<String>> = shares
        .iter()
        .map(|s| Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(s.expose())))
        .collect();
    (hex, b64)
}
