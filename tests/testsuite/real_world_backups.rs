//! Backups as they come from real servers: compressed, several sets
//! appended to one file, cut uploads, newer source versions, FILESTREAM,
//! and hostile containers. Compressed files here are made by the writer
//! (in the container layout measured on real files) from the real samples
//! and from generated backups; `tests/real_compressed.rs` reads the real
//! compressed sample itself.

use crate::common;
use crate::common::emu;

use common::{bin, run, samples};
use emu::{Db, S3, manifest, tool};
use proptest::prelude::*;
use serde_json::Value;
use sqlflex_import::backup::container::fold_checksum;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::backup::{self, HeaderError, read_header, read_object};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn inspect_json(paths: &[PathBuf]) -> (i32, Vec<Value>, String) {
    let (code, stdout, stderr) = run(bin().args(["--format", "json", "inspect"]).args(paths));
    let items = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (code, items, stderr)
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The header fields that must not depend on compression.
fn comparable(item: &Value) -> Value {
    let mut item = item.clone();
    for key in ["path", "file_size", "compressed", "compression"] {
        item.as_object_mut().unwrap().remove(key);
    }
    item
}

#[test]
fn compressed_copies_of_the_real_samples_read_like_the_originals() {
    let Some(dir) = samples() else { return };
    let out = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bak" || x == "trn"))
        .filter(|p| !std::fs::read(p).unwrap().starts_with(b"MSSQLBAK"))
        .collect();
    files.sort();
    assert!(files.len() >= 13, "{files:?}");
    let mut paths = Vec::new();
    for original in &files {
        let bytes = std::fs::read(original).unwrap();
        let compressed = writer::compress(&bytes);
        assert!(compressed.len() < bytes.len(), "{original:?}");
        let name = original.file_name().unwrap().to_str().unwrap();
        paths.push(original.clone());
        paths.push(put(out.path(), &format!("packed-{name}"), &compressed));
    }
    let (code, items, stderr) = inspect_json(&paths);
    assert_eq!(code, 0, "{stderr}");
    for pair in items.chunks(2) {
        let (plain, packed) = (&pair[0], &pair[1]);
        assert_eq!(plain["compressed"], false);
        assert_eq!(packed["compressed"], true, "{packed}");
        assert_eq!(packed["compression"]["algorithm"], "xpress");
        assert_eq!(packed["compression"]["layout"], 2);
        assert_eq!(comparable(plain), comparable(packed), "{}", plain["path"]);
        assert_eq!(packed["tail"]["ends_with_end_of_set"], true, "{packed}");
    }
}

#[test]
fn a_compressed_two_stripe_set_is_judged_like_any_set() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = BackupSpec::striped("sales", 2)
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.size = 300 * 1024;
            put(
                dir.path(),
                &format!("sales_{}.bak", s.family_sequence),
                &writer::compress(&writer::write(&s)),
            )
        })
        .collect();
    let (code, _, stderr) = run(bin().arg("inspect").args(&paths));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("stripe set: complete, 2 of 2 stripes of `sales` (full), ready to import"),
        "{stderr}"
    );
    let (_, _, stderr) = run(bin().arg("inspect").arg(&paths[1]));
    assert!(
        stderr.contains("B005: stripe 1 of 2 is missing"),
        "{stderr}"
    );
}

fn sets(count: u16, size: usize) -> Vec<u8> {
    let specs: Vec<BackupSpec> = (0..count)
        .map(|n| {
            let mut s = BackupSpec::full("nightly");
            s.size = size;
            if n > 0 {
                s.backup_type = backup::BackupType::Differential;
            }
            s
        })
        .collect();
    writer::write_sets(&specs)
}

