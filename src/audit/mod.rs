//! The audit log: one JSON line per request and per response, written before the client sees
//! anything, to every enabled device. Fail closed: if devices are enabled and none can write,
//! the request fails and nothing from it leaves the server.
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
//! Each line carries `"chain":{"seq":N,"prev":"<hex sha256 of the previous line>"}`. The first
//! line of a file has `seq` 0 and `prev` = [`GENESIS`]. A device reopening a file continues its
//! chain. `coffer audit verify FILE` ([`verify`]) recomputes the chain and reports the first line
//! that does not follow from its predecessor (altered, inserted or missing lines).

pub mod device;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::core::error::{Error, Result};

pub use device::Device;
pub use verify::{verify, VerifyReport};

/// `prev` of the first line of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Format version of the stored device table.
pub const TABLE_VERSION: u32 = 1;
/// Where the device table lives (behind the barrier).
pub const TABLE_PATH: &str = "core/audit";

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
    /// HMAC key of this device (a random UUID string, as Vault).
    pub salt: String,
}

impl std::fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("path", &self.path)
            .field("type", &self.kind)
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

    /// Opens every configured device; those that fail are remembered as broken (fail closed).
    pub fn open_all(configs: Vec<DeviceConfig>) -> Self {
        let mut devices = Vec::new();
        let mut broken = Vec::new();
        for c in configs {
            let path = c.path.clone();
            match Device::open(c.clone()) {
                Ok(d) => devices.push(Arc::new(d)),
                Err(e) => {
                    tracing::error!(device = %path, error = %e, "audit device could not be opened; requests fail until it works or is disabled");
                    broken.push(c);
                }
            }
        }
        Self { devices: RwLock::new(devices), broken: RwLock::new(broken) }
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

    /// True when no device is enabled (nothing is audited, nothing can fail).
    pub fn is_empty(&self) -> bool {
        self.devices.read().unwrap_or_else(|p| p.into_inner()).is_empty()
            && self.broken.read().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Writes a request entry. Errors (→ the request fails) when devices exist and none wrote.
    pub fn log_request(&self, auth: Option<&AuthInfo>, req: &RequestInfo, error: &str) -> Result<()> {
        self.write_all(|d| d.request_line(auth, req, error))
    }

    /// Writes a response entry; same failure rule.
    pub fn log_response(
        &self,
        auth: Option<&AuthInfo>,
        req: &RequestInfo,
        resp: Option<&Value>,
        error: &str,
    ) -> Result<()> {
        self.write_all(|d| d.response_line(auth, req, resp, error))
    }

    fn write_all(&self, mut line: impl FnMut(&Device) -> Value) -> Result<()> {
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
            Err(Error::Internal("no audit backend succeeded in logging the request".into()))
        }
    }
}

/// `hmac-sha256:<hex>` of `value` under `salt`.
pub fn hash_value(salt: &str, value: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match <Hmac<sha2::Sha256> as Mac>::new_from_slice(salt.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(value.as_bytes());
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
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
