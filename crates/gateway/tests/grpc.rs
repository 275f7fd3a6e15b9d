//! gRPC through real sockets (issue 21): a tonic service behind the
//! gateway over TLS and HTTP/2, a tonic client in front. Unary and
//! bidirectional streaming calls pass with their trailers; a call without
//! its token is answered UNAUTHENTICATED the gRPC way (AUTHN-02,
//! OUTPUT-01); a message over the limit is RESOURCE_EXHAUSTED (INPUT-08).

use futures_util::StreamExt;
use http::uri::PathAndQuery;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_gateway::dev::backend::tls_from_pem;
use portcullis_testkit::{TestEnv, TestGateway, TestIssuer};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct Note {
    #[prost(string, tag = "1")]
    text: String,
}

type Codec = ProstCodec<Note, Note>;

/// What a careless backend puts in a status message.
const TRACE: &str = "Traceback (most recent call last):\n  File \"/srv/echo.py\", line 7, in chat\nKeyError: 'note'";

/// `Say`: one note in, its echo out.
struct Say;

impl tonic::server::UnaryService<Note> for Say {
    type Response = Note;
    type Future = std::future::Ready<Result<tonic::Response<Note>, Status>>;

    fn call(&mut self, request: tonic::Request<Note>) -> Self::Future {
        let text = format!("echo: {}", request.into_inner().text);
        std::future::ready(Ok(tonic::Response::new(Note { text })))
    }
}

type Notes = Pin<Box<dyn futures_util::Stream<Item = Result<Note, Status>> + Send>>;

/// `Chat`: each note in answered by its echo, as it arrives.
struct Chat;

impl tonic::server::StreamingService<Note> for Chat {
    type Response = Note;
    type ResponseStream = Notes;
    type Future = std::future::Ready<Result<tonic::Response<Notes>, Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Note>>) -> Self::Future {
        // A note `boom` ends the call with a status whose message is a
        // stack trace, in the trailers after the echoes so far.
        let echoes = request.into_inner().map(|note| match note {
            Ok(n) if n.text == "boom" => Err(Status::internal(TRACE)),
            note => note.map(|n| Note {
                text: format!("echo: {}", n.text),
            }),
        });
        std::future::ready(Ok(tonic::Response::new(Box::pin(echoes) as Notes)))
    }
}

