//! The operations of a transit key, byte-compatible with Vault's `keysutil`: key derivation,
//! encryption and decryption of `vault:v<N>:` ciphertexts (AEAD types and RSA-OAEP), and the
//! HMAC key of a version. Signatures are in `signature`.
//!
//! Every operation enforces Vault's version rules (`min_encryption_version`,
//! `min_decryption_version`, the latest version) and answers a [`KeyOpError`] that says whose
//! fault a failure is, with Vault's text. Derived and decrypted bytes are zeroized when dropped.

use coffer_storage::keys::{SecretBytes, SecretVec};

use super::asym;
use super::crypto::{self, HashAlg, KeyType};
use super::error::KeyOpError;
use super::key::{TransitKey, CONVERGENT_VERSION, KDF_COUNTER, KDF_HKDF};

/// Vault's text when a version is below `min_decryption_version`.
pub const ERR_TOO_OLD: &str = "ciphertext or signature version is disallowed by policy (too old)";

/// The prefix of every ciphertext and signature (before the version number).
const PREFIX: &str = "vault:v";

impl TransitKey {
    /// The convergent-encryption version that applies to key version `ver` (0 when the key is
    /// not convergent).
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
    pub fn derive_key(&self, context: &[u8], ver: i64, len: usize) -> Result<SecretBytes, KeyOpError> {
        let kt = self.supported_type()?;
        if !kt.derivation_supported() {
            return Err(KeyOpError::user(format!("derivation not supported for key type {kt}")));
        }
        if self.keys.is_empty() || self.latest_version == 0 {
            return Err(KeyOpError::internal("unable to access the key; no key versions found"));
        }
        if ver <= 0 || ver > self.latest_version {
            return Err(KeyOpError::user("invalid key version"));
        }
        if context.is_empty() {
            return Err(KeyOpError::user("missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"));
        }
        let entry = self.entry(ver)?;
        let stored =
            entry.key.as_ref().ok_or_else(|| KeyOpError::internal("key version has no key material"))?;
        match self.kdf {
            KDF_COUNTER => Ok(crypto::counter_kdf(stored.expose(), context)),
            KDF_HKDF => match kt {
                KeyType::Ed25519 => {
                    let seed = crypto::hkdf_sha256(stored.expose(), context, 32)?;
                    let sk = crypto::ed25519_signing_key(seed.expose())?;
                    let mut full = SecretBytes::zeroed(64);
                    full.expose_mut()[..32].copy_from_slice(seed.expose());
                    full.expose_mut()[32..].copy_from_slice(&sk.verifying_key().to_bytes());
                    Ok(full)
                }
                _ => Ok(crypto::hkdf_sha256(stored.expose(), context, len)?),
            },
            _ => Err(KeyOpError::internal("unsupported key derivation mode")),
        }
    }

