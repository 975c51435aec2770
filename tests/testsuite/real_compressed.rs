//! The real compressed backup in `../shared/bak-samples`
//! (`tutorialdb_sql2016_compressed.bak`: TutorialDB, SQL Server 2016
//! 13.0.1500, full, one set, 54 chunks, 3,232,256 bytes of MTF), and copies
//! of it cut, damaged or laid out again by the writer. Expected values come
//! from the file and its README (measured there with two independent XPRESS
//! decoders), and from the container facts in
//! `../shared/formats/BACKUP-FORMATS.md`, never from the reader under test.

use crate::common;
use crate::common::emu;

use common::{bin, run, samples};
use emu::{Db, S3, manifest, tool};
use serde_json::Value;
use sqlflex_import::backup::container::{self, Record, Walk};
use sqlflex_import::backup::writer;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SAMPLE: &str = "tutorialdb_sql2016_compressed.bak";
/// From the samples' README.
const CHUNKS: usize = 54;
const MTF_LEN: usize = 3_232_256;

fn sample() -> Option<Vec<u8>> {
    samples().map(|dir| std::fs::read(dir.join(SAMPLE)).unwrap())
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The checksum as BACKUP-FORMATS.md states it, written out here on its own.
fn fold_as_documented(payload: &[u8]) -> u32 {
    let mut padded = payload.to_vec();
    padded.resize(payload.len().next_multiple_of(4), 0);
    padded.chunks(4).fold(0u32, |x, w| {
        x.rotate_left(1) ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]])
    })
}

/// One record as the tests compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Chunk(usize),
    RunEnd(u8),
    Filemark,
}

/// The records of a whole container, walked by the library, and its MTF
/// stream decoded chunk by chunk with the xpress-huffman crate.
fn shapes_and_stream(file: &[u8]) -> (Vec<Shape>, Vec<usize>, Vec<u8>) {
    let mut shapes = Vec::new();
    let mut filemarks = Vec::new();
    let mut stream = Vec::new();
    let mut walk = Walk::new(file, 0, container::FIRST_RECORD);
    for record in walk.by_ref() {
        match record.expect("a sound container") {
            Record::Chunk(c) => {
                // Zeros after the payload: the crate stops at the end of its
                // input two words early (see backup::container).
                let mut payload = file[c.payload.clone()].to_vec();
                payload.extend([0; 8]);
                let plain = xpress_huffman::decompress(&payload, c.decoded_len).unwrap();
                stream.extend_from_slice(&plain[..c.decoded_len]);
                shapes.push(Shape::Chunk(c.decoded_len));
            }
            Record::Filemark { at } => {
                filemarks.push(at);
                stream.extend_from_slice(&file[at..at + 512]);
                shapes.push(Shape::Filemark);
            }
            Record::RunEnd { kind, .. } => shapes.push(Shape::RunEnd(kind)),
            Record::Unknown { at, kind, .. } => panic!("record of kind {kind:#x} at {at}"),
        }
    }
    assert_eq!(walk.stop(), Some(container::Stop::End));
    (shapes, filemarks, stream)
}

#[test]
fn every_chunk_of_the_real_sample_carries_the_fold_of_its_payload() {
    let Some(file) = sample() else { return };
    assert_eq!(&file[..8], b"MSSQLBAK");
    assert_eq!(u32::from_le_bytes(file[8..12].try_into().unwrap()), 2);
    assert_eq!(u32::from_le_bytes(file[12..16].try_into().unwrap()), 3);
    // The framing walked by hand, as the document describes it.
    let mut at = 480;
    let mut chunks = 0;
    let mut filemarks = Vec::new();
    let mut decoded = 0;
    while at < file.len() {
        match file[at] {
            0x21 => {
                let size = usize::from(u16::from_le_bytes([file[at + 2], file[at + 3]]));
                let stored = u32::from_le_bytes(file[at + 24..at + 28].try_into().unwrap());
                let payload = &file[at + 28..at + 28 + size];
                assert_eq!(fold_as_documented(payload), stored, "chunk at {at}");
                assert_eq!(container::fold_checksum(payload), stored, "chunk at {at}");
                decoded += usize::from(file[at + 1]) * 512;
                chunks += 1;
                at += 28 + size;
            }
            b'S' if at % 512 == 0 && &file[at..at + 4] == b"SFMB" => {
                filemarks.push(at);
                decoded += 512;
                at += 512;
            }
            0x24 => {
                let len = usize::from(u16::from_le_bytes([file[at + 2], file[at + 3]]));
                at = (at + 24 + len).next_multiple_of(512);
            }
            0x2c => at = (at + 1).next_multiple_of(512),
            other => panic!("byte {at}: {other:#x}"),
        }
    }
    assert_eq!(chunks, CHUNKS);
    assert_eq!(decoded, MTF_LEN);
    // The library walks the same records.
    let (shapes, library_filemarks, stream) = shapes_and_stream(&file);
    assert_eq!(library_filemarks, filemarks);
    assert_eq!(filemarks, [1024, 454_144, 455_680]);
    let library_chunks = shapes
        .iter()
        .filter(|s| matches!(s, Shape::Chunk(_)))
        .count();
    assert_eq!(library_chunks, CHUNKS);
    assert_eq!(stream.len(), MTF_LEN);
    // The decoded stream is the MTF an uncompressed backup holds.
    assert_eq!(&stream[..4], b"TAPE");
    assert_eq!(&stream[1536..1540], b"SSET");
    assert_eq!(&stream[MTF_LEN - 512..MTF_LEN - 508], b"SFMB");
}

