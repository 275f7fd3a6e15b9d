//! What answers show: caching and security headers, CORS, and the
//! hygiene of every answer seen (traces, banners, internal hosts, secrets,
//! one error structure).

use super::{Evidence, Exchange, Finding, Location, Method, Outcome, Prober, Req, Write};

/// Card numbers (13–19 digits passing Luhn) in a text.
pub fn card_number(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
            let j = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if (13..=19).contains(&j) {
                let digits = &text[i..i + j];
                let sum: u32 = digits
                    .bytes()
                    .rev()
                    .enumerate()
                    .map(|(k, d)| {
                        let d = u32::from(d - b'0');
                        if k % 2 == 1 {
                            if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                        } else {
                            d
                        }
                    })
                    .sum();
                if sum % 10 == 0 && !digits.bytes().all(|d| d == digits.as_bytes()[0]) {
                    return Some(digits.to_owned());
                }
            }
            i += j;
        } else {
            i += 1;
        }
    }
    None
}

/// What a stack trace, a framework or an internal host looks like.
pub(super) const STACK_TRACES: [&str; 9] = [
    "Traceback (most recent call last)",
    "Exception in thread",
    "\tat java.",
    "at org.springframework",
    "System.NullReferenceException",
    "   at System.",
    "node_modules/",
    ".py\", line ",
    "panicked at",
];

pub(super) const FRAMEWORKS: [&str; 10] = [
    "Werkzeug", "Express", "Django", "Flask", "Spring", "ASP.NET", "PHP/", "Tomcat", "Jetty",
    "Kestrel",
];

pub(super) const BANNERS: [&str; 5] = [
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-generator",
];

/// Response headers that exist to debug a server (OUTPUT-06).
pub(super) const DEBUG_HEADERS: [&str; 6] = [
    "x-debug-token",
    "x-debug-token-link",
    "x-backend-server",
    "x-upstream-addr",
    "x-real-server",
    "x-debug",
];

/// Whether a text names an internal host (`*.internal`, `*.corp`,
/// `*.local`, `*.lan`) or a private IPv4 address (RFC 1918, link-local),
/// other than `own`, the host the probes were sent to.
pub fn internal_host(text: &str, own: &str) -> bool {
    let mut lower = text.to_ascii_lowercase();
    if !own.is_empty() {
        lower = lower.replace(&own.to_ascii_lowercase(), " ");
    }
    let names = [".internal", ".corp", ".local", ".lan"]
        .iter()
        .any(|suffix| {
            lower.match_indices(suffix).any(|(at, _)| {
                let end = at + suffix.len();
                let host_before = at > 0 && lower.as_bytes()[at - 1].is_ascii_alphanumeric();
                let ends = lower
                    .as_bytes()
                    .get(end)
                    .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'-');
                host_before && ends
            })
        });
    names
        || lower
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .filter_map(|w| w.trim_matches('.').parse::<std::net::Ipv4Addr>().ok())
            .any(|ip| ip.is_private() || ip.is_link_local())
}

/// Stack traces, banners, framework names, internal hosts, card numbers
/// and secret fields in answers (OUTPUT-02/03/04/13).
pub(super) fn body_flaws(seen: &[(Location, Exchange)], own: &str) -> Vec<Finding> {
    let mut found: Vec<Finding> = Vec::new();
    for (loc, x) in seen {
        let text = x.text();
        let mut all = x.headers.iter().fold(String::new(), |mut out, (k, v)| {
            let _ = writeln!(out, "{k}: {}", v.to_str().unwrap_or(""));
            out
        });
        all.push_str(&text);
        if let Some(t) = STACK_TRACES.iter().find(|t| all.contains(**t)) {
            found.push(
                Finding::new(
                    "OUTPUT-02",
                    "probe.stack-trace",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!("the answer contains a stack trace (`{}`)", t.trim()),
                    loc.clone(),
                )
                .critical(),
            );
        }
        for b in BANNERS {
            if let Some(v) = x.headers.get(b).and_then(|v| v.to_str().ok()) {
                found.push(Finding::new(
                    "OUTPUT-03",
                    "probe.banner",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!("`{b}: {v}` names the platform"),
                    loc.clone(),
                ));
            }
        }
        if let Some(fw) = FRAMEWORKS.iter().find(|f| text.contains(**f)) {
            found.push(Finding::new(
                "OUTPUT-03",
                "probe.framework-in-body",
                Outcome::Fail,
                Evidence::Observed,
                format!("the body names the framework (`{fw}`)"),
                loc.clone(),
            ));
        }
        if internal_host(&text, own) {
            found.push(Finding::new(
                "OUTPUT-04",
                "probe.internal-host",
                Outcome::Fail,
                Evidence::Observed,
                "the body names an internal host or address",
                loc.clone(),
            ));
        }
        if x.status.is_success() {
            if let Some(card) = card_number(&text) {
                found.push(Finding::new(
                    "OUTPUT-13",
                    "probe.card-number",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!(
                        "the answer contains a card number (…{})",
                        &card[card.len() - 4..]
                    ),
                    loc.clone(),
                ));
            }
            let lower = text.to_ascii_lowercase();
            if ["\"password\"", "\"secret\"", "\"client_secret\""]
                .iter()
                .any(|k| lower.contains(k))
            {
                found.push(Finding::new(
                    "OUTPUT-13",
                    "probe.secret-field",
                    Outcome::Fail,
                    Evidence::Observed,
                    "the answer contains a password or secret field",
                    loc.clone(),
                ));
            }
        }
    }
    found
}

