//! Red team, connections: clients that hold connections without using them,
//! or read answers too slowly, must not exhaust the gateway (INPUT-08).
//! Every deadline here is set short in the config and observed from the
//! client side; waits are bounded polls, never fixed sleeps.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use portcullis_testkit::{ORDERS_API, TestEnv, TestGateway};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINES: &str = "limits:
  max_connections: 4
  tls_handshake_timeout_ms: 1000
  header_read_timeout_ms: 1000
  idle_timeout_ms: 1500
";

fn listeners(env: &TestEnv) -> String {
    format!(
        "  - name: public\n    bind: 127.0.0.1:0\n    tls: {{ cert: {}, key: {} }}\n  - name: redirect\n    bind: 127.0.0.1:0\n    plaintext: redirect\n",
        env.gateway_cert.cert.display(),
        env.gateway_cert.key.display()
    )
}

/// Reads until the peer closes; returns how long that took from `since`
/// (bounded: panics if the connection is still open after `within`).
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    what: &str,
    stream: &mut S,
    since: Instant,
    within: Duration,
) -> Duration {
    let mut sink = Vec::new();
    let read = tokio::time::timeout(
        within.saturating_sub(since.elapsed()),
        stream.read_to_end(&mut sink),
    )
    .await;
    assert!(read.is_ok(), "{what}: still open after {within:?}");
    since.elapsed()
}

/// The acceptance scenario: silent TCP connections fill the redirect port,
/// a silent TLS connection, a partial HTTP/2 preface and an idle HTTP/2
/// connection answering pings sit on the TLS listener; a new client still
/// gets 200, and every idle one is closed within its deadline.
#[tokio::test]
async fn hostile_connections_neither_starve_new_clients_nor_stay_open() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .with(DEADLINES)
        .listeners(&listeners(&env))
        .start()
        .await;
    let redirect = gw.running.as_ref().unwrap().addr("redirect").unwrap();
    let start = Instant::now();

    // The redirect port's own cap is full; the TLS listener is untouched.
    let mut silent_tcp = Vec::new();
    for _ in 0..4 {
        silent_tcp.push(TcpStream::connect(redirect).await.unwrap());
    }
    let mut silent_tls = gw.raw_tls().await;
    let mut partial_preface = gw.try_tls(&[b"h2"]).await.unwrap();
    partial_preface
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .unwrap();
    let (_idle_h2, idle_h2_closed) = idle_http2_with_pings(&gw).await;

    let r = gw.get("/v1/orders").await;
    assert_eq!(
        r.status, 200,
        "a new client is served while the others idle"
    );

    // First-request deadline (1 s) for connections that never sent one.
    let within = Duration::from_secs(4);
    for (i, s) in silent_tcp.iter_mut().enumerate() {
        closed_within(
            &format!("silent TCP {i} on the redirect port"),
            s,
            start,
            within,
        )
        .await;
    }
    closed_within("silent TLS", &mut silent_tls, start, within).await;
    closed_within(
        "partial HTTP/2 preface",
        &mut partial_preface,
        start,
        within,
    )
    .await;
    // Idle timeout (1.5 s) after its one request, pings notwithstanding.
    tokio::time::timeout(within.saturating_sub(start.elapsed()), idle_h2_closed)
        .await
        .expect("the idle HTTP/2 connection answering pings is closed")
        .unwrap();
    gw.stop().await;
}

/// Opens an HTTP/2 connection that sends one request, then only answers
/// and sends pings every 100 ms. Returns its sender (kept so the client does
/// not close it) and a handle that completes when the gateway closes it.
async fn idle_http2_with_pings(
    gw: &TestGateway,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let tls = gw.try_tls(&[b"h2"]).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake::<_, Full<Bytes>>(TokioIo::new(tls))
        .await
        .unwrap();
    let closed = tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = http::Request::builder()
        .uri(gw.url("/v1/orders"))
        .body(Full::default())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.into_body().collect().await;
    (sender, closed)
}

/// A listener full of silent connections serves again once their
/// first-request deadline has closed them.
#[tokio::test]
async fn a_full_listener_serves_again_after_the_deadline() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).with(DEADLINES).start().await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(gw.raw_tls().await);
    }
    // At the cap: a fifth connection is closed at once.
    assert!(
        gw.try_tls(&[b"http/1.1"]).await.is_err() || {
            let mut extra = gw.raw_tls().await;
            let mut b = [0u8; 1];
            matches!(extra.read(&mut b).await, Ok(0) | Err(_))
        }
    );
    // Poll until served: bounded by the deadline plus slack.
    let start = Instant::now();
    loop {
        if let Ok(Ok(r)) = tokio::time::timeout(
            Duration::from_millis(500),
            gw.client(portcullis_testkit::Proto::Http1).request(
                gw.request("GET", "/v1/orders")
                    .body(Full::default())
                    .unwrap(),
            ),
        )
        .await
        {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never served again"
        );
        tokio::task::yield_now().await;
    }
    gw.stop().await;
}

/// One client address may hold `max_connections_per_client` connections on
/// a listener; the next is closed before its handshake.
#[tokio::test]
async fn one_client_cannot_hold_more_than_its_share() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .with("limits:\n  max_connections_per_client: 2\n")
        .start()
        .await;
    let first = gw.raw_tls().await;
    let second = gw.raw_tls().await;
    assert!(
        gw.try_tls(&[b"http/1.1"]).await.is_err(),
        "a third connection from the same address is refused"
    );
    drop(first);
    // The slot is released when the connection ends: poll until it is.
    let start = Instant::now();
    while gw.try_tls(&[b"http/1.1"]).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "slot never released"
        );
        tokio::task::yield_now().await;
    }
    drop(second);
    gw.stop().await;
}

/// A client that stops reading a large answer is disconnected after the
/// write timeout instead of holding the connection and its buffers.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    const SIZE: usize = 64 * 1024 * 1024;
    let env = TestEnv::new().await;
    env.reply_with(|_| {
        http::Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(vec![b'x'; SIZE])))
            .unwrap()
    });
    let gw = env
        .gateway(ORDERS_API)
        .with("limits:\n  write_timeout_ms: 500\n")
        .start()
        .await;
    let mut s = gw.raw_tls().await;
    s.write_all(b"GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // Read nothing until the gateway's writes have stalled for longer than
    // the write timeout: this test waits for a clock to pass, so it sleeps.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "connection still open");
    assert!(
        got < SIZE,
        "the whole answer arrived ({got} bytes): nothing timed out"
    );
    gw.stop().await;
}

/// Connections older than `max_connection_age_ms` are closed gracefully:
/// every request sent gets its answer, then the connection ends.
#[tokio::test]
async fn old_connections_are_closed_gracefully() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .with("limits:\n  max_connection_age_ms: 1000\n")
        .start()
        .await;
    let tls = gw.try_tls(&[b"h2"]).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    let closed = tokio::spawn(conn);
    let start = Instant::now();
    let mut answered = 0;
    while !closed.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "connection never aged out"
        );
        if sender.ready().await.is_err() {
            break;
        }
        let request = http::Request::builder()
            .uri(gw.url("/v1/orders"))
            .body(Full::default())
            .unwrap();
        match sender.send_request(request).await {
            Ok(r) => {
                assert_eq!(r.status(), 200);
                answered += 1;
            }
            // Refused by GOAWAY before it was processed: safe to retry.
            Err(e) => {
                assert!(e.is_canceled() || e.is_closed(), "{e}");
                break;
            }
        }
    }
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("connection closed after GOAWAY")
        .unwrap()
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed before its age"
    );
    assert!(answered > 0);
    gw.stop().await;
}
