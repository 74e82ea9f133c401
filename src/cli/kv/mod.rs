//! `coffer kv ...`: KV v1 and v2 secrets as `vault kv` handles them.
//!
//! Every command first calls `GET sys/internal/ui/mounts/<path>` (the preflight) to learn the
//! mount path and the KV version; a 404 means an old server and KV v1. Paths are given as
//! `secret/foo` or as `-mount=secret foo`. For v2 the API prefix (`data/`, `metadata/`,
//! `delete/`, `undelete/`, `destroy/`) is inserted after the mount (see `location.rs`).

pub mod location;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

pub use self::location::parse_versions;
use self::location::{resolve, resolve_v2};
use super::output::{self, Format};
use super::{data, not_found, parse_duration_flag, print_field, print_secret, usage, Exit, Invocation};
use crate::client::Client;

/// `coffer kv` subcommands.
#[derive(Debug, Subcommand)]
pub enum KvCmd {
    /// Write a new version of a secret (k=v, k=@file, - for JSON on stdin).
    Put(PutArgs),
    /// Read a secret (the current version, or -version).
    Get(GetArgs),
    /// Merge fields into the current version (KV v2).
    Patch(PatchArgs),
    /// Soft-delete the current version, or -versions (v2); delete the secret (v1).
    Delete(VersionsArgs),
    /// Restore soft-deleted -versions (KV v2).
    Undelete(VersionsArgs),
    /// Permanently destroy -versions (KV v2).
    Destroy(VersionsArgs),
    /// List the keys under a path.
    List(ListArgs),
    /// Metadata of a secret (KV v2).
    #[command(subcommand)]
    Metadata(KvMetadataCmd),
}

/// `coffer kv metadata` subcommands.
#[derive(Debug, Subcommand)]
pub enum KvMetadataCmd {
    /// Print a secret's metadata and versions.
    Get(TargetArgs),
    /// Create or update a secret's metadata.
    Put(MetadataPutArgs),
    /// Delete a secret's metadata and all its versions.
    Delete(TargetArgs),
}

/// A secret path: `secret/foo`, or `-mount=secret foo`.
#[derive(Debug, Args)]
pub struct Target {
    /// Mount path of the KV engine; the path argument is then relative to it.
    #[arg(long)]
    pub mount: Option<String>,
    /// Secret path.
    pub path: String,
}

/// Only a target.
#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub target: Target,
}

/// Arguments of `kv get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: Target,
    /// Version to read (v2; 0 = current).
    #[arg(long, default_value_t = 0)]
    pub version: u64,
    /// Print only this field of the secret's data (raw).
    #[arg(long)]
    pub field: Option<String>,
}

/// Arguments of `kv put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub target: Target,
    /// Check-and-set: write only if the current version is this (0 = must not exist).
    #[arg(long, allow_negative_numbers = true)]
    pub cas: Option<i64>,
    /// Print only this field of the response (raw).
    #[arg(long)]
    pub field: Option<String>,
    /// Data: k=v, k=@file, k=- (stdin), - (a JSON object on stdin), @file.
    pub data: Vec<String>,
}

/// Arguments of `kv patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    #[command(flatten)]
    pub target: Target,
    /// Check-and-set version.
    #[arg(long, allow_negative_numbers = true)]
    pub cas: Option<i64>,
    /// `patch` (HTTP PATCH only) or `rw` (read, then write with cas); default: PATCH, falling
    /// back to rw on 403/405.
    #[arg(long)]
    pub method: Option<String>,
    /// Remove this key (repeatable).
    #[arg(long = "remove-data", value_name = "KEY")]
    pub remove_data: Vec<String>,
    /// Print only this field of the response (raw).
    #[arg(long)]
    pub field: Option<String>,
    /// Data to merge: k=v, k=@file, -.
    pub data: Vec<String>,
}

/// Arguments of `kv delete|undelete|destroy`.
#[derive(Debug, Args)]
pub struct VersionsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Versions (comma separated or repeated).
    #[arg(long, value_name = "N,N")]
    pub versions: Vec<String>,
}

/// Arguments of `kv list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Mount path of the KV engine.
    #[arg(long)]
    pub mount: Option<String>,
    /// Path to list (may be empty with -mount).
    #[arg(default_value = "")]
    pub path: String,
}

