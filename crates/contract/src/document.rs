//! The OpenAPI document as loaded: parsed once, references checked, 3.0
//! schemas translated to what a JSON Schema validator understands.

use crate::ContractError;
use serde_json::{Map, Value};

/// Which OpenAPI generation the document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 3.0.x: schemas are an extended subset of JSON Schema draft 4/5.
    V30,
    /// 3.1.x: schemas are JSON Schema 2020-12.
    V31,
}

/// A loaded document. `schemas` holds `components` translated for validators.
#[derive(Debug)]
pub struct Document {
    pub version: Version,
    pub root: Value,
    /// `components` with 3.0 `nullable` translated; embedded in every validator.
    pub components: Value,
}

impl Document {
    pub fn parse(text: &str) -> Result<Self, ContractError> {
        let trimmed = text.trim_start();
        let root: Value = if trimmed.starts_with('{') {
            serde_json::from_str(text)
                .map_err(|e| ContractError::new("", format!("not valid JSON: {e}")))?
        } else {
            yaml_serde::from_str(text)
                .map_err(|e| ContractError::new("", format!("not valid YAML: {e}")))?
        };
        let version = match root.get("openapi").and_then(Value::as_str) {
            Some(v) if v.starts_with("3.0.") => Version::V30,
            Some(v) if v.starts_with("3.1.") => Version::V31,
            Some(v) => {
                return Err(ContractError::new(
                    "/openapi",
                    format!("OpenAPI `{v}` is not supported: use 3.0.x or 3.1.x"),
                ));
            }
            None => {
                return Err(ContractError::new(
                    "/openapi",
                    "missing: the document must declare `openapi: 3.0.x` or `3.1.x` (Swagger 2.0 is not supported)",
                ));
            }
        };
        let mut errors = Vec::new();
        check_refs(&root, &root, &mut String::new(), &mut errors);
        if let Some(first) = errors.into_iter().next() {
            return Err(first);
        }
        let mut components = root.get("components").cloned().unwrap_or(Value::Null);
        if version == Version::V30 {
            translate_30(&mut components);
        }
        Ok(Self {
            version,
            root,
            components,
        })
    }

    /// A schema ready for a validator: translated, with the document's
    /// components beside it so `#/components/...` references resolve.
    pub fn validator_schema(&self, schema: &Value) -> Value {
        let mut s = schema.clone();
        if self.version == Version::V30 {
            translate_30(&mut s);
        }
        match s {
            Value::Object(mut map) => {
                if !self.components.is_null() {
                    map.insert("components".into(), self.components.clone());
                }
                Value::Object(map)
            }
            other => other,
        }
    }
}

/// Every `$ref` must be local (`#/...`) and resolve: nothing is fetched at
/// load (SSRF), and a dangling reference is an error, not a silent pass.
fn check_refs(root: &Value, v: &Value, pointer: &mut String, errors: &mut Vec<ContractError>) {
    match v {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref") {
                let at = format!("{pointer}/$ref");
                match r.as_str() {
                    Some(target) if target.starts_with('#') => {
                        if root.pointer(&target[1..]).is_none() {
                            errors.push(ContractError::new(
                                at,
                                format!("`{target}` does not resolve in this document"),
                            ));
                        }
                    }
                    Some(_) => errors.push(ContractError::new(
                        at,
                        "remote references are refused: only local `#/...` references are resolved (nothing is fetched at load)",
                    )),
                    None => errors.push(ContractError::new(at, "must be a string")),
                }
            }
            if let Some(Value::String(id)) = map.get("$id")
                && !id.starts_with('#')
            {
                errors.push(ContractError::new(
                    format!("{pointer}/$id"),
                    "`$id` would change how references resolve; remove it",
                ));
            }
            for (k, child) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape(k));
                check_refs(root, child, pointer, errors);
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                check_refs(root, child, pointer, errors);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// OpenAPI 3.0 `nullable: true` → a JSON Schema type that admits `null`.
fn translate_30(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                translate_30(child);
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                if let Some(Value::String(t)) = map.get("type") {
                    let t = t.clone();
                    map.insert("type".into(), serde_json::json!([t, "null"]));
                    if let Some(Value::Array(e)) = map.get_mut("enum")
                        && !e.contains(&Value::Null)
                    {
                        e.push(Value::Null);
                    }
                } else if !map.contains_key("$ref") {
                    let inner = Value::Object(std::mem::take(map));
                    let mut wrapped = Map::new();
                    wrapped.insert(
                        "anyOf".into(),
                        serde_json::json!([{ "type": "null" }, inner]),
                    );
                    *map = wrapped;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(translate_30),
        _ => {}
    }
}

/// Follows a local reference (already checked at parse).
pub fn resolve_ref<'d>(
    doc: &'d Document,
    target: &str,
    from: &str,
) -> Result<&'d Value, ContractError> {
    target
        .strip_prefix('#')
        .and_then(|p| doc.root.pointer(p))
        .ok_or_else(|| {
            ContractError::new(
                format!("{from}/$ref"),
                format!("`{target}` does not resolve in this document"),
            )
        })
}

/// Follows `$ref` chains on OpenAPI objects (parameters, request bodies,
/// responses); returns the object and the pointer it was found at.
pub fn deref<'d>(
    doc: &'d Document,
    v: &'d Value,
    pointer: &str,
) -> Result<(&'d Value, String), ContractError> {
    let mut current = v;
    let mut at = pointer.to_owned();
    for _ in 0..16 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(target) => {
                current = resolve_ref(doc, target, &at)?;
                target.trim_start_matches('#').clone_into(&mut at);
            }
            None => return Ok((current, at)),
        }
    }
    Err(ContractError::new(
        pointer,
        "reference chain longer than 16",
    ))
}

/// RFC 6901 escaping of one pointer segment.
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_and_dangling_references_are_refused_with_pointers() {
        let doc = r#"{"openapi":"3.1.0","paths":{"/a":{"get":{"responses":{"200":{"$ref":"https://evil.example/x.json"}}}}}}"#;
        let e = Document::parse(doc).unwrap_err();
        assert_eq!(e.pointer, "/paths/~1a/get/responses/200/$ref");
        assert!(e.message.contains("remote references are refused"));
        let doc = r##"{"openapi":"3.0.3","components":{"schemas":{"A":{"$ref":"#/components/schemas/B"}}}}"##;
        let e = Document::parse(doc).unwrap_err();
        assert_eq!(e.pointer, "/components/schemas/A/$ref");
    }

    #[test]
    fn nullable_is_translated() {
        let mut v = serde_json::json!({"type":"string","nullable":true,"enum":["a"]});
        translate_30(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"type":["string","null"],"enum":["a",null]})
        );
        let mut v = serde_json::json!({"allOf":[{"type":"object"}],"nullable":true});
        translate_30(&mut v);
        assert_eq!(v["anyOf"][0], serde_json::json!({"type":"null"}));
    }

    #[test]
    fn versions() {
        assert!(
            Document::parse("swagger: '2.0'")
                .unwrap_err()
                .message
                .contains("openapi")
        );
        assert!(Document::parse("openapi: 3.2.0").is_err());
        assert_eq!(
            Document::parse("openapi: 3.0.3").unwrap().version,
            Version::V30
        );
    }
}
