//! Portcullis data plane: listeners, TLS, the request pipeline, upstreams and security events.
//! Each module opens with the checklist IDs it implements (`docs/controls.md`
//! lists, per ID, its modules and tests).
//!
//! [`Gateway::build`] turns a validated [`Config`] into everything the data
//! plane needs (TLS configurations, route table, upstream clients, event
//! sink) without binding a socket, so `check` runs exactly the same code as
//! `run`. [`Gateway::start`] binds the listeners; [`RunningGateway::shutdown`]
//! stops accepting and lets in-flight requests finish.

// No function outside tests over 100 lines (`clippy.toml` sets the bound;
// the workspace allows the lint until every crate meets it).
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

pub mod admin;
pub mod clock;
pub mod dev;
pub mod events;
pub mod files;
pub mod identity;
pub mod listener;
pub mod pipeline;
pub mod rejection;
pub mod reload;
pub mod store;
pub mod tls;

use bytes::Bytes;
use events::EventSink;
use http::HeaderName;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use pipeline::routes::RouteTable;
use pipeline::upstream::UpstreamClient;
use portcullis_config::{Config, Limits, ListenerKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// Body of every response the gateway sends: one it built or checked
/// whole, an upstream's streamed as it comes, or an upstream's judged as it
/// passes (server-sent events one by one, gRPC trailers).
pub type GatewayBody = Either<Full<Bytes>, Either<Incoming, JudgedBody>>;

/// An upstream body judged as it passes (`pipeline/sse.rs`, `pipeline/grpc.rs`).
pub type JudgedBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct State {
    pub routes: RouteTable,
    pub upstreams: Vec<Arc<UpstreamClient>>,
    pub limits: Limits,
    pub correlation_header: HeaderName,
    /// Start a W3C trace for requests that carry none (`trace_context.start`).
    pub trace_start: bool,
    pub request_remove_headers: Vec<HeaderName>,
    pub response_remove_headers: Vec<HeaderName>,
    pub events: EventSink,
    /// One line per request; present when the config has `access_log`.
    pub access_log: Option<Arc<events::access::AccessLog>>,
    /// A span per request over OTLP; present with `trace_context.otlp`.
    pub spans: Option<Arc<events::otlp::Spans>>,
    /// Applications, keys and tokens; present when the config has `identity`.
    pub identity: Option<Arc<identity::IdentityState>>,
    /// Sensitive data refused in URLs (DATA-01).
    pub sensitive: portcullis_config::SensitiveData,
    /// Mints the context token for upstreams; `None` when turned off.
    pub attestor: Option<Arc<identity::context_token::Attestor>>,
    /// Rate limits and concurrency caps (stage 8).
    pub throttle: pipeline::throttle::Throttle,
    /// Usage baselines per application × route (OPS-02).
    pub anomaly: Option<Arc<pipeline::anomaly::Detector>>,
    /// Counters for metrics and the inventory's traffic (CONTRACT-03).
    pub traffic: Arc<events::traffic::Traffic>,
    /// This config's routes' counters, by route index.
    pub route_traffic: Arc<events::traffic::RouteSet>,
    /// Every body buffered at once (kept across reloads).
    pub buffers: Arc<listener::buffer::BufferBudget>,
}

/// What is known about the connection a request arrived on.
#[derive(Debug)]
pub struct ConnInfo {
    pub listener: Arc<str>,
    /// The TLS listener, for the per-request client certificate re-check.
    pub tls_listener: Option<Arc<tls::clientauth::TlsListener>>,
    /// The verified client certificate, set after the handshake.
    pub client_cert: std::sync::OnceLock<tls::clientauth::PeerCert>,
    /// The environment the listener serves (CONTRACT-03).
    pub environment: Arc<str>,
    /// Host names the listener serves; empty: every host.
    pub hosts: Arc<[String]>,
    pub remote: SocketAddr,
    pub tls: bool,
    /// What [`listener::framing::FramingGuard`] found in this HTTP/1 connection's
    /// header blocks (ambiguous framing, per message).
    pub framing: Arc<listener::framing::FramingState>,
    /// A WebSocket accepted on this connection, run by the connection's
    /// task once hyper hands the connection over.
    pub relay: std::sync::Mutex<Option<pipeline::websocket::Relay>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Tls { path: String, source: tls::TlsError },
    #[error(transparent)]
    Routes(#[from] pipeline::routes::RouteTableError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Attest(#[from] identity::context_token::AttestError),
    #[error("{0}")]
    Shared(String),
    #[error("admin: cannot listen on {at}: {source}")]
    AdminBind { at: String, source: std::io::Error },
    #[error("health.bind: cannot listen on {addr}: {source}")]
    HealthBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("context_token.jwks_bind: cannot listen on {addr}: {source}")]
    JwksBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("trace_context.otlp: {0}")]
    Otlp(String),
    #[error("access_log.file: cannot open {file}: {source}")]
    AccessLog {
        file: String,
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
    Tls(Arc<tls::clientauth::TlsListener>),
    Redirect { https_port: u16 },
    Plain,
}

struct PreparedListener {
    name: Arc<str>,
    environment: Arc<str>,
    hosts: Arc<[String]>,
    bind: SocketAddr,
    kind: PreparedKind,
}

/// The state requests are served with. A reload swaps it whole; a request
/// keeps the state it started with until it is answered.
pub type Live = Arc<arc_swap::ArcSwap<State>>;

/// A gateway built from a config, not yet listening.
pub struct Gateway {
    state: Arc<State>,
    config: Config,
    listeners: Vec<PreparedListener>,
    /// The admin listener's mutual TLS, when it has it.
    admin_tls: Option<Arc<tls::clientauth::TlsListener>>,
    /// The config file, when the gateway may reload it (SIGHUP, admin API).
    source: Option<std::path::PathBuf>,
}

fn prepare_admin_tls(
    config: &Config,
) -> Result<Option<Arc<tls::clientauth::TlsListener>>, BuildError> {
    match &config.admin {
        Some(portcullis_config::AdminListen::MutualTls { tls, .. }) => {
            tls::clientauth::TlsListener::new(tls, config.mode)
                .map(|t| Some(Arc::new(t)))
                .map_err(|source| BuildError::Tls {
                    path: "admin.tls".into(),
                    source,
                })
        }
        _ => Ok(None),
    }
}

fn prepare_listeners(config: &Config) -> Result<Vec<PreparedListener>, BuildError> {
    let mut listeners = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let kind = match &l.kind {
            ListenerKind::Tls(t) => PreparedKind::Tls(Arc::new(
                tls::clientauth::TlsListener::new(t, config.mode).map_err(|source| {
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
            hosts: l.hosts.clone().into(),
            bind: l.bind,
            kind,
        });
    }
    Ok(listeners)
}

/// Where requests are reported besides their answer.
struct Outputs {
    events: EventSink,
    access_log: Option<Arc<events::access::AccessLog>>,
    spans: Option<Arc<events::otlp::Spans>>,
}

/// The event sink and the access log: opened once, taken over by a
/// reload. The span exporter follows its config.
fn open_outputs(config: &Config, previous: Option<&State>) -> Result<Outputs, BuildError> {
    let events = match previous {
        Some(p) => p.events.clone(),
        None => EventSink::start(&config.events).map_err(|source| BuildError::Events {
            file: config
                .events
                .file
                .as_ref()
                .map_or_else(String::new, |f| f.display().to_string()),
            source,
        })?,
    };
    // Like the event sink, the access log outlives a reload.
    let access_log = match (previous, &config.events.access_log) {
        (Some(p), _) => p.access_log.clone(),
        (None, None) => None,
        (None, Some(a)) => Some(Arc::new(events::access::AccessLog::start(a).map_err(
            |source| {
                BuildError::AccessLog {
                    file: a
                        .file
                        .as_ref()
                        .map_or_else(String::new, |f| f.display().to_string()),
                    source,
                }
            },
        )?)),
    };
    let spans = match &config.trace.otlp {
        None => None,
        Some(o) => Some(Arc::new(
            events::otlp::Spans::start(o).map_err(BuildError::Otlp)?,
        )),
    };
    Ok(Outputs {
        events,
        access_log,
        spans,
    })
}

/// Builds the request state for `config`. With `previous` (a reload), the
/// parts that outlive a config are taken over rather than opened again:
/// the event sink, the store and its snapshot, the limiters' state, the
/// context-token keys, the usage baselines and the traffic counters.
fn build_state(config: &Config, previous: Option<&State>) -> Result<State, BuildError> {
    let Outputs {
        events,
        access_log,
        spans,
    } = open_outputs(config, previous)?;
    let upstreams = config
        .upstreams
        .iter()
        .map(|u| {
            UpstreamClient::build(u, events.clone())
                .map(Arc::new)
                .map_err(|source| BuildError::Tls {
                    path: format!("upstreams.{}", u.name),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let attestor = match (
        previous.and_then(|p| p.attestor.as_ref()),
        &config.context_token,
    ) {
        (_, None) => None,
        (Some(kept), Some(_)) => Some(Arc::new(kept.for_upstreams(&config.upstreams)?)),
        (None, Some(c)) => Some(Arc::new(identity::context_token::Attestor::open(
            c,
            &config.upstreams,
        )?)),
    };
    let identity = match (previous.and_then(|p| p.identity.as_ref()), &config.identity) {
        (_, None) => None,
        (Some(kept), Some(i)) => Some(kept.reopen(i)?),
        (None, Some(i)) => Some(identity::IdentityState::open(i, events.clone())?),
    };
    let (throttle, limits) = match previous {
        Some(p) => p.throttle.rebuild(config),
        None => {
            let shared = config
                .redis
                .as_ref()
                .map(|r| pipeline::throttle::redis::SharedLimits::new(r, events.clone()))
                .transpose()
                .map_err(BuildError::Shared)?;
            pipeline::throttle::Throttle::build(config, shared)
        }
    };
    let routes = RouteTable::build(config, &limits)?;
    let traffic = match previous {
        Some(p) => p.traffic.clone(),
        None => Arc::new(events::traffic::Traffic::new(Vec::new())),
    };
    let route_traffic = traffic.retarget(routes.operations());
    let anomaly = config.anomalies.as_ref().map(|a| {
        let settings = pipeline::anomaly::Settings {
            interval: a.interval,
            warmup: a.warmup_intervals,
            factor: a.factor,
        };
        previous
            .and_then(|p| p.anomaly.as_ref())
            .filter(|d| *d.settings() == settings)
            .cloned()
            .unwrap_or_else(|| Arc::new(pipeline::anomaly::Detector::new(settings)))
    });
    Ok(State {
        routes,
        upstreams,
        limits: config.limits.clone(),
        correlation_header: config.correlation_header.clone(),
        trace_start: config.trace.start,
        // The API key authenticates the application to the gateway only.
        request_remove_headers: config
            .request_remove_headers
            .iter()
            .chain(config.identity.as_ref().map(|i| &i.api_key_header))
            .cloned()
            .collect(),
        response_remove_headers: config.response_remove_headers.clone(),
        events,
        access_log,
        spans,
        identity,
        sensitive: config.sensitive.clone(),
        attestor,
        throttle,
        traffic,
        route_traffic,
        anomaly,
        buffers: previous.map_or_else(
            || listener::buffer::BufferBudget::new(config.limits.max_buffered_bytes),
            |p| p.buffers.clone(),
        ),
    })
}

impl Gateway {
    /// Loads certificates and keys, compiles routes, builds upstream
    /// clients. Fails with the config field at fault.
    pub fn build(config: &Config) -> Result<Self, BuildError> {
        let listeners = prepare_listeners(config)?;
        let admin_tls = prepare_admin_tls(config)?;
        Ok(Self {
            state: Arc::new(build_state(config, None)?),
            config: config.clone(),
            listeners,
            admin_tls,
            source: None,
        })
    }

    /// Lets the running gateway reload `path` on SIGHUP and through the
    /// admin API (`POST /admin/v1/reload`).
    #[must_use]
    pub fn reloadable_from(mut self, path: &std::path::Path) -> Self {
        self.source = Some(path.to_owned());
        self
    }

    pub fn events(&self) -> &EventSink {
        &self.state.events
    }

    /// Binds every listener and starts serving.
    pub async fn start(self) -> Result<RunningGateway, BuildError> {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let max = self.state.limits.max_connections;
        let http = Arc::new(listener::http_builders(&self.state.limits));
        let (addrs, bound) = bind_listeners(self.listeners).await?;
        let mut started = Started {
            addrs,
            tasks: Vec::new(),
            shutdown: shutdown_rx,
        };
        if let Some(identity) = &self.state.identity {
            identity.spawn_jwks_refresh();
        }
        for upstream in &self.state.upstreams {
            upstream.spawn_health_checks();
        }
        let live: Live = Arc::new(arc_swap::ArcSwap::new(self.state.clone()));
        let reloader = self.source.map(|source| {
            Arc::new(reload::Reloader::new(
                source,
                live.clone(),
                self.config.clone(),
                bound
                    .iter()
                    .map(|(_, l)| match &l.kind {
                        PreparedKind::Tls(t) => Some(t.clone()),
                        _ => None,
                    })
                    .collect(),
                self.admin_tls.clone(),
            ))
        });
        if let Some(r) = &reloader {
            started.spawn(reload::on_hangup(r.clone(), started.shutdown.clone()));
        }
        start_context_token(&mut started, &self.state, &self.config).await?;
        let plane = match (&self.config.admin, &self.state.identity) {
            (Some(listen), Some(identity)) => Some((
                listen,
                Arc::new(admin::AdminPlane::new(
                    identity.view().clone(),
                    live.clone(),
                    reloader.clone(),
                    admin::spool_of(&self.config.events),
                )),
            )),
            _ => None,
        };
        if let Some((listen, plane)) = plane {
            start_admin(&mut started, listen, plane, self.admin_tls.as_ref()).await?;
        }
        watch_crls(&mut started, &bound, self.admin_tls.as_ref(), &live);
        // The probes outlive the data plane on shutdown: readiness fails
        // while in-flight requests finish.
        let health = match self.config.health {
            Some(addr) => Some(start_health(&mut started, addr, &live).await?),
            None => None,
        };
        // One connection cap per listener, so that connections held on one
        // (say the plaintext redirect port) cannot starve another.
        let mut connections = Vec::new();
        for (socket, l) in bound {
            tracing::info!(listener = &*l.name, addr = %socket.local_addr().map_or(l.bind, |a| a), "listening");
            let cap = Arc::new(Semaphore::new(max));
            connections.push(cap.clone());
            let accepting = listener::Accepting {
                listener: Arc::new(l),
                live: live.clone(),
                http: http.clone(),
                connections: cap,
                clients: listener::ClientCaps::new(&self.state.limits),
            };
            let shutdown = started.shutdown.clone();
            started.spawn(listener::accept_loop(socket, accepting, shutdown));
        }
        Ok(RunningGateway {
            addrs: started.addrs,
            live,
            reloader,
            shutdown_tx,
            tasks: started.tasks,
            connections,
            max_connections: max,
            health,
        })
    }
}

/// What starting collects: the bound addresses by name and the spawned
/// tasks, all stopped by one shutdown signal.
struct Started {
    addrs: Vec<(String, SocketAddr)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: watch::Receiver<bool>,
}

impl Started {
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }
}

type Bound = Vec<(tokio::net::TcpListener, PreparedListener)>;

/// Binds every data-plane listener before anything is served, so that one
/// failed bind stops the start; the addresses by listener name.
async fn bind_listeners(
    listeners: Vec<PreparedListener>,
) -> Result<(Vec<(String, SocketAddr)>, Bound), BuildError> {
    let mut addrs = Vec::new();
    let mut bound = Vec::new();
    for (index, l) in listeners.into_iter().enumerate() {
        let failed = |source| BuildError::Bind {
            index,
            addr: l.bind,
            source,
        };
        let socket = tokio::net::TcpListener::bind(l.bind)
            .await
            .map_err(failed)?;
        let addr = socket.local_addr().map_err(failed)?;
        addrs.push((l.name.to_string(), addr));
        bound.push((socket, l));
    }
    Ok((addrs, bound))
}

/// The context token's key rotation and, when configured, its JWKS listener.
async fn start_context_token(
    started: &mut Started,
    state: &State,
    config: &Config,
) -> Result<(), BuildError> {
    let Some(attestor) = &state.attestor else {
        return Ok(());
    };
    let shutdown = started.shutdown.clone();
    started.spawn(identity::context_token::rotate_keys(
        attestor.clone(),
        state.events.clone(),
        shutdown,
    ));
    if let Some(bind) = config.context_token.as_ref().and_then(|c| c.jwks_bind) {
        let failed = |source| BuildError::JwksBind { addr: bind, source };
        let socket = tokio::net::TcpListener::bind(bind).await.map_err(failed)?;
        let addr = socket.local_addr().map_err(failed)?;
        tracing::info!(%addr, "serving the context-token JWKS");
        started.addrs.push(("jwks".to_owned(), addr));
        let shutdown = started.shutdown.clone();
        started.spawn(identity::context_token::serve_jwks(
            attestor.clone(),
            socket,
            shutdown,
        ));
    }
    Ok(())
}

/// The admin plane on its own listener: loopback TCP, mutual TLS, or a
/// unix socket (mode 0600).
async fn start_admin(
    started: &mut Started,
    listen: &portcullis_config::AdminListen,
    plane: Arc<admin::AdminPlane>,
    admin_tls: Option<&Arc<tls::clientauth::TlsListener>>,
) -> Result<(), BuildError> {
    let at = |source| BuildError::AdminBind {
        at: match listen {
            portcullis_config::AdminListen::Tcp(a)
            | portcullis_config::AdminListen::MutualTls { addr: a, .. } => a.to_string(),
            portcullis_config::AdminListen::Unix(p) => p.display().to_string(),
        },
        source,
    };
    let shutdown = started.shutdown.clone();
    match listen {
        portcullis_config::AdminListen::Tcp(addr)
        | portcullis_config::AdminListen::MutualTls { addr, .. } => {
            let socket = tokio::net::TcpListener::bind(addr).await.map_err(at)?;
            let addr = socket.local_addr().map_err(at)?;
            tracing::info!(%addr, mutual_tls = admin_tls.is_some(), "admin plane listening");
            started.addrs.push(("admin".to_owned(), addr));
            started.spawn(admin::serve(plane, socket, admin_tls.cloned(), shutdown));
        }
        portcullis_config::AdminListen::Unix(path) => {
            use std::os::unix::fs::{FileTypeExt, PermissionsExt};
            // A socket left by an earlier run; anything else is not ours to remove.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = std::fs::remove_file(path);
            }
            let socket = tokio::net::UnixListener::bind(path).map_err(at)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(at)?;
            tracing::info!(path = %path.display(), "admin plane listening");
            started.spawn(admin::serve(plane, socket, None, shutdown));
        }
    }
    Ok(())
}

/// Watches the CRL files of every TLS listener (admin included) and of the
/// upstreams in force, whatever a reload changes (TLS-01).
fn watch_crls(
    started: &mut Started,
    bound: &Bound,
    admin_tls: Option<&Arc<tls::clientauth::TlsListener>>,
    live: &Live,
) {
    let listeners_with_crls: Vec<Arc<dyn tls::clientauth::CrlHolder>> = bound
        .iter()
        .filter_map(|(_, l)| match &l.kind {
            PreparedKind::Tls(t) => Some(t.clone() as Arc<dyn tls::clientauth::CrlHolder>),
            _ => None,
        })
        .chain(
            admin_tls
                .into_iter()
                .map(|t| t.clone() as Arc<dyn tls::clientauth::CrlHolder>),
        )
        .collect();
    let crl_live = live.clone();
    let events = live.load().events.clone();
    let shutdown = started.shutdown.clone();
    started.spawn(tls::clientauth::watch_crls(
        move || {
            let mut holders = listeners_with_crls.clone();
            holders.extend(
                crl_live
                    .load()
                    .upstreams
                    .iter()
                    .filter(|u| u.has_crls())
                    .map(|u| u.clone() as Arc<dyn tls::clientauth::CrlHolder>),
            );
            holders
        },
        events,
        shutdown,
    ));
}

/// A gateway that is serving.
#[derive(Debug)]
pub struct RunningGateway {
    addrs: Vec<(String, SocketAddr)>,
    live: Live,
    reloader: Option<Arc<reload::Reloader>>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Each listener's connection cap.
    connections: Vec<Arc<Semaphore>>,
    max_connections: usize,
    health: Option<HealthListener>,
}

/// The probes' listener: stopped last, on its own signal.
#[derive(Debug)]
struct HealthListener {
    health: Arc<listener::health::Health>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_health(
    started: &mut Started,
    addr: SocketAddr,
    live: &Live,
) -> Result<HealthListener, BuildError> {
    let at = |source| BuildError::HealthBind { addr, source };
    let socket = tokio::net::TcpListener::bind(addr).await.map_err(at)?;
    let bound = socket.local_addr().map_err(at)?;
    tracing::info!(addr = %bound, "health probes listening");
    started.addrs.push(("health".to_owned(), bound));
    let health = listener::health::Health::new(live.clone());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(listener::health::serve(socket, health.clone(), stopped));
    Ok(HealthListener { health, stop, task })
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

    pub fn events(&self) -> EventSink {
        self.live.load().events.clone()
    }

    pub fn identity(&self) -> Option<Arc<identity::IdentityState>> {
        self.live.load().identity.clone()
    }

    pub fn attestor(&self) -> Option<Arc<identity::context_token::Attestor>> {
        self.live.load().attestor.clone()
    }

    /// Reloads the config file (see [`reload`]); `None` when the gateway
    /// was not started with [`Gateway::reloadable_from`].
    pub fn reloader(&self) -> Option<&Arc<reload::Reloader>> {
        self.reloader.as_ref()
    }

    /// Fails readiness, stops accepting, asks every connection to finish
    /// its in-flight requests, waits up to `grace` for them, then stops
    /// the probes.
    pub async fn shutdown(self, grace: Duration) {
        if let Some(h) = &self.health {
            h.health.drain();
        }
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        let drained = async {
            for cap in &self.connections {
                let _ = cap.acquire_many(all).await;
            }
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!("shutdown grace period over with connections still open");
        }
        if let Some(h) = self.health {
            let _ = h.stop.send(true);
            let _ = h.task.await;
        }
    }
}
