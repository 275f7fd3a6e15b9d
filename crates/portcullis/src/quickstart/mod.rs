//! `portcullis quickstart`: a working, secure demo in one command.
//!
//! Creates a data directory with a development PKI (labelled as such), a
//! demo orders backend over TLS with its OpenAPI document, and a gateway
//! config with every control on; loads that config through the same path as
//! `portcullis run`; prints ready-to-paste `curl` commands and writes the
//! same facts to `quickstart.json`. Ctrl-C or SIGTERM stops everything.

use anyhow::Context;
use bytes::Bytes;
use examples::{Example, Step, cert_args, kill_switch_demo};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_gateway::dev::backend::{BackendServer, Handler};
use portcullis_gateway::dev::pki::{DevCa, Issued, IssuedFiles};
use portcullis_gateway::files::write_private;
use portcullis_gateway::{Gateway, RunningGateway};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod banner;
pub(crate) mod container;
mod examples;
mod live;

const OPENAPI: &str = include_str!("../../demo/orders-openapi.yaml");

#[derive(Serialize)]
struct Facts {
    gateway_url: String,
    ca_cert: PathBuf,
    config: PathBuf,
    events_file: PathBuf,
    openapi: PathBuf,
    backend_url: String,
    api_key: String,
    token: String,
    token_without_write_scope: String,
    /// The token the self-service revocation example spends.
    token_to_revoke: String,
    revoke_endpoint: String,
    revoke_all_endpoint: String,
    /// The gateway's context-token keys (loopback listener).
    context_jwks_url: String,
    /// The demo application's client certificate (bound to it: mTLS identifies the app).
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A call straight to the backend, bypassing the gateway: refused by the guard.
    direct_backend_call: String,
    /// 400 quick calls to `listOrders`: the demo app's budget (200 at once,
    /// then 10 a second) runs out and the rest are 429.
    rate_limit_burst: String,
    mint_token_command: String,
    /// The admin plane (loopback) and a demo operator's token.
    admin_url: String,
    operator_token: String,
    /// An operator switches the demo application off and on again.
    kill_switch_demo: Vec<Step>,
    development_pki: &'static str,
    examples: Vec<Example>,
    /// A WebSocket echo through the gateway, made at start.
    websocket_echo: Option<live::WebSocketEcho>,
    /// The demo's secrets as shell variables (mode 0600), for `source`.
    env_file: PathBuf,
}

/// The demo token issuer: its name, key file and JWKS file.
pub const DEMO_ISSUER: &str = "https://issuer.quickstart.invalid";
const DEMO_AUDIENCE: &str = "orders-api";
const DEMO_APP: &str = "demo-app";
/// DNS SAN of the demo application's client certificate, bound to it in the store.
const DEMO_APP_SAN: &str = "demo-app.clients.quickstart";
/// DNS SAN of the gateway's client certificate, which the backend guard requires.
const GATEWAY_CLIENT_SAN: &str = "gateway.quickstart";

pub fn main(data_dir: &Path, port: u16) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(data_dir, port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Creates (once) the demo issuer's ES256 signing key and its JWKS file.
fn demo_issuer(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    use base64::Engine;
    std::fs::create_dir_all(dir)?;
    let key_path = dir.join("signing-key.pem");
    let jwks_path = dir.join("jwks.json");
    if !key_path.exists() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        let raw = key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "demo-1",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        }]});
        std::fs::write(&jwks_path, jwks.to_string())?;
    }
    Ok((key_path, jwks_path))
}

/// Mints a demo access token (ES256, `typ: at+jwt`, one hour).
pub fn mint_demo_token(data_dir: &Path, subject: &str, scope: &str) -> anyhow::Result<String> {
    let (key_path, _) = demo_issuer(&data_dir.join("demo-issuer"))?;
    let pem = std::fs::read(&key_path)?;
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem)?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("demo-1".into());
    header.typ = Some("at+jwt".into());
    let now = portcullis_gateway::clock::now();
    let claims = serde_json::json!({
        "iss": DEMO_ISSUER, "sub": subject, "aud": DEMO_AUDIENCE, "scope": scope,
        "iat": now, "exp": now + 3600, "jti": uuid_v7(), "client_id": DEMO_APP,
    });
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}

