//! The emulator, started in-process and driven through its three doors with
//! real clients: reqwest for the REST API, rusty-s3 for S3, tiberius for TDS.

use crate::common;
use crate::common::emu;

use emu::{S3, api, eventually, restore_body, sql, start, stats};
use serde_json::{Value, json};
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::Emulator;
use std::time::Duration;

const FAST: Duration = Duration::from_millis(400);
const RUNNING: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(20);

/// The real striped sample when ../shared is there, else a generated one.
fn striped_backup() -> (String, Vec<Vec<u8>>) {
    match common::samples() {
        Some(dir) => (
            "RestoreTimeStripe".into(),
            [
                "restoretimestripe_stripe1of2.bak",
                "restoretimestripe_stripe2of2.bak",
            ]
            .iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .collect(),
        ),
        None => (
            "Generated".into(),
            BackupSpec::striped("Generated", 2)
                .iter()
                .map(writer::write)
                .collect(),
        ),
    }
}

async fn upload_stripes(e: &Emulator, prefix: &str) -> Vec<String> {
    let s3 = S3::new(e);
    let (_, stripes) = striped_backup();
    let mut uris = Vec::new();
    for (i, bytes) in stripes.into_iter().enumerate() {
        let key = format!("{prefix}/stripe_{}.bak", i + 1);
        assert_eq!(s3.put(&key, bytes).await.status(), 200);
        uris.push(S3::uri(e, &key));
    }
    uris
}

