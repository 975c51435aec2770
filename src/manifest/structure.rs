//! The structural check: the manifest, as JSON, against the JSON Schema that
//! is generated from the model. Every violation is reported (not just the
//! first), in words for the manifest author, at the place in the source.

use super::json_schema::{Kind, Schema, Violation};
use super::model::Manifest;
use super::path::{FieldPath, Seg, SegRef, Target, span_of};
use super::yaml::{Entry, Node, Typed};
use crate::diagnostic::Diagnostic;
use serde_json::{Map, Value};
use std::sync::LazyLock;

/// The manifest's JSON Schema, as `sqlflex-import schema` prints it.
pub fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Manifest)).expect("the schema serializes")
}

static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::new(schema()).expect("the generated schema is checkable"));

/// Converts the (interpolated) YAML tree to JSON, typing plain scalars.
/// Scalar texts are moved, not copied: afterwards the tree keeps its keys
/// and spans, which is all diagnostics need (on a large manifest the copies
/// were a third of the load time).
///
/// A plain number or boolean where the schema wants a string becomes the
/// string it was written as (`instance_id: 12345`, a numeric password from
/// `${SQL_PASSWORD}`). Scalars whose tag cannot apply are reported and
/// become null.
pub fn into_json<'a>(
    node: &'a mut Node,
    path: &mut Vec<SegRef<'a>>,
    problems: &mut Vec<(FieldPath, String)>,
) -> Value {
    match node {
        Node::Scalar(s) => {
            let value = match s.typed() {
                Ok(Typed::Str(_)) => None,
                // `password: ${PW}` with PW=null is the text "null", not no value.
                Ok(Typed::Null)
                    if s.from_env && !s.text.is_empty() && expects_string(SCHEMA.root(), path) =>
                {
                    None
                }
                Ok(Typed::Null) => Some(Value::Null),
                Ok(_) if s.tag.is_none() && expects_string(SCHEMA.root(), path) => None,
                Ok(Typed::Bool(b)) => Some(Value::Bool(b)),
                Ok(Typed::Int(i)) => Some(Value::from(i)),
                Ok(Typed::Float(f)) => {
                    Some(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
                }
                Err(e) => {
                    problems.push((FieldPath::from_refs(path), e.to_string()));
                    Some(Value::Null)
                }
            };
            value.unwrap_or_else(|| Value::String(std::mem::take(&mut s.text)))
        }
        Node::Seq(items, _) => Value::Array(
            items
                .iter_mut()
                .enumerate()
                .map(|(i, n)| {
                    path.push(SegRef::Index(i));
                    let v = into_json(n, path, problems);
                    path.pop();
                    v
                })
                .collect(),
        ),
        Node::Map(entries, _) => Value::Object(
            entries
                .iter_mut()
                .map(|e| {
                    let Entry { key, value, .. } = e;
                    let key: &'a String = key;
                    path.push(SegRef::Key(key));
                    let v = into_json(value, path, problems);
                    path.pop();
                    (key.clone(), v)
                })
                .collect::<Map<_, _>>(),
        ),
    }
}

/// Whether the schemas that apply at `path` take a string (or null) and
/// nothing else.
fn expects_string(schema: &Value, path: &[SegRef<'_>]) -> bool {
    let mut types = schemas_at(schema, path)
        .into_iter()
        .flat_map(|s| match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec!["any"],
        });
    let mut saw_string = false;
    let only_strings = types.all(|t| {
        saw_string |= t == "string";
        t == "string" || t == "null"
    });
    only_strings && saw_string
}

pub fn check(tree: &Node, value: &Value) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for violation in SCHEMA.violations(value) {
        describe(tree, SCHEMA.root(), value, &violation, &mut out);
    }
    out
}

