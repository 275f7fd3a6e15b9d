//! The validated configuration model: what the gateway runs on.
//!
//! Built only through [`crate::load`]/[`crate::parse`], so every value here
//! has passed validation: invalid states are not representable (a route
//! always has an authentication policy, a plaintext upstream always carries
//! the explicit `dangerous_` opt-in, CORS never pairs `*` with credentials).

use http::{HeaderName, HeaderValue, Method};
use portcullis_contract::Operation;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Production,
    /// Development shortcuts allowed (self-signed leaves, plaintext listeners).
    Dev,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// Directory relative paths in the file were resolved against.
    pub base_dir: PathBuf,
    /// Data-plane worker threads; `None` = one per core.
    pub worker_threads: Option<usize>,
    /// How long in-flight requests may take to finish on SIGTERM.
    pub shutdown_grace: std::time::Duration,
    /// The probes' own plain-HTTP listener; `None`: no probes outside admin.
    pub health: Option<SocketAddr>,
    pub listeners: Vec<Listener>,
    pub limits: Limits,
    pub correlation_header: HeaderName,
    /// Start a W3C trace when a request carries none (or a malformed one).
    /// W3C trace context and span export (`trace_context`).
    pub trace: Trace,
    /// Request headers removed before the upstream sees the request (DATA-02).
    pub request_remove_headers: Vec<HeaderName>,
    /// Response headers removed before the client sees the response (OUTPUT-06).
    pub response_remove_headers: Vec<HeaderName>,
    pub events: Events,
    pub identity: Option<Identity>,
    /// Gateway-signed context tokens for upstreams; `None` when turned off.
    pub context_token: Option<ContextToken>,
    /// Redis for rate limits shared by several instances.
    pub redis: Option<Redis>,
    /// Usage anomaly detection; `None` when turned off.
    pub anomalies: Option<Anomalies>,
    /// The admin plane; `None`: no admin listener.
    pub admin: Option<AdminListen>,
    pub upstreams: Vec<Upstream>,
    pub apis: Vec<Api>,
    /// Sensitive data refused in URLs (DATA-01).
    pub sensitive: SensitiveData,
}

/// What marks a URL as carrying sensitive data (DATA-01).
#[derive(Debug, Clone)]
pub struct SensitiveData {
    /// Lower-case parameter names, matched against the words of a name.
    pub names: Vec<String>,
    pub patterns: portcullis_contract::sensitive::Patterns,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub bind: SocketAddr,
    pub kind: ListenerKind,
    /// Lower case; `production` by default (CONTRACT-03).
    pub environment: String,
    /// Lower-case host names served; empty: every host (AUTHZ-10).
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum ListenerKind {
    Tls(ServerTls),
    /// Plain HTTP that only answers with a redirect to HTTPS.
    Redirect {
        https_port: u16,
    },
    /// Plain HTTP serving the APIs: dev mode only.
    DangerousPlaintext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// TLS 1.2 (ECDHE + AEAD only) accepted besides TLS 1.3.
    pub allow_tls12: bool,
    pub client_auth: Option<ClientAuth>,
}

/// Mutual TLS on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    pub required: bool,
    pub ca: PathBuf,
    pub crls: Vec<PathBuf>,
    pub allow_stale_crl: bool,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub h2_max_concurrent_streams: u32,
    pub h2_max_pending_reset_streams: usize,
    pub h2_max_local_error_reset_streams: usize,
    pub body_read_timeout: Duration,
    pub max_response_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connection_age: Duration,
    pub write_timeout: Duration,
    pub max_connections_per_client: usize,
    /// 1..=128.
    pub client_ipv6_prefix: u8,
    /// 0: no minimum body rate.
    pub min_body_bytes_per_s: u64,
    pub body_rate_grace: Duration,
    /// Every body buffered at once, across connections.
    pub max_buffered_bytes: usize,
    /// Refused credentials per client address per minute; 0: no budget.
    pub auth_failures_per_minute: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Events {
    pub stdout: bool,
    pub file: Option<PathBuf>,
    /// Size at which the file is rotated (at least 1 MiB).
    pub file_max_bytes: u64,
    /// Rotated files kept.
    pub file_keep: u32,
    pub spool: Option<Spool>,
    pub syslog: Option<Syslog>,
    pub http: Option<Collector>,
    /// One JSON line per request; `None`: no access log.
    pub access_log: Option<AccessLog>,
}

/// Where access-log lines go: standard output and/or a rotated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub stdout: bool,
    pub file: Option<PathBuf>,
    pub file_max_bytes: u64,
    pub file_keep: u32,
}