#[test]
fn the_writer_lays_out_the_real_stream_as_sql_server_did() {
    let Some(file) = sample() else { return };
    let (real, real_filemarks, stream) = shapes_and_stream(&file);
    let sizes: Vec<usize> = real
        .iter()
        .filter_map(|s| match s {
            Shape::Chunk(n) => Some(*n),
            _ => None,
        })
        .collect();
    // Given the real file's chunk sizes, the writer frames the stream the
    // same way, record for record: chunks, run ends, filemarks.
    let ours = writer::compress_in_chunks(&stream, &sizes);
    let (shapes, filemarks, decoded) = shapes_and_stream(&ours);
    assert_eq!(shapes, real);
    assert_eq!(filemarks.len(), real_filemarks.len());
    assert!(filemarks.iter().all(|at| at % 512 == 0), "{filemarks:?}");
    assert_eq!(decoded, stream);
    // Its own cutting starts the way SQL Server's does, with the same runs.
    let (own, _, decoded) = shapes_and_stream(&writer::compress(&stream));
    assert_eq!(decoded, stream);
    assert_eq!(own[..5], real[..5]);
    let run_ends = |shapes: &[Shape]| -> Vec<Shape> {
        shapes
            .iter()
            .filter(|s| !matches!(s, Shape::Chunk(_)))
            .cloned()
            .collect()
    };
    assert_eq!(run_ends(&own), run_ends(&real));
}

fn inspect_json(path: &Path) -> (i32, Value, String) {
    let (code, stdout, stderr) = run(bin().args(["--format", "json", "inspect"]).arg(path));
    let items: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (code, items[0].clone(), stderr)
}

#[test]
fn inspect_reports_the_real_sample_as_sql_server_does() {
    let Some(dir) = samples() else { return };
    let path = dir.join(SAMPLE);
    let (code, item, stderr) = inspect_json(&path);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(item["database_name"], "TutorialDB", "{item}");
    assert_eq!(item["software_version"], "13.0.1500");
    assert_eq!(item["source_version"], "SQL Server 2016");
    assert_eq!(item["backup_type"], "full");
    assert_eq!(item["family_sequence"], 1);
    assert_eq!(item["family_count"], 1);
    assert_eq!(item["compressed"], true);
    assert_eq!(item["backup_sets"].as_array().unwrap().len(), 1);
    assert_eq!(item["tail"]["ends_with_end_of_set"], true);
    assert_eq!(item["tail"]["last_set_position"], 1);
    let (code, _, stderr) = run(bin().arg("inspect").arg(&path));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("B0"), "no finding: {stderr}");
}

