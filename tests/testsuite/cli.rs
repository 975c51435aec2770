//! The command line itself: help, completions, exit codes of usage errors.

use crate::common;

use common::{bin, run};

#[test]
fn help_explains_commands_and_exit_codes() {
    let (code, stdout, _) = run(bin().arg("--help"));
    assert_eq!(code, 0);
    for word in [
        "validate",
        "plan",
        "apply",
        "inspect",
        "schema",
        "emulator",
        "demo",
        "completions",
        "--format",
        "Exit codes",
    ] {
        assert!(stdout.contains(word), "--help lacks {word}:\n{stdout}");
    }
    let (code, stdout, _) = run(bin().args(["apply", "--help"]));
    assert_eq!(code, 0);
    for flag in [
        "--max-parallel",
        "--state",
        "--report",
        "--junit",
        "--yes",
        "--only",
        "--tag",
        "--shard",
        "--skip-invalid",
    ] {
        assert!(stdout.contains(flag), "apply --help lacks {flag}");
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, _) = run(bin().args(["completions", shell]));
        assert_eq!(code, 0, "{shell}");
        assert!(
            stdout.contains("validate") && stdout.contains("inspect"),
            "{shell}: {stdout}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, stderr) = run(bin().arg("frobnicate"));
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(bin().args(["apply", "m.yaml", "--max-parallel", "0"]));
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(bin().args(["plan", "m.yaml", "--shard", "5/4"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("K must be between 1 and N"), "{stderr}");
}

/// RUST_LOG takes `target=level` directives over `-v`/`-q`; one that does
/// not parse is named, and the levels of `-v`/`-q` apply.
#[test]
fn a_rust_log_that_does_not_parse_is_named_and_ignored() {
    let manifest = common::project_root().join("examples/minimal.yaml");
    let validate = |env: Option<&str>, quiet: bool| {
        let mut cmd = bin();
        cmd.env_remove("RUST_LOG");
        if let Some(value) = env {
            cmd.env("RUST_LOG", value);
        }
        if quiet {
            cmd.arg("-q");
        }
        run(cmd.arg("validate").arg(&manifest))
    };
    let (plain, _, plain_err) = validate(None, false);
    let (code, _, stderr) = validate(Some("sqlflex_import=loud"), false);
    assert_eq!(code, plain, "{stderr}");
    assert!(
        stderr.contains("RUST_LOG is not a list of `target=level` directives"),
        "{stderr}"
    );
    assert!(!plain_err.contains("RUST_LOG"), "{plain_err}");
    // `-q` keeps errors only, so the warning is not shown.
    let (_, _, quiet) = validate(Some("sqlflex_import=loud"), true);
    assert!(!quiet.contains("RUST_LOG"), "{quiet}");
    // A valid directive is taken as it is: nothing to warn about.
    let (_, _, valid) = validate(Some("warn,sqlflex_import=debug"), false);
    assert!(!valid.contains("RUST_LOG"), "{valid}");
}

/// A reader that stops (`| head -c 5`) closes the pipe; the command ends
/// quietly, with its own exit code, instead of panicking on the next write.
/// The output is larger than a pipe's buffer, so writes do meet the closed
/// end.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("sales.bak");
    let spec = sqlflex_import::backup::writer::BackupSpec::full("sales");
    std::fs::write(&backup, sqlflex_import::backup::writer::write(&spec)).unwrap();
    let backup = backup.to_str().unwrap().to_owned();
    let many: Vec<String> = std::iter::repeat_n(backup, 400).collect();
    let mut inspect = vec!["--format".to_owned(), "json".into(), "inspect".into()];
    inspect.extend(many);
    let cases: [Vec<String>; 3] = [
        vec!["schema".into()],
        vec!["completions".into(), "bash".into()],
        inspect,
    ];
    for args in cases {
        let mut child = bin()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 5];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The read end is closed here, with most of the output unwritten.
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{}: {stderr}", args[0]);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", args[0]);
    }
}

/// With `--format json`, stdout is JSON even when the manifest does not
/// load: the diagnostics, as `validate --format json` gives them.
#[test]
fn plan_and_apply_print_json_diagnostics_for_an_invalid_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "m.yaml", "version: 1\ndatabases: 5\n");
    for command in ["plan", "apply", "status"] {
        let (code, stdout, _) =
            run(bin().args(["--format", "json", command, path.to_str().unwrap()]));
        assert_eq!(code, 2, "{command}");
        let report: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{command}: {e}: {stdout:?}"));
        assert_eq!(report["valid"], false, "{command}");
        assert!(
            !report["diagnostics"].as_array().unwrap().is_empty(),
            "{command}: {report}"
        );
    }
}