/// The local spool remote sinks ship from (OPS-01).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    /// `host:port`.
    pub address: String,
    /// The host part, for TLS server name verification.
    pub host: String,
    pub ca: Option<PathBuf>,
}

/// `trace_context`: start traces; export spans.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Start a trace when the client sent none (or a malformed one).
    pub start: bool,
    pub otlp: Option<Otlp>,
}

/// Where the gateway's spans go (OTLP/HTTP with JSON encoding).
#[derive(Debug, Clone)]
pub struct Otlp {
    pub endpoint: http::Uri,
    pub ca: Option<PathBuf>,
    pub service_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    pub url: http::Uri,
    pub ca: Option<PathBuf>,
    pub batch: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamScheme {
    Https,
    /// Plain HTTP, only with `dangerous_plaintext_upstream: true`.
    DangerousHttp,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub scheme: UpstreamScheme,
    /// The gateway's client certificate and key for mutual TLS.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// SHA-256 SPKI pins of the upstream certificate; empty = no pinning.
    pub spki_pins: Vec<[u8; 32]>,
    /// CRLs checked against the upstream's certificate chain.
    pub crls: Vec<PathBuf>,
    /// `aud` of the context tokens minted for this upstream.
    pub context_audience: String,
    /// Public key the context tokens are encrypted to (nested JWE).
    pub context_encrypt_to: Option<PathBuf>,
    /// Each target's `host:port` as written in its URL; at least one.
    pub targets: Vec<http::uri::Authority>,
    pub balance: Balance,
    /// With [`Balance::ConsistentHash`]: the header whose value picks the target.
    pub hash_header: Option<HeaderName>,
    pub health_check: Option<HealthCheck>,
    pub outlier: OutlierDetection,
    pub retries: Retries,
    /// Circuit breaking: requests awaiting one target's answer at once.
    pub max_requests_per_target: usize,
    /// Path prefix prepended to every forwarded path; empty for `/`.
    pub base_path: String,
    /// Trust anchors; always present for `Https`.
    pub ca: Option<PathBuf>,
    /// Name sent as SNI and matched against the certificate's SAN.
    pub server_name: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

/// How a target of an upstream is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastOutstanding,
    /// Same `hash_header` value, same target (rendezvous); else round robin.
    ConsistentHash,
}

/// Active health checks of an upstream's targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Origin-form path (and query) requested with GET.
    pub path: http::uri::PathAndQuery,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub expect_status: http::StatusCode,
}

/// Passive ejection of failing targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierDetection {
    /// 0: never ejected.
    pub consecutive_failures: u32,
    pub ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejected_percent: u8,
}

/// Retries of idempotent requests that got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    pub attempts: u32,
    pub budget_percent: u8,
    pub per_try_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Api {
    pub name: String,
    /// Lower-case host names without port; empty = any host.
    pub hosts: Vec<String>,
    /// Mount prefix without trailing slash; empty for `/`.
    pub base_path: String,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    pub cors: Option<Cors>,
    pub routes: Vec<Route>,
    /// The OpenAPI document the routes were compiled from.
    pub openapi: Option<PathBuf>,
    pub owner: Option<String>,
    /// Budgets shared by all routes of the API (INPUT-08).
    pub rate_limits: Vec<RateLimit>,
    /// Cap anomalous applications at twice their baseline (OPS-02).
    pub tighten_on_anomaly: bool,
    /// gRPC calls stream through over HTTP/2 (`grpc`).
    pub grpc: bool,
    /// Bodies nothing reads stream up to this many bytes (`request_streaming`).
    pub stream_bodies_up_to: Option<u64>,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKey {
    Application,
    Subject,
    Route,
    Client,
}

impl LimitKey {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKey::Application => "application",
            LimitKey::Subject => "subject",
            LimitKey::Route => "route",
            LimitKey::Client => "client",
        }
    }
}

/// A GCRA limit: `requests` per `period` on average, `burst` at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub per: LimitKey,
    pub requests: u32,
    pub period: Duration,
    pub burst: u32,
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Template relative to the API's base path, e.g. `/orders/{id}`.
    pub path: String,
    pub methods: Vec<Method>,
    pub auth: AuthPolicy,
    /// The compiled operation when the route comes from an OpenAPI document.
    pub operation: Option<Arc<Operation>>,
    /// Environments the route is served in; `None` = all (CONTRACT-03).
    pub environments: Option<Vec<String>>,
    /// Responses may carry `pii` fields unredacted (`contract.allow_pii`).
    pub allow_pii: bool,
    /// This route's own budgets (`route_limits`).
    pub rate_limits: Vec<RateLimit>,
    /// Requests of this route in flight at once.
    pub concurrency: Option<u32>,
    /// The route accepts WebSocket connections (`websockets`).
    pub websocket: Option<WebSocket>,
}

