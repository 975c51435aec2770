//! The adversarial review, replayed against the real binary: every finding
//! of the security issue as a test that failed on the code before the fix.
//! Memory-hungry inputs run under an address-space limit on the child, so a
//! regression fails the test instead of exhausting the machine.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A test may say what it saw.

use crate::common;
use crate::common::emu;

use emu::{Db, S3, apply, assert_no_secrets, manifest, run, stats, tool};
use rusty_s3::S3Action;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::Emulator;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Address space for a child that must not grow: far above what the tool
/// needs (about 100 MB), far below what the old code took (GBs).
const MEMORY_LIMIT: u64 = 1 << 30;

/// Presigned-URL and credential material that must never be shown.
fn assert_no_download_link(what: &str, text: &str) {
    for marker in [
        "X-Amz-Signature",
        "X-Amz-Credential",
        "x-amz-signature",
        "TESTACCESSKEY",
    ] {
        assert!(!text.contains(marker), "{what} shows `{marker}`:\n{text}");
    }
    assert_no_secrets(what, text);
}

async fn emulator_with_one_backup(name: &str) -> Emulator {
    let e = emu::start(Duration::from_millis(300)).await;
    let status = S3::new(&e)
        .put(
            &format!("{name}.bak"),
            writer::write(&BackupSpec::full(name)),
        )
        .await
        .status();
    assert_eq!(status, 200);
    e
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs plan (human and JSON), apply with both reports, and returns every
/// output and file they produced.
async fn everything_shown(e: &Emulator, dir: &Path, manifest: &Path) -> Vec<(String, String)> {
    let m = manifest.to_str().unwrap();
    let report = dir.join("r.json");
    let junit = dir.join("r.xml");
    let runs = [
        tool(e, &["plan", m]),
        tool(e, &["--format", "json", "plan", m]),
        tool(
            e,
            &[
                "apply",
                "--yes",
                "--no-progress",
                m,
                "--report",
                report.to_str().unwrap(),
                "--junit",
                junit.to_str().unwrap(),
            ],
        ),
    ];
    let outcomes = futures::future::join_all(runs.into_iter().map(run)).await;
    let mut shown = Vec::new();
    for (i, (code, stdout, stderr)) in outcomes.into_iter().enumerate() {
        assert_eq!(code, 1, "run {i}: {stdout}\n{stderr}");
        shown.push((format!("run {i} stdout"), stdout));
        shown.push((format!("run {i} stderr"), stderr));
    }
    for file in [report, junit, dir.join(".sqlflex-import/m.jsonl")] {
        if let Ok(text) = std::fs::read_to_string(&file) {
            shown.push((file.display().to_string(), text));
        }
    }
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_s3_port_shows_no_download_link() {
    let e = emulator_with_one_backup("sales").await;
    let dir = tempfile::tempdir().unwrap();
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])])
        .replace("${S3_ENDPOINT}", &closed);
    let path = common::write(dir.path(), "m.yaml", &text);
    let mut inspect = tool(&e, &["inspect", "s3://sqlflex-backups/sales.bak"]);
    inspect.env("S3_ENDPOINT", &closed);
    let (shown, (code, stdout, stderr)) =
        tokio::join!(everything_shown(&e, dir.path(), &path), run(inspect));
    assert_eq!(code, 1, "{stdout}{stderr}");
    let plan = &shown[0].1;
    assert!(plan.contains("cannot reach S3"), "{plan}");
    for (what, text) in shown.iter().chain([
        &("inspect stdout".into(), stdout),
        &("inspect stderr".into(), stderr),
    ]) {
        assert_no_download_link(what, text);
    }
}

/// A stand-in S3 that answers HEAD, then drops every GET in the middle of
/// its answer's headers (reqwest's error then names the presigned URL).
async fn s3_dropping_mid_get() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = vec![0; 8192];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..n]).starts_with("HEAD");
                let answer: &[u8] = if head {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 65536\r\nconnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 206 Partial Content\r\ncontent-len"
                };
                let _ = socket.write_all(answer).await;
                // Dropped here, mid-answer.
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_get_shows_no_download_link() {
    let e = emu::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = s3_dropping_mid_get().await;
    let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])])
        .replace("${S3_ENDPOINT}", &endpoint);
    let path = common::write(dir.path(), "m.yaml", &text);
    let shown = everything_shown(&e, dir.path(), &path).await;
    assert!(
        shown[0].1.contains("cannot reach S3 for sales.bak"),
        "{}",
        shown[0].1
    );
    for (what, text) in &shown {
        assert_no_download_link(what, text);
    }
}

/// A manifest that needs nothing remote to validate.
const OFFLINE: &str = "version: 1
defaults: {owner: app_owner}
s3:
  endpoint: https://object.storage.example
  bucket: backups
  access_key: ${S3_ACCESS_KEY}
  secret_key: ${S3_SECRET_KEY}
