//! `tidy/secret-id`: removes expired secret IDs, secret IDs of roles that no longer exist,
//! dangling accessors and secret IDs whose accessor is gone, and stored lockouts that no
//! longer matter. Runs in the background; every delete is conditional on the version read, so
//! tidy never removes a record that a concurrent login or write changed.

use std::collections::BTreeSet;

use coffer_storage::{Batch, View};
use time::OffsetDateTime;

use super::lockout::{self, Policy};
use super::store::Store;
use crate::core::error::Result;

/// What one tidy run removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tidied {
    pub expired: usize,
    pub orphaned: usize,
    pub dangling_accessors: usize,
    pub lockouts: usize,
}

async fn delete_if(view: &View, key: &str, version: u64) -> Result<bool> {
    Ok(view.try_apply(Batch::new().delete(key).require_version(key, version)).await?.is_some())
}

/// One tidy pass. `lockout` is the mount's lockout policy (`None` = disabled: all counters go).
pub async fn run(store: &Store<'_>, lockout: Option<Policy>, now: OffsetDateTime) -> Result<Tidied> {
    let mut out = Tidied::default();
    let mut roles = BTreeSet::new();
    for name in store.role_names().await? {
        if let Some((r, _)) = store.role(&name).await? {
            roles.insert(r.id);
        }
    }
    for dir in store.view.list("secret_id/").await? {
        let Some(role) = dir.strip_suffix('/') else { continue };
        if !roles.contains(role) {
            out.orphaned += store.view.list(&dir_path(role)).await?.len();
            store.flush_secret_ids(role).await?;
            continue;
        }
        for h in store.view.list(&dir_path(role)).await? {
            let Some((entry, version)) = store.secret_id(role, &h).await? else { continue };
            if entry.expired_at(now) {
                out.expired += usize::from(store.delete_secret_id(role, &h, &entry, version).await?);
            } else if store.view.get(&store.accessor_key(&entry.accessor)).await?.is_none() {
                // A secret ID without its accessor cannot be listed or destroyed by accessor.
                let key = Store::secret_key(role, &h);
                out.orphaned += usize::from(delete_if(store.view, &key, version).await?);
            }
        }
    }
    for h in store.view.list("accessor/").await? {
        let key = format!("accessor/{h}");
        let Some(e) = store.view.get(&key).await? else { continue };
        let Ok(index) = serde_json::from_slice::<super::store::AccessorIndex>(&e.value) else { continue };
        if store.view.get(&Store::secret_key(&index.role, &index.secret)).await?.is_none() {
            out.dangling_accessors += usize::from(delete_if(store.view, &key, e.version).await?);
        }
    }
    for h in store.view.list("lockout/").await? {
        let key = format!("lockout/{h}");
        let Some(e) = store.view.get(&key).await? else { continue };
        let stale = match (&lockout, lockout::decode(&e.value)) {
            (Some(p), Ok(r)) => r.stale(p, now),
            _ => true,
        };
        if stale {
            out.lockouts += usize::from(delete_if(store.view, &key, e.version).await?);
        }
    }
    Ok(out)
}

fn dir_path(role: &str) -> String {
    format!("secret_id/{role}/")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::approle::role::RoleEntry;
    use crate::auth::approle::secret_id::SecretId;
    use crate::auth::approle::store::{load_salt, tests::entry, tests::view, AccessorIndex};

    #[tokio::test]
    async fn removes_expired_orphaned_and_dangling_records() {
        let (_, v) = view().await;
        let salt = load_salt(&v).await.unwrap();
        let s = Store::new(&v, &salt);
        let now = coffer_storage::clock::now();
        let mut r = RoleEntry::new("web", "role-uid".into());
        r.role_id = "rid".into();
        s.put_role(&r, None).await.unwrap();
        let mut live = entry(0);
        s.create_secret_id(&r, &SecretId::new("live"), &mut live).await.unwrap();
        let mut expired = entry(0);
        expired.expiration_ns = Some((now - Duration::from_secs(1)).unix_timestamp_nanos());
        s.create_secret_id(&r, &SecretId::new("old"), &mut expired).await.unwrap();
        // Secret IDs of a role that no longer exists.
        let gone = RoleEntry::new("gone", "gone-uid".into());
        s.create_secret_id(&gone, &SecretId::new("x"), &mut entry(0)).await.unwrap();
        // A dangling accessor.
        let idx = AccessorIndex { v: 1, role: "role-uid".into(), secret: "feed".into() };
        v.put(&s.accessor_key("dangling"), serde_json::to_vec(&idx).unwrap()).await.unwrap();
        // A stale lockout counter.
        let rec = lockout::Record { v: 1, count: 2, last_failed_ns: 0 };
        v.put("lockout/abc", serde_json::to_vec(&rec).unwrap()).await.unwrap();

        let t = run(&s, Policy::for_mount(&Default::default()), now).await.unwrap();
        assert_eq!(t, Tidied { expired: 1, orphaned: 1, dangling_accessors: 1, lockouts: 1 });
        assert_eq!(s.accessors(&r.id).await.unwrap(), vec![live.accessor.clone()]);
        assert!(s.accessor(&live.accessor).await.unwrap().is_some());
        assert!(s.accessor(&expired.accessor).await.unwrap().is_none());
        assert!(v.list("secret_id/gone-uid/").await.unwrap().is_empty());
        // A second pass finds nothing.
        assert_eq!(run(&s, None, now).await.unwrap(), Tidied::default());
    }
}
