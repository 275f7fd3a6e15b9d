//! Request-header handling: the raw-byte framing scanner, correlation ids,
//! framing checks and the upstream header set, on arbitrary header lists.
//! Invariants: no panic; no spoofable or hop-by-hop header crosses; a
//! header block with both Content-Length and Transfer-Encoding is flagged.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis_gateway::listener::framing::{Scanner, check_headers};
use portcullis_gateway::pipeline::request_headers::{Forwarding, upstream_headers};
use portcullis_gateway::pipeline::correlation;

fuzz_target!(|data: &[u8]| {
    // Raw scanner over the bytes as a connection would read them: in one
    // read or two, it finds the same thing (state crosses read boundaries).
    let whole = Scanner::new().feed(data);
    let mut scanner = Scanner::new();
    let split = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let first = scanner.feed(&data[..split]);
    let flagged = first.or_else(|| scanner.feed(&data[split..]));
    assert_eq!(whole, flagged);

    // The same bytes as header lines `name: value`.
    let mut headers = HeaderMap::new();
    let mut has_cl = false;
    let mut has_te = false;
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        has_cl |= name == http::header::CONTENT_LENGTH;
        has_te |= name == http::header::TRANSFER_ENCODING;
        headers.append(name, value);
    }
    if has_cl && has_te {
        assert!(check_headers(&headers).is_err());
    }
    let name = HeaderName::from_static("x-correlation-id");
    let cid = correlation::from_request(&headers, &name);
    assert!(correlation::is_valid(cid.value.as_bytes()));
    let out = upstream_headers(
        &headers,
        &[],
        |_| true,
        (&name, &cid.value),
        Forwarding { client: "127.0.0.1:1".parse().unwrap(), host: "h", tls: true },
    );
    for (n, _) in &out {
        let n = n.as_str();
        assert!(!matches!(n, "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade" | "x-http-method-override" | "x-real-ip" | "host"));
        assert!(!n.starts_with("x-portcullis-"));
        assert!(!n.contains('_'));
    }
    assert_eq!(out.get_all("x-forwarded-for").iter().count(), 1);
});
