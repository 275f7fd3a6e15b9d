//! The request pipeline (AUTHZ-05: every decision on every request), top to
//! bottom in the order of DESIGN.md.
//!
//! Each stage passes the request on or returns a [`Rejection`]; [`handle`]
//! turns a rejection into its problem response and its one security event,
//! and hardens every response, errors included. Authorization completes
//! before the first byte reaches a backend: the upstream stage is the last
//! one that can see the request.

pub mod anomaly;
pub mod content;
pub mod correlation;
pub mod hardening;
pub mod host;
pub mod path;
pub mod request_headers;
pub mod routes;
pub mod throttle;
pub mod upstream;

use crate::events::{EventContext, SecurityEvent};
use crate::identity::IdentityState;
use crate::listener::buffer::BufferShare;
use crate::listener::framing;
use crate::pipeline::correlation::CorrelationId;
use crate::pipeline::request_headers::Forwarding;
use crate::rejection::{Rejection, Severity};
use crate::{ConnInfo, GatewayBody, State};
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use portcullis_config::{AuthPolicy, Limits};
use std::convert::Infallible;
use std::sync::Arc;

/// What the pipeline learned before it decided, for events and CORS.
#[derive(Default)]
struct Decided {
    api: Option<usize>,
    /// The verified identity, forwarded in the gateway-signed context token.
    claims: Option<crate::identity::ClaimSet>,
    operation: Option<Arc<str>>,
    /// The matched route's traffic index.
    route: Option<usize>,
    /// The operation's path template replaces the path in events when a
    /// path parameter is classified `pii` or `secret` (OUTPUT-10).
    redact_path: bool,
    preflight: bool,
}

