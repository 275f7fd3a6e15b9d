//! TLS probes (evidence "observed"): which protocol versions and weak
//! suites a server accepts, and what its certificate says.
//!
//! rustls will not offer TLS 1.0/1.1 or weak suites, so those are asked
//! with a minimal hand-built ClientHello: one connection per question,
//! and the answer is read only as far as the ServerHello (chosen version
//! and suite) or an alert. The certificate is read with rustls.

use crate::model::{Evidence, Finding, Location, Outcome};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A family of suites asked for together.
pub struct Family {
    pub what: &'static str,
    pub suites: &'static [u16],
    /// Accepting one: a failure (true) or a weakening (false).
    pub fatal: bool,
}

/// The weak families the assessor asks for (TLS-03, TLS-05).
pub const WEAK: [Family; 6] = [
    Family {
        what: "export-grade suites",
        suites: &[
            0x0003, 0x0006, 0x0008, 0x000b, 0x000e, 0x0011, 0x0014, 0x0017, 0x0019,
        ],
        fatal: true,
    },
    Family {
        what: "NULL or anonymous suites",
        suites: &[
            0x0001, 0x0002, 0x003b, 0x0018, 0x001b, 0x0034, 0x003a, 0xc015, 0xc018, 0xc019,
        ],
        fatal: true,
    },
    Family {
        what: "RC4 suites",
        suites: &[0x0004, 0x0005, 0xc002, 0xc007, 0xc00c, 0xc011, 0xc016],
        fatal: true,
    },
    Family {
        what: "3DES suites",
        suites: &[0x000a, 0x0016, 0xc003, 0xc008, 0xc00d, 0xc012],
        fatal: true,
    },
    Family {
        what: "suites without forward secrecy (static RSA)",
        suites: &[0x002f, 0x0035, 0x003c, 0x003d, 0x009c, 0x009d],
        fatal: true,
    },
    Family {
        what: "CBC suites",
        suites: &[
            0xc009, 0xc00a, 0xc013, 0xc014, 0xc023, 0xc024, 0xc027, 0xc028, 0x0033, 0x0039, 0x0067,
            0x006b,
        ],
        // Not modern (Lucky13-class padding oracles, no AEAD).
        fatal: true,
    },
];

/// Forward-secret AEAD suites of TLS 1.2, to ask whether 1.0–1.2 is spoken at all.
pub const MODERN_12: &[u16] = &[0xc02b, 0xc02c, 0xc02f, 0xc030, 0xcca8, 0xcca9];

/// A ClientHello offering `suites` at `version` (0x0301 = TLS 1.0, 0x0302,
/// 0x0303), with SNI, groups, point formats and signature algorithms.
fn client_hello(version: u16, suites: &[u16], host: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut push_ext = |kind: u16, body: &[u8]| {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
        ext.extend_from_slice(body);
    };
    if host.parse::<std::net::IpAddr>().is_err() {
        let name = host.as_bytes();
        let mut sni = Vec::new();
        sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        push_ext(0x0000, &sni);
    }
    push_ext(0x000a, &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    push_ext(0x000b, &[1, 0]);
    // ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256,
    // rsa_pkcs1_sha384, rsa_pkcs1_sha1, ecdsa_sha1
    push_ext(
        0x000d,
        &[
            0, 12, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x01, 0x02, 0x01, 0x02, 0x03,
        ],
    );
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[0x5a; 32]);
    body.push(0);
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// The `(version, suite)` a ServerHello handshake message chose, read from
/// the body of the server's first handshake record (untrusted bytes: a
/// short or malformed message is `None`).
pub fn server_hello(rec: &[u8]) -> Option<(u16, u16)> {
    // Type 2, length (3), version (2), random (32), session id, suite.
    if rec.first() != Some(&2) || rec.len() < 40 {
        return None;
    }
    let chosen_version = u16::from_be_bytes([rec[4], rec[5]]);
    let at = 39 + usize::from(rec[38]);
    let suite = u16::from_be_bytes([*rec.get(at)?, *rec.get(at + 1)?]);
    Some((chosen_version, suite))
}

/// The server's choice, `(version, suite)`, or `None` when it refused.
pub async fn ask(
    addr: (&str, u16),
    host: &str,
    version: u16,
    suites: &[u16],
) -> Option<(u16, u16)> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(&client_hello(version, suites, host))
            .await
            .ok()?;
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.ok()?;
        if head[0] != 0x16 {
            return None; // an alert, or not TLS
        }
        let len = usize::from(u16::from_be_bytes([head[3], head[4]])).min(16 * 1024);
        let mut rec = vec![0u8; len];
        s.read_exact(&mut rec).await.ok()?;
        server_hello(&rec)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// Records the certificate chain and whether a client certificate was asked for.
#[derive(Debug, Default)]
struct Seen {
    chain: Vec<Vec<u8>>,
    client_cert_requested: bool,
}

#[derive(Debug)]
struct Recorder(Arc<Mutex<Seen>>, Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref().to_vec())
            .collect();
        // Inspection only: this connection carries no request.
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    verify_handshake_signatures!(1);
}

