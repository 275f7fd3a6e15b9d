//! Files a config names for reading (certificates, keys, trust anchors,
//! CRLs, secrets) that do not exist. The gateway reads them when it is
//! built, which needs a valid config; when the config has other problems,
//! [`crate::load`] adds these so that one run of `check` lists everything.

use crate::FieldError;
use serde_json::Value;
use std::path::Path;

/// Field names whose values are files the gateway reads (the OpenAPI
/// document is read, and reported, by the validator itself).
const INPUTS: [&str; 10] = [
    "cert",
    "key",
    "ca",
    "crls",
    "password_file",
    "client_secret_file",
    "jwks_file",
    "jwks_ca",
    "client_cert",
    "client_key",
];

/// Each named input file that does not exist, relative to `base`.
pub(crate) fn missing(value: &Value, base: &Path) -> Vec<FieldError> {
    let mut out = Vec::new();
    walk(value, "", base, &mut out);
    out
}

fn walk(value: &Value, path: &str, base: &Path, out: &mut Vec<FieldError>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let at = join(k);
                match v {
                    Value::String(s) if INPUTS.contains(&k.as_str()) => check(s, &at, base, out),
                    Value::Array(items) if INPUTS.contains(&k.as_str()) => {
                        for (i, item) in items.iter().enumerate() {
                            if let Value::String(s) = item {
                                check(s, &format!("{at}[{i}]"), base, out);
                            }
                        }
                    }
                    _ => walk(v, &at, base, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), base, out);
            }
        }
        _ => {}
    }
}

fn check(file: &str, at: &str, base: &Path, out: &mut Vec<FieldError>) {
    if file.trim_start().starts_with("TODO") {
        return;
    }
    let resolved = base.join(file);
    if !resolved.exists() {
        out.push(FieldError {
            path: at.to_owned(),
            message: format!("no such file: {}", resolved.display()),
        });
    }
}
