//! Gateway-attested context for backends (AUTHN-09/12, AUTHZ-04/06,
//! DATA-05): for each upstream request, a short-lived token signed with
//! the gateway's own Ed25519 key, audience = that upstream, bound to the
//! correlation id, carrying the verified identity; optionally encrypted to
//! the upstream's public key. Backends verify it with the `guard` crate
//! against the JWKS published here.
//!
//! Keys live in `keys_dir` as `ed25519-<created unix s>.p8` (PKCS#8 DER,
//! mode 0600; a group/world-readable key is refused). The newest key signs.
//! Rotation writes a new key once the newest is `rotate_after` old; a
//! replaced key stays published for `overlap` (at least the token
//! lifetime), then its file is deleted. `jwks.json` in the same directory
//! always holds the published keys, for backends that read a file.

use crate::identity::ClaimSet;
use crate::rejection::Rejection;
use arc_swap::ArcSwap;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use portcullis_config::{ContextToken, Upstream};
use portcullis_jose::context::{Confirmation, ContextClaims, TYP};
use portcullis_jose::jwe::{self, EncryptionKey};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("context_token.keys_dir: {0}")]
    Keys(String),
    #[error("upstreams.{upstream}.context_encrypt_to: {reason}")]
    EncryptTo { upstream: String, reason: String },
}

/// One Ed25519 signing key.
struct SigningKey {
    kid: String,
    created: i64,
    path: PathBuf,
    pair: Ed25519KeyPair,
    /// base64url of the protected header, fixed per key.
    header_b64: String,
    /// The public key as a JWK.
    jwk: serde_json::Value,
}

/// The keys in use: the newest signs, all are published.
struct KeyRing {
    /// Oldest first; the last one signs.
    keys: Vec<Arc<SigningKey>>,
    jwks: Bytes,
}

impl KeyRing {
    fn active(&self) -> &SigningKey {
        self.keys.last().expect("a key ring is never empty")
    }
}

/// Per upstream: the audience, and the key to encrypt to.
struct Recipient {
    audience: String,
    encrypt_to: Option<EncryptionKey>,
    /// False for a plaintext (`dangerous_plaintext_upstream`) upstream: the
    /// context never travels unencrypted on the wire (DATA-05).
    send: bool,
}

/// Mints context tokens and keeps the signing keys.
pub struct Attestor {
    config: ContextToken,
    /// Shared with the attestor of a reloaded config: one ring, one rotation.
    ring: Arc<ArcSwap<KeyRing>>,
    recipients: Vec<Recipient>,
    rotation: Arc<std::sync::Mutex<()>>,
}

impl std::fmt::Debug for Attestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attestor")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

fn keys_error(path: &Path, what: impl std::fmt::Display) -> AttestError {
    AttestError::Keys(format!("{}: {what}", path.display()))
}

impl SigningKey {
    fn load(path: &Path, created: i64) -> Result<Self, AttestError> {
        crate::tls::check_key_permissions(path).map_err(|e| AttestError::Keys(e.to_string()))?;
        let der =
            zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| keys_error(path, e.kind()))?);
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|_| keys_error(path, "not an Ed25519 PKCS#8 key"))?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        // RFC 7638 thumbprint: members in lexicographic order, no spaces.
        let thumbprint = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            thumbprint.as_bytes(),
        ));
        let header = serde_json::json!({"alg": "EdDSA", "typ": TYP, "kid": kid});
        Ok(Self {
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            jwk: serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": x,
                "kid": kid, "alg": "EdDSA", "use": "sig",
            }),
            kid,
            created,
            path: path.to_owned(),
            pair,
        })
    }

    /// Writes a new key file (mode 0600, never overwriting) and loads it.
    fn generate(dir: &Path, now: i64) -> Result<Self, AttestError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| AttestError::Keys("cannot generate an Ed25519 key".into()))?;
        let path = dir.join(format!("ed25519-{now}.p8"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .map_err(|e| keys_error(&path, e.kind()))?;
        std::io::Write::write_all(&mut file, pkcs8.as_ref())
            .and_then(|()| file.sync_all())
            .map_err(|e| keys_error(&path, e.kind()))?;
        Self::load(&path, now)
    }
}

/// The keys in `dir`, oldest first.
fn read_keys(dir: &Path) -> Result<Vec<Arc<SigningKey>>, AttestError> {
    let entries = std::fs::read_dir(dir).map_err(|e| keys_error(dir, e.kind()))?;
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| keys_error(dir, e.kind()))?;
        let name = entry.file_name();
        let Some(created) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ed25519-"))
            .and_then(|n| n.strip_suffix(".p8"))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        keys.push(Arc::new(SigningKey::load(&entry.path(), created)?));
    }
    keys.sort_by_key(|k| k.created);
    Ok(keys)
}