/// Response headers: internal hosts, debug headers, echoed credentials
/// (OUTPUT-06), card numbers and secrets (DATA-02).
pub(super) fn header_flaws(
    seen: &[(Location, Exchange)],
    own: &str,
    secrets: &[&str],
) -> Vec<Finding> {
    let mut found: Vec<Finding> = Vec::new();
    for (loc, x) in seen {
        for (name, value) in &x.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            // Card numbers and secrets in a header (DATA-02).
            let lower = value.to_ascii_lowercase();
            if card_number(&value).is_some()
                || ["password=", "passwd=", "secret="]
                    .iter()
                    .any(|k| lower.contains(k))
            {
                found.push(Finding::new(
                    "DATA-02",
                    "probe.sensitive-in-header",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!("`{name}` carries a card number or a secret"),
                    loc.clone(),
                ));
            }
            let flaw = if DEBUG_HEADERS.contains(&name.as_str()) {
                Some((
                    "probe.debug-header",
                    format!("`{name}` is a debugging header"),
                ))
            } else if secrets.iter().any(|s| value.contains(s)) {
                Some((
                    "probe.credential-in-header",
                    format!("`{name}` echoes a credential the request carried"),
                ))
            } else if internal_host(&value, own) {
                Some((
                    "probe.internal-host-in-header",
                    format!("`{name}: {value}` names an internal host or address"),
                ))
            } else {
                None
            };
            if let Some((rule, message)) = flaw {
                found.push(Finding::new(
                    "OUTPUT-06",
                    rule,
                    Outcome::Fail,
                    Evidence::Observed,
                    message,
                    loc.clone(),
                ));
            }
        }
    }
    found
}

/// One error structure (OUTPUT-01): every error answer with a body in
/// one media type (HTML here, plain text there and JSON elsewhere is the
/// mix a client cannot parse), and within JSON errors one shape.
pub(super) fn error_structure(seen: &[(Location, Exchange)]) -> Vec<Finding> {
    let mut found: Vec<Finding> = Vec::new();
    let mut formats: Vec<(String, &Location)> = Vec::new();
    for (loc, x) in seen {
        if !(x.status.is_client_error() || x.status.is_server_error()) || x.body.is_empty() {
            continue;
        }
        let essence = x
            .header("content-type")
            .and_then(|c| c.split(';').next())
            .map_or_else(|| "(none)".to_owned(), |c| c.trim().to_ascii_lowercase());
        if !formats.iter().any(|(f, _)| *f == essence) {
            formats.push((essence, loc));
        }
    }
    // Within JSON errors, one shape: RFC 9457 problems (title and
    // status), or one fixed set of members.
    let mut shapes: Vec<(String, &Location)> = Vec::new();
    for (loc, x) in seen {
        if !(x.status.is_client_error() || x.status.is_server_error()) {
            continue;
        }
        let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(&x.body) else {
            continue;
        };
        let shape = if body.contains_key("title") && body.contains_key("status") {
            "an RFC 9457 problem".to_owned()
        } else {
            let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
            keys.sort_unstable();
            format!("{{{}}}", keys.join(", "))
        };
        if !shapes.iter().any(|(s, _)| *s == shape) {
            shapes.push((shape, loc));
        }
    }
    if formats.len() <= 1 && shapes.len() > 1 {
        let names: Vec<&str> = shapes.iter().map(|(s, _)| s.as_str()).collect();
        found.push(Finding::new(
            "OUTPUT-01",
            "probe.mixed-error-shapes",
            Outcome::Fail,
            Evidence::Observed,
            format!(
                "JSON error answers come in {} shapes ({}): clients cannot rely on one error structure",
                shapes.len(),
                names.join("; ")
            ),
            shapes[1].1.clone(),
        ));
    }
    if formats.len() > 1 {
        let names: Vec<String> = formats.iter().map(|(f, _)| format!("`{f}`")).collect();
        found.push(Finding::new(
            "OUTPUT-01",
            "probe.mixed-error-formats",
            Outcome::Fail,
            Evidence::Observed,
            format!(
                "error answers come in {} formats ({}): clients cannot rely on one error structure",
                formats.len(),
                names.join(", ")
            ),
            formats[1].1.clone(),
        ));
    }
    found
}

