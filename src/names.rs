//! Rules for the name of a target database.
//!
//! SQL Server takes any database name of 1 to 128 characters, delimited
//! (`[my-db]`) when it is not a regular identifier. The name travels as an
//! NVARCHAR(80) parameter into STACKIT's procedure, and as a plain string
//! in the API's body and, escaped as one segment, in its paths; every T-SQL
//! statement the tool sends quotes it as QUOTENAME does. A name that needs
//! delimiting is a warning; refused is only what cannot work.

pub const MAX_NAME_CHARS: usize = 80;

const SYSTEM_DATABASES: &[&str] = &["master", "model", "msdb", "tempdb", "mssqlsystemresource"];

/// Transact-SQL reserved keywords: a regular identifier must not be one.
/// Sorted, for binary search.
const RESERVED: &[&str] = &[
    "ADD",
    "ALL",
    "ALTER",
    "AND",
    "ANY",
    "AS",
    "ASC",
    "AUTHORIZATION",
    "BACKUP",
    "BEGIN",
    "BETWEEN",
    "BREAK",
    "BROWSE",
    "BULK",
    "BY",
    "CASCADE",
    "CASE",
    "CHECK",
    "CHECKPOINT",
    "CLOSE",
    "CLUSTERED",
    "COALESCE",
    "COLLATE",
    "COLUMN",
    "COMMIT",
    "COMPUTE",
    "CONSTRAINT",
    "CONTAINS",
    "CONTAINSTABLE",
    "CONTINUE",
    "CONVERT",
    "CREATE",
    "CROSS",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "CURSOR",
    "DATABASE",
    "DBCC",
    "DEALLOCATE",
    "DECLARE",
    "DEFAULT",
    "DELETE",
    "DENY",
    "DESC",
    "DISK",
    "DISTINCT",
    "DISTRIBUTED",
    "DOUBLE",
    "DROP",
    "DUMP",
    "ELSE",
    "END",
    "ERRLVL",
    "ESCAPE",
    "EXCEPT",
    "EXEC",
    "EXECUTE",
    "EXISTS",
    "EXIT",
    "EXTERNAL",
    "FETCH",
    "FILE",
    "FILLFACTOR",
    "FOR",
    "FOREIGN",
    "FREETEXT",
    "FREETEXTTABLE",
    "FROM",
    "FULL",
    "FUNCTION",
    "GOTO",
    "GRANT",
    "GROUP",
    "HAVING",
    "HOLDLOCK",
    "IDENTITY",
    "IDENTITYCOL",
    "IDENTITY_INSERT",
    "IF",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTERSECT",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "KILL",
    "LEFT",
    "LIKE",
    "LINENO",
    "LOAD",
    "MERGE",
    "NATIONAL",
    "NOCHECK",
    "NONCLUSTERED",
    "NOT",
    "NULL",
    "NULLIF",
    "OF",
    "OFF",
    "OFFSETS",
    "ON",
    "OPEN",
    "OPENDATASOURCE",
    "OPENQUERY",
    "OPENROWSET",
    "OPENXML",
    "OPTION",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PERCENT",
    "PIVOT",
    "PLAN",
    "PRECISION",
    "PRIMARY",
    "PRINT",
    "PROC",
    "PROCEDURE",
    "PUBLIC",
    "RAISERROR",
    "READ",
    "READTEXT",
    "RECONFIGURE",
    "REFERENCES",
    "REPLICATION",
    "RESTORE",
    "RESTRICT",
    "RETURN",
    "REVERT",
    "REVOKE",
    "RIGHT",
    "ROLLBACK",
    "ROWCOUNT",
    "ROWGUIDCOL",
    "RULE",
    "SAVE",
    "SCHEMA",
    "SECURITYAUDIT",
    "SELECT",
    "SEMANTICKEYPHRASETABLE",
    "SEMANTICSIMILARITYDETAILSTABLE",
    "SEMANTICSIMILARITYTABLE",
    "SESSION_USER",
    "SET",
    "SETUSER",
    "SHUTDOWN",
    "SOME",
    "STATISTICS",
    "SYSTEM_USER",
    "TABLE",
    "TABLESAMPLE",
    "TEXTSIZE",
    "THEN",
    "TO",
    "TOP",
    "TRAN",
    "TRANSACTION",
    "TRIGGER",
    "TRUNCATE",
    "TRY_CONVERT",
    "TSEQUAL",
    "UNION",
    "UNIQUE",
    "UNPIVOT",
    "UPDATE",
    "UPDATETEXT",
    "USE",
    "USER",
    "VALUES",
    "VARYING",
    "VIEW",
    "WAITFOR",
    "WHEN",
    "WHERE",
    "WHILE",
    "WITH",
    "WRITETEXT",
];

