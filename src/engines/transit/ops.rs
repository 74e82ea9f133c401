//! Data operations: encrypt, decrypt, rewrap, datakey, hmac, sign, verify.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::batch::{self, Flags, Item, Require};
use super::crypto::{self, HashAlg, KeyType};
use super::error::{internal_visible, KeyOpError};
use super::key::{NewKey, TransitKey};
use super::keys::{read_config_keys, NEW_KEY_DEFAULTS};
use super::Transit;
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, Response};
use crate::policy::Operation;

/// `nonce` is refused everywhere: coffer has no convergent v1 keys, and for every other key
/// Vault rejects it (CVE-2023-4680). OpenBao ignores the field instead.
const NONCE_NOT_ALLOWED: &str = "nonce provided when not allowed";

/// A decoded plaintext, context or associated data.
type Secret = Zeroizing<Vec<u8>>;

/// A signature string and, for derived keys, the public key.
type Signed = (String, Option<Vec<u8>>);

fn flag(flags: &mut Flags, e: &KeyOpError) {
    if e.is_internal() {
        flags.internal_error = true;
    } else {
        flags.user_error = true;
    }
}

/// Single-mode items from the top-level fields.
fn single_item(data: &Map<String, Value>, main: &str) -> Result<Item> {
    Ok(Item {
        plaintext: Zeroizing::new(if main == "plaintext" {
            fields::string_or_empty(data, "plaintext")?
        } else {
            String::new()
        }),
        ciphertext: if main == "ciphertext" {
            fields::string_or_empty(data, "ciphertext")?
        } else {
            String::new()
        },
        context: fields::string_or_empty(data, "context")?,
        key_version: fields::int_or(data, "key_version", 0)?,
        associated_data: fields::string_or_empty(data, "associated_data")?,
        nonce: fields::string_or_empty(data, "nonce")?,
        reference: String::new(),
    })
}

fn check_context_consistency(items: &[Item]) -> Result<bool> {
    let set = !items[0].context.is_empty();
    if items.iter().any(|i| i.context.is_empty() == set) {
        return Err(Error::bad("context should be set either in all the request blocks or in none"));
    }
    Ok(set)
}

/// Decodes `associated_data` for an item; `Ok(None)` + item error when the type is not AEAD.
fn aad_for(
    p: &TransitKey,
    i: usize,
    item: &Item,
) -> std::result::Result<Option<Zeroizing<Vec<u8>>>, KeyOpError> {
    if item.associated_data.is_empty() {
        return Ok(Some(Zeroizing::new(Vec::new())));
    }
    match p.key_type() {
        Some(kt) if kt.is_aead() => {}
        _ => {
            let name = p.key_type().map(|k| k.name()).unwrap_or("[unknown]");
            return Err(KeyOpError::User(format!(
                "'[{i}].associated_data' provided for non-AEAD cipher suite {name}"
            )));
        }
    }
    // Bad base64 is the caller's mistake: 400 (OpenBao answers 500 with the same text).
    crypto::go_b64_secret(&item.associated_data).map(Some).map_err(|e| {
        KeyOpError::User(format!("unable to get associated_data/additional_data from factory[0]: {e}"))
    })
}

