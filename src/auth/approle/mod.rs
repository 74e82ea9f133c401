//! The AppRole auth method (`type = "approle"`, mountable at any `sys/auth/<path>`).
//!
//! # What it trusts and guarantees
//!
//! * It trusts the core for routing, ACLs (only `login` is unauthenticated) and for issuing the
//!   token from the [`LoginSpec`](crate::core::request::LoginSpec) a login returns, and its
//!   mount's [`View`] for storage (encrypted by the barrier below it).
//! * Secret IDs are never stored, logged or put in a storage key: records live under an HMAC
//!   with a per-mount random salt (see [`store`]); role IDs and accessors are indexed the same
//!   way. Lookups are index probes, so no secret comparison exists to leak timing.
//! * `secret_id_num_uses = N` gives at most N logins, also under concurrency and across nodes:
//!   each use is a conditional write on the version read ([`store::Store::consume`]); the last
//!   use deletes the secret ID and its accessor in the same batch.
//! * Every login failure about the role ID or the secret ID — unknown, destroyed, used up,
//!   expired, locked out — answers `invalid role or secret ID` after the same reads and HMAC
//!   work ([`login`]). Repeated failures lock the role ID out ([`lockout`]); failures are
//!   counted in memory, so a failed login writes nothing (only a lockout of a real role is
//!   stored).
//! * Operations on a secret ID by accessor check that the accessor belongs to the role named in
//!   the URL (CVE-2023-24999).
//!
//! Paths are parsed once into [`path::ApprolePath`] and matched exhaustively.

pub mod cidr;
pub mod handlers;
pub mod lockout;
pub mod login;
pub mod path;
pub mod role;
pub mod secret_id;
pub mod store;
pub mod tidy;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use coffer_storage::keys::SecretBytes;
use coffer_storage::View;

use self::path::ApprolePath;
use self::store::Store;
use crate::core::backend::{AuthRenew, Backend, BackendEnv, SystemView};
use crate::core::error::{Error, Result};
use crate::core::mounts::MountEntry;
use crate::core::request::{BackendRequest, Response};
use crate::policy::Operation;

const TIDY_STARTED: &str =
    "Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs.";
const TIDY_RUNNING: &str = "Tidy operation already in progress.";

/// One AppRole mount.
pub struct AppRole {
    /// The system's TTL limits.
    system: Arc<dyn SystemView>,
    /// The mount's HMAC salt, loaded (or created) on first use.
    salt: OnceCell<Arc<SecretBytes>>,
    /// Set while a tidy runs on this node.
    tidy_running: Arc<AtomicBool>,
    /// Failed-login counters of this mount on this node (see [`lockout`]).
    failures: lockout::Failures,
}

impl std::fmt::Debug for AppRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppRole")
    }
}

impl AppRole {
    /// A backend for a mount.
    pub fn new(env: BackendEnv) -> Self {
        Self {
            system: env.system,
            salt: OnceCell::new(),
            tidy_running: Arc::new(AtomicBool::new(false)),
            failures: lockout::Failures::default(),
        }
    }

    async fn salt(&self, req: &BackendRequest) -> Result<Arc<SecretBytes>> {
        self.salt.get_or_try_init(|| async { store::load_salt(&req.view).await.map(Arc::new) }).await.cloned()
    }

    /// The mount's maximum lease TTL (its tune, else the system's).
    fn mount_max(&self, req: &BackendRequest) -> u64 {
        req.mount.config.max_lease_ttl_or(self.system.max_lease_ttl())
    }

    fn tidy(&self, req: &BackendRequest, salt: Arc<SecretBytes>) -> Response {
        if self.tidy_running.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Response::empty().warn(TIDY_RUNNING);
        }
        let (view, mount, running) = (req.view.clone(), req.mount.clone(), Arc::clone(&self.tidy_running));
        tokio::spawn(async move { tidy_pass(&view, &salt, &mount, &running).await });
        Response::empty().warn(TIDY_STARTED).with_status(202)
    }
}

