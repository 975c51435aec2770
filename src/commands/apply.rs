use super::shared::{self, RunSettings};
use crate::Exit;
use crate::cli::{ApplyArgs, Format, Global};
use crate::journal::{self, Journal};
use crate::manifest::{self, Env, Loaded};
use crate::plan::Verdict;
use crate::report::{self, Record};
use crate::state_lock::{self, StateLock};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

pub fn run(global: &Global, args: &ApplyArgs) -> Exit {
    let (loaded, selected) =
        match shared::load(global, &args.manifest, &args.select, &manifest::process_env) {
            Ok(x) => x,
            Err(exit) => return exit,
        };
    let runtime = match shared::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    runtime.block_on(apply_loaded(
        global,
        args,
        loaded,
        &selected,
        &manifest::process_env,
    ))
}

/// `apply` on a loaded manifest: the state lock, the journal, the plan, the
/// imports and the reports. `demo` runs exactly this, on its emulator.
pub async fn apply_loaded(
    global: &Global,
    args: &ApplyArgs,
    loaded: Loaded,
    selected: &[usize],
    env: Env<'_>,
) -> Exit {
    let state_dir = args
        .state
        .clone()
        .unwrap_or_else(|| loaded.dir.join(".sqlflex-import"));
    let journal_path = journal::path_for(&state_dir, &args.manifest, args.select.shard);
    if let Err(e) = std::fs::create_dir_all(&state_dir) {
        eprintln!(
            "error: cannot create the state folder {}: {e}",
            state_dir.display()
        );
        return Exit::Invalid;
    }
    // Held until this function returns: one apply per journal at a time.
    let _lock = match StateLock::acquire(&state_lock::path_for(&journal_path)) {
        Ok((lock, previous)) => {
            if let Some(previous) = previous {
                eprintln!(
                    "note: a previous apply ({previous}) ended without releasing its lock; taking it over"
                );
            }
            lock
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
    };
    let opened = match Journal::open(
        &journal_path,
        &loaded.source.name,
        &journal::fingerprint(&loaded.manifest),
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    for note in &opened.notes {
        eprintln!("note: {note}");
    }
    let max_parallel = args
        .max_parallel
        .unwrap_or(loaded.manifest.concurrency.max_parallel) as usize;
    let manifest_name = loaded.source.name.clone();
    let started = now();
    {
        let ctx = match shared::context(loaded, selected, env) {
            Ok(c) => c,
            Err(exit) => return exit,
        };
        let options = crate::plan::Options {
            strict: args.checks.strict,
        };
        let plan = crate::plan::plan(&ctx, selected, &opened.prior, options).await;
        let json = global.format == Format::Json;
        if !json {
            println!("{}\n", shared::plan_table(&plan));
        }
        if !plan.all_ready() && !args.skip_invalid {
            if json {
                println!("{}", serde_json::json!({"event": "plan", "plan": plan}));
            }
            eprintln!(
                "error: nothing was submitted: {} database(s) are not ready (see above); \
                 fix them, or pass --skip-invalid to import the others",
                plan.count(Verdict::NotReady)
            );
            let records = shared::records_of_unrun_plan(&plan);
            let _ = write_reports(args, &manifest_name, &started, &records);
            return Exit::Failed;
        }
        let to_run = plan.count(Verdict::Ready) + plan.count(Verdict::Attach);
        if to_run > 0 && !args.yes && std::io::stdin().is_terminal() && !confirm(to_run) {
            eprintln!("nothing was submitted");
            return Exit::Failed;
        }

        let stop = CancellationToken::new();
        let interrupted = Arc::new(AtomicBool::new(false));
        watch_ctrl_c(stop.clone(), Arc::clone(&interrupted));
        let settings = RunSettings {
            max_parallel,
            stop_submitting: stop,
        };
        let (records, journal_error) =
            shared::execute(global, ctx, &plan, Some(opened.journal), &settings).await;
        shared::print_summary(global, &records);
        let reports_written = write_reports(args, &manifest_name, &started, &records);
        if let Some(e) = journal_error {
            eprintln!(
                "error: the journal could not be written ({e}); a rerun may not resume correctly"
            );
            return Exit::Failed;
        }
        match shared::exit_code(&records, interrupted.load(Ordering::SeqCst)) {
            // A CI job that asked for a report must not pass without it.
            Exit::Success if !reports_written => Exit::Failed,
            exit => exit,
        }
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn confirm(count: usize) -> bool {
    eprint!("Import {count} database(s)? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes" | "YES")
}

/// First Ctrl-C: submit nothing new, wait for what runs. Second: exit now;
/// the journal is flushed after every change, so a rerun resumes. The
/// handler is registered before this returns, so no Ctrl-C is missed.
fn watch_ctrl_c(stop: CancellationToken, interrupted: Arc<AtomicBool>) {
    #[cfg(unix)]
    let mut interrupt =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("warning: Ctrl-C cannot be handled gracefully: {e}");
                return;
            }
        };
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut next = async || interrupt.recv().await.is_some();
        #[cfg(not(unix))]
        let mut next = async || tokio::signal::ctrl_c().await.is_ok();
        if next().await {
            interrupted.store(true, Ordering::SeqCst);
            stop.cancel();
            eprintln!(
                "\ninterrupted: no new imports start; waiting for the running ones (Ctrl-C again exits at once; `apply` again resumes)"
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "exiting; the running imports go on on the server and the next `apply` re-attaches to them"
                );
                std::process::exit(130);
            }
        }
    });
}

/// Writes the requested reports; false when one could not be written.
fn write_reports(args: &ApplyArgs, manifest: &str, started: &str, records: &[Record]) -> bool {
    let mut written = true;
    if let Some(path) = &args.report {
        let json = report::json_report(manifest, started, &now(), records);
        if let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&json).expect("JSON") + "\n",
        ) {
            eprintln!("error: cannot write the report {}: {e}", path.display());
            written = false;
        }
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, report::junit(manifest, records))
    {
        eprintln!(
            "error: cannot write the JUnit report {}: {e}",
            path.display()
        );
        written = false;
    }
    written
}
