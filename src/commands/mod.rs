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

/// Logs go to stderr; `-v`/`-q` pick the level, RUST_LOG overrides with
/// `target=level` directives (a bare level is the default for every target).
pub fn init_logging(global: &Global) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // tiberius warns on every login without TLS; `encrypt: false` is the
    // manifest's explicit choice, so only its errors are shown.
    let default: Targets = format!("{level},tiberius=error")
        .parse()
        .expect("the default log directives parse");
    let from_env = std::env::var("RUST_LOG").ok().map(|v| v.parse::<Targets>());
    let filter = match &from_env {
        Some(Ok(targets)) => targets.clone(),
        _ => default,
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(crate::diagnostic::stderr_is_styled())
        .with_target(false)
        .with_max_level(tracing::Level::TRACE)
        .finish()
        .with(filter);
    if logs.try_init().is_ok()
        && let Some(Err(e)) = from_env
    {
        tracing::warn!(
            "RUST_LOG is not a list of `target=level` directives ({e}); using the default levels"
        );
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
