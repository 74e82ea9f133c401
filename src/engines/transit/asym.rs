//! ECDSA and RSA primitives of transit, byte-compatible with Go's `crypto/ecdsa` and `crypto/rsa`
//! as Vault's `keysutil` uses them (RustCrypto underneath: `p256`, `p384`, `p521`, `rsa`).
//!
//! * ECDSA signs a digest that Go's `hashToInt` would see: truncated to the group order's bit
//!   length, left-padded to the field size (RustCrypto refuses digests shorter than half the field,
//!   which Go accepts: SHA-256 with P-521 is Vault's default). Signatures are ASN.1 DER or JWS
//!   `r ‖ s` (fixed width).
//! * RSA signs PKCS#1 v1.5 (with or without a DigestInfo prefix) or PSS with Go's salt-length
//!   rules; `auto` on verify detects the salt length from the encoded message, as Go does.
//!   Private-key operations are blinded. Encryption is OAEP with SHA-256 and an empty label.
//! * Private keys exist only for the length of an operation as RustCrypto types (which zeroize
//!   on drop); at rest they are [`SecretBytes`] (the EC scalar, the RSA key as PKCS#1 DER).

use ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use rand::rngs::OsRng;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use zeroize::Zeroizing;

use coffer_storage::keys::SecretBytes;

use super::crypto::CryptoError;
use super::key_type::{Curve, HashAlg};

/// Runs `$body` with `$c` naming the curve's crate and `$C` its curve type.
macro_rules! on_curve {
    ($curve:expr, $c:ident, $C:ident => $body:expr) => {
        match $curve {
            Curve::P256 => {
                use ::p256 as $c;
                #[allow(dead_code)]
                type $C = ::p256::NistP256;
                $body
            }
            Curve::P384 => {
                use ::p384 as $c;
                #[allow(dead_code)]
                type $C = ::p384::NistP384;
                $body
            }
            Curve::P521 => {
                use ::p521 as $c;
                #[allow(dead_code)]
                type $C = ::p521::NistP521;
                $body
            }
        }
    };
}

/// Runs `$body` with `$D` the digest type of a hash algorithm (`$none` for [`HashAlg::None`]).
macro_rules! with_digest {
    ($hash:expr, $D:ident => $body:expr, $none:expr) => {
        match $hash {
            HashAlg::None => $none,
            HashAlg::Sha1 => {
                type $D = sha1::Sha1;
                $body
            }
            HashAlg::Sha2_224 => {
                type $D = sha2::Sha224;
                $body
            }
            HashAlg::Sha2_256 => {
                type $D = sha2::Sha256;
                $body
            }
            HashAlg::Sha2_384 => {
                type $D = sha2::Sha384;
                $body
            }
            HashAlg::Sha2_512 => {
                type $D = sha2::Sha512;
                $body
            }
            HashAlg::Sha3_224 => {
                type $D = sha3::Sha3_224;
                $body
            }
            HashAlg::Sha3_256 => {
                type $D = sha3::Sha3_256;
                $body
            }
            HashAlg::Sha3_384 => {
                type $D = sha3::Sha3_384;
                $body
            }
            HashAlg::Sha3_512 => {
                type $D = sha3::Sha3_512;
                $body
            }
        }
    };
}

