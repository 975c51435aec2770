//! The command line: subcommands, flags and their help texts.

use crate::manifest::select::Shard;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes: 0 everything succeeded, 1 a check or an import failed,
            2 the manifest or the command line is invalid, 130 interrupted.

Start with `sqlflex-import demo` to see a whole run against the built-in emulator.";

/// Import many SQL Server .bak backups from STACKIT object storage into
/// STACKIT SQLServer Flex, checked first, run concurrently, resumable.
#[derive(Debug, Parser)]
#[command(name = "sqlflex-import", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Output format: `human` (tables, colours on a terminal) or `json`
    /// (machine-readable on stdout, logs on stderr).
    #[arg(long, value_enum, default_value_t = Format::Human, global = true)]
    pub format: Format,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// No progress bars: plain timestamped lines instead (automatic when
    /// stderr is not a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a manifest offline: schema, names, references, files,
    /// environment variables. Touches nothing remote.
    #[command(
        after_help = "Every problem is reported in one run, each with file:line:column, \
the offending line, the field path and a hint. Exit 0 when valid (warnings allowed), 2 when not."
    )]
    Validate {
        /// The manifest (YAML).
        manifest: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Validate, then check every prerequisite online (read-only): the target
    /// is free, the files exist and are readable, the backups are real,
    /// unencrypted, complete stripe sets starting with a full backup.
    Plan {
        /// The manifest (YAML).
        manifest: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Plan, then run the imports with bounded parallelism, progress, a
    /// resumable journal and a final report.
    Apply(ApplyArgs),
    /// Read .bak headers without a SQL Server (like RESTORE HEADERONLY):
    /// database, server, backup type, media set, stripe, password flag.
    #[command(
        after_help = "With several files, also says whether they form one complete \
stripe set. Exit 1 when a file cannot be read as a backup (the others are still shown)."
    )]
    Inspect {
        /// Local paths or s3:// URIs.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Print the manifest's JSON Schema (also in schemas/manifest.schema.json).
    Schema,
    /// Run the local STACKIT stand-in: REST API, S3 and the SQL Server protocol.
    Emulator,
    /// Start the emulator in-process, upload generated backups and apply
    /// examples/demo.yaml against it.
    Demo,
    /// Print shell completions: `sqlflex-import completions bash > /etc/bash_completion.d/sqlflex-import`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args, Clone, Default)]
pub struct SelectArgs {
    /// Only this database (repeatable).
    #[arg(long = "only", value_name = "NAME")]
    pub only: Vec<String>,
    /// Only databases with this tag (repeatable; any tag matches).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Take shard K of N (deterministic by instance and name), for several
    /// runners splitting one manifest.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
}

#[derive(Debug, Args, Clone)]
pub struct ApplyArgs {
    /// The manifest (YAML).
    pub manifest: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Imports running at once over the whole run (overrides concurrency.max_parallel).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Journal folder (default: .sqlflex-import/ beside the manifest).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Write a JSON report: per database outcome, timings, attempts, reason.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Write a JUnit XML report, one test case per database.
    #[arg(long, value_name = "FILE.xml")]
    pub junit: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Run the databases that pass their checks and report the others as skipped.
    #[arg(long)]
    pub skip_invalid: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
