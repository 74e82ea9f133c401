//! `coffer read|write|list|delete PATH`: the generic commands, mapped to GET / PUT / LIST /
//! DELETE on `/v1/PATH` as `vault read|write|list|delete` do.

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use super::output::{self, Format};
use super::{data, not_found, print_secret, usage, Invocation};

/// Arguments of `coffer read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Print only this field of the response (raw).
    #[arg(long)]
    pub field: Option<String>,
    /// Path to read (without /v1/).
    pub path: String,
    /// Query parameters as k=v.
    pub data: Vec<String>,
}

/// Arguments of `coffer write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Allow writing without data.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Print only this field of the response (raw).
    #[arg(long)]
    pub field: Option<String>,
    /// Path to write to (without /v1/).
    pub path: String,
    /// Data: k=v, k=@file, k=- (stdin), - (a JSON object on stdin), @file (a JSON file).
    pub data: Vec<String>,
}

/// Arguments of `coffer list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Path to list (without /v1/).
    pub path: String,
}

/// Arguments of `coffer delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Path to delete (without /v1/).
    pub path: String,
    /// Query parameters as k=v.
    pub data: Vec<String>,
}

/// `coffer read`.
pub async fn read(inv: &Invocation, a: ReadArgs) -> anyhow::Result<u8> {
    let client = inv.client()?;
    let path = super::sanitize_path(&a.path);
    let query = data::query_args(&a.data)?;
    let secret = client
        .read_with(&path, &data::borrow_pairs(&query))
        .await
        .with_context(|| format!("Error reading {path}"))?;
    let Some(secret) = secret else { return Err(not_found(&path)) };
    print_secret(inv, &secret, a.field.as_deref())
}

/// `coffer write`.
pub async fn write(inv: &Invocation, a: WriteArgs) -> anyhow::Result<u8> {
    let client = inv.client()?;
    let path = super::sanitize_path(&a.path);
    let body = data::parse_args(&a.data)?;
    if body.is_empty() && !a.force {
        return Err(usage("Must supply data or use -force"));
    }
    let secret = client
        .write(&path, &Value::Object(body))
        .await
        .with_context(|| format!("Error writing data to {path}"))?;
    match secret {
        None => {
            if inv.format() == Format::Table {
                outln!("Success! Data written to: {path}");
            }
            Ok(0)
        }
        Some(s) => print_secret(inv, &s, a.field.as_deref()),
    }
}

/// `coffer list`.
pub async fn list(inv: &Invocation, a: ListArgs) -> anyhow::Result<u8> {
    let client = inv.client()?;
    let path = super::ensure_trailing_slash(&super::sanitize_path(&a.path));
    let secret = client.list(&path).await.with_context(|| format!("Error listing {path}"))?;
    print_list(inv, secret.as_ref(), &path)
}

/// Prints a list response (`Keys` table or the JSON array), or "No value found" (exit 2).
pub fn print_list(inv: &Invocation, secret: Option<&Value>, path: &str) -> anyhow::Result<u8> {
    let keys = secret.and_then(output::list_keys).filter(|k| !k.is_empty());
    let Some(keys) = keys else { return Err(not_found(path)) };
    match inv.format() {
        Format::Json => {
            let mut sorted = keys.clone();
            sorted.sort();
            outln!("{}", output::json_pretty(&serde_json::json!(sorted)));
        }
        Format::Table => {
            if let Some(w) = secret.and_then(output::warnings_block) {
                eprintln!("{w}");
            }
            outln!("{}", output::list_table(&keys));
        }
    }
    Ok(0)
}

/// `coffer delete`.
pub async fn delete(inv: &Invocation, a: DeleteArgs) -> anyhow::Result<u8> {
    let client = inv.client()?;
    let path = super::sanitize_path(&a.path);
    let query = data::query_args(&a.data)?;
    let secret = client
        .delete_with(&path, &data::borrow_pairs(&query))
        .await
        .with_context(|| format!("Error deleting {path}"))?;
    match secret {
        Some(s) if inv.format() == Format::Json || s.get("warnings").is_some_and(|w| !w.is_null()) => {
            print_secret(inv, &s, None)
        }
        _ => {
            outln!("Success! Data deleted (if it existed) at: {path}");
            Ok(0)
        }
    }
}
