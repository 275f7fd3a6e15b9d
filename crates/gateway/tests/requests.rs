//! What crosses to the upstream and what never does: correlation ids
//! (DATA-03, DATA-04), header hygiene (AUTHN-11, DATA-02), body limits and
//! ambiguous framing.

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{ORDERS_API, Proto, TestEnv};

#[tokio::test]
async fn client_correlation_id_is_forwarded_echoed_and_in_events() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(ORDERS_API).start().await;
    let r = gw
        .send(
            Proto::Http2,
            gw.request("GET", "/v1/orders")
                .header("x-correlation-id", "checkout-7f3a.retry_2")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-correlation-id"), Some("checkout-7f3a.retry_2"));
    assert_eq!(
        env.received()[0].headers["x-correlation-id"],
        "checkout-7f3a.retry_2"
    );
    let r = gw
        .send(
            Proto::Http1,
            gw.request("GET", "/v1/missing")
                .header("x-correlation-id", "err-1")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.header("x-correlation-id"), Some("err-1"));
    assert_eq!(gw.next_event().await.metadata.correlation_uid, "err-1");
    gw.stop().await;
}

#[tokio::test]
async fn missing_correlation_id_is_generated_as_uuid_v7() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    let r = gw.get("/v1/orders").await;
    let id = r
        .header("x-correlation-id")
        .expect("generated id echoed")
        .to_owned();
    let uuid = uuid_version(&id);
    assert_eq!(uuid, Some(7), "{id}");
    assert_eq!(
        env.received()[0].headers["x-correlation-id"],
        id.as_str(),
        "same id forwarded upstream"
    );
    gw.stop().await;
}

fn uuid_version(s: &str) -> Option<u8> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32 && s.len() == 36)
        .then(|| u8::from_str_radix(&hex[12..13], 16).ok())
        .flatten()
}

#[tokio::test]
async fn malformed_correlation_id_is_400() {
    let env = TestEnv::new().await;
    let mut gw = env
        .gateway(ORDERS_API)
        .with("correlation: { header: X-Request-ID }")
        .start()
        .await;
    for bad in ["has space", "<script>", &"a".repeat(129)] {
        let r = gw
            .send(
                Proto::Http1,
                gw.request("GET", "/v1/orders")
                    .header("x-request-id", bad)
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(
            r.json()["type"],
            "urn:portcullis:problem:bad-correlation-id"
        );
        let echoed = r.header("x-request-id").unwrap();
        assert_ne!(echoed, bad, "a refused id is never echoed");
        assert_eq!(gw.next_event().await.metadata.correlation_uid, echoed);
    }
    assert!(env.received().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn spoofed_identity_and_hop_by_hop_headers_never_reach_upstream() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .with("request: { remove_headers: [Cookie, X-Debug-Token] }")
        .start()
        .await;
    let r = gw
        .send(
            Proto::Http1,
            gw.request("GET", "/v1/orders")
                .header("connection", "x-hop-secret")
                .header("x-hop-secret", "1")
                .header("keep-alive", "timeout=99")
                .header("x-forwarded-for", "6.6.6.6")
                .header("x-forwarded-host", "evil.example")
                .header("x-forwarded-user", "admin")
                .header("x-forwarded-prefix", "/internal")
                .header("x-real-ip", "6.6.6.6")
                .header("x-client-ip", "6.6.6.6")
                .header("forwarded", "for=6.6.6.6;proto=http")
                .header("x-http-method-override", "DELETE")
                .header("x-method-override", "DELETE")
                .header("x-portcullis-claims", "{\"scope\":\"admin\"}")
                .header("cookie", "session=s3cr3t")
                .header("x-debug-token", "t0k3n")
                .header("accept", "application/json")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    let got = &env.received()[0];
    for gone in [
        "x-hop-secret",
        "keep-alive",
        "x-forwarded-user",
        "x-forwarded-prefix",
        "x-real-ip",
        "x-client-ip",
        "x-http-method-override",
        "x-method-override",
        "x-portcullis-claims",
        "cookie",
        "x-debug-token",
    ] {
        assert!(
            got.headers.get(gone).is_none(),
            "{gone} reached the upstream"
        );
    }
    assert_eq!(
        got.headers["x-forwarded-for"], "127.0.0.1",
        "replaced by the gateway's own"
    );
    assert_eq!(got.headers["x-forwarded-proto"], "https");
    assert_ne!(got.headers["x-forwarded-host"], "evil.example");
    assert!(
        got.headers["forwarded"]
            .to_str()
            .unwrap()
            .starts_with("for=127.0.0.1;proto=https")
    );
    assert_eq!(got.headers["accept"], "application/json");
    assert_eq!(got.method, http::Method::GET, "method override ignored");
    gw.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_declared_or_streamed() {
    let env = TestEnv::new().await;
    let mut gw = env
        .gateway(ORDERS_API)
        .with("limits: { max_body_bytes: 1024 }")
        .start()
        .await;
    // Declared length over the limit.
    let r = gw
        .send(
            Proto::Http1,
            gw.request("POST", "/v1/orders")
                .body(Full::new(Bytes::from(vec![b'a'; 2048])))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["type"], "urn:portcullis:problem:payload-too-large");
    assert_eq!(gw.next_event().await.status_code, "payload-too-large");
    // Chunked, no declared length.
    let chunked = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
        "b".repeat(0x800)
    );
    let answer = gw.raw_exchange(chunked.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Within the limit: forwarded whole.
    let r = gw
        .send(
            Proto::Http2,
            gw.request("POST", "/v1/orders")
                .body(Full::new(Bytes::from(vec![b'c'; 1000])))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    let got = env.received();
    assert_eq!(
        got.len(),
        1,
        "only the request within the limit reached the backend"
    );
    assert_eq!(got[0].body.len(), 1000);
    gw.stop().await;
}

#[tokio::test]
async fn ambiguous_framing_is_400_and_never_forwarded() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    let cases = [
        "POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
        "POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!",
        "POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello",
    ];
    for raw in cases {
        let answer = gw.raw_exchange(raw.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?} -> {answer}");
    }
    assert!(
        env.received().is_empty(),
        "no smuggling candidate reached the backend"
    );
    gw.stop().await;
}
