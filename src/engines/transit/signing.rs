//! `hmac`, `sign` and `verify` (signatures, or HMACs when `hmac` is given).
//!
//! Each takes one item from the top-level fields or a `batch_input` list of string maps; every
//! item is processed on its own and a batch answers `batch_results` with each item's
//! `reference`. Inputs are base64 and are zeroized once decoded; HMACs are compared in constant
//! time.

use coffer_storage::keys::SecretVec;
use serde_json::{json, Map, Value};

use super::asym::{RsaScheme, SaltLength};
use super::batch;
use super::cipher::go_atoi;
use super::crypto::{self, HashAlg, KeyType};
use super::error::KeyOpError;
use super::key::TransitKey;
use super::signature::{SignOptions, Signature};
use super::{Transit, KEY_NOT_FOUND};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};

/// `hmac/<name>[/<algorithm>]`.
pub async fn hmac(t: &Transit, req: &BackendRequest, name: &str, url_alg: Option<&str>) -> Result<Response> {
    let data = &req.data;
    let mut ver = fields::int_or(data, "key_version", 0)?;
    let algorithm = algorithm_name(data, url_alg, &["algorithm"])?;
    let key = t.existing_key(req, name, KEY_NOT_FOUND).await?;
    if ver == 0 {
        ver = key.latest_version;
    } else if ver != key.latest_version && key.min_encryption_version > 0 && ver < key.min_encryption_version
    {
        return Err(Error::bad("cannot generate HMAC: version is too old (disallowed by policy)"));
    }
    let hmac_key = key.hmac_key(ver)?;
    let alg = hmac_algorithm(&algorithm)?;
    let raw = batch::raw(data);
    let items = batch::items_or(raw, batch::decode_string_maps, || {
        let Some(input) = fields::string(data, "input")? else {
            return Err(Error::bad("missing input for HMAC"));
        };
        let mut m = Map::new();
        m.insert("input".into(), json!(input));
        Ok(m)
    })?;
    let mut results = Vec::with_capacity(items.len());
    for item in &items {
        match decoded_input(item, "missing input for HMAC") {
            Ok(input) => {
                let mac = alg.hmac(hmac_key, input.expose()).unwrap_or_default();
                results.push(single_field("hmac", json!(format!("vault:v{ver}:{}", crypto::b64(&mac)))));
            }
            Err(e) if raw.is_none() => return Err(e.into()),
            Err(e) => results.push(single_field("error", json!(e.message()))),
        }
    }
    if raw.is_some() {
        return Ok(batch::results_with_references(results, &items));
    }
    // Without `batch_input` there is exactly one item.
    Ok(Response::data(results.swap_remove(0)))
}

/// `sign/<name>[/<hash_algorithm>]`.
pub async fn sign(t: &Transit, req: &BackendRequest, name: &str, url_alg: Option<&str>) -> Result<Response> {
    let data = &req.data;
    let ver = fields::int_or(data, "key_version", 0)?;
    let opts = sig_options(data, url_alg)?;
    let key = t.existing_key(req, name, "signing key not found").await?;
    require_signing(&key, "signing")?;
    check_none(&opts)?;
    let opts = opts.for_key(&key)?;
    let raw = batch::raw(data);
    let items = batch::items_or(raw, batch::decode_string_maps, || {
        let mut m = Map::new();
        m.insert("input".into(), json!(fields::string_or_empty(data, "input")?));
        m.insert("context".into(), json!(fields::string_or_empty(data, "context")?));
        Ok(m)
    })?;
    let used_version = if ver == 0 { key.latest_version } else { ver };
    let mut results = Vec::with_capacity(items.len());
    for item in &items {
        let mut r = Map::new();
        match sign_item(&key, ver, item, &opts) {
            Ok(Signature { text, derived_public_key }) => {
                r.insert("signature".into(), json!(text));
                if let Some(pk) = derived_public_key {
                    // The batch field is `publickey`; a single answer calls it `public_key`.
                    let field = if raw.is_some() { "publickey" } else { "public_key" };
                    r.insert(field.into(), json!(crypto::b64(&pk)));
                }
                r.insert("key_version".into(), json!(used_version));
            }
            // Version errors are the caller's (400); OpenBao answers them with 500.
            Err(e) if raw.is_none() => return Err(e.into()),
            Err(e) => {
                r.insert("key_version".into(), json!(0));
                r.insert("error".into(), json!(e.message()));
            }
        }
        results.push(r);
    }
    if raw.is_some() {
        return Ok(batch::results_with_references(results, &items));
    }
    // Without `batch_input` there is exactly one item.
    Ok(Response::data(results.swap_remove(0)))
}

