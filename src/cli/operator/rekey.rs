//! `coffer operator rekey`: new unseal keys from a quorum of the current ones, as
//! `vault operator rekey` runs the ceremony (`-init`, one `update` per key share, then with
//! `-verify` one `verify` per new share when verification was required), plus `-status` and
//! `-cancel`.
//!
//! The new key shares are printed because that is the command's purpose.

use anyhow::Context;
use clap::{ArgGroup, Args};
use reqwest::Method;
use serde_json::{json, Value};

use super::{ceremony_call, key_or_prompt, print_ceremony_status, Ceremony};
use crate::cli::output::{self, Format};
use crate::cli::Invocation;
use crate::client::Client;

/// Arguments of `operator rekey`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").args(["init", "cancel", "status"]).multiple(false)))]
pub struct RekeyArgs {
    /// Start a rekey.
    #[arg(long)]
    pub init: bool,
    /// Cancel the current rekey (or verification with -verify).
    #[arg(long)]
    pub cancel: bool,
    /// Print the progress of the current rekey (or verification with -verify).
    #[arg(long)]
    pub status: bool,
    /// Number of new key shares (with -init).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub key_shares: u32,
    /// New key threshold (with -init).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub key_threshold: u32,
    /// Require the new keys to be verified before they take effect (with -init); otherwise
    /// operate on the verification of a pending rekey.
    #[arg(long)]
    pub verify: bool,
    /// Nonce of the rekey (read from the status when omitted).
    #[arg(long)]
    pub nonce: Option<String>,
    /// One (current, or with -verify new) unseal key share; prompted for when omitted.
    pub key: Option<String>,
}

/// Runs `operator rekey`.
pub async fn run(inv: &Invocation, client: &Client, a: RekeyArgs) -> anyhow::Result<u8> {
    let base = if a.verify && !a.init { "verify" } else { "init" };
    if a.status {
        let s = ceremony_call(client, Ceremony::Rekey, Method::GET, base, None)
            .await
            .context("Error reading rekey status")?;
        print_ceremony_status(inv, &s, rekey_table);
        return Ok(0);
    }
    if a.cancel {
        ceremony_call(client, Ceremony::Rekey, Method::DELETE, base, None)
            .await
            .context("Error canceling rekey")?;
        outln!("Success! Canceled rekeying (if it was started)");
        return Ok(0);
    }
    if a.init {
        let body = json!({
            "secret_shares": a.key_shares,
            "secret_threshold": a.key_threshold,
            "require_verification": a.verify,
        });
        let s = ceremony_call(client, Ceremony::Rekey, Method::PUT, "init", Some(&body))
            .await
            .context("Error initializing rekey")?;
        print_ceremony_status(inv, &s, rekey_table);
        return Ok(0);
    }
    let status = ceremony_call(client, Ceremony::Rekey, Method::GET, base, None)
        .await
        .context("Error reading rekey status")?;
    let nonce =
        a.nonce.unwrap_or_else(|| status.get("nonce").and_then(Value::as_str).unwrap_or("").to_owned());
    let threshold = status.get("t").map(output::go_value).unwrap_or_default();
    let key = key_or_prompt(a.key, "Key (will be hidden): ")?;
    let body = json!({"key": key.as_str(), "nonce": nonce});
    let update = if a.verify { "verify" } else { "update" };
    let s = ceremony_call(client, Ceremony::Rekey, Method::PUT, update, Some(&body))
        .await
        .context("Error posting unseal key")?;
    let complete = s.get("complete").and_then(Value::as_bool).unwrap_or(false);
    if !complete {
        print_ceremony_status(inv, &s, rekey_table);
        return Ok(0);
    }
    if a.verify {
        outln!(
            "Success! Successfully verified that the new unseal keys are valid. The new unseal keys are now active."
        );
        return Ok(0);
    }
    match inv.format() {
        Format::Json => outln!("{}", output::json_pretty(&s)),
        Format::Table => {
            let keys: Vec<String> = s
                .get("keys_base64")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(output::go_value).collect())
                .unwrap_or_default();
            for (i, k) in keys.iter().enumerate() {
                outln!("Key {}: {k}", i + 1);
            }
            let verify = s.get("verification_required").and_then(Value::as_bool).unwrap_or(false);
            outln!();
            if verify {
                outln!(
                    "{}",
                    output::wrap_with_padding(
                        "The new unseal keys are not active until they are verified: run \"coffer operator \
                         rekey -verify\" with a threshold of the new keys.",
                        0
                    )
                );
            } else {
                outln!(
                    "{}",
                    output::wrap_with_padding(
                        &format!(
                            "Operation nonce: {}. Vault rekeyed with {} key shares and a key threshold of {}. \
                             Please securely distribute the key shares printed above. When Vault is re-sealed, \
                             restarted, or stopped, you must supply at least {} of these keys to unseal it \
                             before it can start servicing requests.",
                            s.get("nonce").map(output::go_value).unwrap_or_default(),
                            keys.len(),
                            threshold,
                            threshold,
                        ),
                        0
                    )
                );
            }
        }
    }
    Ok(0)
}

/// The status table `vault operator rekey -status` prints.
pub(super) fn rekey_table(s: &Value) -> String {
    let text = |k: &str| match s.get(k) {
        Some(v) => output::go_value(v),
        None if matches!(k, "progress" | "n" | "t" | "required") => "0".into(),
        None if k == "verification_required" || k == "started" => "false".into(),
        None => String::new(),
    };
    let mut rows = vec![vec!["Nonce".into(), text("nonce")], vec!["Started".into(), text("started")]];
    if s.get("verification_required").is_some() || s.get("t").is_some() {
        rows.push(vec!["Rekey Progress".into(), format!("{}/{}", text("progress"), text("required"))]);
        rows.push(vec!["New Shares".into(), text("n")]);
        rows.push(vec!["New Threshold".into(), text("t")]);
        rows.push(vec!["Verification Required".into(), text("verification_required")]);
    } else {
        rows.push(vec!["Verification Progress".into(), format!("{}/{}", text("progress"), text("t"))]);
    }
    output::columns(&rows)
}
