//! The error of loading a configuration: what went wrong, and where.
//!
//! Every message names what it is about: the file, the position of a syntax error, the dotted
//! key of a bad setting (`listener[1].tcp.tls_key_file: required when tls_cert_file is set`), or
//! the settings that contradict each other. No message contains a secret or repeats a value
//! from the file (syntax errors keep the position and the parser's message, not the quoted
//! source line).
//!
//! This module is a leaf of `config`: the front ends (`format`), the secret loader (`secret`)
//! and the validation (`mod.rs` and its siblings) all report through it.

use std::fmt::Display;
use std::path::PathBuf;

use super::de::DeError;

/// Errors loading a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Settings that contradict each other (no single key is wrong).
    #[error("{0}")]
    Conflict(String),
    /// The document as a whole has the wrong shape (not a table or object at the top).
    #[error("{0}")]
    Document(String),
    /// The configuration file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// One setting is wrong; `key` is its dotted path.
    #[error("{key}: {message}")]
    Setting { key: String, message: String },
    /// The text is not valid in its language; `at` is the (line, column) when known.
    #[error("invalid {language}{}: {message}", position(*at))]
    Syntax { language: &'static str, at: Option<(usize, usize)>, message: String },
    /// The file's extension names no supported format.
    #[error(
        "unsupported configuration file extension{} (expected .toml, .hcl or .json)",
        ext.as_ref().map(|e| format!(" \".{e}\"")).unwrap_or_default()
    )]
    UnsupportedExtension { ext: Option<String> },
}

impl ConfigError {
    /// The setting `key` (a dotted path) is wrong because of `message`.
    pub fn setting(key: &str, message: impl Display) -> Self {
        ConfigError::Setting { key: key.to_owned(), message: message.to_string() }
    }

    /// The dotted key the error is about, when it is about one setting.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Setting { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// ` at line L, column C` or nothing.
fn position(at: Option<(usize, usize)>) -> String {
    match at {
        Some((line, column)) => format!(" at line {line}, column {column}"),
        None => String::new(),
    }
}

impl From<DeError> for ConfigError {
    fn from(e: DeError) -> Self {
        match e.path().filter(|p| !p.is_empty()) {
            Some(key) => ConfigError::setting(key, e.message()),
            None => ConfigError::Document(e.message().to_owned()),
        }
    }
}
