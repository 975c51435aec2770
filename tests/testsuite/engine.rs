//! `plan`, `apply` and `demo`: the real binary against an in-process emulator.

use crate::common;
use crate::common::emu;

use emu::{
    Db, S3, apply, assert_no_secrets, manifest, run, spawn_apply, stats, submissions, tool,
    wait_for_submissions, with_defaults,
};
use serde_json::Value;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::Emulator;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

fn write_manifest(dir: &Path, text: &str) -> PathBuf {
    common::write(dir, "m.yaml", text)
}

async fn upload(s3: &S3, key: &str, spec: &BackupSpec) {
    assert_eq!(
        s3.put(key, writer::write(spec)).await.status(),
        200,
        "{key}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_flags_each_problem_and_apply_then_submits_nothing() {
    let e = emu::start(Duration::from_millis(300)).await;
    let s3 = S3::new(&e);
    upload(&s3, "ok.bak", &BackupSpec::full("ok")).await;
    upload(&s3, "existing.bak", &BackupSpec::full("existing")).await;
    let stripes = BackupSpec::striped("broken", 2);
    upload(&s3, "broken_1.bak", &stripes[0]).await;
    let mut locked = BackupSpec::full("locked");
    locked.media_password = true;
    upload(&s3, "locked.bak", &locked).await;
    let dbs = [
        Db {
            name: "ok",
            instance: 0,
            sql: false,
            keys: vec!["ok.bak".into()],
        },
        Db {
            name: "existing",
            instance: 0,
            sql: true,
            keys: vec!["existing.bak".into()],
        },
        Db {
            name: "missing",
            instance: 1,
            sql: false,
            keys: vec!["nowhere.bak".into()],
        },
        Db {
            name: "broken",
            instance: 1,
            sql: true,
            keys: vec!["broken_1.bak".into()],
        },
        Db {
            name: "locked",
            instance: 0,
            sql: false,
            keys: vec!["locked.bak".into()],
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(&e, 4, 2, &dbs));

    // Make `existing` exist, through the tool itself, as another run would
    // (its own journal: to this manifest's journal it is someone else's).
    let other_state = dir.path().join("other-run");
    let (code, _, stderr) = apply(
        &e,
        &[
            "--only",
            "existing",
            "--state",
            other_state.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");

    let (code, stdout, stderr) = run(tool(
        &e,
        &["--format", "json", "plan", path.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 1, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let verdict = |name: &str| {
        let item = plan["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["database"] == name)
            .unwrap()
            .clone();
        (
            item["verdict"].as_str().unwrap().to_owned(),
            item["reasons"].to_string(),
        )
    };
    assert_eq!(verdict("ok").0, "ready");
    let (v, why) = verdict("existing");
    assert!(v == "not_ready" && why.contains("already exists"), "{why}");
    let (v, why) = verdict("missing");
    assert!(
        v == "not_ready" && why.contains("nowhere.bak does not exist"),
        "{why}"
    );
    let (v, why) = verdict("broken");
    assert!(
        v == "not_ready" && why.contains("stripe 2 of 2 is missing"),
        "{why}"
    );
    let (v, why) = verdict("locked");
    assert!(
        v == "not_ready" && why.contains("password protected"),
        "{why}"
    );

    let before = submissions(&stats(&e).await, &e);
    let (code, stdout, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("nothing was submitted: 4 database(s) are not ready"),
        "{stderr}"
    );
    assert!(stdout.contains("NOT READY"), "{stdout}");
    assert_eq!(
        submissions(&stats(&e).await, &e),
        before,
        "apply refused to start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_databases_over_both_methods_import_once_within_the_bounds() {
    let e = emu::start_with(sqlflex_import::emulator::Config {
        instances: 3,
        restore_duration: Duration::from_millis(800),
        ..Default::default()
    })
    .await;
    let s3 = S3::new(&e);
    let names: Vec<String> = (0..30).map(|i| format!("db{i:02}")).collect();
    let mut dbs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let keys = if i % 5 == 0 {
            let specs = BackupSpec::striped(name, 2);
            for s in &specs {
                upload(&s3, &format!("{name}/{name}_{}.bak", s.family_sequence), s).await;
            }
            vec![
                format!("{name}/{name}_2.bak"),
                format!("{name}/{name}_1.bak"),
            ]
        } else {
            upload(&s3, &format!("{name}.bak"), &BackupSpec::full(name)).await;
            vec![format!("{name}.bak")]
        };
        dbs.push(Db {
            name,
            instance: i % 3,
            sql: i % 2 == 1,
            keys,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(&e, 4, 2, &dbs));
    let report = dir.path().join("report.json");
    let junit = dir.path().join("junit.xml");
    let args = [
        "--format",
        "json",
        "apply",
        "--yes",
        path.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ];
    let (code, stdout, stderr) = run(tool(&e, &args)).await;
    assert_eq!(code, 0, "{stderr}");

    // Each database exactly once, every instance within its bound.
    let s = stats(&e).await;
    let sent = submissions(&s, &e);
    assert_eq!(sent.len(), 30);
    assert!(sent.iter().all(|(_, n)| *n == 1), "{sent:?}");
    for id in &e.instance_ids {
        let peak = s["instances"][id]["max_concurrent_restores"]
            .as_u64()
            .unwrap();
        assert!((1..=2).contains(&peak), "per-instance bound 2, saw {peak}");
        assert_eq!(
            s["instances"][id]["databases"].as_array().unwrap().len(),
            10
        );
    }
    // The global bound, from the NDJSON event stream.
    let mut running = 0i32;
    let mut peak = 0;
    for line in stdout.lines() {
        let event: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("NDJSON: {e}: {line}"));
        match event["event"].as_str().unwrap() {
            "submitting" if event["attempt"] == 1 => running += 1,
            "online" | "failed" | "timed_out" => running -= 1,
            _ => {}
        }
        peak = peak.max(running);
    }
    assert!((3..=4).contains(&peak), "global bound 4, saw {peak}");

    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["counts"]["online"], 30);
    assert_eq!(r["success"], true);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 30);
    assert!(!xml.contains("<failure"));
    let journal = std::fs::read_to_string(dir.path().join(".sqlflex-import/m.jsonl")).unwrap();
    assert_eq!(journal.matches("\"event\":\"online\"").count(), 30);
    for (what, text) in [
        ("stdout", &stdout),
        ("stderr", &stderr),
        ("report", &r.to_string()),
        ("junit", &xml),
        ("journal", &journal),
    ] {
        assert_no_secrets(what, text);
    }

    // A rerun submits nothing and succeeds.
    let (code, _, stderr) = apply(
        &e,
        &[path.to_str().unwrap(), "--report", report.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(submissions(&stats(&e).await, &e), sent);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["counts"]["skipped"], 30);
}

async fn six_databases(e: &Emulator, dir: &Path) -> PathBuf {
    let s3 = S3::new(e);
    let mut dbs = Vec::new();
    let names = ["r0", "r1", "r2", "r3", "r4", "r5"];
    for (i, name) in names.iter().enumerate() {
        upload(&s3, &format!("{name}.bak"), &BackupSpec::full(name)).await;
        dbs.push(Db {
            name,
            instance: 0,
            sql: i % 2 == 1,
            keys: vec![format!("{name}.bak")],
        });
    }
    write_manifest(dir, &manifest(e, 2, 2, &dbs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_submitting_and_a_rerun_resumes() {
    a_signal_stops_submitting_and_a_rerun_resumes(libc::SIGINT).await;
}

/// SIGTERM (a service manager, a CI runner that cancels) is a Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_submitting_like_ctrl_c() {
    a_signal_stops_submitting_and_a_rerun_resumes(libc::SIGTERM).await;
}

async fn a_signal_stops_submitting_and_a_rerun_resumes(signal: i32) {
    let e = emu::start(Duration::from_secs(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = six_databases(&e, dir.path()).await;
    let child = spawn_apply(&e, &path, Stdio::piped(), Stdio::piped());
    wait_for_submissions(&e, 2, Duration::from_secs(30)).await;
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: no new imports start"),
        "{stderr}"
    );
    let after_interrupt = submissions(&stats(&e).await, &e);
    assert_eq!(
        after_interrupt.len(),
        2,
        "only the running imports, which it waited for: {after_interrupt:?}"
    );
    let online = stats(&e).await["instances"][&e.instance_ids[0]]["databases"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(online, 2, "it waited for the running imports");

    let (code, _, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    let sent = submissions(&stats(&e).await, &e);
    assert_eq!(sent.len(), 6);
    assert!(sent.iter().all(|(_, n)| *n == 1), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_a_rerun_reattaches_without_submitting_again() {
    let e = emu::start(Duration::from_secs(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = six_databases(&e, dir.path()).await;
    let mut child = spawn_apply(&e, &path, Stdio::null(), Stdio::null());
    wait_for_submissions(&e, 2, Duration::from_secs(30)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let (code, _, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("re-attached"),
        "the running ones are followed, not resubmitted: {stderr}"
    );
    let sent = submissions(&stats(&e).await, &e);
    assert_eq!(sent.len(), 6);
    assert!(sent.iter().all(|(_, n)| *n == 1), "{sent:?}");
}

#[test]
fn demo_imports_through_both_paths() {
    let (code, stdout, stderr) = common::run(common::bin().arg("demo").arg("--no-progress"));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "Demo done: 5 databases imported through both paths \
             (3 via the REST API, 2 via the stored procedure)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("5 online, 0 skipped, 0 failed"), "{stdout}");
    // inventory is written WITH COMPRESSION, and imported like the others.
    assert!(stderr.contains("inventory is compressed"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_with_on_exists_skip_can_be_applied_again_and_again() {
    let e = emu::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = six_databases(&e, dir.path()).await;
    let text = with_defaults(
        &std::fs::read_to_string(&path).unwrap(),
        "defaults: {owner: app_owner, on_exists: skip}",
    );
    std::fs::write(&path, text).unwrap();
    for run_number in 0..2 {
        // A fresh state folder each time: no journal helps, on_exists does.
        let state = dir.path().join(format!("state{run_number}"));
        let (code, stdout, stderr) = apply(
            &e,
            &["--state", state.to_str().unwrap(), path.to_str().unwrap()],
        )
        .await;
        assert_eq!(code, 0, "{stderr}");
        if run_number == 1 {
            assert!(stdout.contains("0 online, 6 skipped"), "{stdout}");
        }
    }
    assert!(
        submissions(&stats(&e).await, &e)
            .iter()
            .all(|(_, n)| *n == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_invalid_runs_the_ready_ones_and_still_fails() {
    let e = emu::start(Duration::from_millis(300)).await;
    let s3 = S3::new(&e);
    upload(&s3, "good.bak", &BackupSpec::full("good")).await;
    let dbs = [
        Db {
            name: "good",
            instance: 0,
            sql: false,
            keys: vec!["good.bak".into()],
        },
        Db {
            name: "bad",
            instance: 0,
            sql: false,
            keys: vec!["absent.bak".into()],
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(&e, 2, 2, &dbs));
    let (code, stdout, _) = apply(&e, &["--skip-invalid", path.to_str().unwrap()]).await;
    assert_eq!(code, 1, "a database that was not imported fails the run");
    assert!(
        stdout.contains(
            "1 online, 0 skipped, 0 failed, 0 failed verification, 0 timed out, 1 not ready"
        ),
        "{stdout}"
    );
    assert_eq!(
        submissions(&stats(&e).await, &e),
        vec![("good".to_owned(), 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_a_manifest_without_overlap() {
    let e = emu::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = six_databases(&e, dir.path()).await;
    let mut seen = 0;
    for shard in ["1/2", "2/2"] {
        let (code, stdout, stderr) = apply(&e, &["--shard", shard, path.to_str().unwrap()]).await;
        assert_eq!(code, 0, "{stderr}");
        seen += stdout.lines().filter(|l| l.contains("  online")).count();
    }
    assert_eq!(seen, 6);
    let sent = submissions(&stats(&e).await, &e);
    assert_eq!(sent.len(), 6);
    assert!(sent.iter().all(|(_, n)| *n == 1), "{sent:?}");
    assert!(
        dir.path()
            .join(".sqlflex-import/m.shard-1-of-2.jsonl")
            .is_file(),
        "one journal per shard"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_import_is_never_resubmitted_and_a_rerun_waits_for_it() {
    let e = emu::start(Duration::from_secs(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = six_databases(&e, dir.path()).await;
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        with_defaults(&original, "defaults: {owner: app_owner, timeout: 1s}"),
    )
    .unwrap();
    let (code, stdout, _) = apply(&e, &["--only", "r0", path.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(
        stdout.contains("timed out after 1s, still running on the server"),
        "{stdout}"
    );
    // The timeout is no part of the manifest's identity: the journal still applies.
    std::fs::write(
        &path,
        with_defaults(&original, "defaults: {owner: app_owner, timeout: 1m}"),
    )
    .unwrap();
    let (code, _, stderr) = apply(&e, &["--only", "r0", path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("re-attached"), "{stderr}");
    assert_eq!(
        submissions(&stats(&e).await, &e),
        vec![("r0".to_owned(), 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_flow_authenticates_the_api_path() {
    let e = emu::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = six_databases(&e, dir.path()).await;
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "token: \"${STACKIT_SERVICE_ACCOUNT_TOKEN}\"",
        "service_account_key_path: \"${STACKIT_SERVICE_ACCOUNT_KEY_PATH}\"",
    );
    std::fs::write(&path, &text).unwrap();
    let mut cmd = tool(
        &e,
        &["apply", "--yes", "--no-progress", path.to_str().unwrap()],
    );
    cmd.env_remove("STACKIT_SERVICE_ACCOUNT_TOKEN");
    let (code, _, stderr) = run(cmd).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(submissions(&stats(&e).await, &e).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_path_encrypts_unless_the_manifest_says_not() {
    let e = emu::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = six_databases(&e, dir.path()).await;
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace(", encrypt: false", ""),
    )
    .unwrap();
    let (code, stdout, _) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(
        code, 1,
        "the emulator offers no TLS, so a default (encrypted) login fails"
    );
    assert!(
        stdout.contains("cannot read the databases of instance i0 (SQL): cannot log in"),
        "{stdout}"
    );
    // One login problem, said once for every database it blocks.
    assert_eq!(stdout.matches("cannot log in").count(), 1, "{stdout}");
    assert!(stdout.contains("(blocks "), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_exits_at_once() {
    let e = emu::start(Duration::from_secs(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = six_databases(&e, dir.path()).await;
    let mut child = spawn_apply(&e, &path, Stdio::null(), Stdio::piped());
    wait_for_submissions(&e, 2, Duration::from_secs(30)).await;
    let started = std::time::Instant::now();
    // The second Ctrl-C once the first was handled (the tool says so),
    // not after a guessed pause.
    let (lines, stderr_lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    // SAFETY: signals to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Ok(line) =
        stderr_lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        let handled = line.contains("interrupted: no new imports start");
        seen.push(line);
        if handled {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("interrupted: no new imports start")),
        "{seen:?}"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not wait for the 20 s restores"
    );
    let journal = std::fs::read_to_string(dir.path().join(".sqlflex-import/m.jsonl")).unwrap();
    assert!(
        journal
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "the journal is consistent"
    );
    assert_eq!(journal.matches("\"event\":\"submitted\"").count(), 2);
}

/// The SQL path reports a restore's percent as SSMS shows it
/// (`sys.dm_exec_requests.percent_complete`), like the API path does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_imports_report_their_restore_percent() {
    let e = emu::start(Duration::from_secs(4)).await;
    let s3 = S3::new(&e);
    assert_eq!(
        s3.put("pct.bak", writer::write(&BackupSpec::full("pct")))
            .await
            .status(),
        200
    );
    let dir = tempfile::tempdir().unwrap();
    let text = emu::manifest(&e, 1, 1, &[Db::sql("pct", 0, &["pct.bak"])]);
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, stdout, stderr) = apply(&e, &["--format", "json", path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    let percents: Vec<u64> = emu::events(&stdout, "progress")
        .iter()
        .filter_map(|ev| ev["percent"].as_u64())
        .collect();
    assert!(
        percents.iter().any(|p| (1..100).contains(p)),
        "a percent between 1 and 99 while it restored: {percents:?}\n{stdout}"
    );
}

/// Without a terminal, each finished import says how far the run is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_output_says_how_many_are_done() {
    let e = emu::start(Duration::from_millis(200)).await;
    let s3 = S3::new(&e);
    for name in ["one", "two"] {
        let key = format!("{name}.bak");
        let status = s3
            .put(&key, writer::write(&BackupSpec::full(name)))
            .await
            .status();
        assert_eq!(status, 200);
    }
    let dir = tempfile::tempdir().unwrap();
    let dbs = [
        Db::api("one", 0, &["one.bak"]),
        Db::sql("two", 1, &["two.bak"]),
    ];
    let path = common::write(dir.path(), "m.yaml", &emu::manifest(&e, 2, 1, &dbs));
    let (code, _, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    for n in ["(1 of 2 done)", "(2 of 2 done)"] {
        assert!(stderr.contains(n), "{n}:\n{stderr}");
    }
}
