//! Upstream identity (TLS-04, TLS-06, TLS-09): the gateway presents its
//! client certificate to upstreams that require one, and refuses an
//! upstream whose certificate does not match its SPKI pins or its name.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use portcullis_gateway::dev::backend::{self, BackendServer, Handler};
use portcullis_gateway::dev::pki::Issued;
use portcullis_testkit::TestEnv;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

fn ok_handler() -> Handler {
    Arc::new(|_req: Request<Bytes>, _peer| {
        Box::pin(async {
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                .unwrap()
        })
    })
}

fn spki_pin(cert: &Issued) -> String {
    use base64::Engine;
    let der = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, c.public_key().raw);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// An API at `/<name>` routed to upstream `<name>`.
fn api(name: &str) -> String {
    format!(
        "  - name: {name}\n    base_path: /{name}\n    upstream: {name}\n    routes:\n      - {{ path: /x, methods: [GET], auth: public }}\n"
    )
}

#[tokio::test]
async fn spki_pins_and_names_are_enforced_on_upstream_connections() {
    let env = TestEnv::new().await;
    let id = env.ca.issue(&["pinned.test"], false).unwrap();
    let server = BackendServer::start(
        "127.0.0.1:0".parse().unwrap(),
        backend::tls_from_pem(&id.cert_pem, &id.key_pem).unwrap(),
        ok_handler(),
    )
    .await
    .unwrap();
    let other_key = env.ca.issue(&["pinned.test"], false).unwrap();
    let upstream = |pin: &str, name: &str| {
        format!(
            "url: https://127.0.0.1:{}\nca: {}\nserver_name: {name}\nspki_pins: [\"sha256/{pin}\"]",
            server.addr.port(),
            env.ca_path.display()
        )
    };
    let mut gw = env
        .gateway(&format!(
            "{}{}{}",
            api("good"),
            api("badpin"),
            api("badname")
        ))
        .extra_upstream("good", &upstream(&spki_pin(&id), "pinned.test"))
        .extra_upstream("badpin", &upstream(&spki_pin(&other_key), "pinned.test"))
        .extra_upstream("badname", &upstream(&spki_pin(&id), "other.test"))
        .start()
        .await;
    assert_eq!(gw.get("/good/x").await.status, 200);
    let r = gw.get("/badpin/x").await;
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("pin"), "no detail to the client");
    let e = gw.next_event().await;
    assert_eq!(e.status_code, "upstream-unavailable");
    assert!(e.message.contains("SPKI pin"), "{}", e.message);
    assert_eq!(gw.get("/badname/x").await.status, 502);
    assert!(gw.next_event().await.message.contains("badname"));
    gw.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn the_gateway_presents_its_client_certificate_to_upstreams_that_require_one() {
    let env = TestEnv::new().await;
    let id = env.ca.issue(&["backend.mtls"], false).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(env.ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .unwrap();
    let server_tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_client_cert_verifier(verifier)
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap()],
        rustls_pki_types::PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let server = BackendServer::start("127.0.0.1:0".parse().unwrap(), server_tls, ok_handler())
        .await
        .unwrap();
    let gw_client = env
        .ca
        .issue_to(env.path(), "gateway-client", &["gateway.internal"], true)
        .unwrap();
    let upstream = |extra: &str| {
        format!(
            "url: https://127.0.0.1:{}\nca: {}\nserver_name: backend.mtls\n{extra}",
            server.addr.port(),
            env.ca_path.display()
        )
    };
    let mut gw = env
        .gateway(&format!("{}{}", api("withcert"), api("nocert")))
        .extra_upstream(
            "withcert",
            &upstream(&format!(
                "client_cert: {}\nclient_key: {}",
                gw_client.cert.display(),
                gw_client.key.display()
            )),
        )
        .extra_upstream("nocert", &upstream(""))
        .start()
        .await;
    assert_eq!(gw.get("/withcert/x").await.status, 200);
    assert_eq!(gw.get("/nocert/x").await.status, 502);
    let e = gw.expect_event("upstream-unavailable").await;
    assert!(e.message.contains("nocert"), "{}", e.message);
    gw.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn check_reports_wildcards_expiring_certificates_and_anonymous_upstreams() {
    let env = TestEnv::new().await;
    let (listeners, soon) = env.weak_certificates();
    let (cert, key) = (soon.cert, soon.key);
    let yaml = env
        .gateway(&format!("{}{}", api("good"), api("soon")))
        .listeners(&listeners)
        .extra_upstream(
            "soon",
            &format!(
                "url: https://10.0.0.7:8443\nca: {}\nclient_cert: {}\nclient_key: {}",
                env.ca_path.display(),
                cert.display(),
                key.display()
            ),
        )
        .extra_upstream(
            "good",
            &format!(
                "url: https://127.0.0.1:1\nca: {}\nserver_name: good.internal",
                env.ca_path.display()
            ),
        )
        .yaml();
    let config = portcullis_config::parse(&yaml, env.path()).unwrap();
    let found: Vec<String> = portcullis_gateway::tls::certificate_findings(&config)
        .into_iter()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    let has = |prefix: &str, text: &str| {
        found
            .iter()
            .any(|f| f.starts_with(prefix) && f.contains(text))
    };
    assert!(has("listeners[0].tls.cert", "wildcard"), "{found:?}");
    assert!(has("upstreams.soon.client_cert", "expires in"), "{found:?}");
    assert!(
        has("upstreams.good.client_cert", "no client certificate"),
        "{found:?}"
    );
    assert!(has("upstreams.soon.server_name", "IP address"), "{found:?}");
    assert!(!has("upstreams.good.server_name", ""), "{found:?}");
}

/// A backend on loopback serving `id`.
async fn backend_with(id: &Issued) -> BackendServer {
    BackendServer::start(
        "127.0.0.1:0".parse().unwrap(),
        backend::tls_from_pem(&id.cert_pem, &id.key_pem).unwrap(),
        ok_handler(),
    )
    .await
    .unwrap()
}

/// A gateway with API `/up` on upstream `up`: `server`, with `extra` lines.
async fn gateway_to(
    env: &TestEnv,
    server: &BackendServer,
    extra: &str,
) -> portcullis_testkit::TestGateway {
    env.gateway(&api("up"))
        .extra_upstream(
            "up",
            &format!(
                "url: https://127.0.0.1:{}\nca: {}\n{extra}",
                server.addr.port(),
                env.ca_path.display()
            ),
        )
        .start()
        .await
}

fn write_crl(env: &TestEnv, revoked: &[&str]) -> std::path::PathBuf {
    let path = env.path().join("upstreams.crl.pem");
    let tmp = env.path().join("upstreams.crl.pem.tmp");
    let next = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    std::fs::write(&tmp, env.ca.crl(revoked, next).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

#[tokio::test]
async fn an_upstream_certificate_revoked_by_a_reloaded_crl_is_not_reused_from_the_pool() {
    let env = TestEnv::new().await;
    let id = env.ca.issue(&["crl.test"], false).unwrap();
    let server = backend_with(&id).await;
    let crl = write_crl(&env, &[]);
    let mut gw = gateway_to(
        &env,
        &server,
        &format!("server_name: crl.test\ncrls: [{}]", crl.display()),
    )
    .await;
    // A kept-alive pooled connection now exists.
    assert_eq!(gw.get("/up/x").await.status, 200);
    assert_eq!(gw.get("/up/x").await.status, 200);
    write_crl(&env, &[&id.cert_pem]);
    // Polled until the reloaded CRL takes effect: the first answer that is
    // not 200 must be the refusal.
    let mut r = gw.get("/up/x").await;
    for _ in 0..100 {
        if r.status != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        r = gw.get("/up/x").await;
    }
    assert_eq!(r.status, 502, "the pooled connection was reused");
    let e = gw.next_event().await;
    assert!(
        e.message.to_lowercase().contains("revoked"),
        "{}",
        e.message
    );
    gw.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn pooled_upstream_connections_do_not_outlive_the_upstream_certificate() {
    let env = TestEnv::new().await;
    let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let id = env
        .ca
        .issue_until(&["short.test"], false, Some(expires))
        .unwrap();
    let server = backend_with(&id).await;
    let mut gw = gateway_to(&env, &server, "server_name: short.test").await;
    assert_eq!(gw.get("/up/x").await.status, 200);
    // Past the certificate's notAfter the idle pooled connection (idle
    // timeout 60 s) would still work; it must not be used. A clock to
    // pass, not synchronisation.
    tokio::time::sleep(std::time::Duration::from_millis(4200)).await;
    let r = gw.get("/up/x").await;
    assert_eq!(r.status, 502, "a connection outlived its peer certificate");
    let e = gw.next_event().await;
    assert!(
        e.message.to_lowercase().contains("expired"),
        "{}",
        e.message
    );
    gw.stop().await;
    server.stop().await;
}