/// One signature: `input` and `context` are base64.
fn sign_item(
    key: &TransitKey,
    ver: i64,
    item: &Map<String, Value>,
    opts: &SignOptions,
) -> std::result::Result<Signature, KeyOpError> {
    let input = decoded_input(item, "missing input")?;
    let context = decoded_context(item)?;
    key.sign(ver, context.expose(), input.expose(), opts)
}

/// `verify/<name>[/<hash_algorithm>]`: signatures, or HMACs when `hmac` is given.
pub async fn verify(
    t: &Transit,
    req: &BackendRequest,
    name: &str,
    url_alg: Option<&str>,
) -> Result<Response> {
    let data = &req.data;
    let raw = batch::raw(data);
    let items = batch::items_or(raw, batch::decode_string_maps, || {
        let mut m = Map::new();
        m.insert("input".into(), json!(fields::string_or_empty(data, "input")?));
        if let Some(s) = fields::string(data, "signature")? {
            m.insert("signature".into(), json!(s));
        }
        if let Some(h) = fields::string(data, "hmac")? {
            m.insert("hmac".into(), json!(h));
        }
        m.insert("context".into(), json!(fields::string_or_empty(data, "context")?));
        Ok(m)
    })?;
    let (mut sig_found, mut hmac_found, mut missing) = (false, false, false);
    for it in &items {
        if it.contains_key("signature") {
            sig_found = true;
        } else if it.contains_key("hmac") {
            hmac_found = true;
        } else {
            missing = true;
        }
    }
    let single = raw.is_none();
    if single && sig_found && hmac_found {
        return Err(Error::bad("provide one of 'signature' or 'hmac'"));
    }
    if single && !sig_found && !hmac_found {
        return Err(Error::bad("neither a 'signature' nor an 'hmac' were given to verify"));
    }
    if sig_found && hmac_found {
        return Err(Error::bad("elements of batch_input must all provide 'signature' or all provide 'hmac'"));
    }
    if missing && sig_found {
        return Err(Error::bad("some elements of batch_input are missing 'signature'"));
    }
    if missing && hmac_found {
        return Err(Error::bad("some elements of batch_input are missing 'hmac'"));
    }
    if missing {
        return Err(Error::bad("no batch_input elements have 'signature' or 'hmac'"));
    }
    if hmac_found {
        return verify_hmac(t, req, name, url_alg, &items, single).await;
    }
    let opts = sig_options(data, url_alg)?;
    let key = t.existing_key(req, name, "signature verification key not found").await?;
    require_signing(&key, "verification")?;
    check_none(&opts)?;
    let opts = opts.for_key(&key)?;
    let mut results = Vec::with_capacity(items.len());
    for item in &items {
        match verify_item(&key, &opts, item) {
            Ok(valid) => results.push(single_field("valid", json!(valid))),
            Err(e) if single => return Err(e.into()),
            Err(e) => {
                let mut r = single_field("valid", json!(false));
                r.insert("error".into(), json!(e.message()));
                results.push(r);
            }
        }
    }
    if !single {
        return Ok(batch::results_with_references(results, &items));
    }
    // Without `batch_input` there is exactly one item.
    Ok(Response::data(results.swap_remove(0)))
}

