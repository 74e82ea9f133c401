//! [`SecretVec`]: secret bytes of one request on the ordinary heap.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// Secret bytes on the heap, not locked in memory: a decrypted value or a decoded plaintext that
/// lives for one request (long-lived key material is [`super::SecretBytes`]).
///
/// Zeroized when dropped, spare capacity included, with `zeroize`'s bulk fill of a slice (one
/// `memset` and an optimisation barrier). `Zeroizing<Vec<u8>>` erases a `Vec` one volatile byte
/// store at a time, which was ~4 % of a transit batch (1 KiB items). The buffer never grows, so
/// no reallocation leaves a copy behind. No `Clone`, no `PartialEq`; `Debug` prints `[redacted]`.
#[derive(Default)]
pub struct SecretVec(Vec<u8>);

impl SecretVec {
    /// `len` zero bytes, to be filled in place.
    pub fn zeroed(len: usize) -> Self {
        Self(vec![0; len])
    }

    /// Takes a buffer that already holds a secret (copies made while it grew are the caller's).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Read access. Callers must not copy the bytes anywhere that outlives the operation (logs,
    /// errors, storage keys); any copy must be zeroized.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Write access, to fill the buffer in place.
    pub fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Shortens the buffer to `len` bytes, erasing the bytes cut off.
    pub fn truncate(&mut self, len: usize) {
        if let Some(tail) = self.0.get_mut(len..) {
            tail.zeroize();
        }
        self.0.truncate(len);
    }

    /// The bytes as an ordinary `Vec`, for a caller that found them not to be secret (a
    /// ciphertext decoded by the same routine as a plaintext).
    pub fn declassify(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    /// Writes zeros over every byte of the allocation.
    fn wipe(&mut self) {
        self.0.spare_capacity_mut().zeroize();
        self.0.as_mut_slice().zeroize();
    }
}

impl Drop for SecretVec {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl zeroize::ZeroizeOnDrop for SecretVec {}

impl From<Zeroizing<Vec<u8>>> for SecretVec {
    /// Moves the buffer (no copy is made).
    fn from(mut z: Zeroizing<Vec<u8>>) -> Self {
        Self(std::mem::take(&mut *z))
    }
}

impl fmt::Debug for SecretVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiping_zeroes_the_bytes_and_keeps_the_length() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"the plaintext");
        let mut s = SecretVec::from_vec(v);
        s.wipe();
        assert_eq!(s.len(), 13);
        assert!(s.expose().iter().all(|&b| b == 0));
    }

    #[test]
    fn truncating_erases_what_is_cut_off_and_debug_is_redacted() {
        let mut s = SecretVec::from_vec(b"secret-tail".to_vec());
        s.truncate(6);
        assert_eq!(s.expose(), b"secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        let moved = SecretVec::from(Zeroizing::new(b"abc".to_vec()));
        assert_eq!(moved.expose(), b"abc");
        assert_eq!(moved.declassify(), b"abc");
    }
}
