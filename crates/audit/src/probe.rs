//! Live probes of a running API (evidence level "observed"). Bounded: a
//! fixed, small number of requests per probe, one at a time, at most
//! [`MAX_RATE`] per second, bodies read up to 1 MiB. Credentials never
//! appear in findings: `curl` reproductions name them `$API_KEY`, `$TOKEN`.

use crate::model::{Evidence, Finding, Location, Outcome};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

mod discover;

/// Requests per second, at most.
pub const MAX_RATE: u64 = 50;
/// Requests in the throttling burst, at most.
pub const MAX_BURST: usize = 1000;

/// Where and how to probe.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://host:port` (a path prefix is kept).
    pub url: String,
    /// PEM trust anchors for the target's certificate.
    pub ca: Option<String>,
    pub api_key: Option<String>,
    pub api_key_header: String,
    /// A token valid with all scopes.
    pub token: Option<String>,
    /// A valid token that lacks the scope `scoped` needs.
    pub token_without_scope: Option<String>,
    /// A protected read, e.g. `GET /v1/orders`; without one (and without a
    /// secured read in the document) the identity matrix is not run: `GET /`
    /// is not assumed to be protected.
    pub protected: Option<(Method, String)>,
    /// An operation needing a scope (a write), e.g. `POST /v1/orders`.
    pub scoped: Option<(Method, String)>,
    /// Requests in the throttling burst.
    pub burst: usize,
    /// A client certificate that identifies the caller (mutual TLS).
    pub client_cert: Option<ClientCert>,
    /// Refuse a target whose certificate does not verify instead of
    /// probing its HTTP plane over the unverified connection.
    pub strict_tls: bool,
    /// The API's OpenAPI document (`--spec`); without one, the prober
    /// looks for it at the usual places.
    pub document: Option<serde_json::Value>,
    /// Writes of a document may be sent (without credentials) to see
    /// whether they are refused; off, only safe methods are.
    pub allow_writes: bool,
}

/// A client certificate and its key, presented as a credential.
#[derive(Debug)]
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientCert {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ClientCert {
    /// A self-signed certificate with the same names as this one's leaf:
    /// what an impostor who knows the name, not the key, would present.
    fn impostor(&self) -> Result<Self, String> {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};
        use x509_parser::extensions::GeneralName;
        let leaf = self.chain.first().ok_or("--cert: no certificate")?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(leaf).map_err(|e| format!("--cert: {e}"))?;
        let mut params = CertificateParams::default();
        if let Some(cn) = cert.subject().iter_common_name().next()
            && let Ok(cn) = cn.as_str()
        {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                let san = match name {
                    GeneralName::DNSName(d) => d.to_string().try_into().map(SanType::DnsName),
                    GeneralName::URI(u) => u.to_string().try_into().map(SanType::URI),
                    _ => continue,
                };
                params
                    .subject_alt_names
                    .push(san.map_err(|e| format!("--cert: {e}"))?);
            }
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        Ok(Self {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        })
    }
}

/// Which client certificate a request presents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Presented {
    #[default]
    Nothing,
    /// The one given with `--cert`.
    Given,
    /// A self-signed one with the same names.
    Impostor,
}

/// TLS client configurations, one for each certificate a request can present.
struct Tls {
    verifier: Arc<TargetVerifier>,
    nothing: Arc<rustls::ClientConfig>,
    given: Option<Arc<rustls::ClientConfig>>,
    impostor: Option<Arc<rustls::ClientConfig>>,
}

/// One exchange as the probes see it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request a probe sends, described for findings (no secrets).
#[derive(Debug, Clone)]
struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String, &'static str)>,
    body: Option<(String, Bytes)>,
    cert: Presented,
}

impl Req {
    fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            cert: Presented::Nothing,
        }
    }
    /// `shown`: how `curl` shows the value (a variable for secrets).
    fn header(mut self, name: &str, value: &str, shown: &'static str) -> Self {
        self.headers
            .push((name.to_owned(), value.to_owned(), shown));
        self
    }
    fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = Some((content_type.to_owned(), body.into()));
        self
    }
    fn presenting(mut self, cert: Presented) -> Self {
        self.cert = cert;
        self
    }
}

pub struct Prober {
    target: Target,
    base: http::Uri,
    tls: Option<Tls>,
    findings: Vec<Finding>,
    /// Requests that got no answer: reported, never a verdict.
    notes: Vec<String>,
    /// Every exchange, for the hygiene checks at the end.
    seen: Vec<(Location, Exchange)>,
    last: Option<std::time::Instant>,
    /// The API's OpenAPI document, given or found, and where it came from.
    document: Option<(serde_json::Value, String)>,
    /// The protected read the identity matrix asks (`GET /` for the other
    /// probes when none is known), and whether it is known to be protected.
    protected: (Method, String),
    protected_known: bool,
}

/// Verifies the target's certificate like any client would. Unless
/// `strict`, a certificate that does not verify (self-signed, CA-flagged,
/// expired, for another name, no `--ca` given) is accepted so the HTTP plane
/// can still be judged, and the first reason is kept for the report; the
/// handshake signature is checked either way. The certificate itself is
/// judged by the TLS probes (TLS-02, TLS-09, TLS-10).
#[derive(Debug)]
struct TargetVerifier {
    webpki: Result<Arc<rustls::client::WebPkiServerVerifier>, String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    strict: bool,
    unverified: std::sync::Mutex<Option<String>>,
}