/// One tidy pass; the caller has set `running`, which is cleared at the end.
async fn tidy_pass(view: &View, salt: &SecretBytes, mount: &MountEntry, running: &AtomicBool) {
    let store = Store::new(view, salt);
    match tidy::run(&store, lockout::Policy::for_mount(&mount.config), coffer_storage::clock::now()).await {
        Ok(t) if t == tidy::Tidied::default() => {}
        Ok(t) => tracing::info!(
            mount = %mount.route_prefix(),
            expired = t.expired,
            orphaned = t.orphaned,
            dangling_accessors = t.dangling_accessors,
            lockouts = t.lockouts,
            "approle tidy removed records"
        ),
        Err(e) => tracing::error!(mount = %mount.route_prefix(), error = %e, "approle tidy failed"),
    }
    running.store(false, Ordering::Release);
}

#[async_trait]
impl Backend for AppRole {
    fn unauthenticated(&self, path: &str) -> bool {
        path == "login"
    }

    async fn exists(&self, req: &BackendRequest) -> Result<Option<bool>> {
        match ApprolePath::parse(&req.path) {
            Some(ApprolePath::Role(name)) => {
                Ok(Some(req.view.get(&format!("role/{}", name.canonical())).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    async fn handle(&self, req: &BackendRequest) -> Result<Response> {
        let Some(path) = ApprolePath::parse(&req.path) else { return Err(Error::UnsupportedPath) };
        let salt = self.salt(req).await?;
        let store = Store::new(&req.view, &salt);
        let max = self.mount_max(req);
        use Operation::{Create, Delete, List, Read, Update};
        match (&path, req.operation) {
            (ApprolePath::Login, Create | Update) => login::login(req, &store, &self.failures).await,
            (ApprolePath::RoleList, List) => handlers::list_roles(&store).await,
            (ApprolePath::Role(n), Read) => handlers::read_role(&store, n).await,
            (ApprolePath::Role(n), Create | Update) => handlers::write_role(req, &store, n, max).await,
            (ApprolePath::Role(n), Delete) => handlers::delete_role(&store, n).await,
            (ApprolePath::RoleField(n, f), Read) => handlers::read_field(&store, n, *f).await,
            (ApprolePath::RoleField(n, f), Create | Update) => {
                handlers::write_field(req, &store, n, *f, max).await
            }
            (ApprolePath::RoleField(n, f), Delete) => handlers::delete_field(&store, n, *f).await,
            (ApprolePath::RoleId(n), Read) => handlers::read_role_id(&store, n).await,
            (ApprolePath::RoleId(n), Create | Update) => handlers::write_role_id(req, &store, n).await,
            (ApprolePath::SecretId(n), Create | Update) => {
                handlers::create_secret_id(req, &store, n, None, max).await
            }
            (ApprolePath::SecretId(n), List) => handlers::list_secret_ids(&store, n).await,
            (ApprolePath::CustomSecretId(n), Create | Update) => {
                let custom = login::secret_field(&req.data, "secret_id")?;
                handlers::create_secret_id(req, &store, n, Some(custom), max).await
            }
            (ApprolePath::SecretIdLookup(n), Create | Update) => {
                handlers::lookup_secret_id(req, &store, n).await
            }
            (ApprolePath::SecretIdDestroy(n), Create | Update | Delete) => {
                handlers::destroy_secret_id(req, &store, n).await
            }
            (ApprolePath::AccessorLookup(n), Create | Update) => {
                handlers::lookup_accessor(req, &store, n).await
            }
            (ApprolePath::AccessorDestroy(n), Create | Update | Delete) => {
                handlers::destroy_accessor(req, &store, n).await
            }
            (ApprolePath::TidySecretId, Create | Update) => Ok(self.tidy(req, Arc::clone(&salt))),
            _ => Err(Error::UnsupportedOperation),
        }
    }

    /// Vault tidies AppRole mounts every minute; a tidy already running is not doubled.
    fn periodic_interval(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(60))
    }

    async fn periodic(&self, view: &View, mount: &MountEntry, _now: time::OffsetDateTime) -> Result<()> {
        if self.tidy_running.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Ok(());
        }
        let salt =
            match self.salt.get_or_try_init(|| async { store::load_salt(view).await.map(Arc::new) }).await {
                Ok(s) => Arc::clone(s),
                Err(e) => {
                    self.tidy_running.store(false, Ordering::Release);
                    return Err(e);
                }
            };
        tidy_pass(view, &salt, mount, &self.tidy_running).await;
        Ok(())
    }

    /// A token renewal re-reads the role (Vault's `pathLoginRenew`): its current `token_ttl`,
    /// `token_max_ttl` and `token_period` apply, and a deleted role stops renewals.
    async fn renew_auth(
        &self,
        view: &View,
        internal: &BTreeMap<String, String>,
    ) -> Result<Option<AuthRenew>> {
        let name = internal.get("role_name").map(String::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(Error::InternalVisible("failed to fetch role_name during renewal".into()));
        }
        let salt = self.salt.get_or_try_init(|| async { store::load_salt(view).await.map(Arc::new) }).await?;
        let Some((role, _)) = Store::new(view, salt).role(name).await? else {
            return Err(Error::bad(format!("role {name:?} does not exist during renewal")));
        };
        Ok(Some(AuthRenew { ttl: role.token_ttl, max_ttl: role.token_max_ttl, period: role.token_period }))
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::auth::approle::role::RoleEntry;
    use crate::auth::approle::store::tests::view;

    #[tokio::test]
    async fn renewal_rereads_the_role() {
        let (_, v) = view().await;
        let b = AppRole::new(crate::core::backend::test_env("approle"));
        let internal = BTreeMap::from([("role_name".to_owned(), "web".to_owned())]);
        let e = b.renew_auth(&v, &internal).await.unwrap_err();
        assert_eq!(e.to_string(), "role \"web\" does not exist during renewal");
        let salt = store::load_salt(&v).await.unwrap();
        let mut r = RoleEntry::new("web", "uid".into());
        r.role_id = "rid".into();
        (r.token_ttl, r.token_max_ttl, r.token_period) = (60, 120, 0);
        Store::new(&v, &salt).put_role(&r, None).await.unwrap();
        let got = b.renew_auth(&v, &internal).await.unwrap();
        assert_eq!(got, Some(AuthRenew { ttl: 60, max_ttl: 120, period: 0 }));
        assert!(b.renew_auth(&v, &BTreeMap::new()).await.is_err());
    }

    #[tokio::test]
    async fn periodic_tidies_expired_secret_ids() {
        use crate::auth::approle::secret_id::SecretId;
        use crate::auth::approle::store::tests::entry;
        use crate::core::mounts::{MountConfig, Table};

        let (_, v) = view().await;
        let b = AppRole::new(crate::core::backend::test_env("approle"));
        let salt = store::load_salt(&v).await.unwrap();
        let s = Store::new(&v, &salt);
        let mut r = RoleEntry::new("web", "uid".into());
        r.role_id = "rid".into();
        s.put_role(&r, None).await.unwrap();
        let mut e = entry(0);
        e.expiration_ns = Some(0);
        s.create_secret_id(&r, &SecretId::new("old"), &mut e).await.unwrap();
        let mount = MountEntry {
            path: "approle/".into(),
            kind: "approle".into(),
            description: String::new(),
            accessor: "auth_approle_0".into(),
            uuid: "u".into(),
            local: false,
            seal_wrap: false,
            external_entropy_access: false,
            options: None,
            config: MountConfig::default(),
            table: Table::Auth,
        };
        assert_eq!(s.accessors("uid").await.unwrap().len(), 1);
        b.periodic(&v, &mount, coffer_storage::clock::now()).await.unwrap();
        assert!(s.accessors("uid").await.unwrap().is_empty());
        assert!(!b.tidy_running.load(Ordering::Acquire));
    }
}
