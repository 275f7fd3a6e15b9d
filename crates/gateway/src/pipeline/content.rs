//! Content stages: sensitive data in URLs (DATA-01, stage 3), and what
//! leaves the gateway in a response (stage 11: OUTPUT-02, OUTPUT-10,
//! OUTPUT-13). The request checks themselves are compiled into the
//! contract's [`Operation`](portcullis_contract::Operation).

use crate::pipeline::routes::RouteInfo;
use crate::rejection::Rejection;
use crate::{GatewayBody, State};
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use portcullis_config::SensitiveData;
use portcullis_contract::sensitive::{self, Finding};
use portcullis_contract::{ResponsePlan, ResponseViolation, Violation, media::MediaRange};

/// The contract's verdict as the one rejection type.
pub fn violation(v: Violation) -> Rejection {
    match v {
        Violation::UnsupportedMediaType { allowed } => Rejection::UnsupportedMediaType { allowed },
        Violation::NotAcceptable { available } => Rejection::NotAcceptable { available },
        Violation::Invalid(issues) => Rejection::InvalidRequest(issues),
    }
}

/// DATA-01: parameter names that mark secrets, and values shaped like
/// personal data or credentials, are refused in the path and the query.
pub fn sensitive_url(path: &str, query: Option<&str>, s: &SensitiveData) -> Result<(), Rejection> {
    for segment in path.split('/').filter(|p| !p.is_empty()) {
        if let Some(f) = sensitive::find(segment, &s.patterns) {
            return Err(refused("path", f));
        }
    }
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |raw: &str| {
            percent_encoding::percent_decode_str(&raw.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let name = decode(name);
        if sensitive::is_sensitive_name(&name, &s.names) {
            return Err(Rejection::SensitiveInUrl {
                location: "query",
                what: format!("the parameter `{}` names a secret", printable(&name)),
            });
        }
        for text in [&name, &decode(value)] {
            if let Some(f) = sensitive::find(text, &s.patterns) {
                return Err(refused("query", f));
            }
        }
    }
    Ok(())
}

fn refused(location: &'static str, f: Finding) -> Rejection {
    Rejection::SensitiveInUrl {
        location,
        what: format!("a value shaped like a {}", f.as_str()),
    }
}

/// A client-supplied name made safe to quote: bounded, plain characters only.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect()
}

/// Bytes of an unclassified response scanned for personal data (OUTPUT-13).
/// Stack-trace markers are still searched in the whole body (one linear
/// Aho-Corasick pass, OUTPUT-02).
pub const PII_SCAN_BUDGET: usize = 64 * 1024;

/// What the response stage reports besides a rejection.
#[derive(Debug, Default)]
pub struct ResponseReport {
    /// Personal data seen in a response with no classification (OUTPUT-13).
    pub pii: Option<Finding>,
}

/// Stage 11 for bodies: buffer what can be inspected (bounded), replace
/// stack traces, strip undeclared and classified fields, and scan
/// unclassified responses for personal data. Binary bodies stream through.
pub async fn response(
    route: &RouteInfo,
    status: u16,
    headers: &mut HeaderMap,
    body: Incoming,
    (state, buffered): (&State, &mut crate::listener::buffer::BufferShare),
    report: &mut ResponseReport,
    stack_trace_event: Option<crate::events::SecurityEvent>,
) -> Result<GatewayBody, Rejection> {
    let (max_bytes, read_timeout) = (
        state.limits.max_response_bytes,
        state.limits.body_read_timeout,
    );
    if body.is_end_stream() {
        return Ok(Either::Right(Either::Left(body)));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let plan = plan(route, status, content_type);
    if let Some(event) = stack_trace_event {
        if super::grpc::is_grpc(headers) {
            let judged = super::grpc::TrailersJudged::new(body, (state.events.clone(), event));
            return Ok(Either::Right(Either::Right(judged.boxed())));
        }
        return event_stream(route, (status, plan), headers, body, (state, event));
    }
    // An undeclared answer of a classified operation is read (bounded) only
    // so that a stack trace in it is reported as such; it never passes.
    let (json, spec, undeclared) = match plan {
        ResponsePlan::Inspect { json, spec } => (json, spec, false),
        ResponsePlan::Stream => return Ok(Either::Right(Either::Left(body))),
        ResponsePlan::Undeclared => (false, None, true),
    };
    refuse_encoded(headers)?;
    let bytes = read_bounded(body, (max_bytes, read_timeout), buffered).await?;
    let text = String::from_utf8_lossy(&bytes);
    if sensitive::looks_like_stack_trace(&text) {
        return Err(Rejection::UpstreamStackTrace);
    }
    if undeclared {
        return Err(Rejection::UpstreamContract(
            "answer matches no declared response of an operation whose responses carry classified fields",
        ));
    }
    let mut out: Bytes = bytes.clone();
    match (&route.contract, spec) {
        (Some(op), Some(spec)) if json => match op.filter_response(spec, &bytes, route.allow_pii) {
            Ok(filtered) => {
                if let Some(b) = filtered.body {
                    out = b;
                }
            }
            Err(ResponseViolation::NotJson) => {
                return Err(Rejection::UpstreamContract(
                    "response is not the JSON its contract declares",
                ));
            }
            Err(ResponseViolation::Invalid(_)) => {
                return Err(Rejection::UpstreamContract(
                    "response does not match its schema",
                ));
            }
        },
        _ => {}
    }
    let classified = route
        .contract
        .as_ref()
        .is_some_and(|op| op.classification.is_some());
    if !classified {
        // The report-only scan of unclassified answers reads a bounded
        // prefix: its cost per response is capped whatever the upstream sends.
        let mut end = PII_SCAN_BUDGET.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let scanned = &text[..end];
        report.pii = sensitive::find(scanned, &state.sensitive.patterns);
    }
    headers.remove(header::CONTENT_LENGTH);
    Ok(Either::Left(Full::new(out)))
}

/// A compressed body cannot be inspected: refused rather than passed blind.
fn refuse_encoded(headers: &HeaderMap) -> Result<(), Rejection> {
    if headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Err(Rejection::UpstreamContract(
            "encoded response body cannot be inspected",
        ));
    }
    Ok(())
}

