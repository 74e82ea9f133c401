//! Transit's errors, and the one place they become the core's.
//!
//! Vault's transit sorts every failure of a key operation into the caller's mistake (400, its
//! `errutil.UserError`) or the server's (500, with the text shown to the client). A
//! [`KeyOpError`] carries that verdict. The primitives report a typed [`CryptoError`] or
//! [`Base64Error`]; which side each kind falls on is decided here, once, and
//! `From<KeyOpError> for Error` turns the verdict into the core's error. No text here ever holds a
//! plaintext or key: the messages are fixed texts, numbers and key names.

use super::crypto::{Base64Error, CryptoError};
use crate::core::error::Error;

/// A failed operation on a transit key, as Vault classifies it.
#[derive(Debug, thiserror::Error)]
pub enum KeyOpError {
    /// The server's fault (a 500 whose text the client sees, as Vault shows it).
    #[error("{0}")]
    Internal(String),
    /// The caller's mistake (a 400).
    #[error("{0}")]
    User(String),
}

impl KeyOpError {
    /// The caller's mistake.
    pub fn user(message: impl Into<String>) -> Self {
        KeyOpError::User(message.into())
    }

    /// The server's fault.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        KeyOpError::Internal(message.to_string())
    }

    /// The text the client sees.
    pub fn message(&self) -> &str {
        match self {
            KeyOpError::Internal(m) | KeyOpError::User(m) => m,
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, KeyOpError::Internal(_))
    }
}

/// A rejected or malformed ciphertext, signature, prehashed input or imported key, or an option
/// the key cannot honour, is the caller's; every other primitive failure (stored key material,
/// derivation, the random generator) is the server's.
impl From<CryptoError> for KeyOpError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::AuthenticationFailed(_)
            | CryptoError::CiphertextTooShort
            | CryptoError::InputNotHashed
            | CryptoError::InvalidSaltLength(_)
            | CryptoError::InvalidSignatureEncoding
            | CryptoError::RsaDecryptionFailed
            | CryptoError::RsaMessageTooLong
            | CryptoError::SignatureExtraData
            | CryptoError::UnsupportedHash
            | CryptoError::WrongImportedKey => KeyOpError::user(e.to_string()),
            CryptoError::DerivationTooLong { .. }
            | CryptoError::EncryptionFailed
            | CryptoError::InvalidEcKey
            | CryptoError::InvalidEd25519Key
            | CryptoError::InvalidKeyLength
            | CryptoError::InvalidNonceLength
            | CryptoError::InvalidRsaKey(_)
            | CryptoError::Random(_)
            | CryptoError::SigningFailed
            | CryptoError::UnsupportedKeyType(_) => KeyOpError::internal(e),
        }
    }
}

/// Base64 from a request (plaintext, context, input) is the caller's. Stored base64 that does
/// not decode is the server's: those call sites say so with [`KeyOpError::internal`].
impl From<Base64Error> for KeyOpError {
    fn from(e: Base64Error) -> Self {
        KeyOpError::user(e.to_string())
    }
}

impl From<KeyOpError> for Error {
    fn from(e: KeyOpError) -> Self {
        match e {
            KeyOpError::User(m) => Error::BadRequest(m),
            KeyOpError::Internal(m) => internal_visible(m),
        }
    }
}

/// A 500 whose text Vault shows to clients (a plain Go error from a handler).
pub(crate) fn internal_visible(msg: impl std::fmt::Display) -> Error {
    Error::InternalVisible(format!("1 error occurred:\n\t* {msg}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorKind;
    use crate::engines::transit::crypto::KeyType;

    /// A rejected ciphertext stays the caller's 400 with Go's text; a failed primitive is a 500
    /// whose text the client sees.
    #[test]
    fn crypto_failures_keep_their_blame_and_go_texts() {
        let rejected = KeyOpError::from(CryptoError::AuthenticationFailed(KeyType::ChaCha20Poly1305));
        assert!(!rejected.is_internal());
        assert_eq!(rejected.message(), "chacha20poly1305: message authentication failed");
        let rejected = Error::from(KeyOpError::from(CryptoError::AuthenticationFailed(KeyType::Aes256Gcm96)));
        assert_eq!(rejected.kind(), ErrorKind::BadRequest);
        assert_eq!(rejected.to_string(), "cipher: message authentication failed");

        let derivation = KeyOpError::from(CryptoError::DerivationTooLong { needed: 9000 });
        assert!(derivation.is_internal());
        let derivation = Error::from(derivation);
        assert_eq!(derivation.kind(), ErrorKind::InternalVisible);
        assert!(derivation.to_string().contains("unable to read enough derived bytes, needed 9000"));

        let base64 = crate::engines::transit::crypto::go_b64_decode("a===").map_err(KeyOpError::from);
        let blame = base64.map_err(|e| (e.is_internal(), e.to_string()));
        assert_eq!(blame, Err((false, "illegal base64 data at input byte 1".to_owned())));
    }
}
