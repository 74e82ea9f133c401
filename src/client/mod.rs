//! An async HTTP client of the Vault/OpenBao API, used by the `coffer` CLI and (later) by the
//! `vault:` reference resolver. It talks to coffer, Vault and OpenBao alike.
//!
//! * [`Settings`] come from the caller or from the environment ([`Settings::from_env`]):
//!   `COFFER_ADDR`/`BAO_ADDR`/`VAULT_ADDR` (default `https://127.0.0.1:8200`), the token from
//!   `COFFER_TOKEN`/`BAO_TOKEN`/`VAULT_TOKEN` or the token helper file `~/.vault-token`,
//!   `*_CACERT` (a PEM bundle that replaces the system roots), `*_SKIP_VERIFY` (dangerous:
//!   logs a warning), `*_NAMESPACE` (sent as `X-Vault-Namespace`). The most specific prefix
//!   wins: `COFFER_` over `BAO_` over `VAULT_`.
//! * [`Client`] sends every request with `X-Vault-Request: true` and the token in
//!   `X-Vault-Token`, lists with the `LIST` verb and patches with
//!   `application/merge-patch+json`, as the Go client does.
//! * `read`, `list`, `write`, `delete` and `patch` follow the Go client's `Logical()` rules:
//!   a 404 without data or warnings is `Ok(None)`; a 404 that carries data (a KV v2 deleted
//!   version) is returned as a value; any other non-2xx is an [`ApiError`].
//!
//! Secrets: the token is a [`ClientToken`] (zeroized, redacted `Debug`); errors never contain
//! request or response bodies (see [`error`]); nothing is logged but the skip-verify warning.
//! Response bodies are plain `serde_json::Value`s owned by the caller.

pub mod error;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;

use crate::secret::ClientToken;

pub use error::{ApiError, ClientError};

/// Address used when none is configured, as the Vault CLI.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";

/// Per-request timeout when none is configured (the Go client's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Name of the token helper file in the home directory.
pub const TOKEN_HELPER_FILE: &str = ".vault-token";

/// How to reach and authenticate to the server.
#[derive(Debug)]
pub struct Settings {
    /// Base URL, e.g. `https://vault.example:8200`.
    pub address: String,
    /// Client token, if any.
    pub token: Option<ClientToken>,
    /// PEM bundle of CA certificates to trust instead of the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate. Dangerous: only for tests against self-signed servers.
    pub dangerous_skip_verify: bool,
    /// Namespace sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            address: DEFAULT_ADDRESS.to_owned(),
            token: None,
            ca_cert: None,
            dangerous_skip_verify: false,
            namespace: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Settings {
    /// Settings from the process environment and the token helper file.
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_lookup(|name| std::env::var(name).ok(), home_dir().as_deref())
    }

    /// Settings from an environment lookup function and a home directory (for tests).
    pub fn from_lookup(
        env: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let var = |suffix: &str| {
            ["COFFER_", "BAO_", "VAULT_"]
                .iter()
                .find_map(|p| env(&format!("{p}{suffix}")).filter(|v| !v.trim().is_empty()))
        };
        let mut s = Settings::default();
        if let Some(addr) = var("ADDR") {
            s.address = addr.trim().to_owned();
        }
        s.token = match var("TOKEN") {
            Some(t) => Some(ClientToken::new(t.trim().to_owned())),
            None => match home {
                Some(h) => read_token_helper(&h.join(TOKEN_HELPER_FILE))?,
                None => None,
            },
        };
        s.ca_cert = var("CACERT").map(PathBuf::from);
        if let Some(v) = var("SKIP_VERIFY") {
            s.dangerous_skip_verify = crate::util::strconv::parse_bool_str(v.trim()).ok_or_else(|| {
                ClientError::Config(format!("could not parse SKIP_VERIFY value {:?}", v.trim()))
            })?;
        }
        s.namespace = var("NAMESPACE");
        if let Some(t) = var("CLIENT_TIMEOUT") {
            let secs = crate::util::duration::parse_str_seconds_signed(&t)
                .map_err(|e| ClientError::Config(format!("invalid CLIENT_TIMEOUT: {e}")))?;
            if secs > 0 {
                s.timeout = Duration::from_secs(secs as u64);
            }
        }
        Ok(s)
    }
}

/// The user's home directory (`$HOME`).
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// Reads the token helper file; a missing or empty file means no token.
pub fn read_token_helper(path: &Path) -> Result<Option<ClientToken>, ClientError> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = zeroize::Zeroizing::new(s);
            let t = s.trim();
            Ok((!t.is_empty()).then(|| ClientToken::new(t.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::TokenHelper { path: path.display().to_string(), message: e.to_string() }),
    }
}

