//! What to probe beyond the operations named on the command line: the
//! API's own OpenAPI document (given or found at the usual places), each
//! of its operations asked without credentials, and the well-known
//! non-production paths, judged by what they serve.

use super::{Prober, Req};
use crate::model::{Finding, Location, Outcome};
use http::{Method, StatusCode};
use serde_json::Value;

/// Where OpenAPI documents usually live.
const DOCUMENT_PATHS: [&str; 6] = [
    "/openapi.json",
    "/openapi.yaml",
    "/swagger.json",
    "/v3/api-docs",
    "/api-docs",
    "/swagger/v1/swagger.json",
];

/// Operations of a document probed without credentials, at most.
const MAX_OPERATIONS: usize = 40;

/// Well-known debug, management and tooling paths (CONTRACT-03): framework
/// debug pages, actuator-style endpoints, dot files, server status pages,
/// consoles, GraphQL tooling, dumps, API explorers, metrics.
pub(super) const EXPOSED: [&str; 44] = [
    "/.env",
    "/.env.production",
    "/.git/config",
    "/.git/HEAD",
    "/.svn/entries",
    "/.DS_Store",
    "/actuator",
    "/actuator/env",
    "/actuator/heapdump",
    "/actuator/threaddump",
    "/actuator/configprops",
    "/actuator/mappings",
    "/env",
    "/heapdump",
    "/debug",
    "/debug/vars",
    "/debug/pprof/",
    "/debug/default/view",
    "/_debug",
    "/__debug__/",
    "/_profiler",
    "/server-status",
    "/server-info",
    "/nginx_status",
    "/phpinfo.php",
    "/info.php",
    "/console",
    "/h2-console",
    "/admin",
    "/manager/html",
    "/jolokia",
    "/trace",
    "/elmah.axd",
    "/trace.axd",
    "/graphql?query=%7B__schema%7Btypes%7Bname%7D%7D%7D",
    "/graphiql",
    "/swagger-ui.html",
    "/swagger-ui/",
    "/api-docs/swagger-ui",
    "/metrics",
    "/prometheus",
    "/config.json",
    "/web.config",
    "/WEB-INF/web.xml",
];

/// What marks a body as configuration or secrets: environment variable
/// names of credentials, connection strings with a password, key material,
/// VCS configuration, PHP's configuration page, heap dumps.
const SECRET_MARKERS: [&str; 20] = [
    "password",
    "passwd",
    "secret",
    "private key-----",
    "aws_access_key_id",
    "api_key",
    "apikey",
    "access_token",
    "database_url",
    "jdbc:",
    "mongodb://",
    "postgres://",
    "postgresql://",
    "mysql://",
    "redis://",
    "[core]",
    "repositoryformatversion",
    "phpinfo()",
    "java_profile",
    "connectionstring",
];

/// Whether a body holds configuration or secrets.
pub(super) fn holds_secrets(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| lower.contains(m))
}

/// Same-origin paths a page links to that look like an OpenAPI document
/// (`href`, `src` or a JSON/JS `url` value naming openapi, swagger or
/// api-docs, ending in .json, .yaml or .yml, or `/v3/api-docs`).
fn document_links(page: &str) -> Vec<String> {
    let mut links = Vec::new();
    for quote in ['"', '\''] {
        for candidate in page.split(quote).skip(1).step_by(2) {
            let lower = candidate.to_ascii_lowercase();
            let named = ["openapi", "swagger", "api-docs"]
                .iter()
                .any(|n| lower.contains(n));
            let shaped = [".json", ".yaml", ".yml"]
                .iter()
                .any(|e| lower.ends_with(e))
                || lower.ends_with("/api-docs");
            if named && shaped && candidate.starts_with('/') && !candidate.starts_with("//") {
                let link = candidate.to_owned();
                if !links.contains(&link) && !DOCUMENT_PATHS.contains(&link.as_str()) {
                    links.push(link);
                }
            }
        }
    }
    links
}

/// A path template with its parameters filled: the parameter's example
/// when the document gives one, `1` otherwise.
fn fill(path: &str, parameters: &[Value]) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        let example = parameters
            .iter()
            .find(|p| p["in"] == "path" && p["name"] == name)
            .and_then(|p| p.get("example").or_else(|| p["schema"].get("example")))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        out.push_str(&rest[..open]);
        out.push_str(&example.unwrap_or_else(|| "1".into()));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// An operation's path with its parameters filled, from the path item's
/// parameters and the operation's own.
fn concrete(template: &str, item: &Value, op: &Value) -> String {
    let mut parameters: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
    parameters.extend(op["parameters"].as_array().cloned().unwrap_or_default());
    fill(template, &parameters)
}

