//! The Vault response envelope.

use serde_json::{json, Map, Value};

use crate::core::request::Response;

/// Renders a response in the envelope (with top-level injection when asked).
///
/// The keys come out sorted (serde_json's `Map` is ordered), as they always have: the common
/// case serialises a borrowed struct whose fields are declared in that order, without building
/// and cloning a `Value` tree; `auth` and `wrap_info` still go through `Value` so their own keys
/// stay sorted too. Legacy top-level responses take the general path.
pub fn render(resp: Response, request_id: &str) -> Vec<u8> {
    if resp.top_level {
        return render_general(resp, request_id);
    }
    let wrapped = resp.wrap_info.is_some();
    let envelope = Envelope {
        auth: resp.auth.as_ref().map(|a| json!(a)).unwrap_or(Value::Null),
        data: resp.data.as_ref(),
        lease_duration: resp.lease_duration,
        lease_id: &resp.lease_id,
        mount_type: &resp.mount_type,
        renewable: resp.renewable,
        request_id: if wrapped { "" } else { request_id },
        warnings: (!resp.warnings.is_empty()).then_some(&resp.warnings),
        wrap_info: resp.wrap_info.as_ref().map(|w| json!(w)).unwrap_or(Value::Null),
    };
    let mut body = Vec::with_capacity(256 + resp.data.as_ref().map_or(0, |_| 512));
    if serde_json::to_writer(&mut body, &envelope).is_err() {
        body = b"{}".to_vec();
    }
    body.push(b'\n');
    body
}

/// The envelope's fields in the order a sorted map writes them.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    auth: Value,
    data: Option<&'a Map<String, Value>>,
    lease_duration: u64,
    lease_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mount_type: &'a str,
    renewable: bool,
    request_id: &'a str,
    warnings: Option<&'a Vec<String>>,
    wrap_info: Value,
}

/// Builds the envelope as a map (top-level injection: `data`'s keys beside the envelope's).
fn render_general(resp: Response, request_id: &str) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::request::{Auth, WrapInfo};

    fn sample(i: u32) -> Response {
        let mut r = Response::default();
        if i & 1 != 0 {
            let mut d = Map::new();
            d.insert("ciphertext".into(), json!(format!("vault:v1:{}", "A".repeat(i as usize))));
            d.insert("quote\"and\\slash\u{1}".into(), json!({"nested": [1, "two", null, 3.5]}));
            d.insert("zzz".into(), json!(i));
            r.data = Some(d);
        }
        if i & 2 != 0 {
            r.auth = Some(Auth {
                client_token: "hvs.x".into(),
                policies: vec!["default".into()],
                ..Auth::default()
            });
        }
        if i & 4 != 0 {
            r.warnings = vec!["careful \"now\"".into(), "again".into()];
        }
        if i & 8 != 0 {
            r.mount_type = "kv".into();
        }
        if i & 16 != 0 {
            r.lease_id = format!("kv/lease/{i}");
            r.lease_duration = 3600;
            r.renewable = true;
        }
        if i & 32 != 0 {
            r.wrap_info = Some(WrapInfo {
                token: "hvs.wrap".into(),
                accessor: "acc".into(),
                ttl: 60,
                creation_time: "2026-12-06T00:00:00Z".into(),
                creation_path: "sys/wrapping/wrap".into(),
                wrapped_accessor: String::new(),
            });
        }
        r
    }

    /// The fast path writes byte for byte what the general (map) path writes.
    #[test]
    fn the_struct_envelope_is_byte_identical_to_the_map_envelope() {
        for i in 0..64 {
            assert_eq!(
                String::from_utf8(render(sample(i), "req-1")).unwrap(),
                String::from_utf8(render_general(sample(i), "req-1")).unwrap(),
                "case {i}"
            );
        }
    }
}
