//! The emulator for clients that are not ours: `tests/other_clients/check.py`
//! drives its S3 door with boto3 and its SQL Server door with python-tds.
//! Needs a Python with both (`SQLFLEX_PYTHON`, else `python3`); `.ci/run`
//! makes one. Without them the test says so and passes.

mod common;
#[path = "common/emu.rs"]
mod emu;

use emu::{S3, start};
use sqlflex_import::backup::writer::{self, BackupSpec};
use std::process::Command;
use std::time::Duration;

/// A Python that imports boto3 and pytds, or why there is none.
fn python() -> Result<String, String> {
    let python = std::env::var("SQLFLEX_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python)
        .args(["-c", "import boto3, pytds"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{python} lacks boto3 or python-tds ({})",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {python}: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_python_tds_work_against_the_emulator() {
    let python = match python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!(
                "SKIPPED: {why}; `python3 -m venv v && v/bin/pip install boto3 python-tds`, \
                 then SQLFLEX_PYTHON=v/bin/python"
            );
            return;
        }
    };
    let e = start(Duration::from_millis(300)).await;
    let status = S3::new(&e)
        .put("db.bak", writer::write(&BackupSpec::full("db")))
        .await
        .status();
    assert_eq!(status, 200);
    let script = common::project_root().join("tests/other_clients/check.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).envs(e.env());
    // The script bounds each wait itself (logins, queries, the restore).
    let (code, stdout, stderr) = emu::run(cmd).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("s3: boto3 ok") && stdout.contains("tds: python-tds ok"),
        "{stdout}"
    );
}