/// Stores a token in the token helper file with mode 0600, replacing it atomically.
pub fn store_token_helper(path: &Path, token: &ClientToken) -> Result<(), ClientError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| ClientError::TokenHelper {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(err)?;
    let written = f.write_all(token.expose().as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Removes the token helper file (no error when absent).
pub fn erase_token_helper(path: &Path) -> Result<(), ClientError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClientError::TokenHelper { path: path.display().to_string(), message: e.to_string() }),
    }
}

/// A response whose status has not been judged yet.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Parsed JSON body; `None` for an empty body (204).
    pub body: Option<Value>,
    /// Request method, for error messages.
    pub method: String,
    /// Request URL, for error messages.
    pub url: String,
    raw_error: Option<ApiError>,
}

impl RawResponse {
    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body of a 2xx response, or the [`ApiError`] of any other.
    pub fn into_result(self) -> Result<Option<Value>, ClientError> {
        if self.is_success() {
            return Ok(self.body);
        }
        Err(self.into_api_error().into())
    }

    /// The error this response represents (meaningful for non-2xx).
    pub fn into_api_error(self) -> ApiError {
        self.raw_error.unwrap_or_else(|| ApiError {
            status: self.status,
            errors: Vec::new(),
            url: self.url,
            method: self.method,
            raw: false,
        })
    }

    /// The Go client's `Logical()` handling: a 404 is `None` unless its body carries data or
    /// warnings (then it is returned as a value); other errors are errors.
    pub fn into_logical(self) -> Result<Option<Value>, ClientError> {
        if self.status == 404 {
            let meaningful = self.body.as_ref().is_some_and(|b| {
                let data = b.get("data").is_some_and(|d| d.as_object().is_some_and(|m| !m.is_empty()));
                let warnings = b.get("warnings").is_some_and(|w| w.as_array().is_some_and(|a| !a.is_empty()));
                data || warnings
            });
            return Ok(if meaningful { self.body } else { None });
        }
        self.into_result()
    }
}

/// The `LIST` HTTP verb.
pub fn list_method() -> Method {
    // Invariant: "LIST" is a valid token of the HTTP method grammar.
    Method::from_bytes(b"LIST").unwrap_or(Method::GET)
}

