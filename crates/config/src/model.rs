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
