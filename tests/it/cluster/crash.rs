//! Crash consistency and process hygiene on the cluster (issue 13, "Crash loops" and "Security
//! on the cluster"): SIGKILL loops during writes (R1), the fsync-before-acknowledgement audit
//! under `strace` (R12), S8 read back from `/proc` on every node, a disk-full node on a small
//! tmpfs (R9) and an injected fsync failure (R10).
//!
//! Every write is a KV v2 write of a fresh key whose value is the key itself, so "every
//! acknowledged write is readable" is checked key by key: one `LIST` per node covers all keys
//! acknowledged so far, and the keys acknowledged since the last check are read back on every
//! node. Reads on followers are linearizable (read barrier), so a missing key right after its
//! acknowledgement is a violation, not lag: only transport errors and 5xx are retried.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::harness::{eventually, Options, TestCluster};
use crate::harness::http_client;

/// Mounts `kv/` (v2) through node `via`.
fn mount_kv(c: &TestCluster, via: usize) {
    let (st, b) =
        c.call(via, "POST", "sys/mounts/kv", Some(json!({"type": "kv", "options": {"version": "2"}})));
    assert_eq!(st, 204, "{b}");
}

/// The seed of a randomised test: `COFFER_TEST_SEED` or a fresh one (printed, to replay).
fn seed(test: &str) -> u64 {
    let seed =
        std::env::var("COFFER_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (replay with COFFER_TEST_SEED={seed})");
    seed
}

/// Rewrites node `i`'s configuration with `edit` and restarts it over its data; waits until the
/// cluster has three voters again, all unsealed.
pub(super) fn reconfigure(c: &mut TestCluster, i: usize, edit: impl Fn(&mut Value)) {
    let path = c.nodes[i - 1].config.clone();
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    c.restart(i);
    c.wait_for_members(c.nodes.len());
}

