//! Loading a manifest: read, parse with positions, interpolate `${VAR}`,
//! check the structure against the schema, type it, run the semantic checks.
//! Every stage reports all it finds before the load gives up, so one run of
//! `validate` shows every problem of the file.

pub mod checks;
pub mod interpolate;
mod json_schema;
pub mod model;
pub mod path;
pub mod select;
pub mod structure;
pub mod valid;
pub mod verify;
pub mod yaml;

pub use model::*;

use crate::diagnostic::{Diagnostic, Location, Shift, Source};
use path::{FieldPath, SegRef};
use std::io::Read;
use std::path::{Path, PathBuf};
use valid::ValidManifest;
use yaml::{Node, Span};

/// Largest manifest read. A 10,000-database manifest is about 1.5 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 32 * 1024 * 1024;

/// A manifest that passed every check.
#[derive(Debug)]
pub struct Loaded {
    /// The document as written (secrets read from their files).
    pub manifest: Manifest,
    /// What the pipeline works from: defaults applied, no `Option` for
    /// what the checks proved present.
    pub valid: ValidManifest,
    pub source: SourceText,
    pub warnings: Vec<Diagnostic>,
    /// The folder of the manifest; relative paths in it are resolved from here.
    pub dir: PathBuf,
}

/// A manifest that did not, with everything found wrong.
#[derive(Debug)]
pub struct Rejected {
    pub source: SourceText,
    pub diagnostics: Vec<Diagnostic>,
}

/// The manifest's text with literal secrets masked, ready for snippets.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub name: String,
    pub text: String,
    /// Where masking changed a line's length (a mask has one width whatever
    /// the secret's length), so columns can be mapped onto `text`.
    pub shifts: Vec<Shift>,
}

impl SourceText {
    pub fn as_source(&self) -> Source {
        Source::new(self.name.clone(), self.text.clone()).with_shifts(self.shifts.clone())
    }
}

pub use crate::environment::Env;

/// The process environment, for [`load`].
pub fn process_env(name: &str) -> Option<String> {
    crate::environment::var(name)
}

pub fn load(path: &Path, env: Env) -> Result<Loaded, Rejected> {
    let (name, text, dir) = read(path)?;
    load_str(&name, &text, &dir, env)
}

/// What a manifest is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// To import its databases: it must name at least one.
    Import,
    /// As the base of `discover`: its `s3`, `instances`, `defaults` and
    /// `concurrency` are used; `databases` may be absent or empty.
    Base,
    /// To check it (`validate`) on a machine that need not hold the
    /// secrets: an unset variable or a secret file that cannot be read is
    /// a warning naming it (`plan` and `apply` need it).
    Check,
}

/// A manifest checked without its environment ([`Purpose::Check`]): the
/// document and what was found, none of it an error.
#[derive(Debug)]
pub struct Checked {
    pub manifest: Manifest,
    pub source: SourceText,
    pub warnings: Vec<Diagnostic>,
}

/// Checks a manifest as `validate` does without `--strict`.
pub fn check(path: &Path, env: Env) -> Result<Checked, Rejected> {
    let (name, text, dir) = read(path)?;
    let (manifest, _, source, warnings) = pipeline(&name, &text, &dir, env, Purpose::Check)?;
    Ok(Checked {
        manifest,
        source,
        warnings,
    })
}

/// [`load`] for a [`Purpose`]; also returns the text as read, for a
/// caller that writes the manifest out again.
pub fn load_for(path: &Path, env: Env, purpose: Purpose) -> Result<(Loaded, String), Rejected> {
    let (name, text, dir) = read(path)?;
    let loaded = load_str_for(&name, &text, &dir, env, purpose)?;
    Ok((loaded, text))
}