impl Prober {
    /// OUTPUT-03, OUTPUT-07/08/09, OUTPUT-12, OUTPUT-11, content type.
    pub(super) async fn headers_and_cors(&mut self) {
        let (method, path) = self.protected.clone();
        let token = self.target.token.clone();
        let ok = self.authed(
            Req::new(method.clone(), &path),
            true,
            token.as_deref().map(|t| (t, "$TOKEN")),
        );
        let err = Req::new(Method::GET, "/portcullis-audit-no-such-path");
        for req in [ok.clone(), err] {
            let Some(x) = self.probe(&req).await else {
                continue;
            };
            let loc = self.location(&req, Some(x.status));
            let what = if x.status.is_success() {
                "a success"
            } else {
                "an error"
            };
            self.judge_caching(&req, &x, what, &loc);
            self.judge_content_headers(&x, what, &loc);
        }
        self.cors(ok).await;
    }

    /// Cache directives of an answer (OUTPUT-07/08/09) and, for an
    /// authenticated one, whether it may be stored (AUTHN-03).
    fn judge_caching(&mut self, req: &Req, x: &Exchange, what: &str, loc: &Location) {
        match x.header("cache-control") {
            Some(v) if v.contains("no-store") => self.record(
                "OUTPUT-09",
                "probe.no-store",
                Outcome::Pass,
                format!("{what} says `Cache-Control: {v}`"),
                loc.clone(),
            ),
            Some(v) => self.record(
                "OUTPUT-09",
                "probe.cacheable",
                Outcome::Fail,
                format!(
                    "{what} says `Cache-Control: {v}`: API answers must not be stored (`no-store`)"
                ),
                loc.clone(),
            ),
            None => self.record(
                "OUTPUT-09",
                "probe.no-cache-control",
                Outcome::Fail,
                format!("{what} has no `Cache-Control`: shared caches may keep it"),
                loc.clone(),
            ),
        }
        for id in ["OUTPUT-07", "OUTPUT-08"] {
            let ok = x
                .header("cache-control")
                .is_some_and(|v| v.contains("no-store") || v.contains("no-cache"));
            self.record(
                id,
                "probe.cache-directive",
                if ok { Outcome::Pass } else { Outcome::Fail },
                format!(
                    "{what}: `Cache-Control: {}`",
                    x.header("cache-control").unwrap_or("(none)")
                ),
                loc.clone(),
            );
        }
        // An answer to an authenticated request that may be stored
        // lets whatever sits in between serve it to others (AUTHN-03).
        if x.status.is_success()
            && req
                .headers
                .iter()
                .any(|(_, _, shown)| shown.starts_with('$'))
        {
            let stored = !x
                .header("cache-control")
                .is_some_and(|v| v.contains("no-store"));
            self.record(
                "AUTHN-03",
                if stored {
                    "probe.authenticated-answer-storable"
                } else {
                    "probe.authenticated-answer-no-store"
                },
                if stored { Outcome::Fail } else { Outcome::Pass },
                format!(
                    "an authenticated answer says `Cache-Control: {}`",
                    x.header("cache-control").unwrap_or("(none)")
                ),
                loc.clone(),
            );
        }
    }

