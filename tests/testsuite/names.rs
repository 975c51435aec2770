//! Real database names: SQL Server takes any name of 1 to 128 characters as
//! a delimited identifier, and SharePoint, vendors and people create names
//! such as `my-db`, `WSS_Content.Intranet`, `Sales DB` or `2019_archive`.
//! They validate with a warning, import through both paths, and are dropped
//! and imported again (`on_exists: replace`, which quotes them in T-SQL and
//! escapes them in API paths). What cannot work is still refused.

use crate::common;
use crate::common::emu;

use emu::{Db, S3, apply, run, stats, tool};
use sqlflex_import::backup::writer::{self, BackupSpec};
use std::time::Duration;

const NAMES: [&str; 4] = ["my-db", "WSS_Content.Intranet", "Sales DB", "2019_archive"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_need_delimiting_validate_and_import_through_both_paths() {
    let e = emu::start(Duration::from_millis(200)).await;
    let s3 = S3::new(&e);
    let mut dbs = Vec::new();
    let keys: Vec<String> = (0..NAMES.len()).map(|i| format!("names/{i}.bak")).collect();
    for (name, key) in NAMES.iter().zip(&keys) {
        let body = writer::write(&BackupSpec::full(name));
        assert_eq!(s3.put(key, body).await.status(), 200);
        // The same name on both instances: once through each path.
        dbs.push(Db::api(name, 0, &[key]));
        dbs.push(Db::sql(name, 1, &[key]));
    }
    let dir = tempfile::tempdir().unwrap();
    let m = emu::manifest(&e, 8, 4, &dbs);
    let path = common::write(dir.path(), "m.yaml", &m);
    let path = path.to_str().unwrap();

    let (code, _, stderr) = run(tool(&e, &["validate", path])).await;
    assert_eq!(code, 0, "{stderr}");
    for name in NAMES {
        assert!(
            stderr.contains(&format!("`{name}`")),
            "a warning names {name}:\n{stderr}"
        );
    }
    assert!(stderr.contains("delimited identifier"), "{stderr}");
    assert!(
        stderr.contains("[Sales DB]"),
        "the help line shows the quoted form:\n{stderr}"
    );

    let (code, stdout, stderr) = apply(&e, &[path]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // Exit 0: every import came online. The emulator holds each under its name.
    let s = stats(&e).await;
    for id in &e.instance_ids {
        let held = &s["instances"][id]["databases"];
        for name in NAMES {
            assert!(
                held.as_array().unwrap().iter().any(|d| d == name),
                "{name} on {id}: {held}"
            );
        }
    }

    // Replaced: dropped through `DELETE .../databases/{name}` (one escaped
    // segment) and `DROP DATABASE [name]`, then imported again.
    let nightly = emu::with_defaults(
        &m,
        "defaults: {owner: app_owner, timeout: 2m, on_exists: replace}",
    );
    let nightly = common::write(dir.path(), "nightly.yaml", &nightly);
    let (code, stdout, stderr) = apply(&e, &[nightly.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = stats(&e).await;
    for id in &e.instance_ids {
        let inst = &s["instances"][id];
        let count = |what: &str, name: &str| {
            inst[what]
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, n)| n.as_u64())
        };
        for name in NAMES {
            assert_eq!(count("drops", name), Some(1), "{name}: {inst}");
            assert_eq!(
                count("restore_submissions", name),
                Some(2),
                "{name}: {inst}"
            );
        }
    }
}

#[test]
fn what_cannot_work_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(81);
    for (name, reason) in [
        (long.as_str(), "at most 80"),
        ("a]b", "quote character"),
        ("tempdb", "system database"),
        ("trailing ", "ends with a space"),
    ] {
        let m = format!(
            "version: 1\ndefaults: {{owner: app}}\n\
             s3: {{endpoint: \"https://s3.example\", bucket: backups, access_key: AK, secret_key: SK}}\n\
             instances:\n  prod: {{project_id: p, region: eu01, instance_id: i, api: {{token: T}}}}\n\
             databases:\n  - {{name: {}, instance: prod, files: [a.bak]}}\n",
            serde_json::to_string(name).unwrap()
        );
        let path = common::write(dir.path(), "m.yaml", &m);
        let (code, _, stderr) =
            common::run(common::bin().args(["validate", path.to_str().unwrap()]));
        assert_eq!(code, 2, "{name:?} is refused:\n{stderr}");
        assert!(stderr.contains(reason), "{name:?}: {stderr}");
    }
}
