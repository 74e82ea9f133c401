//! S20: every token-authenticated endpoint applies the same token checks (validity, CIDR
//! binding, use count), the special `sys/` handlers served outside the router included; and
//! every such request, refused or not, is audited with the token hashed (issue 9, items 3, 8a).

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::{wait_for, Server, DEADLINE};

/// The dev server's unseal key, from its banner (`Unseal Key: ...`).
fn unseal_key(s: &Server) -> String {
    wait_for("the dev banner", DEADLINE, || {
        s.stdout.lines().iter().find_map(|l| l.trim().strip_prefix("Unseal Key: ").map(str::to_owned))
    })
}

/// A policy with every capability (sudo too) on `sys/`, but not root.
const OPS_POLICY: &str =
    r#"path "sys/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;

/// A dev server with the `ops` policy and tokens to try.
struct Fixture {
    s: Server,
    key: String,
    /// `ops` token bound to 10.9.9.0/24: every request from 127.0.0.1 comes from the wrong network.
    far: String,
    /// `ops` token bound to 127.0.0.0/8 (the control: the binding is what refuses `far`).
    near: String,
}

impl Fixture {
    fn new() -> Self {
        let s = Server::dev();
        let key = unseal_key(&s);
        assert_eq!(s.call("PUT", "sys/policies/acl/ops", Some(json!({"policy": OPS_POLICY}))).0, 204);
        for (role, cidrs) in [("far", "10.9.9.0/24"), ("near", "127.0.0.0/8")] {
            let body = json!({"allowed_policies": "ops", "token_bound_cidrs": cidrs});
            let (st, b) = s.call("POST", &format!("auth/token/roles/{role}"), Some(body));
            assert!(st == 200 || st == 204, "{b}");
        }
        let far = Self::token(&s, "auth/token/create/far", json!({"policies": ["ops"]}));
        let near = Self::token(&s, "auth/token/create/near", json!({"policies": ["ops"]}));
        Self { s, key, far, near }
    }