/// A new EC key: the secret scalar and the public point's affine coordinates (fixed width).
pub struct EcKeyPair {
    pub d: SecretBytes,
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

/// `bytes` (big-endian, minimal or shorter) left-padded to `len`; `None` when longer.
pub fn left_pad(bytes: &[u8], len: usize) -> Option<Zeroizing<Vec<u8>>> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = &bytes[start..];
    if significant.len() > len {
        return None;
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    out[len - significant.len()..].copy_from_slice(significant);
    Some(out)
}

/// The uncompressed SEC1 point `04 ‖ x ‖ y`.
fn sec1_point(curve: Curve, x: &[u8], y: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let n = curve.field_len();
    let (x, y) = (left_pad(x, n), left_pad(y, n));
    let (Some(x), Some(y)) = (x, y) else { return Err(CryptoError::InvalidEcKey) };
    let mut p = Vec::with_capacity(1 + 2 * n);
    p.push(4);
    p.extend_from_slice(&x);
    p.extend_from_slice(&y);
    Ok(p)
}

/// Go's `hashToInt` as bytes RustCrypto takes unchanged: the digest truncated to the order's
/// byte length, shifted right by the excess bits, left-padded to the field size.
fn go_hash_to_field(curve: Curve, digest: &[u8]) -> Vec<u8> {
    let order_bits = curve.order_bits();
    let order_bytes = order_bits.div_ceil(8);
    let mut h = digest[..digest.len().min(order_bytes)].to_vec();
    let excess = (h.len() * 8).saturating_sub(order_bits);
    if excess > 0 {
        let mut carry = 0u8;
        for b in h.iter_mut() {
            let next = *b << (8 - excess);
            *b = (*b >> excess) | carry;
            carry = next;
        }
    }
    let n = curve.field_len();
    let mut out = vec![0u8; n];
    out[n - h.len()..].copy_from_slice(&h);
    out
}

/// A fresh EC key pair.
pub fn ec_generate(curve: Curve) -> Result<EcKeyPair, CryptoError> {
    on_curve!(curve, c, C => {
        let sk = c::SecretKey::random(&mut OsRng);
        ec_pair(curve, &sk.to_bytes(), &sk.public_key().to_sec1_bytes())
    })
}

/// A key pair from the scalar and the uncompressed SEC1 public point.
fn ec_pair(curve: Curve, d: &[u8], point: &[u8]) -> Result<EcKeyPair, CryptoError> {
    let n = curve.field_len();
    if point.len() != 1 + 2 * n {
        return Err(CryptoError::InvalidEcKey);
    }
    Ok(EcKeyPair { d: SecretBytes::from_slice(d), x: point[1..=n].to_vec(), y: point[n + 1..].to_vec() })
}

/// Checks that `(x, y)` is a point of the curve (and, with `d`, that it is `d`'s public point).
pub fn ec_check(curve: Curve, d: Option<&[u8]>, x: &[u8], y: &[u8]) -> Result<(), CryptoError> {
    let point = sec1_point(curve, x, y)?;
    on_curve!(curve, c, C => {
        let public = c::PublicKey::from_sec1_bytes(&point).map_err(|_| CryptoError::InvalidEcKey)?;
        if let Some(d) = d {
            let d = left_pad(d, curve.field_len()).ok_or(CryptoError::InvalidEcKey)?;
            let sk = c::SecretKey::from_slice(&d).map_err(|_| CryptoError::InvalidEcKey)?;
            if sk.public_key() != public {
                return Err(CryptoError::InvalidEcKey);
            }
        }
        Ok(())
    })
}

/// Signs `digest`; ASN.1 DER, or JWS `r ‖ s` when `jws`.
pub fn ec_sign(curve: Curve, d: &[u8], digest: &[u8], jws: bool) -> Result<Vec<u8>, CryptoError> {
    let d = left_pad(d, curve.field_len()).ok_or(CryptoError::InvalidEcKey)?;
    let prehash = go_hash_to_field(curve, digest);
    on_curve!(curve, c, C => {
        let sk = c::ecdsa::SigningKey::from_slice(&d).map_err(|_| CryptoError::InvalidEcKey)?;
        let sig: c::ecdsa::Signature = sk.sign_prehash(&prehash).map_err(|_| CryptoError::SigningFailed)?;
        Ok(if jws { sig.to_bytes().to_vec() } else { sig.to_der().as_bytes().to_vec() })
    })
}

/// Verifies a signature of `digest`. A DER signature that does not parse is the caller's error;
/// anything else that does not verify is `false`, as Go's `ecdsa.Verify` answers.
pub fn ec_verify(
    curve: Curve,
    x: &[u8],
    y: &[u8],
    digest: &[u8],
    sig: &[u8],
    jws: bool,
) -> Result<bool, CryptoError> {
    let point = sec1_point(curve, x, y)?;
    let prehash = go_hash_to_field(curve, digest);
    let n = curve.field_len();
    on_curve!(curve, c, C => {
        let vk = c::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| CryptoError::InvalidEcKey)?;
        let sig = if jws {
            let (r, s) = sig.split_at(sig.len() / 2);
            let (Some(r), Some(s)) = (left_pad(r, n), left_pad(s, n)) else { return Ok(false) };
            let mut rs = r.to_vec();
            rs.extend_from_slice(&s);
            match c::ecdsa::Signature::from_slice(&rs) {
                Ok(sig) => sig,
                Err(_) => return Ok(false),
            }
        } else {
            match c::ecdsa::Signature::from_der(sig) {
                Ok(sig) => sig,
                Err(_) if der_has_trailing_data(sig) => return Err(CryptoError::SignatureExtraData),
                Err(_) => return Err(CryptoError::InvalidSignatureEncoding),
            }
        };
        Ok(vk.verify_prehash(&prehash, &sig).is_ok())
    })
}

