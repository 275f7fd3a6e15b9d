//! Sensitive data where it does not belong (DATA-01, OUTPUT-02, OUTPUT-13).
//!
//! URLs end up in access logs, browser history, proxies and referrers, so
//! parameters whose *names* mark secrets, and *values* shaped like personal
//! data or credentials, are refused in paths and query strings. The same
//! value patterns flag personal data in responses, and a second set of
//! patterns spots stack traces leaking from a backend.
//!
//! Hand-written matchers, linear in the input, no regex engine on this path.

/// Which value patterns to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns {
    pub email: bool,
    /// Payment card numbers: 13-19 digits, issuer prefix, Luhn check.
    pub card: bool,
    /// US social security numbers written `ddd-dd-dddd`.
    pub national_id: bool,
    /// JWTs, `Bearer ` credentials and Portcullis API keys.
    pub token: bool,
}

impl Default for Patterns {
    fn default() -> Self {
        Self {
            email: true,
            card: true,
            national_id: true,
            token: true,
        }
    }
}

/// Parameter names that mark secrets: compared against the words of a
/// name (`apiKey` → `api`, `key`, `apikey`).
pub const DEFAULT_NAMES: [&str; 16] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "ssn",
    "card",
    "cardnumber",
    "creditcard",
    "cvv",
    "cvc",
    "pin",
    "privatekey",
    "sessionid",
    "otp",
];

/// What kind of value was found; never the value itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    Email,
    Card,
    NationalId,
    Token,
}

impl Finding {
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Email => "e-mail address",
            Finding::Card => "payment card number",
            Finding::NationalId => "national identification number",
            Finding::Token => "credential",
        }
    }
}

/// Whether a parameter name marks a secret under `names` (lower case).
pub fn is_sensitive_name(name: &str, names: &[String]) -> bool {
    let words = words(name);
    let hit = |w: &str| names.iter().any(|n| n == w);
    words.iter().any(|w| hit(w))
        || words.windows(2).any(|p| hit(&format!("{}{}", p[0], p[1])))
        || hit(&words.concat())
}

/// Splits `x-api-key`, `api_key`, `apiKey`, `APIKey` into lower-case words.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        let boundary = c.is_uppercase()
            && !current.is_empty()
            && (chars[i - 1].is_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if boundary {
            out.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The first sensitive value pattern found in `text`.
pub fn find(text: &str, patterns: &Patterns) -> Option<Finding> {
    if patterns.token && has_token(text) {
        return Some(Finding::Token);
    }
    if patterns.email && has_email(text) {
        return Some(Finding::Email);
    }
    if patterns.card && has_card(text) {
        return Some(Finding::Card);
    }
    if patterns.national_id && has_ssn(text) {
        return Some(Finding::NationalId);
    }
    None
}

fn has_email(text: &str) -> bool {
    let b = text.as_bytes();
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'.';
    // Each host run ends at the next non-domain byte (an `@` among them),
    // so the runs scanned from successive `@`s never overlap: linear.
    b.iter().enumerate().any(|(i, &c)| {
        step();
        if c != b'@' || i == 0 || !local(b[i - 1]) {
            return false;
        }
        let host: &[u8] = &b[i + 1..];
        let end = host
            .iter()
            .position(|&c| {
                step();
                !domain(c)
            })
            .unwrap_or(host.len());
        let host = &host[..end];
        match host.iter().rposition(|&c| c == b'.') {
            Some(dot) if dot > 0 => {
                let tld = &host[dot + 1..];
                tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic)
            }
            _ => false,
        }
    })
}

/// Digit runs (spaces and dashes allowed inside) of 13-19 digits with a
/// card issuer prefix and a valid Luhn check digit.
fn has_card(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        step();
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let mut buf = [0u8; 20];
        let mut count = 0;
        let mut j = i;
        while j < b.len() && count < buf.len() {
            step();
            match b[j] {
                d @ b'0'..=b'9' => {
                    buf[count] = d - b'0';
                    count += 1;
                }
                b' ' | b'-' if j + 1 < b.len() && b[j + 1].is_ascii_digit() => {}
                _ => break,
            }
            j += 1;
        }
        let digits = &buf[..count];
        let alone = j >= b.len() || !b[j].is_ascii_alphanumeric();
        if alone && (13..=19).contains(&digits.len()) && issuer(digits) && luhn(digits) {
            return true;
        }
        i = j.max(i + 1);
    }
    false
}

