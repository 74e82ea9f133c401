//! Token authentication and the audit trail, shared by routed requests ([`Core::handle`]) and
//! the special `sys/` handlers served outside the router (seal, step-down, generate-root,
//! rekey: [`Core::admit`] / [`Core::conclude`]).
//!
//! # One authentication function
//!
//! [`Core::authenticate`] is the only place a presented token is accepted: it must be live (not
//! unknown, expired, revoked or spent), the request must come from one of its `bound_cidrs`,
//! and a limited-use token gives up one use there, atomically (a storage precondition, so two
//! requests never share a use). A request that spent the last use revokes the token when it is
//! done ([`Core::finish_use`]). A token bound to other networks is refused as if none had been
//! given (`permission denied`, Vault's answer); every other refusal is `invalid token`.
//!
//! # Audit
//!
//! Every request that reaches authentication leaves a request record and a response record
//! (`Trail`), refusals included, so token guessing and use from the wrong network are
//! visible. The devices hash tokens, accessors and every leaf of request and response data
//! (unseal key shares, OTPs, nonces and encoded tokens of the quorum operations too). Auditing
//! fails closed: when devices are enabled and none writes the request record, the request is
//! not served.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use zeroize::Zeroize;

use crate::audit::{AuthInfo, RequestInfo};
use crate::core::token::TokenEntry;
use crate::metrics::{AuditRecord, Metrics, TokenLookup};
use crate::secret::ClientToken;

use super::error::{Error, Result};
use super::mounts::MountEntry;
use super::{Active, Core};
use crate::policy::Operation;

/// A caller whose token passed every check of [`Core::authenticate`].
pub struct Authenticated {
    pub entry: Arc<TokenEntry>,
    /// The token as presented (lookup-self echoes it back to its owner).
    pub token: ClientToken,
    /// This request spent the token's last use: revoke it once the request is done.
    last_use: bool,
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("accessor", &self.entry.accessor)
            .field("last_use", &self.last_use)
            .finish_non_exhaustive()
    }
}

/// Why a presented token was not accepted.
#[derive(Debug)]
pub enum Refusal {
    /// Unknown, expired, revoked, or its uses are spent.
    Invalid,
    /// Live, but bound to networks the request does not come from.
    WrongNetwork(Arc<TokenEntry>),
}

impl Refusal {
    /// The error the client gets: Vault answers a CIDR mismatch like a missing token.
    pub fn error(&self) -> Error {
        match self {
            Refusal::Invalid => Error::InvalidToken,
            Refusal::WrongNetwork(_) => Error::NoToken,
        }
    }
}

use crate::util::net::allowed as network_allowed;

