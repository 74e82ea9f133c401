//! Errors of the API client.
//!
//! Nothing here carries a request or response body: an [`ApiError`] holds only the status, the
//! server's `errors` strings, the method and the URL (paths and query parameters, which never
//! hold secrets in the requests this client builds), so printing an error never prints a token,
//! a secret value or a key share.

use std::fmt;

/// How many bytes of a non-JSON error body are kept for the message.
const RAW_ERROR_LIMIT: usize = 512;

/// A non-2xx answer from the server, printed like the Go API client prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The `errors` list of the body (empty when the body had none).
    pub errors: Vec<String>,
    /// The request URL.
    pub url: String,
    /// The request method (`GET`, `PUT`, `LIST`, ...).
    pub method: String,
    /// The body was not a Vault error object; `errors` holds (the start of) its raw text.
    pub raw: bool,
}

impl ApiError {
    /// Builds the error from a response body, which may be a Vault `{"errors":[...]}` object,
    /// another JSON value, or arbitrary text (a proxy's HTML page).
    pub fn from_body(method: &str, url: &str, status: u16, body: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
        let errors = parsed.as_ref().and_then(|v| v.get("errors")).and_then(|e| e.as_array()).map(|a| {
            a.iter()
                .map(|e| match e {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
        });
        match errors {
            Some(errors) => {
                Self { status, errors, url: url.to_owned(), method: method.to_owned(), raw: false }
            }
            // JSON without `errors` (a raw envelope with data) is never echoed: it may hold secrets.
            None if parsed.is_some() || body.iter().all(u8::is_ascii_whitespace) => Self {
                status,
                errors: Vec::new(),
                url: url.to_owned(),
                method: method.to_owned(),
                raw: false,
            },
            None => {
                let text =
                    String::from_utf8_lossy(&body[..body.len().min(RAW_ERROR_LIMIT)]).trim().to_owned();
                Self { status, errors: vec![text], url: url.to_owned(), method: method.to_owned(), raw: true }
            }
        }
    }

    /// True when the status is 403 (permission denied or an invalid token).
    pub fn is_permission_denied(&self) -> bool {
        self.status == 403
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.raw { "Raw Message" } else { "Errors" };
        write!(
            f,
            "Error making API request.\n\nURL: {} {}\nCode: {}. {kind}:\n\n",
            self.method, self.url, self.status
        )?;
        if self.raw {
            return f.write_str(self.errors.first().map(String::as_str).unwrap_or(""));
        }
        let lines: Vec<String> = self.errors.iter().map(|e| format!("* {e}")).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ApiError {}

/// Everything the client can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The request did not get an HTTP answer (connection refused, TLS failure, timeout).
    #[error("{method} \"{url}\": {message}")]
    Transport { method: String, url: String, message: String },
    /// The answer was not the JSON the endpoint promises.
    #[error("invalid response to {method} \"{url}\": {message}")]
    Decode { method: String, url: String, message: String },
    /// The configured address is not a usable URL.
    #[error("invalid server address {address:?}: {message}")]
    Address { address: String, message: String },
    /// The CA certificate file cannot be read or parsed.
    #[error("cannot load CA certificate {path}: {message}")]
    CaCert { path: String, message: String },
    /// The request body cannot be encoded as JSON.
    #[error("cannot encode request: {message}")]
    Encode { message: String },
    /// The HTTP client cannot be built (TLS backend setup).
    #[error("cannot build HTTP client: {message}")]
    HttpClient { message: String },
    /// The namespace cannot be sent as a header.
    #[error("invalid namespace {namespace:?}")]
    Namespace { namespace: String },
    /// `*_SKIP_VERIFY` is not one of Go's boolean spellings.
    #[error("could not parse SKIP_VERIFY value {value:?}")]
    SkipVerify { value: String },
    /// `*_CLIENT_TIMEOUT` is not a duration.
    #[error("invalid CLIENT_TIMEOUT: {0}")]
    Timeout(#[source] crate::util::duration::DurationError),
    /// The token cannot be sent as a header (it is not printed).
    #[error("the token contains characters not allowed in a header")]
    TokenHeader,
    /// The token helper file exists but cannot be read or written.
    #[error("token helper file {}: {source}", path.display())]
    TokenHelper { path: std::path::PathBuf, source: std::io::Error },
}

impl ClientError {
    /// The API error, when the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }
}

/// Renders a transport error with its causes (`error sending request: connection refused`).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_the_go_client() {
        let e = ApiError::from_body(
            "PUT",
            "https://127.0.0.1:8200/v1/secret/data/app",
            403,
            br#"{"errors":["permission denied"]}"#,
        );
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: PUT https://127.0.0.1:8200/v1/secret/data/app\nCode: 403. Errors:\n\n* permission denied"
        );
        let two =
            ApiError::from_body("GET", "u", 403, br#"{"errors":["permission denied","invalid token"]}"#);
        assert!(two.to_string().ends_with("* permission denied\n* invalid token"));
        assert!(two.is_permission_denied());
    }

    #[test]
    fn empty_and_raw_bodies() {
        let e = ApiError::from_body("GET", "u", 404, b"");
        assert!(e.errors.is_empty());
        assert!(e.to_string().ends_with("Code: 404. Errors:\n\n"));
        let e = ApiError::from_body("GET", "u", 502, b"<html>bad gateway</html>");
        assert!(e.raw);
        assert!(e.to_string().ends_with("Code: 502. Raw Message:\n\n<html>bad gateway</html>"));
        let long = vec![b'x'; 4096];
        let e = ApiError::from_body("GET", "u", 500, &long);
        assert_eq!(e.errors[0].len(), RAW_ERROR_LIMIT);
    }

    #[test]
    fn json_without_errors_is_not_echoed() {
        // A 4xx "raw" envelope (KV v2 deleted version) carries data: it must not become the message.
        let e = ApiError::from_body("GET", "u", 404, br#"{"data":{"data":{"password":"hunter2"}}}"#);
        assert!(!e.to_string().contains("hunter2"));
    }
}
