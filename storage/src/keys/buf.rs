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

    /// An empty buffer that can take `capacity` bytes without reallocating (fill it with
    /// [`Self::extend_within_capacity`] or [`Self::fill_spare`]; skips the zeroing pass of
    /// [`Self::zeroed`]).
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Appends `bytes` if they fit in the spare capacity (a reallocation would leave a copy of
    /// the secret behind); false, and nothing appended, if they do not.
    #[must_use]
    pub fn extend_within_capacity(&mut self, bytes: &[u8]) -> bool {
        if self.0.capacity() - self.0.len() < bytes.len() {
            return false;
        }
        self.0.extend_from_slice(bytes);
        true
    }

    /// Lets `fill` append to the buffer in place (a decoder writing into the spare capacity).
    /// `fill` must not append more than the spare capacity: a reallocation would free the old
    /// allocation unerased, so growth is refused afterwards as a bug (debug builds panic;
    /// release builds erase and empty the new allocation, losing the bytes rather than keeping
    /// an unaccounted copy). Bytes written to the spare capacity and not appended are erased
    /// with the buffer.
    pub fn fill_spare<R>(&mut self, fill: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let (before, ptr) = (self.0.capacity(), self.0.as_ptr());
        let out = fill(&mut self.0);
        if self.0.capacity() != before || self.0.as_ptr() != ptr {
            debug_assert!(false, "SecretVec::fill_spare reallocated the buffer");
            self.wipe();
            self.0.clear();
        }
        out
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
        if let Some(tail) = self.0.get_mut(len..).filter(|t| !t.is_empty()) {
            tail.zeroize();
        }
        self.0.truncate(len);
    }

    /// The bytes as an ordinary `Vec`, for a caller that found them not to be secret (a
    /// ciphertext decoded by the same routine as a plaintext).
    pub fn declassify(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    /// Moves `range` to the front and cuts the buffer to its length, erasing what is cut off
    /// (a plaintext decrypted in place between its nonce and its tag).
    pub fn keep_range(&mut self, range: std::ops::Range<usize>) -> bool {
        if range.start > range.end || range.end > self.0.len() {
            return false;
        }
        let len = range.len();
        self.0.copy_within(range, 0);
        self.truncate(len);
        true
    }

    /// Writes zeros over every byte of the allocation. Empty parts are skipped: `zeroize`
    /// calls `memset` even for zero bytes, and glibc's AVX-512 `memset` does a masked store
    /// for them — at the dangling address of an unallocated `Vec` that store takes a
    /// fault-suppression microcode assist, which made the drops of a transit batch's empty
    /// contexts and associated data ~10 % of its CPU.
    fn wipe(&mut self) {
        let spare = self.0.spare_capacity_mut();
        if !spare.is_empty() {
            spare.zeroize();
        }
        if !self.0.is_empty() {
            self.0.as_mut_slice().zeroize();
        }
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
    fn filling_stays_within_capacity() {
        let mut s = SecretVec::with_capacity(8);
        assert!(s.extend_within_capacity(b"abc"));
        assert!(!s.extend_within_capacity(b"too long"), "would reallocate");
        s.fill_spare(|v| v.extend_from_slice(b"defgh"));
        assert_eq!(s.expose(), b"abcdefgh");
        assert!(s.keep_range(2..6));
        assert_eq!(s.expose(), b"cdef");
        assert!(!s.keep_range(3..9));
        let (start, end) = (3, 2);
        assert!(!s.keep_range(start..end));
        assert_eq!(s.expose(), b"cdef");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "reallocated")]
    fn filling_beyond_capacity_is_a_bug() {
        let mut s = SecretVec::with_capacity(2);
        s.fill_spare(|v| v.extend_from_slice(b"abcdefgh"));
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
