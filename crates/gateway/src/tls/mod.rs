//! TLS for listeners and upstreams (TLS-02, TLS-03, TLS-04, TLS-05, TLS-07, TLS-09).
//!
//! - Listeners: TLS 1.3 only by default; with `min_version: "1.2"` the TLS
//!   1.2 suites are restricted to ECDHE key exchange with AEAD ciphers, so
//!   export-grade, CBC, RC4, 3DES and static-RSA suites do not exist here.
//! - Private keys are refused when the file is readable by group or others,
//!   and key material never appears in errors or logs.
//! - A self-signed leaf is refused outside dev mode.
//! - Upstreams: TLS 1.3 only, chain and name verified against the trust
//!   anchors named in config (no system roots).

pub mod clientauth;
pub mod crl;

use portcullis_config::Mode;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error(
        "{path} is readable by group or others (mode {mode:o}): run `chmod 600 {path}` (TLS-07)"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error(
        "{path}: the leaf certificate is self-signed; use a certificate issued by your CA, or `mode: dev` for development (TLS-02)"
    )]
    SelfSigned { path: PathBuf },
    #[error("{path}: certificate cannot be parsed")]
    BadCertificate { path: PathBuf },
    #[error("certificate and key do not form a usable TLS identity: {0}")]
    Identity(String),
}

/// A CRL that cannot be used is reported like any unusable TLS file.
impl From<crl::CrlError> for TlsError {
    fn from(e: crl::CrlError) -> Self {
        match e {
            crl::CrlError::Read { path, reason } => Self::Read { path, reason },
            crl::CrlError::Unparsable { path } => Self::BadCertificate { path },
        }
    }
}

/// The crypto provider with only the suites Portcullis allows: every TLS 1.3
/// suite, and for TLS 1.2 only ECDHE + AEAD.
pub fn provider() -> CryptoProvider {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites.retain(|s| allowed_suite(*s));
    p
}

fn allowed_suite(s: SupportedCipherSuite) -> bool {
    match s {
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(_) => {
            let name = format!("{:?}", s.suite());
            name.starts_with("TLS_ECDHE_")
                && (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"))
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.kind().to_string(),
    })
}

/// Loads a PEM certificate chain.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::BadCertificate {
            path: path.to_owned(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Loads a private key, refusing a file readable by group or others.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    check_key_permissions(path)?;
    // The PEM text is wiped when dropped; rustls-pki-types wipes its own
    // copy of the key (issue 16 item 16).
    let pem = zeroize::Zeroizing::new(read(path)?);
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::NoKey {
        path: path.to_owned(),
    })
}

#[cfg(unix)]
pub(crate) fn check_key_permissions(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.kind().to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_key_permissions(_: &Path) -> Result<(), TlsError> {
    Ok(())
}

/// Whether a DER certificate names itself as issuer.
pub fn is_self_signed(cert: &CertificateDer<'_>) -> Option<bool> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.issuer() == parsed.subject())
}

/// Builds a listener's TLS configuration.
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
    allow_tls12: bool,
    mode: Mode,
    client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(cert_path)?;
    match is_self_signed(&certs[0]) {
        None => {
            return Err(TlsError::BadCertificate {
                path: cert_path.to_owned(),
            });
        }
        Some(true) if mode != Mode::Dev => {
            return Err(TlsError::SelfSigned {
                path: cert_path.to_owned(),
            });
        }
        Some(_) => {}
    }
    let key = load_key(key_path)?;
    let versions: &[&rustls::SupportedProtocolVersion] = if allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Identity(e.to_string()))?;
    let builder = match client_verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Identity(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Builds an upstream's TLS client configuration: TLS 1.3, the configured
/// trust anchors only, optionally the gateway's client certificate (mutual
/// TLS), CRLs and SPKI pins on top of chain and name verification (TLS-06).
/// The returned verifier reloads CRLs and tells when the earliest peer
/// certificate of the current pool expires.
pub fn upstream_client_config(
    ca_path: &Path,
    client_identity: Option<&(PathBuf, PathBuf)>,
    pins: &[[u8; 32]],
    crls: &[PathBuf],
) -> Result<(ClientConfig, Arc<UpstreamVerifier>), TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_path)? {
        roots.add(cert).map_err(|_| TlsError::BadCertificate {
            path: ca_path.to_owned(),
        })?;
    }
    let provider = Arc::new(provider());
    let verifier = Arc::new(UpstreamVerifier::new(
        Arc::new(roots),
        provider.clone(),
        pins.to_vec(),
        crls.to_vec(),
    )?);
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Identity(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone());
    let mut config = match client_identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| TlsError::Identity(e.to_string()))?,
    };
    // A resumed session skips certificate verification: every new upstream
    // connection must verify the current chain against the current CRLs.
    config.resumption = rustls::client::Resumption::disabled();
    Ok((config, verifier))
}

