//! `coffer operator generate-root`: a new root token from a quorum of unseal keys, as
//! `vault operator generate-root` runs the ceremony (`-init` with an OTP, one `update` per key
//! share, `-decode` of the encoded token with the OTP), plus `-generate-otp`, `-status` and
//! `-cancel`.
//!
//! The OTP and the decoded root token are printed because that is the command's purpose; they
//! live in zeroizing strings.

use anyhow::{bail, Context};
use base64::Engine;
use clap::{ArgGroup, Args};
use reqwest::Method;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{ceremony_call, key_or_prompt, print_ceremony_status, Ceremony};
use crate::cli::output;
use crate::cli::{usage, Invocation};
use crate::client::Client;

/// Arguments of `operator generate-root`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").args(["init", "cancel", "status", "decode", "generate_otp"]).multiple(false)))]
pub struct GenerateRootArgs {
    /// Start a root token generation.
    #[arg(long)]
    pub init: bool,
    /// Cancel the current generation.
    #[arg(long)]
    pub cancel: bool,
    /// Print the progress of the current generation.
    #[arg(long)]
    pub status: bool,
    /// Decode an encoded root token with the OTP given in -otp.
    #[arg(long, value_name = "ENCODED")]
    pub decode: Option<String>,
    /// Generate an OTP locally (of the server's OTP length) and print it.
    #[arg(long)]
    pub generate_otp: bool,
    /// The one-time password (with -init, or with -decode).
    #[arg(long)]
    pub otp: Option<String>,
    /// Nonce of the generation (read from the status when omitted).
    #[arg(long)]
    pub nonce: Option<String>,
    /// One unseal key share; prompted for when omitted.
    pub key: Option<String>,
}

/// Runs `operator generate-root`.
pub async fn run(inv: &Invocation, client: &Client, a: GenerateRootArgs) -> anyhow::Result<u8> {
    if let Some(encoded) = &a.decode {
        let Some(otp) = &a.otp else { bail!(usage("Must specify -otp with -decode")) };
        let token = decode_root_token(encoded, otp)?;
        output::print_raw(&token);
        return Ok(0);
    }
    if a.generate_otp {
        let s = status(client).await?;
        let len = s.get("otp_length").and_then(Value::as_u64).filter(|l| *l > 0).unwrap_or(26) as usize;
        output::print_raw(&base62_otp(len));
        return Ok(0);
    }
    if a.status {
        print_ceremony_status(inv, &status(client).await?, generate_root_table);
        return Ok(0);
    }
    if a.cancel {
        ceremony_call(client, Ceremony::GenerateRoot, Method::DELETE, "attempt", None)
            .await
            .context("Error canceling root token generation")?;
        outln!("Success! Root token generation canceled (if it was started)");
        return Ok(0);
    }
    if a.init {
        let body = json!({"otp": a.otp.clone().unwrap_or_default()});
        let s = ceremony_call(client, Ceremony::GenerateRoot, Method::PUT, "attempt", Some(&body))
            .await
            .context("Error initializing root generation")?;
        print_ceremony_status(inv, &s, generate_root_table);
        return Ok(0);
    }
    let nonce = match a.nonce {
        Some(n) => n,
        None => status(client).await?.get("nonce").and_then(Value::as_str).unwrap_or("").to_owned(),
    };
    let key = key_or_prompt(a.key, "Unseal Key (will be hidden): ")?;
    let body = json!({"key": key.as_str(), "nonce": nonce});
    let s = ceremony_call(client, Ceremony::GenerateRoot, Method::PUT, "update", Some(&body))
        .await
        .context("Error posting unseal key")?;
    print_ceremony_status(inv, &s, generate_root_table);
    Ok(0)
}

/// The status of the current generation.
async fn status(client: &Client) -> anyhow::Result<Value> {
    ceremony_call(client, Ceremony::GenerateRoot, Method::GET, "attempt", None)
        .await
        .context("Error getting root generation status")
}

/// The status table `vault operator generate-root -status` prints.
pub(super) fn generate_root_table(s: &Value) -> String {
    let text = |k: &str| s.get(k).map(output::go_value).unwrap_or_default();
    let mut rows = vec![
        vec!["Nonce".into(), text("nonce")],
        vec!["Started".into(), text("started")],
        vec!["Progress".into(), format!("{}/{}", text("progress"), text("required"))],
        vec!["Complete".into(), text("complete")],
    ];
    if !text("pgp_fingerprint").is_empty() {
        rows.push(vec!["PGP Fingerprint".into(), text("pgp_fingerprint")]);
    }
    if !text("encoded_token").is_empty() {
        rows.push(vec!["Encoded Token".into(), text("encoded_token")]);
    } else if !text("encoded_root_token").is_empty() {
        rows.push(vec!["Encoded Root Token".into(), text("encoded_root_token")]);
    }
    if !text("otp").is_empty() {
        rows.push(vec!["OTP".into(), text("otp")]);
    }
    if s.get("otp_length").and_then(Value::as_u64).unwrap_or(0) > 0 {
        rows.push(vec!["OTP Length".into(), text("otp_length")]);
    }
    output::columns(&rows)
}

/// XORs the base64 encoded root token with the OTP (Vault ≥ 1.10 scheme).
pub fn decode_root_token(encoded: &str, otp: &str) -> anyhow::Result<Zeroizing<String>> {
    let cleaned = encoded.trim().trim_end_matches('=');
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(cleaned)
            .context("Error decoding root token: invalid base64")?,
    );
    if bytes.len() != otp.len() {
        bail!("Error decoding root token: length of the encoded token and the OTP differ");
    }
    let out: Vec<u8> = bytes.iter().zip(otp.as_bytes()).map(|(a, b)| a ^ b).collect();
    let s = String::from_utf8(out)
        .map_err(|_| anyhow::anyhow!("Error decoding root token: not a valid token"))?;
    Ok(Zeroizing::new(s))
}

/// A random base62 string (the OTP alphabet).
pub fn base62_otp(len: usize) -> Zeroizing<String> {
    Zeroizing::new(crate::util::crypto::random_base62(len))
}
