//! `coffer operator ...`: init, unseal, seal, step-down, rotate, key-status, generate-root,
//! rekey and raft, as `vault operator` calls them (`sys/init`, `sys/unseal`, `sys/seal`,
//! `sys/step-down`, `sys/rotate`, `sys/key-status`, `sys/generate-root/*`, `sys/rekey/*`), with
//! OpenBao's renamed paths (`sys/generate-root-token/*`, `sys/rotate/root/*`) as fallbacks.
//!
//! Key shares and root tokens are printed because that is the command's purpose; they are read
//! from prompts into zeroizing strings and never logged.
//!
//! The two quorum ceremonies have their own files (`generate_root.rs`, `rekey.rs`); what they
//! share (the path fallbacks, the key prompt, the status printing) is here.

pub mod generate_root;
pub mod raft;
pub mod rekey;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use zeroize::Zeroizing;

pub use self::generate_root::{base62_otp, decode_root_token, GenerateRootArgs};
pub use self::rekey::RekeyArgs;
use super::output::{self, Format};
use super::{print_data, prompt_secret, usage, Invocation};
use crate::client::{Client, ClientError};

/// `coffer operator` subcommands.
#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    /// Initialize a new server: generate the unseal key shares and the root token.
    Init(InitArgs),
    /// Provide one unseal key share (prompted without echo when not given).
    Unseal(UnsealArgs),
    /// Seal the server.
    Seal,
    /// Make the active node give up leadership.
    StepDown,
    /// Add a new encryption key term to the keyring.
    Rotate,
    /// Print the current encryption key term.
    KeyStatus,
    /// Generate a new root token from a quorum of unseal keys.
    GenerateRoot(GenerateRootArgs),
    /// Generate new unseal keys from a quorum of the current ones.
    Rekey(RekeyArgs),
    /// Raft cluster operations: list-peers, join, remove-peer, snapshot save|restore.
    #[command(subcommand)]
    Raft(raft::RaftCmd),
}

/// Arguments of `operator init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Number of key shares to split the root key into.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub key_shares: u32,
    /// Number of shares required to reconstruct the root key.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub key_threshold: u32,
    /// Number of recovery key shares (auto-unseal only).
    #[arg(long, value_name = "N")]
    pub recovery_shares: Option<u32>,
    /// Recovery key threshold (auto-unseal only).
    #[arg(long, value_name = "N")]
    pub recovery_threshold: Option<u32>,
    /// Only print whether the server is initialized (exit 0 yes, 2 no).
    #[arg(long)]
    pub status: bool,
}

/// Arguments of `operator unseal`.
#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// Discard the key shares submitted so far.
    #[arg(long)]
    pub reset: bool,
    /// One unseal key share (hex or base64); prompted for when omitted.
    pub key: Option<String>,
}

/// Runs an operator subcommand.
pub async fn run(inv: &Invocation, cmd: OperatorCmd) -> anyhow::Result<u8> {
    let client = inv.client()?;
    match cmd {
        OperatorCmd::Init(a) => init(inv, &client, a).await,
        OperatorCmd::Unseal(a) => unseal(inv, &client, a).await,
        OperatorCmd::Seal => {
            put(&client, "sys/seal", None).await.context("Error sealing")?;
            outln!("Success! Vault is sealed.");
            Ok(0)
        }
        OperatorCmd::StepDown => {
            put(&client, "sys/step-down", None).await.context("Error stepping down")?;
            outln!("Success! Stepped down: {}", client.address());
            Ok(0)
        }
        OperatorCmd::Rotate => {
            put(&client, "sys/rotate", None).await.context("Error rotating key")?;
            let status = key_status(&client).await.context("Error reading key status")?;
            match inv.format() {
                Format::Json => print_data(inv, &status),
                Format::Table => outln!("Success! Rotated key\n\n{}", key_status_text(&status)),
            }
            Ok(0)
        }
        OperatorCmd::KeyStatus => {
            let status = key_status(&client).await.context("Error reading key status")?;
            match inv.format() {
                Format::Json => print_data(inv, &status),
                Format::Table => outln!("{}", key_status_text(&status)),
            }
            Ok(0)
        }
        OperatorCmd::GenerateRoot(a) => generate_root::run(inv, &client, a).await,
        OperatorCmd::Rekey(a) => rekey::run(inv, &client, a).await,
        OperatorCmd::Raft(c) => raft::run(inv, &client, c).await,
    }
}

async fn get(client: &Client, path: &str) -> Result<Value, ClientError> {
    Ok(client.send(Method::GET, path, &[], None).await?.into_result()?.unwrap_or(Value::Null))
}

async fn put(client: &Client, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
    let body = body.cloned().unwrap_or_else(|| json!({}));
    Ok(client.send(Method::PUT, path, &[], Some(&body)).await?.into_result()?.unwrap_or(Value::Null))
}