instances:
  prod:
    project_id: 0b3c6a51-5e2c-4c2d-9a0e-6f1d2f3a4b5c
    region: eu01
    instance_id: 4f0c6a51-5e2c-4c2d-9a0e-6f1d2f3a4b5c
    api: {token: \"${TOKEN}\"}
    sql: {host: 127.0.0.1, user: importer, password: \"${SQL_PASSWORD}\", encrypt: false}
databases:
  - {name: sales, instance: prod, files: [sales.bak]}
  - {name: hr, instance: prod, method: sql, files: [hr.bak]}
";

fn offline_tool(args: &[&str]) -> Command {
    let mut cmd = common::bin();
    cmd.args(args)
        .env("S3_ACCESS_KEY", "OFFLINE-ACCESS-KEY")
        .env("S3_SECRET_KEY", "OFFLINE-S3-SECRET-91")
        .env("TOKEN", "OFFLINE-TOKEN-91")
        .env("SQL_PASSWORD", "OFFLINE-SQL-PASSWORD-91")
        .stdin(std::process::Stdio::null());
    cmd
}

fn write_offline(dir: &Path, text: &str) -> PathBuf {
    common::write(dir, "m.yaml", text)
}

#[test]
fn secret_files_are_read_with_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    // 1 GiB, sparse: no disk used, but a reader without a limit takes it all.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let big = big.to_str().unwrap();
    for source in ["/dev/zero", big] {
        for (from, to) in [
            ("secret_key: ${S3_SECRET_KEY}", "secret_key_file: SOURCE"),
            ("api: {token: \"${TOKEN}\"}", "api: {token_file: SOURCE}"),
            ("password: \"${SQL_PASSWORD}\"", "password_file: SOURCE"),
        ] {
            let text = OFFLINE.replace(from, &to.replace("SOURCE", source));
            let path = write_offline(dir.path(), &text);
            let mut cmd = offline_tool(&["validate", path.to_str().unwrap()]);
            let (code, stdout, stderr) = common::run(common::limit_memory(&mut cmd, MEMORY_LIMIT));
            assert_eq!(code, 2, "{to} = {source}: {stdout}{stderr}");
            assert!(stderr.contains("larger than 16 KiB"), "{to}: {stderr}");
        }
    }
    // A service-account key: the sparse file is refused by `validate`,
    // /dev/zero (which claims no size) when `plan` reads it, before any
    // connection.
    for (source, command, code) in [(big, "validate", 2), ("/dev/zero", "plan", 2)] {
        let text = OFFLINE.replace(
            "api: {token: \"${TOKEN}\"}",
            &format!("api: {{service_account_key_path: {source}}}"),
        );
        let path = write_offline(dir.path(), &text);
        let mut cmd = offline_tool(&[command, "--only", "sales", path.to_str().unwrap()]);
        let (got, stdout, stderr) = common::run(common::limit_memory(&mut cmd, MEMORY_LIMIT));
        assert_eq!(got, code, "{source}: {stdout}{stderr}");
        assert!(stderr.contains("larger than 64 KiB"), "{source}: {stderr}");
    }
}

#[test]
fn alias_amplification_is_bounded_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let aliases = vec!["*a"; 30_000].join(",");
    let text = format!(
        "version: 1\nbig: &a \"{}\"\nmore: [{aliases}]\n",
        "x".repeat(100_000)
    );
    assert!(text.len() < 300_000);
    let path = write_offline(dir.path(), &text);
    let mut cmd = offline_tool(&["validate", path.to_str().unwrap()]);
    let (code, _, stderr) = common::run(common::limit_memory(&mut cmd, MEMORY_LIMIT));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("MiB of text (aliases included)"),
        "{stderr}"
    );
}

/// Serves `app` on a loopback port: its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// The instance, its users and its restore jobs, answered like the service
/// does for a READY instance: what a stand-in API adds its own routes to.
fn status_routes() -> axum::Router {
    use axum::Json;
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/{version}/projects/{p}/regions/{r}/instances/{i}",
            get(|| async {
                Json(serde_json::json!({"id": "i", "name": "n", "status": "READY", "version": "2022", "storage": {"class": "c", "size": 100}}))
            }),
        )
        .route(
            "/{version}/projects/{p}/regions/{r}/instances/{i}/users",
            get(|| async {
                Json(serde_json::json!({"users": [{"id": 1, "username": "app_owner", "status": "ACTIVE"}], "pagination": {"page": 1, "size": 100, "totalPages": 1, "totalRows": 1, "sort": "id.asc"}}))
            }),
        )
        .route(
            "/{version}/projects/{p}/regions/{r}/instances/{i}/restore-jobs",
            get(|| async { Json(serde_json::json!({"runningRestores": []})) }),
        )
}

/// A stand-in API that answers the status calls like the service, and every
/// restore with a 400 that repeats the request body (and a terminal escape)
/// in `message`, or in `validation[].message`.
async fn echoing_api() -> String {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    let app = status_routes()
        .route(
            "/{version}/projects/{p}/regions/{r}/instances/{i}/databases",
            get(|| async {
                Json(serde_json::json!({"databases": [], "pagination": {"page": 1, "size": 100, "totalPages": 1, "totalRows": 0, "sort": "index.asc"}}))
            }),
        )
        .route(
            "/{version}/projects/{p}/regions/{r}/instances/{i}/restores",
            post(|body: String| async move {
                let echo = format!("\u{1b}[2J\u{1b}]0;pwned\u{7}bad request: {body}");
                let answer = if body.contains("\"sales\"") {
                    serde_json::json!({"code": 400, "message": echo, "traceId": "t-1"})
                } else {
                    serde_json::json!({"code": 400, "message": "invalid", "validation": [{"field": "source", "message": echo}]})
                };
                (StatusCode::BAD_REQUEST, Json(answer))
            }),
        );
    serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_echoes_the_request_shows_no_secret() {
    let e = emulator_with_one_backup("sales").await;
    S3::new(&e)
        .put("hr.bak", writer::write(&BackupSpec::full("hr")))
        .await;
    let api = echoing_api().await;
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(
        &e,
        2,
        2,
        &[
            Db::api("sales", 0, &["sales.bak"]),
            Db::api("hr", 0, &["hr.bak"]),
        ],
    )
    .replace("${STACKIT_API_ENDPOINT}", &api);
    let path = common::write(dir.path(), "m.yaml", &text);
    let m = path.to_str().unwrap();
    let (report, junit) = (dir.path().join("r.json"), dir.path().join("r.xml"));
    let mut shown = Vec::new();
    for format in ["human", "json"] {
        let (code, stdout, stderr) = run(tool(
            &e,
            &[
                "--format",
                format,
                "apply",
                "--yes",
                "--no-progress",
                m,
                "--report",
                report.to_str().unwrap(),
                "--junit",
                junit.to_str().unwrap(),
                "--state",
                dir.path().join(format).to_str().unwrap(),
            ],
        ))
        .await;
        assert_eq!(code, 1, "{stdout}\n{stderr}");
        assert!(
            stdout.contains("bad request") || stderr.contains("bad request"),
            "the server's words are still shown: {stdout}\n{stderr}"
        );
        let journal = dir.path().join(format).join("m.jsonl");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the journal is private: {mode:o}");
        }
        shown.push(stdout);
        shown.push(stderr);
        shown.push(std::fs::read_to_string(journal).unwrap());
        shown.push(std::fs::read_to_string(&report).unwrap());
        shown.push(std::fs::read_to_string(&junit).unwrap());
    }
    for text in &shown {
        assert_no_download_link("an output", text);
        assert!(!text.contains('\u{1b}'), "a raw escape reached:\n{text}");
        assert!(!text.contains('\u{7}'), "a raw bell reached:\n{text}");
    }
}

