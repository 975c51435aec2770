//! How fast one backup header is parsed: headers per second, on the
//! writer's output and, when present, on the real samples; compressed
//! backups (target: under 1 ms per file) from the 256 KiB head `plan` reads
//! plus the 64 KiB tail.
//!
//! `cargo bench --bench backup_header` prints the figures.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A bench prints its figures.

use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::backup::{HEAD_READ, HEADER_PREFIX, TAIL_READ, read_header, read_object};
use std::hint::black_box;
use std::time::Instant;

fn rate(name: &str, bytes: &[u8]) {
    let prefix = &bytes[..bytes.len().min(HEADER_PREFIX)];
    read_header(prefix).expect("a readable header");
    // Enough iterations for about a second.
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_millis() < 1000 {
        for _ in 0..1000 {
            black_box(read_header(black_box(prefix)).ok());
        }
        n += 1000;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| {name} | {:.2} µs | {:.0} |",
        secs / n as f64 * 1e6,
        n as f64 / secs
    );
}

/// The whole read `plan` does of one object: head and tail, as bytes in memory.
fn object_rate(name: &str, bytes: &[u8]) {
    let head = &bytes[..bytes.len().min(HEAD_READ)];
    let tail = (bytes.len() > HEAD_READ).then(|| &bytes[bytes.len() - TAIL_READ..]);
    let size = bytes.len() as u64;
    let header = read_object(head, tail, size).expect("a readable object");
    assert!(
        header.tail.as_ref().is_some_and(|t| t.ends_with_end_of_set),
        "{name}: the end of the object was read"
    );
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_millis() < 1000 {
        for _ in 0..100 {
            black_box(read_object(black_box(head), black_box(tail), size).ok());
        }
        n += 100;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| {name} ({} KiB object, {} KiB read{}) | {:.1} µs | {:.0} |",
        bytes.len() / 1024,
        (head.len() + tail.map_or(0, <[u8]>::len)) / 1024,
        if header.compressed {
            ", compressed"
        } else {
            ""
        },
        secs / n as f64 * 1e6,
        n as f64 / secs
    );
}

fn main() {
    println!("| header | time per parse | headers per second |");
    println!("|---|---|---|");
    rate(
        "writer: full, 1 stripe",
        &writer::write(&BackupSpec::full("bench")),
    );
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bak-samples");
    for file in [
        "singlerestore_full.bak",
        "restoretimeclean_sql2016_full.bak",
        "restoretimestripe_stripe2of2.bak",
    ] {
        match std::fs::read(samples.join(file)) {
            Ok(bytes) => rate(file, &bytes),
            Err(_) => println!("| {file} | skipped: ../shared/bak-samples is absent | |"),
        }
    }
    let mut spec = BackupSpec::full("bench");
    spec.size = 4 << 20;
    let plain = writer::write(&spec);
    object_rate("writer: head and tail, uncompressed", &plain);
    object_rate(
        "writer: head and tail, compressed",
        &writer::compress(&plain),
    );
    match std::fs::read(samples.join("tutorialdb_sql2016_compressed.bak")) {
        Ok(bytes) => object_rate("tutorialdb_sql2016_compressed.bak (real)", &bytes),
        Err(_) => println!(
            "| tutorialdb_sql2016_compressed.bak | skipped: ../shared/bak-samples is absent | |"
        ),
    }
    if let Ok(bytes) = std::fs::read(samples.join("northwind_sql2019_full.bak")) {
        object_rate(
            "northwind_sql2019_full.bak compressed by the writer",
            &writer::compress(&bytes),
        );
    }
}