    /// HSTS (OUTPUT-12), `nosniff` and JSON labelled as JSON (INPUT-12, OUTPUT-03).
    fn judge_content_headers(&mut self, x: &Exchange, what: &str, loc: &Location) {
        if self.tls.is_some() {
            match x.header("strict-transport-security") {
                Some(v) if v.contains("max-age=") && !v.contains("max-age=0") => self.record(
                    "OUTPUT-12",
                    "probe.hsts",
                    Outcome::Pass,
                    format!("{what} carries HSTS ({v})"),
                    loc.clone(),
                ),
                _ => self.record(
                    "OUTPUT-12",
                    "probe.no-hsts",
                    Outcome::Fail,
                    format!("{what} has no `Strict-Transport-Security`"),
                    loc.clone(),
                ),
            }
        }
        if x.header("x-content-type-options") == Some("nosniff") {
            self.record(
                "INPUT-12",
                "probe.nosniff",
                Outcome::Pass,
                format!("{what} carries `X-Content-Type-Options: nosniff`: browsers run no JSON as script"),
                loc.clone(),
            );
        } else {
            self.record(
                "OUTPUT-03",
                "probe.no-nosniff",
                Outcome::Partial,
                format!("{what} lacks `X-Content-Type-Options: nosniff`"),
                loc.clone(),
            );
            // Without it a browser may sniff JSON as script (INPUT-12).
            self.record(
                "INPUT-12",
                "probe.no-nosniff",
                Outcome::Fail,
                format!("{what} lacks `X-Content-Type-Options: nosniff`: a browser may run the answer as script"),
                loc.clone(),
            );
        }
        if !x.body.is_empty()
            && x.body.first() == Some(&b'{')
            && !x.header("content-type").is_some_and(|c| c.contains("json"))
        {
            self.record(
                "INPUT-12",
                "probe.json-not-labelled",
                Outcome::Fail,
                format!(
                    "{what} sends JSON as `{}`",
                    x.header("content-type").unwrap_or("(none)")
                ),
                loc.clone(),
            );
        }
    }

    /// CORS with a hostile origin, with and without credentials (OUTPUT-11).
    async fn cors(&mut self, ok: Req) {
        let req = ok.header(
            "origin",
            "https://evil.portcullis-audit.invalid",
            "https://evil.portcullis-audit.invalid",
        );
        if let Some(x) = self.probe(&req).await {
            let loc = self.location(&req, Some(x.status));
            let acao = x.header("access-control-allow-origin").map(str::to_owned);
            let creds = x.header("access-control-allow-credentials") == Some("true");
            match acao.as_deref() {
                Some("https://evil.portcullis-audit.invalid") => self.record(
                    "OUTPUT-11",
                    "probe.cors-reflects-origin",
                    Outcome::Fail,
                    format!(
                        "CORS allows any origin it is sent (reflected){}",
                        if creds { ", with credentials" } else { "" }
                    ),
                    loc,
                ),
                Some("*") if creds => self.record(
                    "OUTPUT-11",
                    "probe.cors-wildcard-credentials",
                    Outcome::Fail,
                    "CORS `*` with credentials",
                    loc,
                ),
                Some("*") => self.record(
                    "OUTPUT-11",
                    "probe.cors-wildcard",
                    Outcome::Partial,
                    "CORS allows any origin (`*`)",
                    loc,
                ),
                _ => self.record(
                    "OUTPUT-11",
                    "probe.cors-refuses-hostile-origin",
                    Outcome::Pass,
                    "CORS does not allow a hostile origin",
                    loc,
                ),
            }
        }
    }

    /// OUTPUT-02/03/04, OUTPUT-13 over every exchange seen.
    pub(super) fn hygiene(&mut self) {
        let own = self.base.host().unwrap_or_default();
        let secrets: Vec<&str> = [&self.target.api_key, &self.target.token]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|s| s.len() >= 8)
            .collect();
        let mut found = body_flaws(&self.seen, own);
        found.extend(header_flaws(&self.seen, own, &secrets));
        found.extend(error_structure(&self.seen));
        // A stack trace is internal detail as well: OUTPUT-04 at best partial.
        if let Some(trace) = found.iter().find(|f| f.rule == "probe.stack-trace") {
            found.push(Finding::new(
                "OUTPUT-04",
                "probe.stack-trace-detail",
                Outcome::Partial,
                Evidence::Observed,
                "an answer carried a stack trace, which is internal detail (see OUTPUT-02)",
                trace.location.clone(),
            ));
        }
        // One finding per flaw, at the first answer that showed it.
        let mut reported = std::collections::HashSet::new();
        found.retain(|f| reported.insert((f.id, f.rule, f.message.clone())));
        if let Some((loc, _)) = self.seen.first() {
            let loc = loc.clone();
            for (id, what) in [
                ("OUTPUT-02", "no stack trace"),
                ("OUTPUT-03", "no platform banner or framework name"),
                ("OUTPUT-04", "no internal host name"),
                (
                    "OUTPUT-06",
                    "no internal host, debugging header or echoed credential in a header",
                ),
                ("OUTPUT-13", "no card number, password or secret"),
                ("DATA-02", "no card number or secret in a response header"),
            ] {
                if !found.iter().any(|f| f.id == id) {
                    found.push(Finding::new(
                        id,
                        "probe.clean",
                        Outcome::Pass,
                        Evidence::Observed,
                        format!("{what} in any answer"),
                        loc.clone(),
                    ));
                }
            }
        }
        self.findings.extend(found);
    }
}