/// A JSON body for an operation: the document's example, else one built
/// from the schema (required properties with a value of their type), so a
/// write is judged on authorization and not refused as invalid.
pub(super) fn example_body(document: &Value, method: &Method, path: &str) -> Option<String> {
    let template = operation_path(document, path)?;
    let op = &document["paths"][template][method.as_str().to_ascii_lowercase()];
    let media = &op["requestBody"]["content"]["application/json"];
    if media.is_null() {
        return None;
    }
    let example = media
        .get("example")
        .cloned()
        .or_else(|| {
            media["examples"]
                .as_object()
                .and_then(|e| e.values().next())
                .and_then(|e| e.get("value").cloned())
        })
        .or_else(|| media["schema"].get("example").cloned())
        .unwrap_or_else(|| from_schema(document, &media["schema"], 0));
    Some(example.to_string())
}

/// A value of the schema's type: objects carry their required properties.
fn from_schema(document: &Value, schema: &Value, depth: usize) -> Value {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| document.pointer(p))
            .unwrap_or(&Value::Null),
        None => schema,
    };
    if depth > 8 {
        return Value::Null;
    }
    if let Some(e) = schema.get("example").or_else(|| schema["enum"].get(0)) {
        return e.clone();
    }
    match schema["type"].as_str() {
        Some("string") => match schema["format"].as_str() {
            Some("date-time") => "2026-01-01T00:00:00Z".into(),
            Some("date") => "2026-01-01".into(),
            Some("email") => "audit@example.test".into(),
            Some("uuid") => "00000000-0000-4000-8000-000000000000".into(),
            _ => "portcullis-audit".into(),
        },
        Some("integer" | "number") => 1.into(),
        Some("boolean") => true.into(),
        Some("array") => Value::Array(vec![from_schema(document, &schema["items"], depth + 1)]),
        _ => {
            let mut object = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                if let Some(name) = name.as_str() {
                    object.insert(
                        name.to_owned(),
                        from_schema(document, &schema["properties"][name], depth + 1),
                    );
                }
            }
            Value::Object(object)
        }
    }
}

/// The document's path template that a concrete path matches.
fn operation_path<'d>(document: &'d Value, path: &str) -> Option<&'d str> {
    let path = path.split('?').next().unwrap_or(path);
    document["paths"].as_object()?.keys().find_map(|t| {
        let (a, b): (Vec<&str>, Vec<&str>) = (t.split('/').collect(), path.split('/').collect());
        let same = a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| x == y || (x.starts_with('{') && x.ends_with('}')));
        same.then_some(t.as_str())
    })
}

/// How an operation declares its security: `Some(true)` explicitly public
/// (`security: []` on it, or at the root without an override), `Some(false)`
/// secured, `None` nothing declared at all.
fn declared_public(document: &Value, op: &Value) -> Option<bool> {
    let requirement = op.get("security").or_else(|| document.get("security"))?;
    Some(
        requirement
            .as_array()
            .is_some_and(|r| crate::spec::public_on_purpose(r)),
    )
}

impl Prober {
    /// The body a write is sent with: the document's example or one built
    /// from its schema, `{}` without a document.
    pub(super) fn body_for(&self, method: &Method, path: &str) -> String {
        self.document
            .as_ref()
            .and_then(|(doc, _)| example_body(doc, method, path))
            .unwrap_or_else(|| "{}".into())
    }

    /// The API's OpenAPI document: `--spec`, or the first of the usual
    /// places that serves one. Said in the notes either way.
    pub(super) async fn find_document(&mut self) {
        if let Some(doc) = self.target.document.clone() {
            self.document = Some((doc, "--spec".into()));
            self.protected_from_document();
            return;
        }
        for path in DOCUMENT_PATHS {
            let req = Req::new(Method::GET, path);
            let Some(x) = self.probe(&req).await else {
                continue;
            };
            if !x.status.is_success() {
                continue;
            }
            if let Ok(doc) = crate::spec::parse(&x.text()) {
                let url = self.url(path);
                self.document = Some((doc, url));
                self.protected_from_document();
                return;
            }
        }
        // Links from the root page (an API explorer, a landing page).
        let root = Req::new(Method::GET, "/");
        if let Some(x) = self.probe(&root).await
            && x.status.is_success()
        {
            for link in document_links(&x.text()).into_iter().take(3) {
                let req = Req::new(Method::GET, &link);
                let Some(x) = self.probe(&req).await else {
                    continue;
                };
                if x.status.is_success()
                    && let Ok(doc) = crate::spec::parse(&x.text())
                {
                    self.document = Some((doc, self.url(&link)));
                    self.protected_from_document();
                    return;
                }
            }
        }
        self.notes.push(format!(
            "no OpenAPI document at {}, nor linked from `/` (or --spec): only the operations given were probed; give --spec to probe every operation",
            DOCUMENT_PATHS.join(", ")
        ));
    }

