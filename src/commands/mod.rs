//! One function per subcommand; `main` only parses and dispatches here.

mod apply;
mod demo;
mod emulator;
mod inspect;
mod plan;
mod shared;
mod validate;

use crate::Exit;
use crate::cli::{Cli, Command, Format, Global};
use clap::CommandFactory;

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
        } => plan::run(global, &manifest, &select, checks),
        Command::Apply(args) => apply::run(global, &args),
        Command::Emulator(args) => emulator::run(&args),
        Command::Demo => demo::run(global),
    }
}

/// Logs go to stderr; `-v`/`-q` pick the level, RUST_LOG overrides.
pub fn init_logging(global: &Global) {
    use tracing_subscriber::EnvFilter;
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // tiberius warns on every login without TLS; `encrypt: false` is the
    // manifest's explicit choice, so only its errors are shown.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},tiberius=error")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::diagnostic::stderr_is_styled())
        .with_target(false)
        .try_init();
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
