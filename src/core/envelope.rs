//! The Vault response envelope.

use serde_json::{json, Map, Value};

use crate::core::request::Response;

/// Renders a response in the envelope (with top-level injection when asked).
pub fn render(resp: Response, request_id: &str) -> Vec<u8> {
    let mut out = Map::new();
    if resp.top_level {
        if let Some(d) = &resp.data {
            for (k, v) in d {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let wrapped = resp.wrap_info.is_some();
    out.insert("request_id".into(), json!(if wrapped { "" } else { request_id }));
    out.insert("lease_id".into(), json!(resp.lease_id));
    out.insert("renewable".into(), json!(resp.renewable));
    out.insert("lease_duration".into(), json!(resp.lease_duration));
    out.insert("data".into(), resp.data.map(Value::Object).unwrap_or(Value::Null));
    out.insert("wrap_info".into(), resp.wrap_info.map(|w| json!(w)).unwrap_or(Value::Null));
    out.insert("warnings".into(), if resp.warnings.is_empty() { Value::Null } else { json!(resp.warnings) });
    out.insert("auth".into(), resp.auth.map(|a| json!(a)).unwrap_or(Value::Null));
    if !resp.mount_type.is_empty() {
        out.insert("mount_type".into(), json!(resp.mount_type));
    }
    let mut body = serde_json::to_vec(&Value::Object(out)).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    body
}
