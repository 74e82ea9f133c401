//! `config_parse`: configuration text through the TOML, HCL and JSON front ends and the
//! validation behind them.

use std::ffi::OsString;

use coffer_storage::fuzzing::bytes_from;

use super::{CANARY, SUITE};
use crate::config::format::Format;
use crate::config::secret::Resolver;

const DICT: &[&[u8]] = &[
    b"storage",
    b"listener",
    b"seal",
    b"audit",
    b"\"tcp\"",
    b"\"raft\"",
    b"\"file\"",
    b"\"inmem\"",
    b"\"static\"",
    b"type",
    b"path",
    b"address",
    b"cluster_address",
    b"api_addr",
    b"cluster_addr",
    b"tls_disable",
    b"tls_cert_file",
    b"tls_key_file",
    b"current_key",
    b"current_key_id",
    b"previous_key",
    b"\"env:COFFER_FUZZ_KEY\"",
    b"\"env://\"",
    b"\"file:\"",
    b"\"file:///nonexistent\"",
    b"retry_join",
    b"leader_api_addr",
    b"max_request_size",
    b"default_lease_ttl",
    b"\"768h\"",
    b"\"-1s\"",
    b"\"0.0.0.0:8200\"",
    b"\"[::1]:0\"",
    b"\"https://h:8200\"",
    b"[[listener]]",
    b"[storage]",
    b"[seal]",
    b" = ",
    b" {\n",
    b"}\n",
    b"options",
    b"file_path",
    b"unsafe_allow_api_audit_creation",
    b"true",
];

fn env(name: &str) -> Option<OsString> {
    match name {
        "COFFER_FUZZ_KEY" => Some(CANARY.into()),
        "COFFER_FUZZ_GOOD_KEY" => Some("2a".repeat(32).into()),
        _ => None,
    }
}

fn check(dir: &std::path::Path, raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw);
    let resolver = Resolver { base_dir: dir, config_file: None, env: &env };
    for format in [Format::Toml, Format::Hcl, Format::Json] {
        match crate::config::parse(&text, format, &resolver) {
            Ok(config) => {
                let shown = format!("{config:?}");
                if shown.contains(CANARY) && !text.contains(&format!("\"{CANARY}\"")) {
                    return Err(format!("{format:?}: Debug of a config shows a secret from the environment"));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if msg.contains(CANARY) {
                    return Err(format!("{format:?}: error repeats a secret: {msg}"));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn config_parse() {
    let mut t = SUITE.target("config_parse", 800);
    let dir = tempfile::tempdir().unwrap();
    t.replay(|b| check(dir.path(), b));
    t.generate(bytes_from(t.seeds(), DICT), |b| check(dir.path(), b));
    t.finish();
}