fn issuer(d: &[u8]) -> bool {
    let prefix = |n: usize| d[..n].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    match d[0] {
        4 => true,                                                    // Visa
        5 => (51..=55).contains(&prefix(2)),                          // Mastercard
        2 => (2221..=2720).contains(&prefix(4)),                      // Mastercard 2-series
        3 => matches!(prefix(2), 34 | 37 | 36 | 38 | 30 | 35),        // Amex, Diners, JCB
        6 => prefix(4) == 6011 || prefix(2) == 65 || prefix(2) == 62, // Discover, UnionPay
        _ => false,
    }
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

fn has_ssn(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(11).enumerate().any(|(i, w)| {
        step();
        let shape = w.iter().enumerate().all(|(k, &c)| {
            if k == 3 || k == 6 {
                c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
        let before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let after = b.get(i + 11).is_none_or(|c| !c.is_ascii_alphanumeric());
        shape
            && before
            && after
            && &w[..3] != b"000"
            && &w[..3] != b"666"
            && w[0] != b'9'
            && &w[4..6] != b"00"
            && &w[7..] != b"0000"
    })
}

/// Credentials in text: a compact JWT (`eyJ…` then two more base64url
/// segments of at least 8 characters each, dot-separated), a Portcullis API
/// key, or a `Bearer ` prefix. One pass over the bytes: every scanner of
/// untrusted text here is linear, so a hostile input cannot cost more than
/// its length (a rescan from every `eyJ` was quadratic).
fn has_token(text: &str) -> bool {
    has_jwt(text.as_bytes())
        || text.contains("pcsk_")
        || text
            .as_bytes()
            .windows(7)
            .any(|w| w.eq_ignore_ascii_case(b"bearer "))
}

/// Whether `b` holds `eyJ` at the start of a segment tail of 8 or more
/// base64url characters ended by a dot, whose next segment also has 8 or
/// more characters and is ended by a dot. Segments are runs of base64url
/// characters between dots; each byte is looked at once.
fn has_jwt(b: &[u8]) -> bool {
    let b64url = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    // Start of the current segment, the first `eyJ` in it, and whether the
    // previous segment (just ended by a dot) could open a token.
    let mut segment_start = 0;
    let mut first_eyj: Option<usize> = None;
    let mut previous_opens = false;
    for (i, &c) in b.iter().enumerate() {
        step();
        if b64url(c) {
            if first_eyj.is_none() && c == b'J' && i >= segment_start + 2 && &b[i - 2..i] == b"ey" {
                first_eyj = Some(i - 2);
            }
            continue;
        }
        if c == b'.' {
            let long = i - segment_start >= 8;
            if previous_opens && long {
                return true;
            }
            previous_opens = first_eyj.is_some_and(|e| i - e >= 8);
        } else {
            previous_opens = false;
        }
        segment_start = i + 1;
        first_eyj = None;
    }
    false
}

#[cfg(test)]
thread_local! {
    /// Bytes looked at by the scanners on this thread (tests count steps).
    static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one step of a scanner (tests only; nothing in a release build).
#[inline]
fn step() {
    #[cfg(test)]
    STEPS.with(|s| s.set(s.get() + 1));
}

/// Whether a response body looks like a stack trace or a framework error
/// page (OUTPUT-02). Markers are specific enough not to fire on prose.
pub fn looks_like_stack_trace(text: &str) -> bool {
    static MARKERS: std::sync::LazyLock<aho_corasick::AhoCorasick> =
        std::sync::LazyLock::new(|| {
            aho_corasick::AhoCorasick::new([
                "Traceback (most recent call last)",
                "Exception in thread \"",
                "panicked at ",
                "goroutine 1 [running]",
                "System.NullReferenceException",
                "   at System.",
                "\tat java.",
                "\tat org.",
                "\tat com.",
                "Stack trace:",
                "stack backtrace:",
                "org.springframework.",
                "Whitelabel Error Page",
                "Fatal error: Uncaught",
            ])
            .expect("fixed patterns")
        });
    if MARKERS.is_match(text) {
        return true;
    }
    if !text.contains(".java:") && !text.contains("\", line ") && !text.contains(".js:") {
        return false;
    }
    // Java/C# frames: "at pkg.Class.method(File.java:42)".
    let java = text
        .match_indices(".java:")
        .any(|(i, _)| text.as_bytes().get(i + 6).is_some_and(u8::is_ascii_digit));
    // Python frames: `File "x.py", line 3`; Node frames: `(/app/x.js:10:5)`.
    let python = text.contains("File \"") && text.contains("\", line ");
    let node = text.match_indices(".js:").any(|(i, _)| {
        let rest = &text.as_bytes()[i + 4..];
        let n = rest
            .iter()
            .take_while(|c| {
                step();
                c.is_ascii_digit()
            })
            .count();
        n > 0 && rest.get(n) == Some(&b':')
    }) && text.contains("    at ");
    java || python || node
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        DEFAULT_NAMES.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn sensitive_names_match_words_not_substrings() {
        for n in [
            "password",
            "api_key",
            "apiKey",
            "X-API-Key",
            "access_token",
            "cardNumber",
            "ssn",
            "newPassword",
            "session_id",
        ] {
            assert!(is_sensitive_name(n, &names()), "{n}");
        }
        for n in [
            "classname",
            "discard",
            "limit",
            "page",
            "tokens_used_total_x",
            "spin",
            "description",
        ] {
            assert!(!is_sensitive_name(n, &names()), "{n}");
        }
        assert!(!is_sensitive_name("classname", &names()));
        assert!(!is_sensitive_name("discard", &names()));
    }

    #[test]
    fn value_patterns() {
        let p = Patterns::default();
        assert_eq!(find("alice@example.com", &p), Some(Finding::Email));
        assert_eq!(find("4111 1111 1111 1111", &p), Some(Finding::Card));
        assert_eq!(find("4111-1111-1111-1111", &p), Some(Finding::Card));
        assert_eq!(find("123-45-6789", &p), Some(Finding::NationalId));
        assert_eq!(
            find("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", &p),
            Some(Finding::Token)
        );
        assert_eq!(find("Bearer abc", &p), Some(Finding::Token));
        // Luhn-failing, prefix-less and embedded digit runs are not cards.
        assert_eq!(find("4111111111111112", &p), None);
        assert_eq!(find("1234567890123456789", &p), None);
        assert_eq!(find("order-42", &p), None);
        assert_eq!(find("a@b", &p), None);
        assert_eq!(find("000-12-3456", &p), None);
    }

    #[test]
    fn names_split_at_case_changes_acronyms_and_punctuation() {
        assert_eq!(words("apiKey"), ["api", "key"]);
        assert_eq!(words("APIKey"), ["api", "key"]);
        assert_eq!(words("userID"), ["user", "id"]);
        assert_eq!(words("x-api-key"), ["x", "api", "key"]);
        assert_eq!(words("Client_Secret2"), ["client", "secret2"]);
        assert_eq!(Finding::Email.as_str(), "e-mail address");
        assert_eq!(Finding::Card.as_str(), "payment card number");
        assert_eq!(
            Finding::NationalId.as_str(),
            "national identification number"
        );
        assert_eq!(Finding::Token.as_str(), "credential");
    }

    #[test]
    fn e_mail_addresses_need_an_at_a_host_and_a_letter_tld() {
        assert!(has_email("write to a.b+c@mail.example.org today"));
        for text in [
            "www.example.com",
            "a@.com",
            "a@b.c",
            "a@b.12",
            "@example.com",
            " @example.com",
        ] {
            assert!(!has_email(text), "{text}");
        }
    }

    #[test]
    fn cards_are_whole_runs_with_an_issuer_prefix_and_a_luhn_digit() {
        // Every issuer prefix the scanner knows, at both ends of its range.
        for number in [
            "4000000000000002",
            "5100000000000008",
            "5500000000000004",
            "2221000000000009",
            "2720000000000005",
            "340000000000009",
            "370000000000002",
            "3600000000000008",
            "3800000000000006",
            "3000000000000004",
            "3500000000000009",
            "6011000000000004",
            "6500000000000002",
            "6200000000000005",
        ] {
            assert!(has_card(number), "{number}");
        }
        // Luhn-valid, but no issuer has these prefixes.
        for number in [
            "5600000000000003",
            "2220000000000000",
            "2721000000000004",
            "3300000000000001",
            "6012000000000003",
            "6400000000000003",
            "1000000000000008",
            "7000000000000005",
        ] {
            assert!(!has_card(number), "{number}");
        }
        // The check digit, with doubled digits over 9 (5 → 1, 6 → 3).
        assert!(!has_card("5500000000000005"));
        assert!(!has_card("6011000000000005"));
        // Whole runs only: not glued to letters on either side, separators
        // only between digits.
        assert!(has_card("card: 4111 1111 1111 1111"));
        assert!(has_card("4111 1111 1111 1111 x"));
        assert!(has_card("4111-1111-1111-1111."));
        assert!(!has_card("x4111111111111111"));
        assert!(!has_card("4111111111111111x"));
    }

    #[test]
    fn national_ids_are_whole_words() {
        assert!(has_ssn(" 123-45-6789"));
        assert!(has_ssn("123-45-6789"));
        assert!(!has_ssn("x123-45-6789"));
        assert!(!has_ssn("123-45-6789x"));
        assert!(!has_ssn("123-00-6789"));
        assert!(!has_ssn("123-45-0000"));
        assert!(!has_ssn("666-45-6789"));
        assert!(!has_ssn("912-45-6789"));
    }

    #[test]
    fn jwts_need_eyj_and_two_long_dot_ended_segments() {
        // Underscores and dashes are base64url: they stay inside a segment.
        assert!(has_jwt(b"eyJ_____.________.sig"));
        assert!(has_jwt(b"eyJ-----.--------.sig"));
        // A `J` without `ey` opens nothing.
        assert!(!has_jwt(b"aaJbbbbbbbbb.cccccccccc.d"));
        // The second segment needs 8 characters: 7 is not enough.
        assert!(!has_jwt(b"eyJhbGciO.abcdefg.sig"));
        assert!(has_jwt(b"eyJhbGciO.abcdefgh.sig"));
    }

    #[test]
    fn frames_alone_are_traces_and_look_alike_prose_is_not() {
        // Frames without any header line, one language at a time.
        assert!(looks_like_stack_trace(
            "  File \"/app/x.py\", line 3, in handler"
        ));
        assert!(looks_like_stack_trace(
            "    at shop.Orders.get(Orders.java:42)"
        ));
        assert!(looks_like_stack_trace(
            "    at handler (/app/server.js:10:5)"
        ));
        for prose in [
            "she said \"hi\", line by line",
            "see Main.java: the entry point",
            "see app.js:10 for details",
            "app.js:10:5 without a frame",
            "    at x (app.js::5)",
        ] {
            assert!(!looks_like_stack_trace(prose), "{prose}");
        }
    }

    #[test]
    fn stack_traces_are_recognised_and_prose_is_not() {
        assert!(looks_like_stack_trace(
            "Traceback (most recent call last):\n  File \"app.py\", line 3"
        ));
        assert!(looks_like_stack_trace(
            "java.lang.NullPointerException\n\tat com.acme.Orders.get(Orders.java:42)"
        ));
        assert!(looks_like_stack_trace(
            "TypeError: x\n    at handler (/app/server.js:10:5)"
        ));
        assert!(looks_like_stack_trace(
            "thread 'main' panicked at src/main.rs:2:5"
        ));
        assert!(!looks_like_stack_trace(
            r#"{"id":"o-1","note":"at the door"}"#
        ));
    }
    /// Steps the scanners take on `text` (bytes looked at by their own loops;
    /// the substring and Aho-Corasick searches they call are linear by
    /// construction).
    fn steps(text: &str) -> u64 {
        STEPS.with(|s| s.set(0));
        let all = Patterns::default();
        let _ = find(text, &all);
        let _ = has_token(text);
        let _ = has_email(text);
        let _ = has_card(text);
        let _ = has_ssn(text);
        let _ = looks_like_stack_trace(text);
        STEPS.with(std::cell::Cell::get)
    }

    /// Every scanner of untrusted text is linear: four times the input costs
    /// at most 4.2 times the steps, for the inputs that made the old
    /// token scan quadratic and the worst shapes of the others.
    #[test]
    fn scanners_are_linear() {
        let shapes: [(&str, &str); 8] = [
            ("eyJ repeated", "eyJ"),
            ("eyJ with short dots", "eyJaaaaa."),
            ("one long segment", "eyJaaaaaaaaaaaaaaaaaaa"),
            ("at signs", "a@"),
            ("mail hosts", "a@b.c"),
            ("digits", "4111 1111 "),
            ("node frames", ".js:1111"),
            ("java frames", ".java:1 "),
        ];
        for (name, unit) in shapes {
            let n = 15_000 / unit.len();
            let small = steps(&unit.repeat(n));
            let large = steps(&unit.repeat(4 * n));
            assert!(small > 0, "{name}: no step counted");
            assert!(
                large * 100 <= small * 4 * 105,
                "{name}: {small} steps for n, {large} for 4n (not linear)"
            );
        }
        // The old scan from every `eyJ` to the end of its run took n²/6
        // steps here; one pass takes n.
        let text = "eyJ".repeat(5_000);
        STEPS.with(|s| s.set(0));
        assert!(!has_token(&text));
        assert!(STEPS.with(std::cell::Cell::get) <= 15_000);
    }

    #[test]
    fn tokens_are_found_where_the_old_scan_found_them() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        for (text, want) in [
            (jwt.to_owned(), true),
            (format!("token={jwt}&x=1"), true),
            ("xxeyJhbGciOiJ.eyJzdWIiOiJ4In0.sig".to_owned(), true),
            ("eyJhbGciOiJ.short.eyJzdWIiOiJ4In0.".to_owned(), false),
            ("eyJhbGci.eyJzdWIiOiJ4In0".to_owned(), false),
            ("aaaaaaaaaa.eyJzdWIiOiJ4In0.".to_owned(), false),
            ("eyJ.aaaaaaaaaa.aaaaaaaaaa.".to_owned(), false),
            ("aaaeyJaaaaa.bbbbbbbb.".to_owned(), true),
            ("aaaeyJaaaa.bbbbbbbb.".to_owned(), false),
        ] {
            assert_eq!(has_jwt(text.as_bytes()), want, "{text}");
        }
    }
}
