//! "Every database imported exactly once, whatever the network does": the
//! real binary against a faulty emulator, crashes, a damaged journal, and a
//! server that breaks the API contract. Bounded in time: every test ends.

use crate::common;
use crate::common::emu;

use emu::{Db, S3, apply, run, spawn_apply, stats, tool};
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::{Config, Emulator};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// `count` databases spread over the emulator's instances, all API or all
/// SQL, each with its own backup in the bucket.
async fn setup(e: &Emulator, dir: &Path, count: usize, sql: bool, per_instance: u32) -> PathBuf {
    let s3 = S3::new(e);
    let names: Vec<String> = (0..count).map(|n| format!("db{n:03}")).collect();
    let mut dbs = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let key = format!("{name}.bak");
        let body = writer::write(&BackupSpec::full(name));
        assert_eq!(s3.put(&key, body).await.status(), 200);
        let instance = n % e.instance_ids.len();
        dbs.push(if sql {
            Db::sql(name, instance, &[&key])
        } else {
            Db::api(name, instance, &[&key])
        });
    }
    let text = emu::manifest(e, 40, per_instance, &dbs);
    let text = emu::with_defaults(&text, "defaults: {owner: app_owner, timeout: 5m}");
    common::write(dir, "m.yaml", &text)
}

/// (database, times submitted) over all instances, and the online count.
async fn tally(e: &Emulator) -> (Vec<(String, u64)>, usize) {
    let s = stats(e).await;
    let online = e
        .instance_ids
        .iter()
        .map(|id| s["instances"][id]["databases"].as_array().unwrap().len())
        .sum();
    (emu::submissions(&s, e), online)
}

/// Each of `count` databases submitted exactly once, and all online.
async fn imported_exactly_once(e: &Emulator, count: usize) {
    let (sent, online) = tally(e).await;
    exactly_once(&sent, count);
    assert_eq!(online, count);
}