/// At trace level every crate underneath logs, the emulator's S3 among them
/// (it runs in the same process in `demo`): it describes each request it
/// is asked for, presigned query and all. The log writer redacts each line.
#[test]
fn logs_at_trace_level_show_no_download_link() {
    let (code, stdout, stderr) = common::run(
        common::bin()
            .args(["-vvv", "demo", "--no-progress"])
            .env_remove("RUST_LOG"),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // The lines that used to carry the links are still there.
    assert!(
        stderr.contains("X-Amz-Signature=***"),
        "no presigned request was logged:\n{stderr}"
    );
    for key in ["X-Amz-Signature=", "X-Amz-Credential="] {
        for (at, _) in stderr.match_indices(key) {
            let value = &stderr[at + key.len()..];
            assert!(
                value.starts_with("***"),
                "the trace log shows {key}{}",
                &value[..value.len().min(40)]
            );
        }
    }
    // The demo's credentials are made up per run; these are their shapes.
    for (what, shape) in [
        ("S3 access key", r"\bEMU[0-9A-F]{17}\b"),
        ("S3 secret key", r"\b[0-9a-f]{40}\b"),
        ("SQL password", r"Pw-[0-9a-f]{32}"),
        ("API token", r"emu-[0-9a-f]{32}"),
    ] {
        let found = regex::Regex::new(shape).unwrap().find(&stderr);
        assert!(found.is_none(), "the trace log shows the {what}: {found:?}");
    }
}

/// A non-loopback address of this machine, when it has one.
fn local_non_loopback_ip() -> Option<std::net::IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("10.255.255.255:9").ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_token_endpoint_off_loopback_is_refused_before_any_connection() {
    let e = emu::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    // A listener on a non-loopback address of this machine counts every
    // connection; without one, an address that cannot answer stands in.
    let accepted = Arc::new(AtomicUsize::new(0));
    let token_url = match local_non_loopback_ip() {
        Some(ip) => {
            let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let counter = Arc::clone(&accepted);
            tokio::spawn(async move {
                while listener.accept().await.is_ok() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
            format!("http://{addr}/token")
        }
        None => {
            eprintln!("no non-loopback address here; using one that cannot answer");
            "http://192.0.2.1/token".to_owned()
        }
    };
    let key_path = e
        .env()
        .into_iter()
        .find(|(k, _)| *k == "STACKIT_SERVICE_ACCOUNT_KEY_PATH")
        .unwrap()
        .1;
    let mut key: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(key_path).unwrap()).unwrap();
    key["tokenEndpoint"] = token_url.clone().into();
    std::fs::write(dir.path().join("key.json"), key.to_string()).unwrap();
    let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])]).replace(
        "token: \"${STACKIT_SERVICE_ACCOUNT_TOKEN}\"",
        "service_account_key_path: key.json",
    );
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, stdout, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stderr.contains("plain http"), "{stderr}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "a connection was made");

    // The same through the environment, caught by `validate`.
    key.as_object_mut().unwrap().remove("tokenEndpoint");
    std::fs::write(dir.path().join("key.json"), key.to_string()).unwrap();
    let mut cmd = tool(&e, &["validate", path.to_str().unwrap()]);
    cmd.env("STACKIT_TOKEN_BASEURL", &token_url);
    let (code, _, stderr) = run(cmd).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("STACKIT_TOKEN_BASEURL") && stderr.contains("plain http"),
        "{stderr}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sql_password_is_tried_once() {
    let e = emulator_with_one_backup("hr").await;
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &manifest(&e, 1, 1, &[Db::sql("hr", 0, &["hr.bak"])]),
    );
    let m = path.to_str().unwrap();
    let logins = |s: serde_json::Value| {
        let inst = &s["instances"][&e.instance_ids[0]];
        (inst["logins"].as_u64(), inst["failed_logins"].as_u64())
    };
    let mut plan = tool(&e, &["plan", m]);
    plan.env("SQL_PASSWORD", "WRONG-PASSWORD-1");
    let (code, stdout, stderr) = run(plan).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("login refused"), "{stdout}");
    assert!(stdout.contains("18456"), "{stdout}");
    assert_eq!(logins(stats(&e).await), (Some(1), Some(1)));
    // tiberius logs the server's error itself; the log says which instance.
    let logged: Vec<&str> = stderr.lines().filter(|l| l.contains("18456")).collect();
    assert!(!logged.is_empty(), "{stderr}");
    assert!(logged.iter().all(|l| l.contains("instance=i0")), "{stderr}");

    let mut apply = tool(&e, &["apply", "--yes", "--no-progress", m]);
    apply.env("SQL_PASSWORD", "WRONG-PASSWORD-1");
    let (code, stdout, stderr) = run(apply).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert_eq!(logins(stats(&e).await), (Some(2), Some(2)));
}