/// A WebSocket route's limits on what follows the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocket {
    /// Allowed `Origin` values, lower-case `scheme://host[:port]`.
    pub origins: Vec<String>,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub ping_interval: Duration,
}

/// How a route authenticates its callers (AUTHN-06: every route has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPolicy {
    /// Explicitly unauthenticated; reported by `check`.
    Public,
    Protected(Protected),
}

/// What a protected route requires; at least one of `api_key`, `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    pub api_key: bool,
    pub token: bool,
    /// All of these scopes (only with `token`).
    pub scopes: Vec<String>,
    /// Only these applications (only with `api_key`); empty = any active one.
    pub apps: Vec<String>,
    /// Only tokens from these issuers (only with `token`); empty = the one
    /// configured issuer.
    pub issuers: Vec<String>,
    /// The token's `client_id`/`azp` must name the request's application.
    pub bind_token_to_application: bool,
}

/// Usage anomaly detection settings (OPS-02).
#[derive(Debug, Clone)]
pub struct Anomalies {
    pub interval: Duration,
    pub warmup_intervals: u32,
    pub factor: f64,
}

/// Where the admin plane listens (OPS-05): never a data-plane listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminListen {
    /// A loopback address.
    Tcp(SocketAddr),
    /// TLS with required client certificates (any address).
    MutualTls { addr: SocketAddr, tls: ServerTls },
    /// A unix socket path.
    Unix(PathBuf),
}

/// PostgreSQL holding the identity store shared by several instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postgres {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password_file: Option<PathBuf>,
    /// Trust anchors; `Some` means TLS is required.
    pub ca: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Full re-read of the store at this period, on top of change notifications.
    pub resync: Duration,
    /// Plaintext to a non-loopback host.
    pub plaintext_remote: bool,
}

/// Redis holding the shared rate-limit state.
#[derive(Debug, Clone)]
pub struct Redis {
    pub url: String,
    pub ca: Option<PathBuf>,
    pub timeout: Duration,
    /// Fall back to per-instance limits (instead of refusing) while Redis is unreachable.
    pub fall_back_to_local: bool,
    /// `redis://` to a non-loopback host.
    pub plaintext_remote: bool,
}

/// The token the gateway mints for each upstream request.
#[derive(Debug, Clone)]
pub struct ContextToken {
    pub header: HeaderName,
    pub issuer: String,
    pub keys_dir: PathBuf,
    pub lifetime: Duration,
    pub rotate_after: Duration,
    pub overlap: Duration,
    /// Loopback listener for the JWKS.
    pub jwks_bind: Option<SocketAddr>,
}

/// Applications, API keys and token issuers.
#[derive(Debug, Clone)]
pub struct Identity {
    pub data_dir: PathBuf,
    /// The shared store for several instances; `None`: SQLite in `data_dir`.
    pub postgres: Option<Postgres>,
    pub api_key_header: HeaderName,
    pub clock_skew: Duration,
    pub max_token_bytes: usize,
    /// Verified tokens remembered by digest; 0 = off.
    pub verified_token_cache: usize,
    pub issuers: Vec<Issuer>,
    /// `(kid, PKCS#8 PEM file)` for nested JWE.
    pub decryption_keys: Vec<(Option<String>, PathBuf)>,
    pub introspection: Option<Introspection>,
    pub revocation_path: String,
    pub revoke_all_path: String,
    /// Past this without a confirmed-current snapshot, protected routes are 503.
    pub max_staleness: Duration,
}

#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks: JwksSource,
    /// Asymmetric JWS algorithms only (`none` and HS* are refused).
    pub algorithms: Vec<String>,
    pub require_typ: Option<String>,
}

/// RFC 7662 token introspection for opaque tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub url: http::Uri,
    pub ca: PathBuf,
    pub client_id: String,
    pub client_secret_file: PathBuf,
    pub issuer: String,
    pub audiences: Vec<String>,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// HTTPS only, verified against `ca`; refreshed every `refresh`.
    Url {
        url: http::Uri,
        ca: PathBuf,
        refresh: Duration,
        /// Fewest time between fetches caused by unknown `kid`s.
        min_refetch: Duration,
    },
}

