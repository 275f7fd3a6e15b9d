//! Upstream target pools through real sockets (issue 21): three HTTPS
//! backends behind one upstream, one stopped mid-run and started again,
//! all stopped; sharing one TLS identity policy (TLS-04, TLS-09).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use portcullis_gateway::dev::backend::{BackendServer, Handler, tls_from_pem};
use portcullis_testkit::{ORDERS_API, Proto, TestEnv, TestGateway, plain_exchange};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A backend answering `b<n>` on the API and 200 on `/healthz`, counting
/// the API requests it served.
fn handler(n: usize, served: Arc<AtomicUsize>) -> Handler {
    Arc::new(move |req: Request<Bytes>, _peer| {
        if req.uri().path() != "/healthz" {
            served.fetch_add(1, Ordering::SeqCst);
        }
        Box::pin(async move {
            Response::builder()
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(format!("b{n}"))))
                .unwrap()
        })
    })
}

async fn backend(env: &TestEnv, at: SocketAddr, h: Handler) -> BackendServer {
    let id = env.ca.issue(&["127.0.0.1"], false).unwrap();
    BackendServer::start(at, tls_from_pem(&id.cert_pem, &id.key_pem).unwrap(), h)
        .await
        .unwrap()
}

async fn get(gw: &TestGateway) -> u16 {
    gw.send(
        Proto::Http1,
        gw.request("GET", "/v1/orders")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .status
    .as_u16()
}

/// Waits for an event with this code whose message names `target`.
async fn event_naming(gw: &mut TestGateway, code: &str, target: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = tokio::time::timeout(left, gw.next_event())
            .await
            .unwrap_or_else(|_| panic!("no {code} event for {target}"));
        if e.status_code == code && e.message.contains(target) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_survives_a_stopped_target_ejects_it_and_takes_it_back() {
    let env = TestEnv::new().await;
    let served: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::default()).collect();
    let mut servers = Vec::new();
    for (n, count) in served.iter().enumerate() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        servers.push(Some(backend(&env, any, handler(n, count.clone())).await));
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.as_ref().unwrap().addr).collect();
    let targets = addrs
        .iter()
        .map(|a| format!("https://{a}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut gw = env
        .gateway(&ORDERS_API.replace("upstream: backend", "upstream: pool"))
        .extra_upstream(
            "pool",
            &format!(
                "targets: [{targets}]\nca: {}\nserver_name: 127.0.0.1\noutlier_detection: {{ consecutive_failures: 1, ejection_ms: 300, max_ejection_ms: 300 }}\nhealth_check: {{ path: /healthz, interval_ms: 200, timeout_ms: 100, healthy_threshold: 1, unhealthy_threshold: 2 }}\n",
                env.ca_path.display()
            ),
        )
        .with("health: { bind: 127.0.0.1:0 }")
        .start()
        .await;
    let probe = gw.running.as_ref().unwrap().addr("health").unwrap();
    let ready = || plain_exchange(probe, b"GET /readyz HTTP/1.1\r\nHost: p\r\n\r\n");

    for _ in 0..30 {
        assert_eq!(get(&gw).await, 200);
    }
    let counts = || {
        served
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    };
    assert!(counts().iter().all(|c| *c >= 5), "balanced: {:?}", counts());

    // One target stops: no client sees it, and it is ejected.
    servers[1].take().unwrap().stop().await;
    for i in 0..30 {
        assert_eq!(get(&gw).await, 200, "request {i} after the stop");
    }
    event_naming(&mut gw, "upstream-target-ejected", &addrs[1].to_string()).await;
    assert!(
        ready().await.starts_with("HTTP/1.1 200"),
        "two targets still serve"
    );

    // It comes back on the same address and gets requests again.
    let before = served[1].load(Ordering::SeqCst);
    servers[1] = Some(backend(&env, addrs[1], handler(1, served[1].clone())).await);
    event_naming(&mut gw, "upstream-target-recovered", &addrs[1].to_string()).await;
    for _ in 0..30 {
        assert_eq!(get(&gw).await, 200);
    }
    assert!(served[1].load(Ordering::SeqCst) > before, "{:?}", counts());

    // Every target stopped: health checks mark them down, and the answer
    // is a 503 problem without any try; readiness fails.
    for s in &mut servers {
        s.take().unwrap().stop().await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let r = gw
            .send(
                Proto::Http1,
                gw.request("GET", "/v1/orders")
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        if r.status == 503 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(
        refused.json()["type"],
        "urn:portcullis:problem:no-available-target"
    );
    assert!(
        !refused.text().contains("127.0.0.1"),
        "no target in the answer"
    );
    let not_ready = ready().await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    assert!(not_ready.contains("no available target"), "{not_ready}");
    gw.stop().await;
}

/// A request that is not idempotent is never sent twice: a POST whose
/// target gives no answer is a 502, with no try on another target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_requests_are_retried() {
    let env = TestEnv::new().await;
    let served: Arc<AtomicUsize> = Arc::default();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let live = backend(&env, any, handler(0, served.clone())).await;
    // A port nothing listens on: connections are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = env
        .gateway(&ORDERS_API.replace("upstream: backend", "upstream: pool"))
        .extra_upstream(
            "pool",
            &format!(
                "targets: [https://{dead}, https://{}]\nca: {}\nserver_name: 127.0.0.1\noutlier_detection: {{ consecutive_failures: 0 }}\n",
                live.addr,
                env.ca_path.display()
            ),
        )
        .start()
        .await;
    for _ in 0..4 {
        assert_eq!(get(&gw).await, 200, "a GET is retried on the live target");
    }
    let mut posts = Vec::new();
    for _ in 0..4 {
        let r = gw
            .send(
                Proto::Http1,
                gw.request("POST", "/v1/orders")
                    .header("content-type", "text/plain")
                    .body(Full::new(Bytes::from_static(b"x")))
                    .unwrap(),
            )
            .await;
        posts.push(r.status.as_u16());
    }
    // Round robin sends every other POST to the dead target: those fail.
    let failed = posts.iter().filter(|s| **s == 502).count();
    assert_eq!(failed, 2, "{posts:?}");
    assert_eq!(
        served.load(Ordering::SeqCst),
        4 + posts.iter().filter(|s| **s == 200).count(),
        "every request reached the live target at most once"
    );
    gw.stop().await;
    live.stop().await;
}

/// Circuit breaking per target: with `max_requests_per_target: 1`, a
/// second request while the first awaits its answer is refused at once
/// with 503 `overloaded`, never queued behind it; afterwards it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_at_its_cap_gets_no_more_requests() {
    let env = TestEnv::new().await;
    env.reply_with(|r| {
        let mut b = Response::builder().header("content-type", "text/plain");
        if r.uri.path().ends_with("/slow") {
            b = b.header(portcullis_testkit::DELAY_HEADER, "1500");
        }
        b.body(Full::new(Bytes::from_static(b"ok"))).unwrap()
    });
    let api = ORDERS_API.replace(
        "/orders, methods",
        "/orders/slow, methods: [GET], auth: public }\n      - { path: /orders, methods",
    );
    let mut gw = env
        .gateway(&api)
        .upstream("max_requests_per_target: 1")
        .start()
        .await;
    let slow = {
        let gw_client = gw.client(Proto::Http1);
        let req = gw
            .request("GET", "/v1/orders/slow")
            .body(Full::default())
            .unwrap();
        tokio::spawn(async move { gw_client.request(req).await.unwrap().status() })
    };
    // The slow request has reached the backend: it awaits its answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.received().is_empty() {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = gw.get("/v1/orders").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["type"], "urn:portcullis:problem:overloaded");
    let e = gw.expect_event("overloaded").await;
    assert!(
        e.message.contains("max_requests_per_target"),
        "{}",
        e.message
    );
    assert_eq!(slow.await.unwrap(), 200, "the first request is served");
    assert_eq!(get(&gw).await, 200, "a free place again");
}

/// `balance: consistent_hash`: every request of one tenant (the value of
/// `hash_header`) reaches the same target; tenants spread over the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_stays_on_one_target() {
    let env = TestEnv::new().await;
    let mut servers = Vec::new();
    for n in 0..3 {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        servers.push(backend(&env, any, handler(n, Arc::default())).await);
    }
    let targets = servers
        .iter()
        .map(|s| format!("https://{}", s.addr))
        .collect::<Vec<_>>()
        .join(", ");
    let gw = env
        .gateway(&ORDERS_API.replace("upstream: backend", "upstream: pool"))
        .extra_upstream(
            "pool",
            &format!(
                "targets: [{targets}]\nca: {}\nserver_name: 127.0.0.1\nbalance: consistent_hash\nhash_header: x-tenant",
                env.ca_path.display()
            ),
        )
        .start()
        .await;
    let mut homes = std::collections::BTreeSet::new();
    for tenant in 0..12 {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let r = gw
                .send(
                    Proto::Http1,
                    gw.request("GET", "/v1/orders")
                        .header("x-tenant", format!("tenant-{tenant}"))
                        .body(Full::default())
                        .unwrap(),
                )
                .await;
            assert_eq!(r.status, 200);
            seen.insert(r.text());
        }
        assert_eq!(seen.len(), 1, "tenant-{tenant} went to {seen:?}");
        homes.extend(seen);
    }
    assert!(homes.len() >= 2, "tenants spread: {homes:?}");
}
