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
mod responses;
mod security;
mod shapes;

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
