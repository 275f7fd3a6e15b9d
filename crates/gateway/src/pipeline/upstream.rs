//! Upstream connections (TLS-04, TLS-06, TLS-09): a pooled client per
//! upstream, TLS 1.3 with chain, server-name, revocation (CRLs) and pin
//! verification against the configured trust anchors on every new
//! connection, and connect, request and idle timeouts. Connect failures map
//! to 502, timeouts to 504, no available target to 503; upstream error
//! detail stays in events.
//!
//! Each request goes to one of the upstream's targets (`targets`). An
//! idempotent request that got no answer is tried again on another target
//! (`retries`): nothing of a response has reached the client then, and
//! retries in flight stay within their budget so that a failing pool is
//! not flooded by its own retries. Active health checks run per target.
//!
//! A pooled connection never outlives what its handshake verified: when the
//! earliest upstream certificate accepted for the pool expires, or the CRLs
//! change, the pool is replaced and every later request opens (and
//! verifies) a new connection.

use crate::pipeline::targets::{NoTarget, Targets};
use crate::rejection::Rejection;
use crate::tls::{self, TlsError};
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::{HealthCheck, Retries, Upstream, UpstreamScheme};
use rustls_pki_types::ServerName;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A request body passed on as it arrives (gRPC calls).
pub type StreamBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// HTTP/2-only connections for streamed bodies.
type StreamPool = Client<HttpsConnector<HttpConnector>, StreamBody>;

#[derive(Debug)]
pub struct UpstreamClient {
    pub name: String,
    pool: arc_swap::ArcSwap<Pool>,
    connector: HttpsConnector<HttpConnector>,
    /// HTTP/1.1-only connections for WebSocket handshakes, never pooled:
    /// an upgraded connection belongs to its socket.
    upgrades: HttpsConnector<HttpConnector>,
    /// HTTP/2 only (ALPN `h2`, or prior knowledge in plaintext): gRPC
    /// calls, their bodies streamed and their trailers kept.
    streams: arc_swap::ArcSwap<StreamPool>,
    streams_connector: HttpsConnector<HttpConnector>,
    /// Streamed uploads, over the connections requests use (h1 or h2 by ALPN).
    uploads: arc_swap::ArcSwap<StreamPool>,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    /// Present for https upstreams.
    verifier: Option<std::sync::Arc<tls::UpstreamVerifier>>,
    scheme: &'static str,
    pub targets: Targets,
    /// The header whose value picks the target (`consistent_hash`).
    hash_header: Option<http::HeaderName>,
    retries: Retries,
    health_check: Option<HealthCheck>,
    base_path: String,
    request_timeout: Duration,
    /// Outcomes of the requests sent, for the admin plane's metrics.
    health: Health,
}

/// Which target answered and how long the answer's head took, all tries
/// included: an extension of the upstream's response, for the access log.
#[derive(Debug, Clone)]
pub struct Served {
    pub target: http::uri::Authority,
    pub elapsed: Duration,
}

/// A request for the upstream, kept whole so that a retry can send it again.
#[derive(Debug)]
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: PathAndQuery,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Attach [`Served`] to the answer (only the access log reads it; the
    /// extension costs an allocation per request).
    pub report_served: bool,
    /// The hash of the client's `hash_header` value (`consistent_hash`).
    pub affinity: Option<u64>,
}

