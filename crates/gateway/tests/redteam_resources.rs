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

/// Bodies buffered at once across every connection share one budget: a
/// client holding a large half-sent body leaves no room for another large
/// one (503 problem and an event, never an unbounded allocation), and the
/// room comes back when the first request ends.
#[tokio::test]
async fn buffered_bodies_share_one_budget() {
    let env = TestEnv::new().await;
    let mut gw = env
        .gateway(portcullis_testkit::ORDERS_API)
        .with("limits:\n  max_body_bytes: 600000\n  max_response_bytes: 600000\n  max_buffered_bytes: 1000000\n")
        .start()
        .await;
    let mut holder = gw.raw_tls().await;
    holder
        .write_all(b"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 600000\r\n\r\n")
        .await
        .unwrap();
    holder.write_all(&vec![b'a'; 590_000]).await.unwrap();
    let url = gw.url("/v1/orders");
    let big = || {
        http::Request::post(&url)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(vec![b'b'; 500_000])))
            .unwrap()
    };
    // Poll until the holder's bytes are counted (they arrive asynchronously).
    let start = Instant::now();
    let refused = loop {
        let r = gw.send(Proto::Http1, big()).await;
        if r.status == 503 {
            break r;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(start.elapsed() < Duration::from_secs(5), "never refused");
    };
    assert_eq!(refused.json()["type"], "urn:portcullis:problem:overloaded");
    loop {
        let e = gw.next_event().await;
        if e.status_code == "overloaded" {
            break;
        }
    }
    // The holder gives up: its share comes back.
    drop(holder);
    let start = Instant::now();
    while gw.send(Proto::Http1, big()).await.status != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "budget never given back"
        );
        tokio::task::yield_now().await;
    }
    gw.stop().await;
}

/// The revocation endpoint checks its caller before it reads a byte of the
/// body: an anonymous client cannot make the gateway buffer anything.
#[tokio::test]
async fn the_revocation_body_is_read_only_after_its_credentials_pass() {
    let env = TestEnv::new().await;
    let issuer = portcullis_testkit::TestIssuer::new("https://issuer.test", "k1");
    let jwks = env.path().join("jwks.json");
    let identity = env.identity_yaml(&issuer, &jwks);
    let gw = env
        .gateway(portcullis_testkit::ORDERS_API)
        .with(&identity)
        .start()
        .await;
    let mut s = gw.raw_tls().await;
    // A declared body that never comes: answered at once, not after the
    // body read timeout.
    s.write_all(b"POST /oauth2/revoke HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered before the body arrived")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    gw.stop().await;
}

/// Refused credentials are counted per client address before throttling
/// (stage 8 comes after authentication): past the budget, protected routes
/// answer 429 before any key lookup or token verification, with one event;
/// public routes are untouched.
#[tokio::test]
async fn refused_credentials_are_limited_before_authentication() {
    let env = TestEnv::new().await;
    let issuer = portcullis_testkit::TestIssuer::new("https://issuer.test", "k1");
    let jwks = env.path().join("jwks.json");
    let identity = env.identity_yaml(&issuer, &jwks);
    let key = env.provision_app("demo");
    let api = portcullis_testkit::ORDERS_API.replace(
        "{ path: /orders, methods: [GET, POST], auth: public }",
        "{ path: /orders, methods: [GET, POST], auth: { api_key: true } }",
    );
    let mut gw = env
        .gateway(&api)
        .with(&identity)
        .with("limits:\n  auth_failures_per_minute: 5\n")
        .start()
        .await;
    let call = |key: String| {
        let req = gw
            .request("GET", "/v1/orders")
            .header("x-api-key", key)
            .body(Full::default())
            .unwrap();
        let gw = &gw;
        async move { gw.send(Proto::Http1, req).await }
    };
    assert_eq!(call(key.clone()).await.status, 200);
    for _ in 0..5 {
        assert_eq!(call(format!("{key}x")).await.status, 401);
    }
    let refused = call(format!("{key}x")).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    // The address is throttled before verification: even a valid key waits.
    assert_eq!(call(key.clone()).await.status, 429);
    assert_eq!(
        gw.get("/v1/orders/7").await.status,
        200,
        "public routes serve on"
    );
    let mut reasons = Vec::new();
    while let Ok(e) = gw.events.try_recv() {
        reasons.push((e.status_code.clone(), e.message.clone()));
    }
    let throttled: Vec<_> = reasons
        .iter()
        .filter(|(code, message)| code == "rate-limited" && message.contains("refused credentials"))
        .collect();
    assert_eq!(
        throttled.len(),
        1,
        "one event per client and minute: {reasons:?}"
    );
    gw.stop().await;
}

/// A flood of identical rejections is written once plus one counted summary
/// (so it cannot push other events out of the bounded spool), other events
/// in the flood are still written, and the events file is 0600, rotated at
/// its size bound with a bounded number of old files.
#[tokio::test]
async fn event_floods_are_collapsed_and_the_file_is_bounded() {
    let env = TestEnv::new().await;
    let file = env.path().join("events.jsonl");
    let gw = env
        .gateway(portcullis_testkit::ORDERS_API)
        .with(&format!(
            "events: {{ file: {}, file_max_mb: 1, file_keep: 2 }}",
            file.display()
        ))
        .start()
        .await;
    let client = gw.client(Proto::Http2);
    let get = |path: String| {
        portcullis_testkit::fetch(
            &client,
            gw.request("GET", &path).body(Full::default()).unwrap(),
        )
    };
    for i in 0..300 {
        assert_eq!(get("/v1/nope".into()).await.status, 404);
        if i == 150 {
            assert_eq!(get("/v1/a/../b".into()).await.status, 400);
        }
    }
    // The writer's window closes within a second: wait (bounded) for the summary.
    let start = Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let withheld: u64 = lines
            .iter()
            .filter(|e| e["status_code"] == "events-collapsed")
            .map(|e| {
                let m = e["message"].as_str().unwrap();
                m.split(' ').next().unwrap().parse::<u64>().unwrap()
            })
            .sum();
        let written = lines
            .iter()
            .filter(|e| e["status_code"] == "unknown-route")
            .count() as u64;
        if written + withheld == 300 {
            break lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{written} + {withheld}"
        );
        tokio::task::yield_now().await;
    };
    assert!(lines.len() < 20, "{} lines for one flood", lines.len());
    assert!(
        lines.iter().any(|e| e["status_code"] == "bad-path"),
        "the other event is written"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Distinct events (no collapse) past 1 MiB rotate the file; two kept.
    for i in 0..4000 {
        let _ = get(format!("/v1/nope{i}")).await;
    }
    let start = Instant::now();
    while !env.path().join("events.jsonl.2").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never rotated twice"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        !env.path().join("events.jsonl.3").exists(),
        "only two rotated files kept"
    );
    for f in ["events.jsonl", "events.jsonl.1"] {
        let len = std::fs::metadata(env.path().join(f)).unwrap().len();
        assert!(len <= 1024 * 1024, "{f}: {len} bytes");
    }
    gw.stop().await;
}
