//! The one rejection type, and the one place that turns it into a response
//! (OUTPUT-01, OUTPUT-04, AUTHN-14, AUTHZ-08).
//!
//! Every error the gateway produces, and every upstream 5xx, ends here as an
//! RFC 9457 `application/problem+json` body with a stable `type`, a `detail`
//! that tells the caller how to fix the request and nothing internal, and
//! the correlation id (OUTPUT-01, OUTPUT-02, OUTPUT-04, OUTPUT-05, OUTPUT-14).
//! The `Display` text is internal detail: it goes to security events only.

use crate::pipeline::path::PathError;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use portcullis_contract::Issue;

/// Why the gateway refused a request (or replaced an upstream answer).
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// Both `Content-Length` and `Transfer-Encoding`, or conflicting lengths.
    #[error("ambiguous message framing: {0}")]
    AmbiguousFraming(&'static str),
    /// The path failed strict normalisation.
    #[error("path refused: {0}")]
    BadPath(#[from] PathError),
    /// The `Host` (or `:authority`) is missing, repeated, not a host name,
    /// or disagrees with the request's authority.
    #[error("host refused: {0}")]
    BadHost(#[from] crate::pipeline::host::HostError),
    /// The request's header fields exceed the gateway's limits (RFC 6585 §5).
    #[error("request header fields too large")]
    HeadersTooLarge { bytes: usize, fields: usize },
    /// The request target is longer than the gateway accepts.
    #[error("request target too long")]
    UriTooLong { limit: usize },
    /// A shared resource of the gateway is spent (the in-flight buffering
    /// budget); the request was not processed and may be retried.
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    /// The readiness probe's answer while this instance should get no
    /// traffic (draining, or its store not confirmed current).
    #[error("not ready: {0}")]
    NotReady(&'static str),
    /// Every target of the upstream is ejected or failing its health
    /// checks; nothing was sent.
    #[error("upstream {0}: no available target")]
    NoAvailableTarget(String),
    /// A well-formed host that this listener does not serve (RFC 9110 §15.5.20).
    #[error("host not served by this listener")]
    MisdirectedHost,
    /// The client's correlation id is not in the accepted format.
    #[error("malformed correlation id")]
    BadCorrelationId,
    /// No API or route declares this path (AUTHZ-10: nothing passes unmatched).
    #[error("no route declares this path")]
    UnknownRoute,
    /// The path is declared, but not for this method.
    #[error("method not declared for this route")]
    MethodNotAllowed { allow: HeaderValue },
    /// A credential (API key, access token) in the query string (AUTHN-04).
    #[error("credential in the query string")]
    CredentialInQuery,
    /// No API key header on a route that needs one.
    #[error("missing API key")]
    MissingApiKey,
    /// The API key is malformed, unknown, revoked, expired or its application disabled.
    #[error("API key refused: {0}")]
    InvalidApiKey(&'static str),
    /// No bearer token on a route that needs one.
    #[error("missing bearer token")]
    MissingToken,
    /// The bearer token failed validation or is revoked.
    #[error("bearer token refused: {0}")]
    InvalidToken(crate::identity::tokens::TokenError),
    /// Authenticated, but not allowed here (scope or application).
    #[error("forbidden: {reason}")]
    InsufficientScope { scope: String, reason: &'static str },
    /// The identity store could not be used; fail closed.
    #[error("identity store unavailable: {0}")]
    StoreUnavailable(String),
    /// The body (declared or streamed) exceeds the limit.
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The client stopped sending the body or sent it too slowly.
    #[error("request body unreadable: {0}")]
    BodyUnreadable(String),
    /// A CORS preflight from an origin that is not on the allowlist.
    #[error("CORS preflight from an origin not on the allowlist")]
    CorsOriginDenied,
    /// A WebSocket route got something other than a valid RFC 6455
    /// handshake; the text says what to send instead.
    #[error("WebSocket handshake refused: {0}")]
    WebSocketHandshake(&'static str),
    /// A browser page from an origin the WebSocket route does not list.
    #[error("WebSocket origin not allowed")]
    WebSocketOrigin,
    /// The upstream could not be reached (connect, TLS, protocol error).
    #[error("upstream unreachable: {0}")]
    UpstreamUnavailable(String),
    /// The upstream did not answer within the request timeout.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The upstream answered with a 5xx; its body never reaches the client.
    #[error("upstream answered {0}")]
    UpstreamFault(StatusCode),
    /// A parameter name or value in the URL carries sensitive data (DATA-01).
    #[error("sensitive data in the {location}: {what}")]
    SensitiveInUrl {
        location: &'static str,
        /// The parameter name (when the name is the reason) or the kind of value.
        what: String,
    },
    /// The body's media type is not one the operation declares (INPUT-01/02/13).
    #[error("unsupported media type")]
    UnsupportedMediaType { allowed: String },
    /// Nothing in `Accept` is something the operation returns (INPUT-02).
    #[error("not acceptable")]
    NotAcceptable { available: String },
    /// The request does not meet the contract (INPUT-03/04/06/07/09, OUTPUT-05).
    #[error("request does not meet the contract: {}", summary(.0))]
    InvalidRequest(Vec<Issue>),
    /// The upstream response carried a stack trace; it is replaced (OUTPUT-02).
    #[error("upstream response carried a stack trace")]
    UpstreamStackTrace,
    /// The client certificate is missing, expired, or revoked now (TLS-08, TLS-10).
    #[error("client certificate refused: {0}")]
    ClientCertificate(&'static str),
    /// The upstream response could not be inspected or broke its contract.
    #[error("upstream response refused: {0}")]
    UpstreamContract(&'static str),
    /// An operator switched this API or operation off (OPS-03); `reason` is
    /// the operator's, for events only.
    #[error("switched off ({target}): {reason}")]
    SwitchedOff { target: String, reason: String },
    /// An operator switched this application's access off (OPS-04).
    #[error("application `{0}` switched off")]
    ApplicationDisabled(String),
    /// Admin API: no valid admin credential (OPS-03).
    #[error("admin API: {0}")]
    AdminUnauthenticated(&'static str),
    /// Admin API: the administrator's role does not allow this action.
    #[error("admin API: role `{role}` may not {action}")]
    AdminForbidden {
        role: &'static str,
        action: &'static str,
        needs: &'static str,
    },
    /// Admin API: a request the admin plane cannot carry out (no such
    /// application, a conflict, a bad body, the store unavailable, a config
    /// refused on reload): `status` and `code` say which; `errors` lists
    /// each problem found when there are several.
    #[error("admin API: {detail}")]
    AdminRequest {
        status: StatusCode,
        code: &'static str,
        detail: String,
        errors: Vec<String>,
    },
    /// A rate limit or concurrency cap was reached (INPUT-08). `event` is
    /// false for repeats within the key's window: one event per window.
    #[error("{reason}")]
    RateLimited {
        retry_after_s: u64,
        policy: Option<HeaderValue>,
        limit: Option<HeaderValue>,
        reason: &'static str,
        event: bool,
    },
}

fn summary(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| format!("{}{} {}", i.location.as_str(), i.pointer, i.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// How severe a rejection is for the security event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Severity {
    Informational = 1,
    Low = 2,
    Medium = 3,
    High = 4,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
        }
    }
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::AdminRequest { status, .. } => *status,
            Rejection::AmbiguousFraming(_)
            | Rejection::BadPath(_)
            | Rejection::BadHost(_)
            | Rejection::BadCorrelationId
            | Rejection::CredentialInQuery
            | Rejection::SensitiveInUrl { .. }
            | Rejection::InvalidRequest(_)
            | Rejection::BodyUnreadable(_)
            | Rejection::WebSocketHandshake(_) => StatusCode::BAD_REQUEST,
            Rejection::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            Rejection::UpstreamStackTrace | Rejection::UpstreamContract(_) => {
                StatusCode::BAD_GATEWAY
            }
            Rejection::MissingApiKey
            | Rejection::InvalidApiKey(_)
            | Rejection::MissingToken
            | Rejection::InvalidToken(_)
            | Rejection::ClientCertificate(_) => StatusCode::UNAUTHORIZED,
            Rejection::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Rejection::StoreUnavailable(_)
            | Rejection::Overloaded(_)
            | Rejection::NotReady(_)
            | Rejection::NoAvailableTarget(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::SwitchedOff { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::ApplicationDisabled(_) | Rejection::AdminForbidden { .. } => {
                StatusCode::FORBIDDEN
            }
            Rejection::AdminUnauthenticated(_) => StatusCode::UNAUTHORIZED,
            Rejection::UnknownRoute => StatusCode::NOT_FOUND,
            Rejection::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Rejection::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Rejection::MisdirectedHost => StatusCode::MISDIRECTED_REQUEST,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::CorsOriginDenied | Rejection::WebSocketOrigin => StatusCode::FORBIDDEN,
            Rejection::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            Rejection::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Rejection::UpstreamFault(s) => *s,
            Rejection::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Whether this rejection raises a security event (all do, except
    /// repeated throttling within one window).
    pub fn emits_event(&self) -> bool {
        !matches!(self, Rejection::RateLimited { event: false, .. })
    }

    /// Stable machine-readable reason; also the last part of the problem `type`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::AdminRequest { code, .. } => code,
            Rejection::AmbiguousFraming(_) => "ambiguous-framing",
            Rejection::BadPath(_) => "bad-path",
            Rejection::BadHost(_) => "bad-host",
            Rejection::MisdirectedHost => "misdirected-request",
            Rejection::Overloaded(_) => "overloaded",
            Rejection::NotReady(_) => "not-ready",
            Rejection::NoAvailableTarget(_) => "no-available-target",
            Rejection::HeadersTooLarge { .. } => "header-fields-too-large",
            Rejection::UriTooLong { .. } => "uri-too-long",
            Rejection::BadCorrelationId => "bad-correlation-id",
            Rejection::UnknownRoute => "unknown-route",
            Rejection::MethodNotAllowed { .. } => "method-not-allowed",
            Rejection::CredentialInQuery => "credential-in-query",
            Rejection::MissingApiKey => "missing-api-key",
            Rejection::InvalidApiKey(_) => "invalid-api-key",
            Rejection::MissingToken => "missing-token",
            Rejection::InvalidToken(_) => "invalid-token",
            Rejection::InsufficientScope { .. } => "insufficient-scope",
            Rejection::StoreUnavailable(_) => "store-unavailable",
            Rejection::PayloadTooLarge { .. } => "payload-too-large",
            Rejection::BodyUnreadable(_) => "body-unreadable",
            Rejection::CorsOriginDenied => "cors-origin-denied",
            Rejection::WebSocketHandshake(_) => "websocket-handshake",
            Rejection::WebSocketOrigin => "websocket-origin-denied",
            Rejection::UpstreamUnavailable(_) => "upstream-unavailable",
            Rejection::UpstreamTimeout => "upstream-timeout",
            Rejection::UpstreamFault(_) => "upstream-error",
            Rejection::SensitiveInUrl { .. } => "sensitive-data-in-url",
            Rejection::UnsupportedMediaType { .. } => "unsupported-media-type",
            Rejection::NotAcceptable { .. } => "not-acceptable",
            Rejection::InvalidRequest(_) => "invalid-request",
            Rejection::UpstreamStackTrace => "upstream-stack-trace",
            Rejection::UpstreamContract(_) => "upstream-contract",
            Rejection::ClientCertificate(_) => "client-certificate-refused",
            Rejection::RateLimited { .. } => "rate-limited",
            Rejection::SwitchedOff { .. } => "switched-off",
            Rejection::ApplicationDisabled(_) => "application-disabled",
            Rejection::AdminUnauthenticated(_) => "admin-unauthenticated",
            Rejection::AdminForbidden { .. } => "admin-forbidden",
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            Rejection::AdminRequest { .. } => Severity::Informational,
            Rejection::AmbiguousFraming(_)
            | Rejection::BadPath(_)
            | Rejection::InvalidToken(_)
            | Rejection::CredentialInQuery
            | Rejection::SensitiveInUrl { .. }
            | Rejection::UpstreamStackTrace
            | Rejection::ClientCertificate(_)
            | Rejection::StoreUnavailable(_)
            | Rejection::Overloaded(_) => Severity::High,
            Rejection::UpstreamContract(_) => Severity::Medium,
            Rejection::UnsupportedMediaType { .. }
            | Rejection::NotAcceptable { .. }
            | Rejection::InvalidRequest(_) => Severity::Low,
            Rejection::InvalidApiKey(_) | Rejection::InsufficientScope { .. } => Severity::Medium,
            Rejection::MissingApiKey | Rejection::MissingToken => Severity::Low,
            Rejection::CorsOriginDenied
            | Rejection::WebSocketOrigin
            | Rejection::NoAvailableTarget(_)
            | Rejection::UpstreamUnavailable(_)
            | Rejection::UpstreamTimeout
            | Rejection::UpstreamFault(_) => Severity::Medium,
            Rejection::UnknownRoute
            | Rejection::MethodNotAllowed { .. }
            | Rejection::PayloadTooLarge { .. }
            | Rejection::BadHost(_)
            | Rejection::MisdirectedHost
            | Rejection::HeadersTooLarge { .. }
            | Rejection::UriTooLong { .. }
            | Rejection::BadCorrelationId
            | Rejection::WebSocketHandshake(_) => Severity::Low,
            Rejection::BodyUnreadable(_) | Rejection::NotReady(_) => Severity::Informational,
            Rejection::RateLimited { .. } => Severity::Medium,
            Rejection::SwitchedOff { .. } => Severity::Low,
            Rejection::ApplicationDisabled(_) => Severity::Medium,
            Rejection::AdminUnauthenticated(_) | Rejection::AdminForbidden { .. } => Severity::High,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Rejection::AdminRequest { status, .. } => status.canonical_reason().unwrap_or("Error"),
            Rejection::AmbiguousFraming(_) => "Ambiguous message framing",
            Rejection::BadPath(_) => "Path not accepted",
            Rejection::BadHost(_) => "Invalid host",
            Rejection::MisdirectedHost => "Misdirected request",
            Rejection::Overloaded(_) | Rejection::NotReady(_) | Rejection::NoAvailableTarget(_) => {
                "Service unavailable"
            }
            Rejection::HeadersTooLarge { .. } => "Request header fields too large",
            Rejection::UriTooLong { .. } => "URI too long",
            Rejection::BadCorrelationId => "Invalid correlation id",
            Rejection::UnknownRoute => "Not found",
            Rejection::MethodNotAllowed { .. } => "Method not allowed",
            Rejection::CredentialInQuery => "Credential in the query string",
            Rejection::MissingApiKey
            | Rejection::InvalidApiKey(_)
            | Rejection::MissingToken
            | Rejection::InvalidToken(_)
            | Rejection::ClientCertificate(_) => "Unauthorized",
            Rejection::InsufficientScope { .. } => "Forbidden",
            Rejection::StoreUnavailable(_) => "Service unavailable",
            Rejection::PayloadTooLarge { .. } => "Payload too large",
            Rejection::BodyUnreadable(_) => "Request body incomplete",
            Rejection::CorsOriginDenied | Rejection::WebSocketOrigin => "Origin not allowed",
            Rejection::WebSocketHandshake(_) => "Not a WebSocket handshake",
            Rejection::UpstreamUnavailable(_) => "Bad gateway",
            Rejection::UpstreamTimeout => "Gateway timeout",
            Rejection::UpstreamFault(_) => "Upstream error",
            Rejection::SensitiveInUrl { .. } => "Sensitive data in the URL",
            Rejection::UnsupportedMediaType { .. } => "Unsupported media type",
            Rejection::NotAcceptable { .. } => "Not acceptable",
            Rejection::InvalidRequest(_) => "Invalid request",
            Rejection::UpstreamStackTrace | Rejection::UpstreamContract(_) => "Bad gateway",
            Rejection::RateLimited { .. } => "Too many requests",
            Rejection::SwitchedOff { .. } => "Switched off",
            Rejection::ApplicationDisabled(_) | Rejection::AdminForbidden { .. } => "Forbidden",
            Rejection::AdminUnauthenticated(_) => "Unauthorized",
        }
    }

    /// What the caller can do about it; never internal detail.
    pub fn detail(&self, correlation_header: &str) -> String {
        match self {
            Rejection::AdminRequest { detail, .. } => detail.clone(),
            Rejection::AmbiguousFraming(_) => "Send either Content-Length or Transfer-Encoding, not both, at most one Content-Length value, and end every header line with CRLF.".into(),
            Rejection::BadPath(e) => format!("The request path {}. Send a plain path without dot segments, encoded separators, encoded dots or double encoding.", e.client_reason()),
            Rejection::BadHost(_) => "Send exactly one Host header holding the host name of this API (host or host:port), the same as the authority of the request target if it has one.".into(),
            Rejection::MisdirectedHost => "This server does not serve the requested host. Check the URL's host name.".into(),
            Rejection::Overloaded(_) => "The gateway is busy and did not process the request. Retry later.".into(),
            Rejection::NoAvailableTarget(_) => "No instance of the service behind this API is available right now. Retry later; quote the correlation id if it persists.".into(),
            Rejection::NotReady(why) => format!("This instance takes no traffic now ({why}); send it to another one."),
            Rejection::HeadersTooLarge { bytes, fields } => format!("Send at most {fields} header fields and {bytes} bytes of them."),
            Rejection::UriTooLong { limit } => format!("The path and query must not exceed {limit} bytes; send large parameters in the body."),
            Rejection::BadCorrelationId => format!("The {correlation_header} header must be 1 to 128 characters of letters, digits, '.', '_' or '-'; omit it to have one generated."),
            Rejection::UnknownRoute => "No API operation is declared at this path. Check the path against the API documentation.".into(),
            Rejection::MethodNotAllowed { .. } => "This path does not accept this method; the Allow header lists the methods it accepts.".into(),
            Rejection::CredentialInQuery => "Credentials are never accepted in the URL. Send the API key in its header and the token in the Authorization header; rotate a key that was sent in a URL.".into(),
            Rejection::MissingApiKey => "This operation needs the calling application's API key in its header, or a client certificate bound to the application.".into(),
            Rejection::InvalidApiKey(_) => "The API key was not accepted. Check that it is current and that its application is active.".into(),
            Rejection::MissingToken => "This operation needs a bearer token: send `Authorization: Bearer <token>`.".into(),
            Rejection::InvalidToken(_) => "The bearer token was not accepted. Obtain a new token and retry.".into(),
            Rejection::InsufficientScope { scope, .. } if !scope.is_empty() => format!("The caller is not allowed to perform this operation. It needs the scopes: {scope}."),
            Rejection::InsufficientScope { .. } => "The caller is not allowed to perform this operation.".into(),
            Rejection::StoreUnavailable(_) => "The request could not be authorized right now. Retry later; quote the correlation id if it persists.".into(),
            Rejection::PayloadTooLarge { limit } => format!("The request body must not exceed {limit} bytes."),
            Rejection::BodyUnreadable(_) => "The request body ended early or arrived too slowly; send the complete body.".into(),
            Rejection::CorsOriginDenied => "This origin is not allowed to call this API from a browser.".into(),
            Rejection::WebSocketOrigin => "This origin is not allowed to open a WebSocket on this API from a browser.".into(),
            Rejection::WebSocketHandshake(fix) => format!("This operation is a WebSocket: {fix}."),
            Rejection::UpstreamUnavailable(_) => "The service behind this API could not be reached. Retry later; quote the correlation id if it persists.".into(),
            Rejection::UpstreamTimeout => "The service behind this API did not answer in time. Retry later; quote the correlation id if it persists.".into(),
            Rejection::UpstreamFault(_) => "The service behind this API failed to handle the request. Quote the correlation id when reporting it.".into(),
            Rejection::SensitiveInUrl { location, what } => format!("The request {location} carries sensitive data ({what}). URLs end up in logs and browser history: send such values in a header or the request body, and rotate any secret that was sent in a URL."),
            Rejection::UnsupportedMediaType { allowed } if allowed.is_empty() => "This operation takes no request body; send none.".into(),
            Rejection::UnsupportedMediaType { allowed } => format!("Send the body as one of: {allowed} (uncompressed, with a matching Content-Type)."),
            Rejection::NotAcceptable { available } => format!("This operation answers with: {available}. Accept one of them."),
            Rejection::InvalidRequest(_) => "The request does not match the API contract; each entry of `errors` names a field and what is wrong with it.".into(),
            Rejection::ClientCertificate(_) => "The client certificate of this connection is no longer accepted (expired or revoked). Reconnect with a current certificate.".into(),
            Rejection::UpstreamStackTrace | Rejection::UpstreamContract(_) => "The service behind this API answered with something this gateway does not pass on. Quote the correlation id when reporting it.".into(),
            Rejection::SwitchedOff { .. } => "This API operation is switched off for now. Retry later; quote the correlation id if you need to know more.".into(),
            Rejection::ApplicationDisabled(_) => "This application's access is switched off. Ask the API's operators to re-enable it.".into(),
            Rejection::AdminUnauthenticated(_) => "Send an administrator token: `Authorization: Bearer pcadm_…` (created with `portcullis admin create`).".into(),
            Rejection::AdminForbidden { needs, .. } => format!("Your administrator role does not allow this action; it needs the role `{needs}`."),
            Rejection::RateLimited { retry_after_s, .. } => format!("Too many requests for this limit. Retry after {retry_after_s} s (Retry-After); the RateLimit-Policy header states the limits."),
        }
    }

    /// Its RFC 9457 problem body.
    pub fn problem(&self, correlation_id: &str, correlation_header: &str) -> serde_json::Value {
        let mut body = serde_json::json!({
            "type": format!("urn:portcullis:problem:{}", self.code()),
            "title": self.title(),
            "status": self.status().as_u16(),
            "detail": self.detail(correlation_header),
            "correlation_id": correlation_id,
        });
        if let Rejection::AdminRequest { errors, .. } = self
            && !errors.is_empty()
        {
            body["errors"] = serde_json::json!(errors);
        }
        // OUTPUT-05: each offending field by pointer and reason, never its value.
        if let Rejection::InvalidRequest(issues) = self {
            body["errors"] = issues
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "in": i.location.as_str(),
                        "pointer": i.pointer,
                        "reason": i.reason,
                    })
                })
                .collect();
        }
        body
    }

    /// The client-facing response: problem body and the headers due for this
    /// rejection. Hardening headers are added by the caller like for any response.
    pub fn to_response(
        &self,
        correlation_id: &str,
        correlation_header: &str,
    ) -> Response<Full<Bytes>> {
        let status = self.status();
        let body = self.problem(correlation_id, correlation_header);
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            Rejection::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, allow.clone());
            }
            // RFC 6750 §3: the challenge says what was wrong, never why in detail.
            Rejection::MissingToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="portcullis""#),
                );
            }
            Rejection::InvalidToken(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="portcullis", error="invalid_token""#),
                );
            }
            Rejection::MissingApiKey | Rejection::InvalidApiKey(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"APIKey realm="portcullis""#),
                );
            }
            Rejection::RateLimited {
                retry_after_s,
                policy,
                limit,
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
                if let Some(p) = policy {
                    headers.insert(HeaderName::from_static("ratelimit-policy"), p.clone());
                }
                if let Some(l) = limit {
                    headers.insert(HeaderName::from_static("ratelimit"), l.clone());
                }
            }
            Rejection::InsufficientScope { scope, .. } => {
                let v = format!(
                    r#"Bearer realm="portcullis", error="insufficient_scope", scope="{scope}""#
                );
                if let Ok(v) = HeaderValue::from_str(&v) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problem_body_has_stable_type_and_no_internal_detail() {
        let r = Rejection::UpstreamUnavailable("tcp connect error: 10.0.0.7:8443 refused".into());
        let resp = r.to_response("abc", "X-Correlation-ID");
        assert_eq!(resp.status(), 502);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "urn:portcullis:problem:upstream-unavailable");
        assert_eq!(v["status"], 502);
        assert_eq!(v["correlation_id"], "abc");
        assert!(!String::from_utf8_lossy(&body).contains("10.0.0.7"));
    }
}
