//! Every verdict `plan` can reach about a database's backups, as one typed
//! rule with a stable code: what it checks, whether it refuses the import
//! or warns, and why. The README's rule table is this list (a test keeps
//! them in step); `plan --format json` reports findings by code.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Rule {
    /// The file is not a SQL Server backup, or its header is damaged.
    NotABackup,
    /// Written WITH MEDIAPASSWORD or WITH PASSWORD.
    PasswordProtected,
    /// Written WITH ENCRYPTION.
    Encrypted,
    /// A differential, log, file or partial backup.
    NotFull,
    /// The files are not one complete stripe set of one backup.
    IncompleteStripeSet,
    /// The file holds several backup sets.
    SeveralBackupSets,
    /// The object is shorter than its backup: a cut upload or partial copy.
    Truncated,
    /// A compressed backup whose header could not be decoded.
    CompressedUnreadable,
    /// The database has FILESTREAM (or memory-optimised) files.
    Filestream,
    /// Written by a SQL Server newer than the one Flex runs.
    NewerSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The import is not submitted.
    Refuse,
    /// Reported; `--strict` makes it refuse.
    Warn,
}

impl Rule {
    pub const ALL: [Rule; 10] = [
        Rule::NotABackup,
        Rule::PasswordProtected,
        Rule::Encrypted,
        Rule::NotFull,
        Rule::IncompleteStripeSet,
        Rule::SeveralBackupSets,
        Rule::Truncated,
        Rule::CompressedUnreadable,
        Rule::Filestream,
        Rule::NewerSource,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Rule::NotABackup => "B001",
            Rule::PasswordProtected => "B002",
            Rule::Encrypted => "B003",
            Rule::NotFull => "B004",
            Rule::IncompleteStripeSet => "B005",
            Rule::SeveralBackupSets => "B006",
            Rule::Truncated => "B007",
            Rule::CompressedUnreadable => "B008",
            Rule::Filestream => "B009",
            Rule::NewerSource => "B010",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::CompressedUnreadable | Rule::Filestream => Severity::Warn,
            _ => Severity::Refuse,
        }
    }

    /// What the rule checks, for the README's table.
    pub fn checks(self) -> &'static str {
        match self {
            Rule::NotABackup => "each file is a SQL Server backup with a sound header",
            Rule::PasswordProtected => "no media or backup-set password",
            Rule::Encrypted => "no backup encryption",
            Rule::NotFull => "the backup is a full database backup",
            Rule::IncompleteStripeSet => {
                "the files are one media set, every stripe once, one database, one backup type"
            }
            Rule::SeveralBackupSets => "each file holds exactly one backup set",
            Rule::Truncated => "each object is as long as its backup says",
            Rule::CompressedUnreadable => "a compressed backup's header can be decoded",
            Rule::Filestream => "no FILESTREAM or memory-optimised files",
            Rule::NewerSource => "the source SQL Server is not newer than 2022",
        }
    }

    /// Why it refuses or warns, for the README's table.
    pub fn why(self) -> &'static str {
        match self {
            Rule::NotABackup => "the service would fail on it hours later",
            Rule::PasswordProtected | Rule::Encrypted => {
                "STACKIT imports only unprotected, unencrypted backups"
            }
            Rule::NotFull => "only a full backup creates a database",
            Rule::IncompleteStripeSet => "a restore needs every stripe of one backup",
            Rule::SeveralBackupSets => {
                "RESTORE without FILE = n restores the first set, which may be an old backup"
            }
            Rule::Truncated => "the restore would fail at the end of the data",
            Rule::CompressedUnreadable => {
                "STACKIT restores compressed backups; only the checks are missing, so it warns"
            }
            Rule::Filestream => {
                "managed services often refuse FILESTREAM; STACKIT does not document it either way"
            }
            Rule::NewerSource => "a restore never downgrades a database (SQL Server error 948)",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One rule that applied to one database, with the specifics in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "code")]
    pub code: Rule,
    pub severity: Severity,
    pub message: String,
}

fn code<S: serde::Serializer>(rule: &Rule, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(rule.code())
}

impl Finding {
    pub fn new(rule: Rule, message: impl Into<String>) -> Self {
        Finding {
            code: rule,
            severity: rule.severity(),
            message: message.into(),
        }
    }

    /// `--strict`: a warning refuses too.
    pub fn strict(mut self) -> Self {
        self.severity = Severity::Refuse;
        self
    }

    pub fn refuses(&self) -> bool {
        self.severity == Severity::Refuse
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.code(), self.message)
    }
}

/// The README's table, generated: `| code | refuses or warns | checks | why |`.
pub fn markdown_table() -> String {
    let mut out = String::from("| code | verdict | checks | why |\n|---|---|---|---|\n");
    for rule in Rule::ALL {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            rule.code(),
            match rule.severity() {
                Severity::Refuse => "refuses",
                Severity::Warn => "warns",
            },
            rule.checks(),
            rule.why()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_all_listed() {
        let mut codes: Vec<&str> = Rule::ALL.iter().map(|r| r.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Rule::ALL.len());
    }
}
