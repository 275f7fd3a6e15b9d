//! Test harness: a real gateway in front of a recording backend, both on
//! loopback ephemeral ports with generated certificates, and HTTPS clients
//! (HTTP/1.1 and HTTP/2) that send paths exactly as written.
//!
//! ```ignore
//! let env = TestEnv::new().await;
//! let gw = env.gateway(ROUTES).start().await;
//! let r = gw.get("/v1/orders").await;
//! ```
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

mod issuer;
mod servers;

pub use issuer::{TestIssuer, jwe_encrypt};
pub use servers::{PostgresServer, RedisServer, free_port};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_gateway::dev::backend::{self, BackendServer, Handler};
use portcullis_gateway::dev::pki::{DevCa, IssuedFiles};
use portcullis_gateway::events::SecurityEvent;
use portcullis_gateway::{Gateway, RunningGateway};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// A request as the backend received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A reply header the backend consumes: wait this many milliseconds before answering.
pub const DELAY_HEADER: &str = "x-testkit-delay-ms";

/// The backend's answer to a request.
pub type Reply = Arc<dyn Fn(&Recorded) -> Response<Full<Bytes>> + Send + Sync>;

/// The default reply: 200 JSON with platform banners the gateway must remove.
pub fn default_reply() -> Reply {
    Arc::new(|_r: &Recorded| {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("server", "Apache/2.4.41 (Ubuntu)")
            .header("x-powered-by", "PHP/7.4.3")
            .header("x-aspnet-version", "4.0.30319")
            .header("cache-control", "public, max-age=86400")
            .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
            .unwrap()
    })
}

/// The development PKI and backend shared by a test.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub ca: DevCa,
    pub ca_path: PathBuf,
    pub gateway_cert: IssuedFiles,
    pub backend: BackendServer,
    pub recorded: Arc<Mutex<Vec<Recorded>>>,
    reply: Arc<Mutex<Reply>>,
}

impl TestEnv {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = DevCa::new("Portcullis Test CA").expect("CA");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        let gateway_cert = ca
            .issue_to(dir.path(), "gateway", &["localhost", "127.0.0.1"], false)
            .unwrap();
        let backend_id = ca.issue(&["backend.test", "127.0.0.1"], false).unwrap();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let reply: Arc<Mutex<Reply>> = Arc::new(Mutex::new(default_reply()));
        let handler: Handler = {
            let recorded = recorded.clone();
            let reply = reply.clone();
            Arc::new(move |req: Request<Bytes>, _peer| {
                let (parts, body) = req.into_parts();
                let r = Recorded {
                    method: parts.method,
                    uri: parts.uri,
                    version: parts.version,
                    headers: parts.headers,
                    body,
                };
                let mut answer = (reply.lock().unwrap().clone())(&r);
                recorded.lock().unwrap().push(r);
                let delay = answer
                    .headers_mut()
                    .remove(DELAY_HEADER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                Box::pin(async move {
                    if let Some(ms) = delay {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    answer
                })
            })
        };
        let tls = backend::tls_from_pem(&backend_id.cert_pem, &backend_id.key_pem).unwrap();
        let backend = BackendServer::start("127.0.0.1:0".parse().unwrap(), tls, handler)
            .await
            .expect("backend");
        Self {
            dir,
            ca,
            ca_path,
            gateway_cert,
            backend,
            recorded,
            reply,
        }
    }

    /// Replaces how the backend answers.
    pub fn reply_with(
        &self,
        reply: impl Fn(&Recorded) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) {
        *self.reply.lock().unwrap() = Arc::new(reply);
    }

    /// Everything the backend has received so far.
    pub fn received(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A gateway config whose `apis` section is `apis_yaml`.
    pub fn gateway(&self, apis_yaml: &str) -> GatewayBuilder<'_> {
        GatewayBuilder {
            env: self,
            apis: apis_yaml.to_owned(),
            top: String::new(),
            upstream_extra: String::new(),
            more_upstreams: String::new(),
            upstream_ca: None,
            listeners: None,
        }
    }
}

/// The routes most tests use: an orders API mounted at `/v1`.
pub const ORDERS_API: &str = r#"
  - name: orders
    base_path: /v1
    upstream: backend
    routes:
      - { path: /orders, methods: [GET, POST], auth: public }
      - { path: "/orders/{id}", methods: [GET, DELETE], auth: public }
"#;

/// The quickstart's demo OpenAPI document: every contract control has a case in it.
pub const DEMO_OPENAPI: &str = include_str!("../../portcullis/demo/orders-openapi.yaml");

impl TestEnv {
    /// An `apis:` entry for the demo document (written to the test directory),
    /// mounted at `/v1` with `getHealth` public; `contract` adds settings
    /// under `contract:` as `key: value` lines.
    pub fn contract_api(&self, contract: &str) -> String {
        let file = self.path().join("orders-openapi.yaml");
        std::fs::write(&file, DEMO_OPENAPI).expect("write the demo document");
        let mut out = format!(
            "  - name: orders\n    base_path: /v1\n    upstream: backend\n    openapi: {}\n    contract:\n      public_operations: [getHealth]\n",
            file.display()
        );
        for line in contract.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str("      ");
            out.push_str(line.trim());
            out.push('\n');
        }
        out
    }
}

