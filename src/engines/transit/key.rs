//! A transit key: the stored record (Vault's `keysutil.Policy`, field for field) and its
//! persisted format.
//!
//! A key is stored at `policy/<name>` in the mount's view as `{"v":1,"policy":{...}}`, where the
//! inner object is exactly Vault's `keysutil.Policy` JSON (the shape inside a `backup` blob), so
//! backups move between coffer and Vault/OpenBao unchanged. Unlike Vault, coffer keeps every
//! available version (≥ `min_available_version`) in the one record instead of splitting old
//! versions into an `archive/<name>` record; the API shows only versions ≥
//! `min_decryption_version`, as Vault does. A record is checked when decoded ([`TransitKey::check`])
//! so the operations in [`super::cipher`] only ever see key material of the right length.
//!
//! Changes are read-modify-write with a storage precondition on the record's version (see
//! [`super::store`]), so two concurrent rotations yield two versions, never a lost one.
//!
//! Key bytes live in [`SecretBytes`] (locked, zeroized on drop, no `Clone`); the base64 strings
//! of the JSON form are zeroized after use; `Debug` shows neither.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use coffer_storage::keys::SecretBytes;

use super::bignum::{PublicInt, RsaKeyMaterial, RsaPublicParts, SecretInt};
use super::crypto::{self, KeyType};
use super::error::KeyOpError;

/// Format version of the stored record.
pub const RECORD_VERSION: u32 = 1;

/// Current convergent-encryption version (nonce from a derived HMAC key).
pub const CONVERGENT_VERSION: i64 = 3;

/// KDF codes.
pub const KDF_COUNTER: i64 = 0;
pub const KDF_HKDF: i64 = 1;

/// Why a stored record or a backup's key cannot be used. The texts reach clients on `restore`.
#[derive(Debug, thiserror::Error)]
pub enum KeyRecordError {
    #[error("corrupt transit key record: {0}")]
    Corrupt(#[source] serde_json::Error),
    #[error("custom version templates are not supported")]
    CustomVersionTemplate,
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    #[error("key version {0} has an ed25519 key of the wrong length")]
    Ed25519KeyLength(u64),
    #[error("key version {0} has a key of the wrong length")]
    KeyLength(u64),
    #[error("key version {0} has invalid key material: {1}")]
    Material(u64, String),
    #[error("legacy single-key policies are not supported")]
    LegacySingleKey,
    #[error("key version {0} has no key")]
    MissingKey(u64),
    #[error("policy has no key versions")]
    NoVersions,
    #[error("unsupported transit key record version {0}")]
    UnsupportedRecordVersion(u32),
    #[error("unsupported key type {0}")]
    UnsupportedType(i64),
    #[error("key version {0} is above the latest version")]
    VersionAboveLatest(u64),
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
        Ok(Some(SecretBytes::from_slice(raw.expose())))
    }
}

