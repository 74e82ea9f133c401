//! `encrypt`, `decrypt`, `rewrap` and `datakey`.
//!
//! Encrypt, decrypt and rewrap share one path ([`process`]): the request's items (each element
//! of `batch_input`, or one item built from the top-level fields) are decoded, the key is loaded
//! (encrypt may create it), each item is processed on its own with its [`ItemOp`], and the answer
//! is either `batch_results` (one entry per item, in order, echoing its `reference`) or the single
//! item's data or error. The batch status follows [`batch::respond`] for encrypt and decrypt;
//! rewrap answers 200 whatever its items did, as Vault does.
//!
//! A client-supplied `nonce` is refused on every one of them ([`NONCE_NOT_ALLOWED`]). Decoded
//! plaintexts, contexts and associated data are zeroized when dropped.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use coffer_storage::keys::SecretVec;

use super::batch::{self, Flags, Item, Require};
use super::cipher::Keyed;
use super::crypto::{self, KeyType};
use super::error::{internal_visible, KeyOpError};
use super::key::{NewKey, TransitKey};
use super::mount_config::read_config_keys;
use super::{Transit, KEY_NOT_FOUND};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::{BackendRequest, DataJson, Response};
use crate::policy::Operation;

/// `nonce` is refused everywhere: coffer has no convergent v1 keys, and for every other key
/// Vault rejects it (CVE-2023-4680). OpenBao ignores the field instead.
const NONCE_NOT_ALLOWED: &str = "nonce provided when not allowed";

/// Vault's text for an item (or request) without a ciphertext.
const MISSING_CIPHERTEXT: &str = "missing ciphertext to decrypt";

/// `encrypt/<name>`.
pub async fn encrypt(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    process(t, req, name, ItemOp::Encrypt).await
}

/// `decrypt/<name>`.
pub async fn decrypt(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    process(t, req, name, ItemOp::Decrypt).await
}

/// `rewrap/<name>`.
pub async fn rewrap(t: &Transit, req: &BackendRequest, name: &str) -> Result<Response> {
    process(t, req, name, ItemOp::Rewrap).await
}

/// What is done to each item of an encrypt, decrypt or rewrap request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ItemOp {
    Decrypt,
    Encrypt,
    Rewrap,
}

/// The fields of a request without `batch_input`, decoded weakly (numbers become strings), as
/// Vault's field data does.
struct SingleFields<'a> {
    plaintext: Cow<'a, str>,
    ciphertext: Cow<'a, str>,
    context: Cow<'a, str>,
    key_version: i64,
    associated_data: Cow<'a, str>,
    nonce: Cow<'a, str>,
}

impl SingleFields<'_> {
    fn item(&self) -> Item<'_> {
        Item {
            plaintext: &self.plaintext,
            ciphertext: &self.ciphertext,
            context: &self.context,
            key_version: self.key_version,
            associated_data: &self.associated_data,
            nonce: &self.nonce,
            reference: "",
        }
    }
}

/// One item's decoded inputs.
struct Decoded {
    /// Encrypt only (empty otherwise): decoded into the buffer it is encrypted in.
    plaintext: crypto::Framed,
    context: SecretVec,
}

/// How one item failed.
enum ItemError {
    /// A bad `associated_data`: reported in the item only; it does not change the batch status.
    AssociatedData(KeyOpError),
    /// The operation failed: counted in the batch status as the caller's or the server's fault.
    Failed(KeyOpError),
}

impl From<KeyOpError> for ItemError {
    fn from(e: KeyOpError) -> Self {
        ItemError::Failed(e)
    }
}

impl ItemOp {
    /// What every `batch_input` element must carry.
    fn required(self) -> Require {
        match self {
            ItemOp::Decrypt => Require::Ciphertext,
            ItemOp::Encrypt => Require::Plaintext,
            ItemOp::Rewrap => Require::Nothing,
        }
    }

