//! Rate limits and concurrency caps at the gateway (INPUT-08), through real
//! sockets: 429 with `Retry-After` and the IETF RateLimit fields, budgets
//! per application, one event per throttled key and window, and a route's
//! concurrency cap.

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{DELAY_HEADER, Proto, TestEnv, TestIssuer};

fn api(limits: &str, auth: &str) -> String {
    format!(
        "  - name: orders\n    base_path: /v1\n    upstream: backend\n    routes:\n      - {{ path: /orders, methods: [GET], auth: {auth} }}\n      - {{ path: /slow, methods: [GET], auth: public }}\n{limits}"
    )
}

#[tokio::test]
async fn a_client_over_its_budget_gets_429_with_retry_after_and_one_event() {
    let env = TestEnv::new().await;
    let mut gw = env
        .gateway(&api(
            "    rate_limits: [{ per: client, requests: 60, per_seconds: 60, burst: 3 }]\n",
            "public",
        ))
        .start()
        .await;
    for remaining in [2, 1, 0] {
        let r = gw.get("/v1/orders").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-policy"), Some("\"client\";q=60;w=60"));
        assert!(
            r.header("ratelimit")
                .unwrap()
                .starts_with(&format!("\"client\";r={remaining};t=")),
            "{:?}",
            r.header("ratelimit")
        );
    }
    let received = env.received().len();
    let r = gw.get("/v1/orders").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["type"], "urn:portcullis:problem:rate-limited");
    assert!(r.header("ratelimit").unwrap().contains("r=0"));
    assert_eq!(
        env.received().len(),
        received,
        "nothing reached the backend"
    );
    let e = gw.next_event().await;
    assert_eq!(e.status_code, "rate-limited");
    // Further refusals in the same window: 429 each, but no more events.
    for _ in 0..5 {
        assert_eq!(gw.get("/v1/orders").await.status, 429);
    }
    // A rejection's event is emitted before its answer is sent: the five
    // answers above are the evidence that none of them raised one.
    gw.assert_no_pending_event();
    // One interval (1 s) later, one more request fits: a clock to pass.
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(gw.get("/v1/orders").await.status, 200);
    assert_eq!(gw.get("/v1/orders").await.status, 429);
    gw.stop().await;
}

#[tokio::test]
async fn each_application_has_its_own_budget() {
    let env = TestEnv::new().await;
    let issuer = TestIssuer::new("https://issuer.test", "k1");
    let identity = env.identity_yaml(&issuer, &env.path().join("jwks.json"));
    let web = env.provision_app("web");
    let batch = env.provision_app("batch");
    let gw = env
        .gateway(&api(
            "    route_limits: { /orders: { rate_limits: [{ per: application, requests: 2, per_seconds: 60 }] } }\n",
            "{ api_key: true }",
        ))
        .with(&identity)
        .start()
        .await;
    let get = |key: &str| {
        gw.request("GET", "/v1/orders")
            .header("x-api-key", key)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    for _ in 0..2 {
        assert_eq!(gw.send(Proto::Http1, get(&web)).await.status, 200);
    }
    assert_eq!(gw.send(Proto::Http1, get(&web)).await.status, 429);
    // The same client address, another application: untouched budget.
    assert_eq!(gw.send(Proto::Http2, get(&batch)).await.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_route_concurrency_cap_refuses_the_request_over_it() {
    let env = TestEnv::new().await;
    env.reply_with(|r| {
        let mut reply = portcullis_testkit::default_reply()(r);
        if r.uri.path() == "/slow" {
            reply
                .headers_mut()
                .insert(DELAY_HEADER, http::HeaderValue::from_static("600"));
        }
        reply
    });
    let gw = env
        .gateway(&api(
            "    route_limits: { /slow: { concurrency: 1 } }\n",
            "public",
        ))
        .start()
        .await;
    // The second request is sent once the backend holds the first.
    let (a, b) = tokio::join!(gw.get("/v1/slow"), async {
        for _ in 0..100 {
            if !env.received().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            env.received().len(),
            1,
            "the first request reached the backend"
        );
        gw.get("/v1/slow").await
    });
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429]);
    // The cap is per route: another route is not affected, and the slot frees.
    assert_eq!(gw.get("/v1/orders").await.status, 200);
    assert_eq!(gw.get("/v1/slow").await.status, 200);
    gw.stop().await;
}

#[test]
fn limits_keyed_by_an_identity_the_route_does_not_establish_are_refused() {
    let text = format!(
        "listeners: [{{ name: p, bind: '127.0.0.1:0', tls: {{ cert: c, key: k }} }}]\nupstreams: {{ backend: {{ url: 'https://127.0.0.1:1', ca: ca }} }}\napis:\n{}",
        api(
            "    rate_limits: [{ per: subject, requests: 0, per_seconds: 60 }]\n    route_limits: { /nope: { concurrency: 0 } }\n",
            "public"
        )
    );
    let errors: Vec<String> = match portcullis_config::parse(&text, std::path::Path::new("/")) {
        Ok(_) => vec![],
        Err(e) => e.field_errors().iter().map(ToString::to_string).collect(),
    };
    for expected in [
        "apis[0].rate_limits[0].requests",
        "apis[0].rate_limits[0].per",
        "apis[0].route_limits./nope",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{expected}: {errors:?}"
        );
    }
}