    /// Without `--operation`, the identity matrix asks the document's first
    /// read that declares a security requirement.
    fn protected_from_document(&mut self) {
        if self.protected_known {
            return;
        }
        let Some((document, _)) = &self.document else {
            return;
        };
        let found = document["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .find_map(|(template, item)| {
                let op = item.get("get")?;
                (declared_public(document, op) == Some(false)).then(|| concrete(template, item, op))
            });
        if let Some(path) = found {
            self.notes.push(format!(
                "the identity matrix asks GET {path}, the document's first secured read (--operation chooses another)"
            ));
            self.protected = (Method::GET, path);
            self.protected_known = true;
        }
    }

    /// Every operation of the document, asked without credentials: safe
    /// methods always, writes only with `--allow-writes`; never DELETE
    /// otherwise (an assessor must not destroy what it assesses). A 2xx on
    /// an operation the document does not list as public fails AUTHN-06.
    /// The answers join the others for the body scans (cards, secrets,
    /// stack traces).
    pub(super) async fn documented_operations(&mut self) {
        let Some((document, origin)) = self.document.clone() else {
            return;
        };
        let operations = document_operations(&document);
        let total = operations.len();
        let (safe, writes): (Vec<_>, Vec<_>) = operations
            .into_iter()
            .partition(|(m, _, _)| m == Method::GET || m == Method::HEAD);
        let mut asked = safe;
        let skipped = if self.target.allow_writes {
            asked.extend(writes);
            0
        } else {
            writes.len()
        };
        asked.truncate(MAX_OPERATIONS);
        let mut refused = Vec::new();
        let mut answered = 0;
        for (method, path, op) in &asked {
            let mut req = Req::new(method.clone(), path);
            if method != Method::GET && method != Method::HEAD {
                if let Some(body) = example_body(&document, method, path) {
                    req = req.body("application/json", body);
                }
            }
            let Some(x) = self.probe(&req).await else {
                continue;
            };
            answered += 1;
            let loc = self.location(&req, Some(x.status));
            let public = declared_public(&document, op);
            if x.status.is_success() && public != Some(true) {
                let (rule, critical) = if method == Method::GET || method == Method::HEAD {
                    ("probe.unauthenticated-read", false)
                } else {
                    ("probe.unauthenticated-write", true)
                };
                let why = match public {
                    None => {
                        "the document declares no security for it, and nothing lists it as public (`security: []`)"
                    }
                    _ => "the document says it needs credentials",
                };
                let mut f = Finding::new(
                    "AUTHN-06",
                    rule,
                    Outcome::Fail,
                    crate::model::Evidence::Observed,
                    format!(
                        "{method} {path} answered {} without credentials: {why}",
                        x.status
                    ),
                    loc,
                );
                if critical {
                    f = f.critical();
                }
                // A code path that needs no authorization at all (AUTHZ-10).
                let mut also = f.clone();
                also.id = "AUTHZ-10";
                self.findings.push(also);
                self.findings.push(f);
            } else if matches!(x.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                refused.push(loc);
            }
        }
        let mut note = format!(
            "OpenAPI document from {origin}: {} of {total} operations asked without credentials ({answered} answered)",
            asked.len()
        );
        if skipped > 0 {
            note.push_str(&format!(
                "; {skipped} writes not sent (--allow-writes sends them)"
            ));
        }
        self.notes.push(note);
        let unauthenticated = self
            .findings
            .iter()
            .any(|f| f.id == "AUTHN-06" && f.outcome == Outcome::Fail);
        if !unauthenticated && let Some(loc) = refused.first() {
            self.record(
                "AUTHN-06",
                "probe.documented-operations-refused",
                Outcome::Pass,
                format!(
                    "{} documented operations refused a request without credentials",
                    refused.len()
                ),
                loc.clone(),
            );
        }
    }

    /// CONTRACT-03: well-known debug and non-production paths, judged by
    /// what they serve. A 200 that is the same page an unknown path gets
    /// (a catch-all) is not a finding; one holding configuration or
    /// secrets is a critical one.
    pub(super) async fn exposure(&mut self) {
        let nowhere = Req::new(Method::GET, "/portcullis-audit-no-such-path-7f3a");
        let catch_all = self
            .send(&nowhere)
            .await
            .ok()
            .filter(|x| x.status.is_success())
            .map(|x| x.body);
        let mut served = false;
        let mut first_answer: Option<Location> = None;
        for path in EXPOSED {
            let req = Req::new(Method::GET, path);
            let Some(x) = self.probe(&req).await else {
                continue;
            };
            let loc = self.location(&req, Some(x.status));
            first_answer.get_or_insert_with(|| loc.clone());
            if !x.status.is_success() || catch_all.as_ref() == Some(&x.body) {
                continue;
            }
            served = true;
            if holds_secrets(&x.text()) {
                self.findings.push(
                    Finding::new(
                        "CONTRACT-03",
                        "probe.debug-path-secrets",
                        Outcome::Fail,
                        crate::model::Evidence::Observed,
                        format!(
                            "`{path}` serves configuration or secrets ({}) to anyone",
                            x.status
                        ),
                        loc,
                    )
                    .critical(),
                );
            } else {
                self.record(
                    "CONTRACT-03",
                    "probe.debug-path-served",
                    Outcome::Fail,
                    format!(
                        "`{path}` is served ({}): non-production surface is reachable",
                        x.status
                    ),
                    loc,
                );
            }
        }
        if !served && let Some(loc) = first_answer {
            self.record(
                "CONTRACT-03",
                "probe.no-debug-paths",
                Outcome::Pass,
                format!(
                    "none of {} well-known debug and tooling paths is served",
                    EXPOSED.len()
                ),
                loc,
            );
        }
    }
}

