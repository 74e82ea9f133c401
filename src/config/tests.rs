//! Validation tests: every parse path, every error message, and the shipped examples.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const HEX_KEY2: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

fn env_with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |n: &str| map.get(n).map(OsString::from)
}

fn parse_in(text: &str, format: Format, base: &Path, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env_with(vars);
    parse_with_env(text, format, base, &env)
}

fn toml(text: &str) -> Result<Config, ConfigError> {
    parse_in(text, Format::Toml, Path::new("/base"), &[("KEY", HEX_KEY), ("KEY2", HEX_KEY2)])
}

fn hcl(text: &str) -> Result<Config, ConfigError> {
    parse_in(text, Format::Hcl, Path::new("/base"), &[("KEY", HEX_KEY), ("KEY2", HEX_KEY2)])
}

fn json(text: &str) -> Result<Config, ConfigError> {
    parse_in(text, Format::Json, Path::new("/base"), &[("KEY", HEX_KEY)])
}

fn toml_err(text: &str) -> String {
    toml(text).unwrap_err().to_string()
}

fn hcl_err(text: &str) -> String {
    hcl(text).unwrap_err().to_string()
}

/// A minimal valid TOML document plus `extra` top-level settings and `listener` settings.
fn toml_with(top: &str, listener: &str) -> String {
    format!(
        "{top}\n[storage]\ntype = \"inmem\"\n\n[[listener]]\naddress = \"127.0.0.1:8200\"\ntls_disable = true\n{listener}\n"
    )
}

#[test]
fn minimal_toml() {
    let c = toml(&toml_with("", "")).unwrap();
    assert!(matches!(c.storage, StorageConfig::Memory));
    assert_eq!(c.listeners.len(), 1);
    let l = &c.listeners[0];
    assert_eq!(l.address, "127.0.0.1:8200".parse().unwrap());
    assert!(l.tls.is_none());
    assert_eq!(l.max_request_size, limits::DEFAULT_MAX_REQUEST_SIZE);
    assert!(l.disable_unauthed_generate_root_endpoints);
    assert!(l.disable_unauthed_rekey_endpoints);
    assert!(l.cluster_address.is_none());
    assert!(matches!(c.seal, SealConfig::Shamir));
    assert_eq!(c.default_lease_ttl, crate::core::DEFAULT_MAX_TTL);
    assert_eq!(c.max_lease_ttl, crate::core::DEFAULT_MAX_TTL);
    assert!(!c.disable_mlock);
    assert!(!c.unauthenticated_generate_root());
    assert!(!c.unauthenticated_rekey());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn full_toml() {
    let c = toml(
        r#"
        api_addr = "https://coffer.example.com:8200/"
        cluster_addr = "https://coffer.example.com:8201"
        cluster_name = "prod"
        disable_mlock = true
        default_lease_ttl = "1h"
        max_lease_ttl = "24h"
        log_level = "WARNING"

        [storage]
        type = "file"
        path = "data"

        [[listener]]
        type = "tcp"
        address = "0.0.0.0:8200"
        cluster_address = "0.0.0.0:8201"
        tls_cert_file = "tls/cert.pem"
        tls_key_file = "/etc/coffer/key.pem"
        max_request_size = 1048576
        disable_unauthed_generate_root_endpoints = false
        disable_unauthed_rekey_endpoints = false

        [seal]
        type = "static"
        current_key_id = "k1"
        current_key = "env:KEY"
        "#,
    )
    .unwrap();
    assert_eq!(c.api_addr.as_deref(), Some("https://coffer.example.com:8200"));
    assert_eq!(c.cluster_addr.as_deref(), Some("https://coffer.example.com:8201"));
    assert_eq!(c.cluster_name.as_deref(), Some("prod"));
    assert!(c.disable_mlock);
    assert_eq!(c.default_lease_ttl, 3600);
    assert_eq!(c.max_lease_ttl, 86400);
    assert_eq!(c.log_level.as_deref(), Some("warn"));
    let StorageConfig::File { path } = &c.storage else { panic!("{:?}", c.storage) };
    assert_eq!(path, Path::new("/base/data"));
    let l = &c.listeners[0];
    assert_eq!(l.address, "0.0.0.0:8200".parse().unwrap());
    assert_eq!(l.cluster_address, Some("0.0.0.0:8201".parse().unwrap()));
    let tls = l.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file, Path::new("/base/tls/cert.pem"));
    assert_eq!(tls.key_file, Path::new("/etc/coffer/key.pem"));
    assert_eq!(l.max_request_size, 1048576);
    assert!(c.unauthenticated_generate_root());
    assert!(c.unauthenticated_rekey());
    let SealConfig::Static(s) = &c.seal else { panic!() };
    assert_eq!(s.current_key_id, "k1");
    assert!(s.current_key.ct_eq(&hex::decode(HEX_KEY).unwrap()));
    assert!(s.previous.is_none());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // The key never shows in Debug.
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("0, 1, 2, 3"), "{dbg}");
    assert!(dbg.contains("[redacted]"));
}

#[test]
fn vault_hcl() {
    let c = hcl(r#"
        ui            = true
        api_addr      = "https://10.0.0.1:8200"
        cluster_addr  = "https://10.0.0.1:8201"
        disable_mlock = "true"
        default_lease_ttl = "768h"
        max_lease_ttl = 2764800

        backend "file" {
          path = "/var/lib/vault"
        }

        listener "tcp" {
          address       = "127.0.0.1:8200"
          tls_cert_file = "/etc/vault/cert.pem"
          tls_key_file  = "/etc/vault/key.pem"
          tls_min_version = "tls12"
        }
        listener "tcp" {
          address     = "10.0.0.1:8300"
          tls_disable = 1
          max_request_size = "1024"
        }

        seal "static" {
          current_key_id  = "2025-06"
          current_key     = "env://KEY"
          previous_key_id = "2025-03"
          previous_key    = "env://KEY2"
        }

        telemetry {
          prometheus_retention_time = "30s"
        }
        "#)
    .unwrap();
    let StorageConfig::File { path } = &c.storage else { panic!() };
    assert_eq!(path, Path::new("/var/lib/vault"));
    assert_eq!(c.listeners.len(), 2);
    assert!(c.listeners[0].tls.is_some());
    assert!(c.listeners[1].tls.is_none());
    assert_eq!(c.listeners[1].max_request_size, 1024);
    assert!(c.disable_mlock);
    assert_eq!(c.default_lease_ttl, 768 * 3600);
    assert_eq!(c.max_lease_ttl, 2764800);
    let SealConfig::Static(s) = &c.seal else { panic!() };
    assert_eq!(s.current_key_id, "2025-06");
    let prev = s.previous.as_ref().unwrap();
    assert_eq!(prev.key_id, "2025-03");
    assert!(prev.key.ct_eq(&hex::decode(HEX_KEY2).unwrap()));
    assert_eq!(
        c.warnings,
        vec![
            "telemetry: ignored (coffer serves its metrics at sys/metrics; metric sinks and their settings are not implemented)",
            "ui: ignored (coffer has no web UI)",
            "seal.static.previous_key: seal key rotation is not implemented yet; only current_key unseals",
        ]
    );
}

#[test]
fn vault_json() {
    let c = json(
        r#"{
          "storage": {"raft": {"path": "/var/lib/coffer", "node_id": "node1",
             "retry_join": [{"leader_api_addr": "https://10.0.0.2:8200", "leader_ca_cert_file": "ca.pem"},
                            {"leader_api_addr": "https://10.0.0.3:8200"}]}},
          "listener": [{"tcp": {"address": "127.0.0.1:8200", "tls_disable": "true"}}],
          "seal": {"static": {"current_key_id": "k", "current_key": "env:KEY"}},
          "api_addr": "http://127.0.0.1:8200",
          "cluster_addr": "https://127.0.0.1:8201",
          "pid_file": "/run/vault.pid"
        }"#,
    )
    .unwrap();
    let StorageConfig::Raft { path, node_id, retry_join, tuning } = &c.storage else { panic!() };
    assert_eq!(tuning, &crate::config::RaftTuning::default());
    assert_eq!(path, Path::new("/var/lib/coffer"));
    assert_eq!(node_id.as_deref(), Some("node1"));
    assert_eq!(retry_join.len(), 2);
    assert_eq!(retry_join[0].leader_api_addr, "https://10.0.0.2:8200");
    assert_eq!(retry_join[0].leader_ca_cert_file.as_deref(), Some(Path::new("/base/ca.pem")));
    assert_eq!(c.storage.type_name(), "raft");
    assert!(matches!(c.seal, SealConfig::Static(_)));
    assert_eq!(c.warnings, vec!["pid_file: ignored (use the service manager to track the process)"]);
}

