//! Field paths (`databases[3].name`) and the source spans they lead to.

use super::yaml::{Node, Span};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A segment borrowed from the tree, for walks over every node: building
/// an owned [`FieldPath`] per node is most of the cost of loading a large
/// manifest, so walks keep a stack of these and convert only for a diagnostic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegRef<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn from_refs(refs: &[SegRef<'_>]) -> Self {
        FieldPath(
            refs.iter()
                .map(|r| match r {
                    SegRef::Key(k) => Seg::Key((*k).to_owned()),
                    SegRef::Index(i) => Seg::Index(*i),
                })
                .collect(),
        )
    }

    pub fn refs(&self) -> Vec<SegRef<'_>> {
        self.0
            .iter()
            .map(|s| match s {
                Seg::Key(k) => SegRef::Key(k),
                Seg::Index(i) => SegRef::Index(*i),
            })
            .collect()
    }

    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-'))
}

/// What a path points at in the source.
pub enum Target {
    /// The value at the path.
    Value,
    /// The key that introduces the value (for "unknown key" and the like).
    Key,
}

/// The node at `path`, if there is one.
pub fn node_at<'a>(root: &'a Node, path: &FieldPath) -> Option<&'a Node> {
    let mut node = root;
    for seg in &path.0 {
        node = match (seg, node) {
            (Seg::Key(k), Node::Map(..)) => &node.get(k)?.value,
            (Seg::Index(i), Node::Seq(items, _)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The span of the node at `path`, or of the deepest ancestor that exists
/// (a missing key is reported where its mapping is).
pub fn span_of(root: &Node, path: &FieldPath, target: Target) -> Span {
    let mut node = root;
    let mut key_span = None;
    for seg in &path.0 {
        let next = match (seg, node) {
            (Seg::Key(k), Node::Map(..)) => node.get(k).map(|e| (&e.value, Some(e.key_span))),
            (Seg::Index(i), Node::Seq(items, _)) => items.get(*i).map(|n| (n, None)),
            _ => None,
        };
        match next {
            Some((n, ks)) => {
                node = n;
                key_span = ks;
            }
            None => return key_span.unwrap_or(node.span()),
        }
    }
    match (target, key_span) {
        (Target::Key, Some(ks)) => ks,
        _ => node.span(),
    }
}

/// The path of the scalar at `span`, found by a search of the tree (for the
/// rare diagnostic of a walk that does not track paths).
pub fn path_of_scalar(root: &Node, span: Span) -> Option<FieldPath> {
    fn search<'a>(node: &'a Node, span: Span, path: &mut Vec<SegRef<'a>>) -> bool {
        match node {
            Node::Scalar(s) => s.span == span,
            Node::Seq(items, _) => items.iter().enumerate().any(|(i, n)| {
                path.push(SegRef::Index(i));
                search(n, span, path) || {
                    path.pop();
                    false
                }
            }),
            Node::Map(entries, _) => entries.iter().any(|e| {
                path.push(SegRef::Key(&e.key));
                search(&e.value, span, path) || {
                    path.pop();
                    false
                }
            }),
        }
    }
    let mut path = Vec::new();
    search(root, span, &mut path).then(|| FieldPath::from_refs(&path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::yaml;

    #[test]
    fn formats_like_a_field_access() {
        let p = FieldPath::root()
            .key("instances")
            .key("my inst")
            .key("api")
            .index(2);
        assert_eq!(p.to_string(), "instances[\"my inst\"].api[2]");
        assert_eq!(
            FieldPath::root()
                .key("databases")
                .index(3)
                .key("name")
                .to_string(),
            "databases[3].name"
        );
    }

    #[test]
    fn finds_values_keys_and_nearest_ancestors() {
        let root = yaml::parse("a:\n  b: [x, y]\n").unwrap();
        let p = FieldPath::root().key("a").key("b");
        assert_eq!(span_of(&root, &p.index(1), Target::Value).col, 9);
        assert_eq!(span_of(&root, &p, Target::Key).col, 2);
        assert_eq!(span_of(&root, &p.key("zz"), Target::Value).line, 2);
    }
}