    /// Vault's `GetKey`: the stored key of a version (borrowed, not copied), or the one derived
    /// from it and `context` when the key is derived.
    pub(super) fn operation_key(
        &self,
        context: &[u8],
        ver: i64,
        len: usize,
    ) -> Result<OperationKey<'_>, KeyOpError> {
        if !self.derived {
            let entry = self.entry(ver)?;
            return entry
                .key
                .as_ref()
                .map(OperationKey::Stored)
                .ok_or_else(|| KeyOpError::internal("key version has no key material"));
        }
        self.derive_key(context, ver, len).map(OperationKey::Derived)
    }

    /// `vault:v<N>:`.
    pub(super) fn prefix(ver: i64) -> String {
        format!("{PREFIX}{ver}:")
    }

    /// Resolves `key_version` for encryption (0 = latest) with Vault's checks.
    pub fn encryption_version(&self, ver: i64, what: &str) -> Result<i64, KeyOpError> {
        match ver {
            0 => Ok(self.latest_version),
            v if v < 0 => Err(KeyOpError::user(format!("requested version for {what} is negative"))),
            v if v > self.latest_version => Err(KeyOpError::user(format!(
                "requested version for {what} is higher than the latest key version"
            ))),
            v if v < self.min_encryption_version => Err(KeyOpError::user(format!(
                "requested version for {what} is less than the minimum encryption key version"
            ))),
            v => Ok(v),
        }
    }

    /// Encrypts a (decoded) plaintext; returns `vault:v<N>:<base64>` (Vault's `EncryptWithFactory`).
    pub fn encrypt(
        &self,
        ver: i64,
        context: &[u8],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<String, KeyOpError> {
        Keyed::new(self).encrypt(ver, context, plaintext, aad)
    }

    /// Decrypts `vault:v<N>:...`; returns the plaintext bytes (Vault's `DecryptWithFactory`).
    pub fn decrypt(&self, context: &[u8], value: &str, aad: &[u8]) -> Result<SecretVec, KeyOpError> {
        Keyed::new(self).decrypt(context, value, aad)
    }

    /// [`Self::encrypt`], keying the cipher through `ciphers`.
    fn encrypt_with(
        &self,
        ciphers: &mut Ciphers,
        ver: i64,
        context: &[u8],
        plaintext: Plain<'_>,
        aad: &[u8],
    ) -> Result<String, KeyOpError> {
        let kt = self.supported_type()?;
        if !kt.encryption_supported() {
            return Err(KeyOpError::user(format!("message encryption not supported for key type {kt}")));
        }
        let ver = self.encryption_version(ver, "encryption")?;
        if kt.rsa_bits().is_some() {
            let ct = asym::rsa_encrypt(&self.entry(ver)?.rsa_public()?, plaintext.bytes())?;
            return Ok(versioned(ver, &ct));
        }
        let enc_len = kt.key_len();
        let cv = self.convergent_version_of(ver);
        let hmac_len = if cv > 2 { 32 } else { 0 };
        let material = self.operation_key(context, ver, enc_len + hmac_len)?;
        if material.len() < enc_len + hmac_len {
            return Err(KeyOpError::internal("could not derive key, length too small"));
        }
        let (enc_key, nonce_key) = material.expose().split_at(enc_len);
        let random;
        let convergent;
        let nonce: &[u8] = if self.convergent_encryption {
            if cv > 0 && cv < CONVERGENT_VERSION {
                return Err(KeyOpError::user(format!(
                    "refusing to support decryption with old convergent encryption key: version {cv}"
                )));
            }
            if cv != CONVERGENT_VERSION {
                return Err(KeyOpError::internal(format!("unhandled convergent version {cv}")));
            }
            convergent = crypto::convergent_nonce(nonce_key, plaintext.bytes(), kt.nonce_len());
            &convergent
        } else {
            random = crypto::random_nonce(kt.nonce_len())?;
            &random[..kt.nonce_len()]
        };
        let cipher = ciphers.of(&material, kt, ver, enc_key)?;
        Ok(match plaintext {
            Plain::Slice(p) => versioned(ver, &crypto::seal_with(&cipher, kt, nonce, p, aad)?),
            Plain::Framed(f) => {
                let (sealed, start) = crypto::seal_framed(&cipher, kt, nonce, f, aad)?;
                versioned(ver, sealed.get(start..).unwrap_or_default())
            }
        })
    }

    /// Parses `vault:v<N>:<rest>` with the given error noun (`ciphertext` / `signature`).
    pub(super) fn split_versioned<'a>(
        &self,
        value: &'a str,
        noun: &str,
    ) -> Result<(i64, &'a str), KeyOpError> {
        let Some(rest) = value.strip_prefix(PREFIX) else {
            return Err(KeyOpError::user(format!("invalid {noun}: no prefix")));
        };
        let Some((v, data)) = rest.split_once(':') else {
            return Err(KeyOpError::user(format!("invalid {noun}: wrong number of fields")));
        };
        let ver = go_atoi(v).ok_or_else(|| {
            KeyOpError::user(format!("invalid {noun}: version number could not be decoded"))
        })?;
        Ok((ver, data))
    }

    /// [`Self::decrypt`], keying the cipher through `ciphers`.
    fn decrypt_with(
        &self,
        ciphers: &mut Ciphers,
        context: &[u8],
        value: &str,
        aad: &[u8],
    ) -> Result<SecretVec, KeyOpError> {
        let kt = self.supported_type()?;
        if !kt.encryption_supported() {
            return Err(KeyOpError::user(format!("message decryption not supported for key type {kt}")));
        }
        let (mut ver, data) = self.split_versioned(value, "ciphertext")?;
        if ver == 0 {
            ver = 1;
        }
        if ver > self.latest_version {
            return Err(KeyOpError::user("invalid ciphertext: version is too new"));
        }
        if self.min_decryption_version > 0 && ver < self.min_decryption_version {
            return Err(KeyOpError::user(ERR_TOO_OLD));
        }
        let cv = self.convergent_version_of(ver);
        if self.convergent_encryption && cv < CONVERGENT_VERSION && cv > 0 {
            return Err(KeyOpError::user(format!(
                "refusing to support decryption with old convergent encryption key: version {cv}"
            )));
        }
        // Decoded into a buffer erased when dropped: AEAD ciphertexts are decrypted in place.
        let decoded = crypto::go_b64_secret(data)
            .map_err(|_| KeyOpError::user("invalid ciphertext: could not decode base64"))?;
        if kt.rsa_bits().is_some() {
            let private = self.entry(ver)?.rsa_key.as_ref().ok_or_else(|| {
                KeyOpError::internal(
                    "cannot decrypt ciphertext, key version does not have a private counterpart",
                )
            })?;
            return Ok(asym::rsa_decrypt(&private.key()?, HashAlg::Sha2_256, decoded.expose())
                .map(SecretVec::from)?);
        }
        let material = self.operation_key(context, ver, kt.key_len())?;
        if material.len() < kt.key_len() {
            return Err(KeyOpError::internal("could not derive enc key, length not correct"));
        }
        let key = &material.expose()[..kt.key_len()];
        let cipher = ciphers.of(&material, kt, ver, key)?;
        Ok(crypto::open_in_place(&cipher, kt, decoded, aad)?)
    }

    /// The HMAC key of a version (Vault's `HMACKey`); every failure is the caller's.
    pub fn hmac_key(&self, ver: i64) -> Result<&[u8], KeyOpError> {
        if ver < 0 {
            return Err(KeyOpError::user("key version does not exist (cannot be negative)"));
        }
        if ver > self.latest_version {
            return Err(KeyOpError::user(format!(
                "key version does not exist; latest key version is {}",
                self.latest_version
            )));
        }
        let entry = self.entry(ver)?;
        let k = if self.key_type() == Some(KeyType::Hmac) { &entry.key } else { &entry.hmac_key };
        let k = k.as_ref().map(SecretBytes::expose);
        k.ok_or_else(|| KeyOpError::user("no HMAC key exists for that key version"))
    }
}

