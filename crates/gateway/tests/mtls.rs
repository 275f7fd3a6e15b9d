//! Client certificates at the edge (TLS-01, TLS-08, TLS-10): verified at
//! the handshake against the client CA and CRLs, and again on every request
//! of a kept-alive connection against the current CRLs and the clock.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use portcullis_gateway::dev::pki::Issued;
use portcullis_testkit::{ORDERS_API, TestEnv, TestGateway};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

fn hours(h: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::hours(h)
}

/// Writes a CRL the way an operator's tooling would: a new file renamed over the old.
fn write_crl(env: &TestEnv, revoked: &[&str], next_update: OffsetDateTime) -> PathBuf {
    let path = env.path().join("clients.crl.pem");
    let tmp = env.path().join("clients.crl.pem.tmp");
    std::fs::write(&tmp, env.ca.crl(revoked, next_update).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

async fn start(env: &TestEnv, crl: &std::path::Path, mode: &str) -> TestGateway {
    start_with(env, crl, mode, ORDERS_API, "").await
}

async fn start_with(
    env: &TestEnv,
    crl: &std::path::Path,
    mode: &str,
    apis: &str,
    extra: &str,
) -> TestGateway {
    let listeners = format!(
        "  - name: public\n    bind: 127.0.0.1:0\n    tls:\n      cert: {}\n      key: {}\n      client_auth: {{ mode: {mode}, ca: {}, crls: [{}] }}\n",
        env.gateway_cert.cert.display(),
        env.gateway_cert.key.display(),
        env.ca_path.display(),
        crl.display()
    );
    env.gateway(apis)
        .with(extra)
        .listeners(&listeners)
        .start()
        .await
}

/// One kept-alive HTTP/1.1 connection presenting `client` (or no certificate).
async fn connect(
    env: &TestEnv,
    gw: &TestGateway,
    client: Option<&Issued>,
) -> Result<Sender, String> {
    let mut config = portcullis_testkit::client_config_with(
        &env.ca.cert_pem(),
        client.map(|c| (c.cert_pem.as_str(), c.key_pem.as_str())),
    );
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(gw.addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Status and body of one request on `sender`, or the error text.
async fn get(sender: &mut Sender) -> Result<(u16, String), String> {
    get_with(sender, None).await
}

async fn get_with(sender: &mut Sender, bearer: Option<&str>) -> Result<(u16, String), String> {
    let authorization = bearer.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|a| ("authorization", a.as_str()))
        .collect();
    get_headers(sender, &headers).await
}

async fn get_headers(
    sender: &mut Sender,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let mut req = http::Request::get("/v1/orders").header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::default()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A new connection with `client` cannot complete a request.
async fn refused_on_new_connection(env: &TestEnv, gw: &TestGateway, client: Option<&Issued>) {
    match connect(env, gw, client).await {
        Err(_) => {}
        Ok(mut s) => assert!(get(&mut s).await.is_err(), "a new connection was served"),
    }
}

/// Polls the open connection until its answer is no longer 200 (the
/// gateway has reloaded what the test changed); that answer.
async fn until_refused(open: &mut Sender) -> (u16, String) {
    for _ in 0..100 {
        let answer = get(open).await.unwrap();
        if answer.0 != 200 {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still served 5 s after the change");
}

/// Polls new connections with `client` until one is served.
async fn until_served(env: &TestEnv, gw: &TestGateway, client: &Issued) {
    for _ in 0..100 {
        if let Ok(mut s) = connect(env, gw, Some(client)).await
            && get(&mut s).await.is_ok_and(|(status, _)| status == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not served 5 s after the change");
}

#[tokio::test]
async fn revoked_certificate_is_refused_on_open_and_new_connections_after_crl_reload() {
    let env = TestEnv::new().await;
    let client = env.ca.issue(&["app.demo"], true).unwrap();
    let crl = write_crl(&env, &[], hours(1));
    let mut gw = start(&env, &crl, "required").await;
    // TLS-01: no certificate, no request.
    refused_on_new_connection(&env, &gw, None).await;
    let mut open = connect(&env, &gw, Some(&client)).await.unwrap();
    assert_eq!(get(&mut open).await.unwrap().0, 200);
    // Revoke: the CRL file changes, the gateway reloads it.
    write_crl(&env, &[&client.cert_pem], hours(1));
    let (status, body) = until_refused(&mut open).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("urn:portcullis:problem:client-certificate-refused"));
    let e = gw.next_event().await;
    assert_eq!(e.status_code, "client-certificate-refused");
    assert!(e.message.contains("revoked"));
    refused_on_new_connection(&env, &gw, Some(&client)).await;
    // Another, unrevoked certificate still works.
    let other = env.ca.issue(&["app.other"], true).unwrap();
    let mut s = connect(&env, &gw, Some(&other)).await.unwrap();
    assert_eq!(get(&mut s).await.unwrap().0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn certificate_expiring_mid_connection_is_refused_on_its_next_request() {
    let env = TestEnv::new().await;
    let soon = OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let client = env.ca.issue_until(&["app.demo"], true, Some(soon)).unwrap();
    let crl = write_crl(&env, &[], hours(1));
    let mut gw = start(&env, &crl, "required").await;
    let mut open = connect(&env, &gw, Some(&client)).await.unwrap();
    assert_eq!(get(&mut open).await.unwrap().0, 200);
    // A clock to pass, not synchronisation: the certificate's notAfter.
    tokio::time::sleep(Duration::from_millis(4200)).await;
    assert_eq!(get(&mut open).await.unwrap().0, 401);
    assert!(gw.next_event().await.message.contains("validity"));
    gw.stop().await;
}

#[tokio::test]
async fn stale_crl_fails_closed() {
    let env = TestEnv::new().await;
    let client = env.ca.issue(&["app.demo"], true).unwrap();
    let crl = write_crl(
        &env,
        &[],
        OffsetDateTime::now_utc() + time::Duration::seconds(3),
    );
    let mut gw = start(&env, &crl, "required").await;
    let mut open = connect(&env, &gw, Some(&client)).await.unwrap();
    assert_eq!(get(&mut open).await.unwrap().0, 200);
    // A clock to pass, not synchronisation: the CRL's nextUpdate.
    tokio::time::sleep(Duration::from_millis(4200)).await;
    assert_eq!(get(&mut open).await.unwrap().0, 401);
    assert!(gw.next_event().await.message.contains("out of date"));
    refused_on_new_connection(&env, &gw, Some(&client)).await;
    // A fresh CRL restores service.
    write_crl(&env, &[], hours(1));
    until_served(&env, &gw, &client).await;
    gw.stop().await;
}

#[tokio::test]
async fn optional_mode_serves_without_a_certificate_and_checks_one_when_presented() {
    let env = TestEnv::new().await;
    let client = env.ca.issue(&["app.demo"], true).unwrap();
    let crl = write_crl(&env, &[&client.cert_pem], hours(1));
    let gw = start(&env, &crl, "optional").await;
    let mut anonymous = connect(&env, &gw, None).await.unwrap();
    assert_eq!(get(&mut anonymous).await.unwrap().0, 200);
    refused_on_new_connection(&env, &gw, Some(&client)).await;
    // A certificate from another CA is refused at the handshake.
    let stranger = portcullis_gateway::dev::pki::DevCa::new("Stranger CA")
        .unwrap()
        .issue(&["app.demo"], true)
        .unwrap();
    refused_on_new_connection(&env, &gw, Some(&stranger)).await;
    gw.stop().await;
}

#[tokio::test]
async fn certificate_bound_token_is_refused_over_another_certificate() {
    use base64::Engine;
    let env = TestEnv::new().await;
    let alice = env.ca.issue(&["app.alice"], true).unwrap();
    let mallory = env.ca.issue(&["app.mallory"], true).unwrap();
    let crl = write_crl(&env, &[], hours(1));
    let issuer = portcullis_testkit::TestIssuer::new("https://issuer.test", "k1");
    let identity = env.identity_yaml(&issuer, &env.path().join("jwks.json"));
    let api = "  - name: orders\n    base_path: /v1\n    upstream: backend\n    routes:\n      - { path: /orders, methods: [GET], auth: { token: true } }\n";
    let key = env.provision_app("web");
    let mut gw = start_with(&env, &crl, "optional", api, &identity).await;
    // RFC 8705: the token names Alice's certificate by its SHA-256 thumbprint.
    let der = CertificateDer::from_pem_slice(alice.cert_pem.as_bytes()).unwrap();
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref()).as_ref());
    let mut claims = issuer.claims("alice", "orders:read");
    claims["cnf"] = serde_json::json!({ "x5t#S256": x5t });
    let bound = issuer.mint(&claims);
    let mut as_alice = connect(&env, &gw, Some(&alice)).await.unwrap();
    assert_eq!(get_with(&mut as_alice, Some(&bound)).await.unwrap().0, 200);
    for client in [Some(&mallory), None] {
        let mut s = connect(&env, &gw, client).await.unwrap();
        let (status, _) = get_with(&mut s, Some(&bound)).await.unwrap();
        assert_eq!(status, 401);
        let e = gw.next_event().await;
        assert!(e.message.contains("certificate-bound"), "{}", e.message);
    }
    // Self-service revocation is a use of the token too: bound, like any other.
    let mut s = connect(&env, &gw, Some(&mallory)).await.unwrap();
    s.ready().await.unwrap();
    let req = http::Request::post("/oauth2/revoke-all")
        .header("host", "localhost")
        .header("x-api-key", &key)
        .header("authorization", format!("Bearer {bound}"))
        .body(Full::default())
        .unwrap();
    assert_eq!(s.send_request(req).await.unwrap().status(), 401);
    assert!(gw.next_event().await.message.contains("certificate-bound"));
    assert_eq!(
        get_with(&mut as_alice, Some(&bound)).await.unwrap().0,
        200,
        "not revoked"
    );
    // A binding the gateway cannot check (DPoP `jkt`) is refused, not ignored.
    let mut claims = issuer.claims("alice", "orders:read");
    claims["cnf"] = serde_json::json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" });
    let dpop = issuer.mint(&claims);
    assert_eq!(get_with(&mut as_alice, Some(&dpop)).await.unwrap().0, 401);
    // Unbound tokens still work over any connection.
    let plain = issuer.mint(&issuer.claims("bob", "orders:read"));
    let mut s = connect(&env, &gw, Some(&mallory)).await.unwrap();
    assert_eq!(get_with(&mut s, Some(&plain)).await.unwrap().0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_certificate_bound_to_an_application_identifies_it() {
    use portcullis_gateway::store::Store;
    let env = TestEnv::new().await;
    let demo = env.ca.issue(&["demo-app.clients.test"], true).unwrap();
    let stranger = env.ca.issue(&["stranger.clients.test"], true).unwrap();
    let crl = write_crl(&env, &[], hours(1));
    let issuer = portcullis_testkit::TestIssuer::new("https://issuer.test", "k1");
    let identity = env.identity_yaml(&issuer, &env.path().join("jwks.json"));
    let api = "  - name: orders\n    base_path: /v1\n    upstream: backend\n    routes:\n      - { path: /orders, methods: [GET], auth: { api_key: true, apps: [demo] } }\n";
    let web_key = env.provision_app("web");
    let demo_key = env.provision_app("demo");
    let (store, _) = env.store();
    store
        .bind_certificate(
            "demo",
            "demo-app.clients.test",
            portcullis_gateway::clock::now(),
        )
        .unwrap();
    let mut gw = start_with(&env, &crl, "optional", api, &identity).await;

    // The certificate alone names the application; the backend is told how.
    let mut as_demo = connect(&env, &gw, Some(&demo)).await.unwrap();
    assert_eq!(get(&mut as_demo).await.unwrap().0, 200);
    let context = context_claims(&env);
    assert_eq!(context["app"], "demo");
    assert_eq!(context["amr"], serde_json::json!(["mtls"]));
    assert!(context["cnf"]["x5t#S256"].is_string());
    // Alongside its own key: both say `demo`.
    assert_eq!(
        get_headers(&mut as_demo, &[("x-api-key", &demo_key)])
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        context_claims(&env)["amr"],
        serde_json::json!(["api_key", "mtls"])
    );
    // With another application's key: contradictory, refused.
    let (status, body) = get_headers(&mut as_demo, &[("x-api-key", &web_key)])
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(
        gw.next_event()
            .await
            .message
            .contains("different applications")
    );
    // An unbound certificate identifies nothing; `web` is not allowed here.
    let mut as_stranger = connect(&env, &gw, Some(&stranger)).await.unwrap();
    assert_eq!(get(&mut as_stranger).await.unwrap().0, 401);
    assert_eq!(gw.next_event().await.status_code, "missing-api-key");
    assert_eq!(
        get_headers(&mut as_stranger, &[("x-api-key", &web_key)])
            .await
            .unwrap()
            .0,
        403
    );
    let e = gw.expect_event("insufficient-scope").await;
    assert!(
        e.message.contains("application not allowed"),
        "{}",
        e.message
    );
    // Disabled: refused on the next request of the open connection.
    store.set_app_enabled("demo", false).unwrap();
    gw.running
        .as_ref()
        .unwrap()
        .identity()
        .unwrap()
        .refresh()
        .unwrap();
    assert_eq!(get(&mut as_demo).await.unwrap().0, 403);
    assert!(gw.next_event().await.message.contains("switched off"));
    gw.stop().await;
}

/// The claims of the context token the backend received last.
fn context_claims(env: &TestEnv) -> serde_json::Value {
    use base64::Engine;
    let received = env.received();
    let token = received.last().unwrap().headers["portcullis-context"]
        .to_str()
        .unwrap()
        .to_owned();
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Issue 16 item 15: every certificate of the presented chain is re-checked
/// per request (an intermediate revoked by the root's CRL refuses the open
/// connection's next request), and open connections meet a reloaded client
/// CA (verified again once per connection and reload).
#[tokio::test]
async fn intermediates_and_reloaded_client_cas_apply_to_open_connections() {
    let env = TestEnv::new().await;
    let intermediate = env.ca.intermediate("Portcullis Test Issuing CA").unwrap();
    let leaf = intermediate.issue(&["app.demo"], true).unwrap();
    // The client presents its leaf and the intermediate.
    let chained = Issued {
        cert_pem: format!("{}{}", leaf.cert_pem, intermediate.cert_pem()),
        key_pem: leaf.key_pem.clone(),
    };
    let crl = write_crl(&env, &[], hours(1));
    // Each issuer publishes its CRL (revocation status must be known).
    let issuing_crl = env.path().join("issuing.crl.pem");
    std::fs::write(&issuing_crl, intermediate.crl(&[], hours(1)).unwrap()).unwrap();
    let clients_ca = env.path().join("clients-ca.pem");
    std::fs::write(&clients_ca, env.ca.cert_pem()).unwrap();
    let listeners = format!(
        "  - name: public\n    bind: 127.0.0.1:0\n    tls:\n      cert: {}\n      key: {}\n      client_auth: {{ mode: required, ca: {}, crls: [{}, {}] }}\n",
        env.gateway_cert.cert.display(),
        env.gateway_cert.key.display(),
        clients_ca.display(),
        crl.display(),
        issuing_crl.display()
    );
    let mut gw = env.gateway(ORDERS_API).listeners(&listeners).start().await;
    let mut open = connect(&env, &gw, Some(&chained)).await.unwrap();
    assert_eq!(get(&mut open).await.unwrap().0, 200);
    // The root revokes the intermediate: the open connection's next request is refused.
    write_crl(&env, &[&intermediate.cert_pem()], hours(1));
    let start = std::time::Instant::now();
    let body = loop {
        let (status, body) = get(&mut open).await.unwrap();
        if status == 401 {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still served");
        tokio::task::yield_now().await;
    };
    assert!(body.contains("client-certificate-refused"), "{body}");
    let e = gw.next_event().await;
    assert!(e.message.contains("intermediate"), "{}", e.message);

    // Another connection with a direct leaf; then the client CA is replaced.
    write_crl(&env, &[], hours(1));
    let direct = env.ca.issue(&["app.other"], true).unwrap();
    let start = std::time::Instant::now();
    let mut open = loop {
        if let Ok(mut s) = connect(&env, &gw, Some(&direct)).await
            && get(&mut s).await.is_ok_and(|(status, _)| status == 200)
        {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "never served");
        tokio::task::yield_now().await;
    };
    let other_ca = portcullis_gateway::dev::pki::DevCa::new("Another client CA").unwrap();
    std::fs::write(&clients_ca, other_ca.cert_pem()).unwrap();
    // The CRL change makes the listener reload (CA included).
    let tmp = env.path().join("clients.crl.pem.tmp");
    std::fs::write(&tmp, other_ca.crl(&[], hours(1)).unwrap()).unwrap();
    std::fs::rename(&tmp, &crl).unwrap();
    let start = std::time::Instant::now();
    loop {
        let (status, body) = get(&mut open).await.unwrap();
        if status == 401 {
            assert!(body.contains("client-certificate-refused"), "{body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the old CA still admits it"
        );
        tokio::task::yield_now().await;
    }
    loop {
        let e = gw.next_event().await;
        if e.message.contains("current client CA") {
            break;
        }
    }
    gw.stop().await;
}

/// The validity window of a DER certificate, in Unix seconds.
fn window(pem: &str) -> (i64, i64) {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    (
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    )
}

/// The per-request re-check (TLS-10) is exact to the second at both ends
/// of the leaf's validity and at the end of every intermediate's; a
/// forced CRL reload reloads, an unforced one only when a file changed.
#[tokio::test]
async fn the_recheck_bounds_are_exact_to_the_second_and_crl_reloads_follow_the_files() {
    use portcullis_config::model::{ClientAuth, Mode, ServerTls};
    use portcullis_gateway::tls::clientauth::{PeerCert, TlsListener};
    let env = TestEnv::new().await;
    let intermediate = env.ca.intermediate("Boundary Issuing CA").unwrap();
    // The leaf outlives its issuer, so the two ends are judged apart.
    let leaf = intermediate
        .issue_until(&["app.demo"], true, Some(hours(24 * 90)))
        .unwrap();
    let clients_ca = env.path().join("clients-ca.pem");
    std::fs::write(&clients_ca, env.ca.cert_pem()).unwrap();
    let crl = write_crl(&env, &[], hours(1));
    let issuing_crl = env.path().join("issuing.crl.pem");
    std::fs::write(&issuing_crl, intermediate.crl(&[], hours(1)).unwrap()).unwrap();
    let tls = ServerTls {
        cert: env.gateway_cert.cert.clone(),
        key: env.gateway_cert.key.clone(),
        allow_tls12: false,
        client_auth: Some(ClientAuth {
            required: true,
            ca: clients_ca,
            crls: vec![crl.clone(), issuing_crl],
            // The bounds lie past the CRLs' next update: judged alone here
            // (stale_crl_fails_closed proves that rule).
            allow_stale_crl: true,
        }),
    };
    let listener = TlsListener::new(&tls, Mode::Production).unwrap();
    let (_, generation) = listener.config_with_generation();
    let leaf_der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
    let issuing_der = CertificateDer::from_pem_slice(intermediate.cert_pem().as_bytes()).unwrap();
    let (not_before, not_after) = window(&leaf.cert_pem);
    let (_, issuing_not_after) = window(&intermediate.cert_pem());

    // The leaf alone: both ends of its window count as inside it.
    let alone = PeerCert::from_chain(std::slice::from_ref(&leaf_der), generation).unwrap();
    let at = |cert: &PeerCert, t: i64| listener.recheck(Some(cert), t).map_err(|r| r.to_string());
    assert!(at(&alone, not_before).is_ok());
    assert!(at(&alone, not_after).is_ok());
    for t in [not_before - 1, not_after + 1] {
        let e = at(&alone, t).unwrap_err();
        assert!(e.contains("validity period"), "{t}: {e}");
    }
    // With its intermediate: the chain ends at the intermediate's notAfter.
    assert!(issuing_not_after < not_after);
    let chained = PeerCert::from_chain(&[leaf_der.clone(), issuing_der], generation).unwrap();
    assert!(at(&chained, issuing_not_after).is_ok());
    let e = at(&chained, issuing_not_after + 1).unwrap_err();
    assert!(e.contains("intermediate"), "{e}");
    // No certificate on a listener that requires one.
    assert!(listener.recheck(None, not_before).is_err());

    // The CRL's nextUpdate is a bound too (TLS-01): current at that second,
    // stale the next.
    let mut strict = tls.clone();
    if let Some(auth) = strict.client_auth.as_mut() {
        auth.allow_stale_crl = false;
        auth.crls = vec![crl.clone()];
    }
    let strict = TlsListener::new(&strict, Mode::Production).unwrap();
    let crl_der = rustls_pki_types::CertificateRevocationListDer::from_pem_file(&crl).unwrap();
    let (_, parsed) = x509_parser::parse_x509_crl(crl_der.as_ref()).unwrap();
    let next_update = parsed.next_update().unwrap().timestamp();
    let fresh = PeerCert::from_chain(
        std::slice::from_ref(&leaf_der),
        strict.config_with_generation().1,
    )
    .unwrap();
    assert!(strict.recheck(Some(&fresh), next_update).is_ok());
    let e = strict
        .recheck(Some(&fresh), next_update + 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of date"), "{e}");

    // CRL reloads: nothing changed, nothing reloaded unless forced.
    assert!(!listener.reload_if_changed(false).unwrap());
    assert!(listener.reload_if_changed(true).unwrap());
    assert_ne!(listener.config_with_generation().1, generation);
    write_crl(&env, &[&leaf.cert_pem], hours(1));
    assert!(listener.reload_if_changed(false).unwrap());
}

/// A URI subject alternative name (a SPIFFE ID, say) is one of the names a
/// certificate-bound application can be bound to (TLS-08), like a DNS name.
#[test]
fn uri_and_dns_names_of_a_client_certificate_are_its_names() {
    use rcgen::{CertificateParams, KeyPair, SanType};
    let mut params = CertificateParams::new(vec!["App.Demo".to_owned()]).unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://partners.test/acme".try_into().unwrap(),
    ));
    let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
    let peer = portcullis_gateway::tls::clientauth::PeerCert::from_der(cert.der()).unwrap();
    assert_eq!(
        peer.names,
        vec![
            "app.demo".to_owned(),
            "spiffe://partners.test/acme".to_owned()
        ]
    );
}

/// A CRL file that cannot be used keeps the last good CRLs in force and
/// raises one `crl-reload-failed` event naming the listener, however many
/// polls read it; a good file afterwards is picked up again (TLS-01).
#[tokio::test]
async fn a_broken_crl_keeps_the_last_good_one_and_raises_one_event() {
    let env = TestEnv::new().await;
    let client = env.ca.issue(&["app.demo"], true).unwrap();
    let crl = write_crl(&env, &[], hours(1));
    let mut gw = start(&env, &crl, "required").await;
    let mut open = connect(&env, &gw, Some(&client)).await.unwrap();
    assert_eq!(get(&mut open).await.unwrap().0, 200);

    let tmp = env.path().join("broken.crl.tmp");
    std::fs::write(
        &tmp,
        "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n",
    )
    .unwrap();
    std::fs::rename(&tmp, &crl).unwrap();
    let e = gw.expect_event("crl-reload-failed").await;
    assert!(
        e.message.contains("listener with client CA") && e.message.contains(".pem"),
        "{}",
        e.message
    );
    // A clock to pass, not synchronisation: at least two more of the
    // watcher's 250 ms polls read the broken file.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get(&mut open).await.unwrap().0, 200, "last good CRLs stay");
    // One event for the broken file, not one per poll.
    let mut more = 0;
    while let Ok(e) = gw.events.try_recv() {
        assert_eq!(e.status_code, "crl-reload-failed", "{}", e.message);
        more += 1;
    }
    assert_eq!(more, 0, "{more} more crl-reload-failed events");

    // A good file again: it applies (the client is now revoked).
    write_crl(&env, &[&client.cert_pem], hours(1));
    assert_eq!(until_refused(&mut open).await.0, 401);
    gw.stop().await;
}
