//! `coffer token create|lookup|renew|revoke`: `auth/token/*` as `vault token` uses it.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::{data, duration_to_api, parse_duration_flag, print_secret, usage, Invocation};

/// `coffer token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token (a child of the current one unless -orphan).
    Create(CreateArgs),
    /// Show a token's properties (the current token when none is given).
    Lookup(TargetArgs),
    /// Extend a token's lease (the current token when none is given).
    Renew(RenewArgs),
    /// Revoke a token and its children.
    Revoke(RevokeArgs),
}

/// Arguments of `token create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Policy to attach (repeatable).
    #[arg(long = "policy", value_name = "NAME")]
    pub policy: Vec<String>,
    /// Initial TTL (Go duration or seconds).
    #[arg(long, value_parser = parse_duration_flag)]
    pub ttl: Option<i64>,
    /// Hard limit on the token's lifetime.
    #[arg(long, value_parser = parse_duration_flag)]
    pub explicit_max_ttl: Option<i64>,
    /// Make a periodic token renewed by this period.
    #[arg(long, value_parser = parse_duration_flag)]
    pub period: Option<i64>,
    /// Allow the token to be renewed.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub renewable: bool,
    /// Create a token without a parent.
    #[arg(long)]
    pub orphan: bool,
    /// Do not attach the default policy.
    #[arg(long)]
    pub no_default_policy: bool,
    /// Number of uses (0 = unlimited).
    #[arg(long, value_name = "N")]
    pub use_limit: Option<i64>,
    /// Display name.
    #[arg(long)]
    pub display_name: Option<String>,
    /// Metadata as k=v (repeatable).
    #[arg(long = "metadata", value_name = "K=V")]
    pub metadata: Vec<String>,
    /// Token role to create the token against.
    #[arg(long)]
    pub role: Option<String>,
    /// Token type: service or batch.
    #[arg(long = "type")]
    pub token_type: Option<String>,
    /// Custom token ID (root or sudo only).
    #[arg(long)]
    pub id: Option<String>,
    /// Print only this field (e.g. token).
    #[arg(long)]
    pub field: Option<String>,
}

/// A token or an accessor argument.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Treat the argument as an accessor.
    #[arg(long)]
    pub accessor: bool,
    /// Print only this field.
    #[arg(long)]
    pub field: Option<String>,
    /// The token (or accessor); the current token when omitted.
    pub token: Option<String>,
}

