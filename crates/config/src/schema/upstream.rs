//! What users write for an upstream: its targets, TLS identity policy,
//! timeouts, balancing, health checks, ejection and retries.

use super::defaults;
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `https://host:port/base`; `http://` only with `dangerous_plaintext_upstream`.
    /// One target; for several, give `targets` instead.
    pub url: Option<String>,
    /// Several targets of one upstream: URLs of one scheme and one path,
    /// sharing every TLS setting below (`ca`, `server_name`, client
    /// certificate, pins, CRLs).
    #[serde(default)]
    pub targets: Vec<String>,
    /// How a target is chosen: `round_robin` (default), `least_outstanding`,
    /// or `consistent_hash` on the value of `hash_header`.
    #[serde(default)]
    pub balance: RawBalance,
    /// The request header whose value picks the target with `consistent_hash`.
    pub hash_header: Option<String>,
    /// Active health checks of every target; none when absent.
    pub health_check: Option<RawHealthCheck>,
    /// Passive ejection of a target after consecutive failures.
    #[serde(default)]
    pub outlier_detection: RawOutlierDetection,
    /// Retries of idempotent requests that got no answer.
    #[serde(default)]
    pub retries: RawRetries,
    /// Circuit breaking: requests awaiting an answer from one target at
    /// once; a target at its cap gets no more, and with every target at
    /// its cap the answer is 503 (default 1024).
    #[serde(default = "defaults::max_requests_per_target")]
    pub max_requests_per_target: usize,
    /// PEM bundle of the trust anchors for this upstream (required for https).
    pub ca: Option<String>,
    /// Name checked against the upstream certificate's SAN and sent as SNI;
    /// defaults to the URL's host.
    pub server_name: Option<String>,
    /// Time allowed to connect (TCP and TLS) to a target.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed for a target's response head; over it: 504.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Idle pooled connections are closed after this long.
    #[serde(default = "defaults::pool_idle_timeout_ms")]
    pub pool_idle_timeout_ms: u64,
    /// Idle connections kept per target.
    #[serde(default = "defaults::pool_max_idle_per_host")]
    pub pool_max_idle_per_host: usize,
    /// Allow `http://` to this upstream (requests and context tokens in
    /// clear; TLS-04; `check` reports it).
    #[serde(default)]
    pub dangerous_plaintext_upstream: bool,
    /// The gateway's client certificate for this upstream (mutual TLS).
    pub client_cert: Option<String>,
    /// Its private key; must not be readable by group or others.
    pub client_key: Option<String>,
    /// SHA-256 of the upstream certificate's SubjectPublicKeyInfo, base64
    /// (`sha256/...` accepted); any one must match.
    #[serde(default)]
    pub spki_pins: Vec<String>,
    /// CRL files (PEM or DER) for the upstream's certificate chain.
    #[serde(default)]
    pub crls: Vec<String>,
    /// Audience of the context tokens minted for this upstream; default the upstream's name.
    pub context_audience: Option<String>,
    /// The upstream's public key (`PUBLIC KEY` PEM: RSA or P-256): context
    /// tokens are then encrypted to it (nested JWE).
    pub context_encrypt_to: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawBalance {
    #[default]
    RoundRobin,
    LeastOutstanding,
    ConsistentHash,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// Path requested with GET on each target, e.g. `/healthz`.
    pub path: String,
    /// Time between two checks of one target.
    #[serde(default = "defaults::health_interval_ms")]
    pub interval_ms: u64,
    /// Time a check may take; longer counts as a failure.
    #[serde(default = "defaults::health_timeout_ms")]
    pub timeout_ms: u64,
    /// Consecutive successes that make an unhealthy target healthy (default 2).
    #[serde(default = "defaults::healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy target unhealthy (default 3).
    #[serde(default = "defaults::unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// The status a healthy target answers (default 200).
    #[serde(default = "defaults::expect_status")]
    pub expect_status: u16,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutlierDetection {
    /// Failures in a row (no answer, 502, 503, 504) that eject a target; 0 turns ejection off (default 5).
    #[serde(default = "defaults::outlier_failures")]
    pub consecutive_failures: u32,
    /// First ejection; doubled at each ejection in a row, up to `max_ejection_ms` (default 30 s).
    #[serde(default = "defaults::ejection_ms")]
    pub ejection_ms: u64,
    /// Longest ejection, however often a target is ejected again.
    #[serde(default = "defaults::max_ejection_ms")]
    pub max_ejection_ms: u64,
    /// At most this share of the targets ejected at once (default 50).
    #[serde(default = "defaults::max_ejected_percent")]
    pub max_ejected_percent: u8,
}

impl Default for RawOutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_failures: defaults::outlier_failures(),
            ejection_ms: defaults::ejection_ms(),
            max_ejection_ms: defaults::max_ejection_ms(),
            max_ejected_percent: defaults::max_ejected_percent(),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    /// Further tries of an idempotent request (GET, HEAD, OPTIONS, PUT,
    /// DELETE) that got no answer, each on another target when there is
    /// one; 0 turns retries off (default 1).
    #[serde(default = "defaults::retry_attempts")]
    pub attempts: u32,
    /// Retries in flight stay under this share of the requests in flight
    /// (at least 3 at any time; default 20).
    #[serde(default = "defaults::retry_budget_percent")]
    pub budget_percent: u8,
    /// Time for the answer's head of one try; default the `request_timeout_ms`.
    pub per_try_timeout_ms: Option<u64>,
}

impl Default for RawRetries {
    fn default() -> Self {
        Self {
            attempts: defaults::retry_attempts(),
            budget_percent: defaults::retry_budget_percent(),
            per_try_timeout_ms: None,
        }
    }
}
