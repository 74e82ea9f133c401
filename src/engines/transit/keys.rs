//! Key management: create, read, list, delete, config, rotate and trim (`keys/...`).
//!
//! Every change is a compare-and-set on the key's record ([`super::store`]), so a config change
//! racing with a rotation keeps both. Version settings keep Vault's order:
//! `min_available_version ≤ min_decryption_version ≤ min_encryption_version` (when set) `≤
//! latest_version`. A read shows only versions ≥ `min_decryption_version`.

use serde_json::{json, Map, Value};

use coffer_storage::View;

use super::crypto::{self, Curve, KeyType};
use super::error::{internal_visible, KeyOpError};
use super::key::{KeyEntry, NewKey, TransitKey, KDF_COUNTER};
use super::store::Change;
use super::Transit;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::util::timefmt::rfc3339_nano;

/// The key read payload of `key`.
fn key_response(key: &TransitKey) -> Result<Response> {
    Ok(Response::data(key_payload(key, None)?))
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
    if key.jwks_public {
        d.insert("jwks_public".into(), json!(true));
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
        KeyType::Aes128Gcm96
        | KeyType::Aes256Gcm96
        | KeyType::ChaCha20Poly1305
        | KeyType::XChaCha20Poly1305 => {
            let keys: Map<String, Value> =
                key.visible_versions().map(|(v, e)| (v.to_string(), json!(e.creation_time))).collect();
            d.insert("keys".into(), Value::Object(keys));
        }
        KeyType::Hmac => {}
        _ => {
            let mut keys = Map::new();
            for (v, e) in key.visible_versions() {
                let public = if kt == KeyType::Ed25519 && key.derived {
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
                    e.public_key_text(kt)?
                };
                let created = if e.time == crate::util::timefmt::GO_ZERO_TIME {
                    rfc3339_nano(e.created())
                } else {
                    e.time.clone()
                };
                let name = kt.curve().map(Curve::name).unwrap_or(kt.name());
                keys.insert(
                    v.to_string(),
                    json!({"name": name, "public_key": public, "creation_time": created,
                           "certificate_chain": ""}),
                );
            }
            d.insert("keys".into(), Value::Object(keys));
        }
    }
    Ok(d)
}

/// LIST `keys`.
pub async fn list(t: &Transit, req: &BackendRequest) -> Result<Response> {
    let keys = t.store().list(&req.view).await?;
    if keys.is_empty() {
        return Err(Error::NotFound(None));
    }
    Ok(Response::keys(keys))
}