/// Two gateway instances sharing one Redis: the fleet accepts no more than
/// the limit; with Redis gone they refuse (fail closed, one event), or fall
/// back to their own limits when so configured; Redis back, shared again.
/// Shared limits report their waits in seconds, like local ones: a budget
/// of one request a minute answers `t=60` and then `Retry-After: 60`.
#[tokio::test]
async fn shared_limits_report_reset_and_retry_after_in_seconds() {
    use portcullis_testkit::RedisServer;
    let redis = RedisServer::start();
    let env = TestEnv::new().await;
    let limits = "    rate_limits: [{ per: client, requests: 1, per_seconds: 60, burst: 1 }]\n";
    let gw = env
        .gateway(&api(limits, "public"))
        .with(&format!(
            "shared_state: {{ redis: {{ url: '{}', timeout_ms: 300 }} }}",
            redis.url()
        ))
        .start()
        .await;
    let ok = gw.get("/v1/orders").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("ratelimit"), Some("\"client\";r=0;t=60"));
    let refused = gw.get("/v1/orders").await;
    assert_eq!(refused.status, 429);
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "Retry-After: {retry}");
}

#[tokio::test]
async fn two_instances_share_one_budget_through_redis_and_fail_closed_without_it() {
    use portcullis_testkit::RedisServer;
    let redis = RedisServer::start();
    let env = TestEnv::new().await;
    let limits = "    rate_limits: [{ per: client, requests: 60, per_seconds: 60, burst: 6 }]\n";
    let start = |policy: &'static str, url: String| {
        let env = &env;
        async move {
            env.gateway(&api(limits, "public"))
                .with(&format!(
                    "shared_state: {{ redis: {{ url: '{url}', timeout_ms: 300, on_failure: {policy} }} }}"
                ))
                .start()
                .await
        }
    };
    let mut gw_a = start("closed", redis.url()).await;
    let gw_b = start("closed", redis.url()).await;
    let mut accepted = 0;
    for i in 0..20 {
        let gw = if i % 2 == 0 { &gw_a } else { &gw_b };
        match gw.get("/v1/orders").await.status.as_u16() {
            200 => accepted += 1,
            429 => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(accepted, 6, "the pair accepted more than one budget");
    let e = gw_a.next_event().await;
    assert_eq!(e.status_code, "rate-limited");

    // Redis goes away: shared limits fail closed, with one outage event.
    let port = redis.kill();
    let gw_c = start("local", format!("redis://127.0.0.1:{port}/0")).await;
    let r = gw_a.get("/v1/orders").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    let e = gw_a.next_event().await;
    assert_eq!(e.status_code, "shared-state-unavailable");
    assert_eq!(gw_a.get("/v1/orders").await.status, 429);
    // An instance configured to fall back applies its own limits instead.
    for _ in 0..6 {
        assert_eq!(gw_c.get("/v1/orders").await.status, 200);
    }
    assert_eq!(gw_c.get("/v1/orders").await.status, 429);

    // Redis is back (empty): shared budgets again, and one recovery event.
    let _redis = RedisServer::start_on(port);
    // Each instance polled until it reaches Redis again (refusals while it
    // cannot spend nothing); then the shared budget of 6 holds across both.
    let mut accepted = 0;
    for gw in [&gw_a, &gw_b] {
        let mut back = false;
        for _ in 0..100 {
            if gw.get("/v1/orders").await.status == 200 {
                back = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(back, "an instance did not reach Redis again");
        accepted += 1;
    }
    for i in 0..8 {
        let gw = if i % 2 == 0 { &gw_a } else { &gw_b };
        if gw.get("/v1/orders").await.status == 200 {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 6);
    loop {
        let e = gw_a.next_event().await;
        if e.status_code == "shared-state-recovered" {
            break;
        }
    }
}

/// OPS-02 through the gateway: a steady application, then a sudden burst,
/// raises one `usage-anomaly` event; with `tighten_on_anomaly` the burst
/// is capped at twice the usual rate.
#[tokio::test]
async fn a_sudden_burst_from_one_application_raises_one_anomaly_event() {
    let env = TestEnv::new().await;
    let issuer = TestIssuer::new("https://issuer.test", "k1");
    let identity = env.identity_yaml(&issuer, &env.path().join("jwks.json"));
    let key = env.provision_app("web");
    let mut gw = env
        .gateway(&format!(
            "{}    tighten_on_anomaly: true\n",
            api("", "{ api_key: true }")
        ))
        .with(&identity)
        .with("anomalies: { interval_s: 1, warmup_intervals: 3, factor: 5 }")
        .start()
        .await;
    let get = |gw: &portcullis_testkit::TestGateway| {
        gw.request("GET", "/v1/orders")
            .header("x-api-key", &key)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // Baseline: two requests a second for four seconds.
    for _ in 0..4 {
        for _ in 0..2 {
            assert_eq!(gw.send(Proto::Http1, get(&gw)).await.status, 200);
        }
        // A clock to pass: one anomaly interval.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    gw.assert_no_pending_event();
    // A burst of 40 in one second: one event; beyond 2× the baseline, 429.
    let mut refused = 0;
    for _ in 0..40 {
        if gw.send(Proto::Http1, get(&gw)).await.status == 429 {
            refused += 1;
        }
    }
    let e = gw.next_event().await;
    assert_eq!(e.status_code, "usage-anomaly");
    assert!(e.message.contains("application `web`"), "{}", e.message);
    assert!(refused > 20, "only {refused} refused while tightened");
    // Events are emitted before the answer: none is still on its way.
    gw.assert_no_pending_event();
}
