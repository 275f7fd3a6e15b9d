//! Response hardening on every response, errors included, CORS, and the
//! problem bodies that replace gateway and upstream errors.
//! OUTPUT-01..09, OUTPUT-11, OUTPUT-12, OUTPUT-14, AUTHN-03, INPUT-12.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use portcullis_testkit::{ORDERS_API, Proto, TestEnv, TestResponse};

fn assert_hardened(r: &TestResponse) {
    for banner in [
        "server",
        "x-powered-by",
        "x-aspnet-version",
        "x-aspnetmvc-version",
        "x-runtime",
        "via",
    ] {
        assert!(
            r.headers.get(banner).is_none(),
            "{banner} leaked: {:?}",
            r.headers
        );
    }
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(r.header("x-correlation-id").is_some());
}

#[tokio::test]
async fn success_responses_are_hardened_and_banners_removed() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .with("response: { remove_headers: [X-Internal-Host] }")
        .start()
        .await;
    env.reply_with(|_| {
        Response::builder()
            .header("content-type", "application/json")
            .header("server", "nginx/1.18.0")
            .header("x-powered-by", "Express")
            .header("x-aspnet-version", "4.0.30319")
            .header("x-aspnetmvc-version", "5.2")
            .header("x-runtime", "0.02")
            .header("via", "1.1 internal-proxy")
            .header("x-internal-host", "db-7.corp")
            .header("cache-control", "public, max-age=86400")
            .header("access-control-allow-origin", "*")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    });
    for proto in [Proto::Http1, Proto::Http2] {
        let r = gw
            .send(
                proto,
                gw.request("GET", "/v1/orders")
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_hardened(&r);
        assert!(
            r.header("x-internal-host").is_none(),
            "configured sensitive header removed (OUTPUT-06)"
        );
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "the upstream never decides CORS"
        );
    }
    gw.stop().await;
}

/// AUTHN-03: the gateway caches nothing. The backend marks its answer
/// cacheable for a day and changes it on every call: two identical GETs
/// both reach it and each gets its own answer.
#[tokio::test]
async fn the_gateway_caches_no_response() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = calls.clone();
    env.reply_with(move |_| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Response::builder()
            .header("content-type", "application/json")
            .header("cache-control", "public, max-age=86400")
            .header("etag", "\"same\"")
            .body(Full::new(Bytes::from(format!("{{\"n\":{n}}}"))))
            .unwrap()
    });
    let mut bodies = Vec::new();
    for proto in [Proto::Http1, Proto::Http1, Proto::Http2] {
        let r = gw
            .send(
                proto,
                gw.request("GET", "/v1/orders")
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        bodies.push(r.json()["n"].clone());
    }
    assert_eq!(bodies, [0, 1, 2], "each GET answered by the backend");
    assert_eq!(env.received().len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn error_responses_are_problem_json_and_hardened() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    let r = gw
        .send(
            Proto::Http1,
            gw.request("GET", "/v1/nope")
                .header("x-correlation-id", "trace-1")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_hardened(&r);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = r.json();
    assert_eq!(p["type"], "urn:portcullis:problem:unknown-route");
    assert_eq!(p["status"], 404);
    assert_eq!(p["correlation_id"], "trace-1");
    assert_eq!(p["title"], "Not found");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .starts_with("No API operation is declared at this path")
    );
    gw.stop().await;
}

#[tokio::test]
async fn upstream_5xx_body_with_stack_trace_never_reaches_client() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(ORDERS_API).start().await;
    env.reply_with(|_| {
        Response::builder()
            .status(500)
            .header("content-type", "text/html")
            .header("server", "Apache Tomcat/9.0.1")
            .body(Full::new(Bytes::from_static(
                b"java.lang.NullPointerException\n\tat com.corp.orders.OrderService.find(OrderService.java:42)\n\tat jdbc:postgresql://db-7.corp:5432/orders",
            )))
            .unwrap()
    });
    let r = gw.get("/v1/orders").await;
    assert_eq!(r.status, 500);
    assert_hardened(&r);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let text = r.text();
    for leak in ["NullPointer", "OrderService", "db-7.corp", "Tomcat", "java"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    assert_eq!(r.json()["type"], "urn:portcullis:problem:upstream-error");
    let event = gw.next_event().await;
    assert_eq!(event.status_code, "upstream-error");
    gw.stop().await;
}

#[tokio::test]
async fn unreachable_upstream_is_502_with_generic_body() {
    let env = TestEnv::new().await;
    // A port that was free a moment ago: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut gw = env
        .gateway(&ORDERS_API.replace("upstream: backend", "upstream: dead"))
        .extra_upstream(
            "dead",
            &format!(
                "url: https://127.0.0.1:{free}\nca: {}\nconnect_timeout_ms: 500",
                env.ca_path.display()
            ),
        )
        .start()
        .await;
    let r = gw.get("/v1/orders").await;
    assert_eq!(r.status, 502);
    assert_hardened(&r);
    assert_eq!(
        r.json()["type"],
        "urn:portcullis:problem:upstream-unavailable"
    );
    for internal in [free.to_string().as_str(), "dead", "os error", "tcp"] {
        assert!(
            !r.text().contains(internal),
            "no internal detail ({internal}) in the body: {}",
            r.text()
        );
    }
    let event = gw.next_event().await;
    assert_eq!(event.status_code, "upstream-unavailable");
    assert!(
        event.message.contains("dead"),
        "the event keeps the detail: {}",
        event.message
    );
    gw.stop().await;
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .upstream("request_timeout_ms: 300")
        .start()
        .await;
    env.reply_with(|_| {
        Response::builder()
            .header(portcullis_testkit::DELAY_HEADER, "1500")
            .body(Full::new(Bytes::from_static(b"tardy-body")))
            .unwrap()
    });
    let r = gw.get("/v1/orders").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["type"], "urn:portcullis:problem:upstream-timeout");
    assert!(!r.text().contains("tardy-body"));
    gw.stop().await;
}

