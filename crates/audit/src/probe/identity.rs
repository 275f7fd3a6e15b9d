//! The identity matrix: valid credentials first, then missing, invalid,
//! forged and tampered ones, a key in the query, a token without the
//! needed scope, an impostor certificate.

use super::{
    Engine, Evidence, Finding, Location, Method, Outcome, Presented, Prober, Req, StatusCode,
    URL_SAFE_NO_PAD,
};

/// A JWT with its header and payload replaced (signature kept or dropped).
pub(super) fn forge(
    token: &str,
    header: Option<&serde_json::Value>,
    edit: impl FnOnce(&mut serde_json::Value),
    signature: Option<&str>,
) -> Option<String> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    edit(&mut payload);
    let h = header.map_or_else(|| h.to_owned(), |h| URL_SAFE_NO_PAD.encode(h.to_string()));
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    Some(format!("{h}.{p}.{}", signature.unwrap_or(s)))
}

/// Longest lifetime (`exp` − `iat`) an access token may have unremarked.
pub(super) const MAX_TOKEN_LIFETIME: i64 = 24 * 3600;

/// What the token the user gave says about how the API issues tokens: its
/// algorithm (AUTHN-08: `none` and shared-secret HS* fail), its claims
/// (AUTHN-01: `iss`, `aud`, `exp` present) and its lifetime. An opaque
/// token (not a JWT) says nothing: no finding.
pub(super) fn judge_token(token: &str) -> Vec<(&'static str, &'static str, Outcome, String)> {
    let mut parts = token.split('.');
    let decode = |p: Option<&str>| -> Option<serde_json::Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p?.trim_end_matches('=')).ok()?).ok()
    };
    let (Some(header), Some(claims)) = (decode(parts.next()), decode(parts.next())) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let alg = header["alg"].as_str().unwrap_or("(none given)");
    found.push(match alg {
        "none" | "(none given)" => ("AUTHN-08", "probe.token-unsigned", Outcome::Fail, format!("the token given is not signed (`alg: {alg}`)")),
        a if a.starts_with("HS") => ("AUTHN-08", "probe.token-symmetric", Outcome::Fail, format!("the token given is signed with a shared secret (`{a}`): every party that can verify it can also mint it; use an asymmetric algorithm (ES256, EdDSA, PS256)")),
        a => ("AUTHN-08", "probe.token-asymmetric", Outcome::Pass, format!("the token given is signed with an asymmetric algorithm (`{a}`)")),
    });
    let missing: Vec<&str> = ["iss", "aud", "exp"]
        .into_iter()
        .filter(|c| claims.get(*c).is_none_or(serde_json::Value::is_null))
        .collect();
    if missing.is_empty() {
        found.push((
            "AUTHN-01",
            "probe.token-claims",
            Outcome::Pass,
            "the token given carries `iss`, `aud` and `exp`".to_owned(),
        ));
    } else {
        found.push(("AUTHN-01", "probe.token-claims-missing", Outcome::Fail, format!("the token given lacks {}: the API cannot bind it to an issuer, an audience and an end", missing.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "))));
    }
    if let (Some(exp), Some(iat)) = (claims["exp"].as_i64(), claims["iat"].as_i64())
        && exp - iat > MAX_TOKEN_LIFETIME
    {
        found.push((
            "AUTHN-01",
            "probe.token-long-lived",
            Outcome::Partial,
            format!(
                "the token given lives {} hours: access tokens should live minutes to hours",
                (exp - iat) / 3600
            ),
        ));
    }
    found
}

impl Prober {
    /// AUTHN-14, AUTHZ-08, AUTHN-13, AUTHN-04, AUTHN-06.
    pub(super) async fn identity(&mut self) {
        if !self.protected_known {
            self.notes.push("no protected operation known (give --operation, --config or --spec): the identity matrix (AUTHN-02/06/13/14, AUTHZ-08) was not run; `GET /` is not assumed to be protected".to_owned());
            return;
        }
        let (method, path) = self.protected.clone();
        let token = self.target.token.clone();
        let base = Req::new(method.clone(), &path);
        // Valid credentials first: the matrix means something only if they work.
        let valid = self.authed(base.clone(), true, token.as_deref().map(|t| (t, "$TOKEN")));
        let Some(ok) = self.probe(&valid).await else {
            return;
        };
        if !ok.status.is_success() {
            let loc = self.location(&valid, Some(ok.status));
            self.record("AUTHN-14", "probe.valid-credentials-refused", Outcome::Partial, format!("valid credentials got {}: the identity matrix is inconclusive (check --token, --api-key, --operation)", ok.status), loc);
            return;
        }
        // The token the API accepted is judged itself.
        if let Some(t) = &token {
            let loc = self.location(&valid, Some(ok.status));
            for (id, rule, outcome, message) in judge_token(t) {
                self.record(id, rule, outcome, message, loc.clone());
            }
        }
        let cases = self.bad_credential_cases(&base, token.as_deref());
        self.judge_bad_credentials(cases, &base, token.is_some())
            .await;
        if self.target.client_cert.is_some() && self.tls.is_some() {
            let req = self
                .authed(base.clone(), false, token.as_deref().map(|t| (t, "$TOKEN")))
                .presenting(Presented::Impostor);
            self.impostor(&req).await;
        }
        self.key_in_query(&method, &path, token.as_deref()).await;
        self.missing_scope().await;
    }

    /// The bad credentials the identity matrix sends: `(what, request,
    /// whether a Bearer challenge is due)`.
    fn bad_credential_cases(
        &self,
        base: &Req,
        token: Option<&str>,
    ) -> Vec<(&'static str, Req, bool)> {
        let mut cases: Vec<(&'static str, Req, bool)> =
            vec![("no credentials", base.clone(), false)];
        if self.target.client_cert.is_some() {
            cases.push((
                "no API key or client certificate",
                self.authed(base.clone(), false, token.map(|t| (t, "$TOKEN"))),
                false,
            ));
        } else if self.target.api_key.is_some() {
            cases.push((
                "no API key",
                self.authed(base.clone(), false, token.map(|t| (t, "$TOKEN"))),
                false,
            ));
        }
        if self.target.api_key.is_some() {
            cases.push((
                "an invalid API key",
                self.authed(base.clone(), false, token.map(|t| (t, "$TOKEN")))
                    .header(
                        &self.target.api_key_header.clone(),
                        "pcsk_invalid_0000",
                        "pcsk_invalid_0000",
                    ),
                false,
            ));
        }
        if let Some(t) = token {
            let none_header = serde_json::json!({ "alg": "none", "typ": "JWT" });
            let far = |p: &mut serde_json::Value| p["exp"] = serde_json::json!(4_102_444_800_i64);
            cases.push((
                "a malformed token",
                self.authed(base.clone(), true, Some(("not.a.token", "not.a.token"))),
                true,
            ));
            if let Some(forged) = forge(t, Some(&none_header), |_| {}, Some("")) {
                cases.push((
                    "`alg: none`",
                    self.authed(base.clone(), true, Some((&forged, "$ALG_NONE_TOKEN"))),
                    true,
                ));
            }
            if let Some(forged) = forge(t, None, |_| {}, Some("AAAA")) {
                cases.push((
                    "a tampered signature",
                    self.authed(base.clone(), true, Some((&forged, "$TAMPERED_TOKEN"))),
                    true,
                ));
            }
            if let Some(forged) = forge(t, None, far, None) {
                cases.push((
                    "a tampered `exp`",
                    self.authed(base.clone(), true, Some((&forged, "$TAMPERED_EXP_TOKEN"))),
                    true,
                ));
            }
        }
        cases
    }

    /// Sends each bad-credential case and judges the answer: refused with
    /// 401 (and a Bearer challenge where due), or a finding.
    async fn judge_bad_credentials(
        &mut self,
        cases: Vec<(&'static str, Req, bool)>,
        base: &Req,
        had_token: bool,
    ) {
        let (method, path) = (&base.method, &base.path);
        let mut refused_401 = 0;
        for (what, req, bearer) in cases {
            let Some(x) = self.probe(&req).await else {
                continue;
            };
            let loc = self.location(&req, Some(x.status));
            if x.status.is_success() {
                let (id, critical) = match what {
                    "`alg: none`" | "a tampered signature" | "a tampered `exp`" => {
                        ("AUTHN-13", true)
                    }
                    "no credentials" => ("AUTHN-06", *method != Method::GET),
                    _ => ("AUTHN-02", false),
                };
                let mut f = Finding::new(
                    id,
                    "probe.accepted-bad-credentials",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!(
                        "{method} {path} with {what} answered {}: it must be refused",
                        x.status
                    ),
                    loc,
                );
                if critical {
                    f = f.critical();
                }
                // An unsigned or tampered token accepted: the tokens are
                // not signed JWTs in any sense that matters (AUTHN-08 too).
                if id == "AUTHN-13" {
                    let mut also = f.clone();
                    also.id = "AUTHN-08";
                    self.findings.push(also);
                }
                self.findings.push(f);
            } else if x.status == StatusCode::UNAUTHORIZED {
                refused_401 += 1;
                if bearer
                    && x.header("www-authenticate")
                        .is_none_or(|h| !h.to_ascii_lowercase().starts_with("bearer"))
                {
                    self.record(
                        "AUTHN-14",
                        "probe.401-without-challenge",
                        Outcome::Partial,
                        format!("401 for {what} without `WWW-Authenticate: Bearer …`"),
                        loc,
                    );
                }
            } else {
                let rule = if x.status == StatusCode::FORBIDDEN {
                    "probe.403-for-authentication"
                } else {
                    "probe.authentication-not-401"
                };
                self.record(
                    "AUTHN-14",
                    rule,
                    Outcome::Fail,
                    format!("{what} got {} instead of 401", x.status),
                    loc,
                );
            }
        }
        if refused_401 > 0
            && !self
                .findings
                .iter()
                .any(|f| f.id == "AUTHN-14" && f.outcome == Outcome::Fail)
        {
            let loc = self.location(base, Some(StatusCode::UNAUTHORIZED));
            self.record(
                "AUTHN-14",
                "probe.401",
                Outcome::Pass,
                format!("{refused_401} kinds of bad credentials answered 401"),
                loc.clone(),
            );
            // A pass only for what was tried: forged tokens need --token,
            // bad credentials a token or a key; no credentials always ran.
            let tried = [
                ("AUTHN-13", had_token),
                ("AUTHN-02", had_token || self.target.api_key.is_some()),
                ("AUTHN-06", true),
            ];
            for id in tried.into_iter().filter(|t| t.1).map(|t| t.0) {
                if !self.findings.iter().any(|f| f.id == id) {
                    self.record(
                        id,
                        "probe.bad-credentials-refused",
                        Outcome::Pass,
                        "forged, tampered and missing credentials are refused",
                        loc.clone(),
                    );
                }
            }
        }
    }

    /// The API key only in the query string: never accepted (AUTHN-04).
    async fn key_in_query(&mut self, method: &Method, path: &str, token: Option<&str>) {
        if let Some(k) = self.target.api_key.clone() {
            let sep = if path.contains('?') { '&' } else { '?' };
            let req = self.authed(
                Req::new(method.clone(), &format!("{path}{sep}api_key={k}")),
                false,
                token.map(|t| (t, "$TOKEN")),
            );
            let shown = Req {
                path: format!("{path}{sep}api_key=$API_KEY"),
                ..req.clone()
            };
            if let Ok(x) = self.send(&req).await {
                let loc = self.location(&shown, Some(x.status));
                if x.status.is_success() {
                    self.record(
                        "AUTHN-04",
                        "probe.key-in-query-accepted",
                        Outcome::Fail,
                        "an API key in the query string was accepted: keys in URLs end up in logs",
                        loc,
                    );
                } else {
                    self.record(
                        "AUTHN-04",
                        "probe.key-in-query-refused",
                        Outcome::Pass,
                        format!("an API key in the query string is refused ({})", x.status),
                        loc,
                    );
                }
            }
        }
    }

    /// A valid token without the scope the operation needs: 403 (AUTHZ-08).
    async fn missing_scope(&mut self) {
        if let (Some((m, p)), Some(t)) = (
            self.target.scoped.clone(),
            self.target.token_without_scope.clone(),
        ) {
            let req = self
                .authed(
                    Req::new(m.clone(), &p),
                    true,
                    Some((&t, "$TOKEN_WITHOUT_SCOPE")),
                )
                .body("application/json", self.body_for(&m, &p));
            if let Some(x) = self.probe(&req).await {
                let loc = self.location(&req, Some(x.status));
                match x.status {
                    StatusCode::FORBIDDEN => {
                        self.record(
                            "AUTHZ-08",
                            "probe.403",
                            Outcome::Pass,
                            "a valid token without the needed scope got 403",
                            loc.clone(),
                        );
                        self.record(
                            "AUTHZ-02",
                            "probe.scope-enforced",
                            Outcome::Pass,
                            "scopes are enforced per operation",
                            loc,
                        );
                    }
                    s if s.is_success() => {
                        let f = Finding::new(
                            "AUTHZ-02",
                            "probe.scope-ignored",
                            Outcome::Fail,
                            Evidence::Observed,
                            format!("{m} {p} succeeded with a token lacking its scope"),
                            loc,
                        );
                        self.findings.push(f.critical());
                    }
                    s => self.record(
                        "AUTHZ-08",
                        "probe.authorization-not-403",
                        Outcome::Fail,
                        format!("a valid token without the needed scope got {s} instead of 403"),
                        loc,
                    ),
                }
            }
        }
    }

    /// AUTHN-06: the write named by `--scoped-operation`, sent with no
    /// credentials at all (and a body the document would accept), must be
    /// refused; a success is an unauthenticated write.
    pub(super) async fn unauthenticated_write(&mut self) {
        let Some((m, p)) = self.target.scoped.clone() else {
            return;
        };
        let req = Req::new(m.clone(), &p).body("application/json", self.body_for(&m, &p));
        let Some(x) = self.probe(&req).await else {
            return;
        };
        let loc = self.location(&req, Some(x.status));
        if x.status.is_success() {
            self.findings.push(
                Finding::new(
                    "AUTHN-06",
                    "probe.unauthenticated-write",
                    Outcome::Fail,
                    Evidence::Observed,
                    format!(
                        "{m} {p} answered {} with no credentials at all: anyone can write",
                        x.status
                    ),
                    loc,
                )
                .critical(),
            );
        }
    }

    /// AUTHN-11: a self-signed certificate bearing the names of the one
    /// given must identify nobody, whether refused at the handshake or
    /// answered with an error.
    async fn impostor(&mut self, req: &Req) {
        let host = self.base.host().unwrap_or("localhost");
        let unreachable = format!("{host}:{}:", self.base.port_u16().unwrap_or(443));
        match self.send(req).await {
            Ok(x) => {
                let loc = self.location(req, Some(x.status));
                self.seen.push((loc.clone(), x.clone()));
                if x.status.is_success() {
                    self.findings.push(
                        Finding::new(
                            "AUTHN-11",
                            "probe.impostor-certificate-accepted",
                            Outcome::Fail,
                            Evidence::Observed,
                            format!(
                                "a self-signed client certificate with the names of --cert was accepted ({}): anyone can claim that identity",
                                x.status
                            ),
                            loc,
                        )
                        .critical(),
                    );
                } else {
                    self.record(
                        "AUTHN-11",
                        "probe.impostor-certificate-refused",
                        Outcome::Pass,
                        format!(
                            "a self-signed client certificate with the names of --cert was refused ({})",
                            x.status
                        ),
                        loc,
                    );
                }
            }
            Err(e) if e.starts_with("no answer") || e.starts_with(&unreachable) => {
                let url = self.url(&req.path);
                self.notes
                    .push(format!("{} {url}: no answer: {e}", req.method));
            }
            Err(e) => {
                // Refused at the handshake: the TLS outcome is the answer.
                let mut loc = self.location(req, None);
                if let Location::Probe { method, .. } = &mut loc {
                    "TLS".clone_into(method);
                }
                self.record(
                    "AUTHN-11",
                    "probe.impostor-certificate-refused",
                    Outcome::Pass,
                    format!("a self-signed client certificate with the names of --cert was refused during the TLS handshake ({e})"),
                    loc,
                );
            }
        }
    }
}
