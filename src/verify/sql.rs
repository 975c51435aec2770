//! The T-SQL of the checks after an import: catalogue views read, and the
//! three statements `fix`, `latest` and `checkdb` run. Names go into
//! statements only through [`quote_name`], values as parameters.

use crate::import_path::sql::{Connection, QueryError, rows_of, text_cell};
use crate::manifest::verify::Checkdb;
use crate::names::quote_name;

/// One row of `sys.databases`, as the checks read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseRow {
    pub state: String,
    pub read_only: bool,
    /// MULTI_USER, SINGLE_USER or RESTRICTED_USER.
    pub user_access: String,
    /// `SUSER_SNAME(owner_sid)`: None when the owner's SID matches no login.
    pub owner: Option<String>,
    pub collation: Option<String>,
    pub level: Option<u16>,
}

/// What the instance says of itself for the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Server {
    pub collation: Option<String>,
    pub major: Option<u16>,
    /// The login the checks run as (the procedure's default owner).
    pub login: Option<String>,
}

/// A database principal, as `sys.database_principals` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    /// S (SQL user), U (Windows user), G (Windows group), R (role), ...
    pub kind: String,
    pub principal_id: i32,
    /// INSTANCE, WINDOWS, DATABASE (contained) or NONE (without login).
    pub authentication: String,
    pub sid: Vec<u8>,
}

/// A login: its name and SID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub name: String,
    pub sid: Vec<u8>,
}

fn int_cell(row: &tiberius::Row, index: usize) -> Option<i64> {
    row.try_get::<u8, _>(index)
        .ok()
        .flatten()
        .map(i64::from)
        .or_else(|| row.try_get::<i16, _>(index).ok().flatten().map(i64::from))
        .or_else(|| row.try_get::<i32, _>(index).ok().flatten().map(i64::from))
}

fn bool_cell(row: &tiberius::Row, index: usize) -> Option<bool> {
    row.try_get::<bool, _>(index)
        .ok()
        .flatten()
        .or_else(|| int_cell(row, index).map(|v| v != 0))
}