#[derive(Debug)]
struct AskedForCert(Arc<Mutex<Seen>>);

impl rustls::client::ResolvesClientCert for AskedForCert {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .client_cert_requested = true;
        None
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A handshake offering only `versions`, with no verification: the chain
/// seen, whether a client certificate was asked for, and whether the
/// handshake completed.
async fn inspect(
    addr: (&str, u16),
    host: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Seen, bool) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let completed = async {
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .ok()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Recorder(seen.clone(), provider)))
            .with_client_cert_resolver(Arc::new(AskedForCert(seen.clone())));
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).ok()?;
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .ok()?
        .ok()
    }
    .await
    .is_some();
    let out = std::mem::take(
        &mut *seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    (out, completed)
}

/// Whether the chain verifies against `ca` for `host` (rustls, TLS 1.2/1.3).
async fn trusted(addr: (&str, u16), host: &str, ca: &str) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timed out".into()),
    }
}

fn version_name(v: u16) -> &'static str {
    match v {
        0x0301 => "TLS 1.0",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        _ => "an unknown version",
    }
}

/// Where the TLS probes go, for findings and their `openssl` reproduction.
#[derive(Clone, Copy)]
struct Target<'a> {
    host: &'a str,
    port: u16,
    url: &'a str,
}

impl Target<'_> {
    fn addr(&self) -> (&str, u16) {
        (self.host, self.port)
    }

    fn at(&self, what: &str) -> Location {
        Location::Probe {
            method: "TLS".into(),
            url: self.url.to_owned(),
            status: None,
            curl: format!(
                "openssl s_client -connect {}:{} {what}",
                self.host, self.port
            ),
        }
    }
}

fn finding(
    id: &'static str,
    rule: &'static str,
    outcome: Outcome,
    message: String,
    loc: Location,
) -> Finding {
    Finding::new(id, rule, outcome, Evidence::Observed, message, loc)
}

/// Runs the TLS probes against `host:port`.
pub async fn probe(host: &str, port: u16, ca: Option<&str>, url: &str) -> Vec<Finding> {
    let t = Target { host, port, url };
    let mut out = Vec::new();
    let (old_accepted, tls12) = versions(t, &mut out).await;
    suites(t, old_accepted, tls12, &mut out).await;
    // The certificate.
    let (seen, _) = inspect(t.addr(), host, rustls::DEFAULT_VERSIONS).await;
    if seen.chain.is_empty() {
        return out;
    }
    if seen.client_cert_requested {
        out.push(finding(
            "AUTHN-11",
            "tls.client-certificate-requested",
            Outcome::Pass,
            "the server asks callers for a client certificate (mutual TLS)".into(),
            t.at("-cert client.pem -key client.key"),
        ));
    }
    if let Some(leaf) = seen.chain.first()
        && let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf)
    {
        certificate(t, &cert, &mut out);
    }
    if let Some(ca) = ca {
        match trusted(t.addr(), t.host, ca).await {
            Ok(()) => out.push(finding(
                "TLS-02",
                "tls.trusted",
                Outcome::Pass,
                "the chain verifies against the given CA".into(),
                t.at("-CAfile ca.pem -verify_return_error"),
            )),
            Err(e) => out.push(finding(
                "TLS-02",
                "tls.untrusted",
                Outcome::Fail,
                format!("the chain does not verify against the given CA: {e}"),
                t.at("-CAfile ca.pem -verify_return_error"),
            )),
        }
    }
    out
}

