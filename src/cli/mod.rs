//! The command line: `coffer server` runs the daemon; every other command is an HTTP client of
//! the API through [`crate::client`] (like `vault`/`bao`), one file (or folder: `kv/`,
//! `operator/`) per command group. What several groups share lives in its own file: `mounts.rs`
//! (enable/disable/list for `secrets`, `auth` and `audit`), `data.rs` (k=v arguments) and
//! `output.rs` (tables and JSON as the Vault CLI prints them).
//!
//! Connection settings come from the environment (`VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_CACERT`,
//! `VAULT_SKIP_VERIFY`, `VAULT_NAMESPACE`, and their `BAO_`/`COFFER_` forms) and can be
//! overridden per command with `-address`, `-ca-cert`, `-tls-skip-verify`, `-namespace`.
//! Output follows the Vault CLI: tables by default, `-format=json`, `-field=NAME`.
//!
//! Exit codes: 0 success; 1 an API or other error; 2 a usage error, "no value found", or (for
//! `status`) a sealed server — the Vault CLI's codes.

/// `println!` that ignores a closed stdout (`coffer kv get ... | head` must not panic).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

pub mod audit;
pub mod auth;
pub mod data;
pub mod generic;
pub mod kv;
pub mod login;
pub mod mounts;
pub mod operator;
pub mod output;
pub mod policy;
pub mod refs;
pub mod secrets;
pub mod server;
pub mod status;
pub mod token;
pub mod transit;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

use crate::client::{Client, Settings};

pub use output::Format;

/// coffer: a Vault-compatible secrets daemon and its client.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, about, disable_help_subcommand = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Connection and output flags accepted by every client command.
#[derive(Clone, Debug, Default, Args)]
pub struct GlobalArgs {
    /// Address of the server (default: $VAULT_ADDR, else https://127.0.0.1:8200).
    #[arg(long, global = true, value_name = "ADDR")]
    pub address: Option<String>,
    /// PEM file of CA certificates to trust instead of the system roots ($VAULT_CACERT).
    #[arg(long = "ca-cert", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Dangerous: do not verify the server's TLS certificate ($VAULT_SKIP_VERIFY).
    #[arg(long = "tls-skip-verify", global = true)]
    pub tls_skip_verify: bool,
    /// Namespace to send as X-Vault-Namespace ($VAULT_NAMESPACE).
    #[arg(long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Output format: table or json ($VAULT_FORMAT).
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Server(server::ServerArgs),
    /// Print the seal status (exit 0 unsealed, 2 sealed, 1 error).
    Status(status::StatusArgs),
    /// Operator commands: init, unseal, seal, step-down, rotate, key-status, generate-root, rekey, raft.
    #[command(subcommand)]
    Operator(operator::OperatorCmd),
    /// Read data at a path.
    Read(generic::ReadArgs),
    /// Write data (k=v pairs, k=@file, - for JSON on stdin) to a path.
    Write(generic::WriteArgs),
    /// List the keys under a path.
    List(generic::ListArgs),
    /// Delete data at a path.
    Delete(generic::DeleteArgs),
    /// Manage secrets engines.
    #[command(subcommand)]
    Secrets(secrets::SecretsCmd),
    /// Manage auth methods.
    #[command(subcommand)]
    Auth(auth::AuthCmd),
    /// Authenticate and store the token in ~/.vault-token.
    Login(login::LoginArgs),
    /// Create, look up, renew and revoke tokens.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Manage ACL policies.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// Manage audit devices.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Versioned key/value secrets (KV v1 and v2).
    #[command(subcommand)]
    Kv(kv::KvCmd),
    /// Transit encryption helpers.
    #[command(subcommand)]
    Transit(transit::TransitCmd),
    /// Run a command with `vault:`/`env:`/`file:` references in its environment resolved.
    Run(refs::RunArgs),
    /// Render a TOML/JSON/YAML/.env template with every reference resolved.
    Inject(refs::InjectArgs),
}

/// A usage error: printed, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A failure whose message is printed and whose exit code is given (the Vault CLI exits 2 for
/// "No value found at ...").
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

/// A usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

/// "No value found at PATH" (exit 2).
pub fn not_found(path: &str) -> anyhow::Error {
    Exit { code: 2, message: format!("No value found at {path}") }.into()
}

/// One run of a client command: its global flags, and what they give (the output format, the
/// connection settings, a client).
#[derive(Debug)]
pub struct Invocation {
    pub global: GlobalArgs,
}

