//! `docs/config.md`: a reference of every config field, written from the
//! same JSON Schema [`crate::json_schema`] derives from the config types, so
//! the reference, the schema and the loader cannot disagree (a test checks
//! the committed file).

use serde_json::Value;
use std::fmt::Write;

/// The Markdown reference of every field: path, type, default, checklist
/// IDs, and what it does (from the field's doc comment).
pub fn markdown() -> String {
    let schema = crate::json_schema::json_schema();
    let mut rows = Vec::new();
    walk(&schema, &schema, "", &mut rows);
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the config types by `cargo test -p portcullis-config` \
         (`UPDATE_DOCS=1` rewrites it); `portcullis schema` prints the same \
         fields as a JSON Schema for editors. Every default is the secure one. \
         A field marked **weakens** can lower a default: `check` lists each \
         weakened setting (`dangerous_*` fields always), and the assessor reads \
         that list. IDs are the checklist items (docs/controls.md) a field serves.\n\n\
         `a[]` is a list of `a`; `a.<name>` is a map keyed by a name you choose.\n\n\
         | field | type | default | IDs | meaning |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {}{} |",
            r.path,
            r.kind,
            r.default,
            r.ids,
            if r.weakens { "**weakens.** " } else { "" },
            r.description
        );
    }
    out
}

struct Row {
    path: String,
    kind: String,
    default: String,
    ids: String,
    weakens: bool,
    description: String,
}

/// Follows `$ref`, and the `anyOf: [X, null]` an `Option<X>` becomes.
fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/$defs/");
            match root.pointer(&format!("/$defs/{name}")) {
                Some(target) => s = target,
                None => return s,
            }
        } else if let Some(Value::Array(alts)) = s.get("anyOf") {
            let real: Vec<&Value> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            match real.as_slice() {
                [one] => s = one,
                _ => return s,
            }
        } else {
            return s;
        }
    }
    s
}

fn walk(root: &Value, schema: &Value, prefix: &str, rows: &mut Vec<Row>) {
    let schema = resolve(root, schema);
    let Some(Value::Object(props)) = schema.get("properties") else {
        return;
    };
    for (name, field) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let target = resolve(root, field);
        let description = text(field)
            .or_else(|| text(target))
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|");
        rows.push(Row {
            kind: kind(root, target),
            default: field
                .get("default")
                .map_or_else(String::new, |d| format!("`{d}`")),
            ids: checklist_ids(&description),
            weakens: name.starts_with("dangerous_")
                || ["`check` report", "reported by `check`", "a weakening"]
                    .iter()
                    .any(|w| description.contains(w)),
            description,
            path: path.clone(),
        });
        if target.get("properties").is_some() {
            walk(root, target, &path, rows);
        } else if let Some(items) = target.get("items") {
            walk(root, items, &format!("{path}[]"), rows);
        } else if let Some(values @ Value::Object(_)) = target.get("additionalProperties") {
            walk(root, values, &format!("{path}.<name>"), rows);
        }
    }
}

fn text(s: &Value) -> Option<String> {
    s.get("description")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn kind(root: &Value, s: &Value) -> String {
    if let Some(Value::Array(values)) = s.get("enum") {
        let words: Vec<String> = values.iter().map(|v| format!("`{}`", plain(v))).collect();
        return words.join(" \\| ");
    }
    if let Some(Value::Array(alts)) = s.get("oneOf").or_else(|| s.get("anyOf")) {
        let kinds: Vec<String> = alts
            .iter()
            .map(|a| match a.get("const") {
                Some(c) => format!("`{}`", plain(c)),
                None => kind(root, resolve(root, a)),
            })
            .collect();
        return kinds.join(" \\| ");
    }
    match s.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let item = s
                .get("items")
                .map_or_else(String::new, |i| kind(root, resolve(root, i)));
            format!("list of {item}")
        }
        Some(Value::String(t)) if t == "object" && s.get("properties").is_none() => {
            match s.get("additionalProperties") {
                Some(v @ Value::Object(_)) => format!("map of {}", kind(root, resolve(root, v))),
                _ => "map".into(),
            }
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" \\| "),
        _ => "any".into(),
    }
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// The checklist IDs (`TLS-01`, `AUTHZ-05`) a description names: words
/// that are IDs of the catalogue (`crates/catalog/controls.toml`).
fn checklist_ids(description: &str) -> String {
    static KNOWN: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        portcullis_catalog::Catalog::load()
            .control
            .into_iter()
            .map(|c| c.id)
            .collect()
    });
    let mut ids: Vec<&str> = description
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| KNOWN.iter().any(|id| id == w))
        .collect();
    ids.dedup();
    ids.join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_found_in_prose() {
        assert_eq!(
            super::checklist_ids("Usage anomaly detection (OPS-02) and TLS-10, not X-1 or ab-12."),
            "OPS-02, TLS-10"
        );
    }

    /// docs/config.md and docs/config.schema.json (which the examples name
    /// for editors) are what the config types say today.
    #[test]
    fn docs_config_md_and_schema_have_no_drift() {
        let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/");
        let schema = format!("{:#}\n", crate::json_schema::json_schema());
        for (file, want) in [
            ("config.md", super::markdown()),
            ("config.schema.json", schema),
        ] {
            let path = format!("{docs}{file}");
            if std::env::var_os("UPDATE_DOCS").is_some() {
                std::fs::write(&path, &want).unwrap();
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                have == want,
                "docs/{file} is out of date: run `UPDATE_DOCS=1 cargo test -p portcullis-config`"
            );
        }
    }
}
