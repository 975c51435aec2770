//! The command line: subcommands, flags and their help texts.

use crate::manifest::select::Shard;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
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
    /// More log output on stderr (-v info, -vv debug, -vvv trace), redacted
    /// like all output. RUST_LOG, as `target=level` directives
    /// (`warn,sqlflex_import=debug`), overrides.
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
the offending line, the field path and a hint. Exit 0 when valid (warnings allowed), 2 when not. \
Environment variables and secret files are checked when they are there: one that is unset or \
absent is a warning (an error with --strict, and always in `plan` and `apply`); one that is \
set but malformed is an error."
    )]
    Validate {
        /// The manifest (YAML).
        manifest: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        /// Treat an unset environment variable or a secret file that
        /// cannot be read as an error, as `plan` and `apply` do; without
        /// it they are warnings naming what is missing, so a check of an
        /// import plan needs none of the production secrets.
        #[arg(long)]
        strict: bool,
    },
    /// Validate, then check every prerequisite online (read-only): the target
    /// is free, the files exist and are readable, the backups are real,
    /// unencrypted, complete stripe sets starting with a full backup.
    #[command(
        after_help = "Every finding has a rule code (B: backup headers, I: the instance, T: the \
target database, S: the files in S3, M: the manifest; listed in the README) that \
`--format json` reports under `findings`; warnings (such as a compressed backup in a \
container this tool does not read) do not block unless --strict. Exit 0 when every database \
is ready."
    )]
    Plan {
        /// The manifest (YAML).
        manifest: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        checks: CheckArgs,
        /// The state folder `apply` keeps (default: .sqlflex-import/ beside
        /// the manifest): a database it imported is `done`, not a conflict.
        /// Only read.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
    },
    /// Plan, then run the imports with bounded parallelism, progress, a
    /// resumable journal and a final report.
    Apply(ApplyArgs),
    /// Write the manifest from the backups in the bucket: list every object
    /// under the prefixes, read each header (the same bounded reads as
    /// `plan`), group stripes by media set, and add, per source database,
    /// its newest complete full backup to the base manifest.
    #[command(
        after_help = "Left out, each with its rule code, and listed on stderr (grouped \
by database) and as comments at the end of the output: differential and log backups (B004), \
incomplete stripe sets (B005), password-protected or encrypted backups (B002, B003), appended \
sets (B006), objects that are not backups (B001), older full backups (D001), databases the \
base names already (D002, so a rerun adds only new ones), names that collide (D003) and names \
or keys that cannot be used (D004). The manifest is loaded again before it is written, and not written when it does not validate. \
Exit 0 when the manifest is written, 2 when the base or the arguments are not valid, 1 when \
S3 fails."
    )]
    Discover(DiscoverArgs),
    /// Check the selected databases that exist on their instances, as
    /// `apply` does after each import: ONLINE, read-write and multi-user,
    /// the owner, the collation, the compatibility level, orphaned users and
    /// (with `verify.checkdb`) DBCC CHECKDB. Read-only, except what the
    /// manifest's `verify` asks to change: `orphaned_users: fix` remaps
    /// users to their logins, `compatibility_level: latest` or a number sets
    /// the level.
    #[command(
        after_help = "Every finding has a V rule code (listed in the README); warnings (orphaned \
users, another collation) fail only with --strict. Checks that need T-SQL use the instance's \
`sql` section; an instance with only `api` gets the API's checks and a V008 note. Exit 0 when \
every database that exists passed, 1 when one failed or an instance could not be asked, 2 when \
the manifest is not valid."
    )]
    Verify {
        /// The manifest (YAML).
        manifest: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        checks: CheckArgs,
    },
    /// Per database: what the state folder says this tool did, and what
    /// the instance says now (online, restoring, missing, present but not
    /// imported by this state). Read-only.
    #[command(
        after_help = "Exit 0 when every instance could be asked, 1 when one could not (its \
databases show `unknown`)."
    )]
    Status {
        /// The manifest (YAML).
        manifest: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        /// The state folder (default: .sqlflex-import/ beside the manifest).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
    },
    /// Read .bak headers without a SQL Server (like RESTORE HEADERONLY):
    /// database, server, backup type, media set, stripe, password flag,
    /// compression, source version, backup sets and file list.
    #[command(
        after_help = "Compressed backups (WITH COMPRESSION, SQL Server 2014-2022, XPRESS) are \
read by decoding the chunks the header needs; every chunk read must pass its checksum, or the \
file is damaged. Other compressed containers (SQL Server 2008-2012, ZSTD) are a warning: not \
read, not judged. Each file is read at its start (256 KiB) and end (64 KiB): appended backup \
sets and cut uploads show. A source older than SQL Server 2008 is refused (B011). Files are grouped by media set, and each group gets its own verdict with \
the rule codes `plan` uses. Exit 1 when a file cannot be read as a backup (the others are \
still shown)."
    )]
    Inspect {
        /// Local paths, or s3:// URIs (endpoint and keys from S3_ENDPOINT,
        /// S3_ACCESS_KEY, S3_SECRET_KEY).
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Print the manifest's JSON Schema (also in schemas/manifest.schema.json).
    Schema,
    /// Run the local STACKIT stand-in: REST API, S3 and the SQL Server protocol,
    /// over one in-memory model of instances, databases and restores.
    #[command(
        after_help = "Without --print-env it prints how to point the tool and other clients \
at it. Ctrl-C or SIGTERM stops it. Everything listens on loopback unless told otherwise."
    )]
    #[cfg(feature = "emulator")]
    Emulator(EmulatorArgs),
    /// Start the emulator in-process, upload generated backups and apply
    /// examples/demo.yaml against it.
    #[cfg(feature = "emulator")]
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