pub struct GatewayBuilder<'a> {
    env: &'a TestEnv,
    apis: String,
    top: String,
    upstream_extra: String,
    more_upstreams: String,
    upstream_ca: Option<PathBuf>,
    listeners: Option<String>,
}

impl GatewayBuilder<'_> {
    /// Extra top-level YAML (e.g. `limits:` or `response:` sections).
    #[must_use]
    pub fn with(mut self, yaml: &str) -> Self {
        self.top.push_str(yaml);
        self.top.push('\n');
        self
    }

    /// Extra fields for the `backend` upstream, as `key: value` lines.
    #[must_use]
    pub fn upstream(mut self, fields: &str) -> Self {
        self.upstream_extra.push_str(fields);
        self
    }

    /// Another upstream entry, `name` with its fields as `key: value` lines.
    #[must_use]
    pub fn extra_upstream(mut self, name: &str, fields: &str) -> Self {
        self.more_upstreams.push_str("  ");
        self.more_upstreams.push_str(name);
        self.more_upstreams.push_str(":\n");
        for line in fields.lines().filter(|l| !l.trim().is_empty()) {
            self.more_upstreams.push_str("    ");
            self.more_upstreams.push_str(line.trim());
            self.more_upstreams.push('\n');
        }
        self
    }

    /// Trust anchors for the `backend` upstream other than the test CA.
    #[must_use]
    pub fn upstream_ca(mut self, path: &Path) -> Self {
        self.upstream_ca = Some(path.to_owned());
        self
    }

    /// Replaces the default single TLS listener.
    #[must_use]
    pub fn listeners(mut self, yaml: &str) -> Self {
        self.listeners = Some(yaml.to_owned());
        self
    }

    pub fn yaml(&self) -> String {
        let gw = &self.env.gateway_cert;
        let listeners = self.listeners.clone().unwrap_or_else(|| {
            format!(
                "  - name: public\n    bind: 127.0.0.1:0\n    tls: {{ cert: {}, key: {} }}\n",
                gw.cert.display(),
                gw.key.display()
            )
        });
        let defaults = [
            format!("url: https://127.0.0.1:{}", self.env.backend.addr.port()),
            format!(
                "ca: {}",
                self.upstream_ca
                    .as_deref()
                    .unwrap_or(&self.env.ca_path)
                    .display()
            ),
            "server_name: backend.test".to_owned(),
        ];
        let overridden = |line: &str| {
            let key = line.split(':').next().unwrap_or("");
            self.upstream_extra
                .lines()
                .any(|l| l.trim().starts_with(&format!("{key}:")))
        };
        let mut upstream = String::new();
        for line in defaults
            .iter()
            .map(String::as_str)
            .filter(|l| !overridden(l))
            .chain(self.upstream_extra.lines())
        {
            if line.trim().is_empty() {
                continue;
            }
            upstream.push_str("    ");
            upstream.push_str(line.trim());
            upstream.push('\n');
        }
        format!(
            "{}\nlisteners:\n{listeners}\nupstreams:\n  backend:\n{upstream}{}\napis:\n{}\n",
            self.top, self.more_upstreams, self.apis
        )
    }

    /// Builds and starts the gateway; panics with the config error if any.
    pub async fn start(self) -> TestGateway {
        match self.try_start().await {
            Ok(gw) => gw,
            Err(e) => panic!(
                "gateway did not start: {e}\n--- config ---\n{}",
                self.yaml()
            ),
        }
    }

    pub async fn try_start(&self) -> Result<TestGateway, String> {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // From a file, as `portcullis run` does, so that it can be reloaded.
        let config_path = self.env.path().join(format!("gateway-{n}.yaml"));
        std::fs::write(&config_path, self.yaml()).map_err(|e| e.to_string())?;
        let config = portcullis_config::load(&config_path).map_err(|e| e.to_string())?;
        let gateway = Gateway::build(&config)
            .map_err(|e| e.to_string())?
            .reloadable_from(&config_path);
        let events = gateway.events().subscribe();
        let running = gateway.start().await.map_err(|e| e.to_string())?;
        Ok(TestGateway {
            addr: running
                .addr("public")
                .or_else(|| running.addrs().first().map(|a| a.1))
                .unwrap(),
            running: Some(running),
            events,
            ca_pem: self.env.ca.cert_pem(),
            config_path,
        })
    }
}

