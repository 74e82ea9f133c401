//! The token lifecycle the core owns: tree revocation (with cubbyhole cleanup), expiry tidy,
//! and turning a backend's login into a token.

use time::OffsetDateTime;

use crate::core::error::{Error, Result};
use crate::core::mounts::MountEntry;
use crate::core::request::{Auth, LoginSpec};
use crate::core::token::store::NewToken;
use crate::core::token::{sanitize_policies, TokenEntry, TokenType};
use crate::core::{Active, Core};

impl Core {
    /// Revokes a token and its descendants, and erases their cubbyholes.
    pub async fn revoke_tree(&self, active: &Active, id_hmac: &str) -> Result<()> {
        let revoked = active.tokens.revoke_tree(id_hmac).await?;
        self.cleanup_revoked(active, &revoked).await;
        Ok(())
    }

    /// Erases the cubbyholes of revoked tokens (best effort; tidy retries).
    pub async fn cleanup_revoked(&self, active: &Active, revoked: &[TokenEntry]) {
        let Some(route) = active.mounts.get("cubbyhole/") else { return };
        for e in revoked {
            if let Err(err) = route.view.sub(&format!("{}/", e.id_hmac)).clear().await {
                tracing::warn!(error = %err, accessor = %e.accessor, "could not erase a revoked token's cubbyhole");
            }
        }
    }

    /// Removes expired tokens (with their children and cubbyholes), walking the expiry index
    /// in bounded rounds and yielding between tokens so requests keep flowing.
    pub async fn tidy_tokens(&self) -> Result<usize> {
        let active = self.active()?;
        let mut removed = 0;
        loop {
            let now = coffer_storage::clock::now();
            let due = active.tokens.due_for_expiry(now, 256).await?;
            if due.is_empty() {
                return Ok(removed);
            }
            for id in due {
                self.revoke_tree(&active, &id).await?;
                removed += 1;
                tokio::task::yield_now().await;
            }
        }
    }

    /// A full scan for records the index cannot find (`auth/token/tidy`): tokens whose last use
    /// was consumed but whose revocation was interrupted, and expired tokens without an index
    /// entry. Yields between tokens.
    pub async fn tidy_tokens_full(&self) -> Result<usize> {
        let mut removed = self.tidy_tokens().await?;
        let active = self.active()?;
        let now_ns = coffer_storage::clock::now().unix_timestamp_nanos();
        for id in active.tokens.all_ids().await? {
            if let Some((e, _)) = active.tokens.get_by_hmac(&id).await? {
                if e.unusable_at(now_ns) {
                    self.revoke_tree(&active, &id).await?;
                    removed += 1;
                }
            }
            tokio::task::yield_now().await;
        }
        Ok(removed)
    }

    /// Turns a backend's login spec into a token and the `auth` block.
    pub async fn issue_login(
        &self,
        active: &Active,
        spec: LoginSpec,
        mount: &MountEntry,
        now: OffsetDateTime,
    ) -> Result<Auth> {
        // Auth methods never mint root or wrapping tokens, whatever their configuration says.
        if spec.policies.iter().any(|p| p.trim().eq_ignore_ascii_case("root")) {
            return Err(Error::bad("auth methods cannot create root tokens"));
        }
        crate::core::policy_store::check_assignable(&spec.policies)?;
        let mut max = mount.config.max_lease_ttl_or(self.config.max_lease_ttl);
        if spec.max_ttl > 0 && spec.max_ttl < max {
            max = spec.max_ttl;
        }
        if spec.explicit_max_ttl > 0 && spec.explicit_max_ttl < max {
            max = spec.explicit_max_ttl;
        }
        let default = mount.config.default_lease_ttl_or(self.config.default_lease_ttl);
        let ttl = if spec.period > 0 {
            spec.period.min(max)
        } else if spec.ttl > 0 {
            spec.ttl.min(max)
        } else {
            default.min(max)
        };
        let policies = sanitize_policies(&spec.policies, !spec.no_default_policy);
        let token_type = if spec.token_type == "batch" { TokenType::Batch } else { TokenType::Service };
        let new = NewToken {
            policies: policies.clone(),
            path: spec.path.clone(),
            meta: (!spec.metadata.is_empty()).then(|| spec.metadata.clone()),
            display_name: spec.display_name.clone(),
            num_uses: spec.num_uses,
            ttl,
            explicit_max_ttl: spec.explicit_max_ttl,
            period: spec.period,
            parent: None,
            token_type,
            bound_cidrs: spec.bound_cidrs.clone(),
            role: None,
            renewable: spec.renewable,
            internal: spec.internal.clone(),
            custom_id: None,
            is_wrapping: false,
        };
        let (token, entry) = active.tokens.create(new, now).await?;
        Ok(Auth {
            client_token: token.expose().to_owned(),
            accessor: entry.accessor,
            policies: policies.clone(),
            token_policies: policies,
            identity_policies: Vec::new(),
            metadata: (!spec.metadata.is_empty()).then_some(spec.metadata),
            lease_duration: ttl,
            renewable: spec.renewable,
            entity_id: String::new(),
            token_type: token_type.as_str().into(),
            orphan: true,
            mfa_requirement: None,
            num_uses: spec.num_uses,
        })
    }
}
