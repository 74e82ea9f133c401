//! `export/<type>/<name>[/<version>]`: a key's material in Vault's export formats.
//!
//! Private material leaves only for keys created or configured `exportable`; public keys always
//! may. Encryption and HMAC keys export raw (base64); Ed25519 keys also as PKCS#8 / SPKI DER or
//! PEM; ECDSA keys as SEC1 or PKCS#8, RSA keys as PKCS#1 or PKCS#8, public keys as SPKI, each in
//! the PEM layout Vault writes (some with a trailing newline, some without). Buffers that held key material are zeroized.

use serde_json::{json, Map};
use zeroize::Zeroizing;

use super::asym;
use super::cipher::go_atoi;
use super::crypto::{self, KeyType};
use super::error::internal_visible;
use super::key::KeyEntry;
use super::material;
use super::Transit;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};

/// PEM without the trailing newline (Go's `pem.EncodeToMemory` + `TrimSpace`).
fn pem(label: &str, der: &[u8]) -> String {
    let mut p = material::pem(label, der);
    p.truncate(p.trim_end().len());
    p
}

/// An RSA private key: PKCS#1 PEM by default, PKCS#8 for `der` / `pem` (Vault keeps the PEM's
/// trailing newline here).
fn rsa_private(e: &KeyEntry, format: &str) -> std::result::Result<String, Error> {
    if format == "raw" {
        return Err(internal_visible(
            "unknown key format for rsa key; supported values are ``, `der`, or `pem`",
        ));
    }
    let Some(k) = &e.rsa_key else { return Ok(String::new()) };
    let key = k.key().map_err(internal_visible)?;
    Ok(match format {
        "" => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let der = key.to_pkcs1_der().map_err(internal_visible)?;
            material::pem("RSA PRIVATE KEY", der.as_bytes())
        }
        _ => {
            let der = asym::rsa_pkcs8_der(&key).map_err(internal_visible)?;
            if format == "der" {
                crypto::b64(&der)
            } else {
                material::pem("PRIVATE KEY", &der)
            }
        }
    })
}

/// An EC private key: SEC1 PEM by default, PKCS#8 for `der` / `pem`.
fn ec_private(kt: KeyType, e: &KeyEntry, format: &str) -> std::result::Result<String, Error> {
    if format == "raw" {
        return Err(internal_visible(
            "unknown key format for ec key; supported values are ``, `der`, or `pem`",
        ));
    }
    let Some(d) = &e.ec_d else { return Ok(String::new()) };
    let curve = material::ec_curve(kt)?;
    Ok(match format {
        "" => pem("EC PRIVATE KEY", &asym::ec_sec1_der(curve, d.0.expose()).map_err(internal_visible)?),
        _ => {
            let der = asym::ec_pkcs8_der(curve, d.0.expose()).map_err(internal_visible)?;
            if format == "der" {
                crypto::b64(&der)
            } else {
                pem("PRIVATE KEY", &der)
            }
        }
    })
}

/// An ECDSA or RSA public key: SubjectPublicKeyInfo PEM (RSA keeps the trailing newline), or
/// base64 DER for `der`.
fn asym_public(kt: KeyType, e: &KeyEntry, format: &str) -> std::result::Result<String, Error> {
    let what = if kt.curve().is_some() { "ec" } else { "rsa" };
    if format == "raw" {
        return Err(internal_visible(format!(
            "unknown key format for {what} key; supported values are ``, `der`, or `pem`"
        )));
    }
    let der = e.public_der(kt)?;
    Ok(match format {
        "der" => crypto::b64(&der),
        _ if what == "ec" => pem("PUBLIC KEY", &der),
        _ => material::pem("PUBLIC KEY", &der),
    })
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
        "encryption-key" | "signing-key" if kt.rsa_bits().is_some() => rsa_private(e, format),
        "signing-key" if kt.curve().is_some() => ec_private(kt, e, format),
        "public-key" if kt.curve().is_some() || kt.rsa_bits().is_some() => asym_public(kt, e, format),
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
    req: &BackendRequest,
    kind: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Response> {
    if !matches!(kind, "encryption-key" | "signing-key" | "hmac-key" | "public-key" | "certificate-chain") {
        return Err(Error::bad(format!("invalid export type: {kind}")));
    }
    let format = fields::string_or_empty(&req.data, "format")?;
    if !matches!(format.as_str(), "" | "raw" | "der" | "pem") {
        return Err(Error::bad(format!("invalid format: {format}")));
    }
    let Some(p) = t.store().get(&req.view, name).await? else { return Err(Error::NotFound(None)) };
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
                go_atoi(v.strip_prefix('v').unwrap_or(v)).ok_or_else(|| Error::bad("invalid key version"))?
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
