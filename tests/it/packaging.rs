//! The systemd units and their companions: `systemd-analyze verify` accepts them with the
//! built binary in ExecStart, their hardening scores as "OK" or better, and they agree with
//! the example configurations about paths.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn systemd_analyze() -> bool {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipping: systemd-analyze is not installed");
    }
    ok
}

/// A copy of `unit` in `dir` whose ExecStart runs the binary under test.
fn unit_copy(dir: &Path, unit: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("systemd").join(unit)).unwrap();
    assert!(text.contains("ExecStart=/usr/bin/coffer server --config "), "{unit}: {text}");
    let text = text.replace("/usr/bin/coffer", env!("CARGO_BIN_EXE_coffer"));
    let path = dir.join(unit);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `systemd-analyze verify`; returns the problems it reported about our unit (its exit
/// status is 0 for directives it could not parse, so its messages count too).
fn verify(unit: &Path) -> Vec<String> {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = unit.file_name().unwrap().to_string_lossy().replace("@.service", "@");
    let mut problems: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains(&name) || l.contains(&unit.display().to_string()))
        .map(str::to_owned)
        .collect();
    if !out.status.success() {
        problems.push(format!("exit status {}: {stderr}", out.status));
    }
    problems
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for unit in ["coffer.service", "coffer@.service"] {
        let path = unit_copy(dir.path(), unit);
        let problems = verify(&path);
        assert!(problems.is_empty(), "{unit}:\n{}", problems.join("\n"));
    }

    // The check itself catches mistakes: a misspelt value and a missing binary.
    let good = std::fs::read_to_string(dir.path().join("coffer.service")).unwrap();
    let bad = dir.path().join("broken.service");
    std::fs::write(&bad, good.replace("ProtectSystem=strict", "ProtectSystem=strictly")).unwrap();
    assert!(!verify(&bad).is_empty(), "a bad ProtectSystem value went unnoticed");
    std::fs::write(&bad, good.replace(env!("CARGO_BIN_EXE_coffer"), "/nonexistent/coffer")).unwrap();
    assert!(!verify(&bad).is_empty(), "a missing binary went unnoticed");
}

#[test]
fn units_are_hardened() {
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for unit in ["coffer.service", "coffer@.service"] {
        let path = unit_copy(dir.path(), unit);
        // Exposure is on a 0-100 scale here (0.0-10.0 as printed); 20 = "2.0 OK".
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
            .arg(&path)
            .output()
            .expect("run systemd-analyze security");
        if String::from_utf8_lossy(&out.stderr).contains("unrecognized option") {
            eprintln!("skipping: this systemd-analyze has no offline security check (systemd < 250)");
            return;
        }
        assert!(
            out.status.success(),
            "{unit}: exposure above 2.0:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Directive values of a unit file, for the settings the design promises.
fn directives(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(|v| v.trim().to_owned())
        .collect()
}

#[test]
fn units_carry_the_promised_hardening() {
    for (unit, data_dir) in [("coffer.service", "/var/lib/coffer"), ("coffer@.service", "/var/lib/coffer/%i")]
    {
        let text = std::fs::read_to_string(repo().join("systemd").join(unit)).unwrap();
        for (key, want) in [
            ("User", "coffer"),
            ("Group", "coffer"),
            ("ProtectSystem", "strict"),
            ("ReadWritePaths", data_dir),
            ("LimitCORE", "0"),
            ("AmbientCapabilities", "CAP_IPC_LOCK"),
            ("CapabilityBoundingSet", "CAP_IPC_LOCK"),
            ("NoNewPrivileges", "yes"),
            ("PrivateTmp", "yes"),
            ("ProtectHome", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("UMask", "0077"),
        ] {
            assert_eq!(directives(&text, key), vec![want.to_owned()], "{unit}: {key}");
        }
    }
}

#[test]
fn companions_agree_with_the_units_and_examples() {
    let tmpfiles = std::fs::read_to_string(repo().join("systemd/coffer.tmpfiles.conf")).unwrap();
    let data_line = tmpfiles
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&"/var/lib/coffer"))
        .expect("tmpfiles creates /var/lib/coffer");
    assert_eq!(data_line[..5], ["d", "/var/lib/coffer", "0700", "coffer", "coffer"]);
    let sysusers = std::fs::read_to_string(repo().join("systemd/coffer.sysusers.conf")).unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("u coffer ")), "{sysusers}");
    let env = std::fs::read_to_string(repo().join("systemd/coffer.env.example")).unwrap();
    for var in ["COFFER_LOG_LEVEL", "COFFER_UNSEAL_KEY"] {
        assert!(env.contains(&format!("#{var}=")), "{var} documented in coffer.env.example");
    }
    // Production examples keep their data where the unit may write.
    for example in ["single.toml", "static-seal.toml", "vault.hcl", "vault.json"] {
        let text = std::fs::read_to_string(repo().join("config").join(example)).unwrap();
        assert!(text.contains("\"/var/lib/coffer/data\""), "{example} stores data under /var/lib/coffer");
    }
}

/// `coffer@nodeN` fits a node of `config/cluster/`: the unit writes where the example keeps its
/// raft data and audit log, and reads `/etc/coffer/nodeN.toml`, or the file `COFFER_CONFIG`
/// names in `/etc/coffer/nodeN.env` (an `.hcl` node).
#[test]
fn instance_unit_fits_the_cluster_examples() {
    let unit = std::fs::read_to_string(repo().join("systemd/coffer@.service")).unwrap();
    assert_eq!(directives(&unit, "Environment"), ["COFFER_CONFIG=/etc/coffer/%i.toml"]);
    assert_eq!(directives(&unit, "EnvironmentFile"), ["-/etc/coffer/%i.env"]);
    assert_eq!(directives(&unit, "ExecStart"), ["/usr/bin/coffer server --config ${COFFER_CONFIG}"]);
    // EnvironmentFile= must come after Environment= in the reading order systemd documents
    // (the file wins either way, but keep the unit readable top to bottom).
    let env_at = unit.find("Environment=COFFER_CONFIG").unwrap();
    assert!(env_at < unit.find("EnvironmentFile=").unwrap());
    for i in 1..=3 {
        let state_dir = format!("/var/lib/coffer/node{i}");
        for ext in ["hcl", "toml"] {
            let text = std::fs::read_to_string(repo().join(format!("config/cluster/node{i}.{ext}"))).unwrap();
            for path in [format!("{state_dir}/data\""), format!("{state_dir}/audit.log\"")] {
                assert!(text.contains(&path), "node{i}.{ext} keeps {path} under {state_dir}");
            }
            assert!(
                text.contains(&format!("coffer@node{i}")),
                "node{i}.{ext} says which unit instance runs it"
            );
        }
    }
}
