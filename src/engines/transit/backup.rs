//! `backup/<name>` and `restore[/<name>]`, in Vault's backup format.
//!
//! A backup is base64 of `{"policy": <keysutil.Policy>, "archived_keys": {"keys": [...]}}`, where
//! archive slot `i` holds version `i + min_available_version` (slot 0 is Go's zero entry while
//! nothing was trimmed), so keys move between coffer and Vault/OpenBao in both directions. Only
//! keys both `exportable` and `allow_plaintext_backup` are backed up; a restored key is checked
//! like a stored one ([`TransitKey::check`]) and must hold every available version. Every buffer
//! of a backup is zeroized after use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
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
    policy: &'a RawValue,
    archived_keys: ArchiveRef<'a>,
}

/// A JSON object as its fields' raw texts (big numbers stay exact).
type RawObject = BTreeMap<String, Box<RawValue>>;

/// Zeroizes the texts of a raw object (they held key material).
fn zeroize_raw(o: RawObject) {
    for (_, v) in o {
        let mut text: Box<str> = v.into();
        zeroize::Zeroize::zeroize(&mut *text);
    }
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
///
/// The policy is rewritten as raw JSON (never through `serde_json::Value`, which would round big
/// numbers): `keys` keeps only versions ≥ min_decryption_version, as Vault persists it.
pub fn backup_blob(p: &TransitKey) -> Result<Zeroizing<String>> {
    let internal = |e: serde_json::Error| Error::internal(e);
    let full = Zeroizing::new(serde_json::to_vec(p).map_err(internal)?);
    let mut policy: RawObject = serde_json::from_slice(&full).map_err(internal)?;
    if let Some(keys) = policy.remove("keys") {
        let mut versions: RawObject = serde_json::from_str(keys.get()).map_err(internal)?;
        zeroize_raw(BTreeMap::from([(String::new(), keys)]));
        let min = p.min_decryption_version.max(0) as u64;
        let dropped: Vec<String> =
            versions.keys().filter(|k| k.parse::<u64>().map(|v| v < min).unwrap_or(true)).cloned().collect();
        let dropped = dropped.into_iter().filter_map(|k| versions.remove_entry(&k)).collect();
        zeroize_raw(dropped);
        let text = serde_json::to_string(&versions).map_err(internal)?;
        zeroize_raw(versions);
        policy.insert("keys".into(), RawValue::from_string(text).map_err(internal)?);
    }
    let number = |n: i64| RawValue::from_string(n.to_string()).map_err(internal);
    policy.insert("archive_version".into(), number(p.latest_version)?);
    policy.insert("archive_min_version".into(), number(p.min_available_version)?);
    let policy_text = serde_json::to_string(&policy).map_err(internal)?;
    zeroize_raw(policy);
    let policy_raw = RawValue::from_string(policy_text).map_err(internal)?;
    let empty = KeyEntry::empty();
    let min = p.min_available_version.max(0);
    let mut archive = Vec::new();
    for v in min..=p.latest_version {
        archive.push(u64::try_from(v).ok().and_then(|v| p.keys.get(&v)).unwrap_or(&empty));
    }
    let json = Zeroizing::new(
        serde_json::to_vec(&KeyDataRef { policy: &policy_raw, archived_keys: ArchiveRef { keys: archive } })
            .map_err(internal)?,
    );
    zeroize_raw(BTreeMap::from([(String::new(), policy_raw)]));
    Ok(Zeroizing::new(crypto::b64(&json)))
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
    // A blob that does not decode is malformed input: 400 with Vault's text, where Vault
    // answers 500. The refusals clients test for (an existing key, a disallowed backup) stay 500.
    let raw = crypto::go_b64_secret(blob).map_err(|e| Error::bad(e.to_string()))?;
    let kd: KeyData =
        serde_json::from_slice(raw.expose()).map_err(|e| Error::bad(format!("invalid backup: {e}")))?;
    let Some(mut p) = kd.policy else { return Err(Error::bad("invalid backup: no policy")) };
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
    if p.min_decryption_version < 1 {
        return Err(Error::bad(format!(
            "failed to restore the policy {:?}: minimum decryption version of {} is less than 1",
            p.name, p.min_decryption_version
        )));
    }
    p.check().map_err(|e| Error::bad(format!("failed to restore the policy {:?}: {e}", p.name)))?;
    for v in 1..=p.latest_version {
        if v >= p.min_available_version && !p.keys.contains_key(&(v as u64)) {
            return Err(Error::bad(format!(
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
    use serde_json::Value;

    use super::*;
    use crate::engines::transit::crypto::KeyType;
    use crate::engines::transit::key::NewKey;
    use crate::engines::transit::signature::SignOptions;

    /// ECDSA and RSA keys survive a backup exactly: big numbers are not rounded, and a restored
    /// key verifies what the original signed.
    #[test]
    fn asymmetric_keys_survive_backup_exactly() {
        let now = coffer_storage::clock::now();
        for kind in [KeyType::EcdsaP521, KeyType::Rsa2048] {
            let opts = NewKey { kind, exportable: true, allow_plaintext_backup: true, ..NewKey::DEFAULTS };
            let p = TransitKey::create("k", &opts, now).unwrap();
            let sig = p.sign(0, b"", b"data", &SignOptions::DEFAULT).unwrap().text;
            let blob = backup_blob(&p).unwrap();
            let q = parse_backup(&blob, None, now).unwrap();
            assert!(q.verify(b"", b"data", &sig, &SignOptions::DEFAULT).unwrap(), "{kind:?}");
            let again = q.sign(0, b"", b"data", &SignOptions::DEFAULT).unwrap().text;
            assert!(p.verify(b"", b"data", &again, &SignOptions::DEFAULT).unwrap(), "{kind:?}");
        }
    }

    #[test]
    fn backup_round_trip_and_archive_layout() {
        let now = coffer_storage::clock::now();
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
        assert_eq!(q.decrypt(b"", &ct, b"").unwrap().expose(), b"v1 data");
        assert!(q.restore_info.is_some());
    }
}
