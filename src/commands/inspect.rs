use super::{is_json, print_json};
use crate::Exit;
use crate::backup::{BackupHeader, Guid, HeaderError, verdict};
use crate::cli::Global;
use crate::ops::Inspected;

pub fn run(global: &Global, paths: &[String]) -> Exit {
    let inspected = crate::ops::inspect(paths, &crate::manifest::process_env);
    // A file that is not a backup, or whose compressed container is
    // damaged, fails inspect; one in a container this tool does not read is
    // reported, with a warning, but does not.
    let any_unreadable = inspected
        .iter()
        .any(|i| matches!(&i.header, Err(e) if !matches!(e, HeaderError::Compressed(_))));

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
        eprintln!("{text}");
    }
    if any_unreadable {
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
        println!("{}", crate::table::render(&header, &rows));
        println!("\ndatabase files:");
        for line in files {
            println!("{}", crate::redact::terminal(&line));
        }
    }
    for e in errors {
        eprintln!("error: {}", crate::redact::terminal(&e));
    }
}

/// What files are judged together: a media set, or one compressed file
/// whose header could not be read.
#[derive(PartialEq)]
enum Group<'a> {
    MediaSet(Guid),
    Unread(&'a str),
}

/// One verdict per media set: files of unrelated backups are judged each
/// on its own, never as one broken stripe set. Also says whether any rule
/// found anything.
fn verdicts(inspected: &[Inspected]) -> (String, bool) {
    let mut groups: Vec<(Group<'_>, Vec<&Inspected>)> = Vec::new();
    let mut found = false;
    for i in inspected {
        let key = match &i.header {
            Ok(h) => Group::MediaSet(h.media_set_id),
            Err(HeaderError::Compressed(_)) => Group::Unread(&i.path),
            Err(_) => continue, // Listed as an error already.
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let readable: usize = groups.iter().map(|(_, m)| m.len()).sum();
    let mut out = Vec::new();
    if groups.len() > 1 {
        out.push(format!(
            "{readable} files in {} backups (media sets); each is judged on its own:",
            groups.len()
        ));
    }
    for (key, members) in &groups {
        let reads: Vec<verdict::Read<'_>> = members
            .iter()
            .map(|i| verdict::Read {
                key: &i.path,
                size: i.size.unwrap_or(0),
                header: &i.header,
            })
            .collect();
        let (set, findings) = verdict::assess(&reads);
        found |= !findings.is_empty();
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
        let prefix = match key {
            _ if groups.len() == 1 => String::new(),
            Group::MediaSet(id) => format!("media set {id}: "),
            Group::Unread(path) => format!("{}: ", crate::redact::terminal(path)),
        };
        let line = match &set {
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
