//! `portcullis-guard`: the backend half of "the gateway is the only
//! caller" (AUTHN-10, AUTHN-12, AUTHZ-03, AUTHZ-06).
//!
//! A tower layer ([`GuardLayer`], for axum or plain hyper via
//! `hyper_util::service::TowerToHyperService`) that lets a request reach the
//! handler only when it carries a context token minted by Portcullis for
//! this backend:
//!
//! - signed (`alg: EdDSA`, `typ: portcullis-context+jwt`) by a key in the
//!   gateway's JWKS (a file, re-read when it changes, or a URL), by an
//!   allowed issuer;
//! - `aud` = this backend, not expired, lifetime at most 30 s;
//! - bound to the request: its `correlation_id` equals the request's
//!   correlation header, and its `jti` has not been seen before;
//! - optionally encrypted to this backend (nested JWE), and optionally
//!   arriving over mutual TLS from a peer whose certificate names the
//!   gateway. The server inserts the peer's leaf certificate into the
//!   request extensions as a `rustls_pki_types::CertificateDer<'static>`.
//!
//! Anything else gets a 401 problem (RFC 9457) and never reaches the
//! handler. Handlers read the verified claims as [`GatewayContext`]
//! (request extension, or axum extractor with the `axum` feature).
#![cfg_attr(not(test), deny(clippy::too_many_lines))]
#![forbid(unsafe_code)]

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
pub use portcullis_jose::context::ContextClaims;
use portcullis_jose::context::{DEFAULT_HEADER, MAX_LIFETIME_S, TYP};
pub use portcullis_jose::jwe::DecryptionKey;
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest context token read, in bytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Fewest time between key reloads caused by an unknown `kid`.
const MIN_RELOAD: Duration = Duration::from_secs(2);
/// Most `jti`s remembered for replay detection (each for ≤ 30 s).
const MAX_SEEN: usize = 200_000;

/// Where the gateway's public keys come from.
#[derive(Debug, Clone)]
pub enum Keys {
    /// A JWKS file (the gateway writes `jwks.json` in its keys directory).
    File(PathBuf),
    /// The gateway's JWKS listener: `http://` on loopback only, or
    /// `https://` verified against `ca`.
    Url { url: http::Uri, ca: Option<PathBuf> },
}

/// What the guard accepts.
#[derive(Debug)]
pub struct GuardConfig {
    /// Allowed token issuers (the gateway's `context_token.issuer`).
    pub issuers: Vec<String>,
    /// This backend's audience (the gateway's `upstreams.X.context_audience`).
    pub audience: String,
    pub keys: Keys,
    /// Header carrying the token.
    pub header: HeaderName,
    /// Header carrying the correlation id the token is bound to.
    pub correlation_header: HeaderName,
    /// This backend's private keys, when the gateway encrypts to it.
    pub decryption_keys: Vec<(Option<String>, DecryptionKey)>,
    /// Refuse tokens that are not encrypted.
    pub require_encryption: bool,
    /// DNS or URI SANs of which the mTLS peer's certificate must carry one;
    /// empty = the peer certificate is not checked here.
    pub gateway_peer_names: Vec<String>,
    /// Clock skew allowed for `exp` and `iat`.
    pub leeway: Duration,
}

impl GuardConfig {
    /// Defaults: header `portcullis-context`, correlation header
    /// `x-correlation-id`, 5 s leeway, no encryption, no peer check.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, keys: Keys) -> Self {
        Self {
            issuers: vec![issuer.into()],
            audience: audience.into(),
            keys,
            header: HeaderName::from_static(DEFAULT_HEADER),
            correlation_header: HeaderName::from_static("x-correlation-id"),
            decryption_keys: Vec::new(),
            require_encryption: false,
            gateway_peer_names: Vec::new(),
            leeway: Duration::from_secs(5),
        }
    }
}

