//! The host a request addresses, decided once and strictly (AUTHZ-10).
//!
//! RFC 9112 §3.2: an HTTP/1.1 request carries exactly one `Host`; a request
//! without one, with several, or with one that is not `host[:port]` is a 400.
//! Where the request also names an authority (HTTP/1 absolute form, HTTP/2
//! `:authority`) the two must agree: a gateway that routes on one while a
//! backend reads the other can be steered. What passes is forwarded in
//! `Forwarded`/`X-Forwarded-Host`, so nothing but a host name, an IPv4
//! address or a bracketed IPv6 address, and an optional port, ever passes.

use http::Version;
use http::header::{self, HeaderMap};
use http::request::Parts;

/// Why a request's host was refused (for events; the client sees one detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("no Host header")]
    Missing,
    #[error("several Host headers")]
    Duplicate,
    #[error("Host is not host[:port]")]
    Malformed,
    #[error("Host disagrees with the request's authority")]
    Disagrees,
}

/// Longest host name accepted (RFC 1035's 253 plus a port).
const MAX_AUTHORITY: usize = 253 + 6;

/// The request's host (without port, lower-cased by comparison only), or
/// why there is none that can be trusted.
pub fn from_request(parts: &Parts) -> Result<&str, HostError> {
    let from_header = single_host(&parts.headers)?;
    let from_uri = parts.uri.authority().map(http::uri::Authority::as_str);
    let authority = match (from_uri, from_header) {
        (Some(uri), Some(header)) => {
            let (a, b) = (split(uri)?, split(header)?);
            if !a.0.eq_ignore_ascii_case(b.0) || a.1 != b.1 {
                return Err(HostError::Disagrees);
            }
            uri
        }
        (Some(uri), None) => uri,
        (None, Some(header)) => header,
        (None, None) => return Err(HostError::Missing),
    };
    // HTTP/1.1 needs the header itself, even with an absolute-form target.
    if from_header.is_none() && parts.version == Version::HTTP_11 {
        return Err(HostError::Missing);
    }
    split(authority).map(|(host, _)| host)
}

fn single_host(headers: &HeaderMap) -> Result<Option<&str>, HostError> {
    let mut all = headers.get_all(header::HOST).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(HostError::Duplicate);
    }
    first.to_str().map(Some).map_err(|_| HostError::Malformed)
}

/// Splits `host[:port]` after checking its syntax: a DNS name (letters,
/// digits, `-`, dot-separated non-empty labels), an IPv4 address, or a
/// bracketed IPv6 address; a port of 1-5 digits up to 65535.
pub fn split(authority: &str) -> Result<(&str, Option<u16>), HostError> {
    if authority.is_empty() || authority.len() > MAX_AUTHORITY {
        return Err(HostError::Malformed);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or(HostError::Malformed)?;
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| HostError::Malformed)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(HostError::Malformed)?),
        };
        (v6, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if !is_dns_name(host) {
            return Err(HostError::Malformed);
        }
        (host, port)
    };
    let port = match port {
        None => None,
        // Canonical decimal only: no sign, no leading zero, 1 to 65535.
        Some(p)
            if (1..=5).contains(&p.len())
                && !p.starts_with('0')
                && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(p.parse::<u16>().map_err(|_| HostError::Malformed)?)
        }
        Some(_) => return Err(HostError::Malformed),
    };
    Ok((host, port))
}

/// Letters, digits and inner `-` in non-empty dot-separated labels of at
/// most 63 bytes (IPv4 addresses are such names too).
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether `host` is one of `allowed` (empty: every host).
pub fn served(host: &str, allowed: &[String]) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(version: Version, uri: &str, hosts: &[&str]) -> Parts {
        let mut b = Request::builder().uri(uri).version(version);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn syntax() {
        for ok in [
            "api.example",
            "api.example:8443",
            "127.0.0.1",
            "[::1]:443",
            "[2001:db8::1]",
            "a-b.c",
        ] {
            assert!(split(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "evil.example;for=1.2.3.4",
            "user@api.example",
            "api.example:",
            "api.example:99999",
            "api.example:8443:1",
            "api..example",
            ".api.example",
            "api.example.",
            "[::1",
            "[zz::1]",
            "[::1]x",
            "api example",
            "api.example/x",
            "a\u{e9}.example",
            "-:015",
            "api.example:0443",
            "api.example:0",
            "-api.example",
            "api-.example",
        ] {
            assert_eq!(split(bad).map(|_| ()), Err(HostError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn one_host_that_agrees() {
        let h11 = Version::HTTP_11;
        assert_eq!(
            from_request(&parts(h11, "/x", &["a.example"])),
            Ok("a.example")
        );
        assert_eq!(
            from_request(&parts(h11, "/x", &[])),
            Err(HostError::Missing)
        );
        assert_eq!(
            from_request(&parts(h11, "/x", &["a.example", "b.example"])),
            Err(HostError::Duplicate)
        );
        assert_eq!(
            from_request(&parts(h11, "https://evil.example/x", &["a.example"])),
            Err(HostError::Disagrees)
        );
        assert_eq!(
            from_request(&parts(h11, "https://a.example:8443/x", &["A.example:8443"])),
            Ok("a.example")
        );
        assert_eq!(
            from_request(&parts(h11, "https://a.example/x", &[])),
            Err(HostError::Missing)
        );
        // HTTP/2: `:authority` alone is enough.
        assert_eq!(
            from_request(&parts(Version::HTTP_2, "https://a.example/x", &[])),
            Ok("a.example")
        );
        assert_eq!(
            from_request(&parts(Version::HTTP_10, "/x", &[])),
            Err(HostError::Missing)
        );
    }
}
