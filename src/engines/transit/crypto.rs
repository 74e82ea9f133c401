//! The cryptography of transit, per key type, byte-compatible with Vault's `keysutil`.
//!
//! * AES-GCM (128/256) and ChaCha20-Poly1305: 12-byte nonce, 16-byte tag, payload
//!   `nonce ‖ ciphertext ‖ tag`.
//! * Derivation (`hkdf_sha256`): HKDF-SHA256, empty salt, info = context; output length = the key
//!   length, or key length + 32 for convergent version 3 (the extra bytes key the nonce HMAC).
//! * Ed25519: the stored key is Go's 64-byte private key (seed ‖ public); a derived key uses the
//!   first 32 bytes of HKDF(stored 64 bytes, context) as its seed.
//! * Base64 decoding follows Go's `encoding/base64.StdEncoding` exactly (errors included), since
//!   clients see its error texts.
//!
//! Every buffer holding key material or plaintext is zeroized when dropped.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Mac, SimpleHmac};
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use sha3::{Sha3_224, Sha3_256, Sha3_384, Sha3_512};
use zeroize::Zeroizing;

use coffer_storage::keys::SecretBytes;

/// Nonce size of every AEAD transit supports.
pub const NONCE_LEN: usize = 12;

/// A failed primitive. Where clients see the text (a rejected ciphertext, a failed derivation),
/// it is Go's; the engine decides in one place (`super::error`) whose fault each kind is.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The AEAD rejected a ciphertext: tampered, or the wrong key, context or associated data.
    #[error("{}", .0.open_error())]
    AuthenticationFailed(KeyType),
    /// A payload shorter than its nonce.
    #[error("invalid ciphertext length")]
    CiphertextTooShort,
    /// HKDF cannot produce that many bytes.
    #[error("unable to read enough derived bytes, needed {needed}")]
    DerivationTooLong { needed: usize },
    /// The AEAD refused to encrypt (the input is beyond its limits).
    #[error("encryption failed")]
    EncryptionFailed,
    /// An Ed25519 key shorter than its 32-byte seed.
    #[error("invalid ed25519 key length")]
    InvalidEd25519Key,
    /// A key of the wrong length for its cipher (the `crypto-common` text).
    #[error("Invalid Length")]
    InvalidKeyLength,
    /// The operating system's random generator failed.
    #[error(transparent)]
    Random(#[from] rand::Error),
    /// An AEAD operation asked of a key type that has none.
    #[error("unsupported key type {0}")]
    UnsupportedKeyType(KeyType),
}

/// Text that is not Go's standard base64; the text is Go's `CorruptInputError`.
#[derive(Debug, thiserror::Error)]
#[error("illegal base64 data at input byte {at}")]
pub struct Base64Error {
    /// Offset of the first offending byte.
    pub at: usize,
}

/// The key types coffer's transit implements, with Vault's numeric codes (`keysutil.KeyType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Aes128Gcm96,
    Aes256Gcm96,
    ChaCha20Poly1305,
    Ed25519,
    Hmac,
}