/// `encrypt/<name>`.
pub async fn encrypt(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    let data = &ctx.data;
    let raw = batch::raw(data);
    let mut items = batch::items_or(
        raw,
        |r| batch::decode_items(r, Require::Plaintext),
        || {
            if data.get("plaintext").is_none_or(Value::is_null) {
                return Err(Error::bad("missing plaintext to encrypt"));
            }
            single_item(data, "plaintext")
        },
    )?;
    if items.iter().any(|i| !i.nonce.is_empty()) {
        return Err(Error::bad(NONCE_NOT_ALLOWED));
    }
    let mut results: Vec<Map<String, Value>> = vec![Map::new(); items.len()];
    let mut errors: Vec<Option<String>> = vec![None; items.len()];
    let mut flags = Flags::default();
    let context_set = check_context_consistency(&items)?;
    let mut decoded: Vec<(Secret, Secret)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let pt = match crypto::go_b64_secret(&item.plaintext) {
            Ok(pt) => pt,
            Err(e) => {
                flags.user_error = true;
                errors[i] = Some(e.to_string());
                decoded.push(Default::default());
                continue;
            }
        };
        let c = match crypto::go_b64_secret(&item.context) {
            Ok(c) => c,
            Err(e) => {
                flags.user_error = true;
                errors[i] = Some(e.to_string());
                decoded.push(Default::default());
                continue;
            }
        };
        decoded.push((pt, c));
    }

    let (policy, created): (Arc<TransitKey>, bool) = if ctx.operation == Operation::Create {
        let convergent = fields::boolean_or(data, "convergent_encryption", false)?;
        if convergent && !context_set {
            return Err(Error::bad(
                "convergent encryption requires derivation to be enabled, so context is required",
            ));
        }
        let cfg = read_config_keys(&ctx.view).await?;
        let type_name = fields::string(data, "type")?.unwrap_or_else(|| "aes256-gcm96".into());
        let kind = match type_name.as_str() {
            "aes128-gcm96" | "aes256-gcm96" | "chacha20-poly1305" => KeyType::from_name(&type_name),
            "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" => {
                return Err(Error::bad(format!("key type {type_name} not supported for this operation")))
            }
            _ => None,
        };
        let Some(kind) = kind else { return Err(Error::bad(format!("unknown key type {type_name}"))) };
        if cfg.disable_upsert {
            match t.store().get(&ctx.view, name).await? {
                Some(p) => (p, false),
                None => return Err(Error::bad("encryption key not found")),
            }
        } else {
            let opts = NewKey { kind, derived: context_set, convergent, ..NEW_KEY_DEFAULTS };
            let now = ctx.now;
            let up = t
                .store()
                .upsert(&ctx.view, name, || TransitKey::create(name, &opts, now).map_err(Error::from))
                .await?;
            (up.key, up.created)
        }
    } else {
        match t.store().get(&ctx.view, name).await? {
            Some(p) => (p, true),
            None => return Err(Error::bad("encryption key not found")),
        }
    };

    for (i, item) in items.iter_mut().enumerate() {
        if errors[i].is_some() {
            flags.user_error = true;
            continue;
        }
        let aad = match aad_for(&policy, i, item) {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(e) => {
                if e.is_internal() {
                    flag(&mut flags, &e);
                }
                errors[i] = Some(e.message().to_owned());
                continue;
            }
        };
        let (pt, c) = &decoded[i];
        match policy.encrypt(item.key_version, c, pt, &aad) {
            Ok(ct) => {
                flags.success = true;
                let kv = if item.key_version == 0 { policy.latest_version } else { item.key_version };
                results[i].insert("ciphertext".into(), json!(ct));
                results[i].insert("key_version".into(), json!(kv));
            }
            Err(e) => {
                flag(&mut flags, &e);
                errors[i] = Some(e.message().to_owned());
            }
        }
    }
    let mut resp = if raw.is_some() {
        Response::json(json!({"batch_results": batch_results(results, errors, &items)}))
    } else {
        if let Some(e) = errors[0].take() {
            return Err(if flags.internal_error { internal_visible(e) } else { Error::BadRequest(e) });
        }
        Response::data(results.swap_remove(0))
    };
    if ctx.operation == Operation::Create && !created {
        resp.warnings.push(
            "Attempted creation of the key during the encrypt operation, but it was created beforehand"
                .into(),
        );
    }
    batch::respond(data, resp, &flags)
}

fn batch_results(results: Vec<Map<String, Value>>, errors: Vec<Option<String>>, items: &[Item]) -> Value {
    let out: Vec<Value> = results
        .into_iter()
        .zip(errors)
        .zip(items)
        .map(|((mut r, e), item)| {
            if let Some(e) = e {
                r.insert("error".into(), json!(e));
            }
            r.insert("reference".into(), json!(item.reference));
            Value::Object(r)
        })
        .collect();
    Value::Array(out)
}

