//! Portcullis data plane: listeners, TLS, the request pipeline, upstreams and security events.
//!
//! [`Gateway::build`] turns a validated [`Config`] into everything the data
//! plane needs (TLS configurations, route table, upstream clients, event
//! sink) without binding a socket, so `check` runs exactly the same code as
//! `run`. [`Gateway::start`] binds the listeners; [`RunningGateway::shutdown`]
//! stops accepting and lets in-flight requests finish.

pub mod admin;
pub mod anomaly;
pub mod apikeys;
pub mod attest;
pub mod audit;
pub mod backend_server;
pub mod clientauth;
pub mod content;
pub mod correlation;
pub mod devpki;
pub mod events;
pub mod framing;
pub mod hardening;
pub mod hygiene;
pub mod identity;
pub mod introspection;
pub mod jwks;
mod listener;
pub mod path;
pub mod pgstore;
pub mod pipeline;
pub mod rejection;
pub mod routes;
pub mod shared;
pub mod spool;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod tokens;
pub mod traffic;
pub mod upstream;

use bytes::Bytes;
use events::EventSink;
use http::HeaderName;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use portcullis_config::{Config, Limits, ListenerKind};
use routes::RouteTable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use upstream::UpstreamClient;

/// Body of every response the gateway sends: its own (problem bodies,
/// preflights) or an upstream's, streamed.
pub type GatewayBody = Either<Full<Bytes>, Incoming>;

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct State {
    pub routes: RouteTable,
    pub upstreams: Vec<Arc<UpstreamClient>>,
    pub limits: Limits,
    pub correlation_header: HeaderName,
    pub request_remove_headers: Vec<HeaderName>,
    pub response_remove_headers: Vec<HeaderName>,
    pub events: EventSink,
    /// Applications, keys and tokens; present when the config has `identity`.
    pub identity: Option<Arc<identity::IdentityState>>,
    /// Sensitive data refused in URLs (DATA-01).
    pub sensitive: portcullis_config::SensitiveData,
    /// Mints the context token for upstreams; `None` when turned off.
    pub attestor: Option<Arc<attest::Attestor>>,
    /// Rate limits and concurrency caps (stage 8).
    pub throttle: throttle::Throttle,
    /// Usage baselines per application × route (OPS-02).
    pub anomaly: Option<anomaly::Detector>,
    /// Counters for metrics and the inventory's traffic (CONTRACT-03).
    pub traffic: Arc<traffic::Traffic>,
}

