//! `auth/token/renew`, `renew-self` and `renew-accessor`.
//!
//! Guarantees (S21): a renewal never extends a token past the tightest limit in force: the
//! issuing auth method's current settings (a deleted AppRole role refuses renewal), the issuing
//! mount's `max_lease_ttl`, then the system maximum, and the token's `explicit_max_ttl`. The
//! write is conditional on the entry read, so a concurrent change re-reads and retries.

use super::render::auth_block;
use super::ttl::{label_or, ttl_capped};
use super::{named_accessor, named_token, token_for_accessor};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::core::token::TokenType;
use crate::core::{Active, Core};

/// Which token a renewal names.
pub enum RenewTarget {
    /// `renew-accessor`: the token behind the `accessor` field.
    Accessor,
    /// `renew-self`: the caller's own token.
    SelfToken,
    /// `renew`: the token in the `token` field.
    Token,
}

/// Renews a token by `increment` (or its own TTL), within its limits.
pub async fn renew(
    core: &Core,
    active: &Active,
    req: &BackendRequest,
    target: RenewTarget,
) -> Result<Response> {
    let increment_label = fields::string(&req.data, "increment")?.unwrap_or_default();
    let increment = fields::duration_secs(&req.data, "increment")?.unwrap_or(0);
    let (id_hmac, shown_token) = match target {
        RenewTarget::SelfToken => {
            let e = req.token.as_ref().ok_or(Error::NoToken)?;
            let shown = req.client_token.as_ref().map(|t| t.expose().to_owned()).unwrap_or_default();
            (e.id_hmac.clone(), shown)
        }
        RenewTarget::Token => {
            let t = named_token(req)?;
            (active.tokens.hmac(&t), t)
        }
        RenewTarget::Accessor => {
            let a = named_accessor(req)?;
            (token_for_accessor(active, &a).await?, String::new())
        }
    };
    loop {
        let Some((mut entry, version)) = active.tokens.lookup_hmac(&id_hmac, req.now).await? else {
            return Err(Error::bad("token not found"));
        };
        // The limit is the issuing mount's (the auth method that created the token, e.g. a
        // tuned `auth/approle/`), then the system's: never the mount the renewal request
        // happens to arrive on (S21).
        let issuing = active.mounts.route(&entry.path);
        let sys_max = match &issuing {
            Some(routed) => routed.route.entry.config.max_lease_ttl_or(core.config.max_lease_ttl),
            None => core.config.max_lease_ttl,
        };
        if entry.token_type == TokenType::Batch {
            return Err(Error::bad("batch tokens cannot be renewed"));
        }
        if !entry.renewable || entry.expire_time_ns.is_none() {
            return Err(Error::bad("lease is not renewable"));
        }
        // Tokens from an auth method renew on the method's current settings (a deleted role
        // refuses renewal), as Vault's backend renew callbacks do.
        let mut method_ttl = 0;
        let mut method_max = 0;
        if entry.path.starts_with("auth/") && !entry.path.starts_with("auth/token/") {
            if let Some(routed) = &issuing {
                if let Some(r) = routed.route.backend.renew_auth(&routed.route.view, &entry.internal).await? {
                    method_ttl = r.ttl;
                    method_max = r.max_ttl;
                    entry.period = r.period;
                }
            }
        }
        let now_ns = req.now.unix_timestamp_nanos();
        let creation_ns = i128::from(entry.creation_time) * 1_000_000_000;
        let mut max = sys_max;
        if method_max > 0 && method_max < max {
            max = method_max;
        }
        if entry.explicit_max_ttl > 0 && entry.explicit_max_ttl < max {
            max = entry.explicit_max_ttl;
        }
        let max_valid_ns = creation_ns + i128::from(max) * 1_000_000_000;
        let remaining_max = ((max_valid_ns - now_ns) / 1_000_000_000).max(0) as u64;
        let mut warnings = Vec::new();
        let ttl = if entry.period > 0 {
            if entry.explicit_max_ttl > 0 {
                entry.period.min(remaining_max)
            } else {
                entry.period
            }
        } else {
            let wanted = if increment > 0 {
                increment
            } else if method_ttl > 0 {
                method_ttl
            } else {
                entry.ttl
            };
            if wanted > remaining_max {
                if remaining_max == 0 {
                    return Err(Error::bad("past the max TTL, cannot renew"));
                }
                warnings.push(ttl_capped(&label_or(&increment_label, wanted), max));
                remaining_max
            } else {
                wanted
            }
        };
        let old_expire = entry.expire_time_ns;
        entry.expire_time_ns = Some(now_ns + i128::from(ttl) * 1_000_000_000);
        entry.last_renewal_ns = Some(now_ns);
        if active.tokens.update_with_old_expiry(&entry, version, old_expire).await? {
            let mut resp = Response::empty();
            resp.auth = Some(auth_block(&entry, &shown_token, ttl));
            resp.warnings = warnings;
            return Ok(resp);
        }
    }
}