/// `decrypt/<name>`.
pub async fn decrypt(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    let data = &ctx.data;
    let raw = batch::raw(data);
    let items = batch::items_or(
        raw,
        |r| batch::decode_items(r, Require::Ciphertext),
        || {
            let item = single_item(data, "ciphertext")?;
            if item.ciphertext.is_empty() {
                return Err(Error::bad("missing ciphertext to decrypt"));
            }
            Ok(item)
        },
    )?;
    if items.iter().any(|i| !i.nonce.is_empty()) {
        return Err(Error::bad(NONCE_NOT_ALLOWED));
    }
    let mut results: Vec<Map<String, Value>> = vec![Map::new(); items.len()];
    let mut errors: Vec<Option<String>> = vec![None; items.len()];
    let mut flags = Flags::default();
    check_context_consistency(&items)?;
    let mut contexts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if item.ciphertext.is_empty() {
            flags.user_error = true;
            errors[i] = Some("missing ciphertext to decrypt".into());
            contexts.push(Default::default());
            continue;
        }
        match crypto::go_b64_secret(&item.context) {
            Ok(c) => contexts.push(c),
            Err(e) => {
                flags.user_error = true;
                errors[i] = Some(e.to_string());
                contexts.push(Default::default());
            }
        }
    }
    let Some(policy) = t.store().get(&ctx.view, name).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    for (i, item) in items.iter().enumerate() {
        if errors[i].is_some() {
            continue;
        }
        let aad = match aad_for(&policy, i, item) {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(e) => {
                if e.is_internal() {
                    flag(&mut flags, &e);
                }
                errors[i] = Some(e.message().to_owned());
                continue;
            }
        };
        match policy.decrypt(&contexts[i], &item.ciphertext, &aad) {
            Ok(pt) => {
                flags.success = true;
                results[i].insert("plaintext".into(), json!(crypto::b64(&pt)));
            }
            Err(e) => {
                flag(&mut flags, &e);
                errors[i] = Some(e.message().to_owned());
            }
        }
    }
    let resp = if raw.is_some() {
        // Vault's decrypt items always carry `plaintext` (no `omitempty`).
        for r in &mut results {
            r.entry("plaintext").or_insert_with(|| json!(""));
        }
        Response::json(json!({"batch_results": batch_results(results, errors, &items)}))
    } else {
        if let Some(e) = errors[0].take() {
            return Err(if flags.internal_error { internal_visible(e) } else { Error::BadRequest(e) });
        }
        Response::data(results.swap_remove(0))
    };
    batch::respond(data, resp, &flags)
}

/// `rewrap/<name>`.
pub async fn rewrap(t: &Transit, ctx: &BackendRequest, name: &str) -> Result<Response> {
    let data = &ctx.data;
    let raw = batch::raw(data);
    let items = batch::items_or(
        raw,
        |r| batch::decode_items(r, Require::Nothing),
        || {
            let item = single_item(data, "ciphertext")?;
            if item.ciphertext.is_empty() {
                return Err(Error::bad("missing ciphertext to decrypt"));
            }
            Ok(item)
        },
    )?;
    if items.iter().any(|i| !i.nonce.is_empty()) {
        return Err(Error::bad(NONCE_NOT_ALLOWED));
    }
    let mut results: Vec<Map<String, Value>> = vec![Map::new(); items.len()];
    let mut errors: Vec<Option<String>> = vec![None; items.len()];
    let mut internal = false;
    check_context_consistency(&items)?;
    let mut contexts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match crypto::go_b64_secret(&item.context) {
            Ok(c) => contexts.push(c),
            Err(e) => {
                errors[i] = Some(e.to_string());
                contexts.push(Default::default());
            }
        }
    }
    let Some(policy) = t.store().get(&ctx.view, name).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    for (i, item) in items.iter().enumerate() {
        if errors[i].is_some() {
            continue;
        }
        if item.ciphertext.is_empty() {
            errors[i] = Some("missing ciphertext to decrypt".into());
            continue;
        }
        let pt = match policy.decrypt(&contexts[i], &item.ciphertext, &[]) {
            Ok(pt) => pt,
            Err(e) => {
                internal |= e.is_internal();
                errors[i] = Some(e.message().to_owned());
                continue;
            }
        };
        match policy.encrypt(item.key_version, &contexts[i], &pt, &[]) {
            Ok(ct) => {
                let kv = if item.key_version == 0 { policy.latest_version } else { item.key_version };
                results[i].insert("ciphertext".into(), json!(ct));
                results[i].insert("key_version".into(), json!(kv));
            }
            Err(e) => {
                internal |= e.is_internal();
                errors[i] = Some(e.message().to_owned());
            }
        }
    }
    if raw.is_some() {
        return Ok(Response::json(json!({"batch_results": batch_results(results, errors, &items)})));
    }
    if let Some(e) = errors[0].take() {
        return Err(if internal { internal_visible(e) } else { Error::BadRequest(e) });
    }
    Ok(Response::data(results.swap_remove(0)))
}

