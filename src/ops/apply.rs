//! `apply` as an operation: the state lock, the journal, the plan, the
//! imports and the reports. What a person sees (the plan table, the
//! confirmation, the progress display) is the caller's [`Ui`].

use super::{Selected, TargetsError};
use crate::journal::{self, Journal, JournalError};
use crate::manifest::Env;
use crate::manifest::select::Shard;
use crate::plan::{Plan, Verdict};
use crate::report::{self, Collector, Outcome, Record};
use crate::run::events::{Consumer, Events};
use crate::state_lock::{self, Holder, LockError, StateLock};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct ApplyRequest<'a> {
    pub selected: Selected,
    /// The manifest's path as given: the journal is named after it.
    pub manifest_path: &'a Path,
    pub shard: Option<Shard>,
    /// The state folder; default `.sqlflex-import/` beside the manifest.
    pub state: Option<PathBuf>,
    /// Overrides the manifest's `concurrency.max_parallel`.
    pub max_parallel: Option<u32>,
    pub plan: crate::plan::Options,
    /// Import the ready databases even when others are not ready.
    pub skip_invalid: bool,
    pub report: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// Cancelled: nothing new is submitted; running imports are followed.
    pub stop_submitting: CancellationToken,
    pub env: Env<'a>,
}

/// What a person is told, while the operation runs.
#[derive(Debug)]
pub enum Note {
    /// An earlier `apply` died holding the lock; this one took it over.
    LockTakenOver(Holder),
    /// What the journal says about earlier runs (a cut last line, a resume).
    Journal(String),
}

/// The caller's side of an `apply`: it is shown what happens and decides
/// what only a person can.
pub trait Ui {
    fn note(&mut self, note: Note);
    /// The plan, before anything is submitted.
    fn planned(&mut self, plan: &Plan);
    /// Whether to go ahead (a prompt, or `--yes`).
    fn confirm(&mut self, what: &Confirmation) -> Consent;
    /// The run of `to_run` imports starts now: the consumers of its events
    /// besides the report's (a progress display, NDJSON on stdout).
    fn run_starting(&mut self, to_run: usize) -> Vec<Consumer>;
    /// The run is over: the display can close.
    fn run_finished(&mut self);
}

/// What a person is asked to agree to before anything is submitted.
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// Imports to submit (or follow).
    pub to_run: usize,
    /// The instances they go to, named by alias and by project/instance id.
    pub instances: Vec<InstanceLabel>,
    /// Databases that will be dropped, then imported again, with their
    /// instance.
    pub drops: Vec<(String, InstanceLabel)>,
}

/// An instance as a person recognises it: the manifest's alias, and where
/// it is (project and instance id, or the SQL endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLabel {
    pub alias: String,
    pub project_id: Option<String>,
    pub instance_id: Option<String>,
}

impl std::fmt::Display for InstanceLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.alias)?;
        match (&self.project_id, &self.instance_id) {
            (Some(p), Some(i)) => write!(f, " (project {p}, instance {i})"),
            (None, Some(i)) => write!(f, " (instance {i})"),
            _ => Ok(()),
        }
    }
}

/// The answer to a [`Confirmation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Given,
    Refused,
    /// Nobody can answer (standard input is not a terminal) and `--yes`
    /// was not given.
    NobodyToAsk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing was submitted: this many databases are not ready.
    NotReady(usize),
    /// Nothing was submitted: the confirmation said no.
    Declined,
    /// Nothing was submitted: nobody could be asked, and `--yes` was not
    /// given.
    NoConsent,
    /// The run went ahead (with `interrupted` when Ctrl-C stopped new
    /// submissions).
    Ran { interrupted: bool },
}

#[derive(Debug)]
pub struct ReportError {
    pub path: PathBuf,
    /// `report` or `JUnit report`.
    pub kind: &'static str,
    pub error: std::io::Error,
}

pub struct Applied {
    pub plan: Plan,
    pub stopped: Stopped,
    /// One per database of the plan, in plan order.
    pub records: Vec<Record>,
    /// The first journal write that failed: a rerun may not resume right.
    pub journal_error: Option<String>,
    pub report_errors: Vec<ReportError>,
}