/// An HTTP client bound to one server and (optionally) one token.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<ClientToken>,
    namespace: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Client {
    /// Builds a client; reads the CA file now so a bad path fails early.
    pub fn new(settings: Settings) -> Result<Self, ClientError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = parse_address(&settings.address)?;
        let mut headers = HeaderMap::new();
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));
        if let Some(ns) = settings.namespace.as_deref().filter(|n| !n.is_empty()) {
            let v = HeaderValue::from_str(ns)
                .map_err(|_| ClientError::Config(format!("invalid namespace {ns:?}")))?;
            headers.insert("X-Vault-Namespace", v);
        }
        let mut b = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .user_agent(concat!("coffer/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_cert {
            let pem = std::fs::read(path).map_err(|e| ClientError::CaCert {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::CaCert {
                path: path.display().to_string(),
                message: error::chain(&e),
            })?;
            if certs.is_empty() {
                return Err(ClientError::CaCert {
                    path: path.display().to_string(),
                    message: "no PEM certificate found".into(),
                });
            }
            b = b.tls_certs_only(certs);
        }
        if settings.dangerous_skip_verify {
            tracing::warn!(
                address = %base,
                "TLS certificate verification is disabled (SKIP_VERIFY is set): the connection can be intercepted"
            );
            b = b.tls_danger_accept_invalid_certs(true);
        }
        let http = b
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build HTTP client: {}", error::chain(&e))))?;
        Ok(Self { http, base, token: settings.token, namespace: settings.namespace })
    }

    /// A client configured from the environment ([`Settings::from_env`]).
    pub fn from_env() -> Result<Self, ClientError> {
        Self::new(Settings::from_env()?)
    }

    /// The server's base address.
    pub fn address(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// True when a token is set.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Replaces the token.
    pub fn set_token(&mut self, token: Option<ClientToken>) {
        self.token = token;
    }

    /// The same server and TLS settings with another token (the connection pool is shared).
    pub fn with_token(&self, token: Option<ClientToken>) -> Client {
        Client { http: self.http.clone(), base: self.base.clone(), token, namespace: self.namespace.clone() }
    }

    /// The URL of an API path (`sys/mounts` → `<address>/v1/sys/mounts`). Each path segment is
    /// percent-encoded; a trailing `/` is kept.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        {
            // Invariant: `parse_address` only accepts http(s) URLs, which can be a base.
            if let Ok(mut segs) = url.path_segments_mut() {
                segs.pop_if_empty();
                segs.push("v1");
                segs.extend(path.trim_start_matches('/').split('/'));
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends one request and returns the status and parsed body without judging the status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<RawResponse, ClientError> {
        self.send_with_type(method, path, query, body, None).await
    }

    async fn send_with_type(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        content_type: Option<&'static str>,
    ) -> Result<RawResponse, ClientError> {
        let url = self.url(path, query);
        let url_text = url.to_string();
        let method_text = method.as_str().to_owned();
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            let mut v = HeaderValue::from_str(t.expose()).map_err(|_| {
                ClientError::Config("the token contains characters not allowed in a header".into())
            })?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        if let Some(b) = body {
            let bytes = serde_json::to_vec(b)
                .map_err(|e| ClientError::Config(format!("cannot encode request: {e}")))?;
            req = req.header(CONTENT_TYPE, content_type.unwrap_or("application/json")).body(bytes);
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            method: method_text.clone(),
            url: url_text.clone(),
            message: transport_message(e),
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            method: method_text.clone(),
            url: url_text.clone(),
            message: transport_message(e),
        })?;
        let success = (200..300).contains(&status);
        let parsed = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => Some(v),
                Err(e) if success => {
                    return Err(ClientError::Decode {
                        method: method_text,
                        url: url_text,
                        message: e.to_string(),
                    })
                }
                Err(_) => None,
            }
        };
        let raw_error = (!success).then(|| ApiError::from_body(&method_text, &url_text, status, &bytes));
        Ok(RawResponse { status, body: parsed, method: method_text, url: url_text, raw_error })
    }

    /// `GET`: the response envelope, `None` when nothing is there (404).
    pub async fn read(&self, path: &str) -> Result<Option<Value>, ClientError> {
        self.read_with(path, &[]).await
    }

    /// `GET` with query parameters.
    pub async fn read_with(&self, path: &str, query: &[(&str, &str)]) -> Result<Option<Value>, ClientError> {
        self.send(Method::GET, path, query, None).await?.into_logical()
    }

    /// `LIST`: the response envelope (`data.keys`), `None` when empty or absent.
    pub async fn list(&self, path: &str) -> Result<Option<Value>, ClientError> {
        self.send(list_method(), path, &[], None).await?.into_logical()
    }

    /// `PUT` with a JSON body: the response envelope, `None` for 204.
    pub async fn write(&self, path: &str, body: &Value) -> Result<Option<Value>, ClientError> {
        self.send(Method::PUT, path, &[], Some(body)).await?.into_write()
    }

    /// `DELETE`: the response envelope, `None` for 204.
    pub async fn delete(&self, path: &str) -> Result<Option<Value>, ClientError> {
        self.delete_with(path, &[]).await
    }

    /// `DELETE` with query parameters.
    pub async fn delete_with(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<Value>, ClientError> {
        self.send(Method::DELETE, path, query, None).await?.into_write()
    }

    /// `PATCH` with `Content-Type: application/merge-patch+json`.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Option<Value>, ClientError> {
        self.send_with_type(Method::PATCH, path, &[], Some(body), Some("application/merge-patch+json"))
            .await?
            .into_write()
    }
}

impl RawResponse {
    /// Writes: a 404 that carries data or warnings is a value; any other error status an error.
    fn into_write(self) -> Result<Option<Value>, ClientError> {
        if self.status == 404 {
            let meaningful = self.body.as_ref().is_some_and(|b| {
                b.get("errors").is_none()
                    && (b.get("data").is_some_and(|d| d.as_object().is_some_and(|m| !m.is_empty()))
                        || b.get("warnings").is_some_and(|w| w.as_array().is_some_and(|a| !a.is_empty())))
            });
            if meaningful {
                return Ok(self.body);
            }
        }
        self.into_result()
    }
}

