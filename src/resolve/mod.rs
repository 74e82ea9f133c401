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

//!
//! Files: `reference.rs` (the grammar), `document.rs` (TOML/JSON/YAML/.env documents),
//! `settings.rs` (settings and their layers), `transport.rs` (how requests are sent),
//! `error.rs`, and the [`Resolver`] here. `resolve` uses the API client ([`crate::client`]) and
//! nothing of the server.

pub mod document;
pub mod error;
pub mod reference;
pub mod settings;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zeroize::Zeroizing;

pub use document::{Document, Format};
pub use error::{AuthError, ErrorKind, LocalValueError, ResolveError};
pub use reference::{ParseError, Reference};
use settings::read_secret_file;
pub use settings::{AuthMethod, Layers, Settings, SettingsBuilder, DEFAULT_ADDRESS};
pub use transport::{ApiCall, ClientTransport, Transport, TransportError};

/// The current token and when to renew it.
struct TokenState {
    token: Zeroizing<String>,
    /// When to renew (two thirds into the lease); `None` = never expires.
    renew_at: Option<Instant>,
    renewable: bool,
}

impl TokenState {
    /// A token with a lease of `ttl` seconds (0 = never expires).
    fn new(token: &str, ttl: u64, renewable: bool) -> Self {
        Self {
            token: Zeroizing::new(token.to_owned()),
            renew_at: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl * 2 / 3)),
            renewable,
        }
    }

    fn renewal_due(&self) -> bool {
        self.renew_at.is_some_and(|t| Instant::now() >= t)
    }
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

/// One field of a fetched secret version.
fn field_of(fetched: &Fetched, field: &str, shown: String) -> Result<Zeroizing<String>, ResolveError> {
    fetched.get(field).map(|v| Zeroizing::new(v.as_str().to_owned())).ok_or_else(|| ResolveError {
        reference: shown,
        kind: ErrorKind::FieldMissing { field: field.to_owned() },
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
        .map_err(|e| ResolveError::setting("address", e.to_string()))?;
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

    async fn login(&self) -> Result<TokenState, AuthError> {
        match &self.settings.auth {
            AuthMethod::Token(t) => {
                let call = ApiCall::get("auth/token/lookup-self", Some(t.as_str()));
                let (status, body) = self.transport.request(call).await?;
                if status != 200 {
                    return Err(AuthError::TokenRefused { status, message: server_message(&body) });
                }
                let ttl = body["data"]["ttl"].as_u64().unwrap_or(0);
                let renewable = body["data"]["renewable"].as_bool().unwrap_or(false);
                Ok(TokenState::new(t.as_str(), ttl, renewable))
            }
            AuthMethod::AppRole { mount, role_id, secret_id_file } => {
                let secret_id = read_secret_file(&secret_id_file.to_string_lossy()).map_err(|e| {
                    AuthError::SecretIdFile { path: secret_id_file.clone(), reason: e.to_string() }
                })?;
                let body = json!({"role_id": role_id.as_str(), "secret_id": secret_id.as_str()});
                let path = format!("auth/{mount}/login");
                let (status, resp) = self.transport.request(ApiCall::post(&path, None, body)).await?;
                if status != 200 {
                    return Err(AuthError::LoginRefused { status, message: server_message(&resp) });
                }
                let token = resp["auth"]["client_token"].as_str().ok_or(AuthError::NoClientToken)?;
                let ttl = resp["auth"]["lease_duration"].as_u64().unwrap_or(0);
                Ok(TokenState::new(token, ttl, resp["auth"]["renewable"].as_bool().unwrap_or(false)))
            }
        }
    }

    /// Renews the token; `Err` when the server refuses.
    async fn renew(&self, state: &TokenState) -> Result<TokenState, AuthError> {
        let call = ApiCall::post("auth/token/renew-self", Some(state.token.as_str()), json!({}));
        let (status, resp) = self.transport.request(call).await?;
        if status != 200 {
            return Err(AuthError::RenewalRefused { status });
        }
        let ttl = resp["auth"]["lease_duration"].as_u64().unwrap_or(0);
        let renewable = resp["auth"]["renewable"].as_bool().unwrap_or(false);
        Ok(TokenState::new(state.token.as_str(), ttl, renewable))
    }

    /// A usable token: logs in at first use, renews before expiry, logs in again when renewal is
    /// refused. A failed login keeps the previous state (the next call tries again).
    pub async fn token(&self) -> Result<Zeroizing<String>, AuthError> {
        let mut guard = self.token.lock().await;
        if let Some(current) = guard.as_ref().filter(|s| !s.renewal_due()) {
            return Ok(Zeroizing::new(current.token.as_str().to_owned()));
        }
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
        let token = Zeroizing::new(next.token.as_str().to_owned());
        *guard = Some(next);
        Ok(token)
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
        let call = ApiCall { query: &query, ..ApiCall::get(&url, Some(token.as_str())) };
        let (status, body) = self.transport.request(call).await.map_err(|e| err(ErrorKind::Transport(e)))?;
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
                kind: ErrorKind::File { reason: e.to_string() },
            }),
            Reference::Vault { path, field, version } => {
                field_of(&self.fetch(path, *version, &shown).await?, field, shown)
            }
        }
    }

    /// Resolves a string: `Ok(None)` for literals (nothing to replace).
    pub async fn resolve_str(&self, s: &str) -> Result<Option<Zeroizing<String>>, ResolveError> {
        let r = Reference::parse(s)
            .map_err(|e| ResolveError { reference: s.to_owned(), kind: ErrorKind::Malformed(e.reason) })?;
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
                    errors.push(ResolveError { reference: s.clone(), kind: ErrorKind::Malformed(e.reason) });
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
                        Some(Ok(f)) => field_of(f, field, r.to_string()),
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
