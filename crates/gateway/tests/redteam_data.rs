//! Red team, data and identity: what a backend answers outside its contract
//! must not carry classified fields past the gateway (OUTPUT-10, OUTPUT-13),
//! and an identity snapshot that cannot be confirmed current decides nothing
//! for long (AUTHZ-05).

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{Proto, TestEnv, TestIssuer};

const ISS: &str = "https://issuer.test";

async fn get_order(
    gw: &portcullis_testkit::TestGateway,
    key: &str,
    token: &str,
) -> portcullis_testkit::TestResponse {
    let request = gw
        .request("GET", "/v1/orders/7")
        .header("x-api-key", key)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    gw.send(Proto::Http1, request).await
}

/// `getOrder` returns an `Order` whose `customer_email` is `pii` and whose
/// `cost_price_cents` is `secret`. An answer that matches none of its
/// declared status and media type pairs cannot be filtered: it is a 502 with
/// an event, whatever the status or media type, and nothing of it leaves.
#[tokio::test]
async fn undeclared_answers_of_classified_operations_never_leave() {
    let env = TestEnv::new().await;
    let issuer = TestIssuer::new(ISS, "k1");
    let jwks = env.path().join("jwks.json");
    let key = env.provision_app("demo");
    let identity = env.identity_yaml(&issuer, &jwks);
    let mut gw = env
        .gateway(&env.contract_api(""))
        .with(&identity)
        .start()
        .await;
    let token = issuer.mint(&issuer.claims("alice", "orders:read"));
    let order = r#"{"id":"7","item":"tea","quantity":1,"customer_email":"alice@example.com","cost_price_cents":120}"#;
    let cases: [(u16, &str, &str); 5] = [
        (206, "application/json", order),
        (200, "text/plain", "alice@example.com cost 120"),
        (200, "application/octet-stream", order),
        (404, "application/json", order),
        (200, "text/html", order),
    ];
    for (status, media, body) in cases {
        let body = body.to_owned();
        env.reply_with(move |_| {
            http::Response::builder()
                .status(status)
                .header("content-type", media)
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap()
        });
        let r = get_order(&gw, &key, &token).await;
        assert_eq!(r.status, 502, "{status} {media}: {}", r.text());
        assert!(!r.text().contains("alice@"), "{}", r.text());
        assert!(!r.text().contains("120"), "{}", r.text());
        let event = gw.next_event().await;
        assert_eq!(event.status_code, "upstream-contract", "{status} {media}");
    }
    // Declared answers still pass, filtered: the default problem response
    // and the 200 order with its e-mail redacted and its cost removed.
    for (status, media, body, want) in [
        (
            404,
            "application/problem+json",
            r#"{"title":"Not found","status":404}"#,
            404,
        ),
        (200, "application/json", order, 200),
    ] {
        env.reply_with(move |_| {
            http::Response::builder()
                .status(status)
                .header("content-type", media)
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        });
        let r = get_order(&gw, &key, &token).await;
        assert_eq!(r.status, want, "{}", r.text());
        assert!(!r.text().contains("alice@example.com"), "{}", r.text());
        assert!(!r.text().contains("cost_price"), "{}", r.text());
    }
    gw.stop().await;
}

/// While the store is unreachable the last snapshot answers, but only for
/// `identity.max_staleness_s`: then protected routes are 503 (revocations
/// and disabled applications made elsewhere could be missed), public routes
/// keep serving, the instance reports itself not ready on its probe
/// listener, and all recovers when the store answers again.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_identity_snapshot_stops_deciding() {
    use portcullis_gateway::store::Store;
    use portcullis_gateway::store::pepper::Pepper;
    use portcullis_gateway::store::postgres::PgStore;
    use portcullis_testkit::{ORDERS_API, PostgresServer};
    use std::time::{Duration, Instant};
    let mut pg = PostgresServer::start();
    let env = TestEnv::new().await;
    let api = ORDERS_API.replace(
        "{ path: /orders, methods: [GET, POST], auth: public }",
        "{ path: /orders, methods: [GET, POST], auth: { api_key: true } }",
    );
    let mut gw = env
        .gateway(&api)
        .with(&format!(
            "identity: {{ data_dir: {}, max_staleness_s: 1 }}\nhealth: {{ bind: 127.0.0.1:0 }}\nshared_state:\n{}",
            env.identity_dir().display(),
            pg.yaml()
        ))
        .start()
        .await;
    let store = PgStore::open(&pg.config()).unwrap();
    let pepper = Pepper::load_or_create(&env.identity_dir()).unwrap();
    store.create_app("web", 1).unwrap();
    let key = portcullis_gateway::identity::apikeys::issue(&store, &pepper, "web", 1)
        .unwrap()
        .1;
    let status = |path: &'static str| {
        let req = gw
            .request("GET", path)
            .header("x-api-key", &key)
            .body(Full::default())
            .unwrap();
        let gw = &gw;
        async move { gw.send(Proto::Http1, req).await.status.as_u16() }
    };
    let until = |want: u16, within: Duration| async move {
        let start = Instant::now();
        loop {
            let got = status("/v1/orders").await;
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < within,
                "{got}, not {want} within {within:?}"
            );
            tokio::task::yield_now().await;
        }
    };
    let probe = gw.running.as_ref().unwrap().addr("health").unwrap();
    let ready = || async move {
        portcullis_testkit::plain_exchange(probe, b"GET /readyz HTTP/1.1\r\nHost: p\r\n\r\n").await
    };
    until(200, Duration::from_secs(3)).await;
    assert!(ready().await.starts_with("HTTP/1.1 200"));
    pg.stop();
    until(503, Duration::from_secs(10)).await;
    let not_ready = ready().await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    assert!(
        not_ready.contains("identity store is not confirmed current"),
        "{not_ready}"
    );
    assert_eq!(
        status("/v1/orders/7").await,
        200,
        "public routes keep serving"
    );
    pg.start_again();
    until(200, Duration::from_secs(15)).await;
    assert!(ready().await.starts_with("HTTP/1.1 200"), "ready again");
    let mut stale = 0;
    while let Ok(e) = gw.events.try_recv() {
        if e.status_code == "store-unavailable" && e.message.contains("max_staleness_s") {
            stale += 1;
        }
    }
    assert!(stale > 0, "the 503s raised events naming the setting");
    drop(store);
    gw.stop().await;
}

