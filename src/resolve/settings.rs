//! Resolver settings: where to connect and how to authenticate, from three layers (the caller,
//! the document's `vault` section, the environment), merged by [`Layers`] under the rules of
//! security promise S26 (see the `resolve` module documentation): a document cannot send the
//! operator's token elsewhere, nor turn TLS verification off.
//!
//! Settings that hold credentials (`token`, `role_id`) may be `env:`/`file:` references; they
//! are read into zeroizing strings and never printed (`Debug` of [`SettingsBuilder`] and
//! [`AuthMethod`] is redacted).

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::document::Document;
use super::error::{LocalValueError, ResolveError};
use super::reference::Reference;

/// How the resolver authenticates.
pub enum AuthMethod {
    /// A token (from settings, `VAULT_TOKEN` or `~/.vault-token`).
    Token(Zeroizing<String>),
    /// AppRole login with a role ID and a secret ID read from a file at each login.
    AppRole { mount: String, role_id: Zeroizing<String>, secret_id_file: PathBuf },
}

impl std::fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthMethod::Token(_) => f.write_str("Token([redacted])"),
            AuthMethod::AppRole { mount, secret_id_file, .. } => {
                write!(f, "AppRole {{ mount: {mount:?}, secret_id_file: {secret_id_file:?} }}")
            }
        }
    }
}

/// Checked resolver settings.
#[derive(Debug)]
pub struct Settings {
    pub address: String,
    pub kv_mount: String,
    pub transit_mount: String,
    pub auth: AuthMethod,
    pub ca_cert: Option<PathBuf>,
    pub skip_verify: bool,
}

/// Settings before validation; every field optional so sources can be layered.
#[derive(Clone, Default)]
pub struct SettingsBuilder {
    pub address: Option<String>,
    pub token: Option<String>,
    pub kv_mount: Option<String>,
    pub transit_mount: Option<String>,
    pub auth_method: Option<String>,
    pub approle_mount: Option<String>,
    pub role_id: Option<String>,
    pub secret_id_file: Option<String>,
    pub ca_cert: Option<String>,
    pub skip_verify: Option<bool>,
}

impl std::fmt::Debug for SettingsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsBuilder")
            .field("address", &self.address)
            .field("auth_method", &self.auth_method)
            .finish_non_exhaustive()
    }
}

fn env_any(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// Where the resolver talks to when nothing names an address.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";

/// `~/.vault-token`, where `vault login` keeps the operator's token.
fn token_file() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(crate::client::TOKEN_HELPER_FILE)
}

/// The operator's own tokens: the environment layer's token setting, the token variables and
/// the token file (whichever exist).
fn operator_tokens(env: &SettingsBuilder) -> Vec<Zeroizing<String>> {
    let mut out: Vec<Zeroizing<String>> =
        env.token.as_deref().and_then(|t| local_value(t).ok()).into_iter().collect();
    for name in ["COFFER_TOKEN", "VAULT_TOKEN", "BAO_TOKEN"] {
        out.extend(std::env::var(name).ok().map(Zeroizing::new));
    }
    out.extend(std::fs::read_to_string(token_file()).ok().map(Zeroizing::new));
    out.retain(|t| !t.trim().is_empty());
    out
}

/// A `skip_verify`-style flag value that means yes.
fn truthy(v: &str) -> bool {
    matches!(v, "1" | "true" | "TRUE" | "True" | "t")
}

