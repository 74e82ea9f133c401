//! Key policies: Vault's `keysutil.Policy` as JSON, and the operations on one key.
//!
//! A policy is stored at `policy/<name>` in the mount's view as `{"v":1,"policy":{...}}`, where
//! the inner object is exactly Vault's `keysutil.Policy` JSON (the shape inside a `backup` blob),
//! so backups move between coffer and Vault/OpenBao unchanged. Unlike Vault, coffer keeps every
//! available version (≥ `min_available_version`) in the one record instead of splitting old
//! versions into an `archive/<name>` record; the API shows only versions ≥
//! `min_decryption_version`, as Vault does.
//!
//! Changes are read-modify-write with a storage precondition on the record's version (see
//! [`super::store`]), so two concurrent rotations yield two versions, never a lost one.
//!
//! Key bytes live in [`SecretBytes`] (locked, zeroized on drop, no `Clone`); the base64 strings
//! of the JSON form are zeroized after use.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use coffer_storage::keys::SecretBytes;

use super::crypto::{self, KeyType, NONCE_LEN};
use crate::util::timefmt::rfc3339_nano;

/// Format version of the stored record.
pub const RECORD_VERSION: u32 = 1;

/// Vault's text when a version is below `min_decryption_version`.
pub const ERR_TOO_OLD: &str = "ciphertext or signature version is disallowed by policy (too old)";

/// Current convergent-encryption version (nonce from a derived HMAC key).
pub const CONVERGENT_VERSION: i64 = 3;

/// KDF codes.
pub const KDF_COUNTER: i64 = 0;
pub const KDF_HKDF: i64 = 1;

const PREFIX: &str = "vault:v";

/// A failure inside a key operation: Vault distinguishes user errors (400) from internal ones
/// (500 with the message shown).
#[derive(Debug)]
pub enum OpError {
    Internal(String),
    User(String),
}

impl OpError {
    pub fn message(&self) -> &str {
        match self {
            OpError::Internal(m) | OpError::User(m) => m,
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, OpError::Internal(_))
    }
}

fn user(m: impl Into<String>) -> OpError {
    OpError::User(m.into())
}

fn internal(m: impl Into<String>) -> OpError {
    OpError::Internal(m.into())
}

/// Go `[]byte` JSON: standard base64 or `null`, into locked memory.
mod secret_b64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<SecretBytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(b) => {
                let text = Zeroizing::new(crypto::b64(b.expose()));
                s.serialize_str(&text)
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretBytes>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        let Some(text) = text.map(Zeroizing::new) else { return Ok(None) };
        let raw = crypto::go_b64_secret(&text).map_err(serde::de::Error::custom)?;
        Ok(Some(SecretBytes::from_slice(&raw)))
    }
}

/// `backup_info` / `restore_info`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct OpInfo {
    pub time: String,
    pub version: i64,
}

/// One key version (Vault's `keysutil.KeyEntry`).
#[derive(Deserialize, Serialize)]
pub struct KeyEntry {
    #[serde(default, with = "secret_b64")]
    pub key: Option<SecretBytes>,
    #[serde(default, with = "secret_b64")]
    pub hmac_key: Option<SecretBytes>,
    #[serde(default = "go_zero_time")]
    pub time: String,
    #[serde(default)]
    pub ec_x: Value,
    #[serde(default)]
    pub ec_y: Value,
    #[serde(default)]
    pub ec_d: Value,
    #[serde(default)]
    pub rsa_key: Value,
    #[serde(default)]
    pub rsa_public_key: Value,
    #[serde(default)]
    pub public_key: String,
    #[serde(default)]
    pub convergent_version: i64,
    #[serde(default)]
    pub creation_time: i64,
    #[serde(default)]
    pub certificate_chain: Value,
    #[serde(default)]
    pub external_key_ref: String,
}

fn go_zero_time() -> String {
    crate::util::timefmt::GO_ZERO_TIME.to_owned()
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry").field("time", &self.time).finish_non_exhaustive()
    }
}

impl KeyEntry {
    /// A placeholder for an empty archive slot (Go's zero `KeyEntry`).
    pub fn empty() -> Self {
        KeyEntry {
            key: None,
            hmac_key: None,
            time: go_zero_time(),
            ec_x: Value::Null,
            ec_y: Value::Null,
            ec_d: Value::Null,
            rsa_key: Value::Null,
            rsa_public_key: Value::Null,
            public_key: String::new(),
            convergent_version: 0,
            creation_time: 0,
            certificate_chain: Value::Null,
            external_key_ref: String::new(),
        }
    }

