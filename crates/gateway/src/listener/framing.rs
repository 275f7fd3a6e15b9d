//! Ambiguous HTTP/1 message framing, refused: request smuggling (INPUT-06).
//!
//! Two layers, because hyper resolves one ambiguity silently: when a request
//! carries both `Transfer-Encoding` and `Content-Length`, hyper (as RFC 9112
//! §6.3 allows) drops `Content-Length` before the service sees the headers.
//! So [`FramingGuard`] follows the framing of HTTP/1 connections in the raw
//! bytes (header blocks scanned, bodies skipped by their length or chunks)
//! and flags the message whose header block holds both; the pipeline then
//! refuses that request with 400, never forwards it, and closes the
//! connection. Bodies are never scanned, so an upload that contains header
//! lines flags nothing, and a flag belongs to one message, not to the
//! connection's later requests. [`check_headers`] covers what
//! survives into the parsed headers (several or non-numeric lengths).

use crate::rejection::Rejection;
use http::header::{self, HeaderMap};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Refuses framing conflicts still visible in parsed headers.
pub fn check_headers(headers: &HeaderMap) -> Result<(), Rejection> {
    let lengths = headers.get_all(header::CONTENT_LENGTH).iter().count();
    if lengths > 0 && headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(Rejection::AmbiguousFraming(
            "Content-Length with Transfer-Encoding",
        ));
    }
    if lengths > 1 {
        return Err(Rejection::AmbiguousFraming(
            "several Content-Length headers",
        ));
    }
    if let Some(v) = headers.get(header::CONTENT_LENGTH)
        && (v.is_empty() || !v.as_bytes().iter().all(u8::is_ascii_digit))
    {
        return Err(Rejection::AmbiguousFraming(
            "Content-Length is not a single number",
        ));
    }
    Ok(())
}

/// Longest line prefix the scanner keeps: a header name and a value long
/// enough for any `Content-Length` hyper accepts.
const LINE: usize = 64;

/// Why a message's framing was refused (for the pipeline's 400).
const REASONS: [&str; 4] = [
    "Content-Length with Transfer-Encoding",
    "several Content-Length headers",
    "Content-Length is not a single number",
    "header line ended by a bare LF",
];

/// What the connection's [`Scanner`] found, read by the pipeline per request.
#[derive(Debug, Default)]
pub struct FramingState {
    /// 1 + the index of the first refused message, 0 while none; the reason
    /// index sits in the top byte.
    refused: AtomicU64,
    /// The scanner stopped following the framing (a body it cannot delimit):
    /// the connection is closed after the current answer.
    lost: AtomicBool,
    /// Requests the pipeline has taken from this connection.
    served: AtomicU64,
}

impl FramingState {
    fn refuse(&self, message: u64, reason: usize) {
        let packed = (message + 1) | ((reason as u64) << 56);
        let _ = self
            .refused
            .compare_exchange(0, packed, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Called once per HTTP/1 request, in order: refuses the request whose
    /// header block the scanner flagged. HTTP/1 serves one request at a time,
    /// so the n-th request is the n-th header block, and an upload whose body
    /// merely contains header lines flags nothing.
    pub fn check_next(&self) -> Result<(), Rejection> {
        let n = self.served.fetch_add(1, Ordering::AcqRel);
        let refused = self.refused.load(Ordering::Acquire);
        if refused != 0 && refused & ((1 << 56) - 1) == n + 1 {
            let reason = usize::try_from(refused >> 56).unwrap_or(0);
            return Err(Rejection::AmbiguousFraming(REASONS[reason % REASONS.len()]));
        }
        Ok(())
    }

    /// Whether the connection must close after the current answer: a message
    /// was refused (its body cannot be trusted to end where hyper thinks) or
    /// the framing is no longer followed.
    pub fn must_close(&self) -> bool {
        self.lost.load(Ordering::Acquire) || self.refused.load(Ordering::Acquire) != 0
    }
}

/// Where the scanner is in the HTTP/1 byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Lines of a header block, up to the blank line.
    #[default]
    Head,
    /// This many bytes of a fixed-length body are still to come.
    Body(u64),
    /// A chunk-size line (hex digits, then extensions, then CRLF).
    ChunkSize,
    /// This many bytes of chunk data, then its CRLF.
    ChunkData(u64),
    /// The CRLF that ends a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, up to the blank line.
    Trailers,
    /// Framing no longer followed (refused message or undelimited body).
    Lost,
}

/// Follows HTTP/1 request framing over the bytes a connection reads: header
/// blocks are scanned line by line, bodies are skipped by their declared
/// length or chunking, so only header lines count. A header block holding
/// both `Content-Length` and `Transfer-Encoding`, several or malformed
/// lengths, or a bare-LF line ending, refuses that message.
#[derive(Debug)]
pub struct Scanner {
    phase: Phase,
    line: [u8; LINE],
    line_len: usize,
    /// The previous byte was CR.
    after_cr: bool,
    /// A non-blank line has been seen in the current header block.
    block_started: bool,
    lengths: u32,
    length: Option<u64>,
    bad_length: bool,
    encoding: bool,
    chunked: bool,
    chunk_size: u64,
    chunk_digits: u32,
    chunk_size_done: bool,
    /// Index of the message whose header block is being read.
    message: u64,
}

/// What one [`Scanner::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Message `message` is refused for `REASONS[reason]`.
    Refused { message: u64, reason: usize },
    /// The framing can no longer be followed.
    Lost,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            phase: Phase::Head,
            line: [0; LINE],
            line_len: 0,
            after_cr: false,
            block_started: false,
            lengths: 0,
            length: None,
            bad_length: false,
            encoding: false,
            chunked: false,
            chunk_size: 0,
            chunk_digits: 0,
            chunk_size_done: false,
            message: 0,
        }
    }
}

