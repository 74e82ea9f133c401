//! `jwks/<name>`: the public keys of a key's live versions as an RFC 7517 JWK Set, served as a
//! bare JSON document (not Vault's envelope) so JOSE libraries can fetch it directly.
//!
//! Every version from `min_decryption_version` to `latest_version` appears with `kid`
//! `<name>:v<version>` (the `kid` of [`super::jwt`]'s tokens) and `"use": "sig"`; EC and OKP keys
//! carry their only `alg`, RSA keys none (they sign RS* and PS*). Retired versions drop out when
//! `min_decryption_version` rises, so verifiers stop accepting their tokens. Without a token the
//! set is served only for a key marked `jwks_public` (`keys/<name>/config`); with one, the
//! token's ACL decides, as on any path.

use serde_json::{json, Map, Value};

use super::crypto::{self, KeyType};
use super::error::KeyOpError;
use super::jwt::{b64url, kid, JwtAlg};
use super::key::{KeyEntry, TransitKey};
use super::Transit;
use crate::core::error::{Error, Result};
use crate::core::request::{BackendRequest, Response};

/// The JWK of one version's public key.
fn jwk(kt: KeyType, e: &KeyEntry, kid: String) -> std::result::Result<Value, KeyOpError> {
    let mut k = Map::new();
    match kt {
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
            let curve = super::material::ec_curve(kt)?;
            let (x, y) = e.ec_point()?;
            let pad = |v: &[u8]| super::asym::left_pad(v, curve.field_len()).map(|p| b64url(&p));
            let (Some(x), Some(y)) = (pad(x), pad(y)) else {
                return Err(KeyOpError::internal("EC public key larger than its field"));
            };
            k.insert("kty".into(), json!("EC"));
            k.insert("crv".into(), json!(curve.name()));
            k.insert("x".into(), json!(x));
            k.insert("y".into(), json!(y));
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            use rsa::traits::PublicKeyParts;
            let public = e.rsa_public()?;
            k.insert("kty".into(), json!("RSA"));
            k.insert("n".into(), json!(b64url(&public.n().to_bytes_be())));
            k.insert("e".into(), json!(b64url(&public.e().to_bytes_be())));
        }
        KeyType::Ed25519 => {
            let raw = crypto::go_b64_decode(e.public_key.trim()).map_err(KeyOpError::internal)?;
            k.insert("kty".into(), json!("OKP"));
            k.insert("crv".into(), json!("Ed25519"));
            k.insert("x".into(), json!(b64url(&raw)));
        }
        other => return Err(KeyOpError::user(format!("key type {other} has no public key for a JWKS"))),
    }
    if kt.rsa_bits().is_none() {
        if let Some(alg) = JwtAlg::allowed(kt).first() {
            k.insert("alg".into(), json!(alg.name()));
        }
    }
    k.insert("kid".into(), json!(kid));
    k.insert("use".into(), json!("sig"));
    Ok(Value::Object(k))
}

/// The JWK Set of `key`'s live versions.
pub fn key_set(key: &TransitKey) -> std::result::Result<Value, KeyOpError> {
    let kt = key.supported_type()?;
    if key.derived {
        return Err(KeyOpError::user("a derived key has no single public key for a JWKS"));
    }
    let keys = key
        .visible_versions()
        .map(|(v, e)| jwk(kt, e, kid(&key.name, *v as i64)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(json!({"keys": keys}))
}

/// Whether `jwks/<name>` may be read without a token (the key exists and is `jwks_public`).
pub async fn anonymous_readable(t: &Transit, view: &coffer_storage::View, name: &str) -> Result<bool> {
    Ok(t.store().get(view, name).await?.is_some_and(|k| k.jwks_public))
}

/// GET `jwks/<name>`.
pub async fn read(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let key = t.store().get(&req.view, name).await?;
    // The core admits a caller without a token only for a public key; check again here so a key
    // made private meanwhile is not served, and answer as for any refused request.
    if req.token.is_none() && !key.as_ref().is_some_and(|k| k.jwks_public) {
        return Err(Error::PermissionDenied);
    }
    let Some(key) = key else { return Err(Error::NotFound(None)) };
    let set = key_set(&key)?;
    let mut resp = Response::empty();
    resp.raw_body = Some(set.to_string().into_bytes());
    resp.status = Some(200);
    Ok(resp)
}
