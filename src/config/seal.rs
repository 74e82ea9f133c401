//! The `seal` block: how the root key is protected.
//!
//! No block means Shamir unseal keys. OpenBao's `seal "static"` takes a 32-byte key from
//! `env:`, `file:` or the file itself (see `secret.rs`); its `previous_key` is accepted for
//! rotation but not used yet (with a warning). Key material is loaded into [`UnsealKey`]s, which
//! zeroize; no message contains it.

use coffer_storage::keys::UnsealKey;

use super::error::ConfigError;
use super::raw::{self, RawSeal, RawStaticSeal};
use super::secret::{self, Resolver};

/// How the root key is protected.
#[derive(Debug)]
pub enum SealConfig {
    /// No `seal` block: operators unseal with Shamir shares.
    Shamir,
    /// OpenBao's `seal "static"`: a 32-byte key from the environment or a file.
    Static(StaticSeal),
}

/// A `seal "static"` block with its key material loaded.
#[derive(Debug)]
pub struct StaticSeal {
    pub current_key_id: String,
    pub current_key: UnsealKey,
    /// The key being rotated away from, if any.
    pub previous: Option<PreviousKey>,
}

/// `previous_key_id` and `previous_key`.
#[derive(Debug)]
pub struct PreviousKey {
    pub key_id: String,
    pub key: UnsealKey,
}

/// Checks the `seal` blocks (at most one).
pub fn check_seal(
    raw: Option<Vec<RawSeal>>,
    r: &Resolver<'_>,
    warnings: &mut Vec<String>,
) -> Result<SealConfig, ConfigError> {
    let mut blocks = raw.unwrap_or_default();
    if blocks.len() > 1 {
        return Err(ConfigError::setting(
            "seal",
            format!("only one seal block is allowed, found {}", blocks.len()),
        ));
    }
    match blocks.pop() {
        None => Ok(SealConfig::Shamir),
        Some(RawSeal::Static(s)) => check_static_seal(s, r, warnings).map(SealConfig::Static),
    }
}

/// A `seal "static"` block: the key ids and the keys, loaded and checked against each other.
fn check_static_seal(
    s: RawStaticSeal,
    r: &Resolver<'_>,
    warnings: &mut Vec<String>,
) -> Result<StaticSeal, ConfigError> {
    const P: &str = "seal.static";
    if s.disabled.map(|f| f.0).unwrap_or(false) {
        return Err(ConfigError::setting(
            &format!("{P}.disabled"),
            "seal migration is not supported; remove the seal block or disabled",
        ));
    }
    let id = |k: &str, t: Option<raw::Text>| -> Result<Option<String>, ConfigError> {
        match t {
            Some(t) if t.0.trim().is_empty() => {
                Err(ConfigError::setting(&format!("{P}.{k}"), "must not be empty"))
            }
            other => Ok(other.map(|t| t.0)),
        }
    };
    let current_key_id = id("current_key_id", s.current_key_id)?.ok_or_else(|| {
        ConfigError::setting(
            &format!("{P}.current_key_id"),
            "required (a permanent identifier for current_key)",
        )
    })?;
    let previous_key_id = id("previous_key_id", s.previous_key_id)?;
    let load = |k: &str, v: &raw::SecretText, warnings: &mut Vec<String>| -> Result<UnsealKey, ConfigError> {
        let key = format!("{P}.{k}");
        if v.0.trim().is_empty() {
            return Err(ConfigError::setting(&key, "must not be empty"));
        }
        let bytes = r.resolve(&key, &v.0, warnings)?;
        secret::decode_key(&key, &bytes)
    };
    let current_key = match &s.current_key {
        Some(v) => load("current_key", v, warnings)?,
        None => {
            return Err(ConfigError::setting(
                &format!("{P}.current_key"),
                "required (env:NAME, file:PATH or the key itself)",
            ))
        }
    };
    let previous = match (previous_key_id, &s.previous_key) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::setting(
                &format!("{P}.previous_key"),
                "required when previous_key_id is set",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::setting(
                &format!("{P}.previous_key_id"),
                "required when previous_key is set",
            ))
        }
        (Some(key_id), Some(v)) => {
            let key = load("previous_key", v, warnings)?;
            let same_key = current_key.ct_eq(key.expose());
            if same_key && key_id != current_key_id {
                return Err(ConfigError::setting(
                    P,
                    "current_key and previous_key are the same key with different ids",
                ));
            }
            if !same_key && key_id == current_key_id {
                return Err(ConfigError::setting(
                    P,
                    "current_key and previous_key differ but have the same id",
                ));
            }
            warnings.push(format!(
                "{P}.previous_key: seal key rotation is not implemented yet; only current_key unseals"
            ));
            Some(PreviousKey { key_id, key })
        }
    };
    Ok(StaticSeal { current_key_id, current_key, previous })
}
