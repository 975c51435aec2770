use super::{is_json, print_json};
use crate::Exit;
use crate::cli::{CheckArgs, Global, SelectArgs};
use crate::diagnostic::{self, Diagnostic, Severity};
use crate::manifest::{self, select::Selection};
use crate::ops;
use std::path::Path;

pub fn run(global: &Global, path: &Path, select: &SelectArgs, checks: CheckArgs) -> Exit {
    let selection = Selection {
        only: select.only.clone(),
        tags: select.tags.clone(),
        shard: select.shard,
    };
    let found = ops::validate(path, &selection, &manifest::process_env, checks.strict);
    let valid = found.is_valid();
    let (source, mut diagnostics, summary) = (found.source, found.diagnostics, found.summary);
    let source = source.as_source();
    diagnostics.sort_by_key(|d| d.severity == Severity::Warning);
    print_diagnostics_json_or_human(global, &source, &diagnostics, valid, summary);
    if valid { Exit::Success } else { Exit::Invalid }
}

fn print_diagnostics_json_or_human(
    global: &Global,
    source: &diagnostic::Source,
    diagnostics: &[Diagnostic],
    valid: bool,
    summary: Option<(usize, usize, usize)>,
) {
    if is_json(global) {
        print_json_report(source, diagnostics, valid, summary);
    } else {
        print_human(global, source, diagnostics);
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = diagnostics.len() - errors;
        match summary {
            Some((selected, total, instances)) if valid => {
                let of = if selected == total {
                    String::new()
                } else {
                    format!(" ({selected} selected)")
                };
                outln!(
                    "{}: valid, {total} database{} on {instances} instance{}{of}{}",
                    source.name,
                    plural(total),
                    plural(instances),
                    if warnings > 0 {
                        format!(", {warnings} warning{}", plural(warnings))
                    } else {
                        String::new()
                    }
                );
            }
            _ => errln!(
                "{}: invalid, {errors} error{}{}",
                source.name,
                plural(errors),
                if warnings > 0 {
                    format!(", {warnings} warning{}", plural(warnings))
                } else {
                    String::new()
                }
            ),
        }
    }
}

/// `validate --format json`'s document; `plan`, `apply` and `status` print
/// it too when the manifest does not load, so stdout is JSON either way.
pub fn print_json_report(
    source: &diagnostic::Source,
    diagnostics: &[Diagnostic],
    valid: bool,
    summary: Option<(usize, usize, usize)>,
) {
    #[derive(serde::Serialize)]
    struct Report<'a> {
        manifest: &'a str,
        valid: bool,
        databases: Option<usize>,
        selected: Option<usize>,
        diagnostics: Vec<diagnostic::JsonDiagnostic<'a>>,
    }
    print_json(&Report {
        manifest: &source.name,
        valid,
        databases: summary.map(|s| s.1),
        selected: summary.map(|s| s.0),
        diagnostics: diagnostic::to_json(source, diagnostics),
    });
}

/// Diagnostics as rustc shows them, on stderr.
pub fn print_human(global: &Global, source: &diagnostic::Source, diagnostics: &[Diagnostic]) {
    let styled = diagnostic::stderr_is_styled();
    for d in diagnostics {
        if global.quiet && !d.is_error() {
            continue;
        }
        errln!("{}\n", diagnostic::render(source, d, styled));
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
