//! The core layer's error type. Engines, auth methods and the sys backend return it; the HTTP
//! layer (`http::error`) is the only place that turns an [`ErrorKind`] into a status code and a
//! Vault-shaped body.
//!
//! Messages are the exact texts Vault/OpenBao send (clients match on them). No message ever
//! contains a secret value: callers build them from paths, names and parameter names only.

use coffer_storage::{BarrierError, StorageError};

use crate::audit::AuditError;
use crate::core::request::Response;

/// What kind of failure an error is; decides the HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400 with the message.
    BadRequest,
    /// 409.
    Conflict,
    /// 403 with a handler-specific message (e.g. `cannot mount "sys/"`).
    Forbidden,
    /// 500 with a fixed message; details only in the server log.
    Internal,
    /// 500 whose message Vault shows to clients (a few handlers do this on purpose).
    InternalVisible,
    /// 403 `permission denied` + `invalid token`: no, unknown, expired or revoked token.
    InvalidToken,
    /// 403 plain `permission denied`: no token on an authenticated path.
    NoToken,
    /// 404 with an empty or given error list.
    NotFound,
    /// 403 `1 error occurred:\n\t* permission denied\n\n`: the ACL said no.
    PermissionDenied,
    /// 429.
    RateLimited,
    /// The handler chose the status and a full envelope body.
    Raw,
    /// 503 `Vault is sealed`.
    Sealed,
    /// This node is a standby: the request belongs on the leader. The HTTP layer forwards it
    /// (or answers 307 to the leader's `api_addr`); with no known leader, 503.
    Standby,
    /// 503 with the message (no quorum, no active node, shutting down).
    Unavailable,
    /// 413.
    TooLarge,
    /// 405 `unsupported operation` (or empty list for unsupported HTTP methods).
    UnsupportedOperation,
    /// 415.
    UnsupportedMediaType,
    /// 404 `unsupported path`.
    UnsupportedPath,
}

/// Errors of the core and everything routed through it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// Internal failure; the string goes to the log only.
    #[error("internal error")]
    Internal(String),
    #[error("{0}")]
    InternalVisible(String),
    #[error("permission denied")]
    InvalidToken,
    #[error("permission denied")]
    NoToken,
    /// 404; `None` gives `{"errors":[]}`.
    #[error("not found")]
    NotFound(Option<String>),
    #[error("permission denied")]
    PermissionDenied,
    #[error("{0}")]
    RateLimited(String),
    /// A complete response with a handler-chosen status (KV v2 deleted version, transit batch
    /// failures, AppRole accessor 404).
    #[error("raw response")]
    Raw(Box<Response>),
    #[error("Vault is sealed")]
    Sealed,
    /// The request must go to the leader, whose API address is `leader` when known.
    #[error("node is not active")]
    Standby { leader: Option<String> },
    #[error("{0}")]
    Unavailable(String),
    #[error("request body too large")]
    TooLarge,
    #[error("unsupported operation")]
    UnsupportedOperation,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("unsupported path")]
    UnsupportedPath,
}

impl Error {
    /// The kind, for the HTTP mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadRequest(_) => ErrorKind::BadRequest,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Internal(_) => ErrorKind::Internal,
            Error::InternalVisible(_) => ErrorKind::InternalVisible,
            Error::InvalidToken => ErrorKind::InvalidToken,
            Error::NoToken => ErrorKind::NoToken,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::PermissionDenied => ErrorKind::PermissionDenied,
            Error::RateLimited(_) => ErrorKind::RateLimited,
            Error::Raw(_) => ErrorKind::Raw,
            Error::Sealed => ErrorKind::Sealed,
            Error::Standby { .. } => ErrorKind::Standby,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::TooLarge => ErrorKind::TooLarge,
            Error::UnsupportedOperation => ErrorKind::UnsupportedOperation,
            Error::UnsupportedMediaType(_) => ErrorKind::UnsupportedMediaType,
            Error::UnsupportedPath => ErrorKind::UnsupportedPath,
        }
    }

    /// Shorthand for a 400.
    pub fn bad(msg: impl Into<String>) -> Self {
        Error::BadRequest(msg.into())
    }

    /// Shorthand for an internal error with a log-only detail.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal(detail.to_string())
    }

    /// The messages for the `errors` list.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Error::NotFound(None) | Error::Raw(_) => Vec::new(),
            Error::NotFound(Some(m)) => vec![m.clone()],
            Error::PermissionDenied => vec!["1 error occurred:\n\t* permission denied\n\n".to_owned()],
            Error::InvalidToken => vec!["permission denied".to_owned(), "invalid token".to_owned()],
            Error::Internal(_) => vec!["internal error".to_owned()],
            other => vec![other.to_string()],
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::TooLarge { size, max, .. } => {
                Error::BadRequest(format!("request too large: value is {size} bytes, max: {max} bytes"))
            }
            StorageError::NotLeader { leader_api_addr } => Error::Standby { leader: leader_api_addr },
            StorageError::Unavailable(m) => Error::Unavailable(m),
            StorageError::PreconditionFailed { key } => {
                Error::Internal(format!("unhandled storage precondition failure on {key}"))
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<BarrierError> for Error {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Sealed => Error::Sealed,
            BarrierError::Storage(s) => s.into(),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<AuditError> for Error {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid { message, .. } => Error::BadRequest(message),
            AuditError::Refused(m) => Error::BadRequest(m),
            AuditError::NotFound(m) => Error::BadRequest(m),
            // Opening a file the caller named is the caller's problem (a missing directory, a
            // permission): Vault answers 400 with the reason too. The message names the file
            // and the OS error only.
            AuditError::Io(m) => Error::BadRequest(m),
            AuditError::State(m) => Error::Internal(m),
            AuditError::NoDeviceWrote => Error::Internal(AuditError::NoDeviceWrote.to_string()),
            AuditError::Barrier(b) => b.into(),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("json: {e}"))
    }
}

/// Result alias for the core layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