impl KeyType {
    /// From Vault's stored integer.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => KeyType::Aes256Gcm96,
            2 => KeyType::Ed25519,
            5 => KeyType::ChaCha20Poly1305,
            8 => KeyType::Aes128Gcm96,
            10 => KeyType::Hmac,
            _ => return None,
        })
    }

    /// Vault's stored integer.
    pub fn code(self) -> i64 {
        match self {
            KeyType::Aes256Gcm96 => 0,
            KeyType::Ed25519 => 2,
            KeyType::ChaCha20Poly1305 => 5,
            KeyType::Aes128Gcm96 => 8,
            KeyType::Hmac => 10,
        }
    }

    /// From the API's `type` string.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "aes128-gcm96" => KeyType::Aes128Gcm96,
            "aes256-gcm96" => KeyType::Aes256Gcm96,
            "chacha20-poly1305" => KeyType::ChaCha20Poly1305,
            "ed25519" => KeyType::Ed25519,
            "hmac" => KeyType::Hmac,
            _ => return None,
        })
    }

    /// The API's `type` string.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::Ed25519 => "ed25519",
            KeyType::Hmac => "hmac",
        }
    }

    /// Symmetric AEAD types (encrypt, decrypt, associated data, convergence).
    pub fn is_aead(self) -> bool {
        matches!(self, KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305)
    }

    pub fn encryption_supported(self) -> bool {
        self.is_aead()
    }

    pub fn signing_supported(self) -> bool {
        self == KeyType::Ed25519
    }

    pub fn derivation_supported(self) -> bool {
        self.is_aead() || self == KeyType::Ed25519
    }

    /// Length of the (non-derived) encryption key.
    pub fn key_len(self) -> usize {
        match self {
            KeyType::Aes128Gcm96 => 16,
            _ => 32,
        }
    }

    /// Go's error text when the AEAD rejects a ciphertext.
    fn open_error(self) -> &'static str {
        match self {
            KeyType::ChaCha20Poly1305 => "chacha20poly1305: message authentication failed",
            _ => "cipher: message authentication failed",
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Hash algorithms of `hash`, `hmac`, `sign` and `verify` (Vault's `HashTypeMap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    None,
    Sha1,
    Sha2_224,
    Sha2_256,
    Sha2_384,
    Sha2_512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl HashAlg {
    /// From the API name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => HashAlg::None,
            "sha1" => HashAlg::Sha1,
            "sha2-224" => HashAlg::Sha2_224,
            "sha2-256" => HashAlg::Sha2_256,
            "sha2-384" => HashAlg::Sha2_384,
            "sha2-512" => HashAlg::Sha2_512,
            "sha3-224" => HashAlg::Sha3_224,
            "sha3-256" => HashAlg::Sha3_256,
            "sha3-384" => HashAlg::Sha3_384,
            "sha3-512" => HashAlg::Sha3_512,
            _ => return None,
        })
    }

    /// The digest of `data`; `None` for [`HashAlg::None`].
    pub fn digest(self, data: &[u8]) -> Option<Vec<u8>> {
        Some(match self {
            HashAlg::None => return None,
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha2_224 => Sha224::digest(data).to_vec(),
            HashAlg::Sha2_256 => Sha256::digest(data).to_vec(),
            HashAlg::Sha2_384 => Sha384::digest(data).to_vec(),
            HashAlg::Sha2_512 => Sha512::digest(data).to_vec(),
            HashAlg::Sha3_224 => Sha3_224::digest(data).to_vec(),
            HashAlg::Sha3_256 => Sha3_256::digest(data).to_vec(),
            HashAlg::Sha3_384 => Sha3_384::digest(data).to_vec(),
            HashAlg::Sha3_512 => Sha3_512::digest(data).to_vec(),
        })
    }

    /// HMAC of `data` under `key`; `None` for [`HashAlg::None`].
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        fn mac<D: Digest + hmac::digest::core_api::BlockSizeUser>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // SimpleHmac accepts keys of any length (long keys are hashed, as RFC 2104 says).
            let mut m = match <SimpleHmac<D> as Mac>::new_from_slice(key) {
                Ok(m) => m,
                Err(_) => return Vec::new(),
            };
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Some(match self {
            HashAlg::None => return None,
            HashAlg::Sha1 => mac::<sha1::Sha1>(key, data),
            HashAlg::Sha2_224 => mac::<Sha224>(key, data),
            HashAlg::Sha2_256 => mac::<Sha256>(key, data),
            HashAlg::Sha2_384 => mac::<Sha384>(key, data),
            HashAlg::Sha2_512 => mac::<Sha512>(key, data),
            HashAlg::Sha3_224 => mac::<Sha3_224>(key, data),
            HashAlg::Sha3_256 => mac::<Sha3_256>(key, data),
            HashAlg::Sha3_384 => mac::<Sha3_384>(key, data),
            HashAlg::Sha3_512 => mac::<Sha3_512>(key, data),
        })
    }
}

/// HKDF-SHA256 with an empty salt and `info = context`, `len` bytes (Vault's `hkdf_sha256`).
pub fn hkdf_sha256(ikm: &[u8], context: &[u8], len: usize) -> Result<SecretBytes, CryptoError> {
    let hk = hkdf::Hkdf::<Sha256>::new(None, ikm);
    let mut out = SecretBytes::zeroed(len);
    hk.expand(context, out.expose_mut()).map_err(|_| CryptoError::DerivationTooLong { needed: len })?;
    Ok(out)
}

/// Vault's legacy KDF (`hmac-sha256-counter`): NIST SP 800-108 counter mode, 256-bit output.
pub fn counter_kdf(key: &[u8], context: &[u8]) -> SecretBytes {
    let mut input = Zeroizing::new(Vec::with_capacity(context.len() + 8));
    input.extend_from_slice(&0u32.to_be_bytes());
    input.extend_from_slice(context);
    input.extend_from_slice(&256u32.to_be_bytes());
    let out = HashAlg::Sha2_256.hmac(key, &input).unwrap_or_default();
    let s = SecretBytes::from_slice(&out);
    let mut out = out;
    zeroize::Zeroize::zeroize(&mut out);
    s
}

