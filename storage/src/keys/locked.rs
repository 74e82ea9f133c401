//! Locked, non-dumpable memory for key material — the one module in coffer with `unsafe` code.
//!
//! Every [`LockedBox`] owns whole pages obtained from the global allocator with page alignment,
//! so `mlock`/`munlock` on its range can never affect another allocation's lock state. The pages
//! are `mlock`ed (never swapped out) and marked `MADV_DONTDUMP` (never in a core dump); on drop
//! they are zeroized, unlocked and freed. Locking can be switched off process-wide
//! ([`set_enabled`], from the `disable_mlock` setting); failures to lock are counted and reported
//! once, never fatal here (the server decides at start whether locking works).
//!
//! Safety argument, once for the whole module: `ptr` is a live allocation of `cap` bytes with
//! page alignment, owned exclusively by the box (like `Box<[u8]>`), `len <= cap`, and the
//! memory is initialised (allocated zeroed). The libc calls receive exactly that range.

#![allow(unsafe_code)]

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use zeroize::Zeroize;

static ENABLED: AtomicBool = AtomicBool::new(true);
static LOCK_FAILURES: AtomicU64 = AtomicU64::new(0);
static LOCKED_BYTES: AtomicU64 = AtomicU64::new(0);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Turns `mlock` on or off for boxes created from now on.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::SeqCst);
}

/// Whether new boxes are locked.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// Number of allocations that could not be locked.
pub fn lock_failures() -> u64 {
    LOCK_FAILURES.load(Ordering::Relaxed)
}

/// Bytes currently locked by live boxes.
pub fn locked_bytes() -> u64 {
    LOCKED_BYTES.load(Ordering::Relaxed)
}

/// Tries to lock one page; `Err` carries the OS error. Used by the server at start to refuse to
/// run without working `mlock` unless the operator disabled it.
pub fn probe() -> Result<(), std::io::Error> {
    let b = LockedBox::new_inner(1, true);
    if b.locked {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(b.lock_errno))
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// A fixed-length, zeroed-on-drop byte buffer in locked, non-dumpable pages.
pub struct LockedBox {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
    align: usize,
    locked: bool,
    lock_errno: i32,
}

// SAFETY: LockedBox owns its allocation exclusively, like Box<[u8]>; &LockedBox only reads.
unsafe impl Send for LockedBox {}
// SAFETY: as above; shared references give read-only access.
unsafe impl Sync for LockedBox {}

impl LockedBox {
    /// A zeroed buffer of `len` bytes (at least one page is reserved).
    pub fn new(len: usize) -> Self {
        Self::new_inner(len, enabled())
    }

    fn new_inner(len: usize, lock: bool) -> Self {
        let page = page_size();
        let cap = len.max(1).div_ceil(page) * page;
        let Ok(layout) = Layout::from_size_align(cap, page) else {
            // Only reachable for absurd lengths (overflowing isize).
            handle_alloc_error(Layout::new::<u8>());
        };
        // SAFETY: layout has non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else { handle_alloc_error(layout) };
        let mut locked = false;
        let mut lock_errno = 0;
        if lock {
            // SAFETY: [ptr, ptr+cap) is our live allocation.
            let rc = unsafe { libc::mlock(ptr.as_ptr().cast(), cap) };
            if rc == 0 {
                locked = true;
                LOCKED_BYTES.fetch_add(cap as u64, Ordering::Relaxed);
            } else {
                lock_errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                LOCK_FAILURES.fetch_add(1, Ordering::Relaxed);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        errno = lock_errno,
                        "could not mlock key material; raise RLIMIT_MEMLOCK or grant CAP_IPC_LOCK"
                    );
                }
            }
        }
        // SAFETY: same range; MADV_DONTDUMP only changes core-dump inclusion.
        unsafe {
            libc::madvise(ptr.as_ptr().cast(), cap, libc::MADV_DONTDUMP);
        }
        Self { ptr, len, cap, align: page, locked, lock_errno }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialised bytes and we hold &self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for len initialised bytes and we hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Whether the pages are locked in RAM.
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}

impl Drop for LockedBox {
    fn drop(&mut self) {
        // SAFETY: the whole capacity is ours and initialised.
        let all = unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) };
        all.zeroize();
        if self.locked {
            // SAFETY: the range we locked.
            unsafe {
                libc::munlock(self.ptr.as_ptr().cast(), self.cap);
            }
            LOCKED_BYTES.fetch_sub(self.cap as u64, Ordering::Relaxed);
        }
        // SAFETY: allocated in new_inner with exactly this layout.
        unsafe {
            dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.cap, self.align));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_bytes_and_zeroes_capacity() {
        let mut b = LockedBox::new(33);
        assert_eq!(b.as_slice().len(), 33);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice().copy_from_slice(&[7u8; 33]);
        assert_eq!(b.as_slice(), &[7u8; 33]);
    }

    #[test]
    fn zero_length_is_fine() {
        let b = LockedBox::new(0);
        assert!(b.as_slice().is_empty());
    }
}
