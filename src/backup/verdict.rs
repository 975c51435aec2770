//! The import verdict on one database's files, as rule findings: every
//! header-derived check of the rule table (`crate::rules`) in one place,
//! used by `plan` and by `inspect`.

use super::stripes::{self, Refusal, StripeSet};
use super::{
    BackupHeader, FileKind, HeaderError, NEWEST_RESTORABLE, OLDEST_RESTORABLE, release_of,
};
use crate::rules::{Finding, Rule};

/// One object as it was read: its key, its size and what its bytes say.
pub struct Read<'a> {
    pub key: &'a str,
    pub size: u64,
    pub header: &'a Result<BackupHeader, HeaderError>,
}

/// The findings on `files`, and the stripe set when the headers form one.
pub fn assess(files: &[Read<'_>]) -> (Option<StripeSet>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut readable = Vec::new();
    let mut unread_compressed = 0;
    for file in files {
        match file.header {
            Ok(h) => {
                per_file(file.key, file.size, h, &mut findings);
                readable.push((file.key.to_owned(), h.clone()));
            }
            Err(HeaderError::Compressed(e)) => {
                unread_compressed += 1;
                findings.push(Finding::new(
                    Rule::CompressedUnreadable,
                    format!(
                        "{}: compressed, but {e}; its password, encryption, backup type and \
                         stripes are not checked",
                        file.key
                    ),
                ));
            }
            Err(HeaderError::Damaged(d)) if d.is_cut() => findings.push(Finding::new(
                Rule::Truncated,
                format!(
                    "{} ({} bytes): a compressed backup cut short ({d}): the upload was cut or \
                     the copy is partial; upload it again",
                    file.key, file.size
                ),
            )),
            Err(e) => findings.push(Finding::new(Rule::NotABackup, format!("{}: {e}", file.key))),
        }
    }
    // A set is judged only when every file could be read; with unread
    // compressed files the service is left to judge it, with a warning.
    if readable.len() + unread_compressed < files.len() || unread_compressed > 0 {
        return (None, findings);
    }
    let set = match stripes::analyze(&readable) {
        Err(problems) => {
            findings.extend(
                problems
                    .iter()
                    .map(|p| Finding::new(Rule::IncompleteStripeSet, p.to_string())),
            );
            return (None, findings);
        }
        Ok(set) => set,
    };
    match stripes::readiness(&set) {
        Err(refusal @ Refusal::PasswordProtected) => {
            findings.push(Finding::new(Rule::PasswordProtected, refusal.to_string()))
        }
        Err(refusal @ Refusal::Encrypted) => {
            findings.push(Finding::new(Rule::Encrypted, refusal.to_string()))
        }
        Err(refusal @ Refusal::NotFull { .. }) => {
            findings.push(Finding::new(Rule::NotFull, refusal.to_string()))
        }
        Ok(()) => {}
    }
    // The backup's data must fit in its objects. Only without compression:
    // a compressed object is rightly smaller than its data.
    let first = &readable[0].1;
    let held = files.iter().fold(0u64, |sum, f| sum.saturating_add(f.size));
    if !first.compressed && held < first.backup_size {
        findings.push(Finding::new(
            Rule::Truncated,
            format!(
                "the backup's data is {} bytes, but its object{} hold only {held} bytes: \
                 an upload was cut or a copy is partial; upload the file{} again",
                first.backup_size,
                if files.len() == 1 { "" } else { "s" },
                if files.len() == 1 { "" } else { "s" },
            ),
        ));
    }
    (Some(set), findings)
}

fn per_file(key: &str, size: u64, h: &BackupHeader, findings: &mut Vec<Finding>) {
    let count = h.set_count();
    if count > 1 {
        let first = h.backup_sets.iter().find(|s| s.position == 1);
        let what = first.map_or_else(String::new, |s| {
            format!(
                " (position 1: {}{})",
                s.backup_type.map_or("type unknown", |t| t.describe()),
                s.backup_start
                    .as_deref()
                    .map(|t| format!(" of {t}"))
                    .unwrap_or_default()
            )
        });
        findings.push(Finding::new(
            Rule::SeveralBackupSets,
            format!(
                "{key} holds {count} backup sets; STACKIT would restore the first one{what}, \
                 which may not be the backup you mean: write the backup WITH INIT (or FORMAT) \
                 to a file of its own, or restore the set you want (RESTORE ... FILE = n) and \
                 back it up again"
            ),
        ));
    }
    if let Some(tail) = &h.tail
        && !tail.ends_with_end_of_set
    {
        findings.push(Finding::new(
            Rule::Truncated,
            format!(
                "{key} ({size} bytes) does not end with its last backup set's end block (ESET): \
                 the upload was cut or the copy is partial; upload it again"
            ),
        ));
    }
    let filestream: Vec<&str> = h
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Filestream)
        .map(|f| f.logical_name.as_str())
        .collect();
    if !filestream.is_empty() {
        findings.push(Finding::new(
            Rule::Filestream,
            format!(
                "{key}: the database has FILESTREAM or memory-optimised files ({}); managed \
                 services often refuse them, and STACKIT does not say whether it restores them",
                filestream.join(", ")
            ),
        ));
    }
    if h.database_version > NEWEST_RESTORABLE {
        findings.push(Finding::new(
            Rule::NewerSource,
            format!(
                "{key} was written by {} (database version {}, SQL Server {}); Flex instances \
                 run SQL Server 2022 (database version {NEWEST_RESTORABLE}), which cannot \
                 restore it",
                release_of(h.database_version),
                h.database_version,
                h.software_version
            ),
        ));
    }
    if h.database_version < OLDEST_RESTORABLE {
        findings.push(Finding::new(
            Rule::OlderSource,
            format!(
                "{key} was written by {} (database version {}, SQL Server {}); Flex instances \
                 run SQL Server 2022, which restores databases from SQL Server 2008 (database \
                 version {OLDEST_RESTORABLE}) on and refuses this one (error 3169): restore it \
                 on SQL Server 2008 to 2014 first, then back it up there and upload that backup",
                release_of(h.database_version),
                h.database_version,
                h.software_version
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::writer::{self, BackupSpec};

    #[test]
    fn sizes_a_server_made_up_do_not_overflow() {
        let headers: Vec<Result<BackupHeader, HeaderError>> = BackupSpec::striped("big", 2)
            .iter()
            .map(|s| crate::backup::read_header(&writer::write(s)))
            .collect();
        let reads: Vec<Read<'_>> = headers
            .iter()
            .map(|h| Read {
                key: "k",
                size: u64::MAX,
                header: h,
            })
            .collect();
        let (set, findings) = assess(&reads);
        assert!(set.is_some());
        assert!(findings.is_empty(), "{findings:?}");
    }
}
