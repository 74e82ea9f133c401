//! The wall clock every time-of-day decision reads (R15).
//!
//! Token and lease TTLs, secret-ID TTLs, wrapping TTLs, creation times and the timestamp the
//! leader puts in each Raft entry read [`now`], never the system clock directly. On a single
//! node [`now`] is the system clock. On a cluster it is the *cluster's* time, so that one node
//! whose clock is off by half an hour changes no TTL decision:
//!
//! * the leader estimates the cluster's time as the **median of the voters' clocks**: each
//!   append-entries answer carries the follower's raw clock, the leader turns it into an offset
//!   (half the round trip corrected) and [`PeerClocks::leader_correction`] takes the median of
//!   its own clock (offset 0) and its peers' — with three voters, one wrong clock, whether the
//!   leader's own or a follower's, is outvoted;
//! * every append-entries request carries the leader's cluster time; a follower adopts it
//!   ([`adopt_leader_time`]), so followers decide TTLs by the leader's estimate, not their own
//!   clock.
//!
//! Raft itself (election timeouts, leases, heartbeats) uses monotonic clocks only and never
//! reads this one.
//!
//! Debug builds read `COFFER_FAULT_CLOCK_SKEW_S` (signed seconds) once and add it to the
//! system clock: the test-only clock offset of the fault harness. Release builds ignore it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// Nanoseconds added to this process's clock to get the cluster's time.
static CORRECTION_NS: AtomicI64 = AtomicI64::new(0);

/// Largest correction ever applied (a clock more than a year off is not skew but a broken
/// host; the node keeps its own clock and logs instead).
const MAX_CORRECTION_NS: i64 = 366 * 24 * 3600 * 1_000_000_000;

#[cfg(debug_assertions)]
fn fault_skew() -> time::Duration {
    static SKEW: std::sync::OnceLock<time::Duration> = std::sync::OnceLock::new();
    *SKEW.get_or_init(|| {
        std::env::var("COFFER_FAULT_CLOCK_SKEW_S")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map(time::Duration::seconds)
            .unwrap_or(time::Duration::ZERO)
    })
}

#[cfg(not(debug_assertions))]
fn fault_skew() -> time::Duration {
    time::Duration::ZERO
}

/// This host's own clock (with the debug-only fault offset), uncorrected.
pub fn raw_now() -> OffsetDateTime {
    OffsetDateTime::now_utc() + fault_skew()
}

/// The cluster's time: this host's clock plus the correction learnt from the cluster.
pub fn now() -> OffsetDateTime {
    raw_now() + time::Duration::nanoseconds(CORRECTION_NS.load(Ordering::Relaxed))
}

/// [`now`] as nanoseconds since the Unix epoch (0 before 1970, which no real clock reports).
pub fn now_unix_ns() -> u64 {
    u64::try_from(now().unix_timestamp_nanos()).unwrap_or(0)
}

/// [`raw_now`] as nanoseconds since the Unix epoch.
pub fn raw_unix_ns() -> i64 {
    i64::try_from(raw_now().unix_timestamp_nanos()).unwrap_or(0)
}

/// The correction in force (cluster time minus this host's clock), in nanoseconds.
pub fn correction_ns() -> i64 {
    CORRECTION_NS.load(Ordering::Relaxed)
}

/// Sets the correction; refuses (and returns false for) one beyond a year.
pub fn set_correction_ns(ns: i64) -> bool {
    if ns.unsigned_abs() > MAX_CORRECTION_NS.unsigned_abs() {
        return false;
    }
    CORRECTION_NS.store(ns, Ordering::Relaxed);
    true
}

/// Follower side: the leader's cluster time `leader_ns` arrived just now; from here on this
/// node's [`now`] follows it. Returns false when the value was refused as absurd.
pub fn adopt_leader_time(leader_ns: i64) -> bool {
    set_correction_ns(leader_ns.saturating_sub(raw_unix_ns()))
}

/// One peer's clock offset as the leader last measured it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    offset_ns: i64,
    at: Instant,
}

/// The leader's view of its peers' clocks.
#[derive(Debug, Default)]
pub struct PeerClocks {
    samples: Mutex<HashMap<u64, Sample>>,
}

impl PeerClocks {
    /// Samples older than this do not count towards the median.
    pub const FRESH: Duration = Duration::from_secs(30);

