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
    IsReadOnly,
    UserAccessDesc,
    CollationName,
    CompatibilityLevel,
    /// `SUSER_SNAME(owner_sid)`.
    OwnerName,
}

/// A value of `SELECT SERVERPROPERTY('...'), SUSER_SNAME(), ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerValue {
    Property(String),
    /// `SUSER_SNAME()`: the login running the batch.
    Login,
    /// `HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW ANY DATABASE')`.
    ViewAnyDatabase,
}

/// A column of `sys.server_principals` the emulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginColumn {
    Name,
    IsDisabled,
    Sid,
    Type,
}

/// A column of `sys.database_principals` the emulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalColumn {
    Name,
    Type,
    PrincipalId,
    AuthenticationTypeDesc,
    Sid,
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
    /// `SELECT SERVERPROPERTY('ProductMajorVersion'), SUSER_SNAME(),
    /// HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW ANY DATABASE')` and the like:
    /// properties of the instance and of the login running the batch.
    ServerValues(Vec<ServerValue>),
    /// `SELECT name, is_disabled, sid FROM sys.server_principals [WHERE
    /// ...]`: the logins.
    Principals(Vec<LoginColumn>),
    /// `SELECT name, type, principal_id, authentication_type_desc, sid FROM
    /// [db].sys.database_principals`.
    DatabasePrincipals {
        database: String,
        columns: Vec<PrincipalColumn>,
    },
    /// `USE [db]`: the session's database.
    Use(String),
    /// `ALTER USER [u] WITH LOGIN = [l]`, in the session's database.
    AlterUser {
        user: String,
        login: String,
    },
    /// `DBCC CHECKDB ([db]) [WITH NO_INFOMSGS[, PHYSICAL_ONLY]]`.
    Checkdb(Arg),
    /// `ALTER DATABASE [db] SET COMPATIBILITY_LEVEL = n`.
    SetLevel {
        database: String,
        level: i64,
    },
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
    if let [Tok::Word(use_), Tok::Word(name)] = t
        && use_.eq_ignore_ascii_case("USE")
    {
        return Statement::Use(name.clone());
    }
    if word(t.first(), "SET") {
        return Statement::NoOp;
    }
    match t {
        [
            Tok::Word(alter),
            Tok::Word(user),
            Tok::Word(name),
            Tok::Word(with),
            Tok::Word(login),
            Tok::Punct('='),
            Tok::Word(login_name),
        ] if alter.eq_ignore_ascii_case("ALTER")
            && user.eq_ignore_ascii_case("USER")
            && with.eq_ignore_ascii_case("WITH")
            && login.eq_ignore_ascii_case("LOGIN") =>
        {
            return Statement::AlterUser {
                user: name.clone(),
                login: login_name.clone(),
            };
        }
        [
            Tok::Word(alter),
            Tok::Word(db),
            Tok::Word(name),
            Tok::Word(set),
            Tok::Word(option),
            Tok::Punct('='),
            Tok::Num(level),
        ] if alter.eq_ignore_ascii_case("ALTER")
            && db.eq_ignore_ascii_case("DATABASE")
            && set.eq_ignore_ascii_case("SET")
            && option.eq_ignore_ascii_case("COMPATIBILITY_LEVEL") =>
        {
            return Statement::SetLevel {
                database: name.clone(),
                level: *level,
            };
        }
        [
            Tok::Word(dbcc),
            Tok::Word(checkdb),
            Tok::Punct('('),
            name,
            Tok::Punct(')'),
            rest @ ..,
        ] if dbcc.eq_ignore_ascii_case("DBCC")
            && checkdb.eq_ignore_ascii_case("CHECKDB")
            && checkdb_options(rest) =>
        {
            let database = match name {
                Tok::Word(w) => Some(Arg::Text(w.clone())),
                other => arg_of(other),
            };
            return database.map_or_else(unsupported, Statement::Checkdb);
        }
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
        _ if server_values(rest).is_some() => {
            Statement::ServerValues(server_values(rest).unwrap_or_default())
        }
        _ if principals_query(rest).is_some() => {
            Statement::Principals(principals_query(rest).unwrap_or_default())
        }
        _ if database_principals_query(rest).is_some() => {
            database_principals_query(rest).unwrap_or_else(unsupported)
        }
        _ if is_restore_requests_query(rest) => Statement::RestoreRequests,
        _ => parse_sys_databases(rest).unwrap_or_else(unsupported),
    }
}

/// `WITH NO_INFOMSGS[, PHYSICAL_ONLY]`, in any order, or nothing.
fn checkdb_options(t: &[Tok]) -> bool {
    match t {
        [] => true,
        [Tok::Word(with), options @ ..] if with.eq_ignore_ascii_case("WITH") => options
            .split(|x| *x == Tok::Punct(','))
            .all(|o| matches!(o, [Tok::Word(w)] if ["NO_INFOMSGS", "PHYSICAL_ONLY", "ALL_ERRORMSGS"].iter().any(|k| w.eq_ignore_ascii_case(k)))),
        _ => false,
    }
}

/// A select list of server values only: `SERVERPROPERTY('x')`,
/// `SUSER_SNAME()`, `HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW ANY DATABASE')`.
fn server_values(t: &[Tok]) -> Option<Vec<ServerValue>> {
    if t.is_empty() {
        return None;
    }
    split_top(t)
        .into_iter()
        .map(|item| match item {
            [Tok::Word(f), Tok::Punct('('), Tok::Str(p), Tok::Punct(')')]
                if f.eq_ignore_ascii_case("SERVERPROPERTY") =>
            {
                Some(ServerValue::Property(p.clone()))
            }
            [Tok::Word(f), Tok::Punct('('), Tok::Punct(')')]
                if f.eq_ignore_ascii_case("SUSER_SNAME") =>
            {
                Some(ServerValue::Login)
            }
            [Tok::Word(f), Tok::Punct('('), args @ .., Tok::Punct(')')]
                if f.eq_ignore_ascii_case("HAS_PERMS_BY_NAME")
                    && args.iter().any(
                        |a| matches!(a, Tok::Str(p) if p.eq_ignore_ascii_case("VIEW ANY DATABASE")),
                    ) =>
            {
                Some(ServerValue::ViewAnyDatabase)
            }
            _ => None,
        })
        .collect()
}