/// POST `keys/<name>`.
pub async fn create(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let d = &req.data;
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
        k if (k.curve().is_some() || k.rsa_bits().is_some()) && (derived || convergent) => {
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
    let now = req.now;
    if let Some(existing) = t.store().get(&req.view, name).await? {
        return key_response(&existing);
    }
    let first = std::sync::Mutex::new(generate_ahead(kind, key_size, now).await?);
    let up = t
        .store()
        .upsert(&req.view, name, || {
            let first = first.lock().unwrap_or_else(|p| p.into_inner()).take();
            match first {
                Some(entry) => Ok(TransitKey::create_with(name, &opts, entry)),
                None => TransitKey::create(name, &opts, now).map_err(Error::from),
            }
        })
        .await?;
    // Vault adds `key <name> already existed` here; OpenBao 2.x answers without a warning.
    key_response(&up.key)
}

/// GET `keys/<name>`.
pub async fn read(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let Some(p) = t.store().get(&req.view, name).await? else { return Err(Error::NotFound(None)) };
    let context = fields::string_or_empty(&req.data, "context")?;
    let context =
        crypto::go_b64_secret(&context).map_err(|_| Error::bad("failed to base64-decode context"))?;
    Ok(Response::data(key_payload(&p, Some(context.expose()))?))
}

/// DELETE `keys/<name>`.
pub async fn delete(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    match t.store().delete(&req.view, name, |p| p.deletion_allowed).await? {
        None => Err(Error::bad(format!("error deleting policy {name}: could not delete key; not found"))),
        Some(false) => {
            Err(Error::bad(format!("error deleting policy {name}: deletion is not allowed for this key")))
        }
        Some(true) => Ok(Response::empty()),
    }
}

/// POST `keys/<name>/config`.
pub async fn config(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let d = &req.data;
    let min_dec = fields::int(d, "min_decryption_version")?;
    let min_enc = fields::int(d, "min_encryption_version")?;
    let deletion = fields::boolean(d, "deletion_allowed")?;
    let exportable = fields::boolean(d, "exportable")?;
    let backup = fields::boolean(d, "allow_plaintext_backup")?;
    let rotate = fields::duration_secs(d, "auto_rotate_period")?;
    let jwks_public = fields::boolean(d, "jwks_public")?;
    let mut warning = None;
    let r = t
        .store()
        .modify(&req.view, name, |p| {
            let mut persist = false;
            if let Some(v) = min_dec {
                let v = if v == 0 {
                    warning = Some(
                        "since Vault 0.3 (prior to the OpenBao fork), transit key numbering starts at 1; forcing minimum to 1",
                    );
                    1
                } else {
                    v
                };
                persist |= set_min_version(&mut p.min_decryption_version, v, p.latest_version, "decryption")?;
            }
            if let Some(v) = min_enc {
                persist |= set_min_version(&mut p.min_encryption_version, v, p.latest_version, "encryption")?;
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
            if let Some(v) = jwks_public.filter(|v| *v != p.jwks_public) {
                p.jwks_public = v;
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

/// Sets `min_<what>_version` to `v` (≥ 0, ≤ `latest`); whether it changed.
fn set_min_version(current: &mut i64, v: i64, latest: i64, what: &str) -> Result<bool> {
    if v < 0 {
        return Err(Error::bad(format!("min {what} version cannot be negative")));
    }
    if v == *current {
        return Ok(false);
    }
    if v > latest {
        return Err(Error::bad(format!(
            "cannot set min {what} version of {v}, latest key version is {latest}"
        )));
    }
    *current = v;
    Ok(true)
}

/// A new version's material generated off the async workers when that is slow (RSA); `None`
/// for the other types, which generate in place.
async fn generate_ahead(kind: KeyType, key_size: i64, now: time::OffsetDateTime) -> Result<Option<KeyEntry>> {
    if kind.rsa_bits().is_none() {
        return Ok(None);
    }
    let entry = tokio::task::spawn_blocking(move || KeyEntry::generate(kind, key_size, now))
        .await
        .map_err(Error::internal)??;
    Ok(Some(entry))
}

/// Rotates `name` once; `None` when the key does not exist.
pub async fn rotate_key(
    t: &Transit,
    view: &View,
    name: &str,
    now: time::OffsetDateTime,
) -> Result<Option<std::sync::Arc<TransitKey>>> {
    let Some(current) = t.store().get(view, name).await? else { return Ok(None) };
    let kind = current.supported_type()?;
    let mut ahead = generate_ahead(kind, current.key_size, now).await?;
    let r = t
        .store()
        .modify(view, name, |p| {
            if p.imported && !p.allow_imported_key_rotation {
                return Err(internal_visible(format!(
                    "imported key {} does not allow rotation within Vault",
                    p.name
                )));
            }
            match ahead.take() {
                Some(entry) if p.key_type() == Some(kind) => p.add_version(entry),
                _ => p.rotate_in_memory(now).map_err(Error::from)?,
            }
            Ok(Change::Write(()))
        })
        .await?;
    Ok(r.map(|(p, ())| p))
}

/// POST `keys/<name>/rotate`.
pub async fn rotate(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    match rotate_key(t, &req.view, name, req.now).await? {
        None => Err(Error::bad("key not found")),
        Some(p) => key_response(&p),
    }
}

/// POST `keys/<name>/trim`.
pub async fn trim(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let min = fields::int(&req.data, "min_available_version")?;
    let r = t
        .store()
        .modify(&req.view, name, |p| {
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