    /// True for Go's zero entry (an unused archive slot).
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && self.hmac_key.is_none() && self.public_key.is_empty() && self.ec_d.is_null()
    }

    /// An independent copy (explicit: entries hold key material).
    pub fn duplicate(&self) -> Self {
        KeyEntry {
            key: self.key.as_ref().map(SecretBytes::duplicate),
            hmac_key: self.hmac_key.as_ref().map(SecretBytes::duplicate),
            time: self.time.clone(),
            ec_x: self.ec_x.clone(),
            ec_y: self.ec_y.clone(),
            ec_d: self.ec_d.clone(),
            rsa_key: self.rsa_key.clone(),
            rsa_public_key: self.rsa_public_key.clone(),
            public_key: self.public_key.clone(),
            convergent_version: self.convergent_version,
            creation_time: self.creation_time,
            certificate_chain: self.certificate_chain.clone(),
            external_key_ref: self.external_key_ref.clone(),
        }
    }

    /// Creation time as a timestamp (falls back to the Unix seconds field).
    pub fn created(&self) -> OffsetDateTime {
        let parsed = OffsetDateTime::parse(&self.time, &time::format_description::well_known::Rfc3339).ok();
        match parsed {
            Some(t) if t.year() > 1 => t,
            _ => {
                OffsetDateTime::from_unix_timestamp(self.creation_time).unwrap_or(OffsetDateTime::UNIX_EPOCH)
            }
        }
    }
}

/// Vault's `keysutil.Policy`, field for field.
#[derive(Deserialize, Serialize)]
pub struct Policy {
    pub name: String,
    /// Pre-0.3 single key; refused on load (coffer does not migrate such keys).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "secret_b64")]
    pub key: Option<SecretBytes>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub key_size: i64,
    #[serde(default)]
    pub keys: BTreeMap<u64, KeyEntry>,
    #[serde(default)]
    pub derived: bool,
    #[serde(default)]
    pub kdf: i64,
    #[serde(default)]
    pub convergent_encryption: bool,
    #[serde(default)]
    pub exportable: bool,
    #[serde(default)]
    pub min_decryption_version: i64,
    #[serde(default)]
    pub min_encryption_version: i64,
    #[serde(default)]
    pub latest_version: i64,
    #[serde(default)]
    pub archive_version: i64,
    #[serde(default)]
    pub archive_min_version: i64,
    #[serde(default)]
    pub min_available_version: i64,
    #[serde(default)]
    pub deletion_allowed: bool,
    #[serde(default)]
    pub convergent_version: i64,
    #[serde(rename = "type", default)]
    pub kind: i64,
    #[serde(default)]
    pub backup_info: Option<OpInfo>,
    #[serde(default)]
    pub restore_info: Option<OpInfo>,
    #[serde(default)]
    pub allow_plaintext_backup: bool,
    #[serde(default)]
    pub version_template: String,
    #[serde(default)]
    pub storage_prefix: String,
    /// Go `time.Duration`: nanoseconds.
    #[serde(default)]
    pub auto_rotate_period: i64,
    #[serde(rename = "Imported", default)]
    pub imported: bool,
    #[serde(rename = "AllowImportedKeyRotation", default)]
    pub allow_imported_key_rotation: bool,
    #[serde(default)]
    pub soft_deleted: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("type", &self.kind)
            .field("latest_version", &self.latest_version)
            .finish_non_exhaustive()
    }
}

/// Options for a new key.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub kind: KeyType,
    pub derived: bool,
    pub convergent: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    /// Seconds.
    pub auto_rotate_period: i64,
    /// HMAC keys only (bytes); 0 = default 32.
    pub key_size: i64,
}

#[derive(Serialize)]
struct StoredRef<'a> {
    v: u32,
    policy: &'a Policy,
}

#[derive(Deserialize)]
struct Stored {
    v: u32,
    policy: Policy,
}

