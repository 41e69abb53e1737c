//! A small private PKI for crossline: one CA, the collector's server certificate, and one client
//! certificate per gateway whose subject CN is the gateway id.
//!
//! `pki init DIR` writes `ca.pem`, `ca.key`, `server.pem`, `server.key`; `pki issue DIR --gateway
//! ID` writes `ID.pem`, `ID.key`. Private keys are written with mode 0600.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// PKI errors.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Refused to overwrite existing files.
    #[error("{0} already exists; pass --force to overwrite")]
    Exists(PathBuf),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
}

/// Validity of an issued certificate, as calendar days (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First valid day, days since 1970-01-01.
    pub not_before_day: i64,
    /// Last day, days since 1970-01-01.
    pub not_after_day: i64,
}

impl Validity {
    /// From yesterday (clock skew) to `days` days from today.
    pub fn days_from_now(days: u32) -> Validity {
        let today = crate::util::now_ms().div_euclid(86_400_000);
        Validity {
            not_before_day: today - 1,
            not_after_day: today + i64::from(days),
        }
    }

    fn apply(&self, p: &mut CertificateParams) {
        let conv = |d: i64| {
            let (y, m, day) = crossline_config::time::civil_from_days(d);
            rcgen::date_time_ymd(y, m, day)
        };
        p.not_before = conv(self.not_before_day);
        p.not_after = conv(self.not_after_day);
    }
}

fn write_file(path: &Path, data: &str, secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        o.mode(if secret { 0o600 } else { 0o644 });
        let mut f = o.open(path).map_err(io)?;
        if secret {
            use std::os::unix::fs::PermissionsExt;
            // An existing file keeps its mode on open: force it.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        f.write_all(data.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    #[cfg(not(unix))]
    {
        let _ = secret;
        std::fs::write(path, data).map_err(io)?;
    }
    Ok(())
}

fn serial() -> rcgen::SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f;
    rcgen::SerialNumber::from_slice(&b)
}

/// `pki init`: create a CA and the collector's server certificate in `dir`.
pub fn init(dir: &Path, extra_sans: &[String], days: u32, force: bool) -> Result<(), PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for f in ["ca.pem", "ca.key", "server.pem", "server.key"] {
        let p = dir.join(f);
        if p.exists() && !force {
            return Err(PkiError::Exists(p));
        }
    }
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "crossline CA");
    dn.push(DnType::OrganizationName, "crossline");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.serial_number = Some(serial());
    Validity::days_from_now(days.max(3650)).apply(&mut ca);
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    sans.extend(extra_sans.iter().cloned());
    let mut server = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "crossline-collector");
    server.distinguished_name = dn;
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.use_authority_key_identifier_extension = true;
    server.serial_number = Some(serial());
    Validity::days_from_now(days).apply(&mut server);
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &rcgen::Issuer::from_params(&ca, &ca_key))?;

    write_file(&dir.join("ca.key"), &ca_key.serialize_pem(), true)?;
    write_file(&dir.join("ca.pem"), &ca_cert.pem(), false)?;
    write_file(&dir.join("server.key"), &server_key.serialize_pem(), true)?;
    write_file(&dir.join("server.pem"), &server_cert.pem(), false)?;
    Ok(())
}

/// Whether a gateway id is acceptable (lower-case letters, digits, `-`, `_`).
pub fn valid_gateway_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A client certificate and key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (PKCS#8).
    pub key_pem: String,
}

/// Issue a gateway client certificate signed by the CA in `dir`, without writing it.
pub fn issue_pem(dir: &Path, gateway: &str, validity: Validity) -> Result<Issued, PkiError> {
    if !valid_gateway_id(gateway) {
        return Err(PkiError::Invalid(format!(
            "gateway id {gateway:?} is not valid (expected lower-case letters, digits, `-`, `_`)"
        )));
    }
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| PkiError::Io { path, source })
    };
    let ca_key = KeyPair::from_pem(&read("ca.key")?)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read("ca.pem")?, &ca_key)?;

    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, gateway);
    dn.push(DnType::OrganizationName, "crossline gateway");
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::DnsName(
        format!("{gateway}.gateway.crossline.invalid").try_into()?,
    )];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(serial());
    validity.apply(&mut p);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// `pki issue`: write `DIR/ID.pem` and `DIR/ID.key`.
pub fn issue(dir: &Path, gateway: &str, days: u32, force: bool) -> Result<(), PkiError> {
    let cert = dir.join(format!("{gateway}.pem"));
    let key = dir.join(format!("{gateway}.key"));
    for p in [&cert, &key] {
        if p.exists() && !force {
            return Err(PkiError::Exists(p.clone()));
        }
    }
    let issued = issue_pem(dir, gateway, Validity::days_from_now(days))?;
    write_file(&key, &issued.key_pem, true)?;
    write_file(&cert, &issued.cert_pem, false)?;
    Ok(())
}