    fn token(s: &Server, path: &str, body: Value) -> String {
        let (st, b) = s.call("POST", path, Some(body));
        assert_eq!(st, 200, "{b}");
        b["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    /// A fresh `ops` token good for one request.
    fn once(&self) -> String {
        Self::token(&self.s, "auth/token/create", json!({"policies": ["ops"], "num_uses": 1}))
    }

    /// Back to the starting state: unsealed, no root generation, no rekey.
    fn reset(&self) {
        let (_, ss) = self.s.call_as("", "GET", "sys/seal-status", None);
        if ss["sealed"] == true {
            let (st, b) = self.s.call_as("", "PUT", "sys/unseal", Some(json!({"key": self.key})));
            assert_eq!((st, b["sealed"].clone()), (200, json!(false)), "{b}");
        }
        assert_eq!(self.s.call("DELETE", "sys/generate-root/attempt", None).0, 204);
        assert_eq!(self.s.call("DELETE", "sys/rekey/init", None).0, 204);
    }

    /// What the quorum operations and the seal look like (with the root token): a refused
    /// request must leave this unchanged.
    fn snapshot(&self) -> Value {
        let (_, seal) = self.s.call_as("", "GET", "sys/seal-status", None);
        json!({
            "sealed": seal["sealed"],
            "generate_root": self.s.call("GET", "sys/generate-root/attempt", None),
            "rekey": self.s.call("GET", "sys/rekey/init", None),
            "verify": self.s.call("GET", "sys/rekey/verify", None),
        })
    }

    /// Starts a rekey to 2 shares / threshold 2 with verification and supplies the current
    /// key; returns the new shares and the verification nonce. The unseal key does not change
    /// until the verification completes.
    fn rekey_pending(&self) -> (Vec<String>, String) {
        let body = json!({"secret_shares": 2, "secret_threshold": 2, "require_verification": true});
        let (st, init) = self.s.call("PUT", "sys/rekey/init", Some(body));
        assert_eq!(st, 200, "{init}");
        let (st, done) =
            self.s.call("PUT", "sys/rekey/update", Some(json!({"key": self.key, "nonce": init["nonce"]})));
        assert_eq!(st, 200, "{done}");
        let keys = done["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
        (keys, done["verification_nonce"].as_str().unwrap().to_owned())
    }
}

/// One endpoint of the table: how to call it so that it does its work.
struct Case {
    method: &'static str,
    path: &'static str,
    /// Sets the stage with the root token and returns the body to send.
    prep: fn(&Fixture) -> Option<Value>,
    /// Status and (for errors) the message of a request that got past authentication.
    ok: (u16, Option<&'static str>),
}

fn no_body(_: &Fixture) -> Option<Value> {
    None
}

fn empty_body(_: &Fixture) -> Option<Value> {
    Some(json!({}))
}

fn rekey_init_body(_: &Fixture) -> Option<Value> {
    Some(json!({"secret_shares": 1, "secret_threshold": 1}))
}

fn generate_root_update(f: &Fixture) -> Option<Value> {
    let (st, b) = f.s.call("PUT", "sys/generate-root/attempt", Some(json!({})));
    assert_eq!(st, 200, "{b}");
    Some(json!({"key": f.key, "nonce": b["nonce"]}))
}

fn generate_root_token_update(f: &Fixture) -> Option<Value> {
    let (st, b) = f.s.call("PUT", "sys/generate-root-token/attempt", Some(json!({})));
    assert_eq!(st, 200, "{b}");
    Some(json!({"key": f.key, "nonce": b["data"]["nonce"]}))
}

fn rekey_update(f: &Fixture) -> Option<Value> {
    let body = json!({"secret_shares": 1, "secret_threshold": 1, "require_verification": true});
    let (st, b) = f.s.call("PUT", "sys/rekey/init", Some(body));
    assert_eq!(st, 200, "{b}");
    Some(json!({"key": f.key, "nonce": b["nonce"]}))
}

fn rekey_verifying(f: &Fixture) -> Option<Value> {
    f.rekey_pending();
    None
}

fn rekey_verify_update(f: &Fixture) -> Option<Value> {
    let (keys, vnonce) = f.rekey_pending();
    // One of two new shares: progress, not completion (the unseal key stays as it is).
    Some(json!({"key": keys[0], "nonce": vnonce}))
}

/// Every endpoint `http/sys.rs` and `http/sys_ops.rs` serve with a token (with
/// `unauthenticated_generate_root`/`_rekey` off, the default), and two routed ones as controls.
fn cases() -> Vec<Case> {
    const RECOVERY: Option<&str> = Some("recovery rekeying not supported");
    let c = |method, path, prep, ok| Case { method, path, prep, ok };
    vec![
        c("PUT", "sys/seal", no_body, (204, None)),
        c("POST", "sys/step-down", no_body, (204, None)),
        c("GET", "sys/generate-root/attempt", no_body, (200, None)),
        c("PUT", "sys/generate-root/attempt", empty_body, (200, None)),
        c("DELETE", "sys/generate-root/attempt", no_body, (204, None)),
        c("PUT", "sys/generate-root/update", generate_root_update, (200, None)),
        c("GET", "sys/generate-root-token/attempt", no_body, (200, None)),
        c("PUT", "sys/generate-root-token/attempt", empty_body, (200, None)),
        c("DELETE", "sys/generate-root-token/attempt", no_body, (204, None)),
        c("PUT", "sys/generate-root-token/update", generate_root_token_update, (200, None)),
        c("GET", "sys/rekey/init", no_body, (200, None)),
        c("PUT", "sys/rekey/init", rekey_init_body, (200, None)),
        c("DELETE", "sys/rekey/init", no_body, (204, None)),
        c("PUT", "sys/rekey/update", rekey_update, (200, None)),
        c("GET", "sys/rekey/verify", rekey_verifying, (200, None)),
        c("PUT", "sys/rekey/verify", rekey_verify_update, (200, None)),
        c("DELETE", "sys/rekey/verify", rekey_verifying, (200, None)),
        c("GET", "sys/rekey/backup", no_body, (400, Some("no backed-up keys found"))),
        c("DELETE", "sys/rekey/backup", no_body, (204, None)),
        c("GET", "sys/rekey/recovery-key-backup", no_body, (400, Some("no backed-up keys found"))),
        c("DELETE", "sys/rekey/recovery-key-backup", no_body, (204, None)),
        c("GET", "sys/rekey-recovery-key/init", no_body, (400, RECOVERY)),
        c("PUT", "sys/rekey-recovery-key/init", rekey_init_body, (400, RECOVERY)),
        c("DELETE", "sys/rekey-recovery-key/init", no_body, (400, RECOVERY)),
        c("PUT", "sys/rekey-recovery-key/update", generate_root_update, (400, RECOVERY)),
        c("GET", "sys/rekey-recovery-key/verify", no_body, (400, RECOVERY)),
        c("PUT", "sys/rekey-recovery-key/verify", generate_root_update, (400, RECOVERY)),
        c("DELETE", "sys/rekey-recovery-key/verify", no_body, (400, RECOVERY)),
        // Routed (through `Core::handle`): the same answers.
        c("PUT", "sys/rotate", no_body, (204, None)),
        c("GET", "sys/mounts", no_body, (200, None)),
    ]
}

fn permission_denied() -> Value {
    json!({"errors": ["permission denied"]})
}

fn invalid_token() -> Value {
    json!({"errors": ["permission denied", "invalid token"]})
}

#[test]
fn every_token_endpoint_checks_validity_cidr_binding_and_use_count() {
    let f = Fixture::new();
    let bogus = "hvs.NotARealTokenAtAll0123456";
    let mut failures = Vec::new();
    for case in cases() {
        let what = format!("{} {}", case.method, case.path);
        let call = |token: &str| {
            f.reset();
            let body = (case.prep)(&f);
            let before = f.snapshot();
            let got = f.s.call_as(token, case.method, case.path, body);
            (got, before)
        };
        let works =
            |(st, body): &(u16, Value)| *st == case.ok.0 && case.ok.1.is_none_or(|m| body["errors"][0] == m);
        // Refusals: 403, and nothing happened.
        for (who, token, want) in [
            ("no token", "", permission_denied()),
            ("bad token", bogus, invalid_token()),
            ("token bound to another network", f.far.as_str(), permission_denied()),
        ] {
            let (got, before) = call(token);
            if got != (403, want.clone()) {
                failures.push(format!("{what} with {who}: got {got:?}, want 403 {want}"));
            } else if f.snapshot() != before {
                failures.push(format!("{what} with {who}: refused, but the state changed"));
            }
        }
        // The control: the same policy from an allowed network works.
        let (got, _) = call(&f.near);
        if !works(&got) {
            failures
                .push(format!("{what} with a token bound to this network: got {got:?}, want {:?}", case.ok));
        }
        // A one-use token: works once, then is gone.
        f.reset();
        let once = f.once();
        let (got, _) = call(&once);
        if !works(&got) {
            failures.push(format!("{what}, first use of a one-use token: got {got:?}, want {:?}", case.ok));
        }
        let (got, before) = call(&once);
        if got != (403, invalid_token()) {
            failures
                .push(format!("{what}, second use of a one-use token: got {got:?}, want 403 invalid token"));
        } else if f.snapshot() != before {
            failures.push(format!("{what}, second use of a one-use token: refused, but the state changed"));
        }
    }
    f.reset();
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

fn audit_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l}: {e}")))
        .collect()
}

fn enable_audit(s: &Server, log: &std::path::Path) {
    let (st, b) =
        s.call("PUT", "sys/audit/file", Some(json!({"type": "file", "options": {"file_path": log}})));
    assert_eq!(st, 204, "{b}");
}

fn audit_hash(s: &Server, input: &str) -> Value {
    let (st, h) = s.call("POST", "sys/audit-hash/file", Some(json!({"input": input})));
    assert_eq!(st, 200, "{h}");
    h["data"]["hash"].clone()
}

/// The request and response lines of requests to `path` made with `token_hash`.
fn lines_for<'a>(lines: &'a [Value], path: &str, token_hash: &Value) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["request"]["path"] == path && l["request"]["client_token"] == *token_hash)
        .collect()
}