impl Core {
    /// The one token check for every token-authenticated request, routed or not (see the
    /// module docs). `Ok(Err(_))` is a refusal; `Err(_)` a failure to check (storage).
    pub async fn authenticate(
        &self,
        active: &Active,
        token: ClientToken,
        remote_addr: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<std::result::Result<Authenticated, Refusal>> {
        let Some((entry, _)) = active.tokens.lookup(&token, now).await? else {
            self.metrics().record_token_lookup(TokenLookup::Invalid);
            return Ok(Err(Refusal::Invalid));
        };
        if !network_allowed(&entry.bound_cidrs, remote_addr) {
            self.metrics().record_token_lookup(TokenLookup::WrongNetwork);
            return Ok(Err(Refusal::WrongNetwork(Arc::new(entry))));
        }
        let mut last_use = false;
        if entry.num_uses > 0 {
            match active.tokens.use_once(&entry.id_hmac, now).await? {
                Some(last) => last_use = last,
                // Spent by a concurrent request since the lookup.
                None => {
                    self.metrics().record_token_lookup(TokenLookup::Invalid);
                    return Ok(Err(Refusal::Invalid));
                }
            }
        }
        self.metrics().record_token_lookup(TokenLookup::Valid);
        Ok(Ok(Authenticated { entry: Arc::new(entry), token, last_use }))
    }

    /// After a request: revokes the caller's token when the request spent its last use. A
    /// failure leaves the token unusable (it is marked pending revocation) for tidy to remove.
    pub async fn finish_use(&self, active: &Active, caller: &Authenticated) {
        if !caller.last_use {
            return;
        }
        if let Err(e) = self.revoke_tree(active, &caller.entry.id_hmac).await {
            tracing::error!(error = %e, "revoking a used-up token failed; tidy will retry");
        }
    }

    /// Whether the ACL of `entry`'s policies allows `op` on `path` (with `sudo` when set), and
    /// the policies that granted it.
    pub async fn acl_allows(
        &self,
        active: &Active,
        entry: &TokenEntry,
        op: Operation,
        path: &str,
        sudo: bool,
    ) -> Result<(bool, Vec<String>)> {
        let acl = active.policies.acl(&entry.policies).await?;
        let d = acl.check(op, path, &Map::new());
        Ok((d.allowed && (!sudo || d.sudo), d.granting_policies))
    }

    /// Admits a request to a special `sys/` handler: the token check of [`Core::authenticate`],
    /// the ACL, and the audit request record (fail closed). A refusal is audited (request and
    /// response records) and returned as the error the client gets. The handler then acts and
    /// reports its outcome to [`Core::conclude`].
    pub async fn admit(&self, mut req: SpecialRequest) -> Result<Admitted> {
        let active = self.active()?;
        let now = coffer_storage::clock::now();
        let token = req.token.take().filter(|t| !t.expose().is_empty());
        let mount = active.mounts.get("sys/").map(|r| r.entry);
        let mut trail = Trail::new(
            &active,
            self.metrics(),
            TrailStart {
                id: &req.id,
                operation: req.operation,
                path: &req.path,
                mount: mount.as_deref(),
                token: token.as_ref(),
                remote_addr: req.remote_addr,
                data: req.data.as_ref(),
                wrap_ttl: None,
            },
        );
        let (caller, refusal) = match token {
            None => (None, Some(Error::NoToken)),
            Some(t) => match self.authenticate(&active, t, req.remote_addr, now).await? {
                Err(r) => {
                    trail.set_refused(&r);
                    (None, Some(r.error()))
                }
                Ok(c) => {
                    let checked =
                        self.acl_allows(&active, &c.entry, req.operation, &req.path, req.sudo).await;
                    let (allowed, granting) = match checked {
                        Ok(x) => x,
                        Err(e) => {
                            self.finish_use(&active, &c).await;
                            return Err(e);
                        }
                    };
                    trail.set_caller(&c.entry, allowed, granting);
                    (Some(c), (!allowed).then_some(Error::PermissionDenied))
                }
            },
        };
        let anonymous = refusal.is_some();
        let written = match refusal {
            // Unauthenticated access is configured: the caller goes on as anonymous.
            Some(_) if req.anonymous_ok => trail.request(""),
            Some(err) => trail.refuse(err),
            None => trail.request(""),
        };
        if let Err(e) = written {
            if let Some(c) = &caller {
                self.finish_use(&active, c).await;
            }
            return Err(e);
        }
        Ok(Admitted { active, trail, caller, anonymous })
    }

    /// Ends an admitted special request: writes its response record (the outcome as the client
    /// sees it; `Ok(None)` for an empty body) and revokes a token whose last use it spent. An
    /// audit failure is returned; the caller answers with it instead of the outcome.
    pub async fn conclude(
        &self,
        admitted: Admitted,
        outcome: std::result::Result<Option<&Value>, &Error>,
    ) -> Result<()> {
        let written = match outcome {
            Ok(body) => admitted.trail.response(body, ""),
            Err(e) => admitted.trail.response(None, &audit_error(e)),
        };
        if let Some(c) = &admitted.caller {
            self.finish_use(&admitted.active, c).await;
        }
        written
    }
}

/// A request to a special `sys/` handler, as [`Core::admit`] needs it.
pub struct SpecialRequest {
    pub id: String,
    /// The ACL operation the request stands for.
    pub operation: Operation,
    /// Logical path (no `/v1/`, no trailing `/`).
    pub path: String,
    /// What the request carries (body or query), for the audit record only.
    pub data: Option<Map<String, Value>>,
    pub token: Option<ClientToken>,
    pub remote_addr: Option<IpAddr>,
    /// The ACL must grant `sudo` too.
    pub sudo: bool,
    /// Serve callers without a (sufficient) token as anonymous instead of refusing them
    /// (`unauthenticated_generate_root`, `unauthenticated_rekey`).
    pub anonymous_ok: bool,
}

impl std::fmt::Debug for SpecialRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecialRequest")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for SpecialRequest {
    fn drop(&mut self) {
        // Bodies of the quorum operations carry unseal key shares.
        if let Some(d) = self.data.as_mut() {
            d.values_mut().for_each(wipe_json);
        }
    }
}