/// The manifest's name, text and folder.
fn read(path: &Path) -> Result<(String, String, PathBuf), Rejected> {
    let name = path.display().to_string();
    let reject = |message: String| Rejected {
        source: SourceText {
            name: name.clone(),
            text: String::new(),
            shifts: Vec::new(),
        },
        diagnostics: vec![Diagnostic::error(message)],
    };
    let file =
        std::fs::File::open(path).map_err(|e| reject(format!("cannot open `{name}`: {e}")))?;
    // Read through `take` rather than trusting metadata: the manifest may be
    // a pipe or a device.
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| reject(format!("cannot read `{name}`: {e}")))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(reject(format!(
            "`{name}` is larger than {} MiB; a manifest of 10,000 databases is about 2 MiB",
            MAX_MANIFEST_BYTES / (1024 * 1024)
        )));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            let mut rejected = reject(format!("`{name}` is not UTF-8 text"));
            rejected.diagnostics[0].location = Some(Location {
                line,
                column,
                len: 1,
            });
            return Err(rejected);
        }
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((name, text, dir))
}

pub fn load_str(name: &str, text: &str, dir: &Path, env: Env) -> Result<Loaded, Rejected> {
    load_str_for(name, text, dir, env, Purpose::Import)
}

pub fn load_str_for(
    name: &str,
    text: &str,
    dir: &Path,
    env: Env,
    purpose: Purpose,
) -> Result<Loaded, Rejected> {
    let (manifest, valid, source, warnings) = pipeline(name, text, dir, env, purpose)?;
    let Some(valid) = valid else {
        // Every part the checks could not build has an error above.
        let d = Diagnostic::error(
            "the manifest passed its checks, yet a part of it could not be built; \
             this is a bug of sqlflex-import",
        );
        return Err(Rejected {
            source,
            diagnostics: vec![d],
        });
    };
    Ok(Loaded {
        manifest,
        valid,
        source,
        warnings,
        dir: dir.to_path_buf(),
    })
}

/// Every stage of a load; the validated manifest when every part of it
/// could be built.
fn pipeline(
    name: &str,
    text: &str,
    dir: &Path,
    env: Env,
    purpose: Purpose,
) -> Result<(Manifest, Option<ValidManifest>, SourceText, Vec<Diagnostic>), Rejected> {
    let reject = |(text, shifts): (String, Vec<Shift>), diagnostics| Rejected {
        source: SourceText {
            name: name.to_owned(),
            text,
            shifts,
        },
        diagnostics,
    };
    let mut tree = match yaml::parse(text) {
        Ok(tree) => tree,
        Err(e) => {
            let mut d = Diagnostic::error(e.message).at("", Some(location(e.span)));
            let line = text
                .lines()
                .nth(e.span.line.saturating_sub(1))
                .unwrap_or_default();
            if line.contains("${") && (line.contains('{') || line.contains('[')) {
                d = d.hint("inside `{ }` or `[ ]`, put values with `${VAR}` in quotes: \"${VAR}\"");
            }
            return Err(reject(mask(text, secret_spans_by_line(text)), vec![d]));
        }
    };
    let mut diagnostics = Vec::new();

    let secret_spans = literal_secrets(&tree);
    for (path, span) in secret_spans.iter().filter(|(p, _)| is_secret_key(p)) {
        diagnostics.push(
            Diagnostic::warning("a secret is written into the manifest")
                .at(path.to_string(), Some(location(*span)))
                .hint("use `${ENV_VAR}` or the matching `*_file` key, so the file can be shared"),
        );
    }
    let shown = mask(text, secret_spans.iter().map(|(_, s)| *s));

    let mut failed = Vec::new();
    interpolate_tree(&mut tree, env, &mut failed);
    let unresolved: std::collections::HashSet<(usize, usize)> = failed
        .iter()
        .map(|(span, _)| start(location(*span)))
        .collect();
    diagnostics.extend(interpolation_diagnostics(&tree, failed, purpose));

    let mut problems = Vec::new();
    let json = structure::into_json(&mut tree, &mut Vec::new(), &mut problems);
    let mut later = Vec::new();
    for (path, message) in problems {
        let span = path::span_of(&tree, &path, path::Target::Value);
        later.push(Diagnostic::error(message).at(path.to_string(), Some(location(span))));
    }
    let structural = structure::check(&tree, &json);
    // A base names no database yet: what the schema says about a missing
    // or empty list is not a problem then (anything else about it is).
    let no_databases = match &tree {
        Node::Map(..) => match tree.get("databases").map(|e| &e.value) {
            None => true,
            Some(Node::Seq(items, _)) => items.is_empty(),
            // `databases:` with nothing after it.
            Some(Node::Scalar(s)) => s.plain && s.text.is_empty(),
            Some(_) => false,
        },
        _ => false,
    };
    later.extend(
        structural
            .into_iter()
            .filter(|d| !(purpose == Purpose::Base && no_databases && d.path == "databases")),
    );
    // What the schema says about a value whose `${VAR}` did not resolve is
    // said by the variable's own diagnostic.
    let structurally_sound = !later
        .iter()
        .filter(|d| d.location.is_none_or(|l| !unresolved.contains(&start(l))))
        .any(Diagnostic::is_error);

    let mut parts = checks::Parts::from_json(json);
    let mut checker = checks::Checker::new(&tree, env, dir);
    checker.unused_instances_are_fine = purpose == Purpose::Base;
    checker.secrets_may_be_absent = purpose == Purpose::Check;
    checker.run(&mut parts);
    let valid = checker.valid(&parts.manifest);
    later.extend(checker.diagnostics);
    diagnostics.extend(not_about_unresolved(later, &unresolved));
    sort(&mut diagnostics);
    if !structurally_sound || diagnostics.iter().any(Diagnostic::is_error) {
        return Err(reject(shown, diagnostics));
    }
    let source = SourceText {
        name: name.to_owned(),
        text: shown.0,
        shifts: shown.1,
    };
    Ok((parts.manifest, valid, source, diagnostics))
}

