//! `vault:` references end to end: `coffer inject` and `coffer run` resolving a platform
//! configuration through AppRole with a `secret_id_file`, against coffer and against a real
//! OpenBao (`bao server -dev`), and the error cases (each message names the reference and
//! never a value).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{coffer_bin, require_bao_dev, wait_for, Server};

const OPENROUTER: &str = "sk-or-v1-canary-4f9a1c";
const DB_V2: &str = "db-password-v2-77e0";
const DB_V3: &str = "db-password-v3-1b2c";
const STRIPE: &str = "sk_live_canary_c0ffee";

/// Sets up the kv v2 secrets, a policy, and an AppRole role on `s`; returns (role_id, secret_id).
fn provision(s: &Server) -> (String, String) {
    let ok = |r: (u16, Value), what: &str| assert!(r.0 == 200 || r.0 == 204, "{what}: {r:?}");
    ok(s.call("POST", "sys/auth/approle", Some(json!({"type": "approle"}))), "enable approle");
    ok(
        s.call(
            "PUT",
            "sys/policies/acl/platform",
            Some(json!({"policy": "path \"secret/data/ai/*\" { capabilities = [\"read\"] }\npath \"secret/data/db/*\" { capabilities = [\"read\"] }\npath \"secret/data/billing/*\" { capabilities = [\"read\"] }\npath \"secret/data/gone/*\" { capabilities = [\"read\"] }"})),
        ),
        "policy",
    );
    ok(
        s.call(
            "POST",
            "auth/approle/role/platform",
            Some(json!({"token_policies": "platform", "token_ttl": "10m"})),
        ),
        "role",
    );
    ok(
        s.call("POST", "secret/data/ai/openrouter_key", Some(json!({"data": {"value": OPENROUTER}}))),
        "ai key",
    );
    ok(s.call("POST", "secret/data/billing/stripe", Some(json!({"data": {"live_key": STRIPE}}))), "stripe");
    for pw in ["db-password-v1", DB_V2, DB_V3] {
        ok(s.call("POST", "secret/data/db/main", Some(json!({"data": {"password": pw}}))), "db");
    }
    ok(s.call("POST", "secret/data/forbidden/x", Some(json!({"data": {"value": "nope"}}))), "forbidden");
    let (_, r) = s.call("GET", "auth/approle/role/platform/role-id", None);
    let role_id = r["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, sid) = s.call("POST", "auth/approle/role/platform/secret-id", Some(json!({})));
    (role_id, sid["data"]["secret_id"].as_str().unwrap().to_owned())
}

fn coffer(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(coffer_bin())
        .args(args)
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_ADDR")
        .env("HOME", std::env::temp_dir().join("coffer-it-nohome"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The platform configuration of the issue, resolved by AppRole with a secret_id_file.
fn platform_config_scenario(s: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let (role_id, secret_id) = provision(s);
    let sid_file = dir.path().join("secret_id");
    write_private(&sid_file, &format!("{secret_id}\n"));
    let tls_key = dir.path().join("tls.key");
    write_private(&tls_key, "-----BEGIN PRIVATE KEY-----\nfile-canary\n-----END PRIVATE KEY-----\n");
    let template = dir.path().join("platform.toml");
    std::fs::write(
        &template,
        format!(
            r#"# platform server configuration
[vault]
address = "{addr}"
auth_method = "approle"
role_id = "env:IT_ROLE_ID"
secret_id_file = "{sid}"

[ai]
openrouter_api_key = "vault:ai/openrouter_key"   # field "value", latest
model = "gpt-4o"

[db]
password = "vault:db/main#password@2"
latest = "vault:db/main#password"

[billing]
stripe_key = "vault:billing/stripe#live_key"

[jobs]
webhook_secret = "env:IT_WEBHOOK_SECRET"
tls_key = "file:{key}"
literal = "\\vault:not-a-reference"
"#,
            addr = s.addr,
            sid = sid_file.display(),
            key = tls_key.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out/platform.toml");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let env = [("IT_ROLE_ID", role_id.as_str()), ("IT_WEBHOOK_SECRET", "whsec-env-canary")];
    let (code, stdout, stderr) =
        coffer(&["inject", "-i", template.to_str().unwrap(), "-o", out.to_str().unwrap()], &env);
    assert_eq!(code, 0, "inject failed: {stdout} {stderr}");
    let rendered = std::fs::read_to_string(&out).unwrap();
    let v: toml::Value = toml::from_str(&rendered).unwrap();
    assert_eq!(v["ai"]["openrouter_api_key"].as_str(), Some(OPENROUTER));
    assert_eq!(v["ai"]["model"].as_str(), Some("gpt-4o"));
    assert_eq!(v["db"]["password"].as_str(), Some(DB_V2));
    assert_eq!(v["db"]["latest"].as_str(), Some(DB_V3));
    assert_eq!(v["billing"]["stripe_key"].as_str(), Some(STRIPE));
    assert_eq!(v["jobs"]["webhook_secret"].as_str(), Some("whsec-env-canary"));
    assert!(v["jobs"]["tls_key"].as_str().unwrap().contains("file-canary"));
    assert_eq!(v["jobs"]["literal"].as_str(), Some("vault:not-a-reference"));
    assert!(rendered.starts_with("# platform server configuration"), "layout and comments are kept");
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!stdout.contains(OPENROUTER) && !stderr.contains(OPENROUTER));
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind: {leftovers:?}");

    // --check reports nothing missing.
    let (code, stdout, _) = coffer(&["inject", "--check", "-i", template.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{stdout}");
    assert!(!stdout.contains(OPENROUTER));
}

/// `coffer run` puts resolved values into the child's environment; exit codes pass through.
fn run_scenario(s: &Server) {
    let env = [
        ("VAULT_ADDR", s.addr.as_str()),
        ("VAULT_TOKEN", s.token.as_str()),
        ("IT_KEY", "vault:ai/openrouter_key"),
        ("IT_PLAIN", "plain"),
    ];
    let (code, stdout, stderr) =
        coffer(&["run", "--", "sh", "-c", "echo \"key=$IT_KEY plain=$IT_PLAIN\""], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("key={OPENROUTER} plain=plain"));
    let (code, _, _) = coffer(&["run", "--", "sh", "-c", "exit 7"], &env);
    assert_eq!(code, 7, "the command's exit code passes through");
    // A reference that does not resolve: the command never runs.
    let env2 = [
        ("VAULT_ADDR", s.addr.as_str()),
        ("VAULT_TOKEN", s.token.as_str()),
        ("IT_MISSING", "vault:no/such/secret"),
    ];
    let (code, stdout, stderr) = coffer(&["run", "--", "sh", "-c", "echo RAN"], &env2);
    assert_ne!(code, 0);
    assert!(!stdout.contains("RAN"));
    assert!(stderr.contains("vault:no/such/secret"), "{stderr}");
    let (code, stdout, _) = coffer(
        &["run", "--allow-missing", "vault:no/such/secret", "--", "sh", "-c", "echo \"$IT_MISSING\""],
        &env2,
    );
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "vault:no/such/secret");
}

/// `--watch` signals the child after a referenced secret changes.
fn watch_scenario(s: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hup");
    let script = format!(
        "trap 'echo \"$IT_KEY\" > /dev/null; echo hup >> {m}' HUP; echo started >> {m}; while :; do sleep 0.05; done",
        m = marker.display()
    );
    let mut child = Command::new(coffer_bin())
        .args(["run", "--watch", "1s", "--", "sh", "-c", &script])
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", &s.token)
        .env("IT_KEY", "vault:ai/openrouter_key")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("child to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&marker).ok().filter(|t| t.contains("started")).map(|_| ())
    });
    assert_eq!(
        s.call("POST", "secret/data/ai/openrouter_key", Some(json!({"data": {"value": "rotated-value"}}))).0,
        200
    );
    wait_for("SIGHUP after the secret changed", Duration::from_secs(30), || {
        std::fs::read_to_string(&marker).ok().filter(|t| t.contains("hup")).map(|_| ())
    });
    // SIGTERM goes to the child too; both exit (no orphan left behind).
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = wait_for("coffer run to exit after SIGTERM", Duration::from_secs(30), || {
        child.try_wait().ok().flatten()
    });
    assert!(!status.success(), "the child was terminated by the forwarded signal");
    // Put the value back for other scenarios.
    s.call("POST", "secret/data/ai/openrouter_key", Some(json!({"data": {"value": OPENROUTER}})));
}

/// Each failure names the reference, prints no value and fails the whole command.
fn error_scenarios(s: &Server) {
    let dir = tempfile::tempdir().unwrap();
    s.call("POST", "secret/data/gone/x", Some(json!({"data": {"value": "destroyed-canary"}})));
    s.call("POST", "secret/destroy/gone/x", Some(json!({"versions": [1]})));
    let cases = [
        ("vault:ai/missing", "no such secret"),
        ("vault:ai/openrouter_key#nofield", "no field"),
        ("vault:gone/x", "destroyed"),
        ("vault:forbidden/x", "permission denied"),
    ];
    // An AppRole token whose policy does not cover forbidden/x.
    let (_, r) = s.call("GET", "auth/approle/role/platform/role-id", None);
    let role_id = r["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, sid) = s.call("POST", "auth/approle/role/platform/secret-id", Some(json!({})));
    let sid_file = dir.path().join("sid");
    write_private(&sid_file, sid["data"]["secret_id"].as_str().unwrap());
    for (reference, want) in cases {
        let tmpl = dir.path().join("t.json");
        std::fs::write(&tmpl, json!({"ok": "vault:ai/openrouter_key", "bad": reference}).to_string())
            .unwrap();
        let out = dir.path().join("o.json");
        let env = [
            ("VAULT_ADDR", s.addr.as_str()),
            ("VAULT_AUTH_METHOD", "approle"),
            ("VAULT_ROLE_ID", role_id.as_str()),
            ("VAULT_SECRET_ID_FILE", sid_file.to_str().unwrap()),
        ];
        let (code, stdout, stderr) =
            coffer(&["inject", "-i", tmpl.to_str().unwrap(), "-o", out.to_str().unwrap()], &env);
        assert_ne!(code, 0, "{reference} must fail");
        let all = format!("{stdout}{stderr}");
        assert!(all.contains(reference), "{reference}: message does not name it: {all}");
        assert!(all.contains(want), "{reference}: expected {want:?} in {all}");
        for canary in [OPENROUTER, "destroyed-canary", "nope"] {
            assert!(!all.contains(canary), "{reference}: printed a value: {all}");
        }
        assert!(!out.exists(), "nothing is written when a reference fails");
        let (code, stdout, _) = coffer(&["inject", "--check", "-i", tmpl.to_str().unwrap()], &env);
        assert_eq!(code, 1);
        assert!(stdout.contains(reference) && !stdout.contains(OPENROUTER), "{stdout}");
    }
    // An expired secret ID: the login fails and the message says so without values.
    s.call(
        "POST",
        "auth/approle/role/short",
        Some(json!({"token_policies": "platform", "secret_id_ttl": "1s"})),
    );
    let (_, r) = s.call("GET", "auth/approle/role/short/role-id", None);
    let short_role = r["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, sid) = s.call("POST", "auth/approle/role/short/secret-id", Some(json!({})));
    let short_sid = sid["data"]["secret_id"].as_str().unwrap().to_owned();
    write_private(&sid_file, &short_sid);
    let env = [
        ("VAULT_ADDR", s.addr.as_str()),
        ("VAULT_AUTH_METHOD", "approle"),
        ("VAULT_ROLE_ID", short_role.as_str()),
        ("VAULT_SECRET_ID_FILE", sid_file.to_str().unwrap()),
    ];
    let tmpl = dir.path().join("t2.json");
    std::fs::write(&tmpl, json!({"k": "vault:ai/openrouter_key"}).to_string()).unwrap();
    let out = dir.path().join("o2.json");
    wait_for("the secret ID to expire", Duration::from_secs(60), || {
        let (code, stdout, stderr) =
            coffer(&["inject", "-i", tmpl.to_str().unwrap(), "-o", out.to_str().unwrap()], &env);
        if code == 0 {
            std::fs::remove_file(&out).ok();
            return None;
        }
        let all = format!("{stdout}{stderr}");
        assert!(all.contains("vault:ai/openrouter_key") && all.contains("authentication failed"), "{all}");
        assert!(!all.contains(&short_sid) && !all.contains(OPENROUTER), "{all}");
        Some(())
    });
}

fn all_scenarios(s: &Server) {
    platform_config_scenario(s);
    run_scenario(s);
    watch_scenario(s);
    error_scenarios(s);
}

#[test]
fn references_resolve_against_coffer() {
    let s = Server::dev();
    all_scenarios(&s);
}

#[test]
fn references_resolve_against_openbao() {
    let Some(bao) = require_bao_dev("references_resolve_against_openbao") else { return };
    all_scenarios(&bao);
}

/// A secret ID file (any content) in `dir`.
fn sid_path(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("unrelated-sid");
    write_private(&p, "unrelated-secret-id");
    p
}

/// A plain TCP listener the test owns, standing in for a server a template could name: it
/// records the head of every request that reaches it and answers 403.
struct Recorder {
    addr: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        // One connection at a time, in arrival order; the thread ends with the test process.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                let body = r#"{"errors":["permission denied"]}"#;
                let _ = write!(
                    c,
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Recorder { addr, seen }
    }

    /// What reached the listener since the last call. A probe of our own goes through the same
    /// accept queue after anything the command sent, so once it is answered the record is
    /// complete (no waiting for something not to happen).
    fn received(&self) -> Vec<String> {
        let mut probe = TcpStream::connect(self.addr.trim_start_matches("http://")).unwrap();
        probe.write_all(b"PROBE\r\n\r\n").unwrap();
        let mut answer = String::new();
        probe.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        let mut seen = std::mem::take(&mut *self.seen.lock().unwrap());
        assert_eq!(seen.pop().as_deref(), Some("PROBE\r\n\r\n"));
        seen
    }
}

/// S26: a template's `[vault]` section cannot send the operator's token (VAULT_TOKEN or
/// ~/.vault-token) to an address of its choosing, nor turn TLS verification off. The named
/// server (a listener the test owns) receives no connection at all; a document that brings its
/// own AppRole credentials still works.
#[test]
fn template_cannot_redirect_the_operators_token() {
    let s = Server::dev();
    let (role_id, secret_id) = provision(&s);
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::start();
    let canary = "hvs.operator-token-canary";

    // Control: when the operator names the listener, the token does reach it (so the listener
    // would have seen a leak).
    let tmpl = dir.path().join("plain.json");
    std::fs::write(&tmpl, json!({"k": "vault:ai/openrouter_key"}).to_string()).unwrap();
    let out = dir.path().join("out.json");
    let args = ["inject", "-i", tmpl.to_str().unwrap(), "-o", out.to_str().unwrap()];
    let (code, _, stderr) = coffer(&args, &[("VAULT_ADDR", rec.addr.as_str()), ("VAULT_TOKEN", canary)]);
    assert_ne!(code, 0);
    assert!(stderr.contains("permission denied") || stderr.contains("403"), "{stderr}");
    let seen = rec.received();
    assert!(seen.iter().any(|r| r.to_lowercase().contains(&format!("x-vault-token: {canary}"))), "{seen:?}");

    // A template naming the listener, with the token in the environment (address from the
    // environment, or the default) or in ~/.vault-token: refused before anything is sent.
    let redirect = dir.path().join("redirect.toml");
    std::fs::write(
        &redirect,
        format!("[vault]\naddress = \"{}\"\n\n[app]\nk = \"vault:ai/openrouter_key\"\n", rec.addr),
    )
    .unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    write_private(&home.join(".vault-token"), &s.token);
    let inject = ["inject", "-i", redirect.to_str().unwrap(), "-o", out.to_str().unwrap()];
    let run = ["run", "--config", redirect.to_str().unwrap(), "--", "sh", "-c", "echo RAN"];
    let envs: [Vec<(&str, &str)>; 3] = [
        vec![("VAULT_ADDR", s.addr.as_str()), ("VAULT_TOKEN", s.token.as_str())],
        vec![("VAULT_TOKEN", s.token.as_str())],
        vec![("HOME", home.to_str().unwrap())],
    ];
    for env in &envs {
        for args in [&inject[..], &run[..]] {
            let (code, stdout, stderr) = coffer(args, env);
            assert_ne!(code, 0, "{args:?} {env:?}: {stdout}");
            assert!(!stdout.contains("RAN"), "the command ran");
            assert!(stderr.contains(&rec.addr) && stderr.contains("own AppRole credentials"), "{stderr}");
            assert!(!stderr.contains(&s.token), "{stderr}");
            assert!(!out.exists());
        }
    }
    // Nor can the template pass the operator's token off as its own AppRole credentials.
    let disguised = dir.path().join("disguised.toml");
    let token_file = home.join(".vault-token");
    for (rid, sid) in [("env:VAULT_TOKEN", sid_path(dir.path())), ("some-role", token_file.clone())] {
        std::fs::write(
            &disguised,
            format!(
                "[vault]\naddress = \"{}\"\nrole_id = \"{rid}\"\nsecret_id_file = \"{}\"\n\n[app]\nk = \"vault:ai/openrouter_key\"\n",
                rec.addr,
                sid.display()
            ),
        )
        .unwrap();
        let env = [("VAULT_TOKEN", s.token.as_str()), ("HOME", home.to_str().unwrap())];
        let (code, stdout, stderr) =
            coffer(&["inject", "-i", disguised.to_str().unwrap(), "-o", out.to_str().unwrap()], &env);
        assert_ne!(code, 0, "{rid} {}: {stdout}", sid.display());
        assert!(stderr.contains("operator's token") && !stderr.contains(&s.token), "{stderr}");
    }
    assert_eq!(rec.received(), Vec::<String>::new(), "the template's server was contacted");

    // The same template with its own AppRole credentials resolves, also with the operator's
    // token and address in the environment (the listener): neither is used.
    let sid_file = dir.path().join("sid");
    write_private(&sid_file, &secret_id);
    let own = dir.path().join("own.toml");
    std::fs::write(
        &own,
        format!(
            "[vault]\naddress = \"{}\"\nrole_id = \"{role_id}\"\nsecret_id_file = \"{}\"\n\n[app]\nk = \"vault:ai/openrouter_key\"\n",
            s.addr,
            sid_file.display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = coffer(
        &["inject", "-i", own.to_str().unwrap(), "-o", out.to_str().unwrap()],
        &[("VAULT_ADDR", rec.addr.as_str()), ("VAULT_TOKEN", canary)],
    );
    assert_eq!(code, 0, "{stdout} {stderr}");
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["app"]["k"].as_str(), Some(OPENROUTER));
    assert_eq!(rec.received(), Vec::<String>::new(), "the operator's address was contacted");
    std::fs::remove_file(&out).unwrap();

    // skip_verify from the document: refused unless the command line allows it too.
    let skip = dir.path().join("skip.toml");
    std::fs::write(
        &skip,
        format!(
            "[vault]\naddress = \"{}\"\nskip_verify = true\n\n[app]\nk = \"vault:ai/openrouter_key\"\n",
            s.addr
        ),
    )
    .unwrap();
    let env = [("VAULT_ADDR", s.addr.as_str()), ("VAULT_TOKEN", s.token.as_str())];
    let args = ["inject", "-i", skip.to_str().unwrap(), "-o", out.to_str().unwrap()];
    let (code, stdout, stderr) = coffer(&args, &env);
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("skip_verify") && stderr.contains("-tls-skip-verify"), "{stderr}");
    assert!(!out.exists());
    let (code, stdout, stderr) = coffer(&[&["--tls-skip-verify"][..], &args[..]].concat(), &env);
    assert_eq!(code, 0, "{stdout} {stderr}");
    assert!(std::fs::read_to_string(&out).unwrap().contains(OPENROUTER));
}
