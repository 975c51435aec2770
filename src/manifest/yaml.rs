//! A YAML document as a tree that remembers where every node came from.
//!
//! serde_yaml (deprecated upstream) forgets source positions once parsing
//! succeeds, yet every semantic diagnostic must point at `file:line:column`.
//! So the manifest is read from saphyr-parser's event stream into this small
//! tree, and scalars stay untyped text until interpolation has run
//! (`port: ${SQL_PORT}` must become a number after `${SQL_PORT}` is resolved).
//!
//! The builder is iterative and bounded: nesting depth, node count and alias
//! expansion are capped, so anchor bombs and deeply nested input end in a
//! diagnostic instead of a stack overflow or an out-of-memory kill.

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};
use std::collections::HashMap;

/// Deepest nesting accepted; a manifest needs 5.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to (aliases count with their full size).
/// A 10,000-database manifest has about 150,000.
pub const MAX_NODES: usize = 2_000_000;
/// Most text (keys and scalars, in bytes) a document may expand to, aliases
/// included. A count of nodes alone lets one 100 KB string aliased 30,000
/// times through: 3 GB from a 280 KB file.
pub const MAX_TEXT_BYTES: usize = 64 * 1024 * 1024;

/// Where a node sits in the source: 1-based line, 0-based character column,
/// and the character range it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub line: usize,
    pub col: usize,
    pub start: usize,
    pub end: usize,
}

