//! The one place where an error becomes an HTTP status and a Vault-shaped body.
//!
//! Every kind maps to one status ([`status`]); the body is `{"errors":[...]}` with the error's
//! messages, except that internal errors are logged with the request id and the client gets a
//! fixed message. A standby's error (the request belongs on the leader) is answered as Vault's
//! standbys answer it when they do not forward: 307 to the same path and query on the leader's
//! API address, or 503 when no leader is known.

use http::header::{HeaderValue, LOCATION};
use http::StatusCode;
use serde_json::json;

use crate::core::envelope;
use crate::core::error::{Error, ErrorKind};
use crate::http::reply::Reply;

/// Vault's message when a standby knows no active node to send a request to.
pub const NO_ACTIVE_NODE: &str = "local node not active but active cluster node not found";

/// What an error reply needs to know about the request it answers.
#[derive(Clone, Copy, Debug)]
pub struct ErrorContext<'a> {
    pub request_id: &'a str,
    /// The request's path and query as the client sent them (`/v1/...?...`): a standby's
    /// redirect repeats them on the leader.
    pub target: &'a str,
}

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

/// The reply for an error.
pub fn reply(err: Error, request: ErrorContext<'_>) -> Reply {
    let request_id = request.request_id;
    match err {
        Error::Raw(resp) => {
            let code = resp.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
            Reply::json(code, envelope::render(*resp, request_id))
        }
        Error::Internal(detail) => {
            tracing::error!(request_id, error = %detail, "internal error");
            let body =
                json!({"errors": [format!("internal error; see the server log for request {request_id}")]});
            Reply::json(StatusCode::INTERNAL_SERVER_ERROR, body.to_string().into_bytes())
        }
        Error::UnsupportedOperation => {
            let body = json!({"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]});
            Reply::json(StatusCode::METHOD_NOT_ALLOWED, body.to_string().into_bytes())
        }
        Error::Standby { leader } => standby(leader.as_deref(), request),
        other => {
            let body = json!({"errors": other.messages()});
            Reply::json(status(other.kind()), body.to_string().into_bytes())
        }
    }
}

/// A standby's answer: 307 to the leader, or 503 when no leader (or no usable address) is known.
fn standby(leader: Option<&str>, request: ErrorContext<'_>) -> Reply {
    match leader.and_then(|l| redirect_location(l, request.target)) {
        Some(location) => Reply {
            status: StatusCode::TEMPORARY_REDIRECT,
            body: Vec::new(),
            headers: vec![(LOCATION, location)],
        },
        None => {
            if let Some(leader) = leader {
                tracing::warn!(
                    request_id = request.request_id,
                    leader,
                    "leader API address is not usable in a redirect"
                );
            }
            let body = json!({"errors": [NO_ACTIVE_NODE]});
            Reply::json(status(ErrorKind::Standby), body.to_string().into_bytes())
        }
    }
}

/// `<leader><target>`; a leader address without a scheme gets `https://` (as Vault does).
fn redirect_location(leader: &str, target: &str) -> Option<HeaderValue> {
    let leader = leader.trim().trim_end_matches('/');
    if leader.is_empty() || !target.starts_with('/') {
        return None;
    }
    let location = if leader.contains("://") {
        format!("{leader}{target}")
    } else {
        format!("https://{leader}{target}")
    };
    HeaderValue::from_str(&location).ok()
}

/// `{"errors":[]}` with a status (405 for unknown methods, 404 for non-API paths).
pub fn empty(code: StatusCode) -> Reply {
    Reply::json(code, b"{\"errors\":[]}".to_vec())
}

/// 405 `{"errors":[]}`: the endpoint exists but not for this method.
pub fn method_not_allowed() -> Reply {
    empty(StatusCode::METHOD_NOT_ALLOWED)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn context(target: &str) -> ErrorContext<'_> {
        ErrorContext { request_id: "rid", target }
    }

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
    }

    #[test]
    fn a_standby_redirects_to_the_leader_with_path_and_query() {
        let err = Error::Standby { leader: Some("https://10.0.0.1:8200/".into()) };
        let answer = reply(err, context("/v1/secret/data/app?version=2"));
        assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT);
        assert!(answer.body.is_empty(), "a redirect has no body");
        assert_eq!(
            answer.headers,
            vec![(LOCATION, HeaderValue::from_static("https://10.0.0.1:8200/v1/secret/data/app?version=2"))]
        );
        // A leader address without a scheme is reached over https, as Vault does.
        let answer = reply(Error::Standby { leader: Some("node1:8200".into()) }, context("/v1/sys/mounts"));
        assert_eq!(
            answer.headers,
            vec![(LOCATION, HeaderValue::from_static("https://node1:8200/v1/sys/mounts"))]
        );
    }

    #[test]
    fn a_standby_without_a_leader_answers_503() {
        let want = serde_json::json!({"errors": ["local node not active but active cluster node not found"]});
        for leader in [None, Some(String::new()), Some("https://bad\nhost".to_owned())] {
            let answer = reply(Error::Standby { leader: leader.clone() }, context("/v1/secret/x"));
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{leader:?}");
            assert_eq!(body(&answer), want, "{leader:?}");
            assert!(answer.headers.is_empty(), "{leader:?}");
        }
    }

    #[test]
    fn other_errors_keep_their_status_and_messages() {
        let answer = reply(Error::Sealed, context("/v1/secret/x"));
        assert_eq!(
            (answer.status, body(&answer)),
            (StatusCode::SERVICE_UNAVAILABLE, json!({"errors": ["Vault is sealed"]}))
        );
        let answer = reply(Error::Internal("disk on fire".into()), context("/v1/x"));
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body(&answer), json!({"errors": ["internal error; see the server log for request rid"]}));
        assert_eq!(method_not_allowed().status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
