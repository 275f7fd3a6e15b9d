//! Red team, routing and parsing: requests that different components read
//! differently. Each test sends raw bytes over real TLS and checks both the
//! answer and that nothing reached the backend (AUTHZ-10, INPUT-06).

use portcullis_testkit::{ORDERS_API, TestEnv};

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("")
}

/// `..;` is a dot segment to Tomcat, Jetty and Spring (they drop `;…` from
/// a segment) and an ordinary `{id}` here: refused before routing, raw or
/// encoded, so the route authorized is the resource served.
#[tokio::test]
async fn semicolon_segments_are_refused_before_routing() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(ORDERS_API).start().await;
    for path in [
        "/v1/orders/..;/items",
        "/v1/orders/..;jsessionid=x/items",
        "/v1/orders/%2e%2e;/items",
        "/v1/orders/..%3B",
        "/v1/orders/x;y",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let answer = gw.raw_exchange(raw.as_bytes()).await;
        assert_eq!(status(&answer), "400", "{path} -> {answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        let event = gw.next_event().await;
        assert_eq!(event.status_code, "bad-path", "{path}");
    }
    let r = gw.get("/v1/orders/..;/items").await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["detail"].as_str().unwrap().contains("';'"),
        "{}",
        r.text()
    );
    assert!(env.received().is_empty(), "nothing reached the backend");
    gw.stop().await;
}

/// RFC 9112 §3.2: one Host, well-formed; it must agree with an absolute-form
/// target; a host the listener does not serve is 421 (RFC 9110 §15.5.20).
#[tokio::test]
async fn host_is_one_well_formed_agreed_and_served() {
    let env = TestEnv::new().await;
    let gw = env
        .gateway(ORDERS_API)
        .listeners(&format!(
            "  - name: public\n    bind: 127.0.0.1:0\n    hosts: [localhost, 127.0.0.1]\n    tls: {{ cert: {}, key: {} }}\n",
            env.gateway_cert.cert.display(),
            env.gateway_cert.key.display()
        ))
        .start()
        .await;
    let cases: [(&str, &str); 8] = [
        ("GET /v1/orders HTTP/1.1\r\n", "400"),
        (
            "GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n",
            "400",
        ),
        (
            "GET /v1/orders HTTP/1.1\r\nHost: evil.example;for=1.2.3.4\r\n",
            "400",
        ),
        ("GET /v1/orders HTTP/1.1\r\nHost: user@127.0.0.1\r\n", "400"),
        (
            "GET https://evil.example/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            "400",
        ),
        (
            "GET https://evil.example/v1/orders HTTP/1.1\r\nHost: evil.example\r\n",
            "421",
        ),
        ("GET /v1/orders HTTP/1.1\r\nHost: evil.example\r\n", "421"),
        ("GET /v1/orders HTTP/1.1\r\nHost: LOCALHOST:8443\r\n", "200"),
    ];
    for (head, want) in cases {
        let raw = format!("{head}Connection: close\r\n\r\n");
        let answer = gw.raw_exchange(raw.as_bytes()).await;
        assert_eq!(status(&answer), want, "{head:?} -> {answer}");
        if want != "200" {
            assert!(answer.contains("application/problem+json"), "{answer}");
        }
    }
    assert_eq!(
        env.received().len(),
        1,
        "only the served host reached the backend"
    );
    assert_eq!(
        env.received()[0].headers["x-forwarded-host"],
        "LOCALHOST",
        "what is forwarded is the validated host"
    );
    gw.stop().await;
}

/// An upload whose body holds both framing headers poisons nothing: the next
/// request on the same connection is served. A real ambiguous header block is
/// answered 400 and the connection closed, whatever the client asked.
#[tokio::test]
async fn framing_flags_belong_to_one_header_block() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    let body = "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    let raw = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}\
         GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let answer = gw.raw_exchange(raw.as_bytes()).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert_eq!(env.received().len(), 2);

    // No `Connection: close` from the client: the gateway closes after the
    // 400, so the bytes after it are never read as a request.
    let smuggle = "POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/orders/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let answer = gw.raw_exchange(smuggle.as_bytes()).await;
    assert_eq!(status(&answer), "400", "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1").count(),
        1,
        "one answer, then closed: {answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(env.received().len(), 2, "nothing more reached the backend");
    gw.stop().await;
}

