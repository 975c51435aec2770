//! Every verdict `plan` can reach about a database's backups, its target
//! instance and its files, as one typed rule with a stable code (B: backup
//! headers, I: the instance, T: the target database, S: the files in S3,
//! M: the manifest): what it checks, whether it
//! refuses the import, warns or informs, where it is checked, and why. The README's rule table is this list (a test keeps
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
    /// A compressed backup in a container this tool does not read.
    CompressedUnreadable,
    /// The database has FILESTREAM (or memory-optimised) files.
    Filestream,
    /// Written by a SQL Server newer than the one Flex runs.
    NewerSource,
    /// Written by a SQL Server older than the oldest SQL Server 2022 restores.
    OlderSource,
    /// The instance is busy (PENDING, PROGRESSING).
    InstanceBusy,
    /// The instance failed, is gone or in an unknown state.
    InstanceUnavailable,
    /// The backup is newer than the instance's SQL Server.
    InstanceTooOld,
    /// The owner is not a user of the instance, or not active.
    OwnerMissing,
    /// No owner given on the SQL path: the procedure's default applies.
    OwnerDefault,
    /// The planned imports do not fit the instance's storage.
    StorageExceeded,
    /// The planned imports fill more than 80 % of the storage.
    StorageNearlyFull,
    /// The instance cannot be asked what it is like.
    InstanceUnreadable,
    /// The SQL login may not see every database.
    DatabasesHidden,
    /// The target database exists already.
    TargetExists,
    /// The target database is being restored, not by an earlier run.
    TargetRestoring,
    /// A database of that name exists in another state (offline, suspect).
    TargetNotOnline,
    /// An earlier run submitted it, and it is neither restoring nor online.
    EarlierImportLost,
    /// The instance's databases cannot be listed.
    TargetUnlisted,
    /// A database this state imported is named with other files now.
    TargetChanged,
    /// A `prefix` with no `.bak` object under it.
    NoBackupUnderPrefix,
    /// A file is not in the bucket.
    ObjectMissing,
    /// The manifest's S3 key may not read a file.
    ObjectDenied,
    /// S3 failed or could not be reached.
    S3Failed,
    /// An object key with a comma on the SQL path.
    KeyWithComma,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The import is not submitted.
    Refuse,
    /// Reported; `--strict` makes it refuse.
    Warn,
    /// Reported for the record; never refuses.
    Info,
}

