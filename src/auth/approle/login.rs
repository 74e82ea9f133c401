//! `login`: role ID (+ secret ID) in, a [`LoginSpec`] out; the core issues the token.
//!
//! Order of work, chosen so the answer and the time it takes reveal as little as possible:
//!
//! 1. `missing role_id` if none was sent (nothing secret about that).
//! 2. Read the lockout state of the role ID (trimmed, lower-cased, HMACed): its failure counter
//!    in memory and its stored lockout, if any.
//! 3. Resolve the role ID (index read + role read, or a read of a key that never exists), then
//!    HMAC the secret ID and read its record — also when the role ID is unknown, against a role
//!    that cannot exist — so unknown role ID, wrong secret ID and lockout cost the same.
//! 4. Every failure about the role or the secret (unknown role ID, unknown, destroyed, used-up
//!    or expired secret ID, lockout) answers 400 `invalid role or secret ID` and, unless locked
//!    out, counts toward the lockout, in memory. Nothing is written for a failure, except the
//!    lockout itself when a role ID of an existing role reaches the threshold.
//! 5. CIDR checks (secret ID `cidr_list`, role `secret_id_bound_cidrs`) with Vault's messages.
//! 6. Only then is a use consumed, conditionally on the version read (see
//!    [`Store::consume`]), so a refused login never costs a use and N uses give ≤ N tokens.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::cidr;
use super::lockout::{Failures, Lock, Policy};
use super::secret_id::SecretId;
use super::store::{Consumed, Store};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, LoginSpec, Response};
use crate::core::token::sanitize_policies;

/// The one answer for every failure about the role ID or the secret ID.
pub const INVALID: &str = "invalid role or secret ID";

/// A role that cannot exist (`-` is not a valid role name), for equal work on unknown role IDs.
const NO_ROLE: &str = "-";

/// Reads a secret field without copying it into a non-zeroizing string.
pub fn secret_field(data: &Map<String, Value>, key: &str) -> Result<SecretId> {
    match data.get(key) {
        Some(Value::String(s)) => Ok(SecretId::new(s)),
        _ => Ok(SecretId::new(&fields::string(data, key)?.unwrap_or_default())),
    }
}

/// Counts a failure (`known`: the role ID names an existing role) and gives the one answer.
async fn invalid(
    lock: Option<&Lock<'_>>,
    known: bool,
    store: &Store<'_>,
    req: &BackendRequest,
) -> Result<Response> {
    if let Some(l) = lock {
        l.record_failure(store.view, known, req.now).await?;
    }
    Err(Error::bad(INVALID))
}

fn remote(req: &BackendRequest) -> Result<IpAddr> {
    req.remote_addr.ok_or_else(|| Error::internal("failed to get connection information"))
}

/// Vault's display name for tokens of a login on this mount: its path with `/` as `-`.
fn display_name(mount_path: &str) -> String {
    mount_path.replace('/', "-").trim_end_matches('-').to_owned()
}

