//! S3: malformed input gets a 4xx with a Vault-shaped body — never a 5xx, a panic or a dead
//! server. Thousands of requests: every endpoint family, every commonly used field set to every
//! wrong shape, plus bodies that are not JSON objects at all.

use serde_json::{json, Value};

use crate::harness::Server;

/// (method, path) pairs covering every engine and sys area.
fn endpoints() -> Vec<(&'static str, &'static str)> {
    vec![
        ("POST", "sys/mounts/m1"),
        ("POST", "sys/mounts/kv1/tune"),
        ("POST", "sys/auth/a1"),
        ("POST", "sys/remount"),
        ("POST", "sys/policies/acl/p1"),
        ("POST", "sys/policy/p2"),
        ("POST", "sys/capabilities-self"),
        ("POST", "sys/capabilities"),
        ("POST", "sys/capabilities-accessor"),
        ("POST", "sys/wrapping/unwrap"),
        ("POST", "sys/wrapping/lookup"),
        ("POST", "sys/wrapping/rewrap"),
        ("POST", "sys/audit/f1"),
        ("POST", "sys/audit-hash/file"),
        ("POST", "sys/tools/random"),
        ("POST", "sys/tools/hash"),
        ("POST", "sys/rekey/init"),
        ("POST", "sys/generate-root/attempt"),
        ("POST", "sys/unseal"),
        ("POST", "sys/init"),
        ("POST", "auth/token/create"),
        ("POST", "auth/token/create-orphan"),
        ("POST", "auth/token/lookup"),
        ("POST", "auth/token/lookup-accessor"),
        ("POST", "auth/token/renew"),
        ("POST", "auth/token/renew-accessor"),
        ("POST", "auth/token/revoke"),
        ("POST", "auth/token/roles/r1"),
        ("POST", "auth/approle/role/web"),
        ("POST", "auth/approle/role/web/secret-id"),
        ("POST", "auth/approle/role/web/custom-secret-id"),
        ("POST", "auth/approle/role/web/role-id"),
        ("POST", "auth/approle/role/web/secret-id/lookup"),
        ("POST", "auth/approle/role/web/secret-id-accessor/lookup"),
        ("POST", "auth/approle/role/web/policies"),
        ("POST", "auth/approle/login"),
        ("POST", "kv1/x"),
        ("POST", "secret/config"),
        ("POST", "secret/data/x"),
        ("POST", "secret/metadata/x"),
        ("POST", "secret/delete/x"),
        ("POST", "secret/undelete/x"),
        ("POST", "secret/destroy/x"),
        ("GET", "secret/data/x"),
        ("GET", "secret/subkeys/x"),
        ("POST", "transit/keys/k2"),
        ("POST", "transit/keys/k/config"),
        ("POST", "transit/keys/k/trim"),
        ("POST", "transit/encrypt/k"),
        ("POST", "transit/decrypt/k"),
        ("POST", "transit/rewrap/k"),
        ("POST", "transit/datakey/plaintext/k"),
        ("POST", "transit/hmac/k"),
        ("POST", "transit/sign/ed"),
        ("POST", "transit/verify/ed"),
        ("POST", "transit/verify/k"),
        ("POST", "transit/hash"),
        ("POST", "transit/random"),
        ("POST", "transit/restore"),
        ("POST", "transit/cache-config"),
        ("POST", "transit/sign/p256"),
        ("POST", "transit/verify/rsa"),
        ("POST", "transit/encrypt/rsa"),
        ("POST", "transit/decrypt/rsa"),
        ("POST", "transit/encrypt/xc"),
        ("GET", "transit/wrapping_key"),
        ("POST", "transit/keys/new/import"),
        ("POST", "transit/keys/imp/import_version"),
        ("POST", "transit/jwt/sign/rsa"),
        ("POST", "transit/jwt/verify/p256"),
        ("GET", "transit/jwks/p256"),
        ("GET", "transit/export/public-key/p256"),
        ("POST", "cubbyhole/x"),
    ]
}

const FIELDS: &[&str] = &[
    "type",
    "policies",
    "policy",
    "ttl",
    "num_uses",
    "period",
    "explicit_max_ttl",
    "data",
    "options",
    "config",
    "plaintext",
    "ciphertext",
    "batch_input",
    "versions",
    "cas",
    "metadata",
    "role_id",
    "secret_id",
    "key_version",
    "context",
    "input",
    "bits",
    "token",
    "accessor",
    "increment",
    "max_versions",
    "custom_metadata",
    "description",
    "secret_shares",
    "secret_threshold",
    "key",
    "reset",
    "nonce",
    "otp",
    "paths",
    "path",
    "from",
    "to",
    "token_policies",
    "secret_id_num_uses",
    "cidr_list",
    "token_bound_cidrs",
    "min_decryption_version",
    "exportable",
    "backup",
    "delete_version_after",
    "cas_required",
    "hash_algorithm",
    "signature",
    "hmac",
    "format",
    "bytes",
    "options",
    "size",
    "min_available_version",
    "associated_data",
    "derived",
    "meta",
    "renewable",
    "display_name",
    "claims",
    "alg",
    "leeway",
    "public_key",
    "hash_function",
    "signature_algorithm",
    "marshaling_algorithm",
    "salt_length",
    "prehashed",
    "version",
    "jwks_public",
    "allow_rotation",
];

