//! The statements the emulator understands, recognised from a small token
//! stream rather than by regular expressions on text: the import procedure,
//! `sys.databases`, `DB_ID`, `@@VERSION`, `SELECT <n>`, and harmless `SET`
//! and `USE`. Anything else is answered with an error that names it.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier or keyword, brackets removed.
    Word(String),
    /// `@name` as `name`, `@@name` as `@name`, lower-cased.
    Var(String),
    Str(String),
    Num(i64),
    Punct(char),
}

fn lex(sql: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '[' => {
                let start = i + 1;
                let mut word = String::new();
                i = start;
                loop {
                    match chars.get(i) {
                        None => return Err("unclosed [".into()),
                        Some(']') if chars.get(i + 1) == Some(&']') => {
                            word.push(']');
                            i += 2;
                        }
                        Some(']') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            word.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Word(word));
            }
            '\'' => {
                let (s, next) = quoted(&chars, i)?;
                out.push(Tok::Str(s));
                i = next;
            }
            'N' | 'n' if chars.get(i + 1) == Some(&'\'') => {
                let (s, next) = quoted(&chars, i + 1)?;
                out.push(Tok::Str(s));
                i = next;
            }
            '@' => {
                // `@name` is a parameter; `@@name` a system function, kept as `@name`.
                let start = i + 1;
                let mut j = start + usize::from(chars.get(start) == Some(&'@'));
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '#' | '$'))
                {
                    j += 1;
                }
                out.push(Tok::Var(
                    chars[start..j].iter().collect::<String>().to_lowercase(),
                ));
                i = j;
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let digits: String = chars[start..i].iter().collect();
                out.push(Tok::Num(
                    digits
                        .parse()
                        .map_err(|_| format!("number {digits} is too large"))?,
                ));
            }
            c if c.is_alphabetic() || c == '_' || c == '#' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '#' | '$'))
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            c => {
                out.push(Tok::Punct(c));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A '...' string starting at `at` (the quote); '' is a quote inside.
fn quoted(chars: &[char], at: usize) -> Result<(String, usize), String> {
    let mut s = String::new();
    let mut i = at + 1;
    loop {
        match chars.get(i) {
            None => return Err("unclosed string literal".into()),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                s.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((s, i + 1)),
            Some(&c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

/// A value in a statement: a literal or a parameter reference.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Var(String),
    Text(String),
    Num(i64),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbColumn {
    Name,
    StateDesc,
    State,
    DatabaseId,
    CreateDate,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `EXEC [msdb].[stackit].[import_database] ...`: (parameter name or
    /// empty for positional, value).
    Import(Vec<(String, Arg)>),
    SysDatabases {
        columns: Vec<DbColumn>,
        name: Option<Arg>,
    },
    DbId(Arg),
    Version,
    /// `SELECT SERVERPROPERTY('ProductMajorVersion'), SUSER_SNAME()`: the
    /// instance's major version and the login running the batch, and with
    /// `, HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW ANY DATABASE')` whether it
    /// may see every database.
    ServerFacts {
        view_any_database: bool,
    },
    /// `SELECT name, is_disabled FROM sys.server_principals [WHERE ...]`:
    /// the logins.
    Principals,
    /// `SELECT DB_NAME(database_id), percent_complete FROM
    /// sys.dm_exec_requests [WHERE ...]`: the restores running, with their
    /// percent, as SSMS shows a restore's progress.
    RestoreRequests,
    SelectNumber(i64),
    /// `ALTER DATABASE [x] SET SINGLE_USER WITH ROLLBACK IMMEDIATE`: the
    /// step before a drop: refused for a database that is absent or being
    /// restored.
    SingleUser(String),
    /// `DROP DATABASE [x]`.
    DropDatabase(String),
    /// `SET ...`, `USE ...`: accepted, nothing to do.
    NoOp,
    Unsupported(String),
}

/// The statements of a batch, split at `;` outside strings.
pub fn parse_batch(sql: &str) -> Vec<Statement> {
    let tokens = match lex(sql) {
        Ok(t) => t,
        Err(e) => {
            return vec![Statement::Unsupported(format!(
                "cannot read the statement: {e}"
            ))];
        }
    };
    let statements: Vec<Statement> = tokens
        .split(|t| *t == Tok::Punct(';'))
        .filter(|s| !s.is_empty())
        .map(|s| parse_statement(s, sql))
        .collect();
    if statements.is_empty() {
        vec![Statement::NoOp]
    } else {
        statements
    }
}

fn word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
}

fn parse_statement(t: &[Tok], sql: &str) -> Statement {
    let unsupported = || {
        let text: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let short: String = text.chars().take(80).collect();
        Statement::Unsupported(format!(
            "the emulator does not support this statement: {short}"
        ))
    };
    if word(t.first(), "SET") || word(t.first(), "USE") {
        return Statement::NoOp;
    }
    match t {
        [Tok::Word(drop), Tok::Word(db), Tok::Word(name)]
            if drop.eq_ignore_ascii_case("DROP") && db.eq_ignore_ascii_case("DATABASE") =>
        {
            return Statement::DropDatabase(name.clone());
        }
        [Tok::Word(alter), Tok::Word(db), Tok::Word(name), rest @ ..]
            if alter.eq_ignore_ascii_case("ALTER")
                && db.eq_ignore_ascii_case("DATABASE")
                && rest.len() == 5
                && ["SET", "SINGLE_USER", "WITH", "ROLLBACK", "IMMEDIATE"]
                    .iter()
                    .zip(rest)
                    .all(|(w, t)| word(Some(t), w)) =>
        {
            return Statement::SingleUser(name.clone());
        }
        _ => {}
    }
    if word(t.first(), "EXEC") || word(t.first(), "EXECUTE") {
        return parse_exec(&t[1..]).unwrap_or_else(unsupported);
    }
    if !word(t.first(), "SELECT") {
        return unsupported();
    }
    let rest = &t[1..];
    match rest {
        [Tok::Var(v)] | [Tok::Var(v), ..] if v == "@version" => Statement::Version,
        [Tok::Num(n)] => Statement::SelectNumber(*n),
        [Tok::Num(n), Tok::Word(as_), Tok::Word(_)] if as_.eq_ignore_ascii_case("AS") => {
            Statement::SelectNumber(*n)
        }
        [Tok::Word(f), Tok::Punct('('), arg, Tok::Punct(')'), ..]
            if f.eq_ignore_ascii_case("DB_ID") =>
        {
            arg_of(arg).map(Statement::DbId).unwrap_or_else(unsupported)
        }
        [
            Tok::Word(f),
            Tok::Punct('('),
            Tok::Str(p),
            Tok::Punct(')'),
            ..,
        ] if f.eq_ignore_ascii_case("SERVERPROPERTY")
            && p.eq_ignore_ascii_case("ProductMajorVersion") =>
        {
            Statement::ServerFacts {
                view_any_database: rest.iter().any(
                    |t| matches!(t, Tok::Str(p) if p.eq_ignore_ascii_case("VIEW ANY DATABASE")),
                ) && rest.iter().any(|t| word(Some(t), "HAS_PERMS_BY_NAME")),
            }
        }
        _ if is_principals_query(rest) => Statement::Principals,
        _ if is_restore_requests_query(rest) => Statement::RestoreRequests,
        _ => parse_sys_databases(rest).unwrap_or_else(unsupported),
    }
}

/// `name, is_disabled FROM [master.]sys.server_principals ...`
fn is_principals_query(t: &[Tok]) -> bool {
    let Some(from) = t.iter().position(|x| word(Some(x), "FROM")) else {
        return false;
    };
    let columns_ok = t[..from]
        .split(|x| *x == Tok::Punct(','))
        .all(|c| matches!(c, [Tok::Word(w)] if w.eq_ignore_ascii_case("name") || w.eq_ignore_ascii_case("is_disabled")));
    let mut rest = &t[from + 1..];
    if word(rest.first(), "master") && rest.get(1) == Some(&Tok::Punct('.')) {
        rest = &rest[2..];
    }
    columns_ok
        && word(rest.first(), "sys")
        && rest.get(1) == Some(&Tok::Punct('.'))
        && word(rest.get(2), "server_principals")
}

/// `DB_NAME(database_id) [AS x], percent_complete FROM [master.]sys.dm_exec_requests ...`
fn is_restore_requests_query(t: &[Tok]) -> bool {
    let Some(from) = t.iter().position(|x| word(Some(x), "FROM")) else {
        return false;
    };
    let columns: Vec<&[Tok]> = t[..from].split(|x| *x == Tok::Punct(',')).collect();
    let db_name = |c: &[Tok]| {
        matches!(c, [Tok::Word(f), Tok::Punct('('), Tok::Word(id), Tok::Punct(')'), ..]
            if f.eq_ignore_ascii_case("DB_NAME") && id.eq_ignore_ascii_case("database_id"))
    };
    let percent =
        |c: &[Tok]| matches!(c, [Tok::Word(w), ..] if w.eq_ignore_ascii_case("percent_complete"));
    let mut rest = &t[from + 1..];
    if word(rest.first(), "master") && rest.get(1) == Some(&Tok::Punct('.')) {
        rest = &rest[2..];
    }
    columns.len() == 2
        && db_name(columns[0])
        && percent(columns[1])
        && word(rest.first(), "sys")
        && rest.get(1) == Some(&Tok::Punct('.'))
        && word(rest.get(2), "dm_exec_requests")
}

fn arg_of(t: &Tok) -> Option<Arg> {
    match t {
        Tok::Var(v) => Some(Arg::Var(v.clone())),
        Tok::Str(s) => Some(Arg::Text(s.clone())),
        Tok::Num(n) => Some(Arg::Num(*n)),
        Tok::Word(w) if w.eq_ignore_ascii_case("NULL") => Some(Arg::Null),
        _ => None,
    }
}

/// `SELECT cols FROM [master.]sys.databases [WHERE name = x] [ORDER BY ...]`
fn parse_sys_databases(t: &[Tok]) -> Option<Statement> {
    let from = t.iter().position(|x| word(Some(x), "FROM"))?;
    let mut columns = Vec::new();
    for item in t[..from].split(|x| *x == Tok::Punct(',')) {
        let name = match item {
            [Tok::Punct('*')] => {
                columns.extend([
                    DbColumn::Name,
                    DbColumn::DatabaseId,
                    DbColumn::CreateDate,
                    DbColumn::State,
                    DbColumn::StateDesc,
                ]);
                continue;
            }
            [Tok::Word(w)] => w,
            [Tok::Word(_), Tok::Punct('.'), Tok::Word(w)] => w,
            _ => return None,
        };
        columns.push(match name.to_lowercase().as_str() {
            "name" => DbColumn::Name,
            "state_desc" => DbColumn::StateDesc,
            "state" => DbColumn::State,
            "database_id" => DbColumn::DatabaseId,
            "create_date" => DbColumn::CreateDate,
            _ => return None,
        });
    }
    let mut rest = &t[from + 1..];
    // [master.]sys.databases, with an optional alias
    if word(rest.first(), "master") && rest.get(1) == Some(&Tok::Punct('.')) {
        rest = &rest[2..];
    }
    if !(word(rest.first(), "sys")
        && rest.get(1) == Some(&Tok::Punct('.'))
        && word(rest.get(2), "databases"))
    {
        return None;
    }
    rest = &rest[3..];
    if let Some(Tok::Word(alias)) = rest.first()
        && !["WHERE", "ORDER"]
            .iter()
            .any(|k| alias.eq_ignore_ascii_case(k))
    {
        rest = &rest[1..];
    }
    let mut name = None;
    if word(rest.first(), "WHERE") {
        let mut cond = &rest[1..];
        if let [Tok::Word(_), Tok::Punct('.'), tail @ ..] = cond {
            cond = tail;
        }
        match cond {
            [Tok::Word(col), Tok::Punct('='), value, tail @ ..]
                if col.eq_ignore_ascii_case("name") =>
            {
                name = Some(arg_of(value)?);
                rest = tail;
            }
            _ => return None,
        }
    }
    if !(rest.is_empty() || word(rest.first(), "ORDER")) {
        return None;
    }
    Some(Statement::SysDatabases { columns, name })
}

/// The procedure's parameters, in declaration order (for positional calls).
pub const IMPORT_PARAMETERS: [&str; 5] = [
    "database_name",
    "owner_name",
    "s3_url",
    "s3_access_key_id",
    "s3_secret_key_id",
];

/// Whether a procedure name means `[msdb].[stackit].[import_database]`.
pub fn is_import_procedure(parts: &[String]) -> bool {
    let lower: Vec<String> = parts.iter().map(|p| p.to_lowercase()).collect();
    matches!(
        lower
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["msdb", "stackit", "import_database"] | ["msdb", "", "import_database"]
    )
}

/// Splits `[msdb].[stackit].[import_database]` (brackets optional).
pub fn procedure_parts(name: &str) -> Vec<String> {
    match lex(name) {
        Ok(tokens) => tokens
            .split(|t| *t == Tok::Punct('.'))
            .map(|p| match p {
                [Tok::Word(w)] => w.clone(),
                _ => String::new(),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn parse_exec(t: &[Tok]) -> Option<Statement> {
    // The name: words separated by dots.
    let mut parts = Vec::new();
    let mut i = 0;
    while let Some(Tok::Word(w)) = t.get(i) {
        parts.push(w.clone());
        i += 1;
        if t.get(i) == Some(&Tok::Punct('.')) {
            i += 1;
            if t.get(i) == Some(&Tok::Punct('.')) {
                parts.push(String::new()); // msdb..import_database
            }
        } else {
            break;
        }
    }
    if !is_import_procedure(&parts) {
        return None;
    }
    let mut args = Vec::new();
    let rest = &t[i..];
    if rest.is_empty() {
        return Some(Statement::Import(args));
    }
    for arg in rest.split(|x| *x == Tok::Punct(',')) {
        match arg {
            [Tok::Var(name), Tok::Punct('='), value] => args.push((name.clone(), arg_of(value)?)),
            [value] => args.push((String::new(), arg_of(value)?)),
            _ => return None,
        }
    }
    Some(Statement::Import(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_import_procedure_in_every_spelling() {
        let s = parse_batch(
            "EXEC [msdb].[stackit].[import_database] @database_name = @P1, @owner_name = @P2, \
             @s3_url = @P3, @s3_access_key_id = @P4, @s3_secret_key_id = @P5",
        );
        let Statement::Import(args) = &s[0] else {
            panic!("{s:?}")
        };
        assert_eq!(args[0], ("database_name".into(), Arg::Var("p1".into())));
        assert_eq!(args.len(), 5);
        let s = parse_batch(
            "execute msdb.stackit.import_database N'sales', NULL, N's3://h/b/k.bak', 'ak', 'sk';",
        );
        let Statement::Import(args) = &s[0] else {
            panic!("{s:?}")
        };
        assert_eq!(args[0], (String::new(), Arg::Text("sales".into())));
        assert_eq!(args[1], (String::new(), Arg::Null));
    }

    #[test]
    fn recognises_status_queries() {
        assert_eq!(
            parse_batch("SELECT name, state_desc FROM sys.databases WHERE name = @P1")[0],
            Statement::SysDatabases {
                columns: vec![DbColumn::Name, DbColumn::StateDesc],
                name: Some(Arg::Var("p1".into()))
            }
        );
        assert_eq!(
            parse_batch("select d.name, d.database_id from master.sys.databases d order by name")
                [0],
            Statement::SysDatabases {
                columns: vec![DbColumn::Name, DbColumn::DatabaseId],
                name: None
            }
        );
        assert_eq!(
            parse_batch("SELECT DB_ID(N'it''s')")[0],
            Statement::DbId(Arg::Text("it's".into()))
        );
        assert_eq!(parse_batch("SELECT @@VERSION")[0], Statement::Version);
        assert_eq!(
            parse_batch("SELECT SERVERPROPERTY('ProductMajorVersion'), SUSER_SNAME()")[0],
            Statement::ServerFacts {
                view_any_database: false
            }
        );
        assert_eq!(
            parse_batch(
                "select serverproperty('ProductMajorVersion'), suser_sname(), \
                 has_perms_by_name(null, null, 'VIEW ANY DATABASE')"
            )[0],
            Statement::ServerFacts {
                view_any_database: true
            }
        );
        assert_eq!(parse_batch("SELECT 1")[0], Statement::SelectNumber(1));
        assert_eq!(parse_batch("SET NOCOUNT ON; SELECT 1").len(), 2);
    }

    #[test]
    fn names_what_it_does_not_support() {
        let Statement::Unsupported(why) = &parse_batch("DROP TABLE sales")[0] else {
            panic!()
        };
        assert!(why.contains("DROP TABLE sales"), "{why}");
        assert_eq!(
            parse_batch(
                "ALTER DATABASE [a]]b] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [a]]b];"
            ),
            [
                Statement::SingleUser("a]b".into()),
                Statement::DropDatabase("a]b".into())
            ]
        );
        assert!(matches!(
            parse_batch("SELECT 'unterminated")[0],
            Statement::Unsupported(_)
        ));
        assert!(matches!(
            parse_batch("EXEC [msdb].[dbo].[other]")[0],
            Statement::Unsupported(_)
        ));
    }
}
