//! The document checks Spectral's OWASP ruleset makes that bear on a
//! checklist ID, made here too so `audit` finds at least what Spectral
//! finds (compared on a corpus by `scripts/audit-vs-spectral.sh`). Each is
//! a partial: the document leaves something undeclared that a client or a
//! reviewer needs, not a hole by itself.

use super::{Op, Spec, escape};
use crate::model::Outcome;
use serde_json::Value;

/// Header sets that declare a rate limit (IETF RateLimit draft and the
/// common vendor forms).
const RATE_LIMIT_HEADERS: [&[&str]; 4] = [
    &["RateLimit"],
    &["RateLimit-Limit", "RateLimit-Reset"],
    &["X-RateLimit-Limit"],
    &["X-Rate-Limit-Limit"],
];

/// Every object of the document with its JSON pointer, depth first.
fn walk<'v>(value: &'v Value, pointer: &str, out: &mut Vec<(String, &'v Value)>) {
    match value {
        Value::Object(map) => {
            out.push((pointer.to_owned(), value));
            for (k, v) in map {
                walk(v, &format!("{pointer}/{}", escape(k)), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

impl Spec<'_> {
    /// A local `$ref` followed (once): what the reference names.
    fn resolved<'v>(&'v self, value: &'v Value) -> &'v Value {
        value
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| self.root.pointer(p))
            .unwrap_or(value)
    }

    pub(super) fn parity(&mut self, ops: &[Op<'_>]) {
        let mut objects = Vec::new();
        walk(self.root, "", &mut objects);
        self.objects_parity(&objects);
        for op in ops {
            self.numeric_ids(op);
            let responses_at = format!("{}/responses", op.pointer);
            let Some(codes) = op.value["responses"].as_object() else {
                continue;
            };
            self.error_responses(op, codes, &responses_at);
            self.rate_limit_headers(op, codes, &responses_at);
        }
        self.schemes_parity();
        self.servers_parity();
    }

    /// Integers with a `format` (CONTRACT-01); header sets that say who may
    /// read the answer in a browser (OUTPUT-11).
    fn objects_parity(&mut self, objects: &[(String, &Value)]) {
        for (pointer, value) in objects {
            // Integers with no `format` are unbounded to a client (CONTRACT-01).
            let integer = value["type"] == "integer"
                || value["type"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "integer"));
            if integer && value.get("format").is_none() {
                self.push(
                    "CONTRACT-01",
                    "spec.integer-without-format",
                    Outcome::Partial,
                    pointer,
                    "an integer without `format` (int32 or int64): its range is unstated".into(),
                );
            }
        }
        // Every declared header set says who may read the answer in a
        // browser (OUTPUT-11).
        for (pointer, value) in objects {
            if pointer.ends_with("/headers")
                && value.as_object().is_some_and(|h| {
                    !h.keys()
                        .any(|k| k.eq_ignore_ascii_case("Access-Control-Allow-Origin"))
                })
            {
                self.push(
                    "OUTPUT-11",
                    "spec.cors-origin-undeclared",
                    Outcome::Partial,
                    pointer,
                    "a response declares headers but no `Access-Control-Allow-Origin`: which origins may read it is unstated".into(),
                );
            }
        }
    }

    /// Identifiers a caller can count through (AUTHZ-03, API1).
    fn numeric_ids(&mut self, op: &Op<'_>) {
        let item_params = op.path_item["parameters"].as_array();
        let op_params = op.value["parameters"].as_array();
        let path_pointer = op.pointer.rsplit_once('/').map_or("", |p| p.0).to_owned();
        let params = item_params
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| (format!("{path_pointer}/parameters/{i}"), p))
            .chain(
                op_params
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, p)| (format!("{}/parameters/{i}", op.pointer), p)),
            );
        for (at, p) in params {
            let name = p["name"].as_str().unwrap_or("");
            let id_like = name == "id"
                || name.ends_with("_id")
                || name.ends_with("Id")
                || name.ends_with("-id");
            if id_like && p["schema"]["type"] == "integer" {
                self.push(
                    "AUTHZ-03",
                    "spec.numeric-id",
                    Outcome::Partial,
                    &format!("{at}/schema"),
                    format!("`{name}` is a sequential integer: a caller can walk other objects by counting; use random identifiers (UUIDs) and authorize each object"),
                );
            }
        }
    }

    /// 401, 500 and validation errors declared, or a `default` answer.
    fn error_responses(
        &mut self,
        op: &Op<'_>,
        codes: &serde_json::Map<String, Value>,
        responses_at: &str,
    ) {
        let declares = |code: &str| {
            codes
                .get(code)
                .is_some_and(|r| self.resolved(r).get("content").is_some())
        };
        let (has_401, has_500, has_default) =
            (declares("401"), declares("500"), declares("default"));
        // A `default` answer with a body declares every error answer
        // the operation lists no code for: what Spectral asks of
        // 401, 500 and 400/422 is stated there.
        if has_default {
            for (id, what) in [
                ("AUTHN-14", "401"),
                ("OUTPUT-14", "500"),
                ("INPUT-04", "400"),
            ] {
                self.push(
                    id,
                    "spec.default-error-response",
                    Outcome::Pass,
                    responses_at,
                    format!("{} {}: the `default` answer declares the body of a {what} and every other error", op.method.to_uppercase(), op.path),
                );
            }
        }
        if !has_401 && !has_default {
            self.push(
                "AUTHN-14",
                "spec.no-401-response",
                Outcome::Partial,
                responses_at,
                format!("{} {} declares no 401 answer with a body: clients cannot tell a refused credential apart", op.method.to_uppercase(), op.path),
            );
        }
        if !has_500 && !has_default {
            self.push(
                "OUTPUT-14",
                "spec.no-500-response",
                Outcome::Partial,
                responses_at,
                format!("{} {} declares no 500 answer with a body: what an exception looks like is unstated", op.method.to_uppercase(), op.path),
            );
        }
        if !has_default && !["400", "422", "4XX"].iter().any(|c| codes.contains_key(*c)) {
            self.push(
                "INPUT-04",
                "spec.no-validation-error-response",
                Outcome::Partial,
                responses_at,
                format!("{} {} declares no 400, 422 or 4XX answer: how invalid input is refused is unstated", op.method.to_uppercase(), op.path),
            );
        }
    }

    /// Successes and client errors tell the caller its budget (INPUT-08).
    fn rate_limit_headers(
        &mut self,
        op: &Op<'_>,
        codes: &serde_json::Map<String, Value>,
        responses_at: &str,
    ) {
        for (code, response) in codes {
            if !(code.starts_with('2') || code.starts_with('4')) {
                continue;
            }
            let headers = self.resolved(response)["headers"].clone();
            let limited = RATE_LIMIT_HEADERS
                .iter()
                .any(|set| set.iter().all(|h| headers.get(*h).is_some()));
            if !limited {
                // A shared response is judged (once) where it is defined.
                let (at, message) = match response["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix('#'))
                {
                    Some(target) => (
                        target.to_owned(),
                        format!(
                            "response `#{target}` declares no rate-limit headers (`RateLimit`, `X-RateLimit-Limit`): clients cannot pace themselves"
                        ),
                    ),
                    None => (
                        format!("{responses_at}/{}", escape(code)),
                        format!(
                            "{} {} answer {code} declares no rate-limit headers (`RateLimit`, `X-RateLimit-Limit`): clients cannot pace themselves",
                            op.method.to_uppercase(),
                            op.path
                        ),
                    ),
                };
                self.push(
                    "INPUT-08",
                    "spec.no-rate-limit-headers",
                    Outcome::Partial,
                    &at,
                    message,
                );
            }
        }
    }

    /// JWT best practice stated, refresh URLs for short-lived tokens.
    fn schemes_parity(&mut self) {
        let schemes = self
            .root
            .pointer("/components/securitySchemes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (name, s) in &schemes {
            let at = format!("/components/securitySchemes/{}", escape(name));
            let jwt = s["type"] == "oauth2"
                || s["bearerFormat"]
                    .as_str()
                    .is_some_and(|f| f.eq_ignore_ascii_case("jwt"));
            if jwt
                && !s["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("RFC8725") || d.contains("RFC 8725"))
            {
                self.push(
                    "AUTHN-08",
                    "spec.jwt-bcp-unstated",
                    Outcome::Partial,
                    &at,
                    format!("`{name}` carries JWTs but does not state that they follow the JWT best current practice (RFC 8725)"),
                );
            }
            // Short-lived access tokens come with a way to renew them; the
            // client-credentials flow renews by asking again (RFC 6749
            // §4.4.3: no refresh token), so it is not held to this.
            for (flow, f) in s["flows"].as_object().into_iter().flatten() {
                if flow != "clientCredentials" && f.get("refreshUrl").is_none() {
                    self.push(
                        "AUTHN-07",
                        "spec.no-refresh-url",
                        Outcome::Partial,
                        &format!("{at}/flows/{flow}"),
                        format!("`{name}` {flow} flow has no `refreshUrl`: access tokens cannot be short-lived without a way to renew them"),
                    );
                }
            }
        }
    }

    /// Each server says whether it is internal or public (CONTRACT-03).
    fn servers_parity(&mut self) {
        for (i, server) in self.root["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if server.get("x-internal").is_none() {
                self.push(
                    "CONTRACT-03",
                    "spec.server-audience-unmarked",
                    Outcome::Partial,
                    &format!("/servers/{i}"),
                    "a server without `x-internal: true|false`: whether it is meant for the public is unstated".into(),
                );
            }
        }
    }
}