/// One signature check: `input` and `context` are base64, `signature` is Vault's string form.
fn verify_item(
    key: &TransitKey,
    opts: &SignOptions,
    item: &Map<String, Value>,
) -> std::result::Result<bool, KeyOpError> {
    let input = decoded_input(item, "missing input")?;
    let sig = batch::get(item, "signature").ok_or_else(|| KeyOpError::user("missing signature"))?;
    let context = decoded_context(item)?;
    key.verify(context.expose(), input.expose(), sig, opts)
}

/// `verify` with `hmac`: every failure is the caller's.
async fn verify_hmac(
    t: &Transit,
    req: &BackendRequest,
    name: &str,
    url_alg: Option<&str>,
    items: &[Map<String, Value>],
    single: bool,
) -> Result<Response> {
    let algorithm = algorithm_name(&req.data, url_alg, &["algorithm"])?;
    let key = t.existing_key(req, name, KEY_NOT_FOUND).await?;
    let alg = hmac_algorithm(&algorithm)?;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        match verify_hmac_item(&key, alg, item) {
            Ok(true) => results.push(single_field("valid", json!(true))),
            Ok(false) => results.push(Map::new()),
            Err(e) if single => return Err(e.into()),
            Err(e) => results.push(single_field("error", json!(e.message()))),
        }
    }
    if !single {
        return Ok(batch::results_with_references(results, items));
    }
    let valid = results.first().is_some_and(|r| r.contains_key("valid"));
    Ok(Response::json(json!({"valid": valid})))
}

/// One HMAC check: `input` is base64, `hmac` is `vault:v<N>:<base64>`.
fn verify_hmac_item(
    key: &TransitKey,
    alg: HashAlg,
    item: &Map<String, Value>,
) -> std::result::Result<bool, KeyOpError> {
    let input = decoded_input(item, "missing input")?;
    let mac = batch::get(item, "hmac").ok_or_else(|| KeyOpError::user("missing hmac"))?;
    let rest =
        mac.strip_prefix("vault:v").ok_or_else(|| KeyOpError::user("invalid HMAC to verify: no prefix"))?;
    let (v, b) =
        rest.split_once(':').ok_or_else(|| KeyOpError::user("invalid HMAC: wrong number of fields"))?;
    let ver =
        go_atoi(v).ok_or_else(|| KeyOpError::user("invalid HMAC: version number could not be decoded"))?;
    let given = crypto::go_b64_decode(b)
        .map_err(|e| KeyOpError::user(format!("unable to decode verification HMAC as base64: {e}")))?;
    if ver > key.latest_version {
        return Err(KeyOpError::user("invalid HMAC: version is too new"));
    }
    if key.min_decryption_version > 0 && ver < key.min_decryption_version {
        return Err(KeyOpError::user("cannot verify HMAC: version is too old (disallowed by policy)"));
    }
    let expected = alg.hmac(key.hmac_key(ver)?, input.expose()).unwrap_or_default();
    Ok(subtle::ConstantTimeEq::ct_eq(expected.as_slice(), given.as_slice()).into())
}

/// An item's base64 `input`; `missing` is the text when there is none.
fn decoded_input(item: &Map<String, Value>, missing: &str) -> std::result::Result<SecretVec, KeyOpError> {
    let input = batch::get(item, "input").ok_or_else(|| KeyOpError::user(missing))?;
    crypto::go_b64_secret(input)
        .map_err(|e| KeyOpError::user(format!("unable to decode input as base64: {e}")))
}

/// An item's base64 `context` (absent = empty).
fn decoded_context(item: &Map<String, Value>) -> std::result::Result<SecretVec, KeyOpError> {
    crypto::go_b64_secret(batch::get(item, "context").unwrap_or(""))
        .map_err(|_| KeyOpError::user("failed to base64-decode context"))
}

/// A map with one field.
fn single_field(name: &str, value: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(name.into(), value);
    m
}

/// The hash algorithm from the URL, then the given fields in order; `sha2-256` by default.
fn algorithm_name(data: &Map<String, Value>, url: Option<&str>, fields_in_order: &[&str]) -> Result<String> {
    if let Some(a) = url.filter(|a| !a.is_empty()) {
        return Ok(a.to_owned());
    }
    for f in fields_in_order {
        if let Some(a) = fields::string(data, f)?.filter(|a| !a.is_empty()) {
            return Ok(a);
        }
    }
    Ok("sha2-256".into())
}

