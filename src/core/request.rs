//! Requests and responses as the core sees them (Vault's `logical.Request` / `Response`).
//!
//! The HTTP layer builds a [`Request`] from method, path, query, headers and body; the core
//! routes it and a backend returns a [`Response`], which the HTTP layer renders in the Vault
//! envelope. Neither type prints its data in `Debug`: request bodies carry secrets.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::core::mounts::MountEntry;
use crate::core::token::TokenEntry;
use crate::policy::Operation;
use crate::secret::ClientToken;
use coffer_storage::View;

/// A request entering the core.
pub struct Request {
    /// UUID of this request (echoed as `request_id`).
    pub id: String,
    pub operation: Operation,
    /// Logical path without `/v1/` (e.g. `secret/data/app`); lists end in `/`.
    pub path: String,
    /// Body (writes) or query parameters (reads, lists, deletes).
    pub data: Map<String, Value>,
    /// The caller's token, from `X-Vault-Token` or `Authorization: Bearer`.
    pub token: Option<ClientToken>,
    pub remote_addr: Option<IpAddr>,
    /// `X-Vault-Wrap-TTL`, in seconds.
    pub wrap_ttl: Option<u64>,
    /// Selected request headers (lower-case names), for audit.
    pub headers: BTreeMap<String, String>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request with no data and no token (tests, internal calls).
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            operation,
            path: path.into(),
            data: Map::new(),
            token: None,
            remote_addr: None,
            wrap_ttl: None,
            headers: BTreeMap::new(),
        }
    }
}

/// What a backend sees of a request: everything already resolved by the core.
pub struct BackendRequest {
    pub request_id: String,
    pub operation: Operation,
    /// Path relative to the mount (no leading `/`; lists end in `/` unless at the root).
    pub path: String,
    pub data: Map<String, Value>,
    /// The mount's storage, confined to its prefix.
    pub view: View,
    pub mount: Arc<MountEntry>,
    /// The caller's token entry (absent on unauthenticated paths without a token).
    pub token: Option<Arc<TokenEntry>>,
    /// The caller's token as presented (lookup-self echoes it back to its owner).
    pub client_token: Option<ClientToken>,
    pub remote_addr: Option<IpAddr>,
    /// The request's time, taken once.
    pub now: OffsetDateTime,
    /// Wrap TTL the client asked for (some handlers require it).
    pub wrap_ttl: Option<u64>,
}

impl fmt::Debug for BackendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendRequest")
            .field("request_id", &self.request_id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The `auth` block of a response (§3.3 of the contract).
#[derive(Clone, Default, serde::Serialize)]
pub struct Auth {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identity_policies: Vec<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub lease_duration: u64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: String,
    pub orphan: bool,
    pub mfa_requirement: Option<Value>,
    pub num_uses: u64,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

/// What an auth method asks the core to issue on a successful login.
#[derive(Clone, Debug, Default)]
pub struct LoginSpec {
    pub policies: Vec<String>,
    pub no_default_policy: bool,
    pub metadata: BTreeMap<String, String>,
    pub display_name: String,
    /// Requested TTL in seconds (0 = mount default).
    pub ttl: u64,
    /// Backend max TTL (0 = mount max).
    pub max_ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub num_uses: u64,
    pub renewable: bool,
    /// `service` or `batch`.
    pub token_type: String,
    pub bound_cidrs: Vec<ipnet::IpNet>,
    /// Creation path, e.g. `auth/approle/login`.
    pub path: String,
    /// Internal data the backend needs again on renewal (e.g. role name).
    pub internal: BTreeMap<String, String>,
}

/// The `wrap_info` block.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WrapInfo {
    pub token: String,
    pub accessor: String,
    pub ttl: u64,
    pub creation_time: String,
    pub creation_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub wrapped_accessor: String,
}

/// A response from a backend or the core.
#[derive(Default)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    /// `data` already written as one JSON object, set instead of `data` (never with it): a
    /// transit batch writes its results straight from the cipher output, without a `Value`
    /// per item. The envelope is written around it; the audit trail and the legacy top-level
    /// envelope read it back through [`Response::data_map`].
    pub data_json: Option<DataJson>,
    pub auth: Option<Auth>,
    /// A login to complete: the core issues the token and fills `auth`.
    pub login: Option<LoginSpec>,
    pub warnings: Vec<String>,
    pub lease_id: String,
    pub lease_duration: u64,
    pub renewable: bool,
    pub wrap_info: Option<WrapInfo>,
    /// Handler-chosen HTTP status (raw responses, 202 for tidy).
    pub status: Option<u16>,
    /// Copy `data`'s keys to the top level of the envelope (legacy sys routes).
    pub top_level: bool,
    /// A body to send verbatim instead of the envelope (unwrap of a stored response).
    pub raw_body: Option<Vec<u8>>,
    /// The backend requests wrapping with this TTL (seconds).
    pub wrap_ttl: Option<u64>,
    /// `wrap_info.wrapped_accessor` when this response gets wrapped.
    pub wrapped_accessor: Option<String>,
    /// Type of the mount that served the request (`mount_type` in Vault's envelope).
    pub mount_type: String,
}

