use super::shared;
use crate::Exit;
use crate::cli::{CheckArgs, Format, Global, SelectArgs};
use crate::manifest;
use std::path::Path;

pub fn run(global: &Global, path: &Path, select: &SelectArgs, checks: CheckArgs) -> Exit {
    let (loaded, selected) = match shared::load(global, path, select, &manifest::process_env) {
        Ok(x) => x,
        Err(exit) => return exit,
    };
    let runtime = match shared::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    runtime.block_on(async {
        let ctx = match shared::context(loaded, &selected, &manifest::process_env) {
            Ok(c) => c,
            Err(exit) => return exit,
        };
        let options = crate::plan::Options {
            strict: checks.strict,
        };
        let plan = crate::plan::plan(&ctx, &selected, &Default::default(), options).await;
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
    })
}
