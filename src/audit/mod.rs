//! The audit log: one JSON line per request and per response, written before the client sees
//! anything, to every enabled device. Fail closed: if devices are enabled and none can write,
//! the request fails and nothing from it leaves the server.
//!
//! # Where devices come from
//!
//! As in OpenBao 2.x, devices are declared in the server configuration
//! (`audit "file" "name" { options { file_path = ... } }`) and enabled at unseal
//! ([`table::reconcile`]); `sys/audit/<path>` may create devices only when the configuration
//! sets `unsafe_allow_api_audit_creation` (`--dev` does), never with `log_raw`, and `prefix`
//! needs `allow_audit_log_prefixing` wherever it comes from ([`options`]). No audit file may
//! live inside the storage directory.
//!
//! # Hashing
//!
//! Every leaf value (strings, numbers and booleans — Vault hashes strings only) inside request
//! and response data, tokens, accessors and wrap tokens is written as
//! `hmac-sha256:<hex of HMAC-SHA256(device salt, value text)>`. `sys/audit-hash` recomputes a
//! hash for an operator. `log_raw=true` disables hashing for a device.
//!
//! # Tamper evidence (beyond Vault)
//!
//! Each line carries a link of a keyed hash chain ([`chain`]):
//! `"chain":{"v":2,"seq":N,"prev":"<mac of line N-1>","mac":"<HMAC of this line>"}` under a
//! per-device chain key kept behind the barrier, whose head is stored behind the barrier too.
//! `sys/audit-verify/<path>` ([`verify`]) has the server check its own device's file: an
//! altered line, missing lines and a truncated tail are reported.

pub mod chain;
pub mod device;
pub mod error;
pub mod options;
pub mod table;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use coffer_storage::Barrier;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use chain::GENESIS;
pub use device::Device;
pub use error::AuditError;
pub use options::{AuditSettings, DeclaredDevice, Origin};

/// Format version of the stored device table (1: no `id`/`source`; still read).
pub const TABLE_VERSION: u32 = 2;
/// Where the device table lives (behind the barrier).
pub const TABLE_PATH: &str = "core/audit";

/// Who manages a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Created through `sys/audit` (table format 1 knew no other kind).
    #[default]
    Api,
    /// Declared in the server configuration: enabled at unseal, not disabled over the API.
    Config,
}

/// A stored audit device definition.
#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// Path with trailing `/` (e.g. `file/`).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
    pub local: bool,
    /// HMAC key of this device for value hashing (a random UUID string, as Vault).
    pub salt: String,
    /// Names the device's chain records (node-local: `local/audit-chain/<id>/{key,head}`).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub source: Source,
}

impl DeviceConfig {
    /// Whether `other` defines the same device the same way.
    pub fn same_definition(&self, other: &DeviceConfig) -> bool {
        use subtle::ConstantTimeEq;
        self.id == other.id
            && self.path == other.path
            && self.kind == other.kind
            && self.description == other.description
            && self.options == other.options
            && self.local == other.local
            && self.source == other.source
            && bool::from(self.salt.as_bytes().ct_eq(other.salt.as_bytes()))
    }
}

impl std::fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("path", &self.path)
            .field("type", &self.kind)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
pub struct StoredTable {
    pub version: u32,
    pub devices: Vec<DeviceConfig>,
}

/// Everything about one request that goes into its audit lines (unhashed; devices hash).
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    pub id: String,
    pub operation: String,
    pub path: String,
    pub mount_point: String,
    pub mount_type: String,
    pub mount_accessor: String,
    pub client_token: String,
    pub client_token_accessor: String,
    pub remote_address: String,
    pub data: Option<Map<String, Value>>,
    pub wrap_ttl: u64,
    pub headers: BTreeMap<String, String>,
}

/// The caller as it appears in the `auth` section.
#[derive(Clone, Debug, Default)]
pub struct AuthInfo {
    pub client_token: String,
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub token_type: String,
    pub token_ttl: u64,
    pub allowed: bool,
    pub granting_policies: Vec<String>,
}