/// What the envelope writes before `data` when a response has no `auth`: its keys are sorted,
/// and `auth` is the only one before `data`.
pub const ENVELOPE_BEFORE_DATA: &[u8] = b"{\"auth\":null,\"data\":";

/// A buffer holding `data` written as one JSON object, after room for the start of the
/// envelope ([`ENVELOPE_BEFORE_DATA`]), so that a large answer (a transit batch: ~140 KB) is
/// sent from the buffer it was written in instead of being copied into another.
pub struct DataJson {
    buf: Vec<u8>,
}

impl DataJson {
    /// An empty buffer with room for `capacity` bytes of JSON and the envelope around them.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(ENVELOPE_BEFORE_DATA.len() + capacity + 256);
        buf.extend_from_slice(ENVELOPE_BEFORE_DATA);
        Self { buf }
    }

    /// Where the JSON is written (appended to).
    pub fn writer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The JSON written.
    pub fn json(&self) -> &[u8] {
        self.buf.get(ENVELOPE_BEFORE_DATA.len()..).unwrap_or_default()
    }

    /// The buffer, starting with [`ENVELOPE_BEFORE_DATA`] and the JSON, for the envelope to
    /// finish; itself back when the room in front was written over.
    pub fn into_envelope_start(self) -> std::result::Result<Vec<u8>, Self> {
        if self.buf.starts_with(ENVELOPE_BEFORE_DATA) {
            Ok(self.buf)
        } else {
            Err(self)
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("has_data", &(self.data.is_some() || self.data_json.is_some()))
            .field("has_auth", &self.auth.is_some())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// A response with `data`.
    pub fn data(data: Map<String, Value>) -> Self {
        Self { data: Some(data), ..Self::default() }
    }

    /// A response whose `data` is the JSON object in `json`, already written (see `data_json`).
    pub fn data_json(json: DataJson) -> Self {
        Self { data_json: Some(json), ..Self::default() }
    }

    /// `data` as a map, whichever way it was given (`data_json` is parsed back; it is written
    /// by coffer itself, so it always parses).
    pub fn data_map(&self) -> Option<Cow<'_, Map<String, Value>>> {
        match (&self.data, &self.data_json) {
            (Some(d), _) => Some(Cow::Borrowed(d)),
            (None, Some(json)) => serde_json::from_slice(json.json()).ok().map(Cow::Owned),
            (None, None) => None,
        }
    }

    /// A response with `data` built from a JSON object literal. Non-objects give empty data.
    pub fn json(v: Value) -> Self {
        match v {
            Value::Object(m) => Self::data(m),
            _ => Self::data(Map::new()),
        }
    }

    /// `{"keys": [...]}` for list operations.
    pub fn keys(keys: Vec<String>) -> Self {
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(keys));
        Self::data(m)
    }

    /// No content (204).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds a warning.
    pub fn warn(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }

    /// Marks the response for top-level injection of its data.
    pub fn top_level(mut self) -> Self {
        self.top_level = true;
        self
    }

    /// With an explicit HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// True when there is nothing to render (→ 204).
    pub fn is_empty(&self) -> bool {
        self.data.is_none()
            && self.data_json.is_none()
            && self.auth.is_none()
            && self.login.is_none()
            && self.warnings.is_empty()
            && self.wrap_info.is_none()
            && self.raw_body.is_none()
    }
}