#[test]
fn hcl_raft_with_single_retry_join_block() {
    let c = hcl(r#"
        storage "raft" {
          path    = "/d"
          node_id = 3
          retry_join {
            leader_api_addr = "https://n1:8200"
            leader_client_cert_file = "/c.pem"
            leader_client_key_file = "/k.pem"
            leader_tls_servername = "n1"
          }
          performance_multiplier = 1
        }
        listener "tcp" {
          address = "127.0.0.1:8200"
          tls_disable = true
        }
        "#)
    .unwrap();
    let StorageConfig::Raft { node_id, retry_join, .. } = &c.storage else { panic!() };
    assert_eq!(node_id.as_deref(), Some("3"));
    assert_eq!(retry_join.len(), 1);
    assert_eq!(retry_join[0].leader_tls_servername.as_deref(), Some("n1"));
    assert_eq!(c.warnings, vec!["storage.raft.performance_multiplier: ignored (not configurable yet)"]);
}

#[test]
fn raft_tuning_in_three_syntaxes() {
    let want = crate::config::RaftTuning {
        heartbeat_interval: std::time::Duration::from_millis(100),
        election_timeout: std::time::Duration::from_millis(750),
        snapshot_threshold: 500,
        trailing_logs: 200,
        request_forwarding: false,
        stale_reads: true,
    };
    let h = hcl(r#"
        storage "raft" {
          path = "/d"
          heartbeat_interval = "100ms"
          election_timeout = "750ms"
          snapshot_threshold = 500
          trailing_logs = 200
          request_forwarding = false
          read_consistency = "stale"
        }
        listener "tcp" {
          address = "127.0.0.1:8200"
          tls_disable = true
        }
        "#)
    .unwrap();
    let j = json(
        r#"{"storage": {"raft": {"path": "/d", "heartbeat_interval": "100ms", "election_timeout": "750ms",
            "snapshot_threshold": 500, "trailing_logs": 200, "request_forwarding": false,
            "read_consistency": "stale"}},
            "listener": [{"tcp": {"address": "127.0.0.1:8200", "tls_disable": true}}]}"#,
    )
    .unwrap();
    for c in [h, j] {
        let StorageConfig::Raft { tuning, .. } = &c.storage else { panic!() };
        assert_eq!(tuning, &want);
    }
    let bad = |extra: &str| {
        hcl_err(&format!(
            "storage \"raft\" {{\n path = \"/d\"\n {extra}\n}}\nlistener \"tcp\" {{\n address = \"127.0.0.1:1\"\n tls_disable = true\n}}\n"
        ))
    };
    assert!(
        bad("election_timeout = \"100ms\"")
            .starts_with("storage.raft.election_timeout: must be at least three heartbeat"),
        "{}",
        bad("election_timeout = \"100ms\"")
    );
    assert!(bad("read_consistency = \"eventual\"").starts_with("storage.raft.read_consistency:"));
    assert!(
        bad("heartbeat_interval = \"fast\"").starts_with("storage.raft.heartbeat_interval: invalid duration")
    );
    assert!(bad("snapshot_threshold = 0")
        .starts_with("storage.raft.snapshot_threshold: must be a positive number"));
}

#[test]
fn unknown_keys_are_named() {
    assert_eq!(
        hcl_err(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n adress = \"127.0.0.1:1\"\n tls_disable = true\n}\n"
        ),
        "listener.tcp.adress: unknown key (did you mean `address`?)"
    );
    assert_eq!(toml_err(&toml_with("", "colour = \"blue\"")), "listener.tcp.colour: unknown key");
    assert_eq!(
        toml_err(&toml_with("disable_mlok = true", "")),
        "disable_mlok: unknown key (did you mean `disable_mlock`?)"
    );
    assert_eq!(
        toml_err("[storage]\ntype = \"file\"\npath = \"/d\"\nsize = 1\n[[listener]]\ntls_disable = true\n"),
        "storage.file.size: unknown key"
    );
    assert_eq!(
        toml_err(&toml_with(
            "[seal]\ntype = \"static\"\ncurrent_key_id = \"a\"\ncurrent_key = \"env:KEY\"\nkey = 1\n",
            ""
        )),
        "seal.static.key: unknown key"
    );
}

#[test]
fn unsupported_block_types_are_named() {
    assert_eq!(
        hcl_err("storage \"consul\" { address = \"x\" }\nlistener \"tcp\" { tls_disable = 1 }\n"),
        "storage: unsupported type \"consul\" (supported: file, inmem, raft)"
    );
    assert_eq!(
        hcl_err("storage \"inmem\" {}\nlistener \"unix\" { address = \"/run/x.sock\" }\n"),
        "listener: unsupported type \"unix\" (supported: tcp)"
    );
    assert_eq!(
        hcl_err("storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\nseal \"awskms\" { region = \"x\" }\n"),
        "seal: unsupported type \"awskms\" (supported: static)"
    );
}

#[test]
fn bad_values_are_named() {
    assert_eq!(
        toml_err(&toml_with("", "max_request_size = \"big\"")),
        "listener.tcp.max_request_size: expected an integer, found \"big\""
    );
    assert_eq!(
        toml_err(&toml_with("", "max_request_size = -1")),
        "listener.tcp.max_request_size: must be positive (coffer always limits request bodies; 0 means the default of 32 MiB)"
    );
    assert_eq!(
        toml(&toml_with("", "max_request_size = 0")).unwrap().listeners[0].max_request_size,
        limits::DEFAULT_MAX_REQUEST_SIZE
    );
    assert_eq!(
        toml_err(&toml_with("default_lease_ttl = \"forever\"", "")),
        "default_lease_ttl: time: invalid duration \"forever\""
    );
    assert_eq!(
        toml_err(&toml_with("disable_mlock = \"nope\"", "")),
        "disable_mlock: expected a boolean (true or false), found \"nope\""
    );
    assert_eq!(
        toml_err(&toml_with("log_level = \"loud\"", "")),
        "log_level: unknown level \"loud\" (expected trace, debug, info, warn or error)"
    );
    assert_eq!(toml_err(&toml_with("cluster_name = \" \"", "")), "cluster_name: must not be empty");
    assert_eq!(
        toml_err(&toml_with("api_addr = 8200", "")),
        "api_addr: \"8200\" must start with http:// or https://"
    );
    assert_eq!(
        toml_err(&toml_with("cluster_name = [1]", "")),
        "cluster_name: expected a string, found a list"
    );
    let bad_addr = "[storage]\ntype = \"inmem\"\n[[listener]]\naddress = \"nowhere\"\ntls_disable = true\n";
    assert_eq!(
        toml_err(bad_addr),
        "listener.tcp.address: \"nowhere\" is not an address (expected host:port, e.g. 127.0.0.1:8200)"
    );
    let bad_port =
        "[storage]\ntype = \"inmem\"\n[[listener]]\naddress = \"127.0.0.1:99999\"\ntls_disable = true\n";
    assert!(toml_err(bad_port).starts_with("listener.tcp.address: "));
    assert_eq!(
        toml_err(&toml_with("", "cluster_address = \"x\"")),
        "listener.tcp.cluster_address: \"x\" is not an address (expected host:port, e.g. 127.0.0.1:8200)"
    );
}