/// A special request that passed [`Core::admit`]; hand it to [`Core::conclude`] when done.
pub struct Admitted {
    active: Arc<Active>,
    trail: Trail,
    caller: Option<Authenticated>,
    anonymous: bool,
}

impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted").field("anonymous", &self.anonymous).finish_non_exhaustive()
    }
}

impl Admitted {
    /// True when the caller was let in without a sufficient token (only with `anonymous_ok`).
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }
}

/// What a [`Trail`] records about a request.
pub(crate) struct TrailStart<'a> {
    pub id: &'a str,
    pub operation: Operation,
    pub path: &'a str,
    pub mount: Option<&'a MountEntry>,
    pub token: Option<&'a ClientToken>,
    pub remote_addr: Option<IpAddr>,
    pub data: Option<&'a Map<String, Value>>,
    pub wrap_ttl: Option<u64>,
}

/// The audit records of one request, written to every enabled device (fail closed). Built only
/// when devices are enabled; the devices hash tokens and data.
pub(crate) struct Trail {
    active: Arc<Active>,
    /// Counts the records no device wrote.
    metrics: Arc<Metrics>,
    records: Option<Records>,
}

struct Records {
    auth: Option<AuthInfo>,
    info: RequestInfo,
}

impl Drop for Records {
    fn drop(&mut self) {
        // Request data may hold secrets (unseal key shares, secret values); so do tokens.
        if let Some(d) = self.info.data.as_mut() {
            d.values_mut().for_each(wipe_json);
        }
        self.info.client_token.zeroize();
        if let Some(a) = self.auth.as_mut() {
            a.client_token.zeroize();
        }
    }
}

impl Trail {
    pub(crate) fn new(active: &Arc<Active>, metrics: &Arc<Metrics>, start: TrailStart<'_>) -> Self {
        let records = (!active.audit.is_empty()).then(|| Records {
            auth: None,
            info: RequestInfo {
                id: start.id.to_owned(),
                operation: start.operation.as_str().into(),
                path: start.path.to_owned(),
                mount_point: start.mount.map(|m| m.route_prefix()).unwrap_or_default(),
                mount_type: start.mount.map(|m| m.kind.clone()).unwrap_or_default(),
                mount_accessor: start.mount.map(|m| m.accessor.clone()).unwrap_or_default(),
                client_token: start.token.map(|t| t.expose().to_owned()).unwrap_or_default(),
                client_token_accessor: String::new(),
                remote_address: start.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
                data: start.data.filter(|d| !d.is_empty()).cloned(),
                wrap_ttl: start.wrap_ttl.unwrap_or(0),
                headers: std::collections::BTreeMap::new(),
            },
        });
        Self { active: Arc::clone(active), metrics: Arc::clone(metrics), records }
    }

    /// The token was accepted: record who the caller is and what the ACL said.
    pub(crate) fn set_caller(&mut self, entry: &TokenEntry, allowed: bool, granting: Vec<String>) {
        if let Some(r) = self.records.as_mut() {
            r.info.client_token_accessor = entry.accessor.clone();
            r.auth = Some(auth_info(entry, &r.info.client_token, allowed, granting));
        }
    }

