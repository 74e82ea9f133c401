//! Other real clients against coffer: Python hvac.

use crate::harness::Server;

fn python_has_hvac() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import hvac"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn hvac_smoke() {
    if !python_has_hvac() {
        assert!(
            std::env::var("COFFER_REQUIRE_BAO").as_deref() != Ok("1"),
            "hvac is required in CI (pip install hvac)"
        );
        eprintln!("hvac_smoke: skipped, python3 -c 'import hvac' failed");
        return;
    }
    let s = Server::dev();
    run_hvac(&s.addr, &s.token);
}

/// The hvac smoke script against `addr`; `true` when hvac is installed and the script ran.
pub fn run_hvac(addr: &str, token: &str) -> bool {
    if !python_has_hvac() {
        return false;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/hvac_smoke.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hvac smoke failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hvac smoke: OK"));
    true
}

#[test]
fn node_vault_smoke() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
    let installed = std::path::Path::new(dir).join("node_modules/node-vault").exists();
    if !installed {
        assert!(
            std::env::var("COFFER_REQUIRE_BAO").as_deref() != Ok("1"),
            "node-vault is required in CI (npm install --prefix tests/clients)"
        );
        eprintln!("node_vault_smoke: skipped, run `npm install --prefix tests/clients` first");
        return;
    }
    let s = Server::dev();
    run_node_vault(&s.addr, &s.token);
}

/// The node-vault smoke script against `addr`; `true` when node-vault is installed and it ran.
pub fn run_node_vault(addr: &str, token: &str) -> bool {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
    if !std::path::Path::new(dir).join("node_modules/node-vault").exists() {
        return false;
    }
    let out = std::process::Command::new("node")
        .arg("node_vault_smoke.js")
        .current_dir(dir)
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node-vault smoke failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}
