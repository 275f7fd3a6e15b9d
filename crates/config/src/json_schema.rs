//! The config's JSON Schema, derived from the [`crate::schema`] types with
//! `schemars` so it cannot drift from what the loader accepts. `portcullis
//! schema` prints it, editors complete and check `gateway.yaml` with it, and
//! [`crate::parse`] checks every file against it first, so one run of
//! `check` reports every misspelt, missing or mistyped field at once.

use crate::FieldError;
use crate::schema::{RawAuthPolicy, RawConfig, RawProtected};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::OnceLock;

/// Where the schema is published, and the name configs refer to it by.
pub const SCHEMA_ID: &str = "https://portcullis.dev/schema/config.json";

/// The first line of every config the project writes, for
/// yaml-language-server (VS Code, Neovim, Helix): `file` is the schema's
/// path relative to the config, as `portcullis schema > FILE` writes it.
pub fn modeline(file: &str) -> String {
    format!("# yaml-language-server: $schema={file}\n")
}

/// What a missing required field is told.
pub(crate) const REQUIRED: &str = "required, and has no default: add it";

/// The JSON Schema (draft 2020-12) of `gateway.yaml`.
pub fn json_schema() -> Value {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<RawConfig>();
    schema.insert("$id".into(), SCHEMA_ID.into());
    schema.insert("title".into(), "Portcullis gateway configuration".into());
    let mut value = schema.to_value();
    allow_empty_sections(&mut value);
    value
}

/// The loader takes an empty section (`contract:` with nothing under it,
/// which YAML reads as null) for its default, for maps, lists and settings
/// blocks that have one; the schema says so too, so that editors do not
/// flag what `check` accepts.
fn allow_empty_sections(value: &mut Value) {
    optional_nullable(value);
    if let Some(Value::Object(defs)) = value.get_mut("$defs") {
        defs.values_mut().for_each(optional_nullable);
    }
}

/// Each optional settings block, list or map of the object schema `s`
/// also takes null.
fn optional_nullable(s: &mut Value) {
    let required: Vec<String> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(Value::Object(props)) = s.get_mut("properties") else {
        return;
    };
    for (name, field) in props.iter_mut() {
        let Value::Object(f) = field else { continue };
        let compound = f.contains_key("$ref")
            || matches!(
                f.get("type").and_then(Value::as_str),
                Some("object" | "array")
            );
        if !compound || required.contains(name) {
            continue;
        }
        let mut shape = f.clone();
        let mut outer = serde_json::Map::new();
        for key in ["default", "description"] {
            if let Some(v) = shape.remove(key) {
                outer.insert(key.into(), v);
            }
        }
        outer.insert(
            "anyOf".into(),
            serde_json::json!([Value::Object(shape), { "type": "null" }]),
        );
        *f = outer;
    }
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&json_schema())
            .expect("the derived config schema compiles")
    })
}

/// Every place where `value` (a config read as JSON) does not fit the
/// schema, each with the field path `check` prints (`apis[0].routes[1].auth`).
pub fn schema_errors(value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for e in validator().iter_errors(value) {
        describe(&e, &mut errors);
    }
    errors.dedup();
    errors
}

