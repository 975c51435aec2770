//! Helpers shared by the integration tests.
#![allow(clippy::print_stderr)] // A skip is said on stderr.

pub mod emu;
pub mod pki;

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
    shared(
        "bak-samples",
        "singlerestore_full.bak",
        "the real-sample checks",
    )
}

/// `../shared/<folder>` when it holds `marker`, or None with the reason
/// printed (`what` did not run).
pub fn shared(folder: &str, marker: &str, what: &str) -> Option<PathBuf> {
    let dir = project_root().join("../shared").join(folder);
    if dir.join(marker).is_file() {
        Some(dir)
    } else {
        skip(&format!("{} is absent; {what} did not run", dir.display()));
        None
    }
}

/// Set by `.ci/run`: there a test that would skip fails instead.
pub const REQUIRE_ALL_ENV: &str = "SQLFLEX_REQUIRE_ALL";

/// A test that cannot run here (no `../shared`, no Python or Node client):
/// said on stderr locally, a failure where everything is required (CI).
pub fn skip(why: &str) {
    if std::env::var_os(REQUIRE_ALL_ENV).is_some_and(|v| v == "1") {
        panic!("{REQUIRE_ALL_ENV}=1, but this test would skip: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// The KEY=VALUE lines `emulator --print-env` prints, read until the last
/// one (`SQL_PASSWORD`), the end of the output, or the deadline: a test
/// never hangs on an emulator that prints less.
pub fn read_env(
    stdout: std::process::ChildStdout,
    deadline: std::time::Duration,
) -> std::collections::HashMap<String, String> {
    use std::io::BufRead;
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let last = line.starts_with("SQL_PASSWORD=");
            if send.send(line).is_err() || last {
                break;
            }
        }
    });
    let end = std::time::Instant::now() + deadline;
    let mut env = std::collections::HashMap::new();
    while let Ok(line) =
        receive.recv_timeout(end.saturating_duration_since(std::time::Instant::now()))
    {
        if let Some((k, v)) = line.split_once('=') {
            env.insert(k.to_owned(), v.trim_matches('\'').to_owned());
        }
    }
    env
}

/// `emulator --print-env` from `cmd` (the binary and its arguments), its
/// output piped: the running child and the variables it printed.
pub fn start_emulator(
    cmd: &mut Command,
) -> (
    std::process::Child,
    std::collections::HashMap<String, String>,
) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the emulator starts");
    let env = read_env(
        child.stdout.take().expect("piped"),
        std::time::Duration::from_secs(60),
    );
    (child, env)
}

/// Stops an emulator the way a user would (SIGTERM) and waits for it.
pub fn stop_emulator(mut child: std::process::Child) -> std::process::ExitStatus {
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().expect("the emulator is waited for")
}

/// An address-space limit on a child process, so a test that probes memory
/// bounds fails instead of exhausting the machine.
pub fn limit_memory(cmd: &mut Command, bytes: u64) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    }
}

/// "code severity" of each finding of a plan item (`plan --format json`).
pub fn finding_codes(item: &serde_json::Value) -> Vec<String> {
    item["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{} {}",
                f["code"].as_str().unwrap_or_default(),
                f["severity"].as_str().unwrap_or_default()
            )
        })
        .collect()
}
