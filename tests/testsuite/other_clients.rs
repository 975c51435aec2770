//! The emulator for clients that are not ours: `tests/testsuite/other_clients/check.py`
//! drives its S3 door with boto3 and its SQL Server door with python-tds, in
//! clear and in TLS (pyOpenSSL underneath); `tests/testsuite/other_clients/check.js`
//! drives the SQL Server door with Node's tedious, in clear, in TLS and in
//! TDS 8.0. They need a Python with the three (`SQLFLEX_PYTHON`, else
//! `python3`) and Node with tedious; `.ci/run` installs both under
//! `target/`. Without them a test says so and passes.

use crate::common;
use crate::common::emu;
use crate::common::pki;

use emu::S3;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::{Config, Emulator};
use std::path::PathBuf;
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

/// An emulator whose SQL Server door has a certificate from a CA of the
/// test's own, with one full backup at `db.bak`; the files of that CA and
/// of another one.
async fn emulator_with_tls() -> (Emulator, tempfile::TempDir, PathBuf, PathBuf) {
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
    (e, dir, ca_file, other_ca_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_python_tds_work_against_the_emulator() {
    let python = match python() {
        Ok(p) => p,
        Err(why) => {
            common::skip(&format!(
                "{why}; `python3 -m venv v && v/bin/pip install boto3 python-tds \
                 pyOpenSSL`, then SQLFLEX_PYTHON=v/bin/python"
            ));
            return;
        }
    };
    // python-tds without a CA file speaks in clear, with one in TLS.
    let (e, _dir, ca_file, other_ca_file) = emulator_with_tls().await;
    let script = common::project_root().join("tests/testsuite/other_clients/check.py");
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

/// Node and its tedious module (`SQLFLEX_NODE`, else `node`; the module
/// under `SQLFLEX_NODE_PATH`, else `target/other-clients-node/node_modules`),
/// or why there are none.
fn node() -> Result<(String, PathBuf), String> {
    let node = std::env::var("SQLFLEX_NODE").unwrap_or_else(|_| "node".into());
    let modules = std::env::var_os("SQLFLEX_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::project_root().join("target/other-clients-node/node_modules"));
    match Command::new(&node)
        .args(["-e", "require('tedious')"])
        .env("NODE_PATH", &modules)
        .output()
    {
        Ok(out) if out.status.success() => Ok((node, modules)),
        Ok(_) => Err(format!("no tedious module in {}", modules.display())),
        Err(e) => Err(format!("cannot run {node}: {e}")),
    }
}

/// tedious, in clear, in TLS and in TDS 8.0: an implementation of both
/// the protocol and TLS (Node's OpenSSL) that is not ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tedious_works_against_the_emulator_in_clear_in_tls_and_in_tds_8() {
    let (node, modules) = match node() {
        Ok(found) => found,
        Err(why) => {
            common::skip(&format!(
                "{why}; `npm install --prefix target/other-clients-node \
                 tedious@18.6.2`, or set SQLFLEX_NODE_PATH"
            ));
            return;
        }
    };
    let (e, _dir, ca_file, _) = emulator_with_tls().await;
    let script = common::project_root().join("tests/testsuite/other_clients/check.js");
    let mut cmd = Command::new(node);
    cmd.arg(script)
        .envs(e.env())
        .env("NODE_PATH", &modules)
        .env("TDS_CA_FILE", &ca_file);
    let (code, stdout, stderr) = emu::run(cmd).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("tds: tedious ok"), "{stdout}");
    let inst = &emu::stats(&e).await["instances"][&e.instance_ids[0]];
    // In TLS: `encrypt: true`, `strict`, and the wrong password's attempt.
    assert_eq!(
        (inst["tls_sessions"].as_u64(), inst["logins"].as_u64()),
        (Some(3), Some(4)),
        "{inst}"
    );
}
