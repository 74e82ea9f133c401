//! `coffer policy write|read|list|delete|fmt`: `sys/policies/acl` as `vault policy` uses it.

use std::io::Read;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::output::{self, Format};
use super::{usage, Exit, Invocation};

/// `coffer policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Upload a policy from a file (or - for stdin).
    Write(WriteArgs),
    /// Print a policy.
    Read(NameArg),
    /// List the policy names.
    List,
    /// Delete a policy.
    Delete(NameArg),
    /// Reformat a policy file in place.
    Fmt(FmtArgs),
}

/// Arguments of `policy write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Policy name.
    pub name: String,
    /// File with the policy (HCL or JSON), or - for stdin.
    pub file: String,
}

/// A policy name.
#[derive(Debug, Args)]
pub struct NameArg {
    /// Policy name.
    pub name: String,
}

/// Arguments of `policy fmt`.
#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Policy file.
    pub file: String,
}

/// `policy fmt FILE`: validates the policy with coffer's parser, then rewrites the file in
/// canonical form (HCL through hcl-rs's formatter, JSON pretty-printed). An invalid policy is
/// reported and the file is left untouched.
pub fn fmt(a: &FmtArgs) -> anyhow::Result<u8> {
    let text =
        std::fs::read_to_string(&a.file).map_err(|e| usage(format!("Error opening policy file: {e}")))?;
    crate::policy::parse::parse(&text, coffer_storage::clock::now())
        .map_err(|e| anyhow::anyhow!("Error parsing policy {}: {e}", a.file))?;
    let formatted = if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("Error parsing policy {}: {e}", a.file))?;
        let mut s = serde_json::to_string_pretty(&v)?;
        s.push('\n');
        s
    } else {
        let body: hcl::Body =
            hcl::from_str(&text).map_err(|e| anyhow::anyhow!("Error parsing policy {}: {e}", a.file))?;
        use hcl::format::Format;
        let mut f = hcl::format::Formatter::builder().compact_arrays(true).build_vec();
        body.format_string(&mut f).map_err(|e| anyhow::anyhow!("Error formatting policy {}: {e}", a.file))?
    };
    if formatted != text {
        super::refs::write_atomically(std::path::Path::new(&a.file), formatted.as_bytes())?;
    }
    outln!("Success! Formatted policy: {}", a.file);
    Ok(0)
}

/// Runs a policy subcommand.
pub async fn run(inv: &Invocation, cmd: PolicyCmd) -> anyhow::Result<u8> {
    if let PolicyCmd::Fmt(a) = &cmd {
        return fmt(a);
    }
    let client = inv.client()?;
    match cmd {
        PolicyCmd::Write(a) => {
            let name = a.name.trim().to_lowercase();
            let mut text = String::new();
            if a.file == "-" {
                std::io::stdin().read_to_string(&mut text).context("Error reading policy from stdin")?;
            } else {
                text = std::fs::read_to_string(&a.file)
                    .map_err(|e| usage(format!("Error opening policy file: {e}")))?;
            }
            client
                .write(&format!("sys/policies/acl/{name}"), &json!({"policy": text}))
                .await
                .context("Error uploading policy")?;
            outln!("Success! Uploaded policy: {name}");
            Ok(0)
        }
        PolicyCmd::Read(a) => {
            let name = a.name.trim().to_lowercase();
            let resp = client
                .read(&format!("sys/policies/acl/{name}"))
                .await
                .with_context(|| format!("Error reading policy named {name}"))?;
            let policy = resp.as_ref().and_then(|r| r.get("data")).and_then(|d| d.get("policy")).cloned();
            let Some(policy) = policy else {
                return Err(Exit { code: 2, message: format!("No policy named: {name}") }.into());
            };
            match inv.format() {
                Format::Json => outln!("{}", output::json_pretty(&json!({"policy": policy}))),
                Format::Table => outln!("{}", output::go_value(&policy).trim_end()),
            }
            Ok(0)
        }
        PolicyCmd::List => {
            let resp = client.list("sys/policies/acl").await.context("Error listing policies")?;
            let mut names = resp.as_ref().and_then(output::list_keys).unwrap_or_default();
            names.sort();
            match inv.format() {
                Format::Json => outln!("{}", output::json_pretty(&Value::from(names))),
                Format::Table => {
                    for n in names {
                        outln!("{n}");
                    }
                }
            }
            Ok(0)
        }
        PolicyCmd::Delete(a) => {
            let name = a.name.trim().to_lowercase();
            client.delete(&format!("sys/policies/acl/{name}")).await.context("Error deleting")?;
            outln!("Success! Deleted policy: {name}");
            Ok(0)
        }
        PolicyCmd::Fmt(a) => fmt(&a),
    }
}