/// One request's encryptions and decryptions under one key: the cipher of a stored key version
/// (its AES key schedule and GHASH key) is built once and used for every item of a batch,
/// instead of once per item. Keys derived from a context are not kept; the cipher is dropped
/// (and erased) with the request.
pub struct Keyed<'a> {
    key: &'a TransitKey,
    ciphers: Ciphers,
}

impl<'a> Keyed<'a> {
    /// Operations under `key`.
    pub fn new(key: &'a TransitKey) -> Self {
        Keyed { key, ciphers: Ciphers::default() }
    }

    /// The key.
    pub fn key(&self) -> &'a TransitKey {
        self.key
    }

    /// [`TransitKey::encrypt`].
    pub fn encrypt(
        &mut self,
        ver: i64,
        context: &[u8],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<String, KeyOpError> {
        self.key.encrypt_with(&mut self.ciphers, ver, context, Plain::Slice(plaintext), aad)
    }

    /// [`Self::encrypt`] of a plaintext decoded into its sealing buffer, encrypted in place.
    pub fn encrypt_framed(
        &mut self,
        ver: i64,
        context: &[u8],
        plaintext: crypto::Framed,
        aad: &[u8],
    ) -> Result<String, KeyOpError> {
        self.key.encrypt_with(&mut self.ciphers, ver, context, Plain::Framed(plaintext), aad)
    }

    /// [`TransitKey::decrypt`].
    pub fn decrypt(&mut self, context: &[u8], value: &str, aad: &[u8]) -> Result<SecretVec, KeyOpError> {
        self.key.decrypt_with(&mut self.ciphers, context, value, aad)
    }
}

/// A plaintext to encrypt: borrowed (sealed into a new buffer), or decoded into its own
/// sealing buffer ([`crypto::Framed`], sealed in place).
enum Plain<'a> {
    Slice(&'a [u8]),
    Framed(crypto::Framed),
}

impl Plain<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Plain::Slice(p) => p,
            Plain::Framed(f) => f.plaintext(),
        }
    }
}

/// The cipher of the stored key version used last (a batch nearly always uses one).
#[derive(Default)]
struct Ciphers {
    last: Option<(i64, crypto::Cipher)>,
}

/// The cipher of one operation: the request's kept cipher of a stored key version, or one
/// built for a key derived from a context (not kept).
enum OpCipher<'a> {
    Kept(&'a crypto::Cipher),
    Derived(crypto::Cipher),
}

