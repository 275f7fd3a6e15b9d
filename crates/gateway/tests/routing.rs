//! Deny by default and strict path normalisation (AUTHN-06, AUTHZ-10), with
//! real HTTPS requests through a running gateway.

use http_body_util::Full;
use portcullis_testkit::{ORDERS_API, Proto, TestEnv};

#[tokio::test]
async fn declared_route_reaches_backend_over_http1_and_http2() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    for proto in [Proto::Http1, Proto::Http2] {
        let r = gw
            .send(
                proto,
                gw.request("GET", "/v1/orders/42?expand=items")
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, 200, "{proto:?}: {}", r.text());
        assert_eq!(r.json(), serde_json::json!({"ok": true}));
    }
    let got = env.received();
    assert_eq!(got.len(), 2);
    // The API's base path is stripped; the upstream sees the route path and query.
    assert_eq!(got[0].uri.path(), "/orders/42");
    assert_eq!(got[0].uri.query(), Some("expand=items"));
    gw.stop().await;
}

#[tokio::test]
async fn unknown_path_is_404_and_never_reaches_backend() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(ORDERS_API).start().await;
    for path in [
        "/v1/unknown",
        "/v1/orders/1/items",
        "/v2/orders",
        "/",
        "/v1orders",
    ] {
        let r = gw.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["type"], "urn:portcullis:problem:unknown-route");
        assert_eq!(gw.next_event().await.status_code, "unknown-route");
    }
    assert!(
        env.received().is_empty(),
        "nothing is passed through unmatched"
    );
    gw.stop().await;
}

#[tokio::test]
async fn declared_path_with_other_method_is_405_with_allow() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    for method in ["PUT", "PATCH", "TRACE", "FOO"] {
        let r = gw
            .send(
                Proto::Http1,
                gw.request(method, "/v1/orders/7")
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("DELETE, GET"));
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    assert!(env.received().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn ambiguous_paths_are_refused_before_routing() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(ORDERS_API).start().await;
    let cases = [
        "/v1/orders/../orders",
        "/v1/./orders",
        "/v1/%2e%2e/v1/orders",
        "/v1/orders%2f42",
        "/v1/orders%5c42",
        "/v1/orders/%252e%252e",
        "/v1/orders/4%002",
        "/v1/orders/%ff%fe",
        "/v1//orders",
        "/v1/orders/a\\b",
    ];
    for path in cases {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let answer = gw.raw_exchange(request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(
            answer.contains("urn:portcullis:problem:bad-path"),
            "{path}: {answer}"
        );
        assert_eq!(gw.next_event().await.status_code, "bad-path");
    }
    assert!(
        env.received().is_empty(),
        "no refused path reached the backend"
    );
    gw.stop().await;
}

#[tokio::test]
async fn host_bound_api_only_answers_its_host() {
    let env = TestEnv::new().await;
    let apis = r"
  - name: internal
    hosts: [internal.example]
    upstream: backend
    routes:
      - { path: /status, methods: [GET], auth: public }
";
    let gw = env.gateway(apis).start().await;
    let r = gw.get("/status").await; // Host: 127.0.0.1
    assert_eq!(r.status, 404);
    let r = gw
        .send(
            Proto::Http1,
            gw.request("GET", "/status")
                .header("host", "internal.example")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    gw.stop().await;
}

/// AUTHN-06 through a starting gateway: nothing is public by omission. A
/// hand-written route without an `auth` policy, or a document operation
/// without a security requirement that `contract.public_operations` does not
/// name, keeps the gateway from starting, with the field named; written
/// out, `public` serves without credentials while a protected route of the
/// same API refuses before the backend.
#[tokio::test]
async fn nothing_is_public_by_omission() {
    let env = TestEnv::new().await;
    let implicit = ORDERS_API.replace(
        "{ path: /orders, methods: [GET, POST], auth: public }",
        "{ path: /orders, methods: [GET, POST] }",
    );
    assert_ne!(implicit, ORDERS_API);
    let refused = env
        .gateway(&implicit)
        .try_start()
        .await
        .err()
        .expect("refused");
    assert!(refused.contains("apis[0].routes[0]"), "{refused}");
    assert!(refused.contains("auth"), "{refused}");

    let undeclared = env
        .contract_api("")
        .replace("      public_operations: [getHealth]\n", "");
    let refused = env
        .gateway(&undeclared)
        .try_start()
        .await
        .err()
        .expect("refused");
    assert!(refused.contains("getHealth"), "{refused}");

    let issuer = portcullis_testkit::TestIssuer::new("https://issuer.test", "k1");
    let identity = env.identity_yaml(&issuer, &env.path().join("jwks.json"));
    let gw = env
        .gateway(&ORDERS_API.replace(
            "{ path: \"/orders/{id}\", methods: [GET, DELETE], auth: public }",
            "{ path: \"/orders/{id}\", methods: [GET, DELETE], auth: { api_key: true } }",
        ))
        .with(&identity)
        .start()
        .await;
    assert_eq!(gw.get("/v1/orders").await.status, 200);
    assert_eq!(gw.get("/v1/orders/7").await.status, 401);
    let paths: Vec<String> = env
        .received()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(paths, ["/orders"], "the protected route reached nothing");
    gw.stop().await;
}
