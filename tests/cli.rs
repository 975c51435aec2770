//! The command line itself: help, completions, exit codes of usage errors.

mod common;

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
