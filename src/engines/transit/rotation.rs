//! Automatic key rotation (`auto_rotate_period`).
//!
//! The core's leader-gated scheduler calls the backend's `periodic` about every
//! [`CHECK_INTERVAL`]; it rotates each key whose latest version is older than its period (a
//! compare-and-set like any rotation, so a rotation racing with a client's adds one version each,
//! never loses one).

use std::time::Duration;

use time::OffsetDateTime;

use coffer_storage::View;

use super::key::TransitKey;
use super::Transit;
use crate::core::error::Result;

/// How often the task looks for due keys (the API's minimum period is one hour).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Whether `p` is due for rotation at `now`.
pub fn is_due(p: &TransitKey, now: OffsetDateTime) -> bool {
    let period = p.auto_rotate_period;
    if period <= 0 || p.latest_version < 1 {
        return false;
    }
    if p.imported && !p.allow_imported_key_rotation {
        return false;
    }
    let Some(latest) = p.keys.get(&(p.latest_version as u64)) else { return false };
    let due = latest.created() + time::Duration::nanoseconds(period);
    now > due
}

/// Rotates every due key of the mount once; returns the names rotated.
pub async fn rotate_due(t: &Transit, view: &View, now: OffsetDateTime) -> Result<Vec<String>> {
    let mut rotated = Vec::new();
    for name in t.store().list(view).await? {
        let Some(p) = t.store().get(view, &name).await? else { continue };
        if !is_due(&p, now) {
            continue;
        }
        // Re-check inside the compare-and-set loop so a concurrent rotation is not doubled.
        let r = t
            .store()
            .modify(view, &name, |p| {
                if !is_due(p, now) {
                    return Ok(super::store::Change::Keep(false));
                }
                p.rotate_in_memory(now).map_err(|e| crate::core::error::Error::internal(e.message()))?;
                Ok(super::store::Change::Write(true))
            })
            .await?;
        if let Some((_, true)) = r {
            rotated.push(name);
        }
    }
    Ok(rotated)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engines::transit::crypto::KeyType;
    use crate::engines::transit::key::NewKey;
    use crate::engines::transit::keys;

    async fn view() -> View {
        View::new(coffer_storage::testing::mem_barrier().await, "logical/test/")
    }

    #[tokio::test]
    async fn due_keys_rotate_once_and_others_stay() {
        let v = view().await;
        let t = Transit { keys: Default::default() };
        let t0 = coffer_storage::clock::now();
        let auto = NewKey { auto_rotate_period: 3600, kind: KeyType::ChaCha20Poly1305, ..NewKey::DEFAULTS };
        t.store().upsert(&v, "auto", || Ok(TransitKey::create("auto", &auto, t0).unwrap())).await.unwrap();
        t.store()
            .upsert(&v, "manual", || Ok(TransitKey::create("manual", &NewKey::DEFAULTS, t0).unwrap()))
            .await
            .unwrap();
        // Not yet due.
        assert!(rotate_due(&t, &v, t0 + time::Duration::minutes(59)).await.unwrap().is_empty());
        // Due: rotated exactly once, even when checked twice at the same instant.
        let later = t0 + time::Duration::minutes(61);
        assert_eq!(rotate_due(&t, &v, later).await.unwrap(), vec!["auto".to_owned()]);
        assert!(rotate_due(&t, &v, later).await.unwrap().is_empty());
        assert_eq!(t.store().get(&v, "auto").await.unwrap().unwrap().latest_version, 2);
        assert_eq!(t.store().get(&v, "manual").await.unwrap().unwrap().latest_version, 1);
        // The new version restarts the period.
        assert_eq!(
            rotate_due(&t, &v, later + time::Duration::minutes(61)).await.unwrap(),
            vec!["auto".to_owned()]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_rotations_never_lose_a_version() {
        let v = view().await;
        let t = Arc::new(Transit { keys: Default::default() });
        let now = coffer_storage::clock::now();
        t.store()
            .upsert(&v, "k", || Ok(TransitKey::create("k", &NewKey::DEFAULTS, now).unwrap()))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (t, v) = (Arc::clone(&t), v.clone());
            tasks.push(tokio::spawn(
                async move { keys::rotate_key(&t, &v, "k", now).await.unwrap().unwrap() },
            ));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let p = t.store().get(&v, "k").await.unwrap().unwrap();
        assert_eq!(p.latest_version, 17);
        assert_eq!(p.keys.len(), 17);
    }
}