/// Fans entries out to the enabled devices.
#[derive(Default)]
pub struct AuditBroker {
    devices: RwLock<Vec<Arc<Device>>>,
    /// Configured devices that could not be opened; they count as failing writes.
    broken: RwLock<Vec<DeviceConfig>>,
}

impl std::fmt::Debug for AuditBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditBroker")
    }
}

impl AuditBroker {
    /// A broker with the given devices open.
    pub fn new(devices: Vec<Arc<Device>>) -> Self {
        Self { devices: RwLock::new(devices), broken: RwLock::new(Vec::new()) }
    }

    /// At unseal: brings the stored table in line with the configuration
    /// ([`table::reconcile`]) and opens every device.
    pub async fn load(barrier: &Arc<Barrier>, settings: &AuditSettings) -> Result<Self, AuditError> {
        let configs = table::reconcile(barrier, settings).await?;
        Ok(Self::open_configs(barrier, configs).await)
    }

    /// Opens every device; those that fail are remembered as broken (fail closed).
    pub async fn open_configs(barrier: &Arc<Barrier>, configs: Vec<DeviceConfig>) -> Self {
        let broker = Self::default();
        let (devices, broken) = open_devices(barrier, configs, &[]).await;
        broker.set(devices, broken);
        broker
    }

    /// Replaces the device set.
    pub fn set(&self, devices: Vec<Arc<Device>>, broken: Vec<DeviceConfig>) {
        *self.devices.write().unwrap_or_else(|p| p.into_inner()) = devices;
        *self.broken.write().unwrap_or_else(|p| p.into_inner()) = broken;
    }

    /// Definitions of every configured device, open or broken.
    pub fn configs(&self) -> Vec<DeviceConfig> {
        let mut v: Vec<DeviceConfig> = self.devices().iter().map(|d| d.config().clone()).collect();
        v.extend(self.broken.read().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// The open devices.
    pub fn devices(&self) -> Vec<Arc<Device>> {
        self.devices.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The open device at `path` (`file/`).
    pub fn device(&self, path: &str) -> Option<Arc<Device>> {
        self.devices().into_iter().find(|d| d.path() == path)
    }

    /// True when no device is enabled (nothing is audited, nothing can fail).
    pub fn is_empty(&self) -> bool {
        self.devices.read().unwrap_or_else(|p| p.into_inner()).is_empty()
            && self.broken.read().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Stores every device's chain head (seal, shutdown). Lines written afterwards are still
    /// accepted at the next unseal as the file's authentic tail.
    pub async fn close(&self) {
        for d in self.devices() {
            d.close().await;
        }
    }

    /// Writes a request entry. Errors (→ the request fails) when devices exist and none wrote.
    pub fn log_request(
        &self,
        auth: Option<&AuthInfo>,
        req: &RequestInfo,
        error: &str,
    ) -> Result<(), AuditError> {
        self.write_all(|d| d.request_line(auth, req, error))
    }

    /// Writes a response entry; same failure rule.
    pub fn log_response(
        &self,
        auth: Option<&AuthInfo>,
        req: &RequestInfo,
        resp: Option<&Value>,
        error: &str,
    ) -> Result<(), AuditError> {
        self.write_all(|d| d.response_line(auth, req, resp, error))
    }

    fn write_all(&self, mut line: impl FnMut(&Device) -> Value) -> Result<(), AuditError> {
        let devices = self.devices();
        if self.is_empty() {
            return Ok(());
        }
        let mut ok = false;
        for d in &devices {
            match d.write(line(d)) {
                Ok(()) => ok = true,
                Err(e) => tracing::error!(device = %d.path(), error = %e, "audit device failed to write"),
            }
        }
        if ok {
            Ok(())
        } else {
            Err(AuditError::NoDeviceWrote)
        }
    }
}

/// Opens `configs`, reusing the devices in `keep` with the same definition (their chain state
/// lives in memory; a definition that changed, such as a declared device's salt once the
/// leader stored the table, reopens the device, and its chain carries on under the same id).
/// The server rules were checked when each definition was made (config load, `sys/audit`), as
/// in OpenBao: opening does not re-judge stored definitions.
pub async fn open_devices(
    barrier: &Arc<Barrier>,
    configs: Vec<DeviceConfig>,
    keep: &[Arc<Device>],
) -> (Vec<Arc<Device>>, Vec<DeviceConfig>) {
    let mut devices = Vec::new();
    let mut broken = Vec::new();
    for c in configs {
        if let Some(d) = keep.iter().find(|d| d.config().same_definition(&c)) {
            devices.push(Arc::clone(d));
            continue;
        }
        match Device::open(c.clone(), Arc::clone(barrier)).await {
            Ok(d) => devices.push(Arc::new(d)),
            Err(e) => {
                tracing::error!(device = %c.path, error = %e, "audit device could not be opened; requests fail until it works or is disabled");
                broken.push(c);
            }
        }
    }
    (devices, broken)
}

/// `hmac-sha256:<hex>` of `value` under `salt`.
pub fn hash_value(salt: &str, value: &str) -> String {
    format!("hmac-sha256:{}", crate::util::crypto::hmac_sha256_hex(salt.as_bytes(), &[value.as_bytes()]))
}

/// Replaces every leaf (string, number, boolean) of `v` with its hash; keys stay; `skip` names
/// top-level keys left as they are (`audit_non_hmac_*_keys`).
pub fn hash_tree(salt: &str, v: &Value, skip: &[String]) -> Value {
    fn walk(salt: &str, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(hash_value(salt, s)),
            Value::Number(n) => Value::String(hash_value(salt, &n.to_string())),
            Value::Bool(b) => Value::String(hash_value(salt, &b.to_string())),
            Value::Null => Value::Null,
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(salt, x)).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), walk(salt, x))).collect()),
        }
    }
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), if skip.contains(k) { x.clone() } else { walk(salt, x) }))
                .collect(),
        ),
        other => walk(salt, other),
    }
}

