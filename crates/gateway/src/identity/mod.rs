//! Identity at the gateway (AUTHN-01, AUTHN-05, AUTHZ-01, AUTHZ-07,
//! AUTHZ-09): which application calls (API key), on whose behalf (bearer
//! token), and whether that is allowed here, all before the body is read.
//! Stages 5, 6 and 7 of the pipeline, plus self-service token revocation.
//!
//! Everything is evaluated per request against the current snapshot of the
//! store (AUTHZ-05): a revoked key, disabled application or revoked token is
//! refused on the very next request. A store or key-file fault never lets a
//! request through.

pub mod apikeys;
pub mod context_token;
pub mod introspection;
pub mod jwks;
pub mod keyset;
pub mod store_view;
pub mod tokens;
pub mod verified_cache;

use crate::clock::now;
use crate::events::{EventSink, SecurityEvent};
use crate::identity::jwks::JwksFetcher;
use crate::identity::keyset::KeySet;
use crate::identity::tokens::{TokenError, VerifiedToken};
use crate::rejection::Rejection;
use crate::rejection::Severity;
use crate::store::pepper::Pepper;
use crate::store::{Revocation, Snapshot, Store, StoreError};
use crate::tls::clientauth::PeerCert;
use arc_swap::ArcSwap;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::jwk::JwkSet;
use portcullis_config::{Identity, Issuer, JwksSource, Protected};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
pub use store_view::StoreView;
use store_view::spawn_refresher;

/// Longest token lifetime accepted, and so how long a "revoke all" entry is kept.
pub const MAX_TOKEN_LIFETIME_S: i64 = 24 * 3600;

/// Query parameter names that carry credentials and are never accepted.
const CREDENTIAL_PARAMS: [&str; 6] = [
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "access_token",
    "key",
];

/// The verified identity of a request: one typed claim set (AUTHN-01).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimSet {
    /// Application name, from the API key.
    pub application: Option<String>,
    pub token: Option<VerifiedToken>,
    /// `api_key`, `mtls` (certificate-bound application), `bearer`.
    pub methods: Vec<&'static str>,
}

enum KeySource {
    File {
        path: std::path::PathBuf,
        modified: std::sync::Mutex<Option<SystemTime>>,
    },
    Url(Box<JwksFetcher>),
}

struct IssuerState {
    config: Issuer,
    keys: ArcSwap<KeySet>,
    source: KeySource,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity.data_dir: {0}")]
    Pepper(#[from] crate::store::pepper::PepperError),
    #[error("identity.data_dir: {0}")]
    Store(#[from] StoreError),
    #[error("identity.issuers[{index}]: {reason}")]
    Jwks { index: usize, reason: String },
    #[error("identity.introspection: {0}")]
    Introspection(String),
    #[error("identity.decryption_keys[{index}]: {reason}")]
    DecryptionKey { index: usize, reason: String },
}

/// Identity state shared by every request.
pub struct IdentityState {
    pub config: Identity,
    decryption_keys: Vec<(Option<String>, portcullis_jose::jwe::DecryptionKey)>,
    introspector: Option<introspection::Introspector>,
    view: Arc<StoreView>,
    issuers: Vec<IssuerState>,
    /// Tokens already verified, by digest; `None` when turned off.
    verified: Option<verified_cache::VerifiedCache>,
}

impl std::fmt::Debug for IdentityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityState").finish_non_exhaustive()
    }
}

fn read_jwks(path: &std::path::Path) -> Result<(KeySet, Option<SystemTime>), String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    if text.len() > 1024 * 1024 {
        return Err("JWKS larger than 1 MiB".into());
    }
    let set: JwkSet =
        serde_json::from_slice(&text).map_err(|e| format!("not a JWKS document: {e}"))?;
    Ok((KeySet::from(set), modified))
}

