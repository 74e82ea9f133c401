//! Secret IDs: the secret type, the stored record, and the parameters of their generation.
//!
//! A secret ID is never stored or logged: records live under an HMAC of it (see
//! [`store`](super::store)), and the value exists in memory only inside [`SecretId`], which
//! zeroizes on drop and prints `[redacted]`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::cidr;
use super::role::{duration_field, RoleEntry, MAX_HMAC_INPUT};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::util::timefmt::{rfc3339_nano, GO_ZERO_TIME};

/// Format version of stored secret ID records.
pub const SECRET_ID_VERSION: u8 = 1;

/// A secret ID as presented by a client or just generated. No `Clone`, no `PartialEq`.
pub struct SecretId(Zeroizing<String>);

impl SecretId {
    /// Wraps a secret ID string (trimmed, as Vault trims it at login).
    pub fn new(s: &str) -> Self {
        Self(Zeroizing::new(s.trim().to_owned()))
    }

    /// A fresh random secret ID (UUID v4 from the OS CSPRNG).
    pub fn generate() -> Self {
        Self(Zeroizing::new(uuid::Uuid::new_v4().to_string()))
    }

    /// True when no secret ID was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The value, to HMAC it or to hand a freshly created secret ID to the caller who asked for
    /// it (the only two declassifications).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A stored secret ID (without the secret ID itself).
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretIdEntry {
    /// Format version ([`SECRET_ID_VERSION`]).
    pub v: u8,
    pub accessor: String,
    /// Remaining uses; 0 = unlimited.
    pub num_uses: u64,
    /// TTL in seconds as requested (0 = none); the expiry uses the value capped to the mount max.
    pub ttl: u64,
    /// Unix nanoseconds.
    pub creation_ns: i128,
    /// Unix nanoseconds; `None` = never expires.
    pub expiration_ns: Option<i128>,
    pub last_updated_ns: i128,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
}

impl fmt::Debug for SecretIdEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretIdEntry")
            .field("accessor", &self.accessor)
            .field("num_uses", &self.num_uses)
            .finish_non_exhaustive()
    }
}

fn time_str(ns: i128) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ns)
        .map(rfc3339_nano)
        .unwrap_or_else(|_| GO_ZERO_TIME.to_owned())
}

impl SecretIdEntry {
    /// True once the secret ID has expired at `now`.
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        matches!(self.expiration_ns, Some(t) if now.unix_timestamp_nanos() >= t)
    }

    /// The `data` of a lookup (vaultrs needs lists, never null).
    pub fn lookup_data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("cidr_list".into(), json!(self.cidr_list));
        m.insert("creation_time".into(), json!(time_str(self.creation_ns)));
        m.insert(
            "expiration_time".into(),
            json!(self.expiration_ns.map(time_str).unwrap_or_else(|| GO_ZERO_TIME.to_owned())),
        );
        m.insert("last_updated_time".into(), json!(time_str(self.last_updated_ns)));
        m.insert("metadata".into(), json!(self.metadata));
        m.insert("secret_id_accessor".into(), json!(self.accessor));
        m.insert("secret_id_num_uses".into(), json!(self.num_uses));
        m.insert("secret_id_ttl".into(), json!(self.ttl));
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        m
    }
}

/// Why secret ID metadata was refused; the texts are Vault's and never contain the metadata.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// A `k=v` list with a pair that is not `k=v`.
    #[error("failed to parse the input: invalid <key,value> format")]
    Format,
    /// A `k=v` pair with an empty key or value.
    #[error("failed to parse the input: invalid <key,value> pair")]
    Pair,
    /// A JSON object with an empty value for `key`.
    #[error("invalid value for key {0:?}")]
    EmptyValue(String),
}

