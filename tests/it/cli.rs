//! The `coffer` CLI as a user runs it: the real binary against `bao server -dev` (for the
//! engines coffer does not serve yet: kv v2, transit, approle, token, policy) and against
//! `coffer server --dev` (status, seal, rotate, mounts, kv v1 through the generic commands).
//!
//! Each run gets its own HOME (the token helper file lives there) and an environment holding
//! only VAULT_ADDR / VAULT_TOKEN unless a test adds more.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{self, Server};

/// The outcome of one CLI run.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// A CLI pointed at one server, with its own HOME.
struct Cli<'a> {
    server: &'a Server,
    home: tempfile::TempDir,
    token: Option<String>,
}

impl<'a> Cli<'a> {
    fn new(server: &'a Server) -> Self {
        Self { server, home: tempfile::tempdir().unwrap(), token: Some(server.token.clone()) }
    }

    fn without_token(server: &'a Server) -> Self {
        Self { server, home: tempfile::tempdir().unwrap(), token: None }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_full(args, &[], None)
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.run_full(args, &[], Some(stdin))
    }

    fn run_full(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(harness::coffer_bin());
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("VAULT_ADDR", &self.server.addr)
            .env("RUST_BACKTRACE", "0");
        for k in [
            "VAULT_TOKEN",
            "BAO_ADDR",
            "BAO_TOKEN",
            "COFFER_ADDR",
            "COFFER_TOKEN",
            "VAULT_FORMAT",
            "VAULT_CACERT",
        ] {
            cmd.env_remove(k);
        }
        if let Some(t) = &self.token {
            cmd.env("VAULT_TOKEN", t);
        }
        cmd.envs(env.iter().copied());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn coffer");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn token_file(&self) -> std::path::PathBuf {
        self.home.path().join(".vault-token")
    }
}

// ---------------------------------------------------------------------------------------------
// Against OpenBao
// ---------------------------------------------------------------------------------------------

#[test]
fn bao_kv_v2_round_trip() {
    let Some(bao) = harness::require_bao_dev("bao_kv_v2_round_trip") else { return };
    kv_v2_round_trip(&bao);
}

#[test]
fn coffer_kv_v2_round_trip() {
    let s = Server::dev();
    kv_v2_round_trip(&s);
}

