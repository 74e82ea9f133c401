//! Cluster PKI and the mutual-TLS configurations of the cluster port.
//!
//! Every cluster has its own CA (created by the root crate at `init` and kept behind the
//! barrier). Each node holds a certificate signed by it, valid for the fixed name
//! [`CLUSTER_SERVER_NAME`], usable for both server and client authentication. On the cluster
//! port:
//!
//! * the server **requires** a client certificate that chains to the cluster CA
//!   ([`server_config`]); a client without one is refused during the TLS handshake;
//! * the client verifies the server against the cluster CA under [`CLUSTER_SERVER_NAME`]
//!   regardless of the address it dialled ([`client_config`]): membership is proven by the CA
//!   signature, not by addresses, which may be IPs, NATed or renamed;
//! * ALPN is `h2`, or the RPC channel's protocol ([`crate::channel`]) on the server;
//!   the ring provider is used explicitly, so no process default is needed.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use zeroize::Zeroize;

use crate::error::RaftError;

/// The DNS name every node certificate carries and every client checks.
pub const CLUSTER_SERVER_NAME: &str = "cluster.coffer.internal";
/// ALPN protocol of the cluster port.
pub const ALPN_H2: &[u8] = b"h2";
/// Validity of generated certificates.
const CA_VALIDITY_DAYS: i64 = 10 * 365;
const NODE_VALIDITY_DAYS: i64 = 2 * 365;

/// A PEM-encoded private key: zeroized on drop, not clonable, printed as `[redacted]`.
pub struct SecretPem(String);

impl SecretPem {
    /// Wraps a PEM string (for keys loaded from the barrier).
    pub fn new(pem: String) -> Self {
        Self(pem)
    }

    /// The PEM text. Callers store it behind the barrier only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for SecretPem {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The cluster CA: certificate and key, both PEM.
#[derive(Debug)]
pub struct ClusterCa {
    /// Common name of the CA (needed to re-create the issuer when signing).
    pub common_name: String,
    pub cert_pem: String,
    pub key_pem: SecretPem,
}

/// A node's certificate and key, both PEM.
#[derive(Debug)]
pub struct NodeCert {
    pub cert_pem: String,
    pub key_pem: SecretPem,
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> RaftError {
    RaftError::Tls(format!("{what}: {e}"))
}

fn ca_params(common_name: &str) -> Result<CertificateParams, RaftError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_err("CA parameters", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "coffer");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(p)
}

fn validity(p: &mut CertificateParams, days: i64) {
    let now = coffer_storage::clock::now();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(days);
}

/// Generates a new cluster CA (ECDSA P-256).
pub fn generate_ca(common_name: &str) -> Result<ClusterCa, RaftError> {
    let key = KeyPair::generate().map_err(|e| tls_err("CA key", e))?;
    let mut params = ca_params(common_name)?;
    validity(&mut params, CA_VALIDITY_DAYS);
    let cert = params.self_signed(&key).map_err(|e| tls_err("CA certificate", e))?;
    Ok(ClusterCa {
        common_name: common_name.to_owned(),
        cert_pem: cert.pem(),
        key_pem: SecretPem(key.serialize_pem()),
    })
}

/// Issues a node certificate signed by `ca`, valid for [`CLUSTER_SERVER_NAME`] plus `extra_names`
/// (DNS names or IP addresses), for both server and client authentication.
pub fn issue_node_cert(
    ca: &ClusterCa,
    node_name: &str,
    extra_names: &[String],
) -> Result<NodeCert, RaftError> {
    let ca_key = KeyPair::from_pem(ca.key_pem.expose()).map_err(|e| tls_err("CA key", e))?;
    // rcgen signs with an issuer `Certificate`; re-creating it from the same name and key yields
    // the issuer name and key identifier of the stored CA certificate.
    let issuer =
        ca_params(&ca.common_name)?.self_signed(&ca_key).map_err(|e| tls_err("CA certificate", e))?;
    let mut names = vec![CLUSTER_SERVER_NAME.to_owned()];
    names.extend(extra_names.iter().cloned());
    let mut params = CertificateParams::new(names).map_err(|e| tls_err("node certificate names", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_name);
    dn.push(DnType::OrganizationName, "coffer");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, NODE_VALIDITY_DAYS);
    let key = KeyPair::generate().map_err(|e| tls_err("node key", e))?;
    let cert = params.signed_by(&key, &issuer, &ca_key).map_err(|e| tls_err("node certificate", e))?;
    Ok(NodeCert { cert_pem: cert.pem(), key_pem: SecretPem(key.serialize_pem()) })
}

fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, RaftError> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(what, e))?;
    if certs.is_empty() {
        return Err(RaftError::Tls(format!("{what}: no certificate in PEM")));
    }
    Ok(certs)
}

fn parse_key(pem: &SecretPem) -> Result<PrivateKeyDer<'static>, RaftError> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(pem.expose().as_bytes())
        .map_err(|_| RaftError::Tls("node key: unreadable PEM".into()))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, RaftError> {
    let mut store = RootCertStore::empty();
    for c in parse_certs(ca_pem, "cluster CA")? {
        store.add(c).map_err(|e| tls_err("cluster CA", e))?;
    }
    Ok(Arc::new(store))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server side of the cluster port: requires a client certificate from the cluster CA.
pub fn server_config(ca_cert_pem: &str, node: &NodeCert) -> Result<Arc<rustls::ServerConfig>, RaftError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_cert_pem)?, provider())
        .build()
        .map_err(|e| tls_err("client verifier", e))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("server config", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(parse_certs(&node.cert_pem, "node certificate")?, parse_key(&node.key_pem)?)
        .map_err(|e| tls_err("server certificate", e))?;
    cfg.alpn_protocols = vec![ALPN_H2.to_vec(), crate::channel::ALPN_RPC.to_vec()];
    Ok(Arc::new(cfg))
}

/// Client side of the cluster port: presents the node certificate, trusts only the cluster
/// CA, and checks the server under [`CLUSTER_SERVER_NAME`].
pub fn client_config(ca_cert_pem: &str, node: &NodeCert) -> Result<rustls::ClientConfig, RaftError> {
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca_cert_pem)?, provider())
        .build()
        .map_err(|e| tls_err("server verifier", e))?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("client config", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ClusterNameVerifier { inner }))
        .with_client_auth_cert(parse_certs(&node.cert_pem, "node certificate")?, parse_key(&node.key_pem)?)
        .map_err(|e| tls_err("client certificate", e))?;
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(cfg)
}

/// Full WebPKI verification against the cluster CA, with the server name fixed to
/// [`CLUSTER_SERVER_NAME`] instead of the dialled address. "Dangerous" only in rustls' API
/// sense: nothing is skipped.
#[derive(Debug)]
struct ClusterNameVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClusterNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(CLUSTER_SERVER_NAME)
            .map_err(|_| rustls::Error::General("invalid cluster server name".into()))?;
        self.inner.verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn issued_certs_build_both_configs_and_keys_are_redacted() {
        let ca = generate_ca("test cluster").unwrap();
        let node = issue_node_cert(&ca, "node-1", &["127.0.0.1".into()]).unwrap();
        server_config(&ca.cert_pem, &node).unwrap();
        client_config(&ca.cert_pem, &node).unwrap();
        assert_eq!(format!("{:?}", node.key_pem), "[redacted]");
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
        assert!(matches!(server_config("not pem", &node), Err(RaftError::Tls(_))));
    }
}