impl std::ops::Deref for OpCipher<'_> {
    type Target = crypto::Cipher;

    fn deref(&self) -> &crypto::Cipher {
        match self {
            OpCipher::Kept(c) => c,
            OpCipher::Derived(c) => c,
        }
    }
}

impl Ciphers {
    /// The cipher of `material` (whose bytes for the cipher are `key`) for version `ver`.
    fn of(
        &mut self,
        material: &OperationKey<'_>,
        kt: KeyType,
        ver: i64,
        key: &[u8],
    ) -> Result<OpCipher<'_>, KeyOpError> {
        Ok(match material {
            OperationKey::Stored(_) => OpCipher::Kept(self.stored(kt, ver, key)?),
            OperationKey::Derived(_) => OpCipher::Derived(crypto::Cipher::new(kt, key)?),
        })
    }

    /// The cipher of stored key version `ver`, whose key is `key` (built when the version changed).
    fn stored(&mut self, kt: KeyType, ver: i64, key: &[u8]) -> Result<&crypto::Cipher, KeyOpError> {
        if self.last.as_ref().is_none_or(|(v, _)| *v != ver) {
            self.last = Some((ver, crypto::Cipher::new(kt, key)?));
        }
        self.last.as_ref().map(|(_, c)| c).ok_or_else(|| KeyOpError::internal("no cipher"))
    }
}

/// The key of one operation: a version's stored key, borrowed from the decoded key (so an
/// operation allocates and locks no memory for it), or a key derived for the request's context.
pub(super) enum OperationKey<'a> {
    Stored(&'a SecretBytes),
    Derived(SecretBytes),
}

impl OperationKey<'_> {
    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        match self {
            OperationKey::Stored(k) => k.expose(),
            OperationKey::Derived(k) => k.expose(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }
}

