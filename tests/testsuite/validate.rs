//! `validate`: every offline check, through the library and the binary.

use crate::common;

use common::{bin, run, write};
use sqlflex_import::diagnostic::{Diagnostic, Severity};
use sqlflex_import::manifest::{self, Loaded, Rejected};
use std::path::Path;

const BASE: &str = r#"version: 1
defaults: {owner: app_owner}
s3:
  endpoint: https://object.storage.eu01.onstackit.cloud
  bucket: backups
  access_key: ${S3_ACCESS_KEY}
  secret_key: ${S3_SECRET_KEY}
instances:
  prod:
    project_id: p1
    region: eu01
    instance_id: i1
    api: {token: "${TOKEN}"}
    sql: {host: db.example, user: importer, password: "${SQL_PASSWORD}"}
databases:
  - {name: sales, instance: prod, files: [sales/1.bak, sales/2.bak]}
  - {name: hr, instance: prod, method: sql, files: {prefix: hr/}}
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "S3_ACCESS_KEY" => Some("AKIA-TEST".into()),
        "S3_SECRET_KEY" => Some("s3-secret-value".into()),
        "TOKEN" => Some("token-value".into()),
        "SQL_PASSWORD" => Some("sql-password-value".into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Loaded, Rejected> {
    manifest::load_str("m.yaml", text, Path::new("."), &env)
}

/// The diagnostics of BASE with `from` replaced by `to`.
fn diagnostics_of(from: &str, to: &str) -> Vec<Diagnostic> {
    assert!(
        BASE.contains(from),
        "test setup: {from:?} is not in the base manifest"
    );
    match load(&BASE.replacen(from, to, 1)) {
        Ok(loaded) => loaded.warnings,
        Err(rejected) => rejected.diagnostics,
    }
}

/// Exactly one diagnostic of `severity` mentions `message`; returns it.
fn expect_one(diagnostics: &[Diagnostic], severity: Severity, message: &str) -> Diagnostic {
    let found: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.severity == severity && d.message.contains(message))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want one {severity:?} with {message:?}, got {diagnostics:#?}"
    );
    found[0].clone()
}

fn error_at(from: &str, to: &str, message: &str, path: &str, line: usize) -> Diagnostic {
    let d = expect_one(&diagnostics_of(from, to), Severity::Error, message);
    assert_eq!(d.path, path, "{d:#?}");
    assert_eq!(d.location.expect("located").line, line, "{d:#?}");
    d
}

#[test]
fn the_base_manifest_is_valid() {
    let loaded = load(BASE).expect("valid");
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(loaded.manifest.databases.len(), 2);
    assert_eq!(
        loaded.manifest.s3.secret_key.as_ref().unwrap().expose(),
        "s3-secret-value"
    );
}

#[test]
fn yaml_syntax_errors_point_at_the_place() {
    let d = expect_one(
        &diagnostics_of("version: 1", "version: [1"),
        Severity::Error,
        "YAML syntax error",
    );
    assert!(d.location.is_some());
}

#[test]
fn unknown_keys_suggest_the_near_miss() {
    let d = error_at(
        "instance_id: i1",
        "instnace_id: i1",
        "unknown key `instnace_id`",
        "instances.prod.instnace_id",
        12,
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `instance_id`?"));
    assert_eq!(d.location.unwrap().column, 5);
    let d = expect_one(
        &diagnostics_of("bucket: backups", "bucket: backups\n  colour: red"),
        Severity::Error,
        "unknown key `colour`",
    );
    assert!(
        d.hint.unwrap().contains("allowed keys here"),
        "far misses list the allowed keys"
    );
}

#[test]
fn wrong_types_name_what_was_expected() {
    error_at(
        "version: 1",
        "version: one",
        "`version` must be a whole number, not a string",
        "version",
        1,
    );
    error_at(
        "files: [sales/1.bak, sales/2.bak]",
        "files: 7",
        "`files` has none of the allowed forms",
        "databases[0].files",
        16,
    );
    error_at(
        "method: sql",
        "method: sqll",
        "`method` must be one of `api`, `sql`",
        "databases[1].method",
        17,
    );
}

#[test]
fn every_error_is_reported_in_one_run() {
    let text = BASE
        .replace("version: 1", "version: one")
        .replace("name: hr", "name: master")
        .replace("bucket: backups", "bucket: Backups_2026")
        .replace("instance_id: i1", "instnace_id: i1");
    let rejected = load(&text).expect_err("invalid");
    let errors: Vec<&str> = rejected
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.as_str())
        .collect();
    assert!(errors.iter().any(|m| m.contains("`version`")), "{errors:?}");
    assert!(
        errors.iter().any(|m| m.contains("system database")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|m| m.contains("instnace_id")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|m| m.contains("not a valid bucket name")),
        "{errors:?}"
    );
}

