//! Client certificates at the edge (TLS-01, TLS-08, TLS-10).
//!
//! A TLS listener keeps its `ServerConfig` behind an `ArcSwap`: every new
//! connection takes the current one. With `client_auth`, the verifier
//! checks the chain against the listener's client CA and the CRLs at the
//! handshake; the CRL files are watched (mtime, every 250 ms) and reloaded
//! on SIGHUP, and a reload swaps in a new config and a new revocation set.
//!
//! A handshake is not enough on kept-alive connections: stage 1 of the
//! pipeline re-checks the peer certificate on **every request** against the
//! *current* revocation set, its validity period and the CRLs' freshness,
//! so a certificate revoked or expiring mid-connection is refused on its
//! next request.

use crate::rejection::{Rejection, Severity};
use crate::tls::crl::{Revocations, load_crls, stamps};
use crate::tls::{self, TlsError};
use arc_swap::ArcSwap;
use portcullis_config::{Mode, ServerTls};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use std::time::SystemTime;

/// What the gateway keeps of a verified client certificate.
#[derive(Debug, Clone)]
pub struct PeerCert {
    issuer: Vec<u8>,
    serial: Vec<u8>,
    not_before: i64,
    not_after: i64,
    /// The intermediates the client presented: `(issuer DN, serial,
    /// notAfter)`, re-checked against the CRLs and clock on every request.
    intermediates: Vec<(Vec<u8>, Vec<u8>, i64)>,
    /// The chain as presented, to re-verify against a reloaded client CA.
    chain: Arc<[CertificateDer<'static>]>,
    /// The generation of the listener state this chain was last verified
    /// against (0: only the handshake's).
    verified: Arc<std::sync::atomic::AtomicU64>,
    /// SHA-256 of the DER certificate (RFC 8705 `x5t#S256`).
    pub thumbprint: [u8; 32],
    /// DNS and URI subject alternative names, which can identify a
    /// certificate-bound application.
    pub names: Vec<String>,
}

impl PeerCert {
    /// The presented chain (leaf first), verified at a handshake made with
    /// the listener state of `generation`.
    pub fn from_chain(chain: &[CertificateDer<'_>], generation: u64) -> Option<Self> {
        let mut cert = Self::from_der(chain.first()?)?;
        for der in &chain[1..] {
            let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            cert.intermediates.push((
                c.issuer().as_raw().to_vec(),
                c.raw_serial().to_vec(),
                c.validity().not_after.timestamp(),
            ));
        }
        cert.chain = chain.iter().map(|c| c.clone().into_owned()).collect();
        cert.verified = Arc::new(std::sync::atomic::AtomicU64::new(generation));
        Some(cert)
    }

    pub fn from_der(der: &CertificateDer<'_>) -> Option<Self> {
        let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
        let mut thumbprint = [0u8; 32];
        thumbprint.copy_from_slice(digest.as_ref());
        let names = c
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => {
                            Some(d.to_ascii_lowercase())
                        }
                        x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            names,
            issuer: c.issuer().as_raw().to_vec(),
            serial: c.raw_serial().to_vec(),
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
            thumbprint,
            intermediates: Vec::new(),
            chain: Arc::new([der.clone().into_owned()]),
            verified: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }
}

struct Loaded {
    tls: ServerTls,
    config: Arc<rustls::ServerConfig>,
    /// The client certificate verifier of `config` (CA, CRLs).
    verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// Unique per load: a connection verified under another generation is
    /// verified again under this one (a reloaded client CA or CRL).
    generation: u64,
    revocations: Revocations,
    /// `(mtime, len)` of each CRL file when it was read.
    stamps: Vec<Option<(SystemTime, u64)>>,
}

/// A TLS listener's configuration, reloadable: its CRLs when their files
/// change, everything (certificate, key, client CA) on a config reload.
pub struct TlsListener {
    mode: Mode,
    current: ArcSwap<Loaded>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("tls", &self.current.load().tls)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    pub fn new(tls: &ServerTls, mode: Mode) -> Result<Self, TlsError> {
        let loaded = Self::load(tls, mode)?;
        Ok(Self {
            mode,
            current: ArcSwap::from_pointee(loaded),
        })
    }

    /// Takes over what `other` loaded (a config reload): handshakes from
    /// now on use it; connections already open keep theirs.
    pub fn replace_with(&self, other: &Self) {
        self.current.store(other.current.load_full());
    }

    fn load(t: &ServerTls, mode: Mode) -> Result<Loaded, TlsError> {
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let (verifier, revocations, stamps) = match &t.client_auth {
            None => (None, Revocations::default(), Vec::new()),
            Some(auth) => {
                let stamps = stamps(&auth.crls);
                let (crls, revocations) = load_crls(&auth.crls)?;
                let mut roots = RootCertStore::empty();
                for c in tls::load_certs(&auth.ca)? {
                    roots.add(c).map_err(|_| TlsError::BadCertificate {
                        path: auth.ca.clone(),
                    })?;
                }
                let mut b = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::new(tls::provider()),
                )
                .with_crls(crls);
                if !auth.allow_stale_crl {
                    b = b.enforce_revocation_expiration();
                }
                if !auth.required {
                    b = b.allow_unauthenticated();
                }
                let v = b.build().map_err(|e| TlsError::Identity(e.to_string()))?;
                (Some(v), revocations, stamps)
            }
        };
        let config = tls::server_config(&t.cert, &t.key, t.allow_tls12, mode, verifier.clone())?;
        Ok(Loaded {
            tls: t.clone(),
            config,
            verifier,
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            revocations,
            stamps,
        })
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current.load().config.clone()
    }

