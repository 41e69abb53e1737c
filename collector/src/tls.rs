//! TLS set-up: the ingest listener requires a client certificate verified against the
//! configured CA (`WebPkiClientVerifier`); the gateway identity is the certificate's subject CN.

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// TLS set-up errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The cryptography behind every TLS connection of the collector (ingest, console, webhooks,
/// PostgreSQL): rustls' *ring* provider (a smaller build than aws-lc-rs, with no C toolchain
/// beyond *ring*'s own). rustls 0.23.47 marks it deprecated because *ring* has no post-quantum
/// key exchange; these connections are mutually authenticated links inside an operator's
/// network, and a move to aws-lc-rs is a decision of its own. The allowance sits here, once
/// for the collector (the agent has its own, `crossline_agent::uplink::client::provider`), so
/// that a `cargo update` does not break the `-D warnings` build.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Read every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::Pem {
        path: path.display().to_string(),
        message,
    };
    let pem = crossline_config::read::read_config_file(path)
        .map_err(|e| err(format!("cannot read certificates: {}", e.reason())))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

/// Read a private key PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |message: String| TlsError::Pem {
        path: path.display().to_string(),
        message,
    };
    let pem = crossline_config::read::read_config_file(path)
        .map_err(|e| err(format!("cannot read private key: {}", e.reason())))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| err(format!("cannot read private key: {e}")))
}

/// Server config for the ingest listener: client certificates required, verified against `ca`.
pub fn ingest_server_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Server config for the API listener (no client certificates).
pub fn api_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The gateway id of a verified client certificate: its subject common name.
pub fn gateway_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}
