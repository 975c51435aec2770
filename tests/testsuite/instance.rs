//! The instance prerequisites: `plan` against emulated instances that are
//! busy, failed, without the owner, older than the backup or too small,
//! through both import paths where the path can see it; late failures of
//! restores the plan could not foresee; the restore answers the documents
//! list; and the cost of the instance checks at scale.

use crate::common;
use crate::common::emu;

use emu::{Db, S3, apply, manifest, run, stats, tool};
use serde_json::Value;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::model::InstanceSettings;
use sqlflex_import::emulator::{Config, Emulator};
use std::time::Duration;

async fn emulator(settings: Vec<InstanceSettings>) -> Emulator {
    emu::start_with(Config {
        instances: settings.len().max(1),
        restore_duration: Duration::from_millis(300),
        instance_settings: settings,
        ..Config::default()
    })
    .await
}

fn settings(edit: impl Fn(&mut InstanceSettings)) -> InstanceSettings {
    let mut s = InstanceSettings::default();
    edit(&mut s);
    s
}

async fn upload(e: &Emulator, name: &str, bytes: Vec<u8>) {
    let status = S3::new(e).put(&format!("{name}.bak"), bytes).await.status();
    assert_eq!(status, 200, "{name}");
}

/// `plan --format json`: (exit code, items by database).
async fn plan(e: &Emulator, path: &std::path::Path, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut cmd = tool(e, &["--format", "json", "plan", path.to_str().unwrap()]);
    cmd.args(extra);
    let (code, stdout, stderr) = run(cmd).await;
    let plan: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (code, plan["items"].as_array().unwrap().clone(), stderr)
}

fn item<'a>(items: &'a [Value], name: &str) -> &'a Value {
    items.iter().find(|i| i["database"] == name).unwrap()
}

use common::finding_codes as codes;