#[test]
fn listener_addresses() {
    let c = toml("[storage]\ntype = \"inmem\"\n[[listener]]\ntls_disable = true\n").unwrap();
    assert_eq!(c.listeners[0].address, DEFAULT_ADDRESS.parse().unwrap());
    let c = toml("[storage]\ntype = \"inmem\"\n[[listener]]\naddress = \"[::1]:8200\"\ntls_disable = true\n")
        .unwrap();
    assert_eq!(c.listeners[0].address, "[::1]:8200".parse().unwrap());
    let c =
        toml("[storage]\ntype = \"inmem\"\n[[listener]]\naddress = \"localhost:8200\"\ntls_disable = true\n")
            .unwrap();
    assert!(c.listeners[0].address.ip().is_loopback());
    let two =
        "[storage]\ntype = \"inmem\"\n[[listener]]\ntls_disable = true\n[[listener]]\ntls_disable = true\n";
    assert_eq!(toml_err(two), "listener[1].tcp.address: 127.0.0.1:8200 is already used by listener[0]");
    let two_ephemeral =
        "[storage]\ntype = \"inmem\"\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n\
                         [[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n";
    assert_eq!(toml(two_ephemeral).unwrap().listeners.len(), 2);
}

#[test]
fn tls_settings() {
    let base = "[storage]\ntype = \"inmem\"\n[[listener]]\naddress = \"127.0.0.1:8200\"\n";
    assert_eq!(
        toml_err(base),
        "listener.tcp: tls_cert_file and tls_key_file are required (TLS is on by default); set tls_disable = true to serve plain HTTP"
    );
    assert_eq!(
        toml_err(&format!("{base}tls_cert_file = \"c.pem\"\n")),
        "listener.tcp.tls_key_file: required when tls_cert_file is set"
    );
    assert_eq!(
        toml_err(&format!("{base}tls_key_file = \"k.pem\"\n")),
        "listener.tcp.tls_cert_file: required when tls_key_file is set"
    );
    assert_eq!(
        toml_err(&format!("{base}tls_key_file = \"k.pem\"\ntls_cert_file = \"\"\n")),
        "listener.tcp.tls_cert_file: must not be empty"
    );
    let c = toml(&format!("{base}tls_disable = true\ntls_cert_file = \"c.pem\"\n")).unwrap();
    assert_eq!(
        c.warnings,
        vec!["listener.tcp: tls_disable is set, so tls_cert_file and tls_key_file are not used"]
    );
    let tls = format!("{base}tls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n");
    assert!(toml(&format!("{tls}tls_min_version = \"tls12\"\n")).unwrap().warnings.is_empty());
    assert_eq!(
        toml(&format!("{tls}tls_min_version = \"tls10\"\n")).unwrap().warnings,
        vec!["listener.tcp.tls_min_version: coffer never negotiates below TLS 1.2"]
    );
    assert_eq!(
        toml_err(&format!("{tls}tls_min_version = \"tls13\"\n")),
        "listener.tcp.tls_min_version: \"tls13\" is not supported yet (coffer negotiates TLS 1.2 and 1.3)"
    );
    assert_eq!(
        toml_err(&format!("{tls}tls_min_version = \"ssl3\"\n")),
        "listener.tcp.tls_min_version: unknown version \"ssl3\" (expected tls10, tls11, tls12 or tls13)"
    );
    assert_eq!(
        toml_err(&format!("{tls}tls_require_and_verify_client_cert = true\n")),
        "listener.tcp.tls_require_and_verify_client_cert: TLS client certificate authentication is not supported"
    );
    assert!(toml(&format!("{tls}tls_require_and_verify_client_cert = false\n")).is_ok());
}

#[test]
fn storage_checks() {
    let l = "[[listener]]\ntls_disable = true\n";
    assert_eq!(
        toml_err(l),
        "storage: required (for example storage \"file\" { path = \"/var/lib/coffer\" }, or [storage] type = \"file\" in TOML)"
    );
    assert_eq!(toml_err(&format!("[storage]\ntype = \"file\"\n{l}")), "storage.file.path: required");
    assert_eq!(
        toml_err(&format!("[storage]\ntype = \"file\"\npath = \"\"\n{l}")),
        "storage.file.path: must not be empty"
    );
    assert_eq!(toml_err(&format!("[storage]\ntype = \"raft\"\n{l}")), "storage.raft.path: required");
    assert_eq!(
        toml_err(&format!("[storage]\ntype = \"raft\"\npath = \"/d\"\nnode_id = \"\"\n{l}")),
        "storage.raft.node_id: must not be empty"
    );
    assert_eq!(
        hcl_err("storage \"inmem\" {}\nbackend \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\n"),
        "storage and backend are both set; backend is Vault's old name for storage, keep one"
    );
    assert_eq!(
        hcl_err("storage \"inmem\" {}\nstorage \"file\" { path = \"/d\" }\nlistener \"tcp\" { tls_disable = 1 }\n"),
        "storage: exactly one storage block is allowed, found 2"
    );
    assert_eq!(
        hcl_err("storage \"inmem\" { path = \"/d\" }\nlistener \"tcp\" { tls_disable = 1 }\n"),
        "storage.inmem.path: unknown key"
    );
    let rj = |body: &str| {
        hcl_err(&format!(
            "api_addr = \"https://n1:8200\"\nstorage \"raft\" {{\n path = \"/d\"\n {body}\n}}\nlistener \"tcp\" {{ tls_disable = 1 }}\n"
        ))
    };
    assert_eq!(
        rj("retry_join { leader_tls_servername = \"x\" }"),
        "storage.raft.retry_join.leader_api_addr: required"
    );
    assert_eq!(
        rj("retry_join { leader_api_addr = \"n2:8200\" }"),
        "storage.raft.retry_join.leader_api_addr: \"n2:8200\" must start with http:// or https://"
    );
    assert_eq!(
        rj("retry_join {\n leader_api_addr = \"https://n2:8200\"\n leader_client_cert_file = \"c\"\n}"),
        "storage.raft.retry_join: leader_client_cert_file and leader_client_key_file must be set together"
    );
    assert_eq!(
        rj("retry_join { leader_api_addr = \"https://n2:8200\" }\nretry_join { leader_api_addr = \"https://N1:8200/\" }"),
        "storage.raft.retry_join[1].leader_api_addr: must not be this node's own api_addr"
    );
}

#[test]
fn listener_required() {
    let e = toml_err("[storage]\ntype = \"inmem\"\n");
    assert_eq!(
        e,
        "listener: at least one listener is required (for example listener \"tcp\" { address = \"127.0.0.1:8200\" }, or [[listener]] in TOML)"
    );
    assert_eq!(hcl_err("storage \"inmem\" {}\nlistener {}\n"), e);
}

