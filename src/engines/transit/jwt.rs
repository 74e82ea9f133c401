//! JWTs made and checked by a transit key (coffer only; Vault leaves JWT assembly to clients):
//! `jwt/sign/<name>`, `jwt/verify/<name>` and the key's public JWKS at `jwks/<name>`.
//!
//! * A token is a compact JWS (RFC 7515) with header `{"alg","kid","typ":"JWT"}`. `alg` follows
//!   from the key type ([`JwtAlg::allowed`]): HS256/384/512 for `hmac` keys, EdDSA for Ed25519,
//!   ES256/ES384/ES512 for P-256/P-384/P-521, RS256/384/512 or PS256/384/512 for RSA (RS256
//!   unless `alg` asks otherwise). `kid` is `<name>:v<version>`.
//! * Verification trusts nothing in the token before it is checked: `alg` must be one the key's
//!   type signs with (so never `none`, and never an HMAC over a public key), `kid` must name a
//!   version of this key within `min_decryption_version ..= latest_version`, the signature must
//!   verify under that version, and `exp` / `nbf` must hold (with an optional `leeway`). Every
//!   failure is a 400 that says which check failed; a token never becomes a 500.
//! * The JWKS lists the public key of every live version (≥ `min_decryption_version`) with the
//!   same `kid`s, so any JOSE library can verify tokens from the JWKS alone. It is readable
//!   without a token only when the key is marked `jwks_public`.

use base64::Engine;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use super::asym::{RsaScheme, SaltLength};
use super::crypto::{HashAlg, KeyType};
use super::error::KeyOpError;
use super::key::TransitKey;
use super::signature::SignOptions;
use super::Transit;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};

/// A JWS algorithm (RFC 7518 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtAlg {
    EdDsa,
    Es256,
    Es384,
    Es512,
    Hs256,
    Hs384,
    Hs512,
    Ps256,
    Ps384,
    Ps512,
    Rs256,
    Rs384,
    Rs512,
}

impl JwtAlg {
    const ALL: [JwtAlg; 13] = [
        JwtAlg::EdDsa,
        JwtAlg::Es256,
        JwtAlg::Es384,
        JwtAlg::Es512,
        JwtAlg::Hs256,
        JwtAlg::Hs384,
        JwtAlg::Hs512,
        JwtAlg::Ps256,
        JwtAlg::Ps384,
        JwtAlg::Ps512,
        JwtAlg::Rs256,
        JwtAlg::Rs384,
        JwtAlg::Rs512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JwtAlg::EdDsa => "EdDSA",
            JwtAlg::Es256 => "ES256",
            JwtAlg::Es384 => "ES384",
            JwtAlg::Es512 => "ES512",
            JwtAlg::Hs256 => "HS256",
            JwtAlg::Hs384 => "HS384",
            JwtAlg::Hs512 => "HS512",
            JwtAlg::Ps256 => "PS256",
            JwtAlg::Ps384 => "PS384",
            JwtAlg::Ps512 => "PS512",
            JwtAlg::Rs256 => "RS256",
            JwtAlg::Rs384 => "RS384",
            JwtAlg::Rs512 => "RS512",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        JwtAlg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The algorithms a key type signs JWTs with; the first is the default.
    pub fn allowed(kt: KeyType) -> &'static [JwtAlg] {
        use JwtAlg as A;
        match kt {
            KeyType::Hmac => &[A::Hs256, A::Hs384, A::Hs512],
            KeyType::Ed25519 => &[A::EdDsa],
            KeyType::EcdsaP256 => &[A::Es256],
            KeyType::EcdsaP384 => &[A::Es384],
            KeyType::EcdsaP521 => &[A::Es512],
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                &[A::Rs256, A::Rs384, A::Rs512, A::Ps256, A::Ps384, A::Ps512]
            }
            _ => &[],
        }
    }

    /// The hash of the algorithm (SHA-256 for EdDSA, which does not use it).
    fn hash(self) -> HashAlg {
        use JwtAlg as A;
        match self {
            A::EdDsa | A::Es256 | A::Hs256 | A::Ps256 | A::Rs256 => HashAlg::Sha2_256,
            A::Es384 | A::Hs384 | A::Ps384 | A::Rs384 => HashAlg::Sha2_384,
            A::Es512 | A::Hs512 | A::Ps512 | A::Rs512 => HashAlg::Sha2_512,
        }
    }

    /// How transit signs for the algorithm: JWS `r ‖ s` for ECDSA, PKCS#1 v1.5 for RS*, PSS with
    /// a salt as long as the digest for PS* (RFC 7518 §3.5).
    fn options(self) -> SignOptions {
        let rsa = match self {
            JwtAlg::Ps256 | JwtAlg::Ps384 | JwtAlg::Ps512 => RsaScheme::Pss(SaltLength::EqualsHash),
            _ => RsaScheme::Pkcs1v15,
        };
        SignOptions { hash: self.hash(), prehashed: false, jws: true, rsa }
    }
}