fn reason(item: &Value) -> String {
    item["reasons"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_and_failed_instances_are_refused_before_anything_is_submitted() {
    let e = emulator(vec![
        settings(|s| s.state = "PROGRESSING".into()),
        settings(|s| s.state = "FAILURE".into()),
    ])
    .await;
    for name in ["a", "b", "c"] {
        upload(&e, name, writer::write(&BackupSpec::full(name))).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &manifest(
            &e,
            4,
            2,
            &[
                Db::api("a", 0, &["a.bak"]),
                Db::api("b", 1, &["b.bak"]),
                Db::sql("c", 0, &["c.bak"]),
            ],
        ),
    );
    let (code, items, _) = plan(&e, &path, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(item(&items, "a")), ["I001 refuse"]);
    assert!(
        reason(item(&items, "a"))
            .contains("I001: not ready: instance i0 (API) is busy (PROGRESSING); retry later"),
        "{}",
        reason(item(&items, "a"))
    );
    assert_eq!(codes(item(&items, "b")), ["I002 refuse"]);
    assert!(reason(item(&items, "b")).contains("is FAILURE"));
    // T-SQL cannot see the instance's state; the instance's API section
    // can, and is asked for the SQL path too.
    assert_eq!(codes(item(&items, "c")), ["I001 refuse"]);
    // An instance with SQL access only: its state cannot be checked.
    let sql_only_path = common::write(
        dir.path(),
        "sql-only.yaml",
        &sql_only(&std::fs::read_to_string(&path).unwrap()),
    );
    let (_, items, stderr) = plan(&e, &sql_only_path, &["--only", "c"]).await;
    assert_eq!(item(&items, "c")["verdict"], "ready", "{stderr}");
    let (code, _, stderr) = apply(&e, &["--only", "a", path.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stats(&e).await["instances"][&e.instance_ids[0]]["restore_submissions"],
        serde_json::json!({})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_must_exist_and_be_active_on_both_paths() {
    let e = emulator(vec![settings(|s| {
        s.users = vec!["importer".into(), "old_owner:LOCKED".into()];
    })])
    .await;
    for name in ["a", "b", "c", "d", "f"] {
        upload(&e, name, writer::write(&BackupSpec::full(name))).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(
        &e,
        4,
        2,
        &[
            Db::api("a", 0, &["a.bak"]),
            Db::sql("b", 0, &["b.bak"]),
            Db::api("c", 0, &["c.bak"]),
            Db::sql("d", 0, &["d.bak"]),
            Db::sql("f", 0, &["f.bak"]),
        ],
    )
    .replace("  - {name: c,", "  - {owner: Old_Owner, name: c,")
    .replace("  - {name: d,", "  - {owner: OLD_OWNER, name: d,")
    .replace("  - {name: f,", "  - {owner: Importer, name: f,");
    let text = text.replace(
        "databases:\n",
        "databases:\n  - {name: g, instance: i0, method: sql, files: [f.bak]}\n",
    );
    let text = emu::with_defaults(&text, "defaults: {timeout: 2m}");
    // The API path needs an owner: a and c name theirs.
    let text = text.replace("  - {name: a,", "  - {owner: app_owner, name: a,");
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, items, stderr) = plan(&e, &path, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(codes(item(&items, "a")), ["I004 refuse"]);
    assert!(
        reason(item(&items, "a"))
            .contains("the owner `app_owner` is not a user of instance i0 (API)")
    );
    assert_eq!(
        codes(item(&items, "b")),
        ["I005 info"],
        "no owner on the SQL path"
    );
    assert!(
        item(&items, "b")["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the login that runs it (importer)"),
        "{}",
        item(&items, "b")
    );
    assert_eq!(item(&items, "b")["verdict"], "ready");
    assert_eq!(codes(item(&items, "c")), ["I004 refuse"]);
    assert!(reason(item(&items, "c")).contains("is not active on instance i0 (API)"));
    assert_eq!(codes(item(&items, "d")), ["I004 refuse"], "SQL sees it too");
    assert_eq!(item(&items, "f")["verdict"], "ready", "names ignore case");
    // Without an owner the procedure's default applies: the emulator takes
    // the login when @owner_name is left out (a NULL would fail).
    let (code, stdout, stderr) = apply(&e, &["--only", "b", path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

/// A SQL login without VIEW ANY DATABASE sees only master, tempdb and the
/// databases it owns: a name another owner holds is invisible to it, and so
/// would the import's own progress be. `plan` refuses the SQL path there
/// (I009) instead of calling a taken name free; the API, which lists every
/// database, goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_login_that_cannot_see_every_database_is_refused() {
    let e = emulator(vec![settings(|s| s.view_any_database = false)]).await;
    for name in ["taken", "fresh", "by_api"] {
        upload(&e, name, writer::write(&BackupSpec::full(name))).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = common::write(
        dir.path(),
        "first.yaml",
        &manifest(&e, 1, 1, &[Db::api("taken", 0, &["taken.bak"])]),
    );
    let (code, stdout, stderr) = apply(&e, &[first.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // As SQL Server hides it from the login: owned by app_owner.
    let mut login = emu::sql(&e, 0, &e.credentials.sql_password).await.unwrap();
    let rows = login
        .simple_query("SELECT name FROM sys.databases")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let seen: Vec<&str> = rows.iter().filter_map(|r| r.get::<&str, _>(0)).collect();
    assert!(
        seen.contains(&"master") && !seen.contains(&"taken"),
        "{seen:?}"
    );

    let path = common::write(
        dir.path(),
        "m.yaml",
        &manifest(
            &e,
            4,
            2,
            &[
                Db::sql("taken", 0, &["taken.bak"]),
                Db::sql("fresh", 0, &["fresh.bak"]),
                Db::api("by_api", 0, &["by_api.bak"]),
            ],
        ),
    );
    let (code, items, stderr) = plan(&e, &path, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(codes(item(&items, "taken")), ["I009 refuse"]);
    assert_eq!(codes(item(&items, "fresh")), ["I009 refuse"]);
    assert!(
        reason(item(&items, "fresh"))
            .contains("`importer` of instance i0 (SQL) lacks VIEW ANY DATABASE"),
        "{}",
        item(&items, "fresh")
    );
    assert_eq!(item(&items, "by_api")["verdict"], "ready");
}

/// The SQL path cannot see an instance's state or storage; when the
/// instance's API refuses to answer, the SQL checks still stand and the log
/// says, by instance and request, what was not checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_api_that_refuses_leaves_the_sql_checks_standing() {
    let e = emulator(vec![settings(|_| {})]).await;
    upload(&e, "hr", writer::write(&BackupSpec::full("hr"))).await;
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &manifest(&e, 1, 1, &[Db::sql("hr", 0, &["hr.bak"])]),
    );
    let mut cmd = tool(&e, &["--format", "json", "plan", path.to_str().unwrap()]);
    cmd.env("STACKIT_SERVICE_ACCOUNT_TOKEN", "NOT-THE-TOKEN-0000");
    let (code, stdout, stderr) = run(cmd).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["items"][0]["verdict"], "ready", "{stdout}");
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("the API cannot be asked"))
        .collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(
        warned[0].contains("instance i0") && warned[0].contains("(GET the instance: "),
        "{stderr}"
    );
    assert!(
        warned[0].contains("state and storage are not checked"),
        "{stderr}"
    );
    assert!(!stderr.contains("NOT-THE-TOKEN-0000"), "{stderr}");
}

/// A backup written by SQL Server 2022 onto an instance of 2019, and a
/// 2025 one onto 2022: refused by name and number on both paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_newer_than_the_instance_are_refused_by_name_and_number() {
    let e = emulator(vec![
        settings(|s| s.version = "2019".into()),
        InstanceSettings::default(),
    ])
    .await;
    let mut y2022 = BackupSpec::full("y2022");
    y2022.version = (16, 0, 4135);
    upload(&e, "y2022", writer::write(&y2022)).await;
    upload(
        &e,
        "y2022s",
        writer::write(&BackupSpec {
            database_name: "y2022s".into(),
            ..y2022.clone()
        }),
    )
    .await;
    let mut y2025 = BackupSpec::full("y2025");
    y2025.version = (17, 0, 1000);
    upload(&e, "y2025", writer::write(&y2025)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &manifest(
            &e,
            4,
            2,
            &[
                Db::api("y2022", 0, &["y2022.bak"]),
                Db::sql("y2022s", 0, &["y2022s.bak"]),
                Db::api("y2025", 1, &["y2025.bak"]),
            ],
        ),
    );
    let (code, items, _) = plan(&e, &path, &[]).await;
    assert_eq!(code, 1);
    for name in ["y2022", "y2022s"] {
        assert_eq!(codes(item(&items, name)), ["I003 refuse"], "{name}");
        let why = reason(item(&items, name));
        assert!(
            why.contains("SQL Server 2022 (database version 957)")
                && why.contains("runs SQL Server 2019"),
            "{why}"
        );
    }
    let why = reason(item(&items, "y2025"));
    assert!(
        why.contains("B010") && why.contains("database version 998") && why.contains("2022"),
        "{why}"
    );
}

/// A compressed backup (small object) that claims `bytes` of data: the
/// capacity check counts the data, which a restore needs at least.
fn claiming(name: &str, bytes: u64) -> Vec<u8> {
    let mut mtf = writer::write(&BackupSpec::full(name));
    let scin = mtf.windows(4).position(|w| w == b"SCIN").unwrap();
    mtf[scin + 0x60..scin + 0x68].copy_from_slice(&bytes.to_le_bytes());
    writer::compress(&mtf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_that_do_not_fit_the_storage_are_refused_together() {
    let e = emulator(vec![
        settings(|s| s.storage_gb = 1),
        settings(|s| s.storage_gb = 1),
    ])
    .await;
    const GIB: u64 = 1 << 30;
    for name in ["a", "b", "c"] {
        upload(&e, name, claiming(name, GIB * 45 / 100)).await;
    }
    for name in ["d", "f"] {
        upload(&e, name, claiming(name, GIB * 45 / 100)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &manifest(
            &e,
            4,
            2,
            &[
                Db::api("a", 0, &["a.bak"]),
                Db::api("b", 0, &["b.bak"]),
                Db::api("c", 0, &["c.bak"]),
                Db::api("d", 1, &["d.bak"]),
                Db::api("f", 1, &["f.bak"]),
            ],
        ),
    );
    let (code, items, _) = plan(&e, &path, &[]).await;
    assert_eq!(code, 1);
    for name in ["a", "b", "c"] {
        assert_eq!(codes(item(&items, name)), ["I006 refuse"], "{name}");
        let why = reason(item(&items, name));
        assert!(
            why.contains(
                "instance i0 hold at least 1.3 GiB of data; its storage is 1 GB: they do not fit"
            ),
            "{why}"
        );
    }
    for name in ["d", "f"] {
        assert_eq!(codes(item(&items, name)), ["I007 warn"], "{name}");
        assert_eq!(item(&items, name)["verdict"], "ready");
        assert!(
            item(&items, name)["findings"][0]["message"]
                .as_str()
                .unwrap()
                .contains("(90 % of it)"),
            "{}",
            item(&items, name)
        );
    }
    let (code, items, _) = plan(&e, &path, &["--strict", "--only", "d", "--only", "f"]).await;
    assert_eq!(code, 1);
    assert!(
        items.iter().all(|i| i["verdict"] == "not_ready"),
        "{items:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_commas_are_refused_for_the_sql_path() {
    let e = emulator(vec![InstanceSettings::default()]).await;
    upload(&e, "x,y", writer::write(&BackupSpec::full("x"))).await;
    S3::new(&e)
        .put("listed/p,q.bak", writer::write(&BackupSpec::full("p")))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(&e, 1, 1, &[Db::sql("x", 0, &["x,y.bak"])]);
    let path = common::write(dir.path(), "m.yaml", &text);
    let (code, _, stderr) = run(tool(&e, &["validate", path.to_str().unwrap()])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("M001: `x,y.bak` contains a comma"),
        "{stderr}"
    );
    // The API path takes each file on its own: fine there.
    let api = manifest(&e, 1, 1, &[Db::api("x", 0, &["x,y.bak"])]);
    let path = common::write(dir.path(), "m.yaml", &api);
    let (code, _, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 0, "{stderr}");
    // Keys found under a prefix are checked by plan.
    let listed = manifest(&e, 1, 1, &[Db::sql("p", 0, &["x"])])
        .replace("files: [\"x\"]", "files: {prefix: listed/}");
    let path = common::write(dir.path(), "m.yaml", &listed);
    let (code, items, _) = plan(&e, &path, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(codes(&items[0]), ["M001 refuse"]);
}

/// The manifest without the instances' API sections: SQL access only.
fn sql_only(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("api:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What the plan cannot see fails late: an instance with SQL access only
/// cannot show its storage quota, so the restore is accepted, then fails
/// on the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_failure_is_reported_never_resubmitted_and_not_counted_on_rerun() {
    let e = emulator(vec![settings(|s| s.storage_gb = 1)]).await;
    upload(&e, "big", claiming("big", 3 << 30)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &sql_only(&manifest(&e, 1, 1, &[Db::sql("big", 0, &["big.bak"])])),
    );
    let m = path.to_str().unwrap();
    let report = dir.path().join("r.json");
    let (code, stdout, stderr) = apply(&e, &[m, "--report", report.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let s = stats(&e).await;
    let inst = &s["instances"][&e.instance_ids[0]];
    assert_eq!(inst["restore_submissions"]["big"], 1);
    assert!(
        inst["failed_restores"]["big"]
            .as_str()
            .unwrap()
            .contains("not enough space"),
        "{inst}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let record = &r["databases"][0];
    assert_eq!(record["outcome"], "failed", "{r}");
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .contains("without the database coming online"),
        "{r}"
    );
    // A rerun does not count it as imported: it plans it again (a failure
    // the service reported is worth another try once the cause is fixed),
    // and it fails again, once.
    let (code, stdout, _) = apply(&e, &[m]).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        !stdout.contains("done earlier") || stdout.contains("0 done earlier"),
        "{stdout}"
    );
    assert!(stdout.contains("0 online, 0 skipped, 1 failed"), "{stdout}");
    assert_eq!(
        stats(&e).await["instances"][&e.instance_ids[0]]["restore_submissions"]["big"],
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_databases_on_ten_instances_cost_one_instance_look_each() {
    let e = emulator(vec![InstanceSettings::default(); 10]).await;
    upload(&e, "shared", writer::write(&BackupSpec::full("shared"))).await;
    let dbs: Vec<String> = (0..1000).map(|i| format!("db{i:04}")).collect();
    let list: Vec<Db<'_>> = dbs
        .iter()
        .enumerate()
        .map(|(i, name)| {
            // Every instance gets both paths.
            if (i / 10) % 2 == 0 {
                Db::api(name, i % 10, &["shared.bak"])
            } else {
                Db::sql(name, i % 10, &["shared.bak"])
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "m.yaml", &manifest(&e, 8, 2, &list));
    let (_, items, stderr) = plan(&e, &path, &[]).await;
    assert_eq!(items.len(), 1000, "{stderr}");
    let s = stats(&e).await;
    for id in &e.instance_ids {
        let inst = &s["instances"][id];
        // API: one GET of the instance and one of the users; SQL: one query each.
        assert_eq!(inst["instance_requests"], 2, "{id}: {inst}");
        assert_eq!(inst["user_requests"], 2, "{id}: {inst}");
    }
}

/// A stand-in for the API that answers each restore with the status its
/// database's name asks for (`s400` gets 400; `s500` gets 500 once, then
/// 202), and counts the restore requests.
async fn service_answering_by_name() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use std::sync::{Arc, Mutex};
    let posts: Arc<Mutex<Vec<String>>> = Arc::default();
    let online: Arc<Mutex<Vec<String>>> = Arc::default();
    let scope = "/{version}/projects/{p}/regions/{r}/instances/{i}";
    let (posted, accepted, listed) = (Arc::clone(&posts), Arc::clone(&online), Arc::clone(&online));
    let described = Arc::clone(&online);
    let app = axum::Router::new()
        .route(scope, get(|| async {
            Json(serde_json::json!({"id": "i", "name": "n", "status": "READY", "version": "2022", "storage": {"class": "c", "size": 100}}))
        }))
        .route(&format!("{scope}/users"), get(|| async {
            Json(serde_json::json!({"users": [{"id": 1, "username": "app_owner", "status": "ACTIVE"}], "pagination": {"page": 1, "size": 100, "totalPages": 1, "totalRows": 1, "sort": "id.asc"}}))
        }))
        .route(&format!("{scope}/restore-jobs"), get(|| async { Json(serde_json::json!({"runningRestores": []})) }))
        .route(&format!("{scope}/databases"), get(move || {
            let names = listed.lock().unwrap().clone();
            async move {
                let list: Vec<Value> = names.iter().enumerate().map(|(i, n)| serde_json::json!({"id": i + 5, "name": n, "owner": "app_owner", "created": "2026-11-30T10:00:00Z"})).collect();
                Json(serde_json::json!({"databases": list, "pagination": {"page": 1, "size": 100, "totalPages": 1, "totalRows": names.len(), "sort": "index.asc"}}))
            }
        }))
        // What the checks after an import ask: the database's owner,
        // collation and level (GetDatabaseResponse).
        .route(&format!("{scope}/databases/{{name}}"), get(move |axum::extract::Path(p): axum::extract::Path<std::collections::HashMap<String, String>>| {
            let known = described.lock().unwrap().contains(&p["name"]);
            async move {
                if known {
                    Json(serde_json::json!({"id": 5, "name": p["name"], "owner": "app_owner", "collationName": "SQL_Latin1_General_CP1_CI_AS", "compatibilityLevel": 160})).into_response()
                } else {
                    StatusCode::NOT_FOUND.into_response()
                }
            }
        }))
        .route(&format!("{scope}/restores"), post(move |Json(body): Json<Value>| {
            let name = body["database_name"].as_str().unwrap_or_default().to_owned();
            let mut posts = posted.lock().unwrap();
            let earlier = posts.iter().filter(|p| **p == name).count();
            posts.push(name.clone());
            let status: u16 = match name.trim_start_matches('s').parse() {
                Ok(500) if earlier > 0 => 202,
                Ok(code) => code,
                Err(_) => 400,
            };
            if status == 202 {
                accepted.lock().unwrap().push(name.clone());
            }
            async move {
                let code = StatusCode::from_u16(status).unwrap();
                if status == 202 {
                    code.into_response()
                } else {
                    (code, Json(serde_json::json!({"code": status, "message": format!("answer {status} for {name}"), "traceId": "t"}))).into_response()
                }
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), posts)
}

use axum::response::IntoResponse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_restore_answer_the_documents_list_is_handled_by_what_it_means() {
    let e = emulator(vec![InstanceSettings::default()]).await;
    let names = ["s202", "s400", "s401", "s403", "s404", "s500", "s501"];
    for name in names {
        upload(&e, name, writer::write(&BackupSpec::full(name))).await;
    }
    let (api, posts) = service_answering_by_name().await;
    let dbs: Vec<Db<'_>> = names
        .iter()
        .map(|n| Db::api(n, 0, &[&format!("{n}.bak")]))
        .collect();
    let text = manifest(&e, 8, 8, &dbs).replace("${STACKIT_API_ENDPOINT}", &api);
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "m.yaml", &text);
    let report = dir.path().join("r.json");
    let m = path.to_str().unwrap();
    // 401 alone: it ends every later request of the run, by design.
    for only in [
        vec!["s202", "s400", "s403", "s404", "s500", "s501"],
        vec!["s401"],
    ] {
        let mut args = vec![
            "apply",
            "--yes",
            "--no-progress",
            m,
            "--report",
            report.to_str().unwrap(),
        ];
        args.extend(only.iter().flat_map(|n| ["--only", n]));
        let (code, stdout, stderr) = run(tool(&e, &args)).await;
        assert_eq!(code, 1, "{stdout}\n{stderr}");
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        for record in r["databases"].as_array().unwrap() {
            let name = record["database"].as_str().unwrap();
            let expected = if matches!(name, "s202" | "s500") {
                "online"
            } else {
                "failed"
            };
            assert_eq!(record["outcome"], expected, "{name}: {record}");
            if expected == "failed" {
                let code = name.trim_start_matches('s');
                assert!(
                    record["reason"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("HTTP {code}")),
                    "{name}: {record}"
                );
            }
        }
    }
    let posts = posts.lock().unwrap().clone();
    for name in names {
        let n = posts.iter().filter(|p| **p == name).count();
        let expected = if name == "s500" { 2 } else { 1 };
        assert_eq!(n, expected, "{name} was posted {n} times: {posts:?}");
    }
}

/// The issue's acceptance run: examples/migration.yaml, pointed at an
/// emulator whose prod instance is busy and whose reporting instance lacks
/// a user and has no room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_example_shows_each_instance_refusal_with_its_code() {
    let e = emulator(vec![
        settings(|s| s.state = "PROGRESSING".into()),
        settings(|s| {
            s.storage_gb = 0;
            s.users = vec!["app_owner".into(), "importer".into()];
        }),
    ])
    .await;
    let s3 = S3::new(&e);
    let put = |key: &'static str, spec: BackupSpec| {
        let s3 = &s3;
        async move {
            assert_eq!(
                s3.put(key, writer::write(&spec)).await.status(),
                200,
                "{key}"
            )
        }
    };
    for spec in BackupSpec::striped("sales", 3) {
        let key: &'static str = [
            "sales/2026-11-01/sales_1.bak",
            "sales/2026-11-01/sales_2.bak",
            "sales/2026-11-01/sales_3.bak",
        ][usize::from(spec.family_sequence) - 1];
        put(key, spec).await;
    }
    for spec in BackupSpec::striped("billing", 2) {
        let key: &'static str = ["billing/billing_1.bak", "billing/billing_2.bak"]
            [usize::from(spec.family_sequence) - 1];
        put(key, spec).await;
    }
    put("crm/crm_full.bak", BackupSpec::full("crm")).await;
    put("hr/2026-11-01/hr.bak", BackupSpec::full("hr")).await;
    put("dwh/staging/dwh.bak", BackupSpec::full("dwh_staging")).await;

    let example =
        std::fs::read_to_string(common::project_root().join("examples/migration.yaml")).unwrap();
    let s3_host = e.s3.to_string();
    let text = example
        .replace(
            "https://object.storage.eu01.onstackit.cloud",
            &e.s3_endpoint(),
        )
        .replace("object.storage.eu01.onstackit.cloud", &s3_host)
        .replace("migration-backups", sqlflex_import::emulator::BUCKET)
        .replace(
            "      service_account_key_path:",
            "      endpoint: ${STACKIT_API_ENDPOINT}\n      service_account_key_path:",
        )
        .replace(
            "      api_version: v3\n",
            "      api_version: v3\n      endpoint: ${STACKIT_API_ENDPOINT}\n",
        )
        .replace(
            "host: reporting.sqlserver.eu01.onstackit.cloud",
            "host: 127.0.0.1",
        )
        .replace(
            "port: 1433",
            &format!("port: {}\n      encrypt: false", e.tds[1].port()),
        )
        .replace("user: importer", "user: ${SQL_USER}");
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "migration.yaml", &text);
    let secret = common::write(dir.path(), "s3_secret", &e.credentials.s3_secret_key);
    let mut cmd = tool(&e, &["plan", path.to_str().unwrap()]);
    cmd.env("PROD_INSTANCE_ID", &e.instance_ids[0])
        .env("REPORTING_INSTANCE_ID", &e.instance_ids[1])
        .env("S3_SECRET_KEY_FILE", &secret);
    let (code, stdout, stderr) = run(cmd).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    for (database, expected) in [
        (
            "sales",
            "I001: not ready: instance prod (API) is busy (PROGRESSING); retry later",
        ),
        ("billing", "I001"),
        ("crm", "I001"),
        (
            "dwh_staging",
            "I004: the owner `etl_owner` is not a user of instance reporting (SQL)",
        ),
        (
            "hr",
            "I006: the imports planned onto instance reporting hold at least",
        ),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(database))
            .unwrap_or_else(|| panic!("{database}: {stdout}"));
        assert!(line.contains(expected), "{database}: {line}");
    }
}

/// `emulator --instances-file`: each instance as the file says, in both
/// API versions' words; a bad state is refused with exit 2.
#[test]
fn the_emulator_takes_its_instances_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "instances.yaml",
        "instances:\n  - {state: PROGRESSING, storage_gb: 7, users: [a, \"b:LOCKED\"]}\n  - {version: \"2019\"}\n",
    );
    let (child, vars) = common::start_emulator(
        common::bin()
            .args([
                "emulator",
                "--instances",
                "2",
                "--print-env",
                "--instances-file",
            ])
            .arg(&file),
    );
    assert!(vars.contains_key("STACKIT_INSTANCE_IDS"), "{vars:?}");
    let get = |version: &str, instance: usize, path: &str| -> Value {
        let ids: Vec<&str> = vars["STACKIT_INSTANCE_IDS"].split(',').collect();
        let url = format!(
            "{}/{version}/projects/{}/regions/eu01/instances/{}{path}",
            vars["STACKIT_API_ENDPOINT"], vars["STACKIT_PROJECT_ID"], ids[instance]
        );
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(&vars["STACKIT_SERVICE_ACCOUNT_TOKEN"])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    };
    let v3 = get("v3", 0, "");
    assert_eq!(
        (v3["state"].as_str(), v3["storage"]["size"].as_u64()),
        (Some("PROGRESSING"), Some(7))
    );
    assert_eq!(get("v3alpha1", 0, "")["status"], "PROGRESSING");
    assert_eq!(get("v3", 1, "")["version"], "2019");
    let users = get("v3", 0, "/users?page=1&size=1");
    assert_eq!(users["users"][0]["username"], "a");
    assert_eq!(users["pagination"]["totalPages"], 2);
    assert_eq!(get("v3", 0, "/users/2")["status"], "LOCKED");
    common::stop_emulator(child);

    let (code, _, stderr) =
        common::run(common::bin().args(["emulator", "--instance-state", "BROKEN"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("instance state `BROKEN` is not one of READY"),
        "{stderr}"
    );
}

/// Refusals and failures are typed end to end: the plan's findings carry
/// the T and S codes, and a late failure carries its R code into NDJSON,
/// the JSON report and JUnit's failure type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_failures_carry_their_codes_end_to_end() {
    let e = emulator(vec![settings(|s| s.storage_gb = 1)]).await;
    upload(&e, "ok", writer::write(&BackupSpec::full("ok"))).await;
    upload(&e, "big", claiming("big", 3 << 30)).await;
    let dir = tempfile::tempdir().unwrap();
    let dbs = [
        Db::sql("ok", 0, &["ok.bak"]),
        Db::sql("big", 0, &["big.bak"]),
        Db::sql("gone", 0, &["nowhere.bak"]),
    ];
    let path = common::write(dir.path(), "m.yaml", &sql_only(&manifest(&e, 1, 1, &dbs)));
    let m = path.to_str().unwrap();
    let (code, _, stderr) = apply(&e, &["--only", "ok", m]).await;
    assert_eq!(code, 0, "{stderr}");

    // This state imported `ok`: done. Another state folder finds it taken.
    let (_, items, _) = plan(&e, &path, &[]).await;
    assert_eq!(item(&items, "ok")["verdict"], "done");
    let other = dir.path().join("other-state");
    let (code, items, stderr) = plan(&e, &path, &["--state", other.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(codes(item(&items, "ok")), ["T001 refuse"]);
    assert_eq!(codes(item(&items, "gone")), ["S002 refuse"]);
    assert!(reason(item(&items, "gone")).contains("S002: nowhere.bak does not exist"));
    assert_eq!(item(&items, "big")["verdict"], "ready");

    let (report, junit) = (dir.path().join("r.json"), dir.path().join("r.xml"));
    let args = [
        "--format",
        "json",
        "apply",
        "--yes",
        "--only",
        "big",
        m,
        "--report",
        report.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ];
    let (code, stdout, stderr) = run(tool(&e, &args)).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let failed = emu::events(&stdout, "failed");
    assert_eq!(failed.len(), 1, "{stdout}");
    assert_eq!(failed[0]["failure"]["code"], "R006", "{stdout}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["databases"][0]["code"], "R006", "{r}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"type="R006""#), "{xml}");
}

/// Every instance problem of a database is said, not only the first: with
/// the owner missing and the storage too small, each database names both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_problem_of_a_database_is_listed() {
    let e = emulator(vec![settings(|s| {
        s.storage_gb = 1;
        s.users = vec!["importer".into()];
    })])
    .await;
    const GIB: u64 = 1 << 30;
    for name in ["a", "b", "c"] {
        upload(&e, name, claiming(name, GIB * 45 / 100)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let dbs = [
        Db::api("a", 0, &["a.bak"]),
        Db::api("b", 0, &["b.bak"]),
        Db::api("c", 0, &["c.bak"]),
    ];
    let path = common::write(dir.path(), "m.yaml", &manifest(&e, 4, 2, &dbs));
    let (code, items, _) = plan(&e, &path, &[]).await;
    assert_eq!(code, 1);
    for name in ["a", "b", "c"] {
        assert_eq!(
            codes(item(&items, name)),
            ["I004 refuse", "I006 refuse"],
            "{name}: {items:?}"
        );
    }
}