/// Why a name cannot be a target database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the database name is empty")]
    Empty,
    #[error(
        "the name has {0} characters (UTF-16 code units, as NVARCHAR counts them); \
         STACKIT's import takes at most {MAX_NAME_CHARS}"
    )]
    TooLong(usize),
    #[error("the name contains {}, which no database name may hold", describe(*.0))]
    Control(char),
    #[error(
        "the name contains {}: STACKIT's procedure builds its RESTORE from the name, and how \
         it quotes it is not documented, so a quote character could end the name early",
        describe(*.0)
    )]
    Quote(char),
    #[error("the name begins or ends with a space, which SQL Server drops when it compares names")]
    EdgeSpace,
    #[error("`{0}` is a system database and cannot be imported over")]
    System(String),
}

/// Whether `name` can be a target database. SQL Server takes any name of
/// 1 to 128 characters as a delimited identifier (`[my-db]`); STACKIT's
/// procedure takes it as an NVARCHAR(80). Refused is only what cannot
/// work: too long, a control character, a quote character, a space at
/// either end, a system database.
pub fn check_database_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    // NVARCHAR counts UTF-16 code units: a letter outside the Basic
    // Multilingual Plane takes two.
    let units = name.encode_utf16().count();
    if units > MAX_NAME_CHARS {
        return Err(NameError::TooLong(units));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameError::Control(c));
    }
    if let Some(c) = name.chars().find(|c| is_quote(*c)) {
        return Err(NameError::Quote(c));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(NameError::EdgeSpace);
    }
    if SYSTEM_DATABASES
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
    {
        return Err(NameError::System(name.to_owned()));
    }
    Ok(())
}

/// Why a valid name is not a regular identifier, so that T-SQL must
/// delimit it (`[my-db]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Delimited {
    #[error("`{name}` begins with {}", describe(*.first))]
    Start { name: String, first: char },
    #[error("`{name}` contains {}", describe(*.character))]
    Character { name: String, character: char },
    #[error("`{0}` is a Transact-SQL reserved word")]
    Reserved(String),
}

/// SQL Server's rule for regular identifiers: a letter or `_` first (a
/// leading `@` or `#` means a variable or a temporary object), then letters,
/// digits, `_`, `@`, `$` or `#`, and no reserved word. A name that breaks it
/// is legal, but only as a delimited identifier.
pub fn needs_delimiting(name: &str) -> Option<Delimited> {
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_alphabetic() || first == '_') {
        return Some(Delimited::Start {
            name: name.to_owned(),
            first,
        });
    }
    if let Some(c) = chars.find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '@' | '$' | '#'))) {
        return Some(Delimited::Character {
            name: name.to_owned(),
            character: c,
        });
    }
    if RESERVED
        .binary_search(&name.to_ascii_uppercase().as_str())
        .is_ok()
    {
        return Some(Delimited::Reserved(name.to_owned()));
    }
    None
}

/// A name as a delimited identifier, as `QUOTENAME` makes it: in brackets,
/// a `]` doubled.
pub fn quote_name(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// Why a login cannot be an owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("the owner is empty")]
    Empty,
    #[error("the owner has more than 128 characters")]
    TooLong,
    #[error(
        "the owner contains {}, which could break out of a quoted SQL name",
        describe(*.0)
    )]
    Breakout(char),
}

/// A login name for `owner`: at most 128 characters, nothing that could end
/// a quoted name. Logins may be domain accounts (`DOMAIN\user`).
pub fn check_login_name(name: &str) -> Result<(), LoginError> {
    if name.is_empty() {
        return Err(LoginError::Empty);
    }
    if name.chars().count() > 128 {
        return Err(LoginError::TooLong);
    }
    match name.chars().find(|c| is_breakout(*c)) {
        Some(c) => Err(LoginError::Breakout(c)),
        None => Ok(()),
    }
}

/// Scripts whose letters look alike (`a` and Cyrillic `а`, `o` and Greek
/// `ο`). A name mixing them is legal, but is usually a look-alike that
/// imports under a name nobody can type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
}

