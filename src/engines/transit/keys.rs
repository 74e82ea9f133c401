//! Key management: create, read, list, delete, config, rotate, trim, export, backup, restore,
//! and the mount's `cache-config` and `config/keys`.
//!
//! Backups are Vault's format: base64 of `{"policy": <keysutil.TransitKey>, "archived_keys":
//! {"keys": [...]}}`, where archive slot `i` holds version `i + min_available_version` (slot 0 is
//! Go's zero entry while nothing was trimmed).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use coffer_storage::View;

use super::crypto::{self, KeyType};
use super::error::{internal_visible, KeyOpError};
use super::key::{KeyEntry, NewKey, OpInfo, TransitKey, KDF_COUNTER};
use super::store::Change;
use super::Transit;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::util::timefmt::rfc3339_nano;

/// Defaults of a new key.
pub const NEW_KEY_DEFAULTS: NewKey = NewKey {
    kind: KeyType::Aes256Gcm96,
    derived: false,
    convergent: false,
    exportable: false,
    allow_plaintext_backup: false,
    auto_rotate_period: 0,
    key_size: 0,
};

const CONFIG_KEYS: &str = "config/keys";
const CONFIG_CACHE: &str = "config/cache";

/// Mount-wide key settings (`config/keys`).
#[derive(Default, Deserialize, Serialize)]
pub struct ConfigKeys {
    v: u32,
    pub disable_upsert: bool,
}

/// Mount cache settings (`cache-config`).
#[derive(Default, Deserialize, Serialize)]
struct CacheConfig {
    v: u32,
    size: i64,
}

/// The key read payload of `key`.
fn key_response(key: &TransitKey) -> Result<Response> {
    Ok(Response::data(key_payload(key, None)?))
}

/// Reads `config/keys`.
pub async fn read_config_keys(view: &View) -> Result<ConfigKeys> {
    match view.get(CONFIG_KEYS).await? {
        None => Ok(ConfigKeys::default()),
        Some(e) => {
            serde_json::from_slice(&e.value).map_err(|e| Error::internal(format!("corrupt config/keys: {e}")))
        }
    }
}

/// The key read payload (Vault's `formatKeyPolicy`); `context` derives the public keys of a
/// derived Ed25519 key.
fn key_payload(key: &TransitKey, context: Option<&[u8]>) -> Result<Map<String, Value>, KeyOpError> {
    let kt = key.supported_type()?;
    let mut d = Map::new();
    d.insert("name".into(), json!(key.name));
    d.insert("type".into(), json!(kt.name()));
    d.insert("derived".into(), json!(key.derived));
    d.insert("deletion_allowed".into(), json!(key.deletion_allowed));
    d.insert("min_available_version".into(), json!(key.min_available_version));
    d.insert("min_decryption_version".into(), json!(key.min_decryption_version));
    d.insert("min_encryption_version".into(), json!(key.min_encryption_version));
    d.insert("latest_version".into(), json!(key.latest_version));
    d.insert("exportable".into(), json!(key.exportable));
    d.insert("allow_plaintext_backup".into(), json!(key.allow_plaintext_backup));
    d.insert("supports_encryption".into(), json!(kt.encryption_supported()));
    d.insert("supports_decryption".into(), json!(kt.encryption_supported()));
    d.insert("supports_signing".into(), json!(kt.signing_supported()));
    d.insert("supports_derivation".into(), json!(kt.derivation_supported()));
    d.insert("auto_rotate_period".into(), json!(key.auto_rotate_secs()));
    d.insert("imported_key".into(), json!(key.imported));
    d.insert("soft_deleted".into(), json!(key.soft_deleted));
    if key.key_size != 0 {
        d.insert("key_size".into(), json!(key.key_size));
    }
    if key.imported {
        d.insert("imported_key_allow_rotation".into(), json!(key.allow_imported_key_rotation));
    }
    if let Some(b) = &key.backup_info {
        d.insert("backup_info".into(), json!({"time": b.time, "version": b.version}));
    }
    if let Some(r) = &key.restore_info {
        d.insert("restore_info".into(), json!({"time": r.time, "version": r.version}));
    }
    if key.derived {
        if key.kdf == KDF_COUNTER {
            d.insert("kdf".into(), json!("hmac-sha256-counter"));
            d.insert("kdf_mode".into(), json!("hmac-sha256-counter"));
        } else {
            d.insert("kdf".into(), json!("hkdf_sha256"));
        }
        d.insert("convergent_encryption".into(), json!(key.convergent_encryption));
        if key.convergent_encryption {
            d.insert("convergent_encryption_version".into(), json!(key.convergent_version));
        }
    }
    match kt {
        KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
            let keys: Map<String, Value> =
                key.visible_versions().map(|(v, e)| (v.to_string(), json!(e.creation_time))).collect();
            d.insert("keys".into(), Value::Object(keys));
        }
        KeyType::Ed25519 => {
            let mut keys = Map::new();
            for (v, e) in key.visible_versions() {
                let public = if key.derived {
                    match context {
                        Some(c) if !c.is_empty() => {
                            let k = key.derive_key(c, *v as i64, 32).map_err(|e| {
                                KeyOpError::internal(format!(
                                    "failed to derive key to return public component: {}",
                                    e.message()
                                ))
                            })?;
                            crypto::b64(&k.expose()[32..])
                        }
                        _ => String::new(),
                    }
                } else {
                    e.public_key.clone()
                };
                let created = if e.time == crate::util::timefmt::GO_ZERO_TIME {
                    rfc3339_nano(e.created())
                } else {
                    e.time.clone()
                };
                keys.insert(
                    v.to_string(),
                    json!({"name": "ed25519", "public_key": public, "creation_time": created,
                           "certificate_chain": ""}),
                );
            }
            d.insert("keys".into(), Value::Object(keys));
        }
        KeyType::Hmac => {}
    }
    Ok(d)
}