#[test]
fn the_api_method_needs_ids_a_token_and_an_owner() {
    error_at(
        "    project_id: p1\n",
        "",
        "used with method `api` but has no `project_id`",
        "instances.prod",
        9,
    );
    let d = error_at(
        "api: {token: \"${TOKEN}\"}",
        "api: {}",
        "has no token source",
        "instances.prod",
        9,
    );
    assert!(d.hint.unwrap().contains("STACKIT_SERVICE_ACCOUNT_TOKEN"));
    error_at(
        "defaults: {owner: app_owner}",
        "defaults: {}",
        "has no owner, which the REST API requires",
        "databases[0].name",
        16,
    );
}

#[test]
fn a_token_in_the_environment_is_a_token_source() {
    let text = BASE.replace("api: {token: \"${TOKEN}\"}", "api: {}");
    let with_token = |name: &str| match name {
        "STACKIT_SERVICE_ACCOUNT_TOKEN" => Some("t".into()),
        other => env(other),
    };
    manifest::load_str("m.yaml", &text, Path::new("."), &with_token).expect("env token counts");
}

#[test]
fn the_sql_method_needs_host_user_and_password() {
    error_at(
        "password: \"${SQL_PASSWORD}\"",
        "port: 1433",
        "used with method `sql` but has no `sql.password` or `sql.password_file`",
        "instances.prod",
        9,
    );
    error_at(
        "    sql: {host: db.example, user: importer, password: \"${SQL_PASSWORD}\"}\n",
        "",
        "has no `sql.host`, `sql.user`, `sql.password` or `sql.password_file`",
        "instances.prod",
        9,
    );
}

#[test]
fn unset_environment_variables_are_named() {
    let d = error_at(
        "${S3_SECRET_KEY}",
        "${S3_SECRT_KEY}",
        "environment variable `S3_SECRT_KEY` is not set",
        "s3.secret_key",
        7,
    );
    assert!(d.hint.unwrap().contains("export S3_SECRT_KEY"));
    // A default makes it optional.
    assert!(diagnostics_of("${S3_SECRET_KEY}", "${S3_SECRT_KEY:-fallback}").is_empty());
}

/// A value whose variable is unset keeps the reference's own text; checks
/// of that text (not a URL, not a number, `$` in an id, no such file or
/// instance) would only repeat the unset variable, so each is named once.
#[test]
fn an_unset_variable_is_the_only_error_about_its_value() {
    let text = BASE
        .replace(
            "https://object.storage.eu01.onstackit.cloud",
            "${S3_ENDPOINT}",
        )
        .replace("bucket: backups", "bucket: ${S3_BUCKET}")
        .replace("instance_id: i1", "instance_id: ${PROD_INSTANCE_ID}")
        .replace("user: importer,", "user: importer, port: \"${SQL_PORT}\",")
        .replace(
            "instance: prod, method: sql",
            "instance: \"${HR_INSTANCE}\", method: sql",
        )
        .replace(
            "api: {token: \"${TOKEN}\"}",
            "api: {service_account_key_path: \"keys/${KEY_NAME}.json\"}",
        );
    let rejected = load(&text).expect_err("unset variables");
    let unset = [
        "S3_ENDPOINT",
        "S3_BUCKET",
        "PROD_INSTANCE_ID",
        "KEY_NAME",
        "SQL_PORT",
        "HR_INSTANCE",
    ];
    let messages: Vec<&str> = rejected
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    let want: Vec<String> = unset
        .iter()
        .map(|v| format!("environment variable `{v}` is not set"))
        .collect();
    assert_eq!(messages, want, "{:#?}", rejected.diagnostics);

    // What the value would be refused for once set is still said then.
    let set = |name: &str| match name {
        "S3_ENDPOINT" => Some("http://object.storage.example".into()),
        other => env(other),
    };
    let text = BASE.replace(
        "https://object.storage.eu01.onstackit.cloud",
        "${S3_ENDPOINT}",
    );
    let rejected = manifest::load_str("m.yaml", &text, Path::new("."), &set).expect_err("http");
    expect_one(&rejected.diagnostics, Severity::Error, "https");
}