fn describe(
    tree: &Node,
    schema: &Value,
    value: &Value,
    violation: &Violation,
    out: &mut Vec<Diagnostic>,
) {
    let path = &violation.path;
    let at_value = |d: Diagnostic| {
        let span = span_of(tree, path, Target::Value);
        d.at(path.to_string(), Some(super::location(span)))
    };
    let name = match path.0.last() {
        Some(Seg::Key(k)) => format!("`{k}`"),
        Some(Seg::Index(i)) => format!("item {i}"),
        None => "the manifest".to_owned(),
    };
    match &violation.kind {
        Kind::AdditionalProperties { unexpected } => {
            let allowed = property_names(schema, path);
            for key in unexpected {
                let key_path = path.key(key);
                let span = span_of(tree, &key_path, Target::Key);
                let mut d = Diagnostic::error(format!("unknown key `{key}`"))
                    .at(key_path.to_string(), Some(super::location(span)));
                d = match closest(key, &allowed) {
                    Some(near) => d.hint(format!("did you mean `{near}`?")),
                    None if !allowed.is_empty() => {
                        d.hint(format!("allowed keys here: {}", allowed.join(", ")))
                    }
                    None => d,
                };
                out.push(d);
            }
        }
        Kind::Required { property } => {
            let key = property.as_str();
            let span = span_of(tree, path, Target::Key);
            let where_ = if path.0.is_empty() {
                "the manifest".to_owned()
            } else {
                format!("`{path}`")
            };
            out.push(
                Diagnostic::error(format!("missing required key `{key}` in {where_}"))
                    .at(path.key(key).to_string(), Some(super::location(span))),
            );
        }
        Kind::Type { expected } => {
            let found = json_type(lookup(value, path));
            out.push(at_value(Diagnostic::error(format!(
                "{name} must be {}, not {found}",
                expected_types(expected)
            ))));
        }
        Kind::Enum { options } => {
            let options: Vec<String> = options
                .iter()
                .map(|o| match o {
                    Value::String(s) => format!("`{s}`"),
                    other => format!("`{other}`"),
                })
                .collect();
            out.push(at_value(
                Diagnostic::error(format!("{name} must be one of {}", options.join(", ")))
                    .hint(near_value(lookup(value, path), &options)),
            ));
        }
        Kind::Minimum { limit } => {
            out.push(at_value(Diagnostic::error(format!(
                "{name} must be at least {limit}"
            ))));
        }
        Kind::Maximum { limit } => {
            out.push(at_value(Diagnostic::error(format!(
                "{name} must be at most {limit}"
            ))));
        }
        Kind::MinLength { limit: 1 } | Kind::MinItems { limit: 1 } => {
            out.push(at_value(Diagnostic::error(format!(
                "{name} must not be empty"
            ))));
        }
        Kind::MinLength { limit } => {
            out.push(at_value(Diagnostic::error(format!(
                "{name} must have at least {limit} characters"
            ))));
        }
        Kind::MaxLength { limit } => {
            out.push(at_value(Diagnostic::error(format!(
                "{name} must have at most {limit} characters"
            ))));
        }
        Kind::MinItems { limit } => {
            out.push(at_value(Diagnostic::error(format!(
                "{name} must have at least {limit} items"
            ))));
        }
        Kind::Pattern => {
            let d = Diagnostic::error(format!("{name} has the wrong format"));
            let d = match path.0.last() {
                Some(Seg::Key(k)) if k == "timeout" => {
                    d.hint("write a duration such as `2h`, `90m` or `1h 30m`")
                }
                _ => d,
            };
            out.push(at_value(d));
        }
        Kind::AnyOf { alternatives } => {
            // Keep only the alternatives whose shape fits (an object against the
            // `{prefix}` form, a list against the list form) and explain those.
            let fitting: Vec<_> = alternatives
                .iter()
                .filter(|found| {
                    !found
                        .iter()
                        .any(|v| matches!(v.kind, Kind::Type { .. }) && v.path == *path)
                })
                .collect();
            match fitting.as_slice() {
                [only] => only
                    .iter()
                    .for_each(|v| describe(tree, schema, value, v, out)),
                _ => out.push(at_value(
                    Diagnostic::error(format!("{name} has none of the allowed forms"))
                        .hint(forms_hint(path)),
                )),
            }
        }
    }
}

fn forms_hint(path: &FieldPath) -> String {
    match path.0.last() {
        Some(Seg::Key(k)) if k == "files" => {
            "`files` is a list of keys or s3:// URIs, or a mapping `{prefix: some/folder/}`".into()
        }
        _ => "see `sqlflex-import schema` for the allowed forms".into(),
    }
}

fn expected_types(expected: &[String]) -> String {
    let names = expected
        .iter()
        .filter(|t| expected.len() == 1 || *t != "null");
    let words: Vec<&str> = names
        .map(|t| match t.as_str() {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "a string",
            "integer" => "a whole number",
            "number" => "a number",
            "boolean" => "true or false",
            _ => "null",
        })
        .collect();
    words.join(" or ")
}

fn json_type(value: Option<&Value>) -> &'static str {
    match value {
        None | Some(Value::Null) => "empty",
        Some(Value::Bool(_)) => "true/false",
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => "a whole number",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "a list",
        Some(Value::Object(_)) => "a mapping",
    }
}

fn lookup<'v>(value: &'v Value, path: &FieldPath) -> Option<&'v Value> {
    path.0.iter().try_fold(value, |v, seg| match seg {
        Seg::Key(k) => v.get(k.as_str()),
        Seg::Index(i) => v.get(*i),
    })
}

fn near_value(found: Option<&Value>, options: &[String]) -> String {
    let found = found.and_then(Value::as_str).unwrap_or_default();
    let bare: Vec<String> = options
        .iter()
        .map(|o| o.trim_matches('`').to_owned())
        .collect();
    match closest(found, &bare) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("use one of {}", options.join(", ")),
    }
}

/// The nearest candidate by edit distance, if it is near enough to be a typo.
pub fn closest(word: &str, candidates: &[String]) -> Option<String> {
    let lower = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

/// The concrete (non-union) schemas that apply to the value at `path`.
fn schemas_at<'s>(schema: &'s Value, path: &[SegRef<'_>]) -> Vec<&'s Value> {
    let mut current = vec![resolve(schema, schema)];
    for seg in path {
        current = current
            .into_iter()
            .flat_map(|s| alternatives(schema, s))
            .filter_map(|s| match seg {
                SegRef::Key(k) => s
                    .get("properties")
                    .and_then(|p| p.get(*k))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object())),
                SegRef::Index(_) => s.get("items"),
            })
            .map(|s| resolve(schema, s))
            .collect();
    }
    current
        .into_iter()
        .flat_map(|s| alternatives(schema, s))
        .filter(|s| s.get("anyOf").is_none() && s.get("oneOf").is_none())
        .collect()
}

/// The keys the schema allows for the mapping at `path`.
fn property_names(schema: &Value, path: &FieldPath) -> Vec<String> {
    let mut names: Vec<String> = schemas_at(schema, &path.refs())
        .into_iter()
        .filter_map(|s| s.get("properties").and_then(Value::as_object))
        .flat_map(|p| p.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn alternatives<'s>(root: &'s Value, s: &'s Value) -> Vec<&'s Value> {
    let mut out = vec![s];
    for key in ["anyOf", "oneOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            out.extend(list.iter().map(|b| resolve(root, b)));
        }
    }
    out
}

fn resolve<'s>(root: &'s Value, s: &'s Value) -> &'s Value {
    match s
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => root.pointer(pointer).map_or(s, |t| resolve(root, t)),
        None => s,
    }
}