/// Arguments of `kv metadata put`.
#[derive(Debug, Args)]
pub struct MetadataPutArgs {
    #[command(flatten)]
    pub target: Target,
    /// Number of versions to keep (0 = the engine's setting).
    #[arg(long)]
    pub max_versions: Option<u64>,
    /// Require check-and-set on writes to this key.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub cas_required: Option<bool>,
    /// Delete versions this long after they are written (Go duration; 0 = never).
    #[arg(long, value_parser = parse_duration_flag)]
    pub delete_version_after: Option<i64>,
    /// Custom metadata as k=v (repeatable).
    #[arg(long = "custom-metadata", value_name = "K=V")]
    pub custom_metadata: Vec<String>,
}

/// Runs a kv subcommand.
pub async fn run(inv: &Invocation, cmd: KvCmd) -> anyhow::Result<u8> {
    let client = inv.client()?;
    match cmd {
        KvCmd::Get(a) => get(inv, &client, a).await,
        KvCmd::Put(a) => put(inv, &client, a).await,
        KvCmd::Patch(a) => patch(inv, &client, a).await,
        KvCmd::Delete(a) => {
            let versions = parse_versions(&a.versions)?;
            let r = resolve(&client, a.target.mount.as_deref(), &a.target.path).await?;
            // The CLI reports the data path even when versions went through `delete/`.
            let full = r.api_path("data");
            if r.v2 && !versions.is_empty() {
                let p = r.api_path("delete");
                client
                    .write(&p, &json!({"versions": versions}))
                    .await
                    .with_context(|| format!("Error deleting {full}"))?;
            } else {
                client.delete(&full).await.with_context(|| format!("Error deleting {full}"))?;
            }
            outln!("Success! Data deleted (if it existed) at: {full}");
            Ok(0)
        }
        KvCmd::Undelete(a) | KvCmd::Destroy(a) if a.versions.is_empty() => {
            Err(usage("No versions provided, use the \"-versions\" flag to specify the version"))
        }
        KvCmd::Undelete(a) => versions_op(&client, a, "undelete", "Undelete").await,
        KvCmd::Destroy(a) => versions_op(&client, a, "destroy", "Destroy").await,
        KvCmd::List(a) => {
            let r = resolve(&client, a.mount.as_deref(), &a.path).await?;
            let full = r.api_path("metadata");
            let secret = client
                .list(&super::ensure_trailing_slash(&full))
                .await
                .with_context(|| format!("Error listing {full}"))?;
            super::generic::print_list(inv, secret.as_ref(), &full)
        }
        KvCmd::Metadata(KvMetadataCmd::Get(a)) => metadata_get(inv, &client, a).await,
        KvCmd::Metadata(KvMetadataCmd::Put(a)) => {
            let full = resolve_v2(&client, a.target.mount.as_deref(), &a.target.path, "Metadata")
                .await?
                .api_path("metadata");
            let mut body = Map::new();
            if let Some(n) = a.max_versions {
                body.insert("max_versions".into(), json!(n));
            }
            if let Some(c) = a.cas_required {
                body.insert("cas_required".into(), json!(c));
            }
            if let Some(d) = a.delete_version_after {
                body.insert("delete_version_after".into(), json!(super::duration_to_api(d)));
            }
            if !a.custom_metadata.is_empty() {
                let m = data::flag_map(&a.custom_metadata, "custom metadata")?;
                body.insert("custom_metadata".into(), Value::Object(m));
            }
            let resp = client
                .write(&full, &Value::Object(body))
                .await
                .with_context(|| format!("Error writing data to {full}"))?;
            if let Some(w) = resp.as_ref().and_then(output::warnings_block) {
                eprintln!("{w}");
            }
            outln!("Success! Data written to: {full}");
            Ok(0)
        }
        KvCmd::Metadata(KvMetadataCmd::Delete(a)) => {
            let full = resolve_v2(&client, a.target.mount.as_deref(), &a.target.path, "Metadata")
                .await?
                .api_path("metadata");
            client.delete(&full).await.with_context(|| format!("Error deleting {full}"))?;
            outln!("Success! Data deleted (if it existed) at: {full}");
            Ok(0)
        }
    }
}