/// LIST `keys`.
pub async fn list(t: &Transit, ctx: &BackendRequest) -> Result<Response> {
    let keys = t.store().list(&ctx.view).await?;
    if keys.is_empty() {
        return Err(Error::NotFound(None));
    }
    Ok(Response::keys(keys))
}

/// POST `keys/<name>`.
pub async fn create(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    let d = &ctx.data;
    let derived = fields::boolean_or(d, "derived", false)?;
    let convergent = fields::boolean_or(d, "convergent_encryption", false)?;
    let type_name = fields::string(d, "type")?.unwrap_or_else(|| "aes256-gcm96".into());
    let key_size = fields::int_or(d, "key_size", 0)?;
    let exportable = fields::boolean_or(d, "exportable", false)?;
    let allow_plaintext_backup = fields::boolean_or(d, "allow_plaintext_backup", false)?;
    let auto_rotate = fields::duration_secs(d, "auto_rotate_period")?.unwrap_or(0) as i64;
    if auto_rotate != 0 && auto_rotate < 3600 {
        return Err(Error::bad("auto rotate period must be 0 to disable or at least an hour"));
    }
    if !derived && convergent {
        return Err(Error::bad("convergent encryption requires derivation to be enabled"));
    }
    let Some(kind) = KeyType::from_name(&type_name) else {
        return Err(Error::bad(format!("unknown key type {type_name}")));
    };
    if key_size != 0 {
        if kind != KeyType::Hmac {
            return Err(Error::bad(format!("key_size is not valid for algorithm {kind}")));
        }
        if !(32..=512).contains(&key_size) {
            return Err(Error::bad(format!("invalid key_size {key_size}")));
        }
    }
    match kind {
        KeyType::Ed25519 if convergent => {
            return Err(internal_visible(format!(
                "convergent encryption not supported for keys of type {kind}"
            )))
        }
        KeyType::Hmac if derived || convergent => {
            return Err(internal_visible(format!(
                "key derivation and convergent encryption not supported for keys of type {kind}"
            )))
        }
        _ => {}
    }
    let opts = NewKey {
        kind,
        derived,
        convergent,
        exportable,
        allow_plaintext_backup,
        auto_rotate_period: auto_rotate,
        key_size,
    };
    let now = ctx.now;
    let up = t
        .store()
        .upsert(&ctx.view, name, || TransitKey::create(name, &opts, now).map_err(Error::from))
        .await?;
    // Vault adds `key <name> already existed` here; OpenBao 2.x answers without a warning.
    key_response(&up.key)
}

/// GET `keys/<name>`.
pub async fn read(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    let Some(p) = t.store().get(&ctx.view, name).await? else { return Err(Error::NotFound(None)) };
    let context = fields::string_or_empty(&ctx.data, "context")?;
    let context =
        crypto::go_b64_secret(&context).map_err(|_| Error::bad("failed to base64-decode context"))?;
    Ok(Response::data(key_payload(&p, Some(&context))?))
}

/// DELETE `keys/<name>`.
pub async fn delete(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    match t.store().delete(&ctx.view, name, |p| p.deletion_allowed).await? {
        None => Err(Error::bad(format!("error deleting policy {name}: could not delete key; not found"))),
        Some(false) => {
            Err(Error::bad(format!("error deleting policy {name}: deletion is not allowed for this key")))
        }
        Some(true) => Ok(Response::empty()),
    }
}

