//! The key material of one version ([`KeyEntry`]) per key type: generating it, checking a stored
//! or restored one, taking it from an imported key (PKCS#8 DER or a PEM public key, as Vault's
//! `parseFromKey`), and the public key in Vault's formats.
//!
//! Like Vault: an ECDSA version keeps its public key PEM in `public_key` (with Go's trailing
//! newline); an RSA version computes it; a version imported from its public key alone has no
//! private part and can verify but not sign.

use time::OffsetDateTime;

use coffer_storage::keys::SecretBytes;

use super::asym;
use super::bignum::{PublicInt, RsaKeyMaterial, RsaPublicParts, SecretInt};
use super::crypto::{self, Curve, KeyType};
use super::error::KeyOpError;
use super::key::{KeyEntry, KeyRecordError};
use crate::util::timefmt::rfc3339_nano;

/// PEM with 64-column lines (Go's `pem.EncodeToMemory`), ending in a newline.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = crypto::b64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside a PEM block (the first block; its label is not checked).
pub fn pem_der(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN ")?;
    let body = &text[start..];
    let body = &body[body.find('\n')? + 1..];
    let end = body.find("-----END ")?;
    let b64: String = body[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    crypto::go_b64_decode(&b64).ok()
}

impl KeyEntry {
    /// A new version's material (Vault's `RotateInMemory`, one entry).
    pub fn generate(kt: KeyType, key_size: i64, now: OffsetDateTime) -> Result<KeyEntry, KeyOpError> {
        let rng = |n: usize| SecretBytes::random(n).map_err(KeyOpError::internal);
        let mut entry = KeyEntry::empty();
        entry.time = rfc3339_nano(now);
        entry.creation_time = now.unix_timestamp();
        entry.hmac_key = Some(rng(32)?);
        match kt {
            KeyType::Aes128Gcm96
            | KeyType::Aes256Gcm96
            | KeyType::ChaCha20Poly1305
            | KeyType::XChaCha20Poly1305 => {
                entry.key = Some(rng(kt.key_len())?);
            }
            KeyType::Hmac => {
                if !(32..=512).contains(&key_size) {
                    return Err(KeyOpError::internal(
                        "invalid key size for HMAC key, must be between 32 and 512 bytes",
                    ));
                }
                let k = rng(key_size as usize)?;
                entry.hmac_key = Some(k.duplicate());
                entry.key = Some(k);
            }
            KeyType::Ed25519 => {
                let (full, public) = crypto::ed25519_generate()?;
                entry.key = Some(full);
                entry.public_key = crypto::b64(&public);
            }
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let curve = ec_curve(kt)?;
                let pair = asym::ec_generate(curve)?;
                entry.set_ec(curve, Some(pair.d), pair.x, pair.y)?;
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let bits = kt.rsa_bits().unwrap_or(2048);
                entry.rsa_key = Some(RsaKeyMaterial::from_key(&asym::rsa_generate(bits)?)?);
            }
        }
        Ok(entry)
    }

    /// Sets ECDSA material and the public key PEM Vault keeps beside it.
    fn set_ec(
        &mut self,
        curve: Curve,
        d: Option<SecretBytes>,
        x: Vec<u8>,
        y: Vec<u8>,
    ) -> Result<(), KeyOpError> {
        let der = asym::ec_spki_der(curve, &x, &y)?;
        self.public_key = pem("PUBLIC KEY", &der);
        self.ec_x = Some(PublicInt(trim(x)));
        self.ec_y = Some(PublicInt(trim(y)));
        self.ec_d = d.map(|d| {
            let zeros = d.expose().iter().take_while(|b| **b == 0).count();
            SecretInt(SecretBytes::from_slice(&d.expose()[zeros..]))
        });
        Ok(())
    }

    /// Whether the version lacks its private part (Vault's `IsPrivateKeyMissing`).
    pub fn private_missing(&self) -> bool {
        self.rsa_key.is_none() && self.ec_d.is_none() && self.key.as_ref().is_none_or(|k| k.is_empty())
    }

    /// The RSA public key (from the private key when there is one).
    pub fn rsa_public(&self) -> Result<rsa::RsaPublicKey, KeyOpError> {
        if let Some(k) = &self.rsa_key {
            return Ok(k.key()?.to_public_key());
        }
        let public = self.rsa_public_key.as_ref().ok_or_else(|| KeyOpError::internal("missing RSA key"))?;
        Ok(public.key()?)
    }

    /// The ECDSA public point `(x, y)`.
    pub fn ec_point(&self) -> Result<(&[u8], &[u8]), KeyOpError> {
        match (&self.ec_x, &self.ec_y) {
            (Some(x), Some(y)) => Ok((&x.0, &y.0)),
            _ => Err(KeyOpError::internal("missing EC public key")),
        }
    }

    /// The public key as SubjectPublicKeyInfo DER (ECDSA, RSA, Ed25519).
    pub fn public_der(&self, kt: KeyType) -> Result<Vec<u8>, KeyOpError> {
        match kt {
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let (x, y) = self.ec_point()?;
                Ok(asym::ec_spki_der(ec_curve(kt)?, x, y)?)
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                Ok(asym::rsa_spki_der(&self.rsa_public()?)?)
            }
            KeyType::Ed25519 => {
                let raw = crypto::go_b64_decode(self.public_key.trim()).map_err(KeyOpError::internal)?;
                let mut der = hex::decode("302a300506032b6570032100").unwrap_or_default();
                der.extend_from_slice(&raw);
                Ok(der)
            }
            other => Err(KeyOpError::user(format!("key type {other} has no public key"))),
        }
    }

    /// The public key in a key read: PEM for ECDSA (as stored) and RSA, base64 for Ed25519.
    pub fn public_key_text(&self, kt: KeyType) -> Result<String, KeyOpError> {
        match kt {
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                Ok(pem("PUBLIC KEY", &self.public_der(kt)?))
            }
            _ => Ok(self.public_key.clone()),
        }
    }

    /// Checks a stored or restored version's material for the key type.
    pub(super) fn check_material(&self, kt: KeyType, v: u64) -> Result<(), KeyRecordError> {
        let len = self.key.as_ref().map(SecretBytes::len);
        let bad = |why: &str| Err(KeyRecordError::Material(v, why.to_owned()));
        match kt {
            KeyType::Aes128Gcm96
            | KeyType::Aes256Gcm96
            | KeyType::ChaCha20Poly1305
            | KeyType::XChaCha20Poly1305 => {
                if len != Some(kt.key_len()) {
                    return Err(KeyRecordError::KeyLength(v));
                }
            }
            KeyType::Ed25519 => {
                if len.is_some_and(|n| n != 64) {
                    return Err(KeyRecordError::Ed25519KeyLength(v));
                }
                if len.is_none() && self.public_key.is_empty() {
                    return Err(KeyRecordError::MissingKey(v));
                }
            }
            KeyType::Hmac => {
                if len.unwrap_or(0) == 0 {
                    return Err(KeyRecordError::MissingKey(v));
                }
            }
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let Ok((x, y)) = self.ec_point() else { return bad("no EC public key") };
                let curve = ec_curve(kt).map_err(|e| KeyRecordError::Material(v, e.to_string()))?;
                let d = self.ec_d.as_ref().map(|d| d.0.expose());
                if asym::ec_check(curve, d, x, y).is_err() {
                    return bad("not a key pair of the curve");
                }
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let Ok(public) = self.rsa_public() else { return bad("no RSA key") };
                let bytes = kt.rsa_bits().unwrap_or(0) / 8;
                if rsa::traits::PublicKeyParts::size(&public) != bytes {
                    return bad("RSA key of the wrong size");
                }
            }
        }
        Ok(())
    }

    /// A version from imported material: raw bytes for symmetric types, PKCS#8 DER for
    /// asymmetric ones, or (`private = false`) a PEM public key (Vault's `ImportPublicOrPrivate`).
    pub fn from_import(
        kt: KeyType,
        material: &[u8],
        private: bool,
        now: OffsetDateTime,
    ) -> Result<KeyEntry, KeyOpError> {
        let mut entry = KeyEntry::empty();
        entry.time = rfc3339_nano(now);
        entry.creation_time = now.unix_timestamp();
        if kt != KeyType::Hmac {
            entry.hmac_key = Some(SecretBytes::random(32).map_err(KeyOpError::internal)?);
        }
        let n = material.len();
        if kt.is_aead() || kt == KeyType::Hmac {
            let ok = if kt == KeyType::Hmac { (32..=512).contains(&n) } else { n == kt.key_len() };
            if !ok {
                return Err(KeyOpError::user(format!("invalid key size {n} bytes for key type {kt}")));
            }
            entry.key = Some(SecretBytes::from_slice(material));
            if kt == KeyType::Hmac {
                entry.hmac_key = entry.key.as_ref().map(SecretBytes::duplicate);
            }
            return Ok(entry);
        }
        if private {
            entry.set_private(kt, material)?;
        } else {
            let text = std::str::from_utf8(material).ok();
            let der = text
                .and_then(pem_der)
                .ok_or_else(|| KeyOpError::user("error parsing public key: not in PEM format"))?;
            entry.set_public(kt, &der)?;
        }
        Ok(entry)
    }

    /// Sets the private material (PKCS#8 DER) of an asymmetric type.
    pub fn set_private(&mut self, kt: KeyType, der: &[u8]) -> Result<(), KeyOpError> {
        match kt {
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let curve = ec_curve(kt)?;
                let pair = asym::ec_from_pkcs8(curve, der)?;
                self.set_ec(curve, Some(pair.d), pair.x, pair.y)
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let key = asym::rsa_from_pkcs8(der)?;
                check_rsa_size(kt, &key.to_public_key())?;
                self.rsa_public_key = Some(RsaPublicParts::from_key(&key.to_public_key()));
                self.rsa_key = Some(RsaKeyMaterial::from_key(&key)?);
                Ok(())
            }
            KeyType::Ed25519 => {
                use ed25519_dalek::pkcs8::DecodePrivateKey;
                let sk = ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .map_err(|_| KeyOpError::from(crypto::CryptoError::WrongImportedKey))?;
                let mut full = SecretBytes::zeroed(64);
                full.expose_mut()[..32].copy_from_slice(sk.as_bytes());
                full.expose_mut()[32..].copy_from_slice(&sk.verifying_key().to_bytes());
                self.public_key = crypto::b64(&full.expose()[32..]);
                self.key = Some(full);
                Ok(())
            }
            other => Err(KeyOpError::user(format!("invalid key type: expected {other}"))),
        }
    }

    /// Sets the public key (SubjectPublicKeyInfo DER) of an asymmetric type.
    fn set_public(&mut self, kt: KeyType, der: &[u8]) -> Result<(), KeyOpError> {
        match kt {
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let curve = ec_curve(kt)?;
                let (x, y) = asym::ec_from_spki(curve, der)?;
                self.set_ec(curve, None, x, y)
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let key = asym::rsa_public_from_spki(der)?;
                check_rsa_size(kt, &key)?;
                self.rsa_public_key = Some(RsaPublicParts::from_key(&key));
                Ok(())
            }
            KeyType::Ed25519 => {
                use ed25519_dalek::pkcs8::DecodePublicKey;
                let pk = ed25519_dalek::VerifyingKey::from_public_key_der(der)
                    .map_err(|_| KeyOpError::from(crypto::CryptoError::WrongImportedKey))?;
                self.public_key = crypto::b64(&pk.to_bytes());
                Ok(())
            }
            other => {
                Err(KeyOpError::user(format!("provided type {other} does not support public_key import")))
            }
        }
    }
}

/// The curve of an ECDSA key type.
pub fn ec_curve(kt: KeyType) -> Result<Curve, KeyOpError> {
    kt.curve().ok_or_else(|| KeyOpError::internal(format!("key type {kt} is not ECDSA")))
}

/// Vault's size check of an imported RSA key.
fn check_rsa_size(kt: KeyType, key: &rsa::RsaPublicKey) -> Result<(), KeyOpError> {
    let want = kt.rsa_bits().unwrap_or(0) / 8;
    let got = rsa::traits::PublicKeyParts::size(key);
    if got != want {
        return Err(KeyOpError::user(format!("invalid key size: expected {want} bytes, got {got} bytes")));
    }
    Ok(())
}

/// Big-endian bytes without leading zeros (Go's `big.Int` form).
fn trim(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}