/// An instance is "not used" only when every database names a known one: a
/// database whose instance is an unset variable or a slip may be meant for
/// it, and the diagnostic about that database is the one that helps.
#[test]
fn an_instance_is_unused_only_when_every_database_names_a_known_one() {
    for (instance, error) in [
        ("\"${WHERE}\"", "environment variable `WHERE` is not set"),
        ("prdo", "there is no instance `prdo`"),
    ] {
        let text = BASE.replace("instance: prod", &format!("instance: {instance}"));
        let rejected = load(&text).expect_err(instance);
        let messages: Vec<&str> = rejected
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert!(
            !messages.iter().any(|m| m.contains("is not used")),
            "{messages:#?}"
        );
        assert_eq!(
            messages.iter().filter(|m| m.starts_with(error)).count(),
            2,
            "{messages:#?}"
        );
    }
    // With every database's instance known, an instance none names is.
    let text = BASE.replace(
        "databases:",
        "  spare: {project_id: p1, region: eu01, instance_id: i2, api: {token: \"${TOKEN}\"}}\ndatabases:",
    );
    let loaded = load(&text).expect("valid");
    let unused: Vec<&str> = loaded
        .warnings
        .iter()
        .map(|d| d.message.as_str())
        .filter(|m| m.contains("is not used"))
        .collect();
    assert_eq!(unused, ["instance `spare` is not used by any database"]);
}

#[test]
fn target_names_follow_sql_server_rules() {
    let long = "x".repeat(81);
    for (name, message) in [
        (long.as_str(), "81 characters"),
        ("tempdb", "system database"),
        ("\"hr]; DROP DATABASE x --\"", "a quote character"),
        ("\"\"", "must not be empty"),
        ("\" hr\"", "begins or ends with a space"),
    ] {
        error_at(
            "name: hr",
            &format!("name: {name}"),
            message,
            "databases[1].name",
            17,
        );
    }
    // Legal in SQL Server as delimited identifiers: a warning with the
    // quoted form, never an error.
    for (name, message, quoted) in [
        ("hr-2026", "contains `-`", "[hr-2026]"),
        ("2026hr", "begins with `2`", "[2026hr]"),
        ("select", "reserved word", "[select]"),
        ("\"Sales DB\"", "contains a space", "[Sales DB]"),
    ] {
        let diagnostics = diagnostics_of("name: hr", &format!("name: {name}"));
        assert!(
            !diagnostics.iter().any(|d| d.severity == Severity::Error),
            "{name}: {diagnostics:#?}"
        );
        let d = expect_one(&diagnostics, Severity::Warning, message);
        assert_eq!(d.path, "databases[1].name", "{d:#?}");
        assert!(d.message.contains("delimited identifier"), "{d:#?}");
        assert!(d.hint.unwrap().contains(quoted), "{name}");
    }
}

#[test]
fn duplicate_targets_on_one_instance_ignore_case() {
    let d = error_at(
        "name: hr",
        "name: SALES",
        "imported twice onto instance `prod`",
        "databases[1].name",
        17,
    );
    assert!(d.hint.unwrap().contains("line 16"));
}

