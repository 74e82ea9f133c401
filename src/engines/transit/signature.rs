//! Signatures of a transit key, byte-compatible with Vault's `keysutil` (`SignWithOptions`,
//! `VerifySignatureWithOptions`): Ed25519 over the message, ECDSA and RSA over its digest.
//!
//! The text form is `vault:v<N>:<signature>`, the signature in standard base64 (`asn1`
//! marshaling) or base64url without padding (`jws`); for ECDSA the marshaling also chooses DER or
//! fixed-width `r ‖ s`. [`TransitKey::sign_raw`] and [`TransitKey::verify_raw`] work on the bytes
//! and serve the JWT endpoints too. Version rules: signing takes `min_encryption_version`,
//! verification `min_decryption_version`, as Vault does.

use super::asym::{self, RsaScheme};
use super::cipher::ERR_TOO_OLD;
use super::crypto::{self, HashAlg, KeyType};
use super::error::KeyOpError;
use super::key::TransitKey;
use super::material::ec_curve;

/// How to sign or verify (the request's `hash_algorithm`, `prehashed`, `marshaling_algorithm`,
/// `signature_algorithm` and `salt_length`).
#[derive(Clone, Copy, Debug)]
pub struct SignOptions {
    pub hash: HashAlg,
    /// The input is already the digest.
    pub prehashed: bool,
    /// JWS marshaling (base64url text; ECDSA `r ‖ s`).
    pub jws: bool,
    pub rsa: RsaScheme,
}

impl SignOptions {
    /// Vault's defaults: SHA-256, ASN.1, PSS with the automatic salt length.
    pub const DEFAULT: SignOptions = SignOptions {
        hash: HashAlg::Sha2_256,
        prehashed: false,
        jws: false,
        rsa: RsaScheme::Pss(asym::SaltLength::Auto),
    };

    /// What ECDSA and RSA sign: the digest of `input` unless it is prehashed (or `none`).
    fn digest(&self, kt: KeyType, input: &[u8]) -> Vec<u8> {
        if kt.hashes_signature_input() && !self.prehashed {
            if let Some(d) = self.hash.digest(input) {
                return d;
            }
        }
        input.to_vec()
    }
}

/// A signature as Vault writes it, and for a derived key the public key it verifies with.
#[derive(Debug)]
pub struct Signature {
    /// `vault:v<N>:<base64>`.
    pub text: String,
    pub derived_public_key: Option<Vec<u8>>,
}

/// Standard base64, or base64url without padding for JWS.
fn encode(jws: bool, sig: &[u8]) -> String {
    use base64::Engine;
    if jws {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    } else {
        crypto::b64(sig)
    }
}

impl TransitKey {
    /// Resolves `key_version` for signing (0 = latest) with Vault's checks.
    pub fn signing_version(&self, ver: i64) -> Result<i64, KeyOpError> {
        match ver {
            0 => Ok(self.latest_version),
            v if v < 0 => Err(KeyOpError::user("requested version for signing is negative")),
            v if v > self.latest_version => {
                Err(KeyOpError::user("requested version for signing is higher than the latest key version"))
            }
            v if self.min_encryption_version > 0 && v < self.min_encryption_version => Err(KeyOpError::user(
                "requested version for signing is less than the minimum encryption key version",
            )),
            v => Ok(v),
        }
    }