    /// The top-level fields of a request without `batch_input` (its one item).
    fn single_fields(self, data: &Map<String, Value>) -> Result<SingleFields<'_>> {
        let encrypt = self == ItemOp::Encrypt;
        if encrypt && data.get("plaintext").is_none_or(Value::is_null) {
            return Err(Error::bad("missing plaintext to encrypt"));
        }
        let none = || Cow::Borrowed("");
        let plaintext = if encrypt { fields::str_or_empty(data, "plaintext")? } else { none() };
        let ciphertext = if encrypt { none() } else { fields::str_or_empty(data, "ciphertext")? };
        let single = SingleFields {
            plaintext,
            ciphertext,
            context: fields::str_or_empty(data, "context")?,
            key_version: fields::int_or(data, "key_version", 0)?,
            associated_data: fields::str_or_empty(data, "associated_data")?,
            nonce: fields::str_or_empty(data, "nonce")?,
        };
        if !encrypt && single.ciphertext.is_empty() {
            return Err(Error::bad(MISSING_CIPHERTEXT));
        }
        Ok(single)
    }

    /// Decodes an item's base64 fields (before the key is loaded); every failure is the caller's.
    fn decode(self, item: &Item<'_>) -> std::result::Result<Decoded, KeyOpError> {
        let no_plaintext = crypto::Framed::default;
        match self {
            ItemOp::Encrypt => {
                let plaintext = crypto::go_b64_framed(item.plaintext)?;
                Ok(Decoded { plaintext, context: crypto::go_b64_secret(item.context)? })
            }
            ItemOp::Decrypt => {
                if item.ciphertext.is_empty() {
                    return Err(KeyOpError::user(MISSING_CIPHERTEXT));
                }
                Ok(Decoded { plaintext: no_plaintext(), context: crypto::go_b64_secret(item.context)? })
            }
            ItemOp::Rewrap => {
                let context = crypto::go_b64_secret(item.context)?;
                if item.ciphertext.is_empty() {
                    return Err(KeyOpError::user(MISSING_CIPHERTEXT));
                }
                Ok(Decoded { plaintext: no_plaintext(), context })
            }
        }
    }

    /// Processes item `index` under `key`; what a success produced.
    fn apply(
        self,
        keyed: &mut Keyed<'_>,
        index: usize,
        item: &Item<'_>,
        input: Decoded,
    ) -> std::result::Result<Produced, ItemError> {
        let key = keyed.key();
        let version = |asked: i64| if asked == 0 { key.latest_version } else { asked };
        match self {
            ItemOp::Encrypt => {
                let aad =
                    associated_data(key, index, item.associated_data).map_err(ItemError::AssociatedData)?;
                let key_version = version(item.key_version);
                let ciphertext = keyed.encrypt_framed(
                    item.key_version,
                    input.context.expose(),
                    input.plaintext,
                    aad.expose(),
                )?;
                Ok(Produced::Ciphertext { ciphertext, key_version })
            }
            ItemOp::Decrypt => {
                let aad =
                    associated_data(key, index, item.associated_data).map_err(ItemError::AssociatedData)?;
                Ok(Produced::Plaintext(keyed.decrypt(
                    input.context.expose(),
                    item.ciphertext,
                    aad.expose(),
                )?))
            }
            ItemOp::Rewrap => {
                // Rewrap ignores `associated_data`, as Vault does.
                let key_version = version(item.key_version);
                let pt = keyed.decrypt(input.context.expose(), item.ciphertext, &[])?;
                let ciphertext = keyed.encrypt(item.key_version, input.context.expose(), pt.expose(), &[])?;
                Ok(Produced::Ciphertext { ciphertext, key_version })
            }
        }
    }
}

/// `ciphertext` and the `key_version` it was made with (0 asked = the latest).
fn insert_ciphertext(out: &mut Map<String, Value>, key: &TransitKey, asked: i64, ct: String) {
    let version = if asked == 0 { key.latest_version } else { asked };
    out.insert("ciphertext".into(), Value::String(ct));
    out.insert("key_version".into(), json!(version));
}

/// What one item produced.
enum Produced {
    /// Decrypt: the plaintext, written in base64.
    Plaintext(SecretVec),
    /// Encrypt and rewrap: the ciphertext and the key version it was made with (the latest
    /// when 0 was asked).
    Ciphertext { ciphertext: String, key_version: i64 },
}

