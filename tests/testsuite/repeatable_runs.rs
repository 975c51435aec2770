//! `apply` as a user runs it over weeks: the same manifest many times, an
//! edited manifest, shards and then the whole, `plan` as a dry run on an
//! environment that has data, and no import without consent. Against the
//! emulator, through the real binary; the emulator counts submissions.

use crate::common;
use crate::common::emu;

use emu::{Db, S3, apply, run, stats, tool};
use serde_json::Value;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::Emulator;
use std::path::{Path, PathBuf};
use std::time::Duration;

async fn upload(e: &Emulator, names: &[&str]) {
    let s3 = S3::new(e);
    for name in names {
        let body = writer::write(&BackupSpec::full(name));
        assert_eq!(s3.put(&format!("{name}.bak"), body).await.status(), 200);
    }
}

/// A manifest of `names`, alternating API and SQL imports over the
/// emulator's instances.
fn manifest(e: &Emulator, dir: &Path, file: &str, names: &[&str]) -> PathBuf {
    let keys: Vec<String> = names.iter().map(|n| format!("{n}.bak")).collect();
    let dbs: Vec<Db<'_>> = names
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(i, (name, key))| {
            if i % 2 == 0 {
                Db::api(name, i % e.instance_ids.len(), &[key])
            } else {
                Db::sql(name, i % e.instance_ids.len(), &[key])
            }
        })
        .collect();
    common::write(dir, file, &emu::manifest(e, 8, 4, &dbs))
}

async fn submissions(e: &Emulator) -> Vec<(String, u64)> {
    emu::submissions(&stats(e).await, e)
}

fn each_once(sent: &[(String, u64)], names: &[&str]) {
    let mut expected: Vec<(String, u64)> = names.iter().map(|n| ((*n).to_owned(), 1)).collect();
    expected.sort();
    assert_eq!(sent, expected);
}