impl From<YamlSpan> for Span {
    fn from(s: YamlSpan) -> Self {
        Span {
            line: s.start.line(),
            col: s.start.col(),
            start: s.start.index(),
            end: s.end.index().max(s.start.index()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>, Span),
    Map(Vec<Entry>, Span),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    /// Plain (unquoted) scalars are typed by YAML's core schema; quoted ones
    /// are always strings.
    pub plain: bool,
    /// `!!str`, `!!int`, ... forces the type, whatever the text looks like.
    pub tag: Option<String>,
    /// The whole text came from one `${VAR}`: typed by what the field needs.
    pub from_env: bool,
    /// Some of the text came from a variable that is set (not only from
    /// `${VAR:-default}` defaults).
    pub from_set_variable: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl Node {
    pub fn span(&self) -> Span {
        match self {
            Node::Scalar(s) => s.span,
            Node::Seq(_, span) | Node::Map(_, span) => *span,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        match self {
            Node::Map(entries, _) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    fn count(&self) -> usize {
        match self {
            Node::Scalar(_) => 1,
            Node::Seq(items, _) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Node::Map(entries, _) => 1 + entries.iter().map(|e| 1 + e.value.count()).sum::<usize>(),
        }
    }

    /// Bytes of text (keys and scalars) in the node.
    fn text_bytes(&self) -> usize {
        match self {
            Node::Scalar(s) => s.text.len(),
            Node::Seq(items, _) => items.iter().map(Node::text_bytes).sum(),
            Node::Map(entries, _) => entries
                .iter()
                .map(|e| e.key.len() + e.value.text_bytes())
                .sum(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub message: String,
    pub span: Span,
}

impl YamlError {
    fn at(span: Span, message: impl Into<String>) -> Self {
        YamlError {
            message: message.into(),
            span,
        }
    }
}

/// A collection being filled, and for maps the key waiting for its value.
enum Open {
    Seq(Vec<Node>, Span, usize),
    Map(Vec<Entry>, Span, usize, Option<(String, Span)>),
}

/// Parses exactly one YAML document. An empty document is an error: a
/// manifest with nothing in it is never what the author meant.
pub fn parse(source: &str) -> Result<Node, YamlError> {
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize, usize)> = HashMap::new();
    let mut nodes = 0usize;
    let mut text_bytes = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0;

    for event in Parser::new_from_str(source) {
        let (event, yspan) = event.map_err(|e| {
            let m = e.marker();
            YamlError::at(
                Span {
                    line: m.line(),
                    col: m.col(),
                    start: m.index(),
                    end: m.index(),
                },
                format!("YAML syntax error: {}", e.info()),
            )
        })?;
        let span = Span::from(yspan);
        let finished: Option<(Node, usize)> = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::at(
                        span,
                        "a manifest is one YAML document, but this file has several (`---`)",
                    ));
                }
                None
            }
            Event::Scalar(text, style, anchor, tag) => {
                text_bytes = text_bytes.saturating_add(text.len());
                let scalar = Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                    tag: tag.map(|t| t.suffix.clone()),
                    from_env: false,
                    from_set_variable: false,
                    span,
                };
                Some((Node::Scalar(scalar), anchor))
            }
            Event::SequenceStart(anchor, _) => {
                push_open(&mut stack, Open::Seq(Vec::new(), span, anchor), span)?;
                None
            }
            Event::MappingStart(anchor, _) => {
                push_open(&mut stack, Open::Map(Vec::new(), span, anchor, None), span)?;
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq(items, start, anchor)) => {
                    Some((Node::Seq(items, close(start, span)), anchor))
                }
                _ => return Err(YamlError::at(span, "unbalanced sequence end")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map(entries, start, anchor, _)) => {
                    Some((Node::Map(entries, close(start, span)), anchor))
                }
                _ => return Err(YamlError::at(span, "unbalanced mapping end")),
            },
            Event::Alias(id) => {
                let Some((node, size, bytes)) = anchors.get(&id) else {
                    return Err(YamlError::at(span, "alias refers to an unknown anchor"));
                };
                // Charge the alias with the full size of what it copies, in
                // nodes and in bytes, before copying: this is what defeats
                // "billion laughs" documents.
                nodes = nodes.saturating_add(*size);
                text_bytes = text_bytes.saturating_add(*bytes);
                if nodes > MAX_NODES {
                    return Err(too_many_nodes(span));
                }
                if text_bytes > MAX_TEXT_BYTES {
                    return Err(YamlError::at(
                        span,
                        format!(
                            "the document expands to more than {} MiB of text (aliases included); \
                             refusing to load it",
                            MAX_TEXT_BYTES >> 20
                        ),
                    ));
                }
                Some((node.clone(), 0))
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
        };

        let Some((node, anchor)) = finished else {
            continue;
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(too_many_nodes(span));
        }
        if anchor != 0 {
            let (size, bytes) = (node.count(), node.text_bytes());
            anchors.insert(anchor, (node.clone(), size, bytes));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq(items, ..)) => items.push(node),
            Some(Open::Map(entries, _, _, pending)) => match pending.take() {
                None => match node {
                    Node::Scalar(s) => {
                        if let Some(first) = entries.iter().find(|e| e.key == s.text) {
                            return Err(YamlError::at(
                                s.span,
                                format!(
                                    "duplicate key `{}` (first defined on line {})",
                                    s.text, first.key_span.line
                                ),
                            ));
                        }
                        *pending = Some((s.text, s.span));
                    }
                    other => {
                        return Err(YamlError::at(
                            other.span(),
                            "mapping keys must be plain strings, not lists or mappings",
                        ));
                    }
                },
                Some((key, key_span)) => entries.push(Entry {
                    key,
                    key_span,
                    value: node,
                }),
            },
        }
    }

    root.ok_or_else(|| YamlError::at(Span::default(), "the manifest is empty"))
}

fn push_open(stack: &mut Vec<Open>, open: Open, span: Span) -> Result<(), YamlError> {
    if stack.len() >= MAX_DEPTH {
        return Err(YamlError::at(
            span,
            format!("nesting is deeper than {MAX_DEPTH} levels; a manifest needs far fewer"),
        ));
    }
    stack.push(open);
    Ok(())
}

fn close(start: Span, end: Span) -> Span {
    Span {
        end: end.end.max(start.start),
        ..start
    }
}

fn too_many_nodes(span: Span) -> YamlError {
    YamlError::at(
        span,
        format!(
            "the document expands to more than {MAX_NODES} nodes (aliases included); \
             refusing to load it"
        ),
    )
}

/// The value of a plain scalar under YAML 1.2's core schema, or of a tagged one.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// A tagged scalar whose text does not fit its tag, or a tag not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("`{0}` is not an integer")]
    NotAnInteger(String),
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("`{0}` is not true or false")]
    NotABool(String),
    #[error("the YAML tag `!{0}` is not supported here")]
    Unsupported(String),
}

