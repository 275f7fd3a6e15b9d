//! Responses in the document: errors documented in one shape, 429 with
//! a body and `Retry-After`, no secrets in success bodies.

use super::{BTreeSet, Op, Outcome, Spec, Value, deref, escape, words};

impl Spec<'_> {
    /// INPUT-08, OUTPUT-01, OUTPUT-13.
    pub(super) fn responses(&mut self, ops: &[Op<'_>]) {
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
                if code == "429" && self.judge_429(op, &pointer, r) {
                    documented_429 += 1;
                }
                if code.starts_with('2') {
                    self.success_bodies(&pointer, code, r);
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

    /// A documented 429 has a body and `Retry-After` (INPUT-08); returns
    /// whether it documents `Retry-After`.
    fn judge_429(&mut self, op: &Op<'_>, pointer: &str, r: &Value) -> bool {
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
        if !retry {
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
        retry
    }

    /// OUTPUT-13 over the bodies of one success response.
    fn success_bodies(&mut self, pointer: &str, code: &str, r: &Value) {
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
}