async fn plan_json(e: &Emulator, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["--format", "json", "plan"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(tool(e, &all)).await;
    let plan = serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"));
    (code, plan, stderr)
}

fn verdicts(plan: &Value) -> Vec<(String, String)> {
    plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["database"].as_str().unwrap().to_owned(),
                i["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_applies_then_an_added_database_then_plan_all_agree() {
    let e = emu::start(Duration::from_millis(200)).await;
    let names = ["sales", "hr", "crm", "stock"];
    upload(&e, &names).await;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(&e, dir.path(), "m.yaml", &names[..3]);
    let m = m.to_str().unwrap();
    for run in 1..=4 {
        let (code, stdout, stderr) = apply(&e, &[m]).await;
        assert_eq!(code, 0, "run {run}: {stdout}\n{stderr}");
    }
    each_once(&submissions(&e).await, &names[..3]);
    // The state records what each import was: files, path and owner.
    let journal = std::fs::read_to_string(dir.path().join(".sqlflex-import/m.jsonl")).unwrap();
    let submitting: Value = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["event"] == "submitting" && v["database"] == "hr")
        .expect("a submitting line for hr");
    assert_eq!(
        submitting["files"],
        serde_json::json!(["hr.bak"]),
        "{submitting}"
    );
    assert_eq!(submitting["method"], "sql", "{submitting}");
    assert_eq!(submitting["owner"], "app_owner", "{submitting}");

    // One database more in the same manifest file: imported by the next
    // run, and the run after that has nothing to do.
    manifest(&e, dir.path(), "m.yaml", &names);
    for run in 1..=2 {
        let (code, stdout, stderr) = apply(&e, &[m]).await;
        assert_eq!(code, 0, "run {run} after the edit: {stdout}\n{stderr}");
    }
    each_once(&submissions(&e).await, &names);

    // plan reads the same state (the default folder beside the manifest):
    // every database done, none a conflict.
    let (code, plan, stderr) = plan_json(&e, &[m]).await;
    assert_eq!(code, 0, "{plan}\n{stderr}");
    for (db, verdict) in verdicts(&plan) {
        assert_eq!(verdict, "done", "{db}: {plan}");
    }
    assert!(!plan.to_string().contains("T001"), "{plan}");
    // Given another, empty state folder, the same plan finds them taken.
    let empty = dir.path().join("elsewhere");
    let (code, plan, _) = plan_json(&e, &["--state", empty.to_str().unwrap(), m]).await;
    assert_eq!(code, 1);
    assert!(plan.to_string().contains("T001"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_then_the_whole_manifest_in_one_state_folder() {
    let e = emu::start(Duration::from_millis(200)).await;
    let names = ["a1", "b2", "c3", "d4", "e5", "f6"];
    upload(&e, &names).await;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(&e, dir.path(), "m.yaml", &names);
    let m = m.to_str().unwrap();
    for shard in ["1/3", "2/3", "3/3"] {
        let (code, stdout, stderr) = apply(&e, &["--shard", shard, m]).await;
        assert_eq!(code, 0, "shard {shard}: {stdout}\n{stderr}");
    }
    each_once(&submissions(&e).await, &names);
    let (code, stdout, stderr) = apply(&e, &[m]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    each_once(&submissions(&e).await, &names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_exists_still_has_its_files_checked() {
    let e = emu::start(Duration::from_millis(200)).await;
    upload(&e, &["kept", "gone"]).await;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(&e, dir.path(), "m.yaml", &["kept", "gone"]);
    let (code, _, stderr) = apply(&e, &[m.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    // Both exist now; one's backup disappears from the bucket. As a skip
    // target (another state folder) and as one this state imported, the
    // missing file is reported, as a warning: nothing is imported now.
    assert_eq!(S3::new(&e).delete("gone.bak").await.status(), 204);
    let skip = emu::with_defaults(
        &std::fs::read_to_string(&m).unwrap(),
        "defaults: {owner: app_owner, timeout: 2m, on_exists: skip}",
    );
    let skip = common::write(dir.path(), "skip.yaml", &skip);
    let fresh = dir.path().join("fresh-state");
    for args in [
        vec!["--state", fresh.to_str().unwrap(), skip.to_str().unwrap()],
        vec![m.to_str().unwrap()],
    ] {
        let (code, plan, stderr) = plan_json(&e, &args).await;
        assert_eq!(code, 0, "a warning does not block: {plan}\n{stderr}");
        let gone = plan["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["database"] == "gone")
            .unwrap();
        assert_eq!(common::finding_codes(gone), ["S002 warn"], "{gone}");
        let mut strict = args.clone();
        strict.insert(0, "--strict");
        let (code, _, _) = plan_json(&e, &strict).await;
        assert_eq!(code, 1, "--strict refuses the warning");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_files_for_an_imported_database_are_reported() {
    let e = emu::start(Duration::from_millis(200)).await;
    upload(&e, &["sales", "sales2"]).await;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(&e, dir.path(), "m.yaml", &["sales"]);
    let (code, _, stderr) = apply(&e, &[m.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    let edited = std::fs::read_to_string(&m)
        .unwrap()
        .replace("\"sales.bak\"", "\"sales2.bak\"");
    std::fs::write(&m, edited).unwrap();
    let (code, plan, _) = plan_json(&e, &[m.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{plan}");
    let item = &plan["items"][0];
    assert_eq!(item["verdict"], "done");
    assert_eq!(common::finding_codes(item), ["T006 warn"], "{item}");
    let text = item.to_string();
    assert!(
        text.contains("from sales.bak") && text.contains("now names sales2.bak"),
        "{text}"
    );
    let (code, _, stderr) = apply(&e, &[m.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    each_once(&submissions(&e).await, &["sales"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_import_without_consent() {
    let e = emu::start(Duration::from_millis(200)).await;
    upload(&e, &["sales"]).await;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(&e, dir.path(), "m.yaml", &["sales"]);
    // Standard input is not a terminal, and no --yes: nothing is submitted.
    let (code, _, stderr) = run(tool(&e, &["apply", "--no-progress", m.to_str().unwrap()])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert!(submissions(&e).await.is_empty());

    // On a terminal, answering anything but yes: exit 1, nothing imported.
    let script = format!(
        "printf 'n\\n' | script -qec '{} apply --no-progress {}' /dev/null",
        env!("CARGO_BIN_EXE_sqlflex-import"),
        m.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]).envs(e.env());
    let (code, stdout, stderr) = run(cmd).await;
    let said = format!("{stdout}{stderr}");
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("nothing was imported"), "{said}");
    assert!(
        said.contains(&format!("i0 (project {}", e.project_id)) && said.contains("Go ahead?"),
        "{said}"
    );
    assert!(submissions(&e).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_what_the_state_did_and_what_the_instance_says() {
    let e = emu::start(Duration::from_millis(200)).await;
    upload(&e, &["ours", "theirs", "missing"]).await;
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(&e, dir.path(), "m.yaml", &["ours", "theirs", "missing"]);
    let m = m.to_str().unwrap();
    let (code, _, stderr) = apply(&e, &["--only", "ours", m]).await;
    assert_eq!(code, 0, "{stderr}");
    // Imported by someone else (another state folder).
    let other = dir.path().join("someone-else");
    let (code, _, stderr) = apply(
        &e,
        &["--state", other.to_str().unwrap(), "--only", "theirs", m],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let state_dir = dir.path().join(".sqlflex-import");
    let snapshot = || {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&state_dir)
            .unwrap()
            .map(|f| {
                let f = f.unwrap();
                (
                    f.file_name().to_string_lossy().into_owned(),
                    std::fs::read(f.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot();

    let (code, stdout, stderr) = run(tool(&e, &["--format", "json", "status", m])).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    let row = |name: &str| {
        let r = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["database"] == name)
            .unwrap();
        (r["recorded"].clone(), r["now"].clone())
    };
    assert_eq!(row("ours"), ("imported".into(), "online".into()));
    assert_eq!(row("theirs"), ("nothing".into(), "online_not_ours".into()));
    assert_eq!(row("missing"), ("nothing".into(), "missing".into()));
    let (code, table, _) = run(tool(&e, &["status", m])).await;
    assert_eq!(code, 0);
    assert!(
        table.contains("online, not imported by this state") && table.contains("STATE SAYS"),
        "{table}"
    );
    assert_eq!(snapshot(), before, "status writes nothing");
    assert_eq!(submissions(&e).await.len(), 2);
}