/// Whether a DER value's outer length leaves bytes after it (Go's "extra data").
fn der_has_trailing_data(sig: &[u8]) -> bool {
    let (Some(&0x30), Some(&len)) = (sig.first(), sig.get(1)) else { return false };
    let total = match len {
        0..=0x7f => 2 + usize::from(len),
        0x81 => match sig.get(2) {
            Some(&l) => 3 + usize::from(l),
            None => return false,
        },
        _ => return false,
    };
    sig.len() > total
}

/// SubjectPublicKeyInfo DER of an EC public key.
pub fn ec_spki_der(curve: Curve, x: &[u8], y: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let point = sec1_point(curve, x, y)?;
    on_curve!(curve, c, C => {
        let pk = c::PublicKey::from_sec1_bytes(&point).map_err(|_| CryptoError::InvalidEcKey)?;
        Ok(pk.to_public_key_der().map_err(|_| CryptoError::InvalidEcKey)?.into_vec())
    })
}

/// SEC1 `ECPrivateKey` DER with the curve's OID and the public key (Go's `MarshalECPrivateKey`).
pub fn ec_sec1_der(curve: Curve, d: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    use sec1::der::Encode;
    let d = left_pad(d, curve.field_len()).ok_or(CryptoError::InvalidEcKey)?;
    on_curve!(curve, c, C => {
        let sk = c::SecretKey::from_slice(&d).map_err(|_| CryptoError::InvalidEcKey)?;
        let point = sk.public_key().to_sec1_bytes();
        let oid = <C as c::pkcs8::AssociatedOid>::OID;
        let key = sec1::EcPrivateKey {
            private_key: &d,
            parameters: Some(sec1::EcParameters::NamedCurve(oid)),
            public_key: Some(&point),
        };
        key.to_der().map(Zeroizing::new).map_err(|_| CryptoError::InvalidEcKey)
    })
}

/// PKCS#8 DER of an EC private key (Go's `MarshalPKCS8PrivateKey`).
pub fn ec_pkcs8_der(curve: Curve, d: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let d = left_pad(d, curve.field_len()).ok_or(CryptoError::InvalidEcKey)?;
    on_curve!(curve, c, C => {
        let sk = c::SecretKey::from_slice(&d).map_err(|_| CryptoError::InvalidEcKey)?;
        let doc = sk.to_pkcs8_der().map_err(|_| CryptoError::InvalidEcKey)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    })
}

/// An EC key pair from PKCS#8 DER on `curve` (import).
pub fn ec_from_pkcs8(curve: Curve, der: &[u8]) -> Result<EcKeyPair, CryptoError> {
    on_curve!(curve, c, C => {
        let sk = c::SecretKey::from_pkcs8_der(der).map_err(|_| CryptoError::WrongImportedKey)?;
        ec_pair(curve, &sk.to_bytes(), &sk.public_key().to_sec1_bytes())
    })
}

/// An EC public key from SubjectPublicKeyInfo DER on `curve` (import): `(x, y)`.
pub fn ec_from_spki(curve: Curve, der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    on_curve!(curve, c, C => {
        let pk = c::PublicKey::from_public_key_der(der).map_err(|_| CryptoError::WrongImportedKey)?;
        let pair = ec_pair(curve, &[], &pk.to_sec1_bytes())?;
        Ok((pair.x, pair.y))
    })
}

