//! `sys/audit`, `sys/audit/<path>`, `sys/audit-hash/<path>` (contract §11.1; sudo) and
//! `sys/audit-verify/<path>` (sudo; coffer's own).
//!
//! Devices normally come from the server configuration (see `crate::audit`); creating one here
//! needs `unsafe_allow_api_audit_creation`, and configuration-managed devices cannot be
//! disabled here.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::audit::options::{normalize_path, SinkPath};
use crate::audit::{table, AuditError, Device, DeviceConfig, Origin, Source};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::Response;
use crate::core::{obj, Active, Core};

fn device_json(c: &DeviceConfig) -> Value {
    json!({"type": c.kind, "description": c.description, "options": c.options, "local": c.local, "path": c.path})
}

pub fn list(active: &Active) -> Response {
    let m: Map<String, Value> =
        active.audit.configs().iter().map(|c| (c.path.clone(), device_json(c))).collect();
    Response::data(m).top_level()
}

/// The file a definition writes to, if it is a file.
fn file_of(c: &DeviceConfig) -> Option<String> {
    crate::audit::options::parse_file_options(&c.options).ok().and_then(|o| match o.sink {
        SinkPath::File(p) => Some(p.display().to_string()),
        _ => None,
    })
}

pub async fn enable(core: &Core, active: &Active, path: &str, data: &Map<String, Value>) -> Result<Response> {
    let settings = &core.config.audit;
    if !settings.allow_api_creation {
        return Err(AuditError::Refused(crate::audit::options::API_CREATION_REFUSED.into()).into());
    }
    let path = normalize_path(path);
    if path == "/" {
        return Err(Error::bad("path cannot be empty"));
    }
    let kind = fields::string_or_empty(data, "type")?;
    if kind.is_empty() {
        return Err(Error::bad("type is required"));
    }
    let options: BTreeMap<String, String> = fields::kv_pairs(data, "options")?.unwrap_or_default();
    let opts = settings.check(&kind, &options, Origin::Api)?;
    let config = DeviceConfig {
        path: path.clone(),
        kind,
        description: fields::string_or_empty(data, "description")?,
        options,
        local: fields::boolean_or(data, "local", false)?,
        salt: uuid::Uuid::new_v4().to_string(),
        id: uuid::Uuid::new_v4().to_string(),
        source: Source::Api,
    };
    let new_file = match &opts.sink {
        SinkPath::File(p) => Some(p.display().to_string()),
        _ => None,
    };
    let check_free = |devices: &[DeviceConfig]| -> Result<()> {
        // As OpenBao: neither a parent nor a child of an existing path.
        if devices.iter().any(|d| d.path.starts_with(&path) || path.starts_with(&d.path)) {
            return Err(Error::bad(format!("path already in use: {path}")));
        }
        if let Some(f) = &new_file {
            if let Some(d) = devices.iter().find(|d| file_of(d).as_ref() == Some(f)) {
                return Err(Error::bad(format!(
                    "file_path {f:?} is already used by audit device {}; each device needs its own file",
                    d.path
                )));
            }
        }
        Ok(())
    };
    check_free(&core.read_audit_table().await?.0)?;
    // Open first: a device that cannot write is refused before it is stored.
    let device = match Device::open(config.clone(), Arc::clone(core.barrier())).await {
        Ok(d) => Arc::new(d),
        Err(e) => {
            table::forget_chain(core.barrier(), &config.id).await;
            return Err(e.into());
        }
    };
    loop {
        let (mut devices, version) = core.read_audit_table().await?;
        if let Err(e) = check_free(&devices) {
            device.close().await;
            drop(device);
            table::forget_chain(core.barrier(), &config.id).await;
            return Err(e);
        }
        devices.push(config.clone());
        if core.write_audit_table(&devices, version).await? {
            reload(core, active, devices, Some(device)).await;
            tracing::info!(path = %path, "enabled audit device");
            return Ok(Response::empty());
        }
    }
}

pub async fn disable(core: &Core, active: &Active, path: &str) -> Result<Response> {
    let path = normalize_path(path);
    if path == "/" {
        return Err(Error::bad("audit device path must be specified"));
    }
    loop {
        let (mut devices, version) = core.read_audit_table().await?;
        let Some(i) = devices.iter().position(|d| d.path == path) else {
            return Ok(Response::empty());
        };
        if devices[i].source == Source::Config {
            return Err(
                AuditError::Refused("cannot disable configuration-managed audit device".into()).into()
            );
        }
        let gone = devices.remove(i);
        if core.write_audit_table(&devices, version).await? {
            if let Some(d) = active.audit.device(&path) {
                d.close().await;
            }
            reload(core, active, devices, None).await;
            table::forget_chain(core.barrier(), &gone.id).await;
            tracing::info!(path = %path, "disabled audit device");
            return Ok(Response::empty());
        }
    }
}

async fn reload(core: &Core, active: &Active, configs: Vec<DeviceConfig>, added: Option<Arc<Device>>) {
    // Keep already-open devices (their chain state) and open the new ones.
    let mut keep: Vec<Arc<Device>> = active.audit.devices();
    keep.extend(added);
    let (devices, broken) = crate::audit::open_devices(core.barrier(), configs, &keep).await;
    active.audit.set(devices, broken);
}

fn open_device(active: &Active, path: &str) -> Result<Arc<Device>> {
    let path = normalize_path(path);
    active.audit.device(&path).ok_or_else(|| Error::bad(format!("unknown audit backend {path}")))
}

pub fn hash(active: &Active, path: &str, data: &Map<String, Value>) -> Result<Response> {
    let device = open_device(active, path)?;
    let input = fields::string_or_empty(data, "input")?;
    Ok(Response::data(obj([("hash", json!(device.hash(&input)))])).top_level())
}

/// `sys/audit-verify/<path>`: the server verifies its own device's file (never a path the
/// caller names) under the device's chain key and against the stored chain head.
pub async fn verify(active: &Active, path: &str) -> Result<Response> {
    let device = open_device(active, path)?;
    let report = tokio::task::spawn_blocking(move || crate::audit::verify::verify_device(&device))
        .await
        .map_err(|e| Error::internal(format!("audit verification task: {e}")))??;
    let earlier: Vec<Value> = report
        .earlier
        .iter()
        .map(|e| {
            json!({"file": e.file, "first_sequence": e.first_seq, "last_sequence": e.last_seq,
                   "reason": e.reason, "noticed": e.noticed})
        })
        .collect();
    Ok(Response::data(obj([
        ("device", json!(normalize_path(path))),
        ("file_path", json!(report.file)),
        ("intact", json!(report.problem.is_none())),
        ("lines", json!(report.lines)),
        ("first_sequence", json!(report.first_seq)),
        ("last_sequence", json!(report.last_seq)),
        ("head_sequence", json!(report.head_seq)),
        ("skipped_bytes", json!(report.skipped_bytes)),
        ("problem", serde_json::to_value(&report.problem)?),
        ("earlier_segments", json!(earlier)),
    ])))
}