fn parse_address(address: &str) -> Result<Url, ClientError> {
    let err = |m: &str| ClientError::Address { address: address.to_owned(), message: m.to_owned() };
    let url = Url::parse(address.trim()).map_err(|e| err(&e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(err(&format!("unsupported scheme {other:?} (use http or https)"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(err("missing host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("an address cannot have a query or fragment"));
    }
    Ok(url)
}

fn transport_message(e: reqwest::Error) -> String {
    // The URL is already part of the message around this text.
    let timeout = e.is_timeout();
    let text = error::chain(&e.without_url());
    if timeout {
        format!("{text}: request timed out")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn settings_from_environment() {
        let s = Settings::from_lookup(env(&[]), None).unwrap();
        assert_eq!(s.address, DEFAULT_ADDRESS);
        assert!(s.token.is_none());
        assert!(!s.dangerous_skip_verify);

        let s = Settings::from_lookup(
            env(&[
                ("VAULT_ADDR", "http://v:1"),
                ("BAO_ADDR", "http://b:2"),
                ("VAULT_TOKEN", "vt"),
                ("VAULT_SKIP_VERIFY", "true"),
                ("VAULT_NAMESPACE", "ns1/"),
                ("VAULT_CACERT", "/ca.pem"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.address, "http://b:2", "BAO_ wins over VAULT_");
        assert_eq!(s.token.as_ref().unwrap().expose(), "vt");
        assert!(s.dangerous_skip_verify);
        assert_eq!(s.namespace.as_deref(), Some("ns1/"));
        assert_eq!(s.ca_cert.as_deref(), Some(Path::new("/ca.pem")));

        let s =
            Settings::from_lookup(env(&[("COFFER_ADDR", "http://c:3"), ("BAO_ADDR", "http://b:2")]), None)
                .unwrap();
        assert_eq!(s.address, "http://c:3");
        assert!(Settings::from_lookup(env(&[("VAULT_SKIP_VERIFY", "maybe")]), None).is_err());
        // An empty variable counts as unset.
        let s = Settings::from_lookup(env(&[("COFFER_TOKEN", ""), ("VAULT_TOKEN", "x")]), None).unwrap();
        assert_eq!(s.token.unwrap().expose(), "x");
    }

    #[test]
    fn token_helper_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Settings::from_lookup(env(&[]), Some(dir.path())).unwrap().token.is_none());
        let path = dir.path().join(TOKEN_HELPER_FILE);
        store_token_helper(&path, &ClientToken::new("hvs.abc".into())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let s = Settings::from_lookup(env(&[]), Some(dir.path())).unwrap();
        assert_eq!(s.token.unwrap().expose(), "hvs.abc");
        // The environment wins over the file.
        let s = Settings::from_lookup(env(&[("VAULT_TOKEN", "envtok")]), Some(dir.path())).unwrap();
        assert_eq!(s.token.unwrap().expose(), "envtok");
        erase_token_helper(&path).unwrap();
        erase_token_helper(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn urls_are_built_per_segment() {
        let c =
            Client::new(Settings { address: "http://127.0.0.1:8200".into(), ..Settings::default() }).unwrap();
        assert_eq!(c.url("secret/data/a b", &[]).as_str(), "http://127.0.0.1:8200/v1/secret/data/a%20b");
        assert_eq!(c.url("secret/metadata/", &[]).as_str(), "http://127.0.0.1:8200/v1/secret/metadata/");
        assert_eq!(
            c.url("x?y#z", &[("version", "2")]).as_str(),
            "http://127.0.0.1:8200/v1/x%3Fy%23z?version=2"
        );
        let c = Client::new(Settings { address: "https://h/prefix/".into(), ..Settings::default() }).unwrap();
        assert_eq!(c.url("sys/health", &[]).as_str(), "https://h/prefix/v1/sys/health");
        assert!(Client::new(Settings { address: "ftp://h".into(), ..Settings::default() }).is_err());
        assert!(Client::new(Settings { address: "not a url".into(), ..Settings::default() }).is_err());
    }

    #[test]
    fn debug_hides_the_token() {
        let c = Client::new(Settings {
            address: "http://h:1".into(),
            token: Some(ClientToken::new("hvs.secret-token".into())),
            ..Settings::default()
        })
        .unwrap();
        assert!(!format!("{c:?}").contains("secret-token"));
    }

    #[test]
    fn logical_404_rules() {
        let r = |status, body: Option<Value>| RawResponse {
            status,
            body,
            method: "GET".into(),
            url: "u".into(),
            raw_error: None,
        };
        assert!(r(404, Some(json!({"errors": []}))).into_logical().unwrap().is_none());
        assert!(r(404, None).into_logical().unwrap().is_none());
        let deleted = json!({"data": {"data": null, "metadata": {"version": 1}}});
        assert_eq!(r(404, Some(deleted.clone())).into_logical().unwrap(), Some(deleted));
        assert_eq!(r(403, None).into_logical().unwrap_err().status(), Some(403));
        assert!(r(204, None).into_result().unwrap().is_none());
        assert_eq!(r(404, Some(json!({"errors": ["nope"]}))).into_write().unwrap_err().status(), Some(404));
    }

    #[test]
    fn missing_ca_file_fails_early() {
        let e = Client::new(Settings {
            address: "https://h:1".into(),
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..Settings::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