/// A running gateway with clients.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub running: Option<RunningGateway>,
    pub events: broadcast::Receiver<SecurityEvent>,
    ca_pem: String,
    /// The config file it was started from (and reloads).
    pub config_path: PathBuf,
}

/// A collected response.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A TLS client configuration trusting only `ca_pem`.
pub fn client_config(ca_pem: &str) -> rustls::ClientConfig {
    client_config_with(ca_pem, None)
}

/// A client TLS configuration trusting only `ca_pem`, presenting the
/// `(certificate PEM, key PEM)` identity when one is given (mutual TLS).
pub fn client_config_with(ca_pem: &str, identity: Option<(&str, &str)>) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("CA certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("default versions")
    .with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("certificate PEM"),
                rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM"),
            )
            .expect("client identity"),
    }
}

/// An HTTPS client trusting only `ca_pem`, speaking `proto`.
pub fn https_client(ca_pem: &str, proto: Proto) -> HttpsClient {
    https_client_with(ca_pem, None, proto)
}

/// An HTTPS client trusting only `ca_pem`, presenting `identity` if given.
pub fn https_client_with(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    proto: Proto,
) -> HttpsClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config_with(ca_pem, identity))
        .https_only();
    let connector = match proto {
        Proto::Http1 => builder.enable_http1().build(),
        Proto::Http2 => builder.enable_http2().build(),
    };
    let mut b = Client::builder(TokioExecutor::new());
    if proto == Proto::Http2 {
        b.http2_only(true);
    }
    b.build(connector)
}

/// Sends a request and collects the response (bounded to 20 s).
pub async fn fetch(client: &HttpsClient, req: Request<Full<Bytes>>) -> TestResponse {
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let version = resp.version();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    TestResponse {
        status: parts.status,
        version,
        headers: parts.headers,
        body,
    }
}

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Protocol a test client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

