//! The admin plane (OPS-03, OPS-04, OPS-05, PROC-06): a JSON API on its own
//! listener (loopback or a unix socket, never a data-plane listener) for
//! administrators with roles, and everything it changes goes through the
//! store, so every instance sharing the store applies it.
//!
//! - Authentication: `Authorization: Bearer pcadm_<id>_<secret>`, created by
//!   `portcullis admin create` (or by a security-admin here); only an
//!   HMAC under the pepper is stored, compared in constant time.
//! - Roles: `viewer` reads; `operator` also switches APIs, routes and
//!   applications off and on; `security-admin` also manages applications,
//!   keys and administrators. No credential → 401, wrong role → 403: both
//!   are audited and raise a security event.
//! - Audit: each change is appended to the hash-chained log *before* it is
//!   made (an action that cannot be logged is not made); a change that then
//!   fails is followed by a `failed:` entry.

mod endpoints;
pub mod process;

use crate::Live;
use crate::clock::now;
use crate::events::SecurityEvent;
use crate::identity::StoreView;
use crate::identity::apikeys;
use crate::rejection::Rejection;
use crate::reload::Reloader;
use crate::store::audit_log::{self, AuditEntry};
use crate::store::pepper::Pepper;
use crate::store::{Admin, Store, StoreError};
use bytes::Bytes;
use endpoints::{Action, Request, Subject};
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use std::sync::Arc;

/// Recognisable prefix of admin tokens.
pub const TOKEN_PREFIX: &str = "pcadm_";
/// Largest admin request body.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Operator,
    SecurityAdmin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "security-admin" => Some(Self::SecurityAdmin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::SecurityAdmin => "security-admin",
        }
    }
}

/// Creates an administrator; returns the token, shown once.
pub fn create_admin(
    store: &dyn Store,
    pepper: &Pepper,
    name: &str,
    role: Role,
    actor: (&str, &str),
    correlation_id: &str,
) -> Result<String, StoreError> {
    let (id, token) = apikeys::generate_with(TOKEN_PREFIX);
    let entry = AuditEntry {
        at: now(),
        actor: actor.0.to_owned(),
        role: actor.1.to_owned(),
        action: "admin.create".into(),
        target: name.to_owned(),
        before: None,
        after: Some(json!({ "name": name, "role": role.as_str(), "id": id })),
        reason: None,
        correlation_id: correlation_id.to_owned(),
    };
    logged(store, pepper, entry, || {
        store.create_admin(&Admin {
            id: id.clone(),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            mac: pepper.digest(&token),
            created_at: now(),
            disabled_at: None,
        })
    })?;
    Ok(token)
}

/// Appends `entry`, then makes the change; a failed change gets a
/// `failed:` entry. An action that cannot be logged is not made.
pub fn logged<T>(
    store: &dyn Store,
    pepper: &Pepper,
    entry: AuditEntry,
    change: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    audit_log::append(store, pepper, &entry)?;
    change().inspect_err(|e| {
        let failed = AuditEntry {
            action: format!("failed:{}", entry.action),
            reason: Some(e.to_string()),
            ..entry
        };
        let _ = audit_log::append(store, pepper, &failed);
    })
}

/// The admin plane's shared state.
pub struct AdminPlane {
    /// The store, the pepper and the snapshot (they outlive reloads).
    identity: Arc<StoreView>,
    /// The request state in force: routes (kill-switch targets), traffic, events.
    live: Live,
    /// Present when the gateway was started from a config file.
    reloader: Option<Arc<Reloader>>,
    /// The event spool and its remote sinks, for the backlog gauge.
    spool: Option<(std::path::PathBuf, Vec<String>)>,
}

/// The event spool directory and the remote sinks shipping from it.
pub fn spool_of(events: &portcullis_config::Events) -> Option<(std::path::PathBuf, Vec<String>)> {
    events.spool.as_ref().map(|s| {
        (
            s.dir.clone(),
            [
                events.syslog.as_ref().map(|_| "syslog".to_owned()),
                events.http.as_ref().map(|_| "http".to_owned()),
            ]
            .into_iter()
            .flatten()
            .collect(),
        )
    })
}