#[test]
fn lease_ttls() {
    let c = toml(&toml_with("max_lease_ttl = \"1h\"", "")).unwrap();
    assert_eq!((c.default_lease_ttl, c.max_lease_ttl), (3600, 3600));
    let c = toml(&toml_with("default_lease_ttl = \"10m\"", "")).unwrap();
    assert_eq!((c.default_lease_ttl, c.max_lease_ttl), (600, crate::core::DEFAULT_MAX_TTL));
    let c = toml(&toml_with("default_lease_ttl = 0\nmax_lease_ttl = 0", "")).unwrap();
    assert_eq!(
        (c.default_lease_ttl, c.max_lease_ttl),
        (crate::core::DEFAULT_MAX_TTL, crate::core::DEFAULT_MAX_TTL)
    );
    assert_eq!(
        toml_err(&toml_with("default_lease_ttl = \"2h\"\nmax_lease_ttl = \"1h\"", "")),
        "default_lease_ttl (2h0m0s) must not exceed max_lease_ttl (1h0m0s)"
    );
    assert_eq!(
        toml_err(&toml_with("default_lease_ttl = \"800h\"", "")),
        "default_lease_ttl (800h0m0s) must not exceed max_lease_ttl (768h0m0s)"
    );
}

#[test]
fn addresses_cross_checks() {
    assert_eq!(
        toml_err(&toml_with("api_addr = \"https://a:8200\"\ncluster_addr = \"https://A:8200\"", "")),
        "api_addr and cluster_addr must differ (both are a:8200): the cluster port is separate from the API port"
    );
    assert_eq!(
        toml_err(&toml_with("api_addr = \"https://a\"\ncluster_addr = \"https://a:443\"", "")),
        "api_addr and cluster_addr must differ (both are a:443): the cluster port is separate from the API port"
    );
    assert_eq!(
        toml_err(&toml_with("api_addr = \"https://a:8200/v1\"", "")),
        "api_addr: \"https://a:8200/v1\" must not have a path or query"
    );
    assert_eq!(
        toml_err(&toml_with("api_addr = \"https://user:pw@a:8200\"", "")),
        "api_addr: \"https://user:pw@a:8200\" must be scheme://host[:port] without credentials"
    );
    assert_eq!(
        toml_err(&toml_with("api_addr = \"https://\"", "")),
        "api_addr: \"https://\" is not a URL (expected https://host:port)"
    );
    assert_eq!(
        toml_err(&toml_with("api_addr = \"ftp://a\"", "")),
        "api_addr: \"ftp://a\" must start with http:// or https://"
    );
    // Scheme and listeners disagree: a warning, not an error.
    let c = toml(&toml_with("api_addr = \"https://a:8200\"", "")).unwrap();
    assert_eq!(c.warnings, vec!["api_addr: uses https but every listener has tls_disable set"]);
    let c = toml(&toml_with("api_addr = \"http://a:8200\"", "")).unwrap();
    assert!(c.warnings.is_empty());
}

