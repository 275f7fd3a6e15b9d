//! Accepting connections, with the protections of the gateway itself:
//! a connection cap, a TLS handshake timeout, a header read timeout
//! (slowloris), header size limits, and HTTP/2 stream and reset-flood
//! limits (rapid reset, CVE-2023-44487).

use crate::framing::FramingGuard;
use crate::pipeline;
use crate::{ConnInfo, GatewayBody, Live, PreparedKind, PreparedListener};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis_config::Limits;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

pub(crate) type HttpBuilder = auto::Builder<TokioExecutor>;

pub(crate) fn http_builder(limits: &Limits) -> HttpBuilder {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(limits.h2_max_pending_reset_streams)
        .max_local_error_reset_streams(limits.h2_max_local_error_reset_streams)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    b
}

pub(crate) async fn accept_loop(
    socket: TcpListener,
    listener: Arc<PreparedListener>,
    live: Live,
    http: Arc<HttpBuilder>,
    connections: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
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
        });
        tokio::spawn(connection(
            stream,
            conn,
            listener.clone(),
            live.clone(),
            http.clone(),
            permit,
            shutdown.clone(),
        ));
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    conn: Arc<ConnInfo>,
    listener: Arc<PreparedListener>,
    live: Live,
    http: Arc<HttpBuilder>,
    _permit: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
) {
    match &listener.kind {
        PreparedKind::Tls(tls_listener) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls_listener.config());
            let handshake = tokio::time::timeout(
                live.load().limits.tls_handshake_timeout,
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
            if let Some(der) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                let Some(cert) = crate::clientauth::PeerCert::from_der(der) else {
                    tracing::debug!(remote = %conn.remote, "client certificate cannot be parsed");
                    return;
                };
                let _ = conn.client_cert.set(cert);
            }
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let flag = conn.framing.clone();
            let svc = service_fn(move |req| pipeline::handle(live.load_full(), conn.clone(), req));
            if h2 {
                serve(&http, TokioIo::new(tls), svc, shutdown).await;
            } else {
                serve(
                    &http,
                    TokioIo::new(FramingGuard::new(tls, flag)),
                    svc,
                    shutdown,
                )
                .await;
            }
        }
        PreparedKind::Plain => {
            let flag = conn.framing.clone();
            let svc = service_fn(move |req| pipeline::handle(live.load_full(), conn.clone(), req));
            serve(
                &http,
                TokioIo::new(FramingGuard::new(stream, flag)),
                svc,
                shutdown,
            )
            .await;
        }
        PreparedKind::Redirect { https_port } => {
            let port = *https_port;
            let svc = service_fn(move |req| {
                std::future::ready(pipeline::redirect(&live.load(), &conn, port, req))
            });
            serve(&http, TokioIo::new(stream), svc, shutdown).await;
        }
    }
}

async fn serve<I, S, F>(http: &HttpBuilder, io: I, svc: S, mut shutdown: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<GatewayBody>,
            Error = Infallible,
            Future = F,
        > + Send
        + 'static,
    F: Future<Output = Result<Response<GatewayBody>, Infallible>> + Send + 'static,
{
    let conn = http.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
