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
    let (selected, state, runtime) = match shared::load_with_state(global, path, select, state) {
        Ok(x) => x,
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