/// Item 13: HashiCorp's integrated-storage tutorial writes `cluster_addr` with `http://`. The
/// cluster port speaks TLS either way, so the address is accepted with a warning and used as
/// `https://`, as Vault and OpenBao do.
#[test]
fn cluster_addr_with_http_is_accepted_with_a_warning() {
    let want_warning =
        "cluster_addr: \"http://10.0.0.1:8201\" uses http, but the cluster port always speaks TLS; using https://10.0.0.1:8201";
    let c = toml(&toml_with("cluster_addr = \"http://10.0.0.1:8201\"", "")).unwrap();
    assert_eq!(c.cluster_addr.as_deref(), Some("https://10.0.0.1:8201"));
    assert_eq!(c.warnings, vec![want_warning]);
    let c = hcl(r#"
        storage "inmem" {}
        listener "tcp" {
          address     = "127.0.0.1:8200"
          tls_disable = true
        }
        api_addr     = "http://10.0.0.1:8200"
        cluster_addr = "http://10.0.0.1:8201"
        "#)
    .unwrap();
    assert_eq!(c.cluster_addr.as_deref(), Some("https://10.0.0.1:8201"));
    assert_eq!(c.api_addr.as_deref(), Some("http://10.0.0.1:8200"), "api_addr keeps its scheme");
    assert_eq!(c.warnings, vec![want_warning]);
    // https stays as it is, without a warning.
    let c = toml(&toml_with("cluster_addr = \"https://10.0.0.1:8201\"", "")).unwrap();
    assert_eq!(c.cluster_addr.as_deref(), Some("https://10.0.0.1:8201"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // The cross-checks see the https form.
    assert_eq!(
        toml_err(&toml_with("api_addr = \"https://a:8201\"\ncluster_addr = \"http://a:8201\"", "")),
        "api_addr and cluster_addr must differ (both are a:8201): the cluster port is separate from the API port"
    );
    assert_eq!(
        toml_err(&toml_with("cluster_addr = \"ftp://a:8201\"", "")),
        "cluster_addr: \"ftp://a:8201\" must start with http:// or https://"
    );
}

#[test]
fn listener_limits_default_to_vaults() {
    let l = &toml(&toml_with("", "")).unwrap().listeners[0];
    assert_eq!(
        l.limits,
        ListenerLimits {
            read_header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            write_timeout: None,
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    );
    assert_eq!(l.limits, ListenerLimits::default());
}

#[test]
fn listener_limits_in_three_formats() {
    let want = ListenerLimits {
        read_header_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(90),
        idle_timeout: Duration::from_secs(3600),
        write_timeout: Some(Duration::from_secs(45)),
        tls_handshake_timeout: Duration::from_secs(3),
        max_connections: 100,
    };
    let c = toml(&toml_with(
        "",
        r#"
        http_read_header_timeout = "2s"
        http_read_timeout = "1m30s"
        http_idle_timeout = "1h"
        http_write_timeout = 45
        tls_handshake_timeout = "3s"
        max_connections = 100
        "#,
    ))
    .unwrap();
    assert_eq!(c.listeners[0].limits, want);
    assert!(c.warnings.iter().any(|w| w.contains("tls_handshake_timeout is not used")), "{:?}", c.warnings);
    let hcl_text = r#"
        storage "inmem" {}
        listener "tcp" {
          address                  = "127.0.0.1:8200"
          tls_cert_file            = "cert.pem"
          tls_key_file             = "key.pem"
          http_read_header_timeout = "2s"
          http_read_timeout        = "90s"
          http_idle_timeout        = "60m"
          http_write_timeout       = "45s"
          tls_handshake_timeout    = 3
          max_connections          = "100"
        }
    "#;
    let c = hcl(hcl_text).unwrap();
    assert_eq!(c.listeners[0].limits, want);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let json_text = r#"{
        "storage": {"inmem": {}},
        "listener": [{"tcp": {
            "address": "127.0.0.1:8200", "tls_disable": true,
            "http_read_header_timeout": "2s", "http_read_timeout": "90",
            "http_idle_timeout": 3600, "http_write_timeout": "0h0m45s",
            "max_connections": 100
        }}]
    }"#;
    let c = json(json_text).unwrap();
    assert_eq!(
        c.listeners[0].limits,
        ListenerLimits { tls_handshake_timeout: Duration::from_secs(10), ..want }
    );
}

#[test]
fn listener_limits_zero_means_the_default_as_in_vault() {
    let c = toml(&toml_with(
        "",
        "http_read_header_timeout = 0\nhttp_read_timeout = \"0s\"\nhttp_idle_timeout = 0\nhttp_write_timeout = 0\ntls_handshake_timeout = 0",
    ))
    .unwrap();
    assert_eq!(c.listeners[0].limits, ListenerLimits::default());
}

#[test]
fn listener_limits_bad_values_are_named() {
    assert_eq!(
        toml_err(&toml_with("", "http_read_header_timeout = \"soon\"")),
        "listener.tcp.http_read_header_timeout: time: invalid duration \"soon\""
    );
    assert_eq!(
        toml_err(&toml_with("", "http_idle_timeout = -5")),
        "listener.tcp.http_idle_timeout: cannot use negative duration -5"
    );
    assert_eq!(
        toml_err(&toml_with("", "http_read_timeout = \"10\"\nhttp_write_timeout = \"9000h\"")),
        "listener.tcp.http_write_timeout: must be at most 8760h0m0s"
    );
    assert_eq!(
        toml_err(&toml_with("", "max_connections = 0")),
        "listener.tcp.max_connections: must be at least 1"
    );
    assert_eq!(
        toml_err(&toml_with("", "max_connections = -1")),
        "listener.tcp.max_connections: must be at least 1"
    );
    assert_eq!(
        toml_err(&toml_with("", "max_connections = 2000000")),
        "listener.tcp.max_connections: must be at most 1048576"
    );
    assert_eq!(
        toml_err(&toml_with("", "max_connections = \"many\"")),
        "listener.tcp.max_connections: expected an integer, found \"many\""
    );
    assert_eq!(
        toml_err(&toml_with("", "http_read_header_timout = \"1s\"")),
        "listener.tcp.http_read_header_timout: unknown key (did you mean `http_read_header_timeout`?)"
    );
}

#[test]
fn unauthed_endpoint_flags_apply_server_wide() {
    let two = |a: &str, b: &str| {
        format!(
            "[storage]\ntype = \"inmem\"\n[[listener]]\naddress = \"127.0.0.1:1\"\ntls_disable = true\n{a}\n\
             [[listener]]\naddress = \"127.0.0.1:2\"\ntls_disable = true\n{b}\n"
        )
    };
    let c = toml(&two(
        "disable_unauthed_generate_root_endpoints = false\ndisable_unauthed_rekey_endpoints = false",
        "disable_unauthed_generate_root_endpoints = false\ndisable_unauthed_rekey_endpoints = false",
    ))
    .unwrap();
    assert!(c.unauthenticated_generate_root());
    assert!(c.unauthenticated_rekey());
    let c = toml(&two("disable_unauthed_generate_root_endpoints = false", "")).unwrap();
    assert!(!c.unauthenticated_generate_root());
    assert_eq!(
        c.warnings,
        vec!["listener: the listeners disagree on disable_unauthed_generate_root_endpoints; coffer applies it to the whole server, so the endpoints stay authenticated"]
    );
}

#[test]
fn static_seal_checks() {
    let seal = |body: &str| toml_with(&format!("[seal]\ntype = \"static\"\n{body}"), "");
    assert_eq!(
        toml_err(&seal("current_key = \"env:KEY\"")),
        "seal.static.current_key_id: required (a permanent identifier for current_key)"
    );
    assert_eq!(
        toml_err(&seal("current_key_id = \"a\"")),
        "seal.static.current_key: required (env:NAME, file:PATH or the key itself)"
    );
    assert_eq!(
        toml_err(&seal("current_key_id = \"\"\ncurrent_key = \"env:KEY\"")),
        "seal.static.current_key_id: must not be empty"
    );
    assert_eq!(
        toml_err(&seal("current_key_id = \"a\"\ncurrent_key = \"  \"")),
        "seal.static.current_key: must not be empty"
    );
    assert_eq!(
        toml_err(&seal("current_key_id = \"a\"\ncurrent_key = \"env:NOPE\"")),
        "seal.static.current_key: environment variable NOPE is not set or empty"
    );
    assert_eq!(
        toml_err(&seal("current_key_id = \"a\"\ncurrent_key = \"env:KEY\"\nprevious_key_id = \"b\"")),
        "seal.static.previous_key: required when previous_key_id is set"
    );
    assert_eq!(
        toml_err(&seal("current_key_id = \"a\"\ncurrent_key = \"env:KEY\"\nprevious_key = \"env:KEY2\"")),
        "seal.static.previous_key_id: required when previous_key is set"
    );
    assert_eq!(
        toml_err(&seal("current_key_id = \"a\"\ncurrent_key = \"env:KEY\"\nprevious_key_id = \"b\"\nprevious_key = \"env:KEY\"")),
        "seal.static: current_key and previous_key are the same key with different ids"
    );
    assert_eq!(
        toml_err(&seal("current_key_id = \"a\"\ncurrent_key = \"env:KEY\"\nprevious_key_id = \"a\"\nprevious_key = \"env:KEY2\"")),
        "seal.static: current_key and previous_key differ but have the same id"
    );
    assert_eq!(
        toml_err(&seal("current_key_id = \"a\"\ncurrent_key = \"env:KEY\"\ndisabled = \"true\"")),
        "seal.static.disabled: seal migration is not supported; remove the seal block or disabled"
    );
    assert!(toml(&seal("current_key_id = \"a\"\ncurrent_key = \"env:KEY\"\ndisabled = false")).is_ok());
    // A bad key never appears in the message.
    let e = parse_in(
        &seal("current_key_id = \"a\"\ncurrent_key = \"env:K\""),
        Format::Toml,
        Path::new("/"),
        &[("K", "not-a-key-hunter2")],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "seal.static.current_key: the key must be 32 bytes: raw, or 64 hex digits, or base64 (44 characters)"
    );
    assert_eq!(
        hcl_err("storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\nseal \"static\" {\n current_key_id = \"a\"\n current_key = \"env:KEY\"\n}\nseal \"static\" {\n current_key_id = \"b\"\n current_key = \"env:KEY\"\n}\n"),
        "seal: only one seal block is allowed, found 2"
    );
}

fn write_private(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn static_seal_key_files_and_inline_keys_via_load() {
    let dir = tempfile::tempdir().unwrap();
    let raw_key: Vec<u8> = (0u8..32).collect();
    write_private(&dir.path().join("unseal.key"), &raw_key, 0o600);
    write_private(&dir.path().join("loose.key"), &raw_key, 0o644);

    let write_cfg = |name: &str, key: &str, mode: u32| -> PathBuf {
        let p = dir.path().join(name);
        let text = format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n tls_disable = true\n}}\nseal \"static\" {{\n current_key_id = \"k\"\n current_key = \"{key}\"\n}}\n"
        );
        write_private(&p, text.as_bytes(), mode);
        p
    };

    // file: relative to the configuration file's directory.
    let c = load(&write_cfg("rel.hcl", "file:unseal.key", 0o644)).unwrap();
    let SealConfig::Static(s) = &c.seal else { panic!() };
    assert!(s.current_key.ct_eq(&raw_key));
    assert!(c.warnings.is_empty());
    // OpenBao's file:// form with an absolute path.
    let abs = format!("file://{}", dir.path().join("unseal.key").display());
    assert!(load(&write_cfg("abs.hcl", &abs, 0o644)).is_ok());
    // A loose key file is refused, naming the key and the mode.
    let e = load(&write_cfg("loose.hcl", "file:loose.key", 0o600)).unwrap_err().to_string();
    assert!(e.starts_with("seal.static.current_key: "), "{e}");
    assert!(
        e.ends_with("loose.key is accessible by group or others (mode 0644); restrict it with chmod 600"),
        "{e}"
    );
    // Inline keys: only in a private configuration file, with a warning.
    let c = load(&write_cfg("inline.hcl", HEX_KEY, 0o600)).unwrap();
    assert_eq!(
        c.warnings,
        vec!["seal.static.current_key: the secret is written inline in the configuration file; prefer env:NAME or file:PATH"]
    );
    let e = load(&write_cfg("inline-loose.hcl", HEX_KEY, 0o640)).unwrap_err().to_string();
    assert!(e.contains("(mode 0640)"), "{e}");
    assert!(!e.contains(HEX_KEY), "{e}");
}

#[test]
fn load_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(&dir.path().join("missing.toml")).unwrap_err().to_string();
    assert!(e.starts_with("cannot read ") && e.contains("missing.toml"), "{e}");
    let p = dir.path().join("coffer.yaml");
    std::fs::write(&p, "").unwrap();
    assert!(load(&p).unwrap_err().to_string().contains("unsupported configuration file extension"));
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[storage\n").unwrap();
    assert_eq!(
        load(&p).unwrap_err().to_string(),
        "invalid TOML at line 1, column 9: invalid table header; expected `.`, `]`"
    );
}

#[test]
fn the_same_config_in_three_formats_gives_the_same_result() {
    let t = toml(
        r#"
        api_addr = "https://h:8200"
        default_lease_ttl = "1h"
        [storage]
        type = "file"
        path = "/d"
        [[listener]]
        address = "127.0.0.1:8200"
        tls_cert_file = "/c"
        tls_key_file = "/k"
        [seal]
        type = "static"
        current_key_id = "k"
        current_key = "env:KEY"
        "#,
    )
    .unwrap();
    let h = hcl(r#"
        api_addr = "https://h:8200"
        default_lease_ttl = "1h"
        storage "file" { path = "/d" }
        listener "tcp" {
          address = "127.0.0.1:8200"
          tls_cert_file = "/c"
          tls_key_file = "/k"
        }
        seal "static" {
          current_key_id = "k"
          current_key = "env:KEY"
        }
        "#)
    .unwrap();
    let j = json(
        r#"{"api_addr": "https://h:8200", "default_lease_ttl": "1h",
            "storage": {"file": {"path": "/d"}},
            "listener": {"tcp": {"address": "127.0.0.1:8200", "tls_cert_file": "/c", "tls_key_file": "/k"}},
            "seal": {"static": {"current_key_id": "k", "current_key": "env:KEY"}}}"#,
    )
    .unwrap();
    let show = |c: &Config| format!("{c:?}");
    assert_eq!(show(&t), show(&h));
    assert_eq!(show(&t), show(&j));
}

/// Every file in `config/` loads, with the environment and key files it documents.
#[test]
fn shipped_examples_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("unseal.key");
    write_private(&key_file, &(0u8..32).collect::<Vec<_>>(), 0o600);
    let mut seen = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let Ok(format) = Format::from_path(&path) else { continue };
        // The examples name /etc/coffer/unseal.key; point that at a private temporary file.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/etc/coffer/unseal.key", key_file.to_str().unwrap());
        let c = parse_in(&text, format, &root, &[("COFFER_UNSEAL_KEY", HEX_KEY)])
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!c.listeners.is_empty());
        seen.push((path.file_name().unwrap().to_string_lossy().into_owned(), c));
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["dev.toml", "single.toml", "static-seal.toml", "vault.hcl", "vault.json"]);
    let get = |n: &str| &seen.iter().find(|(name, _)| name == n).unwrap().1;
    assert!(matches!(get("dev.toml").storage, StorageConfig::Memory));
    assert!(get("single.toml").listeners[0].tls.is_some());
    assert!(matches!(get("single.toml").storage, StorageConfig::File { .. }));
    assert!(matches!(get("static-seal.toml").seal, SealConfig::Static(_)));
    // vault.hcl and vault.json describe the same server.
    let (h, j) = (get("vault.hcl"), get("vault.json"));
    assert!(matches!(h.seal, SealConfig::Static(_)));
    assert_eq!(format!("{:?}", h.storage), format!("{:?}", j.storage));
    assert_eq!(format!("{:?}", h.listeners), format!("{:?}", j.listeners));
    assert_eq!((h.default_lease_ttl, h.max_lease_ttl), (j.default_lease_ttl, j.max_lease_ttl));
    assert_eq!(h.warnings, j.warnings);
    assert!(h.warnings.iter().any(|w| w.starts_with("ui: ignored")), "{:?}", h.warnings);
    assert_eq!(h.audit, j.audit);
    assert_eq!(h.audit.len(), 1);
    assert_eq!(h.audit[0].options["fsync"], "true");
    assert_eq!(get("single.toml").audit[0].path, "main/");
    assert!(!h.unsafe_allow_api_audit_creation && !h.allow_audit_log_prefixing);
}