impl Produced {
    /// The fields of a request without `batch_input`.
    fn into_map(self) -> Map<String, Value> {
        let mut out = Map::new();
        match self {
            Produced::Plaintext(pt) => {
                out.insert("plaintext".into(), Value::String(crypto::b64(pt.expose())));
            }
            Produced::Ciphertext { ciphertext, key_version } => {
                out.insert("ciphertext".into(), Value::String(ciphertext));
                out.insert("key_version".into(), json!(key_version));
            }
        }
        out
    }
}

/// The one path of encrypt, decrypt and rewrap.
async fn process(t: &Transit, req: &BackendRequest, name: &str, op: ItemOp) -> Result<Response> {
    let data = &req.data;
    let raw = batch::raw(data);
    let single = match raw {
        None => Some(op.single_fields(data)?),
        Some(_) => None,
    };
    let items = batch::items_or(
        raw,
        |r| batch::decode_items(r, op.required()),
        || single.as_ref().map(SingleFields::item).ok_or_else(|| Error::internal("no single item")),
    )?;
    if items.iter().any(|i| !i.nonce.is_empty()) {
        return Err(Error::bad(NONCE_NOT_ALLOWED));
    }
    let context_set = check_context_consistency(&items)?;
    let mut flags = Flags::default();
    let decoded: Vec<_> = items.iter().map(|item| op.decode(item)).collect();
    flags.user_error = decoded.iter().any(std::result::Result::is_err);
    let (key, existed_on_create) = match op {
        ItemOp::Encrypt => encryption_key(t, req, name, context_set).await?,
        ItemOp::Decrypt | ItemOp::Rewrap => (t.existing_key(req, name, KEY_NOT_FOUND).await?, false),
    };
    let mut outcomes = Vec::with_capacity(items.len());
    let mut keyed = Keyed::new(&key);
    for (i, (item, input)) in items.iter().zip(decoded).enumerate() {
        let outcome = match input.map_err(ItemError::Failed).and_then(|d| op.apply(&mut keyed, i, item, d)) {
            Ok(produced) => {
                flags.success = true;
                Ok(produced)
            }
            Err(ItemError::AssociatedData(e)) => Err(e.to_string()),
            Err(ItemError::Failed(e)) => {
                if e.is_internal() {
                    flags.internal_error = true;
                } else {
                    flags.user_error = true;
                }
                Err(e.to_string())
            }
        };
        outcomes.push(outcome);
    }
    let mut resp = if raw.is_some() {
        Response::data_json(batch_results(op, &outcomes, &items))
    } else {
        // Without `batch_input` there is exactly one item.
        match outcomes.swap_remove(0) {
            Ok(produced) => Response::data(produced.into_map()),
            Err(e) if flags.internal_error => return Err(internal_visible(e)),
            Err(e) => return Err(Error::BadRequest(e)),
        }
    };
    if existed_on_create {
        resp.warnings.push(
            "Attempted creation of the key during the encrypt operation, but it was created beforehand"
                .into(),
        );
    }
    match op {
        ItemOp::Rewrap => Ok(resp),
        ItemOp::Decrypt | ItemOp::Encrypt => batch::respond(data, resp, &flags),
    }
}