async fn post_restore(e: &Emulator, version: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(api(e, 0, version, "/restores"))
        .bearer_auth(&e.credentials.token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn get_json(e: &Emulator, url: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(&e.credentials.token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_striped_backup_imports_through_the_api() {
    // Long enough that the "still running" checks hold on a loaded machine.
    let e = start(RUNNING).await;
    let files = upload_stripes(&e, "api").await;
    let response = post_restore(&e, "v3alpha1", &restore_body(&e, "StripedViaApi", &files)).await;
    assert_eq!(response.status(), 202);
    assert!(
        response.text().await.unwrap().is_empty(),
        "202 has an empty body"
    );

    // While it runs it is a restore job with a percent, and not a database yet.
    let (status, jobs) = get_json(&e, &api(&e, 0, "v3alpha1", "/restore-jobs")).await;
    assert_eq!(status, 200);
    let job = &jobs["runningRestores"][0];
    assert_eq!(job["database_name"], "StripedViaApi");
    assert_eq!(job["command"], "RESTORE DATABASE");
    assert!(job["percent_complete"].as_u64().unwrap() < 100);
    for key in ["start_time", "estimated_completion_time"] {
        assert!(job[key].as_str().unwrap().len() == 19, "{job}");
    }
    assert_eq!(
        get_json(&e, &api(&e, 0, "v3alpha1", "/databases/StripedViaApi"))
            .await
            .0,
        404
    );

    let online = eventually(WAIT, || async {
        let (status, db) = get_json(&e, &api(&e, 0, "v3", "/databases/StripedViaApi")).await;
        (status == 200).then_some(db)
    })
    .await
    .expect("the database comes online");
    assert_eq!(online["owner"], "app_owner");
    let (_, jobs) = get_json(&e, &api(&e, 0, "v3", "/restore-jobs")).await;
    assert_eq!(jobs["runningRestores"], json!([]));

    // The same database is visible through the SQL door.
    let mut client = sql(&e, 0, &e.credentials.sql_password).await.unwrap();
    let rows = client
        .query(
            "SELECT name, state_desc FROM sys.databases WHERE name = @P1",
            &[&"StripedViaApi"],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<&str, _>("state_desc"), Some("ONLINE"));

    let s = stats(&e).await;
    let inst = &s["instances"][&e.instance_ids[0]];
    assert_eq!(inst["databases"], json!(["StripedViaApi"]));
    assert_eq!(inst["restore_submissions"]["StripedViaApi"], 1);
    assert_eq!(inst["max_concurrent_restores"], 1);
    assert_eq!(inst["failed_restores"], json!({}));
}

#[tokio::test]
async fn a_striped_backup_imports_through_the_procedure() {
    let e = start(RUNNING).await;
    let files = upload_stripes(&e, "sql").await;
    let mut client = sql(&e, 0, &e.credentials.sql_password).await.unwrap();
    client
        .execute(
            "EXEC [msdb].[stackit].[import_database] @database_name = @P1, @owner_name = @P2, \
             @s3_url = @P3, @s3_access_key_id = @P4, @s3_secret_key_id = @P5",
            &[
                &"StripedViaSql",
                &"app_owner",
                &files.join(","),
                &e.credentials.s3_access_key.as_str(),
                &e.credentials.s3_secret_key.as_str(),
            ],
        )
        .await
        .unwrap();

    // RESTORING in sys.databases and in the API's restore jobs while it runs.
    async fn state(client: &mut emu::Sql) -> Vec<tiberius::Row> {
        let stream = client
            .query(
                "SELECT name, state_desc, database_id FROM sys.databases WHERE name = @P1",
                &[&"StripedViaSql"],
            )
            .await
            .unwrap();
        stream.into_first_result().await.unwrap()
    }
    let rows = state(&mut client).await;
    assert_eq!(rows[0].get::<&str, _>("state_desc"), Some("RESTORING"));
    let (_, jobs) = get_json(&e, &api(&e, 0, "v3alpha1", "/restore-jobs")).await;
    assert_eq!(jobs["runningRestores"][0]["database_name"], "StripedViaSql");

    // The probe needs the client mutably on every call: lend it through a lock.
    let shared = tokio::sync::Mutex::new(client);
    let lent = &shared;
    let online = eventually(Duration::from_secs(10), || async move {
        let rows = state(&mut *lent.lock().await).await;
        (rows[0].get::<&str, _>("state_desc") == Some("ONLINE")).then_some(())
    })
    .await;
    assert!(online.is_some(), "the database comes online");
    let mut client = shared.into_inner();
    let id = client
        .query("SELECT DB_ID(@P1)", &[&"StripedViaSql"])
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    assert!(
        id.get::<i32, _>(0).unwrap() > 4,
        "after the system databases"
    );
    let none = client
        .query("SELECT DB_ID(N'nope')", &[])
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(none.get::<i32, _>(0), None);

    let (status, db) = get_json(&e, &api(&e, 0, "v3alpha1", "/databases/StripedViaSql")).await;
    assert_eq!((status, db["owner"].as_str()), (200, Some("app_owner")));
    let day = || {
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 86_400) as i32
    };
    let day_before = day();
    let created = client
        .query(
            "SELECT create_date FROM sys.databases WHERE name = @P1",
            &[&"StripedViaSql"],
        )
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    let Some(tiberius::ColumnData::DateTime(Some(date))) = created.into_iter().next() else {
        panic!("a DATETIME")
    };
    // Between the days before and after the query: right across midnight too.
    let days = date.days() - 25_567;
    assert!(
        (day_before..=day()).contains(&days),
        "DATETIME counts days from 1900-01-01: {}",
        date.days()
    );

    // A second import of the same name: SQL Server's error 1801.
    let again = client
        .execute(
            "EXEC [msdb].[stackit].[import_database] @database_name = @P1, @s3_url = @P2, @s3_access_key_id = @P3, @s3_secret_key_id = @P4",
            &[&"stripedviasql", &files.join(","), &e.credentials.s3_access_key.as_str(), &e.credentials.s3_secret_key.as_str()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&again, tiberius::error::Error::Server(t) if t.code() == 1801),
        "{again:?}"
    );
    assert!(again.to_string().contains("already exists"), "{again}");
    assert_eq!(
        stats(&e).await["instances"][&e.instance_ids[0]]["restore_submissions"]["StripedViaSql"],
        1
    );
}

#[tokio::test]
async fn the_api_refuses_what_the_service_refuses() {
    let e = start(Duration::from_secs(5)).await;
    let http = reqwest::Client::new();
    let url = api(&e, 0, "v3alpha1", "/databases");

    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let wrong = http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    for key in ["code", "message", "type", "traceId"] {
        assert!(body.get(key).is_some(), "Error body has {key}: {body}");
    }
    let unknown_instance = url.replace(&e.instance_ids[0], "00000000-0000-0000-0000-000000000000");
    assert_eq!(
        http.get(&unknown_instance)
            .bearer_auth(&e.credentials.token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let unknown_project = url.replace(&e.project_id, "11111111-0000-0000-0000-000000000000");
    assert_eq!(
        http.get(&unknown_project)
            .bearer_auth(&e.credentials.token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(url.replace("v3alpha1", "v9"))
            .bearer_auth(&e.credentials.token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let malformed = http
        .post(api(&e, 0, "v3alpha1", "/restores"))
        .bearer_auth(&e.credentials.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    let files = upload_stripes(&e, "refusals").await;
    let mut body = restore_body(&e, "x", &files);
    body["source"]["s3_details"]
        .as_object_mut()
        .unwrap()
        .remove("s3_files");
    let missing = post_restore(&e, "v3alpha1", &body).await;
    assert_eq!(missing.status(), 422);
    let v: Value = missing.json().await.unwrap();
    assert_eq!(v["code"], 422);
    assert_eq!(v["validation"][0]["field"], "source.s3_details.s3_files");

    // SQL Server's rule for a name, not the tool's: 1 to 128 characters,
    // no control character.
    for bad in ["line\nbreak".to_owned(), "x".repeat(129)] {
        let refused = post_restore(&e, "v3alpha1", &restore_body(&e, &bad, &files)).await;
        assert_eq!(refused.status(), 400, "{bad:?}");
    }

    // The same name while it is being restored, and again once it exists.
    assert_eq!(
        post_restore(&e, "v3alpha1", &restore_body(&e, "Twice", &files))
            .await
            .status(),
        202
    );
    let conflict = post_restore(&e, "v3alpha1", &restore_body(&e, "twice", &files)).await;
    assert_eq!(conflict.status(), 409);
    assert!(conflict.text().await.unwrap().contains("being restored"));
    let s = stats(&e).await;
    assert_eq!(
        s["instances"][&e.instance_ids[0]]["restore_submissions"],
        json!({"Twice": 1}),
        "refusals are not submissions"
    );
}

#[tokio::test]
async fn restores_of_bad_backups_fail_with_a_queryable_reason() {
    let e = start(FAST).await;
    let s3 = S3::new(&e);
    let mut locked = BackupSpec::full("locked");
    locked.media_password = true;
    let mut sealed = BackupSpec::full("sealed");
    sealed.encrypted = true;
    let mut diff = BackupSpec::full("diffonly");
    diff.backup_type = sqlflex_import::backup::BackupType::Differential;
    let stripes = BackupSpec::striped("partial", 3);
    for (key, spec) in [
        ("locked.bak", &locked),
        ("sealed.bak", &sealed),
        ("diff.bak", &diff),
        ("partial_1.bak", &stripes[0]),
        ("partial_3.bak", &stripes[2]),
    ] {
        assert_eq!(s3.put(key, writer::write(spec)).await.status(), 200);
    }
    s3.put("text.bak", b"not a backup at all".to_vec()).await;
    let good = S3::uri(&e, "partial_1.bak");

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "Locked",
            restore_body(&e, "Locked", &[S3::uri(&e, "locked.bak")]),
            "password protected",
        ),
        (
            "Sealed",
            restore_body(&e, "Sealed", &[S3::uri(&e, "sealed.bak")]),
            "error 33111",
        ),
        (
            "DiffOnly",
            restore_body(&e, "DiffOnly", &[S3::uri(&e, "diff.bak")]),
            "error 3117",
        ),
        (
            "Partial",
            restore_body(&e, "Partial", &[good.clone(), S3::uri(&e, "partial_3.bak")]),
            "3 media families but only 2 are provided",
        ),
        (
            "Missing",
            restore_body(&e, "Missing", &[S3::uri(&e, "nope.bak")]),
            "Cannot open backup device",
        ),
        (
            "Garbage",
            restore_body(&e, "Garbage", &[S3::uri(&e, "text.bak")]),
            "incorrectly formed",
        ),
        (
            "Elsewhere",
            restore_body(
                &e,
                "Elsewhere",
                &["s3://s3.example.com/sqlflex-backups/partial_1.bak".into()],
            ),
            "not reachable",
        ),
        (
            "WrongSecret",
            {
                let mut b = restore_body(&e, "WrongSecret", std::slice::from_ref(&good));
                b["source"]["s3_details"]["s3_access_secret"] = json!("wrong");
                b
            },
            "Access denied",
        ),
    ];
    for (name, body, _) in &cases {
        assert_eq!(
            post_restore(&e, "v3", body).await.status(),
            202,
            "{name} is accepted, then fails"
        );
    }
    let failed = eventually(WAIT, || async {
        let s = stats(&e).await;
        let failed = s["instances"][&e.instance_ids[0]]["failed_restores"].clone();
        (failed.as_object().unwrap().len() == cases.len()).then_some(failed)
    })
    .await
    .expect("every bad restore fails");
    for (name, _, reason) in &cases {
        let text = failed[name].as_str().unwrap();
        assert!(text.contains(reason), "{name}: {text}");
    }
    let (_, list) = get_json(&e, &api(&e, 0, "v3", "/databases")).await;
    assert_eq!(list["databases"], json!([]), "no database appears");
    let (_, jobs) = get_json(&e, &api(&e, 0, "v3", "/restore-jobs")).await;
    assert_eq!(jobs["runningRestores"], json!([]));
}

#[tokio::test]
async fn database_lists_are_paginated_and_sorted() {
    let e = start(Duration::ZERO).await;
    let s3 = S3::new(&e);
    for i in 0..25 {
        let name = format!("db_{i:02}");
        s3.put(
            &format!("{name}.bak"),
            writer::write(&BackupSpec::full(&name)),
        )
        .await;
        assert_eq!(
            post_restore(
                &e,
                "v3alpha1",
                &restore_body(&e, &name, &[S3::uri(&e, &format!("{name}.bak"))])
            )
            .await
            .status(),
            202
        );
    }
    eventually(WAIT, || async {
        (stats(&e).await["instances"][&e.instance_ids[0]]["databases"]
            .as_array()
            .unwrap()
            .len()
            == 25)
            .then_some(())
    })
    .await
    .expect("all 25 online");
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (status, v) = get_json(
            &e,
            &api(
                &e,
                0,
                "v3alpha1",
                &format!("/databases?page={page}&size=10&sort=database_name.desc"),
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            v["pagination"],
            json!({"page": page, "size": 10, "sort": "database_name.desc", "totalRows": 25, "totalPages": 3})
        );
        seen.extend(
            v["databases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_owned()),
        );
    }
    let mut expected: Vec<String> = (0..25).map(|i| format!("db_{i:02}")).collect();
    expected.reverse();
    assert_eq!(seen, expected);
    assert_eq!(
        get_json(&e, &api(&e, 0, "v3alpha1", "/databases?size=0"))
            .await
            .0,
        400
    );
    assert_eq!(
        get_json(&e, &api(&e, 0, "v3alpha1", "/databases?sort=colour.asc"))
            .await
            .0,
        400
    );

    let deleted = reqwest::Client::new()
        .delete(api(&e, 0, "v3", "/databases/db_00"))
        .bearer_auth(&e.credentials.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    assert_eq!(
        get_json(&e, &api(&e, 0, "v3", "/databases/db_00")).await.0,
        404
    );
    // The documents name the field `state` in v3 and `status` in v3alpha1.
    let (status, instance) = get_json(&e, &api(&e, 0, "v3", "")).await;
    assert_eq!((status, instance["state"].as_str()), (200, Some("READY")));
    assert!(instance.get("status").is_none(), "{instance}");
    let (status, instance) = get_json(&e, &api(&e, 0, "v3alpha1", "")).await;
    assert_eq!((status, instance["status"].as_str()), (200, Some("READY")));
}

/// With a lockout policy, failed logins in a row lock the login: then even
/// the right password is refused, with SQL Server's 18486. An accepted
/// login in between starts the count again.
#[tokio::test]
async fn the_sql_door_locks_a_login_after_failures_in_a_row() {
    let e = emu::start_with(sqlflex_import::emulator::Config {
        lockout_after: Some(2),
        ..Default::default()
    })
    .await;
    let password = e.credentials.sql_password.clone();
    let code = |r: tiberius::Result<emu::Sql>| match r {
        Ok(_) => 0,
        Err(tiberius::error::Error::Server(t)) => t.code(),
        Err(other) => panic!("{other:?}"),
    };
    assert_eq!(code(sql(&e, 0, "wrong").await), 18456);
    assert_eq!(
        code(sql(&e, 0, &password).await),
        0,
        "one failure is not two in a row"
    );
    assert_eq!(code(sql(&e, 0, "wrong").await), 18456);
    assert_eq!(code(sql(&e, 0, "wrong").await), 18456);
    let locked = sql(&e, 0, &password).await.unwrap_err();
    assert!(
        matches!(&locked, tiberius::error::Error::Server(t)
            if t.code() == 18486 && t.message().contains("locked out")),
        "{locked:?}"
    );
    let s = stats(&e).await;
    assert_eq!(
        s["instances"][&e.instance_ids[0]]["locked_out"], true,
        "{s}"
    );
    assert_eq!(
        s["instances"][&e.instance_ids[0]]["failed_logins"], 4,
        "{s}"
    );
    // The policy holds per server: the other instance's login is not locked.
    assert_eq!(code(sql(&e, 1, &password).await), 0);
}

#[tokio::test]
async fn the_sql_door_answers_errors_and_keeps_the_connection() {
    let e = start(FAST).await;
    let wrong = sql(&e, 0, "not the password").await.unwrap_err();
    assert!(
        matches!(&wrong, tiberius::error::Error::Server(t) if t.code() == 18456),
        "{wrong:?}"
    );

    let mut client = sql(&e, 1, &e.credentials.sql_password).await.unwrap();
    let version = client
        .simple_query("SELECT @@VERSION")
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    assert!(
        version
            .get::<&str, _>(0)
            .unwrap()
            .contains("SQL Server 2022")
    );
    let unsupported = client.simple_query("DROP TABLE sales").await.unwrap_err();
    assert!(
        unsupported
            .to_string()
            .contains("does not support this statement: DROP TABLE sales"),
        "{unsupported}"
    );
    let missing = client
        .execute(
            "EXEC [msdb].[stackit].[import_database] @database_name = @P1",
            &[&"x"],
        )
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("expects parameter '@s3_url'"),
        "{missing}"
    );
    let one = client
        .simple_query("SELECT 1")
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        one.get::<i32, _>(0),
        Some(1),
        "the connection survives errors"
    );

    // Literal arguments work too, as a DBA would type them; a failure is asynchronous.
    client
        .simple_query(format!(
            "EXECUTE msdb.stackit.import_database N'Literal', NULL, N'{}', N'{}', N'wrong-secret'",
            S3::uri(&e, "x.bak"),
            e.credentials.s3_access_key
        ))
        .await
        .unwrap();
    let failed = eventually(WAIT, || async {
        stats(&e).await["instances"][&e.instance_ids[1]]["failed_restores"]["Literal"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(failed.unwrap().contains("Access denied"));
    let status_requests = stats(&e).await["instances"][&e.instance_ids[1]]["status_requests"]
        .as_u64()
        .unwrap();
    client
        .query("SELECT name FROM sys.databases", &[])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    client
        .query("SELECT DB_ID(@P1)", &[&"x"])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(
        stats(&e).await["instances"][&e.instance_ids[1]]["status_requests"]
            .as_u64()
            .unwrap(),
        status_requests + 2
    );
}

#[tokio::test]
async fn s3_checks_signatures_and_serves_ranges_lists_and_multipart() {
    let e = start(FAST).await;
    let s3 = S3::new(&e);
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(s3.put("dir/a.bak", body.clone()).await.status(), 200);

    let wrong = S3::with_secret(&e, "wrong-secret");
    assert_eq!(wrong.get("dir/a.bak", None).await.status(), 403);
    assert_eq!(wrong.put("dir/b.bak", vec![1]).await.status(), 403);

    let head = s3.head("dir/a.bak").await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "100000");
    let part = s3.get("dir/a.bak", Some("bytes=10-19")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &body[10..20]);
    assert_eq!(s3.head("dir/missing.bak").await.status(), 404);

    for i in 0..5 {
        s3.put(&format!("list/{i}.bak"), vec![i]).await;
    }
    let (first, token) = s3.list("list/", 2, None).await;
    assert_eq!(first, ["list/0.bak", "list/1.bak"]);
    let (second, token) = s3.list("list/", 2, token.as_deref()).await;
    assert_eq!(second, ["list/2.bak", "list/3.bak"]);
    let (third, token) = s3.list("list/", 2, token.as_deref()).await;
    assert_eq!((third, token), (vec!["list/4.bak".to_owned()], None));

    // Multipart upload, as large backups are uploaded.
    use rusty_s3::S3Action;
    let create = s3
        .bucket
        .create_multipart_upload(Some(&s3.credentials), "big.bak");
    let text = s3
        .http
        .post(create.sign(emu::SIGN_FOR))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let upload = rusty_s3::actions::CreateMultipartUpload::parse_response(&text).unwrap();
    let part_size = 5 * 1024 * 1024;
    let data: Vec<u8> = (0..part_size + 1000).map(|i| (i % 253) as u8).collect();
    let mut etags = Vec::new();
    for (n, chunk) in data.chunks(part_size).enumerate() {
        let url = s3
            .bucket
            .upload_part(
                Some(&s3.credentials),
                "big.bak",
                n as u16 + 1,
                upload.upload_id(),
            )
            .sign(emu::SIGN_FOR);
        let r = s3.http.put(url).body(chunk.to_vec()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        etags.push(r.headers()["etag"].to_str().unwrap().to_owned());
    }
    let complete = s3.bucket.complete_multipart_upload(
        Some(&s3.credentials),
        "big.bak",
        upload.upload_id(),
        etags.iter().map(String::as_str),
    );
    let url = complete.sign(emu::SIGN_FOR);
    assert_eq!(
        s3.http
            .post(url)
            .body(complete.body())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        s3.get("big.bak", None).await.bytes().await.unwrap().len(),
        data.len()
    );

    assert_eq!(s3.delete("dir/a.bak").await.status(), 204);
    assert_eq!(s3.head("dir/a.bak").await.status(), 404);
}

#[tokio::test]
async fn the_key_flow_issues_tokens_the_api_accepts() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let e = start(FAST).await;
    let key: Value = serde_json::from_str(&std::fs::read_to_string(&e.key_path).unwrap()).unwrap();
    let c = &key["credentials"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": c["iss"], "sub": c["sub"], "aud": c["aud"], "jti": "t1", "iat": now, "exp": now + 600});
    // A JWT built by hand, as any client may build it (RFC 7515), rather
    // than by the JWT library our own key flow uses.
    let header = json!({"alg": "RS512", "typ": "JWT", "kid": c["kid"]});
    let pkcs8 = pem::parse(c["privateKey"].as_str().unwrap()).unwrap();
    let signing = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8.contents()).unwrap();
    let sign = |claims: &Value| {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let mut signature = vec![0; signing.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        signing
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA512,
                &rng,
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{input}.{}", B64.encode(&signature))
    };
    let assertion = sign(&claims);

    let http = reqwest::Client::new();
    let endpoint = key["tokenEndpoint"].as_str().unwrap();
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion.as_str()),
    ];
    let token: Value = http
        .post(endpoint)
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "Bearer");
    let access = token["access_token"].as_str().unwrap();
    let listed = http
        .get(api(&e, 0, "v3alpha1", "/databases"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);

    let forged = sign(&json!({"iss": "x", "sub": "y", "aud": c["aud"], "exp": now + 600}));
    let refused = http
        .post(endpoint)
        .form(&[("grant_type", form[0].1), ("assertion", forged.as_str())])
        .send()
        .await
        .unwrap();
    // RFC 6749 5.2 and RFC 7523 3.1: 400 with `invalid_grant`.
    assert_eq!(refused.status(), 400);
    let refusal: Value = refused.json().await.unwrap();
    assert_eq!(refusal["error"], "invalid_grant", "{refusal}");
    let bad_grant = http
        .post(endpoint)
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_grant.status(), 400);
}

#[tokio::test]
async fn faults_are_injected_but_never_on_stats() {
    let e = sqlflex_import::emulator::start(sqlflex_import::emulator::Config {
        fault_rate: 1.0,
        seed: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let mut statuses = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let r = http
            .get(api(&e, 0, "v3alpha1", "/databases"))
            .bearer_auth(&e.credentials.token)
            .send()
            .await
            .unwrap();
        if matches!(r.status().as_u16(), 429 | 503) {
            assert_eq!(r.headers()["retry-after"], "1");
        }
        statuses.insert(r.status().as_u16());
    }
    assert_eq!(statuses, [429, 500, 503].into_iter().collect());
    assert_eq!(
        http.get(format!("{}/_emulator/stats", e.api_endpoint()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Every POST fails, yet some were accepted before the error: the case a
    // client must not answer with a blind resubmission.
    let s3 = S3::new(&e);
    for i in 0..20 {
        let name = format!("f{i}");
        s3.put(
            &format!("{name}.bak"),
            writer::write(&BackupSpec::full(&name)),
        )
        .await;
        let r = post_restore(
            &e,
            "v3alpha1",
            &restore_body(&e, &name, &[S3::uri(&e, &format!("{name}.bak"))]),
        )
        .await;
        assert!(
            r.status().is_server_error() || r.status() == 429,
            "{}",
            r.status()
        );
    }
    let accepted = stats(&e).await["instances"][&e.instance_ids[0]]["restore_submissions"]
        .as_object()
        .unwrap()
        .len();
    assert!(
        (3..=17).contains(&accepted),
        "about half are accepted behind the error: {accepted}"
    );

    let resets = sqlflex_import::emulator::start(sqlflex_import::emulator::Config {
        reset_rate: 1.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let dropped = http
        .get(api(&resets, 0, "v3alpha1", "/databases"))
        .bearer_auth(&resets.credentials.token)
        .send()
        .await;
    assert!(
        dropped.is_err(),
        "the connection is dropped without an answer: {dropped:?}"
    );
    assert!(
        sql(&resets, 0, &resets.credentials.sql_password)
            .await
            .is_err(),
        "SQL logins are dropped too"
    );
}

#[test]
fn the_command_prints_env_and_stops_on_sigterm() {
    let (child, env) = common::start_emulator(common::bin().args([
        "emulator",
        "--print-env",
        "--instances",
        "3",
        "--restore-seconds",
        "0.5",
    ]));
    for key in [
        "STACKIT_API_ENDPOINT",
        "STACKIT_SERVICE_ACCOUNT_TOKEN",
        "STACKIT_PROJECT_ID",
        "STACKIT_REGION",
        "STACKIT_INSTANCE_ID",
        "STACKIT_INSTANCE_IDS",
        "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
        "S3_ENDPOINT",
        "S3_BUCKET",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "SQL_HOST",
        "SQL_PORT",
        "SQL_USER",
        "SQL_PASSWORD",
    ] {
        assert!(
            env.get(key).is_some_and(|v| !v.is_empty()),
            "{key} missing: {env:?}"
        );
    }
    assert_eq!(env["STACKIT_INSTANCE_IDS"].split(',').count(), 3);
    assert!(std::path::Path::new(&env["STACKIT_SERVICE_ACCOUNT_KEY_PATH"]).is_file());
    let listening =
        std::net::TcpStream::connect(env["STACKIT_API_ENDPOINT"].trim_start_matches("http://"));
    assert!(
        listening.is_ok(),
        "all listeners are up once the lines are printed"
    );

    let status = common::stop_emulator(child);
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_backups_in_the_bucket() {
    let e = start(FAST).await;
    let s3 = S3::new(&e);
    s3.put("dir/sales.bak", writer::write(&BackupSpec::full("sales")))
        .await;
    let uri = S3::uri(&e, "dir/sales.bak");
    let short = format!("s3://{}/dir/sales.bak", sqlflex_import::emulator::BUCKET);
    let mut cmd = common::bin();
    cmd.args([
        "--format",
        "json",
        "inspect",
        &uri,
        &short,
        &S3::uri(&e, "dir/none.bak"),
    ])
    .envs(e.env());
    let (code, stdout, _) = tokio::task::spawn_blocking(move || common::run(&mut cmd))
        .await
        .unwrap();
    assert_eq!(code, 1, "one URI does not exist");
    let items: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(items[0]["database_name"], "sales");
    assert_eq!(items[1]["database_name"], "sales");
    assert!(
        items[2]["error"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{}",
        items[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_and_appended_backups_restore_like_on_the_service() {
    let e = start(Duration::from_millis(200)).await;
    let s3 = S3::new(&e);
    let packed = writer::compress(&writer::write(&BackupSpec::full("packed")));
    let mut old = BackupSpec::full("nightly");
    old.size = 80 * 1024;
    // Two sets appended: the service restores the first one.
    let appended = writer::write_sets(&[old.clone(), old]);
    for (key, bytes) in [("packed.bak", packed), ("nightly.bak", appended)] {
        assert_eq!(s3.put(key, bytes).await.status(), 200);
    }
    for (name, key) in [("packed", "packed.bak"), ("nightly", "nightly.bak")] {
        let body = restore_body(&e, name, &[S3::uri(&e, key)]);
        assert_eq!(
            post_restore(&e, "v3alpha1", &body).await.status(),
            202,
            "{name}"
        );
    }
    let online = eventually(Duration::from_secs(20), || async {
        let s = stats(&e).await;
        let dbs = s["instances"][&e.instance_ids[0]]["databases"].clone();
        (dbs.as_array().map_or(0, Vec::len) == 2).then_some(dbs)
    })
    .await;
    assert_eq!(online, Some(json!(["nightly", "packed"])));
}

/// Asked directly, as the service would be: the real compressed sample
/// restores, and a SQL Server 2005 backup fails as SQL Server 2022 fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_samples_restore_or_fail_like_on_the_service() {
    let Some(dir) = common::samples() else { return };
    let e = start(Duration::from_millis(200)).await;
    let s3 = S3::new(&e);
    for (key, file) in [
        ("tutorial.bak", "tutorialdb_sql2016_compressed.bak"),
        ("old.bak", "stdb2sql_sql2005_two_sets.bak"),
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(s3.put(key, bytes).await.status(), 200);
    }
    for (name, key) in [("Tutorial", "tutorial.bak"), ("Old", "old.bak")] {
        let body = restore_body(&e, name, &[S3::uri(&e, key)]);
        assert_eq!(post_restore(&e, "v3", &body).await.status(), 202, "{name}");
    }
    let settled = eventually(Duration::from_secs(20), || async {
        let s = stats(&e).await;
        let inst = &s["instances"][&e.instance_ids[0]];
        let done = inst["databases"] == json!(["Tutorial"])
            && inst["failed_restores"]
                .as_object()
                .is_some_and(|f| f.len() == 1);
        done.then(|| inst["failed_restores"]["Old"].clone())
    })
    .await
    .expect("one restore online, one failed");
    let text = settled.as_str().unwrap();
    assert!(
        text.contains("9.0.3077") && text.contains("error 3169"),
        "{text}"
    );
}

/// Drops through both doors, as the service and SQL Server answer them: not
/// while a restore of the name runs, not when the name is absent, counted
/// in the stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_are_refused_while_restoring_and_counted() {
    let e = start(Duration::from_secs(2)).await;
    let s3 = S3::new(&e);
    for name in ["viaapi", "viasql"] {
        let key = format!("{name}.bak");
        let bytes = writer::write(&BackupSpec::full(name));
        assert_eq!(s3.put(&key, bytes).await.status(), 200);
        let body = restore_body(&e, name, &[S3::uri(&e, &key)]);
        assert_eq!(post_restore(&e, "v3", &body).await.status(), 202);
    }
    let delete = |name: &'static str| {
        let url = api(&e, 0, "v3", &format!("/databases/{name}"));
        let token = e.credentials.token.clone();
        async move {
            reqwest::Client::new()
                .delete(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut client = sql(&e, 0, &e.credentials.sql_password).await.unwrap();
    let drop_sql =
        "ALTER DATABASE [viasql] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [viasql];";
    // While they restore: refused.
    assert_eq!(delete("viaapi").await, 400);
    let refused = batch(&mut client, drop_sql)
        .await
        .expect_err("a drop while restoring fails");
    let code = |e: &tiberius::error::Error| match e {
        tiberius::error::Error::Server(s) => s.code(),
        other => panic!("{other}"),
    };
    // SQL Server stops at the ALTER (5052); the DROP alone would be 3702.
    assert_eq!(code(&refused), 5052, "{refused}");
    let refused = batch(&mut client, "DROP DATABASE [viasql]")
        .await
        .expect_err("a drop while restoring fails");
    assert_eq!(code(&refused), 3702, "{refused}");
    // Once online: dropped, and gone from both doors.
    eventually(Duration::from_secs(20), || async {
        let s = stats(&e).await;
        (s["instances"][&e.instance_ids[0]]["databases"] == json!(["viaapi", "viasql"]))
            .then_some(())
    })
    .await
    .expect("both come online");
    assert_eq!(delete("viaapi").await, 202);
    batch(&mut client, drop_sql).await.unwrap();
    let s = stats(&e).await;
    let inst = &s["instances"][&e.instance_ids[0]];
    assert_eq!(inst["databases"], json!([]));
    assert_eq!(inst["drops"], json!({"viaapi": 1, "viasql": 1}));
    // Absent: 404, and error 3701 after 5011.
    assert_eq!(delete("viaapi").await, 404);
    let absent = batch(&mut client, drop_sql)
        .await
        .expect_err("dropping what is absent fails");
    assert!(matches!(code(&absent), 5011 | 3701), "{absent}");
}

/// A batch run to its end: the first server error wherever it surfaces.
async fn batch(client: &mut emu::Sql, text: &str) -> tiberius::Result<()> {
    client.simple_query(text).await?.into_results().await?;
    Ok(())
}
