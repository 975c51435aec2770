//! The engine's figures, on the emulator over loopback, release build:
//! `cargo bench --bench engine` prints the table the README quotes.
//!
//! | scenario | target |
//! |---|---|
//! | 200 imports over 4 instances, per-instance bound 25, 2 s restore | makespan <= 1.05 x ideal (4 s) |
//! | status requests per instance per second during that run | <= 2 |
//! | plan of 1,000 databases (HEAD + header read each) | < 2 s |
//! | apply of 10,000 imports (0.2 s restore, bound 200) | peak RSS < 150 MB |
//! | the 200 imports by a naive curl + xargs -P 25 loop | both makespans and request counts |
//! | discover of 2,000 objects of 1 MiB, then plan of its manifest | < 10 s and < 5 s |
//!
//! Nothing asserts a time: the machines are shared and noisy. `BENCH_WRAP=heaptrack`
//! runs the tool under that program (with the system allocator swapped in
//! `src/main.rs`, heaptrack shows where the memory goes).
// A bench prints its figures, and reads BENCH_TIMELINE.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::disallowed_methods)]

// The test kit: one manifest builder, one stats helper, for tests and benches.
#[path = "../tests/testsuite/common/mod.rs"]
#[allow(dead_code)] // The bench uses a part of the kit.
mod common;

use common::emu::{self, Db, stats};
use futures::StreamExt;
use serde_json::Value;
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::{self, Config, Emulator};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sqlflex-import");

async fn emulator(instances: usize, restore: Duration) -> Emulator {
    emulator::start(Config {
        instances,
        restore_duration: restore,
        ..Config::default()
    })
    .await
    .expect("emulator")
}

/// Uploads one small backup per name (or `distinct` of them, shared).
async fn upload(e: &Emulator, names: &[String], distinct: usize) -> Vec<String> {
    let s3 = s3_of(e);
    let mut keys = Vec::new();
    let count = distinct.min(names.len());
    let uploads = futures::future::join_all((0..count).map(|i| {
        let s3 = &s3;
        let name = &names[i];
        async move {
            let mut spec = BackupSpec::full(name);
            spec.size = 0; // header only: the bench measures the tool, not byte copying
            let key = format!("bench/{name}.bak");
            s3.put(&key, writer::write(&spec).into())
                .await
                .expect("upload");
            key
        }
    }))
    .await;
    for i in 0..names.len() {
        keys.push(uploads[i % count].clone());
    }
    keys
}

fn env_of(e: &Emulator) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: std::collections::HashMap<&str, String> = e.env().into_iter().collect();
    move |k| vars.get(k).cloned()
}

/// The kit's manifest (both doors on every instance), the databases spread
/// over the instances in turn.
fn manifest_text(
    e: &Emulator,
    max_parallel: u32,
    per_instance: u32,
    dbs: &[(String, String)],
) -> String {
    let list: Vec<Db<'_>> = dbs
        .iter()
        .enumerate()
        .map(|(i, (name, key))| Db::api(name, i % e.instance_ids.len(), &[key.as_str()]))
        .collect();
    emu::manifest(e, max_parallel, per_instance, &list)
}

struct Run {
    wall: f64,
    cpu: f64,
    peak_rss: u64,
    stdout: String,
    ok: bool,
}

async fn tool(e: &Emulator, args: &[&str]) -> Run {
    let mut cmd = match std::env::var("BENCH_WRAP") {
        Ok(w) => {
            let mut c = Command::new(w);
            c.arg(BIN);
            c
        }
        Err(_) => Command::new(BIN),
    };
    cmd.args(args).envs(e.env()).stdin(Stdio::null());
    match std::env::var("BENCH_TIMELINE") {
        Ok(_) => cmd
            .env(
                "RUST_LOG",
                "trace,tiberius=error,hyper=info,reqwest=info,h2=info,hyper_util=info,rustls=info",
            )
            .stderr(std::fs::File::create("/tmp/timeline.log").unwrap()),
        Err(_) => cmd.stderr(Stdio::null()),
    };
    cmd.stdout(Stdio::piped());
    let start = Instant::now();
    // This child's own usage (wait4), not the maximum over every child so far.
    let (stdout, status, usage) = tokio::task::spawn_blocking(move || {
        // Reaped by wait4 below, which also gives its usage.
        #[allow(clippy::zombie_processes)]
        let mut child = cmd.spawn().expect("the tool runs");
        let mut pipe = child.stdout.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut pipe, &mut text).ok();
            text
        });
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child; the structs are ours to fill.
        unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        (reader.join().unwrap(), status, usage)
    })
    .await
    .unwrap();
    let wall = start.elapsed().as_secs_f64();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Run {
        wall,
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        peak_rss: usage.ru_maxrss as u64 * 1024,
        stdout,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// First submission to last online, from the NDJSON events.
fn makespan(ndjson: &str) -> f64 {
    let mut first = None;
    let mut last = None;
    for line in ndjson.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let t = v["time"]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        match v["event"].as_str() {
            Some("submitting") if first.is_none() => first = t,
            Some("online") => last = t,
            _ => {}
        }
    }
    match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default().as_secs_f64(),
        _ => f64::NAN,
    }
}

