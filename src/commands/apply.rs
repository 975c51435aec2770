use super::shared;
use crate::Exit;
use crate::cli::{ApplyArgs, Format, Global};
use crate::manifest;
use crate::ops::{self, ApplyError, ApplyRequest, Confirmation, Consent, Note, Stopped, Ui};
use crate::plan::Plan;
use crate::run::events::Consumer;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub fn run(global: &Global, args: &ApplyArgs) -> Exit {
    let selected = match shared::load(global, &args.manifest, &args.select, &manifest::process_env)
    {
        Ok(x) => x,
        Err(exit) => return exit,
    };
    let runtime = match shared::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let stop = CancellationToken::new();
    let request = ApplyRequest {
        selected,
        manifest_path: &args.manifest,
        shard: args.select.shard,
        state: args.state.clone(),
        max_parallel: args.max_parallel,
        plan: crate::plan::Options {
            strict: args.checks.strict,
            checked: None,
        },
        skip_invalid: args.skip_invalid,
        report: args.report.clone(),
        junit: args.junit.clone(),
        stop_submitting: stop.clone(),
        env: &manifest::process_env,
    };
    runtime.block_on(render(global, request, args.yes))
}

/// `apply` of a request, rendered for a person or a script. `demo` runs
/// exactly this, on its emulator.
pub async fn render(global: &Global, request: ApplyRequest<'_>, yes: bool) -> Exit {
    let mut ui = Terminal {
        global,
        yes,
        display: None,
        stop: request.stop_submitting.clone(),
    };
    let applied = match ops::apply(request, &mut ui).await {
        Ok(applied) => applied,
        Err(e) => {
            errln!("error: {e}");
            return match e {
                ApplyError::Locked(_) => Exit::Failed,
                ApplyError::StateFolder { .. }
                | ApplyError::Journal(_)
                | ApplyError::Targets(_) => Exit::Invalid,
            };
        }
    };
    match applied.stopped {
        Stopped::NotReady(count) => {
            if global.format == Format::Json {
                outln!(
                    "{}",
                    serde_json::json!({"event": "plan", "plan": applied.plan})
                );
            }
            errln!(
                "error: nothing was submitted: {count} database(s) are not ready (see above); \
                 fix them, or pass --skip-invalid to import the others"
            );
        }
        Stopped::Declined => errln!("nothing was imported"),
        Stopped::NoConsent => errln!(
            "error: nothing was submitted: apply asks before it imports, and nobody can answer \
             (standard input is not a terminal); pass --yes to import without asking"
        ),
        Stopped::Ran { .. } => shared::print_summary(global, &applied.records),
    }
    for e in &applied.report_errors {
        errln!(
            "error: cannot write the {} {}: {}",
            e.kind,
            e.path.display(),
            e.error
        );
    }
    if let Some(e) = &applied.journal_error {
        errln!("error: the journal could not be written ({e}); a rerun may not resume correctly");
    }
    match applied.stopped {
        Stopped::NoConsent => Exit::Invalid,
        _ if applied.succeeded() => Exit::Success,
        Stopped::Ran { interrupted: true } if applied.journal_error.is_none() => Exit::Interrupted,
        _ => Exit::Failed,
    }
}

/// `apply`'s terminal: the plan table, the prompt, the progress display.
struct Terminal<'a> {
    global: &'a Global,
    yes: bool,
    display: Option<Arc<super::progress::Display>>,
    /// What Ctrl-C cancels, once the run starts.
    stop: CancellationToken,
}

impl Ui for Terminal<'_> {
    fn note(&mut self, note: Note) {
        match note {
            Note::LockTakenOver(previous) => errln!(
                "note: a previous apply ({previous}) ended without releasing its lock; taking it over"
            ),
            Note::Journal(note) => errln!("note: {note}"),
        }
    }

    fn planned(&mut self, plan: &Plan) {
        if self.global.format != Format::Json {
            outln!("{}\n", shared::plan_table(plan));
        }
    }

    fn confirm(&mut self, what: &Confirmation) -> Consent {
        if self.yes {
            Consent::Given
        } else if !std::io::stdin().is_terminal() {
            Consent::NobodyToAsk
        } else if ask(what) {
            Consent::Given
        } else {
            Consent::Refused
        }
    }

    fn run_starting(&mut self, to_run: usize) -> Vec<Consumer> {
        // From here on, Ctrl-C lets running imports finish; before (at the
        // prompt, during the checks) it ends the process as usual.
        watch_ctrl_c(self.stop.clone());
        let (display, consumers) = shared::run_consumers(self.global, to_run);
        self.display = Some(display);
        consumers
    }

    fn run_finished(&mut self) {
        if let Some(display) = self.display.take() {
            display.finish();
        }
    }
}

fn ask(what: &Confirmation) -> bool {
    errln!("This imports {} database(s) onto:", what.to_run);
    for instance in &what.instances {
        errln!("  {instance}");
    }
    if !what.drops.is_empty() {
        errln!(
            "It first DROPS these {} existing database(s) (on_exists: replace):",
            what.drops.len()
        );
        for (database, instance) in &what.drops {
            errln!("  {database} on {instance}");
        }
    }
    errs!("Go ahead? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes" | "YES")
}

/// First Ctrl-C: submit nothing new, wait for what runs. Second: exit now;
/// the journal is flushed after every change, so a rerun resumes. The
/// handler is registered before this returns, and both Ctrl-Cs are read
/// from it: a listener made after the first would miss a second one sent
/// while the message was printed.
fn watch_ctrl_c(stop: CancellationToken) {
    // SIGTERM (a service manager, `kill`, a CI runner that cancels) is taken
    // as a Ctrl-C: stop submitting, let the journal record what runs.
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                errln!("warning: Ctrl-C and SIGTERM cannot be handled gracefully: {e}");
                return;
            }
        }
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut next = async || {
            tokio::select! {
                i = interrupt.recv() => i.is_some(),
                t = terminate.recv() => t.is_some(),
            }
        };
        #[cfg(not(unix))]
        let mut next = async || tokio::signal::ctrl_c().await.is_ok();
        if next().await {
            stop.cancel();
            errln!(
                "\ninterrupted: no new imports start; waiting for the running ones (Ctrl-C or SIGTERM again exits at once; `apply` again resumes)"
            );
            if next().await {
                errln!(
                    "exiting; the running imports go on on the server and the next `apply` re-attaches to them"
                );
                std::process::exit(130);
            }
        }
    });
}
