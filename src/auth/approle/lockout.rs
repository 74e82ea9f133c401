//! User lockout for AppRole logins (Vault's user lockout; security promises S13 and S25).
//!
//! After `threshold` failed logins (default 5) for one role ID, each within `counter_reset`
//! (default 15 min) of the previous one, that role ID is locked for `duration` (default 15 min)
//! from the last failure. While locked, logins are refused without being counted; a successful
//! login clears the counter. The knobs are the mount's `user_lockout_config` tune.
//!
//! * Failures are counted in memory ([`Failures`]), never on disk: a failed login of an unknown
//!   role ID writes nothing (S25), so a flood of them costs no fsync and no storage growth. The
//!   map has a fixed capacity; when it is full the least recently failed entry goes, taking
//!   entries of role IDs that belong to no role before those of real roles, so a flood of random
//!   role IDs cannot push a real role's counter out and reset it.
//! * Only a lockout itself is persisted (`lockout/<hmac>` in the mount's view): one write when a
//!   failure reaches the threshold for a role ID that names an existing role. Logins read it, so
//!   a lockout survives a restart and a leader change. Expired records are removed by tidy or by
//!   the next successful login.
//! * Cluster trade-off: the counters are per node, as Vault's are (Vault keeps lockout state in
//!   memory on each node). On a cluster (DESIGN §2.3) a login issues a token, so it is a
//!   leader-bound write and one node counts a role ID's failures; after a leader change the new
//!   leader starts from zero for role IDs not yet locked, while lockouts already reached hold on
//!   every node because they are stored. An attacker gains at most `threshold - 1` attempts per
//!   leader change (or per node, should logins ever be served by several nodes). Making the
//!   count itself consistent would mean a replicated write per failed login, which is what S25
//!   rules out.
//! * The key is an HMAC of the role ID trimmed and lower-cased, so whitespace and case variants
//!   count together (CVE-2025-6004 was two code paths normalising names differently).
//! * Every failure that answers `invalid role or secret ID` counts, whether or not the role ID
//!   exists (in memory, so known and unknown role IDs cost the same); only the lockout write at
//!   the threshold differs, once per lockout.
//! * A locked-out login gets the same 400 `invalid role or secret ID` as any other failure, after
//!   the same reads (Vault answers 403 `permission denied`): the answer reveals nothing about
//!   whether the role ID exists, the secret was right, or a lockout is in force (S6).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::store::Store;
use crate::core::error::{Error, Result};
use crate::core::mounts::MountConfig;
use coffer_storage::{Batch, View};

/// Vault's default number of failures before a lockout.
pub const DEFAULT_THRESHOLD: u64 = 5;
/// Vault's default lockout duration (seconds).
pub const DEFAULT_DURATION: u64 = 15 * 60;
/// Vault's default time without failures after which the counter restarts (seconds).
pub const DEFAULT_COUNTER_RESET: u64 = 15 * 60;
/// How many role IDs one mount counts failures for at a time (about 1 MiB at most).
pub const FAILURE_CAPACITY: usize = 4096;

/// Format version of lockout records.
const LOCKOUT_VERSION: u8 = 1;

const NS: i128 = 1_000_000_000;

/// The effective lockout settings of a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub threshold: u64,
    /// Seconds.
    pub duration: u64,
    /// Seconds.
    pub counter_reset: u64,
}

impl Policy {
    /// The mount's settings with Vault's defaults for unset values; `None` when disabled.
    pub fn for_mount(cfg: &MountConfig) -> Option<Self> {
        let c = cfg.user_lockout_config.clone().unwrap_or_default();
        if c.disable_lockout {
            return None;
        }
        let or = |v: u64, d: u64| if v == 0 { d } else { v };
        Some(Self {
            threshold: or(c.lockout_threshold, DEFAULT_THRESHOLD),
            duration: or(c.lockout_duration, DEFAULT_DURATION),
            counter_reset: or(c.lockout_counter_reset, DEFAULT_COUNTER_RESET),
        })
    }

    fn locked(&self, count: u64, last_failed_ns: i128, now: OffsetDateTime) -> bool {
        count >= self.threshold
            && now.unix_timestamp_nanos() < last_failed_ns + i128::from(self.duration) * NS
    }
}

/// A stored lockout: the failure count when it was reached and the time of that failure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub v: u8,
    pub count: u64,
    /// Unix nanoseconds of the last counted failure.
    pub last_failed_ns: i128,
}

impl Record {
    fn locked(&self, p: &Policy, now: OffsetDateTime) -> bool {
        p.locked(self.count, self.last_failed_ns, now)
    }

