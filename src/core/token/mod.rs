//! The token store: issues, looks up and revokes tokens.
//!
//! Tokens are never stored: an entry lives at `id/<hmac>` where `<hmac>` is the lowercase hex
//! HMAC-SHA256 of the token under a per-store random salt (kept behind the barrier at `salt`).
//! Accessors are indexed the same way at `accessor/<hmac(accessor)>`, and children at
//! `parent/<parent hmac>/<child hmac>` for tree revocation. A lookup is an index probe, so no
//! comparison of token bytes exists to leak timing.

pub mod lifecycle;
pub mod store;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use store::TokenStore;

/// Service or batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    #[default]
    Service,
    Batch,
}

impl TokenType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Service => "service",
            TokenType::Batch => "batch",
        }
    }
}

/// Format version of stored token entries.
pub const TOKEN_ENTRY_VERSION: u8 = 1;

/// A stored token. Holds the HMAC of the token, never the token.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Format version ([`TOKEN_ENTRY_VERSION`]).
    pub v: u8,
    /// Lowercase hex HMAC of the token: its storage key and stable internal identity.
    pub id_hmac: String,
    pub accessor: String,
    pub policies: Vec<String>,
    /// Creation path (`auth/token/create`, `auth/approle/login`, `auth/token/root`).
    pub path: String,
    #[serde(default)]
    pub meta: Option<BTreeMap<String, String>>,
    pub display_name: String,
    /// Remaining uses; 0 = unlimited.
    pub num_uses: u64,
    /// Unix seconds.
    pub creation_time: i64,
    /// Creation TTL in seconds; 0 = never expires.
    pub ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    /// HMAC of the parent token; `None` for orphans.
    pub parent: Option<String>,
    pub token_type: TokenType,
    #[serde(default)]
    pub bound_cidrs: Vec<ipnet::IpNet>,
    #[serde(default)]
    pub role: Option<String>,
    pub renewable: bool,
    /// Unix nanoseconds of expiry; `None` = never.
    pub expire_time_ns: Option<i128>,
    /// Unix nanoseconds of issue.
    pub issue_time_ns: i128,
    #[serde(default)]
    pub last_renewal_ns: Option<i128>,
    #[serde(default)]
    pub entity_id: String,
    /// Backend-private data kept for renewals (e.g. the AppRole role name).
    #[serde(default)]
    pub internal: BTreeMap<String, String>,
    /// Set on wrapping tokens: the stored response lives in this token's cubbyhole.
    #[serde(default)]
    pub is_wrapping: bool,
    /// The last use was consumed; the token is revoked once that request finishes and is
    /// invalid for any other request meanwhile.
    #[serde(default)]
    pub pending_revocation: bool,
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TokenEntry {
    /// True for a token whose policies include `root`.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// True once `now_ns` is at or past the expiry.
    pub fn expired_at(&self, now_ns: i128) -> bool {
        matches!(self.expire_time_ns, Some(t) if now_ns >= t)
    }

    /// True if the token may not be used at `now_ns` (expired or its last use is in flight).
    pub fn unusable_at(&self, now_ns: i128) -> bool {
        self.pending_revocation || self.expired_at(now_ns)
    }
}

/// Sanitises a policy list as Vault does: trim, lower-case, drop empties, `root` alone wins,
/// sort, dedupe.
pub fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let mut out: Vec<String> =
        policies.iter().map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect();
    if out.iter().any(|p| p == "root") {
        return vec!["root".to_owned()];
    }
    if add_default && !out.iter().any(|p| p == "default") {
        out.push("default".to_owned());
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_sanitized() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(sanitize_policies(&p(&[" Web ", "", "db", "web"]), true), p(&["db", "default", "web"]));
        assert_eq!(sanitize_policies(&p(&["a", "root"]), true), p(&["root"]));
        assert_eq!(sanitize_policies(&p(&["a"]), false), p(&["a"]));
    }
}