/// A fresh RSA key of `bits` bits, public exponent 65537 (as Go's `rsa.GenerateKey`).
pub fn rsa_generate(bits: usize) -> Result<RsaPrivateKey, CryptoError> {
    RsaPrivateKey::new(&mut OsRng, bits).map_err(|e| CryptoError::InvalidRsaKey(e.to_string()))
}

/// An RSA private key from PKCS#1 DER (validated, CRT values precomputed).
pub fn rsa_from_pkcs1(der: &[u8]) -> Result<RsaPrivateKey, CryptoError> {
    RsaPrivateKey::from_pkcs1_der(der).map_err(|e| CryptoError::InvalidRsaKey(e.to_string()))
}

/// PKCS#1 DER of an RSA private key, in locked memory.
pub fn rsa_to_pkcs1(key: &RsaPrivateKey) -> Result<SecretBytes, CryptoError> {
    let doc = key.to_pkcs1_der().map_err(|e| CryptoError::InvalidRsaKey(e.to_string()))?;
    Ok(SecretBytes::from_slice(doc.as_bytes()))
}

/// PKCS#8 DER of an RSA private key.
pub fn rsa_pkcs8_der(key: &RsaPrivateKey) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let doc = key.to_pkcs8_der().map_err(|e| CryptoError::InvalidRsaKey(e.to_string()))?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

/// SubjectPublicKeyInfo DER of an RSA public key.
pub fn rsa_spki_der(key: &RsaPublicKey) -> Result<Vec<u8>, CryptoError> {
    Ok(key.to_public_key_der().map_err(|e| CryptoError::InvalidRsaKey(e.to_string()))?.into_vec())
}

/// An RSA private key from PKCS#8 DER (import).
pub fn rsa_from_pkcs8(der: &[u8]) -> Result<RsaPrivateKey, CryptoError> {
    RsaPrivateKey::from_pkcs8_der(der).map_err(|_| CryptoError::WrongImportedKey)
}

/// An RSA public key from SubjectPublicKeyInfo DER (import).
pub fn rsa_public_from_spki(der: &[u8]) -> Result<RsaPublicKey, CryptoError> {
    RsaPublicKey::from_public_key_der(der).map_err(|_| CryptoError::WrongImportedKey)
}

/// An RSA public key from its modulus and exponent (big-endian).
pub fn rsa_public(n: &[u8], e: u64) -> Result<RsaPublicKey, CryptoError> {
    RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from(e))
        .map_err(|e| CryptoError::InvalidRsaKey(e.to_string()))
}

/// RSA-PSS salt length, as Vault's `salt_length` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaltLength {
    /// Sign with the maximum; on verify, detect it.
    Auto,
    /// The digest's length.
    EqualsHash,
    /// Exactly this many bytes.
    Bytes(usize),
}

impl SaltLength {
    /// From Go's integer convention: 0 = auto, -1 = equals hash, else the length.
    pub fn from_go(n: i64) -> Option<Self> {
        match n {
            0 => Some(SaltLength::Auto),
            -1 => Some(SaltLength::EqualsHash),
            n => usize::try_from(n).ok().map(SaltLength::Bytes),
        }
    }
}

/// An RSA signature scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaScheme {
    Pkcs1v15,
    Pss(SaltLength),
}

/// The largest PSS salt for a key of `bits` bits and a digest of `hash_len` bytes.
fn max_salt(bits: usize, hash_len: usize) -> usize {
    (bits - 1).div_ceil(8).saturating_sub(2 + hash_len)
}

/// The concrete salt length for signing, or Vault's error for an invalid one.
fn sign_salt(bits: usize, hash: HashAlg, salt: SaltLength) -> Result<usize, CryptoError> {
    let max = max_salt(bits, hash.size());
    match salt {
        SaltLength::Auto => Ok(max),
        SaltLength::EqualsHash => Ok(hash.size()),
        SaltLength::Bytes(n) if n <= max => Ok(n),
        SaltLength::Bytes(n) => Err(CryptoError::InvalidSaltLength(n)),
    }
}

