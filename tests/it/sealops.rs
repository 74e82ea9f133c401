//! Root token generation and rekeying through the HTTP API of a dev server (one unseal share),
//! and through the `bao` CLI as a real client.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::{self, wait_for, Server, DEADLINE};

/// The dev server's unseal key, from its banner (`Unseal Key: ...`).
fn unseal_key(s: &Server) -> String {
    wait_for("the dev banner", DEADLINE, || {
        s.stdout.lines().iter().find_map(|l| l.trim().strip_prefix("Unseal Key: ").map(str::to_owned))
    })
}

/// `base64(token XOR otp)`, unpadded, back to the token.
fn decode(encoded: &str, otp: &str) -> String {
    let bytes =
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')).unwrap();
    assert_eq!(bytes.len(), otp.len(), "encoded token and OTP lengths differ");
    String::from_utf8(bytes.iter().zip(otp.bytes()).map(|(b, o)| b ^ o).collect()).unwrap()
}

/// Generates a root token with the given shares over the legacy endpoints.
fn generate_root(s: &Server, shares: &[&str]) -> Result<String, Value> {
    let (st, init) = s.call("PUT", "sys/generate-root/attempt", Some(json!({})));
    assert_eq!(st, 200, "{init}");
    let (nonce, otp) = (init["nonce"].as_str().unwrap(), init["otp"].as_str().unwrap());
    let mut last = Value::Null;
    for k in shares {
        let (st, body) = s.call("PUT", "sys/generate-root/update", Some(json!({"key": k, "nonce": nonce})));
        if st != 200 {
            s.call("DELETE", "sys/generate-root/attempt", None);
            return Err(body);
        }
        last = body;
    }
    assert_eq!(last["complete"], true, "{last}");
    Ok(decode(last["encoded_root_token"].as_str().unwrap(), otp))
}