async fn versions_op(client: &Client, a: VersionsArgs, prefix: &str, what: &str) -> anyhow::Result<u8> {
    let versions = parse_versions(&a.versions)?;
    let full = resolve_v2(client, a.target.mount.as_deref(), &a.target.path, what).await?.api_path(prefix);
    client
        .write(&full, &json!({"versions": versions}))
        .await
        .with_context(|| format!("Error writing data to {full}"))?;
    outln!("Success! Data written to: {full}");
    Ok(0)
}

/// Prints `= Title =` / path / blank, as `outputPath` does.
fn print_path_header(path: &str, title: &str) {
    outln!("{}\n{path}\n", output::pad_equal_signs(title, path.len()));
}

fn print_section(title: &str, m: &Map<String, Value>) {
    outln!("{}", output::header_for_map(title, m));
    if let Some(t) = output::map_table(m) {
        outln!("{t}");
    }
}

async fn get(inv: &Invocation, client: &Client, a: GetArgs) -> anyhow::Result<u8> {
    let r = resolve(client, a.target.mount.as_deref(), &a.target.path).await?;
    let full = r.api_path("data");
    let version = a.version.to_string();
    let query: Vec<(&str, &str)> = if r.v2 && a.version > 0 { vec![("version", &version)] } else { vec![] };
    let secret = client.read_with(&full, &query).await.with_context(|| format!("Error reading {full}"))?;
    let Some(secret) = secret else { return Err(not_found(&full)) };

    if let Some(field) = &a.field {
        if !r.v2 {
            return print_field(inv, &secret, field);
        }
        let Some(inner) = secret.get("data").and_then(|d| d.get("data")).filter(|d| !d.is_null()) else {
            return Err(Exit { code: 2, message: format!("No data found at {full}") }.into());
        };
        return match inner.get(field) {
            Some(v) => {
                output::print_raw(&output::field_text(v, inv.format()));
                Ok(0)
            }
            None => Err(anyhow::anyhow!("Field \"{field}\" not present in secret")),
        };
    }
    if inv.format() == Format::Json {
        outln!("{}", output::json_secret(&secret));
        return Ok(0);
    }
    if let Some(w) = output::warnings_block(&secret) {
        eprintln!("{w}");
    }
    let empty = Map::new();
    let d = secret.get("data").and_then(Value::as_object).unwrap_or(&empty);
    if r.v2 {
        print_path_header(&full, "Secret Path");
        if let Some(md) = d.get("metadata").and_then(Value::as_object) {
            print_section("Metadata", md);
            outln!();
        }
        if let Some(inner) = d.get("data").and_then(Value::as_object) {
            print_section("Data", inner);
        }
    } else {
        print_section("Data", d);
    }
    Ok(0)
}

async fn put(inv: &Invocation, client: &Client, a: PutArgs) -> anyhow::Result<u8> {
    let data = data::parse_args(&a.data)?;
    if data.is_empty() {
        return Err(usage("Must supply data"));
    }
    let r = resolve(client, a.target.mount.as_deref(), &a.target.path).await?;
    let full = r.api_path("data");
    let body = if r.v2 {
        let mut options = Map::new();
        if let Some(c) = a.cas.filter(|c| *c >= 0) {
            options.insert("cas".into(), json!(c));
        }
        json!({"data": data, "options": options})
    } else {
        Value::Object(data)
    };
    let secret = client.write(&full, &body).await.with_context(|| format!("Error writing data to {full}"))?;
    print_write_result(inv, secret, &full, a.field.as_deref())
}

fn print_write_result(
    inv: &Invocation,
    secret: Option<Value>,
    full: &str,
    field: Option<&str>,
) -> anyhow::Result<u8> {
    let Some(secret) = secret else {
        if inv.format() == Format::Table {
            outln!("Success! Data written to: {full}");
        }
        return Ok(0);
    };
    if let Some(f) = field {
        return print_field(inv, &secret, f);
    }
    match (inv.format(), secret.get("data").and_then(Value::as_object)) {
        (Format::Table, Some(md)) => {
            if let Some(w) = output::warnings_block(&secret) {
                eprintln!("{w}");
            }
            print_path_header(full, "Secret Path");
            print_section("Metadata", md);
            Ok(0)
        }
        _ => print_secret(inv, &secret, None),
    }
}