/// A login the server has locked out (18486) is refused as finally as a
/// wrong password: one attempt per process, never a retry that the lockout
/// policy would count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_out_login_is_tried_once() {
    let e = emu::start_with(sqlflex_import::emulator::Config {
        lockout_after: Some(1),
        ..Default::default()
    })
    .await;
    S3::new(&e)
        .put("hr.bak", writer::write(&BackupSpec::full("hr")))
        .await;
    // Someone else's wrong password locks the login.
    assert!(emu::sql(&e, 0, "WRONG-PASSWORD-1").await.is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &manifest(&e, 1, 1, &[Db::sql("hr", 0, &["hr.bak"])]),
    );
    let (code, stdout, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("login refused"), "{stdout}");
    assert!(stdout.contains("18486"), "{stdout}");
    let inst = &stats(&e).await["instances"][&e.instance_ids[0]];
    assert_eq!(inst["logins"], 2, "the lockout's and the plan's: {inst}");
}

#[test]
fn ids_and_keys_cannot_steer_a_request() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to, expected) in [
        (
            "instance_id: 4f0c6a51-5e2c-4c2d-9a0e-6f1d2f3a4b5c",
            "instance_id: \"../../../../other-project/instances/victim?\"",
            "`instance_id` `../../../../other-project/instances/victim?` contains `.`",
        ),
        (
            "project_id: 0b3c6a51-5e2c-4c2d-9a0e-6f1d2f3a4b5c",
            "project_id: \"p/../q\"",
            "`project_id`",
        ),
        ("region: eu01", "region: \"eu01%2F..\"", "`region`"),
        (
            "files: [sales.bak]",
            "files: [\"a/../sales.bak\"]",
            "`.` or `..` segment",
        ),
        (
            "files: [sales.bak]",
            "files: [\"s3://backups/./sales.bak\"]",
            "`.` or `..` segment",
        ),
        (
            "files: [hr.bak]",
            "files: {prefix: \"hr/../\"}",
            "`.` or `..` segment",
        ),
    ] {
        let path = write_offline(dir.path(), &OFFLINE.replace(from, to));
        let (code, _, stderr) =
            common::run(&mut offline_tool(&["validate", path.to_str().unwrap()]));
        assert_eq!(code, 2, "{to}: {stderr}");
        assert!(stderr.contains(expected), "{to}: {stderr}");
    }
}

#[test]
fn names_count_utf16_units_and_look_alikes_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let wide = "\u{10400}".repeat(41);
    let path = write_offline(
        dir.path(),
        &OFFLINE.replace("name: sales", &format!("name: {wide}")),
    );
    let (code, _, stderr) = common::run(&mut offline_tool(&["validate", path.to_str().unwrap()]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("82 characters (UTF-16 code units"),
        "{stderr}"
    );

    let path = write_offline(
        dir.path(),
        &OFFLINE.replace("name: sales", "name: s\u{0430}les"),
    );
    let (code, stdout, stderr) =
        common::run(&mut offline_tool(&["validate", path.to_str().unwrap()]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("mixes Latin (`s`) and Cyrillic"),
        "{stderr}"
    );
    assert!(stdout.contains("1 warning"), "{stdout}");
}

#[test]
fn secret_values_never_reach_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to, secret) in [
        (
            "secret_key: ${S3_SECRET_KEY}",
            "secret_kye: MISSPELT-SECRET-17",
            "MISSPELT-SECRET-17",
        ),
        (
            "password: \"${SQL_PASSWORD}\"",
            "password: [LIST-PASSWORD-17]",
            "LIST-PASSWORD-17",
        ),
        (
            "password: \"${SQL_PASSWORD}\"",
            "password_file: \"${SQL_PASSWORD}\"",
            "OFFLINE-SQL-PASSWORD-91",
        ),
    ] {
        let path = write_offline(dir.path(), &OFFLINE.replace(from, to));
        for format in ["human", "json"] {
            let (code, stdout, stderr) = common::run(&mut offline_tool(&[
                "--format",
                format,
                "validate",
                path.to_str().unwrap(),
            ]));
            assert_eq!(code, 2, "{to}: {stdout}{stderr}");
            for text in [&stdout, &stderr] {
                assert!(!text.contains(secret), "{to} ({format}) shows it:\n{text}");
            }
        }
    }
}

#[test]
fn terminal_escapes_are_shown_not_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil.bak");
    std::fs::write(
        &evil,
        writer::write(&BackupSpec::full("db\u{1b}[2J\u{1b}]0;owned\u{7}")),
    )
    .unwrap();
    let (code, stdout, stderr) =
        common::run(common::bin().args(["inspect", evil.to_str().unwrap()]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "{stdout}"
    );
    assert!(stdout.contains("db\\u{1b}[2J"), "{stdout}");

    let path = write_offline(
        dir.path(),
        &OFFLINE.replace("defaults:", "\"evil\\e[31mkey\": 1\ndefaults:"),
    );
    let (code, _, stderr) = common::run(&mut offline_tool(&["validate", path.to_str().unwrap()]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown key"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

/// `apply --yes MANIFEST --state STATE` with the offline environment.
fn apply_offline(manifest: &Path, state: &Path) -> (i32, String, String) {
    common::run(&mut offline_tool(&[
        "apply",
        "--yes",
        manifest.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]))
}

#[test]
fn the_journal_does_not_follow_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_offline(dir.path(), OFFLINE);
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let elsewhere = dir.path().join("elsewhere.jsonl");
    std::os::unix::fs::symlink(&elsewhere, state.join("m.jsonl")).unwrap();
    let (code, _, stderr) = apply_offline(&path, &state);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(!elsewhere.exists(), "the link was followed");
}

/// A hard link at the lock's or the journal's path would have the other
/// file truncated or overwritten; a FIFO would block the run. Each is
/// refused, at once, and the other file is left as it was.
#[test]
fn hard_links_and_fifos_in_the_state_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_offline(dir.path(), OFFLINE);
    let precious = dir.path().join("precious.txt");
    for at in ["state.lock", "m.jsonl"] {
        let state = dir.path().join(format!("state-{at}"));
        std::fs::create_dir(&state).unwrap();
        std::fs::write(&precious, "keep me\n").unwrap();
        std::fs::hard_link(&precious, state.join(at)).unwrap();
        let (code, _, stderr) = apply_offline(&path, &state);
        assert_ne!(code, 0, "{stderr}");
        assert!(stderr.contains("other hard links"), "{at}: {stderr}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n");
    }
    let state = dir.path().join("state-fifo");
    std::fs::create_dir(&state).unwrap();
    let fifo = state.join("m.jsonl");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // A blocked open would hang here (nextest ends it); it returns at once.
    let (code, _, stderr) = apply_offline(&path, &state);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_fails_when_a_report_cannot_be_written() {
    let e = emulator_with_one_backup("sales").await;
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])]),
    );
    let missing = dir.path().join("no/such/dir/r.json");
    let (code, stdout, stderr) = apply(
        &e,
        &[
            path.to_str().unwrap(),
            "--report",
            missing.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("cannot write the report"), "{stderr}");
    assert_eq!(
        stats(&e).await["instances"][&e.instance_ids[0]]["databases"],
        serde_json::json!(["sales"]),
        "the import itself succeeded"
    );
}

