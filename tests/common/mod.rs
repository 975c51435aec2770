//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real binary, with an environment free of the variables the tool reads,
/// so a developer's shell cannot change what a test sees.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqlflex-import"));
    for (key, _) in std::env::vars() {
        if key.starts_with("STACKIT_") || key.starts_with("S3_") || key.starts_with("SQL_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/bak-samples`, or None with the reason printed: tests that need
/// the real samples skip visibly, never silently.
pub fn samples() -> Option<PathBuf> {
    let dir = project_root().join("../shared/bak-samples");
    if dir.join("singlerestore_full.bak").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; the real-sample checks did not run",
            dir.display()
        );
        None
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}
