//! What users write for an API: its routes (from an OpenAPI document or
//! by hand) and their authentication policies, contract enforcement, CORS,
//! rate limits, WebSocket routes and streamed uploads.

use super::{RawWebSocket, defaults};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// The API's name, in events, metrics, the inventory and kill switches.
    pub name: String,
    /// Hosts this API answers for; empty means any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefix the API is mounted at, e.g. `/v1`; default `/`.
    #[serde(default)]
    pub base_path: Option<String>,
    /// Name of an entry in `upstreams`.
    pub upstream: String,
    pub cors: Option<RawCors>,
    /// The API's OpenAPI 3.0/3.1 document: routes, security, validation.
    pub openapi: Option<String>,
    /// How the OpenAPI document is enforced.
    #[serde(default)]
    pub contract: RawContract,
    /// Routes written by hand, for APIs without a document (no content validation).
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Team or person answerable for this API (inventory); defaults to the document's.
    pub owner: Option<String>,
    /// Rate limits over the whole API: one budget per key across its routes.
    #[serde(default)]
    pub rate_limits: Vec<RawRateLimit>,
    /// Limits of one route, by `operationId` (document) or route `path`
    /// (hand-written routes): its own rate limits and a concurrency cap.
    #[serde(default)]
    pub route_limits: BTreeMap<String, RawRouteLimits>,
    /// Routes that accept WebSocket connections, by `operationId`
    /// (document) or route `path` (hand-written routes); every other route
    /// treats `Upgrade` as hop-by-hop and drops it.
    #[serde(default)]
    pub websockets: BTreeMap<String, RawWebSocket>,
    /// While an application's usage of a route is anomalous, cap it at
    /// twice its baseline rate (OPS-02).
    #[serde(default)]
    pub tighten_on_anomaly: bool,
    /// The API carries gRPC: calls with `content-type: application/grpc`
    /// stream to the upstream over HTTP/2 with their trailers, each message
    /// within `limits.max_body_bytes`. Hand-written routes only.
    #[serde(default)]
    pub grpc: bool,
    /// Request bodies nothing needs to read (hand-written routes, declared
    /// non-JSON media) stream to the upstream as they arrive instead of
    /// being read whole first; none by default.
    pub request_streaming: Option<RawRequestStreaming>,
    /// Issuers whose tokens this API accepts (their `issuer` values);
    /// required when more than one issuer is configured, so a partner's
    /// identity provider cannot mint scopes for internal APIs.
    #[serde(default)]
    pub token_issuers: Vec<String>,
    /// Narrower issuer lists for single routes, by `operationId` (document)
    /// or route `path` (hand-written routes): each a subset of
    /// `token_issuers`.
    #[serde(default)]
    pub route_token_issuers: BTreeMap<String, Vec<String>>,
    /// A token's `client_id`/`azp` must name the application identified by
    /// the API key or client certificate of the same request.
    #[serde(default)]
    pub bind_token_to_application: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawLimitKey {
    /// The calling application (API key or bound client certificate).
    Application,
    /// The token's subject.
    Subject,
    /// Everyone calling the route together.
    Route,
    /// The client's IP address.
    Client,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Whose budget: `application`, `subject`, `route` or `client`.
    pub per: RawLimitKey,
    /// Requests allowed per `per_seconds` on average.
    pub requests: u32,
    /// The window, in seconds, `requests` are spread over.
    pub per_seconds: u64,
    /// Requests accepted at once after a quiet period (default `requests`).
    pub burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRouteLimits {
    /// Rate limits of this route alone, on top of the API's.
    #[serde(default)]
    pub rate_limits: Vec<RawRateLimit>,
    /// Requests of this route in flight at once, across all callers.
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawUnknownProperties {
    #[default]
    Strip,
    Reject,
}

/// Streamed request bodies: limits applied as bytes flow.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRequestStreaming {
    /// Largest streamed body (default 64 MiB); the upload is cut beyond.
    #[serde(default = "defaults::max_streamed_body_bytes")]
    pub max_body_bytes: u64,
}

/// Enforcement settings for an API's OpenAPI document.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawContract {
    /// operationIds without a security requirement that are public on purpose (AUTHN-06).
    #[serde(default)]
    pub public_operations: Vec<String>,
    /// Undeclared body properties and query parameters: `strip` (default) or `reject`.
    #[serde(default)]
    pub unknown_properties: RawUnknownProperties,
    /// operationIds whose responses may carry `pii` fields unredacted.
    #[serde(default)]
    pub allow_pii: Vec<String>,
    /// Strip response properties the response schema does not declare.
    #[serde(default = "defaults::yes")]
    pub strip_undeclared_responses: bool,
    /// Validate JSON responses against their schema; a mismatch becomes 502.
    #[serde(default)]
    pub validate_responses: bool,
    /// Deepest nesting of a JSON body, 1 to 100 (depth bombs).
    #[serde(default = "defaults::max_json_depth")]
    pub max_json_depth: usize,
    /// Longest JSON string or member name.
    #[serde(default = "defaults::max_json_string_bytes")]
    pub max_json_string_bytes: usize,
}

impl Default for RawContract {
    fn default() -> Self {
        Self {
            public_operations: Vec::new(),
            unknown_properties: RawUnknownProperties::Strip,
            allow_pii: Vec::new(),
            strip_undeclared_responses: true,
            validate_responses: false,
            max_json_depth: defaults::max_json_depth(),
            max_json_string_bytes: defaults::max_json_string_bytes(),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// Exact origins, e.g. `https://app.example.com`. `*` is allowed only
    /// without credentials.
    pub allowed_origins: Vec<String>,
    /// Let browsers send cookies and credentials; never with `*` (OUTPUT-11).
    #[serde(default)]
    pub allow_credentials: bool,
    /// Request headers allowed in preflighted requests.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer.
    #[serde(default = "defaults::cors_max_age_s")]
    pub max_age_s: u32,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Path template relative to `base_path`, e.g. `/orders/{id}`.
    pub path: String,
    /// HTTP methods the route answers; any other gets 405 with `Allow`.
    pub methods: Vec<String>,
    /// Authentication policy; there is no default (deny by default). Absent,
    /// the route is refused; optional here only so that `check` can go on
    /// to report the file's other problems in the same run.
    #[schemars(required)]
    pub auth: Option<RawAuthPolicy>,
}

/// How a route authenticates callers: the word `public`, or a policy map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawAuthPolicy {
    /// No authentication: must be written out explicitly and is reported by `check`.
    Public,
    Protected(RawProtected),
}

/// A protected route's requirements.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProtected {
    /// The calling application must present an API key (AUTHN-04).
    #[serde(default)]
    pub api_key: bool,
    /// The caller must present a valid bearer token (AUTHN-02).
    #[serde(default)]
    pub token: bool,
    /// Scopes the token must carry, all of them (AUTHZ-02).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Applications allowed on this route (AUTHZ-01); empty means any active application.
    #[serde(default)]
    pub apps: Vec<String>,
}

impl<'de> Deserialize<'de> for RawAuthPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawAuthPolicy;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "`public` or a policy like { api_key: true, token: true, scopes: [...] }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "public" => Ok(RawAuthPolicy::Public),
                    other => Err(E::custom(format!(
                        "`{other}` is not a policy: use `public` or {{ api_key: true, token: true, scopes: [...] }}"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                RawProtected::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawAuthPolicy::Protected)
            }
        }
        d.deserialize_any(Visitor)
    }
}
