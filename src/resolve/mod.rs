//! `vault:` references: parse them, authenticate, resolve them against a Vault-compatible server
//! (coffer or Vault/OpenBao alike), and render documents with every reference replaced.
//!
//! ```toml
//! [vault]                                   # optional: resolver settings inside the document
//! address = "https://coffer.internal:8200"
//! auth_method = "approle"
//! role_id = "env:ROLE_ID"
//! secret_id_file = "/run/secrets/secret_id"
//!
//! [ai]
//! openrouter_api_key = "vault:ai/openrouter_key"          # kv v2 at the kv mount, field "value"
//! db_password        = "vault:db/main#password@3"         # field "password" of version 3
//! webhook_secret     = "env:JOBS_WEBHOOK_SECRET"
//! tls_key            = "file:/run/secrets/tls.key"
//! ```
//!
//! Settings come, in this order of precedence, from the caller ([`SettingsBuilder`]), the
//! document's `vault` section, and the environment (`VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_CACERT`,
//! `VAULT_SKIP_VERIFY`, `VAULT_KV_MOUNT`, `VAULT_AUTH_METHOD`, `VAULT_ROLE_ID`,
//! `VAULT_SECRET_ID_FILE`, and the `BAO_*` / `COFFER_*` spellings); [`Layers`] merges them.
//!
//! A document is not trusted with the operator's credentials (security promise S26). Whoever
//! can edit a template must not be able to send the operator's token elsewhere, so
//! [`Layers::build`] enforces:
//!
//! * A token from the environment or `~/.vault-token` (and AppRole credentials from the
//!   environment) go only to the address from the caller or the environment (or the default).
//!   A document that names another address must bring its own AppRole credentials (`role_id`
//!   and `secret_id_file` in its `vault` section, which must not hold the operator's token
//!   either); otherwise the build fails before anything is sent.
//! * A document cannot turn TLS verification off: its `skip_verify = true` is refused unless
//!   the caller or the environment turn it off too.
//!
//! Every secret path is fetched once per pass. Errors name the reference, never a value;
//! values live in zeroizing strings.

pub mod document;
pub mod reference;
pub mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zeroize::Zeroizing;

