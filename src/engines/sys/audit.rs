//! `sys/audit`, `sys/audit/<path>` and `sys/audit-hash/<path>` (contract §11.1; sudo).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::audit::{Device, DeviceConfig};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::Response;
use crate::core::{obj, Active, Core};

fn normalize(p: &str) -> String {
    format!("{}/", p.trim().trim_matches('/'))
}

fn device_json(c: &DeviceConfig) -> Value {
    json!({"type": c.kind, "description": c.description, "options": c.options, "local": c.local, "path": c.path})
}

pub fn list(active: &Active) -> Response {
    let m: Map<String, Value> =
        active.audit.configs().iter().map(|c| (c.path.clone(), device_json(c))).collect();
    Response::data(m).top_level()
}

pub async fn enable(core: &Core, active: &Active, path: &str, data: &Map<String, Value>) -> Result<Response> {
    let path = normalize(path);
    if path == "/" {
        return Err(Error::bad("path cannot be empty"));
    }
    let kind = fields::string_or_empty(data, "type")?;
    if kind.is_empty() {
        return Err(Error::bad("type is required"));
    }
    let options: BTreeMap<String, String> = fields::kv_pairs(data, "options")?.unwrap_or_default();
    let config = DeviceConfig {
        path: path.clone(),
        kind,
        description: fields::string_or_empty(data, "description")?,
        options,
        local: fields::boolean_or(data, "local", false)?,
        salt: uuid::Uuid::new_v4().to_string(),
    };
    // Open first: a device that cannot write is refused before it is stored.
    Device::open(config.clone())?;
    loop {
        let (mut devices, version) = core.read_audit_table().await?;
        if devices.iter().any(|d| d.path == path) {
            return Err(Error::bad(format!("path already in use: {path}")));
        }
        devices.push(config.clone());
        if core.write_audit_table(&devices, version).await? {
            reload(active, devices);
            tracing::info!(path = %path, "enabled audit device");
            return Ok(Response::empty());
        }
    }
}

pub async fn disable(core: &Core, active: &Active, path: &str) -> Result<Response> {
    let path = normalize(path);
    loop {
        let (mut devices, version) = core.read_audit_table().await?;
        let before = devices.len();
        devices.retain(|d| d.path != path);
        if devices.len() == before {
            return Ok(Response::empty());
        }
        if core.write_audit_table(&devices, version).await? {
            reload(active, devices);
            tracing::info!(path = %path, "disabled audit device");
            return Ok(Response::empty());
        }
    }
}

fn reload(active: &Active, configs: Vec<DeviceConfig>) {
    // Keep already-open devices (their chain state) and open the new ones.
    let current: Vec<Arc<Device>> = active.audit.devices();
    let mut devices = Vec::new();
    let mut broken = Vec::new();
    for c in configs {
        if let Some(d) = current.iter().find(|d| d.config().path == c.path && d.config().salt == c.salt) {
            devices.push(Arc::clone(d));
            continue;
        }
        match Device::open(c.clone()) {
            Ok(d) => devices.push(Arc::new(d)),
            Err(e) => {
                tracing::error!(device = %c.path, error = %e, "audit device could not be opened");
                broken.push(c);
            }
        }
    }
    active.audit.set(devices, broken);
}

pub fn hash(active: &Active, path: &str, data: &Map<String, Value>) -> Result<Response> {
    let path = normalize(path);
    let input = fields::string_or_empty(data, "input")?;
    let device = active
        .audit
        .devices()
        .into_iter()
        .find(|d| d.path() == path)
        .ok_or_else(|| Error::bad(format!("unknown audit backend {path}")))?;
    Ok(Response::data(obj([("hash", json!(device.hash(&input)))])).top_level())
}
