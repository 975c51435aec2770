//! `on_exists: replace`: nightly re-seeding. The existing database is
//! dropped, through the API (`DELETE .../databases/{name}`) or T-SQL
//! (`DROP DATABASE`), then imported again, on every run; a run killed and
//! resumed drops nothing twice. Against the emulator, which counts drops
//! and submissions.

use crate::common;
use crate::common::emu;

use emu::{Db, S3, apply, run, spawn_apply, stats, tool};
use serde_json::Value;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::{Config, Emulator};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const REPLACE: &str = "defaults: {owner: app_owner, timeout: 2m, on_exists: replace}";

/// `names` over the instances, API and SQL in turn, each with its backup
/// uploaded; the manifest with `on_exists: replace` and without.
async fn setup(e: &Emulator, dir: &Path, names: &[&str], sql_too: bool) -> (PathBuf, PathBuf) {
    let s3 = S3::new(e);
    let keys: Vec<String> = names.iter().map(|n| format!("{n}.bak")).collect();
    let mut dbs = Vec::new();
    for (i, (name, key)) in names.iter().zip(&keys).enumerate() {
        let body = writer::write(&BackupSpec::full(name));
        assert_eq!(s3.put(key, body).await.status(), 200);
        let instance = i % e.instance_ids.len();
        dbs.push(if sql_too && i % 2 == 1 {
            Db::sql(name, instance, &[key])
        } else {
            Db::api(name, instance, &[key])
        });
    }
    let plain = emu::manifest(e, 8, 2, &dbs);
    let replace = emu::with_defaults(&plain, REPLACE);
    (
        common::write(dir, "m.yaml", &plain),
        common::write(dir, "nightly.yaml", &replace),
    )
}

/// Per database: (submissions, drops), over every instance.
async fn counts(e: &Emulator) -> Vec<(String, u64, u64)> {
    let s = stats(e).await;
    let mut out = Vec::new();
    for id in &e.instance_ids {
        let inst = &s["instances"][id];
        for (db, n) in inst["restore_submissions"].as_object().unwrap() {
            let drops = inst["drops"][db].as_u64().unwrap_or(0);
            out.push((db.clone(), n.as_u64().unwrap(), drops));
        }
    }
    out.sort();
    out
}

fn all(names: &[&str], submitted: u64, dropped: u64) -> Vec<(String, u64, u64)> {
    let mut v: Vec<_> = names
        .iter()
        .map(|n| ((*n).to_owned(), submitted, dropped))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_drops_and_imports_again_through_both_paths_on_every_run() {
    let e = emu::start(Duration::from_millis(200)).await;
    let names = ["seed_api", "seed_sql"];
    let dir = tempfile::tempdir().unwrap();
    let (_, nightly) = setup(&e, dir.path(), &names, true).await;
    let m = nightly.to_str().unwrap();
    // The first night there is nothing to drop.
    let (code, stdout, stderr) = apply(&e, &[m]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(counts(&e).await, all(&names, 1, 0));

    // The plan names what it will drop, in JSON and for people.
    let (code, stdout, _) = run(tool(&e, &["--format", "json", "plan", m])).await;
    assert_eq!(code, 0, "{stdout}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    for item in plan["items"].as_array().unwrap() {
        assert_eq!(item["verdict"], "replace", "{item}");
    }
    let (_, table, _) = run(tool(&e, &["plan", m])).await;
    assert!(
        table.contains("REPLACE") && table.contains("DROPPED"),
        "{table}"
    );
    // And so does the prompt, with each instance's project and id.
    let script = format!(
        "printf 'n\\n' | script -qec '{} apply --no-progress {m}' /dev/null",
        env!("CARGO_BIN_EXE_sqlflex-import"),
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]).envs(e.env());
    let (code, stdout, stderr) = run(cmd).await;
    let said = format!("{stdout}{stderr}");
    assert_eq!(code, 1, "{said}");
    for (db, instance) in [("seed_api", 0), ("seed_sql", 1)] {
        let line = format!(
            "{db} on i{instance} (project {}, instance {})",
            e.project_id, e.instance_ids[instance]
        );
        assert!(said.contains(&line), "{line} in {said}");
    }
    assert!(said.contains("DROPS"), "{said}");
    assert_eq!(counts(&e).await, all(&names, 1, 0), "the answer was no");

    // Every later night: dropped and imported again.
    for night in 2..=3 {
        let (code, stdout, stderr) = apply(&e, &[m]).await;
        assert_eq!(code, 0, "night {night}: {stdout}\n{stderr}");
        assert_eq!(counts(&e).await, all(&names, night, night - 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_that_fails_leaves_the_database_and_imports_nothing() {
    let e = emu::start(Duration::from_millis(200)).await;
    let names = ["kept_api", "kept_sql"];
    let dir = tempfile::tempdir().unwrap();
    let (_, nightly) = setup(&e, dir.path(), &names, true).await;
    let m = nightly.to_str().unwrap();
    let (code, _, stderr) = apply(&e, &[m]).await;
    assert_eq!(code, 0, "{stderr}");
    for (i, name) in names.iter().enumerate() {
        e.model.set_drop_denied(&e.instance_ids[i], name, true);
    }
    let (code, stdout, stderr) = apply(&e, &["--format", "json", m]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let failed = emu::events(&stdout, "failed");
    assert_eq!(failed.len(), 2, "{stdout}");
    for event in &failed {
        assert_eq!(event["failure"]["code"], "R009", "{event}");
        assert!(
            event["reason"].as_str().unwrap().contains("could not drop"),
            "{event}"
        );
    }
    assert_eq!(
        counts(&e).await,
        all(&names, 1, 0),
        "nothing dropped or sent"
    );
    let s = stats(&e).await;
    assert_eq!(
        s["instances"][&e.instance_ids[0]]["databases"],
        serde_json::json!(["kept_api"])
    );
    assert_eq!(
        s["instances"][&e.instance_ids[1]]["databases"],
        serde_json::json!(["kept_sql"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_replace_run_then_rerun_replaces_each_once() {
    let e = emu::start_with(Config {
        instances: 2,
        restore_duration: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let names: Vec<String> = (0..12).map(|n| format!("db{n:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let (plain, nightly) = setup(&e, dir.path(), &names, false).await;
    let (code, _, stderr) = apply(&e, &[plain.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(counts(&e).await, all(&names, 1, 0));

    // The replace run, killed midway: two imports per instance at a time,
    // so a fifth drop comes only after earlier replaced databases are
    // online again; some are online, some restoring, some untouched.
    let mut child = spawn_apply(&e, &nightly, Stdio::null(), Stdio::null());
    let dropped = emu::eventually(Duration::from_secs(60), || async {
        let n: u64 = counts(&e).await.iter().map(|c| c.2).sum();
        (n >= 6).then_some(n)
    })
    .await
    .expect("drops begin");
    child.kill().unwrap();
    child.wait().unwrap();
    let partial: u64 = counts(&e).await.iter().map(|c| c.2).sum();
    assert!(
        dropped >= 6 && partial < names.len() as u64,
        "killed midway: {partial} dropped"
    );

    // The rerun finishes that run: each database dropped once and imported
    // once more, whatever the kill interrupted.
    let (code, stdout, stderr) = apply(&e, &[nightly.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(counts(&e).await, all(&names, 2, 1));
    // The next night is a new run: all of them again.
    let (code, _, stderr) = apply(&e, &[nightly.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(counts(&e).await, all(&names, 3, 2));
}
