//! `auth/token/*`: the token auth method's HTTP surface.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::TokenEntry;
use crate::core::error::{Error, Result};
use crate::core::request::{Ctx, Operation, Response};
use crate::core::Core;
use crate::engines::Backend;
use crate::util::timefmt::rfc3339_nano;

/// The token backend.
pub struct TokenBackend {
    core: Weak<Core>,
}

impl TokenBackend {
    /// Bound to its core.
    pub fn new(core: Weak<Core>) -> Self {
        Self { core }
    }

    fn core(&self) -> Result<Arc<Core>> {
        self.core.upgrade().ok_or_else(|| Error::Unavailable("server is shutting down".into()))
    }
}

/// The `data` of a lookup response for `entry`; `id` is the token when known (empty for
/// accessor lookups).
pub fn lookup_data(entry: &TokenEntry, id: &str, now: OffsetDateTime) -> Map<String, Value> {
    let now_ns = now.unix_timestamp_nanos();
    let (expire_time, ttl) = match entry.expire_time_ns {
        Some(ns) => {
            let t = OffsetDateTime::from_unix_timestamp_nanos(ns).map(rfc3339_nano).ok();
            let remaining = ((ns - now_ns).max(0) / 1_000_000_000) as u64;
            (t.map(Value::from).unwrap_or(Value::Null), remaining)
        }
        None => (Value::Null, 0),
    };
    let mut m = Map::new();
    m.insert("accessor".into(), json!(entry.accessor));
    m.insert("creation_time".into(), json!(entry.creation_time));
    m.insert("creation_ttl".into(), json!(entry.ttl));
    m.insert("display_name".into(), json!(entry.display_name));
    m.insert("entity_id".into(), json!(entry.entity_id));
    m.insert("expire_time".into(), expire_time);
    m.insert("explicit_max_ttl".into(), json!(entry.explicit_max_ttl));
    m.insert("id".into(), json!(id));
    m.insert("meta".into(), json!(entry.meta));
    m.insert("num_uses".into(), json!(entry.num_uses));
    m.insert("orphan".into(), json!(entry.parent.is_none()));
    m.insert("path".into(), json!(entry.path));
    m.insert("policies".into(), json!(entry.policies));
    m.insert("ttl".into(), json!(ttl));
    m.insert("type".into(), json!(entry.token_type.as_str()));
    if entry.expire_time_ns.is_some() {
        let issue = OffsetDateTime::from_unix_timestamp_nanos(entry.issue_time_ns)
            .map(rfc3339_nano)
            .unwrap_or_default();
        m.insert("issue_time".into(), json!(issue));
        m.insert("renewable".into(), json!(entry.renewable));
    }
    if entry.period > 0 {
        m.insert("period".into(), json!(entry.period));
    }
    if let Some(r) = &entry.role {
        m.insert("role".into(), json!(r));
    }
    if !entry.bound_cidrs.is_empty() {
        m.insert(
            "bound_cidrs".into(),
            json!(entry.bound_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
        );
    }
    if let Some(ns) = entry.last_renewal_ns {
        m.insert("last_renewal_time".into(), json!((ns / 1_000_000_000) as i64));
        if let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(ns) {
            m.insert("last_renewal".into(), json!(rfc3339_nano(t)));
        }
    }
    m
}

#[async_trait]
impl Backend for TokenBackend {
    async fn handle(&self, ctx: &Ctx) -> Result<Response> {
        let core = self.core()?;
        let _active = core.active()?;
        match (ctx.path.trim_end_matches('/'), ctx.operation) {
            ("lookup-self", Operation::Read | Operation::Update) => {
                let entry = ctx.token.as_ref().ok_or(Error::NoToken)?;
                // Echoing the caller's own token back to its owner, as Vault does.
                let id = ctx.client_token.as_ref().map(|t| t.expose()).unwrap_or("");
                Ok(Response::data(lookup_data(entry, id, ctx.now)))
            }
            _ => Err(Error::UnsupportedPath),
        }
    }
}
