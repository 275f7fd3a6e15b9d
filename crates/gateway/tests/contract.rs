//! Contract enforcement from the OpenAPI document, with real HTTPS requests
//! through the gateway to the recording backend: INPUT-01…07, INPUT-09,
//! INPUT-13, DATA-01, OUTPUT-02, OUTPUT-05, OUTPUT-10, OUTPUT-13,
//! CONTRACT-02, CONTRACT-03, AUTHZ-02, AUTHZ-11.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use portcullis_testkit::{Proto, Recorded, TestEnv, TestGateway, TestIssuer, TestResponse};

const ISS: &str = "https://issuer.test";

struct Setup {
    env: TestEnv,
    gw: TestGateway,
    key: String,
    token: String,
    read_only: String,
}

async fn setup(contract: &str) -> Setup {
    setup_with(contract, None).await
}

async fn setup_with(contract: &str, listeners: Option<fn(&TestEnv) -> String>) -> Setup {
    let env = TestEnv::new().await;
    let issuer = TestIssuer::new(ISS, "k1");
    let jwks = env.path().join("jwks.json");
    let key = env.provision_app("demo");
    let identity = env.identity_yaml(&issuer, &jwks);
    let mut builder = env.gateway(&env.contract_api(contract)).with(&identity);
    if let Some(l) = listeners {
        builder = builder.listeners(&l(&env));
    }
    let gw = builder.start().await;
    let token = issuer.mint(&issuer.claims("alice", "orders:read orders:write"));
    let read_only = issuer.mint(&issuer.claims("alice", "orders:read"));
    Setup {
        env,
        gw,
        key,
        token,
        read_only,
    }
}

impl Setup {
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        let mut req = self
            .gw
            .request(method, path)
            .header("x-api-key", &self.key)
            .header("authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.gw
            .send(
                Proto::Http1,
                req.body(Full::new(Bytes::from(body.to_owned()))).unwrap(),
            )
            .await
    }