#[test]
fn references_to_undefined_instances_are_errors() {
    let d = error_at(
        "instance: prod, method",
        "instance: prdo, method",
        "there is no instance `prdo`",
        "databases[1].instance",
        17,
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `prod`?"));
}

#[test]
fn file_lists_must_be_usable() {
    error_at(
        "[sales/1.bak, sales/2.bak]",
        "[]",
        "`files` must not be empty",
        "databases[0].files",
        16,
    );
    error_at(
        "sales/2.bak]",
        "sales/1.bak]",
        "listed twice",
        "databases[0].files[1]",
        16,
    );
    error_at(
        "sales/2.bak]",
        "https://example.com/x.bak]",
        "`https://` is not supported",
        "databases[0].files[1]",
        16,
    );
    error_at(
        "sales/2.bak]",
        "s3://elsewhere/x.bak]",
        "outside the manifest's endpoint and bucket",
        "databases[0].files[1]",
        16,
    );
    error_at(
        "sales/2.bak]",
        "s3://object.storage.eu01.onstackit.cloud/other-bucket/x.bak]",
        "bucket `other-bucket`",
        "databases[0].files[1]",
        16,
    );
    error_at(
        "{prefix: hr/}",
        "{prefix: \"\"}",
        "must not be empty",
        "databases[1].files.prefix",
        17,
    );
    // Both URI forms into the manifest's own bucket are fine.
    assert!(diagnostics_of("sales/2.bak]", "s3://backups/sales/2.bak]").is_empty());
    assert!(
        diagnostics_of(
            "sales/2.bak]",
            "s3://object.storage.eu01.onstackit.cloud/backups/sales/2.bak]"
        )
        .is_empty()
    );
}

#[test]
fn concurrency_must_be_at_least_one() {
    error_at(
        "defaults: {owner: app_owner}",
        "defaults: {owner: app_owner}\nconcurrency: {max_parallel: 0}",
        "`max_parallel` must be at least 1",
        "concurrency.max_parallel",
        3,
    );
    error_at(
        "defaults: {owner: app_owner}",
        "defaults: {owner: app_owner}\nconcurrency: {per_instance: 0}",
        "`per_instance` must be at least 1",
        "concurrency.per_instance",
        3,
    );
    error_at(
        "    region: eu01\n",
        "    region: eu01\n    max_parallel: 0\n",
        "`max_parallel` must be at least 1",
        "instances.prod.max_parallel",
        12,
    );
}

#[test]
fn endpoints_must_be_https_unless_loopback() {
    error_at(
        "https://object.storage",
        "http://object.storage",
        "plain http",
        "s3.endpoint",
        4,
    );
    let local = BASE.replace(
        "https://object.storage.eu01.onstackit.cloud",
        "http://127.0.0.1:9000",
    );
    load(&local).expect("loopback http is fine");
}

#[test]
fn timeouts_are_durations() {
    error_at(
        "owner: app_owner}",
        "owner: app_owner, timeout: 5 parsecs}",
        "not a duration",
        "defaults.timeout",
        2,
    );
    error_at(
        "owner: app_owner}",
        "owner: app_owner, timeout: soon}",
        "has the wrong format",
        "defaults.timeout",
        2,
    );
    assert!(diagnostics_of("owner: app_owner}", "owner: app_owner, timeout: 1h 30m}").is_empty());
}

#[test]
fn unusual_but_legal_things_are_warnings() {
    let ds = diagnostics_of("sales/2.bak]", "sales/2.trn]");
    let d = expect_one(&ds, Severity::Warning, "transaction log backup");
    assert_eq!(d.path, "databases[0].files[1]");
    assert!(
        ds.iter().all(|d| !d.is_error()),
        "a warning does not fail validation: {ds:#?}"
    );

    let ds = diagnostics_of("{prefix: hr/}", "[sales/2.bak, sales/1.bak]");
    let d = expect_one(
        &ds,
        Severity::Warning,
        "the same files are imported as `sales` and as `hr`",
    );
    assert_eq!(d.path, "databases[1].files");
}

#[test]
fn secrets_come_from_files_relative_to_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "s3.secret", "from-a-file\n");
    let text = BASE.replace("secret_key: ${S3_SECRET_KEY}", "secret_key_file: s3.secret");
    let loaded = manifest::load_str("m.yaml", &text, dir.path(), &env).expect("valid");
    assert_eq!(
        loaded.manifest.s3.secret_key.unwrap().expose(),
        "from-a-file"
    );

    let missing = BASE.replace(
        "secret_key: ${S3_SECRET_KEY}",
        "secret_key_file: nope.secret",
    );
    let rejected =
        manifest::load_str("m.yaml", &missing, dir.path(), &env).expect_err("missing file");
    let d = expect_one(&rejected.diagnostics, Severity::Error, "cannot read");
    assert!(d.message.contains("nope.secret"), "{d:#?}");
    // The key is given, only unusable: it is not also called missing.
    let errors = rejected.diagnostics.iter().filter(|d| d.is_error()).count();
    assert_eq!(errors, 1, "{:#?}", rejected.diagnostics);

    let both = BASE.replace(
        "secret_key: ${S3_SECRET_KEY}",
        "secret_key: x\n  secret_key_file: s3.secret",
    );
    let rejected = manifest::load_str("m.yaml", &both, dir.path(), &env).expect_err("both");
    expect_one(&rejected.diagnostics, Severity::Error, "not both");
    let errors = rejected.diagnostics.iter().filter(|d| d.is_error()).count();
    assert_eq!(errors, 1, "{:#?}", rejected.diagnostics);
}

