//! Every verdict `plan` can reach about a database's backups, its target
//! instance and its files, as one typed rule with a stable code (B: backup
//! headers, I: the instance, T: the target database, S: the files in S3,
//! M: the manifest, D: what `discover` leaves out, V: what `apply` and
//! `verify` find on a database after its import): what it checks, whether
//! it refuses the import, warns or informs, where it is checked, and why.
//! The README's rule table is this list (a test keeps them in step);
//! `plan --format json` reports findings
//! by code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares every rule once: its variant (with its doc), code, severity,
/// what it checks, where it is checked, and why. The macro makes the enum,
/// [`Rule::ALL`] and one exhaustive `match`, so a new rule is one entry here
/// and the compiler sees every rule in every answer.
macro_rules! rules {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident = $code:literal, $severity:ident,
            checks: $checks:expr,
            by: $by:expr,
            why: $why:expr;
    )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Rule {
            $( $(#[doc = $doc])* $name, )*
        }

        impl Rule {
            /// Every rule, in the order of the table.
            pub const ALL: &'static [Rule] = &[$(Rule::$name),*];

            /// The rule's declaration.
            pub const fn spec(self) -> Spec {
                match self {
                    $(Rule::$name => Spec {
                        code: $code,
                        severity: Severity::$severity,
                        checks: $checks,
                        checked_by: $by,
                        why: $why,
                    },)*
                }
            }
        }
    };
}

/// What one rule is, as the README's table shows it.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Stable code: B backup headers, I instance, T target database, S files
    /// in S3, M manifest.
    pub code: &'static str,
    pub severity: Severity,
    /// What the rule checks.
    pub checks: &'static str,
    /// Where it is checked, and through which import path.
    pub checked_by: &'static str,
    /// Why it refuses or warns.
    pub why: &'static str,
}

const BY_DISCOVER: &str = "`discover`, over the headers of every object under its prefixes";
const BY_HEADERS: &str = "`plan` and `inspect` (backup headers)";
const BY_INSTANCE_API: &str = "`plan`, through the API (`status`/`state`), for `sql` databases too when \
    the instance has an `api` section; T-SQL cannot see it";
const BY_STORAGE: &str = "`plan`, through the API (`storage.size`), for `sql` databases too when the \
    instance has an `api` section; T-SQL cannot see the quota";
const BY_DATABASES: &str = "`plan`: API (`databases`, `restore-jobs`) or SQL (`sys.databases`)";
const BY_STATE: &str = "`plan` and `apply`, against the state folder (`--state`)";
const BY_VERIFY: &str = "`apply` after each import, and `verify`: SQL (catalogue views) or API \
    (`databases/{name}`)";
const BY_VERIFY_SQL: &str = "`apply` after each import, and `verify`, through T-SQL (the instance's \
    `sql` section)";
const BY_OBJECTS: &str = "`plan` (S3 `HEAD`, ranged `GET`, listing)";

