//! The memory budget for request bodies in flight (security.md S4 and S25).
//!
//! A body is charged to the budget as its bytes arrive, never by the `Content-Length` its client
//! announces: announcing 32 MiB and then stalling holds nothing, so it cannot make other
//! requests wait. Each chunk a request receives is granted by these rules, in order:
//!
//! 1. **Pool.** The chunk is taken from the shared pool when the pool stays within its size and
//!    the connection within its share ([`BodyBudget::per_connection`], a quarter of the pool):
//!    one upload, or one HTTP/2 connection with many streams, cannot take everything. Bodies
//!    larger than [`SMALL_BODY`] may not use the pool's last eighth
//!    ([`BodyBudget::small_reserve`]), so small requests (unseal, logins, kv writes) keep flowing
//!    while large ones wait.
//! 2. **Finisher.** When the pool cannot grant the chunk and no other request is the finisher,
//!    this request becomes the finisher and reads the rest of its body beyond the pool. There
//!    is at most one finisher, so memory stays bounded, and there is always one request that
//!    can complete: without it, requests that each hold part of the pool could wait for each
//!    other until they time out.
//! 3. **Wait.** Otherwise the request waits until another one releases budget. The caller
//!    bounds the wait with the listener's `http_read_timeout`.
//!
//! Bodies held at once are therefore bounded by the pool plus one `max_request_size` (the
//! finisher), plus what hyper buffers per connection before a chunk is charged; the number of
//! connections is bounded by `max_connections`. A request keeps its budget until it has been
//! handled, since its body stays in memory until then.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Bodies of at most this many bytes are small: they may use the pool's reserve.
pub const SMALL_BODY: usize = 64 * 1024;

/// The budget shared by all connections of a listener.
pub struct BodyBudget {
    state: Mutex<State>,
    /// Signalled whenever budget is released.
    released: Notify,
    pool: usize,
    small_reserve: usize,
    per_connection: usize,
}

#[derive(Default)]
struct State {
    /// Bytes granted from the pool and not yet released.
    used: usize,
    /// Whether some request is the finisher.
    finisher: bool,
}

/// What one connection holds from the pool (its HTTP/2 streams share it).
#[derive(Debug, Default)]
pub struct ConnShare {
    /// Changed only under the budget's lock.
    held: AtomicUsize,
}

/// The budget one request body holds; released when dropped.
pub struct Reservation {
    budget: Arc<BodyBudget>,
    conn: Arc<ConnShare>,
    held: usize,
    finisher: bool,
}

