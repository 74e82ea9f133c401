//! `backup/<name>` and `restore[/<name>]`, in Vault's backup format.
//!
//! A backup is base64 of `{"policy": <keysutil.Policy>, "archived_keys": {"keys": [...]}}`, where
//! archive slot `i` holds version `i + min_available_version` (slot 0 is Go's zero entry while
//! nothing was trimmed), so keys move between coffer and Vault/OpenBao in both directions. Only
//! keys both `exportable` and `allow_plaintext_backup` are backed up; a restored key is checked
//! like a stored one ([`TransitKey::check`]) and must hold every available version. Every buffer
//! of a backup is zeroized after use.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::crypto;
use super::error::internal_visible;
use super::key::{BackupRestoreInfo, KeyEntry, TransitKey};
use super::store::Change;
use super::Transit;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::util::timefmt::rfc3339_nano;

#[derive(Serialize)]
struct ArchiveRef<'a> {
    keys: Vec<&'a KeyEntry>,
}

#[derive(Serialize)]
struct KeyDataRef<'a> {
    policy: &'a Value,
    archived_keys: ArchiveRef<'a>,
}

#[derive(Deserialize)]
struct Archive {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyData {
    policy: Option<TransitKey>,
    archived_keys: Option<Archive>,
}

/// The backup blob of a policy in Vault's format.
pub fn backup_blob(p: &TransitKey) -> Result<Zeroizing<String>> {
    // The policy as Vault persists it: `keys` holds only versions ≥ min_decryption_version.
    let mut pv: Value = serde_json::to_value(p).map_err(Error::internal)?;
    if let Some(keys) = pv.get_mut("keys").and_then(Value::as_object_mut) {
        let min = p.min_decryption_version.max(0) as u64;
        keys.retain(|k, _| k.parse::<u64>().map(|v| v >= min).unwrap_or(false));
    }
    if let Some(o) = pv.as_object_mut() {
        o.insert("archive_version".into(), json!(p.latest_version));
        o.insert("archive_min_version".into(), json!(p.min_available_version));
    }
    let empty = KeyEntry::empty();
    let min = p.min_available_version.max(0);
    let mut archive = Vec::new();
    for v in min..=p.latest_version {
        archive.push(u64::try_from(v).ok().and_then(|v| p.keys.get(&v)).unwrap_or(&empty));
    }
    let json = Zeroizing::new(
        serde_json::to_vec(&KeyDataRef { policy: &pv, archived_keys: ArchiveRef { keys: archive } })
            .map_err(Error::internal)?,
    );
    zeroize_value(&mut pv);
    Ok(Zeroizing::new(crypto::b64(&json)))
}

/// Overwrites every string of a JSON value (it held key material).
fn zeroize_value(v: &mut Value) {
    match v {
        Value::String(s) => zeroize::Zeroize::zeroize(s),
        Value::Array(a) => a.iter_mut().for_each(zeroize_value),
        Value::Object(o) => o.values_mut().for_each(zeroize_value),
        _ => {}
    }
}

/// GET `backup/<name>`.
pub async fn backup(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let now = rfc3339_nano(req.now);
    let r = t
        .store()
        .modify(&req.view, name, |p| {
            if !p.exportable {
                return Err(internal_visible("exporting is disallowed on the policy"));
            }
            if !p.allow_plaintext_backup {
                return Err(internal_visible("plaintext backup is disallowed on the policy"));
            }
            p.backup_info = Some(BackupRestoreInfo { time: now.clone(), version: p.latest_version });
            Ok(Change::Write(()))
        })
        .await?;
    let Some((p, ())) = r else { return Err(internal_visible(format!("key \"{name}\" not found"))) };
    let blob = backup_blob(&p)?;
    Ok(Response::json(json!({"backup": blob.as_str()})))
}

/// Parses a backup blob into a policy holding every archived and current version.
pub fn parse_backup(blob: &str, name: Option<&str>, now: time::OffsetDateTime) -> Result<TransitKey> {
    let raw = crypto::go_b64_secret(blob).map_err(internal_visible)?;
    let kd: KeyData =
        serde_json::from_slice(&raw).map_err(|e| internal_visible(format!("invalid backup: {e}")))?;
    let Some(mut p) = kd.policy else { return Err(internal_visible("invalid backup: no policy")) };
    if let Some(n) = name {
        p.name = n.to_owned();
    }
    if let Some(archive) = kd.archived_keys {
        let base = if p.archive_min_version > 0 { p.archive_min_version } else { p.min_available_version }
            .max(0) as u64;
        for (i, e) in archive.keys.into_iter().enumerate() {
            let v = base + i as u64;
            if v == 0 || e.is_empty() || v < p.min_available_version.max(0) as u64 {
                continue;
            }
            p.keys.entry(v).or_insert(e);
        }
    }
    p.restore_info = Some(BackupRestoreInfo { time: rfc3339_nano(now), version: p.latest_version });
    p.archive_version = p.latest_version;
    p.check().map_err(|e| internal_visible(format!("failed to restore the policy {:?}: {e}", p.name)))?;
    for v in 1..=p.latest_version {
        if v >= p.min_available_version && !p.keys.contains_key(&(v as u64)) {
            return Err(internal_visible(format!(
                "failed to restore the policy {:?}: key version {v} is missing from the backup",
                p.name
            )));
        }
    }
    Ok(p)
}

/// POST `restore[/<name>]`.
pub async fn restore(t: &Transit, req: &BackendRequest, name: Option<&str>) -> Result<Response> {
    let blob = Zeroizing::new(fields::string_or_empty(&req.data, "backup")?);
    let force = fields::boolean_or(&req.data, "force", false)?;
    if blob.is_empty() {
        return Err(Error::bad("'backup' must be supplied"));
    }
    if let Some(n) = name {
        if n.contains('/') {
            return Err(internal_visible("key names cannot be paths"));
        }
        if !super::valid_name(n) {
            return Err(Error::UnsupportedPath);
        }
    }
    let p = parse_backup(&blob, name, req.now)?;
    if !super::valid_name(&p.name) {
        return Err(internal_visible("key names cannot be paths"));
    }
    if !t.store().put(&req.view, &p, force).await? {
        return Err(internal_visible(format!("key {:?} already exists", p.name)));
    }
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::transit::key::NewKey;

    #[test]
    fn backup_round_trip_and_archive_layout() {
        let now = time::OffsetDateTime::now_utc();
        let opts = NewKey { exportable: true, allow_plaintext_backup: true, ..NewKey::DEFAULTS };
        let mut p = TransitKey::create("k", &opts, now).unwrap();
        p.rotate_in_memory(now).unwrap();
        let ct = p.encrypt(1, b"", b"v1 data", b"").unwrap();
        let blob = backup_blob(&p).unwrap();
        let raw = crypto::go_b64_decode(&blob).unwrap();
        let v: Value = serde_json::from_slice(&raw).unwrap();
        let archive = v["archived_keys"]["keys"].as_array().unwrap();
        assert_eq!(archive.len(), 3);
        assert!(archive[0]["key"].is_null());
        assert_eq!(v["policy"]["type"], 0);
        let q = parse_backup(&blob, Some("other"), now).unwrap();
        assert_eq!(q.name, "other");
        assert_eq!(q.decrypt(b"", &ct, b"").unwrap().as_slice(), b"v1 data");
        assert!(q.restore_info.is_some());
    }
}