#[test]
fn refused_requests_are_audited_with_the_error_and_a_hashed_token() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    enable_audit(&f.s, &log);
    let bogus = "hvs.GuessedToken0123456789abc";
    let once = f.once();

    let refused = [
        (bogus, "GET", "sys/mounts"),
        (bogus, "PUT", "sys/seal"),
        (bogus, "PUT", "sys/generate-root/attempt"),
        (f.far.as_str(), "GET", "sys/mounts"),
        (f.far.as_str(), "PUT", "sys/step-down"),
        (f.far.as_str(), "PUT", "sys/rekey/init"),
    ];
    for (token, method, path) in refused {
        assert_eq!(f.s.call_as(token, method, path, Some(json!({}))).0, 403, "{method} {path}");
    }
    assert_eq!(f.s.call_as(&once, "PUT", "sys/step-down", None).0, 204);
    assert_eq!(f.s.call_as(&once, "PUT", "sys/step-down", None).0, 403);
    assert_eq!(f.s.call_as(&once, "GET", "sys/mounts", None).0, 403);
    assert_eq!(f.s.call_as("", "PUT", "sys/seal", None).0, 403);
    assert_eq!(f.s.call_as("", "GET", "sys/mounts", None).0, 403);

    let text = std::fs::read_to_string(&log).unwrap();
    for t in [bogus, &f.far, &once] {
        assert!(!text.contains(t), "a token is in the audit log in the clear");
    }
    let lines = audit_lines(&log);
    let check = |token: &str, path: &str, uses: usize, want_error: &str| {
        let hash = if token.is_empty() { Value::Null } else { audit_hash(&f.s, token) };
        let found = lines_for(&lines, path, &hash);
        let refusals: Vec<_> = found.iter().filter(|l| !l["error"].is_null()).collect();
        let types: Vec<_> = refusals.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["request", "response"].repeat(uses), "{path} with {token:?}: {found:#?}");
        for l in refusals {
            assert!(l["error"].as_str().unwrap().contains(want_error), "{path}: {l}");
            assert_eq!(l["request"]["remote_address"], "127.0.0.1", "{l}");
            assert_eq!(l["request"]["mount_type"], "system", "{l}");
            if !token.is_empty() {
                assert!(l["request"]["client_token"].as_str().unwrap().starts_with("hmac-sha256:"));
            }
        }
        found.len()
    };
    // A guessed token, on the router and on the special handlers.
    check(bogus, "sys/mounts", 1, "invalid token");
    check(bogus, "sys/seal", 1, "invalid token");
    check(bogus, "sys/generate-root/attempt", 1, "invalid token");
    // A token used from the wrong network: refused, audited with its accessor.
    for path in ["sys/mounts", "sys/step-down", "sys/rekey/init"] {
        check(&f.far, path, 1, "permission denied");
    }
    let far_line = lines_for(&lines, "sys/step-down", &audit_hash(&f.s, &f.far))[0];
    assert!(far_line["auth"]["accessor"].as_str().unwrap().starts_with("hmac-sha256:"), "{far_line}");
    // A one-use token: the use, then two refusals; the successful use is audited too.
    assert_eq!(check(&once, "sys/step-down", 1, "invalid token"), 4);
    check(&once, "sys/mounts", 1, "invalid token");
    // No token at all.
    check("", "sys/seal", 1, "permission denied");
    check("", "sys/mounts", 1, "permission denied");
}

