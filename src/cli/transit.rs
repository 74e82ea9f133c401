//! `coffer transit encrypt|decrypt|rotate|keys|create`: conveniences over the transit engine
//! that base64-encode plaintext and decode results (the same calls work through the generic
//! `coffer write transit/encrypt/<key> plaintext=<base64>`).

use std::io::{Read, Write};

use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::output::Format;
use super::{print_secret, sanitize_path, usage, Invocation};
use crate::client::Client;

/// `coffer transit` subcommands.
#[derive(Debug, Subcommand)]
pub enum TransitCmd {
    /// Encrypt plaintext (argument, or stdin when omitted or "-").
    Encrypt(EncryptArgs),
    /// Decrypt a ciphertext and print the plaintext bytes.
    Decrypt(DecryptArgs),
    /// Rotate a key to a new version.
    Rotate(KeyArgs),
    /// List the keys.
    Keys(MountArg),
    /// Create a key.
    Create(CreateArgs),
}

/// The transit mount.
#[derive(Debug, Args)]
pub struct MountArg {
    /// Mount path of the transit engine.
    #[arg(long, default_value = "transit")]
    pub mount: String,
}

/// Arguments of `transit encrypt`.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// Key derivation context (raw; base64-encoded for you).
    #[arg(long)]
    pub context: Option<String>,
    /// Print only this field (e.g. ciphertext).
    #[arg(long)]
    pub field: Option<String>,
    /// Key name.
    pub key: String,
    /// Plaintext; read from stdin when omitted or "-".
    pub plaintext: Option<String>,
}

/// Arguments of `transit decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// Key derivation context (raw; base64-encoded for you).
    #[arg(long)]
    pub context: Option<String>,
    /// Key name.
    pub key: String,
    /// Ciphertext (vault:vN:...); read from stdin when omitted or "-".
    pub ciphertext: Option<String>,
}

/// A key name.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// Key name.
    pub key: String,
}

/// Arguments of `transit create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// Key type (aes256-gcm96, chacha20-poly1305, ed25519, ...).
    #[arg(long = "type")]
    pub key_type: Option<String>,
    /// Key name.
    pub key: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn arg_or_stdin(v: Option<String>) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    match v {
        Some(s) if s != "-" => Ok(Zeroizing::new(s.into_bytes())),
        _ => {
            let mut buf = Zeroizing::new(Vec::new());
            std::io::stdin().read_to_end(&mut buf).context("cannot read stdin")?;
            Ok(buf)
        }
    }
}

/// Runs a transit subcommand.
pub async fn run(inv: &Invocation, cmd: TransitCmd) -> anyhow::Result<u8> {
    let client = inv.client()?;
    match cmd {
        TransitCmd::Encrypt(a) => {
            let mount = sanitize_path(&a.mount.mount);
            let plaintext = arg_or_stdin(a.plaintext)?;
            let mut body = Map::new();
            body.insert("plaintext".into(), json!(b64(&plaintext)));
            if let Some(c) = &a.context {
                body.insert("context".into(), json!(b64(c.as_bytes())));
            }
            let secret = write_expecting_data(&client, &format!("{mount}/encrypt/{}", a.key), body).await?;
            print_secret(inv, &secret, a.field.as_deref())
        }
        TransitCmd::Decrypt(a) => {
            let mount = sanitize_path(&a.mount.mount);
            let ct = arg_or_stdin(a.ciphertext)?;
            let ct = String::from_utf8_lossy(&ct).trim().to_owned();
            if ct.is_empty() {
                return Err(usage("Missing ciphertext"));
            }
            let mut body = Map::new();
            body.insert("ciphertext".into(), json!(ct));
            if let Some(c) = &a.context {
                body.insert("context".into(), json!(b64(c.as_bytes())));
            }
            let secret = write_expecting_data(&client, &format!("{mount}/decrypt/{}", a.key), body).await?;
            if inv.format() == Format::Json {
                return print_secret(inv, &secret, None);
            }
            let encoded = secret
                .get("data")
                .and_then(|d| d.get("plaintext"))
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow::anyhow!("Error decrypting: the response has no plaintext"))?;
            let plain = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .context("Error decrypting: the plaintext is not valid base64")?,
            );
            let mut out = std::io::stdout();
            out.write_all(&plain).context("cannot write to stdout")?;
            if std::io::IsTerminal::is_terminal(&out) {
                let _ = writeln!(out);
            }
            let _ = out.flush();
            Ok(0)
        }
        TransitCmd::Rotate(a) => {
            let path = format!("{}/keys/{}/rotate", sanitize_path(&a.mount.mount), a.key);
            let resp = client
                .write(&path, &json!({}))
                .await
                .with_context(|| format!("Error writing data to {path}"))?;
            print_key_change(inv, resp, &format!("Success! Rotated key {}", a.key))
        }
        TransitCmd::Keys(m) => {
            let path = format!("{}/keys/", sanitize_path(&m.mount));
            let secret = client.list(&path).await.with_context(|| format!("Error listing {path}"))?;
            super::generic::print_list(inv, secret.as_ref(), &path)
        }
        TransitCmd::Create(a) => {
            let path = format!("{}/keys/{}", sanitize_path(&a.mount.mount), a.key);
            let mut body = Map::new();
            if let Some(t) = &a.key_type {
                body.insert("type".into(), json!(t));
            }
            let resp = client
                .write(&path, &Value::Object(body))
                .await
                .with_context(|| format!("Error writing data to {path}"))?;
            print_key_change(inv, resp, &format!("Success! Created key {}", a.key))
        }
    }
}

/// `PUT path` with `body`; an answer without a body is an error.
async fn write_expecting_data(
    client: &Client,
    path: &str,
    body: Map<String, Value>,
) -> anyhow::Result<Value> {
    client
        .write(path, &Value::Object(body))
        .await
        .with_context(|| format!("Error writing data to {path}"))?
        .ok_or_else(|| anyhow::anyhow!("Error writing data to {path}: empty response"))
}

/// After `rotate` / `create`: the response as JSON with `-format=json`, else `success`.
fn print_key_change(inv: &Invocation, resp: Option<Value>, success: &str) -> anyhow::Result<u8> {
    match (inv.format(), resp) {
        (Format::Json, Some(s)) => {
            print_secret(inv, &s, None)?;
        }
        _ => outln!("{success}"),
    }
    Ok(0)
}
