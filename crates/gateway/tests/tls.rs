//! TLS at the edge and toward upstreams: TLS-02, TLS-03, TLS-04, TLS-05,
//! TLS-07, TLS-09.

use portcullis_gateway::dev::pki::{self, DevCa};
use portcullis_testkit::{ORDERS_API, TestEnv};
use rustls_pki_types::pem::PemObject;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls12_only_client(gw: &portcullis_testkit::TestGateway) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(gw.ca_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn handshake(
    gw: &portcullis_testkit::TestGateway,
    connector: &tokio_rustls::TlsConnector,
) -> Result<rustls::SupportedCipherSuite, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let s = connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await?;
    Ok(s.get_ref().1.negotiated_cipher_suite().unwrap())
}

#[tokio::test]
async fn listener_is_tls13_only_by_default() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    assert!(
        handshake(&gw, &tls12_only_client(&gw)).await.is_err(),
        "TLS 1.2 must be refused by default"
    );
    let s = gw.raw_tls().await;
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    gw.stop().await;
}

/// The orders API behind a listener that also speaks TLS 1.2.
async fn with_tls12(env: &TestEnv) -> portcullis_testkit::TestGateway {
    env.gateway(ORDERS_API)
        .listeners(&format!(
            "  - name: public\n    bind: 127.0.0.1:0\n    tls: {{ cert: {}, key: {}, min_version: \"1.2\" }}\n",
            env.gateway_cert.cert.display(),
            env.gateway_cert.key.display()
        ))
        .start()
        .await
}

#[tokio::test]
async fn tls12_opt_in_negotiates_only_ecdhe_aead() {
    let env = TestEnv::new().await;
    let gw = with_tls12(&env).await;
    let suite = handshake(&gw, &tls12_only_client(&gw))
        .await
        .expect("TLS 1.2 accepted when enabled");
    let name = format!("{:?}", suite.suite());
    assert!(
        name.starts_with("TLS_ECDHE_") && (name.contains("GCM") || name.contains("CHACHA20")),
        "{name}"
    );
    gw.stop().await;
}

/// TLS-03 from outside, as the assessor probes: hand-built TLS 1.2
/// ClientHellos that offer only export, NULL, RC4, 3DES, static-RSA or CBC
/// suites are refused by a gateway with TLS 1.2 enabled, while the same
/// hello offering ECDHE+AEAD suites is answered, so the refusals are about
/// the suites and not the probe.
#[tokio::test]
async fn raw_client_hellos_with_weak_suites_are_refused() {
    use portcullis_audit::tls_probe::{MODERN_12, WEAK, ask};
    let env = TestEnv::new().await;
    let gw = with_tls12(&env).await;
    let addr = ("127.0.0.1", gw.addr.port());
    let chosen = ask(addr, "localhost", 0x0303, MODERN_12).await;
    assert!(
        matches!(chosen, Some((0x0303, suite)) if MODERN_12.contains(&suite)),
        "the probe works: {chosen:?}"
    );
    for family in &WEAK {
        assert_eq!(
            ask(addr, "localhost", 0x0303, family.suites).await,
            None,
            "{} were negotiated",
            family.what
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn group_readable_private_key_is_refused() {
    let env = TestEnv::new().await;
    std::fs::set_permissions(
        &env.gateway_cert.key,
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let err = env
        .gateway(ORDERS_API)
        .try_start()
        .await
        .err()
        .expect("must refuse to start");
    assert!(err.contains("listeners[0].tls"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(
        !err.contains("PRIVATE KEY"),
        "no key material in errors: {err}"
    );
}

#[tokio::test]
async fn self_signed_leaf_is_refused_outside_dev_mode() {
    let env = TestEnv::new().await;
    let leaf = pki::self_signed_leaf(&["localhost"]).unwrap();
    let cert = env.path().join("self.pem");
    let key = env.path().join("self.key");
    std::fs::write(&cert, leaf.cert_pem).unwrap();
    portcullis_gateway::files::write_private(&key, leaf.key_pem.as_bytes()).unwrap();
    let listeners = format!(
        "  - name: public\n    bind: 127.0.0.1:0\n    tls: {{ cert: {}, key: {} }}\n",
        cert.display(),
        key.display()
    );
    let err = env
        .gateway(ORDERS_API)
        .listeners(&listeners)
        .try_start()
        .await
        .err()
        .expect("refused in production");
    assert!(err.contains("self-signed"), "{err}");
    let gw = env
        .gateway(ORDERS_API)
        .listeners(&listeners)
        .with("mode: dev")
        .try_start()
        .await;
    assert!(gw.is_ok(), "dev mode accepts it: {:?}", gw.err());
}

#[tokio::test]
async fn upstream_with_untrusted_certificate_is_refused() {
    let env = TestEnv::new().await;
    let other = DevCa::new("Some Other CA").unwrap();
    let other_ca = env.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.cert_pem()).unwrap();
    let mut gw = env.gateway(ORDERS_API).upstream_ca(&other_ca).start().await;
    let r = gw.get("/v1/orders").await;
    assert_eq!(r.status, 502);
    assert!(env.received().is_empty());
    let e = gw.next_event().await;
    assert_eq!(e.status_code, "upstream-unavailable");
    assert!(
        e.message.to_lowercase().contains("certificate"),
        "{}",
        e.message
    );
    gw.stop().await;
}

#[tokio::test]
async fn upstream_name_mismatch_is_refused() {
    let env = TestEnv::new().await;
    let mut gw = env
        .gateway(ORDERS_API)
        .upstream("server_name: payments.test")
        .start()
        .await;
    let r = gw.get("/v1/orders").await;
    assert_eq!(r.status, 502);
    assert!(env.received().is_empty());
    assert!(
        gw.next_event()
            .await
            .message
            .to_lowercase()
            .contains("certificate")
    );
    gw.stop().await;
}

#[tokio::test]
async fn plaintext_listener_only_redirects_to_https() {
    let env = TestEnv::new().await;
    let listeners = format!(
        "  - name: public\n    bind: 127.0.0.1:0\n    tls: {{ cert: {}, key: {} }}\n  - name: http\n    bind: 127.0.0.1:0\n    plaintext: redirect\n    redirect_https_port: 8443\n",
        env.gateway_cert.cert.display(),
        env.gateway_cert.key.display()
    );
    let gw = env.gateway(ORDERS_API).listeners(&listeners).start().await;
    let http_addr = gw.running.as_ref().unwrap().addr("http").unwrap();
    let mut s = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    s.write_all(b"GET /v1/orders?x=1 HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 308"), "{out}");
    assert!(
        out.to_lowercase()
            .contains("location: https://api.example:8443/v1/orders?x=1"),
        "{out}"
    );
    assert!(
        env.received().is_empty(),
        "nothing is served over plaintext"
    );
    gw.stop().await;
}
