//! Upstream connections (TLS-04, TLS-06, TLS-09): a pooled client per
//! upstream, TLS 1.3 with chain, server-name, revocation (CRLs) and pin
//! verification against the configured trust anchors on every new
//! connection, and connect, request and idle timeouts. Connect failures map
//! to 502, timeouts to 504; upstream error detail stays in events.
//!
//! A pooled connection never outlives what its handshake verified: when the
//! earliest upstream certificate accepted for the pool expires, or the CRLs
//! change, the pool is replaced and every later request opens (and
//! verifies) a new connection.

use crate::rejection::Rejection;
use crate::tls::{self, TlsError};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::{Upstream, UpstreamScheme};
use rustls_pki_types::ServerName;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug)]
pub struct UpstreamClient {
    pub name: String,
    pool: arc_swap::ArcSwap<Pool>,
    connector: HttpsConnector<HttpConnector>,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    /// Present for https upstreams.
    verifier: Option<std::sync::Arc<tls::UpstreamVerifier>>,
    scheme: &'static str,
    authority: http::uri::Authority,
    base_path: String,
    request_timeout: Duration,
    /// Outcomes of the requests sent, for the admin plane's metrics.
    health: Health,
}

/// Transport outcomes of one upstream (a 5xx answer is an answer).
#[derive(Debug, Default)]
struct Health {
    failures_in_a_row: std::sync::atomic::AtomicU64,
    failures: std::sync::atomic::AtomicU64,
    requests: std::sync::atomic::AtomicU64,
}

/// A counter of [`Health`]: name, help, reading.
type Counter = (&'static str, &'static str, fn(&Health) -> u64);

/// Prometheus lines for the upstreams of the config in force; labels are
/// upstream names from the config, so the set is bounded.
pub fn prometheus(upstreams: &[std::sync::Arc<UpstreamClient>]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "# HELP portcullis_upstream_up 1 when the last request to the upstream got an answer (or none was sent yet), 0 after a connection failure or timeout.\n# TYPE portcullis_upstream_up gauge\n",
    );
    let label = |u: &UpstreamClient| u.name.replace('\\', "\\\\").replace('"', "\\\"");
    for u in upstreams {
        let up = u8::from(u.health.failures_in_a_row.load(Relaxed) == 0);
        let _ = writeln!(
            out,
            "portcullis_upstream_up{{upstream=\"{}\"}} {up}",
            label(u)
        );
    }
    let counters: [Counter; 2] = [
        (
            "portcullis_upstream_requests_total",
            "Requests sent to the upstream since the config was loaded.",
            |h| h.requests.load(Relaxed),
        ),
        (
            "portcullis_upstream_failures_total",
            "Requests to the upstream that got no answer (connection failure or timeout) since the config was loaded.",
            |h| h.failures.load(Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for u in upstreams {
            let _ = writeln!(
                out,
                "{name}{{upstream=\"{}\"}} {}",
                label(u),
                value(&u.health)
            );
        }
    }
    out
}

impl UpstreamClient {
    pub fn build(u: &Upstream) -> Result<Self, TlsError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(u.connect_timeout));
        http.set_nodelay(true);
        let builder = HttpsConnectorBuilder::new();
        let mut verifier = None;
        let connector = match (u.scheme, &u.ca) {
            (UpstreamScheme::Https, Some(ca)) => {
                let name = ServerName::try_from(u.server_name.clone()).map_err(|_| {
                    TlsError::Identity(format!("`{}` is not a server name", u.server_name))
                })?;
                let (config, v) = tls::upstream_client_config(
                    ca,
                    u.client_identity.as_ref(),
                    &u.spki_pins,
                    &u.crls,
                )?;
                verifier = Some(v);
                builder
                    .with_tls_config(config)
                    .https_only()
                    .with_server_name_resolver(FixedServerNameResolver::new(name))
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http)
            }
            (UpstreamScheme::Https, None) => {
                return Err(TlsError::Identity(
                    "https upstream without trust anchors".into(),
                ));
            }
            // `dangerous_plaintext_upstream`: validated and reported by `check`.
            (UpstreamScheme::DangerousHttp, _) => builder
                .with_tls_config(
                    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                        tls::provider(),
                    ))
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .map_err(|e| TlsError::Identity(e.to_string()))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                )
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
        };
        let pool = new_pool(&connector, u.pool_idle_timeout, u.pool_max_idle_per_host);
        Ok(Self {
            name: u.name.clone(),
            pool: arc_swap::ArcSwap::from_pointee(pool),
            connector,
            pool_idle_timeout: u.pool_idle_timeout,
            pool_max_idle_per_host: u.pool_max_idle_per_host,
            verifier,
            scheme: match u.scheme {
                UpstreamScheme::Https => "https",
                UpstreamScheme::DangerousHttp => "http",
            },
            authority: u.authority.clone(),
            base_path: u.base_path.clone(),
            request_timeout: u.request_timeout,
            health: Health::default(),
        })
    }

    /// The absolute URI for a path (already canonically encoded) and query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, Rejection> {
        let mut pq = String::with_capacity(
            self.base_path.len() + path.len() + 1 + query.map_or(0, str::len),
        );
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::builder()
            .scheme(self.scheme)
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| Rejection::UpstreamUnavailable(format!("cannot build upstream URI: {e}")))
    }

    /// Replaces the connection pool: idle connections close, and the next
    /// request connects (and verifies the peer) anew.
    fn renew_pool(&self) {
        if let Some(v) = &self.verifier {
            v.reset_expiry();
        }
        self.pool.store(std::sync::Arc::new(new_pool(
            &self.connector,
            self.pool_idle_timeout,
            self.pool_max_idle_per_host,
        )));
    }

    /// Sends the request; the response head must arrive within the request timeout.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, Rejection> {
        if let Some(v) = &self.verifier
            && crate::clock::now() >= v.earliest_expiry()
        {
            self.renew_pool();
        }
        let pool = self.pool.load_full();
        self.health.requests.fetch_add(1, Relaxed);
        let result = match tokio::time::timeout(self.request_timeout, pool.request(request)).await {
            Err(_) => Err(Rejection::UpstreamTimeout),
            Ok(Err(e)) => Err(Rejection::UpstreamUnavailable(format!(
                "{}: {}",
                self.name,
                error_chain(&e)
            ))),
            Ok(Ok(response)) => Ok(response),
        };
        if result.is_ok() {
            self.health.failures_in_a_row.store(0, Relaxed);
        } else {
            self.health.failures_in_a_row.fetch_add(1, Relaxed);
            self.health.failures.fetch_add(1, Relaxed);
        }
        result
    }
}

fn new_pool(
    connector: &HttpsConnector<HttpConnector>,
    idle_timeout: Duration,
    max_idle: usize,
) -> Pool {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(idle_timeout)
        .pool_max_idle_per_host(max_idle)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector.clone())
}

impl UpstreamClient {
    pub fn has_crls(&self) -> bool {
        self.verifier.as_ref().is_some_and(|v| v.has_crls())
    }
}

impl crate::tls::clientauth::CrlHolder for UpstreamClient {
    fn reload_crls(&self, force: bool) -> Result<bool, TlsError> {
        let Some(v) = &self.verifier else {
            return Ok(false);
        };
        let changed = v.reload_if_changed(force)?;
        if changed {
            // Connections verified against the old lists must not be reused.
            self.renew_pool();
        }
        Ok(changed)
    }

    fn crl_owner(&self) -> String {
        format!("upstreams.{}", self.name)
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
