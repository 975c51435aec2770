//! What `plan`, `apply` and `demo` share: loading and selecting, the plan
//! table, and running the engine with its display, journal and reports.

use super::validate::print_human;
use crate::Exit;
use crate::cli::{Format, Global, SelectArgs};
use crate::diagnostic::Diagnostic;
use crate::manifest::select::Selection;
use crate::manifest::{self, Env, Loaded};
use crate::plan::{self, Context, Plan, Verdict};
use crate::progress::{Display, Mode};
use crate::report::Outcome;
use crate::report::{self, Collector, Record};
use crate::run::events::{Consumer, Events, Stamped};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The manifest and the indexes of the selected databases, or the exit
/// code after the diagnostics were shown.
pub fn load(
    global: &Global,
    path: &Path,
    select: &SelectArgs,
    env: Env,
) -> Result<(Loaded, Vec<usize>), Exit> {
    let loaded = match manifest::load(path, env) {
        Ok(l) => l,
        Err(rejected) => {
            print_human(global, &rejected.source.as_source(), &rejected.diagnostics);
            eprintln!(
                "{}: invalid; run `sqlflex-import validate` for the details",
                rejected.source.name
            );
            return Err(Exit::Invalid);
        }
    };
    print_human(global, &loaded.source.as_source(), &loaded.warnings);
    let selection = Selection {
        only: select.only.clone(),
        tags: select.tags.clone(),
        shard: select.shard,
    };
    match selection.apply(&loaded.manifest) {
        Ok(selected) => Ok((loaded, selected)),
        Err(e) => {
            print_human(global, &loaded.source.as_source(), &[Diagnostic::error(e)]);
            Err(Exit::Invalid)
        }
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        Exit::Failed
    })
}

pub fn context(loaded: Loaded, selected: &[usize], env: Env) -> Result<Arc<Context>, Exit> {
    Context::new(loaded, selected, env)
        .map(Arc::new)
        .map_err(|e| {
            eprintln!("error: {e}");
            Exit::Invalid
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
                    Verdict::NotReady => "NOT READY",
                }
                .into(),
                match i.verdict {
                    Verdict::Done => "imported by an earlier run".into(),
                    Verdict::Attach => "restoring since an earlier run; will wait for it".into(),
                    Verdict::Ready => i
                        .findings
                        .iter()
                        .map(|f| format!("warning {f}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                    _ => i.reasons.join("; "),
                },
            ]
        })
        .collect();
    let mut out = vec![crate::table::render(&header, &rows)];
    let total: u64 = plan
        .items
        .iter()
        .filter(|i| i.verdict == Verdict::Ready)
        .fold(0u64, |sum, i| sum.saturating_add(i.size));
    out.push(format!(
        "\n{} ready ({}), {} to wait for, {} skipped, {} done earlier, {} not ready",
        plan.count(Verdict::Ready),
        plan::human_size(total),
        plan.count(Verdict::Attach),
        plan.count(Verdict::Skip),
        plan.count(Verdict::Done),
        plan.count(Verdict::NotReady),
    ));
    out.join("\n")
}

pub struct RunSettings {
    pub max_parallel: usize,
    pub stop_submitting: CancellationToken,
}

/// Runs the engine over a plan with the display, NDJSON and report
/// consumers; returns the records.
pub async fn execute(
    global: &Global,
    ctx: Arc<Context>,
    plan: &Plan,
    journal: Option<crate::journal::Journal>,
    settings: &RunSettings,
) -> (Vec<Record>, Option<String>) {
    let to_run = plan
        .items
        .iter()
        .filter(|i| matches!(i.verdict, Verdict::Ready | Verdict::Attach))
        .count();
    let json = global.format == Format::Json;
    let mode = if json {
        Mode::Silent
    } else {
        Mode::choose(global.no_progress, global.quiet)
    };
    let display = Display::new(mode, to_run as u64);
    let collector = Arc::new(Collector::default());
    let mut consumers: Vec<Consumer> = vec![display.consumer(), collector.consumer()];
    if json {
        consumers.push(Box::new(|e: &Stamped| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", serde_json::to_string(e).expect("JSON"));
        }));
    }
    let events = Arc::new(Events::new(journal, consumers));
    let options = crate::run::Options {
        max_parallel: settings.max_parallel,
        stop_submitting: settings.stop_submitting.clone(),
    };
    crate::run::apply(ctx, plan, &options, Arc::clone(&events)).await;
    display.finish();
    (collector.records(), events.journal_error())
}

pub fn exit_code(records: &[Record], interrupted: bool) -> Exit {
    if interrupted {
        Exit::Interrupted
    } else if records.iter().all(|r| r.outcome.is_success()) {
        Exit::Success
    } else {
        Exit::Failed
    }
}

/// Records for a plan that was not run: what is not ready, and why the
/// rest did not start.
pub fn records_of_unrun_plan(plan: &Plan) -> Vec<Record> {
    let not_ready = plan.count(Verdict::NotReady);
    plan.items
        .iter()
        .map(|i| {
            let (outcome, reason) = match i.verdict {
                Verdict::NotReady => (Outcome::NotReady, i.reasons.join("; ")),
                Verdict::Skip => (Outcome::Skipped, "already there".to_owned()),
                Verdict::Done => (Outcome::Skipped, "imported by an earlier run".to_owned()),
                Verdict::Ready | Verdict::Attach => (
                    Outcome::NotStarted,
                    format!("nothing was submitted: {not_ready} database(s) are not ready"),
                ),
            };
            Record {
                database: i.database.clone(),
                instance: i.instance.clone(),
                method: Some(i.method),
                outcome,
                attempts: 0,
                submitted_at: None,
                finished_at: None,
                seconds: None,
                reason: Some(reason),
            }
        })
        .collect()
}

pub fn print_summary(global: &Global, records: &[Record]) {
    if global.format == Format::Human && !records.is_empty() {
        println!("{}", report::summary_table(records));
    }
}
