//! The real binary started from configuration files: native TOML with TLS and file storage,
//! Vault-style HCL with a static seal, Vault's JSON form, and configurations it must refuse.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::{self, config_command, make_tls, run_to_exit, Server};

const KEY_HEX: &str = "5f1c0a7e3b9d2c4816e0a7b5c3d9f1e2a4b6c8d0e2f41638a5c7e9f0b2d4f6a8";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `sys/init` with one share (Shamir) or one recovery share (static seal).
fn init(s: &Server, static_seal: bool) -> Value {
    let body = if static_seal {
        json!({"recovery_shares": 1, "recovery_threshold": 1})
    } else {
        json!({"secret_shares": 1, "secret_threshold": 1})
    };
    let (st, v) = s.call_as("", "PUT", "sys/init", Some(body));
    assert_eq!(st, 200, "{v}");
    v
}

fn unseal(s: &Server, key: &str) {
    let (st, v) = s.call_as("", "PUT", "sys/unseal", Some(json!({"key": key})));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["sealed"], false, "{v}");
}

fn seal_status(s: &Server) -> Value {
    let (st, v) = s.call_as("", "GET", "sys/seal-status", None);
    assert_eq!(st, 200, "{v}");
    v
}

#[test]
fn toml_config_with_tls_and_file_storage_persists_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls(dir.path());
    let config = dir.path().join("coffer.toml");
    // Relative paths are relative to the configuration file.
    write(
        &config,
        r#"
        cluster_name = "it-cluster"
        default_lease_ttl = "1h"
        max_lease_ttl = "2h"

        [storage]
        type = "file"
        path = "data"

        [[listener]]
        type = "tcp"
        address = "127.0.0.1:0"
        tls_cert_file = "server.pem"
        tls_key_file = "server-key.pem"
        "#,
    );

    let mut s = Server::with_config(&config, Some(tls.ca_pem.clone()), &[]);
    assert!(s.addr.starts_with("https://127.0.0.1:"), "{}", s.addr);
    let st = seal_status(&s);
    assert_eq!(st["initialized"], false);
    assert_eq!(st["sealed"], true);
    assert_eq!(st["type"], "shamir");
    assert_eq!(st["storage_type"], "file");

    let v = init(&s, false);
    let key = v["keys_base64"][0].as_str().unwrap().to_owned();
    s.token = v["root_token"].as_str().unwrap().to_owned();
    unseal(&s, &key);
    assert_eq!(seal_status(&s)["cluster_name"], "it-cluster");

    assert_eq!(s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"}))).0, 204);
    // The system lease TTLs from the file are what an untuned mount inherits.
    let (st, v) = s.call("GET", "sys/mounts/kv1/tune", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["data"]["default_lease_ttl"].as_u64(), v["data"]["max_lease_ttl"].as_u64()),
        (Some(3600), Some(7200)),
        "{v}"
    );
    assert_eq!(s.call("PUT", "kv1/app", Some(json!({"user": "ada"}))).0, 204);
    assert!(s.terminate().success());

    // Same data directory, new process: sealed, initialised, the secret is still there.
    let mut s2 = Server::with_config(&config, Some(tls.ca_pem.clone()), &[]);
    s2.token = s.token.clone();
    let st = seal_status(&s2);
    assert_eq!(st["initialized"], true);
    assert_eq!(st["sealed"], true);
    unseal(&s2, &key);
    let (st, v) = s2.call("GET", "kv1/app", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"], json!({"user": "ada"}));
    assert!(s2.terminate().success());
}

#[test]
fn hcl_config_with_static_seal_unseals_itself() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vault.hcl");
    write(
        &config,
        &format!(
            r#"
            ui            = true
            disable_mlock = true
            api_addr      = "http://127.0.0.1:8200"

            storage "file" {{
              path = "{data}"
            }}

            listener "tcp" {{
              address     = "127.0.0.1:0"
              tls_disable = 1
            }}

            seal "static" {{
              current_key_id = "it-1"
              current_key    = "env://COFFER_IT_UNSEAL_KEY"
            }}
            "#,
            data = dir.path().join("data").display()
        ),
    );
    let env = [("COFFER_IT_UNSEAL_KEY", KEY_HEX)];

    let mut s = Server::with_config(&config, None, &env);
    let log = s.stderr.text();
    assert!(log.contains("configuration: ui: ignored (coffer has no web UI)"), "{log}");
    assert!(!log.contains(KEY_HEX), "the key must never be logged");
    let st = seal_status(&s);
    assert_eq!(st["type"], "static");
    assert_eq!(st["recovery_seal"], true);
    assert_eq!(st["initialized"], false);

    let v = init(&s, true);
    assert!(v["recovery_keys_base64"].as_array().is_some_and(|a| a.len() == 1), "{v}");
    s.token = v["root_token"].as_str().unwrap().to_owned();
    assert_eq!(seal_status(&s)["sealed"], false);
    assert_eq!(s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(s.call("PUT", "kv1/db", Some(json!({"password": "p4ss"}))).0, 204);
    assert!(s.terminate().success());

    // Restart: unsealed without anyone typing a key.
    let mut s2 = Server::with_config(&config, None, &env);
    s2.token = s.token.clone();
    harness::wait_for("auto-unseal", harness::DEADLINE, || {
        (seal_status(&s2)["sealed"] == false).then_some(())
    });
    let (st, v) = s2.call("GET", "kv1/db", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["password"], "p4ss");
    assert!(s2.terminate().success());

    // The wrong key cannot unseal the existing data: the server refuses to run.
    let wrong = "00".repeat(32);
    let (status, stderr) = run_to_exit(config_command(&config, &[("COFFER_IT_UNSEAL_KEY", &wrong)]));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("auto-unseal failed"), "{stderr}");
    assert!(!stderr.contains(&wrong) && !stderr.contains(KEY_HEX), "{stderr}");
}