impl Scanner {
    /// A scanner at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes read from the connection; returns the first finding.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Found> {
        let mut found = None;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.phase {
                Phase::Lost => return found,
                Phase::Body(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    let left = left - take as u64;
                    if left == 0 {
                        self.end_message();
                    } else {
                        self.phase = Phase::Body(left);
                    }
                    i += take;
                    continue;
                }
                Phase::ChunkData(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    let left = left - take as u64;
                    self.phase = if left == 0 {
                        Phase::ChunkEnd
                    } else {
                        Phase::ChunkData(left)
                    };
                    i += take;
                    continue;
                }
                Phase::ChunkEnd => {
                    if b == b'\n' {
                        self.phase = Phase::ChunkSize;
                    } else if b != b'\r' {
                        found = found.or(Some(self.lose()));
                    }
                }
                Phase::ChunkSize => found = found.or(self.chunk_size_byte(b)),
                Phase::Head | Phase::Trailers => found = found.or(self.line_byte(b)),
            }
            i += 1;
        }
        found
    }

    fn lose(&mut self) -> Found {
        self.phase = Phase::Lost;
        Found::Lost
    }

    fn chunk_size_byte(&mut self, b: u8) -> Option<Found> {
        match b {
            b'\n' => {
                if self.chunk_digits == 0 {
                    return Some(self.lose());
                }
                self.phase = if self.chunk_size == 0 {
                    Phase::Trailers
                } else {
                    Phase::ChunkData(self.chunk_size)
                };
                self.chunk_size = 0;
                self.chunk_digits = 0;
                self.chunk_size_done = false;
            }
            _ if self.chunk_size_done => {}
            b';' | b'\r' | b' ' | b'\t' => self.chunk_size_done = true,
            _ => {
                let Some(d) = (b as char).to_digit(16) else {
                    return Some(self.lose());
                };
                self.chunk_digits += 1;
                if self.chunk_digits > 16 {
                    return Some(self.lose());
                }
                self.chunk_size = self.chunk_size << 4 | u64::from(d);
            }
        }
        None
    }

    fn line_byte(&mut self, b: u8) -> Option<Found> {
        if b != b'\n' {
            if self.line_len < LINE {
                self.line[self.line_len] = b;
                self.line_len += 1;
            }
            self.after_cr = b == b'\r';
            return None;
        }
        let bare_lf = !self.after_cr;
        self.after_cr = false;
        let len = self.line_len;
        self.line_len = 0;
        let blank = len == 0 || (len == 1 && self.line[0] == b'\r');
        if self.phase == Phase::Trailers {
            if blank {
                self.end_message();
            }
            return None;
        }
        if bare_lf {
            return Some(self.refuse(3));
        }
        if !blank {
            self.block_started = true;
            self.header_line(len);
            return None;
        }
        if !self.block_started {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            return None;
        }
        self.end_head()
    }

    fn header_line(&mut self, len: usize) {
        let line = &self.line[..len];
        if let Some(value) = value_of(line, b"content-length:") {
            self.lengths += 1;
            let value = value.trim_ascii();
            match std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
            {
                Some(v) if len < LINE => self.length = v.parse().ok(),
                _ => self.bad_length = true,
            }
        } else if let Some(value) = value_of(line, b"transfer-encoding:") {
            self.encoding = true;
            // The last coding decides; a value longer than the kept prefix
            // is not followed (the framing is then lost, fail closed).
            let last = value.rsplit(|&c| c == b',').next().unwrap_or_default();
            self.chunked = len < LINE && last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        }
    }

    /// The blank line after a header block: decide the message's body.
    fn end_head(&mut self) -> Option<Found> {
        let reason = if self.lengths > 0 && self.encoding {
            Some(0)
        } else if self.lengths > 1 {
            Some(1)
        } else if self.bad_length || (self.lengths == 1 && self.length.is_none()) {
            Some(2)
        } else {
            None
        };
        if let Some(reason) = reason {
            return Some(self.refuse(reason));
        }
        if self.encoding {
            if !self.chunked {
                return Some(self.lose());
            }
            self.phase = Phase::ChunkSize;
            return None;
        }
        match self.length {
            Some(n) if n > 0 => self.phase = Phase::Body(n),
            _ => self.end_message(),
        }
        None
    }

    fn end_message(&mut self) {
        let message = self.message + 1;
        *self = Self {
            message,
            ..Self::default()
        };
    }

    fn refuse(&mut self, reason: usize) -> Found {
        self.phase = Phase::Lost;
        Found::Refused {
            message: self.message,
            reason,
        }
    }
}

