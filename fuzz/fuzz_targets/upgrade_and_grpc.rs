//! WebSocket handshakes and gRPC message framing, on arbitrary input.
//! Invariants: no panic; a handshake is accepted only with version 13, a
//! 16-byte key and an Origin that is listed or absent; the gRPC framing
//! finds the same verdict however the bytes are split across reads.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis_config::WebSocket;
use portcullis_gateway::pipeline::grpc::Framing;
use portcullis_gateway::pipeline::websocket::offer;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    // gRPC: one read or two, the same verdict.
    let max = usize::from(data.first().copied().unwrap_or(0)) * 4;
    let whole = Framing::new(max).feed(data).is_ok();
    let split = data.get(1).map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut two = Framing::new(max);
    let parted = two.feed(&data[..split]).is_ok() && two.feed(&data[split..]).is_ok();
    assert_eq!(whole, parted);

    // WebSocket: the bytes as header lines of a GET.
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            headers.append(n, v);
        }
    }
    let mut request = http::Request::builder().method("GET").uri("/ws").body(()).unwrap();
    *request.headers_mut() = headers;
    let (parts, ()) = request.into_parts();
    let socket = WebSocket {
        origins: vec!["https://app.example".into()],
        max_message_bytes: 1024,
        idle_timeout: Duration::from_secs(60),
        ping_interval: Duration::from_secs(20),
    };
    if offer(&parts, &socket).is_ok() {
        assert_eq!(parts.headers.get("sec-websocket-version").unwrap(), "13");
        assert_eq!(parts.headers.get("sec-websocket-key").unwrap().len(), 24);
        if let Some(o) = parts.headers.get("origin") {
            assert!(o.as_bytes().eq_ignore_ascii_case(b"https://app.example"));
        }
    }
});
