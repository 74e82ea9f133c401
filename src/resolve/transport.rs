//! How the resolver talks to the server: a small trait (so tests can fake the server), and its
//! implementation over the shared API client ([`crate::client::Client`]).
//!
//! A [`TransportError`] means the request failed: a refused connection, a TLS failure, a
//! timeout. An answer with an error status is not an error here; the resolver judges statuses
//! itself.

use async_trait::async_trait;
use serde_json::Value;

use crate::client::Client;
use crate::secret::ClientToken;

/// One API request; `path` is relative to `/v1/`. Its `Debug` shows neither token nor body.
pub struct ApiCall<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(&'a str, &'a str)],
    pub token: Option<&'a str>,
    pub body: Option<Value>,
}

impl<'a> ApiCall<'a> {
    /// `GET path` with `token`.
    pub fn get(path: &'a str, token: Option<&'a str>) -> Self {
        Self { method: "GET", path, query: &[], token, body: None }
    }

    /// `POST path` with `token` and a JSON body.
    pub fn post(path: &'a str, token: Option<&'a str>, body: Value) -> Self {
        Self { method: "POST", path, query: &[], token, body: Some(body) }
    }
}

impl std::fmt::Debug for ApiCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCall")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

/// The request got no HTTP answer. Messages name the method and URL and the cause, never a
/// token or a body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The method is not an HTTP method token.
    #[error("invalid HTTP method {method:?}")]
    Method { method: String },
    /// Connection, TLS or timeout failure, or a 2xx answer that is not JSON (the client's
    /// message).
    #[error("{0}")]
    Failed(String),
}

/// Sends API requests.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Returns the status and the JSON body (`Null` when empty).
    async fn request(&self, call: ApiCall<'_>) -> Result<(u16, Value), TransportError>;
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
    async fn request(&self, call: ApiCall<'_>) -> Result<(u16, Value), TransportError> {
        let method = reqwest::Method::from_bytes(call.method.as_bytes())
            .map_err(|_| TransportError::Method { method: call.method.to_owned() })?;
        let client = self.client.with_token(call.token.map(|t| ClientToken::new(t.to_owned())));
        let resp = client
            .send(method, call.path, call.query, call.body.as_ref())
            .await
            .map_err(|e| TransportError::Failed(e.to_string()))?;
        Ok((resp.status, resp.body.unwrap_or(Value::Null)))
    }
}