    /// Neither locked nor still counting at `now`: the record can go.
    pub fn stale(&self, p: &Policy, now: OffsetDateTime) -> bool {
        let keep = i128::from(p.duration.max(p.counter_reset)) * NS;
        now.unix_timestamp_nanos() >= self.last_failed_ns + keep
    }
}

/// Decodes a stored record.
pub fn decode(raw: &[u8]) -> Result<Record> {
    let r: Record = serde_json::from_slice(raw)
        .map_err(|e| Error::internal(format!("corrupt approle lockout record: {e}")))?;
    if r.v != LOCKOUT_VERSION {
        return Err(Error::internal(format!("unsupported approle lockout version {}", r.v)));
    }
    Ok(r)
}

/// The failure counter of one role ID.
#[derive(Debug)]
struct Counter {
    count: u64,
    last_failed_ns: i128,
    /// Some failure under this key named an existing role.
    known: bool,
    /// Position in the eviction order.
    tick: u64,
}

#[derive(Debug, Default)]
struct Counters {
    /// By storage key (`lockout/<hmac>`): no role ID in the clear, even in memory.
    map: HashMap<String, Counter>,
    /// Eviction order (least recently failed first) of counters of no known role…
    unknown: BTreeMap<u64, String>,
    /// …and of counters of existing roles, evicted only when no other is left.
    known: BTreeMap<u64, String>,
    tick: u64,
}

impl Counters {
    fn order(&mut self, known: bool) -> &mut BTreeMap<u64, String> {
        if known {
            &mut self.known
        } else {
            &mut self.unknown
        }
    }

    /// Drops the least recently failed counter, unknown role IDs first.
    fn evict_one(&mut self) {
        while let Some((tick, key)) = self.unknown.pop_first().or_else(|| self.known.pop_first()) {
            if self.map.get(&key).is_some_and(|c| c.tick == tick) {
                self.map.remove(&key);
                return;
            }
        }
        // No order entry left for a full map: only a panic half-way through an update (see
        // `Failures::counters`) gets here. Start over rather than loop.
        self.map.clear();
    }
}

/// The in-memory failure counters of one mount on this node, at most `capacity` of them.
#[derive(Debug)]
pub struct Failures {
    capacity: usize,
    inner: Mutex<Counters>,
}

impl Default for Failures {
    fn default() -> Self {
        Self::with_capacity(FAILURE_CAPACITY)
    }
}

impl Failures {
    /// Counters for at most `capacity` role IDs (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new(Counters::default()) }
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        // Every change below keeps the map and the orders consistent or merely leaves a stale
        // order entry (skipped by `evict_one`), so a poisoned lock still holds usable counters.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many role IDs are being counted.
    pub fn len(&self) -> usize {
        self.counters().map.len()
    }

    /// True when no failure is being counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn locked(&self, key: &str, p: &Policy, now: OffsetDateTime) -> bool {
        self.counters().map.get(key).is_some_and(|c| p.locked(c.count, c.last_failed_ns, now))
    }

    /// Counts a failure of `key`, `known` when the role ID names an existing role. Returns the
    /// record to persist when this failure locks out a role ID known to belong to a role.
    fn fail(&self, key: &str, known: bool, p: &Policy, now: OffsetDateTime) -> Option<Record> {
        let now_ns = now.unix_timestamp_nanos();
        let mut c = self.counters();
        c.tick += 1;
        let tick = c.tick;
        let counter = match c.map.remove(key) {
            Some(old) if p.locked(old.count, old.last_failed_ns, now) => {
                // Not counted while locked (Vault does not extend lockouts).
                c.map.insert(key.to_owned(), old);
                return None;
            }
            Some(old) => {
                c.order(old.known).remove(&old.tick);
                let recent = now_ns <= old.last_failed_ns + i128::from(p.counter_reset) * NS;
                Counter {
                    count: if recent { old.count.saturating_add(1) } else { 1 },
                    last_failed_ns: now_ns,
                    known: old.known || known,
                    tick,
                }
            }
            None => {
                while c.map.len() >= self.capacity {
                    c.evict_one();
                }
                Counter { count: 1, last_failed_ns: now_ns, known, tick }
            }
        };
        let lockout = (counter.known && p.locked(counter.count, counter.last_failed_ns, now))
            .then_some(Record { v: LOCKOUT_VERSION, count: counter.count, last_failed_ns: now_ns });
        c.order(counter.known).insert(tick, key.to_owned());
        c.map.insert(key.to_owned(), counter);
        lockout
    }

    fn clear(&self, key: &str) {
        let mut c = self.counters();
        if let Some(old) = c.map.remove(key) {
            c.order(old.known).remove(&old.tick);
        }
    }
}

