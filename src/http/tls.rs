//! The TLS configuration of a listener: a certificate chain and its key from PEM files, the
//! `ring` provider, safe protocol versions, ALPN `h2` and `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a listener's TLS configuration could not be built. Messages name the file, never its
/// contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read tls_cert_file {}: {reason}", path.display())]
    ReadCertificate { path: PathBuf, reason: pem::Error },
    #[error("invalid PEM in tls_cert_file {}: {reason}", path.display())]
    InvalidCertificatePem { path: PathBuf, reason: pem::Error },
    #[error("tls_cert_file {} holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("cannot read tls_key_file {}: {reason}", path.display())]
    ReadKey { path: PathBuf, reason: pem::Error },
    #[error("TLS setup failed: {0}")]
    Setup(rustls::Error),
    #[error("TLS certificate and key do not match or are unsupported: {0}")]
    CertificateAndKey(rustls::Error),
}

/// Loads a rustls server config from PEM files (ALPN h2 + http/1.1).
pub fn tls_config(cert_file: &Path, key_file: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|reason| TlsError::ReadCertificate { path: cert_file.to_owned(), reason })?
        .collect::<Result<_, _>>()
        .map_err(|reason| TlsError::InvalidCertificatePem { path: cert_file.to_owned(), reason })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_file.to_owned() });
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|reason| TlsError::ReadKey { path: key_file.to_owned(), reason })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::CertificateAndKey)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("missing.pem");
        let Err(err) = tls_config(&missing, &missing) else { panic!("a missing file is an error") };
        assert!(matches!(err, TlsError::ReadCertificate { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!("cannot read tls_cert_file {}: ", missing.display())));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"no PEM here\n")?;
        let Err(err) = tls_config(&empty, &missing) else {
            panic!("a file without certificates is an error")
        };
        assert_eq!(err.to_string(), format!("tls_cert_file {} holds no certificate", empty.display()));
        Ok(())
    }
}
