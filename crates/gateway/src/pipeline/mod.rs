//! The request pipeline (AUTHZ-05: every decision on every request), top to
//! bottom in the order of DESIGN.md.
//!
//! [`run`] is the list of stages, one call each; each stage lives in its
//! own file (`head`, `route`, `self_service`, `access`, `throttle::stage`,
//! `contract`, `forward`, `response`) and passes the request on or returns
//! a [`Rejection`]. [`handle`] turns a rejection into its problem response
//! and its one security event (stage 12), and hardens every response,
//! errors included. Authorization completes before the first byte reaches
//! a backend: the upstream stage is the last one that can see the request.

pub mod access;
pub mod anomaly;
pub mod call;
pub mod content;
pub mod contract;
pub mod correlation;
pub mod forward;
pub mod grpc;
pub mod hardening;
pub mod head;
pub mod host;
pub mod path;
pub mod request_headers;
pub mod response;
pub mod route;
pub mod routes;
pub mod self_service;
pub mod sse;
pub mod stream;
pub mod targets;
pub mod throttle;
pub mod trace;
pub mod upstream;
pub mod websocket;

use crate::events::SecurityEvent;
use crate::listener::buffer::Held;
use crate::pipeline::call::{Call, Decided, Stage, event_context};
use crate::pipeline::correlation::CorrelationId;
use crate::pipeline::route::Selected;
use crate::rejection::Rejection;
use crate::{ConnInfo, GatewayBody, State};
use http::header;
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;