/// Signs `digest` (already hashed with `hash`; raw input for PKCS#1 v1.5 with `none`).
pub fn rsa_sign(
    key: &RsaPrivateKey,
    hash: HashAlg,
    digest: &[u8],
    scheme: RsaScheme,
) -> Result<Vec<u8>, CryptoError> {
    let fail = |e: rsa::Error| match e {
        rsa::Error::InputNotHashed => CryptoError::InputNotHashed,
        other => CryptoError::InvalidRsaKey(other.to_string()),
    };
    match scheme {
        RsaScheme::Pkcs1v15 => {
            let padding = with_digest!(hash, D => Pkcs1v15Sign::new::<D>(), Pkcs1v15Sign::new_unprefixed());
            key.sign_with_rng(&mut OsRng, padding, digest).map_err(fail)
        }
        RsaScheme::Pss(salt) => {
            let salt = sign_salt(key.n().bits(), hash, salt)?;
            let padding = with_digest!(hash, D => Pss::new_with_salt::<D>(salt), return Err(CryptoError::UnsupportedHash));
            key.sign_with_rng(&mut OsRng, padding, digest).map_err(fail)
        }
    }
}

/// Verifies an RSA signature of `digest`; `false` when it does not verify.
pub fn rsa_verify(
    key: &RsaPublicKey,
    hash: HashAlg,
    digest: &[u8],
    sig: &[u8],
    scheme: RsaScheme,
) -> Result<bool, CryptoError> {
    let ok = match scheme {
        RsaScheme::Pkcs1v15 => {
            let padding = with_digest!(hash, D => Pkcs1v15Sign::new::<D>(), Pkcs1v15Sign::new_unprefixed());
            key.verify(padding, digest, sig).is_ok()
        }
        RsaScheme::Pss(salt) => {
            let bits = key.n().bits();
            let max = max_salt(bits, hash.size());
            let salt = match salt {
                SaltLength::Auto => match pss_salt_len(key, hash, sig) {
                    Some(n) => n,
                    None => return Ok(false),
                },
                SaltLength::EqualsHash => hash.size(),
                SaltLength::Bytes(n) if n <= max => n,
                SaltLength::Bytes(n) => return Err(CryptoError::InvalidSaltLength(n)),
            };
            let padding = with_digest!(hash, D => Pss::new_with_salt::<D>(salt), return Err(CryptoError::UnsupportedHash));
            key.verify(padding, digest, sig).is_ok()
        }
    };
    Ok(ok)
}

/// The salt length of a PSS signature (public information): the encoded message is opened with
/// the public key, its data block unmasked with MGF1, and the salt is what follows the `01`.
fn pss_salt_len(key: &RsaPublicKey, hash: HashAlg, sig: &[u8]) -> Option<usize> {
    let k = key.size();
    let s = BigUint::from_bytes_be(sig);
    if sig.len() != k || &s >= key.n() {
        return None;
    }
    let m = s.modpow(key.e(), key.n()).to_bytes_be();
    let em_bits = key.n().bits() - 1;
    let em_len = em_bits.div_ceil(8);
    let h_len = hash.size();
    if m.len() > em_len || em_len < h_len + 2 {
        return None;
    }
    let mut em = vec![0u8; em_len - m.len()];
    em.extend_from_slice(&m);
    if em.last() != Some(&0xbc) {
        return None;
    }
    let (masked_db, rest) = em.split_at(em_len - h_len - 1);
    let h = &rest[..h_len];
    let mut db = masked_db.to_vec();
    let mut counter = 0u32;
    let mut offset = 0;
    while offset < db.len() {
        let mut input = h.to_vec();
        input.extend_from_slice(&counter.to_be_bytes());
        let block = hash.digest(&input)?;
        for (d, m) in db[offset..].iter_mut().zip(block) {
            *d ^= m;
        }
        offset += h_len;
        counter += 1;
    }
    db[0] &= 0xff >> (8 * em_len - em_bits);
    let one = db.iter().position(|b| *b != 0)?;
    (db[one] == 1).then(|| db.len() - one - 1)
}