/// Per upstream, by index: audience and encryption key.
fn recipients(upstreams: &[Upstream]) -> Result<Vec<Recipient>, AttestError> {
    upstreams
        .iter()
        .map(|u| {
            let encrypt_to = u
                .context_encrypt_to
                .as_deref()
                .map(|path| {
                    let pem = std::fs::read(path)
                        .map_err(|e| format!("{}: {}", path.display(), e.kind()))?;
                    EncryptionKey::from_spki_pem(&pem)
                })
                .transpose()
                .map_err(|reason| AttestError::EncryptTo {
                    upstream: u.name.clone(),
                    reason,
                })?;
            Ok(Recipient {
                audience: u.context_audience.clone(),
                encrypt_to,
                send: u.scheme == portcullis_config::UpstreamScheme::Https,
            })
        })
        .collect()
}

impl Attestor {
    /// Reads (or creates) the signing keys and every upstream's encryption key.
    pub fn open(config: &ContextToken, upstreams: &[Upstream]) -> Result<Self, AttestError> {
        let dir = &config.keys_dir;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| keys_error(dir, e.kind()))?;
        let attestor = Self {
            config: config.clone(),
            ring: Arc::new(ArcSwap::from_pointee(KeyRing {
                keys: Vec::new(),
                jwks: Bytes::new(),
            })),
            recipients: recipients(upstreams)?,
            rotation: Arc::default(),
        };
        attestor.maintain(crate::clock::now())?;
        Ok(attestor)
    }

    /// The same keys for the upstreams of a reloaded config (audiences and
    /// encryption keys are read anew).
    pub fn for_upstreams(&self, upstreams: &[Upstream]) -> Result<Self, AttestError> {
        Ok(Self {
            config: self.config.clone(),
            ring: self.ring.clone(),
            recipients: recipients(upstreams)?,
            rotation: self.rotation.clone(),
        })
    }

    pub fn header(&self) -> &HeaderName {
        &self.config.header
    }

    /// The published keys as a JWKS document.
    pub fn jwks(&self) -> Bytes {
        self.ring.load().jwks.clone()
    }

    /// The `kid` of the key signing now.
    pub fn active_kid(&self) -> String {
        self.ring.load().active().kid.clone()
    }

    /// Rotates when the signing key is due, retires keys past their
    /// overlap, and republishes. Returns whether the key set changed.
    pub fn maintain(&self, now: i64) -> Result<bool, AttestError> {
        self.update(now, false)
    }

    /// Replaces the signing key now (the old one stays published for the overlap).
    pub fn rotate(&self, now: i64) -> Result<(), AttestError> {
        self.update(now, true).map(|_| ())
    }

    fn update(&self, now: i64, force: bool) -> Result<bool, AttestError> {
        let _one_at_a_time = self
            .rotation
            .lock()
            .map_err(|_| AttestError::Keys("rotation lock poisoned".into()))?;
        let dir = &self.config.keys_dir;
        let mut keys = read_keys(dir)?;
        let before: Vec<String> = self
            .ring
            .load()
            .keys
            .iter()
            .map(|k| k.kid.clone())
            .collect();
        let due = keys.last().is_none_or(|k| {
            force || now.saturating_sub(k.created) >= self.config.rotate_after.as_secs() as i64
        });
        if due {
            // Names are per second: never reuse one.
            let at = keys.last().map_or(now, |k| now.max(k.created + 1));
            keys.push(Arc::new(SigningKey::generate(dir, at)?));
        }
        // A key replaced at `t` (the next key's creation) is retired at `t + overlap`.
        let overlap = self.config.overlap.as_secs() as i64;
        let superseded: Vec<Option<i64>> = (0..keys.len())
            .map(|i| keys.get(i + 1).map(|next| next.created))
            .collect();
        let mut kept = Vec::new();
        for (key, replaced) in keys.into_iter().zip(superseded) {
            if replaced.is_some_and(|t| now >= t + overlap) {
                let _ = std::fs::remove_file(&key.path);
            } else {
                kept.push(key);
            }
        }
        let jwks = serde_json::to_vec(&serde_json::json!({
            "keys": kept.iter().map(|k| &k.jwk).collect::<Vec<_>>()
        }))
        .map_err(|e| AttestError::Keys(e.to_string()))?;
        let changed = before != kept.iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
        if changed {
            write_atomically(&dir.join("jwks.json"), &jwks)?;
        }
        if changed && !before.is_empty() {
            tracing::info!(kid = %kept.last().map_or("", |k| k.kid.as_str()), published = kept.len(), "context token keys updated");
        }
        self.ring.store(Arc::new(KeyRing {
            keys: kept,
            jwks: Bytes::from(jwks),
        }));
        Ok(changed)
    }

    /// Stage 10: the context token for one upstream request; `None` for a
    /// plaintext upstream, which is never sent one.
    pub fn mint(
        &self,
        upstream: usize,
        claims: Option<&ClaimSet>,
        peer_cert: Option<&[u8; 32]>,
        correlation_id: &str,
        operation: Option<&str>,
    ) -> Result<Option<HeaderValue>, Rejection> {
        let recipient = &self.recipients[upstream];
        if !recipient.send {
            return Ok(None);
        }
        let now = crate::clock::now();
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti)
            .map_err(|_| Rejection::StoreUnavailable("no randomness for a context token".into()))?;
        let token = claims.and_then(|c| c.token.as_ref());
        let body = ContextClaims {
            iss: self.config.issuer.clone(),
            aud: recipient.audience.clone(),
            iat: now,
            exp: now + self.config.lifetime.as_secs() as i64,
            jti: URL_SAFE_NO_PAD.encode(jti),
            correlation_id: correlation_id.to_owned(),
            amr: claims.map_or_else(Vec::new, |c| {
                c.methods.iter().map(|m| (*m).to_owned()).collect()
            }),
            app: claims.and_then(|c| c.application.clone()),
            sub: token.and_then(|t| t.subject.clone()),
            token_iss: token.map(|t| t.issuer.clone()),
            client_id: token.and_then(|t| t.client_id.clone()),
            scopes: token.map_or_else(Vec::new, |t| t.scopes.clone()),
            operation: operation.map(str::to_owned),
            cnf: peer_cert.map(|t| Confirmation {
                x5t_s256: URL_SAFE_NO_PAD.encode(t),
            }),
        };
        let ring = self.ring.load();
        let key = ring.active();
        let payload = serde_json::to_vec(&body)
            .map_err(|e| Rejection::StoreUnavailable(format!("context token: {e}")))?;
        let mut jws = String::with_capacity(key.header_b64.len() + payload.len() * 4 / 3 + 100);
        jws.push_str(&key.header_b64);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jws);
        let signature = key.pair.sign(jws.as_bytes());
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jws);
        let value = match &recipient.encrypt_to {
            None => jws,
            Some(k) => jwe::encrypt(&jws, k, None).map_err(|e| {
                Rejection::StoreUnavailable(format!("context token encryption: {e}"))
            })?,
        };
        HeaderValue::try_from(value)
            .map(Some)
            .map_err(|_| Rejection::StoreUnavailable("context token is not a header value".into()))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AttestError> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| keys_error(path, e.kind()))
}