/// Why a request was refused. Logged for the operator; the caller only
/// learns that gateway attestation is required.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no context token: the request did not come through the gateway")]
    Missing,
    #[error("context token malformed or not verifiable: {0}")]
    Invalid(&'static str),
    #[error("context token minted for another backend")]
    WrongAudience,
    #[error("context token expired")]
    Expired,
    #[error("context token bound to another request (correlation id differs)")]
    Correlation,
    #[error("context token already used (replay)")]
    Replay,
    #[error("caller is not the gateway: {0}")]
    Peer(&'static str),
    #[error("gateway keys unavailable: {0}")]
    Keys(String),
}

/// The verified claims, for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayContext(pub ContextClaims);

impl std::ops::Deref for GatewayContext {
    type Target = ContextClaims;
    fn deref(&self) -> &ContextClaims {
        &self.0
    }
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<Bytes>,
>;

/// Verifies context tokens; share one per backend (`Arc`).
pub struct Guard {
    config: GuardConfig,
    keys: ArcSwap<JwkSet>,
    file_modified: Mutex<Option<SystemTime>>,
    client: Option<HttpsClient>,
    last_reload: tokio::sync::Mutex<Option<Instant>>,
    /// `jti` → `exp`.
    seen: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn read_jwks_file(path: &std::path::Path) -> Result<(JwkSet, Option<SystemTime>), String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {}", path.display(), e.kind()))?;
    let set = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a JWKS: {e}", path.display()))?;
    Ok((set, modified))
}

fn https_client(url: &http::Uri, ca: Option<&std::path::Path>) -> Result<HttpsClient, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match (url.scheme_str(), ca) {
        (Some("https"), Some(ca)) => {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {}", ca.display(), e.kind()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|_| format!("{}: bad PEM", ca.display()))?;
                roots.add(cert).map_err(|e| e.to_string())?;
            }
        }
        (Some("https"), None) => {
            return Err("an https JWKS URL needs `ca` (explicit trust anchors)".into());
        }
        (Some("http"), _) => {
            let loopback = url
                .host()
                .map(|h| h.trim_matches(['[', ']']))
                .and_then(|h| h.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| ip.is_loopback());
            if !loopback {
                return Err("plain http JWKS URLs are accepted on loopback addresses only".into());
            }
        }
        _ => return Err("the JWKS URL must be http(s)://".into()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

impl Guard {
    /// Checks the configuration and reads a key file now; URL keys are
    /// fetched on first use (call [`Guard::reload_keys`] to fetch eagerly).
    pub fn new(config: GuardConfig) -> Result<Self, String> {
        if config.issuers.is_empty() || config.audience.is_empty() {
            return Err("an issuer and this backend's audience are required".into());
        }
        if config.require_encryption && config.decryption_keys.is_empty() {
            return Err("require_encryption needs a decryption key".into());
        }
        let (keys, modified, client) = match &config.keys {
            Keys::File(path) => {
                let (set, modified) = read_jwks_file(path)?;
                (set, modified, None)
            }
            Keys::Url { url, ca } => (
                JwkSet { keys: Vec::new() },
                None,
                Some(https_client(url, ca.as_deref())?),
            ),
        };
        Ok(Self {
            config,
            keys: ArcSwap::from_pointee(keys),
            file_modified: Mutex::new(modified),
            client,
            last_reload: tokio::sync::Mutex::new(None),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Re-reads the key file (when changed) or refetches the URL. A
    /// failure keeps the last good keys.
    pub async fn reload_keys(&self) -> Result<(), String> {
        match &self.config.keys {
            Keys::File(path) => {
                let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                let mut last = self.file_modified.lock().map_err(|_| "lock poisoned")?;
                if modified.is_some() && modified == *last {
                    return Ok(());
                }
                let (set, modified) = read_jwks_file(path)?;
                self.keys.store(Arc::new(set));
                *last = modified;
                Ok(())
            }
            Keys::Url { url, .. } => {
                use http_body_util::BodyExt;
                let client = self.client.as_ref().ok_or("no client")?;
                let fetch = async {
                    let response = client
                        .get(url.clone())
                        .await
                        .map_err(|e| format!("JWKS fetch: {e}"))?;
                    if response.status() != StatusCode::OK {
                        return Err(format!("JWKS fetch: status {}", response.status()));
                    }
                    let body = http_body_util::Limited::new(response.into_body(), 1024 * 1024)
                        .collect()
                        .await
                        .map_err(|e| format!("JWKS body: {e}"))?
                        .to_bytes();
                    serde_json::from_slice::<JwkSet>(&body).map_err(|e| format!("not a JWKS: {e}"))
                };
                let set = tokio::time::timeout(Duration::from_secs(5), fetch)
                    .await
                    .map_err(|_| "JWKS fetch timed out".to_owned())??;
                self.keys.store(Arc::new(set));
                Ok(())
            }
        }
    }

    /// Reloads keys for an unknown `kid`: single-flight, at most every 2 s.
    async fn reload_for_unknown_kid(&self) {
        let mut last = self.last_reload.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_RELOAD) {
            return;
        }
        *last = Some(Instant::now());
        // A failure keeps the last good keys; the token is then refused.
        let _ = self.reload_keys().await;
    }

    /// Verifies a request's attestation: peer, token, binding.
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        peer: Option<&CertificateDer<'_>>,
    ) -> Result<GatewayContext, Refusal> {
        if !self.config.gateway_peer_names.is_empty() {
            self.check_peer(peer)?;
        }
        let mut values = headers.get_all(&self.config.header).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return Err(Refusal::Missing),
            (Some(_), Some(_)) => return Err(Refusal::Invalid("token given twice")),
            (Some(v), None) => v,
        };
        if value.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Invalid("token too large"));
        }
        let token = value.to_str().map_err(|_| Refusal::Invalid("not text"))?;
        let inner;
        let token = if portcullis_jose::jwe::is_jwe(token) {
            if self.config.decryption_keys.is_empty() {
                return Err(Refusal::Invalid("encrypted token but no decryption key"));
            }
            inner = portcullis_jose::jwe::decrypt(token, &self.config.decryption_keys)
                .map_err(Refusal::Invalid)?;
            inner.as_str()
        } else if self.config.require_encryption {
            return Err(Refusal::Invalid("token is not encrypted"));
        } else {
            token
        };
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid("bad header"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(Refusal::Invalid("algorithm is not EdDSA"));
        }
        if header.typ.as_deref() != Some(TYP) {
            return Err(Refusal::Invalid("not a context token (typ)"));
        }
        let kid = header.kid.ok_or(Refusal::Invalid("no kid"))?;
        let mut key = self.keys.load().find(&kid).cloned();
        if key.is_none() {
            self.reload_for_unknown_kid().await;
            key = self.keys.load().find(&kid).cloned();
        }
        let jwk = key.ok_or(Refusal::Invalid("signed by an unknown key"))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| Refusal::Invalid("unusable key"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&self.config.issuers);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
        validation.leeway = self.config.leeway.as_secs();
        let claims = jsonwebtoken::decode::<ContextClaims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Refusal::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => Refusal::WrongAudience,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    Refusal::Invalid("issuer not allowed")
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    Refusal::Invalid("bad signature")
                }
                _ => Refusal::Invalid("claims do not verify"),
            })?
            .claims;
        let now = now();
        let leeway = self.config.leeway.as_secs() as i64;
        if claims.exp - claims.iat > MAX_LIFETIME_S || claims.iat > now + leeway {
            return Err(Refusal::Invalid(
                "lifetime longer than 30 s or issued in the future",
            ));
        }
        let correlation = headers
            .get(&self.config.correlation_header)
            .and_then(|v| v.to_str().ok());
        if correlation != Some(claims.correlation_id.as_str()) {
            return Err(Refusal::Correlation);
        }
        self.first_use(&claims.jti, claims.exp + leeway, now)?;
        Ok(GatewayContext(claims))
    }

    fn check_peer(&self, peer: Option<&CertificateDer<'_>>) -> Result<(), Refusal> {
        use x509_parser::extensions::GeneralName;
        let der = peer.ok_or(Refusal::Peer("no client certificate"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|_| Refusal::Peer("unreadable client certificate"))?;
        let san = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .ok_or(Refusal::Peer("client certificate without SAN"))?;
        let names = &self.config.gateway_peer_names;
        let ok = san.value.general_names.iter().any(|n| match n {
            GeneralName::DNSName(d) => names.iter().any(|w| w.eq_ignore_ascii_case(d)),
            GeneralName::URI(u) => names.iter().any(|w| w == u),
            _ => false,
        });
        if ok {
            Ok(())
        } else {
            Err(Refusal::Peer(
                "client certificate does not name the gateway",
            ))
        }
    }

    fn first_use(&self, jti: &str, until: i64, now: i64) -> Result<(), Refusal> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| Refusal::Keys("replay cache poisoned".into()))?;
        if seen.len() >= MAX_SEEN / 2 {
            seen.retain(|_, exp| *exp >= now);
        }
        if seen.len() >= MAX_SEEN {
            // Fail closed rather than forget tokens that could be replayed.
            return Err(Refusal::Replay);
        }
        if seen.insert(jti.to_owned(), until).is_some() {
            return Err(Refusal::Replay);
        }
        Ok(())
    }
}

