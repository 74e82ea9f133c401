//! How a token entry appears in responses: the `data` of a lookup and the `auth` block of a
//! create or renew. Only the token's owner ever sees its ID (lookup-self, create, renew-self);
//! accessor lookups show an empty `id`.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::core::request::Auth;
use crate::core::token::TokenEntry;
use crate::util::timefmt::rfc3339_nano;

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
    let issue =
        OffsetDateTime::from_unix_timestamp_nanos(entry.issue_time_ns).map(rfc3339_nano).unwrap_or_default();
    m.insert("issue_time".into(), json!(issue));
    m.insert("meta".into(), json!(entry.meta));
    m.insert("num_uses".into(), json!(entry.num_uses));
    m.insert("orphan".into(), json!(entry.parent.is_none()));
    m.insert("path".into(), json!(entry.path));
    m.insert("policies".into(), json!(entry.policies));
    m.insert("renewable".into(), json!(entry.renewable && entry.expire_time_ns.is_some()));
    m.insert("ttl".into(), json!(ttl));
    m.insert("type".into(), json!(entry.token_type.as_str()));
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

/// The `auth` block for a token entry (create and renew responses).
pub fn auth_block(entry: &TokenEntry, client_token: &str, lease_duration: u64) -> Auth {
    Auth {
        client_token: client_token.to_owned(),
        accessor: entry.accessor.clone(),
        policies: entry.policies.clone(),
        token_policies: entry.policies.clone(),
        identity_policies: Vec::new(),
        metadata: entry.meta.clone(),
        lease_duration,
        renewable: entry.renewable && entry.expire_time_ns.is_some(),
        entity_id: entry.entity_id.clone(),
        token_type: entry.token_type.as_str().into(),
        orphan: entry.parent.is_none(),
        mfa_requirement: None,
        num_uses: entry.num_uses,
    }
}
