//! Streamed request bodies (INPUT-08): a body nothing needs to read passes
//! to the upstream as it arrives instead of being read whole in stage 9 —
//! gRPC calls (`grpc.rs`), and on APIs with `request_streaming`, the bodies
//! of hand-written routes and of operations whose declared media type is
//! not JSON. Every check on the request head has passed before the first
//! byte is sent; the limits then apply as bytes flow ([`StreamedBody`]):
//! the streamed size (a gRPC message at its length prefix), and for
//! uploads, no bytes for `limits.body_read_timeout`. Past a limit the
//! upstream request is cut, and the client gets 413 (or 400 for a stall)
//! when no answer has begun. Nothing is buffered beyond the frame in
//! flight: the client is read no faster than the upstream takes the body.

use crate::pipeline::call::Call;
use crate::pipeline::grpc::{self, Framing};
use crate::pipeline::route::Target;
use crate::pipeline::routes::{PathMatch, RouteInfo};
use crate::pipeline::{content, forward};
use crate::rejection::Rejection;
use bytes::{Buf, Bytes};
use http::Response;
use http::header::{self, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// How a request body streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A gRPC call: HTTP/2 to the upstream, trailers kept, each message
    /// within `limits.max_body_bytes`, no idle limit (streams may wait).
    Grpc,
    /// An upload: at most `max` bytes, none missing for the read timeout.
    Upload { max: u64 },
}

/// Whether this request's body streams, and how; `None`: it is read whole
/// in stage 9. A declared media type the operation does not take is
/// refused here as stage 9 would.
pub fn mode(
    call: &Call<'_>,
    matched: &PathMatch<'_>,
    route: &RouteInfo,
) -> Result<Option<Mode>, Rejection> {
    let headers = &call.parts.headers;
    if matched.api.grpc && grpc::is_grpc(headers) {
        return Ok(Some(Mode::Grpc));
    }
    let Some(max) = matched.api.stream_bodies_up_to else {
        return Ok(None);
    };
    if call.body.as_ref().is_none_or(Body::is_end_stream) {
        return Ok(None);
    }
    let streams = match &route.contract {
        None => true,
        Some(op) => op.body_streams(headers).map_err(content::violation)?,
    };
    if !streams {
        return Ok(None);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    Ok(Some(Mode::Upload { max }))
}

fn too_large(max: u64) -> Rejection {
    Rejection::PayloadTooLarge {
        limit: usize::try_from(max).unwrap_or(usize::MAX),
    }
}

/// Stage 10 with a streamed body: the answer's head comes back as for any
/// request; a limit hit before it is the client's error, not the upstream's.
pub async fn forward(
    call: &mut Call<'_>,
    (target, matched, route): (&Target<'_>, &PathMatch<'_>, &RouteInfo),
    query: Option<&str>,
    mode: Mode,
) -> Result<Response<Incoming>, Rejection> {
    let upstream = &call.state.upstreams[matched.api.upstream];
    let path_and_query = upstream.path_and_query(matched.remainder, query)?;
    let mut headers = forward::upstream_headers(call, target, matched, route)?;
    // The body passes as sent: its media type with it, whatever the contract.
    if let Some(ct) = call.parts.headers.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    if mode == Mode::Grpc {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let mut head = http::Request::new(());
    *head.method_mut() = call.parts.method.clone();
    *head.uri_mut() = http::Uri::from(path_and_query);
    *head.headers_mut() = headers;
    let incoming = call
        .body
        .take()
        .ok_or_else(|| Rejection::BodyUnreadable("the body was already read".into()))?;
    let limits = &call.state.limits;
    let body = match mode {
        Mode::Grpc => StreamedBody::new(
            incoming,
            Limit::Messages(Framing::new(limits.max_body_bytes)),
            None,
        ),
        Mode::Upload { max } => StreamedBody::new(
            incoming,
            Limit::Total { max, seen: 0 },
            Some(limits.body_read_timeout),
        ),
    };
    let refused = body.refused.clone();
    let answer = upstream
        .send_stream(
            head.into_parts().0,
            body.boxed(),
            (mode == Mode::Grpc, upstream.affinity(&call.parts.headers)),
        )
        .await;
    match (answer, refused.load(Ordering::Acquire)) {
        (Err(_), TOO_LARGE) => Err(match mode {
            Mode::Grpc => too_large(limits.max_body_bytes as u64),
            Mode::Upload { max } => too_large(max),
        }),
        (Err(_), STALLED) => Err(Rejection::BodyUnreadable(
            "no body bytes within limits.body_read_timeout".into(),
        )),
        (answer, _) => answer,
    }
}

const TOO_LARGE: u8 = 1;
const STALLED: u8 = 2;

/// What a streamed body is held to.
#[derive(Debug)]
enum Limit {
    /// gRPC: each length-prefixed message.
    Messages(Framing),
    /// The whole body.
    Total { max: u64, seen: u64 },
}

/// A request body passed on frame by frame within its limits.
pub struct StreamedBody {
    inner: Incoming,
    limit: Limit,
    /// Longest wait for the next bytes, and its timer.
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    /// Why the body was cut ([`TOO_LARGE`], [`STALLED`]), for the answer.
    refused: Arc<AtomicU8>,
}

impl StreamedBody {
    fn new(inner: Incoming, limit: Limit, idle: Option<Duration>) -> Self {
        Self {
            inner,
            limit,
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            refused: Arc::default(),
        }
    }

    fn cut(&self, why: u8, message: &str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.refused.store(why, Ordering::Release);
        Poll::Ready(Some(Err(message.into())))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for StreamedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let over = match &mut this.limit {
                        Limit::Messages(framing) => framing.feed(data.chunk()).is_err(),
                        Limit::Total { max, seen } => {
                            *seen += data.remaining() as u64;
                            *seen > *max
                        }
                    };
                    if over {
                        return this.cut(TOO_LARGE, "request body over its limit");
                    }
                    if let Some((d, timer)) = &mut this.idle {
                        let next = tokio::time::Instant::now() + *d;
                        timer.as_mut().reset(next);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let stalled = this
                    .idle
                    .as_mut()
                    .is_some_and(|(_, timer)| timer.as_mut().poll(cx).is_ready());
                if stalled {
                    return this.cut(
                        STALLED,
                        "no request body bytes within limits.body_read_timeout",
                    );
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
