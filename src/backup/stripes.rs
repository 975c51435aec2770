//! Whether the files given for one database form one complete backup that
//! STACKIT can import: one media set, every stripe exactly once, one
//! database, one backup set, a full backup, no password and no encryption.

use super::{BackupHeader, BackupType, Guid};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// A problem with a file list, in words a DBA knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum SetProblem {
    NoFiles,
    MixedDatabases {
        databases: Vec<String>,
    },
    ForeignMediaSet {
        file: String,
        media_set_id: String,
        expected: String,
        first_file: String,
    },
    CountMismatch {
        file: String,
        says: u16,
        expected: u16,
    },
    MixedTypes {
        types: Vec<String>,
    },
    DuplicateStripe {
        sequence: u16,
        files: Vec<String>,
    },
    MissingStripes {
        missing: Vec<u16>,
        count: u16,
    },
}

impl fmt::Display for SetProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetProblem::NoFiles => write!(f, "no backup files"),
            SetProblem::MixedDatabases { databases } => {
                let words = ["", "one", "two", "three", "four", "five"];
                let n = databases.len();
                let count = words
                    .get(n)
                    .map_or_else(|| n.to_string(), |w| (*w).to_owned());
                write!(
                    f,
                    "the files contain {count} databases: {}",
                    databases.join(", ")
                )
            }
            SetProblem::ForeignMediaSet {
                file,
                media_set_id,
                expected,
                first_file,
            } => write!(
                f,
                "file {file} belongs to another media set ({media_set_id}, not {expected} like {first_file})"
            ),
            SetProblem::CountMismatch {
                file,
                says,
                expected,
            } => write!(
                f,
                "file {file} says the media set has {says} stripe{}, the others say {expected}",
                if *says == 1 { "" } else { "s" }
            ),
            SetProblem::MixedTypes { types } => {
                write!(
                    f,
                    "the files hold different backup types: {}",
                    types.join(", ")
                )
            }
            SetProblem::DuplicateStripe { sequence, files } => {
                write!(f, "stripe {sequence} is given twice: {}", files.join(", "))
            }
            SetProblem::MissingStripes { missing, count } => {
                let list: Vec<String> = missing.iter().map(u16::to_string).collect();
                let (noun, verb) = if missing.len() == 1 {
                    ("stripe", "is")
                } else {
                    ("stripes", "are")
                };
                write!(f, "{noun} {} of {count} {verb} missing", join_and(&list),)
            }
        }
    }
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A complete set: what the import will restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StripeSet {
    pub database_name: String,
    pub backup_type: BackupType,
    pub media_set_id: Guid,
    pub family_count: u16,
    /// The file names in stripe order (1..N).
    pub files_in_order: Vec<String>,
    pub password_protected: bool,
    pub encrypted: bool,
}

/// Checks that `files` (name, header) form one complete stripe set. Returns
/// every problem found, most fundamental first.
pub fn analyze(files: &[(String, BackupHeader)]) -> Result<StripeSet, Vec<SetProblem>> {
    let Some((first_name, first)) = files.first() else {
        return Err(vec![SetProblem::NoFiles]);
    };
    let mut problems = Vec::new();

    let mut databases: Vec<String> = Vec::new();
    for (_, h) in files {
        if !databases
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&h.database_name))
        {
            databases.push(h.database_name.clone());
        }
    }
    if databases.len() > 1 {
        problems.push(SetProblem::MixedDatabases { databases });
    }

    for (name, h) in files.iter().skip(1) {
        if h.media_set_id != first.media_set_id {
            problems.push(SetProblem::ForeignMediaSet {
                file: name.clone(),
                media_set_id: h.media_set_id.to_string(),
                expected: first.media_set_id.to_string(),
                first_file: first_name.clone(),
            });
        } else if h.family_count != first.family_count {
            problems.push(SetProblem::CountMismatch {
                file: name.clone(),
                says: h.family_count,
                expected: first.family_count,
            });
        }
    }

    let mut types: Vec<String> = Vec::new();
    for (_, h) in files {
        let t = h.backup_type.as_str().to_owned();
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.len() > 1 {
        problems.push(SetProblem::MixedTypes { types });
    }

    // Stripe bookkeeping only means something within one media set.
    let same_set: Vec<&(String, BackupHeader)> = files
        .iter()
        .filter(|(_, h)| h.media_set_id == first.media_set_id)
        .collect();
    let mut by_sequence: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (name, h) in &same_set {
        by_sequence
            .entry(h.family_sequence)
            .or_default()
            .push(name.clone());
    }
    for (sequence, names) in &by_sequence {
        if names.len() > 1 {
            problems.push(SetProblem::DuplicateStripe {
                sequence: *sequence,
                files: names.clone(),
            });
        }
    }
    let missing: Vec<u16> = (1..=first.family_count)
        .filter(|s| !by_sequence.contains_key(s))
        .collect();
    if !missing.is_empty() {
        problems.push(SetProblem::MissingStripes {
            missing,
            count: first.family_count,
        });
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(StripeSet {
        database_name: first.database_name.clone(),
        backup_type: first.backup_type,
        media_set_id: first.media_set_id,
        family_count: first.family_count,
        files_in_order: by_sequence.into_values().flatten().collect(),
        password_protected: files.iter().any(|(_, h)| h.password_protected),
        encrypted: files.iter().any(|(_, h)| h.encrypted),
    })
}

/// Why a complete set still cannot be imported into SQLServer Flex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    #[error(
        "the backup is password protected (written WITH MEDIAPASSWORD or WITH PASSWORD); \
         STACKIT imports only unprotected backups: back up again without a password"
    )]
    PasswordProtected,
    #[error(
        "the backup is encrypted; STACKIT imports only unencrypted backups: back up again without ENCRYPTION"
    )]
    Encrypted,
    #[error(
        "this is {}; only a full database backup can create a database (restore its full backup first)",
        .backup_type.describe()
    )]
    NotFull { backup_type: BackupType },
}

/// The import-readiness verdict `plan` uses.
pub fn readiness(set: &StripeSet) -> Result<(), Refusal> {
    if set.password_protected {
        return Err(Refusal::PasswordProtected);
    }
    if set.encrypted {
        return Err(Refusal::Encrypted);
    }
    if set.backup_type != BackupType::Full {
        return Err(Refusal::NotFull {
            backup_type: set.backup_type,
        });
    }
    Ok(())
}
