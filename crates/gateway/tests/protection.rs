//! Protection of the gateway itself: slowloris, connection cap, HTTP/2
//! rapid reset, header size; its probes and a graceful shutdown.

use portcullis_testkit::{ORDERS_API, TestEnv, plain_exchange};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn slow_header_senders_are_cut_off() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .with("limits: { header_read_timeout_ms: 300 }")
        .start()
        .await;
    let mut s = gw.raw_tls().await;
    s.write_all(b"GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the gateway kept a slowloris connection open");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(env.received().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .with("limits: { max_header_bytes: 8192 }")
        .start()
        .await;
    let big = "a".repeat(16 * 1024);
    let answer = gw
        .raw_exchange(format!("GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(env.received().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_refused() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .with("limits: { max_connections: 2 }")
        .start()
        .await;
    let a = gw.raw_tls().await;
    let b = gw.raw_tls().await;
    // The third connection is accepted by the kernel and closed by the gateway.
    let third = gw.try_tls(&[b"http/1.1"]).await;
    assert!(third.is_err(), "third connection must be refused");
    drop((a, b));
    // Capacity comes back once the connections are gone (bounded wait).
    let mut ok = false;
    for _ in 0..50 {
        if gw.get("/v1/orders").await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
    gw.stop().await;
}

#[tokio::test]
async fn http2_rapid_reset_flood_is_cut_off() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .with("limits: { h2_max_pending_reset_streams: 5 }")
        .start()
        .await;
    let tls = gw.try_tls(&[b"h2"]).await.unwrap();
    let (mut send, connection) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut refused = false;
    for _ in 0..2000 {
        let req = http::Request::get(gw.url("/v1/orders")).body(()).unwrap();
        match send.ready().await {
            Ok(s) => send = s,
            Err(_) => {
                refused = true;
                break;
            }
        }
        match send.send_request(req, true) {
            Ok((_resp, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(
        refused || matches!(ended, Ok(Ok(Err(_)))),
        "the flood was not cut off: {ended:?}"
    );
    gw.stop().await;
}

/// The probes' own plain-HTTP listener answers `/healthz` and `/readyz`
/// and nothing else (OPS-05: the admin plane stays where it is). On
/// shutdown readiness fails first, the data listener stops accepting, and
/// a request already in flight still completes; then the probes close.
#[tokio::test]
async fn probes_fail_readiness_first_and_shutdown_finishes_in_flight_requests() {
    let env = TestEnv::new().await;
    let mut gw = env
        .gateway(ORDERS_API)
        .with("health: { bind: 127.0.0.1:0 }")
        .start()
        .await;
    let running = gw.running.take().unwrap();
    let health = running.addr("health").unwrap();
    let probe = |target: &str, method: &str| {
        let request = format!("{method} {target} HTTP/1.1\r\nHost: probe\r\n\r\n");
        async move { plain_exchange(health, request.as_bytes()).await }
    };
    let alive = probe("/healthz", "GET").await;
    assert!(alive.starts_with("HTTP/1.1 200"), "{alive}");
    assert!(alive.ends_with(r#"{"status":"alive"}"#), "{alive}");
    let ready = probe("/readyz", "GET").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.ends_with(r#"{"status":"ready"}"#), "{ready}");
    // Nothing else: not the API, not another method.
    let api = probe("/v1/orders", "GET").await;
    assert!(api.starts_with("HTTP/1.1 404"), "{api}");
    assert!(
        api.contains("urn:portcullis:problem:unknown-route"),
        "{api}"
    );
    let post = probe("/readyz", "POST").await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(
        post.to_ascii_lowercase().contains("allow: get, head"),
        "{post}"
    );
    assert!(env.received().is_empty(), "a probe reached the backend");

    // A request in flight: its head and half its body sent.
    let mut in_flight = gw.raw_tls().await;
    in_flight
        .write_all(b"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: text/plain\r\ncontent-length: 10\r\n\r\n12345")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(running.shutdown(Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(3);
    let not_ready = loop {
        let r = probe("/readyz", "GET").await;
        if r.starts_with("HTTP/1.1 503") || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    assert!(
        not_ready.contains("urn:portcullis:problem:not-ready"),
        "{not_ready}"
    );
    assert!(probe("/healthz", "GET").await.starts_with("HTTP/1.1 200"));
    let mut refused = false;
    while !refused && Instant::now() < deadline {
        refused = tokio::net::TcpStream::connect(gw.addr).await.is_err();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "the data listener still accepts while shutting down"
    );
    in_flight.write_all(b"67890").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), in_flight.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        env.received().len(),
        1,
        "the request in flight reached the backend"
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown ends once nothing is in flight")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(health).await.is_err(),
        "probes closed last"
    );
}
