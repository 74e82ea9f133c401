//! The HTTP API: hyper 1 (HTTP/1.1 and h2) over TCP, with rustls unless the listener sets
//! `tls_disable`.
//!
//! [`handler`] turns requests into core calls, [`sys`] serves the endpoints that work while
//! sealed, [`sys_ops`] root generation and rekeying, [`crate::core::envelope`] renders responses and [`error`] is the only place errors become
//! statuses.

pub mod error;
pub mod handler;
pub mod sys;
pub mod sys_ops;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::core::Core;
use handler::{HttpState, Reply};

/// Default largest request body (Vault's 32 MiB).
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;

/// One bound listener.
pub struct Listener {
    pub tcp: TcpListener,
    /// `None` = plain HTTP (`tls_disable`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_request_size: usize,
}

fn to_hyper(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder()
        .status(reply.status)
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::CONTENT_TYPE, "application/json");
    for (k, v) in reply.headers {
        builder = builder.header(k, v);
    }
    builder.body(Full::new(Bytes::from(reply.body))).unwrap_or_else(|_| {
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"{\"errors\":[\"internal error\"]}")));
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// Serves one listener until `shutdown` resolves.
pub async fn serve(core: Arc<Core>, listener: Listener, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let state = Arc::new(HttpState::new(core, listener.max_request_size));
    let acceptor = listener.tls.map(TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            r = listener.tcp.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acc) => match acc.accept(stream).await {
                    Ok(tls) => serve_conn(state, TokioIo::new(tls), remote).await,
                    Err(e) => tracing::debug!(error = %e, %remote, "TLS handshake failed"),
                },
                None => serve_conn(state, TokioIo::new(stream), remote).await,
            }
        });
    }
}

async fn serve_conn<I>(state: Arc<HttpState>, io: I, remote: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(to_hyper(handler::handle(state, req, remote).await)) }
    });
    let builder = Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection(io, svc).await {
        tracing::debug!(error = %e, %remote, "connection ended with an error");
    }
}

/// Loads a rustls server config from PEM files (ALPN h2 + http/1.1).
pub fn tls_config(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cannot read tls_cert_file {}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM in tls_cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("tls_cert_file {} holds no certificate", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("cannot read tls_key_file {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key do not match or are unsupported: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
