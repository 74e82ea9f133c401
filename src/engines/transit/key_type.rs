//! What a transit key is: its type (Vault's `keysutil.KeyType`, with the same numeric codes) and
//! what each type can do, and the hash algorithms of `hash`, `hmac`, `sign` and `verify`.

use hmac::{Mac, SimpleHmac};
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use sha3::{Sha3_224, Sha3_256, Sha3_384, Sha3_512};

/// The key types coffer's transit implements, with Vault's numeric codes (`keysutil.KeyType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Aes128Gcm96,
    Aes256Gcm96,
    ChaCha20Poly1305,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Ed25519,
    Hmac,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    XChaCha20Poly1305,
}

/// An elliptic curve of the ECDSA key types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    /// Bytes of a field element and of each of `r` and `s` in a JWS signature.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// Bits of the group order (Go's `hashToInt` truncates a digest to these).
    pub fn order_bits(self) -> usize {
        match self {
            Curve::P256 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }

    /// The curve's name in key reads (Go's `elliptic.Curve.Params().Name`) and in a JWK's `crv`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }
}

impl KeyType {
    /// From Vault's stored integer.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => KeyType::Aes256Gcm96,
            1 => KeyType::EcdsaP256,
            2 => KeyType::Ed25519,
            3 => KeyType::Rsa2048,
            4 => KeyType::Rsa4096,
            5 => KeyType::ChaCha20Poly1305,
            6 => KeyType::EcdsaP384,
            7 => KeyType::EcdsaP521,
            8 => KeyType::Aes128Gcm96,
            9 => KeyType::Rsa3072,
            10 => KeyType::Hmac,
            11 => KeyType::XChaCha20Poly1305,
            _ => return None,
        })
    }

    /// Vault's stored integer.
    pub fn code(self) -> i64 {
        match self {
            KeyType::Aes256Gcm96 => 0,
            KeyType::EcdsaP256 => 1,
            KeyType::Ed25519 => 2,
            KeyType::Rsa2048 => 3,
            KeyType::Rsa4096 => 4,
            KeyType::ChaCha20Poly1305 => 5,
            KeyType::EcdsaP384 => 6,
            KeyType::EcdsaP521 => 7,
            KeyType::Aes128Gcm96 => 8,
            KeyType::Rsa3072 => 9,
            KeyType::Hmac => 10,
            KeyType::XChaCha20Poly1305 => 11,
        }
    }

    /// From the API's `type` string.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "aes128-gcm96" => KeyType::Aes128Gcm96,
            "aes256-gcm96" => KeyType::Aes256Gcm96,
            "chacha20-poly1305" => KeyType::ChaCha20Poly1305,
            "xchacha20-poly1305" => KeyType::XChaCha20Poly1305,
            "ecdsa-p256" => KeyType::EcdsaP256,
            "ecdsa-p384" => KeyType::EcdsaP384,
            "ecdsa-p521" => KeyType::EcdsaP521,
            "ed25519" => KeyType::Ed25519,
            "hmac" => KeyType::Hmac,
            "rsa-2048" => KeyType::Rsa2048,
            "rsa-3072" => KeyType::Rsa3072,
            "rsa-4096" => KeyType::Rsa4096,
            _ => return None,
        })
    }

    /// The API's `type` string.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::XChaCha20Poly1305 => "xchacha20-poly1305",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::EcdsaP521 => "ecdsa-p521",
            KeyType::Ed25519 => "ed25519",
            KeyType::Hmac => "hmac",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    /// Symmetric AEAD types (encrypt, decrypt, associated data, convergence).
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            KeyType::Aes128Gcm96
                | KeyType::Aes256Gcm96
                | KeyType::ChaCha20Poly1305
                | KeyType::XChaCha20Poly1305
        )
    }

    /// The curve of an ECDSA type.
    pub fn curve(self) -> Option<Curve> {
        match self {
            KeyType::EcdsaP256 => Some(Curve::P256),
            KeyType::EcdsaP384 => Some(Curve::P384),
            KeyType::EcdsaP521 => Some(Curve::P521),
            _ => None,
        }
    }

    /// The modulus size of an RSA type, in bits.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    pub fn encryption_supported(self) -> bool {
        self.is_aead() || self.rsa_bits().is_some()
    }

    pub fn signing_supported(self) -> bool {
        self == KeyType::Ed25519 || self.curve().is_some() || self.rsa_bits().is_some()
    }

    /// Whether `sign`/`verify` hash the input first (ECDSA and RSA; Ed25519 signs the message).
    pub fn hashes_signature_input(self) -> bool {
        self.curve().is_some() || self.rsa_bits().is_some()
    }

    pub fn derivation_supported(self) -> bool {
        self.is_aead() || self == KeyType::Ed25519
    }

    /// Whether a key of this type may be imported from its public key alone.
    pub fn public_import_supported(self) -> bool {
        self == KeyType::Ed25519 || self.curve().is_some() || self.rsa_bits().is_some()
    }

    /// Length of the (non-derived) symmetric key.
    pub fn key_len(self) -> usize {
        match self {
            KeyType::Aes128Gcm96 => 16,
            _ => 32,
        }
    }

    /// Nonce length of an AEAD type.
    pub fn nonce_len(self) -> usize {
        match self {
            KeyType::XChaCha20Poly1305 => 24,
            _ => 12,
        }
    }

    /// Go's error text when the AEAD rejects a ciphertext.
    pub(super) fn open_error(self) -> &'static str {
        match self {
            KeyType::ChaCha20Poly1305 | KeyType::XChaCha20Poly1305 => {
                "chacha20poly1305: message authentication failed"
            }
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

    /// Digest length in bytes (0 for [`HashAlg::None`]).
    pub fn size(self) -> usize {
        match self {
            HashAlg::None => 0,
            HashAlg::Sha1 => 20,
            HashAlg::Sha2_224 | HashAlg::Sha3_224 => 28,
            HashAlg::Sha2_256 | HashAlg::Sha3_256 => 32,
            HashAlg::Sha2_384 | HashAlg::Sha3_384 => 48,
            HashAlg::Sha2_512 | HashAlg::Sha3_512 => 64,
        }
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
