//! An answer before its status is judged ([`RawResponse`]), and the Go client's rules for judging
//! it: `Logical()` reads turn a 404 without data or warnings into `None`, writes keep a 404 that
//! carries data or warnings, every other non-2xx status is an [`ApiError`].

use serde_json::Value;

use super::error::{ApiError, ClientError};

/// A response whose status has not been judged yet.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Parsed JSON body; `None` for an empty body (204).
    pub body: Option<Value>,
    /// Request method, for error messages.
    pub method: String,
    /// Request URL, for error messages.
    pub url: String,
    /// The error a non-2xx body describes (`None` for 2xx).
    pub(super) raw_error: Option<ApiError>,
}

impl RawResponse {
    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body of a 2xx response, or the [`ApiError`] of any other.
    pub fn into_result(self) -> Result<Option<Value>, ClientError> {
        if self.is_success() {
            return Ok(self.body);
        }
        Err(self.into_api_error().into())
    }

    /// The error this response represents (meaningful for non-2xx).
    pub fn into_api_error(self) -> ApiError {
        self.raw_error.unwrap_or_else(|| ApiError {
            status: self.status,
            errors: Vec::new(),
            url: self.url,
            method: self.method,
            raw: false,
        })
    }

    /// The Go client's `Logical()` handling: a 404 is `None` unless its body carries data or
    /// warnings (then it is returned as a value); other errors are errors.
    pub fn into_logical(self) -> Result<Option<Value>, ClientError> {
        if self.status == 404 {
            let meaningful = self.body.as_ref().is_some_and(|b| {
                let data = b.get("data").is_some_and(|d| d.as_object().is_some_and(|m| !m.is_empty()));
                let warnings = b.get("warnings").is_some_and(|w| w.as_array().is_some_and(|a| !a.is_empty()));
                data || warnings
            });
            return Ok(if meaningful { self.body } else { None });
        }
        self.into_result()
    }
}

impl RawResponse {
    /// Writes: a 404 that carries data or warnings is a value; any other error status an error.
    pub(super) fn into_write(self) -> Result<Option<Value>, ClientError> {
        if self.status == 404 {
            let meaningful = self.body.as_ref().is_some_and(|b| {
                b.get("errors").is_none()
                    && (b.get("data").is_some_and(|d| d.as_object().is_some_and(|m| !m.is_empty()))
                        || b.get("warnings").is_some_and(|w| w.as_array().is_some_and(|a| !a.is_empty())))
            });
            if meaningful {
                return Ok(self.body);
            }
        }
        self.into_result()
    }
}
