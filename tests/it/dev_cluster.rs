//! `coffer server --dev-cluster N`: the banner, writes through one standby read on another,
//! Ctrl-C stops every node and removes the data.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::harness::{self, wait_for, DEADLINE};

/// A running `coffer server --dev-cluster N` and what its banner said.
pub struct DevCluster {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// `(name, api address, role)` per node, in order.
    pub nodes: Vec<(String, String, String)>,
    pub leader: String,
    pub data_dir: PathBuf,
    pub token: String,
    pub unseal_key: String,
}

impl Drop for DevCluster {
    /// Stops the cluster as Ctrl-C does, so that it removes its temporary data (SIGKILL would
    /// leave it behind); kills it if it does not exit in time.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let end = std::time::Instant::now() + DEADLINE;
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < end {
                std::thread::park_timeout(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// The value after `prefix` on the first line that starts with it (after indentation).
fn banner_value(lines: &[String], prefix: &str) -> Option<String> {
    lines.iter().find_map(|l| l.trim_start().strip_prefix(prefix).map(|v| v.trim().to_owned()))
}

impl DevCluster {
    /// Starts an `n`-node dev cluster on ephemeral ports and waits for its banner.
    pub fn start(n: u8) -> DevCluster {
        let token = format!("root-{}", uuid::Uuid::new_v4().simple());
        let mut child = Command::new(harness::coffer_bin())
            .args(["server", "--dev-cluster", &n.to_string(), "--dev-listen-address", "127.0.0.1:0"])
            .args(["--dev-root-token-id", &token, "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coffer");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        let lines = wait_for("the dev cluster banner", DEADLINE, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("dev cluster exited early with {status}:\n{}", stderr.lock().unwrap().join("\n"));
            }
            let lines = stdout.lock().unwrap().clone();
            lines.iter().any(|l| l.starts_with("Development mode should NOT")).then_some(lines)
        });
        // "    node2: http://127.0.0.1:41234 (cluster 127.0.0.1:41235, standby)"
        let nodes: Vec<(String, String, String)> = lines
            .iter()
            .filter_map(|l| {
                let (name, rest) = l.trim_start().split_once(": ")?;
                if !name.starts_with("node") {
                    return None;
                }
                let (addr, rest) = rest.split_once(' ')?;
                let role = rest.trim_end_matches(')').rsplit(", ").next()?.to_owned();
                Some((name.to_owned(), addr.to_owned(), role))
            })
            .collect();
        let leader = banner_value(&lines, "Leader:").expect("Leader line");
        let data_dir = PathBuf::from(banner_value(&lines, "Data:").expect("Data line"));
        let printed_token = banner_value(&lines, "Root Token:").expect("Root Token line");
        let unseal_key = banner_value(&lines, "Unseal Key:").expect("Unseal Key line");
        assert_eq!(printed_token, token, "--dev-root-token-id is honoured");
        DevCluster { child, stdout, stderr, nodes, leader, data_dir, token, unseal_key }
    }

    /// API addresses of the standbys.
    pub fn standbys(&self) -> Vec<String> {
        self.nodes.iter().filter(|(_, _, role)| role == "standby").map(|(_, a, _)| a.clone()).collect()
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process to exit.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
        wait_for("the dev cluster to exit", DEADLINE, || self.child.try_wait().ok().flatten())
    }

    fn logs(&self) -> String {
        format!("{}\n{}", self.stdout.lock().unwrap().join("\n"), self.stderr.lock().unwrap().join("\n"))
    }
}

#[test]
fn dev_cluster_writes_through_one_standby_and_reads_from_the_other() {
    let mut cluster = DevCluster::start(3);
    assert_eq!(cluster.nodes.len(), 3, "three nodes in the banner:\n{}", cluster.logs());
    let names: Vec<&str> = cluster.nodes.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["node1", "node2", "node3"]);
    let (_, leader_addr, _) = cluster.nodes.iter().find(|(_, _, r)| r == "leader").expect("a leader").clone();
    assert!(cluster.leader.ends_with(&leader_addr), "Leader line {:?} names {leader_addr}", cluster.leader);
    let standbys = cluster.standbys();
    assert_eq!(standbys.len(), 2, "two standbys:\n{}", cluster.logs());
    assert!(!cluster.unseal_key.is_empty());
    assert!(cluster.data_dir.is_dir(), "data directory {} exists while running", cluster.data_dir.display());

    let c = harness::http_client(None);
    // Every node is unsealed and knows the leader.
    for (name, addr, _) in &cluster.nodes {
        let (status, leader) = harness::call(&c, addr, "", "GET", "sys/leader", None);
        assert_eq!(status, 200, "{name}: {leader}");
        assert_eq!(leader["ha_enabled"], true);
        assert_eq!(leader["leader_address"], leader_addr.as_str(), "{name}: {leader}");
        assert_eq!(leader["is_self"], *addr == leader_addr, "{name}: {leader}");
    }

    // A write through one standby (forwarded to the leader) ...
    let (status, body) = harness::call(
        &c,
        &standbys[0],
        &cluster.token,
        "PUT",
        "secret/data/dev-cluster",
        Some(json!({"data": {"answer": "42"}})),
    );
    assert_eq!(status, 200, "write through {}: {body}", standbys[0]);
    assert_eq!(body["data"]["version"], 1);
    // ... is read on the other standby (local read after a read-index round).
    let (status, body) =
        harness::call(&c, &standbys[1], &cluster.token, "GET", "secret/data/dev-cluster", None);
    assert_eq!(status, 200, "read on {}: {body}", standbys[1]);
    assert_eq!(body["data"]["data"]["answer"], "42");

    // Ctrl-C stops every node and removes the data.
    let status = cluster.interrupt();
    assert!(status.success(), "clean exit after SIGINT, got {status}:\n{}", cluster.logs());
    assert!(!cluster.data_dir.exists(), "{} is removed at exit", cluster.data_dir.display());
    for (name, addr, _) in &cluster.nodes {
        let hostport = addr.trim_start_matches("http://");
        assert!(std::net::TcpStream::connect(hostport).is_err(), "{name} ({addr}) still accepts connections");
    }
}

#[test]
fn dev_cluster_refuses_a_bad_node_count_and_dev_together() {
    for (args, expect) in [
        (vec!["--dev-cluster", "0"], "node count"),
        (vec!["--dev-cluster", "8"], "node count"),
        (vec!["--dev-cluster", "3", "--dev"], "cannot be used with"),
    ] {
        let mut cmd = Command::new(harness::coffer_bin());
        cmd.arg("server").args(&args).args(["--dev-listen-address", "127.0.0.1:0"]);
        let (status, stderr) = harness::run_to_exit(cmd);
        assert!(!status.success(), "{args:?} must be refused");
        assert!(stderr.contains(expect), "{args:?}: expected {expect:?} in:\n{stderr}");
    }
}

/// Runs `coffer ARGS` against `addr` with `token`; returns (exit code, stdout, stderr).
fn coffer_cli(addr: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(harness::coffer_bin())
        .args(args)
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", token)
        .env_remove("COFFER_ADDR")
        .env_remove("COFFER_TOKEN")
        .env_remove("BAO_ADDR")
        .env_remove("BAO_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run coffer");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `(node, state, voter)` rows of a `list-peers` table.
fn peer_rows(table: &str) -> Vec<(String, String, String)> {
    table
        .lines()
        .skip(2)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 4).then(|| (cols[0].to_owned(), cols[2].to_owned(), cols[3].to_owned()))
        })
        .collect()
}

