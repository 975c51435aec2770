//! The emulator for clients that are not ours: `tests/other_clients/check.py`
//! drives its S3 door with boto3 and its SQL Server door with python-tds, in
//! clear and in TLS (pyOpenSSL underneath). Needs a Python with the three
//! (`SQLFLEX_PYTHON`, else `python3`); `.ci/run` makes one. Without them the
//! test says so and passes.

mod common;
#[path = "common/emu.rs"]
mod emu;
#[path = "common/pki.rs"]
mod pki;

use emu::S3;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::Config;
use std::process::Command;
use std::time::Duration;

/// A Python that imports boto3, pytds and OpenSSL, or why there is none.
fn python() -> Result<String, String> {
    let python = std::env::var("SQLFLEX_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python)
        .args(["-c", "import boto3, pytds, OpenSSL"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{python} lacks boto3, python-tds or pyOpenSSL ({})",
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
                "SKIPPED: {why}; `python3 -m venv v && v/bin/pip install boto3 python-tds \
                 pyOpenSSL`, then SQLFLEX_PYTHON=v/bin/python"
            );
            return;
        }
    };
    // The SQL Server door has a certificate from a CA of the test's own:
    // python-tds without a CA file speaks in clear, with one in TLS.
    let pki = pki::private_ca();
    let e = emu::start_with(Config {
        restore_duration: Duration::from_millis(300),
        tds_tls: Some(pki.identity),
        ..Config::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = common::write(dir.path(), "ca.pem", &pki.ca);
    let other_ca_file = common::write(dir.path(), "other-ca.pem", &pki::private_ca().ca);
    let status = S3::new(&e)
        .put("db.bak", writer::write(&BackupSpec::full("db")))
        .await
        .status();
    assert_eq!(status, 200);
    let script = common::project_root().join("tests/other_clients/check.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .envs(e.env())
        .env("TDS_CA_FILE", &ca_file)
        .env("TDS_OTHER_CA_FILE", &other_ca_file);
    // The script bounds each wait itself (logins, queries, the restore).
    let (code, stdout, stderr) = emu::run(cmd).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for done in [
        "s3: boto3 ok",
        "tds: python-tds ok",
        "tds in TLS: python-tds ok",
    ] {
        assert!(stdout.contains(done), "{stdout}");
    }
    let inst = &emu::stats(&e).await["instances"][&e.instance_ids[0]];
    assert_eq!(
        (inst["tls_sessions"].as_u64(), inst["tls_logins"].as_u64()),
        (Some(1), Some(1)),
        "one session in TLS, one with its login in TLS: {inst}"
    );
}