/// The verification state built from the CRL files.
struct Crls {
    verifier: Arc<rustls::client::WebPkiServerVerifier>,
    stamps: Vec<Option<(std::time::SystemTime, u64)>>,
}

/// Upstream certificate verification: chain, name and revocation (a CRL
/// past its `nextUpdate` fails closed) by webpki, then the SPKI pins; and
/// the earliest `notAfter` of the certificates accepted for the current
/// connection pool, so that no pooled connection outlives its peer's
/// certificate.
pub struct UpstreamVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    pins: Vec<[u8; 32]>,
    crl_paths: Vec<PathBuf>,
    crls: arc_swap::ArcSwap<Crls>,
    earliest_expiry: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for UpstreamVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamVerifier")
            .field("crls", &self.crl_paths)
            .finish_non_exhaustive()
    }
}

impl UpstreamVerifier {
    fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        pins: Vec<[u8; 32]>,
        crl_paths: Vec<PathBuf>,
    ) -> Result<Self, TlsError> {
        let crls = Self::load(&roots, &provider, &crl_paths)?;
        Ok(Self {
            roots,
            provider,
            pins,
            crl_paths,
            crls: arc_swap::ArcSwap::from_pointee(crls),
            earliest_expiry: std::sync::atomic::AtomicI64::new(i64::MAX),
        })
    }

    fn load(
        roots: &Arc<RootCertStore>,
        provider: &Arc<CryptoProvider>,
        paths: &[PathBuf],
    ) -> Result<Crls, TlsError> {
        let stamps = crl::stamps(paths);
        let (ders, _) = crl::load_crls(paths)?;
        let mut b = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        );
        if !ders.is_empty() {
            b = b.with_crls(ders).enforce_revocation_expiration();
        }
        let verifier = b.build().map_err(|e| TlsError::Identity(e.to_string()))?;
        Ok(Crls { verifier, stamps })
    }

    pub fn has_crls(&self) -> bool {
        !self.crl_paths.is_empty()
    }

    /// Reloads the CRLs when their files changed; `Ok(true)` when it did.
    pub fn reload_if_changed(&self, force: bool) -> Result<bool, TlsError> {
        if self.crl_paths.is_empty()
            || !force && crl::stamps(&self.crl_paths) == self.crls.load().stamps
        {
            return Ok(false);
        }
        let crls = Self::load(&self.roots, &self.provider, &self.crl_paths)?;
        self.crls.store(Arc::new(crls));
        Ok(true)
    }

    /// Unix seconds when the first certificate accepted for the current
    /// pool expires (`i64::MAX` when none was).
    pub fn earliest_expiry(&self) -> i64 {
        self.earliest_expiry
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// A new pool starts: nothing accepted yet.
    pub fn reset_expiry(&self) {
        self.earliest_expiry
            .store(i64::MAX, std::sync::atomic::Ordering::Release);
    }
}

impl rustls::client::danger::ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.crls.load().verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| rustls::Error::General("upstream certificate cannot be parsed".into()))?;
        if !self.pins.is_empty() {
            let spki = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.public_key().raw);
            if !self.pins.iter().any(|p| p.as_slice() == spki.as_ref()) {
                return Err(rustls::Error::General(
                    "upstream certificate does not match any SPKI pin".into(),
                ));
            }
        }
        self.earliest_expiry.fetch_min(
            cert.validity().not_after.timestamp(),
            std::sync::atomic::Ordering::AcqRel,
        );
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.crls
            .load()
            .verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.crls
            .load()
            .verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.crls.load().verifier.supported_verify_schemes()
    }
}

