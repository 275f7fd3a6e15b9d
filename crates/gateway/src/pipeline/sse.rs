//! Server-sent events through the response stage (OUTPUT-02, OUTPUT-10):
//! a `text/event-stream` answer is passed on event by event as it arrives
//! instead of being read whole (which held every event until the stream
//! ended, and ended long streams in 504).
//!
//! Each event is still judged before it is sent: one that looks like a
//! stack trace is replaced by an `error` event naming the problem type
//! (and raises one security event), and with a `filter`, the JSON `data`
//! of each event is filtered like a JSON response (undeclared and
//! classified members stripped) or the event replaced when it does not
//! match. Limits apply as bytes flow: an event larger than
//! `limits.max_response_bytes`, or no bytes for `limits.body_read_timeout`,
//! ends the stream. Nothing is buffered beyond the event being read, so
//! the upstream is read no faster than the client takes events.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use crate::events::{EventSink, SecurityEvent};

/// What replaces an event that must not reach the client.
const STACK_TRACE_EVENT: &[u8] =
    b"event: error\ndata: {\"type\":\"urn:portcullis:problem:upstream-stack-trace\"}\n\n";
const CONTRACT_EVENT: &[u8] =
    b"event: error\ndata: {\"type\":\"urn:portcullis:problem:upstream-contract\"}\n\n";

/// Filters the JSON `data` of one event; `None` when it does not match.
pub type DataFilter = Box<dyn Fn(&[u8]) -> Option<Bytes> + Send + Sync>;

/// A `text/event-stream` body passed on one checked event at a time.
pub struct SseBody {
    inner: Incoming,
    pending: BytesMut,
    max_event: usize,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    filter: Option<DataFilter>,
    /// The event raised, once, when an event looked like a stack trace.
    on_stack_trace: Option<(EventSink, SecurityEvent)>,
    done: bool,
}

impl SseBody {
    pub fn new(
        inner: Incoming,
        (max_event, idle): (usize, Duration),
        filter: Option<DataFilter>,
        on_stack_trace: (EventSink, SecurityEvent),
    ) -> Self {
        Self {
            inner,
            pending: BytesMut::new(),
            max_event,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            filter,
            on_stack_trace: Some(on_stack_trace),
            done: false,
        }
    }

    /// The next complete event in `pending` (through its blank line).
    fn next_event(&mut self) -> Option<Bytes> {
        let end = boundary(&self.pending)?;
        Some(self.pending.split_to(end).freeze())
    }

    /// The event as the client receives it.
    fn judge(&mut self, event: Bytes) -> Bytes {
        let text = String::from_utf8_lossy(&event);
        if portcullis_contract::sensitive::looks_like_stack_trace(&text) {
            if let Some((sink, e)) = self.on_stack_trace.take() {
                sink.emit(e);
            }
            return Bytes::from_static(STACK_TRACE_EVENT);
        }
        let Some(filter) = &self.filter else {
            return event;
        };
        // `data:` lines joined by LF are the event's data (WHATWG HTML §9.2.6).
        let mut data = Vec::new();
        let mut other = Vec::new();
        for line in text.lines() {
            match line.strip_prefix("data:") {
                Some(d) => {
                    if !data.is_empty() {
                        data.push(b'\n');
                    }
                    data.extend_from_slice(d.strip_prefix(' ').unwrap_or(d).as_bytes());
                }
                None if !line.is_empty() => other.push(line),
                None => {}
            }
        }
        if data.is_empty() {
            return event;
        }
        let Some(filtered) = filter(&data) else {
            return Bytes::from_static(CONTRACT_EVENT);
        };
        let mut out = BytesMut::new();
        for line in other {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\n");
        }
        // Filtered JSON is one line: serde_json writes no raw newline.
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&filtered);
        out.extend_from_slice(b"\n\n");
        out.freeze()
    }
}

/// The end of the first event: just past its blank line (LF LF, CRLF
/// CRLF, or CR CR).
fn boundary(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'\n', b'\n') | (b'\r', b'\r') => return Some(i + 2),
            (b'\r', b'\n') if b.get(i + 2..i + 4) == Some(b"\r\n") => return Some(i + 4),
            _ => i += 1,
        }
    }
    None
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.next_event() {
                // Whole or in parts, an event over the limit is not passed.
                if event.len() > this.max_event {
                    return Poll::Ready(Some(Err(
                        "server-sent event larger than limits.max_response_bytes".into(),
                    )));
                }
                let out = this.judge(event);
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            if this.done {
                // What is left is an unterminated event: judged, then the end.
                if this.pending.is_empty() {
                    return Poll::Ready(None);
                }
                let rest = this.pending.split().freeze();
                let out = this.judge(rest);
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.pending.extend_from_slice(&data);
                        if this.pending.len() > this.max_event && boundary(&this.pending).is_none()
                        {
                            return Poll::Ready(Some(Err(
                                "server-sent event larger than limits.max_response_bytes".into(),
                            )));
                        }
                        let deadline = tokio::time::Instant::now() + this.idle;
                        this.timer.as_mut().reset(deadline);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => this.done = true,
                Poll::Pending => {
                    ready!(this.timer.as_mut().poll(cx));
                    return Poll::Ready(Some(Err(
                        "no server-sent event bytes within limits.body_read_timeout".into(),
                    )));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_their_blank_line_whatever_the_line_ends() {
        assert_eq!(boundary(b"data: a\n\ndata: b\n\n"), Some(9));
        assert_eq!(boundary(b"data: a\r\n\r\nrest"), Some(11));
        assert_eq!(boundary(b"data: a\r\rrest"), Some(9));
        assert_eq!(boundary(b"data: a\ndata: b\n"), None);
        assert_eq!(boundary(b"data: a\r\n"), None);
        assert_eq!(boundary(b""), None);
    }
}