/// A bare LF ends a line for some parsers and not others: refused (RFC 9112
/// §2.2 lets a recipient accept it; a security gateway chooses strict).
#[tokio::test]
async fn bare_lf_line_endings_are_refused() {
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    for raw in [
        "GET /v1/orders HTTP/1.1\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\nConnection: close\r\n\r\n",
    ] {
        let answer = gw.raw_exchange(raw.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?} -> {answer}");
    }
    assert!(env.received().is_empty());
    gw.stop().await;
}

/// Names with `_` never reach the upstream (WSGI stacks read `X_User` as
/// the `X-User` header); a repeated `Content-Type` is refused, not half
/// validated and wholly forwarded.
#[tokio::test]
async fn header_differentials_are_dropped_or_refused() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(ORDERS_API).start().await;
    let answer = gw
        .raw_exchange(
            b"GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nX_User: admin\r\nX-Plain: kept\r\nConnection: close\r\n\r\n",
        )
        .await;
    assert_eq!(status(&answer), "200", "{answer}");
    let got = env.received();
    assert_eq!(got[0].headers["x-plain"], "kept");
    assert!(
        got[0].headers.keys().all(|n| !n.as_str().contains('_')),
        "{:?}",
        got[0].headers
    );
    let answer = gw
        .raw_exchange(
            b"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .await;
    assert_eq!(status(&answer), "400", "{answer}");
    assert!(answer.contains("/content-type"), "{answer}");
    assert_eq!(gw.next_event().await.status_code, "invalid-request");
    assert_eq!(
        env.received().len(),
        1,
        "the refused request never reached the backend"
    );
    gw.stop().await;
}

/// Heads over the gateway's limits are refused by the pipeline with a
/// problem body (hyper's own limits sit above them): too many header bytes
/// or fields is 431, a request target over 8 KiB is 414. Only a head over
/// twice the limit still gets hyper's bare 431.
#[tokio::test]
async fn oversized_heads_get_problem_bodies() {
    let env = TestEnv::new().await;
    let mut gw = env.gateway(ORDERS_API).start().await;
    let mut many = String::new();
    for i in 0..150 {
        many.push_str("X-F");
        many.push_str(&i.to_string());
        many.push_str(": v\r\n");
    }
    let cases = [
        (
            format!(
                "GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n",
                "a".repeat(20_000)
            ),
            "431",
            "header-fields-too-large",
        ),
        (
            format!("GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}"),
            "431",
            "header-fields-too-large",
        ),
        (
            format!(
                "GET /v1/orders?q={} HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                "a".repeat(10_000)
            ),
            "414",
            "uri-too-long",
        ),
    ];
    for (head, want, code) in cases {
        let answer = gw
            .raw_exchange(format!("{head}Connection: close\r\n\r\n").as_bytes())
            .await;
        assert_eq!(
            status(&answer),
            want,
            "{}",
            &answer[..answer.len().min(300)]
        );
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(
            answer.contains(&format!("urn:portcullis:problem:{code}")),
            "{answer}"
        );
        assert_eq!(gw.next_event().await.status_code, code);
    }
    let huge = format!(
        "GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_eq!(status(&gw.raw_exchange(huge.as_bytes()).await), "431");
    assert!(env.received().is_empty());
    gw.stop().await;
}

/// RFC 9113 §3.4: an invalid HTTP/2 connection preface is a connection
/// error of type PROTOCOL_ERROR: the server preface (SETTINGS) then GOAWAY
/// with PROTOCOL_ERROR, then the connection closes (hyper alone only
/// dropped it). A valid preface is served as before.
#[tokio::test]
async fn an_invalid_http2_preface_gets_goaway_protocol_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::new().await;
    let gw = env.gateway(ORDERS_API).start().await;
    let mut s = gw.try_tls(&[b"h2"]).await.unwrap();
    s.write_all(b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("closed")
        .ok();
    // Walk the frames: 3-byte length, type, flags, 4-byte stream id.
    let mut at = 0;
    let mut goaway = None;
    while at + 9 <= got.len() {
        let len =
            usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
        if got[at + 3] == 0x7 && at + 9 + len <= got.len() && len >= 8 {
            goaway = Some(got[at + 9 + 4..at + 9 + 8].to_vec());
        }
        at += 9 + len;
    }
    assert_eq!(goaway.as_deref(), Some(&[0u8, 0, 0, 1][..]), "{got:?}");
    assert_eq!(
        gw.send(
            portcullis_testkit::Proto::Http2,
            gw.request("GET", "/v1/orders")
                .body(http_body_util::Full::default())
                .unwrap()
        )
        .await
        .status,
        200
    );
    gw.stop().await;
}