impl std::fmt::Debug for AdminPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminPlane")
    }
}

/// An answer of the admin API: done (JSON, or a bare string for
/// Prometheus text), or refused with the gateway's one [`Rejection`] type,
/// which makes its problem body like every other plane's.
enum Answer {
    Done(StatusCode, Value),
    Refused(Rejection),
}

impl Answer {
    /// A refusal with the list of problems found (a config refused on reload).
    fn with_errors(self, messages: Vec<String>) -> Self {
        match self {
            Answer::Refused(Rejection::AdminRequest {
                status,
                code,
                detail,
                ..
            }) => Answer::Refused(Rejection::AdminRequest {
                status,
                code,
                detail,
                errors: messages,
            }),
            other => other,
        }
    }
}

fn problem(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Answer {
    Answer::Refused(Rejection::AdminRequest {
        status,
        code,
        detail: detail.into(),
        errors: Vec::new(),
    })
}

/// The path below `/admin/v1/` (or `/metrics`), segment by segment,
/// percent-decoded: names travel percent-encoded in the path.
fn segments(path: &str) -> Result<Vec<String>, Answer> {
    let rest = if path == "/metrics" {
        Some("metrics")
    } else {
        path.strip_prefix("/admin/v1/")
    };
    let Some(rest) = rest else {
        return Err(problem(
            StatusCode::NOT_FOUND,
            "admin-not-found",
            "No admin endpoint here; the admin API lives under /admin/v1/.",
        ));
    };
    Ok(rest
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect())
}

fn no_such_endpoint() -> Answer {
    problem(
        StatusCode::NOT_FOUND,
        "admin-not-found",
        "No such admin endpoint or method.",
    )
}

fn store_problem(e: &StoreError) -> Answer {
    match e {
        StoreError::NoSuchApp(_) | StoreError::NoSuchKey(_) | StoreError::NoSuchKillSwitch(_) => {
            problem(StatusCode::NOT_FOUND, "admin-not-found", e.to_string())
        }
        StoreError::AppExists(_) | StoreError::AdminExists(_) => {
            problem(StatusCode::CONFLICT, "admin-conflict", e.to_string())
        }
        _ => {
            tracing::error!(error = %e, "admin API: store error");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "admin-store-unavailable",
                "The store could not be used; nothing was changed. Retry later.",
            )
        }
    }
}

/// The authenticated administrator of a request.
struct Caller {
    name: String,
    role: Role,
}

impl AdminPlane {
    pub fn new(
        identity: Arc<StoreView>,
        live: Live,
        reloader: Option<Arc<Reloader>>,
        spool: Option<(std::path::PathBuf, Vec<String>)>,
    ) -> Self {
        Self {
            identity,
            live,
            reloader,
            spool,
        }
    }