/// Methods a retry cannot turn into a second effect (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether an answer counts against its target (the target, not the request, failed).
fn is_target_failure(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

/// Transport outcomes of one upstream (a 5xx answer is an answer).
#[derive(Debug, Default)]
struct Health {
    failures_in_a_row: std::sync::atomic::AtomicU64,
    failures: std::sync::atomic::AtomicU64,
    requests: std::sync::atomic::AtomicU64,
    retries: std::sync::atomic::AtomicU64,
    /// Requests and retries in flight, for the retry budget.
    in_flight: std::sync::atomic::AtomicUsize,
    retries_in_flight: std::sync::atomic::AtomicUsize,
    /// Time from sending a try to its response head (or its failure).
    latency: crate::events::traffic::Histogram,
}

/// Counts one in-flight request (or retry) until dropped.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A counter of [`Health`]: name, help, reading.
type Counter = (&'static str, &'static str, fn(&Health) -> u64);

/// A reading of one target at a time (unix ms).
type TargetReading = fn(&crate::pipeline::targets::Target, u64) -> u64;

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
    let counters: [Counter; 3] = [
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
        (
            "portcullis_upstream_retries_total",
            "Tries of idempotent requests sent again after no answer.",
            |h| h.retries.load(Relaxed),
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
    let _ = writeln!(
        out,
        "# HELP portcullis_upstream_request_duration_seconds Time from sending a try to the upstream to its response head (or its failure).\n# TYPE portcullis_upstream_request_duration_seconds histogram"
    );
    for u in upstreams {
        u.health.latency.render(
            &mut out,
            "portcullis_upstream_request_duration_seconds",
            &format!("upstream=\"{}\"", label(u)),
        );
    }
    let per_target: [(&str, &str, &str, TargetReading); 4] = [
        (
            "portcullis_upstream_target_available",
            "gauge",
            "1 while the target gets requests: not ejected and not failing its health checks.",
            |t, now| u64::from(t.available(now)),
        ),
        (
            "portcullis_upstream_target_requests_total",
            "counter",
            "Tries sent to the target.",
            |t, _| t.requests.load(Relaxed),
        ),
        (
            "portcullis_upstream_target_failures_total",
            "counter",
            "Tries of the target that got no answer, or a 502, 503 or 504.",
            |t, _| t.failures.load(Relaxed),
        ),
        (
            "portcullis_upstream_target_ejections_total",
            "counter",
            "Times the target was ejected for failures in a row.",
            |t, _| t.ejected_total.load(Relaxed),
        ),
    ];
    let now = crate::clock::now_ms();
    for (name, kind, help, value) in per_target {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for u in upstreams {
            for t in &u.targets.targets {
                let _ = writeln!(
                    out,
                    "{name}{{upstream=\"{}\",target=\"{}\"}} {}",
                    label(u),
                    t.authority,
                    value(t, now)
                );
            }
        }
    }
    out
}

impl UpstreamClient {
    pub fn build(u: &Upstream, events: crate::events::EventSink) -> Result<Self, TlsError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(u.connect_timeout));
        http.set_nodelay(true);
        let mut verifier = None;
        let (connector, upgrades, streams) = match (u.scheme, &u.ca) {
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
                let resolver = || FixedServerNameResolver::new(name.clone());
                // WebSocket handshakes need HTTP/1.1: their connections
                // offer nothing else in ALPN.
                let upgrades = HttpsConnectorBuilder::new()
                    .with_tls_config(config.clone())
                    .https_only()
                    .with_server_name_resolver(resolver())
                    .enable_http1()
                    .wrap_connector(http.clone());
                let streams = HttpsConnectorBuilder::new()
                    .with_tls_config(config.clone())
                    .https_only()
                    .with_server_name_resolver(resolver())
                    .enable_http2()
                    .wrap_connector(http.clone());
                let connector = HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_only()
                    .with_server_name_resolver(resolver())
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http);
                (connector, upgrades, streams)
            }
            (UpstreamScheme::Https, None) => {
                return Err(TlsError::Identity(
                    "https upstream without trust anchors".into(),
                ));
            }
            // `dangerous_plaintext_upstream`: validated and reported by `check`.
            (UpstreamScheme::DangerousHttp, _) => {
                let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    tls::provider(),
                ))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| TlsError::Identity(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
                let plain = || {
                    HttpsConnectorBuilder::new()
                        .with_tls_config(tls.clone())
                        .https_or_http()
                };
                let connector = plain().enable_http1().wrap_connector(http.clone());
                let streams = plain().enable_http2().wrap_connector(http);
                (connector.clone(), connector, streams)
            }
        };
        let (idle, max_idle) = (u.pool_idle_timeout, u.pool_max_idle_per_host);
        let pool: Pool = new_pool(&connector, idle, max_idle, false);
        let uploads: StreamPool = new_pool(&connector, idle, max_idle, false);
        let stream_pool: StreamPool = new_pool(&streams, idle, max_idle, true);
        Ok(Self {
            name: u.name.clone(),
            pool: arc_swap::ArcSwap::from_pointee(pool),
            connector,
            upgrades,
            streams: arc_swap::ArcSwap::from_pointee(stream_pool),
            streams_connector: streams,
            uploads: arc_swap::ArcSwap::from_pointee(uploads),
            pool_idle_timeout: u.pool_idle_timeout,
            pool_max_idle_per_host: u.pool_max_idle_per_host,
            verifier,
            scheme: match u.scheme {
                UpstreamScheme::Https => "https",
                UpstreamScheme::DangerousHttp => "http",
            },
            targets: Targets::new(u, events),
            hash_header: u.hash_header.clone(),
            retries: u.retries,
            health_check: u.health_check.clone(),
            base_path: u.base_path.clone(),
            request_timeout: u.request_timeout,
            health: Health::default(),
        })
    }

    /// The path and query on the upstream for the request's decoded path
    /// below its API (canonically encoded here) and its query; the target
    /// is chosen when it is sent.
    pub fn path_and_query(
        &self,
        remainder: &str,
        query: Option<&str>,
    ) -> Result<PathAndQuery, Rejection> {
        let path = crate::pipeline::path::encode_for_upstream(remainder);
        let mut pq = String::with_capacity(
            self.base_path.len() + path.len() + 1 + query.map_or(0, str::len),
        );
        pq.push_str(&self.base_path);
        pq.push_str(&path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        PathAndQuery::try_from(pq)
            .map_err(|e| Rejection::UpstreamUnavailable(format!("cannot build upstream URI: {e}")))
    }

    fn uri_at(&self, target: usize, pq: PathAndQuery) -> Result<Uri, Rejection> {
        Uri::builder()
            .scheme(self.scheme)
            .authority(self.targets.targets[target].authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| Rejection::UpstreamUnavailable(format!("cannot build upstream URI: {e}")))
    }

    /// The hash of the request's `hash_header` value, with `consistent_hash`.
    pub fn affinity(&self, headers: &HeaderMap) -> Option<u64> {
        let value = headers.get(self.hash_header.as_ref()?)?;
        Some(crate::pipeline::targets::affinity(value.as_bytes()))
    }

    /// Whether another retry fits the budget: retries in flight under
    /// `budget_percent` of the requests in flight, and at least 3.
    fn retry_fits(&self) -> bool {
        let in_flight = self.health.in_flight.load(Relaxed);
        let budget = (in_flight * usize::from(self.retries.budget_percent) / 100).max(3);
        self.health.retries_in_flight.load(Relaxed) < budget
    }

    /// Replaces the connection pool: idle connections close, and the next
    /// request connects (and verifies the peer) anew.
    fn renew_pool(&self) {
        if let Some(v) = &self.verifier {
            v.reset_expiry();
        }
        let (idle, max_idle) = (self.pool_idle_timeout, self.pool_max_idle_per_host);
        let pool: Pool = new_pool(&self.connector, idle, max_idle, false);
        let streams: StreamPool = new_pool(&self.streams_connector, idle, max_idle, true);
        let uploads: StreamPool = new_pool(&self.connector, idle, max_idle, false);
        self.pool.store(std::sync::Arc::new(pool));
        self.streams.store(std::sync::Arc::new(streams));
        self.uploads.store(std::sync::Arc::new(uploads));
    }

    /// Sends the request to an available target; the response head must
    /// arrive within the request timeout (each try within the per-try
    /// timeout). An idempotent request without an answer is tried again,
    /// on another target when there is one.
    pub async fn send(&self, out: Outgoing) -> Result<Response<Incoming>, Rejection> {
        if let Some(v) = &self.verifier
            && crate::clock::now() >= v.earliest_expiry()
        {
            self.renew_pool();
        }
        let pool = self.pool.load_full();
        self.health.requests.fetch_add(1, Relaxed);
        let _in_flight = InFlight::new(&self.health.in_flight);
        let started = tokio::time::Instant::now();
        let deadline = started + self.request_timeout;
        let max_tries = if is_idempotent(&out.method) {
            1 + self.retries.attempts as usize
        } else {
            1
        };
        let mut tried: Vec<usize> = Vec::with_capacity(max_tries);
        let request_affinity = out.affinity;
        let mut out = Some(out);
        loop {
            let (target, _outstanding) = self.pick(&tried, request_affinity)?;
            tried.push(target);
            let last = tried.len() >= max_tries;
            let _retry = (tried.len() > 1).then(|| {
                self.health.retries.fetch_add(1, Relaxed);
                InFlight::new(&self.health.retries_in_flight)
            });
            let request = match (last, &out) {
                // The last try takes the request itself; the others a copy.
                (true, _) => out.take(),
                (false, Some(o)) => Some(Outgoing {
                    method: o.method.clone(),
                    path_and_query: o.path_and_query.clone(),
                    headers: o.headers.clone(),
                    body: o.body.clone(),
                    report_served: o.report_served,
                    affinity: o.affinity,
                }),
                (false, None) => None,
            }
            .ok_or_else(|| Rejection::UpstreamUnavailable("no request left to send".into()))?;
            let report_served = request.report_served;
            let mut r = Request::new(Full::new(request.body));
            *r.method_mut() = request.method;
            *r.uri_mut() = self.uri_at(target, request.path_and_query)?;
            *r.headers_mut() = request.headers;
            let per_try = self
                .retries
                .per_try_timeout
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let failure = match self.try_target(&pool, target, r, per_try).await {
                Ok(mut response) => {
                    if report_served {
                        response.extensions_mut().insert(Served {
                            target: self.targets.targets[target].authority.clone(),
                            elapsed: started.elapsed(),
                        });
                    }
                    self.health.failures_in_a_row.store(0, Relaxed);
                    if is_target_failure(response.status()) {
                        self.targets.failed(target);
                    } else {
                        self.targets.succeeded(target);
                    }
                    return Ok(response);
                }
                Err(failure) => failure,
            };
            self.targets.failed(target);
            if last || tokio::time::Instant::now() >= deadline || !self.retry_fits() {
                // The upstream's counters count requests; the targets' count tries.
                self.health.failures_in_a_row.fetch_add(1, Relaxed);
                self.health.failures.fetch_add(1, Relaxed);
                return Err(failure);
            }
        }
    }

    /// The target of the next try, or why there is none: 503 either way.
    fn pick(
        &self,
        tried: &[usize],
        affinity: Option<u64>,
    ) -> Result<(usize, crate::pipeline::targets::Outstanding<'_>), Rejection> {
        self.targets.pick(tried, affinity).map_err(|why| match why {
            NoTarget::Unavailable => Rejection::NoAvailableTarget(self.name.clone()),
            NoTarget::Full => Rejection::Overloaded(
                "every available target is at upstreams.*.max_requests_per_target",
            ),
        })
    }

    /// One try on one target: the answer's head within `timeout`, or why
    /// none came (upstream detail goes to events only).
    async fn try_target<B>(
        &self,
        client: &Client<HttpsConnector<HttpConnector>, B>,
        target: usize,
        request: Request<B>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, Rejection>
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(timeout, client.request(request)).await;
        self.health.latency.observe(started.elapsed());
        match answer {
            Ok(Ok(response)) => Ok(response),
            Err(_) => Err(Rejection::UpstreamTimeout),
            Ok(Err(e)) => Err(Rejection::UpstreamUnavailable(format!(
                "{} ({}): {}",
                self.name,
                self.targets.targets[target].authority,
                error_chain(&e)
            ))),
        }
    }

    /// Sends a WebSocket handshake to an available target on a connection
    /// of its own (HTTP/1.1, verified like every other), within the
    /// per-try timeout; never retried, since the socket may carry effects.
    pub async fn send_upgrade(&self, out: Outgoing) -> Result<Response<Incoming>, Rejection> {
        let (target, _outstanding) = self.pick(&[], out.affinity)?;
        self.health.requests.fetch_add(1, Relaxed);
        let client: Pool = new_pool(&self.upgrades, self.pool_idle_timeout, 0, false);
        let mut r = Request::new(Full::new(out.body));
        *r.method_mut() = out.method;
        *r.uri_mut() = self.uri_at(target, out.path_and_query)?;
        *r.headers_mut() = out.headers;
        let timeout = self.retries.per_try_timeout.min(self.request_timeout);
        let answer = self.try_target(&client, target, r, timeout).await;
        self.counted(target, answer.as_ref().map(Response::status));
        answer
    }

    /// Sends a request whose body streams to an available target (over
    /// HTTP/2 only with `h2`: gRPC); the answer's head within the per-try
    /// timeout. Never retried: the body is consumed as it is sent.
    pub async fn send_stream(
        &self,
        head: http::request::Parts,
        body: StreamBody,
        (h2, affinity): (bool, Option<u64>),
    ) -> Result<Response<Incoming>, Rejection> {
        if let Some(v) = &self.verifier
            && crate::clock::now() >= v.earliest_expiry()
        {
            self.renew_pool();
        }
        let (target, _outstanding) = self.pick(&[], affinity)?;
        self.health.requests.fetch_add(1, Relaxed);
        let _in_flight = InFlight::new(&self.health.in_flight);
        let mut r = Request::from_parts(head, body);
        let pq = r
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *r.uri_mut() = self.uri_at(target, pq)?;
        let pool = if h2 {
            *r.version_mut() = http::Version::HTTP_2;
            self.streams.load_full()
        } else {
            self.uploads.load_full()
        };
        let timeout = self.retries.per_try_timeout.min(self.request_timeout);
        let answer = self.try_target(&pool, target, r, timeout).await;
        self.counted(target, answer.as_ref().map(Response::status));
        answer
    }

    /// Counts one try's outcome against its target and the upstream.
    fn counted(&self, target: usize, outcome: Result<http::StatusCode, &Rejection>) {
        match outcome {
            Ok(status) => {
                self.health.failures_in_a_row.store(0, Relaxed);
                if is_target_failure(status) {
                    self.targets.failed(target);
                } else {
                    self.targets.succeeded(target);
                }
            }
            Err(_) => {
                self.targets.failed(target);
                self.health.failures_in_a_row.fetch_add(1, Relaxed);
                self.health.failures.fetch_add(1, Relaxed);
            }
        }
    }

    /// Runs the active health checks of every target, once per interval,
    /// until the upstream is dropped (a reload replaces it). Call inside
    /// the runtime.
    pub fn spawn_health_checks(self: &std::sync::Arc<Self>) {
        let Some(check) = self.health_check.clone() else {
            return;
        };
        let weak = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                {
                    let Some(upstream) = weak.upgrade() else {
                        return;
                    };
                    for target in 0..upstream.targets.targets.len() {
                        let healthy = upstream.check(target, &check).await;
                        upstream.targets.checked(
                            target,
                            healthy,
                            (check.healthy_threshold, check.unhealthy_threshold),
                        );
                    }
                }
                tokio::time::sleep(check.interval).await;
            }
        });
    }

    /// One health check of one target: `GET path`, the expected status
    /// within the timeout, over the upstream's verified connections.
    async fn check(&self, target: usize, check: &HealthCheck) -> bool {
        let Ok(uri) = self.uri_at(target, check.path.clone()) else {
            return false;
        };
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = uri;
        request.headers_mut().insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("portcullis-health-check"),
        );
        let pool = self.pool.load_full();
        match tokio::time::timeout(check.timeout, pool.request(request)).await {
            Ok(Ok(response)) => response.status() == check.expect_status,
            _ => false,
        }
    }
}

/// A client over `connector`: at most `max_idle` idle connections per
/// target, closed after `idle_timeout`; HTTP/2 only with `h2` (gRPC).
fn new_pool<B>(
    connector: &HttpsConnector<HttpConnector>,
    idle_timeout: Duration,
    max_idle: usize,
    h2: bool,
) -> Client<HttpsConnector<HttpConnector>, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new())
        .http2_only(h2)
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
