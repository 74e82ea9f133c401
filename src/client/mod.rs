//! An async HTTP client of the Vault/OpenBao API, used by the `coffer` CLI and by the `vault:`
//! reference resolver. It talks to coffer, Vault and OpenBao alike, and imports nothing of the
//! server (only `util` and `secret`).
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
//!
//! Files: `settings.rs` (where to connect), `token_helper.rs` (`~/.vault-token`), `response.rs`
//! (judging a status), `error.rs`, and the [`Client`] here.

pub mod error;
pub mod response;
pub mod settings;
pub mod token_helper;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;

use crate::secret::ClientToken;

pub use error::{ApiError, ClientError};
pub use response::RawResponse;
pub use settings::{Settings, DEFAULT_ADDRESS, DEFAULT_TIMEOUT};
pub use token_helper::{
    erase_token_helper, home_dir, read_token_helper, store_token_helper, TOKEN_HELPER_FILE,
};

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
            let v =
                HeaderValue::from_str(ns).map_err(|_| ClientError::Namespace { namespace: ns.to_owned() })?;
            headers.insert("X-Vault-Namespace", v);
        }
        let mut b = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .user_agent(concat!("coffer/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_cert {
            let ca_error =
                |message: String| ClientError::CaCert { path: path.display().to_string(), message };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(error::chain(&e)))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate found".into()));
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
        let http = b.build().map_err(|e| ClientError::HttpClient { message: error::chain(&e) })?;
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
            let mut v = HeaderValue::from_str(t.expose()).map_err(|_| ClientError::TokenHeader)?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        if let Some(b) = body {
            let bytes = serde_json::to_vec(b).map_err(|e| ClientError::Encode { message: e.to_string() })?;
            req = req.header(CONTENT_TYPE, content_type.unwrap_or("application/json")).body(bytes);
        }
        let transport_error = |e| ClientError::Transport {
            method: method_text.clone(),
            url: url_text.clone(),
            message: transport_message(e),
        };
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(transport_error)?;
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

    /// Sends raw bytes (or no body) and returns the raw body of a 2xx answer: raft snapshots,
    /// which are gzip archives, not JSON. Any other status is an [`ApiError`].
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<bytes::Bytes, ClientError> {
        let url = self.url(path, &[]);
        let url_text = url.to_string();
        let method_text = method.as_str().to_owned();
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            let mut v = HeaderValue::from_str(t.expose()).map_err(|_| ClientError::TokenHeader)?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, "application/octet-stream").body(b);
        }
        let transport_error = |e| ClientError::Transport {
            method: method_text.clone(),
            url: url_text.clone(),
            message: transport_message(e),
        };
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(transport_error)?;
        if !(200..300).contains(&status) {
            return Err(ApiError::from_body(&method_text, &url_text, status, &bytes).into());
        }
        Ok(bytes)
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
mod tests;