/// Serves one request on a data-plane listener.
pub async fn handle(
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    request: Request<Incoming>,
) -> Result<Response<GatewayBody>, Infallible> {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    // 2. correlation: decided first so that every answer carries an id.
    let correlation = correlation::from_request(&parts.headers, &state.correlation_header);
    let mut decided = Decided::default();
    let mut body = Some(body);
    let mut buffered = state.buffers.share();
    let result = run(
        &state,
        &conn,
        &parts,
        (&mut body, &mut buffered),
        &correlation,
        &mut decided,
    )
    .await;
    let mut response = match result {
        Ok(mut response) => {
            // What was buffered stays counted until the answer is sent.
            response
                .extensions_mut()
                .insert(crate::listener::buffer::Held(Arc::new(buffered)));
            response
        }
        Err(rejection) => {
            if let Some(unread) = body.take() {
                discard_small_body(unread, &parts.headers).await;
            }
            state.traffic.rejected(rejection.code());
            if matches!(rejection, Rejection::UnknownRoute)
                && let Ok(path) = path::normalize(parts.uri.path())
            {
                state.traffic.shadow(&path);
            }
            reject(&state, &conn, &parts, &correlation, &rejection, &decided)
        }
    };
    // Error answers feed the error-ratio baseline (OPS-02).
    if response.status().as_u16() >= 400
        && let (Some(detector), Some(app), Some(op)) = (
            &state.anomaly,
            decided
                .claims
                .as_ref()
                .and_then(|c| c.application.as_deref()),
            decided.operation.as_deref(),
        )
    {
        detector.error(app, op);
    }
    state.traffic.record(
        state.route_traffic.counters(decided.route),
        response.status().as_u16(),
        started.elapsed(),
    );
    // 11. response hardening, on every response.
    hardening::apply(
        response.headers_mut(),
        &state.response_remove_headers,
        (&state.correlation_header, &correlation.value),
        conn.tls,
    );
    // After a refused or unfollowable HTTP/1 framing nothing more is read
    // from this connection: what follows may be a smuggled request.
    if parts.version < http::Version::HTTP_2 && conn.framing.must_close() {
        response
            .headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    if !decided.preflight
        && let Some(cors) = decided.api.and_then(|i| state.routes.api(i).cors.as_ref())
    {
        hardening::cors_response(
            response.headers_mut(),
            cors,
            parts.headers.get(header::ORIGIN),
        );
    }
    Ok(response)
}

async fn run(
    state: &State,
    conn: &ConnInfo,
    parts: &Parts,
    (body, buffered): (&mut Option<Incoming>, &mut BufferShare),
    correlation: &CorrelationId,
    decided: &mut Decided,
) -> Result<Response<GatewayBody>, Rejection> {
    // Every HTTP/1 request is counted, whatever refuses it, so that the
    // framing verdict on the n-th header block meets the n-th request.
    let framing = conn.framing.check_next();
    // 1. connection re-check: the client certificate against the current CRLs and clock.
    if let Some(tls) = &conn.tls_listener
        && tls.has_client_auth()
    {
        tls.recheck(conn.client_cert.get(), crate::clock::now())?;
    }
    // 2. correlation
    if correlation.refused {
        return Err(Rejection::BadCorrelationId);
    }
    framing?;
    check_head(parts, &state.limits)?;
    framing::check_headers(&parts.headers)?;
    request_headers::refuse_repeated(&parts.headers)?;

    // 3. route: one well-formed host that this listener serves, then the path.
    let host = host::from_request(parts)?;
    if !host::served(host, &conn.hosts) {
        return Err(Rejection::MisdirectedHost);
    }
    let path = path::normalize(parts.uri.path())?;
    // Credentials first (AUTHN-04, the more precise answer), then DATA-01.
    if state.identity.is_some() {
        IdentityState::refuse_query_credentials(parts.uri.query())?;
    }
    content::sensitive_url(&path, parts.uri.query(), &state.sensitive)?;
    if let Some(identity) = &state.identity
        && let Some(response) = counted_failure(
            state,
            conn,
            self_service(identity, (state, conn), parts, &path, (body, buffered)).await,
        )?
    {
        return Ok(response);
    }
    let matched = state.routes.lookup(host, &path)?;
    decided.api = Some(matched.api_index);
    if let Some(cors) = &matched.api.cors
        && hardening::is_preflight(&parts.method, &parts.headers)
    {
        decided.preflight = true;
        let response =
            hardening::preflight(cors, matched.group, &parts.headers, &conn.environment)?;
        return Ok(response.map(|()| Either::Left(Full::default())));
    }
    let route = matched.group.route(&parts.method, &conn.environment)?;
    decided.operation = Some(route.operation.clone());
    decided.route = Some(route.index);
    decided.redact_path = route.contract.as_ref().is_some_and(|op| op.classified_path);

    // 4. kill switch: an API or route an operator switched off (OPS-03).
    if let Some(identity) = &state.identity {
        identity.switched_off(&matched.api.kill_key, &matched.group.kill_key)?;
    }
    // 5. application, 6. token, 7. authorization, per request (AUTHZ-05).
    match &route.auth {
        AuthPolicy::Public => {}
        AuthPolicy::Protected(policy) => {
            // Config validation guarantees identity for protected routes; fail closed anyway.
            let identity = state.identity.as_ref().ok_or_else(|| {
                Rejection::StoreUnavailable("protected route without identity".into())
            })?;
            let peer = conn.client_cert.get();
            state.throttle.before_authentication(conn.remote.ip())?;
            let claims = identity.authenticate(policy, &parts.headers, peer).await;
            decided.claims = Some(counted_failure(state, conn, claims)?);
        }
    }
    // 8. throttle: rate limits by application, subject, route or client;
    // the concurrency slot is taken once the body is read (stage 9) and
    // held until the upstream has answered.
    let mut admitted = state
        .throttle
        .admit(
            &route.limits,
            decided.claims.as_ref(),
            conn.remote.ip(),
            &route.operation,
        )
        .await?;
    // Usage baselines per application × route (OPS-02).
    if let (Some(detector), Some(app)) = (
        &state.anomaly,
        decided
            .claims
            .as_ref()
            .and_then(|c| c.application.as_deref()),
    ) {
        match detector.observe(
            app,
            &route.operation,
            conn.remote.ip(),
            matched.api.tighten_on_anomaly,
            std::time::Instant::now(),
        ) {
            anomaly::Verdict::Normal => {}
            anomaly::Verdict::Started(what) => state.events.emit(SecurityEvent::finding(
                "usage-anomaly",
                Severity::High,
                &what,
                0,
                &event_context(conn, parts, correlation, decided, state),
            )),
            anomaly::Verdict::Refuse => {
                return Err(Rejection::RateLimited {
                    retry_after_s: 1,
                    policy: None,
                    limit: None,
                    reason: "usage anomaly: this application is capped at its usual rate",
                    event: false,
                });
            }
        }
    }

    // 9. content: parameters, Accept, body; what is undeclared is dropped.
    let mut query = parts.uri.query().map(std::borrow::Cow::Borrowed);
    if let Some(op) = &route.contract {
        let path_params: Vec<(&str, &str)> = matched.params.iter().collect();
        let checked = op
            .check_params(&path_params, parts.uri.query(), &parts.headers)
            .map_err(content::violation)?;
        if let Some(q) = checked.query {
            query = (!q.is_empty()).then_some(std::borrow::Cow::Owned(q));
        }
        op.check_accept(&parts.headers)
            .map_err(content::violation)?;
    }
    let mut body = match body.take() {
        Some(b) => read_body(b, &parts.headers, &state.limits, buffered).await?,
        None => Bytes::new(),
    };
    if let Some(op) = &route.contract {
        body = op
            .check_body(&parts.headers, body)
            .map_err(content::violation)?;
    }
    admitted.occupy()?;

    // 10. upstream
    let upstream = &state.upstreams[matched.api.upstream];
    let uri = upstream.uri(
        &path::encode_for_upstream(matched.remainder),
        query.as_deref(),
    )?;
    let mut upstream_request = Request::new(Full::new(body));
    *upstream_request.method_mut() = parts.method.clone();
    *upstream_request.uri_mut() = uri;
    *upstream_request.headers_mut() = request_headers::upstream_headers(
        &parts.headers,
        &state.request_remove_headers,
        |name| {
            route
                .contract
                .as_ref()
                .is_none_or(|op| op.declares_header(name))
        },
        (&state.correlation_header, &correlation.value),
        Forwarding {
            client: conn.remote,
            host,
            tls: conn.tls,
        },
    );
    if let Some(attestor) = &state.attestor
        && let Some(token) = attestor.mint(
            matched.api.upstream,
            decided.claims.as_ref(),
            conn.client_cert.get().map(|c| &c.thumbprint),
            correlation.as_str(),
            decided.operation.as_deref(),
        )?
    {
        upstream_request
            .headers_mut()
            .insert(attestor.header().clone(), token);
    }
    let response = upstream.send(upstream_request).await?;

    // 11. response: upstream error bodies never reach the client.
    if response.status().is_server_error() {
        return Err(Rejection::UpstreamFault(response.status()));
    }
    let (mut head, body) = response.into_parts();
    request_headers::strip_hop_by_hop(&mut head.headers);
    hardening::strip_cors(&mut head.headers);
    let mut report = content::ResponseReport::default();
    let body = content::response(
        route,
        head.status.as_u16(),
        &mut head.headers,
        body,
        (state, buffered),
        &mut report,
    )
    .await?;
    if let Some(found) = report.pii {
        state.events.emit(SecurityEvent::finding(
            "personal-data-in-response",
            Severity::Medium,
            &format!(
                "response of an operation without classification carried a {}",
                found.as_str()
            ),
            head.status.as_u16(),
            &event_context(conn, parts, correlation, decided, state),
        ));
    }
    if let Some((policy, limit)) = admitted.headers {
        head.headers
            .insert(http::HeaderName::from_static("ratelimit-policy"), policy);
        head.headers
            .insert(http::HeaderName::from_static("ratelimit"), limit);
    }
    Ok(Response::from_parts(head, body))
}

/// Most header fields a request may carry.
pub const MAX_HEADERS: usize = 100;
/// Longest request target (path and query) accepted.
pub const MAX_TARGET_BYTES: usize = 8192;

/// The request head within the gateway's limits, refused with a problem
/// body (hyper's own limits are set above these; see `listener`).
fn check_head(parts: &Parts, limits: &Limits) -> Result<(), Rejection> {
    let target = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Err(Rejection::UriTooLong {
            limit: MAX_TARGET_BYTES,
        });
    }
    // Each field as it is sent: `name: value\r\n`.
    let bytes: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if bytes > limits.max_header_bytes || parts.headers.len() > MAX_HEADERS {
        return Err(Rejection::HeadersTooLarge {
            bytes: limits.max_header_bytes,
            fields: MAX_HEADERS,
        });
    }
    Ok(())
}