fn exactly_once(sent: &[(String, u64)], count: usize) {
    assert_eq!(sent.len(), count, "{sent:?}");
    let twice: Vec<_> = sent.iter().filter(|(_, n)| *n != 1).collect();
    assert!(twice.is_empty(), "submitted more than once: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_api_still_imports_each_database_exactly_once() {
    let e = emu::start_with(Config {
        instances: 2,
        restore_duration: Duration::from_millis(1500),
        fault_rate: 0.2,
        reset_rate: 0.05,
        seed: 20261127,
        ..Config::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = setup(&e, dir.path(), 40, false, 10).await;
    let report = dir.path().join("r.json");
    let (code, stdout, stderr) = apply(
        &e,
        &[path.to_str().unwrap(), "--report", report.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    imported_exactly_once(&e, 40).await;
    assert!(
        stderr.contains("retrying in"),
        "faults happened and were retried: {stderr}"
    );
    let journal = std::fs::read_to_string(dir.path().join(".sqlflex-import/m.jsonl")).unwrap();
    for text in [
        &stdout,
        &stderr,
        &journal,
        &std::fs::read_to_string(&report).unwrap(),
    ] {
        emu::assert_no_secrets("a faulty run", text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_on_the_sql_path_never_import_twice() {
    let e = emu::start_with(Config {
        instances: 2,
        restore_duration: Duration::from_millis(1500),
        reset_rate: 0.2,
        seed: 7,
        ..Config::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = setup(&e, dir.path(), 20, true, 5).await;
    let (code, stdout, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    imported_exactly_once(&e, 20).await;
}

async fn crash_and_resume(signal: i32) {
    let e = emu::start_with(Config {
        instances: 2,
        restore_duration: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = setup(&e, dir.path(), 30, false, 5).await;
    let mut child = spawn_apply(&e, &path, Stdio::null(), Stdio::null());
    // Midway: some imports submitted, most not yet.
    emu::wait_for_submissions(&e, 5, Duration::from_secs(60)).await;
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    if signal == libc::SIGINT {
        // Ctrl-C waits for the running imports, at most a restore's time.
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(130));
    } else {
        child.wait().unwrap();
    }
    let (sent_before, _) = tally(&e).await;
    assert!(
        !sent_before.is_empty() && sent_before.len() < 30,
        "stopped midway: {}",
        sent_before.len()
    );

    let (code, _, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    imported_exactly_once(&e, 30).await;
    // And every run after that: nothing is imported again, nothing refused.
    for _ in 0..2 {
        let (code, _, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
        assert_eq!(code, 0, "{stderr}");
    }
    imported_exactly_once(&e, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_then_apply_again() {
    crash_and_resume(libc::SIGKILL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_the_middle_then_apply_again() {
    crash_and_resume(libc::SIGINT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_journal_is_explained_not_trusted() {
    let e = emu::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = setup(&e, dir.path(), 4, false, 4).await;
    let (code, _, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");

    // A cut last line: explained, ignored, and the rerun is still right.
    let journal = dir.path().join(".sqlflex-import/m.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"event\":\"onl");
    std::fs::write(&journal, &text).unwrap();
    let (code, _, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("was cut off (a run was killed while writing); it is ignored"),
        "{stderr}"
    );
    exactly_once(&tally(&e).await.0, 4);

    // Another manifest naming three of the same databases and a new one,
    // in the same state folder: the three are done, the new one imported.
    let other = common::write(
        dir.path(),
        "other.yaml",
        &std::fs::read_to_string(&path)
            .unwrap()
            .replace("db000", "zz000"),
    );
    let s3 = S3::new(&e);
    let body = writer::write(&BackupSpec::full("zz000"));
    assert_eq!(s3.put("zz000.bak", body).await.status(), 200);
    let (code, _, stderr) = apply(&e, &[other.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    exactly_once(&tally(&e).await.0, 5);

    // Garbage in the middle: damaged, not guessed at.
    std::fs::write(&journal, "{\"journal\":1,\"fingerprint\":\"x\"}\n%%%\n").unwrap();
    let (code, _, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("journal")
            && (stderr.contains("damaged") || stderr.contains("another manifest")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_appear_in_no_command_output() {
    let e = emu::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = setup(&e, dir.path(), 3, false, 3).await;
    let p = path.to_str().unwrap();
    let mut outputs = Vec::new();
    for args in [
        vec!["validate", p],
        vec!["--format", "json", "validate", p],
        vec!["plan", p],
        vec!["--format", "json", "plan", p],
        vec!["-vvv", "apply", "--yes", "--no-progress", p],
        vec!["--format", "json", "-vvv", "apply", "--yes", p],
    ] {
        let (_, stdout, stderr) = run(tool(&e, &args)).await;
        outputs.push(stdout);
        outputs.push(stderr);
    }
    outputs.push(std::fs::read_to_string(dir.path().join(".sqlflex-import/m.jsonl")).unwrap());
    for text in &outputs {
        emu::assert_no_secrets("an output", text);
    }
}

/// A server that answers the API's paths, but wrongly.
async fn rogue_api(kind: &'static str) -> String {
    use axum::body::Body;
    use axum::response::Response;
    let app = axum::Router::new().fallback(move || async move {
        match kind {
            "invalid-json" => Response::new(Body::from("{\"runningRestores\": [")),
            "wrong-types" => Response::new(Body::from("{\"runningRestores\": \"none\"}")),
            "huge" => {
                let chunk = bytes::Bytes::from(vec![b' '; 1 << 20]);
                let stream = futures::stream::iter(
                    (0..200).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                Response::new(Body::from_stream(stream))
            }
            _ => {
                // Headers, then a byte now and then, forever.
                let stream = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")), ()))
                });
                Response::new(Body::from_stream(stream))
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_break_the_contract_end_in_clear_errors() {
    let e = emu::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = setup(&e, dir.path(), 1, false, 1).await;
    let original = std::fs::read_to_string(&path).unwrap();
    for (kind, expected) in [
        ("invalid-json", "does not fit the API contract"),
        ("wrong-types", "does not fit the API contract"),
        ("huge", "larger than 16 MiB"),
        ("slow", "GET /restore-jobs"),
    ] {
        let endpoint = rogue_api(kind).await;
        std::fs::write(
            &path,
            original.replace("${STACKIT_API_ENDPOINT}", &endpoint),
        )
        .unwrap();
        let mut cmd = tool(&e, &["plan", path.to_str().unwrap()]);
        // A short timeout ends the slow answer; the others must fail on
        // what they are, not on how long 16 MiB take on a busy machine.
        let timeout = if kind == "slow" { "1" } else { "60" };
        cmd.env(sqlflex_import::http::TIMEOUT_ENV, timeout);
        let started = std::time::Instant::now();
        let (code, stdout, _) = run(cmd).await;
        assert_eq!(code, 1, "{kind}");
        assert!(stdout.contains(expected), "{kind}: {stdout}");
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{kind} took {:?}",
            started.elapsed()
        );
    }
}

/// Credentials withdrawn while the restores run (a rotated password, a
/// revoked token): no later status round can succeed, so the run says why at
/// once instead of retrying until each import's timeout (two minutes here),
/// and a rerun with the credentials back follows the restores instead of
/// refusing them as someone else's or submitting them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_credentials_end_the_wait_with_the_cause_and_a_rerun_follows() {
    let e = emu::start(Duration::from_secs(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3::new(&e);
    for name in ["by_api", "by_sql"] {
        let body = writer::write(&BackupSpec::full(name));
        assert_eq!(s3.put(&format!("{name}.bak"), body).await.status(), 200);
    }
    let dbs = [
        Db::api("by_api", 0, &["by_api.bak"]),
        Db::sql("by_sql", 1, &["by_sql.bak"]),
    ];
    let path = common::write(dir.path(), "m.yaml", &emu::manifest(&e, 4, 2, &dbs));
    let report = dir.path().join("r.json");
    let args = [
        "--format",
        "json",
        "apply",
        "--yes",
        "--no-progress",
        path.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    let child = tool(&e, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let both_running = emu::eventually(Duration::from_secs(30), || async {
        let running = |i: usize| {
            e.model
                .running_restores(&e.instance_ids[i])
                .is_some_and(|r| !r.is_empty())
        };
        (running(0) && running(1)).then_some(())
    })
    .await;
    assert!(both_running.is_some(), "both restores start");
    e.model.set_credentials_revoked(true);

    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    let Ok(output) = waited else {
        // SAFETY: a signal to our own child, which still runs.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("apply still waits a minute after its credentials were withdrawn");
    };
    let output = output.unwrap().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let failed = emu::events(&stdout, "failed");
    let failure_of = |db: &str| {
        let event = failed
            .iter()
            .find(|v| v["database"] == db)
            .unwrap_or_else(|| panic!("{db} failed: {stdout}"));
        assert_eq!(event["failure"]["code"], "R008", "{event}");
        event["reason"].as_str().unwrap().to_owned()
    };
    assert!(failure_of("by_api").contains("HTTP 401"), "{stdout}");
    assert!(failure_of("by_sql").contains("login refused"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let codes: Vec<&str> = r["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(codes, ["R008", "R008"], "{r}");
    for text in [&*stdout, &*stderr, &r.to_string()] {
        emu::assert_no_secrets("a run whose credentials were withdrawn", text);
    }
    // One refused login, never retried: a lockout policy counts each one.
    let logins = &stats(&e).await["instances"][&e.instance_ids[1]];
    assert_eq!(logins["failed_logins"], 1, "{logins}");

    e.model.set_credentials_revoked(false);
    let (code, stdout, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    imported_exactly_once(&e, 2).await;
}

/// The import procedure's session killed while it runs, and the login
/// withdrawn with it: the run cannot tell whether the import started, and
/// says so (R003). The rerun, with the credentials back, looks before it
/// submits: it finds the import it started and follows it, instead of
/// submitting it again or refusing it as someone else's restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_submit_that_cannot_be_looked_up_is_looked_up_by_the_rerun() {
    let e = emu::start(Duration::from_secs(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = setup(&e, dir.path(), 1, true, 1).await;
    let m = path.to_str().unwrap();
    e.model.revoke_credentials_during_next_sql_import();

    let (code, stdout, stderr) = run(tool(
        &e,
        &["--format", "json", "apply", "--yes", "--no-progress", m],
    ))
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let failed = emu::events(&stdout, "failed");
    assert_eq!(failed.len(), 1, "{stdout}");
    assert_eq!(failed[0]["failure"]["code"], "R003", "{}", failed[0]);
    let (sent, _) = tally(&e).await;
    exactly_once(&sent, 1);

    e.model.set_credentials_revoked(false);
    let (code, stdout, stderr) = apply(&e, &[m]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    imported_exactly_once(&e, 1).await;
}

/// An S3 endpoint that cannot be reached, or a bucket that is not there, is
/// one problem: `plan` says it once, with the bucket and how many databases
/// it blocks, and asks for no object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_s3_is_said_once_naming_the_bucket() {
    let e = emu::start(Duration::from_millis(200)).await;
    let names: Vec<String> = (0..20).map(|i| format!("db{i:02}")).collect();
    let dbs: Vec<Db<'_>> = names.iter().map(|n| Db::api(n, 0, &["x.bak"])).collect();
    let text = emu::manifest(&e, 4, 2, &dbs);
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = text.replace("${S3_ENDPOINT}", &format!("http://127.0.0.1:{port}"));
    let missing = text.replace("${S3_BUCKET}", "no-such-bucket");
    for (case, manifest, said) in [
        ("closed port", refused, "could not connect"),
        ("missing bucket", missing, "bucket `no-such-bucket`"),
    ] {
        let path = common::write(dir.path(), "m.yaml", &manifest);
        let (code, stdout, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
        assert_eq!(code, 1, "{case}: {stdout}\n{stderr}");
        let all = format!("{stdout}{stderr}");
        assert_eq!(all.matches(said).count(), 1, "{case}: said once:\n{all}");
        assert!(all.contains("(blocks 20 databases)"), "{case}: {all}");
    }
    // `inspect` asks the bucket first too: the closed port is said at once
    // for the bucket, not for the object after every retry of its read.
    let refused = format!("http://127.0.0.1:{port}");
    let emulated = format!("http://{}", e.s3);
    for (case, endpoint, uri, said) in [
        (
            "closed port",
            refused.as_str(),
            "s3://sqlflex-backups/x.bak",
            "bucket `sqlflex-backups`",
        ),
        (
            "missing bucket",
            emulated.as_str(),
            "s3://no-such-bucket/x.bak",
            "bucket `no-such-bucket`",
        ),
    ] {
        let mut inspect = tool(&e, &["inspect", uri]);
        inspect.env("S3_ENDPOINT", endpoint);
        let (code, stdout, stderr) = run(inspect).await;
        assert_eq!(code, 1, "{case}: {stdout}\n{stderr}");
        assert!(stderr.contains(said), "{case}: {stderr}");
    }
}

/// A key that may read objects but not list the bucket: `inspect` reads
/// the object all the same (its first question, the listing, is refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_an_object_its_key_may_not_list() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = emu::start(Duration::from_millis(200)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0; 8192];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n]);
                let line = line.lines().next().unwrap_or_default().to_owned();
                let answer: Vec<u8> = if line.contains("list-type=2") {
                    b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_vec()
                } else if line.starts_with("HEAD") {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\nconnection: close\r\n\r\n".to_vec()
                } else {
                    let mut a = b"HTTP/1.1 206 Partial Content\r\ncontent-length: 4096\r\n\
                        content-range: bytes 0-4095/4096\r\nconnection: close\r\n\r\n"
                        .to_vec();
                    a.extend([0u8; 4096]);
                    a
                };
                let _ = socket.write_all(&answer).await;
            });
        }
    });
    let mut inspect = tool(&e, &["inspect", "s3://sqlflex-backups/x.bak"]);
    inspect.env("S3_ENDPOINT", format!("http://{addr}"));
    let (code, stdout, stderr) = run(inspect).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("not a SQL Server backup") && !stderr.contains("denied"),
        "{stdout}\n{stderr}"
    );
}

/// A host that does not resolve (`.invalid` never does) is said once for
/// the databases it blocks, and not asked again by every retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_api_host_is_said_once() {
    let e = emu::start(Duration::from_millis(200)).await;
    let dbs = [Db::api("one", 0, &["x.bak"]), Db::api("two", 0, &["x.bak"])];
    let text = emu::manifest(&e, 4, 2, &dbs).replace(
        "${STACKIT_API_ENDPOINT}",
        "https://api.no-such-host.invalid",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, stdout, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let said = "the host `api.no-such-host.invalid` is not known";
    assert_eq!(stdout.matches(said).count(), 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("(blocks 2 databases)"), "{stdout}");
    assert!(!stderr.contains("retrying"), "{stderr}");
}

/// An API or SQL Server port where nothing listens is said once for the
/// databases it blocks, after two tries, not after eight with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_api_or_sql_port_is_said_once() {
    let e = emu::start(Duration::from_millis(200)).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    for (path_kind, dbs) in [
        (
            "api",
            [Db::api("one", 0, &["x.bak"]), Db::api("two", 0, &["x.bak"])],
        ),
        (
            "sql",
            [Db::sql("one", 0, &["x.bak"]), Db::sql("two", 0, &["x.bak"])],
        ),
    ] {
        let text = emu::manifest(&e, 4, 2, &dbs)
            .replace(
                "${STACKIT_API_ENDPOINT}",
                &format!("http://127.0.0.1:{port}"),
            )
            .replace(
                &format!("port: {}", e.tds[0].port()),
                &format!("port: {port}"),
            );
        let path = common::write(dir.path(), "m.yaml", &text);
        let (code, stdout, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
        assert_eq!(code, 1, "{path_kind}: {stdout}\n{stderr}");
        let said = format!("nothing listens at 127.0.0.1:{port} (connection refused)");
        assert_eq!(
            stdout.matches(&said).count(),
            1,
            "{path_kind}:\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("(blocks 2 databases)"),
            "{path_kind}: {stdout}"
        );
        assert!(!stderr.contains("retrying"), "{path_kind}: {stderr}");
        // `status` and `verify` look at the instance the same way: the
        // closed port ends their round at once, with the same words.
        for command in ["status", "verify"] {
            let (code, stdout, stderr) = run(tool(&e, &[command, path.to_str().unwrap()])).await;
            assert_eq!(code, 1, "{command} {path_kind}: {stdout}\n{stderr}");
            assert!(
                stdout.contains(&said) && !stdout.contains("attempts"),
                "{command} {path_kind}:\n{stdout}\n{stderr}"
            );
        }
    }
}
