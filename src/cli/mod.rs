//! The command line: `coffer server` runs the daemon; every other command is an HTTP client of
//! the API (like `vault`).

pub mod server;

use clap::{Parser, Subcommand};

/// coffer: a Vault-compatible secrets daemon and its client.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, about, disable_help_subcommand = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Server(server::ServerArgs),
}

/// Vault's CLI takes long flags with one dash (`-address=...`, `-mount=secret`); clap wants two.
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

    #[test]
    fn vault_style_flags() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalize_args(v(&["coffer", "kv", "get", "-mount=secret", "-v", "--x", "foo", "--", "-mount"])),
            v(&["coffer", "kv", "get", "--mount=secret", "-v", "--x", "foo", "--", "-mount"])
        );
        assert_eq!(normalize_args(v(&["coffer", "server", "-dev"])), v(&["coffer", "server", "--dev"]));
    }
}
