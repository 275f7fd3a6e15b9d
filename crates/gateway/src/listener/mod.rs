//! Accepting connections, with the protections of the gateway itself
//! (INPUT-08 for connections): one connection cap per listener and one per
//! client address (IPv6 grouped by prefix), a TLS handshake timeout, the
//! protocol chosen from ALPN (never by waiting for bytes to sniff), a
//! deadline for the first request, an idle timeout that pings do not reset,
//! a maximum connection age (graceful: `Connection: close` or GOAWAY), a
//! write timeout (slow readers), a header read timeout (slowloris), header
//! size limits, and HTTP/2 stream and reset-flood limits (rapid reset,
//! CVE-2023-44487).

pub mod buffer;
pub mod framing;
pub mod health;

use crate::listener::framing::FramingGuard;
use crate::pipeline;
use crate::pipeline::throttle::client_key;
use crate::{ConnInfo, GatewayBody, Live, PreparedKind, PreparedListener};
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis_config::Limits;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};

/// The HTTP servers a connection can get: HTTP/1.1 or HTTP/2 by ALPN on TLS
/// listeners; the sniffing `auto` server only on dev-mode plaintext ones.
pub(crate) struct HttpBuilders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    auto: auto::Builder<TokioExecutor>,
}

/// hyper's own limits sit above the gateway's, so that a head over the
/// gateway's limits is refused by the pipeline with a problem body; only a
/// head over twice the limit still gets hyper's bare 431 (or a dropped
/// HTTP/2 stream).
fn hyper_head_bytes(limits: &Limits) -> usize {
    limits.max_header_bytes.saturating_mul(2).max(8192) + crate::pipeline::head::MAX_TARGET_BYTES
}

/// hyper's header count limit, above [`crate::pipeline::head::MAX_HEADERS`].
const HYPER_MAX_HEADERS: usize = 2 * crate::pipeline::head::MAX_HEADERS;

/// The same settings on hyper's HTTP/1 and HTTP/2 builders and on the
/// ones inside `auto` (different types with the same methods).
macro_rules! http1_settings {
    ($b:expr, $limits:expr) => {
        $b.timer(TokioTimer::new())
            .header_read_timeout($limits.header_read_timeout)
            .max_buf_size(hyper_head_bytes($limits))
            .max_headers(HYPER_MAX_HEADERS)
            .keep_alive(true)
    };
}
macro_rules! http2_settings {
    ($b:expr, $limits:expr) => {
        $b.timer(TokioTimer::new())
            .max_concurrent_streams($limits.h2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(hyper_head_bytes($limits)).unwrap_or(u32::MAX))
            .max_pending_accept_reset_streams($limits.h2_max_pending_reset_streams)
            .max_local_error_reset_streams($limits.h2_max_local_error_reset_streams)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
    };
}

pub(crate) fn http_builders(limits: &Limits) -> HttpBuilders {
    let mut h1 = http1::Builder::new();
    http1_settings!(h1, limits);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    http2_settings!(h2, limits);
    let mut auto = auto::Builder::new(TokioExecutor::new());
    http1_settings!(auto.http1(), limits);
    http2_settings!(auto.http2(), limits);
    HttpBuilders { h1, h2, auto }
}

/// Connections per client on one listener.
pub(crate) struct ClientCaps {
    max: usize,
    prefix: u8,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientCaps {
    pub(crate) fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            max: limits.max_connections_per_client,
            prefix: limits.client_ipv6_prefix,
            open: Mutex::default(),
        })
    }

    /// A slot for one more connection from `ip`, or `None` at its cap.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let key = client_key(ip, self.prefix);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(key).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            caps: self.clone(),
            key,
        })
    }
}

