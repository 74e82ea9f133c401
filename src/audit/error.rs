//! The audit layer's error type. It becomes a core error (and so an HTTP status) through the
//! `From` impl below; nothing here knows about HTTP.

use coffer_storage::BarrierError;

/// What went wrong with an audit device or its chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A device definition the server refuses (bad option, forbidden option, bad path...).
    /// `key` names the offending option or field when there is one (`options.prefix`).
    #[error("{message}")]
    Invalid { key: Option<String>, message: String },
    /// The operation is not allowed by the server's configuration (API creation, disabling a
    /// configuration-managed device).
    #[error("{0}")]
    Refused(String),
    /// No such device.
    #[error("{0}")]
    NotFound(String),
    /// A sink could not be opened, read or written. The message names the file, never data.
    #[error("{0}")]
    Io(String),
    /// The stored chain state behind the barrier is missing or unreadable.
    #[error("audit chain state: {0}")]
    State(String),
    /// Reading or writing the barrier failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

impl AuditError {
    /// An invalid option or field.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        AuditError::Invalid { key: Some(key.into()), message: message.into() }
    }

    /// An invalid definition without one key to blame.
    pub fn bad(message: impl Into<String>) -> Self {
        AuditError::Invalid { key: None, message: message.into() }
    }
}

impl From<AuditError> for crate::core::error::Error {
    fn from(e: AuditError) -> Self {
        use crate::core::error::Error;
        match e {
            AuditError::Invalid { message, .. } => Error::BadRequest(message),
            AuditError::Refused(m) => Error::BadRequest(m),
            AuditError::NotFound(m) => Error::BadRequest(m),
            // Opening a file the caller named is the caller's problem (a missing directory, a
            // permission): Vault answers 400 with the reason too. The message names the file
            // and the OS error only.
            AuditError::Io(m) => Error::BadRequest(m),
            AuditError::State(m) => Error::Internal(m),
            AuditError::Barrier(b) => b.into(),
        }
    }
}
