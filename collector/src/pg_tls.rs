//! TLS to PostgreSQL with rustls (no OpenSSL): the libpq spelling in the database URL,
//! `?sslmode=verify-full&sslrootcert=/etc/crossline/db-ca.pem`, is understood here (the
//! PostgreSQL client library knows neither `verify-full` nor `sslrootcert`) and the rest of the
//! URL goes to the client unchanged.
//!
//! - no `sslmode`, `disable`, `prefer`: as before, no TLS.
//! - `verify-full`: TLS required; the server's certificate must chain to a certificate in
//!   `sslrootcert` and name the host of the URL.
//! - `require`: TLS required and, unlike libpq, the certificate is always checked as with
//!   `verify-full` (the collector never sends the database traffic to an unverified peer).
//! - `verify-ca` (chain without the host name) is refused: use `verify-full`.
//!
//! `sslrootcert` is a PEM file of one or more CA certificates, read when the store opens; a
//! relative path is relative to the configuration file (like `database_password_file`).

use crate::store::StoreError;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use crossline_config::collector::DbUrl;

/// Split the TLS settings out of a database URL (the parsing `check` uses too, see
/// [`crossline_config::collector::split_postgres_url`]).
pub fn split_url(url: &str) -> Result<DbUrl, StoreError> {
    crossline_config::collector::split_postgres_url(url).map_err(StoreError::Unavailable)
}

/// Verified TLS to the database.
#[derive(Clone)]
pub struct DbTls {
    config: Arc<rustls::ClientConfig>,
    ca: Arc<Path>,
}

impl std::fmt::Debug for DbTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTls").field("ca", &self.ca).finish()
    }
}

impl DbTls {
    /// Trust the CA certificates of the PEM file `ca`.
    pub fn new(ca: &Path) -> Result<DbTls, StoreError> {
        let bad = |m: String| {
            StoreError::Unavailable(format!(
                "database sslrootcert {}: {m} (expected a PEM file of CA certificates)",
                ca.display()
            ))
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in certs {
            roots.add(c).map_err(|e| bad(e.to_string()))?;
        }
        let provider = crate::tls::provider();
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(DbTls {
            config: Arc::new(config),
            ca: Arc::from(ca),
        })
    }
}

impl<S> MakeTlsConnect<S> for DbTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = DbTlsStream<S>;
    type TlsConnect = DbTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<DbTlsConnect> {
        let name = ServerName::try_from(domain.to_string()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("database host {domain:?} is not a name TLS can verify: {e}"),
            )
        })?;
        Ok(DbTlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
            ca: self.ca.clone(),
        })
    }
}

/// One TLS handshake with the database.
#[allow(missing_debug_implementations)]
pub struct DbTlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    ca: Arc<Path>,
}

impl<S> TlsConnect<S> for DbTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = DbTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<DbTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let host = self.name.to_str().into_owned();
            self.connector
                .connect(self.name, stream)
                .await
                .map(DbTlsStream)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "TLS with the database at {host} refused: {e} (its certificate is checked against sslrootcert {})",
                            self.ca.display()
                        ),
                    )
                })
        })
    }
}

/// A TLS connection to the database.
#[allow(missing_debug_implementations)]
pub struct DbTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for DbTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for DbTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for DbTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn url_modes() {
        let u = split_url("postgresql://c@db:5432/x").expect("plain");
        assert_eq!((u.url.as_str(), u.ca), ("postgresql://c@db:5432/x", None));
        let u = split_url(
            "postgresql://c@db/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .expect("verify-full");
        assert_eq!(
            u.url,
            "postgresql://c@db/x?connect_timeout=3&sslmode=require"
        );
        assert_eq!(u.ca, Some(PathBuf::from("/etc/ca.pem")));
        let u = split_url("postgresql://c@db/x?sslmode=prefer").expect("prefer");
        assert_eq!(
            (u.url.as_str(), u.ca),
            ("postgresql://c@db/x?sslmode=prefer", None)
        );
        for (url, want) in [
            (
                "postgresql://c@db/x?sslmode=verify-full",
                "needs sslrootcert",
            ),
            ("postgresql://c@db/x?sslmode=require", "needs sslrootcert"),
            (
                "postgresql://c@db/x?sslmode=verify-ca&sslrootcert=/a",
                "verify-ca is not supported",
            ),
            ("postgresql://c@db/x?sslmode=maybe", "not one of"),
            ("postgresql://c@db/x?sslrootcert=/a", "only used with"),
        ] {
            let e = split_url(url).expect_err(url).to_string();
            assert!(e.contains(want) && e.contains(url), "{url}: {e}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let tmp = tempfile::Builder::new()
            .prefix("crossline-dbtls-")
            .tempdir()
            .expect("temporary directory");
        let dir = tmp.path();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let e = DbTls::new(&empty).expect_err("empty").to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no certificate"),
            "{e}"
        );
        let e = DbTls::new(&dir.join("absent.pem"))
            .expect_err("absent")
            .to_string();
        assert!(e.contains("absent.pem"), "{e}");
    }
}
