//! `random` and `hash`, served both by transit and by `sys/tools/*` (Vault's shared helpers).

use serde_json::{json, Map, Value};

use super::crypto::{self, HashAlg};
use crate::core::error::{Error, Result};
use crate::core::fields;
use crate::core::request::Response;

/// Largest `bytes` accepted (exclusive bound is 128 KiB, as Vault).
pub const MAX_RANDOM: i64 = 128 * 1024;

const SOURCES: &[&str] = &["platform", "seal", "all"];

/// Splits the URL tail of `random[/<source>][/<bytes>]` into (source, bytes).
pub fn random_url_parts(tail: &str) -> (Option<&str>, Option<&str>) {
    let parts: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        [] => (None, None),
        [one] if SOURCES.contains(one) => (Some(one), None),
        [one] => (None, Some(one)),
        [s, b, ..] => (Some(s), Some(b)),
    }
}

/// `random`: `bytes`, `format`, `source` (URL segments win).
pub fn random(
    data: &Map<String, Value>,
    url_source: Option<&str>,
    url_bytes: Option<&str>,
) -> Result<Response> {
    let mut warnings = Vec::new();
    let mut bytes = fields::int_or(data, "bytes", 32)?;
    if let Some(b) = url_bytes {
        bytes = b.parse::<i64>().map_err(|_| {
            Error::bad(format!(
                "error parsing url-set byte count: strconv.Atoi: parsing \"{b}\": invalid syntax"
            ))
        })?;
    }
    let format = fields::string(data, "format")?.unwrap_or_else(|| "base64".into());
    if data.contains_key("source") {
        warnings.push(
            "Endpoint replaced the value of these parameters with the values captured from the endpoint's path: [source]"
                .to_owned(),
        );
    }
    let source = url_source.unwrap_or("platform");
    if bytes < 1 {
        return Err(Error::bad("'bytes' cannot be less than 1"));
    }
    if bytes > MAX_RANDOM {
        return Err(Error::bad(format!("'bytes' should be less than {MAX_RANDOM}")));
    }
    if format != "hex" && format != "base64" {
        return Err(Error::bad(format!(
            "unsupported encoding format \"{format}\"; must be \"hex\" or \"base64\""
        )));
    }
    match source {
        "platform" | "all" => {}
        "seal" => {
            warnings.push("no seal/entropy augmentation available, using platform entropy source".into())
        }
        other => {
            return Err(Error::bad(format!(
                "unsupported entropy source \"{other}\"; must be \"platform\" or \"seal\", or \"all\""
            )))
        }
    }
    let buf = coffer_storage::keys::SecretBytes::random(bytes as usize).map_err(Error::internal)?;
    let out = if format == "hex" { hex::encode(buf.expose()) } else { crypto::b64(buf.expose()) };
    let mut resp = Response::json(json!({"random_bytes": out}));
    resp.warnings = warnings;
    Ok(resp)
}

/// `hash[/<algorithm>]`: `input` (base64), `algorithm`, `format`.
pub fn hash(data: &Map<String, Value>, url_alg: Option<&str>) -> Result<Response> {
    let input = fields::string_or_empty(data, "input")?;
    if input.is_empty() {
        return Err(Error::bad("input missing"));
    }
    let format = fields::string(data, "format")?.unwrap_or_else(|| "hex".into());
    let algorithm = match url_alg.filter(|a| !a.is_empty()) {
        Some(a) => a.to_owned(),
        None => fields::string(data, "algorithm")?.unwrap_or_else(|| "sha2-256".into()),
    };
    let input = crypto::go_b64_secret(&input)
        .map_err(|e| Error::bad(format!("unable to decode input as base64: {e}")))?;
    if format != "hex" && format != "base64" {
        return Err(Error::bad(format!(
            "unsupported encoding format {format}; must be \"hex\" or \"base64\""
        )));
    }
    let alg = match HashAlg::from_name(&algorithm) {
        Some(a) if !matches!(a, HashAlg::None | HashAlg::Sha1) => a,
        _ => return Err(Error::bad(format!("unsupported algorithm {algorithm}"))),
    };
    let sum = alg.digest(input.expose()).unwrap_or_default();
    let out = if format == "hex" { hex::encode(sum) } else { crypto::b64(&sum) };
    Ok(Response::json(json!({"sum": out})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts() {
        assert_eq!(random_url_parts(""), (None, None));
        assert_eq!(random_url_parts("16"), (None, Some("16")));
        assert_eq!(random_url_parts("seal"), (Some("seal"), None));
        assert_eq!(random_url_parts("seal/4"), (Some("seal"), Some("4")));
    }

    #[test]
    fn hash_known_answer() {
        let d = json!({"input": "aGVsbG8="}).as_object().cloned().unwrap();
        let r = hash(&d, None).unwrap();
        assert_eq!(
            r.data.unwrap()["sum"],
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
