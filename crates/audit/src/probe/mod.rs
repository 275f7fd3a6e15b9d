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

mod answers;
mod client;
mod discover;
mod identity;
mod input;

pub use answers::{card_number, internal_host};
use client::{Paced, TargetVerifier, exchange, lost_to_a_close, tls_config};

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
    use super::identity::{forge, judge_token};
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