/// Handles `POST login`; `failures` are the mount's in-memory failure counters.
pub async fn login(req: &BackendRequest, store: &Store<'_>, failures: &Failures) -> Result<Response> {
    let role_id = fields::string(&req.data, "role_id")?.unwrap_or_default();
    let role_id = role_id.trim();
    if role_id.is_empty() {
        return Err(Error::bad("missing role_id"));
    }
    let secret = secret_field(&req.data, "secret_id")?;
    let lock = match Policy::for_mount(&req.mount.config) {
        Some(p) => Some(Lock::check(store, failures, p, role_id, req.now).await?),
        None => None,
    };
    let locked = lock.as_ref().map(Lock::locked).unwrap_or(false);

    let Some(role) = store.role_by_role_id(role_id).await? else {
        let h = store.secret_hmac(NO_ROLE, &secret);
        store.secret_id(NO_ROLE, &h).await?;
        return invalid(lock.as_ref(), false, store, req).await;
    };

    let mut pending = None;
    if role.bind_secret_id {
        if secret.is_empty() {
            if locked {
                return invalid(lock.as_ref(), true, store, req).await;
            }
            return Err(Error::bad("missing secret_id"));
        }
        let h = store.secret_hmac(&role.id, &secret);
        let found = store.secret_id(&role.id, &h).await?;
        let Some((entry, version)) = found.filter(|(e, _)| !locked && !e.expired_at(req.now)) else {
            return invalid(lock.as_ref(), true, store, req).await;
        };
        cidr::verify_subset(&entry.cidr_list, &role.secret_id_bound_cidrs)?;
        if !entry.cidr_list.is_empty() {
            let ip = remote(req)?;
            if !cidr::contains(&entry.cidr_list, ip) {
                let how = if entry.num_uses == 0 { "through" } else { "by" };
                return Err(Error::bad(format!(
                    "source address {:?} unauthorized {how} CIDR restrictions on the secret ID",
                    ip.to_string()
                )));
            }
        }
        pending = Some((h, entry, version));
    } else if locked {
        return invalid(lock.as_ref(), true, store, req).await;
    }
    if !role.secret_id_bound_cidrs.is_empty() {
        let ip = remote(req)?;
        if !cidr::contains(&role.secret_id_bound_cidrs, ip) {
            return Err(Error::bad(format!(
                "source address {:?} unauthorized by CIDR restrictions on the role",
                ip.to_string()
            )));
        }
    }
    let policies = sanitize_policies(&role.token_policies, !role.token_no_default_policy);
    if policies.iter().any(|p| p == "root") {
        return Err(Error::bad("auth methods cannot create root tokens"));
    }
    if policies.iter().any(|p| p == "response-wrapping") {
        return Err(Error::bad("cannot assign policy \"response-wrapping\""));
    }

    let entry = match pending {
        Some((h, entry, version)) => match store.consume(&role.id, &h, entry, version, req.now).await? {
            Consumed::Ok(e) => Some(e),
            Consumed::Invalid => return invalid(lock.as_ref(), true, store, req).await,
        },
        None => None,
    };
    if let Some(l) = &lock {
        l.clear(store.view).await?;
    }

    let mut metadata: BTreeMap<String, String> =
        entry.as_ref().map(|e| e.metadata.clone()).unwrap_or_default();
    metadata.insert("role_name".into(), role.name.clone());
    let bound = match &entry {
        Some(e) if !e.token_bound_cidrs.is_empty() => cidr::to_nets(&e.token_bound_cidrs),
        _ => cidr::to_nets(&role.token_bound_cidrs),
    };
    let spec = LoginSpec {
        policies: role.token_policies.clone(),
        no_default_policy: role.token_no_default_policy,
        metadata,
        display_name: display_name(&req.mount.path),
        ttl: role.token_ttl,
        max_ttl: role.token_max_ttl,
        explicit_max_ttl: role.token_explicit_max_ttl,
        period: role.token_period,
        num_uses: role.token_num_uses,
        renewable: true,
        token_type: role.token_type.resolve(req.mount.config.token_type.as_deref()).to_owned(),
        bound_cidrs: bound,
        path: format!("auth/{}login", req.mount.path),
        internal: BTreeMap::from([("role_name".to_owned(), role.name.clone())]),
    };
    Ok(Response { login: Some(spec), ..Response::default() })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::quorum::fixtures;
    use crate::core::request::Request;
    use crate::core::Core;
    use crate::policy::Operation;
    use crate::secret::ClientToken;

    async fn call(core: &Core, token: Option<&str>, path: &str, data: Value) -> Result<Response> {
        let mut req = Request::new(Operation::Update, path);
        req.token = token.map(|t| ClientToken::new(t.to_owned()));
        req.data = data.as_object().cloned().unwrap_or_default();
        core.handle(req).await
    }

    /// S25: 1000 failed logins with random unknown role IDs write nothing to storage (each used
    /// to write and fsync a lockout counter); a real role's failures write once, when they lock
    /// it out, and not again while it is locked.
    #[tokio::test]
    async fn failed_logins_of_unknown_role_ids_write_nothing() {
        let node = fixtures::shamir(1, 1).await;
        let root = Some(node.root_token.as_str());
        call(&node.core, root, "sys/auth/approle", json!({"type": "approle"})).await.unwrap();
        call(&node.core, root, "auth/approle/role/app", json!({})).await.unwrap();
        let mut req = Request::new(Operation::Read, "auth/approle/role/app/role-id");
        req.token = root.map(|t| ClientToken::new(t.to_owned()));
        let resp = node.core.handle(req).await.unwrap();
        let role_id = resp.data.as_ref().unwrap()["role_id"].as_str().unwrap().to_owned();

        let before = node.storage.applied();
        for _ in 0..1000 {
            let body = json!({"role_id": uuid::Uuid::new_v4().to_string(), "secret_id": "wrong"});
            let e = call(&node.core, None, "auth/approle/login", body).await.unwrap_err();
            assert_eq!(e.to_string(), INVALID);
        }
        assert_eq!(node.storage.applied(), before, "failed logins of unknown role IDs wrote");

        for i in 0..4 {
            let body = json!({"role_id": role_id, "secret_id": "wrong"});
            call(&node.core, None, "auth/approle/login", body).await.unwrap_err();
            assert_eq!(node.storage.applied(), before, "failure {} of a real role wrote", i + 1);
        }
        for _ in 0..3 {
            let body = json!({"role_id": role_id.to_uppercase(), "secret_id": "wrong"});
            let e = call(&node.core, None, "auth/approle/login", body).await.unwrap_err();
            assert_eq!(e.to_string(), INVALID);
        }
        assert_eq!(node.storage.applied(), before + 1, "the lockout is stored once");
    }

    #[test]
    fn display_names_follow_the_mount_path() {
        assert_eq!(display_name("approle/"), "approle");
        assert_eq!(display_name("team/apps/"), "team-apps");
    }
}
