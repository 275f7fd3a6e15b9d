//! Stage 11, response (OUTPUT-02, OUTPUT-04, OUTPUT-10, OUTPUT-13,
//! OUTPUT-14, INPUT-08): an upstream 5xx never reaches the client;
//! hop-by-hop and upstream CORS headers are dropped; the body is checked
//! and filtered against the contract (`content.rs`); personal data in an
//! unclassified response raises one event; the throttle's `RateLimit`
//! headers are added. Hardening headers follow in `super::handle`, on every
//! response.

use crate::GatewayBody;
use crate::events::SecurityEvent;
use crate::pipeline::call::Call;
use crate::pipeline::routes::RouteInfo;
use crate::pipeline::throttle::Admitted;
use crate::pipeline::{content, grpc, hardening, request_headers};
use crate::rejection::{Rejection, Severity};
use http::Response;
use hyper::body::Incoming;

/// Stage 11: what the client receives from the upstream's answer. The
/// concurrency slot in `admitted` is freed when this returns.
pub async fn finish(
    call: &mut Call<'_>,
    route: &RouteInfo,
    response: Response<Incoming>,
    admitted: Admitted,
) -> Result<Response<GatewayBody>, Rejection> {
    let state = call.state;
    if response.status().is_server_error() {
        return Err(Rejection::UpstreamFault(response.status()));
    }
    let (mut head, body) = response.into_parts();
    request_headers::strip_hop_by_hop(&mut head.headers);
    hardening::strip_cors(&mut head.headers);
    let mut report = content::ResponseReport::default();
    // Server-sent events and gRPC trailers are judged as they pass; the
    // event a replaced stack trace raises is made now, while the request
    // is at hand.
    let grpc = grpc::is_grpc(&head.headers);
    let judged = if grpc {
        Some("a gRPC status message looked like a stack trace; `internal error` replaced it")
    } else {
        content::is_event_stream(&head.headers)
            .then_some("a server-sent event looked like a stack trace; an error event replaced it")
    };
    let judged = judged.map(|what| {
        SecurityEvent::finding(
            Rejection::UpstreamStackTrace.code(),
            Rejection::UpstreamStackTrace.severity(),
            what,
            head.status.as_u16(),
            &call.event_context(),
        )
    });
    if grpc
        && grpc::scrub(&mut head.headers)
        && let Some(e) = &judged
    {
        state.events.emit(e.clone());
    }
    let body = content::response(
        route,
        head.status.as_u16(),
        &mut head.headers,
        body,
        (state, &mut call.buffered),
        &mut report,
        judged,
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
            &call.event_context(),
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