/// A TLS HTTP/2 gRPC backend; the request headers it saw.
async fn backend(env: &TestEnv) -> (std::net::SocketAddr, Arc<Mutex<Vec<http::HeaderMap>>>) {
    let id = env.ca.issue(&["127.0.0.1"], false).unwrap();
    let tls = tls_from_pem(&id.cert_pem, &id.key_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    record.lock().unwrap().push(req.headers().clone());
                    async move {
                        let mut grpc = tonic::server::Grpc::new(Codec::default());
                        Ok::<_, Infallible>(match req.uri().path() {
                            "/test.Echo/Say" => grpc.unary(Say, req).await,
                            "/test.Echo/Chat" => grpc.streaming(Chat, req).await,
                            "/test.Echo/Fail" => Status::internal(TRACE).into_http(),
                            _ => Status::unimplemented("no such method").into_http(),
                        })
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

type Channel = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    tonic::body::Body,
>;

/// A gRPC client of the gateway over TLS and HTTP/2.
fn client(gw: &TestGateway) -> tonic::client::Grpc<Channel> {
    let tls = portcullis_testkit::client_config(gw.ca_pem());
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .build();
    let channel = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    let origin = format!("https://localhost:{}", gw.addr.port())
        .parse()
        .unwrap();
    tonic::client::Grpc::with_origin(channel, origin)
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

async fn say(
    gw: &TestGateway,
    token: Option<&str>,
    text: &str,
) -> Result<tonic::Response<Note>, Status> {
    let mut grpc = client(gw);
    grpc.ready().await.unwrap();
    let note = Note { text: text.into() };
    grpc.unary(
        with_token(note, token),
        PathAndQuery::from_static("/test.Echo/Say"),
        Codec::default(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_bidirectional_calls_pass_and_refusals_are_grpc_statuses() {
    let env = TestEnv::new().await;
    let (addr, seen) = backend(&env).await;
    let issuer = TestIssuer::new("https://issuer.test", "k1");
    let identity = env.identity_yaml(&issuer, &env.path().join("jwks.json"));
    let api = "  - name: echo\n    upstream: grpc\n    grpc: true\n    routes:\n      - { path: \"/test.Echo/{method}\", methods: [POST], auth: { token: true } }\n";
    let mut gw = env
        .gateway(api)
        .extra_upstream(
            "grpc",
            &format!(
                "url: https://{addr}\nca: {}\nserver_name: 127.0.0.1",
                env.ca_path.display()
            ),
        )
        .with(&identity)
        .with("limits: { max_body_bytes: 4096 }")
        .start()
        .await;
    let token = issuer.mint(&issuer.claims("alice", ""));

    // Unary: the answer and its trailers (grpc-status 0) come back.
    let answer = say(&gw, Some(&token), "hello").await.expect("unary call");
    assert_eq!(answer.into_inner().text, "echo: hello");
    let headers = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        headers.get("te").map(http::HeaderValue::as_bytes),
        Some(&b"trailers"[..])
    );
    assert!(headers.contains_key("traceparent"), "{headers:?}");

    // Bidirectional: each echo arrives before the next note is sent.
    let mut grpc = client(&gw);
    grpc.ready().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Note>(1);
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|n| (n, rx)) });
    tx.send(Note { text: "one".into() }).await.unwrap();
    let response = grpc
        .streaming(
            with_token(outbound, Some(&token)),
            PathAndQuery::from_static("/test.Echo/Chat"),
            Codec::default(),
        )
        .await
        .expect("stream opened");
    let mut inbound = response.into_inner();
    for next in ["two", "three"] {
        let echo = tokio::time::timeout(Duration::from_secs(5), inbound.message())
            .await
            .expect("an echo while the call is open")
            .unwrap()
            .unwrap();
        assert!(echo.text.starts_with("echo: "), "{}", echo.text);
        tx.send(Note { text: next.into() }).await.unwrap();
    }
    let last = inbound.message().await.unwrap().unwrap();
    assert_eq!(last.text, "echo: three");
    drop(tx);
    assert!(
        inbound.message().await.unwrap().is_none(),
        "ends with status OK"
    );

    // A stack trace in a status message never reaches the client: not in
    // a trailers-only answer, not in the trailers after messages (OUTPUT-02).
    let mut grpc = client(&gw);
    grpc.ready().await.unwrap();
    let failed = grpc
        .unary::<Note, Note, Codec>(
            with_token(Note { text: "x".into() }, Some(&token)),
            PathAndQuery::from_static("/test.Echo/Fail"),
            Codec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (failed.code(), failed.message()),
        (Code::Internal, "internal error")
    );
    gw.expect_event("upstream-stack-trace").await;
    let mut grpc = client(&gw);
    grpc.ready().await.unwrap();
    let notes = futures_util::stream::iter([
        Note { text: "one".into() },
        Note {
            text: "boom".into(),
        },
    ]);
    let mut inbound = grpc
        .streaming(
            with_token(notes, Some(&token)),
            PathAndQuery::from_static("/test.Echo/Chat"),
            Codec::default(),
        )
        .await
        .expect("stream opened")
        .into_inner();
    assert_eq!(inbound.message().await.unwrap().unwrap().text, "echo: one");
    let ended = inbound.message().await.unwrap_err();
    assert_eq!(
        (ended.code(), ended.message()),
        (Code::Internal, "internal error")
    );
    gw.expect_event("upstream-stack-trace").await;

    // No token: UNAUTHENTICATED, and the backend never sees the call.
    let before = seen.lock().unwrap().len();
    let refused = say(&gw, None, "hello").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("bearer token"), "{refused:?}");
    assert_eq!(seen.lock().unwrap().len(), before);
    let e = gw.expect_event("missing-token").await;
    assert_eq!(e.http_response.code, 401);

    // A message over limits.max_body_bytes: RESOURCE_EXHAUSTED.
    let big = "x".repeat(5000);
    let refused = say(&gw, Some(&token), &big).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
}
