//! JSON pointer → line number in a YAML or JSON document, for findings
//! that point into the spec. Block-style YAML and pretty-printed JSON map
//! exactly; inside flow collections (and JSON arrays) a pointer falls back
//! to its nearest mapped ancestor.

use std::collections::HashMap;

pub struct LineIndex {
    lines: HashMap<String, usize>,
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The key of a `key: value` line (quotes removed), if it is one.
fn key_of(content: &str) -> Option<&str> {
    let (key, quoted) = if let Some(rest) = content.strip_prefix('"') {
        (rest.split_once('"')?.0, true)
    } else if let Some(rest) = content.strip_prefix('\'') {
        (rest.split_once('\'')?.0, true)
    } else {
        let end = content
            .find(": ")
            .or_else(|| content.strip_suffix(':').map(str::len))?;
        (&content[..end], false)
    };
    if quoted {
        let after = content[key.len() + 2..].trim_start();
        after.starts_with(':').then_some(key)
    } else {
        (!key.is_empty() && !key.starts_with(['{', '[', '#'])).then_some(key)
    }
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut lines = HashMap::new();
        // (indent, segment, is a list index)
        let mut stack: Vec<(usize, String, bool)> = Vec::new();
        let mut list_counters: HashMap<String, usize> = HashMap::new();
        let pointer = |stack: &[(usize, String, bool)]| -> String {
            stack.iter().fold(String::new(), |mut p, (_, s, _)| {
                p.push('/');
                p.push_str(s);
                p
            })
        };
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut indent = raw.len() - trimmed.len();
            let mut content = trimmed;
            let item = content
                .strip_prefix("- ")
                .or_else(|| (content == "-").then_some(""));
            if let Some(rest) = item {
                // A list item belongs to the key at its indent or above
                // (`key:\n- a` and `key:\n  - a` are both common).
                while stack
                    .last()
                    .is_some_and(|(i, _, index)| *i > indent || (*i == indent && *index))
                {
                    stack.pop();
                }
                let parent = pointer(&stack);
                let counter = list_counters.entry(parent).or_insert(0);
                let index = *counter;
                *counter += 1;
                stack.push((indent, index.to_string(), true));
                lines.entry(pointer(&stack)).or_insert(line_no);
                indent += 2;
                content = rest.trim_start();
                if content.is_empty() {
                    continue;
                }
            }
            let Some(key) = key_of(content.trim_end_matches(',')) else {
                continue;
            };
            while stack.last().is_some_and(|(i, _, _)| *i >= indent) {
                stack.pop();
            }
            stack.push((indent, escape(key), false));
            lines.entry(pointer(&stack)).or_insert(line_no);
        }
        Self { lines }
    }

    /// The line of `pointer`, or of its nearest mapped ancestor.
    pub fn line(&self, pointer: &str) -> Option<usize> {
        let mut p = pointer;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind('/')?;
            p = &p[..cut];
            if p.is_empty() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_pointers_find_their_lines() {
        let yaml = "openapi: 3.1.0\npaths:\n  /orders/{id}:\n    get:\n      parameters:\n        - name: id\n          in: path\n        - name: q\n          in: query\n      responses:\n        '200':\n          description: ok\n";
        let idx = LineIndex::new(yaml);
        assert_eq!(idx.line("/paths/~1orders~1{id}/get"), Some(4));
        assert_eq!(
            idx.line("/paths/~1orders~1{id}/get/parameters/1/in"),
            Some(9)
        );
        assert_eq!(idx.line("/paths/~1orders~1{id}/get/parameters/0"), Some(6));
        assert_eq!(
            idx.line("/paths/~1orders~1{id}/get/responses/200/description"),
            Some(12)
        );
        assert_eq!(
            idx.line("/paths/~1orders~1{id}/get/responses/200/nowhere"),
            Some(11)
        );
        let json = "{\n  \"openapi\": \"3.0.3\",\n  \"paths\": {\n    \"/a\": {\n      \"post\": {}\n    }\n  }\n}\n";
        let idx = LineIndex::new(json);
        assert_eq!(idx.line("/paths/~1a/post"), Some(5));
        let compact = "tags:\n- name: a\n- name: b\ninfo:\n  title: t\n";
        let idx = LineIndex::new(compact);
        assert_eq!(idx.line("/tags/1/name"), Some(3));
        assert_eq!(idx.line("/info/title"), Some(5));
    }
}