/// The value of a header line named `name` (lower case, with the colon).
fn value_of<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    (line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name)).then(|| {
        line[name.len()..]
            .strip_suffix(b"\r")
            .unwrap_or(&line[name.len()..])
    })
}

/// Passes writes straight through to the `inner` field of a read-side
/// wrapper (the framing guard, the HTTP/2 preface rewind).
macro_rules! delegate_async_write {
    ($wrapper:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }
            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}
pub(crate) use delegate_async_write;

/// Wraps an HTTP/1 connection's stream and raises `flag` on ambiguous framing.
#[derive(Debug)]
pub struct FramingGuard<S> {
    inner: S,
    scanner: Scanner,
    state: Arc<FramingState>,
}

impl<S> FramingGuard<S> {
    pub fn new(inner: S, state: Arc<FramingState>) -> Self {
        Self {
            inner,
            scanner: Scanner::new(),
            state,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FramingGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            match this.scanner.feed(&buf.filled()[before..]) {
                Some(Found::Refused { message, reason }) => this.state.refuse(message, reason),
                Some(Found::Lost) => this.state.lost.store(true, Ordering::Release),
                None => {}
            }
        }
        polled
    }
}

delegate_async_write!(FramingGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// Each refusal keeps its own reason and the index of its message,
    /// packed in one word: the n-th request gets the reason of the n-th
    /// header block, whichever of the four it is.
    #[test]
    fn a_refusal_carries_its_reason_to_its_own_request() {
        for (reason, text) in REASONS.iter().enumerate() {
            let state = FramingState::default();
            state.refuse(2, reason);
            assert!(state.check_next().is_ok(), "first request");
            assert!(state.check_next().is_ok(), "second request");
            match state.check_next() {
                Err(Rejection::AmbiguousFraming(why)) => assert_eq!(why, *text),
                other => panic!("third request: {other:?}"),
            }
            assert!(state.check_next().is_ok(), "fourth request");
            assert!(state.must_close());
        }
    }

    #[test]
    fn parsed_header_conflicts_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(check_headers(&h).is_ok());
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(check_headers(&h).is_err());
        let mut h = HeaderMap::new();
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
        assert!(check_headers(&h).is_err());
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5, 5"));
        assert!(check_headers(&h).is_err());
    }

    fn scan(chunks: &[&[u8]]) -> Option<Found> {
        let mut s = Scanner::new();
        chunks.iter().fold(None, |acc, c| acc.or(s.feed(c)))
    }

    fn refused(message: u64, reason: usize) -> Found {
        Found::Refused { message, reason }
    }

    /// Bodies are counted to the byte however the reads cut them: a body
    /// (fixed-length or one chunk) that holds a header block refused for
    /// one reason flags nothing, and the message after it is judged as the
    /// second, for its own reason.
    #[test]
    fn bodies_split_across_reads_are_counted_to_the_byte() {
        let body: &[u8] = b"x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        let next: &[u8] = b"GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n";
        let fixed = [
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(),
            body.to_vec(),
            next.to_vec(),
        ]
        .concat();
        let chunked = [
            format!(
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
                body.len()
            )
            .into_bytes(),
            body.to_vec(),
            b"\r\n0\r\n\r\n".to_vec(),
            next.to_vec(),
        ]
        .concat();
        for stream in [fixed, chunked] {
            let start = stream.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            // Cut inside the body, at several places, in three reads.
            for cut in [start + 3, start + 11, start + 40] {
                let (a, rest) = stream.split_at(cut - 7);
                let (b, c) = rest.split_at(7 + 5);
                assert_eq!(scan(&[a, b, c]), Some(refused(1, 1)), "cut at {cut}");
            }
            assert_eq!(scan(&[&stream]), Some(refused(1, 1)));
        }
    }

    #[test]
    fn flags_both_headers_in_one_block_even_split_across_reads() {
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"]),
            Some(refused(0, 0))
        );
        assert_eq!(
            scan(&[
                b"POST / HTTP/1.1\r\ntransfer-enc",
                b"oding: chunked\r\nCONTENT-LENGTH: 5\r\n\r\n"
            ]),
            Some(refused(0, 0))
        );
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"]),
            Some(refused(0, 1))
        );
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"]),
            Some(refused(0, 2))
        );
        assert_eq!(
            scan(&[b"GET / HTTP/1.1\nHost: a\r\n\r\n"]),
            Some(refused(0, 3))
        );
    }

    #[test]
    fn bodies_are_skipped_and_flags_belong_to_one_message() {
        // An upload whose body holds both header lines flags nothing.
        let body = "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\n";
        let fixed = format!(
            "POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET /b HTTP/1.1\r\n\r\n",
            body.len()
        );
        assert_eq!(scan(&[fixed.as_bytes()]), None);
        let chunked = format!(
            "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{body}\r\n0\r\nX-Trailer: 1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
            body.len()
        );
        // Fed a byte at a time: state crosses every read boundary.
        let bytes: Vec<&[u8]> = chunked.as_bytes().chunks(1).collect();
        assert_eq!(scan(&bytes), None);
        // The third message is the one refused.
        let third = format!(
            "{fixed}GET /c HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        assert_eq!(scan(&[third.as_bytes()]), Some(refused(2, 0)));
        // A chunk size that is not hex: the framing is no longer followed.
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]),
            Some(Found::Lost)
        );
        // A coding other than chunked last: hyper refuses it; not followed.
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"]),
            Some(Found::Lost)
        );
    }

    /// A chunk size of up to 16 hex digits (leading zeros included) is
    /// followed; a 17th digit cannot be a size anyone means, and loses the
    /// framing rather than wrapping or guessing.
    #[test]
    fn a_chunk_size_has_at_most_sixteen_digits() {
        let next: &[u8] = b"GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n";
        let chunked = |size: &str| {
            [
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                format!("{size}\r\nabc\r\n0\r\n\r\n").into_bytes(),
                next.to_vec(),
            ]
            .concat()
        };
        assert_eq!(scan(&[&chunked("0000000000000003")]), Some(refused(1, 1)));
        assert_eq!(scan(&[&chunked("00000000000000003")]), Some(Found::Lost));
    }

    /// Only an empty line (or a lone CR) ends a header block or the
    /// trailers; a kept line prefix never stands in for a whole value; and a
    /// length no integer holds is refused like any other bad length.
    #[test]
    fn line_edges_are_judged_exactly() {
        let next: &[u8] = b"GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n";
        // A trailer line that merely starts with CR is a trailer: the
        // duplicate lengths after it are trailers too, and the message
        // after the blank line is clean.
        let trailers = [
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec(),
            b"\rX: 1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n".to_vec(),
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        ]
        .concat();
        assert_eq!(scan(&[&trailers]), None);
        // A Content-Length line longer than the kept prefix is refused,
        // even when the prefix alone would parse (as 0 here).
        let long_length = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}5\r\n\r\nhello",
            "0".repeat(60)
        );
        assert_eq!(scan(&[long_length.as_bytes(), next]), Some(refused(0, 2)));
        // A Transfer-Encoding line longer than the kept prefix is not
        // followed, even when the prefix ends in `chunked`.
        let long_coding = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: {}, chunked, gzip\r\n\r\n",
            "a".repeat(36)
        );
        assert_eq!(&long_coding.as_bytes()[17..17 + 64][57..], b"chunked");
        assert_eq!(scan(&[long_coding.as_bytes()]), Some(Found::Lost));
        // All digits, but more than a u64 holds.
        let huge = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(scan(&[huge]), Some(refused(0, 2)));
    }

    #[test]
    fn the_refused_message_is_the_one_answered_400() {
        let state = FramingState::default();
        state.refuse(1, 0);
        assert!(state.check_next().is_ok());
        assert!(matches!(
            state.check_next(),
            Err(Rejection::AmbiguousFraming(r)) if r == REASONS[0]
        ));
        assert!(state.must_close());
    }

    #[test]
    fn separate_requests_are_not_confused() {
        assert_eq!(
            scan(&[
                b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            ]),
            None
        );
        assert_eq!(
            scan(&[
                b"POST / HTTP/1.1\r\nX-Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            ]),
            None
        );
    }
}
