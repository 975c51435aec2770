//! A JSON Schema checker for the keywords the manifest's generated schema
//! uses, and no others.
//!
//! A general validator (the `jsonschema` crate) cost a sixth of a fresh
//! build's compile time for one call; the model's schema needs a dozen
//! keywords with their plain meaning from the specification. A test walks
//! the generated schema and fails if it ever uses a keyword that is not in
//! [`KEYWORDS`], so a model change cannot slip past this checker unseen.

use super::path::{FieldPath, SegRef};
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;

/// Every keyword this checker knows: the ones it enforces, then the
/// annotations it may ignore.
pub const KEYWORDS: &[&str] = &[
    "$ref",
    "additionalProperties",
    "anyOf",
    "enum",
    "items",
    "maxLength",
    "maximum",
    "minItems",
    "minLength",
    "minimum",
    "pattern",
    "properties",
    "required",
    "type",
    // annotations
    "$defs",
    "$id",
    "$schema",
    "default",
    "description",
    "examples",
    "format",
    "title",
    "writeOnly",
];

/// One broken rule, at the place in the instance where it breaks.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub path: FieldPath,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Keys of a mapping that no `properties` entry names.
    AdditionalProperties {
        unexpected: Vec<String>,
    },
    Required {
        property: String,
    },
    /// The JSON types the schema allows here.
    Type {
        expected: Vec<String>,
    },
    Enum {
        options: Vec<Value>,
    },
    Minimum {
        limit: Value,
    },
    Maximum {
        limit: Value,
    },
    MinLength {
        limit: u64,
    },
    MaxLength {
        limit: u64,
    },
    MinItems {
        limit: u64,
    },
    Pattern,
    /// No alternative fits; what each alternative found, in order.
    AnyOf {
        alternatives: Vec<Vec<Violation>>,
    },
}

/// A compiled schema: every subschema turned into a [`Node`] once, so that
/// checking a value looks nothing up by keyword (a manifest of 10,000
/// databases is some 150,000 values).
pub struct Schema {
    root: Value,
    nodes: Vec<Node>,
}

#[derive(Default)]
struct Node {
    /// The `type` names, and whether each JSON type is among them.
    types: Option<(Vec<String>, [bool; TYPES.len()])>,
    enumeration: Option<Vec<Value>>,
    minimum: Option<(f64, Value)>,
    maximum: Option<(f64, Value)>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<Regex>,
    min_items: Option<u64>,
    items: Option<usize>,
    required: Vec<String>,
    properties: HashMap<String, usize>,
    additional: Additional,
    any_of: Vec<usize>,
    /// `$ref`: the node stands for its target, and nothing else.
    reference: Option<usize>,
}

#[derive(Default)]
enum Additional {
    #[default]
    Allowed,
    Forbidden,
    Checked(usize),
}

/// The JSON types, in the order of [`Node::types`]' flags.
const TYPES: [&str; 7] = [
    "null", "boolean", "string", "array", "object", "number", "integer",
];

/// Why a schema cannot be checked with: a bug in the model, since the
/// schema is generated from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("the schema uses keywords this checker does not implement: {}", .0.join(", "))]
    UnknownKeywords(Vec<String>),
    #[error("pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("`$ref` {0:?} points nowhere")]
    Dangling(String),
}

impl Schema {
    /// Compiles `root`; a keyword outside [`KEYWORDS`] or a pattern that
    /// does not compile is a bug in the model, reported as such.
    pub fn new(root: Value) -> Result<Self, SchemaError> {
        let mut unknown = Vec::new();
        let mut compiler = Compiler {
            root: &root,
            nodes: Vec::new(),
            by_ref: HashMap::new(),
            unknown: &mut unknown,
        };
        compiler.compile(&root)?;
        let nodes = compiler.nodes;
        if !unknown.is_empty() {
            unknown.sort();
            unknown.dedup();
            return Err(SchemaError::UnknownKeywords(
                unknown.iter().map(|k| k.to_string()).collect(),
            ));
        }
        Ok(Schema { root, nodes })
    }

    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Every violation of `value`, not only the first.
    pub fn violations(&self, value: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        self.check(0, value, &mut Vec::new(), &mut out);
        out
    }

