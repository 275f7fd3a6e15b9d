//! Protection of the gateway itself: slowloris, connection cap, HTTP/2
//! rapid reset, header size.

use portcullis_testkit::{ORDERS_API, TestEnv};
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