impl Invocation {
    /// The output format: `-format`, else `$VAULT_FORMAT`, else table.
    pub fn format(&self) -> Format {
        self.global.format.or_else(Format::from_env).unwrap_or_default()
    }

    /// Connection settings: the environment overridden by the flags.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = Settings::from_env()?;
        if let Some(a) = &self.global.address {
            s.address = a.clone();
        }
        if let Some(c) = &self.global.ca_cert {
            s.ca_cert = Some(c.clone());
        }
        if self.global.tls_skip_verify {
            s.dangerous_skip_verify = true;
        }
        if let Some(ns) = &self.global.namespace {
            s.namespace = Some(ns.clone());
        }
        Ok(s)
    }

    /// A client for the configured server.
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(self.settings()?)?)
    }
}

/// Runs a client command and returns the process exit code. Errors are printed to stderr.
pub async fn dispatch(global: GlobalArgs, command: Command) -> u8 {
    let inv = Invocation { global };
    let result = match command {
        Command::Server(_) => Err(usage("the server command is dispatched by main")),
        Command::Status(a) => status::run(&inv, a).await,
        Command::Operator(c) => operator::run(&inv, c).await,
        Command::Read(a) => generic::read(&inv, a).await,
        Command::Write(a) => generic::write(&inv, a).await,
        Command::List(a) => generic::list(&inv, a).await,
        Command::Delete(a) => generic::delete(&inv, a).await,
        Command::Secrets(c) => secrets::run(&inv, c).await,
        Command::Auth(c) => auth::run(&inv, c).await,
        Command::Login(a) => login::run(&inv, a).await,
        Command::Token(c) => token::run(&inv, c).await,
        Command::Policy(c) => policy::run(&inv, c).await,
        Command::Audit(c) => audit::run(&inv, c).await,
        Command::Kv(c) => kv::run(&inv, c).await,
        Command::Transit(c) => transit::run(&inv, c).await,
        Command::Run(a) => refs::run(&inv, a).await,
        Command::Inject(a) => refs::inject(&inv, a).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            exit_code(&e)
        }
    }
}

/// The exit code of a command error.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Usage>().is_some() {
        2
    } else if let Some(x) = e.downcast_ref::<Exit>() {
        x.code
    } else {
        1
    }
}

/// Prints a response envelope in the chosen format (warnings to stderr for tables), or one
/// field of it with `-field`. Returns the exit code.
pub fn print_secret(inv: &Invocation, secret: &serde_json::Value, field: Option<&str>) -> anyhow::Result<u8> {
    if let Some(name) = field {
        return print_field(inv, secret, name);
    }
    match inv.format() {
        Format::Json => outln!("{}", output::json_secret(secret)),
        Format::Table => {
            if let Some(w) = output::warnings_block(secret) {
                eprintln!("{w}");
            }
            if let Some(t) = output::secret_table(secret) {
                outln!("{t}");
            }
        }
    }
    Ok(0)
}

/// Prints one field of a response envelope raw.
pub fn print_field(inv: &Invocation, secret: &serde_json::Value, name: &str) -> anyhow::Result<u8> {
    match output::secret_field(secret, name) {
        Some(v) => {
            output::print_raw(&output::field_text(&v, inv.format()));
            Ok(0)
        }
        None => Err(anyhow::anyhow!("Field \"{name}\" not present in secret")),
    }
}

/// Prints arbitrary data (a map) as JSON or a `Key  Value` table.
pub fn print_data(inv: &Invocation, data: &serde_json::Value) {
    match (inv.format(), data.as_object()) {
        (Format::Table, Some(m)) => {
            if let Some(t) = output::map_table(m) {
                outln!("{t}");
            }
        }
        _ => outln!("{}", output::json_pretty(data)),
    }
}

/// Reads a secret typed by the user: without echo on a terminal, else one line of stdin.
pub fn prompt_secret(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let mut line = Zeroizing::new(String::new());
    if stdin.is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let _guard = EchoOff::new(&stdin);
        stdin.lock().read_line(&mut line).context("cannot read from the terminal")?;
        eprintln!();
    } else {
        stdin.lock().read_line(&mut line).context("cannot read stdin")?;
    }
    let trimmed = Zeroizing::new(line.trim().to_owned());
    Ok(trimmed)
}

/// Turns terminal echo off until dropped.
struct EchoOff<'a> {
    fd: &'a std::io::Stdin,
    saved: Option<nix::sys::termios::Termios>,
}