/// Counts a refused credential against the client's pre-authentication
/// budget (stage 8 comes after authentication, so failures are counted here).
fn counted_failure<T>(
    state: &State,
    conn: &ConnInfo,
    r: Result<T, Rejection>,
) -> Result<T, Rejection> {
    if let Err(
        Rejection::InvalidApiKey(_) | Rejection::InvalidToken(_) | Rejection::ClientCertificate(_),
    ) = &r
    {
        state.throttle.authentication_failed(conn.remote.ip());
    }
    r
}

/// What events say about a request; the path is replaced by the
/// operation's template when a path parameter is classified.
fn event_context<'a>(
    conn: &'a ConnInfo,
    parts: &'a Parts,
    correlation: &'a CorrelationId,
    decided: &'a Decided,
    state: &'a State,
) -> EventContext<'a> {
    let path = match (&decided.operation, decided.redact_path) {
        (Some(op), true) => op.split_once(' ').map_or("", |(_, p)| p),
        _ => parts.uri.path(),
    };
    EventContext {
        correlation_id: correlation.as_str(),
        method: parts.method.as_str(),
        path,
        host: request_host(parts),
        client: conn.remote,
        listener: &conn.listener,
        api: decided.api.map(|i| state.routes.api(i).name.as_str()),
        operation: decided.operation.as_deref(),
    }
}