/// Background writers: each writes fresh keys `kv/data/<prefix>-w<w>-<i>` (value: the key,
/// padded to `pad` bytes) to the nodes in turn and records the keys acknowledged with a 200.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    /// When the newest acknowledgement arrived.
    last_ok: Arc<Mutex<Option<Instant>>>,
    failed: Arc<AtomicUsize>,
    handles: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(c: &TestCluster, threads: usize, prefix: &str, pad: usize) -> Writers {
        let addrs: Vec<String> = c.nodes.iter().map(|n| n.addr()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<String>>> = Arc::default();
        let last_ok: Arc<Mutex<Option<Instant>>> = Arc::default();
        let failed: Arc<AtomicUsize> = Arc::default();
        let mut handles = Vec::new();
        for w in 0..threads {
            let (addrs, stop, acked, last_ok, failed, token, prefix) = (
                addrs.clone(),
                Arc::clone(&stop),
                Arc::clone(&acked),
                Arc::clone(&last_ok),
                Arc::clone(&failed),
                c.root.clone(),
                prefix.to_owned(),
            );
            handles.push(std::thread::spawn(move || {
                let client =
                    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let key = format!("{prefix}-w{w}-{i}");
                    let addr = &addrs[(i + w) % addrs.len()];
                    let r = client
                        .post(format!("{addr}/v1/kv/data/{key}"))
                        .header("X-Vault-Token", &token)
                        .json(&json!({"data": {"v": key, "pad": "x".repeat(pad)}}))
                        .send();
                    match r {
                        Ok(r) if r.status().as_u16() == 200 => {
                            acked.lock().unwrap().push(key);
                            *last_ok.lock().unwrap() = Some(Instant::now());
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        Writers { stop, acked, last_ok, failed, handles }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// How long after `since` a write was acknowledged: the newest acknowledgement when the poll
    /// (at most 200 ms apart) first sees one after `since` — R5's fail-over time, to within a
    /// poll, when `since` is the leader's kill.
    fn resumed_after(&self, what: &str, since: Instant) -> Duration {
        eventually(what, Duration::from_secs(60), || {
            self.last_ok.lock().unwrap().filter(|t| *t > since).map(|t| t - since)
        })
    }

    /// Waits until `more` writes were acknowledged after this call.
    fn wait_more(&self, what: &str, more: usize, limit: Duration) {
        let from = self.count();
        eventually(what, limit, || (self.count() >= from + more).then_some(()));
    }

    fn stop(self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            h.join().unwrap();
        }
        let failed = self.failed.load(Ordering::Relaxed);
        (Arc::try_unwrap(self.acked).map(|m| m.into_inner().unwrap()).unwrap_or_default(), failed)
    }
}

/// One read with the root token that is retried while the node answers with a transport error
/// or a 5xx (restarting, electing); any other answer is returned.
fn read_settled(client: &reqwest::blocking::Client, c: &TestCluster, n: usize, path: &str) -> (u16, Value) {
    let addr = c.nodes[n - 1].addr();
    eventually(&format!("node {n} to answer GET {path}"), Duration::from_secs(60), || {
        let r = client.get(format!("{addr}/v1/{path}")).header("X-Vault-Token", &c.root).send().ok()?;
        let st = r.status().as_u16();
        if st >= 500 {
            return None;
        }
        let text = r.text().ok()?;
        Some((st, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    })
}

/// Every running node lists every key of `all` (one linearizable LIST each) and returns the
/// value of every key of `fresh`.
fn verify_acked(c: &TestCluster, all: &[String], fresh: &[String], when: &str) {
    let client = http_client(None);
    for n in c.nodes.iter().filter(|n| n.server.is_some()).map(|n| n.idx) {
        let (st, b) = read_settled(&client, c, n, "kv/metadata/?list=true");
        assert_eq!(st, 200, "{when}: LIST on node {n}: {b}");
        let listed: BTreeSet<&str> =
            b["data"]["keys"].as_array().unwrap().iter().filter_map(|k| k.as_str()).collect();
        let lost: Vec<&String> = all.iter().filter(|k| !listed.contains(k.as_str())).collect();
        assert!(lost.is_empty(), "{when}: node {n} lost {} acknowledged writes: {lost:?}", lost.len());
        for key in fresh {
            let (st, b) = read_settled(&client, c, n, &format!("kv/data/{key}"));
            assert_eq!(
                (st, b["data"]["data"]["v"].clone()),
                (200, json!(key)),
                "{when}: node {n} does not return acknowledged write {key}"
            );
        }
    }
}

/// The crash loop: `rounds` times, with writers running, SIGKILL a random node (the leader at
/// least every third round; then the time to the next acknowledged write is R5's fail-over
/// time, reported with the counts), let the other two acknowledge more writes, restart it over its
/// data and let all three acknowledge more; then stop the writers and check every write
/// acknowledged so far on every node (the round's writes by value, all of them by a LIST).
fn crash_loop(rounds: usize) {
    let started = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed("crash_loop"));
    let mut c = TestCluster::start(Options::default());
    let leader = c.leader();
    mount_kv(&c, leader);
    let mut all: Vec<String> = Vec::new();
    let (mut leader_kills, mut refused) = (0, 0);
    // R5: from each leader's SIGKILL to the next acknowledged write.
    let mut failovers: Vec<Duration> = Vec::new();
    for round in 0..rounds {
        let writers = Writers::start(&c, 2, &format!("crash-r{round}"), 0);
        writers.wait_more(&format!("round {round}: writes to flow"), 10, Duration::from_secs(60));
        let leader = c.leader();
        let victim = if round % 3 == 0 { leader } else { rng.gen_range(1..=c.nodes.len()) };
        leader_kills += usize::from(victim == leader);
        let killed_at = Instant::now();
        c.kill(victim);
        if victim == leader {
            let took = writers.resumed_after(&format!("round {round}: writes to resume"), killed_at);
            if took > Duration::from_secs(3) {
                // A slow fail-over: the survivors' latest lines about votes.
                for n in (1..=c.nodes.len()).filter(|n| *n != victim) {
                    let log = c.log(n);
                    let votes: Vec<&str> = log.lines().filter(|l| l.contains("vote")).collect();
                    for line in &votes[votes.len().saturating_sub(8)..] {
                        eprintln!(
                            "  round {round}, node {n}: {}",
                            line.chars().take(300).collect::<String>()
                        );
                    }
                }
            }
            eprintln!("round {round}: writes resumed {took:?} after leader {victim} was killed");
            failovers.push(took);
        }
        writers.wait_more(
            &format!("round {round}: writes acknowledged with node {victim} killed"),
            5,
            Duration::from_secs(60),
        );
        c.start_node(victim);
        c.wait_for_members(c.nodes.len());
        writers.wait_more(&format!("round {round}: writes after the restart"), 5, Duration::from_secs(60));
        let (fresh, failed) = writers.stop();
        refused += failed;
        all.extend(fresh.iter().cloned());
        verify_acked(&c, &all, &fresh, &format!("round {round} (killed node {victim}, leader {leader})"));
        eprintln!(
            "crash loop round {round}: killed node {victim} (leader {leader}); {} writes verified; {:?}",
            all.len(),
            started.elapsed()
        );
    }
    c.wait_same_digest(Duration::from_secs(60));
    failovers.sort();
    let at = |q: f64| failovers.get(((failovers.len() as f64 - 1.0) * q).round() as usize).copied();
    let report = format!(
        "crash loop: {rounds} rounds ({leader_kills} leader kills), {} writes acknowledged and \
         verified on every node, {refused} failed attempts (refused by a killed node, 5xx, timeouts), 0 lost, in {:?}\n\
         writes resumed after a leader kill (R5, {} kills): p50 {:?}, p90 {:?}, max {:?}\n",
        all.len(),
        started.elapsed(),
        failovers.len(),
        at(0.5).unwrap_or_default(),
        at(0.9).unwrap_or_default(),
        at(1.0).unwrap_or_default(),
    );
    eprint!("{report}");
    // The counts, for the soak tier's results (bench/soak collects them).
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir");
    let name = if rounds >= 200 { "crash-loop-soak-results.txt" } else { "crash-loop-results.txt" };
    if let Err(e) = std::fs::write(dir.join(name), &report) {
        eprintln!("could not write {name}: {e}");
    }
}

/// R1: kill -9 during writes, reopen, verify everything acknowledged; R5 measured: the time from
/// each leader kill to the next acknowledged write (CI tier: 15 rounds, at least 5 leader kills).
#[test]
fn crash_loop_sigkill_of_random_nodes_during_writes_loses_no_acknowledged_write() {
    crash_loop(15);
}

/// R1, soak tier: 200 rounds, at least 67 leader kills whose fail-over times are reported
/// (`cargo test --test it -- --ignored soak`).
#[test]
#[ignore = "soak tier: cargo test --test it -- --ignored soak"]
fn crash_loop_soak_200_rounds_loses_no_acknowledged_write() {
    crash_loop(200);
}

// ----- R12: fsync between append and acknowledgement, under strace -----

/// One completed system call from a strace log.
#[derive(Debug, Clone)]
struct Syscall {
    name: String,
    /// The file of the first argument (`-y`), empty when there is none.
    path: String,
    start: f64,
    end: f64,
    ok: bool,
}

/// The result of a strace line (`... = N <dur>`): whether N ≥ 0, and the duration.
fn outcome(rest: &str) -> (bool, f64) {
    let ok = rest
        .rfind(" = ")
        .and_then(|p| rest[p + 3..].split_whitespace().next())
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|v| v >= 0);
    let dur = rest
        .rfind('<')
        .filter(|_| rest.ends_with('>'))
        .and_then(|p| rest[p + 1..rest.len() - 1].parse::<f64>().ok())
        .unwrap_or(0.0);
    (ok, dur)
}

/// Parses `strace -f -ttt -T -y -o FILE` output (`PID SECONDS.MICROS call(fd</path>, ...) = r
/// <dur>`, with `<unfinished ...>` / `<... call resumed>` pairs) into completed calls.
fn parse_strace(text: &str) -> Vec<Syscall> {
    let mut pending: BTreeMap<String, Syscall> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(pid), Some(ts), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(ts) = ts.parse::<f64>() else { continue };
        let rest = rest.trim();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some(mut call) = pending.remove(pid) else { continue };
            let name = resumed.split(' ').next().unwrap_or_default();
            if name != call.name {
                continue;
            }
            let (ok, _) = outcome(resumed);
            call.end = ts;
            call.ok = ok;
            out.push(call);
            continue;
        }
        let Some(paren) = rest.find('(') else { continue };
        let name = rest[..paren].to_owned();
        let args = &rest[paren + 1..];
        let path = match (args.find('<'), args.find('>')) {
            (Some(a), Some(b)) if a < b && args[..a].chars().all(|ch| ch.is_ascii_digit()) => {
                args[a + 1..b].to_owned()
            }
            _ => String::new(),
        };
        let call = Syscall { name, path, start: ts, end: ts, ok: false };
        if rest.ends_with("<unfinished ...>") {
            pending.insert(pid.to_owned(), call);
        } else {
            let (ok, dur) = outcome(rest);
            out.push(Syscall { end: ts + dur, ok, ..call });
        }
    }
    out
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// `strace` attached to a running process, writing to `out`.
struct Strace {
    child: Child,
    out: PathBuf,
}

impl Strace {
    /// Attaches to every thread of `pid`; waits until each task reports a tracer.
    fn attach(pid: u32, out: &Path) -> Result<Strace, String> {
        let child = Command::new("strace")
            .args([
                "-f",
                "-ttt",
                "-T",
                "-y",
                "-e",
                "trace=fsync,fdatasync,sync_file_range,pwrite64,write",
                "-o",
            ])
            .arg(out)
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run strace: {e}"))?;
        let mut s = Strace { child, out: out.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(format!("strace exited with {status} (ptrace not permitted here?)"));
            }
            let traced = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map_err(|e| e.to_string())?
                .filter_map(|t| t.ok())
                .all(|t| {
                    std::fs::read_to_string(t.path().join("status")).is_ok_and(|st| {
                        st.lines()
                            .find(|l| l.starts_with("TracerPid:"))
                            .is_some_and(|l| l.split_whitespace().nth(1) != Some("0"))
                    })
                });
            if traced {
                return Ok(s);
            }
            if Instant::now() > deadline {
                return Err("strace did not attach to every thread within 30 s".into());
            }
            std::thread::yield_now();
        }
    }

    /// Detaches (SIGINT) and returns the parsed log.
    fn finish(mut self) -> Vec<Syscall> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
        parse_strace(&std::fs::read_to_string(&self.out).unwrap_or_default())
    }
}

impl Drop for Strace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `calls` hold a `pwrite64` to `db` followed by a successful fsync/fdatasync of `db`,
/// both inside `[from, to]`.
fn append_then_sync(calls: &[Syscall], wal: &str, from: f64, to: f64) -> usize {
    let first_append = calls
        .iter()
        .filter(|s| s.name == "pwrite64" && s.path.starts_with(wal) && s.ok && s.start >= from && s.end <= to)
        .map(|s| s.start)
        .fold(f64::INFINITY, f64::min);
    calls
        .iter()
        .filter(|s| {
            (s.name == "fsync" || s.name == "fdatasync")
                && s.path.starts_with(wal)
                && s.ok
                && s.start >= first_append
                && s.start >= from
                && s.end <= to
        })
        .count()
}

/// R12: every acknowledged write had, between its request and its response, an append to the
/// Raft log (a WAL segment under `raft/wal/`) followed by an fsync of it on the leader and on at least one follower (the
/// second node of the commit quorum). Writes are sequential, so each write owns its window.
#[test]
fn every_acknowledged_write_was_fsynced_on_the_leader_and_a_follower_before_the_ack() {
    if Command::new("strace").arg("-V").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("SKIPPED every_acknowledged_write_was_fsynced...: strace is not installed");
        return;
    }
    let c = TestCluster::start(Options::default());
    mount_kv(&c, c.leader());
    // An attempt is discarded (and said so) only when its premise did not hold: leadership
    // moved while strace held the leader's threads, or strace recorded nothing of the leader.
    let mut attempt = 0;
    let (leader, followers, logs, windows) = loop {
        attempt += 1;
        let leader = c.leader();
        let followers: Vec<usize> = (1..=3).filter(|n| *n != leader).collect();
        let db_of = |n: usize| {
            let dir = std::fs::canonicalize(&c.nodes[n - 1].dir).unwrap();
            format!("{}/", dir.join("raft").join("wal").display())
        };
        let mut traces = Vec::new();
        for n in std::iter::once(leader).chain(followers.iter().copied()) {
            let pid = c.nodes[n - 1].server.as_ref().unwrap().child.id();
            match Strace::attach(pid, &c.dir().join(format!("strace-{attempt}-node{n}.log"))) {
                Ok(s) => traces.push((n, s)),
                Err(e) => {
                    eprintln!("SKIPPED every_acknowledged_write_was_fsynced...: {e}");
                    return;
                }
            }
        }
        const WRITES: usize = 20;
        let mut windows = Vec::new();
        for i in 0..WRITES {
            let from = now_secs();
            let (st, b) =
                c.call(leader, "POST", &format!("kv/data/sync{i}"), Some(json!({"data": {"i": i}})));
            let to = now_secs();
            assert_eq!(st, 200, "{b}");
            windows.push((from, to));
        }
        let logs: BTreeMap<usize, Vec<Syscall>> = traces.into_iter().map(|(n, s)| (n, s.finish())).collect();
        let still = c.find_leader() == Some(leader);
        let traced = logs[&leader].len();
        let synced = logs[&leader]
            .iter()
            .filter(|s| (s.name == "fsync" || s.name == "fdatasync") && s.path.starts_with(&db_of(leader)))
            .count();
        if synced == 0 && (!still || traced == 0) && attempt < 3 {
            eprintln!(
                "R12 attempt {attempt} discarded: leader still node {leader}: {still}; syscalls traced on it: {traced}"
            );
            continue;
        }
        if traced == 0 {
            // strace attached (every thread showed a tracer) yet recorded nothing, three times:
            // seen only on a loaded machine, not understood yet. The property is not judged
            // from an empty trace; said loudly, never silently.
            eprintln!(
                "SKIPPED every_acknowledged_write_was_fsynced...: strace recorded no syscall of the leader in {attempt} attempts"
            );
            return;
        }
        assert!(
            synced > 0,
            "no fsync of {} traced at all on the leader ({traced} syscalls traced on it; still leader: {still})",
            db_of(leader)
        );
        break (leader, followers, logs, windows);
    };
    let db_of = |n: usize| {
        let dir = std::fs::canonicalize(&c.nodes[n - 1].dir).unwrap();
        format!("{}/", dir.join("raft").join("wal").display())
    };
    let fsyncs = |n: usize| {
        logs[&n]
            .iter()
            .filter(|s| (s.name == "fsync" || s.name == "fdatasync") && s.path.starts_with(&db_of(n)))
            .count()
    };
    let mut leader_counts = Vec::new();
    let mut follower_counts = Vec::new();
    for (i, (from, to)) in windows.iter().enumerate() {
        let on_leader = append_then_sync(&logs[&leader], &db_of(leader), *from, *to);
        let on_followers: Vec<usize> =
            followers.iter().map(|f| append_then_sync(&logs[f], &db_of(*f), *from, *to)).collect();
        assert!(
            on_leader >= 1,
            "write {i} was acknowledged without an append+fsync of the leader's raft log"
        );
        assert!(
            on_followers.iter().any(|n| *n >= 1),
            "write {i} was acknowledged without an append+fsync of any follower's raft log"
        );
        leader_counts.push(on_leader);
        follower_counts.push(on_followers);
    }
    eprintln!(
        "R12: {} sequential writes; fsyncs of the raft log per write window: leader {leader_counts:?}, \
         followers {follower_counts:?}; fsyncs traced in total: leader {}, followers {:?}",
        windows.len(),
        fsyncs(leader),
        followers.iter().map(|f| fsyncs(*f)).collect::<Vec<_>>()
    );
}

// ----- S8 on every node -----

/// The value of field `name` (first number) in `/proc/<pid>/status`.
fn status_kb(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Every file and directory below `dir`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        out.push(e.path());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), out);
        }
    }
}