impl TestGateway {
    /// The CA that issued the gateway's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn client_config(&self) -> rustls::ClientConfig {
        client_config(&self.ca_pem)
    }

    pub fn client(&self, proto: Proto) -> HttpsClient {
        https_client(&self.ca_pem, proto)
    }

    /// The gateway URL for a path (the certificate names 127.0.0.1).
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    pub async fn send(&self, proto: Proto, req: Request<Full<Bytes>>) -> TestResponse {
        fetch(&self.client(proto), req).await
    }

    /// A request builder for `method path` on this gateway.
    pub fn request(&self, method: &str, path: &str) -> http::request::Builder {
        Request::builder().method(method).uri(self.url(path))
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(
            Proto::Http1,
            self.request("GET", path).body(Full::default()).unwrap(),
        )
        .await
    }

    /// Waits for the next security event (bounded).
    pub async fn next_event(&mut self) -> SecurityEvent {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("no security event within 5 s")
            .expect("event channel closed")
    }

    /// Waits for the next security event and asserts its type (the
    /// event's `status_code`, e.g. `invalid-token`); returns it for more.
    pub async fn expect_event(&mut self, code: &str) -> SecurityEvent {
        let e = self.next_event().await;
        assert_eq!(e.status_code, code, "unexpected event: {}", e.message);
        e
    }

    /// Asserts no further event is queued right now.
    pub fn assert_no_pending_event(&mut self) {
        match self.events.try_recv() {
            Err(broadcast::error::TryRecvError::Empty) => {}
            other => panic!("unexpected event: {other:?}"),
        }
    }

    /// Opens a TLS connection offering the given ALPN protocols.
    pub async fn try_tls(
        &self,
        alpn: &[&[u8]],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let mut config = self.client_config();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        connector
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").expect("valid name"),
                tcp,
            )
            .await
    }

    /// Opens a raw TLS connection (HTTP/1.1 ALPN) for hand-written requests.
    pub async fn raw_tls(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        self.try_tls(&[b"http/1.1"])
            .await
            .expect("TLS connection to the gateway")
    }

    /// Sends raw bytes on a fresh TLS connection and returns everything the
    /// gateway answers until it closes the connection (bounded).
    pub async fn raw_exchange(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = self.raw_tls().await;
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// Sends raw bytes on a fresh plaintext TCP connection to `addr` and
/// returns everything answered until the connection closes (bounded).
pub async fn plain_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestEnv {
    /// Certificates `check` warns about: a `listeners:` section whose
    /// certificate is a wildcard (TLS-08), and a client certificate that
    /// expires in 10 days (TLS-10).
    pub fn weak_certificates(&self) -> (String, IssuedFiles) {
        let wild = self
            .ca
            .issue_to(self.path(), "wild", &["*.example.test"], false)
            .unwrap();
        let soon = self
            .ca
            .issue_until_to(
                self.path(),
                "soon",
                &["gateway.client"],
                true,
                Some(time::OffsetDateTime::now_utc() + time::Duration::days(10)),
            )
            .unwrap();
        let listeners = format!(
            "  - name: public\n    bind: 127.0.0.1:0\n    tls: {{ cert: {}, key: {} }}\n",
            wild.cert.display(),
            wild.key.display()
        );
        (listeners, soon)
    }

    /// The identity data directory used by [`TestEnv::identity_yaml`].
    pub fn identity_dir(&self) -> PathBuf {
        self.path().join("identity")
    }

    /// An `identity:` section trusting `issuer` through `jwks` (written here).
    pub fn identity_yaml(&self, issuer: &TestIssuer, jwks: &Path) -> String {
        TestIssuer::write_jwks(jwks, &[issuer]);
        format!(
            "identity:\n  data_dir: {}\n  issuers:\n    - issuer: {}\n      audiences: [orders-api]\n      jwks_file: {}\n      require_typ: at+jwt\n",
            self.identity_dir().display(),
            issuer.issuer,
            jwks.display()
        )
    }

    /// The store, opened like the CLI opens it.
    pub fn store(
        &self,
    ) -> (
        portcullis_gateway::store::SqliteStore,
        portcullis_gateway::store::pepper::Pepper,
    ) {
        let dir = self.identity_dir();
        std::fs::create_dir_all(&dir).unwrap();
        (
            portcullis_gateway::store::SqliteStore::open(&dir).unwrap(),
            portcullis_gateway::store::pepper::Pepper::load_or_create(&dir).unwrap(),
        )
    }

    /// An extra HTTPS server on loopback (certificate for 127.0.0.1 from the
    /// test CA), e.g. a JWKS or introspection endpoint.
    pub async fn https_server(&self, handler: Handler) -> BackendServer {
        let id = self.ca.issue(&["127.0.0.1"], false).expect("certificate");
        BackendServer::start(
            "127.0.0.1:0".parse().expect("address"),
            backend::tls_from_pem(&id.cert_pem, &id.key_pem).expect("TLS config"),
            handler,
        )
        .await
        .expect("HTTPS server")
    }

    /// Creates an application and returns a fresh API key for it.
    /// An administrator with `role`, created in the store as `portcullis
    /// admin create` would; its admin token.
    pub fn admin_token(&self, name: &str, role: portcullis_gateway::admin::Role) -> String {
        let (store, pepper) = self.store();
        portcullis_gateway::admin::create_admin(
            &store,
            &pepper,
            name,
            role,
            ("local:test", "local-store"),
            "setup",
        )
        .unwrap()
    }

    pub fn provision_app(&self, name: &str) -> String {
        use portcullis_gateway::store::Store;
        let (store, pepper) = self.store();
        let now = portcullis_gateway::clock::now();
        store.create_app(name, now).unwrap();
        portcullis_gateway::identity::apikeys::issue(&store, &pepper, name, now)
            .unwrap()
            .1
    }
}

/// One call to the admin API over plain HTTP on loopback: `(status, JSON body)`.
pub async fn admin_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    admin_request(
        &client,
        &format!("http://{addr}{path}"),
        method,
        token,
        body,
    )
    .await
    .expect("admin API reachable")
}