    async fn post_order(&self, body: &str) -> TestResponse {
        self.call(
            "POST",
            "/v1/orders",
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    fn backend_saw_nothing(&self) {
        assert!(self.env.received().is_empty(), "{:?}", self.env.received());
    }
}

fn reply_json(status: u16, body: &'static str) -> impl Fn(&Recorded) -> Response<Full<Bytes>> {
    move |_r: &Recorded| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }
}

/// The problem's `errors` as `(in, pointer)` pairs.
fn error_pointers(r: &TestResponse) -> Vec<(String, String)> {
    r.json()["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {}", r.text()))
        .iter()
        .map(|e| {
            (
                e["in"].as_str().unwrap().to_owned(),
                e["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn undeclared_properties_query_parameters_and_headers_never_reach_the_backend() {
    let mut s = setup("").await;
    s.env
        .reply_with(reply_json(201, r#"{"id":"1","item":"book","quantity":1}"#));
    let r = s
        .call(
            "POST",
            "/v1/orders?debug=1&role=admin",
            &[
                ("content-type", "application/json"),
                ("x-internal-debug", "1"),
                ("x-user-role", "admin"),
                ("idempotency-key", "order-0001-retry"),
            ],
            r#"{"item":"book","quantity":1,"is_admin":true,"owner_id":"other-user"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let seen = s.env.received();
    assert_eq!(seen.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body, serde_json::json!({"item":"book","quantity":1}));
    assert_eq!(
        seen[0].uri.query(),
        None,
        "undeclared query parameters stripped"
    );
    assert!(seen[0].headers.get("x-internal-debug").is_none());
    assert!(seen[0].headers.get("x-user-role").is_none());
    assert_eq!(seen[0].headers["idempotency-key"], "order-0001-retry");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    // Declared query parameters pass untouched, undeclared ones are dropped.
    s.env.reply_with(reply_json(200, r#"{"orders":[]}"#));
    assert_eq!(
        s.call("GET", "/v1/orders?limit=5&sort=evil", &[], "")
            .await
            .status,
        200
    );
    assert_eq!(s.env.received()[1].uri.query(), Some("limit=5"));
    s.gw.assert_no_pending_event();
    s.gw.stop().await;
}

/// W3C Trace Context crosses an API whose document declares neither
/// header (DATA-03, DATA-04): a well-formed `traceparent` and `tracestate`
/// unchanged, a malformed one replaced by a new trace without the client's
/// state, a missing one started; with `trace_context.start` off, nothing
/// is invented.
#[tokio::test]
async fn trace_context_reaches_the_backend_through_a_contract_api() {
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let s = setup("").await;
    s.env.reply_with(reply_json(200, r#"{"orders":[]}"#));
    let traced = [("traceparent", PARENT), ("tracestate", "congo=t61rcWkgMzE")];
    assert_eq!(s.call("GET", "/v1/orders", &traced, "").await.status, 200);
    let bad = [
        ("traceparent", "00-not-a-trace-01"),
        ("tracestate", "congo=x"),
    ];
    assert_eq!(s.call("GET", "/v1/orders", &bad, "").await.status, 200);
    assert_eq!(s.call("GET", "/v1/orders", &[], "").await.status, 200);
    let seen = s.env.received();
    assert_eq!(seen[0].headers["traceparent"], PARENT);
    assert_eq!(seen[0].headers["tracestate"], "congo=t61rcWkgMzE");
    for (n, r) in seen[1..].iter().enumerate() {
        let parent = r.headers["traceparent"].to_str().unwrap();
        assert!(
            parent.len() == 55 && parent.starts_with("00-") && parent.ends_with("-01"),
            "request {n}: {parent}"
        );
        assert_ne!(&parent[3..35], &PARENT[3..35]);
        assert!(r.headers.get("tracestate").is_none(), "request {n}");
    }
    assert_ne!(
        seen[1].headers["traceparent"], seen[2].headers["traceparent"],
        "each started trace is new"
    );
    s.gw.stop().await;

    let env = TestEnv::new().await;
    let issuer = TestIssuer::new(ISS, "k1");
    let key = env.provision_app("demo");
    let gw = env
        .gateway(&env.contract_api(""))
        .with(&env.identity_yaml(&issuer, &env.path().join("jwks.json")))
        .with("trace_context: { start: false }")
        .start()
        .await;
    let token = issuer.mint(&issuer.claims("alice", "orders:read"));
    let send = |headers: &[(&str, &str)]| {
        let mut req = gw
            .request("GET", "/v1/orders")
            .header("x-api-key", &key)
            .header("authorization", format!("Bearer {token}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        gw.send(Proto::Http1, req.body(Full::default()).unwrap())
    };
    assert_eq!(send(&[]).await.status, 200);
    assert_eq!(send(&traced).await.status, 200);
    let seen = env.received();
    assert!(seen[0].headers.get("traceparent").is_none(), "not started");
    assert_eq!(seen[1].headers["traceparent"], PARENT, "still forwarded");
    gw.stop().await;
}

#[tokio::test]
async fn reject_mode_refuses_undeclared_properties_with_their_pointers() {
    let mut s = setup("unknown_properties: reject").await;
    let r = s
        .post_order(r#"{"item":"book","quantity":1,"is_admin":true}"#)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        error_pointers(&r),
        [("body".to_owned(), "/is_admin".to_owned())]
    );
    let r = s.call("GET", "/v1/orders?sort=evil", &[], "").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        error_pointers(&r),
        [("query".to_owned(), "/sort".to_owned())]
    );
    assert_eq!(s.gw.next_event().await.status_code, "invalid-request");
    s.backend_saw_nothing();
    s.gw.stop().await;
}

#[tokio::test]
async fn bad_json_is_400_with_pointers_and_no_echo() {
    let mut s = setup("").await;
    // Duplicate keys: two parsers could read two different quantities.
    let r = s
        .post_order(r#"{"item":"book","quantity":1,"quantity":100}"#)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["type"], "urn:portcullis:problem:invalid-request");
    assert_eq!(r.json()["errors"][0]["reason"], "an object repeats a key");
    // Depth bomb.
    let bomb = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let r = s.post_order(&bomb).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("nested deeper than 32")
    );
    // Schema violations name each field, never the value sent.
    let r = s
        .post_order(r#"{"item":"<img src=x onerror=alert(1)>","quantity":1000,"receipt_pdf":"%%not-base64%%"}"#)
        .await;
    assert_eq!(r.status, 400);
    let mut pointers = error_pointers(&r);
    pointers.sort();
    assert_eq!(
        pointers,
        [
            ("body".to_owned(), "/item".to_owned()),
            ("body".to_owned(), "/quantity".to_owned()),
            ("body".to_owned(), "/receipt_pdf".to_owned())
        ]
    );
    let text = r.text();
    for echoed in ["onerror", "1000", "not-base64"] {
        assert!(!text.contains(echoed), "{echoed} echoed: {text}");
    }
    // A required body that is missing.
    let r = s.post_order("").await;
    assert_eq!(r.status, 400);
    // Header parameters are validated (INPUT-09).
    let r = s
        .call(
            "POST",
            "/v1/orders",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "<x>"),
            ],
            r#"{"item":"book","quantity":1}"#,
        )
        .await;
    assert_eq!(
        error_pointers(&r),
        [("header".to_owned(), "/Idempotency-Key".to_owned())]
    );
    // Path parameters too.
    let r = s.call("GET", "/v1/orders/abc", &[], "").await;
    assert_eq!(error_pointers(&r), [("path".to_owned(), "/id".to_owned())]);
    let mut messages = Vec::new();
    for _ in 0..6 {
        let e = s.gw.expect_event("invalid-request").await;
        assert_eq!(e.severity, "Low");
        assert!(!e.message.contains("onerror"), "{}", e.message);
        messages.push(e.message);
    }
    // The event names each field and what is wrong, for the operator.
    assert!(
        messages[0].contains("body an object repeats a key"),
        "{}",
        messages[0]
    );
    assert!(
        messages[2].contains("body/item") && messages[2].contains("body/quantity"),
        "{}",
        messages[2]
    );
    s.backend_saw_nothing();
    s.gw.stop().await;
}

#[tokio::test]
async fn media_types_are_declared_scripts_refused_and_accept_honoured() {
    let mut s = setup("").await;
    let order = r#"{"item":"book","quantity":1}"#;
    for ct in [
        "text/plain",
        "application/javascript",
        "application/x-www-form-urlencoded",
    ] {
        let r = s
            .call("POST", "/v1/orders", &[("content-type", ct)], order)
            .await;
        assert_eq!(r.status, 415, "{ct}");
        assert!(
            r.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with("Send the body as one of: application/json"),
            "{ct}: {}",
            r.text()
        );
        assert_eq!(
            r.json()["type"],
            "urn:portcullis:problem:unsupported-media-type"
        );
        assert!(
            r.json()["detail"]
                .as_str()
                .unwrap()
                .contains("application/json")
        );
    }
    let r = s.call("POST", "/v1/orders", &[], order).await;
    assert_eq!(r.status, 415, "a body without Content-Type");
    let r = s
        .call(
            "GET",
            "/v1/orders",
            &[("content-type", "application/json")],
            order,
        )
        .await;
    assert_eq!(r.status, 415, "a body where the operation takes none");
    assert_eq!(
        r.json()["detail"],
        "This operation takes no request body; send none."
    );
    let r = s
        .call("GET", "/v1/orders", &[("accept", "application/xml")], "")
        .await;
    assert_eq!(r.status, 406);
    assert_eq!(r.json()["type"], "urn:portcullis:problem:not-acceptable");
    for code in ["unsupported-media-type"; 5]
        .into_iter()
        .chain(["not-acceptable"])
    {
        s.gw.expect_event(code).await;
    }
    s.backend_saw_nothing();
    s.gw.stop().await;
}

#[tokio::test]
async fn sensitive_data_in_the_path_or_query_is_refused() {
    let mut s = setup("").await;
    for path in [
        "/v1/orders/alice@example.com",
        "/v1/orders/4111111111111111",
        "/v1/orders?password=hunter2",
        "/v1/orders?newPassword=x",
        "/v1/orders?contact=alice%40example.com",
        "/v1/orders?ref=123-45-6789",
        "/v1/orders?next=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    ] {
        let r = s.call("GET", path, &[], "").await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(
            r.json()["type"],
            "urn:portcullis:problem:sensitive-data-in-url",
            "{path}"
        );
        let e = s.gw.next_event().await;
        assert_eq!(e.status_code, "sensitive-data-in-url");
        assert_eq!(e.severity, "High");
        for leaked in ["hunter2", "123-45-6789", "c2lnbmF0dXJl"] {
            assert!(!r.text().contains(leaked) && !e.message.contains(leaked));
        }
    }
    s.backend_saw_nothing();
    s.gw.stop().await;
}

#[tokio::test]
async fn secret_fields_never_leave_and_personal_data_is_redacted() {
    let mut s = setup("").await;
    s.env.reply_with(reply_json(
        200,
        r#"{"id":"7","item":"book","quantity":1,"customer_email":"alice@example.com","cost_price_cents":700,"db_row_version":42}"#,
    ));
    let r = s.call("GET", "/v1/orders/7", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"id":"7","item":"book","quantity":1,"customer_email":"[redacted]"})
    );
    assert!(
        r.header("content-length")
            .is_none_or(|l| l == r.text().len().to_string())
    );
    // Classified operations are not pattern-scanned: no event for the e-mail.
    s.gw.assert_no_pending_event();
    // Lists are filtered item by item.
    s.env.reply_with(reply_json(200, r#"{"orders":[{"id":"1","item":"a","quantity":1,"cost_price_cents":1},{"id":"2","item":"b","quantity":2,"cost_price_cents":2}]}"#));
    let r = s.call("GET", "/v1/orders", &[], "").await;
    assert!(!r.text().contains("cost_price"), "{}", r.text());
    s.gw.stop().await;

    // A route allowed to see personal data still never sees secrets.
    let s = setup("allow_pii: [getOrder]").await;
    s.env.reply_with(reply_json(200, r#"{"id":"7","item":"book","quantity":1,"customer_email":"alice@example.com","cost_price_cents":700}"#));
    let r = s.call("GET", "/v1/orders/7", &[], "").await;
    assert_eq!(r.json()["customer_email"], "alice@example.com");
    assert!(r.json().get("cost_price_cents").is_none());
    s.gw.stop().await;
}

#[tokio::test]
async fn stack_traces_are_replaced_and_unclassified_personal_data_reported() {
    let mut s = setup("").await;
    s.env.reply_with(|_r: &Recorded| {
        Response::builder()
            .status(404)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(
                b"Traceback (most recent call last):\n  File \"/srv/app/orders.py\", line 42, in get\nKeyError: 'id'",
            )))
            .unwrap()
    });
    let r = s.call("GET", "/v1/orders/7", &[], "").await;
    assert_eq!(r.status, 502);
    assert_eq!(
        r.json()["type"],
        "urn:portcullis:problem:upstream-stack-trace"
    );
    assert!(!r.text().contains("orders.py"));
    let e = s.gw.next_event().await;
    assert_eq!(e.status_code, "upstream-stack-trace");
    assert_eq!(e.severity, "High");

    // getHealth has no classification: its responses are scanned (OUTPUT-13).
    s.env.reply_with(reply_json(
        200,
        r#"{"status":"up","oncall":"ops@example.com"}"#,
    ));
    let r = s.gw.get("/v1/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"status":"up"}),
        "undeclared field stripped"
    );
    let e = s.gw.next_event().await;
    assert_eq!(e.status_code, "personal-data-in-response");
    assert_eq!(e.status, "Success");
    assert!(!e.message.contains("ops@example.com"));
    s.gw.stop().await;
}

#[tokio::test]
async fn security_requirements_and_public_operations_come_from_the_document() {
    let mut s = setup("").await;
    s.env
        .reply_with(reply_json(201, r#"{"id":"1","item":"book","quantity":1}"#));
    // createOrder needs orders:write (AUTHZ-02, AUTHZ-11).
    let req =
        s.gw.request("POST", "/v1/orders")
            .header("x-api-key", &s.key)
            .header("authorization", format!("Bearer {}", s.read_only))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"item":"book","quantity":1}"#,
            )))
            .unwrap();
    let r = s.gw.send(Proto::Http1, req).await;
    assert_eq!(r.status, 403);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("orders:write")
    );
    assert_eq!(s.gw.next_event().await.status_code, "insufficient-scope");
    // listOrders needs the key (document-level security).
    let req =
        s.gw.request("GET", "/v1/orders")
            .header("authorization", format!("Bearer {}", s.token))
            .body(Full::default())
            .unwrap();
    assert_eq!(s.gw.send(Proto::Http1, req).await.status, 401);
    s.gw.expect_event("missing-api-key").await;
    // getHealth is public by the config's explicit opt-out.
    s.env.reply_with(reply_json(200, r#"{"status":"up"}"#));
    assert_eq!(s.gw.get("/v1/health").await.status, 200);
    // A method the document does not declare.
    assert_eq!(s.call("DELETE", "/v1/orders", &[], "").await.status, 405);
    s.gw.stop().await;
}

fn dev_listener(env: &TestEnv) -> String {
    format!(
        "  - name: public\n    bind: 127.0.0.1:0\n    environment: dev\n    tls: {{ cert: {}, key: {} }}\n",
        env.gateway_cert.cert.display(),
        env.gateway_cert.key.display()
    )
}

#[tokio::test]
async fn non_production_operations_are_absent_from_production_listeners() {
    let mut s = setup("").await;
    s.env.reply_with(reply_json(200, r#"{"debug":true}"#));
    let r = s.call("GET", "/v1/debug/state", &[], "").await;
    assert_eq!(r.status, 404);
    assert_eq!(s.gw.next_event().await.status_code, "unknown-route");
    s.backend_saw_nothing();
    s.gw.stop().await;

    // The same operation on a listener serving `dev`.
    let s = setup_with("", Some(dev_listener)).await;
    s.env.reply_with(reply_json(200, r#"{"debug":true}"#));
    let r = s.call("GET", "/v1/debug/state", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.gw.stop().await;
}

#[tokio::test]
async fn classified_path_parameters_never_reach_events() {
    let env = TestEnv::new().await;
    let doc = env.path().join("customers.yaml");
    std::fs::write(
        &doc,
        r#"openapi: 3.1.0
info: { title: customers, version: "1" }
paths:
  /customers/{customerId}:
    get:
      operationId: getCustomer
      security: []
      parameters:
        - name: customerId
          in: path
          required: true
          schema: { type: string, maxLength: 20, x-classification: pii }
      responses:
        "200":
          description: ok
          content: { application/json: { schema: { type: object } } }
  /accounts/{accountId}:
    get:
      operationId: getAccount
      security: []
      parameters:
        - name: accountId
          in: path
          required: true
          x-classification: pii
          schema: { type: string, maxLength: 20 }
      responses:
        "200":
          description: ok
          content: { application/json: { schema: { type: object } } }
"#,
    )
    .unwrap();
    let api = format!(
        "  - name: customers\n    base_path: /v1\n    upstream: backend\n    openapi: {}\n    contract: {{ public_operations: [getCustomer, getAccount] }}\n",
        doc.display()
    );
    let access_log = env.path().join("access.log");
    let mut gw = env
        .gateway(&api)
        .with(&format!("access_log: {{ file: {} }}", access_log.display()))
        .start()
        .await;
    let req = gw
        .request("GET", "/v1/customers/JANE-DOE-1970")
        .header("accept", "text/csv")
        .body(Full::default())
        .unwrap();
    assert_eq!(gw.send(Proto::Http1, req).await.status, 406);
    let e = gw.next_event().await;
    assert_eq!(e.http_request.url.path, "/v1/customers/{customerId}");
    assert!(!serde_json::to_string(&e).unwrap().contains("JANE-DOE"));
    // The classification may sit on the parameter instead of its schema.
    let req = gw
        .request("GET", "/v1/accounts/JOHN-ROE-1980")
        .header("accept", "text/csv")
        .body(Full::default())
        .unwrap();
    assert_eq!(gw.send(Proto::Http1, req).await.status, 406);
    let e = gw.expect_event("not-acceptable").await;
    assert_eq!(e.http_request.url.path, "/v1/accounts/{accountId}");
    assert!(!serde_json::to_string(&e).unwrap().contains("JOHN-ROE"));
    // The access log masks them the same way.
    let mut logged = String::new();
    for _ in 0..200 {
        logged = std::fs::read_to_string(&access_log).unwrap_or_default();
        if logged.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        logged.contains(r#""path":"/v1/customers/{customerId}""#),
        "{logged}"
    );
    assert!(
        logged.contains(r#""path":"/v1/accounts/{accountId}""#),
        "{logged}"
    );
    assert!(
        !logged.contains("JANE-DOE") && !logged.contains("JOHN-ROE"),
        "{logged}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn responses_that_cannot_be_inspected_or_break_their_schema_are_refused() {
    // Too large to inspect: fail closed rather than pass unfiltered data.
    let env = TestEnv::new().await;
    let issuer = TestIssuer::new(ISS, "k1");
    let jwks = env.path().join("jwks.json");
    let key = env.provision_app("demo");
    let token = issuer.mint(&issuer.claims("alice", "orders:read"));
    let identity = env.identity_yaml(&issuer, &jwks);
    let mut gw = env
        .gateway(&env.contract_api("validate_responses: true"))
        .with(&identity)
        .with("limits: { max_response_bytes: 1024 }")
        .start()
        .await;
    let url = gw.url("/v1/orders/7");
    let get = || {
        http::Request::builder()
            .method("GET")
            .uri(&url)
            .header("x-api-key", &key)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap()
    };
    let big: &'static str = Box::leak(
        format!(r#"{{"id":"7","item":"{}","quantity":1}}"#, "x".repeat(2000)).into_boxed_str(),
    );
    env.reply_with(reply_json(200, big));
    let r = gw.send(Proto::Http1, get()).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["type"], "urn:portcullis:problem:upstream-contract");
    assert!(gw.next_event().await.message.contains("max_response_bytes"));
    // Compressed bodies cannot be inspected either.
    env.reply_with(|_r: &Recorded| {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from_static(b"\x1f\x8b\x08\x00")))
            .unwrap()
    });
    assert_eq!(gw.send(Proto::Http1, get()).await.status, 502);
    let e = gw.expect_event("upstream-contract").await;
    assert!(e.message.contains("cannot be inspected"), "{}", e.message);
    // With validate_responses, a response breaking its schema becomes 502.
    env.reply_with(reply_json(
        200,
        r#"{"id":"7","item":"book","quantity":"one"}"#,
    ));
    let r = gw.send(Proto::Http1, get()).await;
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("one"));
    assert!(
        gw.next_event()
            .await
            .message
            .contains("does not match its schema")
    );
    // A conforming one passes.
    env.reply_with(reply_json(200, r#"{"id":"7","item":"book","quantity":1}"#));
    assert_eq!(gw.send(Proto::Http1, get()).await.status, 200);
    gw.stop().await;
}