#[test]
fn appended_sets_are_listed_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Small: every set within the head; large: only the first in the head,
    // the last one's number from the tail.
    let two = put(dir.path(), "two.bak", &sets(2, 64 * 1024));
    let three = put(dir.path(), "three.bak", &sets(3, 64 * 1024));
    let big = put(dir.path(), "big.bak", &sets(3, 400 * 1024));
    let packed = put(
        dir.path(),
        "packed.bak",
        &writer::compress(&sets(3, 400 * 1024)),
    );
    let (code, items, _) = inspect_json(&[two, three, big, packed]);
    assert_eq!(code, 0);
    let positions = |item: &Value| -> Vec<u64> {
        item["backup_sets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["position"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(positions(&items[0]), [1, 2]);
    assert_eq!(positions(&items[1]), [1, 2, 3]);
    assert_eq!(items[1]["backup_sets"][0]["backup_type"], "full");
    assert_eq!(items[1]["backup_sets"][2]["backup_type"], "differential");
    assert_eq!(
        items[1]["backup_sets"][2]["backup_start"],
        "2026-11-03T10:00:00"
    );
    assert_eq!(
        positions(&items[2]),
        [1],
        "only the first set is in the head"
    );
    // Compressed, every set's SSET follows a filemark within the head.
    assert_eq!(positions(&items[3]), [1, 2, 3]);
    for big in &items[2..] {
        assert_eq!(big["tail"]["last_set_position"], 3, "{big}");
    }
    let (_, _, stderr) = run(bin().arg("inspect").arg(dir.path().join("big.bak")));
    assert!(
        stderr.contains("B006: ") && stderr.contains("holds 3 backup sets"),
        "{stderr}"
    );
    assert!(stderr.contains("WITH INIT"), "{stderr}");
    assert!(
        stderr.contains("first one (position 1: a full database backup of 2026-11-01T10:00:00)"),
        "{stderr}"
    );
}

#[test]
fn cut_uploads_are_refused_with_their_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = BackupSpec::full("cut");
    spec.size = 600 * 1024;
    let whole = writer::write(&spec);
    let cut = put(dir.path(), "cut.bak", &whole[..300 * 1024]);
    let (code, _, stderr) = run(bin().arg("inspect").arg(&cut));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("B007: cut.bak")
            || stderr.contains("does not end with its last backup set's end block"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "the backup's data is {} bytes, but its object hold only {} bytes",
            whole.len(),
            300 * 1024
        )),
        "{stderr}"
    );
    // A real sample cut short says the same.
    if let Some(samples) = samples() {
        let bytes = std::fs::read(samples.join("db2_full.bak")).unwrap();
        let cut = put(dir.path(), "db2_cut.bak", &bytes[..bytes.len() / 2]);
        let (_, _, stderr) = run(bin().arg("inspect").arg(&cut));
        assert!(stderr.contains("B007"), "{stderr}");
    }
}

#[test]
fn versions_and_file_kinds_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut newer = BackupSpec::full("future");
    newer.version = (17, 0, 1000);
    let mut fs = BackupSpec::full("docs");
    fs.filestream = true;
    let mut old = BackupSpec::full("legacy");
    old.version = (10, 50, 1600);
    let paths = [
        put(dir.path(), "future.bak", &writer::write(&newer)),
        put(dir.path(), "docs.bak", &writer::write(&fs)),
        put(dir.path(), "legacy.bak", &writer::write(&old)),
    ];
    let (code, items, stderr) = inspect_json(&paths);
    assert_eq!(code, 0);
    assert_eq!(items[0]["source_version"], "newer than SQL Server 2022");
    assert_eq!(items[2]["source_version"], "SQL Server 2008 R2");
    let kinds: Vec<&str> = items[1]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["data", "log", "filestream"]);
    assert!(
        stderr.contains("B010: future.bak") || stderr.contains("B010: "),
        "{stderr}"
    );
    assert!(stderr.contains("cannot restore it"), "{stderr}");
    assert!(
        stderr.contains("warning B009") && stderr.contains("docs_fs"),
        "{stderr}"
    );
    if let Some(samples) = samples() {
        let (_, items, _) = inspect_json(&[samples.join("restoretimeclean_sql2016_full.bak")]);
        assert_eq!(items[0]["source_version"], "SQL Server 2016");
        assert_eq!(items[0]["files"][1]["type"], "log");
    }
}

/// A compressed backup with its container changed by `edit`.
fn damaged(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = writer::compress(&writer::write(&BackupSpec::full("odd")));
    edit(&mut bytes);
    bytes
}

