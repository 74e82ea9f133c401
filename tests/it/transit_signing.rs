//! Transit signing for platforms: JWTs with `kid`s and the JWKS (the rotation story end to end,
//! checked by an external JOSE library), what JWT verification refuses, who may read a JWKS,
//! and bringing your own key (Vault's wrapped import) into coffer and OpenBao alike.

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::{self, Server};

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn b64url(s: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
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

fn error(s: &Server, path: &str, body: Value) -> String {
    let (st, v) = s.call("POST", path, Some(body));
    assert_eq!(st, 400, "{path}: {v}");
    v["errors"][0].as_str().unwrap_or_default().to_owned()
}

fn jwt_sign(s: &Server, name: &str, body: Value) -> String {
    ok(s, "POST", &format!("transit/jwt/sign/{name}"), body)["data"]["token"].as_str().unwrap().to_owned()
}

/// The JWKS as an anonymous client fetches it (no token).
fn public_jwks(s: &Server, name: &str) -> jsonwebtoken::jwk::JwkSet {
    let (st, v) = s.call_as("", "GET", &format!("transit/jwks/{name}"), None);
    assert_eq!(st, 200, "anonymous JWKS of {name}: {v}");
    serde_json::from_value(v).expect("an RFC 7517 JWK Set")
}

/// Verifies `token` with the `jsonwebtoken` crate from the JWKS alone; the claims.
fn external_verify(jwks: &jsonwebtoken::jwk::JwkSet, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_required_spec_claims(&["exp"]);
    validation.set_audience(&["platform"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(|d| d.claims).map_err(|e| e.to_string())
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// The rotation story: sign with v1, rotate, new tokens carry v2, old tokens still verify (in
/// coffer and, from the JWKS alone, in an external JOSE library), raise
/// `min_decryption_version`, and old tokens fail with a clear error while new ones verify — for
/// EdDSA, ES256, RS256 and PS256.
#[test]
fn jwt_rotation_story_with_an_external_verifier() {
    let s = Server::dev();
    mount(&s);
    for (name, kind, alg) in [
        ("ed", "ed25519", "EdDSA"),
        ("es", "ecdsa-p256", "ES256"),
        ("rs", "rsa-2048", "RS256"),
        ("ps", "rsa-2048", "PS256"),
    ] {
        ok(&s, "POST", &format!("transit/keys/{name}"), json!({"type": kind}));
        ok(&s, "POST", &format!("transit/keys/{name}/config"), json!({"jwks_public": true}));
        let claims = json!({"sub": "user-1", "aud": "platform", "tenant": {"id": 7}});
        let sign = json!({"claims": claims, "ttl": "10m", "alg": alg});
        let old = jwt_sign(&s, name, sign.clone());
        assert_eq!(kid_of(&old), format!("{name}:v1"));
        let header = jsonwebtoken::decode_header(&old).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);

        let got = external_verify(&public_jwks(&s, name), &old).unwrap_or_else(|e| panic!("{alg} v1: {e}"));
        assert_eq!(got["tenant"]["id"], 7);
        assert!(got["exp"].as_i64().unwrap() - got["iat"].as_i64().unwrap() == 600);

        ok(&s, "POST", &format!("transit/keys/{name}/rotate"), json!({}));
        let new = jwt_sign(&s, name, sign.clone());
        assert_eq!(kid_of(&new), format!("{name}:v2"), "new tokens carry the new version");
        let jwks = public_jwks(&s, name);
        assert_eq!(jwks.keys.len(), 2);
        for token in [&old, &new] {
            let v = ok(&s, "POST", &format!("transit/jwt/verify/{name}"), json!({"token": token}));
            assert_eq!(v["data"]["claims"]["sub"], "user-1");
            external_verify(&jwks, token).unwrap_or_else(|e| panic!("{alg} after rotate: {e}"));
        }

        ok(&s, "POST", &format!("transit/keys/{name}/config"), json!({"min_decryption_version": 2}));
        let e = error(&s, &format!("transit/jwt/verify/{name}"), json!({"token": old}));
        assert_eq!(
            e,
            "JWT signed by key version 1, which is below min_decryption_version 2; the version is retired"
        );
        let jwks = public_jwks(&s, name);
        assert_eq!(jwks.keys.len(), 1, "the retired version left the JWKS");
        let e = external_verify(&jwks, &old).unwrap_err();
        assert_eq!(e, format!("kid {name}:v1 is not in the JWKS"));
        external_verify(&jwks, &new).unwrap_or_else(|e| panic!("{alg} v2 after retiring v1: {e}"));
        let v = ok(&s, "POST", &format!("transit/jwt/verify/{name}"), json!({"token": new}));
        assert_eq!(v["data"]["key_version"], 2);
    }
}

/// What `jwt/verify` refuses: `alg: none`, algorithm confusion (an HMAC keyed with the public
/// key), an algorithm of another key type, `kid`s of other keys or versions, tampered claims,
/// expired and not-yet-valid tokens, and malformed tokens — each a 400 saying why.
#[test]
fn jwt_verify_refuses_none_confusion_foreign_kids_and_expired_tokens() {
    let s = Server::dev();
    mount(&s);
    ok(&s, "POST", "transit/keys/rs", json!({"type": "rsa-2048"}));
    ok(&s, "POST", "transit/keys/es", json!({"type": "ecdsa-p384"}));
    ok(&s, "POST", "transit/keys/hm", json!({"type": "hmac", "key_size": 64}));
    let good = jwt_sign(&s, "rs", json!({"claims": {"sub": "a"}, "ttl": 60}));
    let [h, c, sig] = good.split('.').collect::<Vec<_>>()[..] else { panic!("{good}") };
    let verify =
        |name: &str, token: &str| error(&s, &format!("transit/jwt/verify/{name}"), json!({"token": token}));

    let none = format!("{}.{c}.", b64url(br#"{"alg":"none","kid":"rs:v1"}"#));
    assert_eq!(verify("rs", &none), "JWT algorithm \"none\" is not allowed for key type rsa-2048");
    // Algorithm confusion: HS256 keyed with the RSA public key PEM.
    let pem = ok(&s, "GET", "transit/export/public-key/rs/1", json!({}))["data"]["keys"]["1"]
        .as_str()
        .unwrap()
        .to_owned();
    let hs_header = b64url(br#"{"alg":"HS256","kid":"rs:v1","typ":"JWT"}"#);
    let input = format!("{hs_header}.{c}");
    let mac = {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(pem.as_bytes()).unwrap();
        m.update(input.as_bytes());
        m.finalize().into_bytes()
    };
    assert_eq!(
        verify("rs", &format!("{input}.{}", b64url(&mac))),
        "JWT algorithm \"HS256\" is not allowed for key type rsa-2048"
    );
    let es_token = jwt_sign(&s, "es", json!({"claims": {}}));
    assert_eq!(verify("rs", &es_token), "JWT algorithm \"ES384\" is not allowed for key type rsa-2048");
    // A kid of another key, of no version, of a version that does not exist.
    for (kid, want) in [
        ("es:v1", "JWT kid \"es:v1\" does not name a version of key rs"),
        ("rs", "JWT kid \"rs\" does not name a version of key rs"),
        ("rs:v0", "JWT kid \"rs:v0\" does not name a version of key rs"),
        ("rs:v9", "JWT kid \"rs:v9\": key version 9 does not exist"),
    ] {
        let header = b64url(format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#).as_bytes());
        assert_eq!(verify("rs", &format!("{header}.{c}.{sig}")), want);
    }
    // Tampered claims and signature.
    let forged = b64url(br#"{"sub":"admin","exp":99999999999}"#);
    assert_eq!(verify("rs", &format!("{h}.{forged}.{sig}")), "JWT signature does not verify");
    assert_eq!(verify("rs", &format!("{h}.{c}.{}", b64url(&[0; 256]))), "JWT signature does not verify");
    // Expiry and not-before, with leeway.
    let expired = jwt_sign(&s, "hm", json!({"claims": {"exp": 1000}}));
    assert_eq!(verify("hm", &expired), "JWT expired at 1000");
    let future = jwt_sign(&s, "hm", json!({"claims": {"nbf": 4_000_000_000u64}, "alg": "HS512"}));
    assert_eq!(verify("hm", &future), "JWT not valid before 4000000000");
    let soon = time_now() + 30;
    let early = jwt_sign(&s, "hm", json!({"claims": {"nbf": soon}}));
    ok(&s, "POST", "transit/jwt/verify/hm", json!({"token": early, "leeway": "1m"}));
    // Malformed tokens.
    for (token, want) in [
        ("a.b", "invalid JWT: a compact JWS has three dot-separated parts"),
        ("!!.e30.", "invalid JWT: the header is not base64url"),
        (&*format!("{}.e30.", b64url(b"[1]")), "invalid JWT: the header is not a JSON object"),
    ] {
        assert_eq!(verify("rs", token), want);
    }
    assert_eq!(error(&s, "transit/jwt/verify/rs", json!({})), "missing token");
    assert_eq!(error(&s, "transit/jwt/sign/rs", json!({"claims": "[1]"})), "claims must be a JSON object");
    assert_eq!(
        error(&s, "transit/jwt/sign/rs", json!({"claims": {"exp": 5}, "ttl": 5})),
        "claims already contain \"exp\"; give either 'ttl' or 'exp'"
    );
    assert_eq!(
        error(&s, "transit/jwt/sign/es", json!({"claims": {}, "alg": "ES256"})),
        "JWT algorithm \"ES256\" is not allowed for key type ecdsa-p384"
    );
    ok(&s, "POST", "transit/keys/aes", json!({}));
    assert_eq!(
        error(&s, "transit/jwt/sign/aes", json!({"claims": {}})),
        "key type aes256-gcm96 cannot sign JWTs"
    );
    // The good token still verifies, with its header and claims.
    let v = ok(&s, "POST", "transit/jwt/verify/rs", json!({"token": good}));
    assert_eq!(
        (v["data"]["header"]["alg"].as_str(), v["data"]["kid"].as_str()),
        (Some("RS256"), Some("rs:v1"))
    );
}

fn time_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A JWKS needs a token (and the token's ACL) unless its key is marked `jwks_public`; marking it
/// opens only `jwks/<name>` of that key, and unmarking closes it again.
#[test]
fn jwks_is_anonymous_only_for_jwks_public_keys() {
    let s = Server::dev();
    mount(&s);
    ok(&s, "POST", "transit/keys/a", json!({"type": "ecdsa-p256"}));
    ok(&s, "POST", "transit/keys/b", json!({"type": "ed25519"}));
    let anon = |path: &str| s.call_as("", "GET", path, None).0;
    assert_eq!(anon("transit/jwks/a"), 403);
    assert_eq!(anon("transit/jwks/missing"), 403, "no existence oracle");
    let (st, v) = s.call("GET", "transit/jwks/a", None);
    assert_eq!(st, 200);
    assert_eq!(v["keys"][0]["kid"], "a:v1");
    assert_eq!((v["keys"][0]["kty"].as_str(), v["keys"][0]["crv"].as_str()), (Some("EC"), Some("P-256")));

    ok(&s, "POST", "transit/keys/a/config", json!({"jwks_public": true}));
    assert_eq!(ok(&s, "GET", "transit/keys/a", json!({}))["data"]["jwks_public"], true);
    assert_eq!(anon("transit/jwks/a"), 200);
    assert_eq!(anon("transit/jwks/b"), 403, "only the marked key is public");
    assert_eq!(anon("transit/keys/a"), 403);
    assert_eq!(s.call_as("", "POST", "transit/jwt/sign/a", Some(json!({"claims": {}}))).0, 403);
    // A token is still checked against its ACL, public key or not.
    ok(
        &s,
        "PUT",
        "sys/policies/acl/other",
        json!({"policy": "path \"transit/keys/*\" { capabilities = [\"read\"] }"}),
    );
    let t = ok(&s, "POST", "auth/token/create", json!({"policies": ["other"]}))["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.call_as(&t, "GET", "transit/jwks/a", None).0, 403);
    assert_eq!(s.call_as("bogus-token", "GET", "transit/jwks/a", None).0, 403);

    ok(&s, "POST", "transit/keys/a/config", json!({"jwks_public": false}));
    assert_eq!(anon("transit/jwks/a"), 403);
    // Keys without public keys have no JWKS.
    ok(&s, "POST", "transit/keys/h", json!({"type": "hmac", "key_size": 32}));
    let (st, v) = s.call("GET", "transit/jwks/h", None);
    assert_eq!((st, v["errors"][0].as_str()), (400, Some("key type hmac has no public key for a JWKS")));
}

/// Wraps `target` for import as Vault's BYOK: RSA-OAEP(SHA-256) of a fresh AES-256 key under the
/// server's wrapping key, then AES-KWP of the target under that key.
fn wrap_for_import(s: &Server, target: &[u8]) -> String {
    use rsa::pkcs8::DecodePublicKey;
    let pem =
        ok(s, "GET", "transit/wrapping_key", json!({}))["data"]["public_key"].as_str().unwrap().to_owned();
    let wrapping = rsa::RsaPublicKey::from_public_key_pem(&pem).expect("wrapping key PEM");
    let ephemeral: [u8; 32] = rand::random();
    let mut out =
        wrapping.encrypt(&mut rand::rngs::OsRng, rsa::Oaep::new::<sha2::Sha256>(), &ephemeral).expect("OAEP");
    let kek = aes_kw::KekAes256::new(&ephemeral.into());
    out.extend(kek.wrap_with_padding_vec(target).expect("KWP"));
    b64(&out)
}

/// Bring your own key: the same externally made keys (ECDSA P-256, RSA-2048, Ed25519, AES-256)
/// imported into coffer and into OpenBao through each server's wrapping key; signatures and
/// ciphertexts made by either verify or decrypt on the other, for the imported version and for a
/// second one added by `import_version`. A public-key-only import verifies, cannot sign, and is
/// completed by importing its private half.
#[test]
fn imported_keys_work_the_same_in_coffer_and_openbao() {
    use p256::pkcs8::EncodePrivateKey;
    use rsa::pkcs8::EncodePublicKey;
    let coffer = Server::dev();
    mount(&coffer);
    let bao = harness::require_bao_dev("transit_signing");
    if let Some(b) = &bao {
        mount(b);
    }
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let rsa_v2 = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let ec = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let ec_v2 = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let ed = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let ed_v2 = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let keys: Vec<(&str, &str, Vec<u8>, Vec<u8>)> = vec![
        (
            "ec",
            "ecdsa-p256",
            ec.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            ec_v2.to_pkcs8_der().unwrap().as_bytes().to_vec(),
        ),
        (
            "rsa",
            "rsa-2048",
            rsa_key.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            rsa_v2.to_pkcs8_der().unwrap().as_bytes().to_vec(),
        ),
        (
            "ed",
            "ed25519",
            ed.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            ed_v2.to_pkcs8_der().unwrap().as_bytes().to_vec(),
        ),
        ("aes", "aes256-gcm96", rand::random::<[u8; 32]>().to_vec(), rand::random::<[u8; 32]>().to_vec()),
    ];
    let servers: Vec<&Server> = std::iter::once(&coffer).chain(bao.as_ref()).collect();
    for (name, kind, v1, v2) in &keys {
        for s in &servers {
            let ct = wrap_for_import(s, v1);
            let (st, v) = s.call(
                "POST",
                &format!("transit/keys/{name}/import"),
                Some(json!({"type": kind, "ciphertext": ct})),
            );
            assert_eq!(st, 204, "import {name}: {v}");
            let read = ok(s, "GET", &format!("transit/keys/{name}"), json!({}));
            assert_eq!(read["data"]["imported_key"], true);
            let ct = wrap_for_import(s, v2);
            let (st, v) = s.call(
                "POST",
                &format!("transit/keys/{name}/import_version"),
                Some(json!({"ciphertext": ct})),
            );
            assert_eq!(st, 204, "import_version {name}: {v}");
            assert_eq!(ok(s, "GET", &format!("transit/keys/{name}"), json!({}))["data"]["latest_version"], 2);
        }
        // Every server's output checks on every server (the same key material everywhere).
        for from in &servers {
            for version in [1, 2] {
                let input = b64(format!("{name} v{version}").as_bytes());
                if *kind == "aes256-gcm96" {
                    let v = ok(
                        from,
                        "POST",
                        &format!("transit/encrypt/{name}"),
                        json!({"plaintext": input, "key_version": version}),
                    );
                    let ct = v["data"]["ciphertext"].as_str().unwrap().to_owned();
                    for to in &servers {
                        let v = ok(to, "POST", &format!("transit/decrypt/{name}"), json!({"ciphertext": ct}));
                        assert_eq!(v["data"]["plaintext"], input.as_str());
                    }
                    continue;
                }
                let v = ok(
                    from,
                    "POST",
                    &format!("transit/sign/{name}"),
                    json!({"input": input, "key_version": version}),
                );
                let sig = v["data"]["signature"].as_str().unwrap().to_owned();
                for to in &servers {
                    let v = ok(
                        to,
                        "POST",
                        &format!("transit/verify/{name}"),
                        json!({"input": input, "signature": sig}),
                    );
                    assert_eq!(v["data"]["valid"], true, "{name} v{version} signature verifies");
                }
            }
        }
        // Both servers show the same public keys.
        if let (Some(b), true) = (&bao, *kind != "aes256-gcm96") {
            let path = format!("transit/export/public-key/{name}");
            assert_eq!(ok(&coffer, "GET", &path, json!({}))["data"], ok(b, "GET", &path, json!({}))["data"]);
        }
    }

    // A public key alone: verifies what its private key signed elsewhere, cannot sign; importing
    // the private half completes the version (a mismatching one is refused).
    let pem = rsa_key.to_public_key().to_public_key_pem(Default::default()).unwrap();
    for s in &servers {
        let (st, v) =
            s.call("POST", "transit/keys/pub/import", Some(json!({"type": "rsa-2048", "public_key": pem})));
        assert_eq!(st, 204, "public import: {v}");
    }
    let sig = ok(&coffer, "POST", "transit/sign/rsa", json!({"input": b64(b"x"), "key_version": 1}))["data"]
        ["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    for s in &servers {
        let v = ok(s, "POST", "transit/verify/pub", json!({"input": b64(b"x"), "signature": sig}));
        assert_eq!(v["data"]["valid"], true);
    }
    let (st, v) = coffer.call("POST", "transit/sign/pub", Some(json!({"input": b64(b"x")})));
    assert_eq!(
        (st, v["errors"][0].as_str()),
        (400, Some("requested version for signing does not contain a private part"))
    );
    let wrong = wrap_for_import(&coffer, &keys[1].3);
    let e = error(&coffer, "transit/keys/pub/import_version", json!({"ciphertext": wrong, "version": 1}));
    assert_eq!(e, "cannot import key, key pair does not match");
    let right = wrap_for_import(&coffer, &keys[1].2);
    let (st, v) = coffer.call(
        "POST",
        "transit/keys/pub/import_version",
        Some(json!({"ciphertext": right, "version": 1})),
    );
    assert_eq!(st, 204, "{v}");
    ok(&coffer, "POST", "transit/sign/pub", json!({"input": b64(b"x")}));

    // Import refuses an existing key, unknown types and garbage.
    assert_eq!(
        error(&coffer, "transit/keys/ec/import", json!({"type": "ecdsa-p256", "ciphertext": wrap_for_import(&coffer, &keys[0].2)})),
        "the import path cannot be used with an existing key; use import-version to rotate an existing imported key"
    );
    assert_eq!(
        error(&coffer, "transit/keys/n/import", json!({"type": "des", "ciphertext": "AA=="})),
        "unknown key type: des"
    );
    assert_eq!(
        error(&coffer, "transit/keys/n/import", json!({"ciphertext": b64(&[1; 600])})),
        "failed to decrypt the ephemeral key: crypto/rsa: decryption error"
    );
    assert_eq!(
        error(&coffer, "transit/keys/n/import", json!({"ciphertext": b64(&[1; 100])})),
        "provided ciphertext is too short"
    );
    let short = wrap_for_import(&coffer, &[7; 16]);
    assert_eq!(
        error(&coffer, "transit/keys/n/import", json!({"ciphertext": short})),
        "invalid key size 16 bytes for key type aes256-gcm96"
    );
    ok(&coffer, "POST", "transit/keys/native", json!({}));
    assert_eq!(
        error(&coffer, "transit/keys/native/import_version", json!({"ciphertext": "AA=="})),
        "the import_version endpoint can only be used with an imported key"
    );
}