/// Protocol versions below 1.3, and whether 1.2 and 1.3 are spoken (TLS-05).
/// Returns whether 1.0 or 1.1 was accepted, and the answer to a 1.2 hello.
async fn versions(t: Target<'_>, out: &mut Vec<Finding>) -> (bool, Option<(u16, u16)>) {
    let mut old_accepted = false;
    for (version, flag) in [(0x0301, "-tls1"), (0x0302, "-tls1_1")] {
        let all: Vec<u16> = WEAK
            .iter()
            .flat_map(|f| f.suites.iter().copied())
            .chain(MODERN_12.iter().copied())
            .collect();
        if let Some((v, _)) = ask(t.addr(), t.host, version, &all).await
            && v == version
        {
            old_accepted = true;
            let mut f = Finding::new(
                "TLS-05",
                "tls.old-protocol",
                Outcome::Fail,
                Evidence::Observed,
                format!("{} is accepted", version_name(version)),
                t.at(flag),
            );
            f = f.critical();
            out.push(f);
        }
    }
    let tls12 = ask(
        t.addr(),
        t.host,
        0x0303,
        &[
            MODERN_12,
            &WEAK
                .iter()
                .flat_map(|f| f.suites.iter().copied())
                .collect::<Vec<_>>(),
        ]
        .concat(),
    )
    .await;
    let tls13 = inspect(t.addr(), t.host, &[&rustls::version::TLS13])
        .await
        .1;
    match tls12 {
        Some((0x0303, suite)) if !tls13 => out.push(finding(
            "TLS-05",
            "tls.no-tls13",
            Outcome::Partial,
            format!(
                "TLS 1.2 is the newest version accepted: TLS 1.3 is refused (chose 0x{suite:04x})"
            ),
            t.at("-tls1_3"),
        )),
        Some((0x0303, suite)) => out.push(finding(
            "TLS-05",
            "tls.tls12-accepted",
            Outcome::Pass,
            format!("TLS 1.2 is accepted besides TLS 1.3 (chose 0x{suite:04x})"),
            t.at("-tls1_2"),
        )),
        _ if !old_accepted => out.push(finding(
            "TLS-05",
            "tls.tls13-only",
            Outcome::Pass,
            "only TLS 1.3 is accepted (1.0, 1.1 and 1.2 refused)".into(),
            t.at("-tls1_3"),
        )),
        _ => {}
    }
    (old_accepted, tls12)
}

/// TLS-03: export-class suites; TLS-05: no forward secrecy, CBC.
async fn suites(
    t: Target<'_>,
    old_accepted: bool,
    tls12: Option<(u16, u16)>,
    out: &mut Vec<Finding>,
) {
    if matches!(tls12, Some((0x0303, _))) {
        let mut export_class = false;
        for fam in &WEAK {
            if let Some((0x0303, suite)) = ask(t.addr(), t.host, 0x0303, fam.suites).await {
                let id = if fam.what.contains("forward") || fam.what.contains("CBC") {
                    "TLS-05"
                } else {
                    "TLS-03"
                };
                export_class |= id == "TLS-03";
                let mut f = Finding::new(
                    id,
                    "tls.weak-suite",
                    if fam.fatal {
                        Outcome::Fail
                    } else {
                        Outcome::Partial
                    },
                    Evidence::Observed,
                    format!("TLS 1.2 {} are accepted (chose 0x{suite:04x})", fam.what),
                    t.at(&format!("-tls1_2 -cipher <{}>", fam.what)),
                );
                if fam.fatal && id == "TLS-03" {
                    f = f.critical();
                }
                out.push(f);
            }
        }
        if !export_class {
            out.push(finding(
                "TLS-03",
                "tls.no-weak-suites",
                Outcome::Pass,
                "no export, NULL, anonymous, RC4 or 3DES suite is accepted".into(),
                t.at("-tls1_2"),
            ));
        }
    } else if !old_accepted {
        out.push(finding(
            "TLS-03",
            "tls.no-weak-suites",
            Outcome::Pass,
            "TLS 1.3 only: no weak suite can be negotiated".into(),
            t.at("-tls1_3"),
        ));
    }
}