/// Serves the JWKS on its own loopback listener, and rotates keys on schedule.
pub async fn serve_jwks(
    attestor: Arc<Attestor>,
    socket: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    loop {
        let (stream, _) = tokio::select! {
            r = socket.accept() => match r { Ok(p) => p, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let attestor = attestor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let attestor = attestor.clone();
                async move {
                    let correlation_id = uuid::Uuid::now_v7().to_string();
                    let found = req.method() == http::Method::GET
                        && req.uri().path() == "/.well-known/jwks.json";
                    // Anything else is the gateway's one unknown-route
                    // refusal, with its problem body and hardening headers.
                    let mut response = if found {
                        let mut r = http::Response::new(Full::new(attestor.jwks()));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            HeaderValue::from_static("application/jwk-set+json"),
                        );
                        r
                    } else {
                        Rejection::UnknownRoute.to_response(&correlation_id, "x-correlation-id")
                    };
                    crate::pipeline::hardening::apply_own(
                        response.headers_mut(),
                        &correlation_id,
                        false,
                    );
                    if found {
                        response.headers_mut().insert(
                            http::header::CACHE_CONTROL,
                            HeaderValue::from_static("max-age=60"),
                        );
                        response.headers_mut().remove(http::header::PRAGMA);
                    }
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Checks once a minute whether the signing key is due for rotation.
pub async fn rotate_keys(
    attestor: Arc<Attestor>,
    events: crate::events::EventSink,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = attestor.maintain(crate::clock::now()) {
            // The current key keeps signing; the fault is reported.
            events.emit(crate::events::SecurityEvent::operational(
                "context-key-rotation-failed",
                crate::rejection::Severity::High,
                &e.to_string(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attestor(upstream: &str) -> (tempfile::TempDir, Attestor) {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "mode: dev\nlisteners: [{{ name: p, bind: '127.0.0.1:0', plaintext: dangerous_serve }}]\nupstreams:\n  u: {upstream}\ncontext_token: {{ keys_dir: keys }}\napis: [{{ name: a, upstream: u, routes: [{{ path: /x, methods: [GET], auth: public }}] }}]\n"
        );
        let config = portcullis_config::parse(&yaml, dir.path()).unwrap();
        let a = Attestor::open(config.context_token.as_ref().unwrap(), &config.upstreams).unwrap();
        (dir, a)
    }

    #[test]
    fn context_never_travels_to_a_plaintext_upstream() {
        // DATA-05: a plaintext upstream gets no context token at all.
        let (_d, plain) =
            attestor("{ url: 'http://127.0.0.1:1', dangerous_plaintext_upstream: true }");
        assert_eq!(plain.mint(0, None, None, "c", None).unwrap(), None);
        let (_d, tls) = attestor("{ url: 'https://127.0.0.1:1', ca: ca.pem }");
        let token = tls.mint(0, None, None, "c", None).unwrap().unwrap();
        assert_eq!(token.to_str().unwrap().split('.').count(), 3);
    }

    #[test]
    fn signing_keys_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, a) = attestor("{ url: 'https://127.0.0.1:1', ca: ca.pem }");
        let key = std::fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "p8"))
            .unwrap();
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(a);
        let e = read_keys(&dir.path().join("keys"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("readable by group or others"), "{e}");
    }
}