#[test]
fn generate_root_and_use_the_token() {
    let s = Server::dev();
    let key = unseal_key(&s);

    // Authenticated by default: no token, no access; nothing gets started.
    let (st, body) = s.call_as("", "GET", "sys/generate-root/attempt", None);
    assert_eq!((st, body), (403, json!({"errors": ["permission denied"]})));
    let (st, _) = s.call_as("", "PUT", "sys/generate-root/attempt", Some(json!({})));
    assert_eq!(st, 403);

    let (st, status) = s.call("GET", "sys/generate-root/attempt", None);
    assert_eq!(st, 200);
    assert_eq!(
        status,
        json!({"nonce": "", "started": false, "progress": 0, "required": 1, "complete": false,
               "encoded_token": "", "encoded_root_token": "", "pgp_fingerprint": "", "otp": "", "otp_length": 28})
    );

    let (st, body) = s.call("PUT", "sys/generate-root/attempt", Some(json!({"pgp_key": "mQENBF..."})));
    assert_eq!(st, 400);
    assert!(body["errors"][0].as_str().unwrap().contains("PGP"), "{body}");

    // Wrong key at the threshold: refused, progress reset, attempt kept.
    let (_, init) = s.call("PUT", "sys/generate-root/attempt", Some(json!({})));
    let nonce = init["nonce"].as_str().unwrap().to_owned();
    let wrong = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let (st, body) = s.call("PUT", "sys/generate-root/update", Some(json!({"key": wrong, "nonce": nonce})));
    assert_eq!(st, 400);
    assert!(body["errors"][0].as_str().unwrap().starts_with("root generation aborted"), "{body}");
    let (_, status) = s.call("GET", "sys/generate-root/attempt", None);
    assert_eq!((status["started"].clone(), status["progress"].clone()), (json!(true), json!(0)));
    let (st, body) = s.call("PUT", "sys/generate-root/update", Some(json!({"key": key, "nonce": "other"})));
    assert_eq!(st, 400);
    assert_eq!(
        body["errors"][0],
        format!("incorrect nonce supplied; nonce for this root generation operation is \"{nonce}\"")
    );
    assert_eq!(s.call("DELETE", "sys/generate-root/attempt", None).0, 204);

    // The full flow, and the new token works.
    let token = generate_root(&s, &[&key]).unwrap();
    assert!(token.starts_with("hvs.") && token.len() == 28, "{token}");
    assert_ne!(token, s.token);
    let (st, me) = s.call_as(&token, "GET", "auth/token/lookup-self", None);
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["data"]["policies"], json!(["root"]));
    assert_eq!(s.call_as(&token, "POST", "sys/mounts/gr", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(s.call_as(&token, "PUT", "gr/x", Some(json!({"a": "b"}))).0, 204);
    let (_, status) = s.call("GET", "sys/generate-root/attempt", None);
    assert_eq!(status["started"], false);
}

#[test]
fn rekey_replaces_the_shares() {
    let s = Server::dev();
    let key = unseal_key(&s);
    let (st, body) = s.call("GET", "sys/rekey/backup", None);
    assert_eq!((st, body), (400, json!({"errors": ["no backed-up keys found"]})), "hvac's read_backup_keys");
    assert_eq!(s.call_as("", "GET", "sys/rekey/init", None).0, 403);

    // 1 share -> 3 shares, threshold 2, with verification.
    let (st, init) = s.call(
        "PUT",
        "sys/rekey/init",
        Some(json!({"secret_shares": 3, "secret_threshold": 2, "require_verification": true})),
    );
    assert_eq!(st, 200, "{init}");
    assert_eq!(
        (init["t"].clone(), init["n"].clone(), init["required"].clone()),
        (json!(2), json!(3), json!(1))
    );
    let nonce = init["nonce"].as_str().unwrap();
    let (st, done) = s.call("PUT", "sys/rekey/update", Some(json!({"key": key, "nonce": nonce})));
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["complete"], true);
    let new: Vec<String> =
        done["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    assert_eq!(new.len(), 3);
    let vnonce = done["verification_nonce"].as_str().unwrap();
    // Not verified yet: the old key still authorizes.
    assert!(generate_root(&s, &[&key]).is_ok());
    for (i, k) in [&new[0], &new[2]].into_iter().enumerate() {
        let (st, body) = s.call("PUT", "sys/rekey/verify", Some(json!({"key": k, "nonce": vnonce})));
        assert_eq!(st, 200, "{body}");
        match i {
            0 => assert_eq!((body["progress"].clone(), body.get("complete")), (json!(1), None), "{body}"),
            _ => assert_eq!(body, json!({"nonce": vnonce, "complete": true})),
        }
    }
    let (_, ss) = s.call("GET", "sys/seal-status", None);
    assert_eq!((ss["t"].clone(), ss["n"].clone()), (json!(2), json!(3)));

    // The old key is refused, the new shares work.
    let err = generate_root(&s, &[&key, &new[1]]).unwrap_err();
    assert_eq!(err["errors"][0], "failed to compute root key: all parts must be the same length");
    let token = generate_root(&s, &[&new[1], &new[0]]).unwrap();
    assert_eq!(s.call_as(&token, "GET", "auth/token/lookup-self", None).0, 200);

    // Seal, unseal with the new shares; data survives.
    assert_eq!(s.call("POST", "sys/mounts/rk", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(s.call("PUT", "rk/a", Some(json!({"v": 1}))).0, 204);
    assert_eq!(s.call("PUT", "sys/seal", None).0, 204);
    for k in [&new[2], &new[1]] {
        assert_eq!(s.call_as("", "PUT", "sys/unseal", Some(json!({"key": k}))).0, 200);
    }
    let (_, ss) = s.call("GET", "sys/seal-status", None);
    assert_eq!(ss["sealed"], false);
    assert_eq!(s.call("GET", "rk/a", None).1["data"], json!({"v": 1}));

    // Back to one share (no verification): the previous 1-share key stays refused.
    let (_, init) = s.call("PUT", "sys/rekey/init", Some(json!({"secret_shares": 1, "secret_threshold": 1})));
    let nonce = init["nonce"].as_str().unwrap();
    s.call("PUT", "sys/rekey/update", Some(json!({"key": new[0], "nonce": nonce})));
    let (st, done) = s.call("PUT", "sys/rekey/update", Some(json!({"key": new[1], "nonce": nonce})));
    assert_eq!(st, 200, "{done}");
    let single = done["keys_base64"][0].as_str().unwrap().to_owned();
    assert!(done.get("verification_nonce").is_none());
    assert_eq!(s.call("PUT", "sys/seal", None).0, 204);
    let (st, body) = s.call_as("", "PUT", "sys/unseal", Some(json!({"key": key})));
    assert_eq!((st, body), (400, json!({"errors": ["unseal failed, invalid key"]})));
    let (_, ss) = s.call_as("", "PUT", "sys/unseal", Some(json!({"key": single})));
    assert_eq!(ss["sealed"], false);
}

/// `bao` CLI against coffer, with the given env.
fn bao(s: &Server, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new("bao");
    cmd.args(args)
        .env("BAO_ADDR", &s.addr)
        .env("BAO_TOKEN", &s.token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn bao");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(format!("{input}\n").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn bao_cli_generate_root_and_rekey() {
    if !harness::require_bao("bao_cli_generate_root_and_rekey") {
        return;
    }
    let s = Server::dev();
    let key = unseal_key(&s);

    // `bao operator generate-root` speaks the authenticated sys/generate-root-token/*.
    let (ok, out, err) = bao(&s, &["operator", "generate-root", "-init", "-format=json"], None);
    assert!(ok, "{out}{err}");
    let init: Value = serde_json::from_str(&out).unwrap();
    let (nonce, otp) = (init["nonce"].as_str().unwrap(), init["otp"].as_str().unwrap());
    assert_eq!(otp.len(), 28);
    let (ok, out, err) =
        bao(&s, &["operator", "generate-root", &format!("-nonce={nonce}"), "-format=json", "-"], Some(&key));
    assert!(ok, "{out}{err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["complete"], true, "{done}");
    let encoded = done["encoded_token"].as_str().unwrap();
    let (ok, token, err) =
        bao(&s, &["operator", "generate-root", &format!("-decode={encoded}"), &format!("-otp={otp}")], None);
    assert!(ok, "{token}{err}");
    let token = token.trim();
    assert_eq!(token, decode(encoded, otp));
    assert_eq!(
        s.call_as(token, "GET", "auth/token/lookup-self", None).1["data"]["policies"],
        json!(["root"])
    );
    let (ok, _, err) = bao(&s, &["operator", "generate-root", "-init"], None);
    assert!(ok, "{err}");
    let (ok, _, err) = bao(&s, &["operator", "generate-root", "-cancel"], None);
    assert!(ok, "{err}");
    assert_eq!(s.call("GET", "sys/generate-root/attempt", None).1["started"], false);

    // `bao operator rekey` speaks the legacy sys/rekey/* (with the token it always sends).
    let (ok, out, err) =
        bao(&s, &["operator", "rekey", "-init", "-key-shares=3", "-key-threshold=2", "-format=json"], None);
    assert!(ok, "{out}{err}");
    let init: Value = serde_json::from_str(&out).unwrap();
    let nonce = init["nonce"].as_str().unwrap();
    let (ok, out, err) =
        bao(&s, &["operator", "rekey", &format!("-nonce={nonce}"), "-format=json", "-"], Some(&key));
    assert!(ok, "{out}{err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    let new = done["keys_base64"].as_array().unwrap();
    assert_eq!(new.len(), 3);
    let (ok, _, err) = bao(&s, &["operator", "seal"], None);
    assert!(ok, "{err}");
    for k in [&new[0], &new[1]] {
        let (ok, out, err) = bao(&s, &["operator", "unseal", k.as_str().unwrap()], None);
        assert!(ok, "{out}{err}");
    }
    assert_eq!(s.call("GET", "sys/seal-status", None).1["sealed"], false);
}

#[test]
fn generate_root_token_shapes_match_openbao() {
    if !harness::require_bao("generate_root_token_shapes_match_openbao") {
        return;
    }
    let bao = harness::bao_dev().expect("bao dev server");
    let coffer = Server::dev();
    let mut seen = Vec::new();
    for s in [&bao, &coffer] {
        let key = unseal_key(s);
        let keys = |v: &Value| {
            let mut k: Vec<String> = v["data"].as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let (st1, status) = s.call("GET", "sys/generate-root-token/attempt", None);
        let (st2, init) = s.call("PUT", "sys/generate-root-token/attempt", Some(json!({})));
        let nonce = init["data"]["nonce"].clone();
        let otp = init["data"]["otp"].as_str().unwrap().to_owned();
        let (st3, done) =
            s.call("PUT", "sys/generate-root-token/update", Some(json!({"key": key, "nonce": nonce})));
        let token = decode(done["data"]["encoded_token"].as_str().unwrap(), &otp);
        let (st4, me) = s.call_as(&token, "GET", "auth/token/lookup-self", None);
        let (st5, _) = s.call("DELETE", "sys/generate-root-token/attempt", None);
        let (st6, _) = s.call_as("", "GET", "sys/generate-root-token/attempt", None);
        assert_eq!(me["data"]["policies"], json!(["root"]));
        assert_eq!(done["data"]["complete"], true);
        assert_eq!(status["data"]["otp_length"].as_u64().unwrap() as usize, token.len());
        seen.push((vec![st1, st2, st3, st4, st5, st6], keys(&status), keys(&init), keys(&done)));
    }
    assert_eq!(seen[0], seen[1], "bao (left) and coffer (right) differ");
}
