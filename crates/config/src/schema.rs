//! The external configuration schema: what a user writes in `gateway.yaml`.
//!
//! Every struct denies unknown fields so a typo is an error, not a silently
//! ignored setting. Defaults are the secure ones; each is explained once in
//! `docs/defaults.md`. Nothing here is trusted: [`crate::model`] validates it.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Top level of `gateway.yaml`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `production` (default) or `dev`. Dev mode allows self-signed leaf
    /// certificates and plaintext listeners; `check` reports it.
    #[serde(default)]
    pub mode: RawMode,
    /// Worker threads and the shutdown grace period.
    #[serde(default)]
    pub runtime: RawRuntime,
    /// Data-plane listeners: TLS by default (TLS-05), plaintext only to
    /// redirect (or in dev mode).
    pub listeners: Vec<RawListener>,
    /// Connection, header and body limits against resource exhaustion;
    /// `check` reports each one raised above its default.
    #[serde(default)]
    pub limits: RawLimits,
    /// The correlation ID added to every request and answer (DATA-03, DATA-04).
    #[serde(default)]
    pub correlation: RawCorrelation,
    /// W3C Trace Context forwarded to upstreams.
    #[serde(default)]
    pub trace_context: RawTraceContext,
    /// Request headers removed before forwarding (INPUT-06).
    #[serde(default)]
    pub request: RawRequestHygiene,
    /// Response hardening: headers added and removed on every answer
    /// (OUTPUT-03, OUTPUT-07, OUTPUT-12).
    #[serde(default)]
    pub response: RawResponseHardening,
    /// Security events (OPS-01): where they are written or sent.
    #[serde(default)]
    pub events: RawEvents,
    /// One JSON line per request; none when absent.
    pub access_log: Option<RawAccessLog>,
    /// Applications, API keys and bearer tokens; required when a route is protected.
    pub identity: Option<RawIdentity>,
    /// The gateway-signed context token sent to every upstream.
    pub context_token: Option<RawContextToken>,
    /// State shared by several gateway instances.
    #[serde(default)]
    pub shared_state: RawSharedState,
    /// The admin plane (OPS-03, OPS-05): its own listener, never a data-plane one.
    pub admin: Option<RawAdmin>,
    /// Liveness and readiness probes for orchestrators; none when absent.
    pub health: Option<RawHealth>,
    /// Usage anomaly detection per application × route (OPS-02).
    #[serde(default)]
    pub anomalies: RawAnomalies,
    /// The services behind the gateway, by name: TLS with explicit trust
    /// anchors by default (TLS-02, TLS-04).
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// The APIs the gateway serves: routes from an OpenAPI document or
    /// written by hand, each with its authentication policy (AUTHN-06).
    pub apis: Vec<RawApi>,
    /// Sensitive data refused in URLs (DATA-01).
    #[serde(default)]
    pub sensitive_data: RawSensitiveData,
}

/// Parameter names and value patterns refused in paths and query strings.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSensitiveData {
    /// Replaces the default list of sensitive parameter names (matched by word).
    pub names: Option<Vec<String>>,
    /// Added to the (default or given) list.
    #[serde(default)]
    pub extra_names: Vec<String>,
    /// Refuse e-mail addresses in paths and query strings.
    #[serde(default = "defaults::yes")]
    pub email: bool,
    /// Refuse payment card numbers (Luhn-checked) in paths and query strings.
    #[serde(default = "defaults::yes")]
    pub card: bool,
    /// Refuse national identity numbers in paths and query strings.
    #[serde(default = "defaults::yes")]
    pub national_id: bool,
    /// Refuse bearer tokens and API keys in paths and query strings (DATA-01).
    #[serde(default = "defaults::yes")]
    pub token: bool,
}

impl Default for RawSensitiveData {
    fn default() -> Self {
        Self {
            names: None,
            extra_names: Vec::new(),
            email: true,
            card: true,
            national_id: true,
            token: true,
        }
    }
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    #[default]
    Production,
    Dev,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    /// Worker threads of the data plane; 0 or absent means one per core.
    #[serde(default)]
    pub worker_threads: usize,
    /// On SIGTERM: how long in-flight requests may take to finish after
    /// the listeners stop accepting (default 10 s, at most 600).
    #[serde(default = "defaults::shutdown_grace_s")]
    pub shutdown_grace_s: u64,
}