/// Removes empty/false/zero fields, as Vault's `omitempty` audit structs do.
pub fn omit_empty(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, x)| (k, omit_empty(x)))
                .filter(|(_, x)| match x {
                    Value::Null => false,
                    Value::String(s) => !s.is_empty(),
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                })
                .collect(),
        ),
        other => other,
    }
}

/// A JSON object from an `AuthInfo`, unhashed.
pub fn auth_json(a: &AuthInfo) -> Value {
    json!({
        "client_token": a.client_token,
        "accessor": a.accessor,
        "display_name": a.display_name,
        "policies": a.policies,
        "token_policies": a.policies,
        "metadata": a.metadata,
        "token_type": a.token_type,
        "token_ttl": a.token_ttl,
        "policy_results": {
            "allowed": a.allowed,
            "granting_policies": a.granting_policies.iter().map(|p| json!({"name": p, "namespace_id": "root", "type": "acl"})).collect::<Vec<_>>(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_is_hashed_and_keys_kept() {
        let v = json!({"data": {"password": "s3cret", "n": 5, "on": true, "list": ["a", 1], "nested": {"x": "y"}}, "keep": "me"});
        let h = hash_tree("salt", &v, &["keep".to_owned()]);
        assert_eq!(h["keep"], "me");
        let text = h.to_string();
        for plain in ["s3cret", "\"y\"", "true"] {
            assert!(!text.contains(plain), "{plain} leaked: {text}");
        }
        assert_eq!(h["data"]["password"], hash_value("salt", "s3cret"));
        assert_eq!(h["data"]["n"], hash_value("salt", "5"));
        assert!(h["data"]["nested"]["x"].as_str().unwrap().starts_with("hmac-sha256:"));
    }

    #[test]
    fn hash_matches_vault_definition() {
        // HMAC-SHA256(key = "salt", msg = "value"), lowercase hex.
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(b"salt").unwrap();
        m.update(b"value");
        assert_eq!(
            hash_value("salt", "value"),
            format!("hmac-sha256:{}", hex::encode(m.finalize().into_bytes()))
        );
    }
}