    /// Serves one request (blocking work happens off the runtime's workers).
    /// `peer`: the client certificate of a mutual-TLS admin connection.
    pub async fn serve(
        self: Arc<Self>,
        req: http::Request<hyper::body::Incoming>,
        peer: Option<Arc<AdminPeer>>,
    ) -> Response<Full<Bytes>> {
        let correlation_id = uuid::Uuid::now_v7().to_string();
        // Mutual TLS is the only TLS the admin listener speaks.
        let tls = peer.is_some();
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return respond(
                    problem(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "admin-body",
                        format!("Admin request bodies are at most {MAX_BODY} bytes."),
                    ),
                    &correlation_id,
                    tls,
                );
            }
        };
        let id = correlation_id.clone();
        let answer =
            tokio::task::spawn_blocking(move || self.answer(&parts, &body, peer.as_deref(), &id))
                .await
                .unwrap_or_else(|_| {
                    problem(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "admin-internal",
                        "The admin request failed; nothing is known to have changed.",
                    )
                });
        respond(answer, &correlation_id, tls)
    }

    fn answer(
        &self,
        parts: &http::request::Parts,
        body: &Bytes,
        peer: Option<&AdminPeer>,
        correlation_id: &str,
    ) -> Answer {
        let path = parts.uri.path();
        let method = &parts.method;
        if let Some(answer) = self.probe(method, path) {
            return answer;
        }
        let decoded = match segments(path) {
            Ok(d) => d,
            Err(answer) => return answer,
        };
        let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let found = endpoints::find(method.as_str(), &segments);
        // Reads of an unknown path are authenticated first, like every
        // read; an unknown change is refused at once.
        let action = match (&found, method.as_str()) {
            (Some((endpoint, _)), _) => endpoint.action,
            (None, "GET") => Action::Read,
            (None, _) => return no_such_endpoint(),
        };
        let caller = match self.authenticate(&parts.headers, peer) {
            Ok(c) => c,
            Err(reason) => {
                return self.deny(
                    Rejection::AdminUnauthenticated(reason),
                    ("unknown", "none"),
                    action,
                    path,
                    correlation_id,
                );
            }
        };
        if !action.allowed(caller.role) {
            return self.deny(
                Rejection::AdminForbidden {
                    role: caller.role.as_str(),
                    action: action.verb(),
                    needs: action.needs(),
                },
                (&caller.name, caller.role.as_str()),
                action,
                path,
                correlation_id,
            );
        }
        let input: Value = if body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(body) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "admin-body",
                        "Send a JSON object as the request body.",
                    );
                }
            }
        };
        let Some((endpoint, param)) = found else {
            return no_such_endpoint();
        };
        let request = Request {
            plane: self,
            caller: &caller,
            param,
            input: &input,
            query: parts.uri.query(),
            correlation_id,
            store: self.identity.store().clone(),
            state: self.live.load_full(),
        };
        let result = (endpoint.handler)(&request);
        if action != Action::Read && matches!(result, Ok(Answer::Done(..))) {
            self.changed(&request, endpoint);
        }
        result.unwrap_or_else(|e| store_problem(&e))
    }

    /// The orchestrator's probes: `/healthz` (the process answers) and
    /// `/readyz` (the store answers); `None` for any other request.
    fn probe(&self, method: &Method, path: &str) -> Option<Answer> {
        if *method != Method::GET {
            return None;
        }
        match path {
            "/healthz" => Some(Answer::Done(StatusCode::OK, json!({ "status": "alive" }))),
            "/readyz" => Some(match self.identity.store().apps() {
                Ok(_) => Answer::Done(StatusCode::OK, json!({ "status": "ready" })),
                Err(_) => problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "admin-not-ready",
                    "The store does not answer.",
                ),
            }),
            _ => None,
        }
    }

    /// After a change: this instance applies it on its next request
    /// (others hear of it through the store), and the endpoint's
    /// account-change event, if any, names the caller and the target.
    fn changed(&self, request: &Request<'_>, endpoint: &endpoints::Endpoint) {
        let _ = self.identity.refresh();
        if let Some((change, subject)) = endpoint.change {
            let target = match subject {
                Subject::Param => request.param.to_owned(),
                Subject::Field(field) => request.text(field).unwrap_or_default(),
            };
            self.live.load().events.emit(SecurityEvent::account_change(
                change,
                &request.caller.name,
                &target,
                request.correlation_id,
            ));
        }
    }

    /// The administrator of a request: by admin token when one is sent,
    /// otherwise by the client certificate of a mutual-TLS connection
    /// (re-checked against the CRLs and the clock), whose DNS or URI name
    /// is the administrator's name.
    fn authenticate(
        &self,
        headers: &http::HeaderMap,
        peer: Option<&AdminPeer>,
    ) -> Result<Caller, &'static str> {
        if let Some(peer) = peer {
            peer.listener
                .recheck(Some(&peer.cert), now())
                .map_err(|_| "client certificate revoked or expired")?;
        }
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let admin = match (values.next(), values.next(), peer) {
            (Some(value), None, _) => {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or("not a bearer credential")?;
                let id = apikeys::key_id_with(TOKEN_PREFIX, token).ok_or("not an admin token")?;
                let admin = self
                    .identity
                    .store()
                    .admin(id)
                    .map_err(|_| "store unavailable")?
                    .ok_or("unknown admin token")?;
                if !self.identity.pepper().verify(token, &admin.mac) {
                    return Err("unknown admin token");
                }
                admin
            }
            (None, _, Some(peer)) => {
                let admins = self
                    .identity
                    .store()
                    .admins()
                    .map_err(|_| "store unavailable")?;
                let mut named = admins
                    .into_iter()
                    .filter(|a| peer.cert.names.contains(&a.name));
                match (named.next(), named.next()) {
                    (Some(admin), None) => admin,
                    (None, _) => return Err("the client certificate names no administrator"),
                    (Some(_), Some(_)) => {
                        return Err("the client certificate names more than one administrator");
                    }
                }
            }
            _ => return Err("no (or more than one) Authorization header"),
        };
        if admin.disabled_at.is_some() {
            return Err("administrator disabled");
        }
        let role = Role::parse(&admin.role).ok_or("unknown role")?;
        Ok(Caller {
            name: admin.name,
            role,
        })
    }

    /// A refused admin request: audited, an event, and the problem answer.
    fn deny(
        &self,
        rejection: Rejection,
        actor: (&str, &str),
        action: Action,
        path: &str,
        correlation_id: &str,
    ) -> Answer {
        let entry = AuditEntry {
            at: now(),
            actor: actor.0.to_owned(),
            role: actor.1.to_owned(),
            action: format!("denied:{}", action.verb()),
            target: path.to_owned(),
            before: None,
            after: None,
            reason: Some(rejection.to_string()),
            correlation_id: correlation_id.to_owned(),
        };
        if let Err(e) = audit_log::append(
            self.identity.store().as_ref(),
            self.identity.pepper(),
            &entry,
        ) {
            tracing::error!(error = %e, "admin API: the audit log could not record a refusal");
        }
        self.live.load().events.emit(SecurityEvent::operational(
            rejection.code(),
            rejection.severity(),
            &rejection.to_string(),
        ));
        Answer::Refused(rejection)
    }
}