/// base64url without padding.
pub fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// The `kid` of a key version.
pub fn kid(name: &str, version: i64) -> String {
    format!("{name}:v{version}")
}

/// A key that can make JWTs, or the caller's error.
fn jwt_key_type(key: &TransitKey) -> Result<KeyType> {
    let kt = key.supported_type()?;
    if JwtAlg::allowed(kt).is_empty() {
        return Err(Error::bad(format!("key type {kt} cannot sign JWTs")));
    }
    if key.derived {
        return Err(Error::bad(
            "JWTs need a key without derivation (a derived key has no single public key)",
        ));
    }
    Ok(kt)
}

/// The JWS signature of `signing_input` with version `ver`.
fn jws_signature(
    key: &TransitKey,
    kt: KeyType,
    alg: JwtAlg,
    ver: i64,
    signing_input: &[u8],
) -> Result<Vec<u8>> {
    if kt == KeyType::Hmac {
        let mac = alg.hash().hmac(key.hmac_key(ver)?, signing_input);
        return mac.ok_or_else(|| Error::internal("HMAC without a hash"));
    }
    Ok(key.sign_raw(ver, &[], signing_input, &alg.options())?.0)
}

/// The request's claims: a JSON object, or a string holding one.
fn claims(data: &Map<String, Value>) -> Result<Map<String, Value>> {
    match data.get("claims") {
        None | Some(Value::Null) => Err(Error::bad("missing claims")),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Error::bad("claims must be a JSON object")),
        },
        Some(_) => Err(Error::bad("claims must be a JSON object")),
    }
}

/// POST `jwt/sign/<name>`.
pub async fn sign(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let d = &req.data;
    let mut claims = claims(d)?;
    let ttl = fields::duration_secs(d, "ttl")?;
    let ver = fields::int_or(d, "key_version", 0)?;
    let alg = fields::string(d, "alg")?;
    let key = t.existing_key(req, name, "signing key not found").await?;
    let kt = jwt_key_type(&key)?;
    let alg = match alg.as_deref() {
        None | Some("") => JwtAlg::allowed(kt)[0],
        Some(a) => JwtAlg::from_name(a)
            .filter(|a| JwtAlg::allowed(kt).contains(a))
            .ok_or_else(|| Error::bad(format!("JWT algorithm {a:?} is not allowed for key type {kt}")))?,
    };
    if let Some(ttl) = ttl.filter(|t| *t > 0) {
        for c in ["exp", "iat"] {
            if claims.contains_key(c) {
                return Err(Error::bad(format!("claims already contain {c:?}; give either 'ttl' or '{c}'")));
            }
        }
        let now = req.now.unix_timestamp();
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))));
    }
    let ver = key.signing_version(ver)?;
    let kid = kid(name, ver);
    let header = json!({"alg": alg.name(), "kid": kid, "typ": "JWT"});
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(Value::Object(claims).to_string().as_bytes())
    );
    let sig = jws_signature(&key, kt, alg, ver, signing_input.as_bytes())?;
    let token = format!("{signing_input}.{}", b64url(&sig));
    Ok(Response::json(json!({"token": token, "kid": kid, "alg": alg.name(), "key_version": ver})))
}