/// A listener that speaks plain HTTP where https is expected, counting
/// the connections it gets.
async fn plain_server_counting() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_that_cannot_succeed_are_not_retried_and_say_why() {
    let e = emulator_with_one_backup("sales").await;
    let dir = tempfile::tempdir().unwrap();
    // A token with a line break: the request cannot even be built.
    let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])]).replace(
        "token: \"${STACKIT_SERVICE_ACCOUNT_TOKEN}\"",
        "token: \"TEST-TOKEN-5ec7e7\\r\\nX-Injected: 1\"",
    );
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, stdout, stderr) = run(tool(&e, &["-vv", "plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("forbidden character"), "{stdout}");
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert_no_secrets("plan", &stdout);

    // https toward a server that does not speak TLS: one connection, no retry.
    let (port, connections) = plain_server_counting().await;
    let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])])
        .replace("${S3_ENDPOINT}", &format!("https://127.0.0.1:{port}"));
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, stdout, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("TLS failed"), "{stdout}");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "retried: {stdout}");
}

#[test]
fn the_emulator_warns_when_it_listens_beyond_loopback() {
    let mut child = common::bin()
        .args(["emulator", "--api-addr", "0.0.0.0:0", "--print-env"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first line of the environment means every listener is up.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!first.is_empty(), "the emulator started: {stderr}");
    assert!(
        stderr.contains("warning: --api-addr 0.0.0.0") && stderr.contains("other machines"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_url_encodes_listed_keys_when_asked() {
    let e = emu::start(Duration::from_millis(300)).await;
    let s3 = S3::new(&e);
    let key = "odd/a+b c%ü.bak";
    assert_eq!(
        s3.put(key, writer::write(&BackupSpec::full("odd")))
            .await
            .status(),
        200
    );
    // On the wire, as S3 encodes it (rusty-s3 asks for encoding-type=url).
    let mut action = s3.bucket.list_objects_v2(Some(&s3.credentials));
    action.with_prefix("odd/");
    let raw = reqwest::get(action.sign(emu::SIGN_FOR))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("<Key>odd/a%2Bb+c%25%C3%BC.bak</Key>"), "{raw}");
    assert!(raw.contains("<EncodingType>url</EncodingType>"), "{raw}");
    // And decoded by a client back to the real key, which plan then reads.
    assert_eq!(s3.list("odd/", 10, None).await.0, vec![key.to_owned()]);
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(&e, 1, 1, &[Db::api("odd", 0, &["x.bak"])])
        .replace("files: [\"x.bak\"]", "files: {prefix: odd/}");
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, stdout, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

#[test]
fn credentials_in_clear_toward_a_remote_host_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    for (setting, expected) in [
        ("encrypt: false", "travel in clear text"),
        (
            "encrypt: true, trust_server_certificate: true",
            "anyone in the path can pose as the server",
        ),
    ] {
        let text = OFFLINE.replace(
            "sql: {host: 127.0.0.1, user: importer, password: \"${SQL_PASSWORD}\", encrypt: false}",
            &format!(
                "sql: {{host: prod.sqlserver.example, user: importer, password: \"${{SQL_PASSWORD}}\", {setting}}}"
            ),
        );
        let path = write_offline(dir.path(), &text);
        let (code, stdout, stderr) =
            common::run(&mut offline_tool(&["validate", path.to_str().unwrap()]));
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains(expected), "{setting}: {stderr}");
        assert!(stdout.contains("1 warning"), "{stdout}");
    }
    // Loopback (the emulator) is exempt.
    let path = write_offline(dir.path(), OFFLINE);
    let (code, _, stderr) = common::run(&mut offline_tool(&["validate", path.to_str().unwrap()]));
    assert_eq!(code, 0);
    assert!(!stderr.contains("clear text"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_repeats_the_warnings_in_json() {
    let e = emulator_with_one_backup("sales").await;
    let dir = tempfile::tempdir().unwrap();
    // An unused instance toward a remote host without TLS: never contacted,
    // still warned about.
    let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])]).replace(
        "databases:\n",
        "  remote:\n    sql: {host: db.example.com, user: u, password: \"${SQL_PASSWORD}\", encrypt: false}\ndatabases:\n",
    );
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, stdout, stderr) = run(tool(
        &e,
        &["--format", "json", "plan", path.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let warnings = plan["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w["path"] == "instances.remote.sql.encrypt"
                && w["message"]
                    .as_str()
                    .unwrap()
                    .contains("travel in clear text")),
        "{warnings:?}"
    );
}

/// Durations from the manifest and the environment are bounded where they
/// are read: a clear error, never an overflow panic later (exit 101).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_beyond_their_bound_are_errors_not_panics() {
    let e = emulator_with_one_backup("sales").await;
    let dir = tempfile::tempdir().unwrap();
    let text = emu::manifest(&e, 1, 1, &[emu::Db::api("sales", 0, &["sales.bak"])]);
    let m = common::write(dir.path(), "m.yaml", &text);
    for value in ["1e20", "inf", "-5", "0"] {
        let mut cmd = emu::tool(&e, &["plan", m.to_str().unwrap()]);
        cmd.env("SQLFLEX_IMPORT_HTTP_TIMEOUT", value);
        let (code, _, stderr) = emu::run(cmd).await;
        assert_eq!(code, 2, "{value}: {stderr}");
        assert!(stderr.contains("SQLFLEX_IMPORT_HTTP_TIMEOUT"), "{stderr}");
    }
    let endless = emu::with_defaults(
        &text,
        "defaults: {owner: app_owner, timeout: \"18446744073709551615s\"}",
    );
    let m = common::write(dir.path(), "endless.yaml", &endless);
    let m = m.to_str().unwrap();
    for args in [
        vec!["validate", m],
        vec!["plan", m],
        vec!["apply", "--yes", m],
    ] {
        let (code, _, stderr) = emu::run(emu::tool(&e, &args)).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("longer than the longest timeout, 7 days"),
            "{stderr}"
        );
    }
    assert_eq!(
        emu::submissions(&emu::stats(&e).await, &e),
        Vec::<(String, u64)>::new()
    );
}

