//! gRPC pass-through (INPUT-08, OUTPUT-01): on an API marked `grpc`, a
//! call (`content-type: application/grpc`) passes every stage up to the
//! body like any request; its body then streams to the upstream over
//! HTTP/2 as it arrives, each length-prefixed message within
//! `limits.max_body_bytes` ([`Framing`]), with `te: trailers` and the
//! trailers of both directions kept. Unary, client, server and
//! bidirectional streaming all work this way (`stream.rs`).
//!
//! A refused gRPC call is answered the gRPC way (OUTPUT-01): HTTP 200 with
//! `grpc-status` and `grpc-message` and no body ([`refusal`]), the status
//! chosen from the rejection's HTTP status: UNAUTHENTICATED for 401,
//! PERMISSION_DENIED for 403, RESOURCE_EXHAUSTED for 413/429/431,
//! UNAVAILABLE for 502/503, DEADLINE_EXCEEDED for 504. The message is the
//! problem's `detail`; the rejection's security event is raised as for any
//! request.
//!
//! A backend's `grpc-message` that looks like a stack trace, in the
//! answer's head or its trailers, is replaced by `internal error` and
//! raises one security event (OUTPUT-02), as a stack trace in any other
//! answer would ([`scrub`], [`TrailersJudged`]).

use crate::events::{EventSink, SecurityEvent};
use crate::rejection::Rejection;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Replaces a `grpc-message` that looks like a stack trace; whether it did.
pub fn scrub(headers: &mut HeaderMap) -> bool {
    let Some(message) = headers.get("grpc-message") else {
        return false;
    };
    let text = percent_encoding::percent_decode(message.as_bytes()).decode_utf8_lossy();
    if !portcullis_contract::sensitive::looks_like_stack_trace(&text) {
        return false;
    }
    headers.insert("grpc-message", HeaderValue::from_static("internal error"));
    true
}

/// A gRPC answer's body passed on as it comes, its trailers judged
/// ([`scrub`]) before they are sent.
pub struct TrailersJudged {
    inner: Incoming,
    /// The event raised, once, when a `grpc-message` was replaced.
    on_stack_trace: Option<(EventSink, SecurityEvent)>,
}

impl TrailersJudged {
    pub fn new(inner: Incoming, on_stack_trace: (EventSink, SecurityEvent)) -> Self {
        Self {
            inner,
            on_stack_trace: Some(on_stack_trace),
        }
    }
}

impl Body for TrailersJudged {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    if scrub(&mut trailers)
                        && let Some((sink, e)) = this.on_stack_trace.take()
                    {
                        sink.emit(e);
                    }
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a request is a gRPC call (`application/grpc`, `+proto`, …).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= 16
            && v[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(v.get(16), None | Some(b'+' | b';'))
    })
}

/// A message longer than the limit.
#[derive(Debug, thiserror::Error)]
#[error("gRPC message of {0} bytes over limits.max_body_bytes")]
pub struct MessageTooLarge(u64);

/// Follows gRPC's length-prefixed messages (1 flag byte, 4 length bytes,
/// then the message) over the data as it passes.
#[derive(Debug)]
pub struct Framing {
    max: u64,
    /// Bytes of the current message still to pass.
    remaining: u64,
    prefix: [u8; 5],
    prefix_len: usize,
}

impl Framing {
    pub fn new(max: usize) -> Self {
        Self {
            max: max as u64,
            remaining: 0,
            prefix: [0; 5],
            prefix_len: 0,
        }
    }

    /// Follows `data`; refuses at the prefix of a message over the limit.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), MessageTooLarge> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.remaining -= take as u64;
                data = &data[take..];
                continue;
            }
            let take = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let len = u64::from(u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]));
                if len > self.max {
                    return Err(MessageTooLarge(len));
                }
                self.remaining = len;
            }
        }
        Ok(())
    }
}

/// The gRPC status code for a rejection's HTTP status.
pub fn status_for(status: StatusCode) -> u8 {
    match status.as_u16() {
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 | 405 => 12,      // UNIMPLEMENTED
        413 | 429 | 431 => 8, // RESOURCE_EXHAUSTED
        504 => 4,             // DEADLINE_EXCEEDED
        502 | 503 => 14,      // UNAVAILABLE
        400..=499 => 3,       // INVALID_ARGUMENT
        _ => 13,              // INTERNAL
    }
}

/// A refused gRPC call, answered the gRPC way: HTTP 200, `grpc-status`,
/// `grpc-message` (percent-encoded as the protocol requires), no body.
pub fn refusal(
    rejection: &Rejection,
    correlation_id: &str,
    correlation_header: &str,
) -> Response<crate::GatewayBody> {
    let mut problem = rejection.to_response(correlation_id, correlation_header);
    let detail = rejection.detail(correlation_header);
    let code = status_for(problem.status());
    *problem.status_mut() = StatusCode::OK;
    let h = problem.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.remove(header::CONTENT_LENGTH);
    h.insert("grpc-status", HeaderValue::from(u16::from(code)));
    let encoded = percent_encoding::utf8_percent_encode(&detail, GRPC_MESSAGE).to_string();
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        h.insert("grpc-message", v);
    }
    problem.map(|_| http_body_util::Either::Left(http_body_util::Full::default()))
}

/// gRPC's `grpc-message` encoding: printable ASCII except `%` passes.
const GRPC_MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn messages_are_followed_across_any_split_and_the_long_one_refused() {
        let mut stream = message(10);
        stream.extend(message(0));
        stream.extend(message(16));
        for split in 1..stream.len() {
            let mut f = Framing::new(16);
            assert!(f.feed(&stream[..split]).is_ok(), "split {split}");
            assert!(f.feed(&stream[split..]).is_ok(), "split {split}");
            assert_eq!((f.remaining, f.prefix_len), (0, 0));
        }
        let mut f = Framing::new(16);
        let long = message(17);
        assert!(f.feed(&long[..3]).is_ok());
        assert!(f.feed(&long[3..]).is_err(), "refused at its prefix");
    }

    #[test]
    fn grpc_content_types_are_told_apart() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            is_grpc(&h)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(with("Application/GRPC;charset=utf-8"));
        assert!(!with("application/grpc-web"));
        assert!(!with("application/json"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn refusals_carry_the_grpc_status_of_their_http_status() {
        let r = refusal(&Rejection::MissingToken, "c-1", "x-correlation-id");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "16");
        assert_eq!(r.headers()["content-type"], "application/grpc");
        let message = r.headers()["grpc-message"].to_str().unwrap();
        assert!(message.contains("bearer token"), "{message}");
        assert_eq!(status_for(StatusCode::TOO_MANY_REQUESTS), 8);
        assert_eq!(status_for(StatusCode::FORBIDDEN), 7);
        assert_eq!(status_for(StatusCode::SERVICE_UNAVAILABLE), 14);
        assert_eq!(status_for(StatusCode::GATEWAY_TIMEOUT), 4);
    }
}
