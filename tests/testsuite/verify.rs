//! After the import: `apply` checks what landed (state, owner, collation,
//! compatibility level, orphaned users, CHECKDB) on each database right
//! after it comes online, and `verify` does on demand. Against the
//! emulator, whose restored databases hold the users `--database-users`
//! names and whose CHECKDB finds errors in `--checkdb-errors`.

use crate::common;
use crate::common::emu;

use emu::{Db, S3, apply, run, stats, tool};
use serde_json::Value;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::{Config, Emulator, model::InstanceSettings};
use std::path::Path;
use std::time::Duration;

const VERIFY: &str = "defaults: {owner: app_owner, timeout: 2m, verify: {orphaned_users: report, \
     checkdb: physical_only, compatibility_level: latest}}";

/// The emulator of the issue: logins app_owner, importer, report_user and
/// app_user; every restored database holds report_user and legacy_user
/// (orphaned) and app_user (mapped); CHECKDB of vf_bad finds errors.
async fn start() -> Emulator {
    let settings = InstanceSettings {
        users: ["app_owner", "importer", "report_user", "app_user"]
            .map(String::from)
            .to_vec(),
        database_users: ["report_user", "legacy_user", "app_user:mapped"]
            .map(String::from)
            .to_vec(),
        checkdb_errors: vec!["vf_bad".into()],
        ..InstanceSettings::default()
    };
    emu::start_with(Config {
        restore_duration: Duration::from_millis(200),
        instance_settings: vec![settings.clone(), settings],
        ..Config::default()
    })
    .await
}

/// Uploads a SQL Server 2016 backup (compatibility level 130) per database.
async fn upload(e: &Emulator, names: &[&str]) {
    let s3 = S3::new(e);
    for name in names {
        let body = writer::write(&BackupSpec::full(name));
        assert_eq!(s3.put(&format!("{name}.bak"), body).await.status(), 200);
    }
}

/// `apply --format json --report REPORT MANIFEST EXTRA...`.
async fn apply_json(
    e: &Emulator,
    manifest: &Path,
    report: &Path,
    extra: &[&str],
) -> (i32, String, String) {
    let mut args = vec![
        manifest.to_str().unwrap(),
        "--format",
        "json",
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    apply(e, &args).await
}

fn key(name: &str) -> String {
    format!("{name}.bak")
}

fn records(report: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(report).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["databases"].as_array().unwrap().clone()
}

fn record<'a>(records: &'a [Value], db: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["database"] == db)
        .unwrap_or_else(|| panic!("no record of {db}: {records:?}"))
}

