//! The reference grammar.
//!
//! ```text
//! vault:PATH                 kv v2 secret at PATH in the kv mount, field "value", latest version
//! vault:PATH#FIELD           field FIELD
//! vault:PATH#FIELD@VERSION   field FIELD of version VERSION
//! vault:PATH@VERSION         field "value" of version VERSION
//! env:NAME                   environment variable NAME
//! file:PATH                  contents of the file at PATH (one trailing newline removed)
//! \vault:...  \env:...  \file:...   the literal text without the backslash
//! anything else              left as it is
//! ```

use std::fmt;

/// A parsed reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A kv v2 secret field.
    Vault { path: String, field: String, version: Option<u64> },
    /// An environment variable.
    Env { name: String },
    /// A file's contents.
    File { path: String },
    /// Not a reference: the text itself (escapes already removed).
    Literal(String),
}

/// Why a string that looks like a reference is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed reference {text:?}: {reason}")]
pub struct ParseError {
    pub text: String,
    pub reason: &'static str,
}

impl Reference {
    /// Parses one string. Strings without a scheme are literals.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        for scheme in ["vault:", "env:", "file:"] {
            if let Some(rest) = s.strip_prefix('\\') {
                if rest.starts_with(scheme) {
                    return Ok(Reference::Literal(rest.to_owned()));
                }
            }
        }
        let err = |reason| ParseError { text: s.to_owned(), reason };
        if let Some(rest) = s.strip_prefix("vault:") {
            let (path_part, version) = match rest.rsplit_once('@') {
                Some((p, v)) if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) => {
                    let n: u64 = v.parse().map_err(|_| err("version is not a number"))?;
                    if n == 0 {
                        return Err(err("version must be at least 1"));
                    }
                    (p, Some(n))
                }
                Some((_, v)) if v.chars().all(|c| c.is_ascii_digit()) => {
                    return Err(err("empty version after '@'"))
                }
                _ => (rest, None),
            };
            let (path, field) = match path_part.split_once('#') {
                Some((p, f)) => {
                    if f.is_empty() {
                        return Err(err("empty field after '#'"));
                    }
                    (p, f.to_owned())
                }
                None => (path_part, "value".to_owned()),
            };
            let path = path.trim_matches('/');
            if path.is_empty() {
                return Err(err("empty secret path"));
            }
            if path.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
                return Err(err("secret path has an empty, '.' or '..' segment"));
            }
            return Ok(Reference::Vault { path: path.to_owned(), field, version });
        }
        if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(err("invalid environment variable name"));
            }
            return Ok(Reference::Env { name: name.to_owned() });
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(err("empty file path"));
            }
            return Ok(Reference::File { path: path.to_owned() });
        }
        Ok(Reference::Literal(s.to_owned()))
    }

    /// True unless a literal.
    pub fn is_reference(&self) -> bool {
        !matches!(self, Reference::Literal(_))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Vault { path, field, version } => {
                write!(f, "vault:{path}")?;
                if field != "value" || version.is_some() {
                    write!(f, "#{field}")?;
                }
                if let Some(v) = version {
                    write!(f, "@{v}")?;
                }
                Ok(())
            }
            Reference::Env { name } => write!(f, "env:{name}"),
            Reference::File { path } => write!(f, "file:{path}"),
            Reference::Literal(_) => f.write_str("(literal)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(path: &str, field: &str, version: Option<u64>) -> Reference {
        Reference::Vault { path: path.into(), field: field.into(), version }
    }

    #[test]
    fn grammar() {
        assert_eq!(
            Reference::parse("vault:ai/openrouter_key").unwrap(),
            v("ai/openrouter_key", "value", None)
        );
        assert_eq!(
            Reference::parse("vault:billing/stripe#live_key").unwrap(),
            v("billing/stripe", "live_key", None)
        );
        assert_eq!(Reference::parse("vault:db/main#password@3").unwrap(), v("db/main", "password", Some(3)));
        assert_eq!(Reference::parse("vault:db/main@2").unwrap(), v("db/main", "value", Some(2)));
        assert_eq!(
            Reference::parse("env:JOBS_WEBHOOK_SECRET").unwrap(),
            Reference::Env { name: "JOBS_WEBHOOK_SECRET".into() }
        );
        assert_eq!(
            Reference::parse("file:/run/secrets/tls.key").unwrap(),
            Reference::File { path: "/run/secrets/tls.key".into() }
        );
        assert_eq!(Reference::parse("plain text").unwrap(), Reference::Literal("plain text".into()));
        assert_eq!(
            Reference::parse("\\vault:not/a/ref").unwrap(),
            Reference::Literal("vault:not/a/ref".into())
        );
        assert_eq!(Reference::parse("\\env:X").unwrap(), Reference::Literal("env:X".into()));
        assert_eq!(
            Reference::parse("https://vault:8200").unwrap(),
            Reference::Literal("https://vault:8200".into())
        );
        assert_eq!(
            Reference::parse("user@example.com").unwrap(),
            Reference::Literal("user@example.com".into())
        );
        // An '@' that is not followed by digits is part of the field name.
        assert_eq!(Reference::parse("vault:mail#user@example").unwrap(), v("mail", "user@example", None));
    }

    #[test]
    fn malformed() {
        for bad in
            ["vault:", "vault:a#", "vault:a#f@", "vault:a#f@0", "vault:a/../b", "vault://", "env:", "file:"]
        {
            assert!(Reference::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["vault:a/b", "vault:a/b#f", "vault:a/b#f@3", "env:X", "file:/x"] {
            assert_eq!(Reference::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Reference::parse("vault:a@2").unwrap().to_string(), "vault:a#value@2");
    }
}
