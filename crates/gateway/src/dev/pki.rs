//! A development PKI for the quickstart and the tests: one CA and leaf
//! certificates it issues. Labelled as development material everywhere it
//! appears; private keys are written with mode 0600 (TLS-07).

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// The CRL distribution point named in development certificates.
pub const DEV_CRL_URI: &str = "http://pki.portcullis-dev.invalid/ca.crl";

/// A development certificate authority.
pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevCa")
    }
}

/// A certificate and its key, in PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Paths of a certificate and key written to disk.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl DevCa {
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(
            DnType::OrganizationName,
            "Portcullis development PKI (not for production)",
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.serial_number = Some(serial());
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        Ok(Self {
            issuer: CertifiedIssuer::self_signed(params, key)?,
        })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// An intermediate CA under this one (chains of length two, for tests of
    /// per-request chain revocation); its certificate is [`Self::cert_pem`].
    pub fn intermediate(&self, name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.serial_number = Some(serial());
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(60);
        let key = KeyPair::generate()?;
        Ok(Self {
            issuer: CertifiedIssuer::signed_by(params, key, &self.issuer)?,
        })
    }

    /// Issues a leaf for the given names (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str], client: bool) -> Result<Issued, rcgen::Error> {
        self.issue_until(names, client, None)
    }

    /// Issues a leaf valid until `not_after` (60 days from now when `None`).
    pub fn issue_until(
        &self,
        names: &[&str],
        client: bool,
        not_after: Option<time::OffsetDateTime>,
    ) -> Result<Issued, rcgen::Error> {
        let mut params =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("portcullis-dev"),
        );
        params.distinguished_name = dn;
        // No basicConstraints on a leaf: DER forbids encoding `cA: FALSE`,
        // and strict parsers (sslyze, Python cryptography) refuse it.
        params.is_ca = IsCa::NoCa;
        params.serial_number = Some(serial());
        // RFC 5280 §4.2.1.1: required in CA-issued certificates; strict
        // validators refuse a chain without it.
        params.use_authority_key_identifier_extension = true;
        // Where relying parties find revocation status. The development CA
        // writes its CRL as a file (quickstart: pki/ca.crl); the name under
        // the reserved `.invalid` domain says so rather than pointing at a
        // server that would have to exist.
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![DEV_CRL_URI.to_owned()],
        }];
        // Short-lived leaves: 60 days unless asked otherwise (Mozilla's
        // "modern" profile wants under 90).
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = not_after.unwrap_or(now + time::Duration::days(60));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if client {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        };
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a leaf and writes `<stem>.pem` and `<stem>.key` (mode 0600) in `dir`.
    pub fn issue_to(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        client: bool,
    ) -> std::io::Result<IssuedFiles> {
        self.issue_until_to(dir, stem, names, client, None)
    }

    /// [`Self::issue_to`] for a leaf valid until `not_after`.
    pub fn issue_until_to(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        client: bool,
        not_after: Option<time::OffsetDateTime>,
    ) -> std::io::Result<IssuedFiles> {
        let issued = self
            .issue_until(names, client, not_after)
            .map_err(std::io::Error::other)?;
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, issued.cert_pem)?;
        crate::files::write_private(&key, issued.key_pem.as_bytes())?;
        Ok(IssuedFiles { cert, key })
    }
}

impl DevCa {
    /// A CRL (PEM) revoking the given certificates (PEM), valid until `next_update`.
    pub fn crl(
        &self,
        revoked: &[&str],
        next_update: time::OffsetDateTime,
    ) -> Result<String, rcgen::Error> {
        use rcgen::{
            CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber,
        };
        use rustls_pki_types::pem::PemObject;
        let now = time::OffsetDateTime::now_utc();
        let mut revoked_certs = Vec::new();
        for pem in revoked {
            let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
            let (_, c) = x509_parser::parse_x509_certificate(der.as_ref())
                .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(c.raw_serial()),
                revocation_time: now - time::Duration::seconds(1),
                reason_code: None,
                invalidity_date: None,
            });
        }
        let this_update =
            (now - time::Duration::minutes(1)).min(next_update - time::Duration::seconds(1));
        CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(u64::try_from(now.unix_timestamp()).unwrap_or(1)),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)?
        .pem()
    }
}

/// A random, positive 16-byte serial number (RFC 5280 §4.1.2.2).
fn serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    rcgen::SerialNumber::from_slice(&bytes)
}

/// A self-signed leaf (for tests of the TLS-02 refusal).
pub fn self_signed_leaf(names: &[&str]) -> Result<Issued, rcgen::Error> {
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?
        .self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