#[derive(Debug, Args, Clone, Copy, Default)]
pub struct CheckArgs {
    /// Treat warnings as refusals: of the backup rules (for example a
    /// compressed backup in a container this tool does not read) and of the
    /// checks after an import (orphaned users, another collation).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args, Clone)]
pub struct EmulatorArgs {
    /// REST API address; port 0 picks a free port. An address beyond
    /// loopback is warned about: the emulator's test credentials, bucket and
    /// unencrypted SQL logins would be open to other machines.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub api_addr: SocketAddr,
    /// S3 address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub s3_addr: SocketAddr,
    /// SQL Server address of the first instance; instance N listens on
    /// port + N (each on a free port when the port is 0).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub tds_addr: SocketAddr,
    /// Folder for the bucket and the service-account key (default: a
    /// temporary folder, removed when the emulator stops).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Number of Flex instances.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub instances: u16,
    /// How long one restore takes.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = non_negative)]
    pub restore_seconds: f64,
    /// Fraction of API requests answered 500, 503 or 429 (some POSTs after
    /// the restore was accepted).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = fraction)]
    pub fault_rate: f64,
    /// Fraction of API requests and SQL logins/imports whose connection is
    /// dropped without an answer.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = fraction)]
    pub reset_rate: f64,
    /// Lock the SQL login after N failed logins in a row, as SQL Server does
    /// for a login with CHECK_POLICY under an account lockout policy: a
    /// locked login is refused (error 18486) even with the right password,
    /// until the emulator restarts. Default: never locked.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub lockout_after: Option<u32>,
    /// Seed of the fault injector and of the ids, for reproducible runs.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// State of every instance: READY (default), PENDING, PROGRESSING,
    /// FAILURE, UNKNOWN or TERMINATING.
    #[arg(long, value_name = "STATE", default_value = "READY")]
    pub instance_state: String,
    /// Storage size of every instance, in GB.
    #[arg(long, value_name = "GB", default_value_t = 100)]
    pub storage_gb: u64,
    /// Users (logins) on every instance, comma-separated; `name:STATUS` for
    /// another status than ACTIVE (default: app_owner,demo_owner,importer).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub users: Option<Vec<String>>,
    /// Users every restored database contains, comma-separated: `name` is
    /// orphaned (its SID is the old server's), `name:mapped` has the SID of
    /// the login of that name, which must be among `--users`.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub database_users: Option<Vec<String>>,
    /// Databases whose `DBCC CHECKDB` reports consistency errors,
    /// comma-separated.
    #[arg(long, value_name = "DATABASES", value_delimiter = ',')]
    pub checkdb_errors: Option<Vec<String>>,
    /// A YAML file describing each instance in turn (overrides the five
    /// flags above): `instances: [{state: READY, version: "2022",
    /// storage_gb: 100, users: [app_owner, "old_user:LOCKED"],
    /// view_any_database: true, database_users: ["app_user:mapped"],
    /// checkdb_errors: [bad_db]}, ...]`.
    #[arg(long, value_name = "FILE.yaml")]
    pub instances_file: Option<PathBuf>,
    /// PEM certificate chain of the SQL Server doors, leaf first. With
    /// `--tds-key`, the doors speak TLS as SQL Server does with a
    /// certificate: the whole session for a client that asks for encryption,
    /// only its login for a client that has encryption off, none for one
    /// without TLS, and TDS 8.0 (TLS from the first byte) for one that
    /// begins with TLS. Without these two flags the doors have no TLS.
    #[arg(long, value_name = "FILE.pem", requires = "tds_key")]
    pub tds_cert: Option<PathBuf>,
    /// PEM private key of `--tds-cert` (PKCS #8, PKCS #1 or SEC1).
    #[arg(long, value_name = "FILE.pem", requires = "tds_cert")]
    pub tds_key: Option<PathBuf>,
    /// Force encryption on the SQL Server doors, as SQL Server's "Force
    /// Encryption" does: a client with encryption off gets the whole
    /// session in TLS, and one that offers no TLS is refused.
    #[arg(long, requires = "tds_cert")]
    pub tds_force_encryption: bool,
    /// Start with an empty bucket. By default it holds the backups
    /// examples/demo.yaml imports (demo/...), so `apply examples/demo.yaml`
    /// works against it at once.
    #[arg(long)]
    pub empty: bool,
    /// Print KEY=VALUE lines for a shell (STACKIT_API_ENDPOINT, S3_*, SQL_*, ...)
    /// once all listeners are up, instead of the summary; every instance
    /// also as STACKIT_INSTANCE_ID_N and SQL_PORT_N (N from 0).
    #[arg(long)]
    pub print_env: bool,
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("`{s}` is not a fraction between 0 and 1")),
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=86_400.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "`{s}` is not a number of seconds between 0 and 86400"
        )),
    }
}