/// Every item has a `context`, or none has; whether they have.
fn check_context_consistency(items: &[Item<'_>]) -> Result<bool> {
    let Some(first) = items.first() else { return Ok(false) };
    let set = !first.context.is_empty();
    if items.iter().any(|i| i.context.is_empty() == set) {
        return Err(Error::bad("context should be set either in all the request blocks or in none"));
    }
    Ok(set)
}

/// `{"batch_results":[...]}`: each item's fields or `error`, and its `reference`, written
/// straight into one buffer (a plaintext is base64-encoded into it, with no `String` or `Value`
/// per item). The keys of each item come out sorted, as a map writes them (tested against the
/// map form).
fn batch_results(
    op: ItemOp,
    outcomes: &[std::result::Result<Produced, String>],
    items: &[Item<'_>],
) -> DataJson {
    use crate::util::json::write_str;
    // Base64 is 4/3 of its input; a ciphertext and an error are written as they are.
    let estimate: usize = outcomes
        .iter()
        .zip(items)
        .map(|(o, item)| {
            48 + item.reference.len()
                + match o {
                    Ok(Produced::Plaintext(pt)) => pt.len().div_ceil(3) * 4,
                    Ok(Produced::Ciphertext { ciphertext, .. }) => ciphertext.len(),
                    Err(e) => e.len(),
                }
        })
        .sum();
    let mut json = DataJson::with_capacity(20 + estimate);
    let out = json.writer();
    out.extend_from_slice(b"{\"batch_results\":[");
    for (i, (outcome, item)) in outcomes.iter().zip(items).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        match outcome {
            Ok(Produced::Ciphertext { ciphertext, key_version }) => {
                out.extend_from_slice(b"\"ciphertext\":");
                write_str(out, ciphertext);
                out.extend_from_slice(b",\"key_version\":");
                // serde_json's integer formatting, straight into the buffer (cannot fail on a Vec).
                let _ = serde_json::to_writer(&mut *out, key_version);
                out.push(b',');
            }
            Ok(Produced::Plaintext(pt)) => {
                // Base64 needs no escaping.
                out.extend_from_slice(b"\"plaintext\":\"");
                crypto::b64_append_bytes(pt.expose(), out);
                out.extend_from_slice(b"\",");
            }
            Err(e) => {
                out.extend_from_slice(b"\"error\":");
                write_str(out, e);
                // Vault's decrypt items always carry `plaintext` (no `omitempty`).
                out.extend_from_slice(if op == ItemOp::Decrypt { b",\"plaintext\":\"\"," } else { b"," });
            }
        }
        out.extend_from_slice(b"\"reference\":");
        write_str(out, item.reference);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    json
}

/// The key of an encrypt request: an update needs an existing key; a create (the core's
/// existence check found none) makes one unless `config/keys` disables upserts. The flag is
/// true when a create found the key already there.
async fn encryption_key(
    t: &Transit,
    req: &BackendRequest,
    name: &str,
    context_set: bool,
) -> Result<(Arc<TransitKey>, bool)> {
    if req.operation != Operation::Create {
        return Ok((t.existing_key(req, name, KEY_NOT_FOUND).await?, false));
    }
    let data = &req.data;
    let convergent = fields::boolean_or(data, "convergent_encryption", false)?;
    if convergent && !context_set {
        return Err(Error::bad(
            "convergent encryption requires derivation to be enabled, so context is required",
        ));
    }
    let cfg = read_config_keys(&req.view).await?;
    let type_name = fields::string(data, "type")?.unwrap_or_else(|| "aes256-gcm96".into());
    let kind = match type_name.as_str() {
        "aes128-gcm96" | "aes256-gcm96" | "chacha20-poly1305" | "xchacha20-poly1305" => {
            KeyType::from_name(&type_name)
        }
        "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" => {
            return Err(Error::bad(format!("key type {type_name} not supported for this operation")))
        }
        _ => None,
    };
    let Some(kind) = kind else { return Err(Error::bad(format!("unknown key type {type_name}"))) };
    if cfg.disable_upsert {
        return Ok((t.existing_key(req, name, KEY_NOT_FOUND).await?, true));
    }
    let opts = NewKey { kind, derived: context_set, convergent, ..NewKey::DEFAULTS };
    let now = req.now;
    let create = || TransitKey::create(name, &opts, now).map_err(Error::from);
    let up = t.store().upsert(&req.view, name, create).await?;
    Ok((up.key, !up.created))
}

/// Decodes `associated_data` (item `index`); only AEAD key types take it.
fn associated_data(key: &TransitKey, index: usize, text: &str) -> std::result::Result<SecretVec, KeyOpError> {
    if text.is_empty() {
        return Ok(SecretVec::default());
    }
    match key.key_type() {
        Some(kt) if kt.is_aead() => {}
        other => {
            let name = other.map(KeyType::name).unwrap_or("[unknown]");
            return Err(KeyOpError::user(format!(
                "'[{index}].associated_data' provided for non-AEAD cipher suite {name}"
            )));
        }
    }
    // Bad base64 is the caller's mistake: 400 (OpenBao answers 500 with the same text).
    crypto::go_b64_secret(text).map_err(|e| {
        KeyOpError::user(format!("unable to get associated_data/additional_data from factory[0]: {e}"))
    })
}

/// `datakey/<plaintext|wrapped>/<name>`.
pub async fn datakey(t: &Transit, req: &BackendRequest, kind: &str, name: &str) -> Result<Response> {
    let data = &req.data;
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
    let key = t.existing_key(req, name, KEY_NOT_FOUND).await?;
    let len = match fields::int_or(data, "bits", 256)? {
        512 => 64,
        256 => 32,
        128 => 16,
        _ => return Err(Error::bad("invalid bit length")),
    };
    let aad = associated_data(&key, 0, &fields::string_or_empty(data, "associated_data")?)?;
    let data_key = coffer_storage::keys::SecretBytes::random(len).map_err(Error::internal)?;
    let data_key_b64 = Zeroizing::new(crypto::b64(data_key.expose()));
    let ver = fields::int_or(data, "key_version", 0)?;
    let ct = key.encrypt(ver, context.expose(), data_key_b64.as_bytes(), aad.expose())?;
    let mut out = Map::new();
    insert_ciphertext(&mut out, &key, ver, ct);
    if with_plaintext {
        out.insert("plaintext".into(), json!(*data_key_b64));
    }
    Ok(Response::data(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map form the batch results had before they were written directly: each item's
    /// fields (or `error`), decrypt's empty `plaintext`, and `reference`.
    fn as_map(op: ItemOp, outcomes: Vec<std::result::Result<Produced, String>>, items: &[Item<'_>]) -> Value {
        let results = outcomes
            .into_iter()
            .zip(items)
            .map(|(outcome, item)| {
                let (mut r, error) = match outcome {
                    Ok(p) => (p.into_map(), None),
                    Err(e) => (Map::new(), Some(e)),
                };
                if op == ItemOp::Decrypt {
                    r.entry("plaintext").or_insert_with(|| Value::String(String::new()));
                }
                if let Some(e) = error {
                    r.insert("error".into(), Value::String(e));
                }
                r.insert("reference".into(), Value::String(item.reference.to_owned()));
                Value::Object(r)
            })
            .collect::<Vec<_>>();
        json!({ "batch_results": results })
    }

    fn outcomes(op: ItemOp) -> Vec<std::result::Result<Produced, String>> {
        (0..7usize)
            .map(|i| match i % 3 {
                0 => Err(format!("bad \"item\" {i}\n\\ \u{1}")),
                _ if op == ItemOp::Decrypt => {
                    Ok(Produced::Plaintext(SecretVec::from_vec(vec![i as u8; i * 7])))
                }
                _ => Ok(Produced::Ciphertext {
                    ciphertext: format!("vault:v{i}:{}", "QUJD".repeat(i)),
                    key_version: i as i64 - 3,
                }),
            })
            .collect()
    }

    /// The batch results written directly are byte for byte the JSON of their map form, for
    /// every operation, with errors and references that need escaping.
    #[test]
    fn batch_results_are_written_as_their_map_form() {
        let refs = ["", "r1", "quote \" back \\ nl \n", "ünï", "\u{7f}\u{1f}", "x", ""];
        let items: Vec<Item<'_>> = refs.iter().map(|r| Item { reference: r, ..Item::default() }).collect();
        for op in [ItemOp::Decrypt, ItemOp::Encrypt, ItemOp::Rewrap] {
            let written = batch_results(op, &outcomes(op), &items).json().to_vec();
            let mut expected = Vec::new();
            crate::util::json::write_value(&mut expected, &as_map(op, outcomes(op), &items));
            assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(expected).unwrap());
        }
        // Empty plaintexts and a single item.
        let one = [Item { reference: "only", ..Item::default() }];
        let empty = || vec![Ok(Produced::Plaintext(SecretVec::default()))];
        let written = batch_results(ItemOp::Decrypt, &empty(), &one).json().to_vec();
        let mut expected = Vec::new();
        crate::util::json::write_value(&mut expected, &as_map(ItemOp::Decrypt, empty(), &one));
        assert_eq!(written, expected);
        assert_eq!(
            String::from_utf8(written).unwrap(),
            r#"{"batch_results":[{"plaintext":"","reference":"only"}]}"#
        );
    }
}