impl<'a> EchoOff<'a> {
    fn new(fd: &'a std::io::Stdin) -> Self {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let saved = tcgetattr(fd).ok();
        if let Some(orig) = &saved {
            let mut t = orig.clone();
            t.local_flags.remove(LocalFlags::ECHO);
            t.local_flags.insert(LocalFlags::ECHONL);
            let _ = tcsetattr(fd, SetArg::TCSANOW, &t);
        }
        Self { fd, saved }
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        if let Some(orig) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(self.fd, nix::sys::termios::SetArg::TCSANOW, orig);
        }
    }
}

/// Trims leading and trailing slashes and spaces (the CLI's `sanitizePath`).
pub fn sanitize_path(s: &str) -> String {
    s.trim().trim_matches('/').to_owned()
}

/// `s` with exactly one trailing slash (empty stays empty).
pub fn ensure_trailing_slash(s: &str) -> String {
    let t = s.trim().trim_end_matches('/');
    if t.is_empty() && s.trim().is_empty() {
        String::new()
    } else {
        format!("{t}/")
    }
}

/// Vault's duration flags: Go durations (`1h30m`) or plain seconds (`90`).
pub fn parse_duration_flag(s: &str) -> Result<i64, crate::util::duration::DurationError> {
    crate::util::duration::parse_str_seconds_signed(s)
}

/// Vault's CLI sends durations to the API as Go duration strings (`1h0m0s`).
pub fn duration_to_api(secs: i64) -> String {
    crate::util::duration::format_go_seconds(secs)
}

