//! `portcullis quickstart`: a working, secure demo in one command.
//!
//! Creates a data directory with a development PKI (labelled as such), a
//! demo orders backend over TLS with its OpenAPI document, and a gateway
//! config with every control on; loads that config through the same path as
//! `portcullis run`; prints ready-to-paste `curl` commands and writes the
//! same facts to `quickstart.json`. Ctrl-C or SIGTERM stops everything.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_gateway::Gateway;
use portcullis_gateway::backend_server::{self, BackendServer, Handler};
use portcullis_gateway::devpki::{DevCa, write_private};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const OPENAPI: &str = include_str!("../demo/orders-openapi.yaml");

#[derive(Serialize)]
struct Example {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    expected_status: u16,
    curl: String,
}

#[derive(Serialize)]
struct Facts {
    gateway_url: String,
    ca_cert: PathBuf,
    config: PathBuf,
    events_file: PathBuf,
    openapi: PathBuf,
    backend_url: String,
    development_pki: &'static str,
    examples: Vec<Example>,
}

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

async fn run(data_dir: &Path, port: u16) -> anyhow::Result<()> {
    use anyhow::Context;
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
    let gw = ca.issue_to(&pki, "gateway", &["localhost", "127.0.0.1"], false)?;
    let upstream = ca.issue(&["orders.internal"], false)?;
    std::fs::write(pki.join("orders-backend.pem"), &upstream.cert_pem)?;
    write_private(&pki.join("orders-backend.key"), upstream.key_pem.as_bytes())?;

    let openapi = data_dir.join("orders-openapi.yaml");
    std::fs::write(&openapi, OPENAPI)?;

    // The demo backend: TLS, reachable only on loopback.
    let backend = BackendServer::start(
        "127.0.0.1:0".parse()?,
        backend_server::tls_from_pem(&upstream.cert_pem, &upstream.key_pem)?,
        demo_handler(),
    )
    .await?;

    let events = data_dir.join("events.jsonl");
    let config_path = data_dir.join("gateway.yaml");
    std::fs::write(
        &config_path,
        gateway_yaml(port, backend.addr, &gw.cert, &gw.key, &ca_path, &events),
    )?;
    // Same path as `portcullis run`: load, validate, build.
    let config = portcullis_config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let running = match Gateway::build(&config)?.start().await {
        Ok(r) => r,
        Err(e @ portcullis_gateway::BuildError::Bind { .. }) => {
            anyhow::bail!(
                "{e}\nanother program uses that port: try `portcullis quickstart --port 0`"
            )
        }
        Err(e) => return Err(e.into()),
    };
    let addr = running.addr("public").context("public listener")?;
    let base = format!("https://127.0.0.1:{}", addr.port());
    let curl = |extra: &str, path: &str| {
        format!(
            "curl -sS -i --cacert {} {extra}{base}{path}",
            ca_path.display()
        )
    };
    let examples = vec![
        Example {
            name: "good call",
            method: "GET",
            path: "/v1/orders",
            body: None,
            expected_status: 200,
            curl: curl("", "/v1/orders"),
        },
        Example {
            name: "create an order",
            method: "POST",
            path: "/v1/orders",
            body: Some(r#"{"item":"book","quantity":1}"#),
            expected_status: 201,
            curl: curl(
                r#"-X POST -H 'Content-Type: application/json' -d '{"item":"book","quantity":1}' "#,
                "/v1/orders",
            ),
        },
        Example {
            name: "unknown path: 404, nothing reaches the backend",
            method: "GET",
            path: "/v1/admin",
            body: None,
            expected_status: 404,
            curl: curl("", "/v1/admin"),
        },
        Example {
            name: "undeclared method: 405 with Allow",
            method: "DELETE",
            path: "/v1/orders",
            body: None,
            expected_status: 405,
            curl: curl("-X DELETE ", "/v1/orders"),
        },
        Example {
            name: "path traversal: 400",
            method: "GET",
            path: "/v1/orders/../admin",
            body: None,
            expected_status: 400,
            curl: curl("--path-as-is ", "/v1/orders/../admin"),
        },
    ];
    let facts = Facts {
        gateway_url: base.clone(),
        ca_cert: ca_path.clone(),
        config: config_path.clone(),
        events_file: events.clone(),
        openapi,
        backend_url: format!("https://127.0.0.1:{}", backend.addr.port()),
        development_pki: "DEVELOPMENT ONLY: the CA and keys in pki/ are generated for this demo",
        examples,
    };
    let json_path = data_dir.join("quickstart.json");
    let tmp = data_dir.join("quickstart.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&facts)?)?;
    std::fs::rename(&tmp, &json_path)?;

    println!("Portcullis quickstart is running.");
    println!();
    println!("  gateway      {base}  (TLS 1.3, HTTP/1.1 and HTTP/2)");
    println!(
        "  backend      {}  (demo orders API, TLS, behind the gateway)",
        facts.backend_url
    );
    println!("  config       {}", config_path.display());
    println!("  events       {}", events.display());
    println!("  facts        {}", json_path.display());
    println!(
        "  [DEVELOPMENT PKI] {} is a throwaway CA made for this demo.",
        ca_path.display()
    );
    println!();
    println!("Try:");
    for e in &facts.examples {
        println!("  # {} (expect {})", e.name, e.expected_status);
        println!("  {}", e.curl);
    }
    println!();
    println!(
        "Check the config and its weakened defaults:  portcullis check --config {}",
        config_path.display()
    );
    println!("Stop with Ctrl-C.");

    crate::wait_for_stop().await;
    println!("stopping");
    running.shutdown(Duration::from_secs(5)).await;
    backend.stop().await;
    Ok(())
}

fn gateway_yaml(
    port: u16,
    backend: SocketAddr,
    cert: &Path,
    key: &Path,
    ca: &Path,
    events: &Path,
) -> String {
    format!(
        r#"# Written by `portcullis quickstart`. Every default is the secure one;
# `portcullis check --config {config_hint}` lists what is weakened.
mode: production
listeners:
  - name: public
    bind: 127.0.0.1:{port}
    tls: {{ cert: {cert}, key: {key} }}
events:
  file: {events}
upstreams:
  orders:
    url: https://127.0.0.1:{backend_port}
    ca: {ca}
    server_name: orders.internal
apis:
  - name: orders
    base_path: /v1
    upstream: orders
    cors:
      allowed_origins: ["https://app.example.com"]
    routes:
      # Public until the identity issue adds API keys and tokens; `check` reports them.
      - {{ path: /orders, methods: [GET, POST], auth: public }}
      - {{ path: "/orders/{{id}}", methods: [GET], auth: public }}
"#,
        config_hint = "gateway.yaml",
        cert = cert.display(),
        key = key.display(),
        events = events.display(),
        backend_port = backend.port(),
        ca = ca.display(),
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
        let path = req.uri().path().to_owned();
        let response = match (req.method(), path.as_str()) {
            (&Method::GET, "/orders") => reply(
                StatusCode::OK,
                r#"{"orders":[{"id":"1001","item":"book","quantity":1},{"id":"1002","item":"lamp","quantity":2}]}"#.into(),
            ),
            (&Method::POST, "/orders") => {
                let order: serde_json::Value = serde_json::from_slice(req.body()).unwrap_or(serde_json::Value::Null);
                reply(
                    StatusCode::CREATED,
                    serde_json::json!({"id": "1003", "item": order.get("item"), "quantity": order.get("quantity")}).to_string(),
                )
            }
            (&Method::GET, p) if p.starts_with("/orders/") => {
                let id = &p["/orders/".len()..];
                reply(StatusCode::OK, serde_json::json!({"id": id, "item": "book", "quantity": 1}).to_string())
            }
            _ => reply(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.into()),
        };
        Box::pin(async move { response })
    })
}
