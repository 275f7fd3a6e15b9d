//! No checklist control: development only. A small HTTPS server (HTTP/1.1
//! and HTTP/2) for the quickstart's demo
//! backend and the test harness's recording backend. Not part of the data
//! plane: it buffers whole requests and answers from a handler function.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
/// Answers one buffered request; also told the peer address.
pub type Handler = Arc<dyn Fn(Request<Bytes>, SocketAddr) -> HandlerFuture + Send + Sync>;

/// A running backend server.
pub struct BackendServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for BackendServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl BackendServer {
    /// Binds `bind` and serves TLS with `tls` (ALPN h2 and http/1.1 are set here).
    pub async fn start(
        bind: SocketAddr,
        tls: rustls::ServerConfig,
        handler: Handler,
    ) -> std::io::Result<Self> {
        let mut tls = tls;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (shutdown, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
                    _ = rx.changed() => return,
                };
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                let mut conn_rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    // The verified client certificate, for handlers that check who calls.
                    let client_cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.clone().into_owned());
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        let client_cert = client_cert.clone();
                        async move {
                            let (mut parts, body) = req.into_parts();
                            if let Some(cert) = client_cert {
                                parts.extensions.insert(cert);
                            }
                            let body = body
                                .collect()
                                .await
                                .map(http_body_util::Collected::to_bytes)
                                .unwrap_or_default();
                            Ok::<_, std::convert::Infallible>(
                                handler(Request::from_parts(parts, body), peer).await,
                            )
                        }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = conn_rx.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Answers a WebSocket handshake with 101 and then echoes every data
/// message on the upgraded connection; `None` when `req` is no handshake.
pub fn websocket_echo(req: &mut Request<Bytes>) -> Option<Response<Full<Bytes>>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let upgrade = req.headers().get(http::header::UPGRADE)?;
    if !upgrade.as_bytes().eq_ignore_ascii_case(b"websocket") {
        return None;
    }
    let accept = derive_accept_key(
        req.headers()
            .get(http::header::SEC_WEBSOCKET_KEY)?
            .as_bytes(),
    );
    let on = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(io) = on.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(io),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(m)) = ws.next().await {
            if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::default())
        .ok()
}

/// A [`Handler`] as a tower service, so tower layers (such as the backend
/// guard) can wrap it.
#[derive(Clone)]
pub struct HandlerService(pub Handler);

impl tower_service::Service<Request<Bytes>> for HandlerService {
    type Response = Response<Full<Bytes>>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<SocketAddr>()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let fut = (self.0)(req, peer);
        Box::pin(async move { Ok(fut.await) })
    }
}

/// A tower service (e.g. a [`HandlerService`] behind layers) as a [`Handler`].
pub fn from_service<S>(service: S) -> Handler
where
    S: tower_service::Service<
            Request<Bytes>,
            Response = Response<Full<Bytes>>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    Arc::new(move |mut req: Request<Bytes>, peer| {
        let mut service = service.clone();
        req.extensions_mut().insert(peer);
        Box::pin(async move {
            if std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .is_err()
            {
                unreachable!("infallible");
            }
            match service.call(req).await {
                Ok(r) => r,
                Err(e) => match e {},
            }
        })
    })
}

/// A server TLS configuration that requires a client certificate issued by
/// `ca_pem` (mutual TLS), from PEM text.
pub fn mtls_from_pem(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<rustls::ServerConfig, rustls::Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str| rustls::Error::General(format!("bad {what} PEM"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|_| bad("CA"))?)?;
    let provider = Arc::new(crate::tls::provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![
                CertificateDer::from_pem_slice(cert_pem.as_bytes())
                    .map_err(|_| bad("certificate"))?,
            ],
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| bad("key"))?,
        )
}

/// A server TLS configuration from PEM text (for demo and test backends).
pub fn tls_from_pem(cert_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig, rustls::Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| rustls::Error::General("bad certificate PEM".into()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| rustls::Error::General("bad key PEM".into()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(crate::tls::provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)
}
