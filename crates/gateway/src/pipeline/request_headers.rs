//! Request hygiene: the header set an upstream receives (AUTHN-11, DATA-02).
//!
//! The upstream request's headers are built by copying what is allowed, not
//! by deleting what is known bad: hop-by-hop headers and those the client
//! names in `Connection`, method-override headers, client-sent
//! `Forwarded`/`X-Forwarded-*`/`X-Real-IP`, anything in the gateway's own
//! `x-portcullis-` namespace, names with `_` (read as `-` by WSGI stacks)
//! and the configured sensitive headers never cross; a repeated
//! `Content-Type` is refused. The gateway then adds its own forwarding headers, the
//! correlation id and the trace context (`trace`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;

/// The gateway's own header namespace; client copies are always removed.
pub const GATEWAY_NAMESPACE: &str = "x-portcullis-";

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes hop-by-hop headers from an upstream response.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(n);
    }
}

fn is_never_forwarded(name: &HeaderName) -> bool {
    let n = name.as_str();
    is_hop_by_hop(name)
        || n == "host"
        || n == "content-length"
        || n == "forwarded"
        || n == "x-real-ip"
        || n == "x-client-ip"
        || n.starts_with("x-forwarded-")
        || n == "x-http-method-override"
        || n == "x-http-method"
        || n == "x-method-override"
        // Forwarded only as `trace` read them, whatever the contract declares.
        || n == super::trace::TRACEPARENT
        || n == super::trace::TRACESTATE
        || n.starts_with(GATEWAY_NAMESPACE)
        // WSGI and CGI stacks map `_` and `-` onto one name: `X_User` would
        // arrive as the `X-User` the gateway never checked.
        || n.contains('_')
}

/// Headers that must appear at most once, or the gateway and the upstream
/// may each read a different one (INPUT-01, INPUT-06).
pub fn refuse_repeated(headers: &HeaderMap) -> Result<(), crate::rejection::Rejection> {
    for name in [header::CONTENT_TYPE] {
        if headers.get_all(&name).iter().nth(1).is_some() {
            return Err(crate::rejection::Rejection::InvalidRequest(vec![
                portcullis_contract::Issue::new(
                    portcullis_contract::Location::Header,
                    format!("/{name}"),
                    "is sent more than once; send it once",
                ),
            ]));
        }
    }
    Ok(())
}

/// What the gateway knows about the client, for the forwarding headers.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    pub client: SocketAddr,
    pub host: &'a str,
    pub tls: bool,
}

/// Builds the header set for the upstream request.
pub fn upstream_headers(
    incoming: &HeaderMap,
    remove: &[HeaderName],
    declared: impl Fn(&HeaderName) -> bool,
    correlation: (&HeaderName, &HeaderValue),
    fwd: Forwarding<'_>,
) -> HeaderMap {
    // Headers the client asked to treat as hop-by-hop.
    let connection_named: Vec<String> = incoming
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = HeaderMap::with_capacity(incoming.len() + 4);
    for (name, value) in incoming {
        if is_never_forwarded(name)
            || name == correlation.0
            || remove.contains(name)
            || connection_named.iter().any(|c| c == name.as_str())
            || !declared(name)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out.insert(correlation.0.clone(), correlation.1.clone());
    let proto = if fwd.tls { "https" } else { "http" };
    let ip = fwd.client.ip();
    let for_value = if ip.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip.to_string()
    };
    // `host` is validated header text or empty; quote it as RFC 7239 allows.
    let host_ok =
        !fwd.host.is_empty() && fwd.host.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
    let forwarded = if host_ok {
        format!("for={for_value};proto={proto};host=\"{}\"", fwd.host)
    } else {
        format!("for={for_value};proto={proto}")
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        out.insert(header::FORWARDED, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
        out.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    out.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
    if host_ok && let Ok(v) = HeaderValue::from_str(fwd.host) {
        out.insert(HeaderName::from_static("x-forwarded-host"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofable_and_hop_by_hop_headers_never_cross() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-http-method-override", "DELETE"),
            ("x-portcullis-claims", "{\"admin\":true}"),
            ("x-correlation-id", "client-id"),
            ("cookie", "session=1"),
            ("accept", "application/json"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let cid = (
            HeaderName::from_static("x-correlation-id"),
            HeaderValue::from_static("gw-id"),
        );
        let out = upstream_headers(
            &h,
            &[header::COOKIE],
            |_| true,
            (&cid.0, &cid.1),
            Forwarding {
                client: "10.1.2.3:5555".parse().unwrap(),
                host: "api.example",
                tls: true,
            },
        );
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "x-http-method-override",
            "x-portcullis-claims",
            "cookie",
        ] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        assert_eq!(out["x-forwarded-for"], "10.1.2.3");
        assert_eq!(
            out["forwarded"],
            "for=10.1.2.3;proto=https;host=\"api.example\""
        );
        assert_eq!(out["x-correlation-id"], "gw-id");
        assert_eq!(out["accept"], "application/json");
    }
}
