//! S1: no secret byte in plaintext anywhere. A node with file storage, trace-level logging and
//! an audit device receives 100+ random canaries as KV v1 and v2 values, transit plaintexts,
//! tokens, AppRole secret IDs, wrapped responses, unseal keys and the root token, the OTP,
//! encoded root token and new shares of generate-root and rekey (all audited), plus malformed
//! or refused requests carrying canaries. Then the data directory (every file, binary), the
//! server's log output, the audit log and every error body are searched for each canary in raw,
//! hex and base64 forms: zero hits.

use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};

use crate::harness::Server;

pub fn forms(canary: &str) -> Vec<String> {
    let b = canary.as_bytes();
    vec![
        canary.to_owned(),
        hex::encode(b),
        base64::engine::general_purpose::STANDARD.encode(b),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(b),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
    ]
}

pub fn random_canary(tag: &str) -> String {
    let mut b = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{tag}-{}", hex::encode(b))
}

pub fn files_under(dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_canary_reaches_disk_logs_audit_or_error_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let audit = dir.path().join("audit.log");
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(
        &cfg,
        "log_level = \"trace\"\n[storage]\ntype = \"file\"\npath = \"data\"\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n[[audit]]\ntype = \"file\"\npath = \"file\"\noptions = { file_path = \"audit.log\" }\n",
    )
    .unwrap();
    let mut s = Server::with_config(&cfg, None, &[]);
    let mut secrets: Vec<String> = Vec::new();
    let mut error_bodies: Vec<String> = Vec::new();

    // Init and unseal: the shares and the root token are secrets too.
    let (st, init) =
        s.call_as("", "PUT", "sys/init", Some(json!({"secret_shares": 3, "secret_threshold": 2})));
    assert_eq!(st, 200);
    for k in init["keys"].as_array().unwrap().iter().chain(init["keys_base64"].as_array().unwrap()) {
        secrets.push(k.as_str().unwrap().to_owned());
    }
    s.token = init["root_token"].as_str().unwrap().to_owned();
    secrets.push(s.token.clone());
    for k in &init["keys"].as_array().unwrap()[..2] {
        assert_eq!(s.call_as("", "PUT", "sys/unseal", Some(json!({"key": k}))).0, 200);
    }
    // The audit device is declared in the configuration and enabled at unseal.
    assert_eq!(s.call("GET", "sys/audit", None).1["data"]["file/"]["options"]["file_path"], json!(audit));
    for (path, body) in [
        ("sys/mounts/kv1", json!({"type": "kv"})),
        ("sys/mounts/secret", json!({"type": "kv", "options": {"version": "2"}})),
        ("sys/mounts/transit", json!({"type": "transit"})),
        ("sys/auth/approle", json!({"type": "approle"})),
    ] {
        assert_eq!(s.call("POST", path, Some(body)).0, 204, "{path}");
    }

    // 100 values through kv (50 v1, 50 v2), each also read back.
    for i in 0..50 {
        let c = random_canary("kv1");
        assert_eq!(s.call("PUT", &format!("kv1/app/{i}"), Some(json!({"value": c}))).0, 204);
        assert_eq!(s.call("GET", &format!("kv1/app/{i}"), None).1["data"]["value"], c);
        secrets.push(c);
        let c = random_canary("kv2");
        assert_eq!(
            s.call("POST", &format!("secret/data/app/{i}"), Some(json!({"data": {"value": c}}))).0,
            200
        );
        assert_eq!(s.call("GET", &format!("secret/data/app/{i}"), None).1["data"]["data"]["value"], c);
        secrets.push(c);
    }
    // Transit plaintexts (sent base64, as the API wants).
    for _ in 0..5 {
        let c = random_canary("transit");
        let pt = base64::engine::general_purpose::STANDARD.encode(c.as_bytes());
        let (st, e) = s.call("POST", "transit/encrypt/k", Some(json!({"plaintext": pt})));
        assert_eq!(st, 200, "{e}");
        let (_, d) =
            s.call("POST", "transit/decrypt/k", Some(json!({"ciphertext": e["data"]["ciphertext"]})));
        assert_eq!(d["data"]["plaintext"], pt);
        secrets.push(c);
    }
    // Tokens (and their accessors), AppRole secret IDs, a custom secret ID, wrapped responses.
    for _ in 0..5 {
        let (_, t) = s.call("POST", "auth/token/create", Some(json!({"policies": ["default"]})));
        secrets.push(t["auth"]["client_token"].as_str().unwrap().to_owned());
        secrets.push(t["auth"]["accessor"].as_str().unwrap().to_owned());
    }
    assert_eq!(s.call("POST", "auth/approle/role/web", Some(json!({"token_policies": "default"}))).0, 204);
    let role_id = s.call("GET", "auth/approle/role/web/role-id", None).1["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        let sid = s.call("POST", "auth/approle/role/web/secret-id", None).1["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (st, login) =
            s.call_as("", "POST", "auth/approle/login", Some(json!({"role_id": role_id, "secret_id": sid})));
        assert_eq!(st, 200);
        secrets.push(sid);
        secrets.push(login["auth"]["client_token"].as_str().unwrap().to_owned());
    }
    let custom = random_canary("custom-sid");
    assert_eq!(
        s.call("POST", "auth/approle/role/web/custom-secret-id", Some(json!({"secret_id": custom}))).0,
        200
    );
    secrets.push(custom);
    let wrapped_secret = random_canary("wrapped");
    let w: Value = s
        .client()
        .post(format!("{}/v1/sys/wrapping/wrap", s.addr))
        .header("X-Vault-Token", &s.token)
        .header("X-Vault-Wrap-TTL", "5m")
        .json(&json!({"value": wrapped_secret}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    secrets.push(wrapped_secret);
    secrets.push(w["wrap_info"]["token"].as_str().unwrap().to_owned());

    // Quorum operations (audited, every leaf hashed): unseal shares go in, an OTP, an encoded
    // root token and new shares come out. A refused update carrying a share is audited too.
    let shares: Vec<String> =
        init["keys"].as_array().unwrap()[..2].iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    let guessed = random_canary("guessed-token");
    secrets.push(guessed.clone());
    let (st, _) =
        s.call_as(&guessed, "PUT", "sys/generate-root/update", Some(json!({"key": shares[0], "nonce": "n"})));
    assert_eq!(st, 403);
    let (st, attempt) = s.call("PUT", "sys/generate-root/attempt", Some(json!({})));
    assert_eq!(st, 200, "{attempt}");
    let otp = attempt["otp"].as_str().unwrap().to_owned();
    let mut done = Value::Null;
    for k in &shares {
        let (st, body) =
            s.call("PUT", "sys/generate-root/update", Some(json!({"key": k, "nonce": attempt["nonce"]})));
        assert_eq!(st, 200, "{body}");
        done = body;
    }
    let encoded = done["encoded_token"].as_str().unwrap().to_owned();
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')).unwrap();
    let generated = String::from_utf8(raw.iter().zip(otp.bytes()).map(|(b, o)| b ^ o).collect()).unwrap();
    assert_eq!(s.call_as(&generated, "GET", "auth/token/lookup-self", None).0, 200);
    secrets.extend([otp, encoded, generated]);
    let (st, rekey) =
        s.call("PUT", "sys/rekey/init", Some(json!({"secret_shares": 3, "secret_threshold": 2})));
    assert_eq!(st, 200, "{rekey}");
    for k in &shares {
        let (st, body) = s.call("PUT", "sys/rekey/update", Some(json!({"key": k, "nonce": rekey["nonce"]})));
        assert_eq!(st, 200, "{body}");
        done = body;
    }
    for k in done["keys"].as_array().unwrap().iter().chain(done["keys_base64"].as_array().unwrap()) {
        secrets.push(k.as_str().unwrap().to_owned());
    }

    // Malformed requests carrying canaries: 4xx, and the canary never comes back.
    let bad = random_canary("bad-input");
    secrets.push(bad.clone());
    let c = s.client();
    for (method, path, body) in [
        ("POST", "kv1/x", format!("{{\"value\": \"{bad}")),
        ("POST", "secret/data/x", format!("{{\"data\": \"{bad}\"}}")),
        ("POST", "secret/data/x", format!("{{\"data\": {{\"v\": 1}}, \"options\": {{\"cas\": \"{bad}\"}}}}")),
        ("POST", "auth/token/create", format!("{{\"num_uses\": \"{bad}\"}}")),
        ("POST", "auth/token/create", format!("{{\"renewable\": \"{bad}\"}}")),
        ("POST", "auth/approle/login", format!("{{\"role_id\": \"{role_id}\", \"secret_id\": \"{bad}\"}}")),
        ("POST", "auth/approle/role/web/secret-id", format!("{{\"metadata\": \"{bad}\"}}")),
        ("POST", "transit/decrypt/k", format!("{{\"ciphertext\": \"{bad}\"}}")),
        ("POST", "transit/encrypt/k", format!("{{\"plaintext\": \"{bad}\"}}")),
        ("POST", "sys/wrapping/unwrap", format!("{{\"token\": \"{bad}\"}}")),
        ("POST", "sys/policies/acl/p", format!("{{\"policy\": \"path {bad}\"}}")),
    ] {
        let r = c
            .request(method.parse().unwrap(), format!("{}/v1/{path}", s.addr))
            .header("X-Vault-Token", &s.token)
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        assert!((400..500).contains(&status), "{method} {path}: {status} {text}");
        error_bodies.push(text);
    }
    // A bad token carrying a canary, on an authenticated path.
    let r = c.get(format!("{}/v1/kv1/app/0", s.addr)).header("X-Vault-Token", &bad).send().unwrap();
    assert_eq!(r.status(), 403);
    error_bodies.push(r.text().unwrap());

    assert!(secrets.len() >= 130, "{} canaries", secrets.len());
    assert!(s.terminate().success());

    let mut files = Vec::new();
    files_under(&data, &mut files);
    assert!(!files.is_empty());
    let logs = format!("{}\n{}", s.stdout.text(), s.stderr.text());
    assert!(
        logs.matches(" request ").count() + logs.matches("request request_id").count() >= 100,
        "trace logging logged the requests:\n{logs}"
    );
    let audit_text = std::fs::read(&audit).unwrap();
    for path in ["\"sys/generate-root/update\"", "\"sys/generate-root/attempt\"", "\"sys/rekey/update\""] {
        assert!(contains(&audit_text, path.as_bytes()), "{path} is audited");
    }
    let mut hits = Vec::new();
    for secret in &secrets {
        for form in forms(secret) {
            let f = form.as_bytes();
            for (name, bytes) in &files {
                if contains(bytes, f) {
                    hits.push(format!("{form} in {name}"));
                }
            }
            if logs.contains(&form) {
                hits.push(format!("{form} in the server log"));
            }
            if contains(&audit_text, f) {
                hits.push(format!("{form} in the audit log"));
            }
            for b in &error_bodies {
                if b.contains(&form) {
                    hits.push(format!("{form} in an error body: {b}"));
                }
            }
        }
    }
    assert!(hits.is_empty(), "{} plaintext hits:\n{}", hits.len(), hits.join("\n"));
}