#[test]
fn operator_raft_cli_lists_peers_saves_restores_removes_and_joins() {
    let cluster = DevCluster::start(3);
    let standby = cluster.standbys()[0].clone();
    let token = cluster.token.as_str();

    // list-peers through a standby: three voters, node1 leads.
    let (code, out, err) = coffer_cli(&standby, token, &["operator", "raft", "list-peers"]);
    assert_eq!(code, 0, "list-peers: {err}");
    let mut rows = peer_rows(&out);
    rows.sort();
    let want = |names: &[&str]| -> Vec<(String, String, String)> {
        names
            .iter()
            .map(|n| {
                (n.to_string(), if *n == "node1" { "leader" } else { "follower" }.to_string(), "true".into())
            })
            .collect()
    };
    assert_eq!(rows, want(&["node1", "node2", "node3"]), "{out}");

    // snapshot save writes a private gzip archive; restore takes it back.
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("cluster.snap");
    let snap_arg = snap.to_str().unwrap();
    let (code, _, err) = coffer_cli(&standby, token, &["operator", "raft", "snapshot", "save", snap_arg]);
    assert_eq!(code, 0, "snapshot save: {err}");
    let bytes = std::fs::read(&snap).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip archive");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&snap).unwrap().permissions().mode() & 0o777, 0o600);
    let (code, _, err) = coffer_cli(&standby, token, &["operator", "raft", "snapshot", "restore", snap_arg]);
    assert_eq!(code, 0, "snapshot restore: {err}");

    // remove-peer node3: two members left.
    let (code, out, err) = coffer_cli(&standby, token, &["operator", "raft", "remove-peer", "node3"]);
    assert_eq!(code, 0, "remove-peer: {err}");
    assert!(out.contains("Peer removed successfully!"), "{out}");
    let rows = wait_for("node3 to leave the configuration", DEADLINE, || {
        let (_, out, _) = coffer_cli(&standby, token, &["operator", "raft", "list-peers"]);
        let mut rows = peer_rows(&out);
        rows.sort();
        (rows.len() == 2).then_some(rows)
    });
    assert_eq!(rows, want(&["node1", "node2"]));

    // join: a fresh raft node joins through `operator raft join`, then unseals with the key.
    let port = harness::free_port();
    let cluster_port = harness::free_port();
    let config = dir.path().join("node4.hcl");
    std::fs::write(
        &config,
        format!(
            r#"storage "raft" {{
  path    = "{data}"
  node_id = "node4"
}}
listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable     = true
}}
api_addr      = "http://127.0.0.1:{port}"
cluster_addr  = "https://127.0.0.1:{cluster_port}"
disable_mlock = true
"#,
            data = dir.path().join("node4").display()
        ),
    )
    .unwrap();
    let node4 = harness::Server::with_config(&config, None, &[]);
    let (_, leader_addr, _) = cluster.nodes.iter().find(|(_, _, r)| r == "leader").unwrap().clone();
    let (code, out, err) = coffer_cli(&node4.addr, "", &["operator", "raft", "join", &leader_addr]);
    assert_eq!(code, 0, "join: {err}");
    assert!(out.lines().any(|l| l.split_whitespace().eq(["Joined", "true"])), "{out}");
    let (code, _, err) = coffer_cli(&node4.addr, "", &["operator", "unseal", &cluster.unseal_key]);
    assert_eq!(code, 0, "unseal node4: {err}\n{}", node4.stderr.text());
    let rows = wait_for("node4 to be a voter", DEADLINE, || {
        let (_, out, _) = coffer_cli(&node4.addr, token, &["operator", "raft", "list-peers"]);
        let mut rows = peer_rows(&out);
        rows.sort();
        (rows.len() == 3).then_some(rows)
    });
    assert_eq!(rows, want(&["node1", "node2", "node4"]));
    let (code, out, err) = coffer_cli(&node4.addr, token, &["operator", "raft", "join", &leader_addr]);
    assert_ne!(code, 0, "a member cannot join again: {out}");
    assert!(err.contains("already"), "{err}");
}

#[test]
fn bao_operator_raft_list_peers_works_against_a_dev_cluster() {
    if !harness::require_bao("bao_operator_raft_list_peers_works_against_a_dev_cluster") {
        return;
    }
    let cluster = DevCluster::start(3);
    let standby = cluster.standbys()[1].clone();
    let out = Command::new("bao")
        .args(["operator", "raft", "list-peers"])
        .env("VAULT_ADDR", &standby)
        .env("VAULT_TOKEN", &cluster.token)
        .env_remove("BAO_ADDR")
        .env_remove("BAO_TOKEN")
        .output()
        .expect("run bao");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rows = peer_rows(&text);
    rows.sort();
    let names: Vec<&str> = rows.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["node1", "node2", "node3"], "{text}");
    assert_eq!(rows.iter().filter(|(_, s, _)| s == "leader").count(), 1, "{text}");
}