/// POST `keys/<name>/config`.
pub async fn config(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    let d = &ctx.data;
    let min_dec = fields::int(d, "min_decryption_version")?;
    let min_enc = fields::int(d, "min_encryption_version")?;
    let deletion = fields::boolean(d, "deletion_allowed")?;
    let exportable = fields::boolean(d, "exportable")?;
    let backup = fields::boolean(d, "allow_plaintext_backup")?;
    let rotate = fields::duration_secs(d, "auto_rotate_period")?;
    let mut warning = None;
    let r = t
        .store()
        .modify(&ctx.view, name, |p| {
            let mut persist = false;
            if let Some(mut v) = min_dec {
                if v < 0 {
                    return Err(Error::bad("min decryption version cannot be negative"));
                }
                if v == 0 {
                    v = 1;
                    warning = Some(
                        "since Vault 0.3 (prior to the OpenBao fork), transit key numbering starts at 1; forcing minimum to 1",
                    );
                }
                if v != p.min_decryption_version {
                    if v > p.latest_version {
                        return Err(Error::bad(format!(
                            "cannot set min decryption version of {v}, latest key version is {}",
                            p.latest_version
                        )));
                    }
                    p.min_decryption_version = v;
                    persist = true;
                }
            }
            if let Some(v) = min_enc {
                if v < 0 {
                    return Err(Error::bad("min encryption version cannot be negative"));
                }
                if v != p.min_encryption_version {
                    if v > p.latest_version {
                        return Err(Error::bad(format!(
                            "cannot set min encryption version of {v}, latest key version is {}",
                            p.latest_version
                        )));
                    }
                    p.min_encryption_version = v;
                    persist = true;
                }
            }
            if p.min_encryption_version > 0 && p.min_encryption_version < p.min_decryption_version {
                return Err(Error::bad(format!(
                    "cannot set min encryption/decryption values; min encryption version of {} must be greater than or equal to min decryption version of {}",
                    p.min_encryption_version, p.min_decryption_version
                )));
            }
            if let Some(v) = deletion {
                if v != p.deletion_allowed {
                    p.deletion_allowed = v;
                    persist = true;
                }
            }
            if p.min_decryption_version == 0 {
                p.min_decryption_version = 1;
                persist = true;
            }
            if exportable == Some(true) && !p.exportable {
                p.exportable = true;
                persist = true;
            }
            if backup == Some(true) && !p.allow_plaintext_backup {
                p.allow_plaintext_backup = true;
                persist = true;
            }
            if let Some(secs) = rotate {
                let secs = secs as i64;
                if secs != 0 && secs < 3600 {
                    return Err(Error::bad("auto rotate period must be 0 to disable or at least an hour"));
                }
                if secs != p.auto_rotate_secs() {
                    p.auto_rotate_period = secs.saturating_mul(1_000_000_000);
                    persist = true;
                }
            }
            if !persist {
                return Ok(Change::Keep(()));
            }
            if p.min_available_version > p.min_encryption_version {
                return Err(Error::bad("min encryption version should not be less than min available version"));
            }
            if p.min_available_version > p.min_decryption_version {
                return Err(Error::bad("min decryption version should not be less then min available version"));
            }
            Ok(Change::Write(()))
        })
        .await?;
    let Some((p, ())) = r else {
        return Err(Error::bad(format!("no existing key named {name} could be found")));
    };
    let mut resp = key_response(&p)?;
    if let Some(w) = warning {
        resp.warnings.push(w.into());
    }
    Ok(resp)
}

/// Rotates `name` once; `None` when the key does not exist.
pub async fn rotate_key(
    t: &Transit,
    view: &View,
    name: &str,
    now: time::OffsetDateTime,
) -> Result<Option<std::sync::Arc<TransitKey>>> {
    let r = t
        .store()
        .modify(view, name, |p| {
            if p.imported && !p.allow_imported_key_rotation {
                return Err(internal_visible(format!(
                    "imported key {} does not allow rotation within Vault",
                    p.name
                )));
            }
            p.rotate_in_memory(now).map_err(Error::from)?;
            Ok(Change::Write(()))
        })
        .await?;
    Ok(r.map(|(p, ())| p))
}

/// POST `keys/<name>/rotate`.
pub async fn rotate(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    match rotate_key(t, &ctx.view, name, ctx.now).await? {
        None => Err(Error::bad("key not found")),
        Some(p) => key_response(&p),
    }
}