impl Script {
    fn of(c: char) -> Option<Script> {
        match c as u32 {
            0x41..=0x5a | 0x61..=0x7a | 0xc0..=0x24f | 0x1e00..=0x1eff => Some(Script::Latin),
            0x370..=0x3ff | 0x1f00..=0x1fff => Some(Script::Greek),
            0x400..=0x52f => Some(Script::Cyrillic),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Script::Latin => "Latin",
            Script::Greek => "Greek",
            Script::Cyrillic => "Cyrillic",
        }
    }
}

/// A warning when a name mixes Latin, Greek and Cyrillic letters.
pub fn mixed_scripts(name: &str) -> Option<String> {
    let mut first: Option<(Script, char)> = None;
    for c in name.chars() {
        let Some(script) = Script::of(c) else {
            continue;
        };
        match first {
            None => first = Some((script, c)),
            Some((s, f)) if s != script => {
                return Some(format!(
                    "the name `{name}` mixes {} (`{f}`) and {} (`{c}`, U+{:04X}) letters, which can look alike",
                    s.name(),
                    script.name(),
                    c as u32
                ));
            }
            Some(_) => {}
        }
    }
    None
}

fn is_breakout(c: char) -> bool {
    matches!(c, '[' | ']' | '\'' | '"' | ';' | '`') || c.is_control()
}

/// What ends a quoted name or string: `]`, `'` and `"`.
fn is_quote(c: char) -> bool {
    matches!(c, ']' | '\'' | '"')
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_sql_server_takes_and_says_what_needs_delimiting() {
        for regular in ["sales", "Sales_2026", "_tmp", "db$1", "ünïcödé", "a#b@c"] {
            assert_eq!(check_database_name(regular), Ok(()), "{regular}");
            assert_eq!(needs_delimiting(regular), None, "{regular}");
        }
        let x80 = "x".repeat(80);
        assert_eq!(check_database_name(&x80), Ok(()));
        // Real names from the field: a hyphen (GUIDs too), SharePoint's
        // dots, a space, a leading digit, a reserved word.
        for (name, why) in [
            ("my-db", "contains `-`"),
            ("WSS_Content.Intranet", "contains `.`"),
            ("Sales DB", "contains a space"),
            ("2019_archive", "begins with `2`"),
            ("5d1c8c1e-3b5a-4d7e-9a39-0a5f2a1b8c11", "begins with `5`"),
            ("select", "reserved word"),
            ("#temp", "begins with `#`"),
            ("a[b", "contains `[`"),
        ] {
            assert_eq!(check_database_name(name), Ok(()), "{name}");
            let d = needs_delimiting(name).unwrap_or_else(|| panic!("{name}"));
            assert!(d.to_string().contains(why), "{name}: {d}");
        }
    }

    #[test]
    fn refuses_what_cannot_work() {
        let cases = [
            ("", NameError::Empty),
            (&*"x".repeat(81), NameError::TooLong(81)),
            ("master", NameError::System("master".into())),
            ("TempDB", NameError::System("TempDB".into())),
            ("a]b", NameError::Quote(']')),
            ("a'; DROP DATABASE x; --", NameError::Quote('\'')),
            ("say \"hi\"", NameError::Quote('"')),
            ("tab\there", NameError::Control('\t')),
            ("line\nbreak", NameError::Control('\n')),
            (" lead", NameError::EdgeSpace),
            ("trail ", NameError::EdgeSpace),
        ];
        for (name, expected) in cases {
            assert_eq!(check_database_name(name), Err(expected), "{name:?}");
        }
    }

    #[test]
    fn length_counts_utf16_units_and_look_alikes_are_flagged() {
        // 41 letters outside the BMP are 82 UTF-16 units.
        let wide = "\u{10400}".repeat(41);
        assert_eq!(check_database_name(&wide), Err(NameError::TooLong(82)));
        assert_eq!(check_database_name(&"\u{10400}".repeat(40)), Ok(()));
        assert!(mixed_scripts("s\u{0430}les").unwrap().contains("Cyrillic"));
        assert!(mixed_scripts("sales_2026").is_none());
        assert!(mixed_scripts("ünïcödé").is_none());
        assert!(mixed_scripts("продажи").is_none());
    }

    #[test]
    fn reserved_words_are_sorted_for_binary_search() {
        assert!(RESERVED.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn owners_may_be_domain_accounts_but_not_breakouts() {
        assert_eq!(check_login_name(r"CORP\svc_app"), Ok(()));
        assert!(check_login_name("a]").is_err());
    }
}
