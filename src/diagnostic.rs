//! Diagnostics about a manifest: what is wrong, where (`file:line:column`,
//! the source line with a marker, the field path) and what to do about it.

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A position in the manifest: 1-based line, 1-based column in characters,
/// and how many characters to underline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Field path such as `databases[3].name`; empty for the whole file.
    pub path: String,
    pub location: Option<Location>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            path: String::new(),
            location: None,
            hint: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn at(mut self, path: impl Into<String>, location: Option<Location>) -> Self {
        self.path = path.into();
        self.location = location;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The manifest text as diagnostics may show it: literal secrets are
/// already replaced by a mask, so no snippet can print one.
pub struct Source {
    pub name: String,
    pub text: String,
    /// Byte offset of each line's start: finding a line is a lookup, not a
    /// scan, so rendering many diagnostics stays linear.
    line_starts: Vec<usize>,
    /// For each line longer than [`LONG_LINE`] characters (by line index):
    /// the byte offset of every [`CHECKPOINT`]th character, so a column is
    /// found without walking the line from its start.
    checkpoints: std::collections::HashMap<usize, Vec<usize>>,
    shifts: Vec<Shift>,
}

/// A line longer than this is shown in part around the place a diagnostic
/// points at, so the cost of many diagnostics on one line (flow-style YAML
/// written on one line) stays linear in the size of the file.
const LONG_LINE: usize = 1024;
/// Characters shown each side of the marked place on a long line.
const WINDOW: usize = 80;
const CHECKPOINT: usize = 256;

/// From column `col` of line `line` (1-based, characters) on, the shown text
/// is `delta` characters longer than the file (a secret replaced by a mask
/// of another length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    pub line: usize,
    pub col: usize,
    pub delta: isize,
}

impl Source {
    pub fn new(name: String, text: String) -> Self {
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut checkpoints = std::collections::HashMap::new();
        for (i, &start) in line_starts.iter().enumerate() {
            let end = line_starts.get(i + 1).map_or(text.len(), |next| next - 1);
            let line = &text[start..end.max(start)];
            if line.len() > LONG_LINE {
                let offsets = line
                    .char_indices()
                    .step_by(CHECKPOINT)
                    .map(|(b, _)| b)
                    .collect();
                checkpoints.insert(i + 1, offsets);
            }
        }
        Source {
            name,
            text,
            line_starts,
            checkpoints,
            shifts: Vec::new(),
        }
    }

    pub fn with_shifts(mut self, shifts: Vec<Shift>) -> Self {
        self.shifts = shifts;
        self
    }

    fn line(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |next| next - 1);
        let text = &self.text[start..end.max(start)];
        Some(text.strip_suffix('\r').unwrap_or(text))
    }

    /// On a long line: the text around `loc`, and where `loc` falls in it
    /// (a byte column, 1-based), found through the line's checkpoints.
    fn long_line_window(&self, loc: Location) -> Option<(Location, &str)> {
        let checkpoints = self.checkpoints.get(&loc.line)?;
        let line = self.line(loc.line)?;
        let byte_of = |chars: usize| -> usize {
            let base = checkpoints
                .get(chars / CHECKPOINT)
                .copied()
                .unwrap_or(line.len());
            line[base..]
                .char_indices()
                .nth(chars % CHECKPOINT)
                .map_or(line.len(), |(b, _)| base + b)
        };
        let column = self.shown_column(loc.line, loc.column).saturating_sub(1);
        let from = byte_of(column.saturating_sub(WINDOW));
        let at = byte_of(column);
        let span_end = byte_of(column + loc.len.max(1));
        let to = byte_of(column + loc.len.max(1) + WINDOW);
        Some((
            Location {
                line: loc.line,
                column: at - from + 1,
                len: span_end.saturating_sub(at),
            },
            &line[from..to.max(from)],
        ))
    }

    /// A file column as a column of the shown text.
    fn shown_column(&self, line: usize, col: usize) -> usize {
        let delta: isize = self
            .shifts
            .iter()
            .filter(|s| s.line == line && s.col <= col)
            .map(|s| s.delta)
            .sum();
        col.saturating_add_signed(delta).max(1)
    }
}

/// A diagnostic as `--format json` shows it.
#[derive(Serialize)]
pub struct JsonDiagnostic<'a> {
    file: &'a str,
    line: Option<usize>,
    column: Option<usize>,
    path: &'a str,
    severity: Severity,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

