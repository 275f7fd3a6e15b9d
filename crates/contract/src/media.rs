//! Media types: what an operation declares, what a request sends, what a
//! client accepts (INPUT-01, INPUT-02, INPUT-13).

/// A media type or range, lower-cased, without parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    pub kind: String,
    pub subtype: String,
}

impl MediaRange {
    /// Parses `type/subtype; params`; `None` when malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let essence = text.split(';').next()?.trim();
        let (kind, subtype) = essence.split_once('/')?;
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
        };
        if !ok(kind) || !ok(subtype) || (kind == "*" && subtype != "*") {
            return None;
        }
        Some(Self {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
        })
    }

    /// Whether this (possibly wildcard) range covers `concrete`.
    pub fn covers(&self, concrete: &MediaRange) -> bool {
        (self.kind == "*" || self.kind == concrete.kind)
            && (self.subtype == "*" || self.subtype == concrete.subtype)
    }

    /// More specific ranges first: exact, then `type/*`, then `*/*`.
    pub fn specificity(&self) -> u8 {
        u8::from(self.kind != "*") + u8::from(self.subtype != "*")
    }

    /// `application/json` and any `+json` suffix.
    pub fn is_json(&self) -> bool {
        self.subtype == "json" || self.subtype.ends_with("+json")
    }

    /// Text the gateway can inspect for leaks (JSON, `text/*`, XML).
    pub fn is_textual(&self) -> bool {
        self.is_json()
            || self.kind == "text"
            || self.subtype == "xml"
            || self.subtype.ends_with("+xml")
    }

    /// Scripts and executables: never accepted in a request body (INPUT-13).
    pub fn is_executable(&self) -> bool {
        const EXECUTABLE: [&str; 20] = [
            "application/javascript",
            "application/x-javascript",
            "application/ecmascript",
            "text/javascript",
            "text/ecmascript",
            "text/jscript",
            "text/vbscript",
            "application/x-sh",
            "application/x-csh",
            "application/x-shellscript",
            "text/x-shellscript",
            "text/x-python",
            "application/x-python-code",
            "application/x-httpd-php",
            "application/x-php",
            "application/x-msdownload",
            "application/x-msdos-program",
            "application/x-executable",
            "application/x-elf",
            "application/java-archive",
        ];
        let essence = format!("{}/{}", self.kind, self.subtype);
        EXECUTABLE.contains(&essence.as_str()) || self.subtype == "wasm"
    }
}

impl std::fmt::Display for MediaRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.subtype)
    }
}

/// Picks the most specific declared range that covers `sent`.
pub fn best_match<'a, T>(declared: &'a [(MediaRange, T)], sent: &MediaRange) -> Option<&'a T> {
    declared
        .iter()
        .filter(|(range, _)| range.covers(sent))
        .max_by_key(|(range, _)| range.specificity())
        .map(|(_, t)| t)
}

/// Whether an `Accept` header value admits one of `available`. Ranges with
/// `q=0` exclude; an unparseable header admits nothing.
pub fn acceptable(accept: &str, available: &[MediaRange]) -> bool {
    let mut any = false;
    for item in accept.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some(range) = MediaRange::parse(item) else {
            continue;
        };
        let zero = item.split(';').skip(1).any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if zero {
            continue;
        }
        any = true;
        if available
            .iter()
            .any(|a| range.covers(a) || a.covers(&range))
        {
            return true;
        }
    }
    // A header of only `q=0` or unparseable ranges admits nothing.
    !any && accept.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> MediaRange {
        MediaRange::parse(s).unwrap()
    }

    #[test]
    fn parses_and_matches_ranges() {
        assert_eq!(m("Application/JSON; charset=utf-8"), m("application/json"));
        assert!(MediaRange::parse("json").is_none());
        assert!(MediaRange::parse("*/json").is_none());
        assert!(MediaRange::parse("text/ht ml").is_none());
        assert!(m("application/*").covers(&m("application/json")));
        assert!(!m("application/json").covers(&m("application/xml")));
        let declared = vec![
            (m("*/*"), 1),
            (m("application/json"), 2),
            (m("application/*"), 3),
        ];
        assert_eq!(best_match(&declared, &m("application/json")), Some(&2));
        assert_eq!(best_match(&declared, &m("application/xml")), Some(&3));
        assert_eq!(best_match(&declared, &m("text/plain")), Some(&1));
        assert!(m("application/merge-patch+json").is_json());
        assert!(m("text/javascript").is_executable());
        assert!(!m("application/json").is_executable());
    }

    #[test]
    fn accept_negotiation() {
        let json = [m("application/json")];
        assert!(acceptable("application/json", &json));
        assert!(acceptable("*/*", &json));
        assert!(acceptable("text/html, application/*;q=0.5", &json));
        assert!(!acceptable("application/xml", &json));
        assert!(!acceptable("application/json;q=0", &json));
        assert!(!acceptable("garbage", &json));
    }
}