/// Serves one request on a data-plane listener.
pub async fn handle(
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    request: Request<Incoming>,
) -> Result<Response<GatewayBody>, Infallible> {
    let started = std::time::Instant::now();
    let (mut parts, body) = request.into_parts();
    // Kept only for a WebSocket route's handshake; otherwise dropped unused.
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    // 2. correlation: decided first so that every answer carries an id.
    let correlation = correlation::from_request(&parts.headers, &state.correlation_header);
    let mut call = Call {
        state: &state,
        conn: &conn,
        parts: &parts,
        correlation: &correlation,
        trace: trace::from_request(&parts.headers, state.trace_start, state.spans.is_some()),
        body: Some(body),
        upgrade,
        buffered: state.buffers.share(),
        decided: Decided::default(),
        clock: (state.access_log.is_some() || state.spans.is_some()).then_some(started),
    };
    let result = run(&mut call).await;
    let Call {
        body,
        buffered,
        decided,
        trace,
        ..
    } = call;
    let mut refused = None;
    let mut response = match result {
        Ok(mut response) => {
            // What was buffered stays counted until the answer is sent.
            response.extensions_mut().insert(Held(Arc::new(buffered)));
            response
        }
        Err(rejection) => {
            refused = Some(rejection.code());
            if let Some(unread) = body {
                contract::discard_small_body(unread, &parts.headers).await;
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
    if let Some(log) = &state.access_log {
        log.record(access_entry(
            (&state, &conn, &parts),
            (&correlation, trace.as_ref(), &decided),
            (&response, refused),
            started.elapsed(),
        ));
    }
    if let (Some(spans), Some(trace)) = (&state.spans, &trace) {
        spans.record(request_span(
            (&state, &conn, &parts),
            (&correlation, trace, &decided),
            (&response, refused),
            started.elapsed(),
        ));
    }
    Ok(response)
}

/// The gateway's span of a request (`events/otlp.rs`): what the access log
/// says, as span attributes.
fn request_span<'a>(
    (state, conn, parts): (&'a State, &'a ConnInfo, &'a Parts),
    (correlation, trace, decided): (&'a CorrelationId, &'a trace::TraceContext, &'a Decided),
    (response, rejection): (&Response<GatewayBody>, Option<&'static str>),
    took: std::time::Duration,
) -> crate::events::otlp::RequestSpan<'a> {
    use opentelemetry::KeyValue;
    let ctx = call::event_context(conn, parts, correlation, decided, state);
    let status = response.status().as_u16();
    let mut attributes = vec![
        KeyValue::new("http.request.method", ctx.method.to_owned()),
        KeyValue::new("url.path", ctx.path.to_owned()),
        KeyValue::new("http.response.status_code", i64::from(status)),
        KeyValue::new("portcullis.correlation_id", ctx.correlation_id.to_owned()),
        KeyValue::new("portcullis.listener", ctx.listener.to_owned()),
    ];
    let optional = [
        ("portcullis.api", ctx.api.map(str::to_owned)),
        ("portcullis.operation", ctx.operation.map(str::to_owned)),
        ("portcullis.rejection", rejection.map(str::to_owned)),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            attributes.push(KeyValue::new(key, v));
        }
    }
    for (stage, us) in decided.stages.reached() {
        attributes.push(KeyValue::new(
            format!("portcullis.stage.{stage}_us"),
            i64::from(us),
        ));
    }
    if let Some(served) = response.extensions().get::<upstream::Served>() {
        attributes.push(KeyValue::new(
            "portcullis.upstream.target",
            served.target.to_string(),
        ));
        attributes.push(KeyValue::new(
            "portcullis.upstream.duration_us",
            i64::try_from(served.elapsed.as_micros()).unwrap_or(i64::MAX),
        ));
    }
    let ended = std::time::SystemTime::now();
    crate::events::otlp::RequestSpan {
        trace,
        name: ctx.operation.unwrap_or(ctx.method),
        started: ended - took,
        ended,
        attributes,
        error: rejection.is_some() || status >= 500,
    }
}

/// The access-log line of a request (`events/access.rs`): nothing from its
/// headers, query or body; the path as security events give it.
fn access_entry(
    (state, conn, parts): (&State, &ConnInfo, &Parts),
    (correlation, trace, decided): (&CorrelationId, Option<&trace::TraceContext>, &Decided),
    (response, rejection): (&Response<GatewayBody>, Option<&'static str>),
    took: std::time::Duration,
) -> crate::events::access::AccessEntry {
    let ctx = call::event_context(conn, parts, correlation, decided, state);
    let served = response.extensions().get::<upstream::Served>();
    let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    crate::events::access::AccessEntry {
        time: crate::clock::now_ms(),
        correlation_id: ctx.correlation_id.to_owned(),
        trace_id: trace.map(|t| t.trace_id().to_owned()),
        listener: ctx.listener.to_owned(),
        client: ctx.client.ip(),
        method: ctx.method.to_owned(),
        path: ctx.path.to_owned(),
        api: ctx.api.map(str::to_owned),
        operation: ctx.operation.map(str::to_owned),
        application: decided.claims.as_ref().and_then(|c| c.application.clone()),
        status: response.status().as_u16(),
        rejection,
        bytes: http_body::Body::size_hint(response.body()).exact(),
        duration_us: micros(took),
        upstream_us: served.map(|s| micros(s.elapsed)),
        upstream_target: served.map(|s| s.target.to_string()),
        stages_us: decided.stages,
    }
}

/// The stages, one call each, in checklist order. Each passes the request
/// on or returns the [`Rejection`] that [`handle`] answers.
async fn run(call: &mut Call<'_>) -> Result<Response<GatewayBody>, Rejection> {
    // 1. connection re-check, 2. correlation; framing and the request head.
    head::check(call)?;
    // 3. route: host, path and URL; the gateway's own endpoint or the route.
    let target = route::target(call)?;
    let (matched, route) = match route::select(call, &target)? {
        Selected::Route(matched, route) => (matched, route),
        Selected::Preflight(response) => return Ok(response),
        Selected::Own(endpoint) => return self_service::serve(call, endpoint).await,
    };
    call.mark(Stage::Route);
    // 4. kill switch, 5. application, 6. token, 7. authorization.
    access::check(call, &matched, route).await?;
    call.mark(Stage::Access);
    // 8. throttle: rate limits and usage baselines.
    let mut admitted = throttle::stage::admit(call, &matched, route).await?;
    call.mark(Stage::Throttle);
    // 9. contract: parameters, Accept, the body; then the concurrency slot.
    // A body nothing needs to read streams to the upstream instead (`stream.rs`).
    let streams = stream::mode(call, &matched, route)?;
    let (query, body) = contract::check(call, &matched, route, streams.is_none()).await?;
    admitted.occupy()?;
    call.mark(Stage::Contract);
    // 10. upstream; a WebSocket route's handshake opens a relayed socket.
    let at = (&target, &matched, route);
    if let Some(socket) = &route.websocket {
        return websocket::open(call, at, socket, query.as_deref(), admitted).await;
    }
    let response = if let Some(mode) = streams {
        stream::forward(call, at, query.as_deref(), mode).await?
    } else {
        forward::forward(call, at, query.as_deref(), body).await?
    };
    call.mark(Stage::Upstream);
    // 11. response
    let response = response::finish(call, route, response, admitted).await?;
    call.mark(Stage::Response);
    Ok(response)
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
    // A gRPC client reads its answer from `grpc-status`, whatever the route.
    if grpc::is_grpc(&parts.headers) {
        return grpc::refusal(
            rejection,
            correlation.as_str(),
            state.correlation_header.as_str(),
        );
    }
    rejection
        .to_response(correlation.as_str(), state.correlation_header.as_str())
        .map(Either::Left)
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