impl Policy {
    /// A new policy with its first version (Vault's `GetPolicy` upsert + `Rotate`).
    pub fn create(name: &str, opts: &NewKey, now: OffsetDateTime) -> Result<Policy, OpError> {
        let mut p = Policy {
            name: name.to_owned(),
            key: None,
            key_size: if opts.kind == KeyType::Hmac { opts.key_size } else { 0 },
            keys: BTreeMap::new(),
            derived: opts.derived,
            kdf: if opts.derived { KDF_HKDF } else { KDF_COUNTER },
            convergent_encryption: opts.derived && opts.convergent,
            exportable: opts.exportable,
            min_decryption_version: 0,
            min_encryption_version: 0,
            latest_version: 0,
            archive_version: 0,
            archive_min_version: 0,
            min_available_version: 0,
            deletion_allowed: false,
            convergent_version: if opts.derived && opts.convergent { -1 } else { 0 },
            kind: opts.kind.code(),
            backup_info: None,
            restore_info: None,
            allow_plaintext_backup: opts.allow_plaintext_backup,
            version_template: String::new(),
            storage_prefix: String::new(),
            auto_rotate_period: opts.auto_rotate_period.saturating_mul(1_000_000_000),
            imported: false,
            allow_imported_key_rotation: false,
            soft_deleted: false,
        };
        p.rotate_in_memory(now)?;
        Ok(p)
    }

    /// Decodes a stored record.
    pub fn decode(raw: &[u8]) -> Result<Policy, String> {
        let s: Stored =
            serde_json::from_slice(raw).map_err(|e| format!("corrupt transit key record: {e}"))?;
        if s.v != RECORD_VERSION {
            return Err(format!("unsupported transit key record version {}", s.v));
        }
        s.policy.check()?;
        Ok(s.policy)
    }

