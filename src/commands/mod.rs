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
use tracing_subscriber::filter::Targets;

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
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match (global.quiet, global.verbose) {
        (true, _) => Level::ERROR,
        (false, 0) => Level::WARN,
        (false, 1) => Level::INFO,
        (false, 2) => Level::DEBUG,
        _ => Level::TRACE,
    };
    let (filter, unreadable) = log_filter(level, std::env::var("RUST_LOG").ok().as_deref());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(crate::diagnostic::stderr_is_styled())
        .with_target(false)
        // The Targets layer below decides; the builder's own cap (INFO by
        // default) would hide -vv and -vvv.
        .with_max_level(Level::TRACE)
        .finish()
        .with(filter);
    if logs.try_init().is_ok()
        && let Some(e) = unreadable
    {
        tracing::warn!(
            "RUST_LOG is not a list of `target=level` directives ({e}); using the default levels"
        );
    }
}

/// RUST_LOG's directives when it holds some that parse, otherwise `level`
/// (and why RUST_LOG was passed over).
fn log_filter(
    level: tracing::Level,
    rust_log: Option<&str>,
) -> (Targets, Option<tracing_subscriber::filter::ParseError>) {
    // tiberius warns on every login without TLS; `encrypt: false` is the
    // manifest's explicit choice, so only its errors are shown.
    let default = Targets::new()
        .with_default(level)
        .with_target("tiberius", tracing::Level::ERROR);
    // An empty RUST_LOG, as CI systems often export it, counts as unset: as
    // directives it would silence even errors.
    match rust_log.filter(|v| !v.trim().is_empty()).map(str::parse) {
        Some(Ok(targets)) => (targets, None),
        Some(Err(e)) => (default, Some(e)),
        None => (default, None),
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

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_directives_override_the_level_unless_empty_or_unreadable() {
        let (from_env, why) = log_filter(Level::WARN, Some("info,sqlflex_import=debug"));
        assert!(why.is_none());
        assert!(from_env.would_enable("sqlflex_import::run", &Level::DEBUG));
        assert!(from_env.would_enable("hyper", &Level::INFO));
        assert!(!from_env.would_enable("hyper", &Level::DEBUG));

        // Empty (or blank) is unset: errors and warnings still show.
        for empty in [None, Some(""), Some("  ")] {
            let (filter, why) = log_filter(Level::WARN, empty);
            assert!(why.is_none(), "{empty:?}");
            assert!(
                filter.would_enable("sqlflex_import", &Level::WARN),
                "{empty:?}"
            );
            assert!(
                !filter.would_enable("sqlflex_import", &Level::INFO),
                "{empty:?}"
            );
            assert!(!filter.would_enable("tiberius", &Level::WARN), "{empty:?}");
        }

        let (filter, why) = log_filter(Level::ERROR, Some("sqlflex_import=loud"));
        assert!(why.is_some());
        assert!(filter.would_enable("sqlflex_import", &Level::ERROR));
        assert!(!filter.would_enable("sqlflex_import", &Level::WARN));
    }
}
