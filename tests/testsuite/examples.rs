//! Every example manifest validates, and the committed schema is current.

use crate::common;

use common::{bin, project_root, run, write};
use std::collections::BTreeSet;

/// A pull-request check of an import plan needs none of the production
/// secrets: without its variables and secret files, every example is
/// valid with warnings that name each missing one; `--strict` (and `plan`)
/// refuses them. A variable that is set but malformed stays an error.
#[test]
fn examples_validate_without_their_environment() {
    let migration = project_root().join("examples/migration.yaml");
    let (code, stdout, stderr) = run(bin().arg("validate").arg(&migration));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": valid,"), "{stdout}");
    for name in [
        "PROD_INSTANCE_ID",
        "REPORTING_INSTANCE_ID",
        "S3_ACCESS_KEY",
        "SQL_PASSWORD",
        "STACKIT_PROJECT_ID",
        "STACKIT_SERVICE_ACCOUNT_TOKEN",
    ] {
        assert!(
            stderr.contains(&format!(
                "warning: environment variable `{name}` is not set; `plan` and `apply` need it"
            )),
            "{name}:\n{stderr}"
        );
    }
    assert!(stderr.contains("warning: cannot read the file"), "{stderr}");
    for strict in [&["validate", "--strict"][..], &["plan"]] {
        let (code, _, stderr) = run(bin().args(strict).arg(&migration));
        assert_eq!(code, 2, "{strict:?}: {stderr}");
        assert!(
            stderr.contains("error: environment variable `SQL_PASSWORD` is not set"),
            "{strict:?}: {stderr}"
        );
    }
    let demo = project_root().join("examples/demo.yaml");
    let (code, _, stderr) = run(bin()
        .arg("validate")
        .arg(&demo)
        .env("S3_ENDPOINT", "ftp://not-http.example"));
    assert_eq!(code, 2, "a malformed value is an error: {stderr}");
    assert!(stderr.contains("scheme `ftp`"), "{stderr}");
}

#[test]
fn every_example_validates() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "secret", "s3-secret\n");
    let token = write(dir.path(), "token", "token\n");
    let key = write(dir.path(), "key.json", "{}\n");
    let mut examples: Vec<_> = std::fs::read_dir(project_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 4, "{examples:?}");
    for example in examples {
        let text = std::fs::read_to_string(&example).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/manifest.schema.json"),
            "{} must start with the schema comment for editors",
            example.display()
        );
        let (code, stdout, stderr) = run(bin()
            .arg("validate")
            .arg(&example)
            .envs([
                ("S3_ACCESS_KEY", "ak"),
                ("S3_SECRET_KEY", "sk"),
                ("STACKIT_PROJECT_ID", "project"),
                ("STACKIT_INSTANCE_ID", "instance"),
                ("STACKIT_REGION", "eu01"),
                ("STACKIT_SERVICE_ACCOUNT_TOKEN", "token"),
                ("PROD_INSTANCE_ID", "prod-instance"),
                ("REPORTING_INSTANCE_ID", "reporting-instance"),
                ("STAGING_INSTANCE_ID", "staging-instance"),
                ("SQL_PASSWORD", "pw"),
                ("STACKIT_API_ENDPOINT", "http://127.0.0.1:8080"),
                ("S3_ENDPOINT", "http://127.0.0.1:9000"),
                ("S3_BUCKET", "sqlflex-demo"),
                ("SQL_HOST", "127.0.0.1"),
                ("SQL_PORT", "1433"),
                ("SQL_USER", "sqlflex"),
            ])
            .env("S3_SECRET_KEY_FILE", &secret)
            .env("STACKIT_TOKEN_FILE", &token)
            .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &key));
        assert_eq!(code, 0, "{}:\n{stderr}", example.display());
        assert!(stdout.contains(": valid,"), "{stdout}");
        assert!(
            !stderr.contains("warning"),
            "examples are warning-free: {stderr}"
        );
    }
}

#[test]
fn the_committed_schema_is_what_the_command_prints() {
    let (code, stdout, _) = run(bin().arg("schema"));
    assert_eq!(code, 0);
    let committed =
        std::fs::read_to_string(project_root().join("schemas/manifest.schema.json")).unwrap();
    assert!(
        committed == stdout,
        "schemas/manifest.schema.json is stale: run `cargo run -- schema > schemas/manifest.schema.json`"
    );
}

/// Every key path of the schema, `instances.<id>.sql.port` style.
fn schema_paths(schema: &serde_json::Value) -> BTreeSet<String> {
    fn walk(
        root: &serde_json::Value,
        node: &serde_json::Value,
        prefix: &str,
        out: &mut BTreeSet<String>,
    ) {
        let node = match node.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => root.pointer(r.trim_start_matches('#')).unwrap(),
            None => node,
        };
        for key in ["anyOf", "oneOf"] {
            for branch in node
                .get(key)
                .and_then(|b| b.as_array())
                .into_iter()
                .flatten()
            {
                walk(root, branch, prefix, out);
            }
        }
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                walk(root, v, &path, out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(root, items, &format!("{prefix}[]"), out);
        }
        if let Some(extra) = node.get("additionalProperties").filter(|a| a.is_object()) {
            walk(root, extra, &format!("{prefix}.<id>"), out);
        }
    }
    let mut out = BTreeSet::new();
    walk(schema, schema, "", &mut out);
    out
}

#[test]
fn the_key_reference_matches_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project_root().join("schemas/manifest.schema.json")).unwrap(),
    )
    .unwrap();
    let reference = std::fs::read_to_string(project_root().join("docs/manifest.md")).unwrap();
    let documented: BTreeSet<String> = reference
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_owned()))
        .filter(|k| !k.starts_with('-') && !k.contains(' '))
        .collect();
    let paths = schema_paths(&schema);
    let missing: Vec<_> = paths.difference(&documented).collect();
    assert!(missing.is_empty(), "docs/manifest.md lacks {missing:?}");
    let unknown: Vec<_> = documented
        .iter()
        .filter(|k| k.contains('.') || paths.contains(*k))
        .filter(|k| !paths.contains(*k))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/manifest.md documents keys the schema does not have: {unknown:?}"
    );
}

/// The getting-started path: the emulator the summary describes, then
/// `apply examples/demo.yaml` with the variables it printed. Its bucket
/// holds the demo's backups from the start, and every instance is printed.
#[test]
fn apply_of_the_demo_manifest_works_against_a_freshly_started_emulator() {
    let (child, env) = common::start_emulator(common::bin().args([
        "emulator",
        "--print-env",
        "--restore-seconds",
        "1",
    ]));
    for key in [
        "STACKIT_INSTANCE_ID_0",
        "STACKIT_INSTANCE_ID_1",
        "SQL_PORT_1",
    ] {
        assert!(env.contains_key(key), "--print-env lacks {key}: {env:?}");
    }
    let state = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(common::bin()
        .current_dir(project_root())
        .args([
            "--no-progress",
            "apply",
            "--yes",
            "examples/demo.yaml",
            "--state",
        ])
        .arg(state.path())
        .envs(&env));
    common::stop_emulator(child);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}