/// Where a diagnostic or a value starts: (line, column).
fn start(l: Location) -> (usize, usize) {
    (l.line, l.column)
}

/// The diagnostics that are not about a value whose `${VAR}` did not
/// resolve. Such a value still holds the reference's own text, so what the
/// later checks say about it (not a URL, not a number, contains `$`, no
/// such file) only repeats, less clearly, that the variable is unset.
fn not_about_unresolved(
    diagnostics: Vec<Diagnostic>,
    unresolved: &std::collections::HashSet<(usize, usize)>,
) -> impl Iterator<Item = Diagnostic> {
    diagnostics
        .into_iter()
        .filter(move |d| d.location.is_none_or(|l| !unresolved.contains(&start(l))))
}

/// Diagnostics in file order, so the output reads top to bottom.
fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| d.location.map(|l| (l.line, l.column)).unwrap_or((0, 0)));
}

pub(crate) fn location(span: Span) -> Location {
    Location {
        line: span.line.max(1),
        column: span.col + 1,
        len: span.end.saturating_sub(span.start).max(1),
    }
}

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &["access_key", "secret_key", "token", "password"];

/// Whether the last key of `path` names a secret exactly.
fn is_secret_key(path: &FieldPath) -> bool {
    matches!(path.0.last(), Some(path::Seg::Key(k)) if SECRET_KEYS.contains(&k.as_str()))
}

/// Keys whose values are masked in snippets: the secret keys, keys that
/// look like a slip of one (`secret_kye`, `pasword`, `api_token`), and
/// keys that look like any credential (`api_key`, `pass`, `passphrase`,
/// `pw`, `auth`): an "unknown key" diagnostic must not print the secret it
/// is about. No known key that is not a secret contains these words.
fn looks_secret(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with("_file") || lower.ends_with("_path") {
        return false;
    }
    let words: Vec<&str> = lower.split(['_', '-', '.']).collect();
    SECRET_KEYS.contains(&key)
        || [
            "secret",
            "pass",
            "pwd",
            "token",
            "access_k",
            "credential",
            "key",
            "auth",
            "bearer",
            "private",
            "cookie",
            "session",
        ]
        .iter()
        .any(|part| lower.contains(part))
        || words.iter().any(|w| matches!(*w, "pw" | "pin" | "otp"))
        || SECRET_KEYS
            .iter()
            .any(|s| strsim::damerau_levenshtein(&lower, s) <= 2)
}