/// Restores accepted over every instance (the kit counts them per database).
fn submissions(stats: &Value, e: &Emulator) -> u64 {
    emu::submissions(stats, e).iter().map(|(_, n)| n).sum()
}

fn sum(stats: &Value, field: &str) -> u64 {
    stats["instances"]
        .as_object()
        .unwrap()
        .values()
        .map(|i| i[field].as_u64().unwrap_or(0))
        .sum()
}

fn row(scenario: &str, figure: String, target: &str) {
    println!("| {scenario} | {figure} | {target} |");
}

async fn two_hundred() {
    let e = emulator(4, Duration::from_secs(2)).await;
    let names: Vec<String> = (0..200).map(|i| format!("db{i:03}")).collect();
    let keys = upload(&e, &names, 200).await;
    let dbs: Vec<(String, String)> = names.into_iter().zip(keys).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, manifest_text(&e, 100, 25, &dbs)).unwrap();
    let before = stats(&e).await;
    let run = tool(
        &e,
        &[
            "--format",
            "json",
            "-q",
            "apply",
            "--yes",
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert!(run.ok, "the 200-import run failed:\n{}", run.stdout);
    let after = stats(&e).await;
    let span = makespan(&run.stdout);
    if std::env::var("BENCH_TIMELINE").is_ok() {
        std::fs::write("/tmp/timeline.ndjson", &run.stdout).unwrap();
    }
    let status = sum(&after, "status_requests") - sum(&before, "status_requests");
    let peak: Vec<u64> = after["instances"]
        .as_object()
        .unwrap()
        .values()
        .map(|i| i["max_concurrent_restores"].as_u64().unwrap())
        .collect();
    row(
        "200 imports, 4 instances x 25, 2 s restore: makespan",
        format!(
            "{span:.2} s = {:.3} x ideal 4 s (whole command {:.2} s)",
            span / 4.0,
            run.wall
        ),
        "<= 1.05 x ideal",
    );
    row("  peak running per instance", format!("{peak:?}"), "25");
    row(
        "  status requests per instance per second",
        format!(
            "{:.2} ({status} in {:.2} s over 4 instances)",
            status as f64 / 4.0 / run.wall,
            run.wall
        ),
        "<= 2",
    );
    let lookups = sum(&after, "database_lookups") - sum(&before, "database_lookups");
    row(
        "  the checks after the import: database lookups",
        format!("{lookups} (one per database, T-SQL)"),
        "one per database",
    );
    // The same imports again as a person runs them: human output, a
    // state folder of its own, the summary table at the end.
    let fresh = emulator(4, Duration::from_secs(2)).await;
    let names: Vec<String> = (0..200).map(|i| format!("db{i:03}")).collect();
    let keys = upload(&fresh, &names, 200).await;
    let dbs: Vec<(String, String)> = names.into_iter().zip(keys).collect();
    let human = dir.path().join("human.yaml");
    std::fs::write(&human, manifest_text(&fresh, 100, 25, &dbs)).unwrap();
    let plain = tool(
        &fresh,
        &["--no-progress", "apply", "--yes", human.to_str().unwrap()],
    )
    .await;
    assert!(plain.ok, "the human-output run failed");
    row(
        "  peak RSS of the tool (NDJSON events; human output)",
        format!(
            "{:.1} MB; {:.1} MB",
            run.peak_rss as f64 / 1e6,
            plain.peak_rss as f64 / 1e6
        ),
        "< 60 MB",
    );
    row(
        "  CPU time per import",
        format!(
            "{:.2} ms ({:.2} s for 200)",
            run.cpu / 200.0 * 1000.0,
            run.cpu
        ),
        "",
    );
    row(
        "  submissions",
        format!("{}", submissions(&after, &e)),
        "200",
    );
    naive(span, status + lookups + submissions(&after, &e)).await;
}

/// The same 200 imports by a shell loop: curl per database, started with
/// xargs -P 25 per instance, polling each database once a second.
async fn naive(ours: f64, our_requests: u64) {
    let e = emulator(4, Duration::from_secs(2)).await;
    let names: Vec<String> = (0..200).map(|i| format!("db{i:03}")).collect();
    upload(&e, &names, 200).await;
    let env = env_of(&e);
    let token = env("STACKIT_SERVICE_ACCOUNT_TOKEN").unwrap();
    let script = r#"
base="$1"; token="$2"; s3="$3"; ak="$4"; sk="$5"; shift 5
import_one() {
  db="$1"
  curl -s -o /dev/null -X POST "$base/restores" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"database_name\":\"$db\",\"source\":{\"type\":\"EXTERNAL_S3\",\"database_owner\":\"app_owner\",\"s3_details\":{\"s3_access_key\":\"$ak\",\"s3_access_secret\":\"$sk\",\"s3_bucket\":\"$s3/\",\"s3_files\":[{\"file_number\":1,\"file_path\":\"$s3/bench/$db.bak\"}]}}}"
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/databases/$db" -H "Authorization: Bearer $token")" = 200 ]; do sleep 1; done
}
export -f import_one; export base token s3 ak sk
printf '%s\n' "$@" | xargs -P 25 -I{} bash -c 'import_one {}'
"#;
    let s3 = format!("s3://{}/{}", e.s3, emulator::BUCKET);
    let start = Instant::now();
    let mut children = Vec::new();
    for (i, id) in e.instance_ids.iter().enumerate() {
        let base = format!(
            "{}/v3alpha1/projects/{}/regions/eu01/instances/{id}",
            e.api_endpoint(),
            e.project_id
        );
        let mine: Vec<String> = names.iter().skip(i).step_by(4).cloned().collect();
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .arg("naive")
            .args([
                &base,
                &token,
                &s3,
                &e.credentials.s3_access_key,
                &e.credentials.s3_secret_key,
            ])
            .args(&mine);
        children.push(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("bash"),
        );
    }
    tokio::task::spawn_blocking(move || children.into_iter().for_each(|mut c| drop(c.wait())))
        .await
        .unwrap();
    let span = start.elapsed().as_secs_f64();
    let s = stats(&e).await;
    let requests = sum(&s, "status_requests") + sum(&s, "database_lookups") + submissions(&s, &e);
    row(
        "naive curl + xargs -P 25 per instance: makespan",
        format!("{span:.2} s (sqlflex-import: {ours:.2} s)"),
        "compare",
    );
    row(
        "  requests (status, lookups, submit)",
        format!("{requests} (sqlflex-import: {our_requests})"),
        "compare",
    );
}