    /// The token was refused; a live one (wrong network) is still named by its accessor.
    pub(crate) fn set_refused(&mut self, refusal: &Refusal) {
        if let (Some(r), Refusal::WrongNetwork(entry)) = (self.records.as_mut(), refusal) {
            r.info.client_token_accessor = entry.accessor.clone();
            r.auth = Some(auth_info(entry, &r.info.client_token, false, Vec::new()));
        }
    }

    /// The token was ignored (a bad token on a path that needs none).
    pub(crate) fn forget_token(&mut self) {
        if let Some(r) = self.records.as_mut() {
            r.info.client_token.zeroize();
            r.info.client_token.clear();
        }
    }

    /// The operation after the existence check (`create` or `update`).
    pub(crate) fn set_operation(&mut self, op: Operation) {
        if let Some(r) = self.records.as_mut() {
            r.info.operation = op.as_str().into();
        }
    }

    /// True when devices are enabled (records are written).
    pub(crate) fn is_recording(&self) -> bool {
        self.records.is_some()
    }

    /// Writes the request record.
    pub(crate) fn request(&self, error: &str) -> Result<()> {
        match &self.records {
            Some(r) => self.active.audit.log_request(r.auth.as_ref(), &r.info, error).map_err(|e| {
                self.metrics.record_audit_failure(AuditRecord::Request);
                e.into()
            }),
            None => Ok(()),
        }
    }

    /// Writes the response record; `resp` is the response as rendered for the client.
    pub(crate) fn response(&self, resp: Option<&Value>, error: &str) -> Result<()> {
        match &self.records {
            Some(r) => self.active.audit.log_response(r.auth.as_ref(), &r.info, resp, error).map_err(|e| {
                self.metrics.record_audit_failure(AuditRecord::Response);
                e.into()
            }),
            None => Ok(()),
        }
    }

    /// Records a refused request (request and response records, both with the error) and
    /// returns the refusal, or the audit failure when the records could not be written.
    pub(crate) fn refuse<T>(&self, err: Error) -> Result<T> {
        let msg = audit_error(&err);
        self.request(&msg)?;
        self.response(None, &msg)?;
        Err(err)
    }
}

/// The `error` of an audit record: the client's messages, an ACL denial as plain
/// `permission denied`.
pub(crate) fn audit_error(err: &Error) -> String {
    match err {
        Error::PermissionDenied => err.to_string(),
        other => other.messages().join("; "),
    }
}

/// The `auth` section of a caller's audit records (the devices hash the token and accessor).
fn auth_info(entry: &TokenEntry, token: &str, allowed: bool, granting: Vec<String>) -> AuthInfo {
    AuthInfo {
        client_token: token.to_owned(),
        accessor: entry.accessor.clone(),
        display_name: entry.display_name.clone(),
        policies: entry.policies.clone(),
        metadata: entry.meta.clone(),
        token_type: entry.token_type.as_str().into(),
        token_ttl: entry.ttl,
        allowed,
        granting_policies: granting,
    }
}

/// Zeroizes every string inside a JSON value (bodies that carried secrets).
pub fn wipe_json(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_json),
        Value::Object(m) => m.values_mut().for_each(wipe_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn networks_bind_ipv4_and_mapped_addresses() {
        let cidrs: Vec<ipnet::IpNet> = vec!["10.9.9.0/24".parse().unwrap()];
        let inside = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 7));
        let outside = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(network_allowed(&cidrs, Some(inside)));
        assert!(!network_allowed(&cidrs, Some(outside)));
        assert!(!network_allowed(&cidrs, None), "an unknown address is never inside a binding");
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 9, 9, 7).to_ipv6_mapped());
        assert!(network_allowed(&cidrs, Some(mapped)));
        assert!(!network_allowed(&cidrs, Some(IpAddr::V6(Ipv6Addr::LOCALHOST))));
        assert!(network_allowed(&[], None), "no binding, no restriction");
    }
}