impl IdentityState {
    /// Opens the store and reads the pepper and every issuer's keys.
    pub fn open(config: &Identity, events: EventSink) -> Result<Arc<Self>, IdentityError> {
        let pepper = Pepper::load_or_create(&config.data_dir)?;
        let store = crate::store::open(config, &pepper)?;
        let snapshot = ArcSwap::from_pointee(store.snapshot()?);
        let view = Arc::new(StoreView {
            pepper,
            store,
            snapshot,
            confirmed_ms: std::sync::atomic::AtomicU64::new(crate::clock::now_ms()),
            events: events.clone(),
        });
        let resync = config
            .postgres
            .as_ref()
            .map_or(Duration::from_secs(30), |p| p.resync);
        spawn_refresher(Arc::downgrade(&view), events, resync);
        Self::with_view(config, view)
    }

    /// The same store with another identity config (a reload): issuers,
    /// keys and introspection are read anew, the store stays open.
    pub fn reopen(&self, config: &Identity) -> Result<Arc<Self>, IdentityError> {
        Self::with_view(config, self.view.clone())
    }

    fn with_view(config: &Identity, view: Arc<StoreView>) -> Result<Arc<Self>, IdentityError> {
        let mut issuers = Vec::new();
        for (index, i) in config.issuers.iter().enumerate() {
            let jwks_error = |reason: String| IdentityError::Jwks { index, reason };
            let (keys, source) = match &i.jwks {
                JwksSource::File(path) => {
                    let (keys, modified) = read_jwks(path).map_err(jwks_error)?;
                    let modified = std::sync::Mutex::new(modified);
                    (
                        keys,
                        KeySource::File {
                            path: path.clone(),
                            modified,
                        },
                    )
                }
                // Fetched once the runtime runs (Gateway::start), and on demand.
                JwksSource::Url {
                    url,
                    ca,
                    refresh,
                    min_refetch,
                } => (
                    KeySet::default(),
                    KeySource::Url(Box::new(
                        JwksFetcher::new(url.clone(), ca, *refresh, *min_refetch)
                            .map_err(jwks_error)?,
                    )),
                ),
            };
            issuers.push(IssuerState {
                config: i.clone(),
                keys: ArcSwap::from_pointee(keys),
                source,
            });
        }
        let mut decryption_keys = Vec::new();
        for (n, (kid, path)) in config.decryption_keys.iter().enumerate() {
            let field = |reason: String| IdentityError::DecryptionKey { index: n, reason };
            // Same rule as TLS keys: refused when readable by group or others (TLS-07).
            crate::tls::load_key(path).map_err(|e| field(e.to_string()))?;
            let pem = zeroize::Zeroizing::new(
                std::fs::read(path).map_err(|e| field(e.kind().to_string()))?,
            );
            decryption_keys.push((
                kid.clone(),
                portcullis_jose::jwe::DecryptionKey::from_pkcs8_pem(&pem).map_err(field)?,
            ));
        }
        let introspector = config
            .introspection
            .as_ref()
            .map(introspection::Introspector::new)
            .transpose()
            .map_err(IdentityError::Introspection)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            decryption_keys,
            introspector,
            view,
            issuers,
            verified: verified_cache::VerifiedCache::new(config.verified_token_cache),
        }))
    }

    /// Stage 4: refuses when an operator switched the API or the route off
    /// (OPS-03). Costs one load and an emptiness check when nothing is off.
    pub fn switched_off(&self, api: &str, route: &str) -> Result<(), Rejection> {
        let snap = self.view.snapshot.load();
        if snap.kill_switches.is_empty() {
            return Ok(());
        }
        for target in [api, route] {
            if let Some(reason) = snap.kill_switches.get(target) {
                return Err(Rejection::SwitchedOff {
                    target: target.to_owned(),
                    reason: reason.clone(),
                });
            }
        }
        Ok(())
    }

    /// The current snapshot of the store.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.view.snapshot()
    }

    /// The store, the pepper and the snapshot, which outlive reloads.
    pub fn view(&self) -> &Arc<StoreView> {
        &self.view
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.view.store
    }

    pub fn pepper(&self) -> &Pepper {
        &self.view.pepper
    }

    /// Re-reads the store into the snapshot now.
    pub fn refresh(&self) -> Result<(), StoreError> {
        self.view.refresh()
    }

    /// Re-reads JWKS files that changed; keeps the last good keys on error,
    /// raising one `jwks-unusable` event per unusable version of the file.
    fn refresh_key_files(&self) {
        for i in &self.issuers {
            let KeySource::File {
                path,
                modified: last,
            } = &i.source
            else {
                continue;
            };
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            let mut last = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if modified.is_some() && modified != *last {
                match read_jwks(path) {
                    Ok((keys, m)) => {
                        i.keys.store(Arc::new(keys));
                        *last = m;
                        tracing::info!(issuer = %i.config.issuer, "JWKS reloaded");
                    }
                    Err(e) => {
                        // Not read again until it changes once more.
                        *last = modified;
                        tracing::error!(issuer = %i.config.issuer, error = %e, "JWKS reload failed; keeping the last good keys");
                        self.view.events.emit(SecurityEvent::operational(
                            "jwks-unusable",
                            Severity::High,
                            &format!(
                                "the JWKS file of issuer {} cannot be used ({e}); the last good keys stay in force",
                                i.config.issuer
                            ),
                        ));
                    }
                }
            }
        }
    }

    /// Keeps JWKS fresh: URL sources fetched now and once per refresh
    /// period, file sources re-read when they change (polled every 250 ms).
    /// Runs until the state is dropped (a reload drops it). Call inside the
    /// runtime.
    pub fn spawn_jwks_refresh(self: &Arc<Self>) {
        if self
            .issuers
            .iter()
            .any(|i| matches!(i.source, KeySource::File { .. }))
        {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let Some(state) = weak.upgrade() else { return };
                    state.refresh_key_files();
                }
            });
        }
        for index in 0..self.issuers.len() {
            let KeySource::Url(f) = &self.issuers[index].source else {
                continue;
            };
            let period = f.refresh;
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    {
                        let Some(state) = weak.upgrade() else { return };
                        let i = &state.issuers[index];
                        if let KeySource::Url(f) = &i.source {
                            f.refresh(&i.config.issuer, &i.keys, true).await;
                        }
                    }
                    tokio::time::sleep(period).await;
                }
            });
        }
    }

    /// JWKS fetches attempted for an issuer (URL sources only).
    pub fn jwks_fetches(&self, issuer: &str) -> u64 {
        self.issuers
            .iter()
            .find(|i| i.config.issuer == issuer)
            .map_or(0, |i| match &i.source {
                KeySource::Url(f) => f.fetches(),
                KeySource::File { .. } => 0,
            })
    }

    /// Refuses credentials in the query string (AUTHN-04): 400, never accepted.
    pub fn refuse_query_credentials(query: Option<&str>) -> Result<(), Rejection> {
        let Some(q) = query else { return Ok(()) };
        for pair in q.split('&') {
            let name = pair.split('=').next().unwrap_or("");
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if CREDENTIAL_PARAMS
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
            {
                return Err(Rejection::CredentialInQuery);
            }
        }
        Ok(())
    }

    /// Stage 5, application: from the API key in its header (AUTHN-04,
    /// OPS-04) and/or from a client certificate whose SAN is bound to an
    /// application (already verified and re-checked in stage 1). When both
    /// are presented they must name the same application.
    pub fn application(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerCert>,
    ) -> Result<(String, &'static [&'static str]), Rejection> {
        let snap = self.view.snapshot.load();
        let by_certificate = match peer {
            Some(p) => certificate_application(&snap, p)?,
            None => None,
        };
        if !headers.contains_key(&self.config.api_key_header) {
            return by_certificate
                .map(|app| (app, &["mtls"][..]))
                .ok_or(Rejection::MissingApiKey);
        }
        let by_key = self.key_application(&snap, headers)?;
        match by_certificate {
            None => Ok((by_key, &["api_key"])),
            Some(app) if app == by_key => Ok((app, &["api_key", "mtls"])),
            Some(_) => Err(Rejection::InvalidApiKey(
                "the API key and the client certificate belong to different applications",
            )),
        }
    }

    fn key_application(&self, snap: &Snapshot, headers: &HeaderMap) -> Result<String, Rejection> {
        let mut values = headers.get_all(&self.config.api_key_header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Rejection::MissingApiKey);
        };
        let key = value
            .to_str()
            .map_err(|_| Rejection::InvalidApiKey("not text"))?;
        let id = apikeys::key_id(key).ok_or(Rejection::InvalidApiKey("not a Portcullis key"))?;
        let record = snap
            .keys
            .get(id)
            .ok_or(Rejection::InvalidApiKey("unknown or revoked key"))?;
        if !self.view.pepper.verify(key, &record.mac) {
            return Err(Rejection::InvalidApiKey("unknown key"));
        }
        if record.expires_at.is_some_and(|e| e <= now()) {
            return Err(Rejection::InvalidApiKey("expired key"));
        }
        let app = snap
            .apps
            .get(&record.app_id)
            .ok_or(Rejection::InvalidApiKey("no application"))?;
        if !app.enabled {
            return Err(Rejection::ApplicationDisabled(app.name.clone()));
        }
        Ok(app.name.clone())
    }

    /// Stage 6, token: a bearer token, verified and checked against
    /// revocations. A certificate-bound token (RFC 8705 `cnf.x5t#S256`) is
    /// accepted only when `peer_cert`, the SHA-256 of the connection's client
    /// certificate, is that certificate: for every use, revocation included.
    pub async fn token(
        &self,
        headers: &HeaderMap,
        peer_cert: Option<&[u8; 32]>,
    ) -> Result<VerifiedToken, Rejection> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Rejection::MissingToken);
        };
        let value = value
            .to_str()
            .map_err(|_| Rejection::InvalidToken(TokenError::Malformed))?;
        let token = match value.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => return Err(Rejection::MissingToken),
        };
        let verified = self.verify_token(token).await?;
        if let Some(bound) = &verified.cert_thumbprint {
            use base64::Engine;
            let presented =
                peer_cert.map(|t| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t));
            let matches = presented.is_some_and(|p| {
                aws_lc_rs::constant_time::verify_slices_are_equal(p.as_bytes(), bound.as_bytes())
                    .is_ok()
            });
            if !matches {
                return Err(Rejection::InvalidToken(TokenError::Claim(
                    "certificate-bound token (cnf x5t#S256) used without that client certificate",
                )));
            }
        }
        Ok(verified)
    }

    /// Before any RSA or ECDH work on a JWE: a `kid` naming no configured
    /// decryption key, or an `iss` replicated in the protected header
    /// (RFC 7519 §5.3) naming no configured issuer, is refused unread.
    fn worth_decrypting(&self, token: &str) -> Result<(), Rejection> {
        let refuse = |why| Err(Rejection::InvalidToken(TokenError::Header(why)));
        let Some(header) = token
            .split('.')
            .next()
            .and_then(|h| {
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h).ok()
            })
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        else {
            return refuse("encrypted token header is not base64url JSON");
        };
        if let Some(kid) = header.get("kid").and_then(serde_json::Value::as_str) {
            let keyed = self.decryption_keys.iter().any(|(k, _)| k.is_some());
            if keyed
                && !self
                    .decryption_keys
                    .iter()
                    .any(|(k, _)| k.as_deref() == Some(kid))
            {
                return refuse("encrypted to a key id this gateway does not hold");
            }
        }
        if let Some(iss) = header.get("iss").and_then(serde_json::Value::as_str)
            && !self.issuers.iter().any(|i| i.config.issuer == iss)
        {
            return refuse("encrypted token names an issuer that is not configured");
        }
        Ok(())
    }

    async fn verify_token(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        if token.len() > self.config.max_token_bytes {
            return Err(Rejection::InvalidToken(TokenError::TooLarge(
                self.config.max_token_bytes,
            )));
        }
        // Nested JWE: decrypt with the gateway's key, then verify the inner JWS.
        let inner;
        let token = if portcullis_jose::jwe::is_jwe(token) {
            if self.decryption_keys.is_empty() {
                return Err(Rejection::InvalidToken(TokenError::Header(
                    "encrypted token, but no decryption key is configured",
                )));
            }
            self.worth_decrypting(token)?;
            inner = portcullis_jose::jwe::decrypt(token, &self.decryption_keys)
                .map_err(|e| Rejection::InvalidToken(TokenError::Header(e)))?;
            inner.as_str()
        } else {
            token
        };
        // Opaque tokens (not a compact JWS) go to RFC 7662 introspection when configured.
        if token.split('.').count() != 3
            && let Some(introspector) = &self.introspector
        {
            let skew = self.config.clock_skew.as_secs() as i64;
            let t = introspector
                .introspect(token, now(), skew, MAX_TOKEN_LIFETIME_S)
                .await
                .map_err(Rejection::InvalidToken)?;
            return self.not_revoked(t);
        }
        let skew = self.config.clock_skew.as_secs();
        // Seen and verified before, with the issuer's current keys, and not
        // expired: only the signature and claim parsing are skipped.
        let cached = (self.verified.as_ref())
            .map(|cache| (cache, verified_cache::VerifiedCache::digest(token)));
        if let Some((cache, d)) = &cached
            && let Some(t) = cache.get(d, now(), skew as i64, |i| self.issuers[i].keys.load_full())
        {
            return self.not_revoked(t);
        }
        let iss = tokens::unverified_issuer(token)
            .ok_or(Rejection::InvalidToken(TokenError::Malformed))?;
        let (index, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.config.issuer == iss)
            .ok_or(Rejection::InvalidToken(TokenError::UnknownIssuer))?;
        let verify = |keys: &KeySet| {
            tokens::verify(
                token,
                &issuer.config,
                keys,
                skew,
                MAX_TOKEN_LIFETIME_S,
                now(),
            )
        };
        let mut keys = issuer.keys.load_full();
        let mut result = verify(&keys);
        // An unknown `kid` may mean the issuer rotated: refetch (single-flight, rate limited) and retry once.
        if let (Err(TokenError::UnknownKey(_)), KeySource::Url(f)) = (&result, &issuer.source) {
            f.refresh(&issuer.config.issuer, &issuer.keys, false).await;
            keys = issuer.keys.load_full();
            result = verify(&keys);
        }
        let t = result.map_err(Rejection::InvalidToken)?;
        if let Some((cache, d)) = cached {
            cache.insert(d, (index, keys), t.clone(), now(), skew as i64);
        }
        self.not_revoked(t)
    }

    /// Revocation by token id and by subject, against the current snapshot.
    fn not_revoked(&self, t: VerifiedToken) -> Result<VerifiedToken, Rejection> {
        let snap = self.view.snapshot.load();
        if snap
            .revoked_jti
            .contains_key(&(t.issuer.clone(), t.token_id.clone()))
        {
            return Err(Rejection::InvalidToken(TokenError::Revoked));
        }
        if let Some(sub) = &t.subject
            && let Some(before) = snap.revoked_before.get(&(t.issuer.clone(), sub.clone()))
            // Without `iat` the token cannot prove it is newer: fail closed.
            && t.issued_at.is_none_or(|iat| iat <= *before)
        {
            return Err(Rejection::InvalidToken(TokenError::Revoked));
        }
        Ok(t)
    }

    /// Revocations, disabled applications and kill switches live in the
    /// store: a snapshot not known current for too long decides nothing.
    pub fn current(&self) -> Result<(), Rejection> {
        let stale = self.view.staleness();
        if stale > self.config.max_staleness {
            return Err(Rejection::StoreUnavailable(format!(
                "identity snapshot not confirmed current for {}s (identity.max_staleness_s)",
                stale.as_secs()
            )));
        }
        Ok(())
    }

    /// Stages 5–7 for a protected route; returns the request's claim set.
    /// `peer` is the connection's verified client certificate: it can name
    /// the application, and binds certificate-bound tokens (RFC 8705).
    pub async fn authenticate(
        &self,
        policy: &Protected,
        headers: &HeaderMap,
        peer: Option<&PeerCert>,
    ) -> Result<ClaimSet, Rejection> {
        self.current()?;
        let mut claims = ClaimSet::default();
        if policy.api_key {
            let (app, methods) = self.application(headers, peer)?;
            claims.application = Some(app);
            claims.methods.extend_from_slice(methods);
        }
        if policy.token {
            claims.token = Some(self.token(headers, peer.map(|p| &p.thumbprint)).await?);
            claims.methods.push("bearer");
        }
        if claims.methods.is_empty() {
            // Config validation forbids a protected route that names no
            // credential; should one ever get here, it must not pass.
            return Err(Rejection::MissingApiKey);
        }
        authorize(policy, &claims)?;
        Ok(claims)
    }

    /// Self-service revocation (RFC 7009 style): the caller proves it holds a
    /// valid token and its application's API key, then revokes
    /// that token, or another token of the same subject named in `token=`.
    /// The caller of the revocation endpoint proves both its application
    /// and the token it holds, before its body is read (issue 16 item 3).
    pub async fn revocation_caller(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerCert>,
    ) -> Result<VerifiedToken, Rejection> {
        self.application(headers, peer)?;
        self.token(headers, peer.map(|p| &p.thumbprint)).await
    }

    /// Revokes the token named in `body` (RFC 7009), or the caller's own.
    pub async fn revoke(&self, caller: VerifiedToken, body: &[u8]) -> Result<(), Rejection> {
        let named = form_value(body, "token");
        let target = match named.as_deref() {
            None => caller.clone(),
            Some(t) => match self.verify_token(t).await {
                Ok(t) => t,
                // RFC 7009 §2.2: an invalid token is answered 200; nothing to revoke.
                Err(_) => return Ok(()),
            },
        };
        if target.issuer != caller.issuer
            || target.subject != caller.subject
            || target.subject.is_none() && target != caller
        {
            return Err(Rejection::InsufficientScope {
                scope: String::new(),
                reason: "a token may only revoke tokens of its own subject",
            });
        }
        self.store_revocation(&Revocation {
            issuer: target.issuer.clone(),
            jti: Some(target.token_id.clone()),
            subject: None,
            revoked_before: None,
            expires_at: target.expires_at,
        })
    }

    /// "Revoke all my tokens": every token of the caller's subject issued until now.
    pub async fn revoke_all(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerCert>,
    ) -> Result<(), Rejection> {
        self.application(headers, peer)?;
        let caller = self.token(headers, peer.map(|p| &p.thumbprint)).await?;
        let Some(subject) = caller.subject.clone() else {
            return Err(Rejection::InvalidToken(TokenError::Claim(
                "no `sub`: nothing to revoke by subject",
            )));
        };
        let now = now();
        self.store_revocation(&Revocation {
            issuer: caller.issuer,
            jti: None,
            subject: Some(subject),
            revoked_before: Some(now),
            expires_at: now + MAX_TOKEN_LIFETIME_S + self.config.clock_skew.as_secs() as i64,
        })
    }

    fn store_revocation(&self, r: &Revocation) -> Result<(), Rejection> {
        self.view
            .store
            .revoke_token(r, now())
            .and_then(|()| self.refresh())
            .map_err(|e| Rejection::StoreUnavailable(e.to_string()))
    }
}