/// A TLS client configuration (TLS 1.2+ with the allowed suites) trusting
/// only the anchors in `ca`: for services the gateway calls out to.
pub fn client_config(ca: &Path) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca).map_err(|e| e.to_string())? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    Ok(ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An HTTPS client (TLS 1.2+ with the allowed suites, HTTP/1.1 and HTTP/2)
/// trusting only the anchors in `ca`: for JWKS and introspection endpoints.
pub fn https_client<B>(
    ca: &Path,
    connect_timeout: std::time::Duration,
) -> Result<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        B,
    >,
    String,
>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = client_config(ca)?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

/// What `check` reports about certificates and upstream identities (TLS-08,
/// TLS-10, AUTHN-10): wildcard names, certificates that expire within 30
/// days (or already have), upstreams that cannot tell the gateway from any
/// other caller, and upstream identities that are bare IP addresses.
pub fn certificate_findings(
    config: &portcullis_config::Config,
) -> Vec<portcullis_config::Weakening> {
    let mut out = Vec::new();
    let now = crate::clock::now();
    let cert = |path: &Path, field: String, out: &mut Vec<portcullis_config::Weakening>| {
        let Ok(certs) = load_certs(path) else { return };
        let Ok((_, c)) = x509_parser::parse_x509_certificate(certs[0].as_ref()) else {
            return;
        };
        let wildcard = c
            .subject_alternative_name()
            .ok()
            .flatten()
            .is_some_and(|san| {
                san.value.general_names.iter().any(|n| {
                matches!(n, x509_parser::extensions::GeneralName::DNSName(d) if d.starts_with("*."))
            })
            });
        if wildcard {
            out.push(portcullis_config::Weakening {
                path: field.clone(),
                message: "wildcard certificate: it identifies every host of its domain, not this system (TLS-08)".into(),
            });
        }
        let left = c.validity().not_after.timestamp() - now;
        if left < 30 * 86_400 {
            out.push(portcullis_config::Weakening {
                path: field,
                message: if left < 0 {
                    "certificate has expired (TLS-10)".into()
                } else {
                    format!("certificate expires in {} days (TLS-10)", left / 86_400)
                },
            });
        }
    };
    for (i, l) in config.listeners.iter().enumerate() {
        if let portcullis_config::ListenerKind::Tls(t) = &l.kind {
            cert(&t.cert, format!("listeners[{i}].tls.cert"), &mut out);
        }
    }
    for u in &config.upstreams {
        if u.scheme != portcullis_config::UpstreamScheme::Https {
            continue;
        }
        match &u.client_identity {
            Some((c, _)) => cert(c, format!("upstreams.{}.client_cert", u.name), &mut out),
            None => out.push(portcullis_config::Weakening {
                path: format!("upstreams.{}.client_cert", u.name),
                message: "the gateway presents no client certificate: this backend cannot tell the gateway from any other caller (AUTHN-10)".into(),
            }),
        }
        if u.server_name.parse::<std::net::IpAddr>().is_ok() {
            out.push(portcullis_config::Weakening {
                path: format!("upstreams.{}.server_name", u.name),
                message: "the upstream's expected identity is an IP address; name the service it must be (server_name) (TLS-08)".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TLS-03: the suites the gateway can negotiate, named one by one: a
    /// wider provider, a looser filter or a dependency update that adds a
    /// suite fails here and must be reviewed.
    #[test]
    fn the_suites_are_exactly_these() {
        let names: Vec<String> = provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(
            names,
            [
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            ]
        );
    }

    #[test]
    fn only_forward_secret_aead_suites_exist() {
        // TLS-03: no export, CBC, RC4, 3DES or static-RSA suite can be negotiated.
        let p = provider();
        assert!(!p.cipher_suites.is_empty());
        for s in &p.cipher_suites {
            let name = format!("{:?}", s.suite());
            assert!(
                name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"),
                "{name}"
            );
            assert!(
                !name.contains("CBC")
                    && !name.contains("RC4")
                    && !name.contains("3DES")
                    && !name.contains("EXPORT"),
                "{name}"
            );
        }
    }
}
