//! Streamed request bodies (issue 21 part 2, INPUT-08): on an API with
//! `request_streaming`, an upload reaches the backend while the client is
//! still sending it, and its limits apply as bytes flow: the declared or
//! streamed size over `max_body_bytes` is 413, a stalled upload is cut.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_gateway::dev::backend::tls_from_pem;
use portcullis_testkit::{Drip, ORDERS_API, TestEnv, TestGateway};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// An HTTPS backend that reports each body chunk as it arrives and
/// answers with the number of bytes it read (or 400 when the body broke).
async fn upload_backend(env: &TestEnv) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let id = env.ca.issue(&["127.0.0.1"], false).unwrap();
    let tls = tls_from_pem(&id.cert_pem, &id.key_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, chunks) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let mut body = req.into_body();
                        let mut total = 0;
                        let status = loop {
                            match body.frame().await {
                                None => break 200,
                                Some(Err(_)) => break 400,
                                Some(Ok(f)) => {
                                    if let Ok(d) = f.into_data() {
                                        total += d.len();
                                        let _ = seen.send(d.len());
                                    }
                                }
                            }
                        };
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .header("content-type", "text/plain")
                                .body(http_body_util::Full::new(Bytes::from(total.to_string())))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, chunks)
}

async fn gateway(env: &TestEnv, backend: std::net::SocketAddr) -> TestGateway {
    let api = ORDERS_API.replace(
        "    upstream: backend\n",
        "    upstream: backend\n    request_streaming: { max_body_bytes: 100000 }\n",
    );
    env.gateway(&api)
        .upstream(&format!("url: https://{backend}\nserver_name: 127.0.0.1\n"))
        .with("limits: { body_read_timeout_ms: 1000 }")
        .start()
        .await
}

/// Sends a POST whose body the test feeds through the returned sender.
fn upload(
    gw: &TestGateway,
    length: Option<u64>,
) -> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<(u16, String)>) {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(portcullis_testkit::client_config(gw.ca_pem()))
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Drip> = Client::builder(TokioExecutor::new()).build(connector);
    let (tx, rx) = mpsc::channel(1);
    let mut req = http::Request::post(format!("https://localhost:{}/v1/orders", gw.addr.port()))
        .header("content-type", "application/octet-stream");
    if let Some(n) = length {
        req = req.header("content-length", n);
    }
    let req = req.body(Drip(rx)).unwrap();
    let answer = tokio::spawn(async move {
        let r = client.request(req).await.unwrap();
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    (tx, answer)
}

async fn next_chunk(chunks: &mut mpsc::UnboundedReceiver<usize>) -> usize {
    tokio::time::timeout(Duration::from_secs(5), chunks.recv())
        .await
        .expect("the backend got the chunk while the upload was still open")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_through_within_their_limits() {
    let env = TestEnv::new().await;
    let (backend, mut chunks) = upload_backend(&env).await;
    let gw = gateway(&env, backend).await;

    // The backend reads each chunk before the next is sent.
    let (tx, answer) = upload(&gw, None);
    for n in [1000, 2000, 3000] {
        tx.send(Bytes::from(vec![b'x'; n])).await.unwrap();
        assert_eq!(next_chunk(&mut chunks).await, n);
    }
    drop(tx);
    assert_eq!(answer.await.unwrap(), (200, "6000".into()));

    // Declared over the limit: 413 before anything is sent on.
    let (_open, answer) = upload(&gw, Some(200_000));
    assert_eq!(answer.await.unwrap().0, 413);

    // Streamed over the limit: cut, and 413 since no answer had begun.
    let (tx, answer) = upload(&gw, None);
    tx.send(Bytes::from(vec![b'x'; 60_000])).await.unwrap();
    let _ = next_chunk(&mut chunks).await;
    let _ = tx.send(Bytes::from(vec![b'x'; 60_000])).await;
    let (status, body) = answer.await.unwrap();
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload-too-large"), "{body}");
    while chunks.try_recv().is_ok() {}

    // A stalled upload is cut after the read timeout.
    let (tx, answer) = upload(&gw, None);
    tx.send(Bytes::from_static(b"start")).await.unwrap();
    let _ = next_chunk(&mut chunks).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("cut within the read timeout")
        .unwrap();
    assert_eq!(status, 400, "{body}");
    drop(tx);
}
