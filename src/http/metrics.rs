//! `sys/metrics`, served by every node about itself (never forwarded), and the recording of
//! every request into the node's request metrics.
//!
//! As in Vault: `?format=prometheus` gives the Prometheus text format (`text/plain;
//! version=0.0.4`), no `format` gives Vault's JSON shape, and any other format is a 400. Without
//! a `format`, a client that accepts `application/openmetrics-text` first (Prometheus' own
//! scraper) gets OpenMetrics. The endpoint takes a token whose ACL grants `read` on
//! `sys/metrics` (checked and audited like the other endpoints served outside the router),
//! unless the listener sets `telemetry { unauthenticated_metrics_access = true }`: then anyone
//! may read it, also while the node is sealed.

use std::time::Duration;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};

use crate::core::error::Error;
use crate::http::admission::{guarded, Access, BodyStyle, Outcome};
use crate::http::error::method_not_allowed;
use crate::http::reply::Reply;
use crate::http::request::HttpRequest;
use crate::http::state::HttpState;
use crate::metrics::render::{self, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use crate::metrics::{Format, Route};
use crate::policy::Operation;

/// Records one answered request of `path` (`None`: refused before its path was read).
pub fn record(state: &HttpState, path: Option<&str>, status: StatusCode, elapsed: Duration) {
    let route = match path {
        Some(p) => state.core.route_family(p),
        None => Route::INVALID,
    };
    state.core.metrics().record_request(route, status.as_u16(), elapsed);
}

/// Serves `sys/metrics`.
pub async fn serve(state: &HttpState, request: &HttpRequest) -> Reply {
    if request.method != Method::GET {
        return method_not_allowed();
    }
    let format = match format_of(request) {
        Ok(f) => f,
        Err(e) => return request.error_reply(e),
    };
    if state.unauthenticated_metrics {
        return render_reply(state, format).unwrap_or_else(|e| request.error_reply(e));
    }
    let access = Access { operation: Operation::Read, sudo: false, anonymous_ok: false };
    // The envelope style keeps the metrics themselves out of the audit record: only the request
    // (path, caller, `format`) is worth auditing.
    guarded(state, request, access, BodyStyle::Envelope, |_| async {
        render_reply(state, format).map(Outcome::Reply)
    })
    .await
}

fn format_of(request: &HttpRequest) -> Result<Format, Error> {
    match request.query_param("format").map(str::trim) {
        Some("prometheus") => Ok(Format::Prometheus),
        Some("") | None => {
            let accept = request.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
            Ok(match accept {
                Some(a) if a.trim_start().starts_with("application/openmetrics-text") => Format::OpenMetrics,
                _ => Format::Json,
            })
        }
        // The value is not echoed: error bodies never repeat what a client sent.
        Some(_) => {
            Err(Error::bad("metric response format unknown (use format=prometheus, or none for JSON)"))
        }
    }
}

fn render_reply(state: &HttpState, format: Format) -> Result<Reply, Error> {
    let mut readings = state.core.metric_readings();
    readings.cluster = state.cluster.as_ref().map(|c| c.metric_readings());
    let metrics = state.core.metrics();
    let families = render::families(metrics, &readings);
    let (body, content_type) = match format {
        Format::Json => {
            let v = render::json(&families, metrics.uptime().as_secs_f64(), coffer_storage::clock::now());
            (v.to_string(), "application/json")
        }
        Format::OpenMetrics => (encode(families, format)?, OPENMETRICS_CONTENT_TYPE),
        Format::Prometheus => (encode(families, format)?, PROMETHEUS_CONTENT_TYPE),
    };
    let mut reply = Reply::json(StatusCode::OK, body.into_bytes());
    reply.headers.push((CONTENT_TYPE, HeaderValue::from_static(content_type)));
    Ok(reply)
}

fn encode(families: Vec<render::Family>, format: Format) -> Result<String, Error> {
    render::text(families, format).map_err(|_| Error::internal("could not encode the metrics"))
}