/// Every value still reading `TODO: …` (as `portcullis init` writes what
/// it cannot know), reported with its text: the file is not a config yet.
pub fn todo_errors(value: &Value) -> Vec<FieldError> {
    fn walk(v: &Value, path: &str, out: &mut Vec<FieldError>) {
        match v {
            Value::String(s) if s.trim_start().starts_with("TODO") => out.push(FieldError {
                path: path.to_owned(),
                message: format!("still to fill in: {}", s.trim()),
            }),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), out);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let mut p = path.to_owned();
                    push_field(&mut p, k);
                    walk(item, &p, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

/// Removes every field the schema does not know from `value`, so that the
/// rest of a config with a misspelt field can still be judged in the same
/// run. Only for reporting: a config with unknown fields never loads.
pub(crate) fn drop_unknown_fields(value: &mut Value) {
    use jsonschema::error::ValidationErrorKind as Kind;
    fn collect(e: &jsonschema::ValidationError<'_>, out: &mut Vec<(String, Vec<String>)>) {
        match e.kind() {
            Kind::AdditionalProperties { unexpected } => {
                out.push((e.instance_path().as_str().to_owned(), unexpected.clone()));
            }
            Kind::AnyOf { context } | Kind::OneOfNotValid { context } => {
                for b in context.iter().flatten() {
                    collect(b, out);
                }
            }
            _ => {}
        }
    }
    let mut unknown = Vec::new();
    for e in validator().iter_errors(value) {
        collect(&e, &mut unknown);
    }
    for (pointer, names) in unknown {
        if let Some(Value::Object(map)) = value.pointer_mut(&pointer) {
            for name in names {
                map.remove(&name);
            }
        }
    }
}

fn describe(e: &jsonschema::ValidationError<'_>, out: &mut Vec<FieldError>) {
    use jsonschema::error::ValidationErrorKind as Kind;
    let mut path = field_path(e.instance_path().as_str());
    let message = match e.kind() {
        Kind::Required { property } => {
            push_field(&mut path, property.as_str().unwrap_or_default());
            REQUIRED.to_owned()
        }
        Kind::AdditionalProperties { unexpected } => {
            let names: Vec<String> = unexpected.iter().map(|u| format!("`{u}`")).collect();
            push_field(&mut path, &unexpected.join(", "));
            format!(
                "unknown field {}: not a setting here (misspelt? `portcullis schema` and docs/config.md list every field)",
                names.join(", ")
            )
        }
        // An optional section or a choice of forms: report what is wrong
        // inside the form that was meant, not that no form fits.
        Kind::AnyOf { context } | Kind::OneOfNotValid { context } => {
            let here = e.instance_path().as_str();
            let (shape, inner): (Vec<_>, Vec<_>) = context.iter().flatten().partition(|b| {
                b.instance_path().as_str() == here
                    && matches!(b.kind(), Kind::Type { .. } | Kind::Constant { .. })
            });
            if !inner.is_empty() {
                for b in inner {
                    describe(b, out);
                }
                return;
            }
            let expected: Vec<String> = shape
                .iter()
                .filter_map(|b| match b.kind() {
                    Kind::Constant { expected_value } => Some(match expected_value.as_str() {
                        Some(word) => format!("`{word}`"),
                        None => expected_value.to_string(),
                    }),
                    Kind::Type {
                        kind: jsonschema::error::TypeKind::Single(t),
                    } => Some(format!("a map of settings ({t})")),
                    _ => None,
                })
                .collect();
            format!(
                "{} is not allowed here: expected {}",
                e.instance(),
                expected.join(" or ")
            )
        }
        _ => e.to_string(),
    };
    out.push(FieldError {
        path: if path.is_empty() {
            "(top level)".into()
        } else {
            path
        },
        message,
    });
}

fn push_field(path: &mut String, field: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(field);
}

/// `/apis/0/routes/1` → `apis[0].routes[1]`, the form serde's errors use.
fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            push_field(&mut out, &seg);
        }
    }
    out
}

impl JsonSchema for RawAuthPolicy {
    fn schema_name() -> Cow<'static, str> {
        "AuthPolicy".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let protected = generator.subschema_for::<RawProtected>();
        json_schema!({
            "description": "How a route authenticates callers: the word `public` (reported by `check`), or a policy map. There is no default: a route without `auth` is refused.",
            "oneOf": [
                { "const": "public", "description": "No authentication; written out on purpose." },
                protected
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_field_paths() {
        assert_eq!(field_path(""), "");
        assert_eq!(field_path("/apis/0/routes/12"), "apis[0].routes[12]");
        assert_eq!(field_path("/upstreams/a~1b/url"), "upstreams.a/b.url");
    }

    /// YAML's empty section (`contract:`) is null; the loader reads it as
    /// the default for settings blocks, lists and maps, and so does the schema.
    #[test]
    fn empty_sections_fit_the_schema_as_they_fit_the_loader() {
        let value: Value = serde_json::json!({
            "listeners": [{ "name": "l", "bind": "127.0.0.1:0", "tls": { "cert": "c", "key": "k" } }],
            "limits": null,
            "upstreams": {},
            "apis": [{ "name": "a", "upstream": "u", "contract": null, "rate_limits": null,
                        "routes": [{ "path": "/x", "methods": ["GET"], "auth": "public" }] }],
        });
        assert_eq!(schema_errors(&value), vec![]);
    }

    #[test]
    fn the_schema_refuses_what_the_loader_refuses() {
        let value: Value = serde_json::json!({
            "listeners": [{ "name": "l", "bnd": "127.0.0.1:0" }],
            "upstreams": {},
            "apis": [{ "name": "a", "base_path": "/a", "upstream": "u",
                        "routes": [{ "path": "/x", "methods": ["GET"] }] }],
        });
        let errors = schema_errors(&value);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"listeners[0].bind"), "{errors:?}");
        assert!(paths.contains(&"listeners[0].bnd"), "{errors:?}");
        assert!(paths.contains(&"apis[0].routes[0].auth"), "{errors:?}");
    }
}