pub use document::{Document, Format};
pub use reference::{ParseError, Reference};
pub use transport::{ClientTransport, Transport};

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
    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".vault-token")
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
        let setting = |name: &str, msg: String| ResolveError {
            reference: format!("setting {name}"),
            kind: ErrorKind::Settings(msg),
        };
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
                    Some(t) => local_value(&t).map_err(|e| setting("token", e))?,
                    None => match std::fs::read_to_string(token_file()) {
                        Ok(t) => Zeroizing::new(t.trim().to_owned()),
                        Err(_) => return Err(setting(
                            "token",
                            "no token: set VAULT_TOKEN, the token setting, or use auth_method = \"approle\""
                                .into(),
                        )),
                    },
                };
                AuthMethod::Token(token)
            }
            "approle" => {
                let role_id =
                    self.role_id.ok_or_else(|| setting("role_id", "approle needs role_id".into()))?;
                let role_id = local_value(&role_id).map_err(|e| setting("role_id", e))?;
                let secret_id_file = self
                    .secret_id_file
                    .ok_or_else(|| setting("secret_id_file", "approle needs secret_id_file".into()))?;
                AuthMethod::AppRole {
                    mount: self.approle_mount.unwrap_or_else(|| "approle".into()),
                    role_id,
                    secret_id_file: PathBuf::from(secret_id_file),
                }
            }
            other => {
                return Err(setting(
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
        let setting = |name: &str, msg: String| ResolveError {
            reference: format!("setting {name}"),
            kind: ErrorKind::Settings(msg),
        };
        let Layers { caller, document, env } = self;
        let operator_skips = caller.skip_verify.or(env.skip_verify) == Some(true);
        if document.skip_verify == Some(true) && !operator_skips {
            return Err(setting(
                "skip_verify",
                "the document's skip_verify = true is refused: only the command line \
                 (-tls-skip-verify) or the environment (VAULT_SKIP_VERIFY) can turn TLS \
                 verification off"
                    .into(),
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
            return Err(setting(
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
                return Err(setting(
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
fn local_value(s: &str) -> Result<Zeroizing<String>, String> {
    match Reference::parse(s).map_err(|e| e.to_string())? {
        Reference::Env { name } => std::env::var(&name)
            .map(Zeroizing::new)
            .map_err(|_| format!("environment variable {name} is not set")),
        Reference::File { path } => read_secret_file(&path).map_err(|e| format!("cannot read {path}: {e}")),
        Reference::Vault { .. } => Err("a setting cannot be a vault: reference".into()),
        Reference::Literal(l) => Ok(Zeroizing::new(l)),
    }
}

fn read_secret_file(path: &str) -> std::io::Result<Zeroizing<String>> {
    let mut s = Zeroizing::new(std::fs::read_to_string(path)?);
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}

/// What went wrong with one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Auth(String),
    Deleted { version: u64 },
    Denied,
    Destroyed { version: u64 },
    EnvMissing,
    FieldMissing { field: String },
    File(String),
    Malformed(String),
    NotFound,
    Server { status: u16, message: String },
    Settings(String),
    Transport(String),
}

/// An error naming the reference (never its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve {reference}: {}", describe(.kind))]
pub struct ResolveError {
    /// The reference as written (values never appear here).
    pub reference: String,
    pub kind: ErrorKind,
}

fn describe(k: &ErrorKind) -> String {
    match k {
        ErrorKind::Auth(m) => format!("authentication failed: {m}"),
        ErrorKind::Deleted { version } => format!("version {version} is deleted"),
        ErrorKind::Denied => "permission denied".into(),
        ErrorKind::Destroyed { version } => format!("version {version} is destroyed"),
        ErrorKind::EnvMissing => "environment variable is not set".into(),
        ErrorKind::FieldMissing { field } => format!("the secret has no field {field:?}"),
        ErrorKind::File(m) => m.clone(),
        ErrorKind::Malformed(m) => m.clone(),
        ErrorKind::NotFound => "no such secret (or version)".into(),
        ErrorKind::Server { status, message } => format!("server answered {status}: {message}"),
        ErrorKind::Settings(m) => m.clone(),
        ErrorKind::Transport(m) => format!("cannot reach the server: {m}"),
    }
}

struct TokenState {
    token: Zeroizing<String>,
    /// When to renew (two thirds into the lease); `None` = never expires.
    renew_at: Option<Instant>,
    renewable: bool,
}

/// The resolver: settings, a transport and the current token.
pub struct Resolver {
    settings: Settings,
    transport: Arc<dyn Transport>,
    token: tokio::sync::Mutex<Option<TokenState>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").field("address", &self.settings.address).finish_non_exhaustive()
    }
}

/// A fetched secret version: field → value.
type Fetched = BTreeMap<String, Zeroizing<String>>;

fn value_text(v: &Value) -> Zeroizing<String> {
    Zeroizing::new(match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn server_message(body: &Value) -> String {
    body.get("errors")
        .and_then(Value::as_array)
        .map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
        .unwrap_or_default()
}

impl Resolver {
    /// A resolver over HTTP(S) to `settings.address`.
    pub fn new(settings: Settings) -> Result<Self, ResolveError> {
        let client = crate::client::Client::new(crate::client::Settings {
            address: settings.address.clone(),
            token: None,
            ca_cert: settings.ca_cert.clone(),
            dangerous_skip_verify: settings.skip_verify,
            ..crate::client::Settings::default()
        })
        .map_err(|e| ResolveError {
            reference: "setting address".into(),
            kind: ErrorKind::Settings(e.to_string()),
        })?;
        Ok(Self::with_transport(settings, Arc::new(ClientTransport::new(client))))
    }

    /// A resolver over any transport (tests).
    pub fn with_transport(settings: Settings, transport: Arc<dyn Transport>) -> Self {
        Self { settings, transport, token: tokio::sync::Mutex::new(None) }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn login(&self) -> Result<TokenState, String> {
        match &self.settings.auth {
            AuthMethod::Token(t) => {
                let (status, body) = self
                    .transport
                    .request("GET", "auth/token/lookup-self", &[], Some(t.as_str()), None)
                    .await?;
                if status != 200 {
                    return Err(format!("token lookup answered {status}: {}", server_message(&body)));
                }
                let ttl = body["data"]["ttl"].as_u64().unwrap_or(0);
                let renewable = body["data"]["renewable"].as_bool().unwrap_or(false);
                Ok(TokenState {
                    token: Zeroizing::new(t.as_str().to_owned()),
                    renew_at: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl * 2 / 3)),
                    renewable,
                })
            }
            AuthMethod::AppRole { mount, role_id, secret_id_file } => {
                let secret_id = read_secret_file(&secret_id_file.to_string_lossy())
                    .map_err(|e| format!("cannot read secret_id_file {}: {e}", secret_id_file.display()))?;
                let body = json!({"role_id": role_id.as_str(), "secret_id": secret_id.as_str()});
                let (status, resp) = self
                    .transport
                    .request("POST", &format!("auth/{mount}/login"), &[], None, Some(body))
                    .await?;
                if status != 200 {
                    return Err(format!("approle login answered {status}: {}", server_message(&resp)));
                }
                let token =
                    resp["auth"]["client_token"].as_str().ok_or("login response has no client_token")?;
                let ttl = resp["auth"]["lease_duration"].as_u64().unwrap_or(0);
                Ok(TokenState {
                    token: Zeroizing::new(token.to_owned()),
                    renew_at: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl * 2 / 3)),
                    renewable: resp["auth"]["renewable"].as_bool().unwrap_or(false),
                })
            }
        }
    }

    /// Renews the token; `Err` when the server refuses.
    async fn renew(&self, state: &TokenState) -> Result<TokenState, String> {
        let (status, resp) = self
            .transport
            .request("POST", "auth/token/renew-self", &[], Some(state.token.as_str()), Some(json!({})))
            .await?;
        if status != 200 {
            return Err(format!("renewal answered {status}"));
        }
        let ttl = resp["auth"]["lease_duration"].as_u64().unwrap_or(0);
        Ok(TokenState {
            token: Zeroizing::new(state.token.as_str().to_owned()),
            renew_at: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl * 2 / 3)),
            renewable: resp["auth"]["renewable"].as_bool().unwrap_or(false),
        })
    }

    /// A usable token: logs in at first use, renews before expiry, logs in again when renewal is
    /// refused.
    pub async fn token(&self) -> Result<Zeroizing<String>, String> {
        let mut guard = self.token.lock().await;
        let due = match guard.as_ref() {
            None => true,
            Some(s) => s.renew_at.map(|t| Instant::now() >= t).unwrap_or(false),
        };
        if due {
            let next = match guard.as_ref() {
                Some(s) if s.renewable => match self.renew(s).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::info!(reason = %e, "token renewal refused; logging in again");
                        self.login().await?
                    }
                },
                _ => self.login().await?,
            };
            *guard = Some(next);
        }
        let s = guard.as_ref().ok_or("no token")?;
        Ok(Zeroizing::new(s.token.as_str().to_owned()))
    }

    /// Forces a fresh login at next use (e.g. after a 403).
    pub async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    async fn fetch(&self, path: &str, version: Option<u64>, shown: &str) -> Result<Fetched, ResolveError> {
        let err = |kind| ResolveError { reference: shown.to_owned(), kind };
        let token = self.token().await.map_err(|e| err(ErrorKind::Auth(e)))?;
        let url = format!("{}/data/{}", self.settings.kv_mount, path);
        let v = version.map(|v| v.to_string());
        let query: Vec<(&str, &str)> = v.as_deref().map(|v| vec![("version", v)]).unwrap_or_default();
        let (status, body) = self
            .transport
            .request("GET", &url, &query, Some(token.as_str()), None)
            .await
            .map_err(|e| err(ErrorKind::Transport(e)))?;
        match status {
            200 => {
                let data = body["data"]["data"].as_object().ok_or_else(|| err(ErrorKind::NotFound))?;
                Ok(data.iter().map(|(k, v)| (k.clone(), value_text(v))).collect())
            }
            404 => {
                let meta = &body["data"]["metadata"];
                let v = meta["version"].as_u64().unwrap_or(version.unwrap_or(0));
                if meta["destroyed"].as_bool() == Some(true) {
                    Err(err(ErrorKind::Destroyed { version: v }))
                } else if meta["deletion_time"].as_str().map(|s| !s.is_empty()).unwrap_or(false) {
                    Err(err(ErrorKind::Deleted { version: v }))
                } else {
                    Err(err(ErrorKind::NotFound))
                }
            }
            403 => Err(err(ErrorKind::Denied)),
            s => Err(err(ErrorKind::Server { status: s, message: server_message(&body) })),
        }
    }

    /// Resolves one parsed reference.
    pub async fn resolve(&self, r: &Reference) -> Result<Zeroizing<String>, ResolveError> {
        let shown = r.to_string();
        match r {
            Reference::Literal(s) => Ok(Zeroizing::new(s.clone())),
            Reference::Env { name } => std::env::var(name)
                .map(Zeroizing::new)
                .map_err(|_| ResolveError { reference: shown, kind: ErrorKind::EnvMissing }),
            Reference::File { path } => read_secret_file(path).map_err(|e| ResolveError {
                reference: shown,
                kind: ErrorKind::File(format!("cannot read the file: {e}")),
            }),
            Reference::Vault { path, field, version } => {
                let fetched = self.fetch(path, *version, &shown).await?;
                fetched.get(field).map(|v| Zeroizing::new(v.as_str().to_owned())).ok_or(ResolveError {
                    reference: shown,
                    kind: ErrorKind::FieldMissing { field: field.clone() },
                })
            }
        }
    }

    /// Resolves a string: `Ok(None)` for literals (nothing to replace).
    pub async fn resolve_str(&self, s: &str) -> Result<Option<Zeroizing<String>>, ResolveError> {
        let r = Reference::parse(s).map_err(|e| ResolveError {
            reference: s.to_owned(),
            kind: ErrorKind::Malformed(e.reason.into()),
        })?;
        match &r {
            Reference::Literal(l) if l == s => Ok(None),
            _ => self.resolve(&r).await.map(Some),
        }
    }

    /// Resolves every reference in `strings` in one pass (each secret path and version fetched
    /// once). Returns the resolved values by original text, and the failures.
    pub async fn resolve_all(
        &self,
        strings: &[String],
    ) -> (BTreeMap<String, Zeroizing<String>>, Vec<ResolveError>) {
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        let mut cache: BTreeMap<(String, Option<u64>), Result<Fetched, ResolveError>> = BTreeMap::new();
        for s in strings {
            if values.contains_key(s) {
                continue;
            }
            let r = match Reference::parse(s) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(ResolveError {
                        reference: s.clone(),
                        kind: ErrorKind::Malformed(e.reason.into()),
                    });
                    continue;
                }
            };
            let result = match &r {
                Reference::Literal(l) if l == s => continue,
                Reference::Vault { path, field, version } => {
                    let key = (path.clone(), *version);
                    if !cache.contains_key(&key) {
                        let fetched = self.fetch(path, *version, &r.to_string()).await;
                        cache.insert(key.clone(), fetched);
                    }
                    match cache.get(&key) {
                        Some(Ok(f)) => {
                            f.get(field).map(|v| Zeroizing::new(v.as_str().to_owned())).ok_or(ResolveError {
                                reference: r.to_string(),
                                kind: ErrorKind::FieldMissing { field: field.clone() },
                            })
                        }
                        Some(Err(e)) => Err(ResolveError { reference: r.to_string(), kind: e.kind.clone() }),
                        None => Err(ResolveError { reference: r.to_string(), kind: ErrorKind::NotFound }),
                    }
                }
                _ => self.resolve(&r).await,
            };
            match result {
                Ok(v) => {
                    values.insert(s.clone(), v);
                }
                Err(e) => errors.push(e),
            }
        }
        (values, errors)
    }

    /// Replaces every reference in `doc`. References whose text is in `allow_missing` may fail
    /// (they stay as written); any other failure is returned and the document is unchanged.
    pub async fn resolve_document(
        &self,
        doc: &mut Document,
        allow_missing: &[String],
    ) -> Result<usize, Vec<ResolveError>> {
        let strings = doc.strings();
        let (values, errors) = self.resolve_all(&strings).await;
        let fatal: Vec<ResolveError> = errors
            .into_iter()
            .filter(|e| {
                !allow_missing.iter().any(|a| {
                    a == &e.reference
                        || Reference::parse(a).map(|r| r.to_string() == e.reference).unwrap_or(false)
                })
            })
            .collect();
        if !fatal.is_empty() {
            return Err(fatal);
        }
        let mut n = 0;
        doc.visit_strings(&mut |s| {
            let v = values.get(s).map(|v| Zeroizing::new(v.as_str().to_owned()));
            if v.is_some() {
                n += 1;
            } else if let Ok(Reference::Literal(l)) = Reference::parse(s) {
                if l != s {
                    // An escaped reference: drop the backslash.
                    return Some(Zeroizing::new(l));
                }
            }
            v
        });
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
