//! `discover` on a prefix laid out like a backup share (Ola Hallengren's
//! `SERVER/DB/FULL/SERVER_DB_FULL_yyyymmdd_hhmmss.bak`): full, differential
//! and log backups of several databases from several days, a two-stripe
//! set, a lone stripe, a compressed backup and a text file. Expected values
//! come from what was uploaded, never from the reader.

use crate::common;
use crate::common::emu;

use emu::{S3, run, tool};
use serde_json::Value;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::backup::{BackupType, Guid};
use sqlflex_import::emulator::Emulator;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A backup of `database` on `server`, started on `day` of December 2026,
/// in a media set of its own (`set` tells sets apart).
fn spec(database: &str, server: &str, kind: BackupType, day: u8, set: u8) -> BackupSpec {
    BackupSpec {
        server_name: server.to_owned(),
        backup_type: kind,
        media_set_id: Guid([set; 16]),
        backup_start: Some((2026, 12, day, 2, 0, 0)),
        ..BackupSpec::full(database)
    }
}

async fn put(s3: &S3, key: &str, body: Vec<u8>) {
    assert_eq!(s3.put(key, body).await.status(), 200, "{key}");
}

/// The base: the kit's manifest for the emulator, without databases.
fn base(e: &Emulator, dir: &Path) -> PathBuf {
    let text = emu::manifest(e, 4, 2, &[]);
    assert!(text.ends_with("databases:\n"));
    common::write(dir, "base.yaml", &text)
}

/// `discover` with `args`, then the manifest it wrote loaded by the library.
async fn discover(e: &Emulator, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["discover"];
    all.extend_from_slice(args);
    run(tool(e, &all)).await
}

