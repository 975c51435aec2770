//! What a person sees on a terminal: `apply` under a pseudo-terminal of 12
//! rows (Python's `pty`, the test's only outside helper; without
//! `python3` it says so and skips, in CI it must not).

use crate::common;
use crate::common::emu;

use emu::{Db, S3};
use sqlflex_import::backup::writer::{self, BackupSpec};
use std::process::Command;
use std::time::Duration;

/// Runs the command on a pseudo-terminal of `rows` x 120 (its stderr; stdin
/// and stdout elsewhere) and returns everything drawn on it.
const ON_A_TERMINAL: &str = r#"
import fcntl, json, os, struct, subprocess, sys, termios
rows, argv, env = int(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 120, 0, 0))
child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=slave, env={**os.environ, **env})
os.close(slave)
drawn = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    drawn += chunk
child.wait()
sys.stdout.write(json.dumps({"code": child.returncode, "drawn": drawn.decode("utf-8", "replace")}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overall_line_stays_on_a_small_terminal_and_counts_the_rest() {
    let python = std::env::var("SQLFLEX_PYTHON").unwrap_or_else(|_| "python3".into());
    if Command::new(&python)
        .arg("-c")
        .arg("import pty")
        .output()
        .is_err()
    {
        common::skip(&format!("{python} cannot be run; it draws the terminal"));
        return;
    }
    let e = emu::start(Duration::from_secs(3)).await;
    let s3 = S3::new(&e);
    let names: Vec<String> = (0..20).map(|i| format!("tty{i:02}")).collect();
    for n in &names {
        let status = s3
            .put(&format!("{n}.bak"), writer::write(&BackupSpec::full(n)))
            .await
            .status();
        assert_eq!(status, 200);
    }
    let keys: Vec<String> = names.iter().map(|n| format!("{n}.bak")).collect();
    let dbs: Vec<Db<'_>> = names
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(i, (n, k))| Db::api(n, i % 2, &[k]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "m.yaml", &emu::manifest(&e, 20, 10, &dbs));
    let bin = env!("CARGO_BIN_EXE_sqlflex-import");
    let argv = serde_json::json!([bin, "apply", "--yes", path.to_str().unwrap()]);
    let env: std::collections::HashMap<&str, String> = e.env().into_iter().collect();
    let mut cmd = Command::new(&python);
    cmd.arg("-c")
        .arg(ON_A_TERMINAL)
        .arg("12")
        .arg(argv.to_string())
        .arg(serde_json::to_string(&env).unwrap());
    let (code, stdout, stderr) = emu::run(cmd).await;
    assert_eq!(code, 0, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).expect("the script's JSON");
    let drawn = out["drawn"].as_str().unwrap();
    assert_eq!(out["code"], 0, "{drawn}");
    // 12 rows hold 6 bars: the 14 other imports are counted on the
    // overall line, which is drawn to the end.
    assert!(drawn.contains("more running"), "{drawn}");
    assert!(drawn.contains("/20 done"), "{drawn}");
    let most_bars = drawn
        .split("\u{1b}[2K")
        .filter(|l| l.contains("restoring") || l.contains("attached"))
        .count();
    assert!(most_bars > 0, "bars are drawn: {drawn}");
}
