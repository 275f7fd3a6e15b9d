//! Red team, data and identity: what a backend answers outside its contract
//! must not carry classified fields past the gateway (OUTPUT-10, OUTPUT-13).

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{Proto, TestEnv, TestIssuer};

const ISS: &str = "https://issuer.test";

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
        let r = gw
            .send(
                Proto::Http1,
                gw.request("GET", "/v1/orders/7")
                    .header("x-api-key", &key)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
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
        let r = gw
            .send(
                Proto::Http1,
                gw.request("GET", "/v1/orders/7")
                    .header("x-api-key", &key)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, want, "{}", r.text());
        assert!(!r.text().contains("alice@example.com"), "{}", r.text());
        assert!(!r.text().contains("cost_price"), "{}", r.text());
    }
    gw.stop().await;
}
