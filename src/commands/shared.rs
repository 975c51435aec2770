//! What `plan`, `apply` and `demo` show alike: loading and selecting, the
//! plan table, the run's display and its summary.

use super::progress::{Display, Mode};
use super::validate::print_human;
use crate::Exit;
use crate::cli::{Format, Global, SelectArgs};
use crate::diagnostic::Diagnostic;
use crate::manifest::Env;
use crate::manifest::select::Selection;
use crate::ops::{self, LoadError, Selected};
use crate::plan::{self, Plan, Verdict};
use crate::report::{self, Record};
use crate::run::events::{Consumer, Stamped};
use std::path::Path;
use std::sync::Arc;

/// The manifest and its selected databases, or the exit code after the
/// diagnostics were shown.
pub fn load(global: &Global, path: &Path, select: &SelectArgs, env: Env) -> Result<Selected, Exit> {
    shown(global, ops::load(path, &selection(select), env))
}

fn selection(select: &SelectArgs) -> Selection {
    Selection {
        only: select.only.clone(),
        tags: select.tags.clone(),
        shard: select.shard,
    }
}

/// Shows what loading found (warnings, or the diagnostics that refuse it).
pub fn shown(global: &Global, loaded: Result<Selected, LoadError>) -> Result<Selected, Exit> {
    match loaded {
        Ok(selected) => {
            let loaded = &selected.loaded;
            print_human(global, &loaded.source.as_source(), &loaded.warnings);
            Ok(selected)
        }
        Err(LoadError::Invalid(rejected)) => {
            let source = rejected.source.as_source();
            if global.format == Format::Json {
                super::validate::print_json_report(&source, &rejected.diagnostics, false, None);
            }
            print_human(global, &source, &rejected.diagnostics);
            errln!(
                "{}: invalid; run `sqlflex-import validate` for the details",
                rejected.source.name
            );
            Err(Exit::Invalid)
        }
        Err(LoadError::Selection { loaded, error }) => {
            let source = loaded.source.as_source();
            let mut diagnostics = loaded.warnings;
            diagnostics.push(Diagnostic::error(error.to_string()));
            if global.format == Format::Json {
                super::validate::print_json_report(&source, &diagnostics, false, None);
            }
            print_human(global, &source, &diagnostics);
            Err(Exit::Invalid)
        }
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Runtime::new().map_err(|e| {
        errln!("error: cannot start the async runtime: {e}");
        Exit::Failed
    })
}

pub fn plan_table(plan: &Plan) -> String {
    let header = [
        "DATABASE", "INSTANCE", "METHOD", "FILES", "SIZE", "VERDICT", "REASON",
    ];
    let rows: Vec<Vec<String>> = plan
        .items
        .iter()
        .map(|i| {
            vec![
                i.database.clone(),
                i.instance.clone(),
                i.method.as_str().into(),
                i.files.len().to_string(),
                if i.size == 0 {
                    "-".into()
                } else {
                    plan::human_size(i.size)
                },
                match i.verdict {
                    Verdict::Ready => "ready",
                    Verdict::Skip => "skip",
                    Verdict::Done => "done",
                    Verdict::Attach => "attach",
                    Verdict::Replace => "REPLACE",
                    Verdict::NotReady => "NOT READY",
                }
                .into(),
                match i.verdict {
                    Verdict::Done => "imported by an earlier run".into(),
                    Verdict::Attach => "restoring since an earlier run; will wait for it".into(),
                    Verdict::Replace => {
                        "exists: DROPPED, then imported again (on_exists: replace)".into()
                    }
                    Verdict::Ready => i
                        .findings
                        .iter()
                        .map(|f| format!("warning {f}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                    _ => i.reasons().join("; "),
                },
            ]
        })
        .collect();
    let mut out = vec![crate::table::render(&header, &rows)];
    let total: u64 = plan
        .items
        .iter()
        .filter(|i| matches!(i.verdict, Verdict::Ready | Verdict::Replace))
        .fold(0u64, |sum, i| sum.saturating_add(i.size));
    out.push(format!(
        "\n{} ready ({}; {} of them replace an existing database), {} to wait for, {} skipped, \
         {} done earlier, {} not ready",
        plan.count(Verdict::Ready) + plan.count(Verdict::Replace),
        plan::human_size(total),
        plan.count(Verdict::Replace),
        plan.count(Verdict::Attach),
        plan.count(Verdict::Skip),
        plan.count(Verdict::Done),
        plan.count(Verdict::NotReady),
    ));
    // Shared problems last, where the eye lands: each said once.
    for p in &plan.problems {
        out.push(format!(
            "{}: {} (blocks {} database{})",
            p.code,
            crate::redact::terminal(&p.message),
            p.databases,
            if p.databases == 1 { "" } else { "s" }
        ));
    }
    out.join("\n")
}

/// What the read-only commands that look at the state (`plan`, `status`)
/// start from: the selected manifest, the state, a runtime.
pub fn load_with_state(
    global: &Global,
    path: &std::path::Path,
    select: &crate::cli::SelectArgs,
    state: Option<&std::path::Path>,
) -> Result<
    (
        crate::ops::Selected,
        crate::journal::State,
        tokio::runtime::Runtime,
    ),
    Exit,
> {
    let selected = load(global, path, select, &crate::manifest::process_env)?;
    let state = read_state(&selected, path, select, state)?;
    Ok((selected, state, runtime()?))
}

/// What the state folder (`--state`, or the default beside the manifest)
/// knows, for the commands that only read it; its notes on stderr.
fn read_state(
    selected: &crate::ops::Selected,
    manifest: &std::path::Path,
    select: &crate::cli::SelectArgs,
    state: Option<&std::path::Path>,
) -> Result<crate::journal::State, Exit> {
    let dir = state.map_or_else(
        || crate::ops::default_state_dir(selected),
        std::path::Path::to_owned,
    );
    let own = crate::journal::path_for(&dir, manifest, select.shard);
    match crate::journal::read_state(&dir, Some(&own)) {
        Ok((state, notes)) => {
            for note in notes {
                errln!("note: {note}");
            }
            Ok(state)
        }
        Err(e) => {
            errln!("error: {e}");
            Err(Exit::Invalid)
        }
    }
}

/// The consumers a person or script sees a run through: the progress
/// display (silent under `--format json`) and, with JSON, NDJSON events.
pub fn run_consumers(global: &Global, to_run: usize) -> (Arc<Display>, Vec<Consumer>) {
    let json = global.format == Format::Json;
    let mode = if json {
        Mode::Silent
    } else {
        Mode::choose(global.no_progress, global.quiet)
    };
    let display = Display::new(mode, to_run as u64);
    let mut consumers: Vec<Consumer> = vec![display.consumer()];
    if json {
        consumers.push(Box::new(|e: &Stamped| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", serde_json::to_string(e).expect("JSON"));
        }));
    }
    (display, consumers)
}

pub fn print_summary(global: &Global, records: &[Record]) {
    if global.format == Format::Human && !records.is_empty() {
        outln!("{}", report::summary_table(records));
    }
}
