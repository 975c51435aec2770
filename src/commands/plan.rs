use super::shared;
use crate::Exit;
use crate::cli::{CheckArgs, Format, Global, SelectArgs};
use crate::manifest;
use std::path::Path;

pub fn run(
    global: &Global,
    path: &Path,
    select: &SelectArgs,
    checks: CheckArgs,
    state: Option<&Path>,
) -> Exit {
    let selected = match shared::load(global, path, select, &manifest::process_env) {
        Ok(x) => x,
        Err(exit) => return exit,
    };
    let state_dir = state.map_or_else(|| crate::ops::default_state_dir(&selected), Path::to_owned);
    let state = match crate::journal::read_state(&state_dir) {
        Ok((state, notes)) => {
            for note in notes {
                eprintln!("note: {note}");
            }
            state
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let runtime = match shared::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let options = crate::plan::Options {
        strict: checks.strict,
    };
    let planned = runtime.block_on(crate::ops::plan(
        selected,
        &manifest::process_env,
        &state,
        options,
    ));
    let plan = match planned {
        Ok((_, plan)) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    if global.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&plan).expect("JSON"));
    } else {
        println!("{}", shared::plan_table(&plan));
    }
    if plan.all_ready() {
        Exit::Success
    } else {
        Exit::Failed
    }
}
