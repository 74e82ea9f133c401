//! Transit against OpenBao: known-answer tests (keys moved both ways with `backup`/`restore`,
//! ciphertexts, HMACs and signatures checked across servers) and a differential test of many
//! calls, errors included, comparing status codes, `data` keys and error texts.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::harness::{self, Server};

fn b64(s: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn mount(s: &Server) {
    let (st, body) = s.call("POST", "sys/mounts/transit", Some(json!({"type": "transit"})));
    assert_eq!(st, 204, "mount transit: {body}");
}

fn ok(s: &Server, method: &str, path: &str, body: Value) -> Value {
    let (st, v) = s.call(method, path, Some(body));
    assert!((200..300).contains(&st), "{method} {path} -> {st}: {v}");
    v
}

fn data_str(v: &Value, key: &str) -> String {
    v["data"][key].as_str().unwrap_or_else(|| panic!("no data.{key} in {v}")).to_owned()
}

/// The key specs of the known-answer test: (name, create body, context or "").
fn kat_keys() -> Vec<(&'static str, Value, &'static str)> {
    let base = json!({"exportable": true, "allow_plaintext_backup": true});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let ctx = "Y29udGV4dC0x"; // "context-1"
    vec![
        ("aes256", with(json!({"type": "aes256-gcm96"})), ""),
        ("aes128", with(json!({"type": "aes128-gcm96"})), ""),
        ("chacha", with(json!({"type": "chacha20-poly1305"})), ""),
        ("aes256-derived", with(json!({"type": "aes256-gcm96", "derived": true})), ctx),
        (
            "aes128-conv",
            with(json!({"type": "aes128-gcm96", "derived": true, "convergent_encryption": true})),
            ctx,
        ),
        (
            "aes256-conv",
            with(json!({"type": "aes256-gcm96", "derived": true, "convergent_encryption": true})),
            ctx,
        ),
        (
            "chacha-conv",
            with(json!({"type": "chacha20-poly1305", "derived": true, "convergent_encryption": true})),
            ctx,
        ),
        ("ed", with(json!({"type": "ed25519"})), ""),
        ("ed-derived", with(json!({"type": "ed25519", "derived": true})), ctx),
        ("hm", with(json!({"type": "hmac", "key_size": 48})), ""),
        ("xchacha", with(json!({"type": "xchacha20-poly1305"})), ""),
        (
            "xchacha-conv",
            with(json!({"type": "xchacha20-poly1305", "derived": true, "convergent_encryption": true})),
            ctx,
        ),
        ("p256", with(json!({"type": "ecdsa-p256"})), ""),
        ("p384", with(json!({"type": "ecdsa-p384"})), ""),
        ("p521", with(json!({"type": "ecdsa-p521"})), ""),
        ("rsa2048", with(json!({"type": "rsa-2048"})), ""),
        ("rsa3072", with(json!({"type": "rsa-3072"})), ""),
        ("rsa4096", with(json!({"type": "rsa-4096"})), ""),
    ]
}

/// The sign/verify options the known-answer test uses per key type, each with the input it signs
/// (`prehashed` options sign a digest-sized input).
fn sign_options(kind: &str, pt: &str) -> Vec<Value> {
    let digest = b64(&[0x5a; 32]);
    let mut out = vec![json!({"input": pt})];
    if kind.starts_with("ecdsa") {
        out.extend([
            json!({"input": pt, "hash_algorithm": "sha2-512", "marshaling_algorithm": "jws"}),
            json!({"input": pt, "hash_algorithm": "sha3-384"}),
            json!({"input": pt, "algorithm": "sha1", "marshaling_algorithm": "jws"}),
            json!({"input": digest, "prehashed": true}),
        ]);
    }
    if kind.starts_with("rsa") {
        out.extend([
            json!({"input": pt, "signature_algorithm": "pkcs1v15"}),
            json!({"input": pt, "signature_algorithm": "pkcs1v15", "hash_algorithm": "sha2-512"}),
            json!({"input": pt, "signature_algorithm": "pkcs1v15", "hash_algorithm": "sha1"}),
            json!({"input": pt, "hash_algorithm": "sha3-256"}),
            json!({"input": pt, "salt_length": "hash", "marshaling_algorithm": "jws"}),
            json!({"input": pt, "salt_length": "20", "hash_algorithm": "sha2-384"}),
            json!({"input": digest, "prehashed": true, "signature_algorithm": "pkcs1v15"}),
            json!({"input": pt, "prehashed": true, "hash_algorithm": "none", "signature_algorithm": "pkcs1v15"}),
        ]);
    }
    out
}

struct Produced {
    name: &'static str,
    context: &'static str,
    /// (plaintext b64, ciphertext, associated data b64) per version.
    ciphertexts: Vec<(String, String, String)>,
    hmacs: Vec<(String, String)>,
    /// (sign request, signature).
    signatures: Vec<(Value, String)>,
}

/// Creates the KAT keys on `s` (two versions each) and produces ciphertexts, HMACs, signatures.
fn produce(s: &Server) -> Vec<Produced> {
    let mut out = Vec::new();
    for (name, body, context) in kat_keys() {
        ok(s, "POST", &format!("transit/keys/{name}"), body.clone());
        let mut p = Produced { name, context, ciphertexts: vec![], hmacs: vec![], signatures: vec![] };
        for round in 0..2 {
            if round == 1 {
                ok(s, "POST", &format!("transit/keys/{name}/rotate"), json!({}));
            }
            let kind = body["type"].as_str().unwrap();
            for (i, size) in [0usize, 1, 17, 1000].into_iter().enumerate() {
                let pt: Vec<u8> = (0..size).map(|j| (j * 7 + i + round) as u8).collect();
                let pt = b64(&pt);
                let input = json!({"input": pt, "context": context});
                let aead = kind.starts_with("aes") || kind.contains("chacha");
                if kind.starts_with("rsa") && size < 100 {
                    let v = ok(s, "POST", &format!("transit/encrypt/{name}"), json!({"plaintext": pt}));
                    p.ciphertexts.push((pt.clone(), data_str(&v, "ciphertext"), String::new()));
                }
                if aead {
                    let ad = if context.is_empty() && i == 2 { b64(b"header") } else { String::new() };
                    let mut req = json!({"plaintext": pt, "context": context});
                    if !ad.is_empty() {
                        req["associated_data"] = json!(ad);
                    }
                    let v = ok(s, "POST", &format!("transit/encrypt/{name}"), req);
                    p.ciphertexts.push((pt.clone(), data_str(&v, "ciphertext"), ad));
                }
                if kind == "ed25519" {
                    let v = ok(s, "POST", &format!("transit/sign/{name}"), input.clone());
                    p.signatures.push((input.clone(), data_str(&v, "signature")));
                }
                if (kind.starts_with("ecdsa") || kind.starts_with("rsa")) && (1..=2).contains(&i) {
                    for req in sign_options(kind, &pt) {
                        let v = ok(s, "POST", &format!("transit/sign/{name}"), req.clone());
                        p.signatures.push((req, data_str(&v, "signature")));
                    }
                }
                let v = ok(s, "POST", &format!("transit/hmac/{name}"), json!({"input": pt}));
                p.hmacs.push((pt.clone(), data_str(&v, "hmac")));
            }
        }
        out.push(p);
    }
    out
}

/// Moves every KAT key from `from` to `to` through `backup`/`restore`.
fn transfer(from: &Server, to: &Server) {
    for (name, _, _) in kat_keys() {
        let v = ok(from, "GET", &format!("transit/backup/{name}"), json!({}));
        let backup = data_str(&v, "backup");
        let (st, body) = to.call("POST", &format!("transit/restore/{name}"), Some(json!({"backup": backup})));
        assert_eq!(st, 204, "restore {name}: {body}");
    }
}

/// Checks on `s` everything `p` recorded (produced on the other server).
fn check(s: &Server, produced: &[Produced], origin: &str) {
    for p in produced {
        for (pt, ct, ad) in &p.ciphertexts {
            let mut req = json!({"ciphertext": ct, "context": p.context});
            if !ad.is_empty() {
                req["associated_data"] = json!(ad);
            }
            let v = ok(s, "POST", &format!("transit/decrypt/{}", p.name), req);
            assert_eq!(&data_str(&v, "plaintext"), pt, "{origin} ciphertext of {} decrypts", p.name);
            if p.name.ends_with("-conv") {
                // Convergent: the same key, context and plaintext give the same ciphertext.
                let version: i64 = ct.split(':').nth(1).unwrap()[1..].parse().unwrap();
                let v = ok(
                    s,
                    "POST",
                    &format!("transit/encrypt/{}", p.name),
                    json!({"plaintext": pt, "context": p.context, "key_version": version}),
                );
                assert_eq!(
                    &data_str(&v, "ciphertext"),
                    ct,
                    "{origin} convergent ciphertext of {} reproduced",
                    p.name
                );
            }
        }
        for (pt, mac) in &p.hmacs {
            let v = ok(s, "POST", &format!("transit/verify/{}", p.name), json!({"input": pt, "hmac": mac}));
            assert_eq!(v["data"]["valid"], true, "{origin} hmac of {} verifies", p.name);
            let version: i64 = mac.split(':').nth(1).unwrap()[1..].parse().unwrap();
            let v = ok(
                s,
                "POST",
                &format!("transit/hmac/{}", p.name),
                json!({"input": pt, "key_version": version}),
            );
            assert_eq!(&data_str(&v, "hmac"), mac, "{origin} hmac of {} recomputed", p.name);
        }
        for (req, sig) in &p.signatures {
            let mut verify = req.clone();
            verify["signature"] = json!(sig);
            let v = ok(s, "POST", &format!("transit/verify/{}", p.name), verify.clone());
            assert_eq!(v["data"]["valid"], true, "{origin} signature of {} verifies: {req}", p.name);
            // A signature of other input does not.
            let mut other = verify.clone();
            other["input"] = json!(b64(&[0x33; 32]));
            let v = ok(s, "POST", &format!("transit/verify/{}", p.name), other);
            assert_eq!(
                v["data"]["valid"], false,
                "{origin} signature of {} rejects other input: {req}",
                p.name
            );
            if !p.name.starts_with("ed") {
                continue;
            }
            // Ed25519 is deterministic: re-signing gives the same signature.
            let version: i64 = sig.split(':').nth(1).unwrap()[1..].parse().unwrap();
            let mut again = req.clone();
            again["key_version"] = json!(version);
            let v = ok(s, "POST", &format!("transit/sign/{}", p.name), again);
            assert_eq!(&data_str(&v, "signature"), sig, "{origin} signature of {} reproduced", p.name);
        }
        // Exported key material matches between the servers.
        for kind in ["hmac-key", "encryption-key", "signing-key"] {
            let path = format!("transit/export/{kind}/{}", p.name);
            let (st, v) = s.call("GET", &path, None);
            if st == 200 {
                assert_eq!(v["data"]["keys"].as_object().unwrap().len(), 2, "{path}: {v}");
            }
        }
    }
}

#[test]
fn known_answers_across_openbao_and_coffer() {
    let Some(bao) = harness::require_bao_dev("transit") else { return };
    let coffer = Server::dev();
    mount(&bao);
    mount(&coffer);

    // OpenBao → coffer.
    let from_bao = produce(&bao);
    transfer(&bao, &coffer);
    check(&coffer, &from_bao, "openbao");
    // Key reads agree after the move.
    for (name, _, context) in kat_keys() {
        let q = if context.is_empty() { String::new() } else { format!("?context={context}") };
        let (_, a) = bao.call("GET", &format!("transit/keys/{name}{q}"), None);
        let (_, b) = coffer.call("GET", &format!("transit/keys/{name}{q}"), None);
        for field in ["type", "derived", "latest_version", "min_decryption_version", "exportable", "kdf"] {
            assert_eq!(a["data"][field], b["data"][field], "{name}.{field}");
        }
        let kind = a["data"]["type"].as_str().unwrap_or_default();
        if kind == "ed25519" || kind.starts_with("ecdsa") || kind.starts_with("rsa") {
            for v in ["1", "2"] {
                for field in ["public_key", "name", "creation_time"] {
                    assert_eq!(
                        a["data"]["keys"][v][field], b["data"]["keys"][v][field],
                        "{name} v{v} {field}"
                    );
                }
            }
        }
        for kind in ["hmac-key", "encryption-key", "signing-key", "public-key"] {
            for format in ["", "?format=der", "?format=pem", "?format=raw"] {
                let path = format!("transit/export/{kind}/{name}{format}");
                let (sa, ea) = bao.call("GET", &path, None);
                let (sb, eb) = coffer.call("GET", &path, None);
                assert_eq!(sa, sb, "{path}: {ea} vs {eb}");
                assert_eq!(ea["data"], eb["data"], "{path}");
                assert_eq!(ea["errors"], eb["errors"], "{path}");
            }
        }
    }

    // coffer → OpenBao: fresh keys made by coffer, under other names.
    let bao2 = harness::require_bao_dev("transit").expect("bao");
    let coffer2 = Server::dev();
    mount(&bao2);
    mount(&coffer2);
    let from_coffer = produce(&coffer2);
    transfer(&coffer2, &bao2);
    check(&bao2, &from_coffer, "coffer");
}

/// What the differential test compares of one response.
fn shape(status: u16, v: &Value) -> Value {
    let mut out = json!({"status": status});
    if let Some(errors) = v.get("errors") {
        out["errors"] = errors.clone();
    }
    if let Some(w) = v.get("warnings").filter(|w| !w.is_null()) {
        out["warnings"] = w.clone();
    }
    if let Some(d) = v.get("data").and_then(Value::as_object) {
        let keys: BTreeSet<&String> = d.keys().collect();
        out["data_keys"] = json!(keys);
        if let Some(items) = d.get("batch_results").and_then(Value::as_array) {
            let items: Vec<Value> = items
                .iter()
                .map(|i| {
                    let o = i.as_object().unwrap();
                    let keys: BTreeSet<&String> = o.keys().collect();
                    json!({"keys": keys, "error": o.get("error"), "reference": o.get("reference"),
                           "valid": o.get("valid")})
                })
                .collect();
            out["batch"] = json!(items);
        }
        for k in [
            "valid",
            "name",
            "type",
            "latest_version",
            "min_decryption_version",
            "min_encryption_version",
            "min_available_version",
            "derived",
            "exportable",
            "deletion_allowed",
            "key_version",
            "size",
            "disable_upsert",
            "supports_encryption",
            "supports_signing",
            "convergent_encryption",
            "kdf",
            "key_size",
            "auto_rotate_period",
            "sum",
        ] {
            if let Some(x) = d.get(k) {
                out[k] = x.clone();
            }
        }
        if let Some(keys) = d.get("keys") {
            out["keys"] = match keys {
                Value::Object(m) => json!(m.keys().collect::<Vec<_>>()),
                other => other.clone(),
            };
        }
    }
    out
}

/// One server's run of the differential scenario: (label, shape) per call.
fn scenario(s: &Server) -> Vec<(String, Value)> {
    let mut log = Vec::new();
    let mut call = |label: &str, method: &str, path: &str, body: Option<Value>| -> Value {
        let (st, v) = s.call(method, path, body);
        log.push((format!("{label}: {method} {path}"), shape(st, &v)));
        v
    };
    let pt = b64(b"attack at dawn");
    let ctx = b64(b"tenant-7");
    call("create default", "POST", "transit/keys/d1", Some(json!({})));
    call("create again", "POST", "transit/keys/d1", Some(json!({})));
    call("create unknown type", "POST", "transit/keys/x1", Some(json!({"type": "rot13"})));
    call(
        "convergent without derived",
        "POST",
        "transit/keys/x2",
        Some(json!({"convergent_encryption": true})),
    );
    call("short rotate period", "POST", "transit/keys/x3", Some(json!({"auto_rotate_period": "10m"})));
    call("key_size on aes", "POST", "transit/keys/x4", Some(json!({"key_size": 64})));
    call("bad hmac key_size", "POST", "transit/keys/x5", Some(json!({"type": "hmac", "key_size": 8})));
    call(
        "ed25519 convergent",
        "POST",
        "transit/keys/x6",
        Some(json!({"type": "ed25519", "derived": true, "convergent_encryption": true})),
    );
    call("create derived", "POST", "transit/keys/dv", Some(json!({"derived": true})));
    call("create chacha", "POST", "transit/keys/ch", Some(json!({"type": "chacha20-poly1305"})));
    call("create ed", "POST", "transit/keys/ed", Some(json!({"type": "ed25519"})));
    call("create hmac without size", "POST", "transit/keys/hm", Some(json!({"type": "hmac"})));
    call("create hmac", "POST", "transit/keys/hm", Some(json!({"type": "hmac", "key_size": 32})));
    call("read", "GET", "transit/keys/d1", None);
    call("read missing", "GET", "transit/keys/nope", None);
    call("read bad context", "GET", "transit/keys/dv?context=%21%21", None);
    call("list", "LIST", "transit/keys", None);
    let v = call("encrypt", "POST", "transit/encrypt/d1", Some(json!({"plaintext": pt})));
    let ct1 = v["data"]["ciphertext"].as_str().unwrap_or_default().to_owned();
    call("encrypt missing plaintext", "POST", "transit/encrypt/d1", Some(json!({})));
    call("encrypt bad base64", "POST", "transit/encrypt/d1", Some(json!({"plaintext": "not base64!"})));
    call(
        "encrypt version too high",
        "POST",
        "transit/encrypt/d1",
        Some(json!({"plaintext": pt, "key_version": 9})),
    );
    call(
        "encrypt negative version",
        "POST",
        "transit/encrypt/d1",
        Some(json!({"plaintext": pt, "key_version": -1})),
    );
    call("encrypt ed25519", "POST", "transit/encrypt/ed", Some(json!({"plaintext": pt})));
    call("encrypt derived without context", "POST", "transit/encrypt/dv", Some(json!({"plaintext": pt})));
    let v =
        call("encrypt derived", "POST", "transit/encrypt/dv", Some(json!({"plaintext": pt, "context": ctx})));
    let ctd = v["data"]["ciphertext"].as_str().unwrap_or_default().to_owned();
    call("upsert", "POST", "transit/encrypt/up1", Some(json!({"plaintext": pt})));
    call("upsert derived", "POST", "transit/encrypt/up2", Some(json!({"plaintext": pt, "context": ctx})));
    call(
        "upsert convergent without context",
        "POST",
        "transit/encrypt/up3",
        Some(json!({"plaintext": pt, "convergent_encryption": true})),
    );
    call("upsert bad type", "POST", "transit/encrypt/up4", Some(json!({"plaintext": pt, "type": "ed25519"})));
    call("upsert ecdsa", "POST", "transit/encrypt/up5", Some(json!({"plaintext": pt, "type": "ecdsa-p256"})));
    call("decrypt", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": ct1})));
    call("decrypt missing", "POST", "transit/decrypt/d1", Some(json!({})));
    call("decrypt no prefix", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": "abc"})));
    call("decrypt fields", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": "vault:v1"})));
    call("decrypt version", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": "vault:vx:AAAA"})));
    call("decrypt too new", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": "vault:v7:AAAA"})));
    call("decrypt bad base64", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": "vault:v1:@@@"})));
    call("decrypt short", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": "vault:v1:AAAA"})));
    let mut tampered = ct1.clone().into_bytes();
    if let Some(last) = tampered.iter().rposition(|c| c.is_ascii_alphanumeric()) {
        tampered[last - 2] = if tampered[last - 2] == b'A' { b'B' } else { b'A' };
    }
    let tampered = String::from_utf8(tampered).unwrap();
    call("decrypt tampered", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": tampered})));
    call(
        "decrypt wrong context",
        "POST",
        "transit/decrypt/dv",
        Some(json!({"ciphertext": ctd, "context": b64(b"other")})),
    );
    call("decrypt derived no context", "POST", "transit/decrypt/dv", Some(json!({"ciphertext": ctd})));
    call("decrypt missing key", "POST", "transit/decrypt/nokey", Some(json!({"ciphertext": ct1})));
    call(
        "decrypt with aad on chacha",
        "POST",
        "transit/decrypt/ch",
        Some(json!({"ciphertext": ct1, "associated_data": b64(b"x")})),
    );
    call(
        "batch encrypt mixed",
        "POST",
        "transit/encrypt/d1",
        Some(
            json!({"plaintext": null, "batch_input": [{"plaintext": pt, "reference": "a"}, {"plaintext": "!!", "reference": "b"}, {"plaintext": pt}]}),
        ),
    );
    call(
        "batch encrypt partial code",
        "POST",
        "transit/encrypt/d1",
        Some(
            json!({"batch_input": [{"plaintext": pt}, {"plaintext": "!!"}], "partial_failure_response_code": 207}),
        ),
    );
    call("batch encrypt empty", "POST", "transit/encrypt/d1", Some(json!({"batch_input": []})));
    call("batch encrypt not a list", "POST", "transit/encrypt/d1", Some(json!({"batch_input": "x"})));
    call(
        "batch encrypt missing field",
        "POST",
        "transit/encrypt/d1",
        Some(json!({"batch_input": [{"reference": "r"}]})),
    );
    call(
        "batch encrypt mixed context",
        "POST",
        "transit/encrypt/dv",
        Some(json!({"batch_input": [{"plaintext": pt, "context": ctx}, {"plaintext": pt}]})),
    );
    call(
        "batch decrypt mixed",
        "POST",
        "transit/decrypt/d1",
        Some(
            json!({"ciphertext": null, "batch_input": [{"ciphertext": ct1, "reference": "ok"}, {"ciphertext": tampered, "reference": "bad"}, {"ciphertext": "vault:v1:%%", "reference": "b64"}]}),
        ),
    );
    call(
        "batch decrypt all bad",
        "POST",
        "transit/decrypt/d1",
        Some(json!({"batch_input": [{"ciphertext": "x"}]})),
    );
    call("rotate", "POST", "transit/keys/d1/rotate", Some(json!({})));
    call("rotate missing", "POST", "transit/keys/nokey/rotate", Some(json!({})));
    let v = call("encrypt v2", "POST", "transit/encrypt/d1", Some(json!({"plaintext": pt})));
    let ct2 = v["data"]["ciphertext"].as_str().unwrap_or_default().to_owned();
    call("rewrap", "POST", "transit/rewrap/d1", Some(json!({"ciphertext": ct1})));
    call(
        "rewrap batch",
        "POST",
        "transit/rewrap/d1",
        Some(json!({"batch_input": [{"ciphertext": ct1}, {"ciphertext": "x"}]})),
    );
    call(
        "config min dec too high",
        "POST",
        "transit/keys/d1/config",
        Some(json!({"min_decryption_version": 5})),
    );
    call("config min dec", "POST", "transit/keys/d1/config", Some(json!({"min_decryption_version": 2})));
    call("decrypt below min", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": ct1})));
    call("decrypt v2", "POST", "transit/decrypt/d1", Some(json!({"ciphertext": ct2})));
    call(
        "config min enc below dec",
        "POST",
        "transit/keys/d1/config",
        Some(json!({"min_encryption_version": 1})),
    );
    call("config min dec zero", "POST", "transit/keys/d1/config", Some(json!({"min_decryption_version": 0})));
    call("config missing key", "POST", "transit/keys/nokey/config", Some(json!({})));
    call("trim without min enc", "POST", "transit/keys/d1/trim", Some(json!({"min_available_version": 1})));
    call(
        "config min enc",
        "POST",
        "transit/keys/d1/config",
        Some(json!({"min_encryption_version": 2, "min_decryption_version": 2})),
    );
    call("trim", "POST", "transit/keys/d1/trim", Some(json!({"min_available_version": 2})));
    call("trim decrement", "POST", "transit/keys/d1/trim", Some(json!({"min_available_version": 1})));
    call("read after trim", "GET", "transit/keys/d1", None);
    call("delete not allowed", "DELETE", "transit/keys/d1", None);
    call("delete missing", "DELETE", "transit/keys/nokey", None);
    call("allow deletion", "POST", "transit/keys/d1/config", Some(json!({"deletion_allowed": true})));
    call("delete", "DELETE", "transit/keys/d1", None);
    call("read deleted", "GET", "transit/keys/d1", None);
    call("datakey plaintext", "POST", "transit/datakey/plaintext/ch", Some(json!({"bits": 512})));
    call("datakey wrapped", "POST", "transit/datakey/wrapped/ch", Some(json!({})));
    call("datakey bad bits", "POST", "transit/datakey/wrapped/ch", Some(json!({"bits": 100})));
    call("datakey bad kind", "POST", "transit/datakey/other/ch", Some(json!({})));
    call("datakey missing key", "POST", "transit/datakey/wrapped/nokey", Some(json!({})));
    call("datakey on ed25519", "POST", "transit/datakey/wrapped/ed", Some(json!({})));
    let v = call("hmac", "POST", "transit/hmac/hm", Some(json!({"input": pt})));
    let mac = v["data"]["hmac"].as_str().unwrap_or_default().to_owned();
    call("hmac sha3", "POST", "transit/hmac/ch/sha3-256", Some(json!({"input": pt})));
    call("hmac missing input", "POST", "transit/hmac/hm", Some(json!({})));
    call("hmac bad alg", "POST", "transit/hmac/hm", Some(json!({"input": pt, "algorithm": "md5"})));
    call("hmac missing key", "POST", "transit/hmac/nokey", Some(json!({"input": pt})));
    call(
        "hmac batch",
        "POST",
        "transit/hmac/hm",
        Some(json!({"batch_input": [{"input": pt, "reference": "x"}, {"input": "!!"}]})),
    );
    call("verify hmac", "POST", "transit/verify/hm", Some(json!({"input": pt, "hmac": mac})));
    call(
        "verify hmac wrong input",
        "POST",
        "transit/verify/hm",
        Some(json!({"input": b64(b"other"), "hmac": mac})),
    );
    call("verify hmac no prefix", "POST", "transit/verify/hm", Some(json!({"input": pt, "hmac": "abc"})));
    call(
        "verify hmac too new",
        "POST",
        "transit/verify/hm",
        Some(json!({"input": pt, "hmac": "vault:v9:AAAA"})),
    );
    call(
        "verify both",
        "POST",
        "transit/verify/hm",
        Some(json!({"input": pt, "hmac": mac, "signature": mac})),
    );
    call("verify neither", "POST", "transit/verify/hm", Some(json!({"input": pt})));
    call(
        "verify hmac batch",
        "POST",
        "transit/verify/hm",
        Some(
            json!({"batch_input": [{"input": pt, "hmac": mac}, {"input": b64(b"x"), "hmac": mac}, {"input": pt, "hmac": "bad"}]}),
        ),
    );
    let v = call(
        "sign ed25519 ignoring hash params",
        "POST",
        "transit/sign/ed",
        Some(
            json!({"input": pt, "hash_algorithm": "sha2-512", "signature_algorithm": "pss", "salt_length": "hash"}),
        ),
    );
    let sig = v["data"]["signature"].as_str().unwrap_or_default().to_owned();
    call("sign aes", "POST", "transit/sign/ch", Some(json!({"input": pt})));
    call("sign missing key", "POST", "transit/sign/nokey", Some(json!({"input": pt})));
    call("sign bad alg", "POST", "transit/sign/ed", Some(json!({"input": pt, "hash_algorithm": "md5"})));
    call("sign bad input", "POST", "transit/sign/ed", Some(json!({"input": "!!"})));
    call(
        "sign batch",
        "POST",
        "transit/sign/ed",
        Some(
            json!({"input": null, "batch_input": [{"input": pt, "reference": "1"}, {"input": "@@", "reference": "2"}]}),
        ),
    );
    call(
        "verify signature",
        "POST",
        "transit/verify/ed",
        Some(json!({"input": pt, "signature": sig, "name": "ed"})),
    );
    call(
        "verify signature wrong input",
        "POST",
        "transit/verify/ed",
        Some(json!({"input": b64(b"x"), "signature": sig})),
    );
    call(
        "verify signature bad base64",
        "POST",
        "transit/verify/ed",
        Some(json!({"input": pt, "signature": "vault:v1:!!"})),
    );
    call(
        "verify signature on aes",
        "POST",
        "transit/verify/ch",
        Some(json!({"input": pt, "signature": sig})),
    );
    call(
        "verify signature batch",
        "POST",
        "transit/verify/ed",
        Some(
            json!({"batch_input": [{"input": pt, "signature": sig}, {"input": b64(b"x"), "signature": sig}, {"input": pt, "signature": "nope"}]}),
        ),
    );
    call("hash", "POST", "transit/hash", Some(json!({"input": pt})));
    call("hash sha3 base64", "POST", "transit/hash/sha3-512", Some(json!({"input": pt, "format": "base64"})));
    call("hash missing", "POST", "transit/hash", Some(json!({})));
    call("hash bad alg", "POST", "transit/hash/md5", Some(json!({"input": pt})));
    call("random", "POST", "transit/random", Some(json!({"bytes": 8, "format": "hex"})));
    call("random url bytes", "POST", "transit/random/16", Some(json!({})));
    call("random zero", "POST", "transit/random", Some(json!({"bytes": 0})));
    call("random too many", "POST", "transit/random", Some(json!({"bytes": 200000})));
    call("random bad format", "POST", "transit/random", Some(json!({"format": "b32"})));
    call("sys random", "POST", "sys/tools/random/4", Some(json!({})));
    call("sys hash", "POST", "sys/tools/hash/sha2-384", Some(json!({"input": pt})));
    call("export not exportable", "GET", "transit/export/encryption-key/ch", None);
    call("export public", "GET", "transit/export/public-key/ed", None);
    call("export bad type", "GET", "transit/export/nonsense/ch", None);
    call("export missing", "GET", "transit/export/hmac-key/nokey", None);
    call("backup not exportable", "GET", "transit/backup/ch", None);
    call("config exportable", "POST", "transit/keys/ch/config", Some(json!({"exportable": true})));
    call("backup no plaintext backup", "GET", "transit/backup/ch", None);
    call("export encryption key wrong type", "GET", "transit/export/encryption-key/hm", None);
    call("export version below min", "GET", "transit/export/hmac-key/ch/0", None);
    call("export version missing", "GET", "transit/export/hmac-key/ch/7", None);
    call("restore missing backup", "POST", "transit/restore", Some(json!({})));
    call("restore undecodable backup", "POST", "transit/restore", Some(json!({"backup": "!!!"})));
    call(
        "restore invalid policy",
        "POST",
        "transit/restore",
        Some(json!({"backup": b64(br#"{"policy":{"name":"x"}}"#)})),
    );
    call(
        "create backupable",
        "POST",
        "transit/keys/bk",
        Some(json!({"exportable": true, "allow_plaintext_backup": true})),
    );
    let v = call("backup", "GET", "transit/backup/bk", None);
    let blob = v["data"]["backup"].as_str().unwrap_or_default().to_owned();
    call("restore existing", "POST", "transit/restore", Some(json!({"backup": blob})));
    call("restore force", "POST", "transit/restore", Some(json!({"backup": blob, "force": true})));
    call("restore renamed", "POST", "transit/restore/bk2", Some(json!({"backup": blob})));
    call("restore path name", "POST", "transit/restore/a/b", Some(json!({"backup": blob})));
    call("read restored", "GET", "transit/keys/bk2", None);
    call("cache-config read", "GET", "transit/cache-config", None);
    call("cache-config small", "POST", "transit/cache-config", Some(json!({"size": 5})));
    call("cache-config", "POST", "transit/cache-config", Some(json!({"size": 20})));
    call("config/keys read", "GET", "transit/config/keys", None);
    // ECDSA, RSA and XChaCha20-Poly1305 keys.
    call("create p256", "POST", "transit/keys/p256", Some(json!({"type": "ecdsa-p256"})));
    call("create p521", "POST", "transit/keys/p521", Some(json!({"type": "ecdsa-p521"})));
    call("create rsa", "POST", "transit/keys/rsa", Some(json!({"type": "rsa-2048"})));
    call("create xchacha", "POST", "transit/keys/xc", Some(json!({"type": "xchacha20-poly1305"})));
    call("derived ecdsa", "POST", "transit/keys/x7", Some(json!({"type": "ecdsa-p384", "derived": true})));
    call("derived rsa", "POST", "transit/keys/x8", Some(json!({"type": "rsa-3072", "derived": true})));
    call("read p256", "GET", "transit/keys/p256", None);
    call("read rsa", "GET", "transit/keys/rsa", None);
    call("sign p256", "POST", "transit/sign/p256", Some(json!({"input": pt})));
    call("sign p521 sha3", "POST", "transit/sign/p521/sha3-512", Some(json!({"input": pt})));
    call(
        "sign p256 bad marshaling",
        "POST",
        "transit/sign/p256",
        Some(json!({"input": pt, "marshaling_algorithm": "der"})),
    );
    call(
        "sign p256 hash none",
        "POST",
        "transit/sign/p256",
        Some(json!({"input": pt, "hash_algorithm": "none"})),
    );
    call(
        "sign rsa pkcs1v15",
        "POST",
        "transit/sign/rsa",
        Some(json!({"input": pt, "signature_algorithm": "pkcs1v15"})),
    );
    call("sign rsa huge salt", "POST", "transit/sign/rsa", Some(json!({"input": pt, "salt_length": "9999"})));
    call("sign rsa bad salt", "POST", "transit/sign/rsa", Some(json!({"input": pt, "salt_length": "-5"})));
    call("sign rsa salt word", "POST", "transit/sign/rsa", Some(json!({"input": pt, "salt_length": "most"})));
    call("sign xchacha", "POST", "transit/sign/xc", Some(json!({"input": pt})));
    call(
        "verify p256 garbage der",
        "POST",
        "transit/verify/p256",
        Some(json!({"input": pt, "signature": "vault:v1:AAAA"})),
    );
    call(
        "verify p256 short jws",
        "POST",
        "transit/verify/p256",
        Some(json!({"input": pt, "signature": "vault:v1:AAAA", "marshaling_algorithm": "jws"})),
    );
    call(
        "verify rsa wrong size",
        "POST",
        "transit/verify/rsa",
        Some(json!({"input": pt, "signature": "vault:v1:AAAA"})),
    );
    call(
        "verify rsa too new",
        "POST",
        "transit/verify/rsa",
        Some(json!({"input": pt, "signature": "vault:v2:AAAA"})),
    );
    let v = call("encrypt rsa", "POST", "transit/encrypt/rsa", Some(json!({"plaintext": pt})));
    let rsa_ct = v["data"]["ciphertext"].as_str().unwrap_or_default().to_owned();
    call("decrypt rsa", "POST", "transit/decrypt/rsa", Some(json!({"ciphertext": rsa_ct})));
    call(
        "encrypt rsa with ad",
        "POST",
        "transit/encrypt/rsa",
        Some(json!({"plaintext": pt, "associated_data": pt})),
    );
    call("encrypt p256", "POST", "transit/encrypt/p256", Some(json!({"plaintext": pt})));
    let v = call(
        "encrypt xchacha",
        "POST",
        "transit/encrypt/xc",
        Some(json!({"plaintext": pt, "associated_data": ctx})),
    );
    let xc_ct = v["data"]["ciphertext"].as_str().unwrap_or_default().to_owned();
    call(
        "decrypt xchacha",
        "POST",
        "transit/decrypt/xc",
        Some(json!({"ciphertext": xc_ct, "associated_data": ctx})),
    );
    call("decrypt xchacha wrong ad", "POST", "transit/decrypt/xc", Some(json!({"ciphertext": xc_ct})));
    call("decrypt xchacha short", "POST", "transit/decrypt/xc", Some(json!({"ciphertext": "vault:v1:AAAA"})));
    call(
        "upsert xchacha",
        "POST",
        "transit/encrypt/xc2",
        Some(json!({"plaintext": pt, "type": "xchacha20-poly1305"})),
    );
    call("read upserted xchacha", "GET", "transit/keys/xc2", None);
    call("export p256 not exportable", "GET", "transit/export/signing-key/p256", None);
    call("export rsa public", "GET", "transit/export/public-key/rsa", None);
    call("export rsa encryption key", "GET", "transit/export/encryption-key/rsa", None);
    call("wrapping key", "GET", "transit/wrapping_key", None);
    call(
        "import unknown type",
        "POST",
        "transit/keys/i1/import",
        Some(json!({"type": "rot13", "ciphertext": pt})),
    );
    call(
        "import bad hash",
        "POST",
        "transit/keys/i2/import",
        Some(json!({"ciphertext": pt, "hash_function": "MD5"})),
    );
    call("import public aes", "POST", "transit/keys/i3/import", Some(json!({"public_key": "x"})));
    call("config/keys disable upsert", "POST", "transit/config/keys", Some(json!({"disable_upsert": true})));
    call("upsert disabled", "POST", "transit/encrypt/up9", Some(json!({"plaintext": pt})));
    log
}

/// Where coffer answers differently from OpenBao on purpose: OpenBao's shape mapped to ours.
/// These are the client's mistakes that OpenBao answers 500 with Go's multierror wrapping, and
/// coffer 400 with the same text unwrapped: a `batch_input` that does not decode (wrong JSON
/// type, missing or wrongly typed field), an RSA-PSS salt length beyond the key's maximum, a
/// public-key import for a symmetric type, a restore backup that does not decode or holds an
/// invalid policy.
fn intended_divergence(openbao: &Value) -> Value {
    const WRAP: &str = "1 error occurred:\n\t* ";
    const CLIENT_MISTAKES: [&str; 5] = [
        "failed to parse batch input: ",
        "requested salt length ",
        "provided type does not support public_key import",
        "illegal base64 data at input byte ",
        "failed to restore the policy ",
    ];
    let mut want = openbao.clone();
    if want["status"] == 500 {
        if let Some(Value::String(e)) = want["errors"].get_mut(0) {
            if CLIENT_MISTAKES.iter().any(|m| e.starts_with(&format!("{WRAP}{m}"))) {
                *e = e.trim_start_matches(WRAP).trim_end().to_owned();
                want["status"] = json!(400);
            }
        }
    }
    want
}

#[test]
fn differential_against_openbao() {
    let Some(bao) = harness::require_bao_dev("transit") else { return };
    let coffer = Server::dev();
    mount(&bao);
    mount(&coffer);
    let expected = scenario(&bao);
    let got = scenario(&coffer);
    assert!(expected.len() >= 60, "only {} calls", expected.len());
    let mut mismatches = Vec::new();
    for ((label, want), (_, have)) in expected.iter().zip(&got) {
        let want = intended_divergence(want);
        if &want != have {
            mismatches.push(format!("{label}\n  openbao: {want}\n  coffer:  {have}"));
        }
    }
    let errors = expected.iter().filter(|(_, s)| s["status"].as_u64().unwrap_or(0) >= 400).count();
    eprintln!(
        "transit differential: {} calls ({} errors), {} mismatches",
        expected.len(),
        errors,
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn nonce_is_refused_and_encrypt_upserts() {
    let s = Server::dev();
    mount(&s);
    let pt = b64(b"x");
    ok(&s, "POST", "transit/keys/k", json!({}));
    let (st, v) = s.call("POST", "transit/encrypt/k", Some(json!({"plaintext": pt, "nonce": b64(&[0; 12])})));
    assert_eq!((st, v["errors"][0].as_str()), (400, Some("nonce provided when not allowed")));
    // Upsert by encrypt (the core picks `create` through the existence check).
    ok(&s, "POST", "transit/encrypt/newkey", json!({"plaintext": pt}));
    assert_eq!(s.call("GET", "transit/keys/newkey", None).0, 200);
}

/// A `batch_input` of the wrong JSON type (not an array, elements that are not objects, fields
/// that are not strings) answers 400 with a Vault-shaped body on every endpoint that takes one,
/// never OpenBao's 500. Each endpoint first shows it really takes a well-formed batch.
#[test]
fn wrong_typed_batch_input_is_a_400_on_every_batch_endpoint() {
    let s = Server::dev();
    mount(&s);
    ok(&s, "POST", "transit/keys/aes", json!({}));
    ok(&s, "POST", "transit/keys/ed", json!({"type": "ed25519"}));
    let pt = b64(b"batch");
    let ct = data_str(&ok(&s, "POST", "transit/encrypt/aes", json!({"plaintext": pt})), "ciphertext");
    let mac = data_str(&ok(&s, "POST", "transit/hmac/aes", json!({"input": pt})), "hmac");
    let sig = data_str(&ok(&s, "POST", "transit/sign/ed", json!({"input": pt})), "signature");
    let endpoints = [
        ("transit/encrypt/aes", json!([{"plaintext": pt}])),
        ("transit/decrypt/aes", json!([{"ciphertext": ct}])),
        ("transit/rewrap/aes", json!([{"ciphertext": ct}])),
        ("transit/hmac/aes", json!([{"input": pt}])),
        ("transit/sign/ed", json!([{"input": pt}])),
        ("transit/verify/ed", json!([{"input": pt, "signature": sig}])),
        ("transit/verify/aes", json!([{"input": pt, "hmac": mac}])),
    ];
    let wrong = [
        json!(true),
        json!(false),
        json!(""),
        json!("x"),
        json!(7),
        json!(-1.5),
        json!({"plaintext": pt, "ciphertext": ct, "input": pt}),
        json!([1, 2]),
        json!(["x"]),
        json!([true]),
        json!([null]),
        json!([[]]),
        json!([{"plaintext": pt, "ciphertext": ct, "input": pt}, 5]),
        json!([{"plaintext": 5, "ciphertext": 5, "input": 5, "signature": 5, "hmac": 5}]),
    ];
    let mut checked = 0;
    for (path, good) in &endpoints {
        let (st, v) = s.call("POST", path, Some(json!({"batch_input": good})));
        assert_eq!(st, 200, "{path} with a well-formed batch: {v}");
        assert_eq!(v["data"]["batch_results"].as_array().map(Vec::len), Some(1), "{path}: {v}");
        for bad in &wrong {
            let (st, v) = s.call("POST", path, Some(json!({"batch_input": bad})));
            let errors = v["errors"].as_array().unwrap_or_else(|| panic!("{path} {bad}: no errors in {v}"));
            assert_eq!(st, 400, "{path} with batch_input {bad}: {v}");
            assert_eq!(errors.len(), 1, "{path} {bad}: {v}");
            let e = errors[0].as_str().unwrap_or_default();
            assert!(e.starts_with("failed to parse batch input: "), "{path} {bad}: {e}");
            checked += 1;
        }
    }
    assert_eq!(checked, endpoints.len() * wrong.len());
}

/// A batch's results are written straight into the answer (no JSON value per item): the audit
/// trail still hashes every string in them, a partial failure keeps its status and items, and a
/// wrapped batch unwraps to the same results.
#[test]
fn batch_results_are_audited_kept_on_partial_failure_and_wrapped() {
    let s = Server::dev();
    mount(&s);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (st, b) =
        s.call("PUT", "sys/audit/file", Some(json!({"type": "file", "options": {"file_path": log}})));
    assert_eq!(st, 204, "{b}");
    ok(&s, "POST", "transit/keys/k", json!({}));
    let pts: Vec<String> = (0..3).map(|i| b64(format!("batch secret {i}").as_bytes())).collect();
    let input: Vec<Value> = pts
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"plaintext": p, "reference": format!("ref \"{i}\"")}))
        .collect();
    let enc = ok(&s, "POST", "transit/encrypt/k", json!({"batch_input": input}));
    let cts: Vec<String> = enc["data"]["batch_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ciphertext"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cts.len(), 3, "{enc}");
    assert_eq!(enc["data"]["batch_results"][1]["key_version"], 1, "{enc}");
    assert_eq!(enc["data"]["batch_results"][2]["reference"], "ref \"2\"", "{enc}");

    let input: Vec<Value> = cts.iter().map(|c| json!({"ciphertext": c, "reference": "r"})).collect();
    let dec = ok(&s, "POST", "transit/decrypt/k", json!({"batch_input": input}));
    let results = dec["data"]["batch_results"].as_array().unwrap();
    for (r, p) in results.iter().zip(&pts) {
        assert_eq!(r, &json!({"plaintext": p, "reference": "r"}));
    }

    // The audit response line hashes each plaintext, as it hashes every string of `data`.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&pts[0]), "a decrypted plaintext is in the audit log in the clear");
    let line: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["type"] == "response" && e["request"]["path"] == "transit/decrypt/k")
        .expect("the decrypt's response line");
    let (_, h) = s.call("POST", "sys/audit-hash/file", Some(json!({"input": pts[0]})));
    assert_eq!(line["response"]["data"]["batch_results"][0]["plaintext"], h["data"]["hash"], "{line}");
    assert_eq!(line["response"]["data"]["batch_results"].as_array().map(Vec::len), Some(3), "{line}");

    // A partial failure: 400, the good items decrypted, the bad one's error and empty plaintext.
    let (st, v) = s.call(
        "POST",
        "transit/decrypt/k",
        Some(json!({"batch_input": [{"ciphertext": cts[0]}, {"ciphertext": "vault:v1:AAAA", "reference": "bad"}]})),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["batch_results"][0]["plaintext"], pts[0].as_str(), "{v}");
    assert_eq!(v["data"]["batch_results"][1]["plaintext"], "", "{v}");
    assert_eq!(v["data"]["batch_results"][1]["reference"], "bad", "{v}");
    assert!(v["data"]["batch_results"][1]["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");

    // Wrapped: the wrapping token unwraps to the same results.
    let r = s
        .client()
        .post(format!("{}/v1/transit/decrypt/k", s.addr))
        .header("X-Vault-Token", &s.token)
        .header("X-Vault-Wrap-TTL", "5m")
        .json(&json!({"batch_input": input}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let b: Value = r.json().unwrap();
    assert!(b["data"].is_null(), "{b}");
    let wrapping_token = b["wrap_info"]["token"].as_str().unwrap().to_owned();
    let (st, b) = s.call_as(&wrapping_token, "POST", "sys/wrapping/unwrap", Some(json!({})));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["batch_results"], dec["data"]["batch_results"], "{b}");
}
