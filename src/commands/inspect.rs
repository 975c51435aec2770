use super::{is_json, print_json};
use crate::Exit;
use crate::backup::{BackupHeader, HeaderError};
use crate::cli::Global;
use crate::ops::inspect::{Group, Inspected, any_unreadable, judge};

pub fn run(global: &Global, paths: &[String]) -> Exit {
    let inspected = crate::ops::inspect::inspect(paths, &crate::manifest::process_env);

    if is_json(global) {
        let items: Vec<FileReport> = inspected.iter().map(report).collect();
        print_json(&items);
    } else {
        print_table(&inspected);
    }
    // The verdict is for people; with --format json stdout stays the array.
    // One file gets one only when a rule found something.
    let (text, found) = verdicts(&inspected);
    if inspected.len() > 1 || found {
        errln!("{text}");
    }
    if any_unreadable(&inspected) {
        Exit::Failed
    } else {
        Exit::Success
    }
}

/// One file as `inspect --format json` shows it: `path` first, then the
/// header in its field order (the DESIGN.md keys come first), then the
/// size; or `{path, error}` (with `compressed: true` when the file is a
/// compressed backup in a container this tool does not read).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum FileReport<'a> {
    Header {
        path: &'a str,
        #[serde(flatten)]
        header: &'a BackupHeader,
        file_size: Option<u64>,
    },
    Unreadable {
        path: &'a str,
        error: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        compressed: bool,
    },
}

fn report(i: &Inspected) -> FileReport<'_> {
    match &i.header {
        Ok(header) => FileReport::Header {
            path: &i.path,
            header,
            file_size: i.size,
        },
        Err(error) => FileReport::Unreadable {
            path: &i.path,
            error: error.to_string(),
            compressed: matches!(error, HeaderError::Compressed(_)),
        },
    }
}

fn print_table(inspected: &[Inspected]) {
    let header = [
        "FILE",
        "DATABASE",
        "SERVER",
        "TYPE",
        "STRIPE",
        "MEDIA SET",
        "PROTECTED",
        "COMPRESSED",
        "SOURCE",
        "SETS",
        "BACKUP START",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for i in inspected {
        match &i.header {
            Ok(h) => {
                rows.push(vec![
                    i.path.clone(),
                    h.database_name.clone(),
                    h.server_name.clone(),
                    h.backup_type.to_string(),
                    format!("{} of {}", h.family_sequence, h.family_count),
                    h.media_set_id.to_string(),
                    match (h.password_protected, h.encrypted) {
                        (false, false) => "no".into(),
                        (true, false) => "password".into(),
                        (false, true) => "encrypted".into(),
                        (true, true) => "password, encrypted".into(),
                    },
                    match &h.compression {
                        Some(c) => format!("{} (layout {})", c.algorithm, c.layout),
                        None => "no".into(),
                    },
                    format!(
                        "{} ({}, db version {})",
                        h.source_version.trim_start_matches("SQL Server "),
                        h.software_version,
                        h.database_version
                    ),
                    h.set_count().to_string(),
                    h.backup_start.clone().unwrap_or_default(),
                ]);
                let list: Vec<String> = h
                    .files
                    .iter()
                    .map(|f| format!("{} ({})", f.logical_name, f.kind))
                    .collect();
                files.push(format!("  {}: {}", i.path, list.join(", ")));
            }
            Err(e) => errors.push(format!("{}: {e}", i.path)),
        }
    }
    if !rows.is_empty() {
        outln!("{}", crate::table::render(&header, &rows));
        outln!("\ndatabase files:");
        for line in files {
            outln!("{}", crate::redact::terminal(&line));
        }
    }
    for e in errors {
        errln!("error: {}", crate::redact::terminal(&e));
    }
}

/// One verdict per media set, in words; also says whether any rule found
/// anything.
fn verdicts(inspected: &[Inspected]) -> (String, bool) {
    let groups = judge(inspected);
    let found = groups.iter().any(|g| !g.findings.is_empty());
    let readable: usize = groups.iter().map(|g| g.members.len()).sum();
    let mut out = Vec::new();
    if groups.len() > 1 {
        out.push(format!(
            "{readable} files in {} backups (media sets); each is judged on its own:",
            groups.len()
        ));
    }
    for judged in &groups {
        let (findings, members) = (&judged.findings, &judged.members);
        let refusals: Vec<String> = findings
            .iter()
            .filter(|f| f.refuses())
            .map(|f| crate::redact::terminal(&f.to_string()).into_owned())
            .collect();
        let warnings: Vec<String> = findings
            .iter()
            .filter(|f| !f.refuses())
            .map(|f| format!("  - warning {}", crate::redact::terminal(&f.to_string())))
            .collect();
        let prefix = match judged.group {
            _ if groups.len() == 1 => String::new(),
            Group::MediaSet(id) => format!("media set {id}: "),
            Group::Unread(path) => format!("{}: ", crate::redact::terminal(path)),
        };
        let line = match &judged.set {
            Some(set) => {
                let ready = if refusals.is_empty() {
                    "ready to import".to_owned()
                } else {
                    format!("but cannot be imported: {}", refusals.join("; "))
                };
                format!(
                    "{prefix}stripe set: complete, {} of {} stripe{} of `{}` ({}), {ready}",
                    members.len(),
                    set.family_count,
                    if set.family_count == 1 { "" } else { "s" },
                    crate::redact::terminal(&set.database_name),
                    set.backup_type
                )
            }
            None if refusals.is_empty() => {
                format!("{prefix}not checked: the header could not be decoded")
            }
            None => {
                let list: Vec<String> = refusals.iter().map(|p| format!("  - {p}")).collect();
                format!(
                    "{prefix}stripe set: these files are not one complete backup:\n{}",
                    list.join("\n")
                )
            }
        };
        out.push(line);
        out.extend(warnings);
    }
    (out.join("\n"), found)
}