/// `datakey/<plaintext|wrapped>/<name>`.
pub async fn datakey(t: &Transit, ctx: &BackendRequest, kind: &str, name: &str) -> Result<Response> {
    let data = &ctx.data;
    let with_plaintext = match kind {
        "plaintext" => true,
        "wrapped" => false,
        _ => return Err(Error::bad("Invalid path, must be 'plaintext' or 'wrapped'")),
    };
    let context = crypto::go_b64_secret(&fields::string_or_empty(data, "context")?)
        .map_err(|_| Error::bad("failed to base64-decode context"))?;
    if !fields::string_or_empty(data, "nonce")?.is_empty() {
        return Err(Error::bad(NONCE_NOT_ALLOWED));
    }
    let Some(policy) = t.store().get(&ctx.view, name).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let len = match fields::int_or(data, "bits", 256)? {
        512 => 64,
        256 => 32,
        128 => 16,
        _ => return Err(Error::bad("invalid bit length")),
    };
    let item = Item { associated_data: fields::string_or_empty(data, "associated_data")?, ..Item::default() };
    let aad = match aad_for(&policy, 0, &item) {
        Ok(Some(a)) => a,
        Ok(None) => Zeroizing::new(Vec::new()),
        Err(e) => return Err(Error::from(e)),
    };
    let key = coffer_storage::keys::SecretBytes::random(len).map_err(Error::internal)?;
    let key_b64 = Zeroizing::new(crypto::b64(key.expose()));
    let ver = fields::int_or(data, "key_version", 0)?;
    let ct = policy.encrypt(ver, &context, key_b64.as_bytes(), &aad).map_err(Error::from)?;
    let kv = if ver == 0 { policy.latest_version } else { ver };
    let mut out = Map::new();
    out.insert("ciphertext".into(), json!(ct));
    out.insert("key_version".into(), json!(kv));
    if with_plaintext {
        out.insert("plaintext".into(), json!(*key_b64));
    }
    Ok(Response::data(out))
}

/// The hash algorithm from the URL, `hash_algorithm` or `algorithm` (in that order).
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