/// RSA-OAEP (SHA-256, empty label) encryption.
pub fn rsa_encrypt(key: &RsaPublicKey, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    key.encrypt(&mut OsRng, Oaep::new::<sha2::Sha256>(), plaintext).map_err(|e| match e {
        rsa::Error::MessageTooLong => CryptoError::RsaMessageTooLong,
        other => CryptoError::InvalidRsaKey(other.to_string()),
    })
}

/// RSA-OAEP decryption (blinded) with `hash` for the label and MGF1 (SHA-256 for ciphertexts,
/// the import's `hash_function` for wrapped keys).
pub fn rsa_decrypt(
    key: &RsaPrivateKey,
    hash: HashAlg,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let padding = with_digest!(hash, D => Oaep::new::<D>(), return Err(CryptoError::UnsupportedHash));
    key.decrypt_blinded(&mut OsRng, padding, ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::RsaDecryptionFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_hash_to_int_truncates_and_shifts() {
        // P-521 with a 66-byte prehash: Go shifts right by 7 bits.
        let d = [0xffu8; 66];
        let f = go_hash_to_field(Curve::P521, &d);
        assert_eq!(f[0], 0x01);
        assert!(f[1..].iter().all(|b| *b == 0xff));
        // SHA-256 on P-521: left-padded, value unchanged.
        let f = go_hash_to_field(Curve::P521, &[7u8; 32]);
        assert_eq!(f.len(), 66);
        assert_eq!(&f[34..], &[7u8; 32]);
        // SHA-512 on P-256: the leftmost 32 bytes.
        let d: Vec<u8> = (0..64).collect();
        assert_eq!(go_hash_to_field(Curve::P256, &d), (0..32).collect::<Vec<u8>>());
    }

    #[test]
    fn ecdsa_round_trips_on_every_curve_and_hash() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let k = ec_generate(curve).unwrap();
            ec_check(curve, Some(k.d.expose()), &k.x, &k.y).unwrap();
            for hash in [HashAlg::Sha1, HashAlg::Sha2_256, HashAlg::Sha2_512, HashAlg::Sha3_384] {
                let digest = hash.digest(b"message").unwrap();
                for jws in [false, true] {
                    let sig = ec_sign(curve, k.d.expose(), &digest, jws).unwrap();
                    assert!(ec_verify(curve, &k.x, &k.y, &digest, &sig, jws).unwrap(), "{curve:?} {hash:?}");
                    let other = hash.digest(b"messagf").unwrap();
                    assert!(!ec_verify(curve, &k.x, &k.y, &other, &sig, jws).unwrap());
                }
            }
            let spki = ec_spki_der(curve, &k.x, &k.y).unwrap();
            assert_eq!(ec_from_spki(curve, &spki).unwrap(), (k.x.clone(), k.y.clone()));
            let p8 = ec_pkcs8_der(curve, k.d.expose()).unwrap();
            assert_eq!(ec_from_pkcs8(curve, &p8).unwrap().x, k.x);
        }
    }

    #[test]
    fn rsa_pss_auto_salt_is_detected() {
        let key = rsa_generate(1024).unwrap();
        let public = key.to_public_key();
        let digest = HashAlg::Sha2_256.digest(b"m").unwrap();
        for salt in [SaltLength::Auto, SaltLength::EqualsHash, SaltLength::Bytes(5)] {
            let sig = rsa_sign(&key, HashAlg::Sha2_256, &digest, RsaScheme::Pss(salt)).unwrap();
            let auto = RsaScheme::Pss(SaltLength::Auto);
            assert!(rsa_verify(&public, HashAlg::Sha2_256, &digest, &sig, auto).unwrap(), "{salt:?}");
            assert!(rsa_verify(&public, HashAlg::Sha2_256, &digest, &sig, RsaScheme::Pss(salt)).unwrap());
        }
        let sig = rsa_sign(&key, HashAlg::None, b"raw", RsaScheme::Pkcs1v15).unwrap();
        assert!(rsa_verify(&public, HashAlg::None, b"raw", &sig, RsaScheme::Pkcs1v15).unwrap());
        let ct = rsa_encrypt(&public, b"secret").unwrap();
        assert_eq!(rsa_decrypt(&key, HashAlg::Sha2_256, &ct).unwrap().as_slice(), b"secret");
    }
}
