//! The cryptography of transit, per key type, byte-compatible with Vault's `keysutil`.
//!
//! * AES-GCM (128/256) and ChaCha20-Poly1305: 12-byte nonce, 16-byte tag, payload
//!   `nonce ‖ ciphertext ‖ tag`; XChaCha20-Poly1305 the same with a 24-byte nonce.
//! * Derivation (`hkdf_sha256`): HKDF-SHA256, empty salt, info = context; output length = the key
//!   length, or key length + 32 for convergent version 3 (the extra bytes key the nonce HMAC).
//! * Ed25519: the stored key is Go's 64-byte private key (seed ‖ public); a derived key uses the
//!   first 32 bytes of HKDF(stored 64 bytes, context) as its seed.
//! * Base64 decoding follows Go's `encoding/base64.StdEncoding` exactly (errors included), since
//!   clients see its error texts.
//!
//! Every buffer holding key material or plaintext is zeroized when dropped.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use sha2::Sha256;
use zeroize::Zeroizing;

use coffer_storage::keys::{SecretBytes, SecretVec};

pub use super::key_type::{Curve, HashAlg, KeyType};

/// Nonce size of AES-GCM and ChaCha20-Poly1305 (XChaCha20-Poly1305's is 24 bytes).
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
    /// A prehashed input whose length is not the hash's (Go's text).
    #[error("crypto/rsa: input must be hashed message")]
    InputNotHashed,
    /// An EC key that is not a valid key of its curve.
    #[error("invalid EC key")]
    InvalidEcKey,
    /// An Ed25519 key shorter than its 32-byte seed.
    #[error("invalid ed25519 key length")]
    InvalidEd25519Key,
    /// A key of the wrong length for its cipher (the `crypto-common` text).
    #[error("Invalid Length")]
    InvalidKeyLength,
    /// A nonce of the wrong length for its cipher.
    #[error("invalid nonce length")]
    InvalidNonceLength,
    /// An RSA key that cannot be used (the library's reason).
    #[error("invalid RSA key: {0}")]
    InvalidRsaKey(String),
    /// An RSA-PSS salt length beyond the key's maximum (Vault's text).
    #[error("requested salt length {0} is invalid")]
    InvalidSaltLength(usize),
    /// An ASN.1 ECDSA signature that does not parse (Vault's text).
    #[error("supplied signature is invalid")]
    InvalidSignatureEncoding,
    /// The operating system's random generator failed.
    #[error(transparent)]
    Random(#[from] rand::Error),
    /// RSA-OAEP rejected a ciphertext (Vault's text).
    #[error("failed to RSA decrypt the ciphertext: crypto/rsa: decryption error")]
    RsaDecryptionFailed,
    /// A plaintext too long for RSA-OAEP with the key (Vault's text).
    #[error("failed to RSA encrypt the plaintext: crypto/rsa: message too long for RSA key size")]
    RsaMessageTooLong,
    /// An ASN.1 ECDSA signature followed by other bytes (Vault's text).
    #[error("supplied signature contains extra data")]
    SignatureExtraData,
    /// The signing primitive failed.
    #[error("signing failed")]
    SigningFailed,
    /// A hash the operation cannot use (`none` outside PKCS#1 v1.5).
    #[error("unsupported hash algorithm")]
    UnsupportedHash,
    /// An AEAD operation asked of a key type that has none.
    #[error("unsupported key type {0}")]
    UnsupportedKeyType(KeyType),
    /// Imported key material that is not a key of the key's type.
    #[error("error parsing asymmetric key: the key is not of the expected type")]
    WrongImportedKey,
}

