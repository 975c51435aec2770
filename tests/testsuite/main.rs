//! The integration tests, in one binary (the shape of cargo's own
//! `tests/testsuite`): one link of the library instead of one per file.
//! Each module is one subject; `common` is the kit they share.

// Tests read the variables that tell them where foreign clients are.
#![allow(clippy::disallowed_methods)]

mod common;

mod backup;
mod cli;
mod contract;
mod discover;
mod emulator;
mod engine;
mod examples;
mod instance;
mod manifest_fuzz;
mod names;
mod other_clients;
mod real_compressed;
mod real_world_backups;
mod reliability;
mod repeatable_runs;
mod replace;
mod security;
mod sql_tls;
mod state_lock;
mod terminal;
mod validate;
mod verify;
