//! `TestCluster`: real `coffer server` processes forming a Raft cluster on loopback.
//!
//! Node `i` listens on its own address `127.0.0.<base+i>` (API and cluster ports chosen free),
//! keeps its data in a temporary directory, and advertises as its cluster address a
//! [`Proxy`] the harness owns in front of its cluster port. Nodes dial peers from their own
//! address, so the proxy in front of node `j` knows which node a connection comes from: a
//! partition is a set of per-source faults ([`TestCluster::isolate`]). Configurations are the
//! Vault-style JSON an operator would write (`storage "raft"` with `retry_join` to the other
//! nodes' API addresses, a `tcp` listener with `cluster_address` and `tls_disable`, `api_addr`,
//! `cluster_addr`, a static seal so restarted nodes unseal themselves, or Shamir).
//!
//! Nothing sleeps a fixed time: every wait polls with a deadline.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::proxy::{Fault, Proxy};
use crate::harness::{call, http_client, wait_for, Server};

/// Each cluster takes a fresh block of loopback addresses, so parallel tests never share one.
static NEXT_BLOCK: AtomicU8 = AtomicU8::new(0);

/// How a cluster unseals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seal {
    /// A static key from the environment: nodes unseal (and join) by themselves.
    Static,
    /// Shamir shares (5/3): the operator unseals each node, joiners with the cluster's shares.
    Shamir,
}

/// Options of a test cluster.
#[derive(Clone, Debug)]
pub struct Options {
    pub nodes: usize,
    pub seal: Seal,
    pub snapshot_threshold: u64,
    pub trailing_logs: u64,
    pub election_timeout: &'static str,
    pub heartbeat_interval: &'static str,
    /// The static seal key (base64); a random one when `None`.
    pub static_key: Option<String>,
    pub log_level: &'static str,
    /// Write only settings OpenBao's own configuration accepts (no coffer tuning keys).
    pub vault_compatible: bool,
    /// Extra environment of every node (debug-build fault injection knobs).
    pub env: Vec<(&'static str, &'static str)>,
    /// Extra environment of one node: `(node index, name, value)`.
    pub node_env: Vec<(usize, &'static str, &'static str)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 3,
            seal: Seal::Static,
            snapshot_threshold: 8192,
            trailing_logs: 10_000,
            election_timeout: "1s",
            heartbeat_interval: "150ms",
            static_key: None,
            log_level: "info",
            vault_compatible: false,
            env: Vec::new(),
            node_env: Vec::new(),
        }
    }
}

/// One node of the cluster.
pub struct Node {
    /// 1-based index.
    pub idx: usize,
    pub name: String,
    pub ip: IpAddr,
    pub api: SocketAddr,
    pub cluster: SocketAddr,
    /// Fault proxy in front of the cluster port (the advertised `cluster_addr`).
    pub proxy: Proxy,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub server: Option<Server>,
}

impl Node {
    /// `http://ip:port`.
    pub fn addr(&self) -> String {
        format!("http://{}", self.api)
    }
}

/// With `COFFER_IT_KEEP_LOGS=<dir>`, the log of every node process the harness kills (and what
/// [`TestCluster::keep_logs`] is asked to keep) is appended to `<dir>/node<i>.log`: a restarted
/// node's earlier processes are otherwise gone when a long run fails. Off by default.
pub fn keep_log(i: usize, why: &str, text: &str) {
    let Some(dir) = std::env::var_os("COFFER_IT_KEEP_LOGS") else { return };
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("node{i}.log"));
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut out = format!("===== node {i} process log ({why}, at unix {:.3} s) =====\n", at.as_secs_f64());
    out.push_str(text);
    out.push('\n');
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(out.as_bytes()));
    if let Err(e) = written {
        eprintln!("could not keep node {i}'s log in {}: {e}", path.display());
    }
}

