//! Upstream connections (TLS-04, TLS-09): a pooled client per upstream,
//! TLS 1.3 with chain and server-name verification against the configured
//! trust anchors on every new connection, and connect, request and idle
//! timeouts. Connect failures map to 502, timeouts to 504; upstream error
//! detail stays in events.

use crate::rejection::Rejection;
use crate::tls::{self, TlsError};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::{Upstream, UpstreamScheme};
use rustls_pki_types::ServerName;
use std::time::Duration;

#[derive(Debug)]
pub struct UpstreamClient {
    pub name: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    scheme: &'static str,
    authority: http::uri::Authority,
    base_path: String,
    request_timeout: Duration,
}

impl UpstreamClient {
    pub fn build(u: &Upstream) -> Result<Self, TlsError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(u.connect_timeout));
        http.set_nodelay(true);
        let builder = HttpsConnectorBuilder::new();
        let connector = match (u.scheme, &u.ca) {
            (UpstreamScheme::Https, Some(ca)) => {
                let name = ServerName::try_from(u.server_name.clone()).map_err(|_| {
                    TlsError::Identity(format!("`{}` is not a server name", u.server_name))
                })?;
                builder
                    .with_tls_config(tls::upstream_client_config(
                        ca,
                        u.client_identity.as_ref(),
                        &u.spki_pins,
                    )?)
                    .https_only()
                    .with_server_name_resolver(FixedServerNameResolver::new(name))
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http)
            }
            (UpstreamScheme::Https, None) => {
                return Err(TlsError::Identity(
                    "https upstream without trust anchors".into(),
                ));
            }
            // `dangerous_plaintext_upstream`: validated and reported by `check`.
            (UpstreamScheme::DangerousHttp, _) => builder
                .with_tls_config(
                    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                        tls::provider(),
                    ))
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .map_err(|e| TlsError::Identity(e.to_string()))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                )
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(u.pool_idle_timeout)
            .pool_max_idle_per_host(u.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            name: u.name.clone(),
            client,
            scheme: match u.scheme {
                UpstreamScheme::Https => "https",
                UpstreamScheme::DangerousHttp => "http",
            },
            authority: u.authority.clone(),
            base_path: u.base_path.clone(),
            request_timeout: u.request_timeout,
        })
    }

    /// The absolute URI for a path (already canonically encoded) and query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, Rejection> {
        let mut pq = String::with_capacity(
            self.base_path.len() + path.len() + 1 + query.map_or(0, str::len),
        );
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::builder()
            .scheme(self.scheme)
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| Rejection::UpstreamUnavailable(format!("cannot build upstream URI: {e}")))
    }

    /// Sends the request; the response head must arrive within the request timeout.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, Rejection> {
        match tokio::time::timeout(self.request_timeout, self.client.request(request)).await {
            Err(_) => Err(Rejection::UpstreamTimeout),
            Ok(Err(e)) => Err(Rejection::UpstreamUnavailable(format!(
                "{}: {}",
                self.name,
                error_chain(&e)
            ))),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