/// Whether an answer is a stream of server-sent events.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(MediaRange::parse)
        .is_some_and(|m| m.kind == "text" && m.subtype == "event-stream")
}

/// A `text/event-stream` answer, passed on event by event (`sse.rs`); the
/// JSON data of each event of an operation with classified fields is
/// filtered like a JSON response.
fn event_stream(
    route: &RouteInfo,
    (status, plan): (u16, ResponsePlan<'_>),
    headers: &mut HeaderMap,
    body: Incoming,
    (state, stack_trace): (&State, crate::events::SecurityEvent),
) -> Result<GatewayBody, Rejection> {
    refuse_encoded(headers)?;
    let filter: Option<super::sse::DataFilter> = match (plan, &route.contract) {
        (ResponsePlan::Undeclared, _) => {
            return Err(Rejection::UpstreamContract(
                "answer matches no declared response of an operation whose responses carry classified fields",
            ));
        }
        (ResponsePlan::Inspect { spec: Some(_), .. }, Some(op)) if op.classification.is_some() => {
            let (op, allow_pii) = (op.clone(), route.allow_pii);
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Some(Box::new(move |data: &[u8]| {
                let ResponsePlan::Inspect {
                    spec: Some(spec), ..
                } = op.response_plan(status, content_type.as_deref())
                else {
                    return None;
                };
                let outcome = op.filter_response(spec, data, allow_pii).ok()?;
                Some(outcome.body.unwrap_or_else(|| Bytes::copy_from_slice(data)))
            }))
        }
        _ => None,
    };
    headers.remove(header::CONTENT_LENGTH);
    Ok(Either::Right(Either::Right(
        super::sse::SseBody::new(
            body,
            (
                state.limits.max_response_bytes,
                state.limits.body_read_timeout,
            ),
            filter,
            (state.events.clone(), stack_trace),
        )
        .boxed(),
    )))
}

/// What stage 11 does with a body: stream it, or read it to inspect it.
fn plan<'o>(route: &'o RouteInfo, status: u16, content_type: Option<&str>) -> ResponsePlan<'o> {
    match &route.contract {
        Some(op) => op.response_plan(status, content_type),
        None => match content_type.and_then(MediaRange::parse) {
            Some(m) if !m.is_textual() => ResponsePlan::Stream,
            m => ResponsePlan::Inspect {
                json: m.is_some_and(|m| m.is_json()),
                spec: None,
            },
        },
    }
}

/// The whole upstream body, within `limits.max_response_bytes`, the read
/// timeout and the buffering budget.
async fn read_bounded(
    body: Incoming,
    (max_bytes, read_timeout): (usize, std::time::Duration),
    buffered: &mut crate::listener::buffer::BufferShare,
) -> Result<Bytes, Rejection> {
    match tokio::time::timeout(
        read_timeout,
        collect_within(Limited::new(body, max_bytes), buffered),
    )
    .await
    {
        Err(_) => Err(Rejection::UpstreamTimeout),
        Ok(Err(Collect::Refused(r))) => Err(r),
        Ok(Err(Collect::Body(e))) if e.downcast_ref::<LengthLimitError>().is_some() => Err(
            Rejection::UpstreamContract("response larger than limits.max_response_bytes"),
        ),
        Ok(Err(Collect::Body(e))) => Err(Rejection::UpstreamUnavailable(e.to_string())),
        Ok(Ok(b)) => Ok(b),
    }
}

enum Collect {
    Refused(Rejection),
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// Collects a body, counting every frame against the buffering budget.
async fn collect_within(
    mut body: Limited<Incoming>,
    buffered: &mut crate::listener::buffer::BufferShare,
) -> Result<Bytes, Collect> {
    let mut chunks: Vec<Bytes> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Collect::Body)?;
        if let Ok(data) = frame.into_data() {
            buffered.grow(data.len()).map_err(Collect::Refused)?;
            chunks.push(data);
        }
    }
    // One chunk (the usual small answer) is passed on without a copy.
    if chunks.len() <= 1 {
        return Ok(chunks.pop().unwrap_or_default());
    }
    let mut all = bytes::BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for c in chunks {
        all.extend_from_slice(&c);
    }
    Ok(all.freeze())
}