/// S8 read back from `/proc` on every node of a cluster (the single-node checks of
/// `lifecycle::process_hygiene_h2_and_bearer_tokens`): core dumps off, the
/// `PR_SET_DUMPABLE`/`RLIMIT_CORE` calls did not fail, key memory `mlock`ed (mlock enabled in the
/// configuration) and `MADV_DONTDUMP`, private data files, and no token or share on the command
/// line or in the environment.
#[test]
fn every_cluster_node_runs_without_core_dumps_with_locked_keys_and_private_files() {
    let mut c = TestCluster::start(Options::default());
    // The harness disables mlock (shared CI machines); turn it on, one node at a time.
    for i in 1..=3 {
        reconfigure(&mut c, i, |v| v["disable_mlock"] = json!(false));
    }
    let leader = c.leader();
    mount_kv(&c, leader);
    for n in 1..=3 {
        assert_eq!(c.call(n, "POST", &format!("kv/data/s8-{n}"), Some(json!({"data": {"v": n}}))).0, 200);
    }
    let secrets: Vec<String> = std::iter::once(c.root.clone()).chain(c.shares.iter().cloned()).collect();
    for node in &c.nodes {
        let n = node.idx;
        let pid = node.server.as_ref().unwrap().child.id();
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
        let fields: Vec<&str> = core.split_whitespace().collect();
        assert_eq!((fields[4], fields[5]), ("0", "0"), "node {n}: {core}");
        // PR_SET_DUMPABLE is not visible in /proc for a root process; the node reports a failure.
        let log = c.log(n);
        for warning in ["could not set PR_SET_DUMPABLE", "could not disable core dumps", "could not mlock"] {
            assert!(!log.contains(warning), "node {n} logged {warning:?}");
        }
        let locked = status_kb(pid, "VmLck:");
        assert!(locked > 0, "node {n}: no key memory is mlocked (VmLck {locked} kB)");
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
        let dontdump = smaps
            .lines()
            .filter(|l| l.starts_with("VmFlags:") && l.split_whitespace().any(|f| f == "dd"))
            .count();
        assert!(dontdump > 0, "node {n}: no mapping is marked MADV_DONTDUMP");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        for s in &secrets {
            let s = s.as_bytes();
            assert!(!cmdline.windows(s.len()).any(|w| w == s), "node {n}: a secret on the command line");
            assert!(!environ.windows(s.len()).any(|w| w == s), "node {n}: a secret in the environment");
        }
        use std::os::unix::fs::PermissionsExt;
        let raft = node.dir.join("raft");
        assert_eq!(std::fs::metadata(&raft).unwrap().permissions().mode() & 0o777, 0o700, "node {n}");
        let mut paths = Vec::new();
        walk(&node.dir, &mut paths);
        assert!(paths.len() > 2, "node {n}: only {paths:?}");
        for p in paths {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "node {n}: {} is group/other accessible ({mode:o})", p.display());
        }
        eprintln!("S8 node {n}: {core:?}, VmLck {locked} kB, {dontdump} MADV_DONTDUMP mappings");
    }
}

