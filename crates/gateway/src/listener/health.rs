//! The orchestrator's probes (OPS-05: the admin plane stays on loopback or
//! mutual TLS, so probes get a listener of their own that serves nothing
//! else): `GET /healthz` answers while the process serves; `GET /readyz`
//! answers 200 only while this instance should get traffic: not draining
//! (a SIGTERM fails readiness first), with an identity store, its
//! snapshot confirmed current within `identity.max_staleness_s`, and every
//! upstream with at least one available target. Plain
//! HTTP, one request per connection, at most [`MAX_CONNECTIONS`] at once,
//! each given [`HEADER_TIMEOUT`] to send its head: a probe port cannot be
//! used to hold the process's resources.

use crate::Live;
use crate::rejection::Rejection;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Probe connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a probe has to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the probes read.
#[derive(Debug)]
pub struct Health {
    live: Live,
    draining: AtomicBool,
}

impl Health {
    pub fn new(live: Live) -> Arc<Self> {
        Arc::new(Self {
            live,
            draining: AtomicBool::new(false),
        })
    }

    /// From now on `/readyz` fails: the instance is shutting down.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Why this instance should get no traffic now, if it should not.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::Acquire) {
            return Some("shutting down");
        }
        let state = self.live.load();
        if let Some(identity) = &state.identity
            && identity.view().staleness() > identity.config.max_staleness
        {
            return Some("its identity store is not confirmed current");
        }
        if state.upstreams.iter().any(|u| !u.targets.any_available()) {
            return Some("an upstream has no available target");
        }
        None
    }

    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let state = self.live.load();
        let correlation = crate::pipeline::correlation::from_request(
            request.headers(),
            &state.correlation_header,
        );
        let refuse =
            |r: Rejection| r.to_response(correlation.as_str(), state.correlation_header.as_str());
        let path = request.uri().path();
        if path != "/healthz" && path != "/readyz" {
            return refuse(Rejection::UnknownRoute);
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return refuse(Rejection::MethodNotAllowed {
                allow: HeaderValue::from_static("GET, HEAD"),
            });
        }
        let status = match (path, self.not_ready()) {
            ("/readyz", Some(why)) => return refuse(Rejection::NotReady(why)),
            ("/readyz", None) => "ready",
            _ => "alive",
        };
        let mut response = Response::new(Full::new(Bytes::from(format!(
            "{{\"status\":\"{status}\"}}"
        ))));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(state.correlation_header.clone(), correlation.value);
        response
    }
}

/// Serves the probes until `stop` turns true.
pub async fn serve(socket: TcpListener, health: Arc<Health>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "health listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let health = health.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = health.answer(&request);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .max_buf_size(8192)
                .serve_connection(TokioIo::new(stream), service);
            // A probe that stalls after its head is cut off as well.
            let _ = tokio::time::timeout(HEADER_TIMEOUT * 2, connection).await;
            drop(slot);
        });
    }
}