async fn patch(inv: &Invocation, client: &Client, a: PatchArgs) -> anyhow::Result<u8> {
    let mut data = data::parse_args(&a.data)?;
    if data.is_empty() && a.remove_data.is_empty() {
        return Err(usage("Must supply data"));
    }
    for k in &a.remove_data {
        data.insert(k.clone(), Value::Null);
    }
    let r = resolve(client, a.target.mount.as_deref(), &a.target.path).await?;
    if !r.v2 {
        return Err(
            Exit { code: 2, message: "K/V engine mount must be version 2 for patch support".into() }.into()
        );
    }
    let full = r.api_path("data");
    let secret = match a.method.as_deref() {
        Some("rw") => read_then_write(client, &full, data).await?,
        Some("patch") | None => {
            let mut options = Map::new();
            if let Some(c) = a.cas.filter(|c| *c >= 0) {
                options.insert("cas".into(), json!(c));
            }
            let body = json!({"data": data.clone(), "options": options});
            match client.patch(&full, &body).await {
                Ok(s) => s,
                Err(e) if a.method.is_none() && matches!(e.status(), Some(405)) => {
                    read_then_write(client, &full, data).await?
                }
                Err(e) if a.method.is_none() && matches!(e.status(), Some(403)) => {
                    let s = read_then_write(client, &full, data).await?;
                    eprintln!(
                        "{}",
                        output::wrap_with_padding(
                            &format!(
                                "Data was written to {full} but we recommend that you add the \"patch\" capability \
                                 to your ACL policy in order to use HTTP PATCH in the future."
                            ),
                            0
                        )
                    );
                    s
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("Error writing data to {full}"))),
            }
        }
        Some(other) => return Err(usage(format!("Unsupported method provided to -method flag: {other}"))),
    };
    print_write_result(inv, secret, &full, a.field.as_deref())
}

/// The fallback of `kv patch`: read the current version, merge, write with `cas` = its version.
async fn read_then_write(
    client: &Client,
    full: &str,
    new: Map<String, Value>,
) -> anyhow::Result<Option<Value>> {
    let secret = client.read(full).await.with_context(|| format!("Error doing pre-read at {full}"))?;
    let Some(secret) = secret else { return Err(not_found(full)) };
    let d = secret.get("data").cloned().unwrap_or(Value::Null);
    let Some(version) = d.get("metadata").and_then(|m| m.get("version")).cloned() else {
        return Err(Exit {
            code: 2,
            message: format!("No metadata found at {full}; patch only works on existing data"),
        }
        .into());
    };
    let Some(mut current) = d.get("data").and_then(Value::as_object).cloned() else {
        return Err(Exit {
            code: 2,
            message: format!("No data found at {full}; patch only works on existing data"),
        }
        .into());
    };
    for (k, v) in new {
        current.insert(k, v);
    }
    let body = json!({"data": current, "options": {"cas": version}});
    client.write(full, &body).await.with_context(|| format!("Error writing data to {full}"))
}

async fn metadata_get(inv: &Invocation, client: &Client, a: TargetArgs) -> anyhow::Result<u8> {
    let full =
        resolve_v2(client, a.target.mount.as_deref(), &a.target.path, "Metadata").await?.api_path("metadata");
    let secret = client.read(&full).await.with_context(|| format!("Error reading {full}"))?;
    let Some(secret) = secret else { return Err(not_found(&full)) };
    if inv.format() == Format::Json {
        outln!("{}", output::json_secret(&secret));
        return Ok(0);
    }
    let mut md = secret.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
    let versions = md.remove("versions").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    print_path_header(&full, "Metadata Path");
    print_section("Metadata", &md);
    let mut nums: Vec<(u64, &String)> =
        versions.keys().filter_map(|k| k.parse().ok().map(|n| (n, k))).collect();
    nums.sort();
    for (n, k) in nums {
        if let Some(v) = versions[k].as_object() {
            outln!();
            print_section(&format!("Version {n}"), v);
        }
    }
    Ok(0)
}
