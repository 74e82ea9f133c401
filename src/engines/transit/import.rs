//! Bring your own key: `wrapping_key`, `keys/<name>/import` and `keys/<name>/import_version`, as
//! Vault has them.
//!
//! The mount has one RSA-4096 wrapping key, made on first use and kept (like a key record) at
//! [`WRAPPING_KEY`] in the mount's view, outside `policy/` so it is never listed, rotated or
//! exported. A client wraps the key it imports as Vault's `CKM_RSA_AES_KEY_WRAP`: a fresh AES-256
//! key encrypted with RSA-OAEP under the wrapping key (`hash_function`, SHA-256 by default, for
//! OAEP and MGF1, empty label), followed by the target key wrapped with that AES key by AES-KWP
//! (RFC 5649). The target is the raw key for symmetric types and PKCS#8 DER for asymmetric ones;
//! `public_key` (PEM) imports the public half alone. Unwrapped material is zeroized; the target
//! key never exists in plaintext outside this process.

use aes_kw::KekAes256;
use coffer_storage::{Batch, View};
use serde_json::json;
use zeroize::Zeroizing;

use super::asym;
use super::crypto::{self, HashAlg, KeyType};
use super::error::KeyOpError;
use super::key::{KeyEntry, NewKey, TransitKey};
use super::store::Change;
use super::Transit;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};

/// Storage key of the mount's wrapping key (Vault's policy `import/wrapping-key`).
pub const WRAPPING_KEY: &str = "import/wrapping-key";

/// Bytes of the RSA-OAEP-encrypted ephemeral key at the head of a wrapped key (RSA-4096).
const ENCRYPTED_KEY_BYTES: usize = 512;

/// The mount's wrapping key, created on first use.
async fn wrapping_key(view: &View, now: time::OffsetDateTime) -> Result<TransitKey> {
    loop {
        if let Some(entry) = view.get(WRAPPING_KEY).await? {
            return TransitKey::decode(&entry.value).map_err(Error::internal);
        }
        let first = tokio::task::spawn_blocking(move || KeyEntry::generate(KeyType::Rsa4096, 0, now))
            .await
            .map_err(Error::internal)??;
        let opts = NewKey { kind: KeyType::Rsa4096, ..NewKey::DEFAULTS };
        let key = TransitKey::create_with("import/wrapping-key", &opts, first);
        let mut raw = key.encode().map_err(Error::internal)?;
        let batch = Batch::new().put(WRAPPING_KEY, std::mem::take(&mut *raw)).require_absent(WRAPPING_KEY);
        if view.try_apply(batch).await?.is_some() {
            return Ok(key);
        }
    }
}

/// GET `wrapping_key`: the wrapping key's public key (PEM).
pub async fn read_wrapping_key(req: &BackendRequest) -> Result<Response> {
    let key = wrapping_key(&req.view, req.now).await?;
    let entry = key.entry(key.latest_version)?;
    Ok(Response::data(
        [("public_key".to_owned(), json!(entry.public_key_text(KeyType::Rsa4096)?))].into_iter().collect(),
    ))
}

/// The OAEP hash of `hash_function` (Vault's `parseHashFn`).
fn oaep_hash(name: &str) -> Result<HashAlg> {
    Ok(match name.to_uppercase().as_str() {
        "SHA1" => HashAlg::Sha1,
        "SHA224" => HashAlg::Sha2_224,
        "SHA256" => HashAlg::Sha2_256,
        "SHA384" => HashAlg::Sha2_384,
        "SHA512" => HashAlg::Sha2_512,
        _ => return Err(Error::bad(format!("unknown hash function: {name}"))),
    })
}

/// The key material of an import request: the unwrapped `ciphertext` (private), or the
/// `public_key` PEM. `bool` = private.
async fn material(req: &BackendRequest) -> Result<(Zeroizing<Vec<u8>>, bool)> {
    let d = &req.data;
    let ciphertext = fields::string(d, "ciphertext")?;
    let public_key = fields::string(d, "public_key")?;
    let Some(ciphertext) = ciphertext.map(Zeroizing::new) else {
        return Ok((Zeroizing::new(public_key.unwrap_or_default().into_bytes()), false));
    };
    if public_key.is_some() {
        return Err(Error::bad("only one of the following fields, ciphertext and public_key, can be set"));
    }
    let hash = oaep_hash(&fields::string(d, "hash_function")?.unwrap_or_else(|| "SHA256".into()))?;
    let wrapped = crypto::go_b64_secret(&ciphertext).map_err(|e| Error::bad(e.to_string()))?;
    if wrapped.len() <= ENCRYPTED_KEY_BYTES {
        return Err(Error::bad("provided ciphertext is too short"));
    }
    let wrapping = wrapping_key(&req.view, req.now).await?;
    let private = wrapping.entry(wrapping.latest_version)?.rsa_key.as_ref().map(|k| k.key());
    let private = private.ok_or_else(|| Error::internal("wrapping key has no private key"))?;
    let private = private.map_err(|e| Error::from(KeyOpError::from(e)))?;
    let (head, tail) = wrapped.expose().split_at(ENCRYPTED_KEY_BYTES);
    let ephemeral = asym::rsa_decrypt(&private, hash, head)
        .map_err(|_| Error::bad("failed to decrypt the ephemeral key: crypto/rsa: decryption error"))?;
    if ephemeral.len() != 32 {
        return Err(Error::bad("expected ephemeral AES key to be 256-bit"));
    }
    let kek = KekAes256::new(ephemeral.as_slice().into());
    let target = kek
        .unwrap_with_padding_vec(tail)
        .map_err(|_| Error::bad("failed to unwrap the key: integrity check failed"))?;
    Ok((Zeroizing::new(target), true))
}