/// `hmac/<name>[/<algorithm>]`.
pub async fn hmac(t: &Transit, ctx: &BackendRequest, name: &str, url_alg: Option<&str>) -> Result<Response> {
    let data = &ctx.data;
    let mut ver = fields::int_or(data, "key_version", 0)?;
    let algorithm = algorithm_name(data, url_alg, &["algorithm"])?;
    let Some(policy) = t.store().get(&ctx.view, name).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    if ver == 0 {
        ver = policy.latest_version;
    } else if ver != policy.latest_version
        && policy.min_encryption_version > 0
        && ver < policy.min_encryption_version
    {
        return Err(Error::bad("cannot generate HMAC: version is too old (disallowed by policy)"));
    }
    let key = policy.hmac_key(ver)?;
    let Some(alg) = HashAlg::from_name(&algorithm) else {
        return Err(Error::bad("unsupported algorithm '\\x00'"));
    };
    if alg == HashAlg::None {
        return Err(Error::bad("algorithm cannot be none"));
    }
    let raw = batch::raw(data);
    let items = batch::items_or(
        raw,
        |r| batch::decode_string_maps(r),
        || {
            let Some(input) = fields::string(data, "input")? else {
                return Err(Error::bad("missing input for HMAC"));
            };
            let mut m = Map::new();
            m.insert("input".into(), json!(input));
            Ok(m)
        },
    )?;
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        let mut r = Map::new();
        match batch::get(item, "input") {
            None => {
                r.insert("error".into(), json!("missing input for HMAC"));
            }
            Some(input) => match crypto::go_b64_secret(input) {
                Err(e) => {
                    r.insert("error".into(), json!(format!("unable to decode input as base64: {e}")));
                }
                Ok(input) => {
                    let mac = alg.hmac(key, &input).unwrap_or_default();
                    r.insert("hmac".into(), json!(format!("vault:v{ver}:{}", crypto::b64(&mac))));
                }
            },
        }
        out.push(r);
    }
    if raw.is_some() {
        let results: Vec<Value> = out
            .into_iter()
            .zip(&items)
            .map(|(mut r, item)| {
                r.insert("reference".into(), json!(batch::get(item, "reference").unwrap_or("")));
                Value::Object(r)
            })
            .collect();
        return Ok(Response::json(json!({"batch_results": results})));
    }
    let r = out.swap_remove(0);
    if let Some(e) = r.get("error").and_then(Value::as_str) {
        return Err(Error::bad(e));
    }
    Ok(Response::data(r))
}

/// Signature options shared by sign and verify.
struct SigOptions {
    alg: HashAlg,
    jws: bool,
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
    match salt.to_lowercase().as_str() {
        "auto" | "hash" => {}
        other => match other.parse::<i64>() {
            Ok(n) if n >= -1 => {}
            Ok(n) => return Err(Error::bad(format!("salt length is invalid: {n}"))),
            Err(_) => {
                return Err(Error::bad(format!("salt length neither 'auto', 'hash', nor an int: {salt}")))
            }
        },
    }
    Ok(SigOptions { alg, jws })
}

fn check_none(data: &Map<String, Value>, o: &SigOptions) -> Result<()> {
    if o.alg == HashAlg::None {
        let prehashed = fields::boolean_or(data, "prehashed", false)?;
        let sig_alg = fields::string_or_empty(data, "signature_algorithm")?;
        if !prehashed || sig_alg != "pkcs1v15" {
            return Err(Error::bad(
                "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
            ));
        }
    }
    Ok(())
}