/// `base64(token XOR otp)`, unpadded, back to the token.
fn decode_root(encoded: &str, otp: &str) -> String {
    let bytes =
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')).unwrap();
    String::from_utf8(bytes.iter().zip(otp.bytes()).map(|(b, o)| b ^ o).collect()).unwrap()
}

#[test]
fn seal_step_down_generate_root_and_rekey_are_audited_with_secrets_hashed() {
    let f = Fixture::new();
    let s = &f.s;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    enable_audit(s, &log);

    assert_eq!(s.call("PUT", "sys/step-down", None).0, 204);
    // Legacy generate-root (plain JSON) and the envelope variant.
    let (_, attempt) = s.call("PUT", "sys/generate-root/attempt", Some(json!({})));
    let (otp, nonce) = (attempt["otp"].as_str().unwrap(), attempt["nonce"].as_str().unwrap());
    let (st, done) = s.call("PUT", "sys/generate-root/update", Some(json!({"key": f.key, "nonce": nonce})));
    assert_eq!(st, 200, "{done}");
    let encoded = done["encoded_token"].as_str().unwrap();
    let root2 = decode_root(encoded, otp);
    assert_eq!(s.call_as(&root2, "GET", "auth/token/lookup-self", None).0, 200);
    let (_, attempt) = s.call("PUT", "sys/generate-root-token/attempt", Some(json!({})));
    let otp2 = attempt["data"]["otp"].as_str().unwrap();
    let (st, done) = s.call(
        "PUT",
        "sys/generate-root-token/update",
        Some(json!({"key": f.key, "nonce": attempt["data"]["nonce"]})),
    );
    assert_eq!(st, 200, "{done}");
    let encoded2 = done["data"]["encoded_token"].as_str().unwrap();
    let root3 = decode_root(encoded2, otp2);
    // Rekey: the current share goes in, new shares come out (not verified, then cancelled).
    let (new_keys, vnonce) = f.rekey_pending();
    assert_eq!(s.call("DELETE", "sys/rekey/init", None).0, 204);
    assert_eq!(s.call("PUT", "sys/seal", None).0, 204);
    f.reset();

    let text = std::fs::read_to_string(&log).unwrap();
    let mut secrets = vec![f.key.clone(), otp.to_owned(), encoded.to_owned(), root2.clone()];
    secrets.extend([otp2.to_owned(), encoded2.to_owned(), root3, s.token.clone()]);
    secrets.extend(new_keys.iter().cloned());
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the audit log in the clear");
    }
    let lines = audit_lines(&log);
    let root_hash = audit_hash(s, &s.token);
    let find = |path: &str, kind: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        lines
            .iter()
            .find(|l| l["request"]["path"] == path && l["type"] == kind && pred(l))
            .unwrap_or_else(|| panic!("no {kind} line for {path}"))
            .clone()
    };
    let any = |_: &Value| true;
    for path in ["sys/step-down", "sys/seal", "sys/generate-root/attempt", "sys/rekey/init"] {
        for kind in ["request", "response"] {
            let l = find(path, kind, &any);
            assert_eq!(l["request"]["client_token"], root_hash, "{l}");
            assert_eq!(l["error"], Value::Null, "{l}");
            assert_eq!(l["auth"]["policies"], json!(["root"]), "{l}");
        }
    }
    let key_hash = audit_hash(s, &f.key);
    let update = find("sys/generate-root/update", "request", &any);
    assert_eq!(update["request"]["data"]["key"], key_hash, "the share is audited hashed");
    assert_eq!(update["request"]["data"]["nonce"], audit_hash(s, nonce));
    let started = find("sys/generate-root/attempt", "response", &|l| l["request"]["operation"] == "update");
    assert_eq!(started["response"]["data"]["otp"], audit_hash(s, otp), "the OTP is audited hashed");
    let done = find("sys/generate-root/update", "response", &any);
    assert_eq!(done["response"]["data"]["encoded_token"], audit_hash(s, encoded));
    assert_eq!(done["response"]["data"]["encoded_root_token"], audit_hash(s, encoded));
    let started =
        find("sys/generate-root-token/attempt", "response", &|l| l["request"]["operation"] == "update");
    assert_eq!(started["response"]["data"]["otp"], audit_hash(s, otp2));
    let done = find("sys/generate-root-token/update", "response", &any);
    assert_eq!(done["response"]["data"]["encoded_token"], audit_hash(s, encoded2));
    let rekeyed = find("sys/rekey/update", "response", &any);
    assert_eq!(rekeyed["request"]["data"]["key"], key_hash);
    assert_eq!(rekeyed["response"]["data"]["keys"][0], audit_hash(s, &new_keys[0]), "new shares hashed");
    assert_eq!(rekeyed["response"]["data"]["verification_nonce"], audit_hash(s, &vnonce));
}