// ----- R9: disk full -----

/// A tmpfs mounted over a node's data directory; unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Moves `dir`'s contents onto a fresh tmpfs of `size` mounted at `dir`.
    fn mount_over(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let hold = dir.with_extension("hold");
        std::fs::create_dir_all(&hold).map_err(|e| e.to_string())?;
        let run = |cmd: &mut Command| -> Result<(), String> {
            let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if o.status.success() {
                Ok(())
            } else {
                Err(format!("{cmd:?}: {} {}", o.status, String::from_utf8_lossy(&o.stderr).trim()))
            }
        };
        run(Command::new("cp").arg("-a").arg(dir.join(".")).arg(&hold))?;
        let opts = format!("size={size},mode=0700");
        if let Err(e) = run(Command::new("mount").args(["-t", "tmpfs", "-o", &opts, "tmpfs"]).arg(dir)) {
            std::fs::remove_dir_all(&hold).ok();
            return Err(e);
        }
        let t = Tmpfs(dir.to_owned());
        run(Command::new("cp").arg("-a").arg(hold.join(".")).arg(dir))?;
        std::fs::remove_dir_all(&hold).ok();
        Ok(t)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Appends to `dir/filler` until the file system is full (ENOSPC); returns the bytes written.
fn fill(dir: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("filler")).unwrap();
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 64] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {
            written += chunk as u64;
        }
    }
    written
}

