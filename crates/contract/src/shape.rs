//! What a schema declares, compiled for walking a value: which properties
//! exist (to strip the undeclared, INPUT-06, OUTPUT-13) and how each is
//! classified (to remove `secret` and redact `pii`, OUTPUT-10, CONTRACT-02).
//!
//! Schemas become nodes of an arena, so `$ref` cycles are edges, not
//! infinite trees. `allOf`/`anyOf`/`oneOf` branches are kept as a union:
//! a property declared in any branch is declared.

use crate::Classification;
use crate::document::{Document, escape, resolve_ref};
use serde_json::Value;
use std::collections::HashMap;

/// Index of a node in [`Shapes`].
pub type ShapeId = usize;

/// Unknown properties beyond what a node declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Additional {
    /// Any property is allowed (free-form object, `additionalProperties: true`).
    Open,
    /// Allowed, each value shaped by this node.
    Schema(ShapeId),
    /// Only the declared properties.
    Closed,
    /// Decided by the union members (a node that is only a composition).
    Inherit,
    /// The schema does not describe objects at all.
    NotObject,
}

#[derive(Debug, Clone)]
struct Node {
    class: Option<Classification>,
    /// Sorted by name: looked up by binary search, no hashing per key.
    props: Vec<(String, ShapeId)>,
    additional: Additional,
    items: Option<ShapeId>,
    union: Vec<ShapeId>,
}

impl Default for Node {
    fn default() -> Self {
        Self {
            class: None,
            props: Vec::new(),
            additional: Additional::Open,
            items: None,
            union: Vec::new(),
        }
    }
}

/// The compiled shapes of one contract.
#[derive(Debug, Default)]
pub struct Shapes {
    nodes: Vec<Node>,
    /// Highest label reachable from each node (computed once after building).
    reach: Vec<Option<Classification>>,
    memo: HashMap<String, ShapeId>,
}

/// How a walk treats properties the schema does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeclared {
    Strip,
    Report,
}

/// What a walk did, and what it found.
#[derive(Debug, Default)]
pub struct WalkOutcome {
    pub stripped: usize,
    pub removed_secret: usize,
    pub redacted_pii: usize,
    /// Pointers of undeclared properties (with [`Undeclared::Report`]).
    pub undeclared: Vec<String>,
}

impl WalkOutcome {
    pub fn changed(&self) -> bool {
        self.stripped + self.removed_secret + self.redacted_pii > 0
    }
}

const MAX_UNION_DEPTH: usize = 16;

/// What a node says about one property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Shaped(ShapeId),
    /// Allowed, with nothing known about its value.
    Free,
}
/// The text pii string values are replaced with.
pub const REDACTED: &str = "[redacted]";

impl Node {
    fn prop(&self, key: &str) -> Option<ShapeId> {
        self.props
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.props[i].1)
    }
}

impl Shapes {
    /// Compiles `schema` (found at `pointer` in `doc`).
    pub(crate) fn build(
        &mut self,
        doc: &Document,
        schema: &Value,
        pointer: &str,
    ) -> Result<ShapeId, crate::ContractError> {
        self.build_at(doc, schema, pointer, 0)
    }