/// The databases of a written manifest: (name, files).
fn entries(e: &Emulator, path: &Path) -> Vec<(String, Vec<String>)> {
    let vars: std::collections::HashMap<&str, String> = e.env().into_iter().collect();
    let env = move |name: &str| vars.get(name).cloned();
    let text = std::fs::read_to_string(path).unwrap();
    let loaded = sqlflex_import::manifest::load_str("out.yaml", &text, Path::new("."), &env)
        .unwrap_or_else(|r| panic!("{:#?}\n{text}", r.diagnostics));
    loaded
        .manifest
        .databases
        .iter()
        .map(|db| {
            let files = match &db.files {
                sqlflex_import::manifest::Files::List(f) => f.clone(),
                other => panic!("{other:?}"),
            };
            (db.name.clone(), files)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_share_becomes_one_entry_per_database() {
    let e = emu::start(Duration::from_millis(200)).await;
    let s3 = S3::new(&e);
    let full = BackupType::Full;
    // sales: fulls of the 1st and 2nd, a differential and a log after.
    let sales_old = "SQL01/sales/FULL/SQL01_sales_FULL_20261201_020000.bak";
    let sales_new = "SQL01/sales/FULL/SQL01_sales_FULL_20261202_020000.bak";
    put(
        &s3,
        sales_old,
        writer::write(&spec("sales", "SQL01", full, 1, 1)),
    )
    .await;
    put(
        &s3,
        sales_new,
        writer::write(&spec("sales", "SQL01", full, 2, 2)),
    )
    .await;
    let diff = "SQL01/sales/DIFF/SQL01_sales_DIFF_20261202_120000.bak";
    put(
        &s3,
        diff,
        writer::write(&spec("sales", "SQL01", BackupType::Differential, 2, 3)),
    )
    .await;
    let log = "SQL01/sales/LOG/SQL01_sales_LOG_20261202_130000.trn";
    put(
        &s3,
        log,
        writer::write(&spec("sales", "SQL01", BackupType::Log, 2, 4)),
    )
    .await;
    // hr: one backup in two stripes.
    let hr_keys = [
        "SQL01/hr/FULL/SQL01_hr_FULL_20261202_020000_2.bak",
        "SQL01/hr/FULL/SQL01_hr_FULL_20261202_020000_1.bak",
    ];
    for stripe in BackupSpec::striped("hr", 2) {
        let key = hr_keys[usize::from(2 - stripe.family_sequence)];
        let stripe = BackupSpec {
            server_name: "SQL01".into(),
            backup_start: Some((2026, 12, 2, 2, 0, 0)),
            ..stripe
        };
        put(&s3, key, writer::write(&stripe)).await;
    }
    // crm: only the first of its two stripes arrived.
    let crm = BackupSpec::striped("crm", 2).remove(0);
    let crm_key = "SQL01/crm/FULL/SQL01_crm_FULL_20261202_020000_1.bak";
    put(&s3, crm_key, writer::write(&crm)).await;
    // inventory, on another server, written WITH COMPRESSION.
    let inventory = writer::compress(&writer::write(&spec("inventory", "SQL02", full, 2, 5)));
    let inventory_key = "SQL02/inventory/FULL/SQL02_inventory_FULL_20261202_020000.bak";
    put(&s3, inventory_key, inventory).await;
    put(
        &s3,
        "SQL01/README.txt",
        b"nightly backups, kept 14 days".to_vec(),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let base = base(&e, dir.path());
    let out = dir.path().join("out.yaml");
    let (code, stdout, stderr) = discover(
        &e,
        &[
            base.to_str().unwrap(),
            "--prefix",
            "SQL01/",
            "--prefix",
            "SQL02/",
            "--instance",
            "i0",
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let mut got = entries(&e, &out);
    got.sort();
    assert_eq!(
        got,
        [
            (
                "hr".to_owned(),
                vec![hr_keys[1].to_owned(), hr_keys[0].to_owned()]
            ),
            ("inventory".to_owned(), vec![inventory_key.to_owned()]),
            ("sales".to_owned(), vec![sales_new.to_owned()]),
        ],
        "{stderr}"
    );
    // Everything left out is named on stderr with its code, and in the file.
    let written = std::fs::read_to_string(&out).unwrap();
    for (key, code) in [
        (crm_key, "B005"),
        ("SQL01/README.txt", "B001"),
        (diff, "B004"),
        (log, "B004"),
        (sales_old, "D001"),
    ] {
        let said = |text: &str| text.lines().any(|l| l.contains(key) && l.contains(code));
        assert!(said(&stderr), "{key} {code} on stderr:\n{stderr}");
        assert!(said(&written), "{key} {code} in the file:\n{written}");
    }
    assert!(stderr.contains("left out: sales (on SQL01)"), "{stderr}");
    assert!(written.contains("# sales: sales on SQL01, full backup of 2026-12-02T02:00:00"));

    // The written manifest validates and plans clean.
    let (code, stdout, stderr) = run(tool(&e, &["plan", out.to_str().unwrap()])).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    // New backups arrive: a rerun on the written manifest adds only them.
    let finance = "SQL02/finance/FULL/SQL02_finance_FULL_20261203_020000.bak";
    put(
        &s3,
        finance,
        writer::write(&spec("finance", "SQL02", full, 3, 6)),
    )
    .await;
    let again = dir.path().join("again.yaml");
    let (code, stdout, stderr) = discover(
        &e,
        &[
            out.to_str().unwrap(),
            "--prefix",
            "SQL01/",
            "--prefix",
            "SQL02/",
            "--instance",
            "i0",
            "--format",
            "json",
            "-o",
            again.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let added: Vec<&str> = report["chosen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["finance"]);
    let already: Vec<&Value> = report["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["findings"][0]["code"] == "D002")
        .collect();
    assert_eq!(already.len(), 3, "{report:#}");
    let got: Vec<String> = entries(&e, &again).into_iter().map(|(n, _)| n).collect();
    assert_eq!(got.len(), 4, "the first run's entries are kept: {got:?}");
    assert!(got.contains(&"finance".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_collide_are_reported_and_a_template_tells_them_apart() {
    let e = emu::start(Duration::from_millis(200)).await;
    let s3 = S3::new(&e);
    for (i, server) in ["SQL01", "SQL02"].iter().enumerate() {
        let key = format!("{server}/sales/FULL/{server}_sales_FULL_20261202_020000.bak");
        let set = 10 + i as u8;
        let body = writer::write(&spec("sales", server, BackupType::Full, 2, set));
        put(&s3, &key, body).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = base(&e, dir.path());
    let base = base.to_str().unwrap();
    let (code, stdout, stderr) = discover(&e, &[base, "--prefix", "", "--instance", "i0"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("D003") && stderr.contains("`sales` is the name of 2 sources"),
        "{stderr}"
    );
    assert!(!stdout.contains("- name:"), "nothing is merged:\n{stdout}");

    let out = dir.path().join("out.yaml");
    let (code, _, stderr) = discover(
        &e,
        &[
            base,
            "--prefix",
            "",
            "--instance",
            "i0",
            "--name-template",
            "{server}_{database}",
            "--method",
            "sql",
            "--tag",
            "wave1",
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let names: Vec<String> = entries(&e, &out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["SQL01_sales", "SQL02_sales"]);
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains("method: sql") && written.contains("tags: [\"wave1\"]"));
    let (code, stdout, stderr) = run(tool(&e, &["plan", out.to_str().unwrap()])).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

#[test]
fn a_base_that_is_not_valid_or_an_unknown_instance_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::write(
        dir.path(),
        "base.yaml",
        "version: 1\ns3: {endpoint: \"https://s3.example\", bucket: backups, access_key: AK, \
         secret_key: SK}\ninstances:\n  prod: {project_id: p, region: eu01, instance_id: i, \
         api: {token: T}}\n",
    );
    let base = base.to_str().unwrap();
    let (code, _, stderr) =
        common::run(common::bin().args(["discover", base, "--prefix", "x/", "--instance", "prd"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean `prod`?"), "{stderr}");
    let (code, _, stderr) = common::run(common::bin().args([
        "discover",
        base,
        "--prefix",
        "x/",
        "--instance",
        "prod",
        "--name-template",
        "fixed",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("names neither"), "{stderr}");
}