impl Scalar {
    pub fn typed(&self) -> Result<Typed<'_>, TagError> {
        let t = self.text.as_str();
        match self.tag.as_deref() {
            Some("str") => return Ok(Typed::Str(t)),
            Some("int") => {
                return int(t)
                    .map(Typed::Int)
                    .ok_or_else(|| TagError::NotAnInteger(t.to_owned()));
            }
            Some("float") => {
                return float(t)
                    .map(Typed::Float)
                    .ok_or_else(|| TagError::NotANumber(t.to_owned()));
            }
            Some("bool") => {
                return bool_(t)
                    .map(Typed::Bool)
                    .ok_or_else(|| TagError::NotABool(t.to_owned()));
            }
            Some("null") => return Ok(Typed::Null),
            Some(other) => return Err(TagError::Unsupported(other.to_owned())),
            None => {}
        }
        if !self.plain {
            return Ok(Typed::Str(t));
        }
        if matches!(t, "" | "~" | "null" | "Null" | "NULL") {
            return Ok(Typed::Null);
        }
        if let Some(b) = bool_(t) {
            return Ok(Typed::Bool(b));
        }
        if let Some(i) = int(t) {
            return Ok(Typed::Int(i));
        }
        if let Some(f) = float(t) {
            return Ok(Typed::Float(f));
        }
        Ok(Typed::Str(t))
    }
}

fn bool_(t: &str) -> Option<bool> {
    match t {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn int(t: &str) -> Option<i64> {
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -value } else { value })
}

fn float(t: &str) -> Option<f64> {
    match t {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    // Rust accepts "inf", "nan" and "1e5" alike; YAML's core schema wants a
    // digit somewhere and no bare words.
    let looks_numeric = t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if looks_numeric { t.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let doc = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap();
        let b = doc.get("b").unwrap();
        assert_eq!((b.key_span.line, b.key_span.col), (2, 0));
        let Node::Seq(items, _) = &b.value else {
            panic!("b is a list")
        };
        assert_eq!(items[1].span().line, 4);
        let Node::Scalar(y) = &items[1] else { panic!() };
        assert!(!y.plain);
    }

    #[test]
    fn types_plain_scalars_by_the_core_schema() {
        let doc = parse("a: 12\nb: '12'\nc: true\nd: ~\ne: 1.5\nf: 0x1F\ng: hello\nh: !!str 7\n")
            .unwrap();
        let typed = |k: &str| match &doc.get(k).unwrap().value {
            Node::Scalar(s) => format!("{:?}", s.typed().unwrap()),
            _ => unreachable!(),
        };
        assert_eq!(typed("a"), "Int(12)");
        assert_eq!(typed("b"), "Str(\"12\")");
        assert_eq!(typed("c"), "Bool(true)");
        assert_eq!(typed("d"), "Null");
        assert_eq!(typed("e"), "Float(1.5)");
        assert_eq!(typed("f"), "Int(31)");
        assert_eq!(typed("g"), "Str(\"hello\")");
        assert_eq!(typed("h"), "Str(\"7\")");
    }

    #[test]
    fn expands_aliases() {
        let doc = parse("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(doc.get("other").unwrap().value.count(), 3);
    }

    #[test]
    fn refuses_alias_bombs() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&doc).unwrap_err();
        assert!(
            err.message.contains("expands to more than"),
            "{}",
            err.message
        );
    }

    #[test]
    fn refuses_deep_nesting() {
        let doc = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let err = parse(&doc).unwrap_err();
        assert!(err.message.contains("nesting is deeper"), "{}", err.message);
        // Far deeper input is stopped by the parser itself, also cleanly.
        let doc = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&doc).is_err());
    }

    #[test]
    fn refuses_duplicate_keys_and_several_documents() {
        assert!(
            parse("a: 1\na: 2\n")
                .unwrap_err()
                .message
                .contains("duplicate key `a`")
        );
        assert!(
            parse("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("several")
        );
        assert!(parse("").unwrap_err().message.contains("empty"));
    }
}