/// Vault-style single-dash long flags (`-address=...`, `-mount=secret`); clap wants two.
/// Rewrites `-name[=value]` (two or more letters) to `--name[=value]` up to a bare `--`.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || passthrough {
            out.push(a);
            continue;
        }
        if a == "--" {
            passthrough = true;
            out.push(a);
            continue;
        }
        let single_long = a.starts_with('-')
            && !a.starts_with("--")
            && a.len() > 2
            && a[1..].chars().next().map(|c| c.is_ascii_alphabetic()).unwrap_or(false)
            && a[1..].split('=').next().map(|n| n.len() > 1).unwrap_or(false);
        if single_long {
            out.push(format!("-{a}"));
        } else {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn parse(s: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(normalize_args(v(s)))
    }

    #[test]
    fn vault_style_flags() {
        assert_eq!(
            normalize_args(v(&["coffer", "kv", "get", "-mount=secret", "-v", "--x", "foo", "--", "-mount"])),
            v(&["coffer", "kv", "get", "--mount=secret", "-v", "--x", "foo", "--", "-mount"])
        );
        assert_eq!(normalize_args(v(&["coffer", "server", "-dev"])), v(&["coffer", "server", "--dev"]));
    }

    #[test]
    fn global_flags_anywhere() {
        let c =
            parse(&["coffer", "kv", "get", "-format=json", "-address=http://h:1", "-mount=secret", "foo"])
                .unwrap();
        assert_eq!(c.global.format, Some(Format::Json));
        assert_eq!(c.global.address.as_deref(), Some("http://h:1"));
        let Command::Kv(kv::KvCmd::Get(a)) = c.command else { panic!("kv get") };
        assert_eq!(a.target.mount.as_deref(), Some("secret"));
        assert_eq!(a.target.path, "foo");
        let c = parse(&["coffer", "-format=table", "status"]).unwrap();
        assert_eq!(c.global.format, Some(Format::Table));
        assert!(parse(&["coffer", "status", "-format=yaml"]).is_err());
    }

    #[test]
    fn write_and_read_flags() {
        let c =
            parse(&["coffer", "write", "-f", "-field=token", "auth/token/create", "policies=a", "ttl=1h"])
                .unwrap();
        let Command::Write(w) = c.command else { panic!("write") };
        assert!(w.force);
        assert_eq!(w.field.as_deref(), Some("token"));
        assert_eq!(w.path, "auth/token/create");
        assert_eq!(w.data, v(&["policies=a", "ttl=1h"]));
        let c = parse(&["coffer", "write", "secret/x", "-"]).unwrap();
        let Command::Write(w) = c.command else { panic!("write") };
        assert_eq!(w.data, v(&["-"]));
        assert!(parse(&["coffer", "read"]).is_err(), "path is required");
    }

    #[test]
    fn operator_flags() {
        let c = parse(&["coffer", "operator", "init", "-key-shares=3", "-key-threshold=2"]).unwrap();
        let Command::Operator(operator::OperatorCmd::Init(i)) = c.command else { panic!("init") };
        assert_eq!((i.key_shares, i.key_threshold), (3, 2));
        let c = parse(&["coffer", "operator", "unseal", "-reset"]).unwrap();
        let Command::Operator(operator::OperatorCmd::Unseal(u)) = c.command else { panic!("unseal") };
        assert!(u.reset && u.key.is_none());
        let c = parse(&["coffer", "operator", "generate-root", "-decode=abc", "-otp=xyz"]).unwrap();
        let Command::Operator(operator::OperatorCmd::GenerateRoot(g)) = c.command else { panic!("gr") };
        assert_eq!((g.decode.as_deref(), g.otp.as_deref()), (Some("abc"), Some("xyz")));
        assert!(parse(&["coffer", "operator", "generate-root", "-init", "-cancel"]).is_err(), "exclusive");
        assert!(parse(&["coffer", "operator", "rekey", "-init", "-status"]).is_err(), "exclusive");
    }

    #[test]
    fn kv_and_secrets_flags() {
        let c = parse(&["coffer", "kv", "put", "-cas=0", "secret/foo", "a=1"]).unwrap();
        let Command::Kv(kv::KvCmd::Put(p)) = c.command else { panic!("put") };
        assert_eq!(p.cas, Some(0));
        assert_eq!(p.target.path, "secret/foo");
        let c = parse(&["coffer", "kv", "delete", "-versions=1,2", "-versions=3", "secret/foo"]).unwrap();
        let Command::Kv(kv::KvCmd::Delete(d)) = c.command else { panic!("delete") };
        assert_eq!(kv::parse_versions(&d.versions).unwrap(), vec!["1", "2", "3"]);
        let c = parse(&[
            "coffer",
            "secrets",
            "enable",
            "-path=kv2",
            "-version=2",
            "-default-lease-ttl=1h",
            "-options=a=b",
            "kv",
        ])
        .unwrap();
        let Command::Secrets(secrets::SecretsCmd::Enable(e)) = c.command else { panic!("enable") };
        assert_eq!(e.entry.path.as_deref(), Some("kv2"));
        assert_eq!(e.tuning.default_lease_ttl, Some(3600));
        assert_eq!(e.plugin_type, "kv");
        assert!(parse(&["coffer", "secrets", "enable", "-default-lease-ttl=soon", "kv"]).is_err());
        let c = parse(&[
            "coffer",
            "kv",
            "metadata",
            "put",
            "-max-versions=5",
            "-custom-metadata=o=p",
            "secret/a",
        ])
        .unwrap();
        let Command::Kv(kv::KvCmd::Metadata(kv::KvMetadataCmd::Put(m))) = c.command else { panic!("md put") };
        assert_eq!(m.max_versions, Some(5));
    }

    #[test]
    fn token_and_login_flags() {
        let c =
            parse(&["coffer", "token", "create", "-policy=a", "-policy=b", "-ttl=30m", "-orphan"]).unwrap();
        let Command::Token(token::TokenCmd::Create(t)) = c.command else { panic!("create") };
        assert_eq!(t.policy, v(&["a", "b"]));
        assert_eq!(t.ttl, Some(1800));
        assert!(t.orphan);
        assert!(t.renewable, "renewable defaults to true");
        let c = parse(&["coffer", "token", "create", "-renewable=false"]).unwrap();
        let Command::Token(token::TokenCmd::Create(t)) = c.command else { panic!("create") };
        assert!(!t.renewable);
        let c =
            parse(&["coffer", "login", "-method=approle", "-no-store", "role_id=r", "secret_id=s"]).unwrap();
        let Command::Login(l) = c.command else { panic!("login") };
        assert_eq!(l.method, "approle");
        assert!(l.no_store);
        assert_eq!(l.args, v(&["role_id=r", "secret_id=s"]));
    }

    #[test]
    fn paths() {
        assert_eq!(sanitize_path(" /secret/foo/ "), "secret/foo");
        assert_eq!(ensure_trailing_slash("kv"), "kv/");
        assert_eq!(ensure_trailing_slash("kv//"), "kv/");
        assert_eq!(parse_duration_flag("90").unwrap(), 90);
        assert_eq!(parse_duration_flag("1h30m").unwrap(), 5400);
        assert!(parse_duration_flag("soon").is_err());
        assert_eq!(duration_to_api(3600), "1h0m0s");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&usage("bad")), 2);
        assert_eq!(exit_code(&not_found("x")), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("api")), 1);
        assert_eq!(exit_code(&usage("bad").context("while parsing")), 2);
    }
}