#[test]
fn cut_and_damaged_copies_of_the_real_sample_are_refused() {
    let Some(file) = sample() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Half; past the head `plan` reads; inside the ESET chunk; without the
    // closing filemark.
    for len in [file.len() / 2, 300_000, 455_000, file.len() - 512] {
        let path = put(dir.path(), &format!("cut{len}.bak"), &file[..len]);
        let (_, item, _) = inspect_json(&path);
        assert_eq!(item["tail"]["ends_with_end_of_set"], false, "{len}: {item}");
        let (_, _, stderr) = run(bin().arg("inspect").arg(&path));
        assert!(
            stderr.contains("B007") && stderr.contains("does not end with its last backup set"),
            "{len}: {stderr}"
        );
    }
    // Cut inside its file header or its first chunk: a cut upload (B007),
    // not an unknown container.
    for len in [8, 16, 700] {
        let header = sqlflex_import::backup::read_object(&file[..len], None, len as u64);
        let read = [sqlflex_import::backup::verdict::Read {
            key: "cut.bak",
            size: len as u64,
            header: &header,
        }];
        let (_, findings) = sqlflex_import::backup::verdict::assess(&read);
        let codes: Vec<&str> = findings.iter().map(|f| f.code.code()).collect();
        assert_eq!(codes, ["B007"], "{len}: {findings:?}");
        assert!(findings[0].message.contains("cut short"), "{findings:?}");
    }
    // One bit of a payload in the head (chunk 3) and in the tail (the last
    // chunk, which holds the ESET): the stored checksums no longer hold.
    for (name, at) in [("head", 3543 + 28 + 100), ("tail", 454_656 + 28 + 100)] {
        let mut bytes = file.clone();
        bytes[at] ^= 0x10;
        let path = put(dir.path(), &format!("{name}.bak"), &bytes);
        let (code, _, stderr) = run(bin().arg("inspect").arg(&path));
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(
            stderr.contains("damaged compressed backup") && stderr.contains("fails its checksum"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn appended_sets_in_a_compressed_file_are_refused() {
    let Some(dir) = samples() else { return };
    // A real file with two appended sets, compressed in the real layout:
    // its second set lies beyond the head, its number in the closing ESET.
    let two = std::fs::read(dir.join("stdb2sql_sql2005_two_sets.bak")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = put(out.path(), "two.bak", &writer::compress(&two));
    let (_, item, _) = inspect_json(&path);
    assert_eq!(item["compressed"], true, "{item}");
    assert_eq!(item["tail"]["last_set_position"], 2, "{item}");
    let (_, _, stderr) = run(bin().arg("inspect").arg(&path));
    assert!(
        stderr.contains("B006") && stderr.contains("holds 2 backup sets"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_sample_plans_clean_and_imports_through_both_paths() {
    let Some(file) = sample() else { return };
    let e = emu::start(Duration::from_millis(300)).await;
    let s3 = S3::new(&e);
    assert_eq!(s3.put("tutorial.bak", file).await.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(
        &e,
        2,
        1,
        &[
            Db::api("tutorial_api", 0, &["tutorial.bak"]),
            Db::sql("tutorial_sql", 1, &["tutorial.bak"]),
        ],
    );
    let path = common::write(dir.path(), "m.yaml", &text);
    let m = path.to_str().unwrap();
    let (code, stdout, stderr) =
        emu::run(tool(&e, &["--format", "json", "plan", "--strict", m])).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    for item in plan["items"].as_array().unwrap() {
        assert_eq!(item["verdict"], "ready", "{item}");
        assert_eq!(common::finding_codes(item), Vec::<String>::new(), "{item}");
        assert_eq!(item["backup"]["compressed"], true, "{item}");
    }
    let (code, stdout, stderr) = emu::apply(&e, &[m]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let stats = emu::stats(&e).await;
    assert_eq!(
        stats["instances"][&e.instance_ids[0]]["databases"],
        serde_json::json!(["tutorial_api"])
    );
    assert_eq!(
        stats["instances"][&e.instance_ids[1]]["databases"],
        serde_json::json!(["tutorial_sql"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_server_2005_backup_is_refused_before_submit() {
    let Some(dir) = samples() else { return };
    let file = std::fs::read(dir.join("stdb2sql_sql2005_two_sets.bak")).unwrap();
    let e = emu::start(Duration::from_millis(300)).await;
    let s3 = S3::new(&e);
    assert_eq!(s3.put("old.bak", file).await.status(), 200);
    let tmp = tempfile::tempdir().unwrap();
    let text = manifest(
        &e,
        2,
        1,
        &[
            Db::api("old_api", 0, &["old.bak"]),
            Db::sql("old_sql", 1, &["old.bak"]),
        ],
    );
    let path = common::write(tmp.path(), "m.yaml", &text);
    let m = path.to_str().unwrap();
    let (code, stdout, _) = emu::run(tool(&e, &["--format", "json", "plan", m])).await;
    assert_eq!(code, 1);
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    for item in plan["items"].as_array().unwrap() {
        assert_eq!(item["verdict"], "not_ready", "{item}");
        let codes = common::finding_codes(item);
        assert!(codes.contains(&"B011 refuse".to_owned()), "{codes:?}");
        let text = item.to_string();
        assert!(
            text.contains("SQL Server 2005 (database version 611") && text.contains("2008 to 2014"),
            "{text}"
        );
    }
    let (code, _, stderr) = emu::apply(&e, &[m]).await;
    assert_eq!(code, 1, "{stderr}");
    let stats = emu::stats(&e).await;
    assert_eq!(emu::submissions(&stats, &e), Vec::<(String, u64)>::new());
}
