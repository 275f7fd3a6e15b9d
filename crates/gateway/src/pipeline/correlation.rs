//! Correlation ids (DATA-03, DATA-04): accept the client's id when it is
//! bounded and of a safe charset, otherwise refuse; generate a UUIDv7 when
//! absent. The id is forwarded upstream, echoed on every response and put in
//! every event.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Longest accepted client correlation id.
pub const MAX_LEN: usize = 128;

/// The request's correlation id, and whether the client's one was refused.
#[derive(Debug, Clone)]
pub struct CorrelationId {
    pub value: HeaderValue,
    /// The client sent an id that is not acceptable (a fresh one was made
    /// so that the rejection itself can still be correlated).
    pub refused: bool,
}

impl CorrelationId {
    pub fn as_str(&self) -> &str {
        // Only ever built from validated ASCII or a UUID.
        self.value.to_str().unwrap_or("")
    }
}

pub fn from_request(headers: &HeaderMap, name: &HeaderName) -> CorrelationId {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => CorrelationId {
            value: generate(),
            refused: false,
        },
        (Some(v), None) if is_valid(v.as_bytes()) => CorrelationId {
            value: v.clone(),
            refused: false,
        },
        _ => CorrelationId {
            value: generate(),
            refused: true,
        },
    }
}

pub fn is_valid(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_LEN
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn generate() -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let s = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).expect("a UUID is valid header text")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&[u8]]) -> CorrelationId {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-correlation-id", HeaderValue::from_bytes(v).unwrap());
        }
        from_request(&h, &HeaderName::from_static("x-correlation-id"))
    }

    #[test]
    fn accepts_bounded_safe_ids() {
        let c = with(&[b"order-42.retry_1"]);
        assert!(!c.refused);
        assert_eq!(c.as_str(), "order-42.retry_1");
        assert!(!with(&["a".repeat(128).as_bytes()]).refused);
    }

    #[test]
    fn refuses_unsafe_long_or_repeated_ids() {
        for bad in [&b"a b"[..], b"<script>", b"", b"id;drop", "é".as_bytes()] {
            let c = with(&[bad]);
            assert!(c.refused, "{bad:?}");
            assert_eq!(
                c.as_str().len(),
                36,
                "a fresh id is generated for the rejection"
            );
        }
        assert!(with(&["a".repeat(129).as_bytes()]).refused);
        assert!(with(&[b"a", b"b"]).refused);
    }

    #[test]
    fn generates_uuid_v7_when_absent() {
        let c = with(&[]);
        assert!(!c.refused);
        let u = uuid::Uuid::parse_str(c.as_str()).unwrap();
        assert_eq!(u.get_version_num(), 7);
    }
}
