//! OPS-01 acceptance: security events go through a local spool to a syslog
//! receiver (RFC 5424 over TCP, octet counting) and an HTTP collector; both
//! are killed for 30 seconds during load and no event is lost (counted by
//! their spool sequence numbers on the receivers' side).

use portcullis_testkit::TestEnv;
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Seen = Arc<Mutex<BTreeSet<u64>>>;

/// A syslog receiver on a fixed port: parses octet-counted frames and
/// records each `seq`; `kill` stalls it for a second, then closes the
/// listener and every connection.
struct SyslogReceiver {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyslogReceiver {
    fn start(port: u16, seen: Seen) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<(std::net::TcpStream, Vec<u8>)> = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok((s, _)) = listener.accept() {
                    s.set_nonblocking(true).unwrap();
                    conns.push((s, Vec::new()));
                }
                for (s, buf) in &mut conns {
                    let mut chunk = [0u8; 8192];
                    while let Ok(n @ 1..) = s.read(&mut chunk) {
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    // Frames: "<len> <msg>".
                    while let Some(sp) = buf.iter().position(|&b| b == b' ') {
                        let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                        if buf.len() < sp + 1 + len {
                            break;
                        }
                        let msg = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
                        assert!(msg.starts_with('<') && msg.contains(">1 "), "{msg}");
                        let seq = msg
                            .split("seq=\"")
                            .nth(1)
                            .unwrap()
                            .split('"')
                            .next()
                            .unwrap();
                        seen.lock().unwrap().insert(seq.parse().unwrap());
                        buf.drain(..sp + 1 + len);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // Killed the hard way: it stops reading first (a hung process whose
            // socket buffers still accept data), then everything goes away
            // unread. What was written meanwhile is lost unless resent.
            std::thread::sleep(Duration::from_secs(1));
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn kill(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().unwrap().join();
    }
}

/// An HTTP collector on a fixed port: records the `seq` of every event posted.
struct Collector {
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start(port: u16, seen: Seen) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = seen.clone();
                conns.spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let seen = seen.clone();
                            async move {
                                use http_body_util::BodyExt;
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let events: Vec<serde_json::Value> =
                                    serde_json::from_slice(&body).unwrap();
                                let mut s = seen.lock().unwrap();
                                for e in events {
                                    assert!(e["event"]["class_uid"].is_number(), "{e}");
                                    s.insert(e["seq"].as_u64().unwrap());
                                }
                                Ok::<_, std::convert::Infallible>(http::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::new()),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { task }
    }

    /// Killed: the listener and every connection task are dropped.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sinks_killed_for_thirty_seconds_under_load_lose_no_event() {
    let env = TestEnv::new().await;
    let spool = env.path().join("spool");
    let (syslog_port, http_port) = (
        portcullis_testkit::free_port(),
        portcullis_testkit::free_port(),
    );
    let (syslog_seen, http_seen): (Seen, Seen) = Default::default();
    let syslog = SyslogReceiver::start(syslog_port, syslog_seen.clone());
    let collector = Collector::start(http_port, http_seen.clone()).await;
    let gw = env
        .gateway(portcullis_testkit::ORDERS_API)
        .with(&format!(
            "events:\n  spool: {{ dir: {} }}\n  syslog: {{ address: '127.0.0.1:{syslog_port}' }}\n  http: {{ url: 'http://127.0.0.1:{http_port}/ingest', batch: 50 }}",
            spool.display()
        ))
        .start()
        .await;
    // Each unknown path is one rejection, so one event; the paths differ so
    // that no two events are identical (identical ones are collapsed, see
    // redteam_resources.rs).
    let mut sent = 0u64;
    let mut load = async |n: u64| {
        for i in 0..n {
            let path = format!("/nowhere/{}", sent + i);
            assert_eq!(gw.get(&path).await.status, 404);
        }
        sent += n;
    };
    load(200).await;

    // Both sinks die for 30 seconds while the load goes on.
    syslog.kill();
    collector.kill().await;
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(30) {
        load(10).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let syslog = SyslogReceiver::start(syslog_port, syslog_seen.clone());
    let collector = Collector::start(http_port, http_seen.clone()).await;
    load(100).await;
    assert!(sent >= 500, "{sent}");

    // Everything the spool holds reaches both, in full.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = portcullis_gateway::events::spool::read_after(&spool, 0, 1_000_000)
            .unwrap()
            .last()
            .map_or(0, |s| s.seq);
        let complete = |seen: &Seen| {
            let s = seen.lock().unwrap();
            s.len() as u64 >= last && (1..=last).all(|n| s.contains(&n))
        };
        if last >= sent && complete(&syslog_seen) && complete(&http_seen) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events missing: spool up to {last}, syslog has {}, collector has {}",
            syslog_seen.lock().unwrap().len(),
            http_seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The outage itself was an event, shipped like the others.
    let spooled = portcullis_gateway::events::spool::read_after(&spool, 0, 1_000_000).unwrap();
    assert!(
        spooled
            .iter()
            .any(|s| s.json.contains("event-sink-unavailable"))
    );
    syslog.kill();
    collector.kill().await;
}

/// A TLS syslog receiver (RFC 5425) with a certificate from `ca`: the seqs
/// it read, and (in `refused`) how many handshakes the sender abandoned.
async fn tls_receiver(
    ca: &portcullis_gateway::dev::pki::DevCa,
    seen: Seen,
    refused: Arc<std::sync::atomic::AtomicU32>,
) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let id = ca.issue(&["127.0.0.1"], false).unwrap();
    let tls = portcullis_gateway::dev::backend::tls_from_pem(&id.cert_pem, &id.key_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, seen, refused) = (acceptor.clone(), seen.clone(), refused.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    return;
                };
                let mut text = String::new();
                let mut chunk = vec![0u8; 8192];
                while let Ok(n @ 1..) = tls.read(&mut chunk).await {
                    text.push_str(&String::from_utf8_lossy(&chunk[..n]));
                    for part in text.split("seq=\"").skip(1) {
                        if let Some(Ok(seq)) = part.split('"').next().map(str::parse::<u64>) {
                            seen.lock().unwrap().insert(seq);
                        }
                    }
                }
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn syslog_over_tls_trusts_only_the_configured_anchors() {
    let env = TestEnv::new().await;
    let spool = env.path().join("spool");
    // A receiver whose certificate comes from another CA gets nothing.
    let stranger = portcullis_gateway::dev::pki::DevCa::new("Someone Else").unwrap();
    let wrong_seen: Seen = Seen::default();
    let refused = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (wrong_port, wrong) = tls_receiver(&stranger, wrong_seen.clone(), refused.clone()).await;
    let start = |port: u16, dir: &std::path::Path| {
        env.gateway(portcullis_testkit::ORDERS_API).with(&format!(
            "events:\n  spool: {{ dir: {} }}\n  syslog: {{ address: '127.0.0.1:{port}', ca: {} }}",
            dir.display(),
            env.ca_path.display()
        ))
    };
    let gw = start(wrong_port, &env.path().join("spool-wrong"))
        .start()
        .await;
    for i in 0..5 {
        gw.get(&format!("/nowhere/{i}")).await;
    }
    // Evidence that the gateway tried, and walked away from, the receiver.
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no connection was attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        wrong_seen.lock().unwrap().is_empty(),
        "sent to an unverified receiver"
    );
    wrong.abort();
    drop(gw);

    // The right one gets every event, over TLS.
    let seen: Seen = Seen::default();
    let (port, right) = tls_receiver(&env.ca, seen.clone(), Arc::default()).await;
    let gw = start(port, &spool).start().await;
    for i in 0..20 {
        gw.get(&format!("/nowhere/{i}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "{:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!((1..=20).all(|n| seen.lock().unwrap().contains(&n)));
    right.abort();
}