fn kv_v2_round_trip(bao: &Server) {
    let cli = Cli::new(&bao);

    let put = cli.run(&["kv", "put", "secret/app", "user=ada", "n=3"]).ok();
    assert!(
        put.stdout.starts_with("= Secret Path =\nsecret/data/app\n\n======= Metadata =======\n"),
        "{}",
        put.stdout
    );
    assert!(put.stdout.contains("\nversion            1\n"), "{}", put.stdout);

    // -field prints the raw value, without a newline when piped.
    assert_eq!(cli.run(&["kv", "get", "-field=user", "secret/app"]).ok().stdout, "ada");
    assert_eq!(cli.run(&["kv", "get", "-mount=secret", "-field=n", "app"]).ok().stdout, "3");

    let get = cli.run(&["kv", "get", "secret/app"]).ok();
    assert!(
        get.stdout.contains("==== Data ====\nKey     Value\n---     -----\nn       3\nuser    ada\n"),
        "{}",
        get.stdout
    );
    let j = cli.run(&["kv", "get", "-format=json", "secret/app"]).ok().json();
    assert_eq!(j["data"]["data"], serde_json::json!({"user": "ada", "n": "3"}));
    assert_eq!(j["data"]["metadata"]["version"], 1);

    // Patch merges (HTTP PATCH), -remove-data deletes a key.
    cli.run(&["kv", "patch", "secret/app", "role=admin"]).ok();
    cli.run(&["kv", "patch", "-remove-data=n", "secret/app"]).ok();
    let j = cli.run(&["kv", "get", "-format=json", "secret/app"]).ok().json();
    assert_eq!(j["data"]["data"], serde_json::json!({"user": "ada", "role": "admin"}));
    assert_eq!(j["data"]["metadata"]["version"], 3);

    // Check-and-set.
    let bad = cli.run(&["kv", "put", "-cas=1", "secret/app", "x=y"]).code(1);
    assert!(
        bad.stderr.contains("check-and-set parameter did not match the current version"),
        "{}",
        bad.stderr
    );
    cli.run(&["kv", "put", "-cas=3", "secret/app", "user=bob"]).ok();

    // Soft delete, read an old version, undelete, destroy.
    assert_eq!(
        cli.run(&["kv", "delete", "-versions=1", "secret/app"]).ok().stdout,
        "Success! Data deleted (if it existed) at: secret/data/app\n"
    );
    let v1 = cli.run(&["kv", "get", "-format=json", "-version=1", "secret/app"]).ok().json();
    assert_eq!(v1["data"]["data"], Value::Null);
    assert_ne!(v1["data"]["metadata"]["deletion_time"], "");
    cli.run(&["kv", "undelete", "-versions=1", "secret/app"]).ok();
    assert_eq!(cli.run(&["kv", "get", "-version=1", "-field=user", "secret/app"]).ok().stdout, "ada");
    cli.run(&["kv", "destroy", "-versions=1", "secret/app"]).ok();
    let v1 = cli.run(&["kv", "get", "-format=json", "-version=1", "secret/app"]).ok().json();
    assert_eq!(v1["data"]["metadata"]["destroyed"], true);
    cli.run(&["kv", "undelete", "secret/app"]).code(2);

    // Metadata.
    cli.run(&["kv", "metadata", "put", "-max-versions=5", "-custom-metadata=owner=ops", "secret/app"]).ok();
    let md = cli.run(&["kv", "metadata", "get", "secret/app"]).ok();
    assert!(md.stdout.starts_with("== Metadata Path ==\nsecret/metadata/app\n\n"), "{}", md.stdout);
    assert!(md.stdout.contains("custom_metadata             map[owner:ops]"), "{}", md.stdout);
    assert!(md.stdout.contains("====== Version 4 ======"), "{}", md.stdout);
    let mdj = cli.run(&["kv", "metadata", "get", "-format=json", "secret/app"]).ok().json();
    assert_eq!(mdj["data"]["max_versions"], 5);

    // List, then delete everything.
    cli.run(&["kv", "put", "secret/dir/inner", "a=b"]).ok();
    assert_eq!(cli.run(&["kv", "list", "secret"]).ok().stdout, "Keys\n----\napp\ndir/\n");
    assert_eq!(
        cli.run(&["kv", "list", "-format=json", "-mount=secret", "dir"]).ok().json(),
        serde_json::json!(["inner"])
    );
    cli.run(&["kv", "metadata", "delete", "secret/app"]).ok();
    let missing = cli.run(&["kv", "get", "secret/app"]).code(2);
    assert_eq!(missing.stderr.trim(), "No value found at secret/data/app");
    assert_eq!(
        cli.run(&["kv", "list", "secret/nope"]).code(2).stderr.trim(),
        "No value found at secret/metadata/nope"
    );

    // Data from stdin and files.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cert.pem");
    std::fs::write(&f, "-----BEGIN-----\n").unwrap();
    cli.run(&["kv", "put", "secret/files", &format!("pem=@{}", f.display())]).ok();
    assert_eq!(cli.run(&["kv", "get", "-field=pem", "secret/files"]).ok().stdout, "-----BEGIN-----\n");
    cli.run_stdin(&["kv", "put", "secret/json", "-"], r#"{"nested": {"k": 1}}"#).ok();
    assert_eq!(cli.run(&["kv", "get", "-field=nested", "secret/json"]).ok().stdout, "map[k:1]");
    assert_eq!(
        cli.run(&["kv", "get", "-field=nested", "-format=json", "secret/json"]).ok().json(),
        serde_json::json!({"k": 1})
    );
    cli.run(&["kv", "put", "secret/empty"]).code(2);
}

#[test]
fn bao_kv_patch_falls_back_to_read_write_without_patch_capability() {
    let Some(bao) = harness::require_bao_dev("bao_kv_patch_falls_back") else { return };
    let root = Cli::new(&bao);
    root.run(&["kv", "put", "secret/p", "a=1"]).ok();
    root.run_stdin(
        &["policy", "write", "nopatch", "-"],
        r#"path "secret/data/*" { capabilities = ["create", "read", "update"] }"#,
    )
    .ok();
    let token = root.run(&["token", "create", "-policy=nopatch", "-field=token"]).ok().stdout;
    let mut limited = Cli::new(&bao);
    limited.token = Some(token);
    let out = limited.run(&["kv", "patch", "secret/p", "b=2"]).ok();
    assert!(
        out.stderr
            .starts_with("Data was written to secret/data/p but we recommend that you add the \"patch\""),
        "{}",
        out.stderr
    );
    let j = root.run(&["kv", "get", "-format=json", "secret/p"]).ok().json();
    assert_eq!(j["data"]["data"], serde_json::json!({"a": "1", "b": "2"}));
    assert_eq!(j["data"]["metadata"]["version"], 2);
    // -method=patch does not fall back.
    let refused = limited.run(&["kv", "patch", "-method=patch", "secret/p", "c=3"]).code(1);
    assert!(refused.stderr.contains("Code: 403"), "{}", refused.stderr);
}

#[test]
fn bao_transit_helpers_and_generic_write() {
    let Some(bao) = harness::require_bao_dev("bao_transit_helpers_and_generic_write") else { return };
    transit_helpers_and_generic_write(&bao);
}

#[test]
fn coffer_transit_helpers_and_generic_write() {
    let s = Server::dev();
    transit_helpers_and_generic_write(&s);
}

fn transit_helpers_and_generic_write(bao: &Server) {
    let cli = Cli::new(&bao);
    assert_eq!(
        cli.run(&["secrets", "enable", "transit"]).ok().stdout,
        "Success! Enabled the transit secrets engine at: transit/\n"
    );
    cli.run(&["transit", "create", "app"]).ok();
    let ct = cli.run(&["transit", "encrypt", "-field=ciphertext", "app", "hello world"]).ok().stdout;
    assert!(ct.starts_with("vault:v1:"), "{ct}");
    assert_eq!(cli.run(&["transit", "decrypt", "app", &ct]).ok().stdout, "hello world");
    // Binary plaintext through stdin.
    let ct2 =
        cli.run_stdin(&["transit", "encrypt", "-field=ciphertext", "app"], "line1\nline2\n").ok().stdout;
    assert_eq!(cli.run_stdin(&["transit", "decrypt", "app"], &ct2).ok().stdout, "line1\nline2\n");
    // The generic write works too (base64 by hand).
    let j = cli.run(&["write", "-format=json", "transit/encrypt/app", "plaintext=aGk="]).ok().json();
    let ct3 = j["data"]["ciphertext"].as_str().unwrap().to_owned();
    assert_eq!(
        cli.run(&["write", "-field=plaintext", "transit/decrypt/app", &format!("ciphertext={ct3}")])
            .ok()
            .stdout,
        "aGk="
    );
    // Rotate, list.
    cli.run(&["transit", "rotate", "app"]).ok();
    assert_eq!(cli.run(&["read", "-field=latest_version", "transit/keys/app"]).ok().stdout, "2");
    assert_eq!(cli.run(&["transit", "keys"]).ok().stdout, "Keys\n----\napp\n");
    let missing = cli.run(&["transit", "decrypt", "nokey", &ct]).code(1);
    assert!(
        missing.stderr.starts_with("Error writing data to transit/decrypt/nokey: Error making API request."),
        "{}",
        missing.stderr
    );
}

#[test]
fn bao_approle_login_and_token_lifecycle() {
    let Some(bao) = harness::require_bao_dev("bao_approle_login_and_token_lifecycle") else { return };
    approle_login_and_token_lifecycle(&bao);
}

#[test]
fn coffer_approle_login_and_token_lifecycle() {
    let s = Server::dev();
    approle_login_and_token_lifecycle(&s);
}

fn approle_login_and_token_lifecycle(bao: &Server) {
    let root = Cli::new(&bao);
    assert_eq!(
        root.run(&["auth", "enable", "approle"]).ok().stdout,
        "Success! Enabled approle auth method at: approle/\n"
    );
    root.run(&["write", "auth/approle/role/web", "token_policies=default", "token_ttl=1h"]).ok();
    let role_id = root.run(&["read", "-field=role_id", "auth/approle/role/web/role-id"]).ok().stdout;
    let secret_id =
        root.run(&["write", "-f", "-field=secret_id", "auth/approle/role/web/secret-id"]).ok().stdout;
    assert!(!role_id.is_empty() && !secret_id.is_empty());
    let auths = root.run(&["auth", "list"]).ok().stdout;
    assert!(auths.contains("approle/    approle"), "{auths}");

    // AppRole login stores the token in ~/.vault-token (mode 0600); later commands use it.
    let user = Cli::without_token(&bao);
    let login = user
        .run(&["login", "-method=approle", &format!("role_id={role_id}"), &format!("secret_id={secret_id}")])
        .ok();
    assert!(login.stdout.starts_with("Success! You are now authenticated."), "{}", login.stdout);
    assert!(login.stdout.contains("token_meta_role_name    web"), "{}", login.stdout);
    let stored = std::fs::read_to_string(user.token_file()).unwrap();
    assert!(login.stdout.contains(&stored), "the printed token is the stored one");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(user.token_file()).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(user.run(&["token", "lookup", "-field=policies"]).ok().stdout, "[default]");
    let ttl: u64 = user.run(&["token", "lookup", "-field=ttl"]).ok().stdout.parse().unwrap();
    assert!((3500..=3600).contains(&ttl), "{ttl}");

    // A bad secret ID fails with the server's message and stores nothing.
    let other = Cli::without_token(&bao);
    let bad =
        other.run(&["login", "-method=approle", &format!("role_id={role_id}"), "secret_id=wrong"]).code(1);
    assert!(bad.stderr.contains("invalid role or secret ID"), "{}", bad.stderr);
    assert!(!other.token_file().exists());

    // Token create / lookup / renew / revoke.
    let t = root
        .run(&["token", "create", "-policy=default", "-ttl=30m", "-metadata=team=a", "-field=token"])
        .ok()
        .stdout;
    let created = root.run(&["token", "create", "-policy=default", "-format=json"]).ok().json();
    assert_eq!(created["auth"]["token_policies"], serde_json::json!(["default"]));
    let look = root.run(&["token", "lookup", "-format=json", &t]).ok().json();
    assert_eq!(look["data"]["meta"]["team"], "a");
    assert_eq!(look["data"]["creation_ttl"], 1800);
    let table = root.run(&["token", "lookup", &t]).ok().stdout;
    assert!(table.contains("creation_ttl        30m\n"), "{table}");
    let renewed = root.run(&["token", "renew", "-increment=1h", &t]).ok().stdout;
    assert!(renewed.contains("token_duration       1h\n"), "{renewed}");
    let accessor = look["data"]["accessor"].as_str().unwrap().to_owned();
    assert_eq!(
        root.run(&["token", "lookup", "-accessor", "-field=display_name", &accessor]).ok().stdout,
        "token"
    );
    assert_eq!(root.run(&["token", "revoke", &t]).ok().stdout, "Success! Revoked token (if it existed)\n");
    let gone = root.run(&["token", "lookup", &t]).code(1);
    assert!(gone.stderr.contains("Code: 403"), "{}", gone.stderr);
    root.run(&["token", "revoke"]).code(2);

    // Token login with -no-store, then a normal one, from stdin.
    let t2 = root.run(&["token", "create", "-policy=default", "-field=token"]).ok().stdout;
    let fresh = Cli::without_token(&bao);
    let ns = fresh.run(&["login", "-no-store", &t2]).ok();
    assert!(ns.stdout.starts_with("The token was not stored in token helper."), "{}", ns.stdout);
    assert!(!fresh.token_file().exists());
    fresh.run_stdin(&["login", "-"], &format!("{t2}\n")).ok();
    assert_eq!(std::fs::read_to_string(fresh.token_file()).unwrap(), t2);
    let bad = fresh.run(&["login", "not-a-token"]).code(1);
    assert!(bad.stderr.starts_with("Error authenticating: Error making API request."), "{}", bad.stderr);
    fresh.run(&["login", "-method=ldap", "username=x"]).code(2);
}

#[test]
fn bao_policies_mounts_and_audit() {
    let Some(bao) = harness::require_bao_dev("bao_policies_mounts_and_audit") else { return };
    let cli = Cli::new(&bao);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(&file, "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n").unwrap();
    assert_eq!(
        cli.run(&["policy", "write", "App", &file.to_string_lossy()]).ok().stdout,
        "Success! Uploaded policy: app\n"
    );
    assert!(cli.run(&["policy", "read", "app"]).ok().stdout.contains("capabilities = [\"read\"]"));
    assert!(cli.run(&["policy", "read", "-format=json", "app"]).ok().json()["policy"]
        .as_str()
        .unwrap()
        .contains("secret/data/app/*"));
    assert_eq!(cli.run(&["policy", "list"]).ok().stdout, "app\ndefault\nroot\n");
    assert_eq!(cli.run(&["policy", "delete", "app"]).ok().stdout, "Success! Deleted policy: app\n");
    assert_eq!(cli.run(&["policy", "read", "app"]).code(2).stderr.trim(), "No policy named: app");
    let fmt = cli.run(&["policy", "fmt", &file.to_string_lossy()]).ok();
    assert!(fmt.stdout.contains("Success! Formatted policy"), "{}", fmt.stdout);

    cli.run(&[
        "secrets",
        "enable",
        "-path=kv2",
        "-version=2",
        "-description=team kv",
        "-max-lease-ttl=2h",
        "kv",
    ])
    .ok();
    let mounts = cli.run(&["secrets", "list", "-format=json"]).ok().json();
    assert_eq!(mounts["kv2/"]["options"]["version"], "2");
    assert_eq!(mounts["kv2/"]["description"], "team kv");
    assert_eq!(mounts["kv2/"]["config"]["max_lease_ttl"], 7200);
    let table = cli.run(&["secrets", "list"]).ok().stdout;
    assert!(table.starts_with("Path          Type         Accessor              Description\n"), "{table}");
    assert!(cli.run(&["secrets", "list", "-detailed"]).ok().stdout.contains("map[version:2]"));
    cli.run(&["secrets", "tune", "-default-lease-ttl=1h", "kv2"]).ok();
    assert_eq!(cli.run(&["read", "-field=default_lease_ttl", "sys/mounts/kv2/tune"]).ok().stdout, "3600");
    cli.run(&["kv", "put", "kv2/x", "a=b"]).ok();
    assert_eq!(cli.run(&["kv", "get", "-field=a", "kv2/x"]).ok().stdout, "b");
    let dup = cli.run(&["secrets", "enable", "-path=kv2", "kv"]).code(1);
    assert!(
        dup.stderr.starts_with("Error enabling: Error making API request.\n\nURL: PUT "),
        "{}",
        dup.stderr
    );
    assert!(dup.stderr.contains("path is already in use at kv2/"), "{}", dup.stderr);
    assert_eq!(
        cli.run(&["secrets", "disable", "kv2"]).ok().stdout,
        "Success! Disabled the secrets engine (if it existed) at: kv2/\n"
    );

    assert_eq!(cli.run(&["audit", "list"]).code(2).stderr.trim(), "No audit devices are enabled.");
    // OpenBao 2.4+ refuses audit devices through the API; the CLI reports the server's error.
    let audit = cli.run(&["audit", "enable", "file", "file_path=/dev/null"]).code(1);
    assert!(
        audit.stderr.starts_with("Error enabling audit device: Error making API request."),
        "{}",
        audit.stderr
    );
}

#[test]
fn bao_generate_root_seal_and_unseal() {
    let Some(bao) = harness::require_bao_dev("bao_generate_root_seal_and_unseal") else { return };
    let cli = Cli::new(&bao);
    let key = harness::wait_for("unseal key in bao's output", harness::DEADLINE, || {
        bao.stdout.lines().iter().find_map(|l| l.strip_prefix("Unseal Key: ").map(str::to_owned))
    });

    let otp = cli.run(&["operator", "generate-root", "-generate-otp"]).ok().stdout;
    assert!(otp.len() >= 24 && otp.chars().all(|c| c.is_ascii_alphanumeric()), "{otp}");
    let init = cli.run(&["operator", "generate-root", "-init", &format!("-otp={otp}")]).ok();
    assert!(init.stdout.contains("Started       true"), "{}", init.stdout);
    let status = cli.run(&["operator", "generate-root", "-status", "-format=json"]).ok().json();
    assert_eq!(status["progress"], 0);
    let done = cli.run(&["operator", "generate-root", "-format=json", &key]).ok().json();
    assert_eq!(done["complete"], true);
    let encoded = done["encoded_token"].as_str().unwrap().to_owned();
    let token = cli
        .run(&["operator", "generate-root", &format!("-decode={encoded}"), &format!("-otp={otp}")])
        .ok()
        .stdout;
    let mut as_new_root = Cli::new(&bao);
    as_new_root.token = Some(token);
    assert_eq!(as_new_root.run(&["token", "lookup", "-field=policies"]).ok().stdout, "[root]");
    cli.run(&["operator", "generate-root", "-decode=abc"]).code(2);

    assert_eq!(cli.run(&["operator", "seal"]).ok().stdout, "Success! Vault is sealed.\n");
    let sealed = cli.run(&["status"]).code(2);
    assert!(sealed.stdout.contains("Sealed             true\n"), "{}", sealed.stdout);
    assert!(sealed.stdout.contains("Unseal Progress    0/1\n"), "{}", sealed.stdout);
    // The key comes from stdin when not given (a terminal would get a no-echo prompt).
    let unsealed = cli.run_stdin(&["operator", "unseal"], &format!("{key}\n")).ok();
    assert!(unsealed.stdout.contains("Sealed          false\n"), "{}", unsealed.stdout);
    assert!(!unsealed.stdout.contains(&key) && !unsealed.stderr.contains(&key), "the key is never echoed");
    assert_eq!(cli.run(&["status", "-format=json"]).ok().json()["sealed"], false);
    let reset = cli.run(&["operator", "unseal", "-reset"]).code(1);
    assert!(reset.stderr.contains("vault is unsealed"), "{}", reset.stderr);
    let ks = cli.run(&["operator", "key-status"]).ok().stdout;
    assert!(ks.starts_with("Key Term            1\nInstall Time        "), "{ks}");
}

#[test]
fn bao_errors_and_global_flags() {
    let Some(bao) = harness::require_bao_dev("bao_errors_and_global_flags") else { return };
    let mut cli = Cli::new(&bao);
    cli.token = Some("wrong-token".into());
    let denied = cli.run(&["read", "secret/data/foo"]).code(1);
    assert_eq!(
        denied.stderr,
        format!(
            "Error reading secret/data/foo: Error making API request.\n\nURL: GET {}/v1/secret/data/foo\nCode: 403. Errors:\n\n* permission denied\n",
            bao.addr
        )
    );
    // -address overrides VAULT_ADDR; VAULT_FORMAT sets the default format.
    let port = harness::free_port();
    let root = Cli::new(&bao);
    let refused =
        root.run_full(&["status"], &[("VAULT_ADDR", &format!("http://127.0.0.1:{port}"))], None).code(1);
    assert!(
        refused.stderr.starts_with("Error checking seal status: GET \"http://127.0.0.1:"),
        "{}",
        refused.stderr
    );
    let j = root
        .run_full(
            &["status", &format!("-address={}", bao.addr)],
            &[("VAULT_ADDR", &format!("http://127.0.0.1:{port}")), ("VAULT_FORMAT", "json")],
            None,
        )
        .ok()
        .json();
    assert_eq!(j["initialized"], true);
    // Usage errors exit 2.
    root.run(&["write", "secret/data/x"]).code(2);
    root.run(&["read"]).code(2);
    root.run(&["no-such-command"]).code(2);
    root.run(&["status", "-format=yaml"]).code(2);
    root.run(&["kv", "get", "-field=nope", "secret/none"]).code(2);
    root.run(&["kv", "put", "secret/f", "a=1"]).ok();
    let nofield = root.run(&["kv", "get", "-field=nope", "secret/f"]).code(1);
    assert_eq!(nofield.stderr.trim(), "Field \"nope\" not present in secret");
}

#[test]
fn bao_tls_with_ca_file_and_skip_verify() {
    if !harness::bao_available() {
        assert!(std::env::var("COFFER_REQUIRE_BAO").map_or(true, |v| v != "1"), "bao required");
        eprintln!("bao_tls_with_ca_file_and_skip_verify: skipped, bao is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = harness::free_port();
    let child = Command::new("bao")
        .args(["server", "-dev", "-dev-tls", "-dev-root-token-id=root"])
        .arg(format!("-dev-tls-cert-dir={}", dir.path().display()))
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(child);
    let ca = dir.path().join("vault-ca.pem");
    let addr = format!("https://127.0.0.1:{port}");
    let run = |env: &[(&str, &str)], args: &[&str]| -> Run {
        let mut cmd = Command::new(harness::coffer_bin());
        cmd.args(args)
            .env("HOME", dir.path())
            .env("VAULT_ADDR", &addr)
            .env("VAULT_TOKEN", "root")
            .env_remove("VAULT_CACERT");
        let out = cmd.envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let ca_str = ca.to_string_lossy().into_owned();
    harness::wait_for("bao TLS dev server", harness::DEADLINE, || {
        (Path::new(&ca).exists() && run(&[("VAULT_CACERT", &ca_str)], &["status"]).code == 0).then_some(())
    });
    let unknown = run(&[], &["status"]).code(1);
    assert!(
        unknown.stderr.contains("UnknownIssuer") || unknown.stderr.contains("certificate"),
        "{}",
        unknown.stderr
    );
    assert_eq!(
        run(&[], &["read", &format!("-ca-cert={ca_str}"), "-field=type", "sys/mounts/secret"]).ok().stdout,
        "kv"
    );
    let skip = run(&[("VAULT_SKIP_VERIFY", "true")], &["read", "-field=type", "sys/mounts/secret"]).ok();
    assert_eq!(skip.stdout, "kv");
    assert!(skip.stderr.contains("TLS certificate verification is disabled"), "{}", skip.stderr);
    let bad_ca = run(&[("VAULT_CACERT", "/nonexistent/ca.pem")], &["status"]).code(1);
    assert!(bad_ca.stderr.contains("/nonexistent/ca.pem"), "{}", bad_ca.stderr);
}

/// `bao server -config` with in-memory storage: uninitialized and sealed.
fn bao_uninitialized(dir: &Path) -> Option<Server> {
    if !harness::bao_available() {
        assert!(std::env::var("COFFER_REQUIRE_BAO").map_or(true, |v| v != "1"), "bao required");
        return None;
    }
    let port = harness::free_port();
    let config = dir.join("bao.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\ndisable_mlock = true\n"
        ),
    )
    .unwrap();
    let child = Command::new("bao")
        .arg("server")
        .arg(format!("-config={}", config.display()))
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        addr: format!("http://127.0.0.1:{port}"),
        stdout: Default::default(),
        stderr: Default::default(),
        token: String::new(),
        ca_pem: None,
        dir: None,
    };
    let c = server.client();
    harness::wait_for("bao to answer", harness::DEADLINE, || {
        c.get(format!("{}/v1/sys/seal-status", server.addr)).send().ok().map(|_| ())
    });
    Some(server)
}

#[test]
fn bao_operator_init_unseal_and_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bao) = bao_uninitialized(dir.path()) else {
        eprintln!("bao_operator_init_unseal_and_rekey: skipped, bao is not installed");
        return;
    };
    let mut cli = Cli::without_token(&bao);
    assert_eq!(cli.run(&["operator", "init", "-status"]).code(2).stdout, "Vault is not initialized\n");
    assert!(cli.run(&["status"]).code(2).stdout.contains("Initialized        false\n"));

    let init =
        cli.run(&["operator", "init", "-key-shares=3", "-key-threshold=2", "-format=json"]).ok().json();
    let keys: Vec<String> =
        init["unseal_keys_b64"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(init["unseal_keys_hex"].as_array().unwrap().len(), 3);
    assert_eq!((init["unseal_shares"].clone(), init["unseal_threshold"].clone()), (3.into(), 2.into()));
    let root = init["root_token"].as_str().unwrap().to_owned();
    assert_eq!(cli.run(&["operator", "init", "-status"]).ok().stdout, "Vault is initialized\n");
    let again = cli.run(&["operator", "init"]).code(1);
    assert!(again.stderr.contains("already initialized"), "{}", again.stderr);

    // Two of three shares, in hex and base64; progress shows in between.
    let first = cli.run(&["operator", "unseal", &keys[0]]).ok().stdout;
    assert!(first.contains("Unseal Progress    1/2\n"), "{first}");
    cli.run(&["operator", "unseal", "-reset"]).ok();
    assert!(cli.run(&["status"]).code(2).stdout.contains("Unseal Progress    0/2\n"));
    cli.run(&["operator", "unseal", &keys[1]]).ok();
    let hex = init["unseal_keys_hex"][2].as_str().unwrap().to_owned();
    assert!(cli.run(&["operator", "unseal", &hex]).ok().stdout.contains("Sealed          false\n"));
    cli.run(&["status"]).ok();

    // Rekey to a single share (OpenBao serves it at sys/rotate/root/*), then unseal with it.
    cli.token = Some(root);
    let st = cli.run(&["operator", "rekey", "-init", "-key-shares=1", "-key-threshold=1"]).ok().stdout;
    assert!(st.contains("Rekey Progress           0/2\n"), "{st}");
    cli.run(&["operator", "rekey", &keys[0]]).ok();
    let done = cli.run(&["operator", "rekey", &keys[1]]).ok().stdout;
    let new_key = done.lines().find_map(|l| l.strip_prefix("Key 1: ")).expect("new key").to_owned();
    assert!(done.contains("key threshold of 1."), "{done}");
    cli.run(&["operator", "seal"]).ok();
    let old = cli.run(&["operator", "unseal", &keys[0]]).code(1);
    assert!(old.stderr.contains("Error unsealing"), "{}", old.stderr);
    cli.run(&["operator", "unseal", &new_key]).ok();
    cli.run(&["status"]).ok();
}

// ---------------------------------------------------------------------------------------------
// Against coffer
// ---------------------------------------------------------------------------------------------

#[test]
fn coffer_status_rotate_and_seal() {
    let s = Server::dev();
    let cli = Cli::new(&s);
    let st = cli.run(&["status"]).ok().stdout;
    assert!(st.starts_with("Key             Value\n---             -----\nSeal Type       shamir\n"), "{st}");
    assert!(st.contains("Sealed          false\n"), "{st}");
    let j = cli.run(&["status", "-format=json"]).ok().json();
    assert_eq!(
        (j["sealed"].clone(), j["ha_enabled"].clone(), j["t"].clone()),
        (Value::Bool(false), Value::Bool(false), 1.into())
    );

    let ks = cli.run(&["operator", "key-status"]).ok().stdout;
    assert!(ks.starts_with("Key Term            1\n"), "{ks}");
    let rot = cli.run(&["operator", "rotate"]).ok().stdout;
    assert!(rot.starts_with("Success! Rotated key\n\nKey Term            2\n"), "{rot}");
    assert_eq!(cli.run(&["operator", "key-status", "-format=json"]).ok().json()["term"], 2);

    let anon = Cli::without_token(&s);
    let denied = anon.run(&["operator", "seal"]).code(1);
    assert!(denied.stderr.starts_with("Error sealing: Error making API request."), "{}", denied.stderr);
    assert!(denied.stderr.contains("Code: 403"), "{}", denied.stderr);

    assert_eq!(cli.run(&["operator", "seal"]).ok().stdout, "Success! Vault is sealed.\n");
    let sealed = cli.run(&["status"]).code(2);
    assert!(sealed.stdout.contains("Unseal Progress    0/1\n"), "{}", sealed.stdout);
    assert_eq!(cli.run(&["status", "-format=json"]).code(2).json()["sealed"], true);
    let blocked = cli.run(&["read", "sys/mounts"]).code(1);
    assert!(blocked.stderr.contains("Code: 503. Errors:\n\n* Vault is sealed"), "{}", blocked.stderr);
    assert_eq!(cli.run(&["operator", "init", "-status"]).ok().stdout, "Vault is initialized\n");
}

#[test]
fn coffer_generic_commands_on_kv_v1() {
    let s = Server::dev();
    let cli = Cli::new(&s);
    assert_eq!(
        cli.run(&["secrets", "enable", "-path=kv1", "kv"]).ok().stdout,
        "Success! Enabled the kv secrets engine at: kv1/\n"
    );
    assert_eq!(
        cli.run(&["write", "kv1/app", "user=ada", "n=3"]).ok().stdout,
        "Success! Data written to: kv1/app\n"
    );
    assert_eq!(cli.run(&["read", "-field=user", "kv1/app"]).ok().stdout, "ada");
    let table = cli.run(&["read", "kv1/app"]).ok().stdout;
    assert_eq!(table, "Key                 Value\n---                 -----\nrefresh_interval    768h\nn                   3\nuser                ada\n");
    let j = cli.run(&["read", "-format=json", "kv1/app"]).ok().json();
    assert_eq!(j["data"], serde_json::json!({"user": "ada", "n": "3"}));
    assert!(j.get("request_id").is_some() && j.get("lease_duration").is_some());

    // JSON on stdin keeps types.
    cli.run_stdin(&["write", "kv1/typed", "-"], r#"{"port": 8080, "tls": true}"#).ok();
    assert_eq!(
        cli.run(&["read", "-format=json", "kv1/typed"]).ok().json()["data"],
        serde_json::json!({"port": 8080, "tls": true})
    );
    assert_eq!(cli.run(&["list", "kv1"]).ok().stdout, "Keys\n----\napp\ntyped\n");
    assert_eq!(cli.run(&["list", "-format=json", "kv1/"]).ok().json(), serde_json::json!(["app", "typed"]));

    // kv commands detect v1 through the preflight.
    let kv = cli.run(&["kv", "get", "kv1/app"]).ok().stdout;
    assert_eq!(kv, "==== Data ====\nKey     Value\n---     -----\nn       3\nuser    ada\n");
    assert_eq!(
        cli.run(&["kv", "put", "-mount=kv1", "b", "y=2"]).ok().stdout,
        "Success! Data written to: kv1/b\n"
    );
    assert_eq!(cli.run(&["kv", "get", "-field=y", "kv1/b"]).ok().stdout, "2");
    cli.run(&["kv", "patch", "kv1/b", "z=1"]).code(2);
    assert_eq!(cli.run(&["kv", "list", "kv1"]).ok().stdout, "Keys\n----\napp\nb\ntyped\n");

    assert_eq!(
        cli.run(&["delete", "kv1/app"]).ok().stdout,
        "Success! Data deleted (if it existed) at: kv1/app\n"
    );
    assert_eq!(cli.run(&["read", "kv1/app"]).code(2).stderr.trim(), "No value found at kv1/app");
    cli.run(&["list", "kv1/nothing"]).code(2);

    // Mounts.
    let mounts = cli.run(&["secrets", "list", "-format=json"]).ok().json();
    assert_eq!(mounts["kv1/"]["type"], "kv");
    assert!(cli.run(&["secrets", "list"]).ok().stdout.contains("\nkv1/          kv  "));
    cli.run(&["secrets", "tune", "-description=renamed", "kv1"]).ok();
    assert_eq!(cli.run(&["secrets", "list", "-format=json"]).ok().json()["kv1/"]["description"], "renamed");
    assert_eq!(
        cli.run(&["secrets", "disable", "kv1"]).ok().stdout,
        "Success! Disabled the secrets engine (if it existed) at: kv1/\n"
    );
    assert!(cli.run(&["secrets", "list", "-format=json"]).ok().json().get("kv1/").is_none());
    let auths = cli.run(&["auth", "list"]).ok().stdout;
    assert!(auths.contains("\ntoken/    token    auth_token_"), "{auths}");
    assert_eq!(cli.run(&["auth", "list", "-format=json"]).ok().json()["token/"]["type"], "token");

    // Errors carry the server's message and exit 1.
    let bad = cli.run(&["write", "sys/mounts/x", "type=nope"]).code(1);
    assert!(
        bad.stderr.starts_with("Error writing data to sys/mounts/x: Error making API request.\n\nURL: PUT "),
        "{}",
        bad.stderr
    );
    cli.run(&["write", "kv1/x"]).code(2);
}

#[test]
fn coffer_login_stores_the_token_helper_file() {
    let s = Server::dev();
    let cli = Cli::without_token(&s);
    // Without a token the server refuses.
    let denied = cli.run(&["read", "sys/mounts"]).code(1);
    assert!(denied.stderr.contains("Code: 403"), "{}", denied.stderr);
    // `login TOKEN` checks the token with lookup-self and stores it in ~/.vault-token.
    let login = cli.run(&["login", &s.token]).ok();
    assert!(login.stdout.starts_with("Success! You are now authenticated."), "{}", login.stdout);
    assert!(login.stdout.contains("token_policies       [\"root\"]"), "{}", login.stdout);
    assert_eq!(std::fs::read_to_string(cli.token_file()).unwrap(), s.token);
    assert!(cli.run(&["read", "-format=json", "sys/mounts"]).ok().json()["data"].get("sys/").is_some());
    // A wrong token is refused and does not replace the stored one.
    let bad = cli.run(&["login", "not-the-token"]).code(1);
    assert!(bad.stderr.starts_with("Error authenticating: Error making API request."), "{}", bad.stderr);
    assert_eq!(std::fs::read_to_string(cli.token_file()).unwrap(), s.token);
    // -token-only prints the token and stores nothing.
    let other = Cli::without_token(&s);
    assert_eq!(other.run(&["login", "-token-only", &s.token]).ok().stdout, s.token);
    assert!(!other.token_file().exists());
}

#[test]
fn policy_fmt_validates_and_rewrites_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("p.hcl");
    std::fs::write(&good, "path \"secret/*\"   {\n capabilities=[\"read\",\"list\"]\n}\n").unwrap();
    let out = std::process::Command::new(crate::harness::coffer_bin())
        .args(["policy", "fmt"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&good).unwrap(),
        "path \"secret/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n"
    );
    let bad = dir.path().join("bad.hcl");
    let text = "path \"x\" { capabilities = [\"bogus\"] }";
    std::fs::write(&bad, text).unwrap();
    let out = std::process::Command::new(crate::harness::coffer_bin())
        .args(["policy", "fmt"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid capability \"bogus\""));
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), text, "an invalid policy is left untouched");
}
