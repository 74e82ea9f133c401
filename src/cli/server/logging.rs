//! The server's log: the subscriber, and a limit on warnings that repeat.
//!
//! Some warnings come once per request or per Raft round while a fault lasts: with one node of
//! three down, openraft logs an error for the dead peer on every read-index round (measured:
//! ~2,000 lines a second under a follower-read load, half a megabyte a second of log), and a
//! standby logs every request it could not forward while the leader is away. An outage is when
//! operators read the log, and a log that fills its disk is a second outage; anyone who can send
//! requests could also fill it. So each warning or error call site passes [`BURST`] events per
//! [`WINDOW`]; the rest are counted, and once per window a line says how many were left out of
//! which call site.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Events of one call site passed per window.
const BURST: u32 = 20;
/// The window.
const WINDOW: Duration = Duration::from_secs(10);
/// Target of the line that reports suppressed repeats (never limited itself).
const REPORT_TARGET: &str = "coffer::log";

/// Installs the subscriber: `level` for coffer, quieter defaults for the libraries, the repeat
/// limit on warnings and errors.
pub(super) fn init(level: &str) {
    let limit = Arc::new(RepeatLimit::new(BURST, WINDOW));
    use std::io::IsTerminal;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter(level, Arc::clone(&limit)));
    if tracing_subscriber::registry().with(layer).try_init().is_ok() {
        let spawned = std::thread::Builder::new().name("coffer-log-repeats".into()).spawn(move || loop {
            std::thread::sleep(WINDOW);
            for (site, n) in limit.take_suppressed() {
                tracing::warn!(target: REPORT_TARGET, suppressed = n, site, "repeated log lines left out");
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the thread that reports suppressed log lines");
        }
    }
}

/// The level filter (`level` for coffer, quieter defaults for the libraries) followed by the
/// repeat limit.
fn filter<S: Subscriber + for<'a> LookupSpan<'a>>(
    level: &str,
    limit: Arc<RepeatLimit<Identifier>>,
) -> impl Filter<S> {
    // openraft narrates every election and membership change at info, with whole state dumps;
    // operators see its warnings unless they ask for debug or trace.
    let verbose = matches!(level.to_ascii_lowercase().as_str(), "debug" | "trace");
    let raft = if verbose { "" } else { ",openraft=warn" };
    let levels = tracing_subscriber::EnvFilter::try_new(format!(
        "{level},sled=warn,hyper=warn,h2=warn,rustls=warn{raft}"
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    levels.and(Repeats(limit))
}

/// Passes at most `burst` events per key in each `window` (from the key's first event of the
/// window) and counts the others.
pub(crate) struct RepeatLimit<K> {
    burst: u32,
    window: Duration,
    keys: Mutex<HashMap<K, Seen>>,
}

struct Seen {
    since: Instant,
    passed: u32,
    suppressed: u64,
    name: &'static str,
}

impl<K: Hash + Eq> RepeatLimit<K> {
    pub(crate) fn new(burst: u32, window: Duration) -> Self {
        Self { burst, window, keys: Mutex::new(HashMap::new()) }
    }

    /// Whether an event of `key` (called `name` in reports) at `now` passes.
    pub(crate) fn admit(&self, key: K, name: &'static str, now: Instant) -> bool {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let seen = keys.entry(key).or_insert(Seen { since: now, passed: 0, suppressed: 0, name });
        if now.saturating_duration_since(seen.since) >= self.window {
            seen.since = now;
            seen.passed = 0;
        }
        if seen.passed < self.burst {
            seen.passed += 1;
            true
        } else {
            seen.suppressed += 1;
            false
        }
    }

    /// The names of the keys with events left out since the last call, and how many.
    pub(crate) fn take_suppressed(&self) -> Vec<(&'static str, u64)> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for seen in keys.values_mut().filter(|s| s.suppressed > 0) {
            out.push((seen.name, std::mem::take(&mut seen.suppressed)));
        }
        out
    }
}

/// A call site's name for the report: `file:line`, a dependency's file from its crate's
/// directory on (`openraft-0.9.25/src/…`) rather than from the build machine's registry path.
fn site(name: &'static str) -> &'static str {
    let name = name.strip_prefix("event ").unwrap_or(name);
    match name.find("/registry/src/") {
        Some(at) => {
            let rest = &name[at + "/registry/src/".len()..];
            rest.split_once('/').map_or(rest, |(_, file)| file)
        }
        None => name,
    }
}

/// The per-layer filter applying a [`RepeatLimit`] to warning and error events by call site.
struct Repeats(Arc<RepeatLimit<Identifier>>);

fn limited(meta: &Metadata<'_>) -> bool {
    meta.is_event() && matches!(*meta.level(), Level::WARN | Level::ERROR) && meta.target() != REPORT_TARGET
}

impl<S> Filter<S> for Repeats {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !limited(meta) || self.0.admit(meta.callsite(), site(meta.name()), Instant::now())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if limited(meta) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    /// Passes every level, so the level filter's hint stands. Without a hint, `And` gives none,
    /// the global maximum becomes TRACE, and every `log` record of sled (and every disabled
    /// `tracing` call site's level check) reaches the filter at run time.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_named_from_the_crate_directory_on() {
        assert_eq!(
            site("event /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/openraft-0.9.25/src/core/raft_core.rs:383"),
            "openraft-0.9.25/src/core/raft_core.rs:383"
        );
        assert_eq!(site("event src/cluster/forward.rs:140"), "src/cluster/forward.rs:140");
    }

    #[test]
    fn the_level_filter_keeps_its_hint_through_the_repeat_limit() {
        // The hint is the global maximum level: with none, every disabled `tracing` call site
        // and every `log` record of sled reached the filter at run time (~3 % of a leader's
        // CPU under writes, measured with perf).
        for (level, hint) in
            [("warn", LevelFilter::WARN), ("info", LevelFilter::INFO), ("debug", LevelFilter::DEBUG)]
        {
            let f = filter::<tracing_subscriber::Registry>(level, Arc::new(RepeatLimit::new(BURST, WINDOW)));
            assert_eq!(Filter::<tracing_subscriber::Registry>::max_level_hint(&f), Some(hint), "{level}");
        }
    }

    #[test]
    fn a_key_passes_its_burst_per_window_and_the_rest_is_counted() {
        let limit = RepeatLimit::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let passed: Vec<bool> = (0..5).map(|i| limit.admit("a", "site a", at(i))).collect();
        assert_eq!(passed, [true, true, false, false, false]);
        // Another key has a budget of its own.
        assert!(limit.admit("b", "site b", at(5)));
        assert_eq!(limit.take_suppressed(), [("site a", 3)]);
        assert!(limit.take_suppressed().is_empty(), "counts are reset once reported");
        // A new window starts ten seconds after the first event of the last one.
        assert!(!limit.admit("a", "site a", at(9)));
        assert!(limit.admit("a", "site a", at(10)));
        assert!(limit.admit("a", "site a", at(11)));
        assert!(!limit.admit("a", "site a", at(12)));
        assert_eq!(limit.take_suppressed(), [("site a", 2)]);
    }
}