/// `sql.ca_file`: a readable PEM file with a certificate, for a connection
/// that encrypts and verifies; read once, bounded, by `validate`.
#[test]
fn a_ca_file_must_hold_a_certificate_and_go_with_verification() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ca.pem",
        "-----BEGIN CERTIFICATE-----\nMAo=\n-----END CERTIFICATE-----\n",
    );
    write(
        dir.path(),
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nMAo=\n-----END PRIVATE KEY-----\n",
    );
    let with = |sql_options: &str| {
        let text = BASE.replace(
            "password: \"${SQL_PASSWORD}\"}",
            &format!("password: \"${{SQL_PASSWORD}}\"{sql_options}}}"),
        );
        assert_ne!(text, BASE);
        manifest::load_str("m.yaml", &text, dir.path(), &env)
    };
    let loaded = with(", ca_file: ca.pem").expect("valid");
    let sql = sql_of(&loaded.valid, "prod");
    assert!(
        sql.ca_bundle
            .as_ref()
            .is_some_and(|b| b.starts_with(b"-----BEGIN CERTIFICATE"))
    );

    for (options, message) in [
        (", ca_file: nope.pem", "cannot read"),
        (", ca_file: key.pem", "holds no PEM certificate"),
        (
            ", ca_file: ca.pem, encrypt: false",
            "`encrypt: false` turns it off",
        ),
        (
            ", ca_file: ca.pem, trust_server_certificate: true",
            "not both",
        ),
    ] {
        let rejected = with(options).expect_err(options);
        let d = expect_one(&rejected.diagnostics, Severity::Error, message);
        assert_eq!(d.path, "instances.prod.sql.ca_file", "{d:#?}");
    }
}

#[test]
fn values_from_the_environment_take_the_type_of_their_field() {
    let text = BASE
        .replace("user: importer,", "user: importer, port: \"${SQL_PORT}\",")
        .replace("project_id: p1", "project_id: ${PROJECT}");
    let numbers = |name: &str| match name {
        "SQL_PORT" => Some("1444".into()),
        "PROJECT" => Some("12345".into()),
        "SQL_PASSWORD" => Some("000123".into()),
        other => env(other),
    };
    let loaded = manifest::load_str("m.yaml", &text, Path::new("."), &numbers).expect("valid");
    let prod = &loaded.manifest.instances["prod"];
    assert_eq!(prod.sql.as_ref().unwrap().port, 1444);
    assert_eq!(prod.project_id.as_deref(), Some("12345"));
    assert_eq!(
        prod.sql
            .as_ref()
            .unwrap()
            .password
            .as_ref()
            .unwrap()
            .expose(),
        "000123"
    );
}

fn rendered(rejected: &Rejected) -> String {
    let source = rejected.source.as_source();
    rejected
        .diagnostics
        .iter()
        .map(|d| sqlflex_import::diagnostic::render(&source, d, false) + &format!("{d:?}"))
        .collect()
}

#[test]
fn secrets_never_appear_in_diagnostics() {
    let s3 = "s3:\n  endpoint: https://object.storage.eu01.onstackit.cloud\n  bucket: backups\n  access_key: ${S3_ACCESS_KEY}\n  secret_key: ${S3_SECRET_KEY}\n";
    let text = BASE
        .replace(s3, "s3: {endpoint: https://s3.example, bucket: backups, access_key: LITERAL-ACCESS-KEY-42, secret_key: LITERAL-SECRET-KEY-42, bogus: 1}\n")
        .replace("sql: {host: db.example, user: importer,", "sql: {host: db.example, user: importer, port: x,");
    let rejected = load(&text).expect_err("bogus key is an error on the secret's line");
    let source = rejected.source.as_source();
    let rendered: String = rejected
        .diagnostics
        .iter()
        .map(|d| sqlflex_import::diagnostic::render(&source, d, false) + &format!("{d:?}"))
        .collect();
    assert!(
        rendered.contains("a secret is written into the manifest"),
        "{rendered}"
    );
    for secret in [
        "LITERAL-ACCESS-KEY-42",
        "LITERAL-SECRET-KEY-42",
        "s3-secret-value",
        "token-value",
    ] {
        assert!(!rendered.contains(secret), "{secret} leaked:\n{rendered}");
    }
}