/// R9: a follower's data directory on a small tmpfs is filled while writes go on. The node
/// stops (exit non-zero, no panic) instead of acknowledging what it could not persist, the other
/// two keep acknowledging writes, and once space is freed the node restarts over its data,
/// catches up and holds every acknowledged write.
#[test]
fn a_node_whose_disk_fills_stops_and_catches_up_after_space_is_freed() {
    let mut c = TestCluster::start(Options::default());
    let leader = c.leader();
    mount_kv(&c, leader);
    let victim = c.other_than(leader);
    let dir = c.nodes[victim - 1].dir.clone();
    c.kill(victim);
    let tmpfs = match Tmpfs::mount_over(&dir, "96m") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("SKIPPED a_node_whose_disk_fills_stops...: cannot mount a tmpfs: {e}");
            c.start_node(victim);
            return;
        }
    };
    c.start_node(victim);
    c.wait_for_members(3);
    let writers = Writers::start(&c, 3, "full", 4096);
    writers.wait_more("writes before the disk fills", 30, Duration::from_secs(60));
    let mut filler = fill(&dir);
    let filled_at = Instant::now();
    // Whatever the node frees (sled reuses segments) is taken again while it runs.
    let status =
        eventually(&format!("node {victim} to stop on a full disk"), Duration::from_secs(120), || {
            filler += fill(&dir);
            c.nodes[victim - 1].server.as_mut().unwrap().child.try_wait().ok().flatten()
        });
    let stopped_after = filled_at.elapsed();
    let log = c.log(victim);
    assert!(!status.success() && status.code().is_some(), "node {victim} ended with {status}");
    assert!(!log.contains("panicked"), "node {victim} panicked on a full disk:\n{log}");
    c.kill(victim);
    // The other two go on.
    writers.wait_more("writes acknowledged with the full node down", 30, Duration::from_secs(60));
    std::fs::remove_file(dir.join("filler")).unwrap();
    c.start_node(victim);
    c.wait_for_members(3);
    writers.wait_more("writes with all three nodes", 10, Duration::from_secs(60));
    let (acked, failed) = writers.stop();
    c.wait_same_digest(Duration::from_secs(60));
    verify_acked(&c, &acked, &acked, "after the full node caught up");
    eprintln!(
        "R9: filler {} MiB; node {victim} stopped after {stopped_after:?} with {status}; {} writes \
         acknowledged ({failed} refused or timed out), 0 lost",
        filler >> 20,
        acked.len()
    );
    for n in 1..=3 {
        c.kill(n);
    }
    drop(tmpfs);
}

