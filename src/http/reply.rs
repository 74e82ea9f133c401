//! What the HTTP layer sends back. Every response of every endpoint is a [`Reply`]; the listener
//! adds `Cache-Control: no-store` and the JSON content type to all of them.
//!
//! Errors become replies only through [`crate::http::error`].

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use serde_json::Value;

use crate::core::envelope;
use crate::core::request::Response;

/// A status, a JSON body (possibly empty) and any extra headers.
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// Extra headers (e.g. a standby's `Location`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: StatusCode, body: Vec<u8>) -> Self {
        Self { status, body, headers: Vec::new() }
    }

    /// A plain JSON object, not the envelope (the endpoints served outside the router).
    pub fn json_value(status: StatusCode, v: &Value) -> Self {
        Self::json(status, v.to_string().into_bytes())
    }

    /// 204 No Content.
    pub fn no_content() -> Self {
        Self::json(StatusCode::NO_CONTENT, Vec::new())
    }

    /// A core response rendered in the envelope (or 204 when empty).
    pub fn from_response(resp: Response, request_id: &str) -> Self {
        if let Some(raw) = resp.raw_body {
            let status = resp.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
            return Self::json(status, raw);
        }
        if resp.is_empty() {
            return match resp.status.and_then(|s| StatusCode::from_u16(s).ok()) {
                Some(s) if s != StatusCode::OK => Self::json(s, Vec::new()),
                _ => Self::no_content(),
            };
        }
        let status = resp.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
        Self::json(status, envelope::render(resp, request_id))
    }
}
