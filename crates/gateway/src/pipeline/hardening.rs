//! Response hardening on every response, errors included, and CORS.
//!
//! - Platform banners and configured sensitive headers removed (OUTPUT-03, OUTPUT-06).
//! - `Cache-Control: no-store` + `Pragma: no-cache` always (AUTHN-03,
//!   OUTPUT-07, OUTPUT-08, OUTPUT-09): `no-store` is the strictest value, so
//!   upstream values are only ever overridden toward stricter.
//! - HSTS for a year with subdomains (OUTPUT-12), `nosniff` (INPUT-12), a
//!   deny-all CSP and `Referrer-Policy: no-referrer`.
//! - CORS only for allowlisted origins; the upstream never decides CORS and
//!   `*` never goes with credentials (OUTPUT-11).

use crate::pipeline::routes::RouteGroup;
use crate::rejection::Rejection;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use portcullis_config::{AllowedOrigins, Cors};

/// Banners that reveal the platform (OUTPUT-03).
const BANNERS: [HeaderName; 6] = [
    header::SERVER,
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-aspnet-version"),
    HeaderName::from_static("x-aspnetmvc-version"),
    HeaderName::from_static("x-runtime"),
    header::VIA,
];

const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");
const CSP: HeaderValue = HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");

/// [`apply`] for the gateway's own listeners (admin plane, context-token
/// JWKS): nothing to remove, and the correlation id under
/// `x-correlation-id`. An id that is not a valid header value (never one
/// the gateway generated) is sent empty.
pub fn apply_own(headers: &mut HeaderMap, correlation_id: &str, tls: bool) {
    let id = HeaderValue::from_str(correlation_id).unwrap_or(HeaderValue::from_static(""));
    apply(
        headers,
        &[],
        (&HeaderName::from_static("x-correlation-id"), &id),
        tls,
    );
}

/// Applies the response hardening headers. `tls` says whether the response
/// goes out over TLS (HSTS is only meaningful there).
pub fn apply(
    headers: &mut HeaderMap,
    remove: &[HeaderName],
    correlation: (&HeaderName, &HeaderValue),
    tls: bool,
) {
    for h in &BANNERS {
        headers.remove(h);
    }
    for h in remove {
        headers.remove(h);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CONTENT_SECURITY_POLICY, CSP);
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    headers.insert(correlation.0.clone(), correlation.1.clone());
}

/// Removes CORS headers an upstream sent: cross-origin policy is the
/// gateway's, never the upstream's.
pub fn strip_cors(headers: &mut HeaderMap) {
    for h in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::ACCESS_CONTROL_MAX_AGE,
    ] {
        headers.remove(h);
    }
}

/// The origin to echo if `origin` is on the allowlist.
fn allowed_origin(cors: &Cors, origin: &HeaderValue) -> Option<HeaderValue> {
    match &cors.origins {
        // Validated: `Any` never comes with credentials.
        AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
        AllowedOrigins::List(list) => list
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
            .then(|| origin.clone()),
    }
}

/// CORS headers for an actual (non-preflight) response.
pub fn cors_response(headers: &mut HeaderMap, cors: &Cors, origin: Option<&HeaderValue>) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(allowed) = origin.and_then(|o| allowed_origin(cors, o)) else {
        return;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    if cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if !cors.expose_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&join(&cors.expose_headers))
    {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Answers a preflight at the gateway: allowlisted origin and a method the
/// route declares, or a rejection.
pub fn preflight(
    cors: &Cors,
    group: &RouteGroup,
    headers: &HeaderMap,
    environment: &str,
) -> Result<Response<()>, Rejection> {
    let origin = headers
        .get(header::ORIGIN)
        .expect("checked by is_preflight");
    let allowed = allowed_origin(cors, origin).ok_or(Rejection::CorsOriginDenied)?;
    let requested = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    match requested {
        Some(m) => {
            group.route(&m, environment)?;
        }
        None => {
            return Err(Rejection::MethodNotAllowed {
                allow: group.allow_header().clone(),
            });
        }
    }
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        group.allow_header().clone(),
    );
    if !cors.allowed_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&join(&cors.allowed_headers))
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age_s),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    Ok(response)
}

fn join(names: &[HeaderName]) -> String {
    names
        .iter()
        .map(HeaderName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_banners_and_sets_security_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::SERVER, HeaderValue::from_static("Apache/2.4.1"));
        h.insert("x-powered-by", HeaderValue::from_static("PHP/5.6"));
        h.insert("x-internal-host", HeaderValue::from_static("db7"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        let cid = (
            HeaderName::from_static("x-correlation-id"),
            HeaderValue::from_static("c1"),
        );
        apply(
            &mut h,
            &[HeaderName::from_static("x-internal-host")],
            (&cid.0, &cid.1),
            true,
        );
        assert!(h.get(header::SERVER).is_none());
        assert!(h.get("x-powered-by").is_none());
        assert!(h.get("x-internal-host").is_none());
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            h[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(h["x-correlation-id"], "c1");
    }
}
