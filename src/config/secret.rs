//! Secret-bearing settings: where the secret comes from and how a key is decoded.
//!
//! A secret setting holds one of
//!
//! - `env:NAME` (or OpenBao's `env://NAME`): the environment variable `NAME`;
//! - `file:PATH` (or OpenBao's `file://PATH`, so `file:///etc/coffer/unseal.key` works): the file's
//!   contents. A relative path is relative to the configuration file's directory. The file must
//!   not be accessible by group or others (garage's `secrets.rs` rule), else it is refused;
//! - anything else: the secret itself, written in the configuration file. Then the configuration
//!   file is held to the same permission rule, and a warning recommends `env:` or `file:`.
//!
//! The static seal key is 32 bytes, accepted (as OpenBao's static seal does) as exactly 32 raw
//! bytes, or as text (surrounding whitespace trimmed) of 64 hex digits, standard base64 (44
//! characters) or unpadded URL-safe base64 (43 characters). Buffers holding key material are
//! zeroized; no message ever contains it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use coffer_storage::keys::{UnsealKey, KEY_LEN};
use zeroize::Zeroizing;

use super::error::ConfigError;

/// Where a secret setting points.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretRef<'a> {
    Env(&'a str),
    File(&'a str),
    Inline,
}

impl<'a> SecretRef<'a> {
    /// Reads the prefix of a setting (`env:`, `env://`, `file:`, `file://`).
    pub fn parse(value: &'a str) -> SecretRef<'a> {
        if let Some(rest) = value.strip_prefix("env:") {
            SecretRef::Env(rest.strip_prefix("//").unwrap_or(rest))
        } else if let Some(rest) = value.strip_prefix("file:") {
            SecretRef::File(rest.strip_prefix("//").unwrap_or(rest))
        } else {
            SecretRef::Inline
        }
    }
}

/// What resolving a secret needs from the outside world; tests substitute the environment.
pub struct Resolver<'a> {
    /// Directory relative `file:` paths are resolved against.
    pub base_dir: &'a Path,
    /// The configuration file, for the inline-secret permission check (`None` for text that was
    /// not read from a file).
    pub config_file: Option<&'a Path>,
    /// Looks up an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
}

impl Resolver<'_> {
    /// The raw bytes of the secret setting `key` (a dotted path, for messages) holding `value`.
    pub fn resolve(
        &self,
        key: &str,
        value: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
        match SecretRef::parse(value) {
            SecretRef::Env(name) => {
                if name.is_empty() {
                    return Err(ConfigError::setting(key, "env: needs a variable name (env:NAME)"));
                }
                match (self.env)(name) {
                    Some(v) if !v.is_empty() => Ok(Zeroizing::new(v.into_vec())),
                    _ => Err(ConfigError::setting(
                        key,
                        format!("environment variable {name} is not set or empty"),
                    )),
                }
            }
            SecretRef::File(p) => {
                if p.is_empty() {
                    return Err(ConfigError::setting(key, "file: needs a path (file:PATH)"));
                }
                let path = self.base_dir.join(p);
                check_private(key, &path)?;
                let bytes = std::fs::read(&path)
                    .map_err(|e| ConfigError::setting(key, format!("cannot read {}: {e}", path.display())))?;
                Ok(Zeroizing::new(bytes))
            }
            SecretRef::Inline => {
                if let Some(cfg) = self.config_file {
                    check_private(key, cfg).map_err(|e| match e {
                        ConfigError::Setting { key, message } => ConfigError::Setting {
                            key,
                            message: format!(
                                "{message} (the secret is written inline in the configuration file; or use env:NAME or file:PATH)"
                            ),
                        },
                        other => other,
                    })?;
                }
                warnings.push(format!(
                    "{key}: the secret is written inline in the configuration file; prefer env:NAME or file:PATH"
                ));
                Ok(Zeroizing::new(value.as_bytes().to_vec()))
            }
        }
    }
}