/// `config/cluster/node{1,2,3}.{hcl,toml}` load with `load`: a raft node each, TLS on the API
/// listener, `retry_join` to the other two with their CA, Shamir by default; the HCL and TOML
/// of a node describe the same server; the commented static seal works when uncommented.
#[test]
fn shipped_cluster_examples_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join("cluster");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["node1.hcl", "node1.toml", "node2.hcl", "node2.toml", "node3.hcl", "node3.toml"]);
    let host = |i: u32| format!("coffer-{i}.example.com");
    for i in 1..=3u32 {
        let h = load(&root.join(format!("node{i}.hcl"))).unwrap_or_else(|e| panic!("node{i}.hcl: {e}"));
        let t = load(&root.join(format!("node{i}.toml"))).unwrap_or_else(|e| panic!("node{i}.toml: {e}"));
        assert_eq!(format!("{h:?}"), format!("{t:?}"), "node{i}: the HCL and the TOML differ");
        assert!(h.warnings.is_empty(), "node{i}: {:?}", h.warnings);
        let StorageConfig::Raft { path, node_id, retry_join, tuning } = &h.storage else {
            panic!("node{i}: not raft")
        };
        assert_eq!(path, &PathBuf::from(format!("/var/lib/coffer/node{i}/data")));
        assert_eq!(node_id.as_deref(), Some(format!("node{i}").as_str()));
        assert_eq!(tuning, &crate::config::RaftTuning::default());
        let others: Vec<String> =
            (1..=3).filter(|j| *j != i).map(|j| format!("https://{}:8200", host(j))).collect();
        let joins: Vec<String> = retry_join.iter().map(|j| j.leader_api_addr.clone()).collect();
        assert_eq!(joins, others, "node{i} joins through the other two");
        for j in retry_join {
            assert_eq!(j.leader_ca_cert_file.as_deref(), Some(Path::new("/etc/coffer/tls/ca.pem")));
        }
        assert_eq!(h.api_addr.as_deref(), Some(format!("https://{}:8200", host(i)).as_str()));
        assert_eq!(h.cluster_addr.as_deref(), Some(format!("https://{}:8201", host(i)).as_str()));
        assert_eq!(h.listeners.len(), 1);
        let l = &h.listeners[0];
        let tls = l.tls.as_ref().unwrap_or_else(|| panic!("node{i}: TLS on the API listener"));
        assert_eq!(tls.cert_file, PathBuf::from(format!("/etc/coffer/tls/node{i}.pem")));
        assert_eq!(l.cluster_address, Some("0.0.0.0:8201".parse().unwrap()));
        assert!(matches!(h.seal, SealConfig::Shamir), "node{i}: Shamir by default");
        assert!(!h.disable_mlock);
        assert_eq!(h.audit.len(), 1);

        // The commented static seal alternative, uncommented, gives a static seal.
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("unseal.key");
        write_private(&key_file, &(0u8..32).collect::<Vec<_>>(), 0o600);
        let text = std::fs::read_to_string(root.join(format!("node{i}.hcl"))).unwrap();
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with("seal \"static\"")
                        || rest.starts_with("  current_key")
                        || rest == "}" =>
                {
                    rest.to_owned()
                }
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
            .replace("/etc/coffer/unseal.key", key_file.to_str().unwrap());
        assert_ne!(uncommented, text.trim_end());
        let s = parse_in(&uncommented, Format::Hcl, &root, &[]).unwrap_or_else(|e| panic!("node{i}: {e}"));
        assert!(matches!(s.seal, SealConfig::Static(_)), "node{i}: static seal when uncommented");
    }
}