/// Re-encodes a `vault:vN:<std b64>` signature for JWS marshaling (base64url, no padding).
fn to_jws(sig: &str) -> String {
    use base64::Engine;
    match sig.rsplit_once(':') {
        Some((prefix, b)) => match crypto::go_b64_decode(b) {
            Ok(raw) => format!("{prefix}:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)),
            Err(_) => sig.to_owned(),
        },
        None => sig.to_owned(),
    }
}

/// `sign/<name>[/<hash_algorithm>]`.
pub async fn sign(t: &Transit, ctx: &BackendRequest, name: &str, url_alg: Option<&str>) -> Result<Response> {
    let data = &ctx.data;
    let ver = fields::int_or(data, "key_version", 0)?;
    let opts = sig_options(data, url_alg)?;
    let Some(policy) = t.store().get(&ctx.view, name).await? else {
        return Err(Error::bad("signing key not found"));
    };
    let kt = policy.key_type();
    if !kt.is_some_and(KeyType::signing_supported) {
        let n = kt.map(KeyType::name).unwrap_or("[unknown]");
        return Err(Error::bad(format!("key type {n} does not support signing")));
    }
    check_none(data, &opts)?;
    let raw = batch::raw(data);
    let items = batch::items_or(
        raw,
        |r| batch::decode_string_maps(r),
        || {
            let mut m = Map::new();
            m.insert("input".into(), json!(fields::string_or_empty(data, "input")?));
            m.insert("context".into(), json!(fields::string_or_empty(data, "context")?));
            Ok(m)
        },
    )?;
    let mut out = Vec::with_capacity(items.len());
    let mut single_err: Option<Error> = None;
    for item in &items {
        let mut r = Map::new();
        let res: std::result::Result<Signed, (String, bool)> = (|| {
            let input = batch::get(item, "input").ok_or(("missing input".to_owned(), true))?;
            let input = crypto::go_b64_secret(input)
                .map_err(|e| (format!("unable to decode input as base64: {e}"), true))?;
            let context = crypto::go_b64_secret(batch::get(item, "context").unwrap_or(""))
                .map_err(|_| ("failed to base64-decode context".to_owned(), true))?;
            // Version errors are the caller's (400); OpenBao answers them with 500.
            policy
                .sign(ver, &context, &input)
                .map(|s| (s.text, s.derived_public_key))
                .map_err(|e| (e.message().to_owned(), !e.is_internal()))
        })();
        match res {
            Ok((sig, public)) => {
                let sig = if opts.jws { to_jws(&sig) } else { sig };
                r.insert("signature".into(), json!(sig));
                if let Some(pk) = public {
                    r.insert("publickey".into(), json!(crypto::b64(&pk)));
                }
                r.insert("key_version".into(), json!(if ver == 0 { policy.latest_version } else { ver }));
            }
            Err((msg, is_request_error)) => {
                r.insert("key_version".into(), json!(0));
                if single_err.is_none() {
                    single_err = Some(if is_request_error {
                        Error::BadRequest(msg.clone())
                    } else {
                        internal_visible(&msg)
                    });
                }
                r.insert("error".into(), json!(msg));
            }
        }
        out.push(r);
    }
    if raw.is_some() {
        let results: Vec<Value> = out
            .into_iter()
            .zip(&items)
            .map(|(mut r, item)| {
                r.insert("reference".into(), json!(batch::get(item, "reference").unwrap_or("")));
                Value::Object(r)
            })
            .collect();
        return Ok(Response::json(json!({"batch_results": results})));
    }
    if let Some(e) = single_err {
        return Err(e);
    }
    let mut r = out.swap_remove(0);
    if let Some(pk) = r.remove("publickey") {
        r.insert("public_key".into(), pk);
    }
    Ok(Response::data(r))
}

/// `verify/<name>[/<hash_algorithm>]`: signatures, or HMACs when `hmac` is given.
pub async fn verify(
    t: &Transit,
    ctx: &BackendRequest,
    name: &str,
    url_alg: Option<&str>,
) -> Result<Response> {
    let data = &ctx.data;
    let raw = batch::raw(data);
    let items = batch::items_or(
        raw,
        |r| batch::decode_string_maps(r),
        || {
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
        },
    )?;
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
        return verify_hmac(t, ctx, name, url_alg, items, single).await;
    }
    let opts = sig_options(data, url_alg)?;
    let Some(policy) = t.store().get(&ctx.view, name).await? else {
        return Err(Error::bad("signature verification key not found"));
    };
    let kt = policy.key_type();
    if !kt.is_some_and(KeyType::signing_supported) {
        let n = kt.map(KeyType::name).unwrap_or("[unknown]");
        return Err(Error::bad(format!("key type {n} does not support verification")));
    }
    check_none(data, &opts)?;
    let mut out = Vec::with_capacity(items.len());
    let mut single_err = None;
    for item in &items {
        let mut r = Map::new();
        let res: std::result::Result<bool, KeyOpError> = (|| {
            let input = batch::get(item, "input").ok_or(KeyOpError::User("missing input".into()))?;
            let input = crypto::go_b64_secret(input)
                .map_err(|e| KeyOpError::User(format!("unable to decode input as base64: {e}")))?;
            let sig = batch::get(item, "signature").ok_or(KeyOpError::User("missing signature".into()))?;
            let context = crypto::go_b64_secret(batch::get(item, "context").unwrap_or(""))
                .map_err(|_| KeyOpError::User("failed to base64-decode context".into()))?;
            let sig = if opts.jws { from_jws(sig) } else { sig.to_owned() };
            policy.verify(&context, &input, &sig)
        })();
        match res {
            Ok(valid) => {
                r.insert("valid".into(), json!(valid));
            }
            Err(e) => {
                r.insert("valid".into(), json!(false));
                r.insert("error".into(), json!(e.message()));
                if single_err.is_none() {
                    single_err = Some(Error::from(e));
                }
            }
        }
        out.push(r);
    }
    if !single {
        let results: Vec<Value> = out
            .into_iter()
            .zip(&items)
            .map(|(mut r, item)| {
                r.insert("reference".into(), json!(batch::get(item, "reference").unwrap_or("")));
                Value::Object(r)
            })
            .collect();
        return Ok(Response::json(json!({"batch_results": results})));
    }
    if let Some(e) = single_err {
        return Err(e);
    }
    Ok(Response::data(out.swap_remove(0)))
}

