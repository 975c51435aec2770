//! One function per subcommand; `main` only parses and dispatches here.
//! What the commands say goes through `outln!`/`errln!` (module `output`).

// `println!` and friends, minus the panic on a closed pipe (`output`).
macro_rules! outln {
    ($($t:tt)*) => { $crate::commands::output::stdout(format_args!($($t)*), true) };
}
macro_rules! out {
    ($($t:tt)*) => { $crate::commands::output::stdout(format_args!($($t)*), false) };
}
macro_rules! errln {
    ($($t:tt)*) => { $crate::commands::output::stderr(format_args!($($t)*), true) };
}
macro_rules! errs {
    ($($t:tt)*) => { $crate::commands::output::stderr(format_args!($($t)*), false) };
}

mod apply;
#[cfg(feature = "emulator")]
mod demo;
mod discover;
#[cfg(feature = "emulator")]
mod emulator;
mod inspect;
mod logging;
mod output;
mod plan;
mod progress;
mod shared;
mod status;
mod validate;
mod verify;

use crate::Exit;
use crate::cli::{CheckArgs, Cli, Command, Format, Global};
use clap::CommandFactory;
pub use logging::init_logging;

pub fn run(cli: Cli) -> Exit {
    let global = &cli.global;
    match cli.command {
        Command::Validate {
            manifest,
            select,
            strict,
        } => validate::run(global, &manifest, &select, CheckArgs { strict }),
        Command::Inspect { files } => inspect::run(global, &files),
        Command::Schema => {
            let schema = crate::manifest::structure::schema();
            outln!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("schema serializes")
            );
            Exit::Success
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "sqlflex-import", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            Exit::Success
        }
        Command::Plan {
            manifest,
            select,
            checks,
            state,
        } => plan::run(global, &manifest, &select, checks, state.as_deref()),
        Command::Apply(args) => apply::run(global, &args),
        Command::Discover(args) => discover::run(global, &args),
        Command::Verify {
            manifest,
            select,
            checks,
        } => verify::run(global, &manifest, &select, checks),
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
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON serializes")
    );
}

fn is_json(global: &Global) -> bool {
    global.format == Format::Json
}
