//! What can go wrong resolving a reference. Every error names the reference (or the setting) it
//! is about and never contains a value: not a secret, not a token, not a secret ID.

use std::path::PathBuf;

use super::transport::TransportError;

/// An error naming the reference (never its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve {reference}: {kind}")]
pub struct ResolveError {
    /// The reference as written (values never appear here), or `setting NAME`.
    pub reference: String,
    pub kind: ErrorKind,
}

impl ResolveError {
    /// A bad resolver setting `name`.
    pub fn setting(name: &str, reason: impl Into<String>) -> Self {
        Self { reference: format!("setting {name}"), kind: ErrorKind::Settings(reason.into()) }
    }
}

/// What went wrong with one reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("authentication failed: {0}")]
    Auth(AuthError),
    #[error("version {version} is deleted")]
    Deleted { version: u64 },
    #[error("permission denied")]
    Denied,
    #[error("version {version} is destroyed")]
    Destroyed { version: u64 },
    #[error("environment variable is not set")]
    EnvMissing,
    #[error("the secret has no field {field:?}")]
    FieldMissing { field: String },
    /// A `file:` reference whose file cannot be read (`reason` is the OS error).
    #[error("cannot read the file: {reason}")]
    File { reason: String },
    /// A string that looks like a reference but is not one (see [`super::ParseError`]).
    #[error("{0}")]
    Malformed(&'static str),
    #[error("no such secret (or version)")]
    NotFound,
    #[error("server answered {status}: {message}")]
    Server { status: u16, message: String },
    /// A resolver setting is missing, malformed or refused (S26); the reason names the setting.
    #[error("{0}")]
    Settings(String),
    #[error("cannot reach the server: {0}")]
    Transport(TransportError),
}

/// Why the resolver could not get a usable token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The AppRole login was refused.
    #[error("approle login answered {status}: {message}")]
    LoginRefused { status: u16, message: String },
    /// The AppRole login answered without a token.
    #[error("login response has no client_token")]
    NoClientToken,
    /// Renewing the token was refused (the resolver then logs in again).
    #[error("renewal answered {status}")]
    RenewalRefused { status: u16 },
    /// The secret ID file cannot be read (`reason` is the OS error).
    #[error("cannot read secret_id_file {}: {reason}", path.display())]
    SecretIdFile { path: PathBuf, reason: String },
    /// The token lookup was refused (an invalid or expired token).
    #[error("token lookup answered {status}: {message}")]
    TokenRefused { status: u16, message: String },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Why a setting that may be an `env:`/`file:` reference has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalValueError {
    #[error("environment variable {name} is not set")]
    EnvMissing { name: String },
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Malformed(#[from] super::ParseError),
    #[error("a setting cannot be a vault: reference")]
    VaultReference,
}