/// `backup_info` / `restore_info`: when the key was last backed up or restored (RFC 3339) and its
/// latest version then.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct BackupRestoreInfo {
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
    /// ECDSA public point and secret scalar (Go `*big.Int`: JSON numbers).
    #[serde(default)]
    pub ec_x: Option<PublicInt>,
    #[serde(default)]
    pub ec_y: Option<PublicInt>,
    #[serde(default)]
    pub ec_d: Option<SecretInt>,
    /// RSA private key (Go `*rsa.PrivateKey`) and, for imported public keys, the public key.
    #[serde(default)]
    pub rsa_key: Option<RsaKeyMaterial>,
    #[serde(default)]
    pub rsa_public_key: Option<RsaPublicParts>,
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
            ec_x: None,
            ec_y: None,
            ec_d: None,
            rsa_key: None,
            rsa_public_key: None,
            public_key: String::new(),
            convergent_version: 0,
            creation_time: 0,
            certificate_chain: Value::Null,
            external_key_ref: String::new(),
        }
    }

    /// True for Go's zero entry (an unused archive slot).
    pub fn is_empty(&self) -> bool {
        self.key.is_none()
            && self.hmac_key.is_none()
            && self.public_key.is_empty()
            && self.ec_x.is_none()
            && self.rsa_key.is_none()
            && self.rsa_public_key.is_none()
    }

    /// An independent copy (explicit: entries hold key material).
    pub fn duplicate(&self) -> Self {
        KeyEntry {
            key: self.key.as_ref().map(SecretBytes::duplicate),
            hmac_key: self.hmac_key.as_ref().map(SecretBytes::duplicate),
            time: self.time.clone(),
            ec_x: self.ec_x.clone(),
            ec_y: self.ec_y.clone(),
            ec_d: self.ec_d.as_ref().map(|d| SecretInt(d.0.duplicate())),
            rsa_key: self.rsa_key.as_ref().map(RsaKeyMaterial::duplicate),
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

/// A transit key: Vault's `keysutil.Policy`, field for field (its JSON is the persisted form).
#[derive(Deserialize, Serialize)]
pub struct TransitKey {
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
    pub backup_info: Option<BackupRestoreInfo>,
    #[serde(default)]
    pub restore_info: Option<BackupRestoreInfo>,
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
    /// coffer only: `jwks/<name>` may be read without a token. Vault and OpenBao ignore the field
    /// in a backup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub jwks_public: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl std::fmt::Debug for TransitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitKey")
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

impl NewKey {
    /// A new key's options when the request says nothing: AES-256-GCM, nothing else enabled.
    pub const DEFAULTS: NewKey = NewKey {
        kind: KeyType::Aes256Gcm96,
        derived: false,
        convergent: false,
        exportable: false,
        allow_plaintext_backup: false,
        auto_rotate_period: 0,
        key_size: 0,
    };
}

/// The stored record, as written: the JSON field `policy` is Vault's name for the key.
#[derive(Serialize)]
struct StoredRef<'a> {
    v: u32,
    policy: &'a TransitKey,
}

/// The stored record, as read.
#[derive(Deserialize)]
struct Stored {
    v: u32,
    policy: TransitKey,
}

impl TransitKey {
    /// A new key with its first version (Vault's `GetPolicy` upsert + `Rotate`).
    pub fn create(name: &str, opts: &NewKey, now: OffsetDateTime) -> Result<TransitKey, KeyOpError> {
        let mut p = TransitKey::empty(name, opts);
        p.rotate_in_memory(now)?;
        Ok(p)
    }

    /// A new key whose first version is `first` (generated ahead, or imported).
    pub fn create_with(name: &str, opts: &NewKey, first: KeyEntry) -> TransitKey {
        let mut p = TransitKey::empty(name, opts);
        p.add_version(first);
        p
    }

    /// A key without versions.
    fn empty(name: &str, opts: &NewKey) -> TransitKey {
        TransitKey {
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
            jwks_public: false,
        }
    }

    /// Decodes a stored record.
    pub fn decode(raw: &[u8]) -> Result<TransitKey, KeyRecordError> {
        let s: Stored = serde_json::from_slice(raw).map_err(KeyRecordError::Corrupt)?;
        if s.v != RECORD_VERSION {
            return Err(KeyRecordError::UnsupportedRecordVersion(s.v));
        }
        s.policy.check()?;
        Ok(s.policy)
    }

    /// Encodes for storage (the buffer holds key material: zeroized on drop).
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, KeyRecordError> {
        serde_json::to_vec(&StoredRef { v: RECORD_VERSION, policy: self })
            .map(Zeroizing::new)
            .map_err(KeyRecordError::Encode)
    }

    /// Validates a key loaded from storage or a backup.
    pub fn check(&self) -> Result<(), KeyRecordError> {
        if self.key.is_some() {
            return Err(KeyRecordError::LegacySingleKey);
        }
        let Some(kt) = self.key_type() else {
            return Err(KeyRecordError::UnsupportedType(self.kind));
        };
        if self.latest_version < 1 {
            return Err(KeyRecordError::NoVersions);
        }
        if !self.version_template.is_empty() && self.version_template != "vault:v{{version}}:" {
            return Err(KeyRecordError::CustomVersionTemplate);
        }
        for (&v, e) in &self.keys {
            if v as i64 > self.latest_version {
                return Err(KeyRecordError::VersionAboveLatest(v));
            }
            e.check_material(kt, v)?;
        }
        Ok(())
    }

    /// The key type (`None` for types coffer does not implement).
    pub fn key_type(&self) -> Option<KeyType> {
        KeyType::from_code(self.kind)
    }

    /// The key type, or the server's error for a type coffer does not implement.
    pub(super) fn supported_type(&self) -> Result<KeyType, KeyOpError> {
        self.key_type().ok_or_else(|| KeyOpError::internal(format!("unsupported key type {}", self.kind)))
    }

    /// Auto-rotation period in whole seconds.
    pub fn auto_rotate_secs(&self) -> i64 {
        self.auto_rotate_period / 1_000_000_000
    }

    /// Adds a new version with fresh key material (Vault's `RotateInMemory`).
    pub fn rotate_in_memory(&mut self, now: OffsetDateTime) -> Result<(), KeyOpError> {
        let entry = KeyEntry::generate(self.supported_type()?, self.key_size, now)?;
        self.add_version(entry);
        Ok(())
    }

    /// Adds `entry` as the new latest version.
    pub fn add_version(&mut self, mut entry: KeyEntry) {
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
    }

    /// Drops versions below `min_available_version` (after `trim`).
    pub fn drop_trimmed(&mut self) {
        let min = self.min_available_version.max(0) as u64;
        self.keys.retain(|v, _| *v >= min);
        self.archive_min_version = self.min_available_version;
    }

    /// One version's entry; the caller's error when there is none.
    pub(super) fn entry(&self, ver: i64) -> Result<&KeyEntry, KeyOpError> {
        let entry = u64::try_from(ver).ok().and_then(|v| self.keys.get(&v));
        entry.ok_or_else(|| KeyOpError::user("no such key version"))
    }

    /// Versions the API shows (≥ `min_decryption_version`), ascending.
    pub fn visible_versions(&self) -> impl Iterator<Item = (&u64, &KeyEntry)> {
        let min = self.min_decryption_version.max(0) as u64;
        self.keys.range(min..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_keeps_key_material() {
        let p = TransitKey::create(
            "k",
            &NewKey { derived: true, convergent: true, ..NewKey::DEFAULTS },
            coffer_storage::clock::now(),
        )
        .unwrap();
        let ct = p.encrypt(0, b"ctx", b"secret", b"").unwrap();
        let raw = p.encode().unwrap();
        let q = TransitKey::decode(&raw).unwrap();
        assert_eq!(q.decrypt(b"ctx", &ct, b"").unwrap().expose(), b"secret");
        // Convergent: same input, same ciphertext.
        assert_eq!(q.encrypt(0, b"ctx", b"secret", b"").unwrap(), ct);
    }

    #[test]
    fn debug_never_shows_keys() {
        let p = TransitKey::create(
            "k",
            &NewKey { kind: KeyType::Hmac, key_size: 32, ..NewKey::DEFAULTS },
            coffer_storage::clock::now(),
        )
        .unwrap();
        let s = format!("{p:?} {:?}", p.keys.get(&1).unwrap());
        let key = crypto::b64(p.keys[&1].key.as_ref().unwrap().expose());
        assert!(!s.contains(&key));
    }
}