impl Default for RawRuntime {
    fn default() -> Self {
        Self {
            worker_threads: 0,
            shutdown_grace_s: defaults::shutdown_grace_s(),
        }
    }
}

/// The orchestrator's probes on a listener of their own: `/healthz` and
/// `/readyz` over plain HTTP, nothing else.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// An address, e.g. `0.0.0.0:8081`; never a data-plane or admin port.
    pub bind: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// The listener's name, in events, metrics and `check` output.
    pub name: String,
    /// `IP:port`; port 0 picks a free port.
    pub bind: String,
    /// TLS settings; required unless `plaintext` is set.
    pub tls: Option<RawServerTls>,
    /// A listener without TLS either only redirects to HTTPS (`redirect`) or,
    /// in dev mode only, serves plaintext (`dangerous_serve`).
    pub plaintext: Option<RawPlaintext>,
    /// With `plaintext: redirect`: the HTTPS port to redirect to (default 443).
    pub redirect_https_port: Option<u16>,
    /// Environment this listener serves (default `production`); operations
    /// marked `x-environment` for others are not routed here (CONTRACT-03).
    pub environment: Option<String>,
    /// Host names this listener serves (`Host`/`:authority`, without port);
    /// any other host is answered 421. Empty: every host (reported by `check`).
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawPlaintext {
    Redirect,
    DangerousServe,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    /// PEM file with the certificate chain, leaf first.
    pub cert: String,
    /// PEM file with the private key; must not be readable by group or others.
    pub key: String,
    /// `"1.3"` (default) or `"1.2"` (then only ECDHE + AEAD suites).
    #[serde(default)]
    pub min_version: Option<String>,
    /// Client certificates (mutual TLS).
    pub client_auth: Option<RawClientAuth>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawClientAuthMode {
    Required,
    Optional,
}

/// Mutual TLS on a listener (TLS-01, TLS-08, TLS-10).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClientAuth {
    /// `required`: no certificate, no connection; `optional`: a certificate is
    /// verified when presented.
    pub mode: RawClientAuthMode,
    /// PEM bundle of the CAs that issue client certificates.
    pub ca: String,
    /// PEM or DER CRL files; reloaded when they change and on SIGHUP.
    #[serde(default)]
    pub crls: Vec<String>,
    /// Accept certificates while a CRL is past its `nextUpdate` (default: refuse).
    #[serde(default)]
    pub allow_stale_crl: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Time allowed to send a complete request head, from the connection's
    /// start for the first one (slowloris).
    #[serde(default = "defaults::header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Time allowed for the TLS handshake (half-open handshakes).
    #[serde(default = "defaults::tls_handshake_timeout_ms")]
    pub tls_handshake_timeout_ms: u64,
    /// Largest request head, at least 8192; over it: 431.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// Largest request body, read whole before forwarding; over it: 413.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Connections held at once on one listener; over the cap they are closed
    /// at once.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// HTTP/2 streams one connection may have open at once.
    #[serde(default = "defaults::h2_max_concurrent_streams")]
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 streams a client may reset before the connection is closed
    /// (rapid reset, CVE-2023-44487).
    #[serde(default = "defaults::h2_max_pending_reset_streams")]
    pub h2_max_pending_reset_streams: usize,
    /// HTTP/2 streams the gateway may reset for a client's errors before
    /// closing the connection.
    #[serde(default = "defaults::h2_max_local_error_reset_streams")]
    pub h2_max_local_error_reset_streams: usize,
    /// Time allowed to send a whole request body (slow body senders).
    #[serde(default = "defaults::body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Largest upstream response the gateway buffers to inspect (JSON and text).
    #[serde(default = "defaults::max_response_bytes")]
    pub max_response_bytes: usize,
    /// A connection with no request in flight for this long is closed
    /// (HTTP/2: GOAWAY); pings do not count as activity.
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// A connection older than this finishes its requests and is closed
    /// (HTTP/1 `Connection: close`, HTTP/2 GOAWAY), so it meets the current
    /// client CA and certificates again.
    #[serde(default = "defaults::max_connection_age_ms")]
    pub max_connection_age_ms: u64,
    /// A write that cannot make progress for this long (a client that stops
    /// reading) closes the connection.
    #[serde(default = "defaults::write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// Connections one client may hold open on one listener (IPv6 clients
    /// grouped by `client_ipv6_prefix`).
    #[serde(default = "defaults::max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// How many leading bits of an IPv6 address identify one client (one
    /// host usually holds a whole /64).
    #[serde(default = "defaults::client_ipv6_prefix")]
    pub client_ipv6_prefix: u8,
    /// After `body_rate_grace_ms`, a request body arriving slower than this
    /// on average is refused (slow-body attacks); 0 turns the check off.
    #[serde(default = "defaults::min_body_bytes_per_s")]
    pub min_body_bytes_per_s: u64,
    /// Time a body may take before `min_body_bytes_per_s` applies.
    #[serde(default = "defaults::body_rate_grace_ms")]
    pub body_rate_grace_ms: u64,
    /// Bytes of request and response bodies buffered at once across every
    /// connection; past it, new buffering is refused with 503.
    #[serde(default = "defaults::max_buffered_bytes")]
    pub max_buffered_bytes: usize,
    /// Refused credentials (invalid API keys or tokens) one client address
    /// may send per minute; past it, requests to protected routes are 429
    /// before any verification work. 0 turns the budget off (reported).
    #[serde(default = "defaults::auth_failures_per_minute")]
    pub auth_failures_per_minute: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: defaults::header_read_timeout_ms(),
            tls_handshake_timeout_ms: defaults::tls_handshake_timeout_ms(),
            max_header_bytes: defaults::max_header_bytes(),
            max_body_bytes: defaults::max_body_bytes(),
            max_connections: defaults::max_connections(),
            h2_max_concurrent_streams: defaults::h2_max_concurrent_streams(),
            h2_max_pending_reset_streams: defaults::h2_max_pending_reset_streams(),
            h2_max_local_error_reset_streams: defaults::h2_max_local_error_reset_streams(),
            body_read_timeout_ms: defaults::body_read_timeout_ms(),
            max_response_bytes: defaults::max_response_bytes(),
            idle_timeout_ms: defaults::idle_timeout_ms(),
            max_connection_age_ms: defaults::max_connection_age_ms(),
            write_timeout_ms: defaults::write_timeout_ms(),
            max_connections_per_client: defaults::max_connections_per_client(),
            client_ipv6_prefix: defaults::client_ipv6_prefix(),
            min_body_bytes_per_s: defaults::min_body_bytes_per_s(),
            body_rate_grace_ms: defaults::body_rate_grace_ms(),
            max_buffered_bytes: defaults::max_buffered_bytes(),
            auth_failures_per_minute: defaults::auth_failures_per_minute(),
        }
    }
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCorrelation {
    /// Header carrying the correlation id (default `X-Correlation-ID`).
    pub header: Option<String>,
}