#[derive(Debug, Args, Clone)]
pub struct DiscoverArgs {
    /// The base manifest: its `s3`, `instances`, `defaults` and
    /// `concurrency` are used; its `databases` may be absent, empty, or hold
    /// entries, which are kept.
    pub base: PathBuf,
    /// A bucket prefix to look under (a folder such as `SQL01/`); repeat for
    /// several.
    #[arg(long, value_name = "PREFIX", required = true)]
    pub prefix: Vec<String>,
    /// The base's instance the databases go to.
    #[arg(long, value_name = "NAME")]
    pub instance: String,
    /// The import path written into each entry (default: the base's
    /// `defaults.method`).
    #[arg(long, value_enum)]
    pub method: Option<crate::import_path::Method>,
    /// The target name: `{database}` (the source database's name) and
    /// `{server}` (its server's) are replaced.
    #[arg(long, value_name = "TEMPLATE", default_value = crate::ops::discover::DEFAULT_TEMPLATE)]
    pub name_template: String,
    /// A tag for every entry added; repeat for several.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Write the manifest here (it may be the base itself) instead of to
    /// standard output. With `--format json`, standard output holds the
    /// result as data and the manifest is written only here.
    #[arg(long, short = 'o', value_name = "OUT.yaml")]
    pub output: Option<PathBuf>,
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
    #[command(flatten)]
    pub checks: CheckArgs,
    /// State folder (default: .sqlflex-import/ beside the manifest): what
    /// earlier applies did, per database, whatever manifest or shard ran
    /// them. One apply per manifest (and shard) at a time: a second one
    /// refuses, naming the first.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Write a JSON report: per database outcome, timings, attempts, reason,
    /// and a failure's code (R001-R008, listed in the README).
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Write a JUnit XML report, one test case per database (a failure's
    /// type is its code).
    #[arg(long, value_name = "FILE.xml")]
    pub junit: Option<PathBuf>,
    /// Do not ask for confirmation. Needed when nobody can answer (standard
    /// input is not a terminal): without it, apply submits nothing and
    /// exits 2.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Import the databases that pass their checks; the others are reported
    /// as not ready (with their reasons), and the run exits 1.
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
