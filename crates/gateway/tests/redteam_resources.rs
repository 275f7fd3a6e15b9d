//! Red team, resources: work a client can make the gateway hold or do
//! without paying for it (INPUT-08).

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{Proto, TestEnv};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CAPPED_API: &str = "
  - name: orders
    base_path: /v1
    upstream: backend
    routes:
      - { path: /orders, methods: [GET, POST], auth: public }
    route_limits: { /orders: { concurrency: 1 } }
";

/// A body trickled a byte at a time neither holds the route's concurrency
/// slot (it is taken once the body is read) nor the connection for the
/// whole read timeout (a minimum rate applies after a grace period).
#[tokio::test]
async fn a_slow_body_holds_no_slot_and_is_cut_off() {
    let env = TestEnv::new().await;
    let mut gw = env
        .gateway(CAPPED_API)
        .with("limits:\n  min_body_bytes_per_s: 1024\n  body_rate_grace_ms: 300\n")
        .start()
        .await;
    let mut slow = gw.raw_tls().await;
    slow.write_all(
        b"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
    )
    .await
    .unwrap();
    let start = Instant::now();
    let trickle = tokio::spawn(async move {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // The attacker's pace: one byte every 100 ms (a clock, not a sync).
            tokio::select! {
                read = slow.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return answer,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if slow.write_all(b" ").await.is_err() {
                        return answer;
                    }
                }
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                return answer;
            }
        }
    });
    // Meanwhile another client uses the route: the slot is free.
    let r = gw
        .send(
            Proto::Http1,
            gw.request("POST", "/v1/orders")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("the trickled body is cut off")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let event = gw.next_event().await;
    assert_eq!(event.status_code, "body-unreadable");
    assert!(
        event.message.contains("min_body_bytes_per_s"),
        "{}",
        event.message
    );
    assert_eq!(
        env.received().len(),
        1,
        "only the complete request was forwarded"
    );
    gw.stop().await;
}