impl Applied {
    /// Every database imported or rightly skipped, and every report written.
    pub fn succeeded(&self) -> bool {
        matches!(self.stopped, Stopped::Ran { interrupted: false })
            && self.journal_error.is_none()
            && self.report_errors.is_empty()
            && self.records.iter().all(|r| r.outcome.is_success())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot create the state folder {}: {error}", path.display())]
    StateFolder {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Targets(#[from] TargetsError),
}

pub async fn apply(request: ApplyRequest<'_>, ui: &mut dyn Ui) -> Result<Applied, ApplyError> {
    let ApplyRequest {
        selected,
        manifest_path,
        shard,
        state,
        max_parallel,
        plan: plan_options,
        skip_invalid,
        report,
        junit,
        stop_submitting,
        env,
    } = request;
    let loaded = &selected.loaded;
    let state_dir = state.unwrap_or_else(|| super::default_state_dir(&selected));
    let journal_path = journal::path_for(&state_dir, manifest_path, shard);
    std::fs::create_dir_all(&state_dir).map_err(|error| ApplyError::StateFolder {
        path: state_dir.clone(),
        error,
    })?;
    // Held until this function returns: one apply per journal at a time.
    let (_lock, previous) = StateLock::acquire(&state_lock::path_for(&state_dir))?;
    if let Some(previous) = previous {
        ui.note(Note::LockTakenOver(previous));
    }
    let opened = Journal::open(&journal_path, &loaded.source.name)?;
    for note in opened.notes {
        ui.note(Note::Journal(note));
    }
    let max_parallel = max_parallel.unwrap_or(loaded.valid.max_parallel) as usize;
    let manifest_name = loaded.source.name.clone();
    let started = now();
    let resuming = opened.state.resumed.is_some();
    let strict = plan_options.strict;
    let (ctx, plan) = super::plan(selected, env, &opened.state, plan_options).await?;
    ui.planned(&plan);
    let reports = Reports {
        json: report,
        junit,
        manifest: manifest_name,
        started,
    };

    let not_ready = plan.count(Verdict::NotReady);
    let to_run =
        plan.count(Verdict::Ready) + plan.count(Verdict::Attach) + plan.count(Verdict::Replace);
    let stopped = if not_ready > 0 && !skip_invalid {
        Some(Stopped::NotReady(not_ready))
    } else if to_run > 0 {
        match ui.confirm(&confirmation(&ctx, &plan, to_run)) {
            Consent::Given => None,
            Consent::Refused => Some(Stopped::Declined),
            Consent::NobodyToAsk => Some(Stopped::NoConsent),
        }
    } else {
        None
    };
    if let Some(stopped) = stopped {
        let records = records_of_unrun_plan(&plan);
        let report_errors = match stopped {
            // A plan that stops at its checks is a result CI wants to see.
            Stopped::NotReady(_) => reports.write(&records),
            _ => Vec::new(),
        };
        return Ok(Applied {
            plan,
            stopped,
            records,
            journal_error: None,
            report_errors,
        });
    }

    let collector = Arc::new(Collector::default());
    let mut consumers = ui.run_starting(to_run);
    consumers.push(collector.consumer());
    let events = Arc::new(Events::new(Some(Box::new(opened.journal)), consumers));
    let options = crate::run::Options {
        max_parallel,
        strict,
        stop_submitting: stop_submitting.clone(),
    };
    // A resumed run goes on under the start of the run it resumes, so that
    // what either did counts for the next resume.
    if !resuming {
        events.mark_run(false);
    }
    crate::run::apply(ctx, &plan, &options, Arc::clone(&events)).await;
    // A run stopped by Ctrl-C is resumed by the next one, like a killed one:
    // what it replaced is not replaced again.
    if !stop_submitting.is_cancelled() {
        events.mark_run(true);
    }
    ui.run_finished();
    let records = collector.records();
    let report_errors = reports.write(&records);
    Ok(Applied {
        plan,
        stopped: Stopped::Ran {
            interrupted: stop_submitting.is_cancelled(),
        },
        records,
        journal_error: events.journal_error(),
        report_errors,
    })
}

/// What the prompt names: the imports and the instances they go to.
fn confirmation(ctx: &crate::plan::Context, plan: &Plan, to_run: usize) -> Confirmation {
    let label = |alias: &str| {
        let raw = ctx.loaded.manifest.instances.get(alias);
        InstanceLabel {
            alias: alias.to_owned(),
            project_id: raw.and_then(|i| i.project_id.clone()),
            instance_id: raw.and_then(|i| i.instance_id.clone()),
        }
    };
    let mut aliases: Vec<&str> = plan
        .items
        .iter()
        .filter(|i| {
            matches!(
                i.verdict,
                Verdict::Ready | Verdict::Attach | Verdict::Replace
            )
        })
        .map(|i| i.instance.as_str())
        .collect();
    aliases.sort_unstable();
    aliases.dedup();
    let drops = plan
        .items
        .iter()
        .filter(|i| i.verdict == Verdict::Replace)
        .map(|i| (i.database.clone(), label(&i.instance)))
        .collect();
    Confirmation {
        to_run,
        instances: aliases.into_iter().map(label).collect(),
        drops,
    }
}

struct Reports {
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    manifest: String,
    started: String,
}

impl Reports {
    /// Writes the requested reports; returns what could not be written.
    fn write(&self, records: &[Record]) -> Vec<ReportError> {
        let mut errors = Vec::new();
        if let Some(path) = &self.json {
            let json = report::json_report(&self.manifest, &self.started, &now(), records);
            let text = serde_json::to_string_pretty(&json).expect("JSON") + "\n";
            if let Err(error) = std::fs::write(path, text) {
                errors.push(ReportError {
                    path: path.clone(),
                    kind: "report",
                    error,
                });
            }
        }
        if let Some(path) = &self.junit
            && let Err(error) = std::fs::write(path, report::junit(&self.manifest, records))
        {
            errors.push(ReportError {
                path: path.clone(),
                kind: "JUnit report",
                error,
            });
        }
        errors
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Records for a plan that was not run: what is not ready, and why the
/// rest did not start.
fn records_of_unrun_plan(plan: &Plan) -> Vec<Record> {
    let not_ready = plan.count(Verdict::NotReady);
    plan.items
        .iter()
        .map(|i| {
            let (outcome, reason) = match i.verdict {
                Verdict::NotReady => (Outcome::NotReady, i.reasons().join("; ")),
                Verdict::Skip => (Outcome::Skipped, "already there".to_owned()),
                Verdict::Done => (Outcome::Skipped, "imported by an earlier run".to_owned()),
                Verdict::Ready | Verdict::Attach | Verdict::Replace => (
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
                code: None,
                findings: Vec::new(),
            }
        })
        .collect()
}