/// The convergent-encryption nonce: the first 12 bytes of HMAC-SHA256(nonce key, plaintext).
pub fn convergent_nonce(nonce_key: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
    let mac = HashAlg::Sha2_256.hmac(nonce_key, plaintext).unwrap_or_default();
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(&mac[..NONCE_LEN]);
    n
}

/// A fresh random nonce from the operating system's CSPRNG.
pub fn random_nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    let mut n = [0u8; NONCE_LEN];
    rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut n)?;
    Ok(n)
}

/// The keyed AEAD of a key type.
enum Cipher {
    Aes128Gcm(Aes128Gcm),
    Aes256Gcm(Aes256Gcm),
    ChaCha20Poly1305(ChaCha20Poly1305),
}

impl Cipher {
    fn new(kt: KeyType, key: &[u8]) -> Result<Self, CryptoError> {
        let wrong_length = |_| CryptoError::InvalidKeyLength;
        Ok(match kt {
            KeyType::Aes128Gcm96 => Cipher::Aes128Gcm(Aes128Gcm::new_from_slice(key).map_err(wrong_length)?),
            KeyType::Aes256Gcm96 => Cipher::Aes256Gcm(Aes256Gcm::new_from_slice(key).map_err(wrong_length)?),
            KeyType::ChaCha20Poly1305 => {
                Cipher::ChaCha20Poly1305(ChaCha20Poly1305::new_from_slice(key).map_err(wrong_length)?)
            }
            other => return Err(CryptoError::UnsupportedKeyType(other)),
        })
    }

    fn encrypt(&self, nonce: &[u8], payload: Payload<'_, '_>) -> aes_gcm::aead::Result<Vec<u8>> {
        match self {
            Cipher::Aes128Gcm(c) => c.encrypt(nonce.into(), payload),
            Cipher::Aes256Gcm(c) => c.encrypt(nonce.into(), payload),
            Cipher::ChaCha20Poly1305(c) => c.encrypt(nonce.into(), payload),
        }
    }

    fn decrypt(&self, nonce: &[u8], payload: Payload<'_, '_>) -> aes_gcm::aead::Result<Vec<u8>> {
        match self {
            Cipher::Aes128Gcm(c) => c.decrypt(nonce.into(), payload),
            Cipher::Aes256Gcm(c) => c.decrypt(nonce.into(), payload),
            Cipher::ChaCha20Poly1305(c) => c.decrypt(nonce.into(), payload),
        }
    }
}

/// AEAD-encrypts; returns `ciphertext ‖ tag` (the caller prepends the nonce).
pub fn seal(
    kt: KeyType,
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let cipher = Cipher::new(kt, key)?;
    cipher.encrypt(nonce, Payload { msg: plaintext, aad }).map_err(|_| CryptoError::EncryptionFailed)
}

/// AEAD-decrypts `nonce ‖ ciphertext ‖ tag`.
pub fn open(kt: KeyType, key: &[u8], data: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if data.len() < NONCE_LEN {
        return Err(CryptoError::CiphertextTooShort);
    }
    let (nonce, ct) = data.split_at(NONCE_LEN);
    let cipher = Cipher::new(kt, key)?;
    let plaintext = cipher.decrypt(nonce, Payload { msg: ct, aad });
    plaintext.map(Zeroizing::new).map_err(|_| CryptoError::AuthenticationFailed(kt))
}