/// The one way an admin answer becomes a response: a refusal through
/// [`Rejection::to_response`] like the data plane's, and every answer with
/// the data plane's hardening headers and correlation id.
fn respond(answer: Answer, correlation_id: &str, tls: bool) -> Response<Full<Bytes>> {
    let mut r = match answer {
        Answer::Refused(rejection) => rejection.to_response(correlation_id, CORRELATION_HEADER),
        Answer::Done(_, Value::String(text)) => {
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        Answer::Done(status, body) => {
            let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    };
    crate::pipeline::hardening::apply_own(r.headers_mut(), correlation_id, tls);
    r
}

/// The admin plane's correlation header (its ids are always its own).
const CORRELATION_HEADER: &str = "x-correlation-id";

/// The verified client certificate of a mutual-TLS admin connection.
pub struct AdminPeer {
    cert: crate::tls::clientauth::PeerCert,
    listener: Arc<crate::tls::clientauth::TlsListener>,
}

/// Accepts admin connections until shutdown (HTTP/1.1, 5 s header
/// timeout); with `tls`, each connection is mutual TLS first (10 s
/// handshake timeout) and a connection without a usable client
/// certificate is closed.
pub async fn serve<L>(
    plane: Arc<AdminPlane>,
    listener: L,
    tls: Option<Arc<crate::tls::clientauth::TlsListener>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    L: Accept,
{
    loop {
        let stream = tokio::select! {
            r = listener.accept_one() => match r { Ok(s) => s, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let plane = plane.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return serve_connection(plane, stream, None).await;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            let Ok(Ok(stream)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream))
                    .await
            else {
                return;
            };
            let Some(cert) = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(crate::tls::clientauth::PeerCert::from_der)
            else {
                return;
            };
            let peer = Arc::new(AdminPeer {
                cert,
                listener: tls,
            });
            serve_connection(plane, stream, Some(peer)).await;
        });
    }
}

async fn serve_connection<S>(plane: Arc<AdminPlane>, stream: S, peer: Option<Arc<AdminPeer>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let plane = plane.clone();
        let peer = peer.clone();
        async move { Ok::<_, std::convert::Infallible>(plane.serve(req, peer).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(5))
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// A TCP or unix listener.
pub trait Accept: Send + 'static {
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn accept_one(&self)
    -> impl std::future::Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}
