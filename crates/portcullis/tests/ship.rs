//! Past the quickstart (issue 22). From a user's own OpenAPI document to a
//! running gateway: `init` → fill in the TODOs → `check` → `run`, and the
//! running gateway enforces the document's security requirements
//! (AUTHN-06, AUTHZ-02); the document is a fixture this test ships, and
//! what it must enforce is fixed here, independently of the code that
//! writes the config. And every configuration under `examples/` fits the
//! JSON Schema and passes `check`.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_testkit::{ChildGuard, Proto, TestEnv, TestIssuer, fetch, https_client, run_cli};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const DOC: &str = include_str!("fixtures/warehouse-openapi.yaml");

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces the whole line of `field: "TODO…"` with `field: value`.
fn fill(text: &str, field: &str, value: &str) -> String {
    let mut done = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let trimmed = l.trim_start().trim_start_matches("- ");
            if !done && trimmed.starts_with(&format!("{field}:")) && l.contains("TODO") {
                done = true;
                let indent = &l[..l.find(field).unwrap()];
                format!("{indent}{value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(done, "init wrote no TODO for `{field}`:\n{text}");
    out.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread")]
async fn init_check_run_enforces_the_documents_security() {
    let env = TestEnv::new().await;
    env.reply_with(|_| {
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                b"{\"units\":7,\"open\":true}",
            )))
            .unwrap()
    });
    let dir = env.path();
    let doc = dir.join("warehouse-openapi.yaml");
    std::fs::write(&doc, DOC).unwrap();
    let cfg = dir.join("gateway.yaml");
    let upstream = format!("https://127.0.0.1:{}", env.backend.addr.port());

    // 1. init: the document's operations, its public one named.
    let (code, out, err) = cli(&[
        "init",
        "--openapi",
        doc.to_str().unwrap(),
        "--upstream",
        &upstream,
        "-o",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("public (no security requirement): getStatus"),
        "{out}"
    );
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert!(written.starts_with("# yaml-language-server: $schema=portcullis.schema.json"));
    assert!(dir.join("portcullis.schema.json").exists());
    // init never overwrites.
    let (code, _, err) = cli(&[
        "init",
        "--openapi",
        doc.to_str().unwrap(),
        "-o",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");

    // 2. check refuses every TODO, each with what to fill in.
    let (code, _, err) = cli(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    for field in [
        "listeners[0].tls.cert",
        "listeners[0].tls.key",
        "identity.issuers[0].issuer",
        "identity.issuers[0].jwks_url",
        "upstreams.warehouse-stock-api.ca",
    ] {
        assert!(
            err.contains(&format!("{field}: still to fill in: TODO: ")),
            "{field}: {err}"
        );
    }

    // 3. Fill them in: this machine's certificates, a real HTTPS JWKS.
    let issuer = TestIssuer::new("https://idp.warehouse.test", "k1");
    let jwks = serde_json::json!({ "keys": [issuer.jwk()] }).to_string();
    let jwks_server = env
        .https_server(Arc::new(move |_req: Request<Bytes>, _peer| {
            let body = jwks.clone();
            Box::pin(async move {
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            })
        }))
        .await;
    let port = portcullis_testkit::free_port();
    let ca = env.ca_path.display().to_string();
    let mut text = written.replace("127.0.0.1:8443", &format!("127.0.0.1:{port}"));
    for (field, value) in [
        ("cert", format!("cert: {}", env.gateway_cert.cert.display())),
        ("key", format!("key: {}", env.gateway_cert.key.display())),
        ("issuer", format!("issuer: {}", issuer.issuer)),
        ("audiences", "audiences: [orders-api]".to_owned()),
        (
            "jwks_url",
            format!(
                "jwks_url: https://127.0.0.1:{}/jwks.json",
                jwks_server.addr.port()
            ),
        ),
        ("jwks_ca", format!("jwks_ca: {ca}")),
        ("ca", format!("ca: {ca}")),
    ] {
        text = fill(&text, field, &value);
    }
    assert!(!text.contains("\"TODO:"), "{text}");
    std::fs::write(&cfg, &text).unwrap();
    let (code, out, err) = cli(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}\n{text}");
    assert!(
        out.contains("public route (no authentication): GET /warehouse/status"),
        "the public operation is reported: {out}"
    );

    // 4. An application and its key, then run.
    let run = |args: &[&str]| run_cli(BIN, &cfg, None, args);
    assert_eq!(run(&["apps", "create", "shop"]).0, Some(0));
    let (code, out, _) = run(&["keys", "issue", "--app", "shop"]);
    assert_eq!(code, Some(0));
    let key = out.lines().last().unwrap().to_owned();
    let _gateway = ChildGuard(
        Command::new(BIN)
            .args(["run", "--config", cfg.to_str().unwrap()])
            .spawn()
            .unwrap(),
    );
    let ca_pem = std::fs::read_to_string(&env.ca_path).unwrap();
    let client = https_client(&ca_pem, Proto::Http1);
    let call = |method: &str, path: &str, key: Option<&str>, token: Option<&str>| {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1:{port}/warehouse{path}"))
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = if method == "PUT" { "{\"units\":3}" } else { "" };
        req.body(Full::new(Bytes::from(body))).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // 5. The document's security, enforced.
    let read = issuer.mint(&issuer.claims("picker-7", "stock:read"));
    let write = issuer.mint(&issuer.claims("picker-7", "stock:read stock:write"));
    let status = |r: portcullis_testkit::TestResponse| r.status;
    assert_eq!(
        status(fetch(&client, call("GET", "/status", None, None)).await),
        StatusCode::OK
    );
    assert_eq!(
        status(fetch(&client, call("GET", "/stock/AB-1", None, None)).await),
        StatusCode::UNAUTHORIZED,
        "no key, no token"
    );
    assert_eq!(
        status(fetch(&client, call("GET", "/stock/AB-1", Some(&key), None)).await),
        StatusCode::UNAUTHORIZED,
        "the document asks for a token too"
    );
    let ok = fetch(&client, call("GET", "/stock/AB-1", Some(&key), Some(&read))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["units"], 7);
    assert_eq!(
        status(fetch(&client, call("PUT", "/stock/AB-1", Some(&key), Some(&read))).await),
        StatusCode::FORBIDDEN,
        "stock:write is missing"
    );
    assert_eq!(
        status(
            fetch(
                &client,
                call("PUT", "/stock/AB-1", Some(&key), Some(&write))
            )
            .await
        ),
        StatusCode::OK
    );
    assert_eq!(
        status(
            fetch(
                &client,
                call("GET", "/stock/AB-1", Some("pcsk_bogus"), Some(&read))
            )
            .await
        ),
        StatusCode::UNAUTHORIZED,
        "an unknown key"
    );
}

/// Lays out what the examples name, relative to a copy of `examples/`:
/// certificates from a throwaway CA, a CRL, a password file, the demo
/// document. Returns the examples directory and the CA.
fn example_tree(root: &Path) -> (PathBuf, portcullis_gateway::dev::pki::DevCa) {
    use portcullis_gateway::dev::pki::DevCa;
    let examples = root.join("examples");
    let tls = examples.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = DevCa::new("Examples CA").unwrap();
    std::fs::write(tls.join("ca.pem"), ca.cert_pem()).unwrap();
    let next = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    std::fs::write(tls.join("ca.crl"), ca.crl(&[], next).unwrap()).unwrap();
    ca.issue_to(&tls, "gateway", &["api.example.com"], false)
        .unwrap();
    ca.issue_to(&tls, "gateway-client", &["gateway.example.com"], true)
        .unwrap();
    let demo = root.join("crates/portcullis/demo");
    std::fs::create_dir_all(&demo).unwrap();
    std::fs::write(
        demo.join("orders-openapi.yaml"),
        include_str!("../demo/orders-openapi.yaml"),
    )
    .unwrap();
    (examples, ca)
}

#[test]
fn every_example_fits_the_schema_and_passes_check() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = tempfile::tempdir().unwrap();
    let (examples, ca) = example_tree(dir.path());
    // `check` opens the shared store: a real PostgreSQL over TLS stands in
    // for db.internal.
    let postgres = portcullis_testkit::PostgresServer::start_with_tls(&ca);
    let mut seen = 0;
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../docs/config.schema.json\n"),
            "{} names its schema",
            path.display()
        );
        let value: serde_json::Value = yaml_serde::from_str(&text).unwrap();
        let errors = portcullis_config::json_schema::schema_errors(&value);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let copy = examples.join(path.file_name().unwrap());
        let local = text
            .replace(
                "host: db.internal",
                &format!("host: 127.0.0.1\n    port: {}", postgres.port),
            )
            .replace("dbname: portcullis", "dbname: postgres")
            .replace(
                "secrets/postgres-password",
                &postgres.password_file.display().to_string(),
            );
        std::fs::write(&copy, &local).unwrap();
        let (code, out, err) = cli(&["check", "--config", copy.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{}: {out}{err}", path.display());
        // A misspelt field is refused by the schema, with its path.
        let misspelt = text.replacen("    upstream: ", "    upstrem: ", 1);
        let value: serde_json::Value = yaml_serde::from_str(&misspelt).unwrap();
        let errors = portcullis_config::json_schema::schema_errors(&value);
        assert!(
            errors
                .iter()
                .any(|e| e.path == "apis[0].upstrem" && e.message.contains("unknown field")),
            "{}: {errors:?}",
            path.display()
        );
    }
    assert!(seen >= 5, "five examples at least, found {seen}");
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What deploy/compose.yaml runs, without a container engine: `dev-pki`
/// writes the PKI and the shared pepper, `demo-backend` serves over mutual
/// TLS, and two gateways run deploy/compose/gateway.yaml (names and ports
/// made local) on one PostgreSQL and one Redis. A key issued through one
/// instance works on both; no key is 401 on both; the health listener
/// answers `/readyz`.
#[tokio::test(flavor = "multi_thread")]
async fn the_compose_topology_runs_without_a_container_engine() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let (code, out, err) = cli(&[
        "dev-pki",
        "--dir",
        pki.to_str().unwrap(),
        "--server=gateway=localhost,gateway-1,gateway-2",
        "--server=backend=backend",
        "--client=gateway-client",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let backend_port = portcullis_testkit::free_port();
    let _backend = ChildGuard(
        Command::new(BIN)
            .args([
                "demo-backend",
                "--bind",
                &format!("127.0.0.1:{backend_port}"),
            ])
            .args(["--pki", pki.to_str().unwrap(), "--name", "backend"])
            .spawn()
            .unwrap(),
    );
    let postgres = portcullis_testkit::PostgresServer::start();
    let redis = portcullis_testkit::RedisServer::start();
    let compose = include_str!("../../../deploy/compose/gateway.yaml");
    let mut gateways = Vec::new();
    let mut configs = Vec::new();
    for n in 1..=2 {
        let (port, health) = (
            portcullis_testkit::free_port(),
            portcullis_testkit::free_port(),
        );
        let data = dir.path().join(format!("gateway-{n}"));
        std::fs::create_dir_all(&data).unwrap();
        let text = compose
            .replace(
                "/pki/postgres-password",
                &postgres.password_file.display().to_string(),
            )
            .replace("/pki/", &format!("{}/", pki.display()))
            .replace("/var/lib/portcullis", data.to_str().unwrap())
            .replace("0.0.0.0:8443", &format!("127.0.0.1:{port}"))
            .replace("0.0.0.0:8081", &format!("127.0.0.1:{health}"))
            .replace(
                "host: postgres",
                &format!("host: 127.0.0.1\n    port: {}", postgres.port),
            )
            .replace("dbname: portcullis", "dbname: postgres")
            .replace("redis://redis:6379/0", &redis.url())
            .replace(
                "url: https://backend:9443",
                &format!("url: https://127.0.0.1:{backend_port}\n    server_name: backend"),
            );
        let cfg = dir.path().join(format!("gateway-{n}.yaml"));
        std::fs::write(&cfg, &text).unwrap();
        let (code, out, err) = cli(&["check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{out}{err}\n{text}");
        assert!(out.contains(": valid"), "{out}");
        gateways.push(ChildGuard(
            Command::new(BIN)
                .args(["run", "--config", cfg.to_str().unwrap()])
                .spawn()
                .unwrap(),
        ));
        configs.push((cfg, port, health));
    }
    let run = |args: &[&str]| run_cli(BIN, &configs[0].0, None, args);
    assert_eq!(run(&["apps", "create", "shop"]).0, Some(0));
    let (code, out, _) = run(&["keys", "issue", "--app", "shop"]);
    assert_eq!(code, Some(0));
    let key = out.lines().last().unwrap().to_owned();
    let ca = std::fs::read_to_string(pki.join("ca.pem")).unwrap();
    let client = https_client(&ca, Proto::Http1);
    for (_, port, health) in &configs {
        wait_for_port(*port);
        wait_for_port(*health);
        let get = |key: Option<&str>| {
            let mut req = Request::get(format!("https://localhost:{port}/v1/orders"));
            if let Some(k) = key {
                req = req.header("x-api-key", k);
            }
            req.body(Full::default()).unwrap()
        };
        let ok = fetch(&client, get(Some(&key))).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
        assert!(ok.text().contains("orders"), "{}", ok.text());
        assert_eq!(
            fetch(&client, get(None)).await.status,
            StatusCode::UNAUTHORIZED
        );
        let ready = portcullis_testkit::plain_exchange(
            format!("127.0.0.1:{health}").parse().unwrap(),
            b"GET /readyz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    }
}