/// JWS algorithms an issuer may use.
pub const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "EdDSA", "ES256", "ES384", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512",
];

/// The default allowlist.
pub const DEFAULT_ALGORITHMS: [&str; 5] = ["EdDSA", "ES256", "ES384", "PS256", "RS256"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin, never with credentials.
    Any,
    List(Vec<HeaderValue>),
}

#[derive(Debug, Clone)]
pub struct Cors {
    pub origins: AllowedOrigins,
    pub allow_credentials: bool,
    pub allowed_headers: Vec<HeaderName>,
    pub expose_headers: Vec<HeaderName>,
    pub max_age_s: u32,
}

/// The connection limits beyond which a setting lets one client hold the
/// gateway's resources for longer than the defaults do (`check` reports).
const WEAK_LIMITS: [(&str, u64); 6] = [
    ("body_rate_grace_ms", 5_000),
    ("header_read_timeout_ms", 10_000),
    ("idle_timeout_ms", 60_000),
    ("max_connection_age_ms", 3_600_000),
    ("write_timeout_ms", 30_000),
    ("max_connections_per_client", 512),
];

/// A setting that weakens a secure default; `check` lists every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakening {
    pub path: String,
    pub message: String,
}

impl Config {
    fn limit_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        let l = &self.limits;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let values = [
            millis(l.body_rate_grace),
            millis(l.header_read_timeout),
            millis(l.idle_timeout),
            millis(l.max_connection_age),
            millis(l.write_timeout),
            l.max_connections_per_client as u64,
        ];
        for ((name, default), value) in WEAK_LIMITS.iter().zip(values) {
            if value > *default {
                push(
                    format!("limits.{name}"),
                    &format!(
                        "{value} is above the default {default}: one client can hold connections longer or in greater numbers"
                    ),
                );
            }
        }
        if l.auth_failures_per_minute == 0 {
            push(
                "limits.auth_failures_per_minute".into(),
                "failed authentications are not limited per client: credential guessing and token floods cost the gateway (and introspection) nothing to send",
            );
        }
        if l.min_body_bytes_per_s == 0 {
            push(
                "limits.min_body_bytes_per_s".into(),
                "no minimum body rate: a client may trickle a body for the whole body_read_timeout",
            );
        }
        if l.client_ipv6_prefix > 64 {
            push(
                "limits.client_ipv6_prefix".into(),
                "IPv6 clients are told apart by more than their /64: one host with many addresses gets many connection and rate budgets",
            );
        }
    }

    /// Every weakened default in this config, in file order.
    pub fn weakenings(&self) -> Vec<Weakening> {
        let mut out = Vec::new();
        let mut push = |path: String, message: &str| {
            out.push(Weakening {
                path,
                message: message.to_owned(),
            });
        };
        self.limit_weakenings(&mut push);
        if self.mode == Mode::Dev {
            push(
                "mode".into(),
                "dev mode: self-signed certificates and plaintext listeners are allowed",
            );
        }
        self.listener_weakenings(&mut push);
        for (name, on) in [
            ("email", self.sensitive.patterns.email),
            ("card", self.sensitive.patterns.card),
            ("national_id", self.sensitive.patterns.national_id),
            ("token", self.sensitive.patterns.token),
        ] {
            if !on {
                push(
                    format!("sensitive_data.{name}"),
                    "a sensitive value pattern is no longer refused in URLs",
                );
            }
        }
        self.shared_state_weakenings(&mut push);
        self.upstream_weakenings(&mut push);
        self.api_weakenings(&mut push);
        out
    }

    /// Listeners: TLS 1.2, revocation, plaintext, hosts, environments.
    fn listener_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        for (i, l) in self.listeners.iter().enumerate() {
            match &l.kind {
                ListenerKind::Tls(t) => {
                    if t.allow_tls12 {
                        push(
                            format!("listeners[{i}].tls.min_version"),
                            "TLS 1.2 accepted (ECDHE + AEAD suites only); the default is TLS 1.3 only",
                        );
                    }
                    if let Some(c) = &t.client_auth {
                        if c.crls.is_empty() {
                            push(
                                format!("listeners[{i}].tls.client_auth.crls"),
                                "client certificates are not checked for revocation (no CRL)",
                            );
                        }
                        if c.allow_stale_crl {
                            push(
                                format!("listeners[{i}].tls.client_auth.allow_stale_crl"),
                                "certificates are accepted while a CRL is out of date",
                            );
                        }
                    }
                }
                ListenerKind::DangerousPlaintext => push(
                    format!("listeners[{i}].plaintext"),
                    "plaintext HTTP listener serves APIs (dangerous_serve)",
                ),
                ListenerKind::Redirect { .. } => {}
            }
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.hosts.is_empty() && !matches!(l.kind, ListenerKind::Redirect { .. }) {
                push(
                    format!("listeners[{i}].hosts"),
                    "no host allowlist: requests for any Host are served (list the names this listener serves; others get 421)",
                );
            }
            if l.environment != "production" {
                push(
                    format!("listeners[{i}].environment"),
                    &format!(
                        "listener serves environment `{}`: operations marked for it are reachable here",
                        l.environment
                    ),
                );
            }
        }
    }

    /// Identity staleness, PostgreSQL and Redis, anomalies, the context token.
    fn shared_state_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        if self
            .identity
            .as_ref()
            .is_some_and(|i| i.max_staleness > Duration::from_secs(60))
        {
            push(
                "identity.max_staleness_s".into(),
                "above the default 60: revocations and disabled applications may go unseen for longer while the store is unreachable",
            );
        }
        if let Some(pg) = self.identity.as_ref().and_then(|i| i.postgres.as_ref())
            && pg.plaintext_remote
        {
            push(
                "shared_state.postgres.dangerous_plaintext".into(),
                "PostgreSQL reached without TLS over the network",
            );
        }
        if let Some(r) = &self.redis {
            if r.fall_back_to_local {
                push(
                    "shared_state.redis.on_failure".into(),
                    "while Redis is unreachable each instance applies only its own limits (the fleet may accept up to N× the limit)",
                );
            }
            if r.plaintext_remote {
                push(
                    "shared_state.redis.dangerous_plaintext".into(),
                    "Redis reached without TLS over the network",
                );
            }
        }
        if self.anomalies.is_none() {
            push(
                "anomalies.enabled".into(),
                "sudden changes in an application's usage raise no event",
            );
        }
        if self.context_token.is_none() {
            push(
                "context_token.enabled".into(),
                "backends receive no gateway-signed context token: they cannot verify that a request came through the gateway, nor its identity",
            );
        }
    }

    /// Upstreams: revocation and plaintext.
    fn upstream_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        for u in &self.upstreams {
            if u.scheme == UpstreamScheme::Https && u.crls.is_empty() {
                push(
                    format!("upstreams.{}.crls", u.name),
                    "the upstream's certificate is not checked for revocation (no CRL)",
                );
            }
            if u.scheme == UpstreamScheme::DangerousHttp {
                push(
                    format!("upstreams.{}.dangerous_plaintext_upstream", u.name),
                    "upstream reached over plaintext HTTP",
                );
            }
        }
    }

    /// APIs: CORS, contracts, personal data, public routes.
    fn api_weakenings(&self, push: &mut impl FnMut(String, &str)) {
        for (a, api) in self.apis.iter().enumerate() {
            if let Some(c) = &api.cors
                && c.origins == AllowedOrigins::Any
            {
                push(
                    format!("apis[{a}].cors.allowed_origins"),
                    "CORS allows any origin (`*`)",
                );
            }
            if api.openapi.is_none() {
                push(
                    format!("apis[{a}].openapi"),
                    "no OpenAPI document: request bodies, parameters and responses are not checked against a contract",
                );
            }
            for (r, route) in api.routes.iter().enumerate() {
                if let Some(op) = &route.operation {
                    if route.allow_pii {
                        push(
                            format!("apis[{a}].contract.allow_pii"),
                            &format!("`{}` returns personal data unredacted", op.id),
                        );
                    }
                    if !op.strips_responses() {
                        push(
                            format!("apis[{a}].contract.strip_undeclared_responses"),
                            &format!(
                                "`{}`: response properties the schema does not declare are passed through",
                                op.id
                            ),
                        );
                    }
                }
                if route.auth == AuthPolicy::Public {
                    push(
                        if route.operation.is_some() {
                            format!("apis[{a}].contract.public_operations")
                        } else {
                            format!("apis[{a}].routes[{r}].auth")
                        },
                        &format!(
                            "public route (no authentication): {} {}{}",
                            route
                                .methods
                                .iter()
                                .map(Method::as_str)
                                .collect::<Vec<_>>()
                                .join(","),
                            api.base_path,
                            route.path
                        ),
                    );
                }
            }
        }
    }
}
