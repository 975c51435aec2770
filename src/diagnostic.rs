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
/// already replaced by `*`, so no snippet can print one.
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    fn line(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
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
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let mut group = Group::with_title(level.primary_title(d.message.as_str()));
    let snippet_line = d
        .location
        .and_then(|l| source.line(l.line).map(|text| (l, text)));
    match snippet_line {
        Some((loc, text)) => {
            let start = char_to_byte(text, loc.column.saturating_sub(1));
            let end = char_to_byte(text, loc.column.saturating_sub(1) + loc.len.max(1)).max(start);
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
    if let Some(hint) = &d.hint {
        group = group.element(Level::HELP.message(hint.as_str()));
    }
    let renderer = if styled {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    renderer.render(&[group])
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
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_snippet_path_and_hint() {
        let source = Source {
            name: "m.yaml".into(),
            text: "version: 1\ndatabases:\n  - nmae: x\n".into(),
        };
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