/// Secrets written as literal values (of any type: `password: [x]` is a
/// wrong type, but still a secret on screen), with their positions. A value
/// that is exactly one `${VAR}` reference is not a literal secret.
fn literal_secrets(tree: &Node) -> Vec<(FieldPath, Span)> {
    /// Keys repeat (every database has a `name`), and the near-miss test is
    /// an edit distance: each distinct key is judged once.
    type Judged<'a> = std::collections::HashMap<&'a str, bool>;
    fn walk<'a>(
        node: &'a Node,
        path: &mut Vec<SegRef<'a>>,
        judged: &mut Judged<'a>,
        out: &mut Vec<(FieldPath, Span)>,
    ) {
        match node {
            Node::Map(entries, _) => {
                for e in entries {
                    path.push(SegRef::Key(&e.key));
                    let secret = *judged
                        .entry(e.key.as_str())
                        .or_insert_with(|| looks_secret(&e.key));
                    match &e.value {
                        Node::Scalar(s) if secret => {
                            if !s.text.trim().is_empty()
                                && !interpolate::is_single_reference(&s.text)
                            {
                                out.push((FieldPath::from_refs(path), s.span));
                            }
                        }
                        other if secret => {
                            out.push((FieldPath::from_refs(path), other.span()));
                        }
                        // A URL with user info may carry a password.
                        Node::Scalar(s) if url_with_user_info(&s.text) => {
                            out.push((FieldPath::from_refs(path), s.span));
                        }
                        other => walk(other, path, judged, out),
                    }
                    path.pop();
                }
            }
            Node::Seq(items, _) => {
                for (i, n) in items.iter().enumerate() {
                    path.push(SegRef::Index(i));
                    walk(n, path, judged, out);
                    path.pop();
                }
            }
            Node::Scalar(_) => {}
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut Judged::new(), &mut out);
    out
}

/// Whether `text` holds a URL with user info (`scheme://user:pass@host`).
fn url_with_user_info(text: &str) -> bool {
    text.split("://").skip(1).any(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        authority.contains('@')
    })
}

/// For text that did not parse (so there is no tree to find secrets in):
/// after every `access_key:`, `secret_key:`, `token:` or `password:`, the
/// value up to `,`, `}`, `]`, ` #` or the end of the line is a secret,
/// unless it is a `${VAR}` reference. Errs on the side of masking too much.
/// Spans count characters, as the parser's do.
fn secret_spans_by_line(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut line_start_chars = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut offset = 0; // bytes into `line`
        while let Some(key_end) = secret_key_end(&line[offset..]) {
            let after = &line[offset + key_end..];
            let value = after.trim_start_matches([' ', '\t']);
            let value_start = offset + key_end + (after.len() - value.len());
            let end = value
                .find([',', '}', ']', '\n', '\r'])
                .unwrap_or(value.len());
            let end = value[..end].find(" #").unwrap_or(end);
            if !value.trim_start_matches(['"', '\'']).starts_with("${") && end > 0 {
                let chars_before = line[..value_start].chars().count();
                let len = value[..end].chars().count();
                let start = line_start_chars + chars_before;
                spans.push(Span {
                    line: n + 1,
                    col: chars_before,
                    start,
                    end: start + len,
                });
            }
            offset = value_start + end;
        }
        line_start_chars += line.chars().count();
    }
    spans
}