fn uuid_v7() -> String {
    // The correlation module already makes UUIDv7s; reuse its header value.
    let h = portcullis_gateway::pipeline::correlation::from_request(
        &http::HeaderMap::new(),
        &http::HeaderName::from_static("x"),
    );
    h.as_str().to_owned()
}

/// The demo application with a fresh key (earlier quickstart keys are revoked).
fn demo_app_key(identity_dir: &Path) -> anyhow::Result<String> {
    use portcullis_gateway::store::{SqliteStore, Store, StoreError};
    std::fs::create_dir_all(identity_dir)?;
    let store = SqliteStore::open(identity_dir)?;
    let pepper = portcullis_gateway::store::pepper::Pepper::load_or_create(identity_dir)?;
    let now = portcullis_gateway::clock::now();
    match store.create_app(DEMO_APP, now) {
        Ok(_) | Err(StoreError::AppExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    store.set_app_enabled(DEMO_APP, true)?;
    let app = store.app_by_name(DEMO_APP)?;
    for k in store.keys(Some(&app.id))? {
        if k.revoked_at.is_none() {
            store.revoke_key(&k.id, now)?;
        }
    }
    // Its client certificate identifies it too (certificate-bound application).
    match store.bind_certificate(DEMO_APP, DEMO_APP_SAN, now) {
        Ok(()) | Err(StoreError::SanBound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(portcullis_gateway::identity::apikeys::issue(&store, &pepper, DEMO_APP, now)?.1)
}

/// A fresh operator for the demo (a new name each run; the token is shown once).
fn demo_operator(identity_dir: &Path) -> anyhow::Result<String> {
    use portcullis_gateway::admin::{Role, create_admin};
    let store = portcullis_gateway::store::SqliteStore::open(identity_dir)?;
    let pepper = portcullis_gateway::store::pepper::Pepper::load_or_create(identity_dir)?;
    let name = format!("demo-operator-{}", uuid_v7());
    Ok(create_admin(
        &store,
        &pepper,
        &name,
        Role::Operator,
        ("local:quickstart", "local-store"),
        &uuid_v7(),
    )?)
}

/// The demo's files: development PKI, OpenAPI document, identity.
struct DemoFiles {
    data_dir: PathBuf,
    ca: DevCa,
    ca_path: PathBuf,
    gateway: IssuedFiles,
    upstream: Issued,
    openapi: PathBuf,
    identity_dir: PathBuf,
    jwks_path: PathBuf,
    api_key: String,
    token: String,
    token_read_only: String,
    token_to_revoke: String,
    gateway_client: IssuedFiles,
    demo_client: IssuedFiles,
}

async fn run(data_dir: &Path, port: u16) -> anyhow::Result<()> {
    let files = DemoFiles::create(data_dir)?;
    // The demo backend: TLS on loopback, client certificates from the
    // development CA required, and behind the guard: a request without the
    // gateway's certificate and a context token minted for it is refused
    // (AUTHN-10, AUTHN-12). The guard needs the gateway's JWKS address, so
    // it is installed once the gateway runs.
    let guarded: Arc<std::sync::OnceLock<Handler>> = Arc::default();
    let backend = start_backend(&files, guarded.clone()).await?;
    let events = files.data_dir.join("events.jsonl");
    let config_path = files.data_dir.join("gateway.yaml");
    write_schema(&files.data_dir.join(SCHEMA_FILE))?;
    std::fs::write(
        &config_path,
        gateway_yaml(&GatewayFiles {
            port,
            admin_port: std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
            backend: backend.addr,
            cert: &files.gateway.cert,
            key: &files.gateway.key,
            ca: &files.ca_path,
            events: &events,
            identity: &files.identity_dir,
            jwks: &files.jwks_path,
            openapi: &files.openapi,
            client: &files.gateway_client,
        }),
    )?;
    let running = start_gateway(&config_path).await?;
    let jwks_url = format!(
        "http://{}/.well-known/jwks.json",
        running.addr("jwks").context("JWKS listener")?
    );
    guarded
        .set(guard_handler(&jwks_url).await?)
        .map_err(|_| anyhow::anyhow!("guard installed twice"))?;
    let facts = files.facts(
        &running,
        Paths {
            config: &config_path,
            events: &events,
            jwks_url: &jwks_url,
            backend: backend.addr,
        },
    )?;
    let mut facts = facts;
    let public = running.addr("public").context("public listener")?;
    facts.websocket_echo =
        Some(live::websocket_echo(public, &files.ca_path, (&files.api_key, &files.token)).await?);
    let vars = banner::vars(&facts);
    for e in &mut facts.examples {
        e.shell = banner::shell_form(&e.curl, &vars);
    }
    for step in &mut facts.kill_switch_demo {
        step.shell = banner::shell_form(&step.curl, &vars);
    }
    banner::write_env(&facts.env_file, &vars)?;
    let json_path = files.data_dir.join("quickstart.json");
    let tmp = files.data_dir.join("quickstart.json.tmp");
    write_private(&tmp, serde_json::to_string_pretty(&facts)?.as_bytes())?;
    std::fs::rename(&tmp, &json_path)?;
    banner::print(&facts, &json_path, &facts.env_file, &vars);

    crate::wait_for_stop().await;
    println!("stopping");
    running.shutdown(Duration::from_secs(5)).await;
    backend.stop().await;
    Ok(())
}

impl DemoFiles {
    fn create(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let data_dir = data_dir.canonicalize()?;
        let pki = data_dir.join("pki");
        std::fs::create_dir_all(&pki)?;

        // Development PKI: a fresh CA on every start, clearly labelled.
        let ca = DevCa::new("Portcullis Quickstart Development CA")?;
        let ca_path = pki.join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem())?;
        // The CA's (empty) revocation list, named by its certificates' CRL distribution point.
        std::fs::write(
            pki.join("ca.crl"),
            ca.crl(
                &[],
                time::OffsetDateTime::now_utc() + time::Duration::days(7),
            )?,
        )?;
        let gateway = ca.issue_to(&pki, "gateway", &GATEWAY_NAMES, false)?;
        let upstream = ca.issue(&["orders.internal"], false)?;
        std::fs::write(pki.join("orders-backend.pem"), &upstream.cert_pem)?;
        write_private(&pki.join("orders-backend.key"), upstream.key_pem.as_bytes())?;

        let openapi = data_dir.join("orders-openapi.yaml");
        std::fs::write(&openapi, OPENAPI)?;

        // Identity: the demo application's key and the demo issuer's tokens.
        let identity_dir = data_dir.join("identity");
        let api_key = demo_app_key(&identity_dir)?;
        let (_, jwks_path) = demo_issuer(&data_dir.join("demo-issuer"))?;
        let token = mint_demo_token(&data_dir, "demo-user", "orders:read orders:write")?;
        let token_read_only = mint_demo_token(&data_dir, "demo-user", "orders:read")?;
        let token_to_revoke =
            mint_demo_token(&data_dir, "demo-user-2", "orders:read orders:write")?;
        let gateway_client = ca.issue_to(&pki, "gateway-client", &[GATEWAY_CLIENT_SAN], true)?;
        let demo_client = ca.issue_to(&pki, "demo-app-client", &[DEMO_APP_SAN], true)?;
        Ok(Self {
            data_dir,
            ca,
            ca_path,
            gateway,
            upstream,
            openapi,
            identity_dir,
            jwks_path,
            api_key,
            token,
            token_read_only,
            token_to_revoke,
            gateway_client,
            demo_client,
        })
    }

    fn facts(&self, running: &RunningGateway, paths: Paths<'_>) -> anyhow::Result<Facts> {
        let (ca_path, api_key, token, demo_client) =
            (&self.ca_path, &self.api_key, &self.token, &self.demo_client);
        let addr = running.addr("public").context("public listener")?;
        let base = format!("https://127.0.0.1:{}", addr.port());
        let admin_url = format!(
            "http://{}",
            running.addr("admin").context("admin listener")?
        );
        let operator_token = demo_operator(&self.identity_dir)?;
        let examples = examples::Calls {
            base: &base,
            ca_path,
            demo_client,
            api_key,
            token,
            token_read_only: &self.token_read_only,
            token_to_revoke: &self.token_to_revoke,
        }
        .examples();
        Ok(Facts {
            gateway_url: base.clone(),
            ca_cert: ca_path.clone(),
            config: paths.config.to_owned(),
            events_file: paths.events.to_owned(),
            openapi: self.openapi.clone(),
            backend_url: format!("https://127.0.0.1:{}", paths.backend.port()),
            api_key: api_key.clone(),
            token: token.clone(),
            token_without_write_scope: self.token_read_only.clone(),
            token_to_revoke: self.token_to_revoke.clone(),
            revoke_endpoint: format!("{base}/oauth2/revoke"),
            revoke_all_endpoint: format!("{base}/oauth2/revoke-all"),
            context_jwks_url: paths.jwks_url.to_owned(),
            client_cert: demo_client.cert.clone(),
            client_key: demo_client.key.clone(),
            rate_limit_burst: format!(
                "for i in $(seq 400); do curl -s -o /dev/null -w '%{{http_code}}\\n' --cacert {} -H 'X-API-Key: {api_key}' -H 'Authorization: Bearer {token}' '{base}/v1/orders'; done | sort | uniq -c",
                ca_path.display()
            ),
            direct_backend_call: format!(
                "curl -sS -i --cacert {ca}{cert} --resolve orders.internal:{port}:127.0.0.1 https://orders.internal:{port}/orders",
                ca = ca_path.display(),
                cert = cert_args(demo_client),
                port = paths.backend.port()
            ),
            mint_token_command: format!(
                "portcullis demo-token --data-dir {}",
                self.data_dir.display()
            ),
            kill_switch_demo: kill_switch_demo(
                &admin_url,
                &operator_token,
                ca_path,
                &base,
                api_key,
                token,
            ),
            admin_url,
            operator_token,
            development_pki: "DEVELOPMENT ONLY: the CA, keys and demo token issuer in this directory are generated for this demo",
            examples,
            websocket_echo: None,
            env_file: self.data_dir.join("quickstart.env"),
        })
    }
}

/// Where the running demo's parts are.
#[derive(Clone, Copy)]
struct Paths<'a> {
    config: &'a Path,
    events: &'a Path,
    jwks_url: &'a str,
    backend: SocketAddr,
}

async fn start_backend(
    files: &DemoFiles,
    guarded: Arc<std::sync::OnceLock<Handler>>,
) -> anyhow::Result<BackendServer> {
    Ok(BackendServer::start(
        "127.0.0.1:0".parse()?,
        portcullis_gateway::dev::backend::mtls_from_pem(
            &files.ca.cert_pem(),
            &files.upstream.cert_pem,
            &files.upstream.key_pem,
        )?,
        Arc::new(move |req, peer| match guarded.get() {
            Some(h) => h(req, peer),
            None => Box::pin(async { portcullis_guard::refusal_response::<Full<Bytes>>() }),
        }),
    )
    .await?)
}

/// Same path as `portcullis run`: load, validate, build, start.
async fn start_gateway(config_path: &Path) -> anyhow::Result<RunningGateway> {
    let config = portcullis_config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    match Gateway::build(&config)?
        .reloadable_from(config_path)
        .start()
        .await
    {
        Ok(r) => Ok(r),
        Err(e @ portcullis_gateway::BuildError::Bind { .. }) => {
            anyhow::bail!(
                "{e}\nanother program uses that port: try `portcullis quickstart --port 0`"
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// The demo backend's handler behind the guard, which takes the
/// gateway's context-token keys from `jwks_url`.
async fn guard_handler(jwks_url: &str) -> anyhow::Result<Handler> {
    use tower_layer::Layer;
    let mut config = portcullis_guard::GuardConfig::new(
        "portcullis",
        "orders",
        portcullis_guard::Keys::Url {
            url: jwks_url.parse()?,
            ca: None,
        },
    );
    config.gateway_peer_names = vec![GATEWAY_CLIENT_SAN.to_owned()];
    let guard = Arc::new(portcullis_guard::Guard::new(config).map_err(anyhow::Error::msg)?);
    guard.reload_keys().await.map_err(anyhow::Error::msg)?;
    let guarded = portcullis_guard::GuardLayer::new(guard).layer(
        portcullis_gateway::dev::backend::HandlerService(demo_handler()),
    );
    Ok(portcullis_gateway::dev::backend::from_service(guarded))
}

struct GatewayFiles<'a> {
    port: u16,
    /// A concrete port, so that `portcullis inventory --traffic` finds it in the config.
    admin_port: u16,
    backend: SocketAddr,
    cert: &'a Path,
    key: &'a Path,
    ca: &'a Path,
    events: &'a Path,
    identity: &'a Path,
    jwks: &'a Path,
    openapi: &'a Path,
    client: &'a portcullis_gateway::dev::pki::IssuedFiles,
}

/// The gateway certificate's names, which are also the hosts it serves.
const GATEWAY_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The config's JSON Schema, beside every config the project writes.
pub(crate) const SCHEMA_FILE: &str = "portcullis.schema.json";

/// The first line of a config the project writes, naming its schema.
pub(crate) fn modeline() -> String {
    portcullis_config::json_schema::modeline(SCHEMA_FILE)
}

pub(crate) fn write_schema(path: &Path) -> std::io::Result<()> {
    let schema = portcullis_config::json_schema::json_schema();
    std::fs::write(path, format!("{schema:#}\n"))
}

fn gateway_yaml(f: &GatewayFiles<'_>) -> String {
    format!(
        r#"# yaml-language-server: $schema={SCHEMA_FILE}
# Written by `portcullis quickstart`. Every default is the secure one;
# `portcullis check --config gateway.yaml` lists what is weakened.
mode: production
listeners:
  - name: public
    bind: 127.0.0.1:{port}
    # The names of the gateway's certificate: any other Host is answered 421.
    hosts: [{hosts}]
    tls:
      cert: {cert}
      key: {key}
      # Client certificates are optional here; one bound to an application
      # identifies it (`portcullis apps certs`), and is re-checked against
      # the CRL on every request.
      client_auth: {{ mode: optional, ca: {ca}, crls: [{crl}] }}
events:
  file: {events}
identity:
  data_dir: {identity}
  issuers:
    # DEVELOPMENT: the quickstart's own demo issuer.
    - issuer: {issuer}
      audiences: [{audience}]
      jwks_file: {jwks}
      algorithms: [ES256]
      require_typ: at+jwt
# Each upstream request carries a 30-second EdDSA token signed by the
# gateway (audience `orders`); backends verify it with portcullis-guard.
context_token:
  jwks_bind: 127.0.0.1:0
# The admin plane: loopback only, admin tokens with roles, every change in
# the hash-chained audit log (`portcullis admin audit-log verify`).
admin:
  bind: 127.0.0.1:{admin_port}
upstreams:
  orders:
    url: https://127.0.0.1:{backend_port}
    crls: [{crl}]
    ca: {ca}
    server_name: orders.internal
    # The gateway's client certificate: the backend refuses anyone else.
    client_cert: {client_cert}
    client_key: {client_key}
apis:
  - name: orders
    base_path: /v1
    upstream: orders
    cors:
      allowed_origins: ["https://app.example.com"]
    # Routes, scopes, schemas and classification labels come from the document.
    openapi: {openapi}
    contract:
      # `getHealth` declares no security requirement: public on purpose.
      public_operations: [getHealth]
    # Each application may list orders 600 times a minute, 200 at once.
    route_limits:
      listOrders:
        rate_limits: [{{ per: application, requests: 600, per_seconds: 60, burst: 200 }}]
  # Live traffic: a server-sent event stream (passed on event by event, each
  # judged) and a WebSocket echo (the handshake passes every stage; the
  # socket closes with 1008 when the app is switched off).
  - name: live
    base_path: /v1/live
    upstream: orders
    routes:
      - {{ path: "/orders/{{id}}/events", methods: [GET], auth: {{ api_key: true, token: true, scopes: [orders:read] }} }}
      - {{ path: /echo, methods: [GET], auth: {{ api_key: true, token: true, scopes: [orders:read] }} }}
    websockets:
      /echo: {{ origins: ["{origin}"] }}
"#,
        origin = live::APP_ORIGIN,
        port = f.port,
        hosts = GATEWAY_NAMES.join(", "),
        admin_port = f.admin_port,
        cert = f.cert.display(),
        key = f.key.display(),
        events = f.events.display(),
        identity = f.identity.display(),
        issuer = DEMO_ISSUER,
        audience = DEMO_AUDIENCE,
        jwks = f.jwks.display(),
        backend_port = f.backend.port(),
        ca = f.ca.display(),
        crl = f.ca.with_file_name("ca.crl").display(),
        openapi = f.openapi.display(),
        client_cert = f.client.cert.display(),
        client_key = f.client.key.display(),
    )
}

/// The demo orders backend. It sends platform banners and a cacheable
/// header on purpose, so the gateway's hardening is visible.
fn demo_handler() -> Handler {
    Arc::new(|req: Request<Bytes>, _peer| {
        let reply = |status: StatusCode, body: String| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header("server", "demo-orders/0.1 (Python 3.7)")
                .header("x-powered-by", "DemoFramework")
                .header("cache-control", "public, max-age=3600")
                .body(Full::new(Bytes::from(body)))
                .expect("static response parts")
        };
        let mut req = req;
        if req.uri().path() == "/echo"
            && let Some(upgrade) = portcullis_gateway::dev::backend::websocket_echo(&mut req)
        {
            return Box::pin(async move { upgrade });
        }
        let path = req.uri().path().to_owned();
        let response = match (req.method(), path.as_str()) {
            (&Method::GET, p) if p.starts_with("/orders/") && p.ends_with("/events") => {
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .header("cache-control", "no-store")
                    .body(Full::new(Bytes::from_static(live::ORDER_EVENTS.as_bytes())))
                    .expect("static response parts")
            }
            (&Method::GET, "/health") => reply(StatusCode::OK, r#"{"status":"up"}"#.into()),
            (&Method::GET, "/orders") => reply(
                StatusCode::OK,
                r#"{"orders":[{"id":"1001","item":"book","quantity":1,"cost_price_cents":700},{"id":"1002","item":"lamp","quantity":2,"cost_price_cents":1900}]}"#.into(),
            ),
            (&Method::POST, "/orders") => {
                let order: serde_json::Value = serde_json::from_slice(req.body()).unwrap_or(serde_json::Value::Null);
                reply(
                    StatusCode::CREATED,
                    serde_json::json!({"id": "1003", "item": order.get("item"), "quantity": order.get("quantity"), "received": order}).to_string(),
                )
            }
            (&Method::GET, p) if p.starts_with("/orders/") => {
                let id = &p["/orders/".len()..];
                reply(
                    StatusCode::OK,
                    serde_json::json!({
                        "id": id, "item": "book", "quantity": 1,
                        "customer_email": "alice@example.com",
                        "cost_price_cents": 700,
                        "internal_notes": "VIP, do not refund",
                    })
                    .to_string(),
                )
            }
            (&Method::GET, "/debug/state") => reply(StatusCode::OK, r#"{"heap_mb":12}"#.into()),
            _ => reply(StatusCode::NOT_FOUND, r#"{"type":"about:blank","title":"Not found","status":404}"#.into()),
        };
        Box::pin(async move { response })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config the quickstart writes fits the JSON Schema it points to.
    #[test]
    fn the_quickstart_config_fits_the_schema() {
        let p = Path::new("/x/file");
        let client = portcullis_gateway::dev::pki::IssuedFiles {
            cert: p.into(),
            key: p.into(),
        };
        let text = gateway_yaml(&GatewayFiles {
            port: 8443,
            admin_port: 9444,
            backend: "127.0.0.1:9443".parse().unwrap(),
            cert: p,
            key: p,
            ca: p,
            events: p,
            identity: p,
            jwks: p,
            openapi: p,
            client: &client,
        });
        assert!(text.starts_with(&modeline()));
        let value: serde_json::Value = yaml_serde::from_str(&text).unwrap();
        let errors = portcullis_config::json_schema::schema_errors(&value);
        assert!(errors.is_empty(), "{errors:?}");
        let misspelt = text.replace("base_path:", "basepath:");
        let value: serde_json::Value = yaml_serde::from_str(&misspelt).unwrap();
        assert!(!portcullis_config::json_schema::schema_errors(&value).is_empty());
    }
}