/// `vault:v<ver>:<base64 of data>`, written into one string of the right size.
fn versioned(ver: i64, data: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(PREFIX.len() + 21 + base64_simd::STANDARD.encoded_length(data.len()));
    out.push_str(PREFIX);
    let _ = write!(out, "{ver}:");
    crypto::b64_append(data, &mut out);
    out
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
    use crate::engines::transit::key::NewKey;

    fn opts(kind: KeyType, derived: bool, convergent: bool) -> NewKey {
        NewKey { kind, derived, convergent, ..NewKey::DEFAULTS }
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
        for kind in [
            KeyType::Aes128Gcm96,
            KeyType::Aes256Gcm96,
            KeyType::ChaCha20Poly1305,
            KeyType::XChaCha20Poly1305,
        ] {
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
            let now = coffer_storage::clock::now();
            for (spec, context) in all_key_specs() {
                let mut p = TransitKey::create("k", &spec, now).unwrap();
                p.rotate_in_memory(now).unwrap();
                for ver in [1, 2] {
                    let ct = p.encrypt(ver, context, &data, &aad).unwrap();
                    let prefix = format!("vault:v{}:", ver);
                    proptest::prop_assert!(ct.starts_with(&prefix));
                    let pt = p.decrypt(context, &ct, &aad).unwrap();
                    proptest::prop_assert_eq!(pt.expose(), data.as_slice());
                    // The same plaintext decoded into its sealing buffer and sealed in place.
                    let framed = crypto::go_b64_framed(&crypto::b64(&data)).unwrap();
                    proptest::prop_assert_eq!(framed.plaintext(), data.as_slice());
                    let in_place = Keyed::new(&p).encrypt_framed(ver, context, framed, &aad).unwrap();
                    if spec.convergent {
                        // Convergent: the nonce comes from the plaintext, so both paths agree
                        // byte for byte.
                        proptest::prop_assert_eq!(&in_place, &ct);
                    }
                    let pt = p.decrypt(context, &in_place, &aad).unwrap();
                    proptest::prop_assert_eq!(pt.expose(), data.as_slice());
                }
            }
        }
    }

    /// A plaintext decoded into its sealing buffer is what the general decoder reads, for
    /// every input the fast decoder refuses too (Go's non-canonical trailing bits, line breaks,
    /// malformed text), with the same error.
    #[test]
    fn framed_decoding_matches_the_general_decoder() {
        for text in
            ["", "aGVsbG8=", "aGVsbG9=", "aGVs\nbG8=", "aGVsbG8", "a===", "!!!!", "aGVsbG8=x", "YQ==", "YR=="]
        {
            let general = crypto::go_b64_secret(text).map(|v| v.expose().to_vec()).map_err(|e| e.to_string());
            let framed =
                crypto::go_b64_framed(text).map(|f| f.plaintext().to_vec()).map_err(|e| e.to_string());
            assert_eq!(framed, general, "{text:?}");
        }
    }

    /// One request's `Keyed` keeps the cipher of the version it used last: items alternating
    /// between versions (and, for derived keys, contexts) each get their own key, and a
    /// ciphertext relabelled with the other version fails even right after that version's
    /// cipher was used.
    #[test]
    fn a_request_keys_every_item_with_its_own_version_and_context() {
        let now = coffer_storage::clock::now();
        for (spec, context) in all_key_specs() {
            let mut p = TransitKey::create("k", &spec, now).unwrap();
            p.rotate_in_memory(now).unwrap();
            let other: &[u8] = if spec.derived { b"another context" } else { context };
            let mut keyed = Keyed::new(&p);
            let mut made = Vec::new();
            for (i, (ver, ctx)) in
                [(1, context), (2, other), (1, other), (2, context)].into_iter().enumerate()
            {
                let pt = format!("item {i}");
                made.push((keyed.encrypt(ver, ctx, pt.as_bytes(), b"").unwrap(), ctx, pt));
            }
            let mut keyed = Keyed::new(&p);
            for (ct, ctx, pt) in &made {
                assert_eq!(keyed.decrypt(ctx, ct, b"").unwrap().expose(), pt.as_bytes(), "{:?}", spec.kind);
                assert_eq!(p.decrypt(ctx, ct, b"").unwrap().expose(), pt.as_bytes());
                let relabelled = match ct.strip_prefix("vault:v1:") {
                    Some(rest) => format!("vault:v2:{rest}"),
                    None => ct.replacen("vault:v2:", "vault:v1:", 1),
                };
                assert!(
                    keyed.decrypt(ctx, &relabelled, b"").is_err(),
                    "{:?}: wrong version accepted",
                    spec.kind
                );
                if spec.derived {
                    let wrong: &[u8] = if *ctx == context { other } else { context };
                    assert!(
                        keyed.decrypt(wrong, ct, b"").is_err(),
                        "{:?}: wrong context accepted",
                        spec.kind
                    );
                }
            }
        }
    }

    /// Every single-bit flip of the payload of a ciphertext is rejected, for every AEAD type.
    #[test]
    fn every_bit_flip_fails() {
        let now = coffer_storage::clock::now();
        for (spec, context) in all_key_specs() {
            let p = TransitKey::create("k", &spec, now).unwrap();
            let ct = p.encrypt(0, context, b"thirty-two bytes of plaintext!!!", b"ad").unwrap();
            let payload = crypto::go_b64_decode(ct.strip_prefix("vault:v1:").unwrap()).unwrap();
            for i in 0..payload.len() {
                for bit in 0..8 {
                    let mut bad = payload.clone();
                    bad[i] ^= 1 << bit;
                    let tampered = format!("vault:v1:{}", crypto::b64(&bad));
                    assert!(
                        p.decrypt(context, &tampered, b"ad").is_err(),
                        "{:?} flip {i}/{bit} accepted",
                        spec.kind
                    );
                }
            }
            // Wrong context and wrong associated data fail too.
            if spec.derived {
                assert!(p.decrypt(b"other", &ct, b"ad").is_err());
            }
            assert!(p.decrypt(context, &ct, b"AD").is_err());
        }
    }

    /// 100,000 encryptions under one key version never repeat a nonce.
    #[test]
    fn no_repeated_nonce_in_1e5_encryptions() {
        let p =
            TransitKey::create("k", &opts(KeyType::Aes256Gcm96, false, false), coffer_storage::clock::now())
                .unwrap();
        let mut seen = std::collections::HashSet::with_capacity(100_000);
        for _ in 0..100_000 {
            let ct = p.encrypt(0, b"", b"same plaintext", b"").unwrap();
            let payload = crypto::go_b64_decode(&ct["vault:v1:".len()..]).unwrap();
            let nonce: [u8; 12] = payload[..12].try_into().unwrap();
            assert!(seen.insert(nonce), "nonce repeated");
        }
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn version_rules() {
        let now = coffer_storage::clock::now();
        let mut p = TransitKey::create("k", &opts(KeyType::Aes256Gcm96, false, false), now).unwrap();
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