/// The two quorum ceremonies. Each lives at Vault's path or, when OpenBao refuses the
/// unauthenticated form, at OpenBao's renamed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ceremony {
    /// `sys/generate-root/*`, else `sys/generate-root-token/*`.
    GenerateRoot,
    /// `sys/rekey/*`, else `sys/rotate/root/*` (OpenBao 2.x).
    Rekey,
}

impl Ceremony {
    fn bases(self) -> [&'static str; 2] {
        match self {
            Ceremony::GenerateRoot => ["sys/generate-root", "sys/generate-root-token"],
            Ceremony::Rekey => ["sys/rekey", "sys/rotate/root"],
        }
    }
}

/// Sends to `<base>/<suffix>` for each base of the ceremony in turn while the answer is 404 or
/// 405 (nothing was executed), and returns the payload of the first other answer.
pub async fn ceremony_call(
    client: &Client,
    ceremony: Ceremony,
    method: Method,
    suffix: &str,
    body: Option<&Value>,
) -> Result<Value, ClientError> {
    let mut last = None;
    for base in ceremony.bases() {
        let r = client.send(method.clone(), &format!("{base}/{suffix}"), &[], body).await?;
        if matches!(r.status, 404 | 405) {
            last = Some(r);
            continue;
        }
        return Ok(payload(r.into_result()?.unwrap_or(Value::Null)));
    }
    match last {
        Some(r) => Err(r.into_api_error().into()),
        None => Ok(Value::Null),
    }
}

/// Envelope responses carry their payload in `data`; sealed-state endpoints do not.
fn payload(v: Value) -> Value {
    match v.get("data") {
        Some(d) if d.is_object() => d.clone(),
        _ => v,
    }
}

async fn key_status(client: &Client) -> Result<Value, ClientError> {
    Ok(payload(get(client, "sys/key-status").await?))
}

/// `Key Term / Install Time / Encryption Count` (install time in Go's RFC822 layout).
pub fn key_status_text(status: &Value) -> String {
    let install = status.get("install_time").and_then(Value::as_str).map(rfc822).unwrap_or_default();
    output::columns(&[
        vec!["Key Term".into(), status.get("term").map(output::go_value).unwrap_or_default()],
        vec!["Install Time".into(), install],
        vec![
            "Encryption Count".into(),
            status.get("encryptions").map(output::go_value).unwrap_or_else(|| "0".into()),
        ],
    ])
}

/// RFC 3339 → Go's `time.RFC822` in UTC (`24 Nov 26 05:19 UTC`); unparseable text is kept.
fn rfc822(s: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) else { return s.to_owned() };
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!(
        "[day] [month repr:short] [year repr:last_two] [hour]:[minute] UTC"
    );
    t.format(&fmt).unwrap_or_else(|_| s.to_owned())
}

async fn init(inv: &Invocation, client: &Client, a: InitArgs) -> anyhow::Result<u8> {
    if a.status {
        let v = get(client, "sys/init").await.context("Error checking init status")?;
        return if v.get("initialized").and_then(Value::as_bool).unwrap_or(false) {
            outln!("Vault is initialized");
            Ok(0)
        } else {
            outln!("Vault is not initialized");
            Ok(2)
        };
    }
    let mut body = json!({"secret_shares": a.key_shares, "secret_threshold": a.key_threshold});
    if let Some(n) = a.recovery_shares {
        body["recovery_shares"] = json!(n);
    }
    if let Some(n) = a.recovery_threshold {
        body["recovery_threshold"] = json!(n);
    }
    let resp = put(client, "sys/init", Some(&body)).await.context("Error initializing")?;
    let strings = |k: &str| -> Vec<String> {
        resp.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(output::go_value).collect())
            .unwrap_or_default()
    };
    let keys_b64 = strings("keys_base64");
    let keys_hex = strings("keys");
    let rec_b64 = strings("recovery_keys_base64");
    let rec_hex = strings("recovery_keys");
    let root = Zeroizing::new(resp.get("root_token").and_then(Value::as_str).unwrap_or("").to_owned());
    match inv.format() {
        Format::Json => {
            let out = json!({
                "unseal_keys_b64": keys_b64,
                "unseal_keys_hex": keys_hex,
                "unseal_shares": a.key_shares,
                "unseal_threshold": a.key_threshold,
                "recovery_keys_b64": rec_b64,
                "recovery_keys_hex": rec_hex,
                "recovery_keys_shares": a.recovery_shares.unwrap_or(0),
                "recovery_keys_threshold": a.recovery_threshold.unwrap_or(0),
                "root_token": root.as_str(),
            });
            outln!("{}", output::json_pretty(&out));
        }
        Format::Table => {
            for (i, k) in keys_b64.iter().enumerate() {
                outln!("Unseal Key {}: {k}", i + 1);
            }
            for (i, k) in rec_b64.iter().enumerate() {
                outln!("Recovery Key {}: {k}", i + 1);
            }
            outln!("\nInitial Root Token: {}\n", root.as_str());
            let t = a.key_threshold;
            outln!(
                "{}\n\n{}\n\n{}",
                output::wrap_with_padding(
                    &format!(
                        "Vault initialized with {} key shares and a key threshold of {t}. Please securely \
                         distribute the key shares printed above. When the Vault is re-sealed, restarted, \
                         or stopped, you must supply at least {t} of these keys to unseal it before it can \
                         start servicing requests.",
                        a.key_shares
                    ),
                    0
                ),
                output::wrap_with_padding(
                    &format!(
                        "Vault does not store the generated root key. Without at least {t} keys to \
                         reconstruct the root key, Vault will remain permanently sealed!"
                    ),
                    0
                ),
                output::wrap_with_padding(
                    "It is possible to generate new unseal keys, provided you have a quorum of existing \
                     unseal keys shares. See \"coffer operator rekey\" for more information.",
                    0
                )
            );
        }
    }
    Ok(0)
}

