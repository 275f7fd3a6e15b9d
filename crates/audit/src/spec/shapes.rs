//! Parameters, request bodies and schemas: declared, described, bounded,
//! closed, classified.

use super::{Location, Op, Outcome, Spec, Value, deref, escape, sensitive};

/// The schemas an operation holds inline: parameters, request bodies,
/// response bodies and response headers, each with its pointer.
fn inline_schemas(op: &Op<'_>) -> Vec<(String, Value)> {
    let mut shapes = Vec::new();
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
    shapes
}

impl Spec<'_> {
    /// DATA-01, DATA-03, INPUT-09.
    pub(super) fn parameters(&mut self, ops: &[Op<'_>]) {
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
    pub(super) fn bodies(&mut self, ops: &[Op<'_>]) {
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

    /// CONTRACT-01, CONTRACT-02 over the component schemas and parameters.
    pub(super) fn schemas(&mut self) {
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
            shapes.extend(inline_schemas(&op));
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
            self.judge_shape(&pointer, &s, &inline);
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
        self.classification(seen_property, classified);
    }

    /// CONTRACT-01: one schema described (components) and bounded.
    fn judge_shape(
        &mut self,
        pointer: &str,
        s: &Value,
        inline: &std::collections::HashSet<String>,
    ) {
        let in_components = pointer.starts_with("/components/");
        if in_components
            && s.get("description").is_none()
            && !pointer.contains("/items")
            && !inline.contains(pointer)
        {
            self.fail(
                "CONTRACT-01",
                "spec.undescribed",
                pointer,
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
                        pointer,
                        "string without `maxLength` and a `pattern`, `format` or `enum`".into(),
                    );
                }
            }
            Some("integer" | "number")
                if s.get("enum").is_none()
                    && (s.get("minimum").is_none() && s.get("exclusiveMinimum").is_none()
                        || s.get("maximum").is_none() && s.get("exclusiveMaximum").is_none()) =>
            {
                self.fail(
                    "CONTRACT-01",
                    "spec.unbounded-number",
                    pointer,
                    "number without `minimum` and `maximum`".into(),
                );
            }
            Some("array") if s.get("maxItems").is_none() => {
                self.fail(
                    "CONTRACT-01",
                    "spec.unbounded-array",
                    pointer,
                    "array without `maxItems`".into(),
                );
            }
            _ => {}
        }
    }

    /// CONTRACT-01 passes unless a shape failed; CONTRACT-02: properties
    /// carry a classification.
    fn classification(&mut self, seen_property: bool, classified: usize) {
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
}
