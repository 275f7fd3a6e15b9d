//! Strict request-path normalisation, before any route matching (AUTHZ-10).
//!
//! Paths that different components could read differently are refused, not
//! repaired: `.`/`..` segments, encoded `.`, `/` or `\`, double encoding
//! (`%25`), NUL and other control characters, invalid UTF-8, empty segments,
//! and `;` (raw or encoded: path parameters that Java backends strip).
//! What passes has exactly one meaning, so the route the gateway authorizes
//! is the resource the upstream serves.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path does not start with /")]
    NotAbsolute,
    #[error("dot segment")]
    DotSegment,
    #[error("empty segment")]
    EmptySegment,
    #[error("percent-encoded dot")]
    EncodedDot,
    #[error("percent-encoded separator")]
    EncodedSeparator,
    #[error("double percent-encoding")]
    DoubleEncoding,
    #[error("malformed percent-encoding")]
    MalformedEncoding,
    #[error("NUL or control character")]
    ControlCharacter,
    #[error("backslash")]
    Backslash,
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("path too long")]
    TooLong,
    #[error("semicolon in a segment")]
    Semicolon,
}

impl PathError {
    /// Short reason safe to show the client.
    pub fn client_reason(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "must start with /",
            PathError::DotSegment => "contains a '.' or '..' segment",
            PathError::EmptySegment => "contains an empty segment ('//')",
            PathError::EncodedDot => "contains a percent-encoded '.'",
            PathError::EncodedSeparator => "contains a percent-encoded '/' or '\\'",
            PathError::DoubleEncoding => "is percent-encoded twice ('%25')",
            PathError::MalformedEncoding => "contains a '%' not followed by two hex digits",
            PathError::ControlCharacter => "contains NUL or a control character",
            PathError::Backslash => "contains a backslash",
            PathError::InvalidUtf8 => "does not decode to valid UTF-8",
            PathError::TooLong => "is longer than 4096 bytes",
            PathError::Semicolon => {
                "contains ';' (path parameters such as '..;' are read differently by backends)"
            }
        }
    }
}

/// Longest path accepted.
pub const MAX_PATH_BYTES: usize = 4096;

/// Characters re-encoded when the canonical path is forwarded upstream:
/// everything outside RFC 3986 `pchar` plus `/`.
const FORWARD_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Decodes and checks a raw request path. Returns the decoded path, which
/// is what routes match against.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    if bytes.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|c| hex(*c));
                let lo = bytes.get(i + 2).and_then(|c| hex(*c));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::MalformedEncoding);
                };
                let v = hi << 4 | lo;
                match v {
                    b'.' => return Err(PathError::EncodedDot),
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    b'%' => return Err(PathError::DoubleEncoding),
                    b';' => return Err(PathError::Semicolon),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    _ => decoded.push(v),
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            // Tomcat, Jetty and Spring drop `;…` from a segment, so `..;`
            // is a dot segment to them and a plain name here (AUTHZ-10).
            b';' => return Err(PathError::Semicolon),
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            _ => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;
    // Separators and dots are never encoded (refused above), so the decoded
    // segments are exactly the raw ones.
    if decoded != "/" {
        let segments: Vec<&str> = decoded[1..].split('/').collect();
        let last = segments.len() - 1;
        for (n, seg) in segments.iter().enumerate() {
            match *seg {
                "." | ".." => return Err(PathError::DotSegment),
                // A trailing slash is allowed through to matching (where it
                // simply matches nothing unless declared); `//` is not.
                "" if n != last => return Err(PathError::EmptySegment),
                _ => {}
            }
        }
    }
    Ok(decoded)
}

/// The canonical encoding of a decoded path, as forwarded upstream.
pub fn encode_for_upstream(decoded: &str) -> String {
    utf8_percent_encode(decoded, FORWARD_ENCODE).to_string()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass_and_decode() {
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/orders/42").unwrap(), "/orders/42");
        assert_eq!(normalize("/orders/caf%C3%A9").unwrap(), "/orders/café");
        assert_eq!(normalize("/orders/").unwrap(), "/orders/");
        assert_eq!(normalize("/a/..b/c.d").unwrap(), "/a/..b/c.d");
    }

    #[test]
    fn the_length_bound_is_exact_and_raw_controls_are_refused() {
        let at_bound = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert!(normalize(&at_bound).is_ok());
        assert_eq!(normalize(&format!("{at_bound}a")), Err(PathError::TooLong));
        // Raw (not percent-encoded) control characters, which an HTTP/2
        // `:path` can carry past the HTTP/1 parser.
        for raw in ["/a\u{1}b", "/a\tb", "/a\u{7f}b"] {
            assert_eq!(normalize(raw), Err(PathError::ControlCharacter), "{raw:?}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let cases = [
            ("/a/../b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/a/%2e%2e/b", PathError::EncodedDot),
            ("/a/%2E/b", PathError::EncodedDot),
            ("/a%2fb", PathError::EncodedSeparator),
            ("/a%5Cb", PathError::EncodedSeparator),
            ("/a%252fb", PathError::DoubleEncoding),
            ("/a%00b", PathError::ControlCharacter),
            ("/a%0ab", PathError::ControlCharacter),
            ("/a%zz", PathError::MalformedEncoding),
            ("/a%2", PathError::MalformedEncoding),
            ("/a\\b", PathError::Backslash),
            ("/a%ff%fe", PathError::InvalidUtf8),
            ("/a//b", PathError::EmptySegment),
            ("a/b", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("/v1/orders/..;/items", PathError::Semicolon),
            ("/a;jsessionid=1", PathError::Semicolon),
            ("/a%3bb", PathError::Semicolon),
            ("/a%3B/b", PathError::Semicolon),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), Err(want), "{raw}");
        }
        assert_eq!(
            normalize(&format!("/{}", "a".repeat(5000))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn upstream_encoding_round_trips() {
        for raw in ["/orders/café", "/a b/c", "/x:y@z", "/q?#"] {
            let enc = encode_for_upstream(raw);
            assert_eq!(normalize(&enc).unwrap(), raw, "{enc}");
        }
    }
}