/// Byte index just past the colon of the first `<secret key>:` in `text`.
fn secret_key_end(text: &str) -> Option<usize> {
    SECRET_KEYS
        .iter()
        .flat_map(|key| text.match_indices(key).map(move |(i, _)| (i, key.len())))
        .filter(|&(i, _)| {
            text[..i]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .filter_map(|(i, len)| {
            let after = &text[i + len..];
            let gap = after.len() - after.trim_start_matches([' ', '"', '\'']).len();
            after[gap..].starts_with(':').then_some(i + len + gap + 1)
        })
        .min()
}

/// What a masked secret looks like, whatever its length.
const MASK: &str = "****";

/// The text with the given character ranges replaced by [`MASK`] (one per
/// line a range covers), and the column shifts that causes.
fn mask(text: &str, spans: impl IntoIterator<Item = Span>) -> (String, Vec<Shift>) {
    let mut spans: Vec<Span> = spans.into_iter().collect();
    if spans.is_empty() {
        return (text.to_owned(), Vec::new());
    }
    spans.sort_by_key(|s| s.start);
    let mut out = String::with_capacity(text.len());
    let mut shifts = Vec::new();
    let (mut line, mut col) = (1, 1);
    let mut run = 0usize; // characters masked in the current run
    let mut i = 0;
    for (idx, c) in text.chars().enumerate() {
        while i < spans.len() && spans[i].end <= idx {
            i += 1;
        }
        let inside = c != '\n' && spans.get(i).is_some_and(|s| s.start <= idx && idx < s.end);
        if inside {
            if run == 0 {
                out.push_str(MASK);
            }
            run += 1;
        } else {
            if run > 0 {
                shifts.push(Shift {
                    line,
                    col,
                    delta: MASK.chars().count() as isize - run as isize,
                });
                run = 0;
            }
            out.push(c);
        }
        if c == '\n' {
            (line, col) = (line + 1, 1);
        } else {
            col += 1;
        }
    }
    if run > 0 {
        shifts.push(Shift {
            line,
            col,
            delta: MASK.chars().count() as isize - run as isize,
        });
    }
    (out, shifts)
}

/// Resolves `${VAR}` in every scalar value; returns the spans of the
/// scalars that failed, with their errors.
fn interpolate_tree(
    node: &mut Node,
    env: Env,
    failed: &mut Vec<(Span, Vec<interpolate::InterpolateError>)>,
) {
    match node {
        Node::Scalar(s) if !s.text.contains('$') => {}
        Node::Scalar(s) => {
            let whole_reference = interpolate::is_single_reference(&s.text);
            let set = interpolate::names_a_set_variable(&s.text, env);
            match interpolate::interpolate(&s.text, env) {
                Ok(value) => {
                    s.text = value;
                    s.from_set_variable = set;
                    if whole_reference && s.tag.is_none() {
                        s.plain = true;
                        s.from_env = true;
                    }
                }
                Err(errors) => failed.push((s.span, errors)),
            }
        }
        Node::Seq(items, _) => items
            .iter_mut()
            .for_each(|n| interpolate_tree(n, env, failed)),
        Node::Map(entries, _) => entries
            .iter_mut()
            .for_each(|e| interpolate_tree(&mut e.value, env, failed)),
    }
}

fn interpolation_diagnostics(
    tree: &Node,
    failed: Vec<(Span, Vec<interpolate::InterpolateError>)>,
    purpose: Purpose,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (span, errors) in failed {
        let path = path::path_of_scalar(tree, span)
            .map(|p| p.to_string())
            .unwrap_or_default();
        for e in errors {
            let d = match (&e, purpose) {
                (interpolate::InterpolateError::Unset(name), Purpose::Check) => {
                    Diagnostic::warning(format!(
                        "environment variable `{name}` is not set; `plan` and `apply` need it"
                    ))
                }
                _ => Diagnostic::error(e.to_string()),
            };
            let d = d.at(path.clone(), Some(location(span)));
            out.push(match e {
                interpolate::InterpolateError::Unset(name) => d.hint(format!(
                    "export {name}=..., or write `${{{name}:-default}}` for a fallback"
                )),
                _ => d.hint("write `$$` for a literal `$`"),
            });
        }
    }
    out
}