/// Refuses a file that group or others may read, write or execute.
pub fn check_private(key: &str, path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::setting(key, format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::setting(
            key,
            format!(
                "{} is accessible by group or others (mode {mode:04o}); restrict it with chmod 600",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Decodes a 32-byte key from raw bytes, hex or base64; errors never contain the material.
pub fn decode_key(key: &str, bytes: &[u8]) -> Result<UnsealKey, ConfigError> {
    let bad = || {
        ConfigError::setting(
            key,
            "the key must be 32 bytes: raw, or 64 hex digits, or base64 (44 characters)",
        )
    };
    if bytes.len() == KEY_LEN {
        return UnsealKey::from_slice(bytes).ok_or_else(bad);
    }
    let text = bytes.trim_ascii();
    let mut buf = Zeroizing::new([0u8; 48]);
    let n = match text.len() {
        64 => {
            hex::decode_to_slice(text, &mut buf[..KEY_LEN])
                .map_err(|_| ConfigError::setting(key, "the key is 64 characters long but not valid hex"))?;
            KEY_LEN
        }
        44 => base64::engine::general_purpose::STANDARD
            .decode_slice(text, &mut buf[..])
            .map_err(|_| ConfigError::setting(key, "the key is 44 characters long but not valid base64"))?,
        43 => base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(text, &mut buf[..]).map_err(
            |_| ConfigError::setting(key, "the key is 43 characters long but not valid base64url"),
        )?,
        KEY_LEN => {
            buf[..KEY_LEN].copy_from_slice(text);
            KEY_LEN
        }
        _ => return Err(bad()),
    };
    if n != KEY_LEN {
        return Err(bad());
    }
    UnsealKey::from_slice(&buf[..KEY_LEN]).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;

    const KEY: [u8; 32] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x0f,
        0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, b' ',
    ];

    fn write(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn refs_parse_both_spellings() {
        assert_eq!(SecretRef::parse("env:KEY"), SecretRef::Env("KEY"));
        assert_eq!(SecretRef::parse("env://KEY"), SecretRef::Env("KEY"));
        assert_eq!(SecretRef::parse("file:/etc/k"), SecretRef::File("/etc/k"));
        assert_eq!(SecretRef::parse("file:///etc/k"), SecretRef::File("/etc/k"));
        assert_eq!(SecretRef::parse("file:k"), SecretRef::File("k"));
        assert_eq!(SecretRef::parse("abcd"), SecretRef::Inline);
    }

    #[test]
    fn keys_decode_from_raw_hex_and_base64() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(KEY);
        let hex_lower = hex::encode(KEY);
        let hex_upper = hex_lower.to_uppercase();
        for input in [
            KEY.to_vec(),
            hex_lower.clone().into_bytes(),
            format!("{hex_upper}\n").into_bytes(),
            format!("  {b64}\r\n").into_bytes(),
            b64url.into_bytes(),
        ] {
            let k = decode_key("k", &input).unwrap();
            assert!(k.ct_eq(&KEY));
        }
        // A raw key that ends in whitespace is not trimmed.
        assert!(decode_key("k", &KEY).unwrap().ct_eq(&KEY));
        // 32 characters of text are raw bytes too (OpenBao's rule).
        let text = b"0123456789abcdef0123456789abcdef\n";
        assert!(decode_key("k", text).unwrap().ct_eq(&text[..32]));
    }

    #[test]
    fn bad_keys_are_refused_without_echo() {
        let secretish = "zz".repeat(32);
        let e = decode_key("seal.static.current_key", secretish.as_bytes()).unwrap_err().to_string();
        assert_eq!(e, "seal.static.current_key: the key is 64 characters long but not valid hex");
        let e = decode_key("k", b"short").unwrap_err().to_string();
        assert_eq!(e, "k: the key must be 32 bytes: raw, or 64 hex digits, or base64 (44 characters)");
        let e = decode_key("k", &[b'!'; 44]).unwrap_err().to_string();
        assert_eq!(e, "k: the key is 44 characters long but not valid base64");
        let e = decode_key("k", &[b'!'; 43]).unwrap_err().to_string();
        assert_eq!(e, "k: the key is 43 characters long but not valid base64url");
        // Valid base64 of the wrong length (33 bytes).
        let e = decode_key("k", base64::engine::general_purpose::STANDARD.encode([1u8; 31]).as_bytes());
        assert!(e.is_err());
        assert!(decode_key("k", &[7u8; 33]).is_err());
    }

    #[test]
    fn env_and_file_sources() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "good.key", &KEY, 0o600);
        write(dir.path(), "loose.key", &KEY, 0o640);
        let vars: HashMap<&str, &str> = [("K", "value"), ("EMPTY", "")].into();
        let env = move |n: &str| vars.get(n).map(OsString::from);
        let r = Resolver { base_dir: dir.path(), config_file: None, env: &env };
        let mut w = Vec::new();
        assert_eq!(r.resolve("k", "env:K", &mut w).unwrap().as_slice(), b"value");
        assert_eq!(r.resolve("k", "env://K", &mut w).unwrap().as_slice(), b"value");
        assert_eq!(
            r.resolve("k", "env:NOPE", &mut w).unwrap_err().to_string(),
            "k: environment variable NOPE is not set or empty"
        );
        assert_eq!(
            r.resolve("k", "env:EMPTY", &mut w).unwrap_err().to_string(),
            "k: environment variable EMPTY is not set or empty"
        );
        assert_eq!(
            r.resolve("k", "env:", &mut w).unwrap_err().to_string(),
            "k: env: needs a variable name (env:NAME)"
        );
        assert_eq!(r.resolve("k", "file:good.key", &mut w).unwrap().as_slice(), KEY);
        let abs = format!("file://{}", dir.path().join("good.key").display());
        assert_eq!(r.resolve("k", &abs, &mut w).unwrap().as_slice(), KEY);
        let e = r.resolve("seal.static.current_key", "file:loose.key", &mut w).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "seal.static.current_key: {} is accessible by group or others (mode 0640); restrict it with chmod 600",
                dir.path().join("loose.key").display()
            )
        );
        let e = r.resolve("k", "file:missing.key", &mut w).unwrap_err().to_string();
        assert!(e.starts_with("k: cannot read "), "{e}");
        assert_eq!(
            r.resolve("k", "file:", &mut w).unwrap_err().to_string(),
            "k: file: needs a path (file:PATH)"
        );
        assert!(w.is_empty());
    }

    #[test]
    fn inline_secrets_need_a_private_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let private = write(dir.path(), "private.hcl", b"", 0o600);
        let public = write(dir.path(), "public.hcl", b"", 0o644);
        let env = |_: &str| None;
        let mut w = Vec::new();
        let r = Resolver { base_dir: dir.path(), config_file: Some(&private), env: &env };
        assert_eq!(r.resolve("k", "inline-value", &mut w).unwrap().as_slice(), b"inline-value");
        assert_eq!(
            w,
            vec!["k: the secret is written inline in the configuration file; prefer env:NAME or file:PATH"]
        );
        let r = Resolver { base_dir: dir.path(), config_file: Some(&public), env: &env };
        let e = r.resolve("k", "inline-value", &mut w).unwrap_err().to_string();
        assert!(e.contains("is accessible by group or others (mode 0644)"), "{e}");
        assert!(e.contains("written inline"), "{e}");
        assert!(!e.contains("inline-value"), "{e}");
    }
}