/// The status calls of a stand-in API answered like the service, with
/// `databases` listing `pages` pages of `per_page` names each (whatever
/// `totalPages` claims), and every restore answered 307 to `to`.
async fn redirecting_api(to: String, claimed_pages: u64, per_page: usize) -> String {
    use axum::Json;
    use axum::http::{StatusCode, header};
    use axum::routing::{get, post};
    let app = status_routes()
        .route(
            "/{version}/projects/{p}/regions/{r}/instances/{i}/databases",
            get(move || async move {
                let names: Vec<serde_json::Value> = (0..per_page)
                    .map(|n| serde_json::json!({"id": n, "name": format!("filler-{n}-{}", "x".repeat(200)), "owner": "o"}))
                    .collect();
                Json(serde_json::json!({"databases": names, "pagination": {"page": 1, "size": 100, "totalPages": claimed_pages, "totalRows": 0, "sort": "index.asc"}}))
            }),
        )
        .route(
            "/{version}/projects/{p}/regions/{r}/instances/{i}/restores",
            post(move || {
                let to = to.clone();
                async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]) }
            }),
        );
    serve(app).await
}

/// An S3 endpoint that answers every request 307 to `to`.
async fn redirecting_s3(to: String) -> String {
    use axum::http::{StatusCode, header};
    let app = axum::Router::new().fallback(move || {
        let to = to.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]) }
    });
    serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_with_credentials() {
    let e = emulator_with_one_backup("sales").await;
    let (port, other) = plain_server_counting().await;
    let elsewhere = format!("http://127.0.0.1:{port}/collect");
    let dir = tempfile::tempdir().unwrap();
    // The restore body (with the S3 secret) answered with a redirect.
    let api = redirecting_api(elsewhere.clone(), 1, 0).await;
    let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])])
        .replace("${STACKIT_API_ENDPOINT}", &api);
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, stdout, stderr) = apply(&e, &["--format", "json", path.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("a redirect, not followed"), "{stdout}");
    // Signed S3 requests answered with a redirect.
    let s3 = redirecting_s3(elsewhere).await;
    let text =
        manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])]).replace("${S3_ENDPOINT}", &s3);
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, stdout, _) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("a redirect, not followed"), "{stdout}");
    assert_eq!(
        other.load(Ordering::SeqCst),
        0,
        "nothing reached the other host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_lists_are_bounded_whatever_total_pages_claims() {
    let e = emulator_with_one_backup("sales").await;
    // 1,000 pages claimed, each with 1,000 names of 200 bytes: a few
    // hundred MiB if followed; bounded at 100,000 items.
    let api = redirecting_api("http://127.0.0.1:9/".into(), 1000, 1000).await;
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])])
        .replace("${STACKIT_API_ENDPOINT}", &api);
    let path = common::write(dir.path(), "m.yaml", &text);
    let mut cmd = tool(&e, &["plan", path.to_str().unwrap()]);
    common::limit_memory(&mut cmd, 1 << 30);
    let (code, stdout, stderr) = run(cmd).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the list runs past 100000 items"),
        "{stdout}"
    );
}

/// A stand-in S3 that lists `prefix/` endlessly: continuation tokens A, B,
/// A, B, ... (`alternate`), or new tokens with 1,000 keys each.
async fn endless_listing(alternate: bool) -> String {
    use axum::extract::Query;
    use std::collections::HashMap;
    let app = axum::Router::new().fallback(move |Query(q): Query<HashMap<String, String>>| async move {
        let token = q.get("continuation-token").cloned().unwrap_or_default();
        let next = if alternate {
            if token == "A" { "B".to_owned() } else { "A".to_owned() }
        } else {
            format!("{token}x")
        };
        let per_page = if alternate { 1 } else { 1000 };
        let contents: String = (0..per_page)
            .map(|n| format!("<Contents><Key>p/{next}-{n}.bak</Key><Size>1</Size></Contents>"))
            .collect();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>p/</Prefix><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>{contents}<NextContinuationToken>{next}</NextContinuationToken></ListBucketResult>"
        )
    });
    serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_listings_end_with_an_error_naming_the_prefix() {
    let e = emulator_with_one_backup("sales").await;
    let dir = tempfile::tempdir().unwrap();
    for (alternate, expected) in [
        (true, "comes back to a continuation token it gave before"),
        (false, "holds more than 100000 keys"),
    ] {
        let s3 = endless_listing(alternate).await;
        let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])])
            .replace("${S3_ENDPOINT}", &s3)
            .replace("files: [\"sales.bak\"]", "files: {prefix: p/}");
        let path = common::write(dir.path(), "m.yaml", &text);
        let mut cmd = tool(&e, &["plan", path.to_str().unwrap()]);
        common::limit_memory(&mut cmd, 1 << 30);
        let (code, stdout, stderr) = run(cmd).await;
        assert_eq!(code, 1, "{stdout}\n{stderr}");
        assert!(
            stdout.contains(expected) && stdout.contains("prefix p/"),
            "{stdout}"
        );
    }
}