pub fn to_json<'a>(source: &'a Source, diagnostics: &'a [Diagnostic]) -> Vec<JsonDiagnostic<'a>> {
    diagnostics
        .iter()
        .map(|d| JsonDiagnostic {
            file: &source.name,
            line: d.location.map(|l| l.line),
            column: d.location.map(|l| l.column),
            path: &d.path,
            severity: d.severity,
            message: &d.message,
            hint: d.hint.as_deref(),
        })
        .collect()
}

/// Renders one diagnostic the way rustc does: title, `--> file:line:col`,
/// the line with a marker, then the field path and the hint.
pub fn render(source: &Source, d: &Diagnostic, styled: bool) -> String {
    // Keys and values in messages and snippets come from the file: shown,
    // never interpreted by the terminal.
    let message = crate::redact::terminal(&d.message);
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let mut group = Group::with_title(level.primary_title(message.as_ref()));
    let long = d
        .location
        .and_then(|l| source.long_line_window(l))
        .map(|(loc, text)| (loc, crate::redact::terminal(text)));
    let snippet_line = match long {
        Some(_) => None,
        None => d.location.and_then(|l| {
            source
                .line(l.line)
                .map(|text| (l, crate::redact::terminal(text)))
        }),
    };
    if let (Some((loc, text)), Some(at)) = (&long, d.location) {
        // A long line: the part around the place, the place itself named
        // in a note (the snippet's own column would count from the cut).
        let text = text.as_ref();
        // Escaped control characters lengthen the text: stay on boundaries.
        let start = floor_boundary(text, loc.column.saturating_sub(1));
        let end = floor_boundary(text, start + loc.len.max(1)).max(start);
        let mut annotation = AnnotationKind::Primary.span(start..end);
        if !d.path.is_empty() {
            annotation = annotation.label(d.path.as_str());
        }
        group = group
            .element(Level::NOTE.message(format!(
                "at {}:{}:{} (a long line, shown in part)",
                source.name, at.line, at.column
            )))
            .element(
                Snippet::source(text)
                    .line_start(at.line)
                    .annotation(annotation),
            );
    }
    match &snippet_line {
        _ if long.is_some() => {}
        Some((loc, text)) => {
            let (loc, text) = (*loc, text.as_ref());
            let first = source.shown_column(loc.line, loc.column);
            let last = source
                .shown_column(loc.line, loc.column + loc.len.max(1))
                .max(first + 1);
            let start = char_to_byte(text, first - 1);
            let end = char_to_byte(text, last - 1).max(start);
            let mut annotation = AnnotationKind::Primary
                .span(start..end.max(start + usize::from(start < text.len())));
            if !d.path.is_empty() {
                annotation = annotation.label(d.path.as_str());
            }
            group = group.element(
                Snippet::source(text)
                    .line_start(loc.line)
                    .path(source.name.as_str())
                    .annotation(annotation),
            );
        }
        None => {
            let whence = if d.path.is_empty() {
                source.name.clone()
            } else {
                format!("{} ({})", source.name, d.path)
            };
            group = group.element(Level::NOTE.message(format!("in {whence}")));
        }
    }
    let hint = d.hint.as_deref().map(crate::redact::terminal);
    if let Some(hint) = &hint {
        group = group.element(Level::HELP.message(hint.as_ref()));
    }
    let renderer = if styled {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    renderer.render(&[group])
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn char_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map(|(i, _)| i)
        .unwrap_or(text.len())
}

/// Colour on stderr only when it is a terminal and NO_COLOR is unset.
pub fn stderr_is_styled() -> bool {
    use std::io::IsTerminal;
    !crate::environment::is_set("NO_COLOR") && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_snippet_path_and_hint() {
        let source = Source::new(
            "m.yaml".into(),
            "version: 1\ndatabases:\n  - nmae: x\n".into(),
        );
        let d = Diagnostic::error("unknown key `nmae`")
            .at(
                "databases[0].nmae",
                Some(Location {
                    line: 3,
                    column: 5,
                    len: 4,
                }),
            )
            .hint("did you mean `name`?");
        let out = render(&source, &d, false);
        assert!(out.contains("error: unknown key `nmae`"), "{out}");
        assert!(out.contains("m.yaml:3:5"), "{out}");
        assert!(out.contains("  - nmae: x"), "{out}");
        assert!(out.contains("^^^^ databases[0].nmae"), "{out}");
        assert!(out.contains("did you mean `name`?"), "{out}");
    }
}