// ----- R10: an fsync failure -----

/// R10: the leader's next fsync fails (debug-build failpoint `COFFER_FAULT_FAIL_SYNC`, armed
/// by a file in its raft directory). It exits with code 74 at once, the other two elect a
/// leader and go on, and after the trigger is gone it restarts, catches up and no acknowledged
/// write is missing anywhere.
#[test]
fn an_fsync_failure_on_the_leader_exits_the_process_and_loses_no_acknowledged_write() {
    let mut c = TestCluster::start(Options {
        env: vec![("COFFER_FAULT_FAIL_SYNC", "FAIL_NEXT_SYNC")],
        ..Options::default()
    });
    let leader = c.leader();
    mount_kv(&c, leader);
    let writers = Writers::start(&c, 3, "fsync", 0);
    writers.wait_more("writes to flow", 30, Duration::from_secs(60));
    let trigger = c.nodes[leader - 1].dir.join("raft").join("FAIL_NEXT_SYNC");
    std::fs::write(&trigger, b"").unwrap();
    let armed = Instant::now();
    let status =
        eventually(&format!("node {leader} to exit after its fsync failed"), Duration::from_secs(30), || {
            c.nodes[leader - 1].server.as_mut().unwrap().child.try_wait().ok().flatten()
        });
    let exited_after = armed.elapsed();
    let log = c.log(leader);
    assert_eq!(status.code(), Some(74), "the leader ended with {status}:\n{log}");
    assert!(log.contains("durability failure") && !log.contains("panicked"), "{log}");
    c.kill(leader);
    let new_leader = c.wait_leader_except(Some(leader));
    writers.wait_more("writes acknowledged by the other two", 30, Duration::from_secs(60));
    std::fs::remove_file(&trigger).unwrap();
    c.start_node(leader);
    c.wait_for_members(3);
    let (acked, failed) = writers.stop();
    c.wait_same_digest(Duration::from_secs(60));
    verify_acked(&c, &acked, &acked, "after the failed node restarted");
    eprintln!(
        "R10: node {leader} exited with {status} {exited_after:?} after the failpoint was armed; \
         new leader {new_leader}; {} writes acknowledged ({failed} refused or timed out), 0 lost",
        acked.len()
    );
}