impl TargetVerifier {
    fn new(ca: Option<&str>, strict: bool) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = ca {
            use rustls::pki_types::pem::PemObject;
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots
                    .add(c.map_err(|e| format!("--ca: {e}"))?)
                    .map_err(|e| format!("--ca: {e}"))?;
            }
        }
        let webpki = if roots.is_empty() {
            Err("no trust anchors were given (--ca)".to_owned())
        } else {
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("--ca: {e}"))
        };
        Ok(Self {
            webpki,
            provider,
            strict,
            unverified: std::sync::Mutex::new(None),
        })
    }

    /// Why the target's certificate did not verify, if it did not.
    fn unverified(&self) -> Option<String> {
        self.unverified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl rustls::client::danger::ServerCertVerifier for TargetVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verdict = match &self.webpki {
            Ok(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            Err(why) => Err(rustls::Error::General(why.clone())),
        };
        match verdict {
            Err(e) if !self.strict => {
                self.unverified
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert_with(|| e.to_string());
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    verify_handshake_signatures!(provider);
}

fn tls_config(
    verifier: &Arc<TargetVerifier>,
    cert: Option<&ClientCert>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone());
    let mut c = match cert {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .map_err(|e| format!("--cert/--key: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// A JWT with its header and payload replaced (signature kept or dropped).
fn forge(
    token: &str,
    header: Option<&serde_json::Value>,
    edit: impl FnOnce(&mut serde_json::Value),
    signature: Option<&str>,
) -> Option<String> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    edit(&mut payload);
    let h = header.map_or_else(|| h.to_owned(), |h| URL_SAFE_NO_PAD.encode(h.to_string()));
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    Some(format!("{h}.{p}.{}", signature.unwrap_or(s)))
}

/// Longest lifetime (`exp` − `iat`) an access token may have unremarked.
const MAX_TOKEN_LIFETIME: i64 = 24 * 3600;

/// What the token the user gave says about how the API issues tokens: its
/// algorithm (AUTHN-08: `none` and shared-secret HS* fail), its claims
/// (AUTHN-01: `iss`, `aud`, `exp` present) and its lifetime. An opaque
/// token (not a JWT) says nothing: no finding.
fn judge_token(token: &str) -> Vec<(&'static str, &'static str, Outcome, String)> {
    let mut parts = token.split('.');
    let decode = |p: Option<&str>| -> Option<serde_json::Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p?.trim_end_matches('=')).ok()?).ok()
    };
    let (Some(header), Some(claims)) = (decode(parts.next()), decode(parts.next())) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let alg = header["alg"].as_str().unwrap_or("(none given)");
    found.push(match alg {
        "none" | "(none given)" => ("AUTHN-08", "probe.token-unsigned", Outcome::Fail, format!("the token given is not signed (`alg: {alg}`)")),
        a if a.starts_with("HS") => ("AUTHN-08", "probe.token-symmetric", Outcome::Fail, format!("the token given is signed with a shared secret (`{a}`): every party that can verify it can also mint it; use an asymmetric algorithm (ES256, EdDSA, PS256)")),
        a => ("AUTHN-08", "probe.token-asymmetric", Outcome::Pass, format!("the token given is signed with an asymmetric algorithm (`{a}`)")),
    });
    let missing: Vec<&str> = ["iss", "aud", "exp"]
        .into_iter()
        .filter(|c| claims.get(*c).is_none_or(serde_json::Value::is_null))
        .collect();
    if missing.is_empty() {
        found.push((
            "AUTHN-01",
            "probe.token-claims",
            Outcome::Pass,
            "the token given carries `iss`, `aud` and `exp`".to_owned(),
        ));
    } else {
        found.push(("AUTHN-01", "probe.token-claims-missing", Outcome::Fail, format!("the token given lacks {}: the API cannot bind it to an issuer, an audience and an end", missing.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "))));
    }
    if let (Some(exp), Some(iat)) = (claims["exp"].as_i64(), claims["iat"].as_i64())
        && exp - iat > MAX_TOKEN_LIFETIME
    {
        found.push((
            "AUTHN-01",
            "probe.token-long-lived",
            Outcome::Partial,
            format!(
                "the token given lives {} hours: access tokens should live minutes to hours",
                (exp - iat) / 3600
            ),
        ));
    }
    found
}

/// Card numbers (13–19 digits passing Luhn) in a text.
pub fn card_number(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
            let j = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if (13..=19).contains(&j) {
                let digits = &text[i..i + j];
                let sum: u32 = digits
                    .bytes()
                    .rev()
                    .enumerate()
                    .map(|(k, d)| {
                        let d = u32::from(d - b'0');
                        if k % 2 == 1 {
                            if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                        } else {
                            d
                        }
                    })
                    .sum();
                if sum % 10 == 0 && !digits.bytes().all(|d| d == digits.as_bytes()[0]) {
                    return Some(digits.to_owned());
                }
            }
            i += j;
        } else {
            i += 1;
        }
    }
    None
}

/// What a stack trace, a framework or an internal host looks like.
const STACK_TRACES: [&str; 9] = [
    "Traceback (most recent call last)",
    "Exception in thread",
    "\tat java.",
    "at org.springframework",
    "System.NullReferenceException",
    "   at System.",
    "node_modules/",
    ".py\", line ",
    "panicked at",
];
const FRAMEWORKS: [&str; 10] = [
    "Werkzeug", "Express", "Django", "Flask", "Spring", "ASP.NET", "PHP/", "Tomcat", "Jetty",
    "Kestrel",
];
const BANNERS: [&str; 5] = [
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-generator",
];
/// Response headers that exist to debug a server (OUTPUT-06).
const DEBUG_HEADERS: [&str; 6] = [
    "x-debug-token",
    "x-debug-token-link",
    "x-backend-server",
    "x-upstream-addr",
    "x-real-server",
    "x-debug",
];

/// Whether a text names an internal host (`*.internal`, `*.corp`,
/// `*.local`, `*.lan`) or a private IPv4 address (RFC 1918, link-local),
/// other than `own`, the host the probes were sent to.
pub fn internal_host(text: &str, own: &str) -> bool {
    let mut lower = text.to_ascii_lowercase();
    if !own.is_empty() {
        lower = lower.replace(&own.to_ascii_lowercase(), " ");
    }
    let names = [".internal", ".corp", ".local", ".lan"]
        .iter()
        .any(|suffix| {
            lower.match_indices(suffix).any(|(at, _)| {
                let end = at + suffix.len();
                let host_before = at > 0 && lower.as_bytes()[at - 1].is_ascii_alphanumeric();
                let ends = lower
                    .as_bytes()
                    .get(end)
                    .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'-');
                host_before && ends
            })
        });
    names
        || lower
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .filter_map(|w| w.trim_matches('.').parse::<std::net::Ipv4Addr>().ok())
            .any(|ip| ip.is_private() || ip.is_link_local())
}

impl Prober {
    pub fn new(target: Target) -> Result<Self, String> {
        let base: http::Uri = target
            .url
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("--target: {e}"))?;
        if base.authority().is_some_and(|a| a.as_str().ends_with(':')) {
            return Err("--target: the port after `:` is empty".into());
        }
        let tls = match base.scheme_str() {
            Some("https") => {
                let verifier = Arc::new(TargetVerifier::new(
                    target.ca.as_deref(),
                    target.strict_tls,
                )?);
                let cert = target.client_cert.as_ref();
                let impostor = cert.map(ClientCert::impostor).transpose()?;
                Some(Tls {
                    nothing: tls_config(&verifier, None)?,
                    given: cert.map(|c| tls_config(&verifier, Some(c))).transpose()?,
                    impostor: impostor
                        .map(|c| tls_config(&verifier, Some(&c)))
                        .transpose()?,
                    verifier,
                })
            }
            Some("http") if target.client_cert.is_some() => {
                return Err("--cert: a client certificate needs an https:// target".into());
            }
            Some("http") => None,
            _ => return Err("--target: an http:// or https:// URL".into()),
        };
        Ok(Self {
            base,
            tls,
            findings: Vec::new(),
            notes: Vec::new(),
            seen: Vec::new(),
            last: None,
            document: None,
            protected_known: target.protected.is_some(),
            protected: target
                .protected
                .clone()
                .unwrap_or((Method::GET, "/".to_owned())),
            target,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.url.trim_end_matches('/'))
    }

    fn location(&self, req: &Req, status: Option<StatusCode>) -> Location {
        let mut curl = String::from("curl -sS");
        if self.tls.is_some() {
            curl.push_str(" --cacert \"$CA\"");
        }
        let _ = write!(curl, " -X {}", req.method);
        match req.cert {
            Presented::Nothing => {}
            Presented::Given => curl.push_str(" --cert \"$CLIENT_CERT\" --key \"$CLIENT_KEY\""),
            Presented::Impostor => curl.push_str(" --cert impostor.pem --key impostor.key"),
        }
        for (name, value, shown) in &req.headers {
            // A secret is a shell variable: double quotes let it expand.
            let shown = match value.strip_prefix("Bearer ") {
                Some(_) if name == "authorization" => format!("Bearer {shown}"),
                _ => (*shown).to_owned(),
            };
            if shown.contains('$') {
                curl.push_str(&format!(" -H \"{name}: {shown}\""));
            } else {
                curl.push_str(&format!(" -H '{name}: {shown}'"));
            }
        }
        if let Some((ct, body)) = &req.body {
            let shown = if body.len() > 200 {
                format!("<{} bytes>", body.len())
            } else {
                String::from_utf8_lossy(body).replace('\'', "'\\''")
            };
            curl.push_str(&format!(" -H 'content-type: {ct}' --data '{shown}'"));
        }
        let url = self.url(&req.path).replace('\'', "%27");
        if url.contains('$') {
            curl.push_str(&format!(" \"{}\"", url.replace('"', "%22")));
        } else {
            curl.push_str(&format!(" '{url}'"));
        }
        Location::Probe {
            method: req.method.to_string(),
            url: self.url(&req.path),
            status: status.map(|s| s.as_u16()),
            curl,
        }
    }

    fn record(
        &mut self,
        id: &'static str,
        rule: &'static str,
        outcome: Outcome,
        message: impl Into<String>,
        location: Location,
    ) {
        self.findings.push(Finding::new(
            id,
            rule,
            outcome,
            Evidence::Observed,
            message,
            location,
        ));
    }

    /// Sends one request on its own connection. A server that answers
    /// before reading a body and closes can reset the connection under the
    /// answer: such a request is tried again (up to 3 times) so the report
    /// does not depend on that race.
    async fn send(&mut self, req: &Req) -> Result<Exchange, String> {
        let with_body = req.body.as_ref().is_some_and(|(_, b)| !b.is_empty());
        let mut tries = 0;
        loop {
            tries += 1;
            match self.send_once(req).await {
                Err(e) if with_body && tries < 3 && lost_to_a_close(&e) => {}
                other => return other,
            }
        }
    }

    async fn send_once(&mut self, req: &Req) -> Result<Exchange, String> {
        if let Some(last) = self.last {
            let gap = Duration::from_millis(1000 / MAX_RATE);
            if let Some(wait) = gap.checked_sub(last.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        self.last = Some(std::time::Instant::now());
        let host = self.base.host().unwrap_or("localhost").to_owned();
        let port = self
            .base
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let mut b = http::Request::builder()
            .method(req.method.clone())
            .uri(format!(
                "{}{}",
                self.base.path().trim_end_matches('/'),
                req.path
            ))
            .header(
                http::header::HOST,
                self.base
                    .authority()
                    .map_or(host.clone(), ToString::to_string),
            );
        for (name, value, _) in &req.headers {
            b = b.header(name.as_str(), value.as_str());
        }
        let body = match &req.body {
            Some((ct, body)) => {
                b = b.header(http::header::CONTENT_TYPE, ct.as_str());
                body.clone()
            }
            None => Bytes::new(),
        };
        let request = b.body(Paced::new(body)).map_err(|e| e.to_string())?;
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("{host}:{port}: {e}"))?;
            match &self.tls {
                Some(tls) => {
                    // Never another certificate than the one asked for.
                    let config = match req.cert {
                        Presented::Nothing => Some(&tls.nothing),
                        Presented::Given => tls.given.as_ref(),
                        Presented::Impostor => tls.impostor.as_ref(),
                    }
                    .ok_or("no client certificate to present")?;
                    let name = rustls::pki_types::ServerName::try_from(host.clone())
                        .map_err(|e| e.to_string())?;
                    let tls = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS: {e}"))?;
                    exchange(tls, request).await
                }
                None => exchange(tcp, request).await,
            }
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?
    }

    /// Sends and remembers the exchange for the hygiene checks.
    async fn probe(&mut self, req: &Req) -> Option<Exchange> {
        match self.send(req).await {
            Ok(x) => {
                let loc = self.location(req, Some(x.status));
                self.seen.push((loc, x.clone()));
                Some(x)
            }
            Err(e) => {
                self.notes.push(format!(
                    "{} {}: no answer: {e}",
                    req.method,
                    self.url(&req.path)
                ));
                None
            }
        }
    }

    /// The request with the given credentials: `app`, the application's
    /// (API key and client certificate); `token`, a bearer token.
    fn authed(&self, req: Req, app: bool, token: Option<(&str, &'static str)>) -> Req {
        let mut req = req;
        if app && let Some(k) = &self.target.api_key {
            req = req.header(&self.target.api_key_header.clone(), k, "$API_KEY");
        }
        if let Some((t, shown)) = token {
            req = req.header("authorization", &format!("Bearer {t}"), shown);
        }
        if app && self.target.client_cert.is_some() {
            req = req.presenting(Presented::Given);
        }
        req
    }

    /// Runs every probe; the findings, and notes on requests that got no answer.
    pub async fn run(mut self) -> (Vec<Finding>, Vec<String>) {
        if self.tls.is_some() {
            let host = self.base.host().unwrap_or("localhost").to_owned();
            let port = self.base.port_u16().unwrap_or(443);
            let url = self.target.url.clone();
            let found = crate::tls_probe::probe(&host, port, self.target.ca.as_deref(), &url).await;
            self.findings.extend(found);
        }
        if self.tls.is_none() {
            self.plaintext().await;
        }
        self.find_document().await;
        self.identity().await;
        self.unauthenticated_write().await;
        self.documented_operations().await;
        self.headers_and_cors().await;
        self.input().await;
        self.correlation().await;
        self.exposure().await;
        self.throttling().await;
        self.hygiene();
        // Answers prove something only if the API was reached: a wrong base
        // URL (every answer 404) or a silent server passes nothing.
        let reached = self
            .seen
            .iter()
            .any(|(_, x)| x.status != StatusCode::NOT_FOUND);
        if !reached {
            self.findings
                .retain(|f| !f.rule.starts_with("probe.") || f.outcome == Outcome::Fail);
        }
        let mut notes = collapse(self.notes);
        if !reached {
            let answers = match self.seen.len() {
                0 => "no probe got an answer".to_owned(),
                n => format!("all {n} answers were 404"),
            };
            notes.insert(
                0,
                format!(
                    "NOTHING SHOWS THE API WAS REACHED: {answers}, so no probe passes or half-passes anything; check --target and --operation."
                ),
            );
        }
        if let Some(why) = self.tls.as_ref().and_then(|t| t.verifier.unverified()) {
            notes.insert(
                0,
                format!(
                    "PROBED OVER AN UNVERIFIED CONNECTION: the target's certificate does not verify ({why}). The HTTP probes accepted it so the API behind it could still be judged; the certificate itself is judged under TLS-02, TLS-09 and TLS-10. `--strict-tls` refuses such a connection instead."
                ),
            );
        }
        (self.findings, notes)
    }

    /// TLS-05 for an `http://` target: a plain listener may only redirect
    /// to HTTPS. Asked without credentials, before anything else is sent.
    async fn plaintext(&mut self) {
        let (method, path) = self.protected.clone();
        let req = Req::new(method, &path);
        let Some(x) = self.probe(&req).await else {
            return;
        };
        let loc = self.location(&req, Some(x.status));
        let to_https = x
            .header("location")
            .is_some_and(|l| l.to_ascii_lowercase().starts_with("https://"));
        if x.status.is_redirection() && to_https {
            self.record(
                "TLS-05",
                "probe.plaintext-redirects",
                Outcome::Pass,
                format!("plain HTTP only redirects to HTTPS ({})", x.status),
                loc,
            );
        } else {
            self.findings.push(
                Finding::new(
                    "TLS-05",
                    "probe.plaintext",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!(
                        "the API answers over plain HTTP ({}): requests, credentials and answers cross the network readable by anyone on the path",
                        x.status
                    ),
                    loc,
                )
                .critical(),
            );
        }
    }

    /// AUTHN-14, AUTHZ-08, AUTHN-13, AUTHN-04, AUTHN-06.
    async fn identity(&mut self) {
        if !self.protected_known {
            self.notes.push("no protected operation known (give --operation, --config or --spec): the identity matrix (AUTHN-02/06/13/14, AUTHZ-08) was not run; `GET /` is not assumed to be protected".to_owned());
            return;
        }
        let (method, path) = self.protected.clone();
        let token = self.target.token.clone();
        let base = Req::new(method.clone(), &path);
        // Valid credentials first: the matrix means something only if they work.
        let valid = self.authed(base.clone(), true, token.as_deref().map(|t| (t, "$TOKEN")));
        let Some(ok) = self.probe(&valid).await else {
            return;
        };
        if !ok.status.is_success() {
            let loc = self.location(&valid, Some(ok.status));
            self.record("AUTHN-14", "probe.valid-credentials-refused", Outcome::Partial, format!("valid credentials got {}: the identity matrix is inconclusive (check --token, --api-key, --operation)", ok.status), loc);
            return;
        }
        // The token the API accepted is judged itself.
        if let Some(t) = &token {
            let loc = self.location(&valid, Some(ok.status));
            for (id, rule, outcome, message) in judge_token(t) {
                self.record(id, rule, outcome, message, loc.clone());
            }
        }
        let mut cases: Vec<(&'static str, Req, bool)> =
            vec![("no credentials", base.clone(), false)];
        if self.target.client_cert.is_some() {
            cases.push((
                "no API key or client certificate",
                self.authed(base.clone(), false, token.as_deref().map(|t| (t, "$TOKEN"))),
                false,
            ));
        } else if self.target.api_key.is_some() {
            cases.push((
                "no API key",
                self.authed(base.clone(), false, token.as_deref().map(|t| (t, "$TOKEN"))),
                false,
            ));
        }
        if self.target.api_key.is_some() {
            cases.push((
                "an invalid API key",
                self.authed(base.clone(), false, token.as_deref().map(|t| (t, "$TOKEN")))
                    .header(
                        &self.target.api_key_header.clone(),
                        "pcsk_invalid_0000",
                        "pcsk_invalid_0000",
                    ),
                false,
            ));
        }
        if let Some(t) = &token {
            let none_header = serde_json::json!({ "alg": "none", "typ": "JWT" });
            let far = |p: &mut serde_json::Value| p["exp"] = serde_json::json!(4_102_444_800_i64);
            cases.push((
                "a malformed token",
                self.authed(base.clone(), true, Some(("not.a.token", "not.a.token"))),
                true,
            ));
            if let Some(forged) = forge(t, Some(&none_header), |_| {}, Some("")) {
                cases.push((
                    "`alg: none`",
                    self.authed(base.clone(), true, Some((&forged, "$ALG_NONE_TOKEN"))),
                    true,
                ));
            }
            if let Some(forged) = forge(t, None, |_| {}, Some("AAAA")) {
                cases.push((
                    "a tampered signature",
                    self.authed(base.clone(), true, Some((&forged, "$TAMPERED_TOKEN"))),
                    true,
                ));
            }
            if let Some(forged) = forge(t, None, far, None) {
                cases.push((
                    "a tampered `exp`",
                    self.authed(base.clone(), true, Some((&forged, "$TAMPERED_EXP_TOKEN"))),
                    true,
                ));
            }
        }
        let mut refused_401 = 0;
        for (what, req, bearer) in cases {
            let Some(x) = self.probe(&req).await else {
                continue;
            };
            let loc = self.location(&req, Some(x.status));
            if x.status.is_success() {
                let (id, critical) = match what {
                    "`alg: none`" | "a tampered signature" | "a tampered `exp`" => {
                        ("AUTHN-13", true)
                    }
                    "no credentials" => ("AUTHN-06", method != Method::GET),
                    _ => ("AUTHN-02", false),
                };
                let mut f = Finding::new(
                    id,
                    "probe.accepted-bad-credentials",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!(
                        "{method} {path} with {what} answered {}: it must be refused",
                        x.status
                    ),
                    loc,
                );
                if critical {
                    f = f.critical();
                }
                // An unsigned or tampered token accepted: the tokens are
                // not signed JWTs in any sense that matters (AUTHN-08 too).
                if id == "AUTHN-13" {
                    let mut also = f.clone();
                    also.id = "AUTHN-08";
                    self.findings.push(also);
                }
                self.findings.push(f);
            } else if x.status == StatusCode::UNAUTHORIZED {
                refused_401 += 1;
                if bearer
                    && x.header("www-authenticate")
                        .is_none_or(|h| !h.to_ascii_lowercase().starts_with("bearer"))
                {
                    self.record(
                        "AUTHN-14",
                        "probe.401-without-challenge",
                        Outcome::Partial,
                        format!("401 for {what} without `WWW-Authenticate: Bearer …`"),
                        loc,
                    );
                }
            } else {
                let rule = if x.status == StatusCode::FORBIDDEN {
                    "probe.403-for-authentication"
                } else {
                    "probe.authentication-not-401"
                };
                self.record(
                    "AUTHN-14",
                    rule,
                    Outcome::Fail,
                    format!("{what} got {} instead of 401", x.status),
                    loc,
                );
            }
        }
        if refused_401 > 0
            && !self
                .findings
                .iter()
                .any(|f| f.id == "AUTHN-14" && f.outcome == Outcome::Fail)
        {
            let loc = self.location(&base, Some(StatusCode::UNAUTHORIZED));
            self.record(
                "AUTHN-14",
                "probe.401",
                Outcome::Pass,
                format!("{refused_401} kinds of bad credentials answered 401"),
                loc.clone(),
            );
            // A pass only for what was tried: forged tokens need --token,
            // bad credentials a token or a key; no credentials always ran.
            let tried = [
                ("AUTHN-13", token.is_some()),
                ("AUTHN-02", token.is_some() || self.target.api_key.is_some()),
                ("AUTHN-06", true),
            ];
            for id in tried.into_iter().filter(|t| t.1).map(|t| t.0) {
                if !self.findings.iter().any(|f| f.id == id) {
                    self.record(
                        id,
                        "probe.bad-credentials-refused",
                        Outcome::Pass,
                        "forged, tampered and missing credentials are refused",
                        loc.clone(),
                    );
                }
            }
        }
        if self.target.client_cert.is_some() && self.tls.is_some() {
            let req = self
                .authed(base.clone(), false, token.as_deref().map(|t| (t, "$TOKEN")))
                .presenting(Presented::Impostor);
            self.impostor(&req).await;
        }
        // The API key only in the query string: never accepted (AUTHN-04).
        if let Some(k) = self.target.api_key.clone() {
            let sep = if path.contains('?') { '&' } else { '?' };
            let req = self.authed(
                Req::new(method.clone(), &format!("{path}{sep}api_key={k}")),
                false,
                token.as_deref().map(|t| (t, "$TOKEN")),
            );
            let shown = Req {
                path: format!("{path}{sep}api_key=$API_KEY"),
                ..req.clone()
            };
            if let Ok(x) = self.send(&req).await {
                let loc = self.location(&shown, Some(x.status));
                if x.status.is_success() {
                    self.record(
                        "AUTHN-04",
                        "probe.key-in-query-accepted",
                        Outcome::Fail,
                        "an API key in the query string was accepted: keys in URLs end up in logs",
                        loc,
                    );
                } else {
                    self.record(
                        "AUTHN-04",
                        "probe.key-in-query-refused",
                        Outcome::Pass,
                        format!("an API key in the query string is refused ({})", x.status),
                        loc,
                    );
                }
            }
        }
        // Valid, without the scope the operation needs: 403 (AUTHZ-08).
        if let (Some((m, p)), Some(t)) = (
            self.target.scoped.clone(),
            self.target.token_without_scope.clone(),
        ) {
            let req = self
                .authed(
                    Req::new(m.clone(), &p),
                    true,
                    Some((&t, "$TOKEN_WITHOUT_SCOPE")),
                )
                .body("application/json", self.body_for(&m, &p));
            if let Some(x) = self.probe(&req).await {
                let loc = self.location(&req, Some(x.status));
                match x.status {
                    StatusCode::FORBIDDEN => {
                        self.record(
                            "AUTHZ-08",
                            "probe.403",
                            Outcome::Pass,
                            "a valid token without the needed scope got 403",
                            loc.clone(),
                        );
                        self.record(
                            "AUTHZ-02",
                            "probe.scope-enforced",
                            Outcome::Pass,
                            "scopes are enforced per operation",
                            loc,
                        );
                    }
                    s if s.is_success() => {
                        let f = Finding::new(
                            "AUTHZ-02",
                            "probe.scope-ignored",
                            Outcome::Fail,
                            Evidence::Observed,
                            format!("{m} {p} succeeded with a token lacking its scope"),
                            loc,
                        );
                        self.findings.push(f.critical());
                    }
                    s => self.record(
                        "AUTHZ-08",
                        "probe.authorization-not-403",
                        Outcome::Fail,
                        format!("a valid token without the needed scope got {s} instead of 403"),
                        loc,
                    ),
                }
            }
        }
    }

    /// AUTHN-06: the write named by `--scoped-operation`, sent with no
    /// credentials at all (and a body the document would accept), must be
    /// refused; a success is an unauthenticated write.
    async fn unauthenticated_write(&mut self) {
        let Some((m, p)) = self.target.scoped.clone() else {
            return;
        };
        let req = Req::new(m.clone(), &p).body("application/json", self.body_for(&m, &p));
        let Some(x) = self.probe(&req).await else {
            return;
        };
        let loc = self.location(&req, Some(x.status));
        if x.status.is_success() {
            self.findings.push(
                Finding::new(
                    "AUTHN-06",
                    "probe.unauthenticated-write",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!(
                        "{m} {p} answered {} with no credentials at all: anyone can write",
                        x.status
                    ),
                    loc,
                )
                .critical(),
            );
        }
    }

    /// AUTHN-11: a self-signed certificate bearing the names of the one
    /// given must identify nobody, whether refused at the handshake or
    /// answered with an error.
    async fn impostor(&mut self, req: &Req) {
        let host = self.base.host().unwrap_or("localhost");
        let unreachable = format!("{host}:{}:", self.base.port_u16().unwrap_or(443));
        match self.send(req).await {
            Ok(x) => {
                let loc = self.location(req, Some(x.status));
                self.seen.push((loc.clone(), x.clone()));
                if x.status.is_success() {
                    self.findings.push(
                        Finding::new(
                            "AUTHN-11",
                            "probe.impostor-certificate-accepted",
                            Outcome::Fail,
                            Evidence::Observed,
                            format!(
                                "a self-signed client certificate with the names of --cert was accepted ({}): anyone can claim that identity",
                                x.status
                            ),
                            loc,
                        )
                        .critical(),
                    );
                } else {
                    self.record(
                        "AUTHN-11",
                        "probe.impostor-certificate-refused",
                        Outcome::Pass,
                        format!(
                            "a self-signed client certificate with the names of --cert was refused ({})",
                            x.status
                        ),
                        loc,
                    );
                }
            }
            Err(e) if e.starts_with("no answer") || e.starts_with(&unreachable) => {
                let url = self.url(&req.path);
                self.notes
                    .push(format!("{} {url}: no answer: {e}", req.method));
            }
            Err(e) => {
                // Refused at the handshake: the TLS outcome is the answer.
                let mut loc = self.location(req, None);
                if let Location::Probe { method, .. } = &mut loc {
                    "TLS".clone_into(method);
                }
                self.record(
                    "AUTHN-11",
                    "probe.impostor-certificate-refused",
                    Outcome::Pass,
                    format!("a self-signed client certificate with the names of --cert was refused during the TLS handshake ({e})"),
                    loc,
                );
            }
        }
    }

    /// OUTPUT-03, OUTPUT-07/08/09, OUTPUT-12, OUTPUT-11, content type.
    async fn headers_and_cors(&mut self) {
        let (method, path) = self.protected.clone();
        let token = self.target.token.clone();
        let ok = self.authed(
            Req::new(method.clone(), &path),
            true,
            token.as_deref().map(|t| (t, "$TOKEN")),
        );
        let err = Req::new(Method::GET, "/portcullis-audit-no-such-path");
        for req in [ok.clone(), err] {
            let Some(x) = self.probe(&req).await else {
                continue;
            };
            let loc = self.location(&req, Some(x.status));
            let what = if x.status.is_success() {
                "a success"
            } else {
                "an error"
            };
            match x.header("cache-control") {
                Some(v) if v.contains("no-store") => self.record("OUTPUT-09", "probe.no-store", Outcome::Pass, format!("{what} says `Cache-Control: {v}`"), loc.clone()),
                Some(v) => self.record("OUTPUT-09", "probe.cacheable", Outcome::Fail, format!("{what} says `Cache-Control: {v}`: API answers must not be stored (`no-store`)"), loc.clone()),
                None => self.record("OUTPUT-09", "probe.no-cache-control", Outcome::Fail, format!("{what} has no `Cache-Control`: shared caches may keep it"), loc.clone()),
            }
            for id in ["OUTPUT-07", "OUTPUT-08"] {
                let ok = x
                    .header("cache-control")
                    .is_some_and(|v| v.contains("no-store") || v.contains("no-cache"));
                self.record(
                    id,
                    "probe.cache-directive",
                    if ok { Outcome::Pass } else { Outcome::Fail },
                    format!(
                        "{what}: `Cache-Control: {}`",
                        x.header("cache-control").unwrap_or("(none)")
                    ),
                    loc.clone(),
                );
            }
            if self.tls.is_some() {
                match x.header("strict-transport-security") {
                    Some(v) if v.contains("max-age=") && !v.contains("max-age=0") => self.record(
                        "OUTPUT-12",
                        "probe.hsts",
                        Outcome::Pass,
                        format!("{what} carries HSTS ({v})"),
                        loc.clone(),
                    ),
                    _ => self.record(
                        "OUTPUT-12",
                        "probe.no-hsts",
                        Outcome::Fail,
                        format!("{what} has no `Strict-Transport-Security`"),
                        loc.clone(),
                    ),
                }
            }
            if x.header("x-content-type-options") == Some("nosniff") {
                self.record(
                    "INPUT-12",
                    "probe.nosniff",
                    Outcome::Pass,
                    format!("{what} carries `X-Content-Type-Options: nosniff`: browsers run no JSON as script"),
                    loc.clone(),
                );
            } else {
                self.record(
                    "OUTPUT-03",
                    "probe.no-nosniff",
                    Outcome::Partial,
                    format!("{what} lacks `X-Content-Type-Options: nosniff`"),
                    loc.clone(),
                );
                // Without it a browser may sniff JSON as script (INPUT-12).
                self.record(
                    "INPUT-12",
                    "probe.no-nosniff",
                    Outcome::Fail,
                    format!("{what} lacks `X-Content-Type-Options: nosniff`: a browser may run the answer as script"),
                    loc.clone(),
                );
            }
            // An answer to an authenticated request that may be stored
            // lets whatever sits in between serve it to others (AUTHN-03).
            if x.status.is_success()
                && req
                    .headers
                    .iter()
                    .any(|(_, _, shown)| shown.starts_with('$'))
            {
                let stored = !x
                    .header("cache-control")
                    .is_some_and(|v| v.contains("no-store"));
                self.record(
                    "AUTHN-03",
                    if stored {
                        "probe.authenticated-answer-storable"
                    } else {
                        "probe.authenticated-answer-no-store"
                    },
                    if stored { Outcome::Fail } else { Outcome::Pass },
                    format!(
                        "an authenticated answer says `Cache-Control: {}`",
                        x.header("cache-control").unwrap_or("(none)")
                    ),
                    loc.clone(),
                );
            }
            if !x.body.is_empty()
                && x.body.first() == Some(&b'{')
                && !x.header("content-type").is_some_and(|c| c.contains("json"))
            {
                self.record(
                    "INPUT-12",
                    "probe.json-not-labelled",
                    Outcome::Fail,
                    format!(
                        "{what} sends JSON as `{}`",
                        x.header("content-type").unwrap_or("(none)")
                    ),
                    loc.clone(),
                );
            }
        }
        // CORS with a hostile origin, with and without credentials.
        let req = ok.header(
            "origin",
            "https://evil.portcullis-audit.invalid",
            "https://evil.portcullis-audit.invalid",
        );
        if let Some(x) = self.probe(&req).await {
            let loc = self.location(&req, Some(x.status));
            let acao = x.header("access-control-allow-origin").map(str::to_owned);
            let creds = x.header("access-control-allow-credentials") == Some("true");
            match acao.as_deref() {
                Some("https://evil.portcullis-audit.invalid") => self.record(
                    "OUTPUT-11",
                    "probe.cors-reflects-origin",
                    Outcome::Fail,
                    format!(
                        "CORS allows any origin it is sent (reflected){}",
                        if creds { ", with credentials" } else { "" }
                    ),
                    loc,
                ),
                Some("*") if creds => self.record(
                    "OUTPUT-11",
                    "probe.cors-wildcard-credentials",
                    Outcome::Fail,
                    "CORS `*` with credentials",
                    loc,
                ),
                Some("*") => self.record(
                    "OUTPUT-11",
                    "probe.cors-wildcard",
                    Outcome::Partial,
                    "CORS allows any origin (`*`)",
                    loc,
                ),
                _ => self.record(
                    "OUTPUT-11",
                    "probe.cors-refuses-hostile-origin",
                    Outcome::Pass,
                    "CORS does not allow a hostile origin",
                    loc,
                ),
            }
        }
    }

    /// INPUT-01/02/03/06, OUTPUT-01/05/14 on the write operation.
    async fn input(&mut self) {
        let Some((method, path)) = self.target.scoped.clone() else {
            return;
        };
        let token = self.target.token.clone();
        let authed = |p: &Self, r: Req| p.authed(r, true, token.as_deref().map(|t| (t, "$TOKEN")));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let big = vec![b' '; 2 * 1024 * 1024];
        let cases: Vec<(&'static str, &'static str, Req)> = vec![
            (
                "INPUT-01",
                "JSON sent as text/plain",
                authed(self, Req::new(method.clone(), &path)).body("text/plain", "{\"a\":1}"),
            ),
            (
                "INPUT-03",
                "malformed JSON",
                authed(self, Req::new(method.clone(), &path)).body("application/json", "{\"a\":"),
            ),
            (
                "INPUT-03",
                "deeply nested JSON",
                authed(self, Req::new(method.clone(), &path)).body("application/json", deep),
            ),
            (
                "INPUT-02",
                "an oversized body",
                authed(self, Req::new(method.clone(), &path)).body("application/json", big),
            ),
            (
                "INPUT-02",
                "a TRACE request",
                authed(self, Req::new(Method::TRACE, &path)),
            ),
            (
                "INPUT-02",
                "an unknown method",
                authed(
                    self,
                    Req::new(Method::from_bytes(b"FOO").expect("a token"), &path),
                ),
            ),
        ];
        for (id, what, req) in cases {
            if what == "an oversized body" {
                self.oversized(id, &req).await;
                continue;
            }
            let Some(x) = self.probe(&req).await else {
                continue;
            };
            let loc = self.location(&req, Some(x.status));
            if x.status.is_success() {
                self.record(
                    id,
                    "probe.bad-input-accepted",
                    Outcome::Fail,
                    format!("{what} was accepted ({})", x.status),
                    loc,
                );
            } else if x.status.is_server_error() {
                self.record(
                    "OUTPUT-14",
                    "probe.bad-input-5xx",
                    Outcome::Fail,
                    format!("{what} caused {}: bad input must get a 4xx", x.status),
                    loc.clone(),
                );
                // Syntax the parser should have refused broke the server:
                // INPUT-03 is not enforced, whatever else holds.
                self.record(
                    id,
                    "probe.bad-input-5xx",
                    if id == "INPUT-03" {
                        Outcome::Fail
                    } else {
                        Outcome::Partial
                    },
                    format!("{what} got {}", x.status),
                    loc,
                );
            } else {
                self.record(
                    id,
                    "probe.bad-input-refused",
                    Outcome::Pass,
                    format!("{what} got {}", x.status),
                    loc.clone(),
                );
                let problem = x
                    .header("content-type")
                    .is_some_and(|c| c.starts_with("application/problem+json"));
                self.record(
                    "OUTPUT-01",
                    if problem {
                        "probe.problem-body"
                    } else {
                        "probe.error-not-problem"
                    },
                    if problem {
                        Outcome::Pass
                    } else {
                        Outcome::Partial
                    },
                    format!(
                        "{what}: error body as `{}`",
                        x.header("content-type").unwrap_or("(none)")
                    ),
                    loc,
                );
            }
        }
        // An undeclared property is ignored or refused, never a 5xx.
        let req = authed(self, Req::new(method.clone(), &path))
            .body("application/json", "{\"portcullis_audit_undeclared\":true}");
        if let Some(x) = self.probe(&req).await {
            let loc = self.location(&req, Some(x.status));
            if x.status.is_server_error() {
                self.record(
                    "INPUT-06",
                    "probe.undeclared-5xx",
                    Outcome::Fail,
                    format!("an undeclared property caused {}", x.status),
                    loc,
                );
            } else if x.text().contains("portcullis_audit_undeclared") && x.status.is_success() {
                self.record(
                    "INPUT-06",
                    "probe.undeclared-echoed",
                    Outcome::Fail,
                    "an undeclared property went through to the answer",
                    loc,
                );
            } else {
                self.record(
                    "INPUT-06",
                    "probe.undeclared-ignored",
                    Outcome::Pass,
                    format!(
                        "an undeclared property was ignored or refused ({})",
                        x.status
                    ),
                    loc,
                );
            }
        }
    }

    /// An oversized body must get a 4xx. A server may instead close the
    /// connection before the body is all sent: that answer is lost, and a
    /// lost answer is never counted as a refusal (`send` tries three times,
    /// so the 4xx usually arrives).
    async fn oversized(&mut self, id: &'static str, req: &Req) {
        match self.send(req).await {
            Ok(x) if x.status.is_client_error() => {
                let loc = self.location(req, Some(x.status));
                self.record(
                    id,
                    "probe.bad-input-refused",
                    Outcome::Pass,
                    format!("an oversized body (2 MiB) was refused ({})", x.status),
                    loc,
                );
            }
            Ok(x) => {
                let loc = self.location(req, Some(x.status));
                let (rule, id, message) = if x.status.is_success() {
                    (
                        "probe.bad-input-accepted",
                        id,
                        format!("an oversized body was accepted ({})", x.status),
                    )
                } else {
                    (
                        "probe.bad-input-5xx",
                        "OUTPUT-14",
                        format!("an oversized body caused {}: it must get a 4xx", x.status),
                    )
                };
                self.record(id, rule, Outcome::Fail, message, loc);
            }
            // A connection closed under the body without an answer is not
            // a refusal anyone saw: noted, never counted either way.
            Err(e) => {
                self.notes.push(format!(
                    "{} {}: no answer: {e}",
                    req.method,
                    self.url(&req.path)
                ));
            }
        }
    }

    /// DATA-03, DATA-04.
    async fn correlation(&mut self) {
        let (method, path) = self.protected.clone();
        let token = self.target.token.clone();
        let sent = "portcullis-audit-0001";
        let names = ["x-correlation-id", "x-request-id"];
        let mut found = None;
        for name in names {
            let req = self
                .authed(
                    Req::new(method.clone(), &path),
                    true,
                    token.as_deref().map(|t| (t, "$TOKEN")),
                )
                .header(name, sent, "portcullis-audit-0001");
            let Some(x) = self.probe(&req).await else {
                return;
            };
            if x.header(name) == Some(sent) {
                found = Some((name, self.location(&req, Some(x.status))));
                break;
            }
        }
        let looked_for: Vec<&str> = match found {
            Some((name, loc)) => {
                self.record(
                    "DATA-03",
                    "probe.correlation-echoed",
                    Outcome::Pass,
                    format!("`{name}` sent by the client is echoed"),
                    loc,
                );
                vec![name]
            }
            None => {
                let loc = self.location(&Req::new(method.clone(), &path), None);
                self.record(
                    "DATA-03",
                    "probe.correlation-not-echoed",
                    Outcome::Fail,
                    "a correlation id sent as `X-Correlation-Id` or `X-Request-Id` is not echoed",
                    loc,
                );
                names.to_vec()
            }
        };
        let req = self.authed(
            Req::new(method, &path),
            true,
            token.as_deref().map(|t| (t, "$TOKEN")),
        );
        if let Some(x) = self.probe(&req).await {
            let loc = self.location(&req, Some(x.status));
            let shown = looked_for.join("` or `");
            let generated = looked_for
                .iter()
                .find_map(|n| x.header(n).filter(|v| !v.is_empty()).map(|v| (n, v)));
            match generated {
                Some((name, v)) => self.record(
                    "DATA-04",
                    "probe.correlation-generated",
                    Outcome::Pass,
                    format!("a missing `{name}` is generated ({} characters)", v.len()),
                    loc,
                ),
                None => self.record(
                    "DATA-04",
                    "probe.correlation-missing",
                    Outcome::Fail,
                    format!("no `{shown}` is generated when the client sends none"),
                    loc,
                ),
            }
        }
    }

    /// INPUT-08: a bounded burst finds a 429 with `Retry-After`. No 429
    /// proves nothing (the limit may be higher): no finding then.
    async fn throttling(&mut self) {
        let (method, path) = self.protected.clone();
        let token = self.target.token.clone();
        let req = self.authed(
            Req::new(method, &path),
            true,
            token.as_deref().map(|t| (t, "$TOKEN")),
        );
        for _ in 0..self.target.burst.min(MAX_BURST) {
            let Ok(x) = self.send(&req).await else { return };
            if x.status == StatusCode::TOO_MANY_REQUESTS {
                let loc = self.location(&req, Some(x.status));
                if x.header("retry-after").is_some() {
                    self.record(
                        "INPUT-08",
                        "probe.429-retry-after",
                        Outcome::Pass,
                        "a burst got 429 with `Retry-After`",
                        loc,
                    );
                } else {
                    self.record(
                        "INPUT-08",
                        "probe.429-without-retry-after",
                        Outcome::Fail,
                        "a burst got 429 without `Retry-After`",
                        loc,
                    );
                }
                return;
            }
        }
        let burst = self.target.burst.min(MAX_BURST);
        if burst > 0 {
            let loc = self.location(&req, None);
            self.record(
                "INPUT-08",
                "probe.no-429-in-burst",
                Outcome::Partial,
                format!("{burst} requests at up to {MAX_RATE} a second got no 429: no limit at or below that rate (a larger --burst looks further)"),
                loc,
            );
        }
    }

    /// OUTPUT-02/03/04, OUTPUT-13 over every exchange seen.
    fn hygiene(&mut self) {
        let own = self.base.host().unwrap_or_default();
        let mut found: Vec<Finding> = Vec::new();
        for (loc, x) in &self.seen {
            let text = x.text();
            let mut all = x.headers.iter().fold(String::new(), |mut out, (k, v)| {
                let _ = writeln!(out, "{k}: {}", v.to_str().unwrap_or(""));
                out
            });
            all.push_str(&text);
            if let Some(t) = STACK_TRACES.iter().find(|t| all.contains(**t)) {
                found.push(
                    Finding::new(
                        "OUTPUT-02",
                        "probe.stack-trace",
                        Outcome::Fail,
                        Evidence::Observed,
                        format!("the answer contains a stack trace (`{}`)", t.trim()),
                        loc.clone(),
                    )
                    .critical(),
                );
            }
            for b in BANNERS {
                if let Some(v) = x.headers.get(b).and_then(|v| v.to_str().ok()) {
                    found.push(Finding::new(
                        "OUTPUT-03",
                        "probe.banner",
                        Outcome::Fail,
                        Evidence::Observed,
                        format!("`{b}: {v}` names the platform"),
                        loc.clone(),
                    ));
                }
            }
            if let Some(fw) = FRAMEWORKS.iter().find(|f| text.contains(**f)) {
                found.push(Finding::new(
                    "OUTPUT-03",
                    "probe.framework-in-body",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!("the body names the framework (`{fw}`)"),
                    loc.clone(),
                ));
            }
            if internal_host(&text, own) {
                found.push(Finding::new(
                    "OUTPUT-04",
                    "probe.internal-host",
                    Outcome::Fail,
                    Evidence::Observed,
                    "the body names an internal host or address",
                    loc.clone(),
                ));
            }
            if x.status.is_success() {
                if let Some(card) = card_number(&text) {
                    found.push(Finding::new(
                        "OUTPUT-13",
                        "probe.card-number",
                        Outcome::Fail,
                        Evidence::Observed,
                        format!(
                            "the answer contains a card number (…{})",
                            &card[card.len() - 4..]
                        ),
                        loc.clone(),
                    ));
                }
                let lower = text.to_ascii_lowercase();
                if ["\"password\"", "\"secret\"", "\"client_secret\""]
                    .iter()
                    .any(|k| lower.contains(k))
                {
                    found.push(Finding::new(
                        "OUTPUT-13",
                        "probe.secret-field",
                        Outcome::Fail,
                        Evidence::Observed,
                        "the answer contains a password or secret field",
                        loc.clone(),
                    ));
                }
            }
        }
        // Response headers: internal hosts, debug headers, echoed credentials.
        let secrets: Vec<&str> = [&self.target.api_key, &self.target.token]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|s| s.len() >= 8)
            .collect();
        for (loc, x) in &self.seen {
            for (name, value) in &x.headers {
                let value = String::from_utf8_lossy(value.as_bytes());
                // Card numbers and secrets in a header (DATA-02).
                let lower = value.to_ascii_lowercase();
                if card_number(&value).is_some()
                    || ["password=", "passwd=", "secret="]
                        .iter()
                        .any(|k| lower.contains(k))
                {
                    found.push(Finding::new(
                        "DATA-02",
                        "probe.sensitive-in-header",
                        Outcome::Fail,
                        Evidence::Observed,
                        format!("`{name}` carries a card number or a secret"),
                        loc.clone(),
                    ));
                }
                let flaw = if DEBUG_HEADERS.contains(&name.as_str()) {
                    Some((
                        "probe.debug-header",
                        format!("`{name}` is a debugging header"),
                    ))
                } else if secrets.iter().any(|s| value.contains(s)) {
                    Some((
                        "probe.credential-in-header",
                        format!("`{name}` echoes a credential the request carried"),
                    ))
                } else if internal_host(&value, own) {
                    Some((
                        "probe.internal-host-in-header",
                        format!("`{name}: {value}` names an internal host or address"),
                    ))
                } else {
                    None
                };
                if let Some((rule, message)) = flaw {
                    found.push(Finding::new(
                        "OUTPUT-06",
                        rule,
                        Outcome::Fail,
                        Evidence::Observed,
                        message,
                        loc.clone(),
                    ));
                }
            }
        }
        // One error structure (OUTPUT-01): every error answer with a body
        // in one media type; HTML here, plain text there and JSON elsewhere
        // is the mix a client cannot parse.
        let mut formats: Vec<(String, &Location)> = Vec::new();
        for (loc, x) in &self.seen {
            if !(x.status.is_client_error() || x.status.is_server_error()) || x.body.is_empty() {
                continue;
            }
            let essence = x
                .header("content-type")
                .and_then(|c| c.split(';').next())
                .map_or_else(|| "(none)".to_owned(), |c| c.trim().to_ascii_lowercase());
            if !formats.iter().any(|(f, _)| *f == essence) {
                formats.push((essence, loc));
            }
        }
        // Within JSON errors, one shape: RFC 9457 problems (title and
        // status), or one fixed set of members.
        let mut shapes: Vec<(String, &Location)> = Vec::new();
        for (loc, x) in &self.seen {
            if !(x.status.is_client_error() || x.status.is_server_error()) {
                continue;
            }
            let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(&x.body) else {
                continue;
            };
            let shape = if body.contains_key("title") && body.contains_key("status") {
                "an RFC 9457 problem".to_owned()
            } else {
                let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
                keys.sort_unstable();
                format!("{{{}}}", keys.join(", "))
            };
            if !shapes.iter().any(|(s, _)| *s == shape) {
                shapes.push((shape, loc));
            }
        }
        if formats.len() <= 1 && shapes.len() > 1 {
            let names: Vec<&str> = shapes.iter().map(|(s, _)| s.as_str()).collect();
            found.push(Finding::new(
                "OUTPUT-01",
                "probe.mixed-error-shapes",
                Outcome::Fail,
                Evidence::Observed,
                format!(
                    "JSON error answers come in {} shapes ({}): clients cannot rely on one error structure",
                    shapes.len(),
                    names.join("; ")
                ),
                shapes[1].1.clone(),
            ));
        }
        if formats.len() > 1 {
            let names: Vec<String> = formats.iter().map(|(f, _)| format!("`{f}`")).collect();
            found.push(Finding::new(
                "OUTPUT-01",
                "probe.mixed-error-formats",
                Outcome::Fail,
                Evidence::Observed,
                format!(
                    "error answers come in {} formats ({}): clients cannot rely on one error structure",
                    formats.len(),
                    names.join(", ")
                ),
                formats[1].1.clone(),
            ));
        }
        // A stack trace is internal detail as well: OUTPUT-04 at best partial.
        if let Some(trace) = found.iter().find(|f| f.rule == "probe.stack-trace") {
            found.push(Finding::new(
                "OUTPUT-04",
                "probe.stack-trace-detail",
                Outcome::Partial,
                Evidence::Observed,
                "an answer carried a stack trace, which is internal detail (see OUTPUT-02)",
                trace.location.clone(),
            ));
        }
        // One finding per flaw, at the first answer that showed it.
        let mut reported = std::collections::HashSet::new();
        found.retain(|f| reported.insert((f.id, f.rule, f.message.clone())));
        if let Some((loc, _)) = self.seen.first() {
            let loc = loc.clone();
            for (id, what) in [
                ("OUTPUT-02", "no stack trace"),
                ("OUTPUT-03", "no platform banner or framework name"),
                ("OUTPUT-04", "no internal host name"),
                (
                    "OUTPUT-06",
                    "no internal host, debugging header or echoed credential in a header",
                ),
                ("OUTPUT-13", "no card number, password or secret"),
                ("DATA-02", "no card number or secret in a response header"),
            ] {
                if !found.iter().any(|f| f.id == id) {
                    found.push(Finding::new(
                        id,
                        "probe.clean",
                        Outcome::Pass,
                        Evidence::Observed,
                        format!("{what} in any answer"),
                        loc.clone(),
                    ));
                }
            }
        }
        self.findings.extend(found);
    }
}

/// A request body sent in 64 KiB pieces, a few milliseconds apart. A
/// server that refuses a large body by its declared length answers and
/// closes while it is still being sent; a close with unread bytes resets
/// the connection, and the reset can destroy the answer before it is read.
/// So a body of more than one piece waits [`Paced::HEAD_START`] before its
/// first byte: such a server answers to the head alone and closes an empty
/// connection, and the answer is read before the write fails (a lost answer
/// is never counted as a refusal, so it must not be lost to a race).
struct Paced {
    rest: Bytes,
    pause: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Paced {
    const PIECE: usize = 64 * 1024;
    const HEAD_START: Duration = Duration::from_millis(300);

    fn new(body: Bytes) -> Self {
        let pause =
            (body.len() > Self::PIECE).then(|| Box::pin(tokio::time::sleep(Self::HEAD_START)));
        Self { rest: body, pause }
    }
}

impl hyper::body::Body for Paced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(Self::PIECE);
        let piece = self.rest.split_to(n);
        if !self.rest.is_empty() {
            self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(5))));
        }
        Poll::Ready(Some(Ok(hyper::body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.pause.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.rest.len() as u64)
    }
}

async fn exchange<S>(stream: S, request: http::Request<Paced>) -> Result<Exchange, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, 1024 * 1024)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    Ok(Exchange {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Whether a failed exchange died because the server closed (or reset) the
/// connection while the request was still being written: the answer may
/// have been sent and lost.
fn lost_to_a_close(error: &str) -> bool {
    [
        "writing a body",
        "reset",
        "broken pipe",
        "connection closed",
    ]
    .iter()
    .any(|m| error.to_ascii_lowercase().contains(m))
}

/// Notes of requests that got no answer for the same reason, as one line.
fn collapse(notes: Vec<String>) -> Vec<String> {
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for note in notes {
        let (request, reason) = note
            .split_once(": no answer: ")
            .map_or((note.clone(), String::new()), |(r, e)| {
                (r.to_owned(), e.to_owned())
            });
        match out
            .iter_mut()
            .find(|(_, r, _)| !reason.is_empty() && *r == reason)
        {
            Some(seen) => seen.2 += 1,
            None => out.push((request, reason, 1)),
        }
    }
    out.into_iter()
        .map(|(request, reason, n)| match (n, reason.is_empty()) {
            (_, true) => request,
            (1, false) => format!("{request}: no answer: {reason}"),
            (n, false) => format!("{request} and {} more requests: no answer: {reason}", n - 1),
        })
        .collect()
}

/// `METHOD /path`.
pub type Operation = (Method, String);

/// `METHOD /path` from the command line.
pub fn parse_operation(s: &str) -> Result<(Method, String), String> {
    let (m, p) = s
        .split_once(' ')
        .ok_or_else(|| format!("`{s}`: write an operation as `METHOD /path`"))?;
    let m =
        Method::from_bytes(m.trim().as_bytes()).map_err(|_| format!("`{m}` is not a method"))?;
    let p = p.trim();
    if !p.starts_with('/') {
        return Err(format!("`{p}`: a path starts with `/`"));
    }
    Ok((m, p.to_owned()))
}

/// The operations to probe, from a Portcullis config: the first protected
/// `GET` (the identity matrix, headers, correlation, throttling) and the
/// first write that needs a scope (authorization and input handling).
/// Path parameters are filled with `1`.
pub fn operations_from_config(
    config: &portcullis_config::Config,
) -> (Option<Operation>, Option<Operation>) {
    use portcullis_config::AuthPolicy;
    let fill = |base: &str, path: &str| {
        let mut out = String::from(base.trim_end_matches('/'));
        let mut rest = path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            out.push('1');
            rest = rest[open..]
                .find('}')
                .map_or("", |close| &rest[open + close + 1..]);
        }
        out.push_str(rest);
        out
    };
    let mut read = None;
    let mut write = None;
    for api in &config.apis {
        for r in &api.routes {
            let AuthPolicy::Protected(p) = &r.auth else {
                continue;
            };
            // Routes of other environments are absent from production listeners.
            if r.environments
                .as_ref()
                .is_some_and(|e| !e.iter().any(|x| x == "production"))
            {
                continue;
            }
            if read.is_none() && r.methods.contains(&Method::GET) && !r.path.contains('{') {
                read = Some((Method::GET, fill(&api.base_path, &r.path)));
            }
            if write.is_none() && !p.scopes.is_empty() {
                if let Some(m) = r
                    .methods
                    .iter()
                    .find(|m| [Method::POST, Method::PUT, Method::PATCH].contains(m))
                {
                    write = Some((m.clone(), fill(&api.base_path, &r.path)));
                }
            }
        }
    }
    (read, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_hosts_are_names_under_private_suffixes_and_private_addresses() {
        for yes in [
            "db01.corp.internal:5432",
            "at billing.corp",
            "http://10.1.2.3:8080/x",
            "host 192.168.0.7",
            "172.20.0.1",
            "printer.lan",
        ] {
            assert!(internal_host(yes, "api.example.com"), "{yes}");
        }
        for no in [
            "Sat, 28 Nov 2026 10:00:05 GMT",
            "max-age=31536000; includeSubDomains",
            "nginx/1.10.0",
            "https://api.example.com/v1",
            "8.8.8.8",
            "the internal state",
            "localisation",
            "version 10.2",
            "127.0.0.1:9000",
        ] {
            assert!(!internal_host(no, "api.example.com"), "{no}");
        }
        // The target's own name or address is not a leak.
        assert!(!internal_host("https://gw.corp:8443/v1", "gw.corp"));
        assert!(!internal_host("see 10.0.0.5", "10.0.0.5"));
        assert!(internal_host("gw.corp via db.corp", "gw.corp"));
    }

    #[test]
    fn card_numbers_pass_luhn_and_ids_do_not() {
        assert_eq!(
            card_number("{\"pan\":\"4111111111111111\"}").as_deref(),
            Some("4111111111111111")
        );
        assert_eq!(card_number("order 1234567890123 of 2026"), None);
        assert_eq!(card_number("0000000000000000"), None);
    }

    #[test]
    fn a_target_with_an_empty_port_is_refused() {
        let target = |url: &str| Target {
            url: url.into(),
            ca: None,
            api_key: None,
            api_key_header: "x-api-key".into(),
            token: None,
            token_without_scope: None,
            protected: None,
            scoped: None,
            burst: 0,
            client_cert: None,
            strict_tls: false,
            document: None,
            allow_writes: false,
        };
        let e = Prober::new(target("https://127.0.0.1:")).err().unwrap();
        assert!(e.contains("port"), "{e}");
        assert!(Prober::new(target("https://127.0.0.1:8443/v1")).is_ok());
    }

    #[test]
    fn the_token_given_is_judged_by_algorithm_claims_and_lifetime() {
        let token = |header: &str, claims: &str| {
            format!(
                "{}.{}.c2ln",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            )
        };
        let rules = |t: &str| -> Vec<(&str, &str, Outcome)> {
            judge_token(t)
                .into_iter()
                .map(|(i, r, o, _)| (i, r, o))
                .collect()
        };
        let full = r#"{"iss":"i","aud":"a","exp":3600,"iat":0}"#;
        assert_eq!(
            rules(&token(r#"{"alg":"ES256"}"#, full)),
            [
                ("AUTHN-08", "probe.token-asymmetric", Outcome::Pass),
                ("AUTHN-01", "probe.token-claims", Outcome::Pass)
            ]
        );
        assert_eq!(
            rules(&token(
                r#"{"alg":"HS256"}"#,
                r#"{"iss":"i","exp":90000,"iat":0}"#
            )),
            [
                ("AUTHN-08", "probe.token-symmetric", Outcome::Fail),
                ("AUTHN-01", "probe.token-claims-missing", Outcome::Fail),
                ("AUTHN-01", "probe.token-long-lived", Outcome::Partial)
            ]
        );
        assert_eq!(
            rules(&token(r#"{"alg":"none"}"#, full))[0].1,
            "probe.token-unsigned"
        );
        assert!(rules("an-opaque-token").is_empty());
        // Exactly a day is not long-lived.
        assert_eq!(
            rules(&token(
                r#"{"alg":"ES256"}"#,
                r#"{"iss":"i","aud":"a","exp":86400,"iat":0}"#
            ))
            .len(),
            2
        );
    }

    #[test]
    fn forged_tokens_keep_or_replace_parts() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"a","exp":1}"#);
        let t = format!("eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln");
        let none = forge(
            &t,
            Some(&serde_json::json!({"alg":"none"})),
            |_| {},
            Some(""),
        )
        .unwrap();
        assert!(
            none.ends_with('.') && none.starts_with(&URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#))
        );
        let later = forge(&t, None, |p| p["exp"] = serde_json::json!(9), None).unwrap();
        assert!(
            later.starts_with("eyJhbGciOiJFUzI1NiJ9.") && later.rsplit('.').next() == Some("c2ln")
        );
        assert!(!later.contains(&payload));
    }
}