impl Rule {
    pub const ALL: [Rule; 31] = [
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
        Rule::OlderSource,
        Rule::InstanceBusy,
        Rule::InstanceUnavailable,
        Rule::InstanceTooOld,
        Rule::OwnerMissing,
        Rule::OwnerDefault,
        Rule::StorageExceeded,
        Rule::StorageNearlyFull,
        Rule::InstanceUnreadable,
        Rule::DatabasesHidden,
        Rule::TargetExists,
        Rule::TargetRestoring,
        Rule::TargetNotOnline,
        Rule::EarlierImportLost,
        Rule::TargetUnlisted,
        Rule::TargetChanged,
        Rule::NoBackupUnderPrefix,
        Rule::ObjectMissing,
        Rule::ObjectDenied,
        Rule::S3Failed,
        Rule::KeyWithComma,
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
            Rule::OlderSource => "B011",
            Rule::InstanceBusy => "I001",
            Rule::InstanceUnavailable => "I002",
            Rule::InstanceTooOld => "I003",
            Rule::OwnerMissing => "I004",
            Rule::OwnerDefault => "I005",
            Rule::StorageExceeded => "I006",
            Rule::StorageNearlyFull => "I007",
            Rule::InstanceUnreadable => "I008",
            Rule::DatabasesHidden => "I009",
            Rule::TargetExists => "T001",
            Rule::TargetRestoring => "T002",
            Rule::TargetNotOnline => "T003",
            Rule::EarlierImportLost => "T004",
            Rule::TargetUnlisted => "T005",
            Rule::TargetChanged => "T006",
            Rule::NoBackupUnderPrefix => "S001",
            Rule::ObjectMissing => "S002",
            Rule::ObjectDenied => "S003",
            Rule::S3Failed => "S004",
            Rule::KeyWithComma => "M001",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::CompressedUnreadable
            | Rule::Filestream
            | Rule::StorageNearlyFull
            | Rule::TargetChanged => Severity::Warn,
            Rule::OwnerDefault => Severity::Info,
            _ => Severity::Refuse,
        }
    }

    /// What the rule checks, for the README's table.
    pub fn checks(self) -> &'static str {
        match self {
            Rule::NotABackup => {
                "each file is a SQL Server backup with a sound header (compressed: every chunk \
                 read passes its checksum)"
            }
            Rule::PasswordProtected => "no media or backup-set password",
            Rule::Encrypted => "no backup encryption",
            Rule::NotFull => "the backup is a full database backup",
            Rule::IncompleteStripeSet => {
                "the files are one media set, every stripe once, one database, one backup type"
            }
            Rule::SeveralBackupSets => "each file holds exactly one backup set",
            Rule::Truncated => "each object is as long as its backup says",
            Rule::CompressedUnreadable => {
                "a compressed backup is in the container SQL Server 2014-2022 write (XPRESS)"
            }
            Rule::Filestream => "no FILESTREAM or memory-optimised files",
            Rule::NewerSource => "the source SQL Server is not newer than 2022",
            Rule::OlderSource => {
                "the source SQL Server is 2008 or newer (database version 655 and up)"
            }
            Rule::InstanceBusy => "the instance is READY, not PENDING or PROGRESSING",
            Rule::InstanceUnavailable => "the instance is not FAILURE, UNKNOWN or TERMINATING",
            Rule::InstanceTooOld => "every backup's source version restores onto the instance's",
            Rule::OwnerMissing => "the owner is a user of the instance (ignoring case) and active",
            Rule::OwnerDefault => "who owns a database imported without `owner`",
            Rule::StorageExceeded => {
                "the planned imports on an instance, at their backup data size, fit its storage"
            }
            Rule::StorageNearlyFull => "they fill at most 80 % of it",
            Rule::InstanceUnreadable => {
                "the instance can be asked for its state, version and users"
            }
            Rule::DatabasesHidden => "the SQL login may see every database (`VIEW ANY DATABASE`)",
            Rule::TargetExists => {
                "the target database does not exist (`on_exists: skip` counts it as done instead, \
                 `replace` drops it and imports again)"
            }
            Rule::TargetRestoring => "no restore of the target database is running",
            Rule::TargetNotOnline => {
                "no database of that name is in another state (offline, suspect)"
            }
            Rule::EarlierImportLost => {
                "an import the journal says was submitted is restoring or online"
            }
            Rule::TargetUnlisted => "the instance's databases can be listed",
            Rule::TargetChanged => {
                "a database this state imported is still named with the files it was imported from"
            }
            Rule::NoBackupUnderPrefix => "a `prefix` holds at least one `.bak` object",
            Rule::ObjectMissing => "each file exists in the bucket",
            Rule::ObjectDenied => "the manifest's S3 key can read each file",
            Rule::S3Failed => "S3 answers the listing, `HEAD` and ranged `GET`",
            Rule::KeyWithComma => "no object key of a `sql` import contains a comma",
        }
    }

    /// Where the rule is checked, and through which import path.
    pub fn checked_by(self) -> &'static str {
        match self {
            Rule::InstanceBusy | Rule::InstanceUnavailable => {
                "`plan`, through the API (`status`/`state`), for `sql` databases too when \
                 the instance has an `api` section; T-SQL cannot see it"
            }
            Rule::InstanceTooOld => "`plan`: API (`version`) and SQL (`SERVERPROPERTY`)",
            Rule::OwnerMissing => "`plan`: API (users) and SQL (`sys.server_principals`)",
            Rule::OwnerDefault => "`plan`, SQL (`SUSER_SNAME()`)",
            Rule::StorageExceeded | Rule::StorageNearlyFull => {
                "`plan`, through the API (`storage.size`), for `sql` databases too when the \
                 instance has an `api` section; T-SQL cannot see the quota"
            }
            Rule::KeyWithComma => "`validate`; `plan` for keys listed under a prefix",
            Rule::InstanceUnreadable => "`plan`: API (instance, users) or SQL (`SERVERPROPERTY`)",
            Rule::DatabasesHidden => "`plan`, SQL (`HAS_PERMS_BY_NAME`)",
            Rule::TargetExists
            | Rule::TargetRestoring
            | Rule::TargetNotOnline
            | Rule::TargetUnlisted => {
                "`plan`: API (`databases`, `restore-jobs`) or SQL (`sys.databases`)"
            }
            Rule::EarlierImportLost | Rule::TargetChanged => {
                "`plan` and `apply`, against the state folder (`--state`)"
            }
            Rule::NoBackupUnderPrefix => "`plan` (S3 `ListObjectsV2`)",
            Rule::ObjectMissing | Rule::ObjectDenied | Rule::S3Failed => {
                "`plan` (S3 `HEAD`, ranged `GET`, listing)"
            }
            _ => "`plan` and `inspect` (backup headers)",
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
            Rule::NewerSource | Rule::InstanceTooOld => {
                "a restore never downgrades a database (SQL Server error 948)"
            }
            Rule::OlderSource => {
                "SQL Server 2022 restores user databases from SQL Server 2008 on; its lowest \
                 compatibility level is 100 (Microsoft's ALTER DATABASE compatibility level \
                 table), and a SQL Server 2005 backup fails with error 3169"
            }
            Rule::InstanceBusy => "a busy instance fails the restore; retry later",
            Rule::InstanceUnavailable => "the restore cannot run there",
            Rule::OwnerMissing => "STACKIT requires the owner to exist before the import",
            Rule::OwnerDefault => "the procedure's documented default is the login that runs it",
            Rule::StorageExceeded => "the restore would fail when the disk is full",
            Rule::StorageNearlyFull => "little room is left for growth and logs",
            Rule::KeyWithComma => "the procedure takes all files as one comma-separated `@s3_url`",
            Rule::InstanceUnreadable => "the instance rules cannot be checked without it",
            Rule::DatabasesHidden => {
                "without it `sys.databases` hides the databases the login does not own: a name \
                 already taken, and the import's own progress, would be invisible"
            }
            Rule::TargetExists => "STACKIT imports only into a database that does not exist",
            Rule::TargetRestoring => "a second restore of the same name would fail",
            Rule::TargetNotOnline => "the name is taken; the restore would fail",
            Rule::EarlierImportLost => {
                "the restore failed on the server; importing again is a deliberate choice \
                 (another `--state` folder)"
            }
            Rule::TargetUnlisted => "without the list, no import can be proven to happen once",
            Rule::TargetChanged => {
                "the database holds the old files' data; importing the new ones is a decision \
                 (`on_exists: replace`)"
            }
            Rule::NoBackupUnderPrefix => "there is nothing to import",
            Rule::ObjectMissing => "the service would fail on it after the submit",
            Rule::ObjectDenied => "STACKIT reads the files with the manifest's key",
            Rule::S3Failed => "the files cannot be checked",
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

    /// Where nothing is imported now (the target exists): a refusal of
    /// the backup or file rules is reported as a warning.
    pub fn softened(mut self) -> Self {
        if self.severity == Severity::Refuse {
            self.severity = Severity::Warn;
        }
        self
    }

    /// `--strict`: a warning refuses too (information never does).
    pub fn strict(mut self) -> Self {
        if self.severity == Severity::Warn {
            self.severity = Severity::Refuse;
        }
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
    let mut out =
        String::from("| code | verdict | checks | checked by | why |\n|---|---|---|---|---|\n");
    for rule in Rule::ALL {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            rule.code(),
            match rule.severity() {
                Severity::Refuse => "refuses",
                Severity::Warn => "warns",
                Severity::Info => "informs",
            },
            rule.checks(),
            rule.checked_by(),
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