rules! {
    /// The file is not a SQL Server backup, or its header is damaged.
    NotABackup = "B001", Refuse,
        checks: "each file is a SQL Server backup with a sound header (compressed: every chunk \
            read passes its checksum)",
        by: BY_HEADERS,
        why: "the service would fail on it hours later";
    /// Written WITH MEDIAPASSWORD or WITH PASSWORD.
    PasswordProtected = "B002", Refuse,
        checks: "no media or backup-set password",
        by: BY_HEADERS,
        why: "STACKIT imports only unprotected, unencrypted backups";
    /// Written WITH ENCRYPTION.
    Encrypted = "B003", Refuse,
        checks: "no backup encryption",
        by: BY_HEADERS,
        why: "STACKIT imports only unprotected, unencrypted backups";
    /// A differential, log, file or partial backup.
    NotFull = "B004", Refuse,
        checks: "the backup is a full database backup",
        by: BY_HEADERS,
        why: "only a full backup creates a database";
    /// The files are not one complete stripe set of one backup.
    IncompleteStripeSet = "B005", Refuse,
        checks: "the files are one media set, every stripe once, one database, one backup type",
        by: BY_HEADERS,
        why: "a restore needs every stripe of one backup";
    /// The file holds several backup sets.
    SeveralBackupSets = "B006", Refuse,
        checks: "each file holds exactly one backup set",
        by: BY_HEADERS,
        why: "RESTORE without FILE = n restores the first set, which may be an old backup";
    /// The object is shorter than its backup: a cut upload or partial copy.
    Truncated = "B007", Refuse,
        checks: "each object is as long as its backup says",
        by: BY_HEADERS,
        why: "the restore would fail at the end of the data";
    /// A compressed backup in a container this tool does not read.
    CompressedUnreadable = "B008", Warn,
        checks: "a compressed backup is in the container SQL Server 2014-2022 write (XPRESS)",
        by: BY_HEADERS,
        why: "STACKIT restores compressed backups; only the checks are missing, so it warns";
    /// The database has FILESTREAM (or memory-optimised) files.
    Filestream = "B009", Warn,
        checks: "no FILESTREAM or memory-optimised files",
        by: BY_HEADERS,
        why: "managed services often refuse FILESTREAM; STACKIT does not document it either way";
    /// Written by a SQL Server newer than the one Flex runs.
    NewerSource = "B010", Refuse,
        checks: "the source SQL Server is not newer than 2022",
        by: BY_HEADERS,
        why: "a restore never downgrades a database (SQL Server error 948)";
    /// Written by a SQL Server older than the oldest SQL Server 2022 restores.
    OlderSource = "B011", Refuse,
        checks: "the source SQL Server is 2008 or newer (database version 655 and up)",
        by: BY_HEADERS,
        why: "SQL Server 2022 restores user databases from SQL Server 2008 on; its lowest \
            compatibility level is 100 (Microsoft's ALTER DATABASE compatibility level \
            table), and a SQL Server 2005 backup fails with error 3169";
    /// The instance is busy (PENDING, PROGRESSING).
    InstanceBusy = "I001", Refuse,
        checks: "the instance is READY, not PENDING or PROGRESSING",
        by: BY_INSTANCE_API,
        why: "a busy instance fails the restore; retry later";
    /// The instance failed, is gone or in an unknown state.
    InstanceUnavailable = "I002", Refuse,
        checks: "the instance is not FAILURE, UNKNOWN or TERMINATING",
        by: BY_INSTANCE_API,
        why: "the restore cannot run there";
    /// The backup is newer than the instance's SQL Server.
    InstanceTooOld = "I003", Refuse,
        checks: "every backup's source version restores onto the instance's",
        by: "`plan`: API (`version`) and SQL (`SERVERPROPERTY`)",
        why: "a restore never downgrades a database (SQL Server error 948)";
    /// The owner is not a user of the instance, or not active.
    OwnerMissing = "I004", Refuse,
        checks: "the owner is a user of the instance (ignoring case) and active",
        by: "`plan`: API (users) and SQL (`sys.server_principals`)",
        why: "STACKIT requires the owner to exist before the import";
    /// No owner given on the SQL path: the procedure's default applies.
    OwnerDefault = "I005", Info,
        checks: "who owns a database imported without `owner`",
        by: "`plan`, SQL (`SUSER_SNAME()`)",
        why: "the procedure's documented default is the login that runs it";
    /// The planned imports do not fit the instance's storage.
    StorageExceeded = "I006", Refuse,
        checks: "the planned imports on an instance, at their backup data size, fit its storage",
        by: BY_STORAGE,
        why: "the restore would fail when the disk is full";
    /// The planned imports fill more than 80 % of the storage.
    StorageNearlyFull = "I007", Warn,
        checks: "they fill at most 80 % of it",
        by: BY_STORAGE,
        why: "little room is left for growth and logs";
    /// The instance cannot be asked what it is like.
    InstanceUnreadable = "I008", Refuse,
        checks: "the instance can be asked for its state, version and users",
        by: "`plan`: API (instance, users) or SQL (`SERVERPROPERTY`)",
        why: "the instance rules cannot be checked without it";
    /// The SQL login may not see every database.
    DatabasesHidden = "I009", Refuse,
        checks: "the SQL login may see every database (`VIEW ANY DATABASE`)",
        by: "`plan`, SQL (`HAS_PERMS_BY_NAME`)",
        why: "without it `sys.databases` hides the databases the login does not own: a name \
            already taken, and the import's own progress, would be invisible";
    /// The target database exists already.
    TargetExists = "T001", Refuse,
        checks: "the target database does not exist (`on_exists: skip` counts it as done instead, \
            `replace` drops it and imports again)",
        by: BY_DATABASES,
        why: "STACKIT imports only into a database that does not exist";
    /// The target database is being restored, not by an earlier run.
    TargetRestoring = "T002", Refuse,
        checks: "no restore of the target database is running",
        by: BY_DATABASES,
        why: "a second restore of the same name would fail";
    /// A database of that name exists in another state (offline, suspect).
    TargetNotOnline = "T003", Refuse,
        checks: "no database of that name is in another state (offline, suspect)",
        by: BY_DATABASES,
        why: "the name is taken; the restore would fail";
    /// An earlier run submitted it, and it is neither restoring nor online.
    EarlierImportLost = "T004", Refuse,
        checks: "an import the journal says was submitted is restoring or online",
        by: BY_STATE,
        why: "the restore failed on the server; importing again is a deliberate choice \
            (another `--state` folder)";
    /// The instance's databases cannot be listed.
    TargetUnlisted = "T005", Refuse,
        checks: "the instance's databases can be listed",
        by: BY_DATABASES,
        why: "without the list, no import can be proven to happen once";
    /// A database this state imported is named with other files now.
    TargetChanged = "T006", Warn,
        checks: "a database this state imported is still named with the files it was imported from",
        by: BY_STATE,
        why: "the database holds the old files' data; importing the new ones is a decision \
            (`on_exists: replace`)";
    /// A `prefix` with no `.bak` object under it.
    NoBackupUnderPrefix = "S001", Refuse,
        checks: "a `prefix` holds at least one `.bak` object",
        by: "`plan` (S3 `ListObjectsV2`)",
        why: "there is nothing to import";
    /// A file is not in the bucket.
    ObjectMissing = "S002", Refuse,
        checks: "each file exists in the bucket",
        by: BY_OBJECTS,
        why: "the service would fail on it after the submit";
    /// The manifest's S3 key may not read a file.
    ObjectDenied = "S003", Refuse,
        checks: "the manifest's S3 key can read each file",
        by: BY_OBJECTS,
        why: "STACKIT reads the files with the manifest's key";
    /// S3 failed or could not be reached.
    S3Failed = "S004", Refuse,
        checks: "S3 answers the listing, `HEAD` and ranged `GET`",
        by: BY_OBJECTS,
        why: "the files cannot be checked";
    /// An object key with a comma on the SQL path.
    KeyWithComma = "M001", Refuse,
        checks: "no object key of a `sql` import contains a comma",
        by: "`validate`; `plan` for keys listed under a prefix",
        why: "the procedure takes all files as one comma-separated `@s3_url`";
    /// An older full backup of a source database that has a newer one.
    Superseded = "D001", Info,
        checks: "of each source database's complete full backups, the newest is chosen",
        by: BY_DISCOVER,
        why: "the newest full backup is the one a migration wants; the others are listed";
    /// The base manifest names this database on the instance already.
    AlreadyNamed = "D002", Info,
        checks: "a database the base manifest names already is not added again",
        by: BY_DISCOVER,
        why: "a rerun after new backups arrive adds only new databases";
    /// Two source databases map to one target name.
    NameCollision = "D003", Refuse,
        checks: "no two source databases get the same target name on the instance",
        by: BY_DISCOVER,
        why: "one would be imported over the other; use `{server}` in `--name-template`";
    /// The name the template makes, or the object's key, cannot be used.
    Unusable = "D004", Refuse,
        checks: "the target name is a valid database name and the key names one object",
        by: BY_DISCOVER,
        why: "`validate` would refuse the entry";
    /// After the import the database is not ONLINE, read-write and multi-user.
    NotUsable = "V001", Refuse,
        checks: "after the import the database is ONLINE, read-write and multi-user",
        by: BY_VERIFY_SQL,
        why: "the application cannot use it as it is";
    /// The database's owner is not the one the manifest asks for.
    OwnerDiffers = "V002", Refuse,
        checks: "the database's owner is the one asked for (`owner`; without one, the login \
            that ran the procedure)",
        by: BY_VERIFY,
        why: "the owner holds every right on the database; a wrong one is a security finding";
    /// Database users whose SID matches no login.
    OrphanedUsers = "V003", Warn,
        checks: "every SQL and Windows user of the database has a login with its SID \
            (`verify.orphaned_users: fix` remaps each to the login of the same name)",
        by: BY_VERIFY_SQL,
        why: "an orphaned user cannot log in: the application fails after the move";
    /// DBCC CHECKDB reports consistency errors.
    CheckdbErrors = "V004", Refuse,
        checks: "`DBCC CHECKDB ... WITH NO_INFOMSGS` (`verify.checkdb`) reports no errors",
        by: BY_VERIFY_SQL,
        why: "corruption travels with the backup and only CHECKDB finds it";
    /// The database's collation is not the instance's.
    CollationDiffers = "V005", Warn,
        checks: "the database's collation is the instance's",
        by: BY_VERIFY,
        why: "joins with temporary tables fail with collation conflicts";
    /// The compatibility level after the import, and a change asked for.
    CompatibilityLevel = "V006", Info,
        checks: "the compatibility level after the import; `verify.compatibility_level: \
            latest` or a number sets it (`ALTER DATABASE ... SET COMPATIBILITY_LEVEL`)",
        by: BY_VERIFY,
        why: "a database keeps its old level after a restore, and with it the old optimizer";
    /// A compatibility level the instance does not offer.
    LevelNotOffered = "V007", Refuse,
        checks: "the instance offers the compatibility level asked for",
        by: "`validate` (levels SQL Server has) and `plan`: API (`compatibility`) or SQL \
            (the levels of the instance's version)",
        why: "`ALTER DATABASE ... SET COMPATIBILITY_LEVEL` refuses it";
    /// A check that needs T-SQL on an instance reached only through the API.
    NotChecked = "V008", Info,
        checks: "which checks could not run: those that need T-SQL, on an instance without a \
            `sql` section",
        by: BY_VERIFY,
        why: "what was not checked is said, not passed over";
    /// A check could not run (refused, timed out, connection lost).
    CheckFailed = "V009", Refuse,
        checks: "each check asked for could run to its end",
        by: BY_VERIFY,
        why: "an unchecked database is not a verified one";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    pub const fn code(self) -> &'static str {
        self.spec().code
    }

    pub const fn severity(self) -> Severity {
        self.spec().severity
    }

    /// The rule of a code, as a journal stored it.
    pub fn from_code(code: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.code() == code)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One rule that applied to one database, with the specifics in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    #[serde(serialize_with = "code", deserialize_with = "code_back")]
    pub code: Rule,
    pub severity: Severity,
    pub message: String,
}

/// A rule as its code, for serde.
pub fn serialize_code<S: serde::Serializer>(rule: &Rule, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(rule.code())
}

fn code<S: serde::Serializer>(rule: &Rule, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(rule.code())
}

/// A rule from its code; a code this version does not know is an error.
fn code_back<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
    let code = String::deserialize(d)?;
    Rule::from_code(&code)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown rule code `{code}`")))
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
    for rule in Rule::ALL.iter().copied() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            rule.code(),
            match rule.severity() {
                Severity::Refuse => "refuses",
                Severity::Warn => "warns",
                Severity::Info => "informs",
            },
            rule.spec().checks,
            rule.spec().checked_by,
            rule.spec().why
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
