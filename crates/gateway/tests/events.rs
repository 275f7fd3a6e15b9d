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

/// The access log's lines in `file`, once `n` have been written (bounded wait).
async fn access_lines(file: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.lines().count() >= n {
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "fewer than {n} access-log lines: {:?}",
        std::fs::read_to_string(file)
    );
}

/// One access-log line per request, answered or refused: ids, status,
/// bytes, timings and the target that served it; never a credential, a
/// query string or a cookie (OPS-01).
#[tokio::test]
async fn the_access_log_has_one_line_per_request_and_no_secret() {
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let env = TestEnv::new().await;
    let file = env.path().join("access.log");
    let gw = env
        .gateway(ORDERS_API)
        .with(&format!("access_log: {{ file: {} }}", file.display()))
        .start()
        .await;
    let secrets = [
        ("authorization", "Bearer eyJ-secret-token-value"),
        ("x-api-key", "pk_live_secret_key_value"),
        ("cookie", "session=secret-cookie-value"),
    ];
    let send = |method: &str, path: &str| {
        let mut req = gw.request(method, path).header("traceparent", PARENT);
        for (k, v) in secrets {
            req = req.header(k, v);
        }
        gw.send(Proto::Http1, req.body(Full::default()).unwrap())
    };
    let ok = send("GET", "/v1/orders?search=private-query-value").await;
    assert_eq!(ok.status, 200);
    let refused = send("GET", "/v1/nowhere").await;
    assert_eq!(refused.status, 404);
    let lines = access_lines(&file, 2).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (a, b) = (&lines[0], &lines[1]);
    assert_eq!(a["status"], 200);
    assert_eq!(a["method"], "GET");
    assert_eq!(a["path"], "/v1/orders");
    assert_eq!(a["api"], "orders");
    assert_eq!(a["correlation_id"], ok.header("x-correlation-id").unwrap());
    assert_eq!(a["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(a["bytes"], ok.body.len());
    assert_eq!(
        a["upstream_target"],
        format!("127.0.0.1:{}", env.backend.addr.port())
    );
    assert!(a["upstream_us"].as_u64().unwrap() <= a["duration_us"].as_u64().unwrap());
    assert!(a["rejection"].is_null());
    // Each stage's end, in order, within the whole.
    let stages: Vec<u64> = [
        "route", "access", "throttle", "contract", "upstream", "response",
    ]
    .iter()
    .map(|s| {
        a["stages_us"][s]
            .as_u64()
            .unwrap_or_else(|| panic!("no {s}: {a}"))
    })
    .collect();
    assert!(stages.windows(2).all(|w| w[0] <= w[1]), "{stages:?}");
    assert!(stages[5] <= a["duration_us"].as_u64().unwrap());
    assert_eq!(b["status"], 404);
    assert_eq!(b["rejection"], "unknown-route");
    assert!(
        b["stages_us"]
            .as_object()
            .is_some_and(serde_json::Map::is_empty),
        "refused before the route: no stage reached: {b}"
    );
    assert!(b["upstream_target"].is_null());
    assert_eq!(
        b["correlation_id"],
        refused.header("x-correlation-id").unwrap()
    );
    let text = std::fs::read_to_string(&file).unwrap();
    for leak in ["secret", "private-query-value", "search="] {
        assert!(!text.contains(leak), "{leak} in the access log: {text}");
    }
    gw.stop().await;
}
