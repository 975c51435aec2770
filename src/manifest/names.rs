//! Rules for the name of a target database.
//!
//! The name travels as an NVARCHAR(80) parameter into STACKIT's procedure,
//! which builds `RESTORE DATABASE [name]` from it. Only regular identifiers are
//! accepted: whatever could close a bracket, a quote or a statement is
//! refused before any remote call.

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

/// Why a name cannot be a target database, in words for the manifest author.
pub fn check_database_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the database name is empty".into());
    }
    // NVARCHAR counts UTF-16 code units: a letter outside the Basic
    // Multilingual Plane takes two.
    let units = name.encode_utf16().count();
    if units > MAX_NAME_CHARS {
        return Err(format!(
            "the name has {units} characters (UTF-16 code units, as NVARCHAR counts them); \
             STACKIT's import takes at most {MAX_NAME_CHARS}"
        ));
    }
    if let Some(c) = name.chars().find(|c| is_breakout(*c)) {
        return Err(format!(
            "the name contains {}, which could break out of a quoted SQL name",
            describe(c)
        ));
    }
    if SYSTEM_DATABASES
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "`{name}` is a system database and cannot be imported over"
        ));
    }
    check_regular_identifier(name)?;
    if RESERVED
        .binary_search(&name.to_ascii_uppercase().as_str())
        .is_ok()
    {
        return Err(format!("`{name}` is a Transact-SQL reserved word"));
    }
    Ok(())
}

/// A login name for `owner`: at most 128 characters, nothing that could end
/// a quoted name. Logins may be domain accounts (`DOMAIN\user`), so this is
/// looser than the database name rule.
pub fn check_login_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the owner is empty".into());
    }
    if name.chars().count() > 128 {
        return Err("the owner has more than 128 characters".into());
    }
    match name.chars().find(|c| is_breakout(*c)) {
        Some(c) => Err(format!(
            "the owner contains {}, which could break out of a quoted SQL name",
            describe(c)
        )),
        None => Ok(()),
    }
}

/// SQL Server's rule for regular identifiers: a letter or `_` first (a
/// leading `@` or `#` means a variable or a temporary object), then letters,
/// digits, `_`, `@`, `$` or `#`.
fn check_regular_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first = chars.next().expect("checked non-empty");
    if !(first.is_alphabetic() || first == '_') {
        return Err(format!(
            "a database name must start with a letter or `_`, not {}",
            describe(first)
        ));
    }
    if let Some(c) = chars.find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '@' | '$' | '#'))) {
        return Err(format!(
            "a database name may contain letters, digits, `_`, `@`, `$` and `#`, not {}",
            describe(c)
        ));
    }
    Ok(())
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
    fn accepts_regular_identifiers() {
        for ok in [
            "sales",
            "Sales_2026",
            "_tmp",
            "db$1",
            "ünïcödé",
            "a#b@c",
            &"x".repeat(80),
        ] {
            assert_eq!(check_database_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_sql_server_or_stackit_would() {
        let cases = [
            ("", "empty"),
            (&*"x".repeat(81), "81 characters"),
            ("master", "system database"),
            ("TempDB", "system database"),
            ("a]b", "break out"),
            ("a'; DROP DATABASE x; --", "break out"),
            ("tab\there", "control character"),
            ("1sales", "start with a letter"),
            ("#temp", "start with a letter"),
            ("sales-2026", "not `-`"),
            ("my db", "not a space"),
            ("select", "reserved word"),
        ];
        for (name, expected) in cases {
            let err = check_database_name(name).unwrap_err();
            assert!(err.contains(expected), "{name:?}: {err}");
        }
    }

    #[test]
    fn length_counts_utf16_units_and_look_alikes_are_flagged() {
        // 41 letters outside the BMP are 82 UTF-16 units.
        let wide = "\u{10400}".repeat(41);
        assert!(
            check_database_name(&wide)
                .unwrap_err()
                .contains("82 characters")
        );
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