/// The lockout state of one role ID, read at the start of a login.
#[derive(Debug)]
pub struct Lock<'f> {
    key: String,
    policy: Policy,
    failures: &'f Failures,
    /// The stored lockout and its version, when one exists.
    record: Option<(Record, u64)>,
    locked: bool,
}

impl<'f> Lock<'f> {
    /// Reads the state for `role_id` (trimmed and lower-cased before hashing): the counter in
    /// memory and the stored lockout (the same read whether or not the role ID exists).
    pub async fn check(
        store: &Store<'_>,
        failures: &'f Failures,
        policy: Policy,
        role_id: &str,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let key = format!("lockout/{}", store.hmac("lockout", &role_id.trim().to_lowercase()));
        let record = match store.view.get(&key).await? {
            Some(e) => Some((decode(&e.value)?, e.version)),
            None => None,
        };
        let locked = failures.locked(&key, &policy, now)
            || record.as_ref().is_some_and(|(r, _)| r.locked(&policy, now));
        Ok(Self { key, policy, failures, record, locked })
    }

    /// True while the role ID is locked out.
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// Counts a failed login (not while locked: Vault does not extend lockouts). `known` says
    /// whether the role ID named an existing role; only then can the failure write, once, when
    /// it reaches the threshold.
    pub async fn record_failure(&self, view: &View, known: bool, now: OffsetDateTime) -> Result<()> {
        if self.locked {
            return Ok(());
        }
        let Some(rec) = self.failures.fail(&self.key, known, &self.policy, now) else { return Ok(()) };
        // Last writer wins: concurrent lockouts of one role ID store nearly the same record.
        view.apply(Batch::new().put(self.key.clone(), serde_json::to_vec(&rec)?)).await?;
        Ok(())
    }