/// A JWS-marshaled signature back to standard base64 (so one parser serves both).
fn from_jws(sig: &str) -> String {
    use base64::Engine;
    match sig.rsplit_once(':') {
        Some((prefix, b)) => match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b) {
            Ok(raw) => format!("{prefix}:{}", crypto::b64(&raw)),
            Err(_) => format!("{prefix}:!"),
        },
        None => sig.to_owned(),
    }
}

async fn verify_hmac(
    t: &Transit,
    ctx: &BackendRequest,
    name: &str,
    url_alg: Option<&str>,
    items: Vec<Map<String, Value>>,
    single: bool,
) -> Result<Response> {
    let algorithm = algorithm_name(&ctx.data, url_alg, &["algorithm"])?;
    let Some(policy) = t.store().get(&ctx.view, name).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let Some(alg) = HashAlg::from_name(&algorithm) else {
        return Err(Error::bad("unsupported algorithm '\\x00'"));
    };
    if alg == HashAlg::None {
        return Err(Error::bad("algorithm cannot be none"));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        let mut r = Map::new();
        let res: std::result::Result<bool, String> = (|| {
            let input = batch::get(item, "input").ok_or("missing input")?;
            let input =
                crypto::go_b64_secret(input).map_err(|e| format!("unable to decode input as base64: {e}"))?;
            let mac = batch::get(item, "hmac").ok_or("missing hmac")?;
            let rest = mac.strip_prefix("vault:v").ok_or("invalid HMAC to verify: no prefix")?;
            let (v, b) = rest.split_once(':').ok_or("invalid HMAC: wrong number of fields")?;
            let ver = super::cipher::go_atoi(v).ok_or("invalid HMAC: version number could not be decoded")?;
            let given = crypto::go_b64_decode(b)
                .map_err(|e| format!("unable to decode verification HMAC as base64: {e}"))?;
            if ver > policy.latest_version {
                return Err("invalid HMAC: version is too new".into());
            }
            if policy.min_decryption_version > 0 && ver < policy.min_decryption_version {
                return Err("cannot verify HMAC: version is too old (disallowed by policy)".into());
            }
            let key = policy.hmac_key(ver).map_err(|e| e.message().to_owned())?;
            let mac = alg.hmac(key, &input).unwrap_or_default();
            Ok(subtle::ConstantTimeEq::ct_eq(mac.as_slice(), given.as_slice()).into())
        })();
        match res {
            Ok(valid) => {
                if valid {
                    r.insert("valid".into(), json!(true));
                }
            }
            Err(e) => {
                if single {
                    return Err(Error::BadRequest(e));
                }
                r.insert("error".into(), json!(e));
            }
        }
        out.push(r);
    }
    if !single {
        let results: Vec<Value> = out
            .into_iter()
            .zip(&items)
            .map(|(mut r, item)| {
                r.insert("reference".into(), json!(batch::get(item, "reference").unwrap_or("")));
                Value::Object(r)
            })
            .collect();
        return Ok(Response::json(json!({"batch_results": results})));
    }
    let valid = out[0].contains_key("valid");
    Ok(Response::json(json!({"valid": valid})))
}