    fn check<'v>(
        &self,
        id: usize,
        value: &'v Value,
        path: &mut Vec<SegRef<'v>>,
        out: &mut Vec<Violation>,
    ) {
        let node = &self.nodes[id];
        if let Some(target) = node.reference {
            return self.check(target, value, path, out);
        }
        let report = |out: &mut Vec<Violation>, path: &[SegRef<'_>], kind| {
            out.push(Violation {
                path: FieldPath::from_refs(path),
                kind,
            })
        };
        if let Some((names, allowed)) = &node.types
            && !allowed
                .iter()
                .zip(TYPES)
                .any(|(&yes, name)| yes && is_type(value, name))
        {
            let expected = names.clone();
            report(out, path, Kind::Type { expected });
        }
        if let Some(options) = &node.enumeration
            && !options.iter().any(|o| json_equal(o, value))
        {
            let options = options.clone();
            report(out, path, Kind::Enum { options });
        }
        match value {
            Value::Number(n) => {
                let n = n.as_f64().unwrap_or(f64::NAN);
                if let Some((limit, shown)) = &node.minimum
                    && n < *limit
                {
                    let limit = shown.clone();
                    report(out, path, Kind::Minimum { limit });
                }
                if let Some((limit, shown)) = &node.maximum
                    && n > *limit
                {
                    let limit = shown.clone();
                    report(out, path, Kind::Maximum { limit });
                }
            }
            Value::String(s) => {
                let chars = s.chars().count() as u64;
                if let Some(limit) = node.min_length.filter(|&l| chars < l) {
                    report(out, path, Kind::MinLength { limit });
                }
                if let Some(limit) = node.max_length.filter(|&l| chars > l) {
                    report(out, path, Kind::MaxLength { limit });
                }
                if node.pattern.as_ref().is_some_and(|p| !p.is_match(s)) {
                    report(out, path, Kind::Pattern);
                }
            }
            Value::Array(items) => {
                if let Some(limit) = node.min_items.filter(|&l| (items.len() as u64) < l) {
                    report(out, path, Kind::MinItems { limit });
                }
                if let Some(item_node) = node.items {
                    for (i, item) in items.iter().enumerate() {
                        path.push(SegRef::Index(i));
                        self.check(item_node, item, path, out);
                        path.pop();
                    }
                }
            }
            Value::Object(map) => {
                for property in &node.required {
                    if !map.contains_key(property) {
                        let property = property.clone();
                        report(out, path, Kind::Required { property });
                    }
                }
                let mut unexpected = Vec::new();
                for (key, item) in map {
                    let item_node = match (node.properties.get(key), &node.additional) {
                        (Some(&n), _) | (None, &Additional::Checked(n)) => n,
                        (None, Additional::Forbidden) => {
                            unexpected.push(key.clone());
                            continue;
                        }
                        (None, Additional::Allowed) => continue,
                    };
                    path.push(SegRef::Key(key));
                    self.check(item_node, item, path, out);
                    path.pop();
                }
                if !unexpected.is_empty() {
                    report(out, path, Kind::AdditionalProperties { unexpected });
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
        if !node.any_of.is_empty() {
            let mut found = Vec::with_capacity(node.any_of.len());
            for &alternative in &node.any_of {
                let mut errors = Vec::new();
                self.check(alternative, value, path, &mut errors);
                if errors.is_empty() {
                    return;
                }
                found.push(errors);
            }
            report(
                out,
                path,
                Kind::AnyOf {
                    alternatives: found,
                },
            );
        }
    }
}

struct Compiler<'s, 'u> {
    root: &'s Value,
    nodes: Vec<Node>,
    /// `$ref` targets compiled so far, so a definition is compiled once
    /// (and a recursive one terminates).
    by_ref: HashMap<&'s str, usize>,
    unknown: &'u mut Vec<String>,
}

impl<'s> Compiler<'s, '_> {
    fn compile(&mut self, schema: &'s Value) -> Result<usize, SchemaError> {
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        // `true`/`false` schemas: the generated schema uses `false` only as
        // `additionalProperties`, which is handled there.
        let Some(map) = schema.as_object() else {
            return Ok(id);
        };
        let mut node = Node::default();
        for (key, value) in map {
            if !KEYWORDS.contains(&key.as_str()) {
                self.unknown.push(key.clone());
            }
            match key.as_str() {
                "$ref" => {
                    let target = value.as_str().unwrap_or_default();
                    node.reference = Some(self.reference(target)?);
                }
                "type" => {
                    let names: Vec<String> = match value {
                        Value::String(t) => vec![t.clone()],
                        Value::Array(ts) => ts
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                        _ => vec![],
                    };
                    let allowed = TYPES.map(|t| names.iter().any(|n| n == t));
                    node.types = Some((names, allowed));
                }
                "enum" => node.enumeration = value.as_array().cloned(),
                "minimum" => node.minimum = value.as_f64().map(|l| (l, value.clone())),
                "maximum" => node.maximum = value.as_f64().map(|l| (l, value.clone())),
                "minLength" => node.min_length = value.as_u64(),
                "maxLength" => node.max_length = value.as_u64(),
                "minItems" => node.min_items = value.as_u64(),
                "pattern" => {
                    let text = value.as_str().unwrap_or_default();
                    let regex = Regex::new(text).map_err(|e| SchemaError::Pattern {
                        pattern: text.to_string(),
                        reason: e.to_string(),
                    })?;
                    node.pattern = Some(regex);
                }
                "required" => {
                    node.required = value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                }
                "properties" => {
                    for (name, sub) in value.as_object().into_iter().flatten() {
                        let sub = self.compile(sub)?;
                        node.properties.insert(name.clone(), sub);
                    }
                }
                "additionalProperties" => {
                    node.additional = match value {
                        Value::Bool(false) => Additional::Forbidden,
                        Value::Bool(true) => Additional::Allowed,
                        sub => Additional::Checked(self.compile(sub)?),
                    };
                }
                "items" => node.items = Some(self.compile(value)?),
                "anyOf" => {
                    for sub in value.as_array().into_iter().flatten() {
                        let sub = self.compile(sub)?;
                        node.any_of.push(sub);
                    }
                }
                // Definitions are compiled when a `$ref` names them, but
                // their keywords are vetted all the same.
                "$defs" => {
                    for sub in value.as_object().into_iter().flatten().map(|(_, v)| v) {
                        self.vet(sub);
                    }
                }
                _ => {}
            }
        }
        self.nodes[id] = node;
        Ok(id)
    }

    fn reference(&mut self, target: &'s str) -> Result<usize, SchemaError> {
        if let Some(&id) = self.by_ref.get(target) {
            return Ok(id);
        }
        let schema = target
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer))
            .ok_or_else(|| SchemaError::Dangling(target.to_string()))?;
        // Known before it is compiled, so a definition that refers to
        // itself ends up pointing at its own node.
        let id = self.nodes.len();
        self.by_ref.insert(target, id);
        let compiled = self.compile(schema)?;
        debug_assert_eq!(compiled, id);
        Ok(id)
    }

    /// Notes the unknown keywords of a subschema without compiling it.
    fn vet(&mut self, schema: &Value) {
        for (key, value) in schema.as_object().into_iter().flatten() {
            if !KEYWORDS.contains(&key.as_str()) {
                self.unknown.push(key.clone());
            }
            match (key.as_str(), value) {
                ("properties" | "$defs", Value::Object(subs)) => {
                    subs.values().for_each(|sub| self.vet(sub))
                }
                ("anyOf", Value::Array(subs)) => subs.iter().for_each(|sub| self.vet(sub)),
                ("items" | "additionalProperties", sub) => self.vet(sub),
                _ => {}
            }
        }
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        // The specification counts 2.0 as an integer.
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// Equality as JSON Schema defines it: numbers by value, not by how they
/// were written.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::super::path::Seg;
    use super::*;
    use serde_json::json;

    fn kinds(schema: Value, value: Value) -> Vec<(String, Kind)> {
        Schema::new(schema)
            .unwrap()
            .violations(&value)
            .into_iter()
            .map(|v| (v.path.to_string(), v.kind))
            .collect()
    }

    #[test]
    fn the_generated_schema_uses_only_known_keywords() {
        Schema::new(super::super::structure::schema()).expect("every keyword is implemented");
        let err = Schema::new(json!({"type": "object", "oneOf": []}))
            .err()
            .unwrap();
        assert_eq!(err, SchemaError::UnknownKeywords(vec!["oneOf".into()]));
    }

    #[test]
    fn each_keyword_reports_its_violation() {
        let schema = json!({
            "type": "object",
            "required": ["a", "b"],
            "additionalProperties": false,
            "properties": {
                "a": {"type": "integer", "minimum": 1, "maximum": 3},
                "s": {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^x"},
                "e": {"enum": ["one", "two"]},
                "l": {"type": "array", "minItems": 2, "items": {"type": "boolean"}},
                "u": {"anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]}
            },
            "$defs": {"n": {"type": "object", "properties": {}, "additionalProperties": {"type": "integer"}}}
        });
        let found = kinds(
            schema,
            json!({"a": 0, "s": "yyyy", "e": "three", "l": [1], "u": {"k": "v"}, "zz": 1}),
        );
        let expect = |path: &str, kind: Kind| (path.to_owned(), kind);
        assert_eq!(
            found,
            vec![
                expect(
                    "",
                    Kind::Required {
                        property: "b".into()
                    }
                ),
                expect("a", Kind::Minimum { limit: json!(1) }),
                expect(
                    "e",
                    Kind::Enum {
                        options: vec![json!("one"), json!("two")]
                    }
                ),
                expect("l", Kind::MinItems { limit: 2 }),
                expect(
                    "l[0]",
                    Kind::Type {
                        expected: vec!["boolean".into()]
                    }
                ),
                expect("s", Kind::MaxLength { limit: 3 }),
                expect("s", Kind::Pattern),
                expect(
                    "u",
                    Kind::AnyOf {
                        alternatives: vec![
                            vec![Violation {
                                path: FieldPath(vec![Seg::Key("u".into()), Seg::Key("k".into())]),
                                kind: Kind::Type {
                                    expected: vec!["integer".into()]
                                },
                            }],
                            vec![Violation {
                                path: FieldPath(vec![Seg::Key("u".into())]),
                                kind: Kind::Type {
                                    expected: vec!["null".into()]
                                },
                            }],
                        ]
                    }
                ),
                expect(
                    "",
                    Kind::AdditionalProperties {
                        unexpected: vec!["zz".into()]
                    }
                ),
            ]
        );
    }

    #[test]
    fn valid_values_pass_and_numbers_compare_by_value() {
        let schema = json!({"type": "array", "items": {"type": "integer", "enum": [2]}});
        assert!(kinds(schema, json!([2, 2.0])).is_empty());
        assert!(kinds(json!({"type": ["string", "null"]}), json!(null)).is_empty());
        assert_eq!(
            kinds(json!({"type": "integer"}), json!(2.5)),
            vec![(
                "".into(),
                Kind::Type {
                    expected: vec!["integer".into()]
                }
            )]
        );
    }
}
