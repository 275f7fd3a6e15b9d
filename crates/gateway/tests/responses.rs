//! Response hardening on every response, errors included, CORS, and the
//! problem bodies that replace gateway and upstream errors.
//! OUTPUT-01..09, OUTPUT-11, OUTPUT-12, OUTPUT-14, AUTHN-03, INPUT-12.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use portcullis_testkit::{Drip, ORDERS_API, Proto, TestEnv, TestGateway, TestResponse};

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

/// An HTTPS backend answering every request with `events` as a
/// `text/event-stream`, one every `gap`.
async fn event_backend(
    env: &TestEnv,
    events: &'static [&'static str],
    gap: std::time::Duration,
    extra: &'static [(&'static str, &'static str)],
) -> std::net::SocketAddr {
    let id = env.ca.issue(&["127.0.0.1"], false).unwrap();
    let mut tls =
        portcullis_gateway::dev::backend::tls_from_pem(&id.cert_pem, &id.key_pem).unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| async move {
                    let (tx, rx) = tokio::sync::mpsc::channel(1);
                    tokio::spawn(async move {
                        for e in events {
                            if tx.send(Bytes::from_static(e.as_bytes())).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(gap).await;
                        }
                    });
                    let mut answer = Response::builder()
                        .header("content-type", "text/event-stream")
                        .header("cache-control", "no-store");
                    for (k, v) in extra {
                        answer = answer.header(*k, *v);
                    }
                    Ok::<_, std::convert::Infallible>(answer.body(Drip(rx)).unwrap())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// Server-sent events reach the client as they are sent, not when the
/// stream ends; an event that looks like a stack trace is replaced by an
/// error event and raises one security event (OUTPUT-02).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_stream_one_by_one_and_stack_traces_are_replaced() {
    use http_body_util::BodyExt;
    use std::time::{Duration, Instant};
    const EVENTS: &[&str] = &[
        "id: 1\ndata: {\"n\":1}\n\n",
        "data: Traceback (most recent call last):\ndata:   File \"app.py\", line 3\n\n",
        "id: 3\ndata: {\"n\":3}\n\n",
    ];
    let env = TestEnv::new().await;
    let backend = event_backend(&env, EVENTS, Duration::from_millis(600), &[]).await;
    let mut gw = env
        .gateway(ORDERS_API)
        .upstream(&format!("url: https://{backend}\nserver_name: 127.0.0.1\n"))
        .start()
        .await;
    let started = Instant::now();
    let response = open_stream(&gw).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            seen.push((
                started.elapsed(),
                String::from_utf8_lossy(&data).into_owned(),
            ));
        }
    }
    let text: String = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        text,
        "id: 1\ndata: {\"n\":1}\n\nevent: error\ndata: {\"type\":\"urn:portcullis:problem:upstream-stack-trace\"}\n\nid: 3\ndata: {\"n\":3}\n\n"
    );
    let (first, last) = (seen[0].0, seen[seen.len() - 1].0);
    assert!(
        last >= first + Duration::from_millis(900),
        "the first event came at {first:?}, long before the last at {last:?}"
    );
    let e = gw.expect_event("upstream-stack-trace").await;
    assert!(e.message.contains("server-sent event"), "{}", e.message);
    gw.stop().await;
}

