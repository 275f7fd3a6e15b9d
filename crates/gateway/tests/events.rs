//! Security events (OPS-01): exactly one JSON-lines event per rejection,
//! OCSF-shaped, with the correlation id and without secrets.

use http_body_util::Full;
use portcullis_testkit::{ORDERS_API, Proto, TestEnv};
use std::time::Duration;

#[tokio::test]
async fn one_event_per_rejection_in_the_json_lines_file_and_no_secrets() {
    let env = TestEnv::new().await;
    let file = env.path().join("events.jsonl");
    let mut gw = env
        .gateway(ORDERS_API)
        .with(&format!("events: {{ file: {} }}", file.display()))
        .start()
        .await;
    // A success produces no event.
    assert_eq!(gw.get("/v1/orders").await.status, 200);
    // Three rejections, carrying secrets in every place a client can put them.
    for (method, path, status) in [
        ("GET", "/v1/nope?api_key=QUERYSECRET", 400),
        ("PUT", "/v1/orders", 405),
        ("GET", "/v1/../etc?token=QUERYSECRET", 400),
    ] {
        let req = gw
            .request(method, path)
            .header("authorization", "Bearer AUTHSECRET.eyJ.sig")
            .header("cookie", "session=COOKIESECRET")
            .header("x-api-key", "KEYSECRET")
            .header("x-correlation-id", format!("ev-{method}"))
            .body(Full::default())
            .unwrap();
        let r = gw.send(Proto::Http1, req).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(gw.next_event().await);
    }
    gw.assert_no_pending_event();
    assert_eq!(
        seen.iter()
            .map(|e| e.status_code.as_str())
            .collect::<Vec<_>>(),
        ["sensitive-data-in-url", "method-not-allowed", "bad-path"]
    );
    // The writer thread flushes in batches: wait (bounded) for the three lines.
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.lines().count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for secret in ["QUERYSECRET", "AUTHSECRET", "COOKIESECRET", "KEYSECRET"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into events: {text}"
        );
    }
    let e = &lines[1];
    assert_eq!(e["class_uid"], 6003);
    assert_eq!(e["status"], "Failure");
    assert_eq!(e["http_response"]["code"], 405);
    assert_eq!(e["metadata"]["correlation_uid"], "ev-PUT");
    assert_eq!(e["src_endpoint"]["ip"], "127.0.0.1");
    assert_eq!(e["api"]["service"], "orders");
    assert_eq!(e["http_request"]["url"]["path"], "/v1/orders");
    gw.stop().await;
}
