//! One request as the stages see it (OPS-01: what its events say about it).
//!
//! [`Call`] carries what every stage may read (state, connection, head,
//! correlation id) and what the pipeline learns on the way ([`Decided`]),
//! so that each stage is one call in [`super::run`].

use crate::events::EventContext;
use crate::listener::buffer::BufferShare;
use crate::pipeline::correlation::CorrelationId;
use crate::rejection::Rejection;
use crate::{ConnInfo, State};
use http::header;
use http::request::Parts;
use hyper::body::Incoming;
use std::sync::Arc;

/// One request on its way through the stages.
pub struct Call<'a> {
    pub state: &'a State,
    pub conn: &'a ConnInfo,
    pub parts: &'a Parts,
    pub correlation: &'a CorrelationId,
    /// The W3C trace context the upstream receives (`trace.rs`).
    pub trace: Option<crate::pipeline::trace::TraceContext>,
    /// The body, until a stage reads it (or the rejection path drains it).
    pub body: Option<Incoming>,
    /// The client's connection after a WebSocket handshake (HTTP/1.1 only).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// This request's share of the buffered-bytes budget (INPUT-08).
    pub buffered: BufferShare,
    pub decided: Decided,
    /// When the request began; `Some` only while stage timings are kept
    /// (an access log or span export is configured).
    pub clock: Option<std::time::Instant>,
}

/// The pipeline's stages, as the access log and spans time them.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Route,
    Access,
    Throttle,
    Contract,
    Upstream,
    Response,
}

/// When each stage ended, in microseconds after the request began; `None`
/// for a stage the request did not reach.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Stages {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<u32>,
}

impl Stages {
    /// Each reached stage with its name, in order.
    pub fn reached(&self) -> impl Iterator<Item = (&'static str, u32)> {
        [
            ("route", self.route),
            ("access", self.access),
            ("throttle", self.throttle),
            ("contract", self.contract),
            ("upstream", self.upstream),
            ("response", self.response),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
    }
}

impl Call<'_> {
    /// Notes that `stage` ended now (when stage timings are kept).
    pub fn mark(&mut self, stage: Stage) {
        let Some(clock) = self.clock else {
            return;
        };
        let us = Some(u32::try_from(clock.elapsed().as_micros()).unwrap_or(u32::MAX));
        let s = &mut self.decided.stages;
        match stage {
            Stage::Route => s.route = us,
            Stage::Access => s.access = us,
            Stage::Throttle => s.throttle = us,
            Stage::Contract => s.contract = us,
            Stage::Upstream => s.upstream = us,
            Stage::Response => s.response = us,
        }
    }

    /// What events say about this request.
    pub fn event_context(&self) -> EventContext<'_> {
        event_context(
            self.conn,
            self.parts,
            self.correlation,
            &self.decided,
            self.state,
        )
    }

    /// Counts a refused credential against the client's pre-authentication
    /// budget; see [`counted_failure`].
    pub fn counted<T>(&self, r: Result<T, Rejection>) -> Result<T, Rejection> {
        counted_failure(self.state, self.conn, r)
    }
}

/// What the pipeline learned before it decided, for events and CORS.
#[derive(Default)]
pub struct Decided {
    pub api: Option<usize>,
    /// The verified identity, forwarded in the gateway-signed context token.
    pub claims: Option<crate::identity::ClaimSet>,
    pub operation: Option<Arc<str>>,
    /// The matched route's traffic index.
    pub route: Option<usize>,
    /// The operation's path template replaces the path in events when a
    /// path parameter is classified `pii` or `secret` (OUTPUT-10).
    pub redact_path: bool,
    pub preflight: bool,
    /// Stage timings, for the access log and spans.
    pub stages: Stages,
}

/// Counts a refused credential against the client's pre-authentication
/// budget (stage 8 comes after authentication, so failures are counted here).
pub fn counted_failure<T>(
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
pub fn event_context<'a>(
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