/// Items separated by commas outside parentheses.
fn split_top(t: &[Tok]) -> Vec<&[Tok]> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, tok) in t.iter().enumerate() {
        match tok {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth = depth.saturating_sub(1),
            Tok::Punct(',') if depth == 0 => {
                out.push(&t[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&t[start..]);
    out
}

/// `[master.]sys.<view>` at the start of `t`; what follows it.
fn after_view<'t>(t: &'t [Tok], view: &str) -> Option<&'t [Tok]> {
    let mut rest = t;
    if word(rest.first(), "master") && rest.get(1) == Some(&Tok::Punct('.')) {
        rest = &rest[2..];
    }
    (word(rest.first(), "sys") && rest.get(1) == Some(&Tok::Punct('.')) && word(rest.get(2), view))
        .then(|| &rest[3..])
}

/// The plain column names before `FROM`, and what follows `FROM`.
fn columns_and_source(t: &[Tok]) -> Option<(Vec<String>, &[Tok])> {
    let from = t.iter().position(|x| word(Some(x), "FROM"))?;
    let columns = t[..from]
        .split(|x| *x == Tok::Punct(','))
        .map(|c| match c {
            [Tok::Word(w)] => Some(w.to_lowercase()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((columns, &t[from + 1..]))
}

/// `name, is_disabled, sid, type FROM [master.]sys.server_principals ...`
fn principals_query(t: &[Tok]) -> Option<Vec<LoginColumn>> {
    let (columns, source) = columns_and_source(t)?;
    after_view(source, "server_principals")?;
    columns
        .iter()
        .map(|c| match c.as_str() {
            "name" => Some(LoginColumn::Name),
            "is_disabled" => Some(LoginColumn::IsDisabled),
            "sid" => Some(LoginColumn::Sid),
            "type" => Some(LoginColumn::Type),
            _ => None,
        })
        .collect()
}

/// `name, type, principal_id, authentication_type_desc, sid FROM
/// [db].sys.database_principals`
fn database_principals_query(t: &[Tok]) -> Option<Statement> {
    let (columns, source) = columns_and_source(t)?;
    let [Tok::Word(database), Tok::Punct('.'), rest @ ..] = source else {
        return None;
    };
    if !after_view(rest, "database_principals")?.is_empty() {
        return None;
    }
    let columns = columns
        .iter()
        .map(|c| match c.as_str() {
            "name" => Some(PrincipalColumn::Name),
            "type" => Some(PrincipalColumn::Type),
            "principal_id" => Some(PrincipalColumn::PrincipalId),
            "authentication_type_desc" => Some(PrincipalColumn::AuthenticationTypeDesc),
            "sid" => Some(PrincipalColumn::Sid),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Statement::DatabasePrincipals {
        database: database.clone(),
        columns,
    })
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
        if let [
            Tok::Word(f),
            Tok::Punct('('),
            Tok::Word(arg),
            Tok::Punct(')'),
        ] = item
            && f.eq_ignore_ascii_case("SUSER_SNAME")
            && arg.eq_ignore_ascii_case("owner_sid")
        {
            columns.push(DbColumn::OwnerName);
            continue;
        }
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
            "is_read_only" => DbColumn::IsReadOnly,
            "user_access_desc" => DbColumn::UserAccessDesc,
            "collation_name" => DbColumn::CollationName,
            "compatibility_level" => DbColumn::CompatibilityLevel,
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
            Statement::ServerValues(vec![
                ServerValue::Property("ProductMajorVersion".into()),
                ServerValue::Login
            ])
        );
        assert_eq!(
            parse_batch(
                "select serverproperty('ProductMajorVersion'), suser_sname(), \
                 has_perms_by_name(null, null, 'VIEW ANY DATABASE')"
            )[0],
            Statement::ServerValues(vec![
                ServerValue::Property("ProductMajorVersion".into()),
                ServerValue::Login,
                ServerValue::ViewAnyDatabase
            ])
        );
        assert_eq!(
            parse_batch(
                "SELECT name, type, principal_id, authentication_type_desc, sid FROM [my-db].sys.database_principals"
            )[0],
            Statement::DatabasePrincipals {
                database: "my-db".into(),
                columns: vec![
                    PrincipalColumn::Name,
                    PrincipalColumn::Type,
                    PrincipalColumn::PrincipalId,
                    PrincipalColumn::AuthenticationTypeDesc,
                    PrincipalColumn::Sid
                ]
            }
        );
        assert_eq!(
            parse_batch("USE [a b]; ALTER USER [u] WITH LOGIN = [u];"),
            [
                Statement::Use("a b".into()),
                Statement::AlterUser {
                    user: "u".into(),
                    login: "u".into()
                }
            ]
        );
        assert_eq!(
            parse_batch("DBCC CHECKDB ([vf_bad]) WITH NO_INFOMSGS, PHYSICAL_ONLY")[0],
            Statement::Checkdb(Arg::Text("vf_bad".into()))
        );
        assert_eq!(
            parse_batch("ALTER DATABASE [x] SET COMPATIBILITY_LEVEL = 160")[0],
            Statement::SetLevel {
                database: "x".into(),
                level: 160
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