/// Fail closed on the special handlers: with the only audit device unable to write, seal,
/// generate-root and rekey do nothing.
#[test]
fn special_endpoints_do_not_act_when_the_audit_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("COFFER_REQUIRE_ROOT").is_err(),
            "cannot mount a tmpfs but COFFER_REQUIRE_ROOT is set"
        );
        eprintln!("skipping: cannot mount a small tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let f = Fixture::new();
    let once = f.once();
    enable_audit(&f.s, &mnt.join("audit.log"));
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 128 * 1024]);
    for (token, method, path, body) in [
        (f.s.token.as_str(), "PUT", "sys/seal", None),
        (f.s.token.as_str(), "PUT", "sys/step-down", None),
        (f.s.token.as_str(), "PUT", "sys/generate-root/attempt", Some(json!({}))),
        (f.s.token.as_str(), "PUT", "sys/generate-root-token/attempt", Some(json!({}))),
        (
            f.s.token.as_str(),
            "PUT",
            "sys/rekey/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        ),
        (once.as_str(), "PUT", "sys/seal", None),
        ("hvs.GuessedToken0123456789abc", "PUT", "sys/seal", None),
    ] {
        let (st, b) = f.s.call_as(token, method, path, body);
        assert_eq!(st, 500, "{method} {path}: {b}");
    }
    std::fs::remove_file(&filler).unwrap();
    let (_, seal) = f.s.call_as("", "GET", "sys/seal-status", None);
    assert_eq!(seal["sealed"], false, "sealed although the audit record was not written");
    let (st, gr) = f.s.call("GET", "sys/generate-root/attempt", None);
    assert_eq!((st, gr["started"].clone()), (200, json!(false)), "{gr}");
    let (st, rk) = f.s.call("GET", "sys/rekey/init", None);
    assert_eq!((st, rk["started"].clone()), (200, json!(false)), "{rk}");
    // Audit works again: so does the endpoint.
    assert_eq!(f.s.call("PUT", "sys/seal", None).0, 204);
}
