//! WebSocket load for `bench/stream.py` (not part of the gateway).
//!
//! `ws_bench echo PORT`: an echo server on 127.0.0.1:PORT.
//! `ws_bench load URL CONNECTIONS SECONDS`: that many sockets, each
//! sending a 64-byte text message and awaiting its echo, in turn; prints
//! the messages echoed per second (and errors) as JSON.

use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("echo") => echo(args[2].parse().expect("port")).await,
        Some("load") => {
            load(
                &args[2],
                args[3].parse().expect("connections"),
                args[4].parse().expect("seconds"),
            )
            .await;
        }
        _ => eprintln!("usage: ws_bench echo PORT | ws_bench load URL CONNECTIONS SECONDS"),
    }
}

async fn echo(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(m)) = ws.next().await {
                if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn load(url: &str, connections: usize, seconds: u64) {
    let echoed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let message = Message::text("x".repeat(64));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (url, echoed, errors, message) = (
            url.to_owned(),
            echoed.clone(),
            errors.clone(),
            message.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            while Instant::now() < deadline {
                if ws.send(message.clone()).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                match ws.next().await {
                    Some(Ok(m)) if m.is_text() => {
                        echoed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            let _ = ws.close(None).await;
        }));
    }
    let started = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let took = started.elapsed().as_secs_f64().max(1e-9);
    let n = echoed.load(Ordering::Relaxed);
    println!(
        "{{\"messages\":{n},\"per_second\":{:.1},\"errors\":{}}}",
        n as f64 / took,
        errors.load(Ordering::Relaxed)
    );
}
