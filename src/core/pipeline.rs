//! The request pipeline ([`Core::handle`]): authenticate, route, check the ACL, audit, run
//! the backend, issue login tokens, wrap responses.

use std::sync::Arc;

use time::OffsetDateTime;

use super::authn::{self, Authenticated, Refusal, Trail, TrailStart};
use super::error::{Error, Result};
use super::mounts;
use super::request::{BackendRequest, Request, Response};
use super::{wrapping, Active, Core};
use crate::policy::Operation;

impl Core {
    /// Paths served without a token that do not belong to a backend's own list.
    fn core_unauthenticated(path: &str) -> bool {
        path == "sys/wrapping/lookup"
            || path == "sys/internal/ui/mounts"
            || path.starts_with("sys/internal/ui/mounts/")
            || path == "sys/internal/ui/mounts/"
    }

    /// Runs a routed request through the lifecycle described in the module docs.
    pub async fn handle(&self, req: Request) -> Result<Response> {
        let active = self.active()?;
        let now = coffer_storage::clock::now();
        if req.operation.is_write() && req.path.ends_with('/') {
            return Err(Error::bad("cannot write to a path ending in '/'"));
        }
        let Request { id, operation, path, data, token, remote_addr, wrap_ttl, headers: _ } = req;
        let routed = active.mounts.route(&path);
        let unauth = Self::core_unauthenticated(&path)
            || routed.as_ref().is_some_and(|r| r.route.backend.unauthenticated(&r.relative));
        let token = token.filter(|t| !t.expose().is_empty());
        let unauth = unauth
            || match (&token, &routed) {
                (None, Some(r)) => {
                    r.route.backend.anonymous_allowed(&r.route.view, operation, &r.relative).await?
                }
                _ => false,
            };
        let mut trail = Trail::new(
            &active,
            self.metrics(),
            TrailStart {
                id: &id,
                operation,
                path: &path,
                mount: routed.as_ref().map(|r| r.route.entry.as_ref()),
                token: token.as_ref(),
                remote_addr,
                data: Some(&data),
                wrap_ttl,
            },
        );
        let caller = match token {
            None => None,
            Some(t) => match self.authenticate(&active, t, remote_addr, now).await? {
                Ok(c) => {
                    trail.set_caller(&c.entry, false, Vec::new());
                    Some(c)
                }
                // Unwrapping with a spent wrapping token is a wrapping error, not an auth one.
                Err(Refusal::Invalid) if path == "sys/wrapping/unwrap" => {
                    return trail.refuse(Error::bad(wrapping::INVALID_WRAPPING_TOKEN));
                }
                // On paths that need no token (logins), a bad token is ignored, as Vault does.
                Err(Refusal::Invalid) if unauth => {
                    trail.forget_token();
                    None
                }
                Err(refusal) => {
                    trail.set_refused(&refusal);
                    return trail.refuse(refusal.error());
                }
            },
        };
        let result = self
            .handle_authenticated(
                &active,
                &mut trail,
                Routing { id, operation, path, data, routed, unauth, remote_addr, wrap_ttl, now },
                caller.as_ref(),
            )
            .await;
        // A limited-use token whose last use this request spent is revoked now that it is done.
        if let Some(c) = &caller {
            self.finish_use(&active, c).await;
        }
        result
    }

    async fn handle_authenticated(
        &self,
        active: &Arc<Active>,
        trail: &mut Trail,
        req: Routing,
        caller: Option<&Authenticated>,
    ) -> Result<Response> {
        let Routing { id: request_id, operation, path, data, routed, unauth, remote_addr, wrap_ttl, now } =
            req;
        let token = caller.map(|c| Arc::clone(&c.entry));
        if token.is_none() && !unauth {
            return trail.refuse(Error::NoToken);
        }
        let Some(routed) = routed else {
            return trail.refuse(match &token {
                Some(t) if t.is_root() => {
                    Error::NotFound(Some(format!("no handler for route \"{path}\". route entry not found.")))
                }
                _ => Error::PermissionDenied,
            });
        };
        let mut ctx = BackendRequest {
            request_id: request_id.clone(),
            operation,
            path: routed.relative.clone(),
            data,
            view: routed.route.view.clone(),
            mount: Arc::clone(&routed.route.entry),
            token: token.clone(),
            client_token: caller.map(|c| c.token.duplicate()),
            remote_addr,
            now,
            wrap_ttl,
        };
        if ctx.operation == Operation::Update {
            if let Some(exists) = routed.route.backend.exists(&ctx).await? {
                ctx.operation = if exists { Operation::Update } else { Operation::Create };
                trail.set_operation(ctx.operation);
            }
        }
        if let Some(entry) = &token {
            if !unauth {
                let acl = active.policies.acl(&entry.policies).await?;
                let d = acl.check_request(ctx.operation, &path, &ctx.data, ctx.wrap_ttl);
                let needs_sudo = routed.route.backend.root_protected(&routed.relative);
                let denied = !d.allowed || (needs_sudo && !d.sudo);
                trail.set_caller(entry, !denied, d.granting_policies);
                if denied {
                    return trail.refuse(Error::PermissionDenied);
                }
            } else {
                trail.set_caller(entry, true, Vec::new());
            }
        }
        // Fail closed: no audit record, no request.
        trail.request("")?;
        let result = self.run_backend(active, &routed, &ctx, &request_id, &path, wrap_ttl, now).await;
        if trail.is_recording() {
            match &result {
                Ok(resp) => {
                    let rendered: serde_json::Value = match &resp.raw_body {
                        Some(raw) => serde_json::from_slice(raw).unwrap_or(serde_json::Value::Null),
                        None => serde_json::json!({
                            "data": resp.data_map(),
                            "auth": resp.auth,
                            "wrap_info": resp.wrap_info,
                            "warnings": if resp.warnings.is_empty() { None } else { Some(&resp.warnings) },
                        }),
                    };
                    trail.response(Some(&rendered), "")?;
                }
                Err(e) => trail.response(None, &authn::audit_error(e))?,
            }
        }
        result
    }

    async fn run_backend(
        &self,
        active: &Arc<Active>,
        routed: &mounts::Routed,
        ctx: &BackendRequest,
        request_id: &str,
        path: &str,
        wrap_ttl: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<Response> {
        let mut resp = routed.route.backend.handle(ctx).await?;
        if let Some(spec) = resp.login.take() {
            resp.auth = Some(self.issue_login(active, spec, &routed.route.entry, now).await?);
        }
        resp.mount_type = routed.route.entry.kind.clone();
        let wrap = match (wrap_ttl, resp.wrap_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(ttl) = wrap.filter(|t| *t > 0) {
            if resp.raw_body.is_none() && !resp.is_empty() && resp.wrap_info.is_none() {
                return self.wrap_response(active, resp, request_id, ttl, path, now).await;
            }
        }
        Ok(resp)
    }
}

/// A routed request after its token is checked, as `handle_authenticated` takes it.
struct Routing {
    id: String,
    operation: Operation,
    path: String,
    data: serde_json::Map<String, serde_json::Value>,
    routed: Option<mounts::Routed>,
    /// The path needs no token (logins, `sys/wrapping/lookup`, ...).
    unauth: bool,
    remote_addr: Option<std::net::IpAddr>,
    wrap_ttl: Option<u64>,
    now: OffsetDateTime,
}
