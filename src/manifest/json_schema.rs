//! A JSON Schema checker for the keywords the manifest's generated schema
//! uses, and no others.
//!
//! A general validator (the `jsonschema` crate) cost a sixth of a fresh
//! build's compile time for one call; the model's schema needs a dozen
//! keywords with their plain meaning from the specification. A test walks
//! the generated schema and fails if it ever uses a keyword that is not in
//! [`KEYWORDS`], so a model change cannot slip past this checker unseen.

use super::path::{FieldPath, Seg};
use regex::Regex;
use serde_json::{Map, Value};
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

/// A compiled schema: the document and its patterns, compiled once.
pub struct Schema {
    root: Value,
    patterns: HashMap<String, Regex>,
}

impl Schema {
    /// Compiles the patterns of `root`; a pattern that does not compile is a
    /// bug in the model, reported as such.
    pub fn new(root: Value) -> Result<Self, String> {
        let mut patterns = HashMap::new();
        let mut unknown = Vec::new();
        collect(&root, &mut patterns, &mut unknown)?;
        if !unknown.is_empty() {
            unknown.sort();
            unknown.dedup();
            return Err(format!(
                "the schema uses keywords this checker does not implement: {}",
                unknown.join(", ")
            ));
        }
        Ok(Schema { root, patterns })
    }

    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Every violation of `value`, not only the first.
    pub fn violations(&self, value: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        self.check(&self.root, value, &mut FieldPath::root(), &mut out);
        out
    }

    fn check(&self, schema: &Value, value: &Value, path: &mut FieldPath, out: &mut Vec<Violation>) {
        let Some(schema) = schema.as_object() else {
            // `true`/`false` schemas: the generated schema only uses `false`
            // as `additionalProperties`, which is handled there.
            return;
        };
        let mut report = |kind| {
            out.push(Violation {
                path: path.clone(),
                kind,
            })
        };
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            match self.resolve(target) {
                Some(target) => self.check(target, value, path, out),
                None => report(Kind::Type { expected: vec![] }),
            }
            return;
        }
        if let Some(types) = schema.get("type") {
            let expected: Vec<String> = match types {
                Value::String(t) => vec![t.clone()],
                Value::Array(ts) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => vec![],
            };
            if !expected.iter().any(|t| is_type(value, t)) {
                report(Kind::Type { expected });
            }
        }
        if let Some(Value::Array(options)) = schema.get("enum")
            && !options.iter().any(|o| json_equal(o, value))
        {
            report(Kind::Enum {
                options: options.clone(),
            });
        }
        if let Some(n) = value.as_f64() {
            if let Some(limit) = schema
                .get("minimum")
                .filter(|l| l.as_f64().is_some_and(|l| n < l))
            {
                report(Kind::Minimum {
                    limit: limit.clone(),
                });
            }
            if let Some(limit) = schema
                .get("maximum")
                .filter(|l| l.as_f64().is_some_and(|l| n > l))
            {
                report(Kind::Maximum {
                    limit: limit.clone(),
                });
            }
        }
        if let Value::String(s) = value {
            let chars = s.chars().count() as u64;
            if let Some(limit) = schema
                .get("minLength")
                .and_then(Value::as_u64)
                .filter(|&l| chars < l)
            {
                report(Kind::MinLength { limit });
            }
            if let Some(limit) = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .filter(|&l| chars > l)
            {
                report(Kind::MaxLength { limit });
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && !self.patterns[pattern].is_match(s)
            {
                report(Kind::Pattern);
            }
        }
        if let Value::Array(items) = value {
            if let Some(limit) = schema
                .get("minItems")
                .and_then(Value::as_u64)
                .filter(|&l| (items.len() as u64) < l)
            {
                report(Kind::MinItems { limit });
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    path.0.push(Seg::Index(i));
                    self.check(item_schema, item, path, out);
                    path.0.pop();
                }
            }
        }
        if let Value::Object(map) = value {
            self.check_object(schema, map, path, out);
        }
        if let Some(Value::Array(alternatives)) = schema.get("anyOf") {
            let mut found = Vec::with_capacity(alternatives.len());
            for alternative in alternatives {
                let mut errors = Vec::new();
                self.check(alternative, value, path, &mut errors);
                if errors.is_empty() {
                    return;
                }
                found.push(errors);
            }
            out.push(Violation {
                path: path.clone(),
                kind: Kind::AnyOf {
                    alternatives: found,
                },
            });
        }
    }

    fn check_object(
        &self,
        schema: &Map<String, Value>,
        map: &Map<String, Value>,
        path: &mut FieldPath,
        out: &mut Vec<Violation>,
    ) {
        if let Some(Value::Array(required)) = schema.get("required") {
            for property in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(property) {
                    out.push(Violation {
                        path: path.clone(),
                        kind: Kind::Required {
                            property: property.to_owned(),
                        },
                    });
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let mut unexpected = Vec::new();
        for (key, item) in map {
            let declared = properties.and_then(|p| p.get(key));
            let item_schema = match (declared, schema.get("additionalProperties")) {
                (Some(s), _) => s,
                (None, Some(Value::Bool(false))) => {
                    unexpected.push(key.clone());
                    continue;
                }
                (None, Some(s)) => s,
                (None, None) => continue,
            };
            path.0.push(Seg::Key(key.clone()));
            self.check(item_schema, item, path, out);
            path.0.pop();
        }
        if !unexpected.is_empty() {
            out.push(Violation {
                path: path.clone(),
                kind: Kind::AdditionalProperties { unexpected },
            });
        }
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        self.root.pointer(reference.strip_prefix('#')?)
    }
}

/// Compiles every `pattern` and notes keywords outside [`KEYWORDS`].
fn collect(
    schema: &Value,
    patterns: &mut HashMap<String, Regex>,
    unknown: &mut Vec<String>,
) -> Result<(), String> {
    let Some(map) = schema.as_object() else {
        return Ok(());
    };
    for (key, value) in map {
        if !KEYWORDS.contains(&key.as_str()) {
            unknown.push(key.clone());
        }
        match key.as_str() {
            "pattern" => {
                let text = value.as_str().unwrap_or_default();
                let regex = Regex::new(text).map_err(|e| format!("pattern {text:?}: {e}"))?;
                patterns.insert(text.to_owned(), regex);
            }
            "properties" | "$defs" => {
                for sub in value.as_object().into_iter().flat_map(Map::values) {
                    collect(sub, patterns, unknown)?;
                }
            }
            "anyOf" => {
                for sub in value.as_array().into_iter().flatten() {
                    collect(sub, patterns, unknown)?;
                }
            }
            "items" | "additionalProperties" => collect(value, patterns, unknown)?,
            _ => {}
        }
    }
    Ok(())
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
        assert!(err.contains("oneOf"), "{err}");
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