/// POST `keys/<name>/trim`.
pub async fn trim(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    let min = fields::int(&ctx.data, "min_available_version")?;
    let r = t
        .store()
        .modify(&ctx.view, name, |p| {
            let Some(min) = min else { return Err(Error::bad("missing min_available_version")) };
            let e = |m: &str| Err(Error::bad(m.to_owned()));
            if min < p.min_available_version {
                return e("minimum available version cannot be decremented");
            }
            if p.min_encryption_version == 0 {
                return e(
                    "minimum available version cannot be set when minimum encryption version is not set",
                );
            }
            if p.min_decryption_version == 0 {
                return e(
                    "minimum available version cannot be set when minimum decryption version is not set",
                );
            }
            if min > p.min_encryption_version {
                return e("minimum available version cannot be greater than minmum encryption version");
            }
            if min > p.min_decryption_version {
                return e("minimum available version cannot be greater than minimum decryption version");
            }
            if min < 0 {
                return e("minimum available version cannot be negative");
            }
            if min == 0 {
                return e("minimum available version should be positive");
            }
            p.min_available_version = min;
            p.drop_trimmed();
            Ok(Change::Write(()))
        })
        .await?;
    match r {
        None => Err(Error::bad("invalid key name")),
        Some((p, ())) => key_response(&p),
    }
}

/// PEM with 64-column lines, no trailing newline (Go's `pem.EncodeToMemory` + `TrimSpace`).
fn pem(label: &str, der: &[u8]) -> String {
    let b = crypto::b64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----"));
    out
}

fn export_one(kt: KeyType, e: &KeyEntry, kind: &str, format: &str) -> std::result::Result<String, Error> {
    let raw_only = |what: &str| {
        internal_visible(format!("unknown format for {what} key; supported values are `` or `raw`"))
    };
    match kind {
        "hmac-key" => {
            if format == "der" || format == "pem" {
                return Err(raw_only("HMAC"));
            }
            let src = if kt == KeyType::Hmac { &e.key } else { &e.hmac_key };
            Ok(src.as_ref().map(|k| crypto::b64(k.expose())).unwrap_or_default())
        }
        "encryption-key" if kt.is_aead() => {
            if format == "der" || format == "pem" {
                return Err(raw_only("HMAC"));
            }
            Ok(e.key.as_ref().map(|k| crypto::b64(k.expose())).unwrap_or_default())
        }
        "signing-key" if kt == KeyType::Ed25519 => {
            let Some(k) = &e.key else { return Ok(String::new()) };
            if format.is_empty() || format == "raw" {
                return Ok(crypto::b64(k.expose()));
            }
            // PKCS#8 OneAsymmetricKey for Ed25519 (RFC 8410): fixed prefix + 32-byte seed.
            let mut der = Zeroizing::new(hex::decode("302e020100300506032b657004220420").unwrap_or_default());
            der.extend_from_slice(&k.expose()[..32]);
            Ok(if format == "der" { crypto::b64(&der) } else { pem("PRIVATE KEY", &der) })
        }
        "public-key" if kt == KeyType::Ed25519 => {
            let public = e.public_key.trim().to_owned();
            if format.is_empty() || format == "raw" {
                return Ok(public);
            }
            let raw = crypto::go_b64_decode(&public).map_err(internal_visible)?;
            let mut der = hex::decode("302a300506032b6570032100").unwrap_or_default();
            der.extend_from_slice(&raw);
            Ok(if format == "der" { crypto::b64(&der) } else { pem("PUBLIC KEY", &der) })
        }
        "certificate-chain" => {
            Err(internal_visible("selected key version does not have a certificate chain imported"))
        }
        _ => Err(internal_visible(format!("unknown key type {} for export type {kind}", kt.name()))),
    }
}