/// The 401 problem every refusal gets; it does not say which check failed.
pub fn refusal_response<B: From<Bytes>>() -> Response<B> {
    let body = Bytes::from_static(
        br#"{"type":"urn:portcullis:problem:gateway-attestation-required","title":"Gateway attestation required","status":401,"detail":"This service accepts only requests forwarded by the API gateway. Call the API through the gateway."}"#,
    );
    let mut response = Response::new(B::from(body));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/problem+json"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// Tower layer: wraps a service so that only attested requests reach it.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    guard: Arc<Guard>,
}

impl GuardLayer {
    pub fn new(guard: Arc<Guard>) -> Self {
        Self { guard }
    }
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = GuardService<S>;
    fn layer(&self, inner: S) -> GuardService<S> {
        GuardService {
            guard: self.guard.clone(),
            inner,
        }
    }
}

/// The service [`GuardLayer`] produces.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    guard: Arc<Guard>,
    inner: S,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for GuardService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The ready service is used for this call; a clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            let peer = request.extensions().get::<CertificateDer<'static>>();
            match guard.verify(request.headers(), peer).await {
                Ok(context) => {
                    request.extensions_mut().insert(context);
                    inner.call(request).await
                }
                Err(refusal) => {
                    tracing_refusal(&refusal);
                    Ok(refusal_response())
                }
            }
        })
    }
}

