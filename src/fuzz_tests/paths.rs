//! `request_path`: request targets through the HTTP layer's parser, the route table and the
//! placement rule.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

use coffer_storage::fuzzing::bytes_from;

use super::SUITE;
use crate::http::request::{clean_path, forwarded_request};
use crate::http::routes::{placement, Endpoint, Placement};

const DICT: &[&[u8]] = &[
    b"/v1/",
    b"v1",
    b"sys/",
    b"sys/health",
    b"sys/seal",
    b"sys/unseal",
    b"sys/step-down",
    b"sys/storage/raft/",
    b"join",
    b"snapshot",
    b"auth/",
    b"token/create",
    b"login",
    b"sys/wrapping/unwrap",
    b"secret/data/",
    b"?",
    b"&",
    b"list=true",
    b"%",
    b"%2F",
    b"%2e%2e",
    b"%2E",
    b"%00",
    b"%0a",
    b"%7f",
    b"%c0%ae",
    b"%25",
    b"#",
    b"./",
    b"../",
    b"/.",
    b"/..",
    b" ",
    b"\t",
    b"http://h",
];

const METHODS: [&str; 7] = ["GET", "LIST", "POST", "PUT", "DELETE", "PATCH", "HEAD"];

fn check(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw);
    // clean_path on any string: no `//`, no leading `/`, nothing but slashes removed, idempotent.
    let c = clean_path(&text);
    if c.contains("//")
        || c.starts_with('/')
        || c.replace('/', "") != text.replace('/', "")
        || clean_path(&c) != c
    {
        return Err(format!("clean_path gave {c:?}"));
    }
    let target = if text.starts_with('/') { text.to_string() } else { format!("/v1/{text}") };
    let remote = "127.0.0.1:1".parse().map_err(|_| "addr")?;
    let req = match forwarded_request(Method::GET, &target, HeaderMap::new(), Bytes::new(), remote, 1 << 20) {
        Ok(r) => r,
        Err(reply) => {
            let status = reply.status.as_u16();
            let body: serde_json::Value =
                serde_json::from_slice(&reply.body).map_err(|_| format!("{status} body is not JSON"))?;
            return match status {
                400 | 404 if body["errors"].is_array() => Ok(()),
                _ => Err(format!("refused with {status} {body}")),
            };
        }
    };
    let p = &req.path;
    if p.chars().any(char::is_control) {
        return Err(format!("control character in {p:?}"));
    }
    if p.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("relative segment in {p:?}"));
    }
    if p.contains("//") || p.starts_with('/') || clean_path(p) != *p {
        return Err(format!("path not canonical: {p:?}"));
    }
    // The route table ignores one trailing slash; placement never lets a write or a wrapped
    // response be served by a follower's read path.
    if Endpoint::parse(p) != Endpoint::parse(&format!("{p}/")) {
        return Err(format!("a trailing slash changes the endpoint of {p:?}"));
    }
    let mut wrap = HeaderMap::new();
    wrap.insert("x-vault-wrap-ttl", HeaderValue::from_static("5m"));
    for m in METHODS {
        let method = Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string())?;
        let plain = placement(&method, p, &HeaderMap::new());
        let wrapped = placement(&method, p, &wrap);
        let read = m == "GET" || m == "LIST";
        if (!read && plain == Placement::ReadAfterBarrier) || wrapped == Placement::ReadAfterBarrier {
            return Err(format!("{m} {p:?} placed on the read path"));
        }
    }
    Ok(())
}

#[test]
fn request_path() {
    let mut t = SUITE.target("request_path", 3000);
    t.replay(check);
    t.generate(bytes_from(t.seeds(), DICT), |b| check(b));
    t.finish();
}
