//! Stage 10, upstream (AUTHN-11, DATA-02, DATA-04, DATA-05, AUTHN-09, INPUT-06): the request
//! the backend receives, assembled only after every check has passed: the
//! header set the contract declares, forwarding headers the gateway
//! decides, the W3C trace context, the gateway-signed context token, then sent on the upstream's
//! pooled, verified connection (`upstream.rs`).

use crate::pipeline::call::Call;
use crate::pipeline::request_headers::{self, Forwarding};
use crate::pipeline::route::Target;
use crate::pipeline::routes::{PathMatch, RouteInfo};
use crate::pipeline::trace;
use crate::pipeline::upstream::Outgoing;
use crate::rejection::Rejection;
use bytes::Bytes;
use http::Response;
use hyper::body::Incoming;

/// Stage 10: the upstream's answer (its head; the body is read in stage 11).
pub async fn forward(
    call: &Call<'_>,
    (target, matched, route): (&Target<'_>, &PathMatch<'_>, &RouteInfo),
    query: Option<&str>,
    body: Bytes,
) -> Result<Response<Incoming>, Rejection> {
    let state = call.state;
    let upstream = &state.upstreams[matched.api.upstream];
    let path_and_query = upstream.path_and_query(matched.remainder, query)?;
    let headers = upstream_headers(call, target, matched, route)?;
    upstream
        .send(Outgoing {
            method: call.parts.method.clone(),
            path_and_query,
            headers,
            body,
            report_served: state.access_log.is_some(),
            affinity: upstream.affinity(&call.parts.headers),
        })
        .await
}

/// The header set the backend receives: what the contract declares of the
/// client's, the forwarding headers, the trace context and the context token.
pub fn upstream_headers(
    call: &Call<'_>,
    target: &Target<'_>,
    matched: &PathMatch<'_>,
    route: &RouteInfo,
) -> Result<http::HeaderMap, Rejection> {
    let (state, conn, parts, correlation) = (call.state, call.conn, call.parts, call.correlation);
    let mut headers = request_headers::upstream_headers(
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
            host: target.host,
            tls: conn.tls,
        },
    );
    if let Some(t) = &call.trace {
        headers.insert(trace::TRACEPARENT, t.traceparent.clone());
        if let Some(tracestate) = &t.tracestate {
            headers.insert(trace::TRACESTATE, tracestate.clone());
        }
    }
    if let Some(attestor) = &state.attestor
        && let Some(token) = attestor.mint(
            matched.api.upstream,
            call.decided.claims.as_ref(),
            conn.client_cert.get().map(|c| &c.thumbprint),
            correlation.as_str(),
            call.decided.operation.as_deref(),
        )?
    {
        headers.insert(attestor.header().clone(), token);
    }
    Ok(headers)
}