/// A stand-in S3 whose listing holds a key with a tab, one with a line
/// break, and one that is gone when it is read (every read is a 404).
async fn treacherous_listing() -> String {
    use axum::extract::Query;
    use axum::http::StatusCode;
    use std::collections::HashMap;
    let app = axum::Router::new().fallback(|Query(q): Query<HashMap<String, String>>| async move {
        if q.get("list-type").map(String::as_str) != Some("2") {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>\
                            <Message>The specified key does not exist.</Message></Error>";
            return (StatusCode::NOT_FOUND, body.to_owned());
        }
        let contents: String = ["p/tab\there.bak", "p/line&#10;break.bak", "p/gone.bak"]
            .iter()
            .map(|k| format!("<Contents><Key>{k}</Key><Size>4096</Size></Contents>"))
            .collect();
        (
            StatusCode::OK,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult \
                     xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>\
                     <Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>\
                     <IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
            ),
        )
    });
    serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_survives_hostile_listings() {
    let e = emulator_with_one_backup("sales").await;
    let dir = tempfile::tempdir().unwrap();
    // Keys with control characters are left out (D004), shown defused; an
    // object gone between list and read is left out (S002); nothing else
    // is written.
    let s3 = treacherous_listing().await;
    let base = manifest(&e, 1, 1, &[]).replace("${S3_ENDPOINT}", &s3);
    let base = common::write(dir.path(), "base.yaml", &base);
    let args = [
        "discover",
        base.to_str().unwrap(),
        "--prefix",
        "p/",
        "--instance",
        "i0",
    ];
    let (code, stdout, stderr) = run(tool(&e, &args)).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stdout.contains("- name:"), "{stdout}");
    // Control characters reach the terminal as spaces.
    for line in [
        "p/tab here.bak: D004",
        "p/line break.bak: D004",
        "p/gone.bak: S002",
    ] {
        assert!(stderr.contains(line), "{line}:\n{stderr}");
    }
    assert!(
        !stderr.contains('\t') && !stdout.contains('\t'),
        "no raw tab reaches a terminal"
    );
    for text in [&stdout, &stderr] {
        assert!(
            text.lines().all(|l| !l.starts_with("break.bak")),
            "no raw line break: {text}"
        );
    }
    // A listing past 100,000 keys ends with an error naming the prefix,
    // within a bounded memory.
    let s3 = endless_listing(false).await;
    let base = manifest(&e, 1, 1, &[]).replace("${S3_ENDPOINT}", &s3);
    let base = common::write(dir.path(), "endless.yaml", &base);
    let mut cmd = tool(
        &e,
        &[
            "discover",
            base.to_str().unwrap(),
            "--prefix",
            "p/",
            "--instance",
            "i0",
        ],
    );
    common::limit_memory(&mut cmd, 1 << 30);
    let (code, stdout, stderr) = run(cmd).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("holds more than 100000 keys") && stderr.contains("prefix `p/`"),
        "{stderr}"
    );
}

/// Values of keys that look like credentials, known or not (`api_key`,
/// `pass`, `passphrase`, `pw`, `auth: Basic ...`), and a password in a
/// URL's user info, are masked in every diagnostic.
#[test]
fn credential_like_values_are_masked_in_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"version: 1
defaults: {owner: o}
s3: {endpoint: "http://user:TopSecretPw1@object.example.com", bucket: bbb, access_key: "${A}", secret_key: "${B}", api_key: K3yV4lu3Secret, pass: P4ssSecret, passphrase: Phr4seSecret}
instances:
  prod:
    project_id: 11111111-2222-4333-8444-555555555555
    region: eu01
    instance_id: 11111111-2222-4333-8444-555555555556
    api: {token: "${T}", auth: "Basic dXNlcjpwYXNzd29yZA=="}
    sql: {host: h.example, user: u, password: "${P}", pw: PwS3cret}
databases:
  - {name: a, instance: prod, files: [a.bak]}
"#;
    let path = write_offline(dir.path(), text);
    for format in ["human", "json"] {
        let mut cmd = offline_tool(&["--format", format, "validate", path.to_str().unwrap()]);
        cmd.env("A", "a").env("B", "b").env("T", "t").env("P", "p");
        let (code, stdout, stderr) = common::run(&mut cmd);
        assert_eq!(code, 2, "{stdout}{stderr}");
        let all = format!("{stdout}{stderr}");
        assert!(all.contains("unknown key `api_key`"), "{all}");
        for secret in [
            "TopSecretPw1",
            "K3yV4lu3Secret",
            "P4ssSecret",
            "Phr4seSecret",
            "dXNlcjpwYXNzd29yZA",
            "PwS3cret",
        ] {
            assert!(!all.contains(secret), "{format}: {secret} shown in {all}");
        }
    }
}

/// A stand-in API that answers each restore with a 400 whose message
/// repeats the request body URL-encoded, then base64-encoded, then upper-cased.
async fn encoding_echo_api() -> String {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::post;
    use base64::Engine;
    let base = echoing_api().await;
    let app = axum::Router::new().route(
        "/{version}/projects/{p}/regions/{r}/instances/{i}/restores",
        post(|body: String| async move {
            // The secret's field, as a server would quote it in each form.
            let request: serde_json::Value = serde_json::from_str(&body).unwrap();
            let field = format!(
                "s3_access_secret={}",
                request["source"]["s3_details"]["s3_access_secret"]
                    .as_str()
                    .unwrap()
            );
            let url: String = field.bytes().map(|b| format!("%{b:02X}")).collect();
            let b64 = base64::engine::general_purpose::STANDARD.encode(&field);
            let echo = format!(
                "bad request: {} / {url} / {b64} / {}",
                field.to_uppercase(),
                field.replace('-', "\u{200b}-")
            );
            (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"code": 400, "message": echo, "traceId": "t-2"})),
            )
        }),
    );
    // Everything else as the plain echoing API answers it.
    let base_for_proxy = base.clone();
    let app = app.fallback(move |request: axum::extract::Request| {
        let base = base_for_proxy.clone();
        async move {
            let url = format!("{base}{}", request.uri());
            let answer = reqwest::get(url).await.unwrap();
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap();
            (
                StatusCode::from_u16(status).unwrap(),
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        }
    });
    serve(app).await
}