/// Every GET, HEAD, POST, PUT, PATCH and DELETE operation of a document,
/// with a concrete path to ask and the operation object.
fn document_operations(document: &Value) -> Vec<(Method, String, Value)> {
    let mut operations = Vec::new();
    for (template, item) in document["paths"].as_object().into_iter().flatten() {
        for (name, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = Method::from_bytes(name.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            if !["get", "head", "post", "put", "patch", "delete"].contains(&name.as_str()) {
                continue;
            }
            operations.push((method, concrete(template, item, op), op.clone()));
        }
    }
    operations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_links_are_same_origin_paths_that_look_like_documents() {
        let page = r#"<a href="/static/openapi.json">API</a><script>ui({url: '/docs/swagger.yaml'})</script>
            <a href="https://elsewhere.test/openapi.json">x</a><a href="//cdn.test/swagger.json">y</a>
            <a href="/openapi.json">dup of a usual place</a><img src="/logo.png">"#;
        assert_eq!(
            document_links(page),
            ["/static/openapi.json", "/docs/swagger.yaml"]
        );
    }

    #[test]
    fn templates_are_filled_from_examples_or_with_one() {
        let params = vec![serde_json::json!({ "in": "path", "name": "id", "example": 42 })];
        assert_eq!(
            fill("/v1/orders/{id}/lines/{n}", &params),
            "/v1/orders/42/lines/1"
        );
    }

    #[test]
    fn bodies_come_from_examples_then_schemas() {
        let doc = serde_json::json!({
            "paths": { "/v1/orders/{id}": { "put": { "requestBody": { "content": {
                "application/json": { "schema": { "$ref": "#/components/schemas/Order" } } } } } } },
            "components": { "schemas": { "Order": {
                "type": "object", "required": ["item", "count", "at"],
                "properties": { "item": { "type": "string" }, "count": { "type": "integer" },
                    "at": { "type": "string", "format": "date-time" }, "note": { "type": "string" } } } } }
        });
        let body = example_body(&doc, &Method::PUT, "/v1/orders/7").unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "item": "portcullis-audit", "count": 1, "at": "2026-01-01T00:00:00Z" })
        );
        assert_eq!(example_body(&doc, &Method::POST, "/v1/orders/7"), None);
    }

    #[test]
    fn only_an_explicit_empty_requirement_is_public() {
        let op = serde_json::json!({});
        assert_eq!(declared_public(&serde_json::json!({}), &op), None);
        assert_eq!(
            declared_public(&serde_json::json!({ "security": [] }), &op),
            Some(true)
        );
        assert_eq!(
            declared_public(
                &serde_json::json!({ "security": [{ "k": [] }] }),
                &serde_json::json!({ "security": [] })
            ),
            Some(true)
        );
        assert_eq!(
            declared_public(&serde_json::json!({ "security": [{ "k": [] }] }), &op),
            Some(false)
        );
    }

    #[test]
    fn secrets_are_recognised_and_status_pages_without_them_are_not() {
        assert!(holds_secrets(r#"{"DATABASE_URL":"postgres://u:p@db/x"}"#));
        assert!(holds_secrets("[core]\n\trepositoryformatversion = 0"));
        assert!(!holds_secrets(r#"{"threads":4,"uptime_s":12}"#));
    }
}
