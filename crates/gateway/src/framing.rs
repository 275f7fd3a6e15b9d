//! Ambiguous HTTP/1 message framing, refused (request smuggling).
//!
//! Two layers, because hyper resolves one ambiguity silently: when a request
//! carries both `Transfer-Encoding` and `Content-Length`, hyper (as RFC 9112
//! §6.3 allows) drops `Content-Length` before the service sees the headers.
//! So [`FramingGuard`] watches the raw bytes of HTTP/1 connections and flags
//! a header block that holds both; the pipeline then refuses the request
//! with 400 and it is never forwarded. [`check_headers`] covers what
//! survives into the parsed headers (several or non-numeric lengths).

use crate::rejection::Rejection;
use http::header::{self, HeaderMap};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// Longest line prefix the scanner keeps to recognise a header name.
const PREFIX: usize = 18; // "transfer-encoding:".len()

/// A line scanner over the bytes a connection reads: within one header
/// block (lines up to a blank line) it notes `Content-Length:` and
/// `Transfer-Encoding:` lines, and raises the flag when both appear.
#[derive(Debug, Default)]
pub struct Scanner {
    line: [u8; PREFIX],
    line_len: usize,
    line_is_blank: bool,
    saw_length: bool,
    saw_encoding: bool,
}

impl Scanner {
    /// A scanner at the start of a connection.
    pub fn new() -> Self {
        Self {
            line_is_blank: true,
            ..Self::default()
        }
    }

    /// Feeds bytes; returns true when a header block with both headers was seen.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut ambiguous = false;
        for &b in bytes {
            if b == b'\n' {
                if self.line_is_blank {
                    self.saw_length = false;
                    self.saw_encoding = false;
                } else {
                    let l = &self.line[..self.line_len];
                    if starts_with_ignore_case(l, b"content-length:") {
                        self.saw_length = true;
                    } else if starts_with_ignore_case(l, b"transfer-encoding:") {
                        self.saw_encoding = true;
                    }
                    ambiguous |= self.saw_length && self.saw_encoding;
                }
                self.line_len = 0;
                self.line_is_blank = true;
                continue;
            }
            if self.line_len < PREFIX {
                self.line[self.line_len] = b;
                self.line_len += 1;
            }
            if b != b'\r' {
                self.line_is_blank = false;
            }
        }
        ambiguous
    }
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Wraps an HTTP/1 connection's stream and raises `flag` on ambiguous framing.
#[derive(Debug)]
pub struct FramingGuard<S> {
    inner: S,
    scanner: Scanner,
    flag: Arc<AtomicBool>,
}

impl<S> FramingGuard<S> {
    pub fn new(inner: S, flag: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            scanner: Scanner::new(),
            flag,
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
        if let Poll::Ready(Ok(())) = polled
            && this.scanner.feed(&buf.filled()[before..])
        {
            this.flag.store(true, Ordering::Release);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FramingGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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

    fn scan(chunks: &[&[u8]]) -> bool {
        let mut s = Scanner::new();
        chunks.iter().fold(false, |acc, c| acc | s.feed(c))
    }

    #[test]
    fn flags_both_headers_in_one_block_even_split_across_reads() {
        assert!(scan(&[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
        assert!(scan(&[
            b"POST / HTTP/1.1\r\ntransfer-enc",
            b"oding: chunked\r\nCONTENT-LENGTH: 5\r\n\r\n"
        ]));
    }

    #[test]
    fn separate_requests_are_not_confused() {
        assert!(!scan(&[
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ]));
        assert!(!scan(&[
            b"POST / HTTP/1.1\r\nX-Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
    }
}