/// Arguments of `token renew`.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Requested extension (Go duration or seconds).
    #[arg(long, short = 'i', value_parser = parse_duration_flag)]
    pub increment: Option<i64>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Arguments of `token revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Treat the argument as an accessor.
    #[arg(long)]
    pub accessor: bool,
    /// Revoke the current token.
    #[arg(long = "self")]
    pub self_: bool,
    /// `orphan` keeps the children (as orphans); `path` is not supported.
    #[arg(long)]
    pub mode: Option<String>,
    /// The token (or accessor).
    pub token: Option<String>,
}

/// Runs a token subcommand.
pub async fn run(inv: &Invocation, cmd: TokenCmd) -> anyhow::Result<u8> {
    let client = inv.client()?;
    match cmd {
        TokenCmd::Create(a) => {
            let body = create_body(&a)?;
            let path = match (&a.role, a.orphan) {
                (Some(role), _) => format!("auth/token/create/{role}"),
                (None, true) => "auth/token/create-orphan".to_owned(),
                (None, false) => "auth/token/create".to_owned(),
            };
            let secret = client.write(&path, &body).await.context("Error creating token")?;
            print_response(inv, secret, "creating", a.field.as_deref())
        }
        TokenCmd::Lookup(a) => {
            let secret = match Subject::of(a.token.as_deref(), a.accessor)? {
                // The Vault CLI reads its own token with GET.
                Subject::Own => client.read("auth/token/lookup-self").await,
                other => {
                    let (path, body) = other.endpoint("lookup");
                    client.write(&path, &Value::Object(body)).await
                }
            }
            .context("Error looking up token")?;
            print_response(inv, secret, "looking up", a.field.as_deref())
        }
        TokenCmd::Renew(a) => {
            let (path, mut body) =
                Subject::of(a.target.token.as_deref(), a.target.accessor)?.endpoint("renew");
            if let Some(i) = a.increment {
                body.insert("increment".into(), json!(duration_to_api(i)));
            }
            let secret = client.write(&path, &Value::Object(body)).await.context("Error renewing token")?;
            print_response(inv, secret, "renewing", a.target.field.as_deref())
        }
        TokenCmd::Revoke(a) => {
            let (path, body) = match (&a.token, a.self_, a.accessor, a.mode.as_deref()) {
                (Some(_), true, _, _) => return Err(usage("Too many arguments: -self takes no token")),
                (None, true, _, _) => ("auth/token/revoke-self", json!({})),
                (None, false, _, _) => return Err(usage("Not enough arguments (expected 1, got 0)")),
                (Some(_), _, _, Some(m)) if m != "orphan" && m != "path" && !m.is_empty() => {
                    return Err(usage(format!("Invalid mode: {m}")))
                }
                (Some(_), _, _, Some("path")) => return Err(usage("-mode=path is not supported by coffer")),
                (Some(acc), false, true, _) => ("auth/token/revoke-accessor", json!({"accessor": acc})),
                (Some(t), false, false, Some("orphan")) => ("auth/token/revoke-orphan", json!({"token": t})),
                (Some(t), false, false, _) => ("auth/token/revoke", json!({"token": t})),
            };
            client.write(path, &body).await.context("Error revoking token")?;
            outln!("Success! Revoked token (if it existed)");
            Ok(0)
        }
    }
}

/// The token a `lookup` or `renew` is about: the caller's own, another token, or the token of
/// an accessor.
enum Subject<'a> {
    Accessor(&'a str),
    Own,
    Token(&'a str),
}

impl<'a> Subject<'a> {
    /// From the argument and `-accessor`; `-accessor` needs an argument.
    fn of(token: Option<&'a str>, accessor: bool) -> anyhow::Result<Self> {
        match (token, accessor) {
            (None, true) => Err(usage("Not enough arguments: an accessor is required with -accessor")),
            (None, false) => Ok(Subject::Own),
            (Some(t), false) => Ok(Subject::Token(t)),
            (Some(a), true) => Ok(Subject::Accessor(a)),
        }
    }

    /// `auth/token/<op>-self`, `auth/token/<op>` with `token`, or `auth/token/<op>-accessor`
    /// with `accessor`, and the body naming the subject.
    fn endpoint(&self, op: &str) -> (String, Map<String, Value>) {
        match self {
            Subject::Own => (format!("auth/token/{op}-self"), Map::new()),
            Subject::Token(t) => (format!("auth/token/{op}"), Map::from_iter([("token".into(), json!(t))])),
            Subject::Accessor(a) => {
                (format!("auth/token/{op}-accessor"), Map::from_iter([("accessor".into(), json!(a))]))
            }
        }
    }
}

/// Prints a token response (or one `field` of it); an empty answer is an error.
fn print_response(
    inv: &Invocation,
    secret: Option<Value>,
    doing: &str,
    field: Option<&str>,
) -> anyhow::Result<u8> {
    let secret = secret.ok_or_else(|| anyhow::anyhow!("Error {doing} token: empty response"))?;
    print_secret(inv, &secret, field)
}

/// The body of `auth/token/create`, as `vault token create` sends it.
pub fn create_body(a: &CreateArgs) -> anyhow::Result<Value> {
    let mut b = Map::new();
    if let Some(id) = &a.id {
        b.insert("id".into(), json!(id));
    }
    if !a.policy.is_empty() {
        let p: Vec<String> = a.policy.iter().flat_map(|p| crate::core::fields::split_comma(p)).collect();
        b.insert("policies".into(), json!(p));
    }
    if !a.metadata.is_empty() {
        b.insert("meta".into(), Value::Object(data::flag_map(&a.metadata, "metadata")?));
    }
    if let Some(t) = a.ttl {
        b.insert("ttl".into(), json!(duration_to_api(t)));
    }
    if let Some(t) = a.explicit_max_ttl {
        b.insert("explicit_max_ttl".into(), json!(duration_to_api(t)));
    }
    if let Some(t) = a.period {
        b.insert("period".into(), json!(duration_to_api(t)));
    }
    if a.no_default_policy {
        b.insert("no_default_policy".into(), json!(true));
    }
    if let Some(n) = a.use_limit {
        b.insert("num_uses".into(), json!(n));
    }
    if let Some(d) = &a.display_name {
        b.insert("display_name".into(), json!(d));
    }
    if let Some(t) = &a.token_type {
        b.insert("type".into(), json!(t));
    }
    b.insert("renewable".into(), json!(a.renewable));
    Ok(Value::Object(b))
}
