//! User lockout for AppRole logins (Vault's user lockout; security promise S13).
//!
//! After `threshold` failed logins (default 5) for one role ID, each within `counter_reset`
//! (default 15 min) of the previous one, that role ID is locked for `duration` (default 15 min)
//! from the last failure. While locked, logins are refused without being counted; a successful
//! login clears the counter. The knobs are the mount's `user_lockout_config` tune.
//!
//! * State lives in the mount's view (`lockout/<hmac>`), changed with preconditions, so all
//!   nodes of a cluster see and decide the same (Vault keeps it per node in memory).
//! * The key is an HMAC of the role ID trimmed and lower-cased, so whitespace and case variants
//!   count together (CVE-2025-6004 was two code paths normalising names differently).
//! * Every failure that answers `invalid role or secret ID` counts, whether or not the role ID
//!   exists: counting only known role IDs would make known and unknown ones behave (and take
//!   time) differently.
//! * A locked-out login gets the same 400 `invalid role or secret ID` as any other failure, after
//!   the same reads (Vault answers 403 `permission denied`): the answer reveals nothing about
//!   whether the role ID exists, the secret was right, or a lockout is in force (S6).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::store::Store;
use crate::core::error::{is_precondition_failure, Error, Result};
use crate::core::mounts::MountConfig;
use coffer_storage::{Batch, View};

/// Vault's default number of failures before a lockout.
pub const DEFAULT_THRESHOLD: u64 = 5;
/// Vault's default lockout duration (seconds).
pub const DEFAULT_DURATION: u64 = 15 * 60;
/// Vault's default time without failures after which the counter restarts (seconds).
pub const DEFAULT_COUNTER_RESET: u64 = 15 * 60;

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
}

/// A stored failure counter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub v: u8,
    pub count: u64,
    /// Unix nanoseconds of the last counted failure.
    pub last_failed_ns: i128,
}

impl Record {
    fn locked(&self, p: &Policy, now: OffsetDateTime) -> bool {
        self.count >= p.threshold
            && now.unix_timestamp_nanos() < self.last_failed_ns + i128::from(p.duration) * NS
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

/// The lockout state of one role ID, read at the start of a login.
#[derive(Debug)]
pub struct Lock {
    key: String,
    policy: Policy,
    /// The record and its version, when one exists.
    record: Option<(Record, u64)>,
    locked: bool,
}

impl Lock {
    /// Reads the state for `role_id` (trimmed and lower-cased before hashing).
    pub async fn check(
        store: &Store<'_>,
        policy: Policy,
        role_id: &str,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let key = format!("lockout/{}", store.hmac("lockout", &role_id.trim().to_lowercase()));
        let record = match store.view.get(&key).await? {
            Some(e) => Some((decode(&e.value)?, e.version)),
            None => None,
        };
        let locked = record.as_ref().map(|(r, _)| r.locked(&policy, now)).unwrap_or(false);
        Ok(Self { key, policy, record, locked })
    }

    /// True while the role ID is locked out.
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// Counts a failed login (not while locked: Vault does not extend lockouts).
    pub async fn record_failure(&self, view: &View, now: OffsetDateTime) -> Result<()> {
        if self.locked {
            return Ok(());
        }
        let p = self.policy;
        let mut current = self.record.clone();
        loop {
            let count = match &current {
                Some((r, _)) if r.locked(&p, now) => return Ok(()),
                Some((r, _))
                    if now.unix_timestamp_nanos() <= r.last_failed_ns + i128::from(p.counter_reset) * NS =>
                {
                    r.count.saturating_add(1)
                }
                _ => 1,
            };
            let rec = Record { v: LOCKOUT_VERSION, count, last_failed_ns: now.unix_timestamp_nanos() };
            let batch = Batch::new()
                .put(self.key.clone(), serde_json::to_vec(&rec)?)
                .require(self.key.clone(), current.as_ref().map(|(_, v)| *v));
            match view.apply(batch).await {
                Ok(_) => return Ok(()),
                Err(e) if is_precondition_failure(&e) => {
                    current = match view.get(&self.key).await? {
                        Some(e) => Some((decode(&e.value)?, e.version)),
                        None => None,
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Clears the counter after a successful login (only if one exists; a concurrent failure
    /// that changed it wins).
    pub async fn clear(&self, view: &View) -> Result<()> {
        let Some((_, version)) = &self.record else { return Ok(()) };
        match view
            .apply(Batch::new().delete(self.key.clone()).require_version(self.key.clone(), *version))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_precondition_failure(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
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
        let p = Policy { threshold: 3, duration: 60, counter_reset: 600 };
        let t0 = OffsetDateTime::now_utc();
        for (i, id) in ["Alice", "alice", " alice "].iter().enumerate() {
            let l = Lock::check(&s, p, id, t0).await.unwrap();
            assert!(!l.locked(), "locked after {i} failures");
            l.record_failure(&v, t0).await.unwrap();
        }
        assert!(Lock::check(&s, p, "ALICE", t0).await.unwrap().locked());
        assert!(!Lock::check(&s, p, "bob", t0).await.unwrap().locked());
        // Failures while locked are not counted and do not extend the lockout.
        let l = Lock::check(&s, p, "alice", t0 + Duration::from_secs(30)).await.unwrap();
        l.record_failure(&v, t0 + Duration::from_secs(30)).await.unwrap();
        assert!(!Lock::check(&s, p, "alice", t0 + Duration::from_secs(61)).await.unwrap().locked());
        // After the lockout, a success clears the counter.
        let l = Lock::check(&s, p, "alice", t0 + Duration::from_secs(61)).await.unwrap();
        l.clear(&v).await.unwrap();
        assert!(v.list("lockout/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn counter_resets_after_quiet_period() {
        let (_, v) = view().await;
        let salt = load_salt(&v).await.unwrap();
        let s = Store::new(&v, &salt);
        let p = Policy { threshold: 2, duration: 60, counter_reset: 10 };
        let t0 = OffsetDateTime::now_utc();
        Lock::check(&s, p, "r", t0).await.unwrap().record_failure(&v, t0).await.unwrap();
        let t1 = t0 + Duration::from_secs(11);
        Lock::check(&s, p, "r", t1).await.unwrap().record_failure(&v, t1).await.unwrap();
        assert!(!Lock::check(&s, p, "r", t1).await.unwrap().locked());
        let e = v.list("lockout/").await.unwrap();
        let rec = decode(&v.get(&format!("lockout/{}", e[0])).await.unwrap().unwrap().value).unwrap();
        assert_eq!(rec.count, 1);
        assert!(rec.stale(&p, t1 + Duration::from_secs(60)));
        assert!(!rec.stale(&p, t1 + Duration::from_secs(59)));
    }
}