/// A typical OpenBao production file (Kubernetes operator style) is accepted with warnings.
#[test]
fn openbao_production_style_hcl() {
    let c = hcl(r#"
        ui               = true
        cluster_name     = "static-seal"
        api_addr         = "https://bao-0.bao.svc:8200"
        cluster_addr     = "https://bao-0.bao.svc:8201"
        plugin_directory = "/openbao/plugins"
        listener "tcp" {
          address              = "0.0.0.0:8200"
          cluster_address      = "0.0.0.0:8201"
          tls_disable          = 0
          max_request_duration = "90s"
          tls_cert_file        = "/etc/bao/tls/tls.crt"
          tls_key_file         = "/etc/bao/tls/tls.key"
          tls_client_ca_file   = "/etc/bao/tls/ca.crt"
        }
        seal "static" {
          current_key    = "env://KEY"
          current_key_id = "operator-generated-v1"
        }
        storage "raft" {
          path    = "/bao/data"
          node_id = "bao-0"
          retry_join {
            leader_api_addr         = "https://bao-1.bao.svc:8200"
            leader_tls_servername   = "bao.local"
            leader_ca_cert_file     = "/etc/bao/tls/ca.crt"
            leader_client_cert_file = "/etc/bao/tls/tls.crt"
            leader_client_key_file  = "/etc/bao/tls/tls.key"
          }
        }
        service_registration "kubernetes" {}
        "#)
    .unwrap();
    assert_eq!(c.storage.type_name(), "raft");
    assert_eq!(c.listeners[0].cluster_address, Some("0.0.0.0:8201".parse().unwrap()));
    assert_eq!(
        c.warnings,
        vec![
            "plugin_directory: ignored (coffer has no plugins)",
            "service_registration: ignored (service registration is not implemented)",
            "ui: ignored (coffer has no web UI)",
            "listener.tcp.max_request_duration: ignored (request duration limits are not implemented)",
            "listener.tcp.tls_client_ca_file: ignored (coffer has no cert auth method and requests no client certificates)",
        ]
    );
}

/// The audit stanza in OpenBao's HCL form (two labels), Vault/OpenBao's JSON form (keyed by
/// type, then path) and native TOML (`[[audit]]`) gives the same devices.
#[test]
fn audit_stanza_parses_in_all_three_syntaxes() {
    let h = hcl(r#"
        storage "inmem" {}
        listener "tcp" { tls_disable = 1 }
        audit "file" "to-file" {
          description = "main log"
          options {
            file_path = "/var/log/coffer/audit.log"
            fsync     = true
            mode      = "0640"
          }
        }
        audit "file" "stdout" {
          local   = true
          options = { file_path = "stdout" }
        }
        "#)
    .unwrap();
    let j = json(
        r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": true}},
            "audit": [
              {"file": {"to-file": {"description": "main log",
                 "options": {"file_path": "/var/log/coffer/audit.log", "fsync": "true", "mode": "0640"}}}},
              {"file": {"stdout": {"local": true, "options": {"file_path": "stdout"}}}}
            ]}"#,
    )
    .unwrap();
    let t = toml(&toml_with(
        "",
        r#"
        [[audit]]
        type = "file"
        path = "to-file"
        description = "main log"
        [audit.options]
        file_path = "/var/log/coffer/audit.log"
        fsync = true
        mode = "0640"

        [[audit]]
        type = "file"
        path = "stdout/"
        local = true
        options = { file_path = "stdout" }
        "#,
    ))
    .unwrap();
    assert_eq!(h.audit.len(), 2);
    assert_eq!(h.audit[0].path, "to-file/");
    assert_eq!(h.audit[0].kind, "file");
    assert_eq!(h.audit[0].description, "main log");
    assert_eq!(h.audit[0].options["fsync"], "true");
    assert_eq!(h.audit[0].options["mode"], "0640");
    assert_eq!(h.audit[1].path, "stdout/");
    assert!(h.audit[1].local);
    assert_eq!(format!("{:?}", h.audit), format!("{:?}", j.audit));
    assert_eq!(format!("{:?}", h.audit), format!("{:?}", t.audit));
    // Off unless set; the settings handed to the core carry them.
    assert!(!h.unsafe_allow_api_audit_creation && !h.allow_audit_log_prefixing);
    let s = h.audit_settings();
    assert!(!s.allow_api_creation && !s.allow_prefixing && s.storage_dir.is_none());
    assert_eq!(s.declared, h.audit);
    // The JSON form may also be a single object, and the HCL labels may be written inside.
    let j1 = json(
        r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": true}},
            "audit": {"file": {"x": {"options": {"file_path": "/l/x.log"}}}}}"#,
    )
    .unwrap();
    assert_eq!(j1.audit[0].path, "x/");
    let h1 = hcl(
        "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\naudit \"file\" {\n path = \"x\"\n options { file_path = \"/l/x.log\" }\n}\n",
    )
    .unwrap();
    assert_eq!(format!("{:?}", h1.audit), format!("{:?}", j1.audit));
}

#[test]
fn audit_flags_parse_and_warn() {
    let c =
        toml(&toml_with("unsafe_allow_api_audit_creation = true\nallow_audit_log_prefixing = \"true\"", ""))
            .unwrap();
    assert!(c.unsafe_allow_api_audit_creation && c.allow_audit_log_prefixing);
    assert!(c.audit_settings().allow_api_creation && c.audit_settings().allow_prefixing);
    assert!(
        c.warnings.iter().any(|w| w.starts_with("unsafe_allow_api_audit_creation: ")),
        "{:?}",
        c.warnings
    );
    assert_eq!(
        toml_err(&toml_with("unsafe_allow_api_audit_creation = \"sometimes\"", "")),
        "unsafe_allow_api_audit_creation: expected a boolean (true or false), found \"sometimes\""
    );
}

/// Relative audit file paths are relative to the configuration file, like every other path.
#[test]
fn audit_relative_file_path_follows_the_config_file() {
    let c = toml(&toml_with(
        "",
        "[[audit]]\ntype = \"file\"\npath = \"f\"\noptions = { file_path = \"logs/audit.log\" }\n",
    ))
    .unwrap();
    assert_eq!(c.audit[0].options["file_path"], "/base/logs/audit.log");
}

#[test]
fn audit_prefix_needs_allow_audit_log_prefixing() {
    let block = "[[audit]]\ntype = \"file\"\npath = \"f\"\noptions = { file_path = \"/l/a.log\", prefix = \"ssh-ed25519 AAAA \" }\n";
    assert_eq!(
        toml_err(&toml_with("", block)),
        "audit.options.prefix: audit log prefixing is not allowed (set allow_audit_log_prefixing = true in the server configuration to allow it)"
    );
    let c = toml(&toml_with("allow_audit_log_prefixing = true", block)).unwrap();
    assert_eq!(c.audit[0].options["prefix"], "ssh-ed25519 AAAA ");
}