/// A decoded JSON object of a token segment.
fn segment_object(segment: &str, what: &str) -> std::result::Result<Map<String, Value>, KeyOpError> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| KeyOpError::user(format!("invalid JWT: the {what} is not base64url")))?;
    match serde_json::from_slice(&raw) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(KeyOpError::user(format!("invalid JWT: the {what} is not a JSON object"))),
    }
}

/// A numeric date claim (`exp`, `nbf`), if present.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> std::result::Result<Option<f64>, KeyOpError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| KeyOpError::user(format!("invalid JWT: '{name}' is not a number"))),
    }
}

/// A token that passed every check.
struct Verified {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    version: i64,
}

/// Checks a token against `key`.
fn check_token(
    key: &TransitKey,
    name: &str,
    token: &str,
    now: i64,
    leeway: i64,
) -> std::result::Result<Verified, KeyOpError> {
    let kt = key.supported_type()?;
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return Err(KeyOpError::user("invalid JWT: a compact JWS has three dot-separated parts"));
    };
    let header = segment_object(h, "header")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = JwtAlg::from_name(alg)
        .filter(|a| JwtAlg::allowed(kt).contains(a))
        .ok_or_else(|| KeyOpError::user(format!("JWT algorithm {alg:?} is not allowed for key type {kt}")))?;
    if header.contains_key("crit") {
        return Err(KeyOpError::user("invalid JWT: critical header parameters are not supported"));
    }
    let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
    let ver = kid
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix(":v"))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 1)
        .ok_or_else(|| KeyOpError::user(format!("JWT kid {kid:?} does not name a version of key {name}")))?;
    if ver > key.latest_version {
        return Err(KeyOpError::user(format!("JWT kid {kid:?}: key version {ver} does not exist")));
    }
    if ver < key.min_decryption_version {
        return Err(KeyOpError::user(format!(
            "JWT signed by key version {ver}, which is below min_decryption_version {}; the version is retired",
            key.min_decryption_version
        )));
    }
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| KeyOpError::user("invalid JWT: the signature is not base64url"))?;
    let signing_input = &token[..h.len() + 1 + c.len()];
    let valid = if kt == KeyType::Hmac {
        let expected = alg.hash().hmac(key.hmac_key(ver)?, signing_input.as_bytes()).unwrap_or_default();
        bool::from(expected.ct_eq(&sig))
    } else {
        key.verify_raw(ver, &[], signing_input.as_bytes(), &sig, &alg.options())?
    };
    if !valid {
        return Err(KeyOpError::user("JWT signature does not verify"));
    }
    let claims = segment_object(c, "claims")?;
    let now = now as f64;
    if let Some(exp) = numeric_date(&claims, "exp")? {
        if now >= exp + leeway as f64 {
            return Err(KeyOpError::user(format!("JWT expired at {exp}")));
        }
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")? {
        if now + (leeway as f64) < nbf {
            return Err(KeyOpError::user(format!("JWT not valid before {nbf}")));
        }
    }
    Ok(Verified { header, claims, version: ver })
}

/// POST `jwt/verify/<name>`.
pub async fn verify(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    let d = &req.data;
    let Some(token) = fields::string(d, "token")?.filter(|s| !s.is_empty()) else {
        return Err(Error::bad("missing token"));
    };
    let leeway = fields::duration_secs(d, "leeway")?.unwrap_or(0);
    let key = t.existing_key(req, name, "signature verification key not found").await?;
    jwt_key_type(&key)?;
    let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
    let Verified { header, claims, version: ver } =
        check_token(&key, name, &token, req.now.unix_timestamp(), leeway)?;
    Ok(Response::json(json!({
        "valid": true,
        "header": header,
        "claims": claims,
        "kid": kid(name, ver),
        "key_version": ver,
    })))
}