/// Every decoding of every base64 run in `text`, and `text` URL-decoded and
/// upper- and lower-cased: where an echoed secret would hide.
fn decoded_forms(text: &str) -> Vec<String> {
    use base64::Engine;
    let mut forms = vec![text.to_lowercase(), percent_decode(text).to_lowercase()];
    for run in text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c))) {
        let run = run.trim_end_matches('=');
        for skip in 0..4 {
            let Some(part) = run.get(skip..) else {
                continue;
            };
            let part = &part[..part.len() - part.len() % 4];
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(part) {
                forms.push(String::from_utf8_lossy(&bytes).to_lowercase());
            }
        }
    }
    forms
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_echoed_in_another_encoding_is_withheld() {
    let e = emulator_with_one_backup("sales").await;
    let api = encoding_echo_api().await;
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])])
        .replace("${STACKIT_API_ENDPOINT}", &api);
    let path = common::write(dir.path(), "m.yaml", &text);
    let report = dir.path().join("r.json");
    let (code, stdout, stderr) = run(tool(
        &e,
        &[
            "--format",
            "json",
            "apply",
            "--yes",
            path.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    ))
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let journal = std::fs::read_to_string(dir.path().join(".sqlflex-import/m.jsonl")).unwrap();
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(
        stdout.contains("HTTP 400"),
        "the status is still shown: {stdout}"
    );
    let secret = e.credentials.s3_secret_key.to_lowercase();
    for shown in [&stdout, &stderr, &journal, &report] {
        for form in decoded_forms(shown) {
            assert!(!form.contains(&secret), "the S3 secret shows in:\n{shown}");
        }
    }
}

/// Resident memory of a process, in bytes (Linux).
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// The emulator's SQL door: a packet header alone holds no memory (it was
/// reserved at the declared length: 3,000 headers, 40 -> 259 MB), and
/// connections beyond its cap are closed at once.
#[test]
fn the_emulators_sql_door_bounds_connections_and_memory() {
    use std::io::{Read, Write};
    let mut cmd = common::bin();
    cmd.args(["emulator", "--print-env"]);
    common::limit_memory(&mut cmd, 4 << 30);
    let (child, env) = common::start_emulator(&mut cmd);
    let port: u16 = env["SQL_PORT"].parse().unwrap();
    let before = rss_of(child.id());
    // 510 sessions, each one packet header of a 64 KiB PRELOGIN, then silence.
    let mut held = Vec::new();
    for _ in 0..510 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(&[0x12, 0x00, 0xff, 0xff, 0, 0, 0, 0]).unwrap();
        held.push(s);
    }
    std::thread::sleep(std::time::Duration::from_millis(500)); // let it read them
    let grown = rss_of(child.id()).saturating_sub(before);
    assert!(grown < 16 << 20, "headers alone held {} MiB", grown >> 20);
    // Past the cap (512 at once), a connection is closed without a word.
    let mut closed = 0;
    for _ in 0..30 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 1];
        if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
            closed += 1;
        }
        held.push(s);
    }
    assert!(closed >= 20, "{closed} of 30 at the cap were closed");
    drop(held);
    common::stop_emulator(child);
}

#[test]
fn the_emulator_refuses_wrapping_ports_and_shows_its_errors_escaped() {
    let (code, _, stderr) = run_emulator(&["--tds-addr", "127.0.0.1:65530", "--instances", "64"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("run past port 65535"), "{stderr}");
    let (code, _, stderr) = run_emulator(&["--instance-state", "\u{1b}[2Jbroken"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(stderr.contains("\\u{1b}[2J"), "{stderr}");
}

fn run_emulator(args: &[&str]) -> (i32, String, String) {
    let mut cmd = common::bin();
    cmd.arg("emulator").args(args);
    common::run(&mut cmd)
}

/// A key with a `..` segment, escaped as `..%2F`, stays out of the
/// emulator's data folder: refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulators_s3_keeps_keys_inside_their_bucket() {
    let e = emu::start(Duration::from_millis(200)).await;
    let url = format!("http://{}/{}/..%2Fescape.bak", e.s3, "sqlflex-backups");
    let client = reqwest::Client::new();
    let status = client.put(&url).body("x").send().await.unwrap().status();
    assert_eq!(status, 400);
    let escaped = e.data_dir.join("escape.bak");
    assert!(!escaped.exists(), "{}", escaped.display());
}

/// A SQL endpoint whose `sys.databases` answers more rows than any real
/// instance has databases: the client stops reading at 100,000 rows and
/// says so at once, instead of holding all of them or asking again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_answer_without_end_is_cut_with_a_reason() {
    let e = emulator_with_one_backup("sales").await;
    e.model.seed_databases(
        &e.instance_ids[0],
        (0..120_000).map(|n| format!("filler_{n}")),
        "someone",
    );
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(&e, 1, 1, &[Db::sql("sales", 0, &["sales.bak"])]);
    let path = common::write(dir.path(), "m.yaml", &text);
    let mut cmd = tool(&e, &["--format", "json", "plan", path.to_str().unwrap()]);
    common::limit_memory(&mut cmd, 2 << 30);
    let (code, stdout, stderr) = run(cmd).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("T005") && stdout.contains("runs past 100000 rows"),
        "{stdout}"
    );
    // The same answer would come again: it is not asked for again (each
    // try after a failed statement logs in anew).
    let inst = &stats(&e).await["instances"][&e.instance_ids[0]];
    assert!(inst["logins"].as_u64() <= Some(2), "{inst}");
}