/// Text that is not Go's standard base64; the text is Go's `CorruptInputError`.
#[derive(Debug, thiserror::Error)]
#[error("illegal base64 data at input byte {at}")]
pub struct Base64Error {
    /// Offset of the first offending byte.
    pub at: usize,
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

/// The convergent-encryption nonce: the first `len` (12 or 24) bytes of
/// HMAC-SHA256(nonce key, plaintext).
pub fn convergent_nonce(nonce_key: &[u8], plaintext: &[u8], len: usize) -> Vec<u8> {
    let mut mac = HashAlg::Sha2_256.hmac(nonce_key, plaintext).unwrap_or_default();
    mac.truncate(len);
    mac
}

/// The longest nonce of an AEAD key type (XChaCha20-Poly1305's).
pub const MAX_NONCE_LEN: usize = 24;

/// Length of every AEAD tag used here (AES-GCM, ChaCha20-Poly1305).
const TAG_LEN: usize = 16;

/// A fresh random nonce: the first `len` bytes of the array. From rand's `ThreadRng`, a
/// ChaCha12 CSPRNG per thread seeded from the operating system and reseeded from it every
/// 64 KiB of output (and after a fork), so a batch of items costs no system call per nonce.
pub fn random_nonce(len: usize) -> Result<[u8; MAX_NONCE_LEN], CryptoError> {
    let mut n = [0u8; MAX_NONCE_LEN];
    let Some(out) = n.get_mut(..len) else { return Err(CryptoError::InvalidNonceLength) };
    rand::RngCore::try_fill_bytes(&mut rand::thread_rng(), out)?;
    Ok(n)
}

/// The keyed AEAD of a key type (its expanded key schedule; erased when dropped, with the
/// ciphers' `zeroize` feature).
pub enum Cipher {
    Aes128Gcm(Aes128Gcm),
    Aes256Gcm(Aes256Gcm),
    ChaCha20Poly1305(ChaCha20Poly1305),
    XChaCha20Poly1305(XChaCha20Poly1305),
}

impl Cipher {
    /// The AEAD of `kt` keyed with `key`.
    pub fn new(kt: KeyType, key: &[u8]) -> Result<Self, CryptoError> {
        let wrong_length = |_| CryptoError::InvalidKeyLength;
        Ok(match kt {
            KeyType::Aes128Gcm96 => Cipher::Aes128Gcm(Aes128Gcm::new_from_slice(key).map_err(wrong_length)?),
            KeyType::Aes256Gcm96 => Cipher::Aes256Gcm(Aes256Gcm::new_from_slice(key).map_err(wrong_length)?),
            KeyType::ChaCha20Poly1305 => {
                Cipher::ChaCha20Poly1305(ChaCha20Poly1305::new_from_slice(key).map_err(wrong_length)?)
            }
            KeyType::XChaCha20Poly1305 => {
                Cipher::XChaCha20Poly1305(XChaCha20Poly1305::new_from_slice(key).map_err(wrong_length)?)
            }
            other => return Err(CryptoError::UnsupportedKeyType(other)),
        })
    }

