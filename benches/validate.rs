//! Validating a manifest of 10,000 databases over 20 instances.
//! Target: under 200 ms and under 100 MB peak memory, release build.
//!
//! `cargo bench --bench validate` prints the figures; nothing here asserts a
//! time, the machines are shared and noisy.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A bench prints its figures.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DATABASES: usize = 10_000;
const INSTANCES: usize = 20;
const RUNS: usize = 15;

fn manifest() -> String {
    let mut m = String::from(
        "version: 1\ndefaults: {owner: app_owner, timeout: 2h}\nconcurrency: {max_parallel: 64, per_instance: 4}\n\
         s3:\n  endpoint: https://object.storage.eu01.onstackit.cloud\n  bucket: migration-backups\n  \
         access_key: ${S3_ACCESS_KEY}\n  secret_key: ${S3_SECRET_KEY}\ninstances:\n",
    );
    for i in 0..INSTANCES {
        m.push_str(&format!(
            "  inst{i:02}:\n    project_id: ${{STACKIT_PROJECT_ID}}\n    region: eu01\n    instance_id: {i:08x}-0000-4000-8000-000000000000\n    \
             api: {{token: \"${{STACKIT_SERVICE_ACCOUNT_TOKEN}}\"}}\n    \
             sql: {{host: inst{i:02}.sqlserver.eu01.onstackit.cloud, user: importer, password: \"${{SQL_PASSWORD}}\"}}\n"
        ));
    }
    m.push_str("databases:\n");
    for d in 0..DATABASES {
        let instance = d % INSTANCES;
        let method = if d % 3 == 0 { "sql" } else { "api" };
        if d % 4 == 0 {
            m.push_str(&format!(
                "  - {{name: db_{d:05}, instance: inst{instance:02}, method: {method}, files: [db_{d:05}/stripe_1.bak, db_{d:05}/stripe_2.bak], tags: [wave{}, tier1]}}\n",
                d % 10
            ));
        } else {
            m.push_str(&format!(
                "  - {{name: db_{d:05}, instance: inst{instance:02}, method: {method}, files: {{prefix: db_{d:05}/}}, tags: [wave{}]}}\n",
                d % 10
            ));
        }
    }
    m
}

/// The variables the generated manifest uses, and no others (a set
/// STACKIT_TOKEN_BASEURL or key path would change what is checked).
fn env(name: &str) -> Option<String> {
    [
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "STACKIT_PROJECT_ID",
        "STACKIT_SERVICE_ACCOUNT_TOKEN",
        "SQL_PASSWORD",
    ]
    .contains(&name)
    .then(|| format!("bench-{name}"))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Peak resident memory of the largest child waited for, in bytes.
fn children_peak_rss() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as u64 * 1024
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    let text = manifest();
    std::fs::write(&path, &text).unwrap();

    // In-process: the loader alone (read, parse, interpolate, schema, checks).
    let mut in_process = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let loaded =
            sqlflex_import::manifest::load(&path, &env).expect("the generated manifest is valid");
        in_process.push(start.elapsed());
        assert_eq!(loaded.manifest.databases.len(), DATABASES);
    }

    // The whole command, as a user runs it.
    let bin = env!("CARGO_BIN_EXE_sqlflex-import");
    let mut whole = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new(bin)
            .args(["validate", "-q"])
            .arg(&path)
            .env("S3_ACCESS_KEY", "a")
            .env("S3_SECRET_KEY", "b")
            .env("STACKIT_PROJECT_ID", "p")
            .env("STACKIT_SERVICE_ACCOUNT_TOKEN", "t")
            .env("SQL_PASSWORD", "s")
            .output()
            .unwrap();
        whole.push(start.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let peak = children_peak_rss();

    println!(
        "validate: {DATABASES} databases over {INSTANCES} instances ({} KiB of YAML), {RUNS} runs each",
        text.len() / 1024
    );
    println!("| measure | median | target |");
    println!("|---|---|---|");
    println!(
        "| `manifest::load` in process | {:.1} ms | |",
        median(in_process).as_secs_f64() * 1e3
    );
    println!(
        "| `sqlflex-import validate` wall time | {:.1} ms | < 200 ms |",
        median(whole).as_secs_f64() * 1e3
    );
    println!(
        "| `sqlflex-import validate` peak RSS | {:.1} MB | < 100 MB |",
        peak as f64 / 1e6
    );
    let _ = Path::new(bin);
    diagnostics_scale(bin, dir.path());
}

/// 40,000 invalid entries: rendering every diagnostic for people must cost
/// about what JSON costs (it was quadratic: 85 s against 0.8 s).
fn diagnostics_scale(bin: &str, dir: &Path) {
    const INVALID: usize = 40_000;
    let mut m = String::from(
        "version: 1\ns3: {endpoint: https://o.example, bucket: backups, access_key: a, secret_key: b}\n\
         instances:\n  prod: {sql: {host: h.example, user: u, password: p}}\ndatabases:\n",
    );
    for i in 0..INVALID {
        m.push_str(&format!(
            "  - {{name: \"bad\\tname-{i}\", instance: prod, method: sql, files: [x{i}.bak]}}\n"
        ));
    }
    let path = dir.join("invalid.yaml");
    std::fs::write(&path, m).unwrap();
    let time = |path: &Path, format: &str| {
        let runs: Vec<Duration> = (0..3)
            .map(|_| {
                let start = Instant::now();
                let out = Command::new(bin)
                    .args(["--format", format, "validate"])
                    .arg(path)
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(2));
                start.elapsed()
            })
            .collect();
        median(runs)
    };
    let (human, json) = (time(&path, "human"), time(&path, "json"));
    println!(
        "| `validate` of {INVALID} invalid entries, human diagnostics | {:.2} s | about JSON's |",
        human.as_secs_f64()
    );
    println!(
        "| the same, `--format json` | {:.2} s | |",
        json.as_secs_f64()
    );

    // The same kind of file written flow-style on one line: every
    // diagnostic points into one line of half a megabyte (it was quadratic
    // in the line's length: 10,000 errors took minutes).
    const ON_ONE_LINE: usize = 10_000;
    let entries: Vec<String> = (0..ON_ONE_LINE)
        .map(|i| format!("{{name: db{i}, instance: nowhere, method: sql, files: [x{i}.bak]}}"))
        .collect();
    let flow = format!(
        "version: 1\ns3: {{endpoint: https://o.example, bucket: backups, access_key: a, secret_key: b}}\n\
         instances: {{prod: {{sql: {{host: h.example, user: u, password: p}}}}}}\n\
         databases: [{}]\n",
        entries.join(", ")
    );
    let path = dir.join("one-line.yaml");
    std::fs::write(&path, flow).unwrap();
    let (human, json) = (time(&path, "human"), time(&path, "json"));
    println!(
        "| `validate` of {ON_ONE_LINE} errors on one line of flow-style YAML, human diagnostics | {:.2} s | about JSON's |",
        human.as_secs_f64()
    );
    println!(
        "| the same, `--format json` | {:.2} s | |",
        json.as_secs_f64()
    );
}
