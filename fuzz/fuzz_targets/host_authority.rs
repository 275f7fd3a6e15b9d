//! The request host: never panics; whatever it accepts is a DNS name, an
//! IPv4 address or an IPv6 address, with an optional numeric port, so
//! nothing else can reach `Forwarded`, `X-Forwarded-Host` or a redirect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_gateway::pipeline::host::{from_request, split};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((host, port)) = split(text) {
        assert!(!host.is_empty());
        let dns = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !host.starts_with(['-', '.'])
            && !host.ends_with(['-', '.']);
        assert!(dns || host.parse::<std::net::Ipv6Addr>().is_ok(), "{host:?}");
        if let Some(p) = port {
            // The port is canonical: what is forwarded is what was sent.
            assert!(p > 0 && text.ends_with(&format!(":{p}")));
        }
    }
    // The same text as a Host header, beside an absolute-form target.
    let Ok(value) = http::HeaderValue::from_bytes(data) else { return };
    for uri in ["/x", "https://a.example/x"] {
        let mut request = http::Request::builder().uri(uri).body(()).unwrap();
        request.headers_mut().insert(http::header::HOST, value.clone());
        let (parts, ()) = request.into_parts();
        if let Ok(host) = from_request(&parts) {
            // An IPv6 host comes back without its brackets.
            assert!(split(host).is_ok() || host.parse::<std::net::Ipv6Addr>().is_ok());
            if uri.starts_with("https") {
                assert!(host.eq_ignore_ascii_case("a.example"));
            }
        }
    }
});
