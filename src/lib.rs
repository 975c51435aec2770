//! sqlflex-import: a declarative batch import runner for STACKIT SQLServer
//! Flex. The pipeline, one module per stage:
//!
//! manifest (load, interpolate, validate) -> plan (prerequisite checks) ->
//! run (schedule, submit, wait, retry, journal) -> report, with `backup`
//! (the .bak header reader), `s3`, `auth` and `import_path` (the API and
//! SQL import paths) beside it, and `emulator` standing in for STACKIT
//! locally.

pub mod backup;
pub mod cli;
pub mod commands;
pub mod db_key;
pub mod diagnostic;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod endpoint;
pub mod environment;
pub mod http;
pub mod import_path;
pub mod journal;
pub mod manifest;
pub mod names;
pub mod ops;
pub mod plan;
pub mod redact;
pub mod report;
pub mod retry;
pub mod rules;
pub mod run;
pub mod s3;
pub mod secret;
pub mod state_file;
pub mod state_lock;
pub mod table;
pub mod verify;

/// The exit codes of every command (a contract: CI scripts rely on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything succeeded.
    Success = 0,
    /// At least one check or import failed.
    Failed = 1,
    /// The manifest or the command line is invalid.
    Invalid = 2,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}
