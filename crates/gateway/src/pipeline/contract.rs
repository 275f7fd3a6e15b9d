//! Stage 9, contract (INPUT-01…07, INPUT-08, INPUT-09, INPUT-13): the
//! operation's parameters and `Accept`, then the body, read within its
//! size, time and rate limits and checked against the operation's media
//! types and schema; what is undeclared is dropped.

use crate::listener::buffer::BufferShare;
use crate::pipeline::call::Call;
use crate::pipeline::content;
use crate::pipeline::routes::{PathMatch, RouteInfo};
use crate::rejection::Rejection;
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use portcullis_config::Limits;
use std::borrow::Cow;

/// Stage 9: the query to forward (undeclared parameters dropped) and the
/// body to forward (undeclared members stripped). A body that streams to
/// the upstream (`read_body` false: a gRPC call) is left unread.
pub async fn check<'a>(
    call: &mut Call<'a>,
    matched: &PathMatch<'_>,
    route: &RouteInfo,
    read_body: bool,
) -> Result<(Option<Cow<'a, str>>, Bytes), Rejection> {
    let parts = call.parts;
    let mut query = parts.uri.query().map(Cow::Borrowed);
    if let Some(op) = &route.contract {
        let path_params: Vec<(&str, &str)> = matched.params.iter().collect();
        let checked = op
            .check_params(&path_params, parts.uri.query(), &parts.headers)
            .map_err(content::violation)?;
        if let Some(q) = checked.query {
            query = (!q.is_empty()).then_some(Cow::Owned(q));
        }
        op.check_accept(&parts.headers)
            .map_err(content::violation)?;
    }
    if !read_body {
        return Ok((query, Bytes::new()));
    }
    let mut body = match call.body.take() {
        Some(b) => {
            self::read_body(b, &parts.headers, &call.state.limits, &mut call.buffered).await?
        }
        None => Bytes::new(),
    };
    if let Some(op) = &route.contract {
        body = op
            .check_body(&parts.headers, body)
            .map_err(content::violation)?;
    }
    Ok((query, body))
}

/// Reads and drops a small unread request body before a rejection is sent,
/// so that clients still uploading see the answer instead of a reset
/// (nginx's lingering close, bounded: at most 64 KiB and 1 s).
pub async fn discard_small_body(body: Incoming, headers: &HeaderMap) {
    const MAX: u64 = 64 * 1024;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if body.is_end_stream() || declared.is_some_and(|n| n > MAX) {
        return;
    }
    let limited = Limited::new(body, MAX as usize);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), limited.collect()).await;
}

/// Reads the whole body within the size and time limits. Bodies are
/// buffered (bounded) so that nothing reaches the upstream before every
/// check on the request has passed. After `body_rate_grace`, a body whose
/// average rate falls below `min_body_bytes_per_s` is refused: a trickle
/// cannot hold a connection and its buffer for the whole read timeout.
pub async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limits: &Limits,
    buffered: &mut BufferShare,
) -> Result<Bytes, Rejection> {
    let too_large = Rejection::PayloadTooLarge {
        limit: limits.max_body_bytes,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large);
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let started = tokio::time::Instant::now();
    let deadline = started + limits.body_read_timeout;
    let too_slow = || {
        let elapsed = started.elapsed();
        limits.min_body_bytes_per_s > 0 && elapsed > limits.body_rate_grace
    };
    let mut limited = Limited::new(body, limits.max_body_bytes);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total: u64 = 0;
    loop {
        // Wake at least once a second after the grace period to judge the rate.
        let check = (started + limits.body_rate_grace).max(tokio::time::Instant::now())
            + std::time::Duration::from_secs(1);
        match tokio::time::timeout_at(deadline.min(check), limited.frame()).await {
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return Err(Rejection::BodyUnreadable("body read timed out".into()));
            }
            Err(_) => {}
            Ok(None) => break,
            Ok(Some(Err(e))) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(too_large);
            }
            Ok(Some(Err(e))) => return Err(Rejection::BodyUnreadable(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buffered.grow(data.len())?;
                    total += data.len() as u64;
                    chunks.push(data);
                }
            }
        }
        let floor = limits.min_body_bytes_per_s as f64 * started.elapsed().as_secs_f64();
        if too_slow() && (total as f64) < floor {
            return Err(Rejection::BodyUnreadable(format!(
                "body slower than limits.min_body_bytes_per_s ({total} bytes in {:?})",
                started.elapsed()
            )));
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = bytes::BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
            for c in chunks {
                all.extend_from_slice(&c);
            }
            all.freeze()
        }
    })
}