/// Stage 12, event: one per rejection (except repeated throttling of one
/// key within its window), then the problem response.
fn reject(
    state: &State,
    conn: &ConnInfo,
    parts: &Parts,
    correlation: &CorrelationId,
    rejection: &Rejection,
    decided: &Decided,
) -> Response<GatewayBody> {
    if rejection.emits_event() {
        state.events.emit(SecurityEvent::rejection(
            rejection,
            &event_context(conn, parts, correlation, decided, state),
        ));
    }
    tracing::debug!(
        correlation_id = correlation.as_str(),
        reason = rejection.code(),
        "request rejected"
    );
    rejection
        .to_response(correlation.as_str(), state.correlation_header.as_str())
        .map(Either::Left)
}

/// The gateway's own endpoints: self-service token revocation (AUTHZ-07).
async fn self_service(
    identity: &IdentityState,
    (state, conn): (&State, &ConnInfo),
    parts: &Parts,
    path: &str,
    (body, buffered): (&mut Option<Incoming>, &mut BufferShare),
) -> Result<Option<Response<GatewayBody>>, Rejection> {
    let limits = &state.limits;
    let all = path == identity.config.revoke_all_path;
    if !all && path != identity.config.revocation_path {
        return Ok(None);
    }
    if parts.method != http::Method::POST {
        return Err(Rejection::MethodNotAllowed {
            allow: http::HeaderValue::from_static("POST"),
        });
    }
    IdentityState::refuse_query_credentials(parts.uri.query())?;
    let peer = conn.client_cert.get();
    state.throttle.before_authentication(conn.remote.ip())?;
    if all {
        identity.revoke_all(&parts.headers, peer).await?;
    } else {
        // Credentials first: an anonymous caller gets no body read.
        let caller = identity.revocation_caller(&parts.headers, peer).await?;
        let bytes = match body.take() {
            Some(b) => read_body(b, &parts.headers, limits, buffered).await?,
            None => Bytes::new(),
        };
        identity.revoke(caller, &bytes).await?;
    }
    let mut r = Response::new(Either::Left(Full::new(Bytes::from_static(b"{}"))));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(Some(r))
}

/// Reads and drops a small unread request body before a rejection is sent,
/// so that clients still uploading see the answer instead of a reset
/// (nginx's lingering close, bounded: at most 64 KiB and 1 s).
async fn discard_small_body(body: Incoming, headers: &HeaderMap) {
    const MAX: u64 = 64 * 1024;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if body.is_end_stream() || declared.is_some_and(|n| n > MAX) {
        return;
    }
    let limited = Limited::new(body, MAX as usize);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), limited.collect()).await;
}

