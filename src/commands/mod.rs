//! One function per subcommand; `main` only parses and dispatches here.
#![allow(clippy::print_stdout, clippy::print_stderr)] // The commands speak to people.

mod apply;
#[cfg(feature = "emulator")]
mod demo;
#[cfg(feature = "emulator")]
mod emulator;
mod inspect;
mod logging;
mod plan;
mod progress;
mod shared;
mod status;
mod validate;

use crate::Exit;
use crate::cli::{Cli, Command, Format, Global};
use clap::CommandFactory;
pub use logging::init_logging;

pub fn run(cli: Cli) -> Exit {
    let global = &cli.global;
    match cli.command {
        Command::Validate { manifest, select } => validate::run(global, &manifest, &select),
        Command::Inspect { files } => inspect::run(global, &files),
        Command::Schema => {
            let schema = crate::manifest::structure::schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("schema serializes")
            );
            Exit::Success
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "sqlflex-import",
                &mut std::io::stdout(),
            );
            Exit::Success
        }
        Command::Plan {
            manifest,
            select,
            checks,
            state,
        } => plan::run(global, &manifest, &select, checks, state.as_deref()),
        Command::Apply(args) => apply::run(global, &args),
        Command::Status {
            manifest,
            select,
            state,
        } => status::run(global, &manifest, &select, state.as_deref()),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => emulator::run(&args),
        #[cfg(feature = "emulator")]
        Command::Demo => demo::run(global),
    }
}

/// Prints a JSON document on stdout.
fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON serializes")
    );
}

fn is_json(global: &Global) -> bool {
    global.format == Format::Json
}