/// What is known about the connection a request arrived on.
#[derive(Debug)]
pub struct ConnInfo {
    pub listener: Arc<str>,
    /// The TLS listener, for the per-request client certificate re-check.
    pub tls_listener: Option<Arc<clientauth::TlsListener>>,
    /// The verified client certificate, set after the handshake.
    pub client_cert: std::sync::OnceLock<clientauth::PeerCert>,
    /// The environment the listener serves (CONTRACT-03).
    pub environment: Arc<str>,
    pub remote: SocketAddr,
    pub tls: bool,
    /// Raised by [`framing::FramingGuard`] when an HTTP/1 header block held
    /// both `Content-Length` and `Transfer-Encoding`.
    pub ambiguous_framing: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Tls { path: String, source: tls::TlsError },
    #[error(transparent)]
    Routes(#[from] routes::RouteTableError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Attest(#[from] attest::AttestError),
    #[error("{0}")]
    Shared(String),
    #[error("admin: cannot listen on {at}: {source}")]
    AdminBind { at: String, source: std::io::Error },
    #[error("context_token.jwks_bind: cannot listen on {addr}: {source}")]
    JwksBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("events.file: cannot open {file}: {source}")]
    Events {
        file: String,
        source: std::io::Error,
    },
    #[error("listeners[{index}].bind: cannot listen on {addr}: {source}")]
    Bind {
        index: usize,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

enum PreparedKind {
    Tls(Arc<clientauth::TlsListener>),
    Redirect { https_port: u16 },
    Plain,
}

struct PreparedListener {
    name: Arc<str>,
    environment: Arc<str>,
    bind: SocketAddr,
    kind: PreparedKind,
}

/// A gateway built from a config, not yet listening.
pub struct Gateway {
    state: Arc<State>,
    listeners: Vec<PreparedListener>,
    jwks_bind: Option<SocketAddr>,
    admin: Option<(portcullis_config::AdminListen, Arc<admin::AdminPlane>)>,
}

impl Gateway {
    /// Loads certificates and keys, compiles routes, builds upstream
    /// clients. Fails with the config field at fault.
    pub fn build(config: &Config) -> Result<Self, BuildError> {
        let mut listeners = Vec::new();
        for (i, l) in config.listeners.iter().enumerate() {
            let kind = match &l.kind {
                ListenerKind::Tls(t) => PreparedKind::Tls(Arc::new(
                    clientauth::TlsListener::new(t, config.mode).map_err(|source| {
                        BuildError::Tls {
                            path: format!("listeners[{i}].tls"),
                            source,
                        }
                    })?,
                )),
                ListenerKind::Redirect { https_port } => PreparedKind::Redirect {
                    https_port: *https_port,
                },
                ListenerKind::DangerousPlaintext => PreparedKind::Plain,
            };
            listeners.push(PreparedListener {
                name: l.name.as_str().into(),
                environment: l.environment.as_str().into(),
                bind: l.bind,
                kind,
            });
        }
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                UpstreamClient::build(u)
                    .map(Arc::new)
                    .map_err(|source| BuildError::Tls {
                        path: format!("upstreams.{}", u.name),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let attestor = config
            .context_token
            .as_ref()
            .map(|c| attest::Attestor::open(c, &config.upstreams).map(Arc::new))
            .transpose()?;
        let events = EventSink::start(&config.events).map_err(|source| BuildError::Events {
            file: config
                .events
                .file
                .as_ref()
                .map_or_else(String::new, |f| f.display().to_string()),
            source,
        })?;
        let identity = config
            .identity
            .as_ref()
            .map(|i| identity::IdentityState::open(i, events.clone()))
            .transpose()?;
        let shared = config
            .redis
            .as_ref()
            .map(|r| shared::SharedLimits::new(r, events.clone()))
            .transpose()
            .map_err(BuildError::Shared)?;
        let (throttle, limits) = throttle::Throttle::build(config, shared);
        let routes = RouteTable::build(config, &limits)?;
        let identity_for_admin = identity.clone();
        let events_for_admin = events.clone();
        let routes_for_admin = routes.kill_targets();
        let traffic = Arc::new(traffic::Traffic::new(routes.operations()));
        let traffic_for_admin = traffic.clone();
        Ok(Self {
            state: Arc::new(State {
                routes,
                upstreams,
                limits: config.limits.clone(),
                correlation_header: config.correlation_header.clone(),
                // The API key authenticates the application to the gateway only.
                request_remove_headers: config
                    .request_remove_headers
                    .iter()
                    .chain(config.identity.as_ref().map(|i| &i.api_key_header))
                    .cloned()
                    .collect(),
                response_remove_headers: config.response_remove_headers.clone(),
                events,
                identity,
                sensitive: config.sensitive.clone(),
                attestor,
                throttle,
                traffic,
                anomaly: config.anomalies.as_ref().map(|a| {
                    anomaly::Detector::new(anomaly::Settings {
                        interval: a.interval,
                        warmup: a.warmup_intervals,
                        factor: a.factor,
                    })
                }),
            }),
            jwks_bind: config.context_token.as_ref().and_then(|c| c.jwks_bind),
            admin: match (&config.admin, &identity_for_admin) {
                (Some(listen), Some(identity)) => Some((
                    listen.clone(),
                    Arc::new(admin::AdminPlane::new(
                        identity.clone(),
                        events_for_admin,
                        routes_for_admin,
                        traffic_for_admin,
                        config.events.spool.as_ref().map(|s| {
                            (
                                s.dir.clone(),
                                [
                                    config.events.syslog.as_ref().map(|_| "syslog".to_owned()),
                                    config.events.http.as_ref().map(|_| "http".to_owned()),
                                ]
                                .into_iter()
                                .flatten()
                                .collect(),
                            )
                        }),
                    )),
                )),
                _ => None,
            },
            listeners,
        })
    }

    pub fn events(&self) -> &EventSink {
        &self.state.events
    }

    /// Binds every listener and starts serving.
    pub async fn start(self) -> Result<RunningGateway, BuildError> {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let max = self.state.limits.max_connections;
        let connections = Arc::new(Semaphore::new(max));
        let http = Arc::new(listener::http_builder(&self.state.limits));
        let mut addrs = Vec::new();
        let mut bound = Vec::new();
        for (index, l) in self.listeners.into_iter().enumerate() {
            let socket = tokio::net::TcpListener::bind(l.bind)
                .await
                .map_err(|source| BuildError::Bind {
                    index,
                    addr: l.bind,
                    source,
                })?;
            let addr = socket.local_addr().map_err(|source| BuildError::Bind {
                index,
                addr: l.bind,
                source,
            })?;
            addrs.push((l.name.to_string(), addr));
            bound.push((socket, l));
        }
        if let Some(identity) = &self.state.identity {
            identity.spawn_jwks_refresh();
        }
        let mut tasks = Vec::new();
        if let Some(attestor) = &self.state.attestor {
            tasks.push(tokio::spawn(attest::rotate_keys(
                attestor.clone(),
                self.state.events.clone(),
                shutdown_rx.clone(),
            )));
            if let Some(bind) = self.jwks_bind {
                let socket = tokio::net::TcpListener::bind(bind)
                    .await
                    .map_err(|source| BuildError::JwksBind { addr: bind, source })?;
                let addr = socket
                    .local_addr()
                    .map_err(|source| BuildError::JwksBind { addr: bind, source })?;
                tracing::info!(%addr, "serving the context-token JWKS");
                addrs.push(("jwks".to_owned(), addr));
                tasks.push(tokio::spawn(attest::serve_jwks(
                    attestor.clone(),
                    socket,
                    shutdown_rx.clone(),
                )));
            }
        }
        if let Some((listen, plane)) = self.admin {
            let at = |source| BuildError::AdminBind {
                at: match &listen {
                    portcullis_config::AdminListen::Tcp(a) => a.to_string(),
                    portcullis_config::AdminListen::Unix(p) => p.display().to_string(),
                },
                source,
            };
            match &listen {
                portcullis_config::AdminListen::Tcp(addr) => {
                    let socket = tokio::net::TcpListener::bind(addr).await.map_err(at)?;
                    let addr = socket.local_addr().map_err(at)?;
                    tracing::info!(%addr, "admin plane listening");
                    addrs.push(("admin".to_owned(), addr));
                    tasks.push(tokio::spawn(admin::serve(
                        plane,
                        socket,
                        shutdown_rx.clone(),
                    )));
                }
                portcullis_config::AdminListen::Unix(path) => {
                    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
                    // A socket left by an earlier run; anything else is not ours to remove.
                    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                        let _ = std::fs::remove_file(path);
                    }
                    let socket = tokio::net::UnixListener::bind(path).map_err(at)?;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(at)?;
                    tracing::info!(path = %path.display(), "admin plane listening");
                    tasks.push(tokio::spawn(admin::serve(
                        plane,
                        socket,
                        shutdown_rx.clone(),
                    )));
                }
            }
        }
        let mut watched: Vec<Arc<dyn clientauth::CrlHolder>> = bound
            .iter()
            .filter_map(|(_, l)| match &l.kind {
                PreparedKind::Tls(t) if t.has_client_auth() => {
                    Some(t.clone() as Arc<dyn clientauth::CrlHolder>)
                }
                _ => None,
            })
            .collect();
        watched.extend(
            self.state
                .upstreams
                .iter()
                .filter(|u| u.has_crls())
                .map(|u| u.clone() as Arc<dyn clientauth::CrlHolder>),
        );
        if !watched.is_empty() {
            tasks.push(tokio::spawn(clientauth::watch_crls(
                watched,
                self.state.events.clone(),
                shutdown_rx.clone(),
            )));
        }
        for (socket, l) in bound {
            tracing::info!(listener = &*l.name, addr = %socket.local_addr().map_or(l.bind, |a| a), "listening");
            tasks.push(tokio::spawn(listener::accept_loop(
                socket,
                Arc::new(l),
                self.state.clone(),
                http.clone(),
                connections.clone(),
                shutdown_rx.clone(),
            )));
        }
        Ok(RunningGateway {
            addrs,
            state: self.state,
            shutdown_tx,
            tasks,
            connections,
            max_connections: max,
        })
    }
}

/// A gateway that is serving.
#[derive(Debug)]
pub struct RunningGateway {
    addrs: Vec<(String, SocketAddr)>,
    state: Arc<State>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    connections: Arc<Semaphore>,
    max_connections: usize,
}

impl RunningGateway {
    /// The bound address of a listener, by name.
    pub fn addr(&self, listener: &str) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(n, _)| n == listener)
            .map(|(_, a)| *a)
    }

    pub fn addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    pub fn events(&self) -> &EventSink {
        &self.state.events
    }

    pub fn identity(&self) -> Option<&Arc<identity::IdentityState>> {
        self.state.identity.as_ref()
    }

    pub fn attestor(&self) -> Option<&Arc<attest::Attestor>> {
        self.state.attestor.as_ref()
    }

    /// Stops accepting, asks every connection to finish its in-flight
    /// requests, and waits up to `grace` for them.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, self.connections.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over with connections still open");
        }
    }
}