#[test]
fn secrets_never_appear_in_syntax_errors_either() {
    let text = BASE
        .replace(
            "secret_key: ${S3_SECRET_KEY}",
            "secret_key: LITERAL-SECRET-KEY-42, oops: 1",
        )
        .replace(
            "api: {token: \"${TOKEN}\"}",
            "api: {token: LITERAL-TOKEN-42}",
        );
    let rejected = load(&text).expect_err("a syntax error on the secret's line");
    let out = rendered(&rejected);
    assert!(out.contains("YAML syntax error"), "{out}");
    // One mask width whatever the secret's length, and the marker still
    // points at the right column after it.
    assert!(out.contains("secret_key: ****, oops: 1"), "{out}");
    assert!(out.contains("  |                         ^"), "{out}");
    for secret in ["LITERAL-SECRET-KEY-42", "LITERAL-TOKEN-42"] {
        assert!(
            !out.contains(secret) && !rejected.source.text.contains(secret),
            "{secret} leaked:\n{out}"
        );
    }
    assert!(
        rejected
            .source
            .text
            .contains("password: \"${SQL_PASSWORD}\""),
        "references stay readable"
    );
}

#[test]
fn the_binary_exits_2_with_file_line_column_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.yaml",
        &BASE.replace("name: hr", "name: msdb"),
    );
    let (code, stdout, stderr) = run(bin()
        .args(["validate"])
        .arg(&path)
        .env("S3_ACCESS_KEY", "a")
        .env("S3_SECRET_KEY", "b")
        .env("TOKEN", "c")
        .env("SQL_PASSWORD", "d"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let location = format!("{}:17:12", path.display());
    assert!(stderr.contains(&location), "{stderr}");
    assert!(
        stderr.contains("  - {name: msdb, instance: prod"),
        "the source line is shown: {stderr}"
    );
    assert!(
        stderr.contains("^^^^ databases[1].name"),
        "with a marker and the field path: {stderr}"
    );

    let (code, stdout, _) = run(bin()
        .args(["--format", "json", "validate"])
        .arg(&path)
        .env("S3_ACCESS_KEY", "a")
        .env("S3_SECRET_KEY", "b")
        .env("TOKEN", "c")
        .env("SQL_PASSWORD", "d"));
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(d["file"], path.display().to_string());
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(17), Some(12))
    );
    assert_eq!(d["path"], "databases[1].name");
    assert_eq!(d["severity"], "error");
    assert!(d["message"].as_str().unwrap().contains("system database"));
}

#[test]
fn the_binary_exits_0_for_a_valid_manifest_and_checks_selection() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.yaml", BASE);
    let mut cmd = bin();
    cmd.env("S3_ACCESS_KEY", "a")
        .env("S3_SECRET_KEY", "b")
        .env("TOKEN", "c")
        .env("SQL_PASSWORD", "d");
    let (code, stdout, stderr) = run(cmd.arg("validate").arg(&path));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("valid, 2 databases on 1 instance"),
        "{stdout}"
    );

    let (code, _, stderr) = run(cmd.args(["--only", "salse"]));
    assert_eq!(code, 2, "a typo in --only must not select nothing");
    assert!(stderr.contains("did you mean `sales`?"), "{stderr}");
}