    fn build_at(
        &mut self,
        doc: &Document,
        schema: &Value,
        pointer: &str,
        depth: usize,
    ) -> Result<ShapeId, crate::ContractError> {
        if depth > 64 {
            return Err(crate::ContractError::new(
                pointer,
                "schema nested more than 64 levels",
            ));
        }
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        let Value::Object(map) = schema else {
            // `true`/`false` schemas: open, or nothing to walk.
            return Ok(id);
        };
        let mut node = Node {
            class: classification(map.get("x-classification"), pointer)?,
            ..Node::default()
        };
        if let Some(Value::String(target)) = map.get("$ref") {
            let member = if let Some(&known) = self.memo.get(target) {
                known
            } else {
                let resolved = resolve_ref(doc, target, pointer)?;
                let target_id = self.nodes.len();
                self.memo.insert(target.clone(), target_id);
                let built =
                    self.build_at(doc, resolved, target.trim_start_matches('#'), depth + 1)?;
                debug_assert_eq!(built, target_id);
                built
            };
            node.union.push(member);
            node.additional = Additional::Inherit;
            self.nodes[id] = node;
            return Ok(id);
        }
        let has_props = map.contains_key("properties");
        if let Some(Value::Object(props)) = map.get("properties") {
            for (name, sub) in props {
                let p = format!("{pointer}/properties/{}", escape(name));
                let sid = self.build_at(doc, sub, &p, depth + 1)?;
                node.props.push((name.clone(), sid));
            }
            node.props.sort_by(|a, b| a.0.cmp(&b.0));
        }
        node.additional = match map.get("additionalProperties") {
            Some(Value::Bool(false)) => Additional::Closed,
            Some(Value::Bool(true)) => Additional::Open,
            Some(sub @ Value::Object(o)) if !o.is_empty() => {
                let p = format!("{pointer}/additionalProperties");
                Additional::Schema(self.build_at(doc, sub, &p, depth + 1)?)
            }
            Some(_) => Additional::Open,
            None if has_props => Additional::Closed,
            None => match map.get("type") {
                Some(Value::String(t)) if t != "object" => Additional::NotObject,
                Some(Value::Array(ts)) if !ts.iter().any(|t| t == "object") => {
                    Additional::NotObject
                }
                _ => Additional::Open,
            },
        };
        if let Some(items) = map.get("items").filter(|i| i.is_object()) {
            let p = format!("{pointer}/items");
            node.items = Some(self.build_at(doc, items, &p, depth + 1)?);
        }
        let mut composed = false;
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = map.get(key) {
                composed = true;
                for (i, b) in branches.iter().enumerate() {
                    let p = format!("{pointer}/{key}/{i}");
                    let sid = self.build_at(doc, b, &p, depth + 1)?;
                    node.union.push(sid);
                }
            }
        }
        if composed && !has_props && !map.contains_key("additionalProperties") {
            node.additional = Additional::Inherit;
        }
        self.nodes[id] = node;
        Ok(id)
    }

    /// Computes the reachable classification of every node; call once after building.
    pub(crate) fn finish(&mut self) {
        self.reach = (0..self.nodes.len())
            .map(|id| {
                let mut seen = vec![false; self.nodes.len()];
                self.max_class(id, &mut seen)
            })
            .collect();
    }

    fn max_class(&self, id: ShapeId, seen: &mut [bool]) -> Option<Classification> {
        if seen[id] {
            return None;
        }
        seen[id] = true;
        let n = &self.nodes[id];
        let mut best = n.class;
        let children = n
            .props
            .iter()
            .map(|(_, id)| id)
            .chain(n.items.iter())
            .chain(n.union.iter())
            .chain(match &n.additional {
                Additional::Schema(s) => Some(s),
                _ => None,
            });
        for &c in children.collect::<Vec<_>>() {
            best = best.max(self.max_class(c, seen));
        }
        best
    }

    /// The highest classification anywhere below `id`.
    pub fn reachable_class(&self, id: ShapeId) -> Option<Classification> {
        self.reach.get(id).copied().flatten()
    }

    /// The label that applies to a value shaped by `id` as a whole.
    fn class_of(&self, id: ShapeId, depth: usize) -> Option<Classification> {
        let n = &self.nodes[id];
        if depth > MAX_UNION_DEPTH {
            return n.class;
        }
        n.union
            .iter()
            .fold(n.class, |acc, &u| acc.max(self.class_of(u, depth + 1)))
    }

    /// The shape of property `key`; `None` when it is not declared.
    fn property(&self, id: ShapeId, key: &str, depth: usize) -> Option<Lookup> {
        let n = &self.nodes[id];
        if let Some(p) = n.prop(key) {
            return Some(Lookup::Shaped(p));
        }
        if depth > MAX_UNION_DEPTH {
            return Some(Lookup::Free);
        }
        for &u in &n.union {
            if let Some(found) = self.declared_only(u, key, depth + 1) {
                return Some(found);
            }
        }
        self.additional(id, depth)
    }

    /// Property lookup through declared properties only (no additional).
    fn declared_only(&self, id: ShapeId, key: &str, depth: usize) -> Option<Lookup> {
        let n = &self.nodes[id];
        if let Some(p) = n.prop(key) {
            return Some(Lookup::Shaped(p));
        }
        if depth > MAX_UNION_DEPTH {
            return None;
        }
        n.union
            .iter()
            .find_map(|&u| self.declared_only(u, key, depth + 1))
    }

    fn additional(&self, id: ShapeId, depth: usize) -> Option<Lookup> {
        let n = &self.nodes[id];
        match n.additional {
            Additional::Open => Some(Lookup::Free),
            Additional::Schema(s) => Some(Lookup::Shaped(s)),
            Additional::Closed | Additional::NotObject => None,
            Additional::Inherit if depth > MAX_UNION_DEPTH => Some(Lookup::Free),
            Additional::Inherit => n.union.iter().find_map(|&u| self.additional(u, depth + 1)),
        }
    }

    fn items(&self, id: ShapeId, depth: usize) -> Option<ShapeId> {
        let n = &self.nodes[id];
        if n.items.is_some() || depth > MAX_UNION_DEPTH {
            return n.items;
        }
        n.union.iter().find_map(|&u| self.items(u, depth + 1))
    }

    /// Strips (or reports) undeclared properties and applies classification
    /// labels: `secret` values are removed, `pii` values redacted unless
    /// `allow_pii`. `redact` is false for request bodies.
    pub fn walk(
        &self,
        id: ShapeId,
        value: &mut Value,
        undeclared: Undeclared,
        redact: Option<bool>,
        out: &mut WalkOutcome,
    ) {
        let mut path = Vec::new();
        self.walk_at(id, value, undeclared, redact, out, &mut path);
    }

    fn walk_at(
        &self,
        id: ShapeId,
        value: &mut Value,
        undeclared: Undeclared,
        redact: Option<bool>,
        out: &mut WalkOutcome,
        path: &mut Vec<String>,
    ) {
        if path.len() > 128 {
            return;
        }
        match value {
            Value::Object(map) => {
                // First what goes (rare, allocates only then), then descend.
                let mut gone: Vec<String> = Vec::new();
                for (key, v) in map.iter_mut() {
                    let Some(shape) = self.property(id, key, 0) else {
                        if undeclared == Undeclared::Report {
                            path.push(key.clone());
                            out.undeclared.push(crate::json::pointer(path));
                            path.pop();
                        } else {
                            gone.push(key.clone());
                            out.stripped += 1;
                        }
                        continue;
                    };
                    let Lookup::Shaped(shape) = shape else {
                        continue;
                    };
                    if let Some(allow_pii) = redact {
                        match self.class_of(shape, 0) {
                            Some(Classification::Secret) => {
                                gone.push(key.clone());
                                out.removed_secret += 1;
                                continue;
                            }
                            Some(Classification::Pii) if !allow_pii => {
                                out.redacted_pii += 1;
                                if v.is_string() {
                                    *v = Value::String(REDACTED.into());
                                } else {
                                    gone.push(key.clone());
                                }
                                continue;
                            }
                            _ => {}
                        }
                    }
                    if !matches!(v, Value::Object(_) | Value::Array(_))
                        || (self.reach.get(shape).copied().flatten().is_none()
                            && undeclared == Undeclared::Strip
                            && self.is_open_tree(shape))
                    {
                        continue;
                    }
                    let track = undeclared == Undeclared::Report;
                    if track {
                        path.push(key.clone());
                    }
                    self.walk_at(shape, v, undeclared, redact, out, path);
                    if track {
                        path.pop();
                    }
                }
                for key in gone {
                    map.remove(&key);
                }
            }
            Value::Array(items) => {
                let Some(item) = self.items(id, 0) else {
                    return;
                };
                let mut i = 0;
                items.retain_mut(|v| {
                    let keep = match (redact, self.class_of(item, 0)) {
                        (Some(_), Some(Classification::Secret)) => {
                            out.removed_secret += 1;
                            false
                        }
                        (Some(false), Some(Classification::Pii)) if !v.is_string() => {
                            out.redacted_pii += 1;
                            false
                        }
                        (Some(false), Some(Classification::Pii)) => {
                            out.redacted_pii += 1;
                            *v = Value::String(REDACTED.into());
                            true
                        }
                        _ if matches!(v, Value::Object(_) | Value::Array(_)) => {
                            let track = undeclared == Undeclared::Report;
                            if track {
                                path.push(i.to_string());
                            }
                            self.walk_at(item, v, undeclared, redact, out, path);
                            if track {
                                path.pop();
                            }
                            true
                        }
                        _ => true,
                    };
                    i += 1;
                    keep
                });
            }
            _ => {}
        }
    }

    /// A node with nothing to strip below it (cheap skip for free-form data).
    fn is_open_tree(&self, id: ShapeId) -> bool {
        let n = &self.nodes[id];
        n.props.is_empty()
            && n.union.is_empty()
            && n.items.is_none()
            && n.additional == Additional::Open
    }
}

fn classification(
    v: Option<&Value>,
    pointer: &str,
) -> Result<Option<Classification>, crate::ContractError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Classification::parse(s).map(Some).ok_or_else(|| {
            crate::ContractError::new(
                format!("{pointer}/x-classification"),
                format!("`{s}` is not a classification: use public, internal, pii or secret"),
            )
        }),
        Some(_) => Err(crate::ContractError::new(
            format!("{pointer}/x-classification"),
            "must be a string: public, internal, pii or secret",
        )),
    }
}