/// The messages of a record's findings with `code`.
fn messages(findings: &Value, code: &str) -> Vec<String> {
    findings
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["code"] == code)
                .map(|f| f["message"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn instance_stats<'a>(s: &'a Value, e: &Emulator, i: usize) -> &'a Value {
    &s["instances"][&e.instance_ids[i]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_checks_every_database_after_its_import_through_both_paths() {
    let e = start().await;
    let names = ["vf_api", "vf_sql", "vf_bad"];
    upload(&e, &names).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, s, b) = (key("vf_api"), key("vf_sql"), key("vf_bad"));
    let m = emu::manifest(
        &e,
        4,
        2,
        &[
            Db::api("vf_api", 0, &[&a]),
            Db::sql("vf_sql", 1, &[&s]),
            Db::sql("vf_bad", 0, &[&b]),
        ],
    );
    let path = common::write(dir.path(), "m.yaml", &emu::with_defaults(&m, VERIFY));
    let report = dir.path().join("report.json");
    let junit = dir.path().join("junit.xml");
    let junit_arg = ["--junit", junit.to_str().unwrap()];
    let (code, stdout, stderr) = apply_json(&e, &path, &report, &junit_arg).await;
    assert_eq!(code, 1, "vf_bad fails its CHECKDB\n{stdout}\n{stderr}");
    let all = records(&report);
    for db in names {
        let r = record(&all, db);
        let orphans = messages(&r["findings"], "V003");
        assert_eq!(orphans.len(), 1, "{r}");
        assert!(
            orphans[0].contains("legacy_user") && orphans[0].contains("report_user"),
            "{r}"
        );
        assert!(!orphans[0].contains("app_user"), "mapped: {r}");
        // Restored at the level of SQL Server 2016, raised to 2022's;
        // a database that failed its CHECKDB is left as it is.
        let level = messages(&r["findings"], "V006");
        let expected = if db == "vf_bad" {
            "compatibility level 130 (the instance offers up to 160); not changed, as the \
             database failed a check before"
        } else {
            "compatibility level raised from 130 to 160"
        };
        assert_eq!(level, [expected], "{r}");
    }
    assert_eq!(record(&all, "vf_api")["outcome"], "online");
    assert_eq!(record(&all, "vf_sql")["outcome"], "online");
    let bad = record(&all, "vf_bad");
    assert_eq!(bad["outcome"], "failed_verification", "{bad}");
    assert_eq!(bad["code"], "V004", "{bad}");
    assert!(
        messages(&bad["findings"], "V004")[0].contains("8928"),
        "{bad}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("type=\"V004\""), "{xml}");
    // The stage is in the events, one per check.
    let checked = emu::events(&stdout, "checked");
    assert_eq!(checked.len(), 3 * 6, "{stdout}");
    assert_eq!(emu::events(&stdout, "verified").len(), 3);

    let s = stats(&e).await;
    let i0 = instance_stats(&s, &e, 0);
    let i1 = instance_stats(&s, &e, 1);
    assert_eq!(i0["checkdb_runs"]["vf_api"], 1, "{s}");
    assert_eq!(i0["checkdb_runs"]["vf_bad"], 1, "{s}");
    assert_eq!(i1["checkdb_runs"]["vf_sql"], 1, "{s}");
    let mut set: Vec<String> = [i0, i1]
        .iter()
        .flat_map(|i| i["levels_set"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    set.sort();
    assert_eq!(set, ["vf_api=160", "vf_sql=160"]);

    // The next run has nothing left to do or to check.
    let (code, stdout, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let again = stats(&e).await;
    assert_eq!(instance_stats(&again, &e, 0)["checkdb_runs"]["vf_bad"], 1);

    // `status` says what the checks found, from the state.
    let (code, stdout, stderr) = run(tool(
        &e,
        &["--format", "json", "status", path.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    let row = |db: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["database"] == db)
            .cloned()
            .unwrap()
    };
    let bad = row("vf_bad");
    assert_eq!(
        (&bad["checks"], &bad["codes"]),
        (&"failed".into(), &serde_json::json!(["V004"])),
        "{bad}"
    );
    let good = row("vf_api");
    assert_eq!(good["checks"], "passed", "{good}");
    assert_eq!(good["warnings"], serde_json::json!(["V003"]), "{good}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fixes_orphaned_users_and_then_names_only_the_rest() {
    let e = start().await;
    upload(&e, &["vf_fix"]).await;
    let dir = tempfile::tempdir().unwrap();
    let k = key("vf_fix");
    let m = emu::manifest(&e, 4, 2, &[Db::sql("vf_fix", 0, &[&k])]);
    let path = common::write(dir.path(), "m.yaml", &m);
    let (code, stdout, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "orphaned users only warn\n{stdout}\n{stderr}");

    let fix = emu::with_defaults(
        &m,
        "defaults: {owner: app_owner, timeout: 2m, verify: {orphaned_users: fix}}",
    );
    let fix_path = common::write(dir.path(), "fix.yaml", &fix);
    let (code, stdout, stderr) = run(tool(
        &e,
        &["verify", fix_path.to_str().unwrap(), "--format", "json"],
    ))
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let findings = &v["databases"][0]["findings"];
    let said = messages(findings, "V003").join(" | ");
    assert!(
        said.contains("remapped to the login of the same name: report_user"),
        "{said}"
    );
    assert!(
        said.contains("legacy_user (no login of that name)"),
        "{said}"
    );
    let s = stats(&e).await;
    assert_eq!(
        instance_stats(&s, &e, 0)["remapped_users"],
        serde_json::json!(["vf_fix.report_user"])
    );

    // Reported again, only the one without a login is left.
    let (code, stdout, stderr) = run(tool(
        &e,
        &["verify", path.to_str().unwrap(), "--format", "json"],
    ))
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let orphans = messages(&v["databases"][0]["findings"], "V003");
    assert_eq!(
        orphans,
        ["orphaned users (their SID matches no login): legacy_user"]
    );
    // With --strict the warning fails it.
    let (code, _, _) = run(tool(&e, &["verify", path.to_str().unwrap(), "--strict"])).await;
    assert_eq!(code, 1);
}

/// A run killed between two checks: the next one runs only what is left,
/// and reports the earlier checks' findings with its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_does_not_repeat_a_finished_check() {
    let e = start().await;
    upload(&e, &["vf_resume"]).await;
    let dir = tempfile::tempdir().unwrap();
    let k = key("vf_resume");
    let m = emu::manifest(&e, 4, 2, &[Db::api("vf_resume", 1, &[&k])]);
    let path = common::write(dir.path(), "m.yaml", &emu::with_defaults(&m, VERIFY));
    let (code, stdout, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // Cut the journal after CHECKDB ended, as a kill there leaves it.
    let journal = dir.path().join(".sqlflex-import").join("m.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let cut = text
        .lines()
        .position(|l| l.contains("\"checked\"") && l.contains("\"checkdb\""))
        .expect("CHECKDB's end is journalled");
    let kept: Vec<&str> = text.lines().take(cut + 1).collect();
    std::fs::write(&journal, kept.join("\n") + "\n").unwrap();

    let report = dir.path().join("again.json");
    let (code, stdout, stderr) = apply_json(&e, &path, &report, &[]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let verifying = emu::events(&stdout, "verifying");
    assert_eq!(
        verifying[0]["checks"],
        serde_json::json!(["compatibility_level", "orphaned_users"]),
        "{stdout}"
    );
    let s = stats(&e).await;
    let i1 = instance_stats(&s, &e, 1);
    assert_eq!(i1["checkdb_runs"]["vf_resume"], 1, "not run again: {s}");
    // Set by the first run, whose record the journal lost: the second
    // finds it at 160 already and says so.
    assert_eq!(
        i1["levels_set"],
        serde_json::json!(["vf_resume=160"]),
        "set once: {s}"
    );
    assert_eq!(i1["restore_submissions"]["vf_resume"], 1);
    let r = record(&records(&report), "vf_resume").clone();
    assert_eq!(r["outcome"], "skipped", "{r}");
    assert_eq!(
        messages(&r["findings"], "V006"),
        ["compatibility level 160"],
        "{r}"
    );
    assert_eq!(
        messages(&r["findings"], "V004").len(),
        0,
        "CHECKDB passed in the earlier run: {r}"
    );
    assert_eq!(messages(&r["findings"], "V003").len(), 1, "{r}");
}

/// Without a `sql` section the API tells the owner and the level; what
/// needs T-SQL is named as not checked, and validate warns of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_only_api_gets_the_api_checks_and_a_note() {
    let e = start().await;
    upload(&e, &["vf_only_api"]).await;
    let dir = tempfile::tempdir().unwrap();
    let k = key("vf_only_api");
    let m = emu::manifest(&e, 4, 2, &[Db::api("vf_only_api", 0, &[&k])]);
    let sql_line = m
        .lines()
        .find(|l| l.trim_start().starts_with("sql:"))
        .unwrap()
        .to_owned();
    let only_api = m.replacen(&format!("{sql_line}\n"), "", 1);
    assert!(!only_api.contains(&sql_line));
    let path = common::write(dir.path(), "m.yaml", &only_api);
    let report = dir.path().join("r.json");
    let (code, stdout, stderr) = apply(
        &e,
        &[path.to_str().unwrap(), "--report", report.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r = record(&records(&report), "vf_only_api").clone();
    assert_eq!(r["outcome"], "online", "{r}");
    let notes = messages(&r["findings"], "V008");
    assert_eq!(notes.len(), 1, "{r}");
    assert!(
        notes[0].contains("orphaned users") && notes[0].contains("no `sql` section"),
        "{r}"
    );
    assert_eq!(
        messages(&r["findings"], "V006"),
        ["compatibility level 130 (the instance offers up to 160)"],
        "{r}"
    );
    assert!(
        messages(&r["findings"], "V002").is_empty(),
        "owner as asked: {r}"
    );

    // Asking for CHECKDB there is said at validate.
    let asks = emu::with_defaults(
        &only_api,
        "defaults: {owner: app_owner, timeout: 2m, verify: {checkdb: full}}",
    );
    let asks = common::write(dir.path(), "asks.yaml", &asks);
    let (code, stdout, stderr) = run(tool(&e, &["validate", asks.to_str().unwrap()])).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("need T-SQL (checkdb)") && stderr.contains("no `sql` section"),
        "{stderr}"
    );
}

/// A level no SQL Server has is refused by `validate`; one the instance
/// does not offer by `plan`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compatibility_level_the_instance_does_not_offer_is_refused_before_import() {
    let e = start().await;
    upload(&e, &["vf_level"]).await;
    let dir = tempfile::tempdir().unwrap();
    let k = key("vf_level");
    let m = emu::manifest(&e, 4, 2, &[Db::sql("vf_level", 0, &[&k])]);
    let level = |n: &str| {
        emu::with_defaults(
            &m,
            &format!(
                "defaults: {{owner: app_owner, timeout: 2m, verify: {{compatibility_level: {n}}}}}"
            ),
        )
    };
    let bad = common::write(dir.path(), "bad.yaml", &level("155"));
    let (code, _, stderr) = run(tool(&e, &["validate", bad.to_str().unwrap()])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("V007") && stderr.contains("155"),
        "{stderr}"
    );
    // SQL Server 2022 offers 100 to 160: 90 is not among them.
    let old = common::write(dir.path(), "old.yaml", &level("90"));
    let (code, stdout, _) = run(tool(
        &e,
        &["plan", old.to_str().unwrap(), "--format", "json"],
    ))
    .await;
    assert_eq!(code, 1, "{stdout}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        common::finding_codes(&plan["items"][0]),
        ["V007 refuse"],
        "{stdout}"
    );
}

/// The emulator command takes the flags: the demo's manifest with
/// checks, applied against `emulator --database-users ... --checkdb-errors`.
#[test]
fn the_emulator_command_models_users_and_checkdb_from_its_flags() {
    let (child, env) = common::start_emulator(common::bin().args([
        "emulator",
        "--print-env",
        "--restore-seconds",
        "1",
        "--users",
        "demo_owner,importer,report_user,app_user",
        "--database-users",
        "report_user,legacy_user,app_user:mapped",
        "--checkdb-errors",
        "crm",
    ]));
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(common::project_root().join("examples/demo.yaml")).unwrap();
    let checked = demo.replacen(
        "  owner: demo_owner\n",
        "  owner: demo_owner\n  verify: {checkdb: physical_only, compatibility_level: latest}\n",
        1,
    );
    assert_ne!(checked, demo, "the demo's defaults moved");
    let path = common::write(dir.path(), "demo.yaml", &checked);
    let report = dir.path().join("r.json");
    let (code, stdout, stderr) = common::run(
        common::bin()
            .args(["--no-progress", "apply", "--yes"])
            .arg(&path)
            .arg("--report")
            .arg(&report)
            .envs(&env),
    );
    common::stop_emulator(child);
    assert_eq!(code, 1, "crm fails its CHECKDB\n{stdout}\n{stderr}");
    let all = records(&report);
    assert_eq!(record(&all, "crm")["outcome"], "failed_verification");
    for db in ["sales", "hr", "billing", "inventory"] {
        let r = record(&all, db);
        assert_eq!(r["outcome"], "online", "{r}");
        assert_eq!(
            messages(&r["findings"], "V003"),
            ["orphaned users (their SID matches no login): legacy_user, report_user"],
            "{r}"
        );
    }

    // A mapped user needs its login.
    let (code, _, stderr) = common::run(common::bin().args([
        "emulator",
        "--users",
        "demo_owner",
        "--database-users",
        "app_user:mapped",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("app_user:mapped"), "{stderr}");
}
