//! One `apply` per state at a time, with two real processes: the second
//! refuses and names the first; after the first is killed with -9, the next
//! run takes the stale lock over and resumes.

use crate::common;
use crate::common::emu;

use emu::{Db, S3, apply, manifest, spawn_apply, stats};
use sqlflex_import::backup::writer::{self, BackupSpec};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_on_the_same_state_refuses_and_a_killed_ones_lock_is_taken_over() {
    let e = emu::start(Duration::from_secs(4)).await;
    let status = S3::new(&e)
        .put("sales.bak", writer::write(&BackupSpec::full("sales")))
        .await
        .status();
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &manifest(&e, 1, 1, &[Db::api("sales", 0, &["sales.bak"])]),
    );
    let m = path.to_str().unwrap();
    let mut first = spawn_apply(
        &e,
        &path,
        std::process::Stdio::null(),
        std::process::Stdio::null(),
    );
    // The first run holds the lock once it has submitted.
    let submitted = emu::eventually(Duration::from_secs(30), || async {
        let s = stats(&e).await;
        (s["instances"][&e.instance_ids[0]]["restore_submissions"]["sales"] == 1).then_some(())
    })
    .await;
    assert!(submitted.is_some(), "the first apply submitted");

    let (code, _, stderr) = apply(&e, &[m]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another `apply` is running on this state (pid {} on host",
            first.id()
        )) && stderr.contains("since"),
        "{stderr}"
    );
    // A copy of the manifest under another name, or a shard of it, is the
    // same state: refused too.
    let copy = dir.path().join("copy.yaml");
    std::fs::copy(&path, &copy).unwrap();
    for args in [vec![copy.to_str().unwrap()], vec!["--shard", "1/2", m]] {
        let (code, _, stderr) = apply(&e, &args).await;
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains("another `apply` is running"), "{stderr}");
    }

    // SAFETY: signalling our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    let _ = first.wait();
    let (code, stdout, stderr) = apply(&e, &[m]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("ended without releasing its lock; taking it over"),
        "{stderr}"
    );
    assert_eq!(
        stats(&e).await["instances"][&e.instance_ids[0]]["restore_submissions"]["sales"],
        1,
        "re-attached, not submitted again"
    );
}
