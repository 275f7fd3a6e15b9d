//! Static checks of an OpenAPI 3.0/3.1 document. Every finding points into
//! the document (JSON pointer and line); evidence level "documented".

use crate::lines::LineIndex;
use crate::model::{Evidence, Finding, Location, Outcome};
use serde_json::Value;
use std::collections::BTreeSet;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const WRITES: [&str; 4] = ["put", "post", "delete", "patch"];

/// Words that mark a parameter or property as sensitive (DATA-01, OUTPUT-13).
const SENSITIVE: [&str; 16] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "ssn",
    "cvv",
    "cvc",
    "pin",
    "iban",
    "card",
    "creditcard",
    "pan",
    "email",
    "dob",
    "birthdate",
];

pub struct Spec<'a> {
    file: &'a str,
    root: &'a Value,
    lines: LineIndex,
    findings: Vec<Finding>,
}

/// Parses `text` (YAML or JSON); the error says why it is not a document.
pub fn parse(text: &str) -> Result<Value, String> {
    let root: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    } else {
        yaml_serde::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?
    };
    match root.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0.") || v.starts_with("3.1.") => Ok(root),
        Some(v) => Err(format!("OpenAPI {v} is not supported: 3.0.x or 3.1.x")),
        None => Err("no `openapi: 3.x` field: not an OpenAPI 3 document".into()),
    }
}

mod parity;

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Splits `fooBar_baz-qux` into lower-case words.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn sensitive(name: &str) -> bool {
    let w = words(name);
    let joined: String = w.concat();
    w.iter().any(|w| SENSITIVE.contains(&w.as_str()))
        || ["apikey", "creditcard", "cardnumber", "accesstoken"]
            .iter()
            .any(|s| joined.contains(s))
}

/// Follows a local `$ref` (bounded).
fn deref<'v>(root: &'v Value, mut v: &'v Value) -> &'v Value {
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let Some(p) = r.strip_prefix('#') else {
            return v;
        };
        match root.pointer(p) {
            Some(t) => v = t,
            None => return v,
        }
    }
    v
}

/// One operation of the document.
struct Op<'a> {
    pointer: String,
    method: &'a str,
    path: &'a str,
    value: &'a Value,
    path_item: &'a Value,
}

impl<'a> Spec<'a> {
    pub fn new(file: &'a str, text: &str, root: &'a Value) -> Self {
        Self {
            file,
            root,
            lines: LineIndex::new(text),
            findings: Vec::new(),
        }
    }

    fn at(&self, pointer: &str) -> Location {
        Location::Spec {
            file: self.file.to_owned(),
            pointer: pointer.to_owned(),
            line: self.lines.line(pointer),
        }
    }

    fn push(
        &mut self,
        id: &'static str,
        rule: &'static str,
        outcome: Outcome,
        pointer: &str,
        message: String,
    ) {
        let location = self.at(pointer);
        self.findings.push(Finding::new(
            id,
            rule,
            outcome,
            Evidence::Documented,
            message,
            location,
        ));
    }

    fn fail(&mut self, id: &'static str, rule: &'static str, pointer: &str, message: String) {
        self.push(id, rule, Outcome::Fail, pointer, message);
    }

    /// One pass finding for `id` when no finding of it was made.
    fn pass_unless_found(&mut self, id: &'static str, rule: &'static str, message: &str) {
        if !self.findings.iter().any(|f| f.id == id) {
            self.push(id, rule, Outcome::Pass, "", message.to_owned());
        }
    }