    /// Signs `input` with version `ver` (already resolved); the raw signature and, for a derived
    /// Ed25519 key, the public key.
    pub fn sign_raw(
        &self,
        ver: i64,
        context: &[u8],
        input: &[u8],
        opts: &SignOptions,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), KeyOpError> {
        let kt = self.supported_type()?;
        if !kt.signing_supported() {
            return Err(KeyOpError::internal(format!("message signing not supported for key type {kt}")));
        }
        let entry = self.entry(ver)?;
        if entry.private_missing() {
            return Err(KeyOpError::user("requested version for signing does not contain a private part"));
        }
        let digest = opts.digest(kt, input);
        match kt {
            KeyType::Ed25519 => {
                use ed25519_dalek::Signer;
                let (sk, public) = if self.derived {
                    let k = self
                        .operation_key(context, ver, 32)
                        .map_err(|e| KeyOpError::internal(format!("error deriving key: {}", e.message())))?;
                    let sk = crypto::ed25519_signing_key(k.expose())?;
                    let public = sk.verifying_key().to_bytes().to_vec();
                    (sk, Some(public))
                } else {
                    let k = entry.key.as_ref().ok_or_else(|| KeyOpError::internal("missing key"))?;
                    (crypto::ed25519_signing_key(k.expose())?, None)
                };
                Ok((sk.sign(input).to_bytes().to_vec(), public))
            }
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let d = entry.ec_d.as_ref().ok_or_else(|| KeyOpError::internal("missing EC key"))?;
                Ok((asym::ec_sign(ec_curve(kt)?, d.0.expose(), &digest, opts.jws)?, None))
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let k = entry.rsa_key.as_ref().ok_or_else(|| KeyOpError::internal("missing RSA key"))?;
                Ok((asym::rsa_sign(&k.key()?, opts.hash, &digest, opts.rsa)?, None))
            }
            other => Err(KeyOpError::internal(format!("unsupported key type {other}"))),
        }
    }

    /// Signs (version 0 = latest): `vault:v<N>:<signature>`.
    pub fn sign(
        &self,
        ver: i64,
        context: &[u8],
        input: &[u8],
        opts: &SignOptions,
    ) -> Result<Signature, KeyOpError> {
        let kt = self.supported_type()?;
        if !kt.signing_supported() {
            return Err(KeyOpError::internal(format!("message signing not supported for key type {kt}")));
        }
        let ver = self.signing_version(ver)?;
        let (sig, derived_public_key) = self.sign_raw(ver, context, input, opts)?;
        Ok(Signature { text: format!("{}{}", Self::prefix(ver), encode(opts.jws, &sig)), derived_public_key })
    }

    /// Checks that version `ver` may verify (≥ `min_decryption_version`, ≤ latest).
    pub fn verification_version(&self, ver: i64) -> Result<i64, KeyOpError> {
        if ver > self.latest_version {
            return Err(KeyOpError::user("invalid signature: version is too new"));
        }
        if self.min_decryption_version > 0 && ver < self.min_decryption_version {
            return Err(KeyOpError::user(ERR_TOO_OLD));
        }
        Ok(ver)
    }

    /// Verifies a signature string (Vault's `VerifySignatureWithOptions`).
    pub fn verify(
        &self,
        context: &[u8],
        input: &[u8],
        sig: &str,
        opts: &SignOptions,
    ) -> Result<bool, KeyOpError> {
        use base64::Engine;
        let kt = self.supported_type()?;
        if !kt.signing_supported() {
            return Err(KeyOpError::user(format!("message verification not supported for key type {kt}")));
        }
        let (ver, data) = self.split_versioned(sig, "signature")?;
        let ver = self.verification_version(ver)?;
        let sig_bytes = if opts.jws {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(data).ok()
        } else {
            crypto::go_b64_decode(data).ok()
        };
        let sig_bytes = sig_bytes.ok_or_else(|| KeyOpError::user("invalid base64 signature value"))?;
        self.verify_raw(ver, context, input, &sig_bytes, opts)
    }

    /// Verifies raw signature bytes with version `ver` (already checked).
    pub fn verify_raw(
        &self,
        ver: i64,
        context: &[u8],
        input: &[u8],
        sig: &[u8],
        opts: &SignOptions,
    ) -> Result<bool, KeyOpError> {
        let kt = self.supported_type()?;
        let digest = opts.digest(kt, input);
        match kt {
            KeyType::Ed25519 => {
                let public = if self.derived {
                    let k = self
                        .operation_key(context, ver, 32)
                        .map_err(|e| KeyOpError::internal(format!("error deriving key: {}", e.message())))?;
                    k.expose()[32..].to_vec()
                } else {
                    let entry = self.entry(ver)?;
                    crypto::go_b64_decode(&entry.public_key).map_err(KeyOpError::internal)?
                };
                Ok(crypto::ed25519_verify(&public, input, sig))
            }
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let (x, y) = self.entry(ver)?.ec_point()?;
                Ok(asym::ec_verify(ec_curve(kt)?, x, y, &digest, sig, opts.jws)?)
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let public = self.entry(ver)?.rsa_public()?;
                Ok(asym::rsa_verify(&public, opts.hash, &digest, sig, opts.rsa)?)
            }
            other => {
                Err(KeyOpError::user(format!("message verification not supported for key type {other}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::engines::transit::asym::SaltLength;
    use crate::engines::transit::key::NewKey;

    /// Every signing type signs and verifies with every marshaling, and a version below
    /// `min_decryption_version` no longer verifies.
    #[test]
    fn every_signing_type_round_trips() {
        let now = coffer_storage::clock::now();
        for kind in
            [KeyType::Ed25519, KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::EcdsaP521, KeyType::Rsa2048]
        {
            let mut p = TransitKey::create("k", &NewKey { kind, ..NewKey::DEFAULTS }, now).unwrap();
            for jws in [false, true] {
                for rsa in [RsaScheme::Pkcs1v15, RsaScheme::Pss(SaltLength::Auto)] {
                    let opts = SignOptions { jws, rsa, ..SignOptions::DEFAULT };
                    let sig = p.sign(0, b"", b"hello", &opts).unwrap();
                    assert!(p.verify(b"", b"hello", &sig.text, &opts).unwrap(), "{kind:?} {opts:?}");
                    assert!(!p.verify(b"", b"hellp", &sig.text, &opts).unwrap(), "{kind:?} {opts:?}");
                }
            }
            let old = p.sign(0, b"", b"m", &SignOptions::DEFAULT).unwrap().text;
            p.rotate_in_memory(now).unwrap();
            p.min_decryption_version = 2;
            let e = p.verify(b"", b"m", &old, &SignOptions::DEFAULT).unwrap_err();
            assert_eq!(e.message(), ERR_TOO_OLD);
        }
    }
}