#[test]
fn unknown_containers_warn_and_damaged_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zstd = damaged(|b| b[12..16].copy_from_slice(&131u32.to_le_bytes()));
    let layout = damaged(|b| b[8..12].copy_from_slice(&7u32.to_le_bytes()));
    // The fold checksum of the first chunk, at +24 of its header.
    let checksum = damaged(|b| b[480 + 24] ^= 0xff);
    // A byte of the first chunk's payload: the stored checksum no longer holds.
    let payload = damaged(|b| b[480 + 28 + 300] ^= 0x01);
    let unknown = [
        put(dir.path(), "zstd.bak", &zstd),
        put(dir.path(), "layout.bak", &layout),
    ];
    let (code, items, _) = inspect_json(&unknown);
    assert_eq!(code, 0, "containers this tool does not know are warnings");
    for (item, expected) in items
        .iter()
        .zip(["compressed with ZSTD", "header words are 7 and 3"])
    {
        assert_eq!(item["compressed"], true, "{item}");
        assert!(item["error"].as_str().unwrap().contains(expected), "{item}");
    }
    let (_, _, stderr) = run(bin().arg("inspect").arg(&unknown[0]));
    assert!(
        stderr.contains("warning B008") && stderr.contains("not checked"),
        "{stderr}"
    );
    for (name, bytes) in [("checksum.bak", &checksum), ("payload.bak", &payload)] {
        let path = put(dir.path(), name, bytes);
        let (code, _, stderr) = run(bin().arg("inspect").arg(&path));
        assert_eq!(code, 1, "a damaged container is an error: {stderr}");
        assert!(
            stderr.contains(
                "damaged compressed backup: compressed chunk 1 at byte 480 fails its checksum"
            ),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_apply_handle_compressed_appended_cut_and_strict() {
    let e = emu::start(Duration::from_millis(300)).await;
    let s3 = S3::new(&e);
    let mut cut_spec = BackupSpec::full("cut");
    cut_spec.size = 600 * 1024;
    let cut = writer::write(&cut_spec);
    for (key, bytes) in [
        (
            "packed.bak",
            writer::compress(&writer::write(&BackupSpec::full("packed"))),
        ),
        ("appended.bak", sets(2, 64 * 1024)),
        ("cut.bak", cut[..300 * 1024].to_vec()),
        (
            "zstd.bak",
            damaged(|b| b[12..16].copy_from_slice(&131u32.to_le_bytes())),
        ),
    ] {
        assert_eq!(s3.put(key, bytes).await.status(), 200, "{key}");
    }
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(
        &e,
        4,
        2,
        &[
            Db::api("packed", 0, &["packed.bak"]),
            Db::api("appended", 0, &["appended.bak"]),
            Db::api("cut", 1, &["cut.bak"]),
            Db::sql("zstd", 1, &["zstd.bak"]),
        ],
    );
    let path = common::write(dir.path(), "m.yaml", &text);
    let m = path.to_str().unwrap();
    let plan = |args: &'static [&'static str]| {
        let mut cmd = tool(&e, &["--format", "json", "plan", m]);
        cmd.args(args);
        emu::run(cmd)
    };
    let (code, stdout, stderr) = plan(&[]).await;
    assert_eq!(code, 1, "{stderr}");
    let plan_json: Value = serde_json::from_str(&stdout).unwrap();
    let item = |name: &str| {
        plan_json["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["database"] == name)
            .unwrap()
            .clone()
    };
    let codes = common::finding_codes;
    assert_eq!(item("packed")["verdict"], "ready");
    assert_eq!(item("packed")["backup"]["compressed"], true);
    assert_eq!(item("appended")["verdict"], "not_ready");
    assert_eq!(codes(&item("appended")), ["B006 refuse"]);
    assert_eq!(item("cut")["verdict"], "not_ready");
    assert!(codes(&item("cut")).iter().all(|c| c == "B007 refuse"));
    assert_eq!(item("zstd")["verdict"], "ready", "a warning does not block");
    assert_eq!(codes(&item("zstd")), ["B008 warn"]);

    let (code, stdout, _) = plan(&["--strict"]).await;
    assert_eq!(code, 1);
    let strict: Value = serde_json::from_str(&stdout).unwrap();
    let zstd = strict["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["database"] == "zstd")
        .unwrap();
    assert_eq!(zstd["verdict"], "not_ready");
    assert!(zstd["reasons"][0].as_str().unwrap().starts_with("B008: "));

    // The compressed backup imports; the emulator reads it as the service would.
    let (code, stdout, stderr) = emu::apply(&e, &["--only", "packed", m]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        emu::stats(&e).await["instances"][&e.instance_ids[0]]["databases"],
        serde_json::json!(["packed"])
    );
}

#[test]
fn the_readme_rule_table_is_the_code() {
    let readme = std::fs::read_to_string(common::project_root().join("README.md")).unwrap();
    let table = sqlflex_import::rules::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md must contain the rule table exactly as the code has it:\n{table}"
    );
}

/// Containers made by the writer, from which the fuzzer starts.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut big = BackupSpec::full("seed");
        big.size = 200 * 1024;
        vec![
            writer::compress(&writer::write(&BackupSpec::full("seed"))),
            writer::compress(&writer::write(&big)),
            writer::compress(&sets(2, 64 * 1024)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Truncated chunks, lying sizes, bad checksums, garbage tables: never
    /// a panic, every outcome a header or a clear error.
    #[test]
    fn hostile_containers_never_panic(
        seed in 0usize..3,
        edits in prop::collection::vec((0usize..4096, any::<u8>()), 1..8),
        cut in prop::option::of(0usize..8192),
        reseal in any::<bool>(),
    ) {
        let mut bytes = seeds()[seed].clone();
        for (at, value) in edits {
            if let Some(b) = bytes.get_mut(at) { *b = value; }
        }
        if reseal {
            // Re-seal the first chunk's checksum, so edits inside it reach the decoder.
            let size = u16::from_le_bytes([bytes[482], bytes[483]]) as usize;
            if let Some(payload) = bytes.get(508..508 + size) {
                let sum = fold_checksum(payload);
                bytes[504..508].copy_from_slice(&sum.to_le_bytes());
            }
        }
        if let Some(cut) = cut { bytes.truncate(cut); }
        let len = bytes.len() as u64;
        match read_object(&bytes, None, len) {
            Ok(h) => prop_assert!(!h.database_name.is_empty()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

/// A chunk that claims 64 KiB and holds one literal and one match as long
/// as the format allows: the output stays bounded by the header's size.
#[test]
fn decompression_bombs_stay_bounded() {
    let mut plain = vec![b'x'];
    plain.extend(vec![b'x'; 65535]);
    let block = writer::xpress_huffman_block(&plain);
    assert!(block.len() < 400);
    let mut file = b"MSSQLBAK".to_vec();
    file.extend(2u32.to_le_bytes());
    file.extend(3u32.to_le_bytes());
    file.resize(480, 0);
    // Thousands of such chunks after one another, each after a filemark
    // (the first chunk of every run is decoded).
    let mut filemark = vec![0u8; 512];
    filemark[..4].copy_from_slice(b"SFMB");
    let sum = sqlflex_import::backup::mtf::xor_checksum(&filemark[..50]);
    filemark[50..52].copy_from_slice(&sum.to_le_bytes());
    for _ in 0..2000 {
        file.extend([0x21, 128]);
        file.extend((block.len() as u16).to_le_bytes());
        file.extend([0; 20]);
        file.extend(fold_checksum(&block).to_le_bytes());
        file.extend(&block);
        file.push(0x2c);
        file.resize(file.len().next_multiple_of(512), 0);
        file.extend(&filemark);
    }
    // In process: the decoder stops at what the header reader needs.
    match read_header(&file) {
        Err(HeaderError::NotABackup { .. }) | Err(HeaderError::Corrupt { .. }) => {}
        other => panic!("{other:?}"),
    }
    // As a child with an address-space limit: 2000 x 64 KiB would be 128 MiB
    // per file if the whole file were decoded; ten such files at once must
    // not come near the limit.
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..10)
        .map(|i| put(dir.path(), &format!("bomb{i}.bak"), &file))
        .collect();
    let mut cmd = bin();
    cmd.arg("inspect").args(&paths);
    common::limit_memory(&mut cmd, 512 << 20);
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, 1, "every bomb is a clear error: {stderr}");
    assert_eq!(stderr.matches("error: ").count(), 10, "{stderr}");
}
