//! Certificate revocation lists (TLS-01): read from their files, the
//! revoked `(issuer, serial)` pairs and the earliest `nextUpdate`, and the
//! file stamps that tell a watcher they changed. Used by client-certificate
//! listeners (`clientauth`) and by upstream connections (`tls`).

use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::SystemTime;

/// Why a CRL file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: certificate revocation list cannot be parsed")]
    Unparsable { path: PathBuf },
}

/// The CRLs as loaded: what the verifier uses and what stage 1 checks.
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    /// `(issuer DN, serial)` of every revoked certificate.
    pub(crate) revoked: HashSet<(Vec<u8>, Vec<u8>)>,
    /// The earliest `nextUpdate` among the CRLs (Unix seconds).
    pub(crate) next_update: Option<i64>,
}

/// `(mtime, len)` of each file, to notice a change.
pub(crate) fn stamps(paths: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    paths
        .iter()
        .map(|path| {
            let m = std::fs::metadata(path).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// Reads CRL files (PEM, or one DER CRL per file).
pub(crate) fn load_crls(
    paths: &[PathBuf],
) -> Result<(Vec<CertificateRevocationListDer<'static>>, Revocations), CrlError> {
    let mut ders = Vec::new();
    let mut rev = Revocations::default();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| CrlError::Read {
            path: path.clone(),
            reason: e.kind().to_string(),
        })?;
        let mut found: Vec<CertificateRevocationListDer<'static>> =
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .unwrap_or_default();
        if found.is_empty() {
            found.push(CertificateRevocationListDer::from(bytes));
        }
        for der in found {
            let (_, crl) = x509_parser::parse_x509_crl(der.as_ref())
                .map_err(|_| CrlError::Unparsable { path: path.clone() })?;
            let issuer = crl.issuer().as_raw().to_vec();
            for r in crl.iter_revoked_certificates() {
                rev.revoked
                    .insert((issuer.clone(), r.raw_serial().to_vec()));
            }
            let next = crl.next_update().map(|t| t.timestamp());
            rev.next_update = match (rev.next_update, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            ders.push(der);
        }
    }
    Ok((ders, rev))
}