/// The key argument, or a prompt (no echo on a terminal, one line of stdin otherwise).
pub fn key_or_prompt(key: Option<String>, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    let key = match key {
        Some(k) if k != "-" => Zeroizing::new(k),
        _ => prompt_secret(prompt)?,
    };
    if key.is_empty() {
        bail!(usage("Missing key"));
    }
    Ok(key)
}

async fn unseal(inv: &Invocation, client: &Client, a: UnsealArgs) -> anyhow::Result<u8> {
    let status = if a.reset {
        put(client, "sys/unseal", Some(&json!({"reset": true})))
            .await
            .context("Error resetting unseal process")?
    } else {
        let key = key_or_prompt(a.key, "Unseal Key (will be hidden): ")?;
        put(client, "sys/unseal", Some(&json!({"key": key.as_str()}))).await.context("Error unsealing")?
    };
    super::status::print_seal_status(inv, client, &status).await.map(|_| 0)
}

/// Prints a ceremony's status with `table`, or as JSON; a freshly generated OTP gets a note on
/// stderr.
pub fn print_ceremony_status(inv: &Invocation, s: &Value, table: fn(&Value) -> String) {
    match inv.format() {
        Format::Json => outln!("{}", output::json_pretty(s)),
        Format::Table => {
            if s.get("otp").and_then(Value::as_str).is_some_and(|o| !o.is_empty()) {
                eprintln!(
                    "{}",
                    output::wrap_with_padding(
                        "A One-Time-Password has been generated for you and is shown in the OTP field. You \
                         will need this value to decode the resulting root token, so keep it safe.",
                        0
                    )
                );
            }
            outln!("{}", table(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::generate_root::generate_root_table;
    use super::rekey::rekey_table;
    use super::*;

    #[test]
    fn decodes_like_bao() {
        // Recorded from `bao operator generate-root` (OpenBao 2.7.2): OTP, encoded token, token.
        let token =
            decode_root_token("GG8hAiA0GSkeHQ8HAUIONio5Ry0NIz4RNVo", "kAlPcdLAYZNtJvfECNpuJnRzqk").unwrap();
        assert_eq!(token.as_str(), "s.MRCPUhGGAsK4hsiw7XGMlkD1");
        assert!(decode_root_token("GG8h", "toolongotp").is_err());
        assert!(decode_root_token("!!!", "x").is_err());
    }

    #[test]
    fn otp_alphabet() {
        let o = base62_otp(28);
        assert_eq!(o.len(), 28);
        assert!(o.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(base62_otp(28).as_str(), o.as_str());
    }

    #[test]
    fn tables() {
        let s = serde_json::json!({"nonce": "", "started": false, "progress": 0, "required": 1,
                                   "complete": false, "encoded_token": "", "otp_length": 26});
        assert_eq!(
            generate_root_table(&s),
            "Nonce         n/a\nStarted       false\nProgress      0/1\nComplete      false\nOTP Length    26"
        );
        let k = serde_json::json!({"term": 2, "install_time": "2026-11-24T05:20:01.5Z", "encryptions": 0});
        assert_eq!(
            key_status_text(&k),
            "Key Term            2\nInstall Time        24 Nov 26 05:20 UTC\nEncryption Count    0"
        );
        let r = serde_json::json!({"nonce": "n", "started": true, "progress": 1, "required": 3, "n": 5, "t": 3,
                                   "verification_required": false});
        assert!(rekey_table(&r).contains("Rekey Progress           1/3"));
    }
}