/// The same address, written with or without a trailing `/`.
fn same_address(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

impl SettingsBuilder {
    /// Settings from the environment.
    pub fn from_env() -> Self {
        let e = |suffix: &str| {
            env_any(&[&format!("COFFER_{suffix}"), &format!("VAULT_{suffix}"), &format!("BAO_{suffix}")])
        };
        Self {
            address: e("ADDR"),
            token: e("TOKEN"),
            kv_mount: e("KV_MOUNT"),
            transit_mount: e("TRANSIT_MOUNT"),
            auth_method: e("AUTH_METHOD"),
            approle_mount: e("APPROLE_MOUNT"),
            role_id: e("ROLE_ID"),
            secret_id_file: e("SECRET_ID_FILE"),
            ca_cert: e("CACERT"),
            skip_verify: e("SKIP_VERIFY").map(|v| truthy(&v)),
        }
    }

    /// Settings from a document's `vault` section. Merge them through [`Layers`], not
    /// [`SettingsBuilder::or`], so that the document cannot redirect the operator's credentials.
    pub fn from_document(doc: &Document) -> Self {
        let g = |k: &str| doc.vault_setting(k);
        Self {
            address: g("address"),
            token: g("token"),
            kv_mount: g("kv_mount"),
            transit_mount: g("transit_mount"),
            auth_method: g("auth_method"),
            approle_mount: g("approle_mount"),
            role_id: g("role_id"),
            secret_id_file: g("secret_id_file"),
            ca_cert: g("ca_cert"),
            skip_verify: g("skip_verify").map(|v| truthy(&v)),
        }
    }

    /// Fills unset fields from `lower`.
    pub fn or(self, lower: SettingsBuilder) -> Self {
        Self {
            address: self.address.or(lower.address),
            token: self.token.or(lower.token),
            kv_mount: self.kv_mount.or(lower.kv_mount),
            transit_mount: self.transit_mount.or(lower.transit_mount),
            auth_method: self.auth_method.or(lower.auth_method),
            approle_mount: self.approle_mount.or(lower.approle_mount),
            role_id: self.role_id.or(lower.role_id),
            secret_id_file: self.secret_id_file.or(lower.secret_id_file),
            ca_cert: self.ca_cert.or(lower.ca_cert),
            skip_verify: self.skip_verify.or(lower.skip_verify),
        }
    }

    /// Validates. `role_id` and `token` may themselves be `env:`/`file:` references.
    pub fn build(self) -> Result<Settings, ResolveError> {
        let address = self.address.unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
        let method = self.auth_method.unwrap_or_else(|| {
            if self.role_id.is_some() {
                "approle".into()
            } else {
                "token".into()
            }
        });
        let auth = match method.as_str() {
            "token" => {
                let token = match self.token {
                    Some(t) => local_value(&t).map_err(|e| ResolveError::setting("token", e.to_string()))?,
                    None => match std::fs::read_to_string(token_file()) {
                        Ok(t) => Zeroizing::new(t.trim().to_owned()),
                        Err(_) => return Err(ResolveError::setting(
                            "token",
                            "no token: set VAULT_TOKEN, the token setting, or use auth_method = \"approle\"",
                        )),
                    },
                };
                AuthMethod::Token(token)
            }
            "approle" => {
                let role_id =
                    self.role_id.ok_or_else(|| ResolveError::setting("role_id", "approle needs role_id"))?;
                let role_id =
                    local_value(&role_id).map_err(|e| ResolveError::setting("role_id", e.to_string()))?;
                let secret_id_file = self
                    .secret_id_file
                    .ok_or_else(|| ResolveError::setting("secret_id_file", "approle needs secret_id_file"))?;
                AuthMethod::AppRole {
                    mount: self.approle_mount.unwrap_or_else(|| "approle".into()),
                    role_id,
                    secret_id_file: PathBuf::from(secret_id_file),
                }
            }
            other => {
                return Err(ResolveError::setting(
                    "auth_method",
                    format!("unknown auth method {other:?} (token or approle)"),
                ))
            }
        };
        Ok(Settings {
            address: address.trim_end_matches('/').to_owned(),
            kv_mount: self.kv_mount.unwrap_or_else(|| "secret".into()).trim_matches('/').to_owned(),
            transit_mount: self
                .transit_mount
                .unwrap_or_else(|| "transit".into())
                .trim_matches('/')
                .to_owned(),
            auth,
            ca_cert: self.ca_cert.map(PathBuf::from),
            skip_verify: self.skip_verify.unwrap_or(false),
        })
    }
}

/// The three sources of settings, kept apart so that a document's settings can be held to the
/// rules of S26 (see the module documentation).
#[derive(Debug, Default)]
pub struct Layers {
    /// The caller's own choices (command-line flags, or a program's explicit settings).
    pub caller: SettingsBuilder,
    /// The document's `vault` section: written by whoever can edit the document.
    pub document: SettingsBuilder,
    /// The environment ([`SettingsBuilder::from_env`]); `~/.vault-token` is read by
    /// [`SettingsBuilder::build`] when no token is set.
    pub env: SettingsBuilder,
}

impl Layers {
    /// Merges the layers (caller, then document, then environment) and validates, refusing a
    /// document that would redirect the operator's credentials or turn TLS verification off.
    pub fn build(self) -> Result<Settings, ResolveError> {
        let Layers { caller, document, env } = self;
        let operator_skips = caller.skip_verify.or(env.skip_verify) == Some(true);
        if document.skip_verify == Some(true) && !operator_skips {
            return Err(ResolveError::setting(
                "skip_verify",
                "the document's skip_verify = true is refused: only the command line \
                 (-tls-skip-verify) or the environment (VAULT_SKIP_VERIFY) can turn TLS \
                 verification off",
            ));
        }
        let operator_address =
            caller.address.clone().or_else(|| env.address.clone()).unwrap_or_else(|| DEFAULT_ADDRESS.into());
        let redirect = match (&caller.address, &document.address) {
            (None, Some(doc)) if !same_address(doc, &operator_address) => Some(doc.clone()),
            _ => None,
        };
        let Some(doc_address) = redirect else {
            return caller.or(document).or(env).build();
        };
        // The document names its own server: only its own AppRole credentials may go there.
        let method = document.auth_method.clone().unwrap_or_else(|| "approle".into());
        let own_credentials = method == "approle"
            && document.token.is_none()
            && document.role_id.is_some()
            && document.secret_id_file.is_some();
        if !own_credentials {
            return Err(ResolveError::setting(
                "address",
                format!(
                    "the document's address {doc_address:?} is not the address from -address or \
                     VAULT_ADDR ({operator_address:?}), and a token from VAULT_TOKEN or \
                     ~/.vault-token is only sent to that one; a document that names its own \
                     server must bring its own AppRole credentials (role_id and secret_id_file \
                     in its [vault] section, no token), or pass -address to send the token there"
                ),
            ));
        }
        let tokens = operator_tokens(&env);
        let own = SettingsBuilder {
            auth_method: Some(method),
            token: None,
            role_id: document.role_id.clone(),
            secret_id_file: document.secret_id_file.clone(),
            ..document
        };
        let env = SettingsBuilder { token: None, role_id: None, secret_id_file: None, ..env };
        let settings = caller.or(own).or(env).build()?;
        // "Its own" credentials must not be the operator's token under another name
        // (`role_id = "env:VAULT_TOKEN"`, `secret_id_file = "~/.vault-token"`).
        if let AuthMethod::AppRole { role_id, secret_id_file, .. } = &settings.auth {
            let secret = read_secret_file(&secret_id_file.to_string_lossy()).ok();
            let is_token = |v: &str| tokens.iter().any(|t| t.trim() == v.trim());
            if is_token(role_id) || secret.as_deref().is_some_and(|s| is_token(s)) {
                return Err(ResolveError::setting(
                    "role_id",
                    format!(
                        "the document's AppRole credentials hold the operator's token (from the \
                         environment or ~/.vault-token); it is not sent to the document's address \
                         {doc_address:?}"
                    ),
                ));
            }
        }
        Ok(settings)
    }
}

/// Resolves a setting that may be an `env:`/`file:` reference or a literal.
fn local_value(s: &str) -> Result<Zeroizing<String>, LocalValueError> {
    match Reference::parse(s)? {
        Reference::Env { name } => {
            std::env::var(&name).map(Zeroizing::new).map_err(|_| LocalValueError::EnvMissing { name })
        }
        Reference::File { path } => {
            read_secret_file(&path).map_err(|e| LocalValueError::File { reason: e.to_string(), path })
        }
        Reference::Vault { .. } => Err(LocalValueError::VaultReference),
        Reference::Literal(l) => Ok(Zeroizing::new(l)),
    }
}

/// A secret file's contents without one trailing newline (`\n` or `\r\n`).
pub(super) fn read_secret_file(path: &str) -> std::io::Result<Zeroizing<String>> {
    let mut s = Zeroizing::new(std::fs::read_to_string(path)?);
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}
