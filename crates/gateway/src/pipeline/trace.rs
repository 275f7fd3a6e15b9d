//! W3C Trace Context (DATA-03, DATA-04): a client's `traceparent` and
//! `tracestate` are correlation keys like the correlation id. They reach
//! the upstream only as this module read them, on every route whether or
//! not its contract declares them: a well-formed `traceparent` unchanged,
//! with its `tracestate` when that is well-formed too; a malformed or
//! repeated `traceparent` is replaced by a new trace (and its `tracestate`
//! dropped), as the W3C recommendation says a receiver restarts the trace;
//! without one, a new trace is started unless `trace_context.start` is off.
//! The client's raw copies never cross (`request_headers`).
//!
//! With span export on (`trace_context.otlp`), the gateway is a hop of the
//! trace: the upstream's parent is the gateway's own span (a fresh span id
//! in the client's `traceparent`), whose parent is the client's span.

use http::{HeaderMap, HeaderValue};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Longest `tracestate` forwarded (the W3C minimum a vendor propagates).
const MAX_TRACESTATE: usize = 512;
/// Most list members in a `tracestate`.
const MAX_MEMBERS: usize = 32;

/// The trace context the upstream receives.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub traceparent: HeaderValue,
    pub tracestate: Option<HeaderValue>,
    /// The client's span id (hex), when the gateway made itself a hop.
    client_span: Option<[u8; 16]>,
}

/// The ids of the gateway's span in a trace.
#[derive(Debug, PartialEq, Eq)]
pub struct Ids<'a> {
    pub trace_id: &'a str,
    pub span_id: &'a str,
    /// The client's span, when it sent one.
    pub parent_id: Option<&'a str>,
    pub sampled: bool,
}

impl TraceContext {
    /// The 32 lower-case hex digits of the trace id.
    pub fn trace_id(&self) -> &str {
        self.ids().trace_id
    }

    /// Trace, span and parent ids, and the sampled flag.
    pub fn ids(&self) -> Ids<'_> {
        // Only ever built from a validated or generated `traceparent`.
        let s = self.traceparent.to_str().unwrap_or("");
        Ids {
            trace_id: s.get(3..35).unwrap_or(""),
            span_id: s.get(36..52).unwrap_or(""),
            parent_id: self
                .client_span
                .as_ref()
                .and_then(|p| std::str::from_utf8(p).ok()),
            sampled: s
                .get(53..55)
                .and_then(|f| u8::from_str_radix(f, 16).ok())
                .is_some_and(|f| f & 1 == 1),
        }
    }
}

/// The request's trace context: the client's when well-formed, a new one
/// when it is malformed, or absent and `start` is on. With `hop`, the
/// client's span becomes the parent of a new span of the gateway's.
pub fn from_request(headers: &HeaderMap, start: bool, hop: bool) -> Option<TraceContext> {
    let mut parents = headers.get_all(TRACEPARENT).iter();
    match (parents.next(), parents.next()) {
        (Some(p), None) if is_valid_traceparent(p.as_bytes()) => {
            let mut t = TraceContext {
                traceparent: p.clone(),
                tracestate: tracestate(headers),
                client_span: None,
            };
            if hop {
                let mut bytes = p.as_bytes().to_vec();
                let mut client = [0u8; 16];
                client.copy_from_slice(&bytes[36..52]);
                let mut id = [0u8; 8];
                random_ids(&mut id);
                write_hex(&id, &mut bytes[36..52]);
                if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                    t.traceparent = v;
                    t.client_span = Some(client);
                }
            }
            Some(t)
        }
        (None, _) if !start => None,
        _ => Some(TraceContext {
            traceparent: generate(),
            tracestate: None,
            client_span: None,
        }),
    }
}

fn is_lower_hex(b: &[u8]) -> bool {
    b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// `version-traceid-parentid-flags`: version 00 exactly 55 characters; a
/// later version (never `ff`) at least that, with `-` after the flags when
/// longer. Trace and parent ids are not all zeros.
pub fn is_valid_traceparent(v: &[u8]) -> bool {
    if v.len() < 55 || (v.len() > 55 && (v.starts_with(b"00") || v[55] != b'-')) {
        return false;
    }
    let (version, trace, parent, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    v[2] == b'-'
        && v[35] == b'-'
        && v[52] == b'-'
        && is_lower_hex(version)
        && version != b"ff"
        && is_lower_hex(trace)
        && trace.iter().any(|c| *c != b'0')
        && is_lower_hex(parent)
        && parent.iter().any(|c| *c != b'0')
        && is_lower_hex(flags)
}

/// The `tracestate` fields joined, when the whole list is well-formed and
/// within bounds; otherwise none (the `traceparent` alone still counts).
fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut joined = Vec::new();
    for v in headers.get_all(TRACESTATE) {
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(v.as_bytes());
        if joined.len() > MAX_TRACESTATE {
            return None;
        }
    }
    let text = std::str::from_utf8(&joined).ok()?;
    let members: Vec<&str> = text
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .collect();
    if members.is_empty()
        || members.len() > MAX_MEMBERS
        || !members.iter().all(|m| is_valid_member(m))
    {
        return None;
    }
    HeaderValue::from_str(&members.join(",")).ok()
}

/// `key=value`: a key of lower-case letters, digits and `_-*/` (optionally
/// `tenant@system`), starting with a letter or digit, at most 256; a value
/// of printable ASCII without `,` and `=`, at most 256, not ending in a space.
fn is_valid_member(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    let key_part = |k: &str, max: usize| {
        !k.is_empty()
            && k.len() <= max
            && k.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && k.bytes().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || matches!(c, b'_' | b'-' | b'*' | b'/')
            })
    };
    let key_ok = match key.split_once('@') {
        None => key_part(key, 256),
        Some((tenant, system)) => key_part(tenant, 241) && key_part(system, 14),
    };
    key_ok
        && !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