/// One open connection counted against its client; released on drop.
struct ClientSlot {
    caps: Arc<ClientCaps>,
    key: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .caps
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What a listener's accept loop needs besides the socket.
pub(crate) struct Accepting {
    pub listener: Arc<PreparedListener>,
    pub live: Live,
    pub http: Arc<HttpBuilders>,
    /// This listener's own connection cap.
    pub connections: Arc<Semaphore>,
    pub clients: Arc<ClientCaps>,
}

pub(crate) async fn accept_loop(
    socket: TcpListener,
    accepting: Accepting,
    mut shutdown: watch::Receiver<bool>,
) {
    let Accepting {
        listener,
        live,
        http,
        connections,
        clients,
    } = accepting;
    loop {
        let (stream, remote) = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(listener = &*listener.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            // At the connection cap: refuse at once rather than queue.
            tracing::warn!(listener = &*listener.name, %remote, "connection refused: max_connections reached");
            drop(stream);
            continue;
        };
        let Some(slot) = clients.admit(remote.ip()) else {
            tracing::warn!(listener = &*listener.name, %remote, "connection refused: max_connections_per_client reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnInfo {
            listener: listener.name.clone(),
            tls_listener: match &listener.kind {
                PreparedKind::Tls(t) => Some(t.clone()),
                _ => None,
            },
            client_cert: std::sync::OnceLock::new(),
            environment: listener.environment.clone(),
            hosts: listener.hosts.clone(),
            remote,
            tls: matches!(listener.kind, PreparedKind::Tls(_)),
            framing: Arc::default(),
            relay: std::sync::Mutex::default(),
        });
        tokio::spawn(connection(
            stream,
            conn,
            listener.clone(),
            live.clone(),
            http.clone(),
            (permit, slot),
            shutdown.clone(),
        ));
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    conn: Arc<ConnInfo>,
    listener: Arc<PreparedListener>,
    live: Live,
    http: Arc<HttpBuilders>,
    _held: (OwnedSemaphorePermit, ClientSlot),
    shutdown: watch::Receiver<bool>,
) {
    let limits = live.load().limits.clone();
    let stream = WriteDeadline::new(stream, limits.write_timeout);
    let activity = Arc::new(Activity::new());
    // A WebSocket accepted on this connection outlives hyper's part of it.
    let after = (conn.clone(), shutdown.clone());
    let deadlines = Deadlines {
        activity: activity.clone(),
        limits,
        shutdown,
    };
    match &listener.kind {
        PreparedKind::Tls(tls_listener) => {
            let (config, generation) = tls_listener.config_with_generation();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let handshake = tokio::time::timeout(
                deadlines.limits.tls_handshake_timeout,
                acceptor.accept(stream),
            )
            .await;
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(remote = %conn.remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(remote = %conn.remote, "TLS handshake timed out");
                    return;
                }
            };
            // A verified certificate the gateway cannot re-check per request
            // would escape revocation and expiry: close instead (fail closed).
            if let Some(chain) = tls.get_ref().1.peer_certificates() {
                let Some(cert) = crate::tls::clientauth::PeerCert::from_chain(chain, generation)
                else {
                    tracing::debug!(remote = %conn.remote, "client certificate cannot be parsed");
                    return;
                };
                let _ = conn.client_cert.set(cert);
            }
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let framing = conn.framing.clone();
            let svc = tracked(activity, move |req| {
                pipeline::handle(live.load_full(), conn.clone(), req)
            });
            if h2 {
                let first_request = deadlines.limits.header_read_timeout;
                let Some(io) = h2_preface(tls, first_request).await else {
                    return;
                };
                let c = http.h2.serve_connection(TokioIo::new(io), svc);
                deadlines.drive(c).await;
            } else {
                let io = TokioIo::new(FramingGuard::new(tls, framing));
                deadlines
                    .drive(http.h1.serve_connection(io, svc).with_upgrades())
                    .await;
            }
        }
        PreparedKind::Plain => {
            let framing = conn.framing.clone();
            let svc = tracked(activity, move |req| {
                pipeline::handle(live.load_full(), conn.clone(), req)
            });
            let io = TokioIo::new(FramingGuard::new(stream, framing));
            deadlines
                .drive(http.auto.serve_connection_with_upgrades(io, svc))
                .await;
        }
        PreparedKind::Redirect { https_port } => {
            let port = *https_port;
            let svc = tracked(activity, move |req| {
                std::future::ready(pipeline::redirect(&live.load(), &conn, port, req))
            });
            let io = TokioIo::new(stream);
            deadlines.drive(http.h1.serve_connection(io, svc)).await;
        }
    }
    let (conn, shutdown) = after;
    let relay = conn
        .relay
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(relay) = relay {
        relay.run(shutdown).await;
    }
}

/// When a connection last did something that counts: requests in flight
/// (until their response body is sent or dropped) and when the last one
/// ended. Bytes alone do not count, so HTTP/2 pings keep nothing open.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `opened` when the last request ended.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// The next moment a deadline may fall, and whether one has already.
    fn check(&self, limits: &Limits, now: Instant) -> Result<Instant, &'static str> {
        let aged = self.opened + limits.max_connection_age;
        if now >= aged {
            return Err("maximum connection age reached");
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Requests in flight are bounded by their own timeouts; look again later.
            return Ok(aged.min(now + limits.idle_timeout));
        }
        let idle_until = if self.requests.load(Ordering::Acquire) == 0 {
            self.opened + limits.header_read_timeout
        } else {
            let done = Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
            self.opened + done + limits.idle_timeout
        };
        if now >= idle_until {
            return Err(if self.requests.load(Ordering::Acquire) == 0 {
                "no request before the first-request deadline"
            } else {
                "idle timeout"
            });
        }
        Ok(aged.min(idle_until))
    }
}

