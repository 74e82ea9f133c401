//! How the resolver talks to the server: a small trait (so tests can fake the server), and its
//! implementation over the shared API client ([`crate::client::Client`]).

use async_trait::async_trait;
use serde_json::Value;

use crate::client::Client;
use crate::secret::ClientToken;

/// Sends one API request; `path` is relative to `/v1/`.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Returns the status and the JSON body (`Null` when empty). `Err` = no answer.
    async fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String>;
}

/// The resolver's transport over [`Client`] (TLS settings, CA, skip-verify, namespace).
pub struct ClientTransport {
    client: Client,
}

impl std::fmt::Debug for ClientTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTransport").field("address", &self.client.address()).finish()
    }
}

impl ClientTransport {
    /// Wraps a client (its own token is not used; every call passes one).
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Transport for ClientTransport {
    async fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let client = self.client.with_token(token.map(|t| ClientToken::new(t.to_owned())));
        // Transport errors name the URL and the cause, never a token or a body.
        let resp = client.send(m, path, query, body.as_ref()).await.map_err(|e| e.to_string())?;
        Ok((resp.status, resp.body.unwrap_or(Value::Null)))
    }
}