/// POST `keys/<name>/import`: a new key whose first version is the imported one.
pub async fn import(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let d = &req.data;
    if d.contains_key("convergent_encryption") {
        return Err(Error::bad("import cannot be used on keys with convergent encryption enabled"));
    }
    let type_name = fields::string(d, "type")?.unwrap_or_else(|| "aes256-gcm96".into());
    let Some(kind) = KeyType::from_name(&type_name.to_lowercase()) else {
        return Err(Error::bad(format!("unknown key type: {type_name}")));
    };
    let derived = fields::boolean_or(d, "derived", false)?;
    if derived && !kind.derivation_supported() {
        return Err(Error::bad(format!("key derivation not supported for keys of type {kind}")));
    }
    let allow_rotation = fields::boolean_or(d, "allow_rotation", false)?;
    let auto_rotate = fields::duration_secs(d, "auto_rotate_period")?.unwrap_or(0) as i64;
    if auto_rotate > 0 && !allow_rotation {
        return Err(Error::bad("allow_rotation must be set to true if auto-rotation is enabled"));
    }
    if auto_rotate != 0 && auto_rotate < 3600 {
        return Err(Error::bad("auto rotate period must be 0 to disable or at least an hour"));
    }
    let opts = NewKey {
        kind,
        derived,
        convergent: false,
        exportable: fields::boolean_or(d, "exportable", false)?,
        allow_plaintext_backup: fields::boolean_or(d, "allow_plaintext_backup", false)?,
        auto_rotate_period: auto_rotate,
        key_size: 0,
    };
    if t.store().exists(&req.view, name).await? {
        return Err(Error::bad(
            "the import path cannot be used with an existing key; use import-version to rotate an existing imported key",
        ));
    }
    let (material, private) = material(req).await?;
    if !private && derived && kind == KeyType::Ed25519 {
        return Err(Error::bad("unable to import only public key for derived Ed25519 key"));
    }
    if !private && !kind.public_import_supported() {
        return Err(Error::bad("provided type does not support public_key import"));
    }
    let entry = KeyEntry::from_import(kind, &material, private, req.now)?;
    let mut key = TransitKey::create_with(name, &opts, entry);
    key.imported = true;
    key.allow_imported_key_rotation = allow_rotation;
    if kind == KeyType::Hmac {
        key.key_size = material.len() as i64;
    }
    let cell = std::sync::Mutex::new(Some(key));
    let up = t
        .store()
        .upsert(&req.view, name, || {
            cell.lock().unwrap_or_else(|p| p.into_inner()).take().ok_or_else(|| {
                Error::bad("the import path cannot be used with an existing key; use import-version to rotate an existing imported key")
            })
        })
        .await?;
    if !up.created {
        return Err(Error::bad(
            "the import path cannot be used with an existing key; use import-version to rotate an existing imported key",
        ));
    }
    Ok(Response::empty())
}

/// POST `keys/<name>/import_version`: a new version of an imported key, or the private half of
/// a version imported from its public key.
pub async fn import_version(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let version = fields::int(&req.data, "version")?;
    let Some(current) = t.store().get(&req.view, name).await? else {
        return Err(Error::bad(format!(
            "no key found with name {name}; to import a new key, use the import/ endpoint"
        )));
    };
    check_importable(&current)?;
    let kind = current.supported_type()?;
    let (material, private) = material(req).await?;
    if !private && !kind.public_import_supported() {
        return Err(Error::bad("provided type does not support public_key import"));
    }
    let now = req.now;
    let r = t
        .store()
        .modify(&req.view, name, |p| {
            check_importable(p)?;
            match version {
                Some(v) => complete_version(p, v, &material, private)?,
                None => {
                    let latest = p.latest_version;
                    let incomplete = p.entry(latest).is_ok_and(KeyEntry::private_missing);
                    if !(private && incomplete && complete_version(p, latest, &material, true).is_ok()) {
                        p.add_version(KeyEntry::from_import(kind, &material, private, now)?);
                        p.imported = true;
                    }
                }
            }
            Ok(Change::Write(()))
        })
        .await?;
    match r {
        None => Err(Error::bad(format!(
            "no key found with name {name}; to import a new key, use the import/ endpoint"
        ))),
        Some(_) => Ok(Response::empty()),
    }
}

/// `import_version` is only for imported, non-convergent keys.
fn check_importable(p: &TransitKey) -> Result<()> {
    if !p.imported {
        return Err(Error::bad("the import_version endpoint can only be used with an imported key"));
    }
    if p.convergent_encryption {
        return Err(Error::bad("import_version cannot be used on keys with convergent encryption enabled"));
    }
    Ok(())
}

/// Adds the private half to version `v`, which must have only its public key, and the private
/// key must match it (Vault's `KeyVersionCanBeUpdated` + `ImportPrivateKeyForVersion`).
fn complete_version(p: &mut TransitKey, v: i64, der: &[u8], private: bool) -> Result<()> {
    let kind = p.supported_type()?;
    if !kind.public_import_supported() {
        return Err(Error::bad("provided type does not support importing key versions"));
    }
    let entry = p.entry(v)?;
    if !entry.private_missing() {
        return Err(Error::bad("private key imported, key version cannot be updated"));
    }
    if !private {
        return Err(Error::bad("cannot add a public key to a key version that already has a public key set"));
    }
    let public_before = entry.public_der(kind)?;
    let mut updated = entry.duplicate();
    updated.set_private(kind, der)?;
    if updated.public_der(kind)? != public_before {
        return Err(Error::bad("cannot import key, key pair does not match"));
    }
    let slot = u64::try_from(v).ok().and_then(|v| p.keys.get_mut(&v));
    let slot = slot.ok_or_else(|| Error::bad("no such key version"))?;
    *slot = updated;
    Ok(())
}