/// With several issuers configured, an API names the ones it accepts and a
/// route may narrow that list: a token from a partner's identity provider
/// carrying `admin` passes nothing on an internal route (403), and with
/// `bind_token_to_application` a token must have been issued
/// (`client_id`/`azp`) to the application whose key calls.
#[tokio::test]
async fn tokens_are_bound_to_their_issuers_and_applications() {
    let env = TestEnv::new().await;
    let internal = TestIssuer::new("https://internal.test", "k1");
    let partner = TestIssuer::new("https://partner.test", "k2");
    let other = TestIssuer::new("https://other.test", "k3");
    let jwks = env.path().join("jwks.json");
    let mut identity = env.identity_yaml(&internal, &jwks);
    for (n, issuer) in [&partner, &other].into_iter().enumerate() {
        let file = env.path().join(format!("jwks-{n}.json"));
        TestIssuer::write_jwks(&file, &[issuer]);
        identity.push_str(&format!(
            "    - issuer: {}\n      audiences: [orders-api]\n      jwks_file: {}\n      require_typ: at+jwt\n",
            issuer.issuer,
            file.display()
        ));
    }
    let key = env.provision_app("demo");
    let issuers = "    token_issuers: [https://internal.test, https://partner.test]\n    route_token_issuers: { /admin: [https://internal.test] }\n";
    let api = |issuers: &str, bind: bool| {
        format!(
            "  - name: orders\n    base_path: /v1\n    upstream: backend\n{issuers}    bind_token_to_application: {bind}\n    routes:\n      - {{ path: /admin, methods: [GET], auth: {{ api_key: true, token: true, scopes: [admin] }} }}\n      - {{ path: /shared, methods: [GET], auth: {{ api_key: true, token: true, scopes: [admin] }} }}\n"
        )
    };
    // Without token_issuers, several issuers are a config error naming the
    // field; a route may only narrow the API's list.
    for (issuers, field) in [
        ("", "apis[0].token_issuers"),
        (
            "    token_issuers: [https://internal.test]\n    route_token_issuers: { /admin: [https://partner.test] }\n",
            "apis[0].route_token_issuers./admin[0]",
        ),
        (
            "    token_issuers: [https://internal.test]\n    route_token_issuers: { /nowhere: [https://internal.test] }\n",
            "apis[0].route_token_issuers./nowhere",
        ),
    ] {
        let refused = env
            .gateway(&api(issuers, false))
            .with(&identity)
            .try_start()
            .await
            .err()
            .expect("refused");
        assert!(refused.contains(field), "{field}: {refused}");
    }

    let gw = env
        .gateway(&api(issuers, true))
        .with(&identity)
        .start()
        .await;
    let call = |path: &'static str, token: String| {
        let req = gw
            .request("GET", path)
            .header("x-api-key", &key)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        let gw = &gw;
        async move { gw.send(Proto::Http1, req).await }
    };
    let with_client = |issuer: &TestIssuer, client: Option<&str>| {
        let mut claims = issuer.claims("alice", "admin");
        if let Some(c) = client {
            claims["client_id"] = c.into();
        }
        issuer.mint(&claims)
    };
    assert_eq!(
        call("/v1/admin", with_client(&internal, Some("demo")))
            .await
            .status,
        200
    );
    // The partner's token counts on the shared route, not on the route
    // narrowed to the internal issuer.
    assert_eq!(
        call("/v1/shared", with_client(&partner, Some("demo")))
            .await
            .status,
        200
    );
    let r = call("/v1/admin", with_client(&partner, Some("demo"))).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    // An issuer the API does not name counts nowhere on it.
    for path in ["/v1/admin", "/v1/shared"] {
        let r = call(path, with_client(&other, Some("demo"))).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    // azp stands for client_id when that is absent.
    let mut azp = internal.claims("alice", "admin");
    azp["azp"] = "demo".into();
    assert_eq!(call("/v1/admin", internal.mint(&azp)).await.status, 200);
    assert_eq!(
        call("/v1/admin", with_client(&internal, Some("batch")))
            .await
            .status,
        403
    );
    assert_eq!(
        call("/v1/admin", with_client(&internal, None)).await.status,
        403
    );
    let paths: Vec<String> = env
        .received()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        ["/admin", "/shared", "/admin"],
        "only the accepted calls reached the backend"
    );
    gw.stop().await;
}