fn bytes_cell(row: &tiberius::Row, index: usize) -> Vec<u8> {
    row.try_get::<&[u8], _>(index)
        .ok()
        .flatten()
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

pub async fn server(client: &mut Connection) -> Result<Server, QueryError> {
    let rows = rows_of(
        client,
        "SELECT SERVERPROPERTY('Collation'), SERVERPROPERTY('ProductMajorVersion'), SUSER_SNAME()",
    )
    .await?;
    let row = rows.first();
    Ok(Server {
        collation: row.and_then(|r| text_cell(r, 0)),
        major: row
            .and_then(|r| text_cell(r, 1))
            .and_then(|m| m.trim().parse().ok()),
        login: row.and_then(|r| text_cell(r, 2)),
    })
}

pub async fn database(
    client: &mut Connection,
    name: &str,
) -> Result<Option<DatabaseRow>, QueryError> {
    let rows = client
        .query(
            "SELECT name, state_desc, is_read_only, user_access_desc, SUSER_SNAME(owner_sid), \
             collation_name, compatibility_level FROM sys.databases WHERE name = @P1",
            &[&name],
        )
        .await?
        .into_first_result()
        .await?;
    Ok(rows.first().map(|r| DatabaseRow {
        state: text_cell(r, 1).unwrap_or_default(),
        read_only: bool_cell(r, 2).unwrap_or(false),
        user_access: text_cell(r, 3).unwrap_or_default(),
        owner: text_cell(r, 4),
        collation: text_cell(r, 5),
        level: int_cell(r, 6).and_then(|v| u16::try_from(v).ok()),
    }))
}

pub async fn principals(
    client: &mut Connection,
    database: &str,
) -> Result<Vec<Principal>, QueryError> {
    let sql = format!(
        "SELECT name, type, principal_id, authentication_type_desc, sid FROM {}.sys.database_principals",
        quote_name(database)
    );
    let rows = rows_of(client, &sql).await?;
    Ok(rows
        .iter()
        .map(|r| Principal {
            name: text_cell(r, 0).unwrap_or_default(),
            kind: text_cell(r, 1).unwrap_or_default().trim().to_owned(),
            principal_id: int_cell(r, 2).unwrap_or(0) as i32,
            authentication: text_cell(r, 3).unwrap_or_default(),
            sid: bytes_cell(r, 4),
        })
        .collect())
}

pub async fn logins(client: &mut Connection) -> Result<Vec<Login>, QueryError> {
    let rows = rows_of(client, "SELECT name, sid FROM sys.server_principals").await?;
    Ok(rows
        .iter()
        .map(|r| Login {
            name: text_cell(r, 0).unwrap_or_default(),
            sid: bytes_cell(r, 1),
        })
        .collect())
}

/// The database's orphaned users: SQL and Windows users (not roles, not
/// the fixed principals dbo, guest, INFORMATION_SCHEMA and sys, not users
/// without a login or contained ones) whose SID matches no login.
pub fn orphans(principals: &[Principal], logins: &[Login]) -> Vec<String> {
    let sids: std::collections::HashSet<&[u8]> = logins.iter().map(|l| l.sid.as_slice()).collect();
    let mut out: Vec<String> = principals
        .iter()
        .filter(|p| matches!(p.kind.as_str(), "S" | "U"))
        .filter(|p| p.principal_id > 4)
        .filter(|p| matches!(p.authentication.as_str(), "INSTANCE" | "WINDOWS"))
        .filter(|p| !p.sid.is_empty() && !sids.contains(p.sid.as_slice()))
        .map(|p| p.name.clone())
        .collect();
    out.sort_by_key(|n| n.to_lowercase());
    out
}

/// `ALTER USER [u] WITH LOGIN = [u]` in the database.
pub async fn remap(
    client: &mut Connection,
    database: &str,
    user: &str,
    login: &str,
) -> tiberius::Result<()> {
    let batch = format!(
        "USE {}; ALTER USER {} WITH LOGIN = {};",
        quote_name(database),
        quote_name(user),
        quote_name(login)
    );
    client.simple_query(batch).await?.into_results().await?;
    Ok(())
}

pub async fn set_level(
    client: &mut Connection,
    database: &str,
    level: u16,
) -> tiberius::Result<()> {
    let statement = format!(
        "ALTER DATABASE {} SET COMPATIBILITY_LEVEL = {level}",
        quote_name(database)
    );
    client.simple_query(statement).await?.into_results().await?;
    Ok(())
}

/// `DBCC CHECKDB`; the first error the server sends is the answer.
pub async fn checkdb(
    client: &mut Connection,
    database: &str,
    mode: Checkdb,
) -> tiberius::Result<()> {
    let with = match mode {
        Checkdb::PhysicalOnly => "NO_INFOMSGS, PHYSICAL_ONLY",
        Checkdb::Full | Checkdb::None => "NO_INFOMSGS",
    };
    let statement = format!("DBCC CHECKDB ({}) WITH {with}", quote_name(database));
    client.simple_query(statement).await?.into_results().await?;
    Ok(())
}

/// Whether a server error is a consistency error of DBCC (the 25xx, 79xx
/// and 89xx message ranges), rather than a check that could not run.
pub fn is_consistency_error(number: u32) -> bool {
    matches!(number, 2500..=2599 | 7900..=7999 | 8900..=8999)
}

/// The compatibility levels a SQL Server release offers, by its major
/// version, as Microsoft's ALTER DATABASE compatibility level page lists
/// them; None for a version it does not list.
pub fn levels_of_major(major: u16) -> Option<Vec<u16>> {
    let (low, high) = match major {
        10 => (80, 100),
        11 => (90, 110),
        12..=17 => (100, major * 10),
        _ => return None,
    };
    Some((low..=high).step_by(10).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str, kind: &str, id: i32, auth: &str, sid: &[u8]) -> Principal {
        Principal {
            name: name.into(),
            kind: kind.into(),
            principal_id: id,
            authentication: auth.into(),
            sid: sid.to_vec(),
        }
    }

    /// What a restored database holds on a new server: dbo with the old
    /// server's SID, roles, a user without login, and users mapped or not.
    #[test]
    fn orphans_are_users_with_a_login_sid_that_no_login_has() {
        let principals = [
            principal("public", "R", 0, "NONE", &[]),
            principal("dbo", "S", 1, "INSTANCE", &[9, 9]),
            principal("guest", "S", 2, "INSTANCE", &[0]),
            principal("INFORMATION_SCHEMA", "S", 3, "NONE", &[]),
            principal("sys", "S", 4, "NONE", &[]),
            principal("db_owner", "R", 16384, "NONE", &[1]),
            principal("loader", "S", 5, "NONE", &[7, 7]),
            principal("contained", "S", 6, "DATABASE", &[6, 6]),
            principal("report_user", "S", 7, "INSTANCE", &[1, 2]),
            principal("app_user", "S", 8, "INSTANCE", &[3, 4]),
            principal("DOMAIN\\ops", "U", 9, "WINDOWS", &[5, 5]),
            principal("DOMAIN\\team", "G", 10, "WINDOWS", &[8, 8]),
        ];
        let logins = [
            Login {
                name: "app_user".into(),
                sid: vec![3, 4],
            },
            Login {
                name: "report_user".into(),
                sid: vec![4, 4],
            },
        ];
        assert_eq!(
            orphans(&principals, &logins),
            ["DOMAIN\\ops", "report_user"]
        );
    }

    #[test]
    fn levels_follow_microsofts_table() {
        assert_eq!(
            levels_of_major(16).unwrap(),
            [100, 110, 120, 130, 140, 150, 160]
        );
        assert_eq!(levels_of_major(10).unwrap(), [80, 90, 100]);
        assert_eq!(levels_of_major(11).unwrap(), [90, 100, 110]);
        assert!(levels_of_major(9).is_none());
        assert!(is_consistency_error(8928) && is_consistency_error(2570));
        assert!(!is_consistency_error(262) && !is_consistency_error(5030));
    }
}
