//! A production-shaped single node (TOML config, TLS, sled storage) through its whole life,
//! driven by `vaultrs` and plain HTTP: health codes in every state, init 5/3, unseal, mounts,
//! kv v1, rotate, generate-root, rekey, seal, restart, unseal with the same keys.

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::{make_tls, Server};

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("coffer.toml");
    std::fs::write(
        &path,
        r#"
        [storage]
        type = "file"
        path = "data"

        [[listener]]
        address = "127.0.0.1:0"
        tls_cert_file = "server.pem"
        tls_key_file = "server-key.pem"
        "#,
    )
    .unwrap();
    path
}

fn vault_client(s: &Server, ca_file: &std::path::Path, token: &str) -> vaultrs::client::VaultClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = vaultrs::client::VaultClientSettingsBuilder::default()
        .address(&s.addr)
        .token(token)
        .ca_certs(vec![ca_file.to_string_lossy().into_owned()])
        .build()
        .unwrap();
    vaultrs::client::VaultClient::new(settings).unwrap()
}

/// Status of `sys/health` with a query string (no token, any state).
fn health(s: &Server, query: &str) -> (u16, Value) {
    let r = s.client().get(format!("{}/v1/sys/health{query}", s.addr)).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn health_head(s: &Server) -> (u16, usize) {
    let r = s.client().head(format!("{}/v1/sys/health", s.addr)).send().unwrap();
    (r.status().as_u16(), r.bytes().unwrap().len())
}

fn unseal_with(s: &Server, keys: &[&str]) -> Value {
    let mut last = Value::Null;
    for k in keys {
        let (st, v) = s.call_as("", "PUT", "sys/unseal", Some(json!({"key": k})));
        assert_eq!(st, 200, "{v}");
        last = v;
    }
    last
}

#[test]
fn single_node_life_cycle_over_tls_with_sled() {
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls(dir.path());
    let cfg = config(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut s = Server::with_config(&cfg, Some(tls.ca_pem.clone()), &[]);

    // Uninitialised: 501 by default, any override code verbatim (the Go client sends 299).
    assert_eq!(health(&s, "").0, 501);
    assert_eq!(health(&s, "?uninitcode=299").0, 299);
    let (st, body) = health(
        &s,
        "?standbycode=299&drsecondarycode=299&performancestandbycode=299&sealedcode=299&uninitcode=299",
    );
    assert_eq!(st, 299);
    assert_eq!(body["initialized"], false);
    assert_eq!(s.call_as("", "GET", "kv1/x", None), (503, json!({"errors": ["Vault is sealed"]})));

    // Init 5/3 through vaultrs.
    let anon = vault_client(&s, &tls.ca_file, "");
    let init = rt.block_on(vaultrs::sys::start_initialization(&anon, 5, 3, None)).expect("init");
    assert_eq!(init.keys.len(), 5);
    assert_eq!(init.keys_base64.len(), 5);
    assert!(init.keys.iter().all(|k| k.len() == 66), "33-byte shares in hex");
    assert!(init.root_token.starts_with("hvs."));
    let root = init.root_token.clone();
    s.token = root.clone();
    assert_eq!(
        s.call_as("", "PUT", "sys/init", Some(json!({"secret_shares": 1, "secret_threshold": 1}))),
        (400, json!({"errors": ["Vault is already initialized"]}))
    );

    // Sealed: 503, HEAD without a body, overrides honoured.
    assert_eq!(health(&s, "").0, 503);
    assert_eq!(health(&s, "?sealedcode=299").0, 299);
    assert_eq!(health_head(&s), (503, 0));
    let status = s.call_as("", "GET", "sys/seal-status", None).1;
    assert_eq!(
        (status["t"].clone(), status["n"].clone(), status["sealed"].clone()),
        (json!(3), json!(5), json!(true))
    );

    // Unseal: progress, reset, then three shares mixing hex and base64.
    let v = rt.block_on(vaultrs::sys::unseal(&anon, Some(init.keys[0].clone()), None, None)).unwrap();
    assert_eq!((v.sealed, v.progress, v.threshold, v.n_shares), (true, 1, 3, 5));
    let v = unseal_with(&s, &[&init.keys[0]]);
    assert_eq!(v["progress"], 1, "a repeated share is ignored");
    let (st, v) = s.call_as("", "PUT", "sys/unseal", Some(json!({"reset": true})));
    assert_eq!((st, v["progress"].clone(), v["nonce"].clone()), (200, json!(0), json!("")));
    let v = unseal_with(&s, &[&init.keys[0], &init.keys_base64[2], &init.keys[4]]);
    assert_eq!(v["sealed"], false, "{v}");

    // Active: 200 and overrides.
    let (st, body) = health(&s, "");
    assert_eq!(st, 200);
    assert_eq!(body["sealed"], false);
    assert_eq!(body["performance_standby"], false);
    assert_eq!(health(&s, "?activecode=204").0, 204);
    assert_eq!(health(&s, "?standbyok=true").0, 200);
    assert_eq!(health(&s, "?activecode=abc").0, 400);
    assert_eq!(health(&s, "?standbyok=maybe").0, 400);
    let h = rt.block_on(vaultrs::sys::health(&anon)).expect("vaultrs parses health");
    assert!(h.initialized && !h.sealed && !h.standby);

    // Mounts and kv v1 CRUD through vaultrs.
    let c = vault_client(&s, &tls.ca_file, &root);
    rt.block_on(vaultrs::sys::mount::enable(&c, "kv1", "kv", None)).unwrap();
    let mounts = rt.block_on(vaultrs::sys::mount::list(&c)).unwrap();
    assert_eq!(mounts["kv1/"].mount_type, "kv");
    assert!(mounts.contains_key("sys/") && mounts.contains_key("cubbyhole/"));
    let secret = std::collections::HashMap::from([("user", "ada"), ("password", "s3cret")]);
    rt.block_on(vaultrs::kv1::set(&c, "kv1", "app/db", &secret)).unwrap();
    let got: std::collections::HashMap<String, String> =
        rt.block_on(vaultrs::kv1::get(&c, "kv1", "app/db")).unwrap();
    assert_eq!(got["password"], "s3cret");
    let list = rt.block_on(vaultrs::kv1::list(&c, "kv1", "app")).unwrap();
    assert_eq!(list.data.keys, vec!["db".to_owned()]);
    rt.block_on(vaultrs::kv1::set(&c, "kv1", "tmp", &secret)).unwrap();
    rt.block_on(vaultrs::kv1::delete(&c, "kv1", "tmp")).unwrap();
    assert!(rt.block_on(vaultrs::kv1::get::<Value>(&c, "kv1", "tmp")).is_err());
    let auths = rt.block_on(vaultrs::sys::auth::list(&c)).unwrap();
    assert!(auths.contains_key("token/"));

    // Rotate: a new term; old data still readable.
    assert_eq!(s.call("PUT", "sys/rotate", None).0, 204);
    let ks = s.call("GET", "sys/key-status", None).1;
    assert_eq!(ks["data"]["term"], 2);
    assert_eq!(ks["term"], 2, "key-status is injected at the top level");
    assert_eq!(s.call("GET", "kv1/app/db", None).1["data"]["user"], "ada");

    // Generate a second root token with three shares (OTP flow).
    let (st, a) = s.call("PUT", "sys/generate-root/attempt", Some(json!({})));
    assert_eq!(st, 200, "{a}");
    let otp = a["otp"].as_str().unwrap().to_owned();
    let nonce = a["nonce"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    for k in [&init.keys[1], &init.keys[2], &init.keys[3]] {
        let (st, v) = s.call("PUT", "sys/generate-root/update", Some(json!({"key": k, "nonce": nonce})));
        assert_eq!(st, 200, "{v}");
        last = v;
    }
    assert_eq!(last["complete"], true);
    let enc = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(last["encoded_root_token"].as_str().unwrap())
        .unwrap();
    let new_root: String = enc.iter().zip(otp.bytes()).map(|(a, b)| (a ^ b) as char).collect();
    let (st, me) = s.call_as(&new_root, "GET", "auth/token/lookup-self", None);
    assert_eq!(st, 200);
    assert_eq!(me["data"]["policies"], json!(["root"]));

    // Rekey 5/3 → 3/2.
    let (st, r) = s.call("PUT", "sys/rekey/init", Some(json!({"secret_shares": 3, "secret_threshold": 2})));
    assert_eq!(st, 200, "{r}");
    let nonce = r["nonce"].as_str().unwrap().to_owned();
    let mut done = Value::Null;
    for k in [&init.keys[0], &init.keys[1], &init.keys[2]] {
        let (st, v) = s.call("PUT", "sys/rekey/update", Some(json!({"key": k, "nonce": nonce})));
        assert_eq!(st, 200, "{v}");
        done = v;
    }
    assert_eq!(done["complete"], true);
    let new_keys: Vec<String> =
        done["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    assert_eq!(new_keys.len(), 3);

    // Seal through vaultrs: everything but the sealed-state endpoints answers 503.
    rt.block_on(vaultrs::sys::seal(&c)).unwrap();
    assert_eq!(s.call("GET", "kv1/app/db", None), (503, json!({"errors": ["Vault is sealed"]})));
    assert_eq!(health(&s, "").0, 503);

    // Restart the process on the same data directory; old shares no longer work.
    assert!(s.terminate().success());
    let mut s2 = Server::with_config(&cfg, Some(tls.ca_pem.clone()), &[]);
    s2.token = root.clone();
    let st = s2.call_as("", "GET", "sys/seal-status", None).1;
    assert_eq!(
        (st["initialized"].clone(), st["sealed"].clone(), st["t"].clone(), st["n"].clone()),
        (json!(true), json!(true), json!(2), json!(3))
    );
    let (code, v) = s2.call_as("", "PUT", "sys/unseal", Some(json!({"key": init.keys[0]})));
    assert_eq!(code, 200);
    let (code, v2) = s2.call_as("", "PUT", "sys/unseal", Some(json!({"key": init.keys[1]})));
    assert_eq!(code, 400, "old shares must fail after rekey: {v} {v2}");
    let v = unseal_with(&s2, &[&new_keys[2], &new_keys[0]]);
    assert_eq!(v["sealed"], false, "{v}");
    assert_eq!(s2.call("GET", "kv1/app/db", None).1["data"]["password"], "s3cret");
    assert_eq!(s2.call("GET", "sys/key-status", None).1["data"]["term"], 2);
    assert_eq!(s2.call_as(&new_root, "GET", "auth/token/lookup-self", None).0, 200);
    assert!(s2.terminate().success());
}

#[test]
fn wrong_shares_never_unseal_and_reset_progress() {
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls(dir.path());
    let s = Server::with_config(&config(dir.path()), Some(tls.ca_pem.clone()), &[]);
    let (st, init) =
        s.call_as("", "PUT", "sys/init", Some(json!({"secret_shares": 3, "secret_threshold": 2})));
    assert_eq!(st, 200);
    // A share from another initialisation: well-formed, wrong.
    let other = {
        let d2 = tempfile::tempdir().unwrap();
        let t2 = make_tls(d2.path());
        let s2 = Server::with_config(&config(d2.path()), Some(t2.ca_pem.clone()), &[]);
        s2.call_as("", "PUT", "sys/init", Some(json!({"secret_shares": 3, "secret_threshold": 2}))).1["keys"]
            [0]
        .as_str()
        .unwrap()
        .to_owned()
    };
    unseal_with(&s, &[init["keys"][0].as_str().unwrap()]);
    let (st, v) = s.call_as("", "PUT", "sys/unseal", Some(json!({"key": other})));
    assert_eq!(st, 400, "{v}");
    let status = s.call_as("", "GET", "sys/seal-status", None).1;
    assert_eq!((status["sealed"].clone(), status["progress"].clone()), (json!(true), json!(0)));
    for (bad, msg) in [
        (json!({"key": "zz"}), "'key' must be a valid hex or base64 string"),
        (json!({"key": "abcd"}), "invalid key: key is shorter than minimum 16 bytes"),
        (json!({}), "'key' must be specified in request body as JSON, or 'reset' set to true"),
    ] {
        assert_eq!(s.call_as("", "PUT", "sys/unseal", Some(bad)), (400, json!({"errors": [msg]})));
    }
    let v = unseal_with(&s, &[init["keys"][2].as_str().unwrap(), init["keys"][1].as_str().unwrap()]);
    assert_eq!(v["sealed"], false);
    let (st, _) = s.call_as("", "GET", "sys/unseal", None);
    assert_eq!(st, 405);
}

/// S8: process hygiene at start, HTTP/2 over TLS (ALPN), and `Authorization: Bearer` tokens.
#[test]
fn process_hygiene_h2_and_bearer_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls(dir.path());
    let mut s = Server::with_config(&config(dir.path()), Some(tls.ca_pem.clone()), &[]);
    let pid = s.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert!(
        core.split_whitespace().nth(4) == Some("0") && core.split_whitespace().nth(5) == Some("0"),
        "{core}"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let locked: u64 = status
        .lines()
        .find(|l| l.starts_with("VmLck:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (st, init) =
        s.call_as("", "PUT", "sys/init", Some(json!({"secret_shares": 1, "secret_threshold": 1})));
    assert_eq!(st, 200);
    s.token = init["root_token"].as_str().unwrap().to_owned();
    unseal_with(&s, &[init["keys"][0].as_str().unwrap()]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let locked_after: u64 = status
        .lines()
        .find(|l| l.starts_with("VmLck:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(locked_after > locked, "key material is mlocked after unseal ({locked} kB -> {locked_after} kB)");
    let data = dir.path().join("data");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    for e in std::fs::read_dir(&data).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            assert_eq!(
                e.metadata().unwrap().permissions().mode() & 0o077,
                0,
                "{:?} is group/other accessible",
                e.path()
            );
        }
    }
    // h2 is negotiated over TLS, and a Bearer token authenticates like X-Vault-Token.
    let r =
        s.client().get(format!("{}/v1/auth/token/lookup-self", s.addr)).bearer_auth(&s.token).send().unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["data"]["policies"], json!(["root"]));
    let r = s
        .client()
        .get(format!("{}/v1/auth/token/lookup-self", s.addr))
        .header("Authorization", "Basic abc")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "other Authorization schemes are not tokens");
    assert!(s.terminate().success());
}

/// Issue 3 through vaultrs: a policy allowing only `secret/data/app/*` really limits a token.
#[test]
fn vaultrs_policy_limits_a_token() {
    let s = Server::dev();
    vaultrs_policy_flow(&s.addr, &s.token);
}

/// The vaultrs policy flow against the server at `addr` (its `secret/` is kv v2).
pub fn vaultrs_policy_flow(addr: &str, root_token: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = |token: &str| {
        let settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address(addr)
            .token(token)
            .build()
            .unwrap();
        vaultrs::client::VaultClient::new(settings).unwrap()
    };
    let root = client(root_token);
    rt.block_on(vaultrs::sys::policy::set(
        &root,
        "app",
        "path \"secret/data/app/*\" { capabilities = [\"read\", \"create\", \"update\"] }",
    ))
    .unwrap();
    let secret = std::collections::HashMap::from([("password", "p")]);
    rt.block_on(vaultrs::kv2::set(&root, "secret", "app/db", &secret)).unwrap();
    rt.block_on(vaultrs::kv2::set(&root, "secret", "other/db", &secret)).unwrap();
    let mut opts = vaultrs::api::token::requests::CreateTokenRequest::builder();
    opts.policies(vec!["app".to_owned()]);
    let auth = rt.block_on(vaultrs::token::new(&root, Some(&mut opts))).unwrap();
    assert_eq!(auth.policies, vec!["app".to_owned(), "default".to_owned()]);
    let app = client(&auth.client_token);
    let got: std::collections::HashMap<String, String> =
        rt.block_on(vaultrs::kv2::read(&app, "secret", "app/db")).unwrap();
    assert_eq!(got["password"], "p");
    rt.block_on(vaultrs::kv2::set(&app, "secret", "app/new", &secret)).unwrap();
    for (path, write) in [("other/db", false), ("other/new", true), ("app", false)] {
        let err = if write {
            rt.block_on(vaultrs::kv2::set(&app, "secret", path, &secret)).map(|_| ()).unwrap_err()
        } else {
            rt.block_on(vaultrs::kv2::read::<Value>(&app, "secret", path)).map(|_| ()).unwrap_err()
        };
        match err {
            vaultrs::error::ClientError::APIError { code, errors } => {
                assert_eq!(code, 403, "{path}: {errors:?}");
                assert!(errors.iter().any(|e| e.contains("permission denied")), "{errors:?}");
            }
            other => panic!("{path}: expected a 403, got {other:?}"),
        }
    }
}
