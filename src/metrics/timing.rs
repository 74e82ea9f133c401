//! [`Timing`]: a latency histogram made of atomics, so recording takes no lock and allocates
//! nothing. Besides the Prometheus buckets it keeps the count, sum, minimum, maximum and sum of
//! squares, which the JSON format (Vault's `Samples`) reports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (100 µs to 10 s).
pub const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// [`BUCKETS`] in nanoseconds, for the comparison on the recording path.
const BUCKETS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A latency histogram. Every field is updated with relaxed atomics: a scrape may see an
/// observation in the count before it sees it in the sum, which Prometheus tolerates.
#[derive(Debug)]
pub struct Timing {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
    min_ns: AtomicU64,
    max_ns: AtomicU64,
    /// Sum of squared seconds, as `f64` bits.
    sum_sq: AtomicU64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            min_ns: AtomicU64::new(u64::MAX),
            max_ns: AtomicU64::new(0),
            sum_sq: AtomicU64::new(0f64.to_bits()),
        }
    }
}

/// A [`Timing`] read at one moment, in seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TimingSnapshot {
    pub count: u64,
    pub sum: f64,
    /// Smallest and largest observation (0 when there is none).
    pub min: f64,
    pub max: f64,
    pub sum_sq: f64,
    /// `(upper bound, observations in this bucket)`, not cumulative, without `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl Timing {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let slot = BUCKETS_NS.iter().position(|b| ns <= *b).unwrap_or(BUCKETS_NS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.min_ns.fetch_min(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        let secs = d.as_secs_f64();
        let _ = self.sum_sq.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            Some((f64::from_bits(bits) + secs * secs).to_bits())
        });
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The current values.
    pub fn snapshot(&self) -> TimingSnapshot {
        let count = self.count();
        let secs = |ns: u64| ns as f64 / 1e9;
        let min = self.min_ns.load(Ordering::Relaxed);
        TimingSnapshot {
            count,
            sum: secs(self.sum_ns.load(Ordering::Relaxed)),
            min: if min == u64::MAX { 0.0 } else { secs(min) },
            max: secs(self.max_ns.load(Ordering::Relaxed)),
            sum_sq: f64::from_bits(self.sum_sq.load(Ordering::Relaxed)),
            buckets: BUCKETS
                .iter()
                .zip(&self.buckets)
                .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

impl TimingSnapshot {
    /// Mean observation (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// Sample standard deviation, as go-metrics computes it (0 below two observations).
    pub fn stddev(&self) -> f64 {
        if self.count < 2 {
            return 0.0;
        }
        let n = self.count as f64;
        let var = (self.sum_sq - self.sum * self.sum / n) / (n - 1.0);
        var.max(0.0).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_summaries_follow() {
        let t = Timing::default();
        assert_eq!(t.snapshot().min, 0.0);
        t.observe(Duration::from_micros(50)); // first bucket
        t.observe(Duration::from_micros(100)); // bound is inclusive
        t.observe(Duration::from_millis(3)); // 5 ms bucket
        t.observe(Duration::from_secs(60)); // +Inf
        let s = t.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.0001, 2));
        assert_eq!(s.buckets[5], (0.005, 1));
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 3, "the +Inf one is only in the count");
        assert!((s.min - 0.00005).abs() < 1e-12);
        assert!((s.max - 60.0).abs() < 1e-9);
        assert!((s.sum - 60.00315).abs() < 1e-9);
        let t = Timing::default();
        t.observe(Duration::from_millis(1));
        t.observe(Duration::from_millis(3));
        let s = t.snapshot();
        assert!((s.mean() - 0.002).abs() < 1e-12);
        assert!((s.stddev() - 2f64.sqrt() / 1000.0).abs() < 1e-9, "{}", s.stddev());
    }
}