/// log_raw is fine in the configuration (it is refused over the API only).
#[test]
fn audit_log_raw_is_accepted_from_the_config() {
    let c = hcl(
        "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\naudit \"file\" \"raw\" {\n options {\n  file_path = \"/l/raw.log\"\n  log_raw = true\n }\n}\n",
    )
    .unwrap();
    assert_eq!(c.audit[0].options["log_raw"], "true");
}

#[test]
fn audit_file_inside_the_storage_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = |file: &str| {
        format!(
            "[storage]\ntype = \"file\"\npath = \"data\"\n[[listener]]\ntls_disable = true\n[[audit]]\ntype = \"file\"\npath = \"f\"\noptions = {{ file_path = \"{file}\" }}\n"
        )
    };
    let data = dir.path().join("data");
    for file in [
        "data/audit.log".to_owned(),
        data.join("db").display().to_string(),
        "./data/../data/x.log".to_owned(),
        data.display().to_string(),
    ] {
        let e = parse_in(&text(&file), Format::Toml, dir.path(), &[]).unwrap_err().to_string();
        assert!(e.starts_with("audit.options.file_path: file_path "), "{file}: {e}");
        assert!(e.ends_with("is inside the storage directory; audit logs must be kept outside it"), "{e}");
    }
    let ok = parse_in(&text("logs/audit.log"), Format::Toml, dir.path(), &[]).unwrap();
    assert_eq!(ok.audit_settings().storage_dir, Some(data));
}

#[test]
fn audit_errors_name_the_key() {
    let with = |block: &str| toml_err(&toml_with("", block));
    assert_eq!(
        with("[[audit]]\ntype = \"file\"\npath = \"f\"\ndescripton = \"x\"\n"),
        "audit.descripton: unknown key (did you mean `description`?)"
    );
    assert_eq!(
        with("[[audit]]\ntype = \"file\"\noptions = { file_path = \"/a\" }\n"),
        "audit.path: required"
    );
    assert_eq!(with("[[audit]]\ntype = \"file\"\npath = \"/\"\n"), "audit.path: must not be empty");
    assert_eq!(
        with("[[audit]]\ntype = \"socket\"\npath = \"s\"\noptions = { address = \"x\" }\n"),
        "audit.type: unknown backend type: \"socket\" (only \"file\" audit devices are supported)"
    );
    assert_eq!(
        with("[[audit]]\ntype = \"file\"\npath = \"f\"\n"),
        "audit.options.file_path: file_path is required"
    );
    assert_eq!(
        with(
            "[[audit]]\ntype = \"file\"\npath = \"f\"\noptions = { file_path = \"/a\", fsync = \"maybe\" }\n"
        ),
        "audit.options.fsync: unable to parse 'fsync': invalid boolean \"maybe\" (expected true or false)"
    );
    assert!(with(
        "[[audit]]\ntype = \"file\"\npath = \"f\"\noptions = { file_path = \"/a\", fsnyc = true }\n"
    )
    .starts_with("audit.options.fsnyc: unknown option \"fsnyc\""));
    assert_eq!(
        with("[[audit]]\ntype = \"file\"\npath = \"f\"\noptions = { file_path = \"/a\", mode = \"0755\" }\n"),
        "audit.options.mode: file mode 755 is not allowed for audit files (no execute bits, no special bits)"
    );
    assert_eq!(
        with("[[audit]]\ntype = \"file\"\npath = \"f\"\noptions = { file_path = \"/a\" }\n[[audit]]\ntype = \"file\"\npath = \"f/\"\noptions = { file_path = \"/b\" }\n"),
        "audit[1].path: f/ is already used by audit[0]"
    );
    assert_eq!(
        with("[[audit]]\ntype = \"file\"\npath = \"f\"\noptions = { file_path = \"/a\" }\n[[audit]]\ntype = \"file\"\npath = \"g\"\noptions = { file_path = \"/a\" }\n"),
        "audit[1].options.file_path: /a is already the file of audit[0]; each device needs its own file"
    );
    assert_eq!(
        hcl_err("storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\naudit \"file\" \"f\" {\n path = \"g\"\n}\n"),
        "audit.path: given both as a block label and in the block"
    );
    assert_eq!(
        json(r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": true}}, "audit": 3}"#)
            .unwrap_err()
            .to_string(),
        "audit: expected a block (audit \"TYPE\" \"PATH\" { ... }), found a number"
    );
}

#[test]
fn default_lease_ttl_is_the_cores() {
    assert_eq!(DEFAULT_LEASE_TTL, crate::core::DEFAULT_MAX_TTL);
}

#[test]
fn errors_say_what_kind_of_problem_they_are() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(load(&dir.path().join("missing.toml")), Err(ConfigError::Read { .. })));
    assert!(matches!(
        load(&dir.path().join("coffer.yaml")),
        Err(ConfigError::UnsupportedExtension { ext: Some(e) }) if e == "yaml"
    ));
    assert!(matches!(
        toml("[storage\n"),
        Err(ConfigError::Syntax { language: "TOML", at: Some((1, 9)), .. })
    ));
    assert!(matches!(json("[1]"), Err(ConfigError::Document(_))));
    let e = toml(&toml_with("", "adress = \"x\"")).unwrap_err();
    assert_eq!(e.key(), Some("listener.tcp.adress"));
    let e = toml(&toml_with("default_lease_ttl = \"2h\"\nmax_lease_ttl = \"1h\"", "")).unwrap_err();
    assert!(matches!(e, ConfigError::Conflict(_)), "{e}");
    assert_eq!(e.key(), None);
}

#[test]
fn listener_telemetry_opens_metrics_in_three_syntaxes() {
    // Closed by default.
    assert!(!toml(&toml_with("", "")).unwrap().listeners[0].unauthenticated_metrics_access);
    let from_toml =
        toml(&toml_with("", "[listener.telemetry]\nunauthenticated_metrics_access = true")).unwrap();
    let from_hcl = hcl(r#"
        storage "inmem" {}
        listener "tcp" {
          address     = "127.0.0.1:8200"
          tls_disable = 1
          telemetry {
            unauthenticated_metrics_access = "true"
          }
        }
        listener "tcp" {
          address     = "127.0.0.1:8300"
          tls_disable = 1
        }
        "#)
    .unwrap();
    let from_json = json(
        r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"address": "127.0.0.1:8200", "tls_disable": true,
            "telemetry": [{"unauthenticated_metrics_access": true}]}}}"#,
    )
    .unwrap();
    for c in [&from_toml, &from_hcl, &from_json] {
        assert!(c.listeners[0].unauthenticated_metrics_access);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }
    assert!(!from_hcl.listeners[1].unauthenticated_metrics_access, "the setting is per listener");
    // Unknown keys inside the block are named; the key outside it is ignored with a pointer.
    let e = toml_err(&toml_with("", "[listener.telemetry]\nunauthenticated_metrics = true"));
    assert!(e.contains("listener.tcp.telemetry.unauthenticated_metrics"), "{e}");
    let c = toml(&toml_with("", "unauthenticated_metrics_access = true")).unwrap();
    assert!(!c.listeners[0].unauthenticated_metrics_access);
    assert_eq!(
        c.warnings,
        vec!["listener.tcp.unauthenticated_metrics_access: ignored (it belongs in the listener's telemetry block: telemetry { unauthenticated_metrics_access = true })"]
    );
}