    fn operations(&self) -> Vec<Op<'a>> {
        let mut ops = Vec::new();
        let Some(paths) = self.root.get("paths").and_then(Value::as_object) else {
            return ops;
        };
        for (path, item) in paths {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    ops.push(Op {
                        pointer: format!("/paths/{}/{m}", escape(path)),
                        method: m,
                        path,
                        value: op,
                        path_item: item,
                    });
                }
            }
        }
        ops
    }

    fn schemes(&self) -> serde_json::Map<String, Value> {
        self.root
            .pointer("/components/securitySchemes")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), deref(self.root, v).clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs every check; the findings.
    pub fn run(mut self) -> Vec<Finding> {
        let ops = self.operations();
        let schemes = self.schemes();
        self.security(&ops, &schemes);
        self.schemes_allowed(&schemes);
        self.parameters(&ops);
        self.bodies(&ops);
        self.responses(&ops);
        self.schemas();
        self.servers();
        self.parity(&ops);
        self.findings
    }

    /// AUTHN-06, AUTHZ-02, AUTHZ-10, AUTHZ-11.
    fn security(&mut self, ops: &[Op<'_>], schemes: &serde_json::Map<String, Value>) {
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
                Some(reqs) => {
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
                                format!("security scheme `{name}` is not defined in components.securitySchemes"),
                            );
                        }
                    }
                }
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
        // Scope claims constrain activities: writes need scopes reads do not have.
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
    fn schemes_allowed(&mut self, schemes: &serde_json::Map<String, Value>) {
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

    /// DATA-01, DATA-03, INPUT-09.
    fn parameters(&mut self, ops: &[Op<'_>]) {
        let mut correlation = false;
        for op in ops {
            let params: Vec<(String, &Value)> = [
                (
                    op.path_item,
                    op.pointer.rsplit_once('/').map_or("", |p| p.0).to_owned(),
                ),
                (op.value, op.pointer.clone()),
            ]
            .iter()
            .flat_map(|(holder, base)| {
                holder
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(move |(i, p)| (format!("{base}/parameters/{i}"), p))
            })
            .collect();
            for (pointer, p) in params {
                let p = deref(self.root, p);
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                let place = p.get("in").and_then(Value::as_str).unwrap_or("");
                if matches!(place, "path" | "query") && sensitive(name) {
                    self.fail(
                        "DATA-01",
                        "spec.sensitive-in-url",
                        &pointer,
                        format!("{} parameter `{name}` of {} {} carries sensitive data in the URL, where logs and caches keep it: move it to the body or a header", place, op.method.to_uppercase(), op.path),
                    );
                }
                if place == "header" {
                    if name.to_ascii_lowercase().contains("correlation")
                        || name.eq_ignore_ascii_case("x-request-id")
                    {
                        correlation = true;
                    }
                    if p.get("schema").is_none() && p.get("content").is_none() {
                        self.fail(
                            "INPUT-09",
                            "spec.header-without-schema",
                            &pointer,
                            format!("header `{name}` has no schema to validate it against"),
                        );
                    }
                }
            }
        }
        if !ops.is_empty() {
            self.pass_unless_found(
                "DATA-01",
                "spec.no-sensitive-in-url",
                "no path or query parameter carries sensitive data",
            );
            self.pass_unless_found(
                "INPUT-09",
                "spec.headers-have-schemas",
                "every declared header has a schema",
            );
        }
        if correlation {
            self.push(
                "DATA-03",
                "spec.correlation-header",
                Outcome::Pass,
                "/paths",
                "a correlation header is declared for clients to send".into(),
            );
        }
    }

    /// INPUT-01, INPUT-04, INPUT-06, INPUT-07.
    fn bodies(&mut self, ops: &[Op<'_>]) {
        for op in ops {
            let Some(body) = op.value.get("requestBody") else {
                continue;
            };
            let body = deref(self.root, body);
            let pointer = format!("{}/requestBody", op.pointer);
            let Some(content) = body.get("content").and_then(Value::as_object) else {
                self.fail(
                    "INPUT-01",
                    "spec.body-without-media-type",
                    &pointer,
                    format!(
                        "the request body of {} {} declares no media type",
                        op.method.to_uppercase(),
                        op.path
                    ),
                );
                continue;
            };
            for (media, m) in content {
                let mp = format!("{pointer}/content/{}", escape(media));
                if media.contains('*') {
                    self.fail(
                        "INPUT-01",
                        "spec.wildcard-media-type",
                        &mp,
                        format!("`{media}` accepts any content: declare the exact media types"),
                    );
                }
                match m.get("schema") {
                    None => self.fail(
                        "INPUT-04",
                        "spec.body-without-schema",
                        &mp,
                        format!(
                            "`{media}` body of {} {} has no schema to validate it against",
                            op.method.to_uppercase(),
                            op.path
                        ),
                    ),
                    Some(schema) if media.contains("json") => {
                        let schema = schema.clone();
                        self.closed_objects(&schema, &format!("{mp}/schema"), 0);
                    }
                    Some(_) => {}
                }
            }
        }
        if !ops.is_empty() {
            for (id, rule, msg) in [
                (
                    "INPUT-01",
                    "spec.bodies-typed",
                    "every request body declares exact media types",
                ),
                (
                    "INPUT-04",
                    "spec.bodies-have-schemas",
                    "every request body has a schema",
                ),
                (
                    "INPUT-06",
                    "spec.objects-closed",
                    "request objects refuse undeclared properties",
                ),
                (
                    "INPUT-07",
                    "spec.binary-as-base64",
                    "binary data in JSON is base64 (`format: byte`)",
                ),
            ] {
                self.pass_unless_found(id, rule, msg);
            }
        }
    }

    /// INPUT-06 and INPUT-07 inside one request schema (bounded depth).
    fn closed_objects(&mut self, schema: &Value, pointer: &str, depth: usize) {
        if depth > 12 {
            return;
        }
        let (schema, pointer) = match schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
        {
            Some(r) => match self.root.pointer(r) {
                Some(s) => (s.clone(), r.to_owned()),
                None => return,
            },
            None => (schema.clone(), pointer.to_owned()),
        };
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false))
                || schema.get("unevaluatedProperties") == Some(&Value::Bool(false));
            if !closed
                && !self.findings.iter().any(|f| {
                    f.id == "INPUT-06"
                        && matches!(&f.location, Location::Spec { pointer: p, .. } if *p == pointer)
                })
            {
                self.push("INPUT-06", "spec.open-object", Outcome::Partial, &pointer, "request object accepts undeclared properties: only a gateway that strips them ignores them; add `additionalProperties: false`".into());
            }
            for (name, p) in props {
                let pp = format!("{pointer}/properties/{}", escape(name));
                if p.get("type").and_then(Value::as_str) == Some("string")
                    && p.get("format").and_then(Value::as_str) == Some("binary")
                {
                    self.fail("INPUT-07", "spec.binary-in-json", &pp, format!("`{name}` is `format: binary` inside JSON: send binary data as base64 (`format: byte`)"));
                }
                self.closed_objects(p, &pp, depth + 1);
            }
        }
        if let Some(items) = schema.get("items") {
            self.closed_objects(items, &format!("{pointer}/items"), depth + 1);
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for (i, s) in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                self.closed_objects(s, &format!("{pointer}/{key}/{i}"), depth + 1);
            }
        }
    }

    /// INPUT-08, OUTPUT-01, OUTPUT-13.
    fn responses(&mut self, ops: &[Op<'_>]) {
        let mut error_schemas = BTreeSet::new();
        let mut documented_429 = 0;
        let mut without_429 = Vec::new();
        for op in ops {
            let pointer = format!("{}/responses", op.pointer);
            let Some(responses) = op.value.get("responses").and_then(Value::as_object) else {
                continue;
            };
            let mut has_error = false;
            if !responses.contains_key("429") {
                without_429.push(pointer.clone());
            }
            for (code, r) in responses {
                let r = deref(self.root, r);
                let is_error = code.starts_with('4') || code.starts_with('5') || code == "default";
                if is_error {
                    has_error = true;
                    for (media, m) in r
                        .get("content")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        let schema = m
                            .get("schema")
                            .map(|s| s.get("$ref").cloned().unwrap_or_else(|| s.clone()));
                        error_schemas.insert(format!("{media} {}", schema.unwrap_or(Value::Null)));
                    }
                }
                if code == "429" {
                    let retry = r
                        .get("headers")
                        .and_then(Value::as_object)
                        .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("retry-after")));
                    if r.get("content").is_none() {
                        self.fail(
                            "INPUT-08",
                            "spec.429-without-body",
                            &format!("{pointer}/429"),
                            format!(
                                "the 429 of {} {} documents no body to say why and when to retry (a problem body)",
                                op.method.to_uppercase(),
                                op.path
                            ),
                        );
                    }
                    if retry {
                        documented_429 += 1;
                    } else {
                        self.fail(
                            "INPUT-08",
                            "spec.429-without-retry-after",
                            &format!("{pointer}/429"),
                            format!(
                                "the 429 of {} {} does not document `Retry-After`",
                                op.method.to_uppercase(),
                                op.path
                            ),
                        );
                    }
                }
                if code.starts_with('2') {
                    for (media, m) in r
                        .get("content")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(s) = m.get("schema") {
                            let s = s.clone();
                            self.secrets_in_response(
                                &s,
                                &format!(
                                    "{pointer}/{}/content/{}/schema",
                                    escape(code),
                                    escape(media)
                                ),
                                0,
                            );
                        }
                    }
                }
            }
            if !has_error {
                self.fail(
                    "OUTPUT-01",
                    "spec.no-error-responses",
                    &pointer,
                    format!(
                        "{} {} documents no error response",
                        op.method.to_uppercase(),
                        op.path
                    ),
                );
            }
        }
        if error_schemas.len() > 1 {
            self.push("OUTPUT-01", "spec.several-error-shapes", Outcome::Partial, "/paths", format!("error responses use {} different bodies: use one problem schema (RFC 9457 `application/problem+json`)", error_schemas.len()));
        }
        if !ops.is_empty() {
            // Every endpoint throttles: an operation without a documented
            // 429 is a failure when none has one, partial otherwise.
            let outcome = if documented_429 == 0 {
                Outcome::Fail
            } else {
                Outcome::Partial
            };
            for pointer in without_429 {
                self.push("INPUT-08", "spec.no-429", outcome, &pointer, "no 429 with `Retry-After` documented: clients cannot know they are throttled or when to retry".into());
            }
            self.pass_unless_found(
                "INPUT-08",
                "spec.429-documented",
                "throttling (429 with Retry-After) is documented",
            );
            self.pass_unless_found(
                "OUTPUT-01",
                "spec.errors-documented",
                "error responses are documented with one problem schema",
            );
            self.pass_unless_found(
                "OUTPUT-13",
                "spec.no-secrets-in-responses",
                "no response field looks like a secret without being classified",
            );
        }
    }

    /// OUTPUT-13: response properties that look like secrets, unless
    /// classified `secret` (which the gateway strips).
    fn secrets_in_response(&mut self, schema: &Value, pointer: &str, depth: usize) {
        if depth > 12 {
            return;
        }
        let schema = deref(self.root, schema).clone();
        for (name, p) in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let pp = format!("{pointer}/properties/{}", escape(name));
            let classified = deref(self.root, p)
                .get("x-classification")
                .and_then(Value::as_str);
            let w = words(name);
            if w.iter().any(|w| {
                ["password", "passwd", "secret", "cvv", "cvc", "pin"].contains(&w.as_str())
            }) && classified != Some("secret")
            {
                self.fail("OUTPUT-13", "spec.secret-in-response", &pp, format!("response field `{name}` looks like a secret: remove it, or classify it `x-classification: secret` so the gateway strips it"));
            }
            self.secrets_in_response(p, &pp, depth + 1);
        }
        if let Some(items) = schema.get("items") {
            self.secrets_in_response(items, &format!("{pointer}/items"), depth + 1);
        }
    }

    /// CONTRACT-01, CONTRACT-02 over the component schemas and parameters.
    fn schemas(&mut self) {
        let mut shapes: Vec<(String, Value)> = Vec::new();
        for (name, s) in self
            .root
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            shapes.push((format!("/components/schemas/{}", escape(name)), s.clone()));
        }
        // Inline schemas are bounded like components (their descriptions
        // belong to the parameter or the body, not the schema).
        let inline_from = shapes.len();
        for op in self.operations() {
            let base = op.pointer.clone();
            let base = base.as_str();
            for (i, p) in op
                .value
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(schema) = p.get("schema") {
                    shapes.push((format!("{base}/parameters/{i}/schema"), schema.clone()));
                }
            }
            let bodies = op
                .value
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(m, c)| {
                    (
                        format!("{base}/requestBody/content/{}/schema", escape(m)),
                        c,
                    )
                })
                .chain(
                    op.value
                        .get("responses")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .flat_map(|(code, r)| {
                            let headers = r
                                .get("headers")
                                .and_then(Value::as_object)
                                .into_iter()
                                .flatten()
                                .map(move |(h, v)| {
                                    (
                                        format!(
                                            "{base}/responses/{}/headers/{}/schema",
                                            escape(code),
                                            escape(h)
                                        ),
                                        v,
                                    )
                                });
                            r.get("content")
                                .and_then(Value::as_object)
                                .into_iter()
                                .flatten()
                                .map(move |(m, c)| {
                                    (
                                        format!(
                                            "{base}/responses/{}/content/{}/schema",
                                            escape(code),
                                            escape(m)
                                        ),
                                        c,
                                    )
                                })
                                .chain(headers)
                        }),
                )
                .filter_map(|(p, c)| c.get("schema").map(|s| (p, s.clone())))
                .collect::<Vec<_>>();
            shapes.extend(bodies);
        }
        let inline: std::collections::HashSet<String> = shapes[inline_from..]
            .iter()
            .map(|(p, _)| p.clone())
            .collect();
        let mut seen_property = false;
        let mut classified = 0;
        while let Some((pointer, s)) = shapes.pop() {
            if s.get("$ref").is_some() {
                continue;
            }
            let in_components = pointer.starts_with("/components/");
            if in_components
                && s.get("description").is_none()
                && !pointer.contains("/items")
                && !inline.contains(&pointer)
            {
                self.fail(
                    "CONTRACT-01",
                    "spec.undescribed",
                    &pointer,
                    "no description".into(),
                );
            }
            match s.get("type").and_then(Value::as_str) {
                Some("string") if s.get("enum").is_none() && s.get("const").is_none() => {
                    let bounded = s.get("maxLength").is_some();
                    let has_shape = s.get("pattern").is_some() || s.get("format").is_some();
                    if !bounded || !has_shape {
                        self.fail(
                            "CONTRACT-01",
                            "spec.unbounded-string",
                            &pointer,
                            "string without `maxLength` and a `pattern`, `format` or `enum`".into(),
                        );
                    }
                }
                Some("integer" | "number")
                    if s.get("enum").is_none()
                        && (s.get("minimum").is_none() && s.get("exclusiveMinimum").is_none()
                            || s.get("maximum").is_none()
                                && s.get("exclusiveMaximum").is_none()) =>
                {
                    self.fail(
                        "CONTRACT-01",
                        "spec.unbounded-number",
                        &pointer,
                        "number without `minimum` and `maximum`".into(),
                    );
                }
                Some("array") if s.get("maxItems").is_none() => {
                    self.fail(
                        "CONTRACT-01",
                        "spec.unbounded-array",
                        &pointer,
                        "array without `maxItems`".into(),
                    );
                }
                _ => {}
            }
            if let Some(items) = s.get("items") {
                shapes.push((format!("{pointer}/items"), items.clone()));
            }
            for (name, p) in s
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                seen_property = true;
                let pp = format!("{pointer}/properties/{}", escape(name));
                if p.get("x-classification").is_some() {
                    classified += 1;
                }
                shapes.push((pp, p.clone()));
            }
        }
        if seen_property {
            self.pass_unless_found(
                "CONTRACT-01",
                "spec.shapes-described",
                "every schema is described and bounded",
            );
            // Unlabelled properties are `internal`; what matters is that
            // personal and secret data is labelled at all.
            if classified == 0 {
                self.fail("CONTRACT-02", "spec.no-classification", "/components/schemas", "no property carries `x-classification` (public, internal, pii, secret): personal and secret data cannot be told apart".into());
            } else {
                self.push(
                    "CONTRACT-02",
                    "spec.classified",
                    Outcome::Pass,
                    "/components/schemas",
                    format!("{classified} properties carry a classification"),
                );
            }
        }
    }

    /// CONTRACT-03 (and TLS-05, documented): servers use https and say
    /// which environment they are.
    fn servers(&mut self) {
        let servers: Vec<Value> = self
            .root
            .get("servers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, s) in servers.iter().enumerate() {
            let url = s.get("url").and_then(Value::as_str).unwrap_or("");
            let pointer = format!("/servers/{i}");
            if url.starts_with("http://") {
                let mut f = Finding::new(
                    "TLS-05",
                    "spec.plaintext-server",
                    Outcome::Fail,
                    Evidence::Documented,
                    format!("server `{url}` is plain HTTP"),
                    self.at(&format!("{pointer}/url")),
                );
                f = f.critical();
                self.findings.push(f);
            }
            if s.get("x-environment").is_none() {
                self.fail("CONTRACT-03", "spec.server-environment-unmarked", &pointer, format!("server `{url}` does not say which environment it is (`x-environment: production`, `staging`, …)"));
            }
        }
        if !servers.is_empty() {
            self.pass_unless_found(
                "CONTRACT-03",
                "spec.servers-marked",
                "every server says which environment it is",
            );
        }
    }
}

/// Whether a security requirement makes an operation public on purpose:
/// `security: []`, or an empty alternative among others.
pub fn public_on_purpose(requirement: &[Value]) -> bool {
    requirement.is_empty()
        || requirement
            .iter()
            .any(|alt| alt.as_object().is_some_and(serde_json::Map::is_empty))
}

/// Whether the document declares an OAuth 2.0 or OpenID Connect scheme:
/// without one, the scope rules (AUTHZ-02, AUTHZ-11) have nothing to judge.
pub fn uses_oauth(root: &Value) -> bool {
    root.pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .is_some_and(|schemes| {
            schemes
                .values()
                .any(|s| matches!(s["type"].as_str(), Some("oauth2" | "openIdConnect")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_split_into_words() {
        assert_eq!(words("userPassword"), ["user", "password"]);
        assert_eq!(words("api_key"), ["api", "key"]);
        assert!(sensitive("apiKey") && sensitive("card_number") && sensitive("X-Auth-Token"));
        assert!(!sensitive("page") && !sensitive("spinner") && !sensitive("category"));
    }
}