/// One request in flight; ends when its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = u64::try_from(a.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.last_done_ms.store(ms, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`InFlight`] until sent.
pub(crate) struct TrackedBody {
    inner: GatewayBody,
    _in_flight: InFlight,
    /// The request's share of the buffering budget, given back when sent.
    _buffers: Option<buffer::Held>,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = <GatewayBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps a request handler so that each request counts as activity. The
/// handler's future is boxed: hyper keeps room for the service's future in
/// every connection, idle or not, and unboxed that room is the whole
/// pipeline's state (issue 20: 46 -> 38 kB per idle connection).
fn tracked<F, Fut>(
    activity: Arc<Activity>,
    handler: F,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<TrackedBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<TrackedBody>, Infallible>> + Send,
> + Clone
+ Send
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<GatewayBody>, Infallible>> + Send + 'static,
{
    service_fn(move |req| {
        let in_flight = activity.begin();
        let answer = Box::pin(handler(req));
        async move {
            let mut response = answer.await?;
            let buffers = response.extensions_mut().remove::<buffer::Held>();
            Ok(response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
                _buffers: buffers,
            }))
        }
    })
}

/// A connection being served: HTTP/1, HTTP/2 or sniffed, all of which can
/// finish gracefully.
trait Graceful: Future {
    fn close_gracefully(self: Pin<&mut Self>);
}

impl<I, S> Graceful for http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: Body + 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for http2::Connection<I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: Body + Send + 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: Body + 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for auto::UpgradeableConnection<'_, I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<TrackedBody>>,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, TrackedBody>,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// How long a connection being closed for a deadline has to finish: idle
/// ones have nothing in flight, aged ones finish their requests.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The deadlines one connection is served under.
struct Deadlines {
    activity: Arc<Activity>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
}

impl Deadlines {
    async fn drive<C, E>(mut self, conn: C)
    where
        C: Graceful<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        tokio::pin!(conn);
        let mut next = Instant::now();
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = self.shutdown.changed() => {
                    conn.as_mut().close_gracefully();
                    let _ = conn.as_mut().await;
                    return;
                }
                () = tokio::time::sleep_until(next) => {
                    match self.activity.check(&self.limits, Instant::now()) {
                        Ok(at) => next = at,
                        Err(why) => {
                            tracing::debug!(reason = why, "closing connection");
                            let grace = if self.activity.in_flight.load(Ordering::Acquire) > 0 {
                                self.limits.body_read_timeout
                            } else {
                                IDLE_CLOSE_GRACE
                            };
                            conn.as_mut().close_gracefully();
                            let _ = tokio::time::timeout(grace, conn.as_mut()).await;
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// RFC 9113 §3.4: the client connection preface.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the HTTP/2 client preface before hyper sees the connection, within
/// the first-request deadline. An invalid one is answered as RFC 9113 §3.4
/// requires: the server preface (an empty SETTINGS frame), then GOAWAY with
/// PROTOCOL_ERROR, then close (hyper would only drop the connection). A
/// valid one is replayed to hyper.
async fn h2_preface<S>(mut io: S, deadline: Duration) -> Option<Rewind<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut got = [0u8; 24];
    let mut n = 0;
    let read = tokio::time::timeout(deadline, async {
        while n < got.len() {
            match io.read(&mut got[n..]).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => n += k,
            }
            if got[..n] != H2_PREFACE[..n] {
                return false;
            }
        }
        true
    })
    .await;
    match read {
        Ok(true) => Some(Rewind {
            inner: io,
            prefix: H2_PREFACE,
            at: 0,
        }),
        // Bytes that are not the preface: SETTINGS, then GOAWAY(last stream
        // 0, PROTOCOL_ERROR = 0x1).
        Ok(false) if n > 0 && got[..n] != H2_PREFACE[..n] => {
            const SETTINGS_THEN_GOAWAY: [u8; 26] = [
                0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, empty, stream 0
                0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes, stream 0
                0, 0, 0, 0, // last stream id
                0, 0, 0, 1, // PROTOCOL_ERROR
            ];
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let _ = io.write_all(&SETTINGS_THEN_GOAWAY).await;
                let _ = io.shutdown().await;
            })
            .await;
            None
        }
        // Nothing, or a true prefix and then silence or end: just close.
        _ => None,
    }
}

/// A stream whose first bytes (already read and checked) are given back
/// before the rest.
pub(crate) struct Rewind<S> {
    inner: S,
    prefix: &'static [u8],
    at: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let rest = &self.prefix[self.at..];
            let k = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..k]);
            self.at += k;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

framing::delegate_async_write!(Rewind);

/// Closes a connection whose writes make no progress for `timeout`: a client
/// that stops reading cannot hold a connection and its buffers forever.
pub(crate) struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
        }
    }

    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stalled.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "write timed out: the client stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, polled)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, polled)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, polled)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, polled)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_keyed_by_ipv4_or_ipv6_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_key(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(client_key(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1"), 64),
            client_key(ip("2001:db8:1:2:ffff::9"), 64)
        );
        assert_eq!(client_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(client_key(ip("2001:db8::1"), 48), ip("2001:db8::"));
    }
}