    /// The configuration for the next handshake and its generation (for
    /// [`PeerCert::from_chain`]).
    pub fn config_with_generation(&self) -> (Arc<rustls::ServerConfig>, u64) {
        let current = self.current.load();
        (current.config.clone(), current.generation)
    }

    pub fn has_client_auth(&self) -> bool {
        self.current.load().tls.client_auth.is_some()
    }

    /// Reloads when a CRL file changed (or always, with `force`); keeps the
    /// last good state when the new files cannot be used.
    pub fn reload_if_changed(&self, force: bool) -> Result<bool, TlsError> {
        let current = self.current.load_full();
        let Some(auth) = &current.tls.client_auth else {
            return Ok(false);
        };
        if !force && stamps(&auth.crls) == current.stamps {
            return Ok(false);
        }
        let loaded = Self::load(&current.tls, self.mode)?;
        self.current.store(Arc::new(loaded));
        Ok(true)
    }

    /// Stage 1: the peer certificate on this request, against the current
    /// CRLs and the clock (401 on failure).
    pub fn recheck(&self, cert: Option<&PeerCert>, now: i64) -> Result<(), Rejection> {
        let current = self.current.load();
        let Some(auth) = &current.tls.client_auth else {
            return Ok(());
        };
        let Some(cert) = cert else {
            return if auth.required {
                Err(Rejection::ClientCertificate("no client certificate"))
            } else {
                Ok(())
            };
        };
        if now < cert.not_before || now > cert.not_after {
            return Err(Rejection::ClientCertificate(
                "client certificate outside its validity period",
            ));
        }
        if cert
            .intermediates
            .iter()
            .any(|(_, _, not_after)| now > *not_after)
        {
            return Err(Rejection::ClientCertificate(
                "an intermediate certificate of the client's chain has expired",
            ));
        }
        if !auth.allow_stale_crl && current.revocations.next_update.is_some_and(|n| now > n) {
            return Err(Rejection::ClientCertificate(
                "certificate revocation list is out of date",
            ));
        }
        let revoked = |issuer: &Vec<u8>, serial: &Vec<u8>| {
            current
                .revocations
                .revoked
                .contains(&(issuer.clone(), serial.clone()))
        };
        if revoked(&cert.issuer, &cert.serial) {
            return Err(Rejection::ClientCertificate("client certificate revoked"));
        }
        if cert.intermediates.iter().any(|(i, s, _)| revoked(i, s)) {
            return Err(Rejection::ClientCertificate(
                "an intermediate certificate of the client's chain is revoked",
            ));
        }
        // A reloaded client CA (or CRL set) applies to open connections too:
        // the chain is verified again, once per connection and generation.
        let generation = current.generation;
        if cert.verified.load(std::sync::atomic::Ordering::Acquire) != generation
            && let Some(verifier) = &current.verifier
        {
            let (leaf, intermediates) = cert
                .chain
                .split_first()
                .ok_or(Rejection::ClientCertificate("no client certificate"))?;
            verifier
                .verify_client_cert(leaf, intermediates, rustls_pki_types::UnixTime::now())
                .map_err(|_| {
                    Rejection::ClientCertificate(
                        "client certificate no longer verifies against the current client CA",
                    )
                })?;
            cert.verified
                .store(generation, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }
}

/// Something holding CRLs that are reloaded when their files change.
pub trait CrlHolder: Send + Sync {
    /// Reloads when a file changed (or always, with `force`); keeps the last
    /// good state when the new files cannot be used.
    fn reload_crls(&self, force: bool) -> Result<bool, TlsError>;
    /// Config path of the holder, for events.
    fn crl_owner(&self) -> String;
}

impl CrlHolder for TlsListener {
    fn reload_crls(&self, force: bool) -> Result<bool, TlsError> {
        self.reload_if_changed(force)
    }
    fn crl_owner(&self) -> String {
        format!(
            "listener with client CA {}",
            self.current
                .load()
                .tls
                .client_auth
                .as_ref()
                .map_or_else(String::new, |a| a.ca.display().to_string())
        )
    }
}

/// Reloads the CRLs of the holders (listeners and upstreams, as `holders`
/// lists them now: a config reload changes the upstreams) when their files
/// change (checked every 250 ms) and on SIGHUP, until shutdown. A file
/// that cannot be used keeps the last good state (which fails closed once
/// its CRLs are out of date) and raises an event.
pub async fn watch_crls(
    holders: impl Fn() -> Vec<Arc<dyn CrlHolder>> + Send + 'static,
    events: crate::events::EventSink,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    // One event per failure, not one per poll while the file stays broken.
    let mut failing = std::collections::HashSet::new();
    loop {
        let force = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
            _ = shutdown.changed() => return,
        };
        for h in holders() {
            let owner = h.crl_owner();
            match h.reload_crls(force) {
                Ok(changed) => {
                    if changed {
                        tracing::info!(%owner, "certificate revocation lists reloaded");
                    }
                    failing.remove(&owner);
                }
                Err(_) if failing.contains(&owner) => {}
                Err(e) => {
                    tracing::error!(error = %e, "revocation lists not reloaded; the last good ones stay in force");
                    events.emit(crate::events::SecurityEvent::operational(
                        "crl-reload-failed",
                        Severity::High,
                        &format!("{owner}: {e}"),
                    ));
                    failing.insert(owner);
                }
            }
        }
    }
}