    /// Encodes for storage (the buffer holds key material: zeroized on drop).
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        serde_json::to_vec(&StoredRef { v: RECORD_VERSION, policy: self })
            .map(Zeroizing::new)
            .map_err(|e| e.to_string())
    }

    /// Validates a policy loaded from storage or a backup.
    pub fn check(&self) -> Result<(), String> {
        if self.key.is_some() {
            return Err("legacy single-key policies are not supported".into());
        }
        let Some(kt) = self.key_type() else {
            return Err(format!("unsupported key type {}", self.kind));
        };
        if self.latest_version < 1 {
            return Err("policy has no key versions".into());
        }
        if !self.version_template.is_empty() && self.version_template != "vault:v{{version}}:" {
            return Err("custom version templates are not supported".into());
        }
        for (v, e) in &self.keys {
            if *v as i64 > self.latest_version {
                return Err(format!("key version {v} is above the latest version"));
            }
            match kt {
                KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
                    if e.key.as_ref().map(SecretBytes::len) != Some(kt.key_len()) {
                        return Err(format!("key version {v} has a key of the wrong length"));
                    }
                }
                KeyType::Ed25519 => {
                    if e.key.as_ref().map(SecretBytes::len) != Some(64) {
                        return Err(format!("key version {v} has an ed25519 key of the wrong length"));
                    }
                }
                KeyType::Hmac => {
                    if e.key.as_ref().map(SecretBytes::len).unwrap_or(0) == 0 {
                        return Err(format!("key version {v} has no key"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The key type (`None` for types coffer does not implement).
    pub fn key_type(&self) -> Option<KeyType> {
        KeyType::from_code(self.kind)
    }

    fn kt(&self) -> Result<KeyType, OpError> {
        self.key_type().ok_or_else(|| internal(format!("unsupported key type {}", self.kind)))
    }

    /// Auto-rotation period in whole seconds.
    pub fn auto_rotate_secs(&self) -> i64 {
        self.auto_rotate_period / 1_000_000_000
    }

    /// Adds a new version with fresh key material (Vault's `RotateInMemory`).
    pub fn rotate_in_memory(&mut self, now: OffsetDateTime) -> Result<(), OpError> {
        let kt = self.kt()?;
        let rng = |n: usize| SecretBytes::random(n).map_err(|e| internal(e.to_string()));
        let mut entry = KeyEntry::empty();
        entry.time = rfc3339_nano(now);
        entry.creation_time = now.unix_timestamp();
        entry.hmac_key = Some(rng(32)?);
        match kt {
            KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
                entry.key = Some(rng(kt.key_len())?);
            }
            KeyType::Hmac => {
                let n = self.key_size;
                if !(32..=512).contains(&n) {
                    return Err(internal("invalid key size for HMAC key, must be between 32 and 512 bytes"));
                }
                let k = rng(n as usize)?;
                entry.hmac_key = Some(k.duplicate());
                entry.key = Some(k);
            }
            KeyType::Ed25519 => {
                let (full, public) = crypto::ed25519_generate().map_err(internal)?;
                entry.key = Some(full);
                entry.public_key = crypto::b64(&public);
            }
        }
        if self.convergent_encryption && (self.convergent_version == -1 || self.convergent_version > 1) {
            entry.convergent_version = CONVERGENT_VERSION;
        }
        self.latest_version += 1;
        self.keys.insert(self.latest_version as u64, entry);
        if self.min_decryption_version == 0 {
            self.min_decryption_version = 1;
        }
        self.archive_version = self.latest_version;
        self.imported = false;
        Ok(())
    }

    /// Drops versions below `min_available_version` (after `trim`).
    pub fn drop_trimmed(&mut self) {
        let min = self.min_available_version.max(0) as u64;
        self.keys.retain(|v, _| *v >= min);
        self.archive_min_version = self.min_available_version;
    }

    fn entry(&self, ver: i64) -> Result<&KeyEntry, OpError> {
        u64::try_from(ver).ok().and_then(|v| self.keys.get(&v)).ok_or_else(|| user("no such key version"))
    }

    fn convergent_version_of(&self, ver: i64) -> i64 {
        if !self.convergent_encryption {
            return 0;
        }
        let mut cv = if self.convergent_version == 0 { 1 } else { self.convergent_version };
        if let Ok(v) = u64::try_from(ver) {
            if let Some(e) = self.keys.get(&v) {
                if e.convergent_version != 0 {
                    cv = e.convergent_version;
                }
            }
        }
        cv
    }

    /// Vault's `DeriveKey` (no check of the `derived` flag).
    pub fn derive_key(&self, context: &[u8], ver: i64, len: usize) -> Result<SecretBytes, OpError> {
        let kt = self.kt()?;
        if !kt.derivation_supported() {
            return Err(user(format!("derivation not supported for key type {kt}")));
        }
        if self.keys.is_empty() || self.latest_version == 0 {
            return Err(internal("unable to access the key; no key versions found"));
        }
        if ver <= 0 || ver > self.latest_version {
            return Err(user("invalid key version"));
        }
        if context.is_empty() {
            return Err(user("missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"));
        }
        let entry = self.entry(ver)?;
        let key = entry.key.as_ref().ok_or_else(|| internal("key version has no key material"))?;
        match self.kdf {
            KDF_COUNTER => Ok(crypto::counter_kdf(key.expose(), context)),
            KDF_HKDF => match kt {
                KeyType::Ed25519 => {
                    let seed = crypto::hkdf_sha256(key.expose(), context, 32).map_err(internal)?;
                    let sk = crypto::ed25519_signing_key(seed.expose()).map_err(internal)?;
                    let mut full = SecretBytes::zeroed(64);
                    full.expose_mut()[..32].copy_from_slice(seed.expose());
                    full.expose_mut()[32..].copy_from_slice(&sk.verifying_key().to_bytes());
                    Ok(full)
                }
                _ => crypto::hkdf_sha256(key.expose(), context, len).map_err(internal),
            },
            _ => Err(internal("unsupported key derivation mode")),
        }
    }

    /// Vault's `GetKey`: the raw key, or the derived one when the policy is derived.
    fn get_key(&self, context: &[u8], ver: i64, len: usize) -> Result<SecretBytes, OpError> {
        if !self.derived {
            let entry = self.entry(ver)?;
            return entry
                .key
                .as_ref()
                .map(SecretBytes::duplicate)
                .ok_or_else(|| internal("key version has no key material"));
        }
        self.derive_key(context, ver, len)
    }

    fn prefix(ver: i64) -> String {
        format!("{PREFIX}{ver}:")
    }

    /// Resolves `key_version` for encryption (0 = latest) with Vault's checks.
    pub fn encryption_version(&self, ver: i64, what: &str) -> Result<i64, OpError> {
        match ver {
            0 => Ok(self.latest_version),
            v if v < 0 => Err(user(format!("requested version for {what} is negative"))),
            v if v > self.latest_version => {
                Err(user(format!("requested version for {what} is higher than the latest key version")))
            }
            v if v < self.min_encryption_version => Err(user(format!(
                "requested version for {what} is less than the minimum encryption key version"
            ))),
            v => Ok(v),
        }
    }

    /// Encrypts a (decoded) plaintext; returns `vault:v<N>:<base64>` (Vault's `EncryptWithFactory`).
    pub fn encrypt(&self, ver: i64, context: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<String, OpError> {
        let kt = self.kt()?;
        if !kt.encryption_supported() {
            return Err(user(format!("message encryption not supported for key type {kt}")));
        }
        let ver = self.encryption_version(ver, "encryption")?;
        let enc_len = kt.key_len();
        let cv = self.convergent_version_of(ver);
        let hmac_len = if cv > 2 { 32 } else { 0 };
        let key = self.get_key(context, ver, enc_len + hmac_len)?;
        if key.len() < enc_len + hmac_len {
            return Err(internal("could not derive key, length too small"));
        }
        let (enc_key, nonce_key) = key.expose().split_at(enc_len);
        let nonce = if self.convergent_encryption {
            if cv > 0 && cv < CONVERGENT_VERSION {
                return Err(user(format!(
                    "refusing to support decryption with old convergent encryption key: version {cv}"
                )));
            }
            if cv != CONVERGENT_VERSION {
                return Err(internal(format!("unhandled convergent version {cv}")));
            }
            crypto::convergent_nonce(nonce_key, plaintext)
        } else {
            crypto::random_nonce().map_err(internal)?
        };
        let ct = crypto::seal(kt, enc_key, &nonce, plaintext, aad).map_err(internal)?;
        let mut payload = Vec::with_capacity(NONCE_LEN + ct.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&ct);
        Ok(format!("{}{}", Self::prefix(ver), crypto::b64(&payload)))
    }

    /// Parses `vault:v<N>:<rest>` with the given error noun (`ciphertext` / `signature`).
    fn split_versioned<'a>(&self, value: &'a str, noun: &str) -> Result<(i64, &'a str), OpError> {
        let Some(rest) = value.strip_prefix(PREFIX) else {
            return Err(user(format!("invalid {noun}: no prefix")));
        };
        let Some((v, data)) = rest.split_once(':') else {
            return Err(user(format!("invalid {noun}: wrong number of fields")));
        };
        let ver =
            go_atoi(v).ok_or_else(|| user(format!("invalid {noun}: version number could not be decoded")))?;
        Ok((ver, data))
    }

    /// Decrypts `vault:v<N>:...`; returns the plaintext bytes (Vault's `DecryptWithFactory`).
    pub fn decrypt(&self, context: &[u8], value: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpError> {
        let kt = self.kt()?;
        if !kt.encryption_supported() {
            return Err(user(format!("message decryption not supported for key type {kt}")));
        }
        let (mut ver, data) = self.split_versioned(value, "ciphertext")?;
        if ver == 0 {
            ver = 1;
        }
        if ver > self.latest_version {
            return Err(user("invalid ciphertext: version is too new"));
        }
        if self.min_decryption_version > 0 && ver < self.min_decryption_version {
            return Err(user(ERR_TOO_OLD));
        }
        let cv = self.convergent_version_of(ver);
        if self.convergent_encryption && cv < CONVERGENT_VERSION && cv > 0 {
            return Err(user(format!(
                "refusing to support decryption with old convergent encryption key: version {cv}"
            )));
        }
        let decoded =
            crypto::go_b64_decode(data).map_err(|_| user("invalid ciphertext: could not decode base64"))?;
        let key = self.get_key(context, ver, kt.key_len())?;
        if key.len() < kt.key_len() {
            return Err(internal("could not derive enc key, length not correct"));
        }
        crypto::open(kt, &key.expose()[..kt.key_len()], &decoded, aad).map_err(user)
    }

    /// The HMAC key of a version (Vault's `HMACKey`).
    pub fn hmac_key(&self, ver: i64) -> Result<&[u8], String> {
        if ver < 0 {
            return Err("key version does not exist (cannot be negative)".into());
        }
        if ver > self.latest_version {
            return Err(format!("key version does not exist; latest key version is {}", self.latest_version));
        }
        let entry = self.entry(ver).map_err(|e| e.message().to_owned())?;
        let k = if self.key_type() == Some(KeyType::Hmac) { &entry.key } else { &entry.hmac_key };
        k.as_ref().map(SecretBytes::expose).ok_or_else(|| "no HMAC key exists for that key version".into())
    }

    /// Signs with Ed25519; returns the signature string and, for derived keys, the public key.
    pub fn sign(&self, ver: i64, context: &[u8], input: &[u8]) -> Result<(String, Option<Vec<u8>>), OpError> {
        use ed25519_dalek::Signer;
        let kt = self.kt()?;
        if !kt.signing_supported() {
            return Err(internal(format!("message signing not supported for key type {kt}")));
        }
        let ver = match ver {
            0 => self.latest_version,
            v if v < 0 => return Err(user("requested version for signing is negative")),
            v if v > self.latest_version => {
                return Err(user("requested version for signing is higher than the latest key version"))
            }
            v if self.min_encryption_version > 0 && v < self.min_encryption_version => {
                return Err(user(
                    "requested version for signing is less than the minimum encryption key version",
                ))
            }
            v => v,
        };
        let entry = self.entry(ver)?;
        if entry.key.is_none() {
            return Err(user("requested version for signing does not contain a private part"));
        }
        let (sk, public) = if self.derived {
            let k = self
                .get_key(context, ver, 32)
                .map_err(|e| internal(format!("error deriving key: {}", e.message())))?;
            let sk = crypto::ed25519_signing_key(k.expose()).map_err(internal)?;
            let public = sk.verifying_key().to_bytes().to_vec();
            (sk, Some(public))
        } else {
            let k = entry.key.as_ref().ok_or_else(|| internal("missing key"))?;
            (crypto::ed25519_signing_key(k.expose()).map_err(internal)?, None)
        };
        let sig = sk.sign(input).to_bytes();
        Ok((format!("{}{}", Self::prefix(ver), crypto::b64(&sig)), public))
    }

    /// Verifies an Ed25519 signature string (Vault's `VerifySignatureWithOptions`).
    pub fn verify(&self, context: &[u8], input: &[u8], sig: &str) -> Result<bool, OpError> {
        let kt = self.kt()?;
        if !kt.signing_supported() {
            return Err(user(format!("message verification not supported for key type {kt}")));
        }
        let (ver, data) = self.split_versioned(sig, "signature")?;
        if ver > self.latest_version {
            return Err(user("invalid signature: version is too new"));
        }
        if self.min_decryption_version > 0 && ver < self.min_decryption_version {
            return Err(user(ERR_TOO_OLD));
        }
        let sig_bytes = crypto::go_b64_decode(data).map_err(|_| user("invalid base64 signature value"))?;
        let public = if self.derived {
            let k = self
                .get_key(context, ver, 32)
                .map_err(|e| internal(format!("error deriving key: {}", e.message())))?;
            k.expose()[32..].to_vec()
        } else {
            let entry = self.entry(ver)?;
            crypto::go_b64_decode(&entry.public_key).map_err(internal)?
        };
        Ok(crypto::ed25519_verify(&public, input, &sig_bytes))
    }

    /// Versions the API shows (≥ `min_decryption_version`), ascending.
    pub fn visible_versions(&self) -> impl Iterator<Item = (&u64, &KeyEntry)> {
        let min = self.min_decryption_version.max(0) as u64;
        self.keys.range(min..)
    }

    /// The key read payload (Vault's `formatKeyPolicy`).
    pub fn to_json(&self, context: Option<&[u8]>) -> Result<Map<String, Value>, OpError> {
        let kt = self.kt()?;
        let mut d = Map::new();
        d.insert("name".into(), json!(self.name));
        d.insert("type".into(), json!(kt.name()));
        d.insert("derived".into(), json!(self.derived));
        d.insert("deletion_allowed".into(), json!(self.deletion_allowed));
        d.insert("min_available_version".into(), json!(self.min_available_version));
        d.insert("min_decryption_version".into(), json!(self.min_decryption_version));
        d.insert("min_encryption_version".into(), json!(self.min_encryption_version));
        d.insert("latest_version".into(), json!(self.latest_version));
        d.insert("exportable".into(), json!(self.exportable));
        d.insert("allow_plaintext_backup".into(), json!(self.allow_plaintext_backup));
        d.insert("supports_encryption".into(), json!(kt.encryption_supported()));
        d.insert("supports_decryption".into(), json!(kt.encryption_supported()));
        d.insert("supports_signing".into(), json!(kt.signing_supported()));
        d.insert("supports_derivation".into(), json!(kt.derivation_supported()));
        d.insert("auto_rotate_period".into(), json!(self.auto_rotate_secs()));
        d.insert("imported_key".into(), json!(self.imported));
        d.insert("soft_deleted".into(), json!(self.soft_deleted));
        if self.key_size != 0 {
            d.insert("key_size".into(), json!(self.key_size));
        }
        if self.imported {
            d.insert("imported_key_allow_rotation".into(), json!(self.allow_imported_key_rotation));
        }
        if let Some(b) = &self.backup_info {
            d.insert("backup_info".into(), json!({"time": b.time, "version": b.version}));
        }
        if let Some(r) = &self.restore_info {
            d.insert("restore_info".into(), json!({"time": r.time, "version": r.version}));
        }
        if self.derived {
            if self.kdf == KDF_COUNTER {
                d.insert("kdf".into(), json!("hmac-sha256-counter"));
                d.insert("kdf_mode".into(), json!("hmac-sha256-counter"));
            } else {
                d.insert("kdf".into(), json!("hkdf_sha256"));
            }
            d.insert("convergent_encryption".into(), json!(self.convergent_encryption));
            if self.convergent_encryption {
                d.insert("convergent_encryption_version".into(), json!(self.convergent_version));
            }
        }
        match kt {
            KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
                let keys: Map<String, Value> =
                    self.visible_versions().map(|(v, e)| (v.to_string(), json!(e.creation_time))).collect();
                d.insert("keys".into(), Value::Object(keys));
            }
            KeyType::Ed25519 => {
                let mut keys = Map::new();
                for (v, e) in self.visible_versions() {
                    let public = if self.derived {
                        match context {
                            Some(c) if !c.is_empty() => {
                                let k = self.derive_key(c, *v as i64, 32).map_err(|e| {
                                    internal(format!(
                                        "failed to derive key to return public component: {}",
                                        e.message()
                                    ))
                                })?;
                                crypto::b64(&k.expose()[32..])
                            }
                            _ => String::new(),
                        }
                    } else {
                        e.public_key.clone()
                    };
                    let created = if e.time == crate::util::timefmt::GO_ZERO_TIME {
                        rfc3339_nano(e.created())
                    } else {
                        e.time.clone()
                    };
                    keys.insert(
                        v.to_string(),
                        json!({"name": "ed25519", "public_key": public, "creation_time": created,
                               "certificate_chain": ""}),
                    );
                }
                d.insert("keys".into(), Value::Object(keys));
            }
            KeyType::Hmac => {}
        }
        Ok(d)
    }
}

/// Go's `strconv.Atoi` (optional sign, decimal digits, 64-bit range).
pub fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kind: KeyType, derived: bool, convergent: bool) -> NewKey {
        NewKey {
            kind,
            derived,
            convergent,
            exportable: false,
            allow_plaintext_backup: false,
            auto_rotate_period: 0,
            key_size: 0,
        }
    }

    #[test]
    fn record_round_trip_keeps_key_material() {
        let p =
            Policy::create("k", &opts(KeyType::Aes256Gcm96, true, true), OffsetDateTime::now_utc()).unwrap();
        let ct = p.encrypt(0, b"ctx", b"secret", b"").unwrap();
        let raw = p.encode().unwrap();
        let q = Policy::decode(&raw).unwrap();
        assert_eq!(q.decrypt(b"ctx", &ct, b"").unwrap().as_slice(), b"secret");
        // Convergent: same input, same ciphertext.
        assert_eq!(q.encrypt(0, b"ctx", b"secret", b"").unwrap(), ct);
    }

    #[test]
    fn debug_never_shows_keys() {
        let p = Policy::create(
            "k",
            &NewKey { key_size: 32, ..opts(KeyType::Hmac, false, false) },
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let s = format!("{p:?} {:?}", p.keys.get(&1).unwrap());
        let key = crypto::b64(p.keys[&1].key.as_ref().unwrap().expose());
        assert!(!s.contains(&key));
    }

    #[test]
    fn atoi_is_go_like() {
        assert_eq!(go_atoi("12"), Some(12));
        assert_eq!(go_atoi("+3"), Some(3));
        assert_eq!(go_atoi("-3"), Some(-3));
        assert_eq!(go_atoi(""), None);
        assert_eq!(go_atoi("1a"), None);
        assert_eq!(go_atoi(" 1"), None);
    }

    fn all_key_specs() -> Vec<(NewKey, &'static [u8])> {
        let mut v = Vec::new();
        for kind in [KeyType::Aes128Gcm96, KeyType::Aes256Gcm96, KeyType::ChaCha20Poly1305] {
            v.push((opts(kind, false, false), &b""[..]));
            v.push((opts(kind, true, false), &b"tenant-1"[..]));
            v.push((opts(kind, true, true), &b"tenant-2"[..]));
        }
        v
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// decrypt(encrypt(x)) = x for sizes up to 64 KiB, every AEAD type, with and without
        /// derivation and convergence, with and without associated data.
        #[test]
        fn decrypt_inverts_encrypt(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..65536),
            aad in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
        ) {
            let now = OffsetDateTime::now_utc();
            for (spec, ctx) in all_key_specs() {
                let mut p = Policy::create("k", &spec, now).unwrap();
                p.rotate_in_memory(now).unwrap();
                for ver in [1, 2] {
                    let ct = p.encrypt(ver, ctx, &data, &aad).unwrap();
                    let prefix = format!("vault:v{}:", ver);
                    proptest::prop_assert!(ct.starts_with(&prefix));
                    let pt = p.decrypt(ctx, &ct, &aad).unwrap();
                    proptest::prop_assert_eq!(pt.as_slice(), data.as_slice());
                }
            }
        }
    }

    /// Every single-bit flip of the payload of a ciphertext is rejected, for every AEAD type.
    #[test]
    fn every_bit_flip_fails() {
        let now = OffsetDateTime::now_utc();
        for (spec, ctx) in all_key_specs() {
            let p = Policy::create("k", &spec, now).unwrap();
            let ct = p.encrypt(0, ctx, b"thirty-two bytes of plaintext!!!", b"ad").unwrap();
            let payload = crypto::go_b64_decode(ct.strip_prefix("vault:v1:").unwrap()).unwrap();
            for i in 0..payload.len() {
                for bit in 0..8 {
                    let mut bad = payload.clone();
                    bad[i] ^= 1 << bit;
                    let tampered = format!("vault:v1:{}", crypto::b64(&bad));
                    assert!(
                        p.decrypt(ctx, &tampered, b"ad").is_err(),
                        "{:?} flip {i}/{bit} accepted",
                        spec.kind
                    );
                }
            }
            // Wrong context and wrong associated data fail too.
            if spec.derived {
                assert!(p.decrypt(b"other", &ct, b"ad").is_err());
            }
            assert!(p.decrypt(ctx, &ct, b"AD").is_err());
        }
    }

    /// 100,000 encryptions under one key version never repeat a nonce.
    #[test]
    fn no_repeated_nonce_in_1e5_encryptions() {
        let p = Policy::create("k", &opts(KeyType::Aes256Gcm96, false, false), OffsetDateTime::now_utc())
            .unwrap();
        let mut seen = std::collections::HashSet::with_capacity(100_000);
        for _ in 0..100_000 {
            let ct = p.encrypt(0, b"", b"same plaintext", b"").unwrap();
            let payload = crypto::go_b64_decode(&ct["vault:v1:".len()..]).unwrap();
            let nonce: [u8; NONCE_LEN] = payload[..NONCE_LEN].try_into().unwrap();
            assert!(seen.insert(nonce), "nonce repeated");
        }
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn version_rules() {
        let now = OffsetDateTime::now_utc();
        let mut p = Policy::create("k", &opts(KeyType::Aes256Gcm96, false, false), now).unwrap();
        let ct1 = p.encrypt(0, b"", b"x", b"").unwrap();
        p.rotate_in_memory(now).unwrap();
        p.min_decryption_version = 2;
        assert_eq!(p.decrypt(b"", &ct1, b"").unwrap_err().message(), ERR_TOO_OLD);
        p.min_encryption_version = 2;
        assert_eq!(
            p.encrypt(1, b"", b"x", b"").unwrap_err().message(),
            "requested version for encryption is less than the minimum encryption key version"
        );
        assert!(p.encrypt(0, b"", b"x", b"").unwrap().starts_with("vault:v2:"));
    }
}