/// An Ed25519 signing key from a 32-byte seed (the first 32 bytes of `bytes`).
pub fn ed25519_signing_key(bytes: &[u8]) -> Result<ed25519_dalek::SigningKey, CryptoError> {
    let seed: [u8; 32] =
        bytes.get(..32).and_then(|s| s.try_into().ok()).ok_or(CryptoError::InvalidEd25519Key)?;
    let seed = Zeroizing::new(seed);
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// A new Ed25519 key in Go's 64-byte form (seed ‖ public key) and its public key.
pub fn ed25519_generate() -> Result<(SecretBytes, [u8; 32]), CryptoError> {
    let seed = SecretBytes::random(32)?;
    let sk = ed25519_signing_key(seed.expose())?;
    let public = sk.verifying_key().to_bytes();
    let mut full = SecretBytes::zeroed(64);
    full.expose_mut()[..32].copy_from_slice(seed.expose());
    full.expose_mut()[32..].copy_from_slice(&public);
    Ok((full, public))
}

/// Verifies an Ed25519 signature (false on any malformed input, as Go's `ed25519.Verify`).
pub fn ed25519_verify(public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(pk) = <[u8; 32]>::try_from(public) else { return false };
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else { return false };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else { return false };
    vk.verify_strict(msg, &sig).is_ok()
}

/// Standard base64 with padding.
pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Go's `base64.StdEncoding.DecodeString`, with its exact error texts
/// (`illegal base64 data at input byte N`). CR and LF are skipped, as Go does.
pub fn go_b64_decode(s: &str) -> Result<Vec<u8>, Base64Error> {
    fn val(c: u8) -> Option<u8> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    }
    let corrupt = |at: usize| Base64Error { at };
    let src = s.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0usize;
    while si < src.len() {
        let mut dbuf = [0u8; 4];
        let mut dlen = 4usize;
        let mut j = 0usize;
        let mut trailing_err = None;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(corrupt(si - j));
            }
            let c = src[si];
            si += 1;
            if let Some(v) = val(c) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' {
                return Err(corrupt(si - 1));
            }
            match j {
                0 | 1 => return Err(corrupt(si - 1)),
                2 => {
                    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(corrupt(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(corrupt(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                si += 1;
            }
            if si < src.len() {
                trailing_err = Some(corrupt(si));
            }
            dlen = j;
            break;
        }
        let v = (u32::from(dbuf[0]) << 18)
            | (u32::from(dbuf[1]) << 12)
            | (u32::from(dbuf[2]) << 6)
            | u32::from(dbuf[3]);
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
        if let Some(e) = trailing_err {
            zeroize::Zeroize::zeroize(&mut out);
            return Err(e);
        }
    }
    Ok(out)
}

/// [`go_b64_decode`] into a zeroizing buffer (plaintexts, contexts).
pub fn go_b64_secret(s: &str) -> Result<Zeroizing<Vec<u8>>, Base64Error> {
    go_b64_decode(s).map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_base64_errors_match_go() {
        assert_eq!(go_b64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(go_b64_decode("").unwrap(), b"");
        assert_eq!(go_b64_decode("!!").unwrap_err().to_string(), "illegal base64 data at input byte 0");
        assert_eq!(go_b64_decode("aGVsbG8").unwrap_err().to_string(), "illegal base64 data at input byte 4");
        assert_eq!(go_b64_decode("aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(
            go_b64_decode("aGVsbG8=x").unwrap_err().to_string(),
            "illegal base64 data at input byte 8"
        );
        assert_eq!(go_b64_decode("a===").unwrap_err().to_string(), "illegal base64 data at input byte 1");
        assert_eq!(go_b64_decode("aG=").unwrap_err().to_string(), "illegal base64 data at input byte 3");
        assert_eq!(go_b64_decode("aG=x").unwrap_err().to_string(), "illegal base64 data at input byte 2");
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        for kt in [KeyType::Aes128Gcm96, KeyType::Aes256Gcm96, KeyType::ChaCha20Poly1305] {
            let key = vec![7u8; kt.key_len()];
            let n = random_nonce().unwrap();
            let ct = seal(kt, &key, &n, b"data", b"ad").unwrap();
            let mut full = n.to_vec();
            full.extend_from_slice(&ct);
            assert_eq!(open(kt, &key, &full, b"ad").unwrap().as_slice(), b"data");
            assert_eq!(open(kt, &key, &full, b"").unwrap_err().to_string(), kt.open_error());
            assert_eq!(
                open(kt, &key, &full[..5], b"ad").unwrap_err().to_string(),
                "invalid ciphertext length"
            );
        }
    }

    #[test]
    fn hkdf_is_prefix_stable() {
        let a = hkdf_sha256(&[1; 32], b"ctx", 32).unwrap();
        let b = hkdf_sha256(&[1; 32], b"ctx", 64).unwrap();
        assert_eq!(a.expose(), &b.expose()[..32]);
    }

    #[test]
    fn ed25519_sign_verify() {
        use ed25519_dalek::Signer;
        let (full, public) = ed25519_generate().unwrap();
        assert_eq!(&full.expose()[32..], &public);
        let sk = ed25519_signing_key(full.expose()).unwrap();
        let sig = sk.sign(b"msg").to_bytes();
        assert!(ed25519_verify(&public, b"msg", &sig));
        assert!(!ed25519_verify(&public, b"msh", &sig));
        assert!(!ed25519_verify(&public, b"msg", &sig[..63]));
    }
}
