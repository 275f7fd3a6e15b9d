//! Bad input on the write operation, correlation ids and throttling.

use super::{Exchange, MAX_BURST, MAX_RATE, Method, Outcome, Prober, Req, StatusCode};

impl Prober {
    /// INPUT-01/02/03/06, OUTPUT-01/05/14 on the write operation.
    pub(super) async fn input(&mut self) {
        let Some((method, path)) = self.target.scoped.clone() else {
            return;
        };
        let token = self.target.token.clone();
        let authed = |p: &Self, r: Req| p.authed(r, true, token.as_deref().map(|t| (t, "$TOKEN")));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let big = vec![b' '; 2 * 1024 * 1024];
        let cases: Vec<(&'static str, &'static str, Req)> = vec![
            (
                "INPUT-01",
                "JSON sent as text/plain",
                authed(self, Req::new(method.clone(), &path)).body("text/plain", "{\"a\":1}"),
            ),
            (
                "INPUT-03",
                "malformed JSON",
                authed(self, Req::new(method.clone(), &path)).body("application/json", "{\"a\":"),
            ),
            (
                "INPUT-03",
                "deeply nested JSON",
                authed(self, Req::new(method.clone(), &path)).body("application/json", deep),
            ),
            (
                "INPUT-02",
                "an oversized body",
                authed(self, Req::new(method.clone(), &path)).body("application/json", big),
            ),
            (
                "INPUT-02",
                "a TRACE request",
                authed(self, Req::new(Method::TRACE, &path)),
            ),
            (
                "INPUT-02",
                "an unknown method",
                authed(
                    self,
                    Req::new(Method::from_bytes(b"FOO").expect("a token"), &path),
                ),
            ),
        ];
        for (id, what, req) in cases {
            if what == "an oversized body" {
                self.oversized(id, &req).await;
                continue;
            }
            let Some(x) = self.probe(&req).await else {
                continue;
            };
            self.judge_bad_input(id, what, &req, &x);
        }
        let req = authed(self, Req::new(method.clone(), &path))
            .body("application/json", "{\"portcullis_audit_undeclared\":true}");
        self.undeclared_property(&req).await;
    }

    /// Bad input is refused with a 4xx problem (or it fails `id`, and a
    /// 5xx fails OUTPUT-14 too).
    fn judge_bad_input(&mut self, id: &'static str, what: &str, req: &Req, x: &Exchange) {
        let loc = self.location(req, Some(x.status));
        if x.status.is_success() {
            self.record(
                id,
                "probe.bad-input-accepted",
                Outcome::Fail,
                format!("{what} was accepted ({})", x.status),
                loc,
            );
        } else if x.status.is_server_error() {
            self.record(
                "OUTPUT-14",
                "probe.bad-input-5xx",
                Outcome::Fail,
                format!("{what} caused {}: bad input must get a 4xx", x.status),
                loc.clone(),
            );
            // Syntax the parser should have refused broke the server:
            // INPUT-03 is not enforced, whatever else holds.
            self.record(
                id,
                "probe.bad-input-5xx",
                if id == "INPUT-03" {
                    Outcome::Fail
                } else {
                    Outcome::Partial
                },
                format!("{what} got {}", x.status),
                loc,
            );
        } else {
            self.record(
                id,
                "probe.bad-input-refused",
                Outcome::Pass,
                format!("{what} got {}", x.status),
                loc.clone(),
            );
            let problem = x
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json"));
            self.record(
                "OUTPUT-01",
                if problem {
                    "probe.problem-body"
                } else {
                    "probe.error-not-problem"
                },
                if problem {
                    Outcome::Pass
                } else {
                    Outcome::Partial
                },
                format!(
                    "{what}: error body as `{}`",
                    x.header("content-type").unwrap_or("(none)")
                ),
                loc,
            );
        }
    }

    /// An undeclared property is ignored or refused, never a 5xx (INPUT-06).
    async fn undeclared_property(&mut self, req: &Req) {
        if let Some(x) = self.probe(req).await {
            let loc = self.location(req, Some(x.status));
            if x.status.is_server_error() {
                self.record(
                    "INPUT-06",
                    "probe.undeclared-5xx",
                    Outcome::Fail,
                    format!("an undeclared property caused {}", x.status),
                    loc,
                );
            } else if x.text().contains("portcullis_audit_undeclared") && x.status.is_success() {
                self.record(
                    "INPUT-06",
                    "probe.undeclared-echoed",
                    Outcome::Fail,
                    "an undeclared property went through to the answer",
                    loc,
                );
            } else {
                self.record(
                    "INPUT-06",
                    "probe.undeclared-ignored",
                    Outcome::Pass,
                    format!(
                        "an undeclared property was ignored or refused ({})",
                        x.status
                    ),
                    loc,
                );
            }
        }
    }