/// The application a client certificate is bound to, by its SANs; a
/// certificate naming two applications is ambiguous and refused.
fn certificate_application(snap: &Snapshot, peer: &PeerCert) -> Result<Option<String>, Rejection> {
    let mut found: Option<&crate::store::Application> = None;
    for name in &peer.names {
        let Some(id) = snap.cert_apps.get(name) else {
            continue;
        };
        let app = snap
            .apps
            .get(id)
            .ok_or(Rejection::InvalidApiKey("no application"))?;
        if found.is_some_and(|f| f.id != app.id) {
            return Err(Rejection::InvalidApiKey(
                "the client certificate names more than one application",
            ));
        }
        found = Some(app);
    }
    match found {
        Some(app) if !app.enabled => Err(Rejection::ApplicationDisabled(app.name.clone())),
        found => Ok(found.map(|a| a.name.clone())),
    }
}

/// Stage 7, authorization: application allowlist and required scopes
/// (AUTHZ-01, AUTHZ-02, AUTHZ-11), computed per request, never cached
/// (AUTHZ-05).
pub fn authorize(policy: &Protected, claims: &ClaimSet) -> Result<(), Rejection> {
    if let Some(token) = &claims.token {
        // A token is only as good as the issuer's authority over this API:
        // a partner's identity provider minting `admin` passes nothing here.
        if !policy.issuers.is_empty() && !policy.issuers.contains(&token.issuer) {
            return Err(Rejection::InsufficientScope {
                scope: policy.scopes.join(" "),
                reason: "tokens of this issuer are not accepted on this API",
            });
        }
        if policy.bind_token_to_application
            && (claims.application.is_none() || token.client_id != claims.application)
        {
            return Err(Rejection::InsufficientScope {
                scope: policy.scopes.join(" "),
                reason: "the token was issued to another application than the calling one",
            });
        }
    }
    if !policy.apps.is_empty() {
        let allowed = claims
            .application
            .as_ref()
            .is_some_and(|a| policy.apps.iter().any(|p| p == a));
        if !allowed {
            return Err(Rejection::InsufficientScope {
                scope: policy.scopes.join(" "),
                reason: "application not allowed on this route",
            });
        }
    }
    if !policy.scopes.is_empty() {
        let have = claims
            .token
            .as_ref()
            .map_or(&[][..], |t| t.scopes.as_slice());
        if !policy.scopes.iter().all(|s| have.contains(s)) {
            return Err(Rejection::InsufficientScope {
                scope: policy.scopes.join(" "),
                reason: "token lacks a required scope",
            });
        }
    }
    Ok(())
}