/// Random ids, never all zeros (invalid): should aws-lc's generator fail
/// or give zeros, a UUIDv7's bytes stand in.
fn random_ids(ids: &mut [u8]) {
    if aws_lc_rs::rand::fill(ids).is_err() || ids.iter().all(|b| *b == 0) {
        let u = uuid::Uuid::now_v7();
        for (i, b) in ids.iter_mut().enumerate() {
            *b = u.as_bytes()[(i + 8) % 16] | u8::from(i == 0);
        }
    }
}

/// Lower-case hex of `bytes` into `out` (twice as long). Written into one
/// buffer: formatting with `write!` showed in the S1 profile (issue 20)
/// once every request started a trace.
fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
}

/// A new sampled trace: random trace and parent ids.
fn generate() -> HeaderValue {
    let mut ids = [0u8; 24];
    random_ids(&mut ids);
    if ids[..16] == [0; 16] || ids[16..] == [0; 8] {
        random_ids(&mut ids[..16]);
        random_ids(&mut ids[16..]);
    }
    let mut s = *b"00-00000000000000000000000000000000-0000000000000000-01";
    write_hex(&ids[..16], &mut s[3..35]);
    write_hex(&ids[16..], &mut s[36..52]);
    HeaderValue::from_bytes(&s).expect("hex is valid header text")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// The W3C examples and their broken forms.
    #[test]
    fn traceparent_is_read_as_the_recommendation_writes_it() {
        assert!(is_valid_traceparent(GOOD.as_bytes()));
        assert!(is_valid_traceparent(
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra"
        ));
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "",
        ] {
            assert!(!is_valid_traceparent(bad.as_bytes()), "{bad}");
        }
    }

    /// As a hop, the gateway keeps the trace and the flags, puts a span
    /// of its own in the parent field, and names the client's as parent.
    #[test]
    fn a_hop_takes_the_clients_span_as_its_parent() {
        let t = from_request(&headers(&[(TRACEPARENT, GOOD)]), true, true).unwrap();
        let ids = t.ids();
        assert_eq!(ids.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ids.parent_id, Some("00f067aa0ba902b7"));
        assert_ne!(ids.span_id, "00f067aa0ba902b7");
        assert!(ids.sampled);
        assert!(is_valid_traceparent(t.traceparent.as_bytes()));
        let passed = from_request(&headers(&[(TRACEPARENT, GOOD)]), true, false).unwrap();
        assert_eq!(passed.traceparent, GOOD);
        assert_eq!(passed.ids().parent_id, None);
        let unsampled = GOOD.replace("-01", "-00");
        let t = from_request(&headers(&[(TRACEPARENT, &unsampled)]), true, true).unwrap();
        assert!(!t.ids().sampled);
    }

    #[test]
    fn a_well_formed_context_is_kept_with_its_state() {
        let t = from_request(
            &headers(&[
                (TRACEPARENT, GOOD),
                (TRACESTATE, "congo=t61rcWkgMzE"),
                (TRACESTATE, " rojo=00f067aa0ba902b7, tenant@vendor=x "),
            ]),
            false,
            false,
        )
        .unwrap();
        assert_eq!(t.traceparent, GOOD);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            t.tracestate.unwrap(),
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,tenant@vendor=x"
        );
    }

    /// A bad `tracestate` is dropped, the `traceparent` kept.
    #[test]
    fn a_malformed_or_oversized_tracestate_is_dropped() {
        let long = format!("a={}", "v".repeat(300));
        let many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        for bad in [
            "Upper=1",
            "novalue",
            "k=a=b",
            "k=",
            "=v",
            long.as_str(),
            many.as_str(),
            &format!("{0},{0}", "k=".to_owned() + &"v".repeat(255)),
        ] {
            let t = from_request(
                &headers(&[(TRACEPARENT, GOOD), (TRACESTATE, bad)]),
                false,
                false,
            )
            .unwrap();
            assert_eq!(t.traceparent, GOOD);
            assert!(t.tracestate.is_none(), "{bad}");
        }
    }

    /// Malformed or repeated: a new trace, without the client's state;
    /// absent: a new trace only when starting is on.
    #[test]
    fn a_bad_or_missing_traceparent_starts_a_new_trace() {
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        for h in [
            headers(&[(TRACEPARENT, "00-bad"), (TRACESTATE, "k=v")]),
            headers(&[(TRACEPARENT, GOOD), (TRACEPARENT, other)]),
        ] {
            for start in [true, false] {
                let t = from_request(&h, start, false).unwrap();
                assert!(is_valid_traceparent(t.traceparent.as_bytes()));
                assert_ne!(t.traceparent, GOOD);
                assert_ne!(t.traceparent, other);
                assert!(t.tracestate.is_none());
            }
        }
        assert!(from_request(&HeaderMap::new(), false, false).is_none());
        let a = from_request(&HeaderMap::new(), true, false).unwrap();
        let b = from_request(&HeaderMap::new(), true, false).unwrap();
        assert!(is_valid_traceparent(a.traceparent.as_bytes()));
        assert!(a.traceparent.as_bytes().ends_with(b"-01"), "sampled");
        assert_ne!(a.trace_id(), b.trace_id());
    }
}