/// W3C Trace Context: a well-formed client `traceparent`/`tracestate` is
/// always forwarded, on every route, declared by its contract or not.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTraceContext {
    /// Start a new (sampled) trace when the client sent none or a
    /// malformed one (default true; a malformed one is never forwarded).
    #[serde(default = "defaults::yes")]
    pub start: bool,
    /// Export one span per request over OTLP/HTTP; none by default.
    pub otlp: Option<RawOtlp>,
}

impl Default for RawTraceContext {
    fn default() -> Self {
        Self {
            start: true,
            otlp: None,
        }
    }
}

/// An OpenTelemetry collector receiving the gateway's spans (OTLP/HTTP, JSON).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    /// The traces endpoint, e.g. `https://collector:4318/v1/traces`
    /// (with `ca`), or `http://` on loopback.
    pub endpoint: String,
    /// PEM trust anchors for the collector (no system roots).
    pub ca: Option<String>,
    /// `service.name` of the spans (default `portcullis`).
    pub service_name: Option<String>,
    /// Export spans over plain HTTP to a non-loopback collector (`check`
    /// reports it).
    #[serde(default)]
    pub dangerous_plaintext: bool,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRequestHygiene {
    /// Extra request headers never forwarded upstream (DATA-02), e.g. `Cookie`.
    #[serde(default)]
    pub remove_headers: Vec<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawResponseHardening {
    /// Extra response headers never returned to clients (OUTPUT-06).
    #[serde(default)]
    pub remove_headers: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    /// Write security events as JSON lines to standard output.
    #[serde(default)]
    pub stdout: bool,
    /// Append security events as JSON lines to this file (created 0600).
    pub file: Option<String>,
    /// The file is rotated (`file.1`, `file.2`, …) when it reaches this many
    /// MiB (default 100).
    #[serde(default = "defaults::event_file_max_mb")]
    pub file_max_mb: u64,
    /// Rotated files kept (default 5); older ones are deleted.
    #[serde(default = "defaults::event_file_keep")]
    pub file_keep: u32,
    /// Local spool the remote sinks ship from (required with `syslog` or `http`).
    pub spool: Option<RawSpool>,
    /// RFC 5424 syslog over TCP (RFC 6587 octet counting), TLS with `ca`.
    pub syslog: Option<RawSyslog>,
    /// An HTTP collector: batches of events POSTed as a JSON array.
    pub http: Option<RawCollector>,
}

/// The access log: where its lines go.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    /// Write the lines to standard output.
    #[serde(default)]
    pub stdout: bool,
    /// Append the lines to this file (created 0600), rotated like the events file.
    pub file: Option<String>,
    /// The file is rotated when it reaches this many MiB.
    #[serde(default = "defaults::event_file_max_mb")]
    pub file_max_mb: u64,
    /// Rotated files kept; older ones are deleted.
    #[serde(default = "defaults::event_file_keep")]
    pub file_keep: u32,
}