    /// Records a peer's clock: `sent_raw_ns` is this host's raw clock when the request left,
    /// `rtt` the round trip, `peer_raw_ns` the peer's raw clock in its answer.
    pub fn observe(&self, peer: u64, sent_raw_ns: i64, rtt: Duration, peer_raw_ns: i64) {
        let half = i64::try_from(rtt.as_nanos() / 2).unwrap_or(i64::MAX);
        let offset_ns = peer_raw_ns.saturating_sub(sent_raw_ns.saturating_add(half));
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.insert(peer, Sample { offset_ns, at: Instant::now() });
    }

    /// Forgets a peer (removed from the cluster).
    pub fn forget(&self, peer: u64) {
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).remove(&peer);
    }

    /// The correction a leader should apply: the median of its own offset (0) and its peers'
    /// fresh ones. With an even count the median is an interval; the current correction is kept
    /// if it lies inside, else moved to the nearer end (so a leader that adopted the right time
    /// as a follower keeps it while only one peer has answered). `None` without fresh samples.
    pub fn leader_correction(&self, current_ns: i64) -> Option<i64> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let mut offsets: Vec<i64> =
            s.values().filter(|x| x.at.elapsed() <= Self::FRESH).map(|x| x.offset_ns).collect();
        if offsets.is_empty() {
            return None;
        }
        offsets.push(0);
        offsets.sort_unstable();
        let n = offsets.len();
        if n % 2 == 1 {
            Some(offsets[n / 2])
        } else {
            Some(current_ns.clamp(offsets[n / 2 - 1], offsets[n / 2]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN30: i64 = 30 * 60 * 1_000_000_000;

    fn clocks(offsets: &[(u64, i64)]) -> PeerClocks {
        let c = PeerClocks::default();
        for &(peer, off) in offsets {
            // A zero round trip: the offset is peer - sent.
            c.observe(peer, 1_000, Duration::ZERO, 1_000 + off);
        }
        c
    }

    #[test]
    fn a_follower_thirty_minutes_off_is_outvoted() {
        let c = clocks(&[(2, 3_000_000), (3, MIN30)]);
        assert_eq!(c.leader_correction(0), Some(3_000_000));
        let c = clocks(&[(2, -2_000_000), (3, -MIN30)]);
        assert_eq!(c.leader_correction(0), Some(-2_000_000));
    }

    #[test]
    fn a_leader_thirty_minutes_off_corrects_itself() {
        // The leader runs 30 min fast: both followers look 30 min slow to it.
        let c = clocks(&[(1, -MIN30 + 1_000_000), (3, -MIN30 - 1_000_000)]);
        assert_eq!(c.leader_correction(0), Some(-MIN30 + 1_000_000));
        let c = clocks(&[(1, MIN30), (3, MIN30 + 5)]);
        assert_eq!(c.leader_correction(0), Some(MIN30));
    }

    #[test]
    fn with_one_peer_the_current_correction_is_kept_inside_the_interval() {
        // A skewed leader that adopted the right time as a follower keeps it...
        let c = clocks(&[(2, -MIN30)]);
        assert_eq!(c.leader_correction(-MIN30 + 7), Some(-MIN30 + 7));
        // ...and an honest leader with one skewed follower keeps its own clock.
        let c = clocks(&[(2, MIN30)]);
        assert_eq!(c.leader_correction(0), Some(0));
        // Outside the interval it moves to the nearer end.
        assert_eq!(c.leader_correction(-5), Some(0));
        assert_eq!(c.leader_correction(MIN30 + 9), Some(MIN30));
    }

    #[test]
    fn no_fresh_samples_means_no_opinion() {
        assert_eq!(PeerClocks::default().leader_correction(42), None);
    }

    #[test]
    fn half_the_round_trip_is_taken_off() {
        let c = PeerClocks::default();
        // Sent at 0, answered after 10 ms with the peer's clock reading 5 ms: the peer read its
        // clock half-way, so the clocks agree.
        c.observe(2, 0, Duration::from_millis(10), 5_000_000);
        c.observe(3, 0, Duration::from_millis(10), 5_000_000);
        assert_eq!(c.leader_correction(0), Some(0));
    }

    #[test]
    fn absurd_corrections_are_refused() {
        let before = correction_ns();
        assert!(!set_correction_ns(i64::MAX));
        assert!(!adopt_leader_time(i64::MIN));
        assert_eq!(correction_ns(), before);
    }
}