fn values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5e308),
        json!(-9_223_372_036_854_775_808i64),
        json!(""),
        json!("x".repeat(5000)),
        json!([]),
        json!([1, "a", {"b": null}]),
        json!({"a": {"b": [1, {"c": "d"}]}}),
        json!("\u{0}\u{1}\u{7f}"),
        json!("../../etc/passwd"),
        json!("vault:v1:!!!"),
        json!("ünïcödé ✓"),
    ]
}

/// Vault-compatible answers that are documented 500s (contract §5.5 and transit's batches whose
/// items failed internally), allowed here only for the exact endpoints that have them. A
/// `batch_input` that does not decode is a 400 (OpenBao's 500 there is not copied).
fn allowed_500(path: &str, body: &str) -> bool {
    (path.contains("/secret-id/lookup") && body.contains("does not exist"))
        || (path.contains("/secret-id-accessor/") && body.contains("failed to find accessor entry"))
        || (path.contains("custom-secret-id") && body.contains("already registered"))
        || (path.starts_with("transit/") && body.contains("batch_results"))
        || (path.starts_with("transit/restore")
            && (body.contains("already exists") || body.contains("key names cannot be paths")))
}

#[test]
fn malformed_input_never_gets_a_5xx() {
    let s = Server::dev();
    // Things for the endpoints to find.
    for (m, p, b) in [
        ("POST", "sys/mounts/kv1", json!({"type": "kv"})),
        ("POST", "sys/mounts/transit", json!({"type": "transit"})),
        ("POST", "transit/keys/k", json!({})),
        ("POST", "transit/keys/ed", json!({"type": "ed25519"})),
        ("POST", "transit/keys/p256", json!({"type": "ecdsa-p256", "exportable": true})),
        ("POST", "transit/keys/rsa", json!({"type": "rsa-2048", "exportable": true})),
        ("POST", "transit/keys/xc", json!({"type": "xchacha20-poly1305"})),
        ("POST", "sys/auth/approle", json!({"type": "approle"})),
        ("POST", "auth/approle/role/web", json!({"token_policies": "default"})),
        ("POST", "secret/data/x", json!({"data": {"a": "b"}})),
    ] {
        let (st, body) = s.call(m, p, Some(b));
        assert!(st < 300, "setup {p}: {st} {body}");
    }
    // A key imported from its public key alone, for `import_version`.
    let (_, public) = s.call("GET", "transit/export/public-key/p256/1", None);
    let pem = public["data"]["keys"]["1"].as_str().unwrap_or_default().to_owned();
    let (st, body) =
        s.call("POST", "transit/keys/imp/import", Some(json!({"type": "ecdsa-p256", "public_key": pem})));
    assert_eq!(st, 204, "setup import: {body}");
    let dir = tempfile::tempdir().unwrap();
    s.call(
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": dir.path().join("a.log")}})),
    );

    let c = s.client();
    let mut requests = 0;
    let mut failures = Vec::new();
    let eps = endpoints();
    let vals = values();
    let send = |method: &str, path: &str, body: String| -> (u16, String) {
        let r = c
            .request(method.parse().unwrap(), format!("{}/v1/{path}", s.addr))
            .header("X-Vault-Token", &s.token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: no answer ({e}) — did the server die?"));
        let st = r.status().as_u16();
        (st, r.text().unwrap_or_default())
    };
    for (method, path) in &eps {
        let mut bodies: Vec<String> = vec![
            "[]".into(),
            "\"str\"".into(),
            "123".into(),
            "{".into(),
            "{\"a\":}".into(),
            "\u{0}".into(),
            "null".into(),
        ];
        for f in FIELDS {
            for v in &vals {
                bodies.push(json!({ *f: v }).to_string());
            }
        }
        for body in bodies {
            let (st, text) = if *method == "GET" {
                let q: String = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                format!(
                                    "{k}={}",
                                    v.to_string().trim_matches('"').chars().take(200).collect::<String>()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("&")
                    })
                    .unwrap_or_default();
                let r = c
                    .get(format!("{}/v1/{path}?{}", s.addr, q.replace(' ', "%20").replace('#', "%23")))
                    .header("X-Vault-Token", &s.token)
                    .send()
                    .unwrap_or_else(|e| panic!("GET {path}: no answer ({e})"));
                let st = r.status().as_u16();
                (st, r.text().unwrap_or_default())
            } else {
                send(method, path, body.clone())
            };
            requests += 1;
            if st >= 500 && !allowed_500(path, &text) {
                failures.push(format!("{method} {path} {body:.120} -> {st} {text:.200}"));
            }
            if (400..500).contains(&st) && !text.contains("\"errors\"") && !text.contains("\"data\"") {
                failures.push(format!(
                    "{method} {path} {body:.120} -> {st} without a Vault-shaped body: {text:.200}"
                ));
            }
        }
    }
    assert!(requests > 40_000, "{requests} requests");
    let log = s.stderr.text();
    assert!(!log.contains("panicked"), "a handler panicked:\n{log}");
    assert!(
        failures.is_empty(),
        "{} of {requests} malformed requests were answered badly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Still alive and serving. (The calls may legitimately have changed state — e.g. set
    // secret/config cas_required — so check what they cannot have touched.)
    assert_eq!(s.call("GET", "sys/health", None).0, 200);
    assert_eq!(s.call("GET", "auth/token/lookup-self", None).0, 200);
    assert_eq!(s.call("PUT", "kv1/after", Some(json!({"ok": true}))).0, 204);
}
