//! The Vault response envelope.

use serde_json::{json, Map, Value};

use crate::core::request::Response;

/// Renders a response in the envelope (with top-level injection when asked).
///
/// The keys come out sorted (serde_json's `Map` is ordered), as they always have: the common
/// case writes them in that order straight from the borrowed response with
/// [`crate::util::json`] (no `Value` tree, no copy of `data`); `auth` and `wrap_info` still go
/// through `Value` so their own keys stay sorted too. `data` given already written
/// (`Response::data_json`, a transit batch) is finished in its own buffer, which starts with
/// the envelope's first bytes, so ~140 KB of results are not copied again. Legacy top-level
/// responses take the general path. All of them write the same bytes (tested).
pub fn render(mut resp: Response, request_id: &str) -> Vec<u8> {
    if resp.top_level {
        return render_general(resp, request_id);
    }
    use crate::util::json::{write_map, write_str, write_value};
    let wrapped = resp.wrap_info.is_some();
    // `data` written in a buffer with the envelope's start in front: finish that buffer.
    let started = match (&resp.auth, &resp.data, resp.data_json.take()) {
        (None, None, Some(json)) => {
            json.into_envelope_start().map_err(|json| resp.data_json = Some(json)).ok()
        }
        (_, _, json) => {
            resp.data_json = json;
            None
        }
    };
    let mut out = match started {
        Some(mut out) => {
            out.reserve(256);
            out
        }
        None => {
            let mut out = Vec::with_capacity(
                256 + resp.data_json.as_ref().map_or(0, |d| d.json().len())
                    + resp.data.as_ref().map_or(0, |d| {
                        64 + d.iter().map(|(k, v)| k.len() + 4 + size_estimate(v)).sum::<usize>()
                    }),
            );
            // The keys in the order a sorted map writes them.
            out.extend_from_slice(b"{\"auth\":");
            match &resp.auth {
                Some(a) => write_value(&mut out, &json!(a)),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"data\":");
            match (&resp.data, &resp.data_json) {
                (Some(d), _) => write_map(&mut out, d),
                (None, Some(json)) => out.extend_from_slice(json.json()),
                (None, None) => out.extend_from_slice(b"null"),
            }
            out
        }
    };
    out.extend_from_slice(b",\"lease_duration\":");
    out.extend_from_slice(resp.lease_duration.to_string().as_bytes());
    out.extend_from_slice(b",\"lease_id\":");
    write_str(&mut out, &resp.lease_id);
    if !resp.mount_type.is_empty() {
        out.extend_from_slice(b",\"mount_type\":");
        write_str(&mut out, &resp.mount_type);
    }
    out.extend_from_slice(if resp.renewable { b",\"renewable\":true" } else { b",\"renewable\":false" });
    out.extend_from_slice(b",\"request_id\":");
    write_str(&mut out, if wrapped { "" } else { request_id });
    out.extend_from_slice(b",\"warnings\":");
    if resp.warnings.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'[');
        for (i, w) in resp.warnings.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&mut out, w);
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"wrap_info\":");
    match &resp.wrap_info {
        Some(w) => write_value(&mut out, &json!(w)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
    out
}

/// About the length of `v` as JSON (exact for strings without escapes, numbers guessed), so a
/// large answer (a transit batch: ~150 KB) is written into one buffer instead of one that
/// doubles and is copied a dozen times.
fn size_estimate(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|e| size_estimate(e) + 1).sum::<usize>(),
        Value::Object(m) => 2 + m.iter().map(|(k, e)| k.len() + 4 + size_estimate(e)).sum::<usize>(),
    }
}

/// Builds the envelope as a map (top-level injection: `data`'s keys beside the envelope's).
fn render_general(resp: Response, request_id: &str) -> Vec<u8> {
    let mut out = Map::new();
    let data = resp.data_map().map(std::borrow::Cow::into_owned);
    if resp.top_level {
        if let Some(d) = &data {
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
    out.insert("data".into(), data.map(Value::Object).unwrap_or(Value::Null));
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
    use crate::core::request::{Auth, DataJson, WrapInfo};

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

    /// `data` given already written (`data_json`) comes out as the same bytes as the map it
    /// was written from, in the envelope and in the legacy top-level envelope alike.
    #[test]
    fn data_given_as_json_renders_as_the_map_does() {
        for i in (1..64).step_by(2) {
            for top_level in [false, true] {
                let mut as_map = sample(i);
                as_map.top_level = top_level;
                let mut as_json = sample(i);
                as_json.top_level = top_level;
                let d = as_json.data.take().unwrap();
                let mut json = DataJson::with_capacity(0);
                serde_json::to_writer(json.writer(), &d).unwrap();
                as_json.data_json = Some(json);
                assert!(!as_json.is_empty());
                assert_eq!(as_json.data_map().unwrap().into_owned(), d);
                assert_eq!(
                    String::from_utf8(render(as_json, "req-1")).unwrap(),
                    String::from_utf8(render(as_map, "req-1")).unwrap(),
                    "case {i}, top level {top_level}"
                );
            }
        }
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