fn tracing_refusal(refusal: &Refusal) {
    tracing::warn!(target: "portcullis_guard", reason = %refusal, "request refused: not attested by the gateway");
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for GatewayContext {
    type Rejection = Response<axum_core::body::Body>;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        // Without the layer there is no verified context: refuse.
        parts
            .extensions
            .get::<GatewayContext>()
            .cloned()
            .ok_or_else(refusal_response)
    }
}

#[cfg(all(test, feature = "axum"))]
mod tests {
    use super::*;
    use axum_core::extract::FromRequestParts;

    #[tokio::test]
    async fn the_extractor_refuses_without_a_verified_context() {
        let (mut parts, ()) = Request::new(()).into_parts();
        let refused = GatewayContext::from_request_parts(&mut parts, &()).await;
        assert_eq!(refused.unwrap_err().status(), StatusCode::UNAUTHORIZED);
        let claims: ContextClaims = serde_json::from_value(serde_json::json!({
            "iss": "portcullis", "aud": "b", "iat": 1, "exp": 2, "jti": "j",
            "correlation_id": "c", "sub": "alice"
        }))
        .unwrap();
        parts.extensions.insert(GatewayContext(claims));
        let got = GatewayContext::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        assert_eq!(got.sub.as_deref(), Some("alice"));
    }
}
