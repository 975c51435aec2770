//! How fast one backup header is parsed: headers per second, on the
//! writer's output and, when present, on the real samples.
//!
//! `cargo bench --bench backup_header` prints the figures.

use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::backup::{HEADER_PREFIX, read_header};
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
}