    /// Encrypts `buf` in place; the tag. `nonce` must have the type's length.
    fn encrypt_in_place(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> aes_gcm::aead::Result<[u8; TAG_LEN]> {
        let tag = match self {
            Cipher::Aes128Gcm(c) => c.encrypt_inout_detached(nonce_of(nonce)?, aad, buf.into())?,
            Cipher::Aes256Gcm(c) => c.encrypt_inout_detached(nonce_of(nonce)?, aad, buf.into())?,
            Cipher::ChaCha20Poly1305(c) => c.encrypt_inout_detached(nonce_of(nonce)?, aad, buf.into())?,
            Cipher::XChaCha20Poly1305(c) => c.encrypt_inout_detached(nonce_of(nonce)?, aad, buf.into())?,
        };
        Ok(tag.into())
    }

    /// Decrypts `buf` in place if `tag` authenticates it (the ciphers check the tag first and
    /// leave `buf` as it was when it does not).
    fn decrypt_in_place(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> aes_gcm::aead::Result<()> {
        match self {
            Cipher::Aes128Gcm(c) => c.decrypt_inout_detached(nonce_of(nonce)?, aad, buf.into(), tag_of(tag)?),
            Cipher::Aes256Gcm(c) => c.decrypt_inout_detached(nonce_of(nonce)?, aad, buf.into(), tag_of(tag)?),
            Cipher::ChaCha20Poly1305(c) => {
                c.decrypt_inout_detached(nonce_of(nonce)?, aad, buf.into(), tag_of(tag)?)
            }
            Cipher::XChaCha20Poly1305(c) => {
                c.decrypt_inout_detached(nonce_of(nonce)?, aad, buf.into(), tag_of(tag)?)
            }
        }
    }
}

/// A tag as the cipher takes it (callers split it off at [`TAG_LEN`]).
fn tag_of<'a, T: TryFrom<&'a [u8]>>(tag: &'a [u8]) -> aes_gcm::aead::Result<T> {
    T::try_from(tag).map_err(|_| aes_gcm::aead::Error)
}

/// A nonce of the cipher's length, as the cipher takes it (callers check the length first;
/// a wrong one is the cipher's refusal, never a panic).
fn nonce_of<'a, N: TryFrom<&'a [u8]>>(nonce: &'a [u8]) -> aes_gcm::aead::Result<N> {
    N::try_from(nonce).map_err(|_| aes_gcm::aead::Error)
}

/// AEAD-encrypts; returns `nonce ‖ ciphertext ‖ tag` (the nonce of [`KeyType::nonce_len`]
/// bytes), encrypted in place in one buffer of the exact size, so no copy of the plaintext is
/// left behind (the buffer is zeroized if encryption fails).
pub fn seal(
    kt: KeyType,
    key: &[u8],
    nonce: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    seal_with(&Cipher::new(kt, key)?, kt, nonce, plaintext, aad)
}

/// [`seal`] with a cipher already keyed (once per request for a stored key version).
pub fn seal_with(
    cipher: &Cipher,
    kt: KeyType,
    nonce: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if nonce.len() != kt.nonce_len() {
        return Err(CryptoError::InvalidNonceLength);
    }
    let mut buf = SecretVec::with_capacity(nonce.len() + plaintext.len() + TAG_LEN);
    if !(buf.extend_within_capacity(nonce) && buf.extend_within_capacity(plaintext)) {
        return Err(CryptoError::EncryptionFailed);
    }
    let tag = cipher
        .encrypt_in_place(nonce, aad, &mut buf.expose_mut()[nonce.len()..])
        .map_err(|_| CryptoError::EncryptionFailed)?;
    if !buf.extend_within_capacity(&tag) {
        return Err(CryptoError::EncryptionFailed);
    }
    Ok(buf.declassify())
}

/// A plaintext decoded straight into the buffer it is sealed in: [`MAX_NONCE_LEN`] bytes of
/// room for the nonce, the plaintext, and spare capacity for the tag. Sealing writes the nonce
/// and the tag around the plaintext and encrypts it in place ([`seal_framed`]), so a decoded
/// plaintext is never copied into a second buffer. Erased when dropped unsealed.
#[derive(Default)]
pub struct Framed(SecretVec);

impl Framed {
    /// The plaintext.
    pub fn plaintext(&self) -> &[u8] {
        self.0.expose().get(MAX_NONCE_LEN..).unwrap_or_default()
    }
}

/// Go's standard base64 (as [`go_b64_secret`]) decoded into a [`Framed`] buffer.
pub fn go_b64_framed(s: &str) -> Result<Framed, Base64Error> {
    let simd = base64_simd::STANDARD;
    let room = MAX_NONCE_LEN + TAG_LEN;
    if let Ok(len) = simd.decoded_length(s.as_bytes()) {
        let mut buf = SecretVec::with_capacity(room + len);
        if buf.extend_within_capacity(&[0; MAX_NONCE_LEN])
            && buf.fill_spare(|v| simd.decode_append(s, v)).is_ok()
            && buf.len() == MAX_NONCE_LEN + len
        {
            return Ok(Framed(buf));
        }
    }
    // Anything base64_simd refuses (non-zero trailing bits, line breaks, malformed input)
    // takes the general path, which has Go's exact answers.
    let plaintext = go_b64_secret(s)?;
    let mut buf = SecretVec::with_capacity(room + plaintext.len());
    // Sized above, so both fit; were they not to, refusing beats sealing a partial plaintext.
    if !(buf.extend_within_capacity(&[0; MAX_NONCE_LEN]) && buf.extend_within_capacity(plaintext.expose())) {
        return Err(Base64Error { at: 0 });
    }
    Ok(Framed(buf))
}

/// [`seal_with`] for a [`Framed`] plaintext, in its own buffer: the buffer (now holding only
/// ciphertext) and where `nonce ‖ ciphertext ‖ tag` starts in it. On failure the plaintext is
/// erased with the buffer.
pub fn seal_framed(
    cipher: &Cipher,
    kt: KeyType,
    nonce: &[u8],
    framed: Framed,
    aad: &[u8],
) -> Result<(Vec<u8>, usize), CryptoError> {
    let mut buf = framed.0;
    if nonce.len() != kt.nonce_len() || nonce.len() > MAX_NONCE_LEN || buf.len() < MAX_NONCE_LEN {
        return Err(CryptoError::InvalidNonceLength);
    }
    let start = MAX_NONCE_LEN - nonce.len();
    let (head, plaintext) = buf.expose_mut().split_at_mut(MAX_NONCE_LEN);
    head[start..].copy_from_slice(nonce);
    let tag = cipher.encrypt_in_place(nonce, aad, plaintext).map_err(|_| CryptoError::EncryptionFailed)?;
    if !buf.extend_within_capacity(&tag) {
        return Err(CryptoError::EncryptionFailed);
    }
    Ok((buf.declassify(), start))
}

/// AEAD-decrypts `nonce ‖ ciphertext ‖ tag` (a copy of `data`, decrypted in place).
pub fn open(kt: KeyType, key: &[u8], data: &[u8], aad: &[u8]) -> Result<SecretVec, CryptoError> {
    let cipher = Cipher::new(kt, key)?;
    let mut buf = SecretVec::with_capacity(data.len());
    if !buf.extend_within_capacity(data) {
        return Err(CryptoError::CiphertextTooShort);
    }
    open_in_place(&cipher, kt, buf, aad)
}

/// AEAD-decrypts in place: `data` (`nonce ‖ ciphertext ‖ tag`, decoded into a
/// buffer that is erased when dropped) becomes the plaintext; no second buffer is made.
pub fn open_in_place(
    cipher: &Cipher,
    kt: KeyType,
    mut data: SecretVec,
    aad: &[u8],
) -> Result<SecretVec, CryptoError> {
    let nonce_len = kt.nonce_len();
    if data.len() < nonce_len {
        return Err(CryptoError::CiphertextTooShort);
    }
    let failed = |_| CryptoError::AuthenticationFailed(kt);
    // Shorter than a tag: what the AEAD answers, without calling it.
    let Some(tag_at) = data.len().checked_sub(TAG_LEN).filter(|&at| at >= nonce_len) else {
        return Err(CryptoError::AuthenticationFailed(kt));
    };
    let (nonce, rest) = data.expose_mut().split_at_mut(nonce_len);
    let (ct, tag) = rest.split_at_mut(tag_at - nonce_len);
    cipher.decrypt_in_place(nonce, aad, ct, tag).map_err(failed)?;
    if !data.keep_range(nonce_len..tag_at) {
        return Err(CryptoError::AuthenticationFailed(kt));
    }
    Ok(data)
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
    base64_simd::STANDARD.encode_to_string(data)
}

/// Appends `data` in standard base64 with padding to the bytes `out`.
pub fn b64_append_bytes(data: &[u8], out: &mut Vec<u8>) {
    base64_simd::STANDARD.encode_append(data, out);
}

/// Appends `data` in standard base64 with padding to `out`.
pub fn b64_append(data: &[u8], out: &mut String) {
    base64_simd::STANDARD.encode_append(data, out);
}

/// Canonical, padded standard base64 with any trailing bits: every input it accepts, Go's
/// `base64.StdEncoding` (which is not strict) accepts with the same bytes. What it refuses
/// (line breaks, which Go skips, and every malformed input) goes through the exact decoder.
const GO_STD_FAST: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
);

/// Decodes into a buffer sized once (never reallocated, so a secret leaves no copy behind):
/// with `base64_simd` (SIMD; canonical padded base64 only, so every input it accepts Go
/// accepts with the same bytes), then with [`GO_STD_FAST`] (non-zero trailing bits); `None`
/// when the input needs the exact decoder.
fn b64_fast(s: &str) -> Option<SecretVec> {
    use base64::Engine;
    let simd = base64_simd::STANDARD;
    if let Ok(len) = simd.decoded_length(s.as_bytes()) {
        // Decoded into the spare capacity: no zeroing pass over a buffer about to be written.
        let mut out = SecretVec::with_capacity(len);
        if out.fill_spare(|v| simd.decode_append(s, v)).is_ok() && out.len() == len {
            return Some(out);
        }
    }
    let len = base64::decoded_len_estimate(s.len()).max(simd.estimated_decoded_length(s.len()));
    let mut out = SecretVec::zeroed(len);
    let n = GO_STD_FAST.decode_slice(s, out.expose_mut()).ok()?;
    out.truncate(n);
    Some(out)
}

/// Go's `base64.StdEncoding.DecodeString`, with its exact error texts
/// (`illegal base64 data at input byte N`). CR and LF are skipped, as Go does.
pub fn go_b64_decode(s: &str) -> Result<Vec<u8>, Base64Error> {
    match b64_fast(s) {
        Some(out) => Ok(out.declassify()),
        None => go_b64_decode_exact(s),
    }
}

/// [`go_b64_decode`] byte by byte: Go's algorithm, for what the fast path refuses.
fn go_b64_decode_exact(s: &str) -> Result<Vec<u8>, Base64Error> {
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
pub fn go_b64_secret(s: &str) -> Result<SecretVec, Base64Error> {
    match b64_fast(s) {
        Some(out) => Ok(out),
        None => go_b64_decode_exact(s).map(SecretVec::from_vec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AES-GCM agrees with an independent implementation (`ring`) for every length up to three
    /// 64-block batches of the AES backends (the vendored `aes` is patched; vendor/README.md),
    /// with and without associated data, and opens what it sealed.
    #[test]
    fn aes_gcm_agrees_with_ring_at_every_length() {
        use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
        for (kt, alg) in [(KeyType::Aes128Gcm96, &AES_128_GCM), (KeyType::Aes256Gcm96, &AES_256_GCM)] {
            let key: Vec<u8> = (0..alg.key_len() as u8).map(|i| i.wrapping_mul(29).wrapping_add(7)).collect();
            let theirs = LessSafeKey::new(UnboundKey::new(alg, &key).unwrap());
            let cipher = Cipher::new(kt, &key).unwrap();
            for len in 0..=3 * 1024 + 17 {
                let nonce: [u8; 12] = std::array::from_fn(|i| (len as u8).wrapping_add(i as u8 * 13));
                let pt: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let aad: &[u8] = if len % 2 == 0 { b"" } else { b"associated" };
                let ours = seal(kt, &key, &nonce, &pt, aad).unwrap();
                let mut expected = pt.clone();
                theirs
                    .seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut expected,
                    )
                    .unwrap();
                assert_eq!(&ours[..12], &nonce, "{kt:?} length {len}");
                assert_eq!(&ours[12..], &expected[..], "{kt:?} length {len}");
                let opened = open_in_place(&cipher, kt, SecretVec::from_vec(ours), aad).unwrap();
                assert_eq!(opened.expose(), &pt[..], "{kt:?} length {len}");
            }
        }
    }

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
    fn fast_base64_agrees_with_the_exact_decoder() {
        let mut inputs: Vec<String> =
            ["", "aGk=", "aGl=", "aGk", "aG==", "a===", "====", "aGk=aGk=", "aGVsbG8=x"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37).wrapping_add(len)).collect();
            let text = b64(&data);
            inputs.push(text.clone());
            inputs.push(text.trim_end_matches('=').to_owned());
            inputs.push(format!("{text}\n"));
            inputs.push(format!("{text}="));
            inputs.push(text.replacen('A', "-", 1));
        }
        for s in &inputs {
            let exact = go_b64_decode_exact(s).map_err(|e| e.to_string());
            assert_eq!(go_b64_decode(s).map_err(|e| e.to_string()), exact, "{s:?}");
            assert_eq!(
                go_b64_secret(s).map(|v| v.expose().to_vec()).map_err(|e| e.to_string()),
                exact,
                "{s:?}"
            );
            if let Some(fast) = b64_fast(s) {
                assert_eq!(Ok(fast.expose().to_vec()), exact, "fast path accepted {s:?}");
            }
        }
    }

    proptest::proptest! {
        /// The SIMD encoder writes the base64 crate's bytes, and every string the fast decoders
        /// (SIMD, then the base64 crate) accept decodes as Go's exact algorithm decodes it,
        /// over lengths that reach the SIMD loops, with bytes mutated anywhere.
        #[test]
        fn simd_base64_matches_the_exact_codec(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), 0usize..8), 0..3),
        ) {
            use base64::Engine as _;
            let text = b64(&data);
            proptest::prop_assert_eq!(&text, &base64::engine::general_purpose::STANDARD.encode(&data));
            proptest::prop_assert_eq!(go_b64_decode(&text).unwrap(), data.clone());
            let mut bytes = text.into_bytes();
            for (at, class) in edits {
                if bytes.is_empty() {
                    break;
                }
                let at = at % bytes.len();
                bytes[at] = [b'A', b'/', b'+', b'=', b'\n', b'-', b'z', b'\r'][class];
            }
            let s = String::from_utf8(bytes).unwrap();
            let exact = go_b64_decode_exact(&s).map_err(|e| e.to_string());
            proptest::prop_assert_eq!(go_b64_decode(&s).map_err(|e| e.to_string()), exact.clone());
            if let Some(fast) = b64_fast(&s) {
                proptest::prop_assert_eq!(Ok(fast.expose().to_vec()), exact);
            }
        }
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        for kt in [
            KeyType::Aes128Gcm96,
            KeyType::Aes256Gcm96,
            KeyType::ChaCha20Poly1305,
            KeyType::XChaCha20Poly1305,
        ] {
            let key = vec![7u8; kt.key_len()];
            let n = random_nonce(kt.nonce_len()).unwrap();
            let full = seal(kt, &key, &n[..kt.nonce_len()], b"data", b"ad").unwrap();
            assert_eq!(&full[..kt.nonce_len()], &n[..kt.nonce_len()]);
            assert_eq!(full.len(), kt.nonce_len() + 4 + 16);
            assert_eq!(open(kt, &key, &full, b"ad").unwrap().expose(), b"data");
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