const CORS_API: &str = r#"
  - name: orders
    base_path: /v1
    upstream: backend
    cors:
      allowed_origins: ["https://app.example.com"]
      allow_credentials: true
      allowed_headers: [Content-Type, X-Correlation-ID]
      expose_headers: [X-Correlation-ID]
    routes:
      - { path: /orders, methods: [GET, POST], auth: public }
"#;

#[tokio::test]
async fn cors_allows_only_listed_origins() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(CORS_API).start().await;
    let preflight = |origin: &str| {
        gw.request("OPTIONS", "/v1/orders")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Full::default())
            .unwrap()
    };
    // Allowlisted origin: preflight answered at the gateway.
    let r = gw
        .send(Proto::Http1, preflight("https://app.example.com"))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-correlation-id")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    // Unlisted origin: refused, no CORS headers, never reflected.
    let r = gw
        .send(Proto::Http1, preflight("https://evil.example"))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(gw.next_event().await.status_code, "cors-origin-denied");
    // An OPTIONS without Origin, or without the method it asks about, is
    // no preflight: routed like any request (OPTIONS is not declared).
    for (origin, method) in [
        (None, Some("POST")),
        (Some("https://app.example.com"), None),
    ] {
        let mut req = gw.request("OPTIONS", "/v1/orders");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(m) = method {
            req = req.header("access-control-request-method", m);
        }
        let r = gw
            .send(Proto::Http1, req.body(Full::default()).unwrap())
            .await;
        assert_eq!(r.status, 405, "{origin:?} {method:?}");
        assert_eq!(gw.next_event().await.status_code, "method-not-allowed");
    }
    // Actual requests.
    let get = |origin: &str| {
        gw.request("GET", "/v1/orders")
            .header("origin", origin)
            .body(Full::default())
            .unwrap()
    };
    let r = gw.send(Proto::Http1, get("https://app.example.com")).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-correlation-id")
    );
    let r = gw.send(Proto::Http1, get("https://evil.example")).await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("access-control-allow-credentials").is_none());
    assert!(
        env.received()
            .iter()
            .all(|r| r.method != http::Method::OPTIONS),
        "preflights never reach the backend"
    );
    gw.stop().await;
}