async fn plan_thousand() {
    let e = emulator(4, Duration::from_secs(2)).await;
    let names: Vec<String> = (0..1000).map(|i| format!("p{i:04}")).collect();
    let keys = upload(&e, &names, 1000).await;
    let dbs: Vec<(String, String)> = names.into_iter().zip(keys).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, manifest_text(&e, 100, 25, &dbs)).unwrap();
    let mut walls = Vec::new();
    for _ in 0..3 {
        let run = tool(&e, &["--format", "json", "plan", path.to_str().unwrap()]).await;
        assert!(run.ok, "plan failed");
        walls.push(run.wall);
    }
    walls.sort_by(f64::total_cmp);
    row(
        "plan of 1,000 databases of 64 KiB (a HEAD and one ranged GET each: a small object is read whole, no tail read), median of 3",
        format!("{:.2} s", walls[1]),
        "< 2 s",
    );
}

async fn ten_thousand() {
    let e = emulator(4, Duration::from_millis(200)).await;
    let names: Vec<String> = (0..10_000).map(|i| format!("t{i:05}")).collect();
    let keys = upload(&e, &names, 100).await;
    let dbs: Vec<(String, String)> = names.into_iter().zip(keys).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, manifest_text(&e, 200, 50, &dbs)).unwrap();
    let run = tool(
        &e,
        &[
            "--format",
            "json",
            "-q",
            "apply",
            "--yes",
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert!(run.ok, "the 10,000-import run failed");
    let s = stats(&e).await;
    row(
        "apply of 10,000 imports (0.2 s restore, bound 200 = 4 x 50)",
        format!(
            "peak RSS {:.1} MB, {:.1} s, {} submissions, CPU {:.2} ms per import",
            run.peak_rss as f64 / 1e6,
            run.wall,
            submissions(&s, &e),
            run.cpu / 10.0
        ),
        "peak RSS < 150 MB",
    );
}

/// `discover` over a backup share of 2,000 full backups of 1 MiB each, then
/// `plan` of the manifest it writes. Both read at most 320 KiB of an object
/// (its first 256 KiB and last 64 KiB), so a larger backup costs them the
/// same; 1 MiB keeps the upload short.
async fn discover_share() {
    const COUNT: usize = 2000;
    let e = emulator(1, Duration::from_secs(2)).await;
    let s3 = s3_of(&e);
    let started = Instant::now();
    futures::stream::iter(0..COUNT)
        .map(|i| {
            let s3 = &s3;
            async move {
                let server = format!("SQL{:02}", i % 20);
                let name = format!("db{i:04}");
                let spec = BackupSpec {
                    server_name: server.clone(),
                    size: 1 << 20,
                    ..BackupSpec::full(&name)
                };
                let key =
                    format!("share/{server}/{name}/FULL/{server}_{name}_FULL_20261202_020000.bak");
                s3.put(&key, writer::write(&spec).into())
                    .await
                    .expect("upload");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "uploaded {COUNT} objects in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yaml");
    std::fs::write(&base, emu::manifest(&e, 100, 25, &[])).unwrap();
    let out = dir.path().join("out.yaml");
    let (base, out_arg) = (base.to_str().unwrap(), out.to_str().unwrap());
    let discover = [
        "discover",
        base,
        "--prefix",
        "share/",
        "--instance",
        "i0",
        "-o",
        out_arg,
    ];
    let figure = three_runs(&e, &discover).await;
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        written.matches("- name:").count(),
        COUNT,
        "one entry per backup"
    );
    row(
        "discover of 2,000 objects of 1 MiB (20 servers), median of 3",
        figure,
        "< 10 s",
    );
    let figure = three_runs(&e, &["--format", "json", "plan", out_arg]).await;
    row(
        "plan of those 2,000 databases (a HEAD and two ranged GETs each), median of 3",
        figure,
        "< 5 s, < 100 MB",
    );
}

/// Three runs of the tool: the median wall time (and the range), the
/// median CPU time, the largest peak RSS.
async fn three_runs(e: &Emulator, args: &[&str]) -> String {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut peak = 0;
    for _ in 0..3 {
        let run = tool(e, args).await;
        assert!(run.ok, "{args:?} failed:\n{}", run.stdout);
        walls.push(run.wall);
        cpus.push(run.cpu);
        peak = peak.max(run.peak_rss);
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    format!(
        "{:.2} s wall ({:.2}-{:.2}), the tool's CPU {:.2} s, peak RSS {:.1} MB",
        walls[1],
        walls[0],
        walls[2],
        cpus[1],
        peak as f64 / 1e6
    )
}

fn s3_of(e: &Emulator) -> sqlflex_import::s3::S3 {
    let bucket = sqlflex_import::ops::demo::bucket_of(e).expect("the emulator's bucket");
    sqlflex_import::s3::S3::new(
        &bucket,
        sqlflex_import::http::client(sqlflex_import::http::DEFAULT_TIMEOUT),
    )
    .unwrap()
}

fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("| scenario | measured | target |\n|---|---|---|");
    runtime.block_on(async {
        if wants("200") {
            two_hundred().await;
        }
        if wants("plan") {
            plan_thousand().await;
        }
        if wants("10k") {
            ten_thousand().await;
        }
        if wants("discover") {
            discover_share().await;
        }
    });
}