impl BodyBudget {
    /// A budget with a pool of `pool` bytes.
    pub fn new(pool: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            released: Notify::new(),
            pool,
            small_reserve: pool / 8,
            per_connection: pool / 4,
        }
    }

    /// Size of the shared pool, in bytes.
    pub fn pool(&self) -> usize {
        self.pool
    }

    /// The part of the pool only small bodies may use, in bytes.
    pub fn small_reserve(&self) -> usize {
        self.small_reserve
    }

    /// The most one connection may hold from the pool, in bytes.
    pub fn per_connection(&self) -> usize {
        self.per_connection
    }

    /// Bytes currently granted from the pool.
    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// An empty reservation for one request body on connection `conn`.
    pub fn reservation(self: &Arc<Self>, conn: &Arc<ConnShare>) -> Reservation {
        Reservation { budget: Arc::clone(self), conn: Arc::clone(conn), held: 0, finisher: false }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The critical sections only do arithmetic; a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Reservation {
    /// Waits until `n` more bytes may be held. `small`: the whole body is at most
    /// [`SMALL_BODY`] bytes. Cancel-safe: dropping the future takes nothing.
    pub async fn grow(&mut self, n: usize, small: bool) {
        let budget = Arc::clone(&self.budget);
        loop {
            let released = budget.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release between the check and the wait is seen.
            released.as_mut().enable();
            if self.try_grow(n, small) {
                return;
            }
            released.await;
        }
    }

    /// Grants `n` more bytes now, or returns `false`.
    pub fn try_grow(&mut self, n: usize, small: bool) -> bool {
        if self.finisher || n == 0 {
            return true;
        }
        let budget = Arc::clone(&self.budget);
        let mut st = budget.lock();
        let limit = if small { budget.pool } else { budget.pool - budget.small_reserve };
        let conn_held = self.conn.held.load(Ordering::Relaxed);
        let fits_pool = st.used.checked_add(n).is_some_and(|u| u <= limit);
        let fits_conn = conn_held.checked_add(n).is_some_and(|c| c <= budget.per_connection);
        if fits_pool && fits_conn {
            st.used += n;
            self.conn.held.store(conn_held + n, Ordering::Relaxed);
            self.held += n;
            return true;
        }
        if !st.finisher {
            st.finisher = true;
            self.finisher = true;
            return true;
        }
        false
    }

    /// Bytes this reservation holds from the pool.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether this request is the finisher (reading beyond the pool).
    pub fn is_finisher(&self) -> bool {
        self.finisher
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held == 0 && !self.finisher {
            return;
        }
        {
            let mut st = self.budget.lock();
            st.used = st.used.saturating_sub(self.held);
            let conn_held = self.conn.held.load(Ordering::Relaxed);
            self.conn.held.store(conn_held.saturating_sub(self.held), Ordering::Relaxed);
            if self.finisher {
                st.finisher = false;
            }
        }
        self.budget.released.notify_waiters();
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("held", &self.held).field("finisher", &self.finisher).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: usize = 1024 * 1024;

    fn budget() -> Arc<BodyBudget> {
        Arc::new(BodyBudget::new(32 * MIB))
    }

    #[test]
    fn a_connection_holds_at_most_its_share() {
        let b = budget();
        let conn = Arc::new(ConnShare::default());
        let mut r1 = b.reservation(&conn);
        let mut r2 = b.reservation(&conn);
        assert!(r1.try_grow(6 * MIB, false));
        assert!(r2.try_grow(2 * MIB, false));
        assert_eq!(b.used(), 8 * MIB);
        // The share is full: the next chunk makes r2 the finisher instead of taking the pool.
        assert!(r2.try_grow(1, false));
        assert!(r2.is_finisher());
        assert_eq!(b.used(), 8 * MIB);
        // A third stream of the same connection must wait: the share is full, the finisher taken.
        let mut r3 = b.reservation(&conn);
        assert!(!r3.try_grow(1024, true));
        // Another connection is not affected.
        let other = Arc::new(ConnShare::default());
        assert!(b.reservation(&other).try_grow(MIB, false));
        drop(r2);
        assert!(r3.try_grow(1024, true), "released share is usable again");
        assert_eq!(b.used(), 6 * MIB + 1024);
    }

    #[test]
    fn large_bodies_leave_the_small_reserve_alone() {
        let b = budget();
        let mut held = Vec::new();
        // Seven connections fill everything but the small reserve with large bodies (4 MiB each).
        for _ in 0..7 {
            let conn = Arc::new(ConnShare::default());
            let mut r = b.reservation(&conn);
            assert!(r.try_grow(4 * MIB, false));
            held.push(r);
        }
        assert_eq!(b.used(), b.pool() - b.small_reserve());
        // An eighth large body becomes the finisher; a ninth has to wait.
        let mut finisher = b.reservation(&Arc::new(ConnShare::default()));
        assert!(finisher.try_grow(MIB, false));
        assert!(finisher.is_finisher());
        assert!(!b.reservation(&Arc::new(ConnShare::default())).try_grow(MIB, false));
        // Small bodies still get the reserve.
        for _ in 0..64 {
            let mut r = b.reservation(&Arc::new(ConnShare::default()));
            assert!(r.try_grow(SMALL_BODY, true));
            assert!(!r.is_finisher());
            held.push(r);
        }
        assert_eq!(b.used(), b.pool());
        drop(held);
        drop(finisher);
        assert_eq!(b.used(), 0);
    }

    #[tokio::test]
    async fn waiters_wake_when_budget_is_released() {
        let b = budget();
        let mut holders = Vec::new();
        for _ in 0..4 {
            let conn = Arc::new(ConnShare::default());
            let mut r = b.reservation(&conn);
            assert!(r.try_grow(b.per_connection(), true));
            holders.push(r);
        }
        let mut finisher = b.reservation(&Arc::new(ConnShare::default()));
        assert!(finisher.try_grow(1, true));
        assert!(finisher.is_finisher());
        let conn = Arc::new(ConnShare::default());
        let mut waiting = b.reservation(&conn);
        {
            let grow = waiting.grow(MIB, false);
            tokio::pin!(grow);
            tokio::select! {
                biased;
                _ = grow.as_mut() => panic!("granted while the pool and the finisher are taken"),
                _ = std::future::ready(()) => {}
            }
            drop(holders.pop());
            tokio::time::timeout(Duration::from_secs(5), grow).await.expect("woken by the release");
        }
        assert_eq!(waiting.held(), MIB);
    }

    #[tokio::test]
    async fn partial_holders_cannot_deadlock() {
        // 40 bodies of 2 MiB each read 1 MiB chunks concurrently from a 32 MiB pool. Without the
        // finisher, the pool fills with half-read bodies that all wait for each other.
        let b = budget();
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let b = Arc::clone(&b);
            tasks.push(tokio::spawn(async move {
                let conn = Arc::new(ConnShare::default());
                let mut r = b.reservation(&conn);
                for _ in 0..2 {
                    r.grow(MIB, false).await;
                    tokio::task::yield_now().await;
                }
                // Hold the finished body for a moment, as a handler would.
                tokio::task::yield_now().await;
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t).await.expect("no deadlock").unwrap();
        }
        assert_eq!(b.used(), 0);
    }
}