#[test]
fn json_config_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vault.json");
    write(
        &config,
        &json!({
            "storage": {"inmem": {}},
            "listener": [{"tcp": {"address": "127.0.0.1:0", "tls_disable": "true"}}],
            "disable_mlock": true,
            "pid_file": "/run/vault.pid",
            "log_level": "debug"
        })
        .to_string(),
    );
    let mut s = Server::with_config(&config, None, &[]);
    let st = seal_status(&s);
    assert_eq!(st["storage_type"], "inmem");
    assert_eq!(st["type"], "shamir");
    let log = s.stderr.text();
    assert!(log.contains("configuration: pid_file: ignored"), "{log}");
    assert!(log.contains("TLS is disabled on this listener"), "{log}");
    let v = init(&s, false);
    unseal(&s, v["keys_base64"][0].as_str().unwrap());
    assert!(s.terminate().success());
}

#[test]
fn bad_configs_exit_nonzero_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "typo.toml",
            "[storage]\ntype = \"inmem\"\n[[listener]]\nadress = \"127.0.0.1:0\"\ntls_disable = true\n".into(),
            "listener.tcp.adress: unknown key",
        ),
        (
            "no-tls.hcl",
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_cert_file = \"c.pem\"\n}\n".into(),
            "listener.tcp.tls_key_file: required when tls_cert_file is set",
        ),
        (
            "ttl.json",
            json!({"storage": {"inmem": {}}, "listener": {"tcp": {"address": "127.0.0.1:0", "tls_disable": true}},
                   "default_lease_ttl": "48h", "max_lease_ttl": "24h"})
            .to_string(),
            "default_lease_ttl (48h0m0s) must not exceed max_lease_ttl (24h0m0s)",
        ),
        (
            "raft.hcl",
            format!(
                "disable_mlock = true\nstorage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n1\"\n  election_timeout = \"100ms\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n  tls_disable = 1\n}}\n",
                dir.path().join("raft").display()
            ),
            "storage.raft.election_timeout: must be at least three heartbeat intervals",
        ),
        (
            "seal.hcl",
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = 1\n}\nseal \"static\" {\n  current_key_id = \"k\"\n  current_key = \"env:COFFER_IT_MISSING_KEY\"\n}\n".into(),
            "seal.static.current_key: environment variable COFFER_IT_MISSING_KEY is not set or empty",
        ),
        ("coffer.yaml", "storage: inmem\n".into(), "unsupported configuration file extension"),
    ];
    for (name, text, want) in cases {
        let path = dir.path().join(name);
        write(&path, &text);
        let mut cmd = config_command(&path, &[]);
        cmd.env_remove("COFFER_IT_MISSING_KEY");
        let (status, stderr) = run_to_exit(cmd);
        assert_eq!(status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: expected {want:?} in:\n{stderr}");
        assert!(stderr.contains(&format!("invalid configuration in {}", path.display())), "{name}: {stderr}");
    }
    assert!(!dir.path().join("raft").exists(), "refused raft storage must not create its directory");
}

#[test]
fn loose_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("unseal.key");
    write(&key, KEY_HEX);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("coffer.toml");
    write(
        &config,
        "[storage]\ntype = \"inmem\"\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n\
         [seal]\ntype = \"static\"\ncurrent_key_id = \"k\"\ncurrent_key = \"file:unseal.key\"\n",
    );
    let (status, stderr) = run_to_exit(config_command(&config, &[]));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("seal.static.current_key: "), "{stderr}");
    assert!(stderr.contains("is accessible by group or others (mode 0644)"), "{stderr}");
    assert!(!stderr.contains(KEY_HEX), "{stderr}");

    // Fixed permissions: the same configuration starts.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut s = Server::with_config(&config, None, &[("COFFER_LOG_LEVEL", "info")]);
    assert_eq!(seal_status(&s)["type"], "static");
    assert!(s.terminate().success());
}

/// Security promise S8 / CVE-2021-38553: the data directory is 0700 and its files 0600 even
/// when the server is started with umask 000.
#[test]
fn data_dir_is_private_even_under_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let config = dir.path().join("coffer.toml");
    write(
        &config,
        &format!(
            "disable_mlock = true\n[storage]\ntype = \"file\"\npath = \"{}\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n",
            data.display()
        ),
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(harness::coffer_bin())
        .args(["server", "--config"])
        .arg(&config);
    let mut s = Server::start(cmd, None);
    let v = init(&s, false);
    unseal(&s, v["keys_base64"][0].as_str().unwrap());
    s.token = v["root_token"].as_str().unwrap().to_owned();
    assert_eq!(s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(s.call("PUT", "kv1/x", Some(json!({"a": "b"}))).0, 204);
    assert!(s.terminate().success());

    assert_eq!(mode(&data), 0o700, "data directory");
    let mut files = 0;
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                stack.push(p);
            } else {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                files += 1;
            }
        }
    }
    assert!(files > 0, "the store wrote no files");
}
