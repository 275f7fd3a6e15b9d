//! WebSocket routes through real sockets (issue 21): a TLS echo backend
//! behind the gateway, a real client (tokio-tungstenite). The handshake
//! passes every stage a request does (AUTHN-04, the Origin allowlist), and
//! the open socket stays under the same decisions (AUTHZ-05, OPS-03,
//! OPS-04): a kill switch or a disabled application closes it with 1008.

use futures_util::{SinkExt, StreamExt};
use portcullis_gateway::admin::Role;
use portcullis_gateway::dev::backend::tls_from_pem;
use portcullis_testkit::{TestEnv, TestGateway, admin_call};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A TLS WebSocket backend that echoes every data message.
async fn echo_backend(env: &TestEnv) -> SocketAddr {
    let id = env.ca.issue(&["127.0.0.1"], false).unwrap();
    let tls = tls_from_pem(&id.cert_pem, &id.key_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

const CHAT_API: &str = r"
  - name: chat
    base_path: /v1
    upstream: ws
    routes:
      - { path: /chat, methods: [GET], auth: { api_key: true } }
    websockets:
      /chat: { origins: ['https://app.example'], max_message_bytes: 1024 }
";

/// A gateway with the chat API, identity and an admin plane; its admin address.
async fn gateway(env: &TestEnv, backend: SocketAddr) -> (TestGateway, SocketAddr) {
    let gw = env
        .gateway(CHAT_API)
        .extra_upstream(
            "ws",
            &format!(
                "url: https://{backend}\nca: {}\nserver_name: 127.0.0.1",
                env.ca_path.display()
            ),
        )
        .with(&format!(
            "identity: {{ data_dir: {} }}\nadmin: {{ bind: '127.0.0.1:0' }}",
            env.identity_dir().display()
        ))
        .start()
        .await;
    let admin = gw.running.as_ref().unwrap().addr("admin").unwrap();
    (gw, admin)
}

/// Opens `/v1/chat` with the given API key and Origin.
async fn open(gw: &TestGateway, key: Option<&str>, origin: Option<&str>) -> Result<Client, Error> {
    let mut request = format!("wss://localhost:{}/v1/chat", gw.addr.port())
        .into_client_request()
        .unwrap();
    if let Some(k) = key {
        request
            .headers_mut()
            .insert("x-api-key", k.parse().unwrap());
    }
    if let Some(o) = origin {
        request.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::client_async(request, gw.raw_tls().await)
        .await
        .map(|(ws, _)| ws)
}

fn refused_with(r: Result<Client, Error>) -> u16 {
    match r {
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("refused without an HTTP answer: {e}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

async fn echo(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an echo within 5 s")
        .expect("the socket is open")
        .expect("a message");
    assert_eq!(back, Message::text(text));
}

/// Reads until the gateway closes the socket; its close code.
async fn closed_with(ws: &mut Client, within: Duration) -> CloseCode {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("not closed within {within:?}"));
        match item {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code,
            Some(Ok(Message::Close(None))) => panic!("closed without a code"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("socket broke instead of closing: {e}"),
            None => panic!("connection ended without a close frame"),
        }
    }
}

async fn expect_event(gw: &mut TestGateway, code: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = tokio::time::timeout(left, gw.next_event())
            .await
            .unwrap_or_else(|_| panic!("no {code} event"));
        if e.status_code == code {
            return e.message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_through_the_gateway_and_refused_handshakes() {
    let env = TestEnv::new().await;
    let key = env.provision_app("web");
    let (mut gw, _) = gateway(&env, echo_backend(&env).await).await;

    // No key, an unknown Origin, a plain GET: refused before the backend.
    assert_eq!(refused_with(open(&gw, None, None).await), 401);
    expect_event(&mut gw, "missing-api-key").await;
    let evil = open(&gw, Some(&key), Some("https://evil.example")).await;
    assert_eq!(refused_with(evil), 403);
    expect_event(&mut gw, "websocket-origin-denied").await;
    let plain = gw
        .send(
            portcullis_testkit::Proto::Http1,
            gw.request("GET", "/v1/chat")
                .header("x-api-key", &key)
                .body(http_body_util::Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(plain.status, 400);
    assert_eq!(
        plain.json()["type"],
        "urn:portcullis:problem:websocket-handshake"
    );

    // A listed Origin, and none (a non-browser client): echoed both ways.
    for origin in [Some("https://app.example"), None] {
        let mut ws = open(&gw, Some(&key), origin).await.expect("handshake");
        expect_event(&mut gw, "websocket-opened").await;
        echo(&mut ws, "hello").await;
        ws.send(Message::binary(vec![7u8; 1024])).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_data().len(), 1024);
        ws.close(None).await.unwrap();
        let message = expect_event(&mut gw, "websocket-closed").await;
        assert!(message.contains("closed by the client"), "{message}");
        assert!(message.contains("2 messages up, 2 down"), "{message}");
    }

    // A message over max_message_bytes closes the socket with 1009.
    let mut ws = open(&gw, Some(&key), None).await.expect("handshake");
    ws.send(Message::binary(vec![0u8; 1025])).await.unwrap();
    assert_eq!(
        closed_with(&mut ws, Duration::from_secs(5)).await,
        CloseCode::Size
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_or_a_disabled_application_closes_open_sockets_within_a_second() {
    let env = TestEnv::new().await;
    let key = env.provision_app("web");
    let root = env.admin_token("root", Role::SecurityAdmin);
    let (mut gw, admin) = gateway(&env, echo_backend(&env).await).await;

    // Kill switch on the API.
    let mut ws = open(&gw, Some(&key), None).await.expect("handshake");
    echo(&mut ws, "before").await;
    let off = json!({ "target": "api:chat", "reason": "incident 42" });
    let (status, body) = admin_call(
        admin,
        "POST",
        "/admin/v1/kill-switches",
        Some(&root),
        Some(off),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let switched = Instant::now();
    assert_eq!(
        closed_with(&mut ws, Duration::from_secs(1)).await,
        CloseCode::Policy
    );
    assert!(switched.elapsed() < Duration::from_secs(1));
    let message = expect_event(&mut gw, "websocket-closed-by-policy").await;
    assert!(message.contains("1008"), "{message}");
    // While it is on, no socket opens.
    assert_eq!(refused_with(open(&gw, Some(&key), None).await), 503);
    let clear = json!({ "target": "api:chat", "reason": "fixed" });
    let (status, _) = admin_call(
        admin,
        "POST",
        "/admin/v1/kill-switches-clear",
        Some(&root),
        Some(clear),
    )
    .await;
    assert_eq!(status, 200);

    // The application switched off.
    let mut ws = open(&gw, Some(&key), None)
        .await
        .expect("handshake after the clear");
    echo(&mut ws, "again").await;
    let why = json!({ "reason": "leaked key suspected" });
    let (status, body) = admin_call(
        admin,
        "POST",
        "/admin/v1/apps/web/disable",
        Some(&root),
        Some(why),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let disabled = Instant::now();
    assert_eq!(
        closed_with(&mut ws, Duration::from_secs(1)).await,
        CloseCode::Policy
    );
    assert!(disabled.elapsed() < Duration::from_secs(1));
    assert_eq!(refused_with(open(&gw, Some(&key), None).await), 403);
}

/// A revoked token closes the sockets opened with it (AUTHZ-05): the
/// revocation reaches the store, the snapshot changes, the socket's
/// handshake decision is made again and refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_closes_its_socket_within_a_second() {
    use portcullis_gateway::store::{Revocation, Store};
    let env = TestEnv::new().await;
    let backend = echo_backend(&env).await;
    let issuer = portcullis_testkit::TestIssuer::new("https://issuer.test", "k1");
    let identity = env.identity_yaml(&issuer, &env.path().join("jwks.json"));
    let api = CHAT_API.replace("auth: { api_key: true }", "auth: { token: true }");
    let mut gw = env
        .gateway(&api)
        .extra_upstream(
            "ws",
            &format!(
                "url: https://{backend}\nca: {}\nserver_name: 127.0.0.1",
                env.ca_path.display()
            ),
        )
        .with(&identity)
        .start()
        .await;
    let claims = issuer.claims("alice", "");
    let token = issuer.mint(&claims);
    let mut request = format!("wss://localhost:{}/v1/chat", gw.addr.port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, gw.raw_tls().await)
        .await
        .expect("handshake with the token");
    echo(&mut ws, "before").await;
    let (store, _) = env.store();
    store
        .revoke_token(
            &Revocation {
                issuer: issuer.issuer.clone(),
                jti: claims["jti"].as_str().map(str::to_owned),
                subject: None,
                revoked_before: None,
                expires_at: claims["exp"].as_i64().unwrap(),
            },
            portcullis_gateway::clock::now(),
        )
        .unwrap();
    let revoked = Instant::now();
    assert_eq!(
        closed_with(&mut ws, Duration::from_secs(1)).await,
        CloseCode::Policy
    );
    assert!(revoked.elapsed() < Duration::from_secs(1));
    let message = expect_event(&mut gw, "websocket-closed-by-policy").await;
    assert!(message.contains("revoked"), "{message}");
}

/// A client certificate revoked while its socket is open closes the socket
/// (TLS-10): the socket re-checks it against the reloaded CRL as a request
/// on the connection would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_client_certificate_closes_its_socket() {
    let env = TestEnv::new().await;
    let backend = echo_backend(&env).await;
    let client = env.ca.issue(&["app.demo"], true).unwrap();
    let crl = env.path().join("clients.crl.pem");
    let write_crl = |revoked: &[&str]| {
        let next = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let tmp = env.path().join("clients.crl.tmp");
        std::fs::write(&tmp, env.ca.crl(revoked, next).unwrap()).unwrap();
        std::fs::rename(&tmp, &crl).unwrap();
    };
    write_crl(&[]);
    let listeners = format!(
        "  - name: public\n    bind: 127.0.0.1:0\n    tls:\n      cert: {}\n      key: {}\n      client_auth: {{ mode: required, ca: {}, crls: [{}] }}\n",
        env.gateway_cert.cert.display(),
        env.gateway_cert.key.display(),
        env.ca_path.display(),
        crl.display()
    );
    let mut gw = env
        .gateway(&CHAT_API.replace("auth: { api_key: true }", "auth: public"))
        .extra_upstream(
            "ws",
            &format!(
                "url: https://{backend}\nca: {}\nserver_name: 127.0.0.1",
                env.ca_path.display()
            ),
        )
        .listeners(&listeners)
        .start()
        .await;
    let tls = portcullis_testkit::client_config_with(
        gw.ca_pem(),
        Some((&client.cert_pem, &client.key_pem)),
    );
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let request = format!("wss://localhost:{}/v1/chat", gw.addr.port())
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("handshake with the certificate");
    echo(&mut ws, "before").await;
    write_crl(&[&client.cert_pem]);
    assert_eq!(
        closed_with(&mut ws, Duration::from_secs(3)).await,
        CloseCode::Policy
    );
    let message = expect_event(&mut gw, "websocket-closed-by-policy").await;
    assert!(message.contains("revoked"), "{message}");
}