/// The JSON data of each server-sent event of an operation with classified
/// fields is filtered like a JSON response: secrets dropped, personal data
/// redacted; an event whose data is not that JSON is replaced (OUTPUT-10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classified_fields_are_filtered_event_by_event() {
    use std::time::Duration;
    const EVENTS: &[&str] = &[
        "id: 1\ndata: {\"n\":1,\"email\":\"jane@example.com\",\"password\":\"hunter2\"}\n\n",
        "data: not json\n\n",
    ];
    let env = TestEnv::new().await;
    let backend = event_backend(&env, EVENTS, Duration::from_millis(50), &[]).await;
    let doc = env.path().join("feed.yaml");
    std::fs::write(
        &doc,
        r#"openapi: 3.1.0
info: { title: feed, version: "1" }
paths:
  /feed:
    get:
      operationId: getFeed
      security: []
      responses:
        "200":
          description: one JSON object per event
          content:
            text/event-stream:
              schema:
                type: object
                properties:
                  n: { type: integer }
                  email: { type: string, x-classification: pii }
                  password: { type: string, x-classification: secret }
"#,
    )
    .unwrap();
    let api = format!(
        "  - name: feed\n    base_path: /v1\n    upstream: backend\n    openapi: {}\n    contract: {{ public_operations: [getFeed] }}\n",
        doc.display()
    );
    let gw = env
        .gateway(&api)
        .upstream(&format!("url: https://{backend}\nserver_name: 127.0.0.1\n"))
        .start()
        .await;
    let r = gw.get("/v1/feed").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.starts_with("id: 1\ndata: {"), "{text}");
    assert!(text.contains("\"n\":1"), "{text}");
    assert!(!text.contains("hunter2"), "a secret left: {text}");
    assert!(
        !text.contains("jane@example.com"),
        "personal data left: {text}"
    );
    assert!(
        text.ends_with(
            "event: error\ndata: {\"type\":\"urn:portcullis:problem:upstream-contract\"}\n\n"
        ),
        "{text}"
    );
    gw.stop().await;
}

/// `GET /v1/orders`: the answer's head, its body still to read.
async fn open_stream(gw: &TestGateway) -> http::Response<hyper::body::Incoming> {
    gw.client(Proto::Http1)
        .request(
            gw.request("GET", "/v1/orders")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap()
}

/// What a client reads of a stream until it ends or breaks: the text, and
/// whether it broke.
async fn read_stream(gw: &TestGateway) -> (u16, String, bool, std::time::Duration) {
    use http_body_util::BodyExt;
    let started = std::time::Instant::now();
    let response = open_stream(gw).await;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let (mut text, mut broke) = (String::new(), false);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    (status, text, broke, started.elapsed())
}

/// An event stream's limits apply as bytes flow: an event over
/// `max_response_bytes`, or a silence over `body_read_timeout`, cuts the
/// stream after what was already judged and sent; a compressed stream,
/// which cannot be judged, is refused (INPUT-08, OUTPUT-02).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_cut_at_their_limits_and_compressed_ones_refused() {
    use std::time::Duration;
    const OVERSIZE: &[&str] = &[
        "data: {\"n\":1}\n\n",
        "data: 0123456789012345678901234567890123456789012345678901234567890123456789\n\n",
        "data: {\"n\":3}\n\n",
    ];
    const SLOW: &[&str] = &["data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n"];
    let env = TestEnv::new().await;

    let backend = event_backend(&env, OVERSIZE, Duration::from_millis(50), &[]).await;
    let gw = env
        .gateway(ORDERS_API)
        .upstream(&format!("url: https://{backend}\nserver_name: 127.0.0.1\n"))
        .with("limits: { max_response_bytes: 64 }")
        .start()
        .await;
    let (status, text, broke, _) = read_stream(&gw).await;
    assert_eq!(status, 200);
    assert_eq!(text, OVERSIZE[0], "nothing after the oversized event");
    assert!(broke, "the stream is cut, not ended as if complete");
    gw.stop().await;

    let backend = event_backend(&env, SLOW, Duration::from_secs(3), &[]).await;
    let gw = env
        .gateway(ORDERS_API)
        .upstream(&format!("url: https://{backend}\nserver_name: 127.0.0.1\n"))
        .with("limits: { body_read_timeout_ms: 400 }")
        .start()
        .await;
    let (_, text, broke, took) = read_stream(&gw).await;
    assert_eq!(text, SLOW[0]);
    assert!(
        broke && took < Duration::from_millis(2500),
        "cut after {took:?}"
    );
    gw.stop().await;

    let gzip = &[("content-encoding", "gzip")];
    let backend = event_backend(&env, SLOW, Duration::from_millis(50), gzip).await;
    let gw = env
        .gateway(ORDERS_API)
        .upstream(&format!("url: https://{backend}\nserver_name: 127.0.0.1\n"))
        .start()
        .await;
    let r = gw.get("/v1/orders").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["type"], "urn:portcullis:problem:upstream-contract");
    gw.stop().await;
}
