//! The one place where an error becomes an HTTP status and a Vault-shaped body.

use http::StatusCode;
use serde_json::json;

use crate::core::envelope;
use crate::core::error::{Error, ErrorKind};

/// Status code for an error kind.
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Forbidden | ErrorKind::InvalidToken | ErrorKind::NoToken | ErrorKind::PermissionDenied => {
            StatusCode::FORBIDDEN
        }
        ErrorKind::Internal | ErrorKind::InternalVisible => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::NotFound | ErrorKind::UnsupportedPath => StatusCode::NOT_FOUND,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Raw => StatusCode::OK,
        ErrorKind::Sealed | ErrorKind::Standby | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedOperation => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
    }
}

/// Status and JSON body for an error. Internal errors are logged with the request id and the
/// client gets a fixed message.
pub fn render(err: Error, request_id: &str) -> (StatusCode, Vec<u8>) {
    match err {
        Error::Raw(resp) => {
            let code = resp.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
            (code, envelope::render(*resp, request_id))
        }
        Error::Internal(detail) => {
            tracing::error!(request_id, error = %detail, "internal error");
            let body =
                json!({"errors": [format!("internal error; see the server log for request {request_id}")]});
            (StatusCode::INTERNAL_SERVER_ERROR, body.to_string().into_bytes())
        }
        Error::UnsupportedOperation => {
            let body = json!({"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]});
            (StatusCode::METHOD_NOT_ALLOWED, body.to_string().into_bytes())
        }
        other => {
            let code = status(other.kind());
            let body = json!({"errors": other.messages()});
            (code, body.to_string().into_bytes())
        }
    }
}

/// `{"errors":[]}` with a status (405 for unknown methods, 404 for non-API paths).
pub fn empty(code: StatusCode) -> (StatusCode, Vec<u8>) {
    (code, b"{\"errors\":[]}".to_vec())
}