/// The host the client addressed, without port (HTTP/2 `:authority` or HTTP/1 `Host`).
pub fn request_host(parts: &Parts) -> &str {
    let authority = parts
        .uri
        .host()
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    strip_port(authority)
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| &h[1..]);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// Reads the whole body within the size and time limits. Bodies are
/// buffered (bounded) so that nothing reaches the upstream before every
/// check on the request has passed. After `body_rate_grace`, a body whose
/// average rate falls below `min_body_bytes_per_s` is refused: a trickle
/// cannot hold a connection and its buffer for the whole read timeout.
async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limits: &Limits,
    buffered: &mut BufferShare,
) -> Result<Bytes, Rejection> {
    let too_large = Rejection::PayloadTooLarge {
        limit: limits.max_body_bytes,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large);
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let started = tokio::time::Instant::now();
    let deadline = started + limits.body_read_timeout;
    let too_slow = || {
        let elapsed = started.elapsed();
        limits.min_body_bytes_per_s > 0 && elapsed > limits.body_rate_grace
    };
    let mut limited = Limited::new(body, limits.max_body_bytes);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total: u64 = 0;
    loop {
        // Wake at least once a second after the grace period to judge the rate.
        let check = (started + limits.body_rate_grace).max(tokio::time::Instant::now())
            + std::time::Duration::from_secs(1);
        match tokio::time::timeout_at(deadline.min(check), limited.frame()).await {
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return Err(Rejection::BodyUnreadable("body read timed out".into()));
            }
            Err(_) => {}
            Ok(None) => break,
            Ok(Some(Err(e))) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(too_large);
            }
            Ok(Some(Err(e))) => return Err(Rejection::BodyUnreadable(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buffered.grow(data.len())?;
                    total += data.len() as u64;
                    chunks.push(data);
                }
            }
        }
        let floor = limits.min_body_bytes_per_s as f64 * started.elapsed().as_secs_f64();
        if too_slow() && (total as f64) < floor {
            return Err(Rejection::BodyUnreadable(format!(
                "body slower than limits.min_body_bytes_per_s ({total} bytes in {:?})",
                started.elapsed()
            )));
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = bytes::BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
            for c in chunks {
                all.extend_from_slice(&c);
            }
            all.freeze()
        }
    })
}

/// The plain-HTTP listener's only answer: a permanent redirect to HTTPS (TLS-05).
pub fn redirect(
    state: &State,
    conn: &ConnInfo,
    https_port: u16,
    request: Request<Incoming>,
) -> Result<Response<GatewayBody>, Infallible> {
    let (parts, _) = request.into_parts();
    let correlation = correlation::from_request(&parts.headers, &state.correlation_header);
    // The host goes into Location: only a well-formed one the listener serves.
    let host = host::from_request(&parts)
        .map_err(Rejection::BadHost)
        .and_then(|h| {
            host::served(h, &conn.hosts)
                .then_some(h)
                .ok_or(Rejection::MisdirectedHost)
        });
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let location = host.and_then(|host| {
        let location = if https_port == 443 {
            format!("https://{host}{target}")
        } else {
            format!("https://{host}:{https_port}{target}")
        };
        http::HeaderValue::from_str(&location)
            .map_err(|_| Rejection::BadHost(host::HostError::Malformed))
    });
    let mut response = match location {
        Ok(location) => {
            let mut r = Response::new(Either::Left(Full::default()));
            *r.status_mut() = http::StatusCode::PERMANENT_REDIRECT;
            r.headers_mut().insert(header::LOCATION, location);
            r
        }
        Err(rejection) => reject(
            state,
            conn,
            &parts,
            &correlation,
            &rejection,
            &Decided::default(),
        ),
    };
    hardening::apply(
        response.headers_mut(),
        &state.response_remove_headers,
        (&state.correlation_header, &correlation.value),
        false,
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn strip_port_handles_ipv4_ipv6_and_names() {
        assert_eq!(super::strip_port("api.example:8443"), "api.example");
        assert_eq!(super::strip_port("api.example"), "api.example");
        assert_eq!(super::strip_port("[::1]:8443"), "::1");
        assert_eq!(super::strip_port("127.0.0.1:1"), "127.0.0.1");
    }
}
