//! Security requirements in the document: every operation secured or
//! public on purpose, OAuth operations with scopes, writes with scopes of
//! their own, schemes that may be used.

use super::{
    BTreeSet, Evidence, Finding, Op, Outcome, Spec, Value, WRITES, escape, public_on_purpose,
    uses_oauth,
};

impl Spec<'_> {
    /// AUTHN-06, AUTHZ-02, AUTHZ-10, AUTHZ-11.
    pub(super) fn security(&mut self, ops: &[Op<'_>], schemes: &serde_json::Map<String, Value>) {
        let root_security = self.root.get("security");
        for op in ops {
            let security = op.value.get("security").or(root_security);
            match security.and_then(Value::as_array) {
                None => {
                    let write = WRITES.contains(&op.method);
                    let mut f = Finding::new(
                        "AUTHN-06",
                        "spec.operation-unsecured",
                        Outcome::Fail,
                        Evidence::Documented,
                        format!(
                            "{} {} declares no security requirement: declare one, or `security: []` to make it public on purpose",
                            op.method.to_uppercase(),
                            op.path
                        ),
                        self.at(&op.pointer),
                    );
                    if write {
                        f = f.critical();
                    }
                    self.findings.push(f);
                }
                Some(reqs) if public_on_purpose(reqs) => {
                    // Public on purpose: not a failure, but not "all
                    // endpoints authenticated" either (as `check` says of
                    // public routes).
                    let (rule, what) = if WRITES.contains(&op.method) {
                        (
                            "spec.public-write",
                            "is explicitly public although it changes data",
                        )
                    } else {
                        ("spec.public-read", "is explicitly public (`security: []`)")
                    };
                    self.push(
                        "AUTHN-06",
                        rule,
                        Outcome::Partial,
                        &op.pointer,
                        format!("{} {} {what}", op.method.to_uppercase(), op.path),
                    );
                }
                Some(reqs) => self.requirements(op, reqs, schemes),
            }
        }
        self.pass_unless_found(
            "AUTHN-06",
            "spec.operations-secured",
            "every operation is secured or explicitly public",
        );
        // Nothing to judge without an OAuth operation: no pass (the ID is
        // n/a then, see `uses_oauth`).
        if uses_oauth(self.root) {
            self.pass_unless_found(
                "AUTHZ-02",
                "spec.scopes-per-operation",
                "every OAuth-protected operation lists its scopes",
            );
        }
        self.scopes_per_activity(ops, root_security);
    }

    /// One operation's security requirements: OAuth ones list scopes
    /// (AUTHZ-02), every scheme named is defined (AUTHN-06).
    fn requirements(
        &mut self,
        op: &Op<'_>,
        reqs: &[Value],
        schemes: &serde_json::Map<String, Value>,
    ) {
        let scoped = reqs.iter().filter_map(Value::as_object).all(|r| {
            r.iter().all(|(name, scopes)| {
                let kind = schemes
                    .get(name)
                    .and_then(|s| s.get("type"))
                    .and_then(Value::as_str);
                !matches!(kind, Some("oauth2" | "openIdConnect"))
                    || scopes.as_array().is_some_and(|s| !s.is_empty())
            })
        });
        if !scoped {
            self.fail(
                "AUTHZ-02",
                "spec.operation-without-scopes",
                &format!("{}/security", op.pointer),
                format!(
                    "{} {} requires an OAuth token but no scope: list the scopes it needs",
                    op.method.to_uppercase(),
                    op.path
                ),
            );
        }
        for (name, _) in reqs.iter().filter_map(Value::as_object).flatten() {
            if !schemes.contains_key(name) {
                self.fail(
                    "AUTHN-06",
                    "spec.undefined-security-scheme",
                    &format!("{}/security", op.pointer),
                    format!(
                        "security scheme `{name}` is not defined in components.securitySchemes"
                    ),
                );
            }
        }
    }

    /// AUTHZ-11: scope claims constrain activities: writes need scopes
    /// reads do not have.
    fn scopes_per_activity(&mut self, ops: &[Op<'_>], root_security: Option<&Value>) {
        let scope_sets = |want_write: bool| -> BTreeSet<String> {
            ops.iter()
                .filter(|o| WRITES.contains(&o.method) == want_write)
                .filter_map(|o| {
                    o.value
                        .get("security")
                        .or(root_security)
                        .and_then(Value::as_array)
                })
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|r| r.values())
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let (reads, writes) = (scope_sets(false), scope_sets(true));
        if !writes.is_empty() && writes.is_subset(&reads) {
            self.push(
                "AUTHZ-11",
                "spec.write-scopes-equal-read",
                Outcome::Partial,
                "/paths",
                "every scope that allows a write also allows reads: give changes scopes of their own".into(),
            );
        } else if !writes.is_empty() {
            self.push(
                "AUTHZ-11",
                "spec.write-scopes",
                Outcome::Pass,
                "/paths",
                "writes need scopes of their own".into(),
            );
        }
    }

    /// AUTHN-04, AUTHN-07.
    pub(super) fn schemes_allowed(&mut self, schemes: &serde_json::Map<String, Value>) {
        for (name, s) in schemes {
            let pointer = format!("/components/securitySchemes/{}", escape(name));
            let kind = s.get("type").and_then(Value::as_str).unwrap_or("");
            match kind {
                "apiKey" => match s.get("in").and_then(Value::as_str) {
                    Some("header") => {}
                    other => self.fail(
                        "AUTHN-04",
                        "spec.api-key-not-in-header",
                        &format!("{pointer}/in"),
                        format!("API key `{name}` travels in the {}: send it in a header, where it stays out of logs and caches", other.unwrap_or("?")),
                    ),
                },
                "http" => {
                    let scheme = s.get("scheme").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
                    if scheme != "bearer" {
                        self.fail(
                            "AUTHN-07",
                            "spec.http-auth-not-bearer",
                            &format!("{pointer}/scheme"),
                            format!("`{name}` is HTTP `{scheme}` authentication: use OAuth 2.0 bearer tokens"),
                        );
                    }
                }
                "oauth2" => {
                    for flow in ["implicit", "password"] {
                        if s.pointer(&format!("/flows/{flow}")).is_some() {
                            self.fail(
                                "AUTHN-07",
                                "spec.oauth-flow-deprecated",
                                &format!("{pointer}/flows/{flow}"),
                                format!("`{name}` offers the OAuth 2.0 {flow} flow, which OAuth 2.0 Security BCP forbids: use authorization code with PKCE or client credentials"),
                            );
                        }
                    }
                }
                "openIdConnect" | "mutualTLS" => {}
                other => self.fail(
                    "AUTHN-07",
                    "spec.unknown-auth",
                    &pointer,
                    format!("`{name}` is of type `{other}`: not OAuth 2.0, OpenID Connect, mutual TLS or a header API key"),
                ),
            }
        }
        // Every calling application sends an API key: a document that
        // declares none fails, it does not pass "where used".
        if !schemes.values().any(|s| s["type"] == "apiKey") {
            self.fail(
                "AUTHN-04",
                "spec.no-api-key",
                "/components/securitySchemes",
                "no security scheme is an API key: nothing identifies the calling application; declare an `apiKey` scheme in a header and require it".to_owned(),
            );
        }
        if !schemes.is_empty() {
            self.pass_unless_found(
                "AUTHN-04",
                "spec.api-keys-in-headers",
                "API keys are declared and travel in headers",
            );
            self.pass_unless_found(
                "AUTHN-07",
                "spec.oauth2-only",
                "authentication is OAuth 2.0 / OpenID Connect / mutual TLS",
            );
        }
    }
}
