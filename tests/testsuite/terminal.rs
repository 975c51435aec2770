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

/// A Python that can make a pseudo-terminal, or None (said, and skipped).
fn python() -> Option<String> {
    let python = std::env::var("SQLFLEX_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import pty, termios"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip(&format!("{python} cannot make a pseudo-terminal"));
        return None;
    }
    Some(python)
}

/// `argv` run with its stderr on a terminal of `rows` rows: its exit code
/// and everything drawn there.
async fn on_a_terminal(
    python: &str,
    rows: u16,
    argv: &[&str],
    env: &[(&str, String)],
) -> (i64, String) {
    let env: std::collections::HashMap<&str, &str> =
        env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(ON_A_TERMINAL)
        .arg(rows.to_string())
        .arg(serde_json::to_string(argv).unwrap())
        .arg(serde_json::to_string(&env).unwrap());
    let (code, stdout, stderr) = emu::run(cmd).await;
    assert_eq!(code, 0, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).expect("the script's JSON");
    (
        out["code"].as_i64().unwrap_or(-1),
        out["drawn"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overall_line_stays_on_a_small_terminal_and_counts_the_rest() {
    let Some(python) = python() else { return };
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
    let argv = [bin, "apply", "--yes", path.to_str().unwrap()];
    let (code, drawn) = on_a_terminal(&python, 12, &argv, &e.env()).await;
    assert_eq!(code, 0, "{drawn}");
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

/// A plan that takes more than a second says, on a terminal, how far it is.
/// The instance's API here answers every request after 1.5 s, with a 401
/// (which is not asked again), so the plan takes that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_plan_shows_how_many_databases_are_checked() {
    let Some(python) = python() else { return };
    let e = emu::start(Duration::from_millis(200)).await;
    let status = S3::new(&e)
        .put("slow.bak", writer::write(&BackupSpec::full("slow")))
        .await
        .status();
    assert_eq!(status, 200);
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", slow.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = slow.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let answer = "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                              content-length: 2\r\nconnection: close\r\n\r\n{}";
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    let m = emu::manifest(&e, 4, 2, &[Db::api("slow", 0, &["slow.bak"])])
        .replace("${STACKIT_API_ENDPOINT}", &endpoint);
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "m.yaml", &m);
    let env = e.env();
    let bin = env!("CARGO_BIN_EXE_sqlflex-import");
    let argv = [bin, "plan", path.to_str().unwrap()];
    let (code, drawn) = on_a_terminal(&python, 24, &argv, &env).await;
    assert_eq!(code, 1, "the instance refused: {drawn}");
    assert!(drawn.contains("planning: 0/1 databases checked"), "{drawn}");
}
