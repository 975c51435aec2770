use super::shared;
use crate::Exit;
use crate::cli::{CheckArgs, Format, Global, SelectArgs};
use crate::manifest;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn run(
    global: &Global,
    path: &Path,
    select: &SelectArgs,
    checks: CheckArgs,
    state: Option<&Path>,
) -> Exit {
    let (selected, state, runtime) = match shared::load_with_state(global, path, select, state) {
        Ok(x) => x,
        Err(exit) => return exit,
    };
    let checked = Arc::new(AtomicUsize::new(0));
    let options = crate::plan::Options {
        strict: checks.strict,
        checked: Some(Arc::clone(&checked)),
    };
    let total = selected.indexes.len() as u64;
    let show = global.format == Format::Human && !global.quiet && std::io::stderr().is_terminal();
    let planned = runtime.block_on(async {
        let spinner = show.then(|| tokio::spawn(spin(checked, total)));
        let planned = crate::ops::plan(selected, &manifest::process_env, &state, options).await;
        if let Some(spinner) = spinner {
            spinner.abort();
            let _ = spinner.await;
        }
        planned
    });
    let plan = match planned {
        Ok((_, plan)) => plan,
        Err(e) => {
            errln!("error: {e}");
            return Exit::Invalid;
        }
    };
    if global.format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&plan).expect("JSON"));
    } else {
        outln!("{}", shared::plan_table(&plan));
    }
    if plan.all_ready() {
        Exit::Success
    } else {
        Exit::Failed
    }
}

/// After a second without a result, a line that counts the databases
/// checked; cleared when the plan is done (the task is aborted).
async fn spin(checked: Arc<AtomicUsize>, total: u64) {
    /// Clears the line however the task ends.
    struct Clear(indicatif::ProgressBar);
    impl Drop for Clear {
        fn drop(&mut self) {
            self.0.finish_and_clear();
        }
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let bar = Clear(indicatif::ProgressBar::new(total));
    bar.0.set_style(
        indicatif::ProgressStyle::with_template(
            "planning: {pos}/{len} databases checked {elapsed}",
        )
        .expect("valid template"),
    );
    loop {
        bar.0.set_position(checked.load(Ordering::Relaxed) as u64);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
