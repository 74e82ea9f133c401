//! Types for secret material: zeroized on drop, no `Clone`, no `PartialEq` (compare with
//! [`SecretBytes::ct_eq`]), `Debug` prints `[redacted]`, bytes kept in locked memory.
//!
//! Declassification (turning secret bytes into something that may be shown or stored) happens
//! only through [`SecretBytes::expose`], whose callers say why the use is safe.

mod buf;
pub mod locked;

use std::fmt;

use rand::RngCore;
use subtle::ConstantTimeEq;

use self::locked::LockedBox;

pub use self::buf::SecretVec;

/// Length of AES-256 keys: the root key, keyring terms and the unseal key.
pub const KEY_LEN: usize = 32;

/// Variable-length secret bytes in locked memory.
pub struct SecretBytes(LockedBox);

impl SecretBytes {
    /// Zeroed secret of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        Self(LockedBox::new(len))
    }

    /// Copies `bytes` into locked memory. The caller remains responsible for wiping its copy.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut s = Self::zeroed(bytes.len());
        s.0.as_mut_slice().copy_from_slice(bytes);
        s
    }

    /// `len` bytes from the operating system's CSPRNG, generated directly in locked memory.
    pub fn random(len: usize) -> Result<Self, rand::Error> {
        let mut s = Self::zeroed(len);
        rand::rngs::OsRng.try_fill_bytes(s.0.as_mut_slice())?;
        Ok(s)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.as_slice().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read access for cryptographic use. Callers must not copy the bytes anywhere that outlives
    /// the operation (logs, errors, storage keys); any copy must be zeroized.
    pub fn expose(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Write access, to fill the buffer in place.
    pub fn expose_mut(&mut self) -> &mut [u8] {
        self.0.as_mut_slice()
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.expose().ct_eq(other).into()
    }

    /// An independent copy (explicit: secret types are not `Clone`).
    pub fn duplicate(&self) -> Self {
        Self::from_slice(self.expose())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

macro_rules! key32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(SecretBytes);

        impl $name {
            /// A fresh random key.
            pub fn generate() -> Result<Self, rand::Error> {
                SecretBytes::random(KEY_LEN).map(Self)
            }

            /// Takes exactly 32 bytes; `None` otherwise.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                (bytes.len() == KEY_LEN).then(|| Self(SecretBytes::from_slice(bytes)))
            }

            /// Wraps secret bytes of exactly 32 bytes.
            pub fn from_secret(bytes: SecretBytes) -> Option<Self> {
                (bytes.len() == KEY_LEN).then_some(Self(bytes))
            }

            /// The 32 key bytes, for cryptographic use only.
            pub fn expose(&self) -> &[u8] {
                self.0.expose()
            }

            /// Constant-time comparison with raw bytes.
            pub fn ct_eq(&self, other: &[u8]) -> bool {
                self.0.ct_eq(other)
            }

            /// An independent copy (explicit: key types are not `Clone`).
            pub fn duplicate(&self) -> Self {
                Self(self.0.duplicate())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
}

key32!(
    /// The root key: encrypts the keyring. Never stored in the clear; wrapped by the unseal key.
    RootKey
);
key32!(
    /// One keyring term's data-encryption key.
    DataKey
);
key32!(
    /// The unseal key (key-encryption key): combined from Shamir shares or read from the static
    /// seal's source; decrypts the stored root key.
    UnsealKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = RootKey::generate().unwrap();
        assert_eq!(format!("{k:?}"), "[redacted]");
        assert_eq!(format!("{:?}", SecretBytes::from_slice(b"hunter2")), "[redacted]");
    }

    #[test]
    fn keys_are_exactly_32_bytes() {
        assert!(DataKey::from_slice(&[0; 31]).is_none());
        assert!(DataKey::from_slice(&[0; 33]).is_none());
        let k = DataKey::from_slice(&[5; 32]).unwrap();
        assert!(k.ct_eq(&[5; 32]));
        assert!(!k.ct_eq(&[6; 32]));
        assert!(!k.ct_eq(&[5; 31]));
    }

    #[test]
    fn random_keys_differ() {
        let a = RootKey::generate().unwrap();
        let b = RootKey::generate().unwrap();
        assert!(!a.ct_eq(b.expose()));
    }
}
