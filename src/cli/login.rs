//! `coffer login`: authenticate with a token (`auth/token/lookup-self`), with AppRole
//! (`PUT auth/<path>/login` with `role_id`/`secret_id`) or userpass, then store the token in
//! the token helper file `~/.vault-token` like `vault login` (unless `-no-store`).

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::output::{self, Format};
use super::{data, print_field, print_secret, prompt_secret, usage, Invocation};
use crate::client::{self, Client};
use crate::secret::ClientToken;

/// Arguments of `coffer login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Auth method: token, approle or userpass.
    #[arg(long, default_value = "token")]
    pub method: String,
    /// Mount path of the auth method (default: the method name).
    #[arg(long)]
    pub path: Option<String>,
    /// Do not store the token in the token helper.
    #[arg(long)]
    pub no_store: bool,
    /// Print only the token (implies -no-store).
    #[arg(long)]
    pub token_only: bool,
    /// Print only this field.
    #[arg(long)]
    pub field: Option<String>,
    /// The token (method token, "-" reads stdin), or k=v credentials for other methods
    /// (role_id=... secret_id=... for approle; username=... password=... for userpass).
    pub args: Vec<String>,
}

/// Runs `coffer login`.
pub async fn run(inv: &Invocation, a: LoginArgs) -> anyhow::Result<u8> {
    let client = inv.client()?;
    let secret = match a.method.as_str() {
        "token" => token_login(&client, &a.args).await?,
        "approle" | "userpass" => method_login(&client, &a).await?,
        other => {
            return Err(usage(format!(
            "Unknown auth method: {other}. coffer login supports -method=token, approle and userpass; other \
                 methods can log in with \"coffer write auth/<path>/login ...\"."
        )))
        }
    };
    let token = secret
        .get("auth")
        .and_then(|auth| auth.get("client_token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(|t| ClientToken::new(t.to_owned()))
        .ok_or_else(|| anyhow::anyhow!("Error authenticating: no token was returned"))?;

    if a.token_only {
        output::print_raw(token.expose());
        return Ok(0);
    }
    let stored = if a.no_store {
        false
    } else {
        let home =
            client::home_dir().ok_or_else(|| anyhow::anyhow!("Error storing token: $HOME is not set"))?;
        client::store_token_helper(&home.join(client::TOKEN_HELPER_FILE), &token)
            .context("Error storing token")?;
        true
    };
    if let Some(f) = &a.field {
        return print_field(inv, &secret, f);
    }
    if inv.format() == Format::Table {
        for var in ["VAULT_TOKEN", "BAO_TOKEN", "COFFER_TOKEN"] {
            if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
                eprintln!(
                    "{}\n",
                    output::wrap_with_padding(
                        &format!(
                            "WARNING! The {var} environment variable is set! The value of this variable will \
                             take precedence; if this is unwanted please unset {var} or update its value \
                             accordingly."
                        ),
                        0
                    )
                );
            }
        }
        let msg = if stored {
            "Success! You are now authenticated. The token information displayed below is already stored in \
             the token helper. You do NOT need to run \"coffer login\" again. Future requests will automatically \
             use this token."
        } else {
            "The token was not stored in token helper. Set the VAULT_TOKEN environment variable or pass the \
             token below with each request."
        };
        outln!("{}\n", output::wrap_with_padding(msg, 0));
    }
    print_secret(inv, &secret, None)
}

/// Token method: look the token up and present the result as a login (`auth` block).
async fn token_login(client: &Client, args: &[String]) -> anyhow::Result<Value> {
    let token: Zeroizing<String> = match args {
        [] => prompt_secret("Token (will be hidden): ")?,
        [t] if t == "-" => prompt_secret("Token (will be hidden): ")?,
        [t] if t.starts_with("token=") => Zeroizing::new(t["token=".len()..].to_owned()),
        [t] => Zeroizing::new(t.clone()),
        _ => return Err(usage("Too many arguments: the token method takes one token")),
    };
    if token.trim().is_empty() {
        return Err(usage("Missing token"));
    }
    let probe = client.with_token(Some(ClientToken::new(token.trim().to_owned())));
    let lookup = probe
        .read("auth/token/lookup-self")
        .await
        .context("Error authenticating")?
        .ok_or_else(|| anyhow::anyhow!("Error authenticating: the token lookup returned nothing"))?;
    Ok(lookup_as_login(&lookup, token.trim()))
}

/// A `lookup-self` response shown as the `auth` block of a login, as `vault login` prints it.
pub fn lookup_as_login(lookup: &Value, token: &str) -> Value {
    let d = lookup.get("data").cloned().unwrap_or(Value::Null);
    let policies = d.get("policies").cloned().unwrap_or(json!([]));
    json!({
        "request_id": lookup.get("request_id").cloned().unwrap_or(json!("")),
        "lease_id": "",
        "lease_duration": 0,
        "renewable": false,
        "data": null,
        "warnings": lookup.get("warnings").cloned().unwrap_or(Value::Null),
        "auth": {
            "client_token": token,
            "accessor": d.get("accessor").cloned().unwrap_or(json!("")),
            "policies": policies,
            "token_policies": policies,
            "identity_policies": d.get("identity_policies").cloned().unwrap_or(Value::Null),
            "metadata": d.get("meta").cloned().unwrap_or(Value::Null),
            "lease_duration": d.get("ttl").cloned().unwrap_or(json!(0)),
            "renewable": d.get("renewable").cloned().unwrap_or(json!(false)),
            "entity_id": d.get("entity_id").cloned().unwrap_or(json!("")),
            "orphan": d.get("orphan").cloned().unwrap_or(json!(false)),
        },
    })
}

/// AppRole / userpass: `PUT auth/<path>/login[/<username>]` with the k=v credentials.
async fn method_login(client: &Client, a: &LoginArgs) -> anyhow::Result<Value> {
    let mut creds = data::parse(&a.args, &mut std::io::stdin())
        .map_err(|e| usage(format!("Error parsing configuration: {e:#}")))?;
    let mount = super::sanitize_path(a.path.as_deref().unwrap_or(&a.method));
    let path = match a.method.as_str() {
        "userpass" => {
            let Some(Value::String(user)) = creds.remove("username") else {
                return Err(usage("Missing username: pass username=NAME"));
            };
            if !creds.contains_key("password") {
                let pw = prompt_secret("Password (will be hidden): ")?;
                creds.insert("password".into(), json!(pw.as_str()));
            }
            format!("auth/{mount}/login/{user}")
        }
        _ => {
            if !creds.contains_key("role_id") {
                return Err(usage(
                    "Missing role_id: pass role_id=... (and secret_id=... when the role binds one)",
                ));
            }
            format!("auth/{mount}/login")
        }
    };
    let anonymous = client.with_token(None);
    anonymous
        .write(&path, &Value::Object(creds))
        .await
        .context("Error authenticating")?
        .ok_or_else(|| anyhow::anyhow!("Error authenticating: empty response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_becomes_auth_block() {
        let lookup = json!({"request_id": "r", "data": {"accessor": "A", "policies": ["default"], "ttl": 3599,
                                                      "renewable": true, "meta": null, "id": "hvs.T"}});
        let s = lookup_as_login(&lookup, "hvs.T");
        assert_eq!(s["auth"]["client_token"], "hvs.T");
        assert_eq!(s["auth"]["lease_duration"], 3599);
        let t = output::secret_table(&s).unwrap();
        assert!(t.contains("token_duration       59m59s"), "{t}");
        assert!(t.contains("token_policies       [\"default\"]"), "{t}");
    }
}
