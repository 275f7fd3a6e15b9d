//! Span export over OTLP (issue 21, OPS-01): through an API with an
//! OpenAPI document, the gateway becomes a hop of the client's trace. The
//! backend's `traceparent` names the gateway's span, and a test OTLP/HTTP
//! receiver gets that span, parented on the client's, with what the access
//! log says and no credential.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use portcullis_testkit::{Recorded, TestEnv, TestIssuer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An OTLP/HTTP receiver on loopback: the JSON bodies posted to it.
async fn receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let record = got.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        let json = req
                            .headers()
                            .get("content-type")
                            .map(|v| v.as_bytes().to_vec());
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        if path == "/v1/traces" && json.as_deref() == Some(b"application/json") {
                            record
                                .lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).unwrap());
                        }
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, got)
}

/// Every span the receiver got so far.
fn spans(got: &Mutex<Vec<serde_json::Value>>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for export in got.lock().unwrap().iter() {
        for rs in export["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    out
}

fn attribute<'a>(span: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_is_a_hop_of_the_trace_and_its_span_reaches_the_collector() {
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let env = TestEnv::new().await;
    let (collector, got) = receiver().await;
    let issuer = TestIssuer::new("https://issuer.test", "k1");
    let key = env.provision_app("demo");
    let gw = env
        .gateway(&env.contract_api(""))
        .with(&env.identity_yaml(&issuer, &env.path().join("jwks.json")))
        .with(&format!(
            "trace_context: {{ otlp: {{ endpoint: 'http://{collector}/v1/traces', service_name: orders-edge }} }}"
        ))
        .start()
        .await;
    env.reply_with(|_r: &Recorded| {
        http::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"orders":[]}"#)))
            .unwrap()
    });
    let token = issuer.mint(&issuer.claims("alice", "orders:read"));
    let r = gw
        .send(
            portcullis_testkit::Proto::Http1,
            gw.request("GET", "/v1/orders")
                .header("x-api-key", &key)
                .header("authorization", format!("Bearer {token}"))
                .header("traceparent", PARENT)
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);

    // The backend's parent is the gateway's span, in the client's trace.
    let seen = env.received();
    let upstream = seen[0].headers["traceparent"].to_str().unwrap().to_owned();
    assert_eq!(&upstream[..36], &PARENT[..36], "same trace");
    assert_eq!(&upstream[52..], "-01", "sampled");
    let gateway_span = &upstream[36..52];
    assert_ne!(gateway_span, &PARENT[36..52]);

    // The collector gets that span, parented on the client's.
    let deadline = Instant::now() + Duration::from_secs(15);
    let span = loop {
        if let Some(s) = spans(&got)
            .into_iter()
            .find(|s| s["spanId"] == gateway_span)
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no span exported: {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(span["name"], "GET /v1/orders");
    assert_eq!(span["kind"], 2, "server");
    assert_eq!(
        attribute(&span, "http.response.status_code").unwrap()["intValue"],
        "200"
    );
    assert_eq!(
        attribute(&span, "portcullis.api").unwrap()["stringValue"],
        "orders"
    );
    for stage in [
        "route", "access", "throttle", "contract", "upstream", "response",
    ] {
        assert!(
            attribute(&span, &format!("portcullis.stage.{stage}_us")).is_some(),
            "no {stage} timing: {span}"
        );
    }
    let export = got.lock().unwrap()[0].to_string();
    assert!(export.contains("orders-edge"), "service.name: {export}");
    for secret in [key.as_str(), token.as_str()] {
        assert!(!export.contains(secret), "a credential in the export");
    }
    gw.stop().await;
}