impl Default for RawEvents {
    fn default() -> Self {
        Self {
            stdout: false,
            file: None,
            file_max_mb: defaults::event_file_max_mb(),
            file_keep: defaults::event_file_keep(),
            spool: None,
            syslog: None,
            http: None,
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSpool {
    /// Directory of the spool (created 0700); events wait here until every
    /// remote sink has them, so nothing is lost while a sink is down.
    pub dir: String,
    /// Largest spool on disk, in MiB (default 64); over it, the oldest
    /// low-severity events are dropped first, and the drop is an event.
    #[serde(default = "defaults::spool_max_mb")]
    pub max_mb: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSyslog {
    /// `host:port`.
    pub address: String,
    /// PEM trust anchors: the connection is TLS (RFC 5425) when set.
    pub ca: Option<String>,
    /// Plaintext to a non-loopback address.
    #[serde(default)]
    pub dangerous_plaintext: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCollector {
    /// `https://…` (with `ca`), or `http://` on loopback.
    pub url: String,
    /// PEM trust anchors for the collector (no system roots).
    pub ca: Option<String>,
    /// Events per POST (default 100).
    #[serde(default = "defaults::collector_batch")]
    pub batch: usize,
    /// Send events over plain HTTP to a non-loopback collector (events in
    /// clear; `check` reports it).
    #[serde(default)]
    pub dangerous_plaintext: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAnomalies {
    /// Watch usage per application and route (OPS-02); `false` turns it off.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Length of one baseline interval (default 10 s).
    #[serde(default = "defaults::anomaly_interval_s")]
    pub interval_s: u64,
    /// Intervals of history before anything is judged (default 6).
    #[serde(default = "defaults::anomaly_warmup")]
    pub warmup_intervals: u32,
    /// How many times its baseline an interval must reach (default 5).
    #[serde(default = "defaults::anomaly_factor")]
    pub factor: f64,
}

impl Default for RawAnomalies {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_s: defaults::anomaly_interval_s(),
            warmup_intervals: defaults::anomaly_warmup(),
            factor: defaults::anomaly_factor(),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// An address, e.g. `127.0.0.1:9444`; any other than loopback needs
    /// `tls` with required client certificates.
    pub bind: Option<String>,
    /// TLS for `bind`; with `client_auth`, administrators' client
    /// certificates (mutual TLS).
    pub tls: Option<RawServerTls>,
    /// A unix socket path (created mode 0600).
    pub unix: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSharedState {
    /// Redis counting rate limits across instances (INPUT-08).
    pub redis: Option<RawRedis>,
    /// PostgreSQL holding applications, keys and revocations for several instances.
    pub postgres: Option<RawPostgres>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// Host name or IP address (TLS required unless loopback).
    pub host: String,
    /// PostgreSQL's port.
    #[serde(default = "defaults::postgres_port")]
    pub port: u16,
    /// The database holding the store.
    pub dbname: String,
    /// The role the gateway connects as.
    pub user: String,
    /// File holding the password (mode 0600); none for peer/trust/cert auth.
    pub password_file: Option<String>,
    /// PEM trust anchors: connections then require TLS (no system roots).
    pub ca: Option<String>,
    /// Longest wait for a connection, in milliseconds (default 2000).
    #[serde(default = "defaults::postgres_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Full re-read of the store this often, in seconds, whatever was notified (default 30).
    #[serde(default = "defaults::postgres_resync_s")]
    pub resync_s: u64,
    /// Plaintext to a non-loopback host (keys' digests and revocations in clear).
    #[serde(default)]
    pub dangerous_plaintext: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawOnFailure {
    /// Requests under a shared limit are refused while Redis is unreachable.
    #[default]
    Closed,
    /// Each instance falls back to its own (per-instance) limits.
    Local,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `rediss://host:port/db` (TLS) or `redis://` on a loopback address.
    pub url: String,
    /// PEM trust anchors for `rediss://` (required: no system roots).
    pub ca: Option<String>,
    /// Longest wait for Redis per request, in milliseconds (default 100).
    #[serde(default = "defaults::redis_timeout_ms")]
    pub timeout_ms: u64,
    /// While Redis cannot be reached: `closed` (default) refuses requests
    /// under shared limits (429), `local` falls back to per-instance limits.
    #[serde(default)]
    pub on_failure: RawOnFailure,
    /// `redis://` to a non-loopback host (limits and their keys in clear).
    #[serde(default)]
    pub dangerous_plaintext: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawContextToken {
    /// `false` turns context tokens off (a weakening `check` reports).
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Request header carrying the token (default `portcullis-context`).
    pub header: Option<String>,
    /// `iss` of the tokens (default `portcullis`).
    pub issuer: Option<String>,
    /// Signing keys (Ed25519, PKCS#8, mode 0600) and the published
    /// `jwks.json`; default `<identity.data_dir>/context-keys`.
    pub keys_dir: Option<String>,
    /// Token lifetime, 1 to 30 seconds (default 30).
    #[serde(default = "defaults::context_lifetime_s")]
    pub lifetime_s: u64,
    /// Age after which the signing key is replaced (default 7 days).
    #[serde(default = "defaults::context_rotate_after_s")]
    pub rotate_after_s: u64,
    /// How long a replaced key stays published (default 1 hour).
    #[serde(default = "defaults::context_overlap_s")]
    pub overlap_s: u64,
    /// Loopback address of a plain HTTP listener serving only
    /// `/.well-known/jwks.json` (never a data-plane listener).
    pub jwks_bind: Option<String>,
}

mod api;
pub mod defaults;
mod identity;
mod upstream;
mod websocket;

pub use api::{
    RawApi, RawAuthPolicy, RawContract, RawCors, RawLimitKey, RawProtected, RawRateLimit,
    RawRequestStreaming, RawRoute, RawRouteLimits, RawUnknownProperties,
};
pub use identity::{RawDecryptionKey, RawIdentity, RawIntrospection, RawIssuer};
pub use upstream::{RawBalance, RawHealthCheck, RawOutlierDetection, RawRetries, RawUpstream};
pub use websocket::RawWebSocket;