/// One call to a mutual-TLS admin listener with `client` (see
/// [`https_client_with`]); `Err` when the connection is refused.
pub async fn admin_call_tls(
    client: &HttpsClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, serde_json::Value), String> {
    admin_request(
        client,
        &format!("https://{addr}{path}"),
        method,
        token,
        None,
    )
    .await
}

async fn admin_request<C>(
    client: &Client<C, Full<Bytes>>,
    url: &str,
    method: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Result<(u16, serde_json::Value), String>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let resp = client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}

/// A child process killed and reaped when dropped (test servers, the binary).
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the `portcullis` binary `bin` with `args[0] --config CONFIG
/// args[1..]`, with `token` as `PORTCULLIS_ADMIN_TOKEN` (or none):
/// `(exit code, stdout, stderr)`.
pub fn run_cli(
    bin: &str,
    config: &Path,
    token: Option<&str>,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let mut full = vec![args[0], "--config", config.to_str().unwrap()];
    full.extend_from_slice(&args[1..]);
    let mut cmd = std::process::Command::new(bin);
    cmd.args(&full).env_remove("PORTCULLIS_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("PORTCULLIS_ADMIN_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The findings under one checklist ID of an `audit --format json` report.
pub fn audit_findings<'a>(report: &'a serde_json::Value, id: &str) -> &'a [serde_json::Value] {
    report["controls"]
        .as_array()
        .expect("a report lists controls")
        .iter()
        .find(|c| c["id"] == id)
        .and_then(|c| c["findings"].as_array())
        .map_or(&[], Vec::as_slice)
}

/// A body that sends what the test hands it, when it hands it: a backend's
/// event stream, or a client's upload fed chunk by chunk.
pub struct Drip(pub tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Drip {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}