/// Parses secret ID metadata as Vault's `strutil.ParseArbitraryKeyValues`: the string may be
/// base64 of the real input; the input is a JSON object of strings or `k=v,k2=v2` (keys and
/// values then lower-cased, as Vault does). Errors carry Vault's text without the metadata.
pub fn parse_metadata(input: &str) -> Result<BTreeMap<String, String>, MetadataError> {
    let trimmed = input.trim();
    let mut out = BTreeMap::new();
    if trimmed.is_empty() {
        return Ok(out);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let text = decoded.as_deref().unwrap_or(trimmed);
    match serde_json::from_str::<Option<BTreeMap<String, String>>>(text) {
        Ok(m) => out = m.unwrap_or_default(),
        Err(_) => {
            let mut pairs: Vec<String> =
                text.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect();
            pairs.sort();
            pairs.dedup();
            for kv in pairs {
                let shards: Vec<&str> = kv.split('=').collect();
                let [k, v] = shards.as_slice() else {
                    return Err(MetadataError::Format);
                };
                let (k, v) = (k.trim(), v.trim());
                if k.is_empty() || v.is_empty() {
                    return Err(MetadataError::Pair);
                }
                out.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    if let Some((k, _)) = out.iter().find(|(k, v)| !k.is_empty() && v.is_empty()) {
        return Err(MetadataError::EmptyValue(k.clone()));
    }
    Ok(out)
}

/// The checked parameters of `secret-id` / `custom-secret-id`.
#[derive(Debug)]
pub struct NewSecretId {
    pub num_uses: u64,
    pub ttl: u64,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
}

impl NewSecretId {
    /// Parses and checks a generation body against `role` (Vault's `handleRoleSecretIDCommon`
    /// order, after the role lookup and the `bind_secret_id` check).
    pub fn parse(d: &Map<String, Value>, role: &RoleEntry) -> Result<Self> {
        // Framework-level conversions first.
        let metadata_raw = fields::string(d, "metadata")?.unwrap_or_default();
        let cidr_list = fields::comma_strings(d, "cidr_list")?.unwrap_or_default();
        let token_bound_cidrs = fields::comma_strings(d, "token_bound_cidrs")?.unwrap_or_default();
        let num_uses = fields::int(d, "num_uses")?;
        let ttl = duration_field(d, "ttl")?;

        if !cidr_list.is_empty() {
            cidr::validate_blocks(&cidr_list)
                .map_err(|e| Error::bad(format!("failed to validate CIDR blocks: {e}")))?;
        }
        cidr::verify_subset(&cidr_list, &role.secret_id_bound_cidrs)?;
        if !token_bound_cidrs.is_empty() {
            cidr::validate_blocks(&token_bound_cidrs)
                .map_err(|e| Error::bad(format!("failed to validate token CIDR blocks: {e}")))?;
        }
        cidr::verify_subset(&token_bound_cidrs, &role.token_bound_cidrs)?;

        let role_uses = role.secret_id_num_uses;
        let num_uses = match num_uses {
            None => role_uses,
            Some(n) if n < 0 => return Err(Error::bad("num_uses cannot be negative")),
            Some(n) => {
                let n = n as u64;
                if role_uses > 0 && (n == 0 || n > role_uses) {
                    return Err(Error::bad("num_uses cannot be higher than the role's secret_id_num_uses"));
                }
                n
            }
        };
        let role_ttl = role.secret_id_ttl;
        let ttl = match ttl {
            None => role_ttl,
            Some(t) => {
                if role_ttl > 0 && (t == 0 || t > role_ttl) {
                    return Err(Error::bad("ttl cannot be longer than the role's secret_id_ttl"));
                }
                t
            }
        };
        let metadata = parse_metadata(&metadata_raw)
            .map_err(|e| Error::bad(format!("failed to parse metadata: {e}")))?;
        let cidr_list = cidr_list.iter().map(|s| s.trim().to_owned()).collect();
        let token_bound_cidrs = token_bound_cidrs.iter().map(|s| s.trim().to_owned()).collect();
        Ok(Self { num_uses, ttl, metadata, cidr_list, token_bound_cidrs })
    }
}

/// Checks a custom secret ID's size (Vault's HMAC input limit).
pub fn check_custom(secret: &SecretId) -> Result<()> {
    if secret.len() > MAX_HMAC_INPUT {
        return Err(Error::bad(format!(
            "failed to create HMAC of secret ID: value is longer than maximum of {MAX_HMAC_INPUT} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_forms() {
        let m = parse_metadata("{\"a\":\"val1\",\"B\":\"x\"}").unwrap();
        assert_eq!(m["a"], "val1");
        assert_eq!(m["B"], "x");
        let b64 = base64::engine::general_purpose::STANDARD.encode("{\"k\":\"v\"}");
        assert_eq!(parse_metadata(&b64).unwrap()["k"], "v");
        let m = parse_metadata("a=1, B=Two").unwrap();
        assert_eq!((m["a"].as_str(), m["b"].as_str()), ("1", "two"));
        assert!(parse_metadata("").unwrap().is_empty());
        assert!(parse_metadata("null").unwrap().is_empty());
        assert_eq!(
            parse_metadata("{bad").unwrap_err().to_string(),
            "failed to parse the input: invalid <key,value> format"
        );
        // Vault decodes into map[string]string: numbers are refused.
        assert!(parse_metadata("{\"n\":5}").is_err());
        assert_eq!(parse_metadata("{\"k\":\"\"}").unwrap_err().to_string(), "invalid value for key \"k\"");
        assert!(parse_metadata("a=").is_err());
    }

    fn role(v: Value) -> RoleEntry {
        let mut r = RoleEntry::new("r", "id".into());
        super::super::role::RoleUpdate::parse(v.as_object().unwrap())
            .unwrap()
            .apply(&mut r, true, 1 << 30)
            .unwrap();
        r
    }

    fn gen(r: &RoleEntry, v: Value) -> Result<NewSecretId> {
        NewSecretId::parse(v.as_object().unwrap(), r)
    }

    #[test]
    fn generation_rules() {
        let r = role(json!({"secret_id_num_uses": 3, "secret_id_ttl": "10m",
                            "secret_id_bound_cidrs": "127.0.0.0/8", "token_bound_cidrs": "127.0.0.1,10.0.0.0/8"}));
        let s = gen(&r, json!({})).unwrap();
        assert_eq!((s.num_uses, s.ttl), (3, 600));
        let e = |v| gen(&r, v).unwrap_err().to_string();
        assert_eq!(e(json!({"num_uses": 5})), "num_uses cannot be higher than the role's secret_id_num_uses");
        assert_eq!(e(json!({"num_uses": 0})), "num_uses cannot be higher than the role's secret_id_num_uses");
        assert_eq!(e(json!({"num_uses": -1})), "num_uses cannot be negative");
        assert_eq!(e(json!({"ttl": "20m"})), "ttl cannot be longer than the role's secret_id_ttl");
        assert_eq!(e(json!({"ttl": 0})), "ttl cannot be longer than the role's secret_id_ttl");
        assert!(e(json!({"cidr_list": "10.0.0.0/8"})).starts_with("failed to verify subset relationship"));
        assert_eq!(
            e(json!({"cidr_list": "bogus"})),
            "failed to validate CIDR blocks: invalid CIDR address: bogus"
        );
        assert!(e(json!({"token_bound_cidrs": "192.168.0.0/16"})).starts_with("failed to verify subset"));
        assert!(e(json!({"metadata": "{bad"})).starts_with("failed to parse metadata: "));
        let s = gen(
            &r,
            json!({"num_uses": 2, "ttl": 60, "cidr_list": ["127.0.0.1/32"],
                               "token_bound_cidrs": "10.1.0.0/16", "metadata": "{\"a\":\"b\"}"}),
        )
        .unwrap();
        assert_eq!((s.num_uses, s.ttl), (2, 60));
        assert_eq!(s.cidr_list, vec!["127.0.0.1/32"]);
        assert_eq!(s.metadata["a"], "b");
        // A role without limits accepts any values.
        let free = role(json!({}));
        assert_eq!(gen(&free, json!({"num_uses": 9, "ttl": 5})).unwrap().num_uses, 9);
    }

    #[test]
    fn secret_ids_are_redacted() {
        let s = SecretId::generate();
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.len(), 36);
        assert_eq!(SecretId::new("  x ").expose(), "x");
    }
}