/// A field of an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(body).ok()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scopes: &[&str]) -> VerifiedToken {
        VerifiedToken {
            issuer: "i".into(),
            subject: Some("s".into()),
            audience: vec![],
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: 0,
            issued_at: None,
            token_id: "t".into(),
            client_id: None,
            cert_thumbprint: None,
        }
    }

    #[test]
    fn authorization_needs_every_scope_and_an_allowed_app() {
        let policy = Protected {
            api_key: true,
            token: true,
            scopes: vec!["a".into(), "b".into()],
            apps: vec!["web".into()],
            issuers: vec![],
            bind_token_to_application: false,
        };
        let ok = ClaimSet {
            application: Some("web".into()),
            token: Some(token(&["b", "a", "c"])),
            methods: vec![],
        };
        assert!(authorize(&policy, &ok).is_ok());
        let missing = ClaimSet {
            token: Some(token(&["a"])),
            ..ok.clone()
        };
        assert!(matches!(
            authorize(&policy, &missing),
            Err(Rejection::InsufficientScope { .. })
        ));
        let other_app = ClaimSet {
            application: Some("batch".into()),
            ..ok.clone()
        };
        assert!(matches!(
            authorize(&policy, &other_app),
            Err(Rejection::InsufficientScope { .. })
        ));
        let no_token = ClaimSet { token: None, ..ok };
        assert!(authorize(&policy, &no_token).is_err());
    }

    #[test]
    fn credentials_in_the_query_are_refused() {
        for q in [
            "api_key=x",
            "a=1&API_KEY=x",
            "access_token=t",
            "api%5Fkey=x",
        ] {
            assert!(
                IdentityState::refuse_query_credentials(Some(q)).is_err(),
                "{q}"
            );
        }
        assert!(IdentityState::refuse_query_credentials(Some("page=2&keyword=x")).is_ok());
    }
}
