//! How the resolver talks to the server: a small trait, and its HTTP(S) implementation.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

/// Sends one API request; `path` is relative to `/v1/`.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Returns the status and the JSON body (`Null` when empty). `Err` = no answer.
    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String>;
}

/// reqwest over rustls (ring), trusting the system roots or a given CA.
pub struct HttpTransport {
    base: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport").field("base", &self.base).finish()
    }
}

impl HttpTransport {
    /// A transport to `address` (`https://host:port`).
    pub fn new(address: &str, ca_cert: Option<&Path>, skip_verify: bool) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = ca_cert {
            let pem =
                std::fs::read(ca).map_err(|e| format!("cannot read CA certificate {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("invalid CA certificate {}: {e}", ca.display()))?;
            b = b.tls_certs_only([cert]);
        }
        if skip_verify {
            tracing::warn!("TLS certificate verification is disabled (skip_verify)");
            b = b.tls_danger_accept_invalid_certs(true);
        }
        let client = b.build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { base: format!("{}/v1/", address.trim_end_matches('/')), client })
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut r =
            self.client.request(m, format!("{}{}", self.base, path)).header("X-Vault-Request", "true");
        if let Some(t) = token {
            r = r.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        // Connection errors never carry request bodies or tokens.
        let resp = r.send().await.map_err(|e| e.without_url().to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| e.without_url().to_string())?;
        let v = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok((status, v))
    }
}