/// GET `export/<type>/<name>[/<version>]`.
pub async fn export(
    t: &Transit,
    ctx: &BackendRequest,
    kind: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Response> {
    if !matches!(kind, "encryption-key" | "signing-key" | "hmac-key" | "public-key" | "certificate-chain") {
        return Err(Error::bad(format!("invalid export type: {kind}")));
    }
    let format = fields::string_or_empty(&ctx.data, "format")?;
    if !matches!(format.as_str(), "" | "raw" | "der" | "pem") {
        return Err(Error::bad(format!("invalid format: {format}")));
    }
    let Some(p) = t.store().get(&ctx.view, name).await? else { return Err(Error::NotFound(None)) };
    let kt = p.key_type().ok_or_else(|| Error::internal("unsupported key type"))?;
    if !p.exportable && kind != "public-key" && kind != "certificate-chain" {
        return Err(Error::bad("private key material is not exportable"));
    }
    match kind {
        "encryption-key" if !kt.encryption_supported() => {
            return Err(Error::bad("encryption not supported for the key"))
        }
        "signing-key" if !kt.signing_supported() => {
            return Err(Error::bad("signing not supported for the key"))
        }
        "certificate-chain" if !kt.signing_supported() => {
            return Err(Error::bad("certificate chain not supported for keys that do not support signing"))
        }
        _ => {}
    }
    let mut keys = Map::new();
    match version {
        None => {
            for (v, e) in p.visible_versions() {
                keys.insert(v.to_string(), json!(export_one(kt, e, kind, &format)?));
            }
        }
        Some(v) => {
            let ver = if v == "latest" {
                p.latest_version
            } else {
                super::cipher::go_atoi(v.strip_prefix('v').unwrap_or(v))
                    .ok_or_else(|| Error::bad("invalid key version"))?
            };
            if ver < p.min_decryption_version {
                return Err(Error::bad("version for export is below minimum decryption version"));
            }
            let e = u64::try_from(ver)
                .ok()
                .and_then(|v| p.keys.get(&v))
                .ok_or_else(|| Error::bad("version does not exist or cannot be found"))?;
            keys.insert(ver.to_string(), json!(export_one(kt, e, kind, &format)?));
        }
    }
    Ok(Response::json(json!({"name": p.name, "type": kt.name(), "keys": keys})))
}

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
pub async fn backup(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    let now = rfc3339_nano(ctx.now);
    let r = t
        .store()
        .modify(&ctx.view, name, |p| {
            if !p.exportable {
                return Err(internal_visible("exporting is disallowed on the policy"));
            }
            if !p.allow_plaintext_backup {
                return Err(internal_visible("plaintext backup is disallowed on the policy"));
            }
            p.backup_info = Some(OpInfo { time: now.clone(), version: p.latest_version });
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
    p.restore_info = Some(OpInfo { time: rfc3339_nano(now), version: p.latest_version });
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
pub async fn restore(t: &Transit, ctx: &BackendRequest, name: Option<&str>) -> Result<Response> {
    let blob = Zeroizing::new(fields::string_or_empty(&ctx.data, "backup")?);
    let force = fields::boolean_or(&ctx.data, "force", false)?;
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
    let p = parse_backup(&blob, name, ctx.now)?;
    if !super::valid_name(&p.name) {
        return Err(internal_visible("key names cannot be paths"));
    }
    if !t.store().put(&ctx.view, &p, force).await? {
        return Err(internal_visible(format!("key {:?} already exists", p.name)));
    }
    Ok(Response::empty())
}

/// GET `cache-config`.
pub async fn cache_config_read(_t: &Transit, ctx: &BackendRequest) -> Result<Response> {
    let size = match ctx.view.get(CONFIG_CACHE).await? {
        None => 0,
        Some(e) => serde_json::from_slice::<CacheConfig>(&e.value).map_err(Error::internal)?.size,
    };
    Ok(Response::json(json!({"size": size})))
}

/// POST `cache-config`.
pub async fn cache_config_write(t: &Transit, ctx: &BackendRequest) -> Result<Response> {
    let size = fields::int_or(&ctx.data, "size", 0)?;
    if size != 0 && size < 10 {
        return Err(Error::bad("size must be 0 or a value greater or equal to 10"));
    }
    let rec = CacheConfig { v: 1, size };
    ctx.view.put(CONFIG_CACHE, serde_json::to_vec(&rec)?).await?;
    t.store().set_limit(size as usize);
    Ok(Response::json(json!({"size": size})))
}

/// GET `config/keys`.
pub async fn config_keys_read(ctx: &BackendRequest) -> Result<Response> {
    let c = read_config_keys(&ctx.view).await?;
    Ok(Response::json(json!({"disable_upsert": c.disable_upsert})))
}

/// POST `config/keys`.
pub async fn config_keys_write(ctx: &BackendRequest) -> Result<Response> {
    let mut c = read_config_keys(&ctx.view).await?;
    if let Some(v) = fields::boolean(&ctx.data, "disable_upsert")? {
        c.disable_upsert = v;
    }
    c.v = 1;
    ctx.view.put(CONFIG_KEYS, serde_json::to_vec(&c)?).await?;
    Ok(Response::json(json!({"disable_upsert": c.disable_upsert})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_round_trip_and_archive_layout() {
        let now = time::OffsetDateTime::now_utc();
        let opts = NewKey { exportable: true, allow_plaintext_backup: true, ..NEW_KEY_DEFAULTS };
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
