//! Stages 1 and 2 (TLS-01, TLS-10, DATA-04, INPUT-06, INPUT-08): the
//! connection re-check, the correlation id's verdict, the HTTP/1 framing
//! verdict, and the request head within the gateway's limits.

use crate::listener::framing;
use crate::pipeline::call::Call;
use crate::pipeline::request_headers;
use crate::rejection::Rejection;
use http::request::Parts;
use portcullis_config::Limits;

/// Stages 1 and 2, in order.
pub fn check(call: &Call<'_>) -> Result<(), Rejection> {
    let (conn, parts) = (call.conn, call.parts);
    // Every HTTP/1 request is counted, whatever refuses it, so that the
    // framing verdict on the n-th header block meets the n-th request.
    let framing = conn.framing.check_next();
    // 1. connection re-check: the client certificate against the current CRLs and clock.
    if let Some(tls) = &conn.tls_listener
        && tls.has_client_auth()
    {
        tls.recheck(conn.client_cert.get(), crate::clock::now())?;
    }
    // 2. correlation
    if call.correlation.refused {
        return Err(Rejection::BadCorrelationId);
    }
    framing?;
    check_head(parts, &call.state.limits)?;
    framing::check_headers(&parts.headers)?;
    request_headers::refuse_repeated(&parts.headers)?;
    Ok(())
}

/// Most header fields a request may carry.
pub const MAX_HEADERS: usize = 100;
/// Longest request target (path and query) accepted.
pub const MAX_TARGET_BYTES: usize = 8192;

/// The request head within the gateway's limits, refused with a problem
/// body (hyper's own limits are set above these; see `listener`).
fn check_head(parts: &Parts, limits: &Limits) -> Result<(), Rejection> {
    let target = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Err(Rejection::UriTooLong {
            limit: MAX_TARGET_BYTES,
        });
    }
    // Each field as it is sent: `name: value\r\n`.
    let bytes: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if bytes > limits.max_header_bytes || parts.headers.len() > MAX_HEADERS {
        return Err(Rejection::HeadersTooLarge {
            bytes: limits.max_header_bytes,
            fields: MAX_HEADERS,
        });
    }
    Ok(())
}