/// The leaf certificate: self-signed (TLS-02), validity (TLS-10), names
/// (TLS-09), key size (TLS-05).
fn certificate(
    t: Target<'_>,
    cert: &x509_parser::certificate::X509Certificate<'_>,
    out: &mut Vec<Finding>,
) {
    let host = t.host;
    let self_signed = cert.subject() == cert.issuer();
    if self_signed {
        out.push(finding(
            "TLS-02",
            "tls.self-signed",
            Outcome::Fail,
            "the server's certificate is self-signed".into(),
            t.at("-showcerts"),
        ));
    }
    let now = x509_parser::time::ASN1Time::now();
    let validity = cert.validity();
    if now < validity.not_before || now > validity.not_after {
        out.push(finding(
            "TLS-10",
            "tls.certificate-out-of-date",
            Outcome::Fail,
            "the server's certificate is outside its validity period".into(),
            t.at("-showcerts"),
        ));
    } else {
        out.push(finding(
            "TLS-10",
            "tls.certificate-valid",
            Outcome::Pass,
            format!("the certificate is valid until {}", validity.not_after),
            t.at("-showcerts"),
        ));
    }
    let names = certificate_names(cert);
    let matches = names.iter().any(|n| {
        n.eq_ignore_ascii_case(host)
            || n.strip_prefix("*.").is_some_and(|d| {
                host.split_once('.')
                    .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(d))
            })
    });
    if matches {
        out.push(finding(
            "TLS-09",
            "tls.name-matches",
            Outcome::Pass,
            format!("the certificate names {host}"),
            t.at("-verify_hostname"),
        ));
    } else {
        out.push(finding(
            "TLS-09",
            "tls.name-mismatch",
            Outcome::Fail,
            format!(
                "the certificate does not name {host} (it names {})",
                names.join(", ")
            ),
            t.at("-verify_hostname"),
        ));
    }
    let key = cert.public_key();
    let weak_key = match key.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            (rsa.key_size() < 2048).then(|| format!("RSA {} bits", rsa.key_size()))
        }
        Ok(x509_parser::public_key::PublicKey::EC(ec)) => {
            (ec.key_size() < 256).then(|| format!("EC {} bits", ec.key_size()))
        }
        _ => None,
    };
    if let Some(k) = weak_key {
        out.push(finding(
            "TLS-05",
            "tls.weak-key",
            Outcome::Fail,
            format!("the certificate key is {k}"),
            t.at("-showcerts"),
        ));
    }
}

/// The DNS and IPv4 names a certificate's SAN holds.
fn certificate_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                        4 => Some(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_is_well_formed() {
        let hello = client_hello(0x0303, &[0xc02b, 0x002f], "api.example.com");
        assert_eq!(&hello[..3], &[0x16, 0x03, 0x01]);
        let record_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(record_len, hello.len() - 5);
        assert_eq!(hello[5], 1, "ClientHello");
        let hs_len = usize::from(hello[7]) << 8 | usize::from(hello[8]);
        assert_eq!(hs_len, record_len - 4);
        assert_eq!(&hello[9..11], &[0x03, 0x03]);
        // suites after version (2) + random (32) + session id length (1)
        assert_eq!(&hello[44..46], &[0, 4]);
        assert_eq!(&hello[46..50], &[0xc0, 0x2b, 0x00, 0x2f]);
    }

    #[test]
    fn a_server_hello_gives_its_version_and_suite_and_short_ones_nothing() {
        // type, length, version 1.2, random, session id of 3 bytes, suite.
        let mut hello = vec![2, 0, 0, 45, 0x03, 0x03];
        hello.extend_from_slice(&[7; 32]);
        hello.extend_from_slice(&[3, 1, 2, 3, 0xc0, 0x2f, 0]);
        assert_eq!(server_hello(&hello), Some((0x0303, 0xc02f)));
        assert_eq!(server_hello(&hello[..42]), None, "the suite cut off");
        hello[38] = 255;
        assert_eq!(server_hello(&hello), None, "a session id past the end");
        hello[0] = 1;
        assert_eq!(server_hello(&hello), None, "not a ServerHello");
        assert_eq!(server_hello(&[]), None);
    }
}