/// The algorithm of an HMAC (Vault's text for an unknown one, as it prints it).
fn hmac_algorithm(name: &str) -> Result<HashAlg> {
    match HashAlg::from_name(name) {
        None => Err(Error::bad("unsupported algorithm '\\x00'")),
        Some(HashAlg::None) => Err(Error::bad("algorithm cannot be none")),
        Some(alg) => Ok(alg),
    }
}

/// A 400 unless the key signs (`action`: `signing` or `verification`).
fn require_signing(key: &TransitKey, action: &str) -> Result<()> {
    let kt = key.key_type();
    if kt.is_some_and(KeyType::signing_supported) {
        return Ok(());
    }
    let n = kt.map(KeyType::name).unwrap_or("[unknown]");
    Err(Error::bad(format!("key type {n} does not support {action}")))
}

/// Signature options shared by sign and verify, before the key is known.
struct SigOptions {
    alg: HashAlg,
    jws: bool,
    prehashed: bool,
    /// `None` for a `signature_algorithm` other than `pss` / `pkcs1v15` (refused for RSA keys).
    rsa: Option<RsaScheme>,
    signature_algorithm: String,
}

impl SigOptions {
    /// The options for `key`: an unknown `signature_algorithm` is refused only for RSA keys.
    fn for_key(&self, key: &TransitKey) -> Result<SignOptions> {
        let rsa = match self.rsa {
            Some(rsa) => rsa,
            None if key.key_type().and_then(KeyType::rsa_bits).is_some() => {
                return Err(Error::bad(format!(
                    "unsupported rsa signature algorithm {}",
                    self.signature_algorithm
                )))
            }
            None => RsaScheme::Pkcs1v15,
        };
        Ok(SignOptions { hash: self.alg, prehashed: self.prehashed, jws: self.jws, rsa })
    }
}

fn sig_options(data: &Map<String, Value>, url_alg: Option<&str>) -> Result<SigOptions> {
    let name = algorithm_name(data, url_alg, &["hash_algorithm", "algorithm"])?;
    let Some(alg) = HashAlg::from_name(&name) else {
        return Err(Error::bad(format!("invalid hash algorithm \"{name}\"")));
    };
    let marshaling = fields::string(data, "marshaling_algorithm")?.unwrap_or_else(|| "asn1".into());
    let jws = match marshaling.as_str() {
        "asn1" => false,
        "jws" => true,
        other => return Err(Error::bad(format!("invalid marshaling type \"{other}\""))),
    };
    let salt = fields::string(data, "salt_length")?.unwrap_or_else(|| "auto".into());
    let salt = match salt.to_lowercase().as_str() {
        "auto" => SaltLength::Auto,
        "hash" => SaltLength::EqualsHash,
        other => match other.parse::<i64>() {
            Ok(n) => match SaltLength::from_go(n) {
                Some(s) => s,
                None => return Err(Error::bad(format!("salt length is invalid: {n}"))),
            },
            Err(_) => {
                return Err(Error::bad(format!("salt length neither 'auto', 'hash', nor an int: {salt}")))
            }
        },
    };
    let prehashed = fields::boolean_or(data, "prehashed", false)?;
    let signature_algorithm = fields::string_or_empty(data, "signature_algorithm")?;
    let rsa = match signature_algorithm.as_str() {
        "" | "pss" => Some(RsaScheme::Pss(salt)),
        "pkcs1v15" => Some(RsaScheme::Pkcs1v15),
        _ => None,
    };
    Ok(SigOptions { alg, jws, prehashed, rsa, signature_algorithm })
}

/// `hash_algorithm=none` is only for prehashed PKCS#1 v1.5 signatures.
fn check_none(o: &SigOptions) -> Result<()> {
    if o.alg == HashAlg::None && (!o.prehashed || o.signature_algorithm != "pkcs1v15") {
        return Err(Error::bad(
            "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
        ));
    }
    Ok(())
}