    /// An oversized body must get a 4xx. A server may instead close the
    /// connection before the body is all sent: that answer is lost, and a
    /// lost answer is never counted as a refusal (`send` tries three times,
    /// so the 4xx usually arrives).
    async fn oversized(&mut self, id: &'static str, req: &Req) {
        match self.send(req).await {
            Ok(x) if x.status.is_client_error() => {
                let loc = self.location(req, Some(x.status));
                self.record(
                    id,
                    "probe.bad-input-refused",
                    Outcome::Pass,
                    format!("an oversized body (2 MiB) was refused ({})", x.status),
                    loc,
                );
            }
            Ok(x) => {
                let loc = self.location(req, Some(x.status));
                let (rule, id, message) = if x.status.is_success() {
                    (
                        "probe.bad-input-accepted",
                        id,
                        format!("an oversized body was accepted ({})", x.status),
                    )
                } else {
                    (
                        "probe.bad-input-5xx",
                        "OUTPUT-14",
                        format!("an oversized body caused {}: it must get a 4xx", x.status),
                    )
                };
                self.record(id, rule, Outcome::Fail, message, loc);
            }
            // A connection closed under the body without an answer is not
            // a refusal anyone saw: noted, never counted either way.
            Err(e) => {
                self.notes.push(format!(
                    "{} {}: no answer: {e}",
                    req.method,
                    self.url(&req.path)
                ));
            }
        }
    }

    /// DATA-03, DATA-04.
    pub(super) async fn correlation(&mut self) {
        let (method, path) = self.protected.clone();
        let token = self.target.token.clone();
        let sent = "portcullis-audit-0001";
        let names = ["x-correlation-id", "x-request-id"];
        let mut found = None;
        for name in names {
            let req = self
                .authed(
                    Req::new(method.clone(), &path),
                    true,
                    token.as_deref().map(|t| (t, "$TOKEN")),
                )
                .header(name, sent, "portcullis-audit-0001");
            let Some(x) = self.probe(&req).await else {
                return;
            };
            if x.header(name) == Some(sent) {
                found = Some((name, self.location(&req, Some(x.status))));
                break;
            }
        }
        let looked_for: Vec<&str> = match found {
            Some((name, loc)) => {
                self.record(
                    "DATA-03",
                    "probe.correlation-echoed",
                    Outcome::Pass,
                    format!("`{name}` sent by the client is echoed"),
                    loc,
                );
                vec![name]
            }
            None => {
                let loc = self.location(&Req::new(method.clone(), &path), None);
                self.record(
                    "DATA-03",
                    "probe.correlation-not-echoed",
                    Outcome::Fail,
                    "a correlation id sent as `X-Correlation-Id` or `X-Request-Id` is not echoed",
                    loc,
                );
                names.to_vec()
            }
        };
        let req = self.authed(
            Req::new(method, &path),
            true,
            token.as_deref().map(|t| (t, "$TOKEN")),
        );
        if let Some(x) = self.probe(&req).await {
            let loc = self.location(&req, Some(x.status));
            let shown = looked_for.join("` or `");
            let generated = looked_for
                .iter()
                .find_map(|n| x.header(n).filter(|v| !v.is_empty()).map(|v| (n, v)));
            match generated {
                Some((name, v)) => self.record(
                    "DATA-04",
                    "probe.correlation-generated",
                    Outcome::Pass,
                    format!("a missing `{name}` is generated ({} characters)", v.len()),
                    loc,
                ),
                None => self.record(
                    "DATA-04",
                    "probe.correlation-missing",
                    Outcome::Fail,
                    format!("no `{shown}` is generated when the client sends none"),
                    loc,
                ),
            }
        }
    }

    /// INPUT-08: a bounded burst finds a 429 with `Retry-After`. No 429
    /// proves nothing (the limit may be higher): no finding then.
    pub(super) async fn throttling(&mut self) {
        let (method, path) = self.protected.clone();
        let token = self.target.token.clone();
        let req = self.authed(
            Req::new(method, &path),
            true,
            token.as_deref().map(|t| (t, "$TOKEN")),
        );
        for _ in 0..self.target.burst.min(MAX_BURST) {
            let Ok(x) = self.send(&req).await else { return };
            if x.status == StatusCode::TOO_MANY_REQUESTS {
                let loc = self.location(&req, Some(x.status));
                if x.header("retry-after").is_some() {
                    self.record(
                        "INPUT-08",
                        "probe.429-retry-after",
                        Outcome::Pass,
                        "a burst got 429 with `Retry-After`",
                        loc,
                    );
                } else {
                    self.record(
                        "INPUT-08",
                        "probe.429-without-retry-after",
                        Outcome::Fail,
                        "a burst got 429 without `Retry-After`",
                        loc,
                    );
                }
                return;
            }
        }
        let burst = self.target.burst.min(MAX_BURST);
        if burst > 0 {
            let loc = self.location(&req, None);
            self.record(
                "INPUT-08",
                "probe.no-429-in-burst",
                Outcome::Partial,
                format!("{burst} requests at up to {MAX_RATE} a second got no 429: no limit at or below that rate (a larger --burst looks further)"),
                loc,
            );
        }
    }
}