/// A running cluster.
pub struct TestCluster {
    pub nodes: Vec<Node>,
    pub root: String,
    /// Unseal shares (Shamir) or recovery shares (static), hex.
    pub shares: Vec<String>,
    pub options: Options,
    key_b64: String,
    tmp: tempfile::TempDir,
}

/// A listener on a free port of `ip`, to be dropped right before the port is used.
fn hold_port(ip: IpAddr) -> std::net::TcpListener {
    std::net::TcpListener::bind((ip, 0)).unwrap()
}

/// Polls until `f` returns `Some`, for at most `limit`.
pub fn eventually<T>(what: &str, limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for(what, limit, f)
}

impl TestCluster {
    /// Starts `options.nodes` nodes, initialises node 1 and waits until every node is a voter
    /// and unsealed.
    pub fn start(options: Options) -> TestCluster {
        let mut c = Self::launch(options);
        c.init();
        c.wait_for_members(c.nodes.len());
        c
    }

    /// Starts the processes (not initialised).
    pub fn launch(options: Options) -> TestCluster {
        let tmp = tempfile::tempdir().unwrap();
        let block = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        let key_b64 = options.static_key.clone().unwrap_or_else(|| {
            use base64::Engine;
            let key: [u8; 32] = rand::random();
            base64::engine::general_purpose::STANDARD.encode(key)
        });
        let mut nodes = Vec::new();
        for idx in 1..=options.nodes {
            // 127.0.<100+block>.<idx>: a /24 per cluster.
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 100u8.wrapping_add(block), idx as u8));
            // The ports are held until the proxy has its own: with each listener dropped at
            // once, the proxy (or the second port) could be given the port just released.
            let (api_hold, cluster_hold) = (hold_port(ip), hold_port(ip));
            let api = api_hold.local_addr().unwrap();
            let cluster = cluster_hold.local_addr().unwrap();
            let proxy = Proxy::start(ip, cluster);
            drop((api_hold, cluster_hold));
            let dir = tmp.path().join(format!("node{idx}"));
            std::fs::create_dir_all(&dir).unwrap();
            let config = tmp.path().join(format!("node{idx}.json"));
            nodes.push(Node {
                idx,
                name: format!("node{idx}"),
                ip,
                api,
                cluster,
                proxy,
                dir,
                config,
                server: None,
            });
        }
        let mut c = TestCluster { nodes, root: String::new(), shares: Vec::new(), options, key_b64, tmp };
        for i in 1..=c.nodes.len() {
            c.write_config(i);
            c.start_node(i);
        }
        c
    }

    fn node(&self, i: usize) -> &Node {
        &self.nodes[i - 1]
    }

    /// Writes node `i`'s configuration (Vault-style JSON).
    pub fn write_config(&self, i: usize) {
        let n = self.node(i);
        let joins: Vec<Value> = self
            .nodes
            .iter()
            .filter(|o| o.idx != i)
            .map(|o| json!({ "leader_api_addr": o.addr() }))
            .collect();
        let seal = match self.options.seal {
            Seal::Static => json!({"static": {"current_key_id": "k1", "current_key": "env:COFFER_TEST_KEY"}}),
            Seal::Shamir => json!({"shamir": {}}),
        };
        let mut config = json!({
            "storage": {"raft": {
                "path": n.dir,
                "node_id": n.name,
                "retry_join": joins,
                "snapshot_threshold": self.options.snapshot_threshold,
                "trailing_logs": self.options.trailing_logs,
                "election_timeout": self.options.election_timeout,
                "heartbeat_interval": self.options.heartbeat_interval,
            }},
            "listener": [{"tcp": {"address": n.api.to_string(), "cluster_address": n.cluster.to_string(), "tls_disable": true}}],
            "api_addr": n.addr(),
            "cluster_addr": format!("https://{}", n.proxy.addr()),
            "disable_mlock": true,
            "log_level": self.options.log_level,
        });
        if self.options.seal == Seal::Static {
            config["seal"] = seal;
        }
        if self.options.vault_compatible {
            let raft = &mut config["storage"]["raft"];
            for key in ["election_timeout", "heartbeat_interval"] {
                if let Some(m) = raft.as_object_mut() {
                    m.remove(key);
                }
            }
            if let Some(m) = config.as_object_mut() {
                m.remove("log_level");
            }
        }
        std::fs::write(&n.config, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    }

    /// Starts node `i`'s process (its data directory as it is).
    pub fn start_node(&mut self, i: usize) {
        let mut env = vec![("COFFER_TEST_KEY", self.key_b64.as_str())];
        env.extend(self.options.env.iter().copied());
        env.extend(self.options.node_env.iter().filter(|(n, _, _)| *n == i).map(|&(_, k, v)| (k, v)));
        let config = self.node(i).config.clone();
        let mut s = Server::with_config(&config, None, &env);
        s.token = self.root.clone();
        self.nodes[i - 1].server = Some(s);
    }

    /// SIGKILL on node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut s) = self.nodes[i - 1].server.take() {
            s.kill();
            keep_log(i, "killed", &s.stderr.text());
        }
    }

    /// Appends every running node's log so far to the kept logs (see [`keep_log`]).
    pub fn keep_logs(&self, why: &str) {
        for i in 1..=self.nodes.len() {
            keep_log(i, why, &self.log(i));
        }
    }

    /// Kills and starts node `i` again over its data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.start_node(i);
        if self.options.seal == Seal::Shamir {
            self.unseal(i);
        }
    }

    /// Deletes node `i`'s data (the node must be stopped).
    pub fn wipe(&mut self, i: usize) {
        assert!(self.node(i).server.is_none(), "stop node {i} before wiping it");
        let dir = self.node(i).dir.clone();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
    }

    /// Whether node `i` runs.
    pub fn is_up(&self, i: usize) -> bool {
        self.node(i).server.is_some()
    }

    /// Node `i`'s captured log.
    pub fn log(&self, i: usize) -> String {
        self.node(i).server.as_ref().map(|s| s.stderr.text()).unwrap_or_default()
    }

    /// A request to node `i` with the root token (or `token`); (status, body or Null).
    pub fn call_as(
        &self,
        i: usize,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let client = http_client(None);
        call(&client, &self.node(i).addr(), token, method, path, body)
    }

    /// A request to node `i` with the root token.
    pub fn call(&self, i: usize, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(i, &self.root, method, path, body)
    }

    /// Initialises the cluster on node 1 and unseals it (Shamir).
    pub fn init(&mut self) {
        let (st, b) = match self.options.seal {
            Seal::Static => self.call_as(
                1,
                "",
                "PUT",
                "sys/init",
                Some(json!({"recovery_shares": 3, "recovery_threshold": 2})),
            ),
            Seal::Shamir => self.call_as(
                1,
                "",
                "PUT",
                "sys/init",
                Some(json!({"secret_shares": 5, "secret_threshold": 3})),
            ),
        };
        assert_eq!(st, 200, "init: {b}");
        self.root = b["root_token"].as_str().unwrap().to_owned();
        let key = if self.options.seal == Seal::Static { "recovery_keys" } else { "keys" };
        self.shares = b[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        for n in &mut self.nodes {
            if let Some(s) = n.server.as_mut() {
                s.token = self.root.clone();
            }
        }
        if self.options.seal == Seal::Shamir {
            self.unseal(1);
        }
    }

    /// Unseals node `i` with the cluster's shares (waits until it holds a join ticket or its
    /// data, as a joining node only accepts shares once it asked the leader).
    pub fn unseal(&self, i: usize) {
        eventually(&format!("node {i} to know the seal configuration"), Duration::from_secs(60), || {
            let (st, b) = self.call_as(i, "", "GET", "sys/seal-status", None);
            (st == 200 && b["initialized"] == true).then_some(())
        });
        for share in &self.shares[..3] {
            let (st, b) = self.call_as(i, "", "PUT", "sys/unseal", Some(json!({ "key": share })));
            assert_eq!(st, 200, "unseal node {i}: {b}");
            if b["sealed"] == false {
                return;
            }
        }
        let (_, b) = self.call_as(i, "", "GET", "sys/seal-status", None);
        assert_eq!(b["sealed"], false, "node {i} is still sealed after three shares: {b}");
    }

    /// Waits until `n` nodes are voters in the leader's configuration and every running node is
    /// unsealed.
    pub fn wait_for_members(&self, n: usize) {
        eventually(&format!("{n} voters"), Duration::from_secs(90), || {
            let leader = self.find_leader()?;
            let (st, b) = self.call(leader, "GET", "sys/storage/raft/configuration", None);
            let voters =
                b["data"]["config"]["servers"].as_array()?.iter().filter(|s| s["voter"] == true).count();
            (st == 200 && voters == n).then_some(())
        });
        for n in self.nodes.iter().filter(|n| n.server.is_some()) {
            eventually(&format!("node {} unsealed", n.idx), Duration::from_secs(60), || {
                let (_, b) = self.call_as(n.idx, "", "GET", "sys/seal-status", None);
                (b["sealed"] == false).then_some(())
            });
        }
    }

    /// The node that says it is the active node (`sys/leader` `is_self`), if any.
    pub fn find_leader(&self) -> Option<usize> {
        self.nodes.iter().filter(|n| n.server.is_some()).find_map(|n| {
            let (st, b) = self.call_as(n.idx, "", "GET", "sys/leader", None);
            (st == 200 && b["is_self"] == true).then_some(n.idx)
        })
    }

    /// Waits for a leader among the running nodes, other than `not`.
    pub fn wait_leader_except(&self, not: Option<usize>) -> usize {
        eventually("a leader", Duration::from_secs(60), || self.find_leader().filter(|l| Some(*l) != not))
    }

    /// Waits for a leader.
    pub fn leader(&self) -> usize {
        self.wait_leader_except(None)
    }

    /// A running node that is not `i`.
    pub fn other_than(&self, i: usize) -> usize {
        self.nodes.iter().find(|n| n.idx != i && n.server.is_some()).map(|n| n.idx).unwrap()
    }

    /// Cuts node `i` off: no cluster traffic to or from it passes (connections stay open and
    /// go silent, as in a real partition). Clients can still reach it.
    pub fn isolate(&self, i: usize) {
        let me = self.node(i).ip;
        for n in &self.nodes {
            if n.idx == i {
                n.proxy.set_default(Fault::Blackhole);
            } else {
                n.proxy.set(me, Fault::Blackhole);
            }
        }
    }

    /// Cuts one direction: nothing node `from` sends reaches node `to` (its requests to `to`
    /// and its answers to `to`'s requests are swallowed); `to` still reaches `from`.
    pub fn cut(&self, from: usize, to: usize) {
        let (from_ip, to_ip) = (self.node(from).ip, self.node(to).ip);
        // `from` dialing `to`: the proxy in front of `to`, bytes going to `to`.
        self.node(to).proxy.set(from_ip, Fault::CutRequests);
        // `to` dialing `from`: the proxy in front of `from`, bytes coming back from `from`.
        self.node(from).proxy.set(to_ip, Fault::CutResponses);
    }

    /// SIGSTOP on node `i`: the process freezes (a paused leader still believes it leads).
    pub fn pause(&self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGSTOP);
    }

    /// SIGCONT on node `i`.
    pub fn resume(&self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGCONT);
    }

    /// What the operating system says about node `i`'s process, for a failure message: its
    /// state (`T` = still stopped), each thread's name, state and kernel wait channel, and —
    /// when `gdb` is installed — every thread's stack. A node that stops answering leaves
    /// evidence of why instead of only "no answer" (bench/SOAK.md attempts 11 and 27).
    pub fn process_report(&self, i: usize) -> String {
        let Some(s) = self.node(i).server.as_ref() else { return format!("node {i}: not running\n") };
        let pid = s.child.id();
        let mut out = String::new();
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return format!("node {i} pid {pid}: no /proc entry (the process is gone)\n");
        };
        for l in status.lines().filter(|l| l.starts_with("State:") || l.starts_with("Threads:")) {
            out.push_str(&format!("node {i} pid {pid} {l}\n"));
        }
        let mut threads: Vec<String> = Vec::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in dir.flatten() {
                let base = t.path();
                let read = |f: &str| std::fs::read_to_string(base.join(f)).unwrap_or_default();
                let stat = read("stat");
                let state =
                    stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).unwrap_or("?");
                threads.push(format!("{} {state} {}", read("comm").trim(), read("wchan").trim()));
            }
        }
        threads.sort();
        out.push_str(&format!("node {i} threads (name state wchan): {}\n", threads.join(", ")));
        let gdb = std::process::Command::new("timeout")
            .args(["60", "gdb", "-p", &pid.to_string(), "-batch", "-ex", "thread apply all bt 30"])
            .output();
        if let Ok(o) = gdb {
            if o.status.success() {
                let text = String::from_utf8_lossy(&o.stdout);
                // The frames, without gdb's chatter about loading symbols.
                for l in text.lines().filter(|l| l.starts_with('#') || l.starts_with("Thread ")) {
                    let l: String = l.chars().take(200).collect();
                    out.push_str(&format!("  node {i} gdb| {l}\n"));
                }
            }
        }
        out
    }

    fn signal(&self, i: usize, sig: nix::sys::signal::Signal) {
        let s = self.node(i).server.as_ref().unwrap_or_else(|| panic!("node {i} is not running"));
        let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap_or_else(|e| panic!("{sig} to node {i}: {e}"));
    }

    /// Every link passes again.
    pub fn heal(&self) {
        for n in &self.nodes {
            n.proxy.heal();
        }
    }

    /// Node `i`'s (applied index, state digest).
    pub fn digest(&self, i: usize) -> Option<(u64, String)> {
        let (st, b) = self.call(i, "GET", "sys/storage/raft/digest", None);
        if st != 200 {
            return None;
        }
        Some((b["data"]["applied_index"].as_u64()?, b["data"]["digest"].as_str()?.to_owned()))
    }

    /// Waits until every running node reports the same digest at the same applied index. On
    /// timeout the panic names what each node last reported and its last warnings.
    pub fn wait_same_digest(&self, limit: Duration) -> (u64, String) {
        let end = Instant::now() + limit;
        let mut backoff = Duration::from_millis(5);
        loop {
            let seen: Vec<(usize, Option<(u64, String)>)> = self
                .nodes
                .iter()
                .filter(|n| n.server.is_some())
                .map(|n| (n.idx, self.digest(n.idx)))
                .collect();
            if let Some((_, Some(first))) = seen.first() {
                if seen.iter().all(|(_, d)| d.as_ref() == Some(first)) {
                    return first.clone();
                }
            }
            if Instant::now() >= end {
                let mut report = String::new();
                for (i, d) in &seen {
                    report.push_str(&format!("\nnode {i}: {d:?}"));
                    let log = self.log(*i);
                    let warnings: Vec<&str> =
                        log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
                    for l in &warnings[warnings.len().saturating_sub(15)..] {
                        report.push_str(&format!("\n  {}", &l[..l.len().min(400)]));
                    }
                }
                panic!("timed out after {limit:?} waiting for every node to report the same state digest:{report}");
            }
            std::thread::park_timeout(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// The time since `start`, for reports.
    pub fn since(start: Instant) -> Duration {
        start.elapsed()
    }

    /// The static seal key (base64).
    pub fn static_key(&self) -> &str {
        &self.key_b64
    }

    /// The temporary directory everything lives in.
    pub fn dir(&self) -> &std::path::Path {
        self.tmp.path()
    }
}