#[test]
fn a_missing_file_is_exit_2_with_its_name() {
    let (code, _, stderr) = run(bin().args(["validate", "/nonexistent/m.yaml"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot open `/nonexistent/m.yaml`"),
        "{stderr}"
    );
}

/// `sql.encrypt` takes `true`, `false` or `strict` (TDS 8.0), written or
/// from the environment; anything else is refused, naming the three.
#[test]
fn encrypt_is_true_false_or_strict() {
    use sqlflex_import::import_path::sql::section::Encrypt;
    let with = |value: &str, env_value: &'static str| {
        let text = BASE.replace(
            "password: \"${SQL_PASSWORD}\"}",
            &format!("password: \"${{SQL_PASSWORD}}\", encrypt: {value}}}"),
        );
        let env = move |name: &str| match name {
            "ENCRYPT" => Some(env_value.to_owned()),
            other => env(other),
        };
        manifest::load_str("m.yaml", &text, Path::new("."), &env)
    };
    for (value, from_env, want) in [
        ("strict", "", Encrypt::Strict),
        ("true", "", Encrypt::Required),
        ("false", "", Encrypt::Off),
        ("\"${ENCRYPT}\"", "strict", Encrypt::Strict),
        ("\"${ENCRYPT}\"", "true", Encrypt::Required),
    ] {
        let loaded = with(value, from_env).unwrap_or_else(|r| panic!("{value}: {r:#?}"));
        let sql = sql_of(&loaded.valid, "prod");
        assert_eq!(sql.encrypt, want, "{value} {from_env}");
    }
    let loaded = manifest::load_str("m.yaml", BASE, Path::new("."), &env).unwrap();
    let sql = sql_of(&loaded.valid, "prod");
    assert_eq!(sql.encrypt, Encrypt::Required, "the default");
    for value in ["strikt", "yes", "1"] {
        let rejected = with(value, "").expect_err(value);
        let d = expect_one(
            &rejected.diagnostics,
            Severity::Error,
            "`encrypt` must be one of `true`, `false`, `strict`",
        );
        assert_eq!(d.path, "instances.prod.sql.encrypt", "{d:#?}");
    }
}

/// Flow-style YAML on one long line: each diagnostic names its own place
/// (`file:line:column`) and shows the part of the line around it, not the
/// whole line; JSON gives the same places.
#[test]
fn diagnostics_on_one_long_line_show_their_own_place() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<String> = (0..300)
        .map(|i| format!("{{name: db{i}, instance: nowhere{i}, method: sql, files: [x{i}.bak]}}"))
        .collect();
    let prefix = "databases: [";
    let text = format!(
        "version: 1\ns3: {{endpoint: https://o.example, bucket: backups, access_key: a, secret_key: b}}\n\
         instances: {{prod: {{sql: {{host: h.example, user: u, password: p}}}}}}\n{prefix}{}]\n",
        entries.join(", ")
    );
    let path = write(dir.path(), "one.yaml", &text);
    let (code, _, human) = run(bin().args(["validate"]).arg(&path));
    assert_eq!(code, 2);
    let (_, json, _) = run(bin().args(["--format", "json", "validate"]).arg(&path));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let line = text.lines().nth(3).unwrap();
    let mut checked = 0;
    for d in json["diagnostics"].as_array().unwrap() {
        let Some(n) = d["message"].as_str().and_then(|m| {
            m.strip_prefix("there is no instance `nowhere")
                .and_then(|r| r.split('`').next())
                .and_then(|n| n.parse::<usize>().ok())
        }) else {
            continue;
        };
        // The column JSON gives is where `nowhere{n}` stands in the file.
        let column = d["column"].as_u64().unwrap() as usize;
        assert!(
            line[column - 1..].starts_with(&format!("nowhere{n},")),
            "{d}"
        );
        // For people: the same place, and a snippet of the line around it.
        let note = format!(
            "at {}:4:{column} (a long line, shown in part)",
            path.display()
        );
        assert!(human.contains(&note), "{note}");
        checked += 1;
    }
    assert_eq!(checked, 300, "{json}");
    let widest = human.lines().map(str::len).max().unwrap();
    assert!(widest < 400, "a snippet shows part of the line: {widest}");
}

/// The SQL access of `instance`, from a database that imports onto it with T-SQL.
fn sql_of<'a>(
    valid: &'a manifest::valid::ValidManifest,
    instance: &str,
) -> &'a sqlflex_import::import_path::sql::section::SqlAccess {
    valid
        .databases
        .iter()
        .filter(|db| db.instance == instance)
        .find_map(|db| match &db.route {
            sqlflex_import::import_path::Route::Sql { access, .. } => Some(&**access),
            _ => None,
        })
        .expect("a database goes to the instance with T-SQL")
}