    /// Clears the counter after a successful login, and the stored lockout if one is left from
    /// before (only if unchanged since it was read: a concurrent lockout wins).
    pub async fn clear(&self, view: &View) -> Result<()> {
        self.failures.clear(&self.key);
        let Some((_, version)) = &self.record else { return Ok(()) };
        view.try_apply(Batch::new().delete(self.key.clone()).require_version(self.key.clone(), *version))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::approle::store::{load_salt, tests::view};
    use crate::core::mounts::UserLockoutConfig;

    #[test]
    fn policy_defaults_and_overrides() {
        let mut cfg = MountConfig::default();
        assert_eq!(Policy::for_mount(&cfg), Some(Policy { threshold: 5, duration: 900, counter_reset: 900 }));
        cfg.user_lockout_config = Some(UserLockoutConfig {
            lockout_threshold: 3,
            lockout_duration: 2,
            ..UserLockoutConfig::default()
        });
        assert_eq!(Policy::for_mount(&cfg), Some(Policy { threshold: 3, duration: 2, counter_reset: 900 }));
        cfg.user_lockout_config =
            Some(UserLockoutConfig { disable_lockout: true, ..UserLockoutConfig::default() });
        assert_eq!(Policy::for_mount(&cfg), None);
    }

    #[tokio::test]
    async fn locks_after_threshold_variants_count_together_and_expire() {
        let (_, v) = view().await;
        let salt = load_salt(&v).await.unwrap();
        let s = Store::new(&v, &salt);
        let f = Failures::default();
        let p = Policy { threshold: 3, duration: 60, counter_reset: 600 };
        let t0 = coffer_storage::clock::now();
        // "Alice" names no role (role IDs match exactly); "alice" does.
        for (i, (id, known)) in [("Alice", false), ("alice", true), (" alice ", true)].iter().enumerate() {
            let l = Lock::check(&s, &f, p, id, t0).await.unwrap();
            assert!(!l.locked(), "locked after {i} failures");
            assert!(v.list("lockout/").await.unwrap().is_empty(), "a failure wrote to storage");
            l.record_failure(&v, *known, t0).await.unwrap();
        }
        assert!(Lock::check(&s, &f, p, "ALICE", t0).await.unwrap().locked());
        assert!(!Lock::check(&s, &f, p, "bob", t0).await.unwrap().locked());
        // The lockout of a real role is stored: a restarted node (new counters) still refuses.
        assert_eq!(v.list("lockout/").await.unwrap().len(), 1);
        assert!(Lock::check(&s, &Failures::default(), p, "alice", t0).await.unwrap().locked());
        // Failures while locked are not counted and do not extend the lockout.
        let l = Lock::check(&s, &f, p, "alice", t0 + Duration::from_secs(30)).await.unwrap();
        l.record_failure(&v, true, t0 + Duration::from_secs(30)).await.unwrap();
        assert!(!Lock::check(&s, &f, p, "alice", t0 + Duration::from_secs(61)).await.unwrap().locked());
        // After the lockout, a success clears the counter and the stored lockout.
        let l = Lock::check(&s, &f, p, "alice", t0 + Duration::from_secs(61)).await.unwrap();
        l.clear(&v).await.unwrap();
        assert!(v.list("lockout/").await.unwrap().is_empty());
        assert!(f.is_empty());
    }

    #[tokio::test]
    async fn counter_resets_after_quiet_period() {
        let (_, v) = view().await;
        let salt = load_salt(&v).await.unwrap();
        let s = Store::new(&v, &salt);
        let f = Failures::default();
        let p = Policy { threshold: 2, duration: 60, counter_reset: 10 };
        let t0 = coffer_storage::clock::now();
        Lock::check(&s, &f, p, "r", t0).await.unwrap().record_failure(&v, true, t0).await.unwrap();
        let t1 = t0 + Duration::from_secs(11);
        Lock::check(&s, &f, p, "r", t1).await.unwrap().record_failure(&v, true, t1).await.unwrap();
        assert!(!Lock::check(&s, &f, p, "r", t1).await.unwrap().locked());
        assert!(v.list("lockout/").await.unwrap().is_empty());
        let t2 = t1 + Duration::from_secs(1);
        Lock::check(&s, &f, p, "r", t2).await.unwrap().record_failure(&v, true, t2).await.unwrap();
        assert!(Lock::check(&s, &f, p, "r", t2).await.unwrap().locked());
        let e = v.list("lockout/").await.unwrap();
        let rec = decode(&v.get(&format!("lockout/{}", e[0])).await.unwrap().unwrap().value).unwrap();
        assert_eq!(rec.count, 2);
        assert!(rec.stale(&p, t2 + Duration::from_secs(60)));
        assert!(!rec.stale(&p, t2 + Duration::from_secs(59)));
    }

    /// S25: a role ID that names no role is locked out in memory like any other, and nothing is
    /// ever written for it.
    #[tokio::test]
    async fn unknown_role_ids_lock_in_memory_and_never_write() {
        let (_, v) = view().await;
        let salt = load_salt(&v).await.unwrap();
        let s = Store::new(&v, &salt);
        let f = Failures::default();
        let p = Policy { threshold: 2, duration: 60, counter_reset: 600 };
        let t0 = coffer_storage::clock::now();
        for _ in 0..5 {
            Lock::check(&s, &f, p, "ghost", t0).await.unwrap().record_failure(&v, false, t0).await.unwrap();
        }
        assert!(Lock::check(&s, &f, p, "ghost", t0).await.unwrap().locked());
        assert!(v.list("lockout/").await.unwrap().is_empty());
    }

    /// The counters never exceed their capacity, and a flood of failures for random role IDs of
    /// no role cannot evict (and so reset) the counter of a real role under attack.
    #[test]
    fn flood_stays_within_capacity_and_keeps_real_roles_counted() {
        let f = Failures::with_capacity(8);
        let p = Policy { threshold: 3, duration: 60, counter_reset: 600 };
        let t0 = coffer_storage::clock::now();
        assert!(f.fail("lockout/real", true, &p, t0).is_none());
        assert!(f.fail("lockout/real", true, &p, t0).is_none());
        for i in 0..1000 {
            assert!(f.fail(&format!("lockout/random-{i}"), false, &p, t0).is_none());
            assert!(f.len() <= 8, "{} counters after {i} failures", f.len());
        }
        assert_eq!(f.len(), 8);
        // The third failure of the real role still counts: locked, and the lockout is returned
        // for storing.
        let rec = f.fail("lockout/real", true, &p, t0).expect("the real role is locked out");
        assert_eq!(rec.count, 3);
        assert!(f.locked("lockout/real", &p, t0));
        // With only real roles left to evict, the least recently failed one goes.
        let p2 = Policy { threshold: 2, ..p };
        let f = Failures::with_capacity(2);
        for k in ["lockout/a", "lockout/b", "lockout/c"] {
            assert!(f.fail(k, true, &p2, t0).is_none());
        }
        assert_eq!(f.len(), 2);
        assert!(f.fail("lockout/b", true, &p2, t0).is_some(), "b was kept: its second failure locks");
        assert!(f.fail("lockout/a", true, &p2, t0).is_none(), "a was evicted: it restarts at 1");
        // The default capacity holds too.
        let f = Failures::default();
        for i in 0..FAILURE_CAPACITY + 500 {
            f.fail(&format!("lockout/{i}"), false, &p, t0);
        }
        assert_eq!(f.len(), FAILURE_CAPACITY);
    }
}
