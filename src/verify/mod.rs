//! After the import: what landed is checked (owner, state, collation,
//! compatibility level, orphaned users, CHECKDB), by `apply` right after a
//! database comes online and by `verify` on demand. Checks that need T-SQL
//! use the instance's `sql` section; an instance reached only through the
//! API gets the API's checks and a note saying what was not checked.
//! Each check's findings carry a V rule; the caller records each check as
//! it ends, so a resumed run does not run one twice.

pub mod sql;

use crate::import_path::StatusError;
use crate::import_path::api::ApiTarget;
use crate::import_path::sql::SqlTarget;
use crate::manifest::verify::{Checkdb, CompatibilityLevel, OrphanedUsers, Settings};
use crate::rules::{Finding, Rule, Severity};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One check, in the order they run: what only reads first, then what
/// changes the database (the level, remapped users), which is left undone
/// on a database that failed a check before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// ONLINE, read-write, multi-user.
    Usable,
    Owner,
    Collation,
    Checkdb,
    CompatibilityLevel,
    OrphanedUsers,
}

impl Check {
    /// The checks the settings ask for.
    pub fn asked(settings: &Settings) -> Vec<Check> {
        let mut out = vec![Check::Usable, Check::Owner, Check::Collation];
        if settings.checkdb != Checkdb::None {
            out.push(Check::Checkdb);
        }
        out.push(Check::CompatibilityLevel);
        if settings.orphaned_users != OrphanedUsers::Ignore {
            out.push(Check::OrphanedUsers);
        }
        out
    }

    /// The checks the settings ask for that `done` (an earlier run's) lacks.
    pub fn left(settings: &Settings, done: &[Checked]) -> Vec<Check> {
        Check::asked(settings)
            .into_iter()
            .filter(|c| !done.iter().any(|d| d.check == *c))
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Check::Usable => "usable",
            Check::Owner => "owner",
            Check::Collation => "collation",
            Check::CompatibilityLevel => "compatibility_level",
            Check::OrphanedUsers => "orphaned_users",
            Check::Checkdb => "checkdb",
        }
    }
}

/// A check that ended, with what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub check: Check,
    pub findings: Vec<Finding>,
}

/// One database to check.
#[derive(Debug, Clone)]
pub struct Work {
    pub database: String,
    /// The owner asked for; None: the login that ran the procedure.
    pub owner: Option<String>,
    pub settings: Settings,
}

impl Work {
    /// A manifest's database, with its checks.
    pub fn of(db: &crate::manifest::valid::Target) -> Self {
        Work {
            database: db.name.clone(),
            owner: db.route.owner().map(str::to_owned),
            settings: db.verify,
        }
    }
}

/// Checks the databases of one instance, through T-SQL where the manifest
/// gives the instance a `sql` section, else through the API.
pub struct Verifier {
    sql: Option<Arc<SqlTarget>>,
    api: Option<Arc<ApiTarget>>,
    /// The levels the API says the instance offers, asked once.
    api_levels: tokio::sync::OnceCell<Option<Vec<u16>>>,
    label: String,
}

/// A database's findings as they weigh (with `strict`, warnings refuse
/// too), and whether one of them refuses: the verification failed.
pub fn verdict(findings: Vec<Finding>, strict: bool) -> (Vec<Finding>, bool) {
    let findings: Vec<Finding> = if strict {
        findings.into_iter().map(Finding::strict).collect()
    } else {
        findings
    };
    let failed = findings.iter().any(Finding::refuses);
    (findings, failed)
}

impl Verifier {
    pub fn new(instance: &str, sql: Option<Arc<SqlTarget>>, api: Option<Arc<ApiTarget>>) -> Self {
        Verifier {
            sql,
            api,
            api_levels: tokio::sync::OnceCell::new(),
            label: format!("instance {instance}"),
        }
    }

    /// Runs the checks of `work` not in `done` (an earlier run's), calling
    /// `ended` as each one ends (a check that could not run is not ended: a
    /// rerun tries it again). Returns the findings of the checks run now.
    pub async fn verify(
        &self,
        work: &Work,
        done: &[Checked],
        ended: &(dyn Fn(Checked) + Send + Sync),
    ) -> Vec<Finding> {
        let pending = Check::left(&work.settings, done);
        let refused_before = done.iter().flat_map(|d| &d.findings).any(Finding::refuses);
        if pending.is_empty() {
            return Vec::new();
        }
        match (&self.sql, &self.api) {
            (Some(sql), api) => match self
                .by_sql(sql, work, &pending, refused_before, ended)
                .await
            {
                Some(findings) => findings,
                // Not in the login's sys.databases: without VIEW ANY
                // DATABASE a login sees only what it owns. The API sees all.
                None => match api {
                    Some(api) => {
                        let why = format!(
                            "the SQL login of {} does not see {} in sys.databases (it lacks VIEW \
                             ANY DATABASE)",
                            self.label, work.database
                        );
                        self.by_api(api, work, &pending, ended, &why).await
                    }
                    None => vec![Finding::new(
                        Rule::NotUsable,
                        format!(
                            "{} is not in sys.databases of {}",
                            work.database, self.label
                        ),
                    )],
                },
            },
            (None, Some(api)) => {
                let why = format!("{} has no `sql` section", self.label);
                self.by_api(api, work, &pending, ended, &why).await
            }
            (None, None) => vec![Finding::new(
                Rule::NotChecked,
                format!(
                    "{} has neither a `sql` nor an `api` section to ask",
                    self.label
                ),
            )],
        }
    }

    async fn by_sql(
        &self,
        target: &SqlTarget,
        work: &Work,
        pending: &[Check],
        refused_before: bool,
        ended: &(dyn Fn(Checked) + Send + Sync),
    ) -> Option<Vec<Finding>> {
        let db = work.database.as_str();
        let could_not = |what: &str, e: &dyn std::fmt::Display| {
            Finding::new(
                Rule::CheckFailed,
                crate::redact::text(&format!("{what}: {e}")),
            )
        };
        // A login that did not happen may be tried again; a refused one
        // never is (the target remembers it).
        let attempt = || async { crate::import_path::attempt(target.connect().await) };
        let connected = crate::retry::retry(&self.label, attempt, StatusError::exhausted).await;
        let mut client = match connected {
            Ok(c) => c,
            Err(e) => return Some(vec![could_not("cannot connect for the checks", &e)]),
        };
        let looked = async {
            let server = sql::server(&mut client).await?;
            let row = sql::database(&mut client, db).await?;
            Ok::<_, crate::import_path::sql::QueryError>((server, row))
        };
        let (server, row) =
            match tokio::time::timeout(crate::import_path::sql::QUERY_TIMEOUT, looked).await {
                Ok(Ok(found)) => found,
                Ok(Err(e)) => return Some(vec![could_not("cannot read sys.databases", &e)]),
                Err(_) => return Some(vec![could_not("cannot read sys.databases", &"timed out")]),
            };
        let row = row?;
        let mut all: Vec<Finding> = Vec::new();
        for &check in pending {
            // What changes the database is not done to one that failed.
            let failed_so_far = refused_before || all.iter().any(Finding::refuses);
            let findings = match check {
                Check::Usable => usable(&row),
                Check::Owner => owner(
                    row.owner.as_deref(),
                    work.owner.as_deref().or(server.login.as_deref()),
                ),
                Check::Collation => {
                    collation(row.collation.as_deref(), server.collation.as_deref())
                }
                Check::CompatibilityLevel => {
                    let offered = server.major.and_then(sql::levels_of_major);
                    let asked = work.settings.compatibility_level;
                    let held = failed_so_far && asked != CompatibilityLevel::Keep;
                    let asked = if held {
                        CompatibilityLevel::Keep
                    } else {
                        asked
                    };
                    let found = bounded(
                        "ALTER DATABASE ... SET COMPATIBILITY_LEVEL",
                        self.level_by_sql(&mut client, db, row.level, offered, asked),
                    )
                    .await;
                    if held { left_alone(found) } else { found }
                }
                Check::OrphanedUsers => {
                    let mode = work.settings.orphaned_users;
                    let held = failed_so_far && mode == OrphanedUsers::Fix;
                    let mode = if held { OrphanedUsers::Report } else { mode };
                    let found = bounded(
                        "the orphaned users",
                        self.orphans_by_sql(&mut client, db, mode),
                    )
                    .await;
                    if held { left_alone(found) } else { found }
                }
                Check::Checkdb => {
                    let run = sql::checkdb(&mut client, db, work.settings.checkdb);
                    match tokio::time::timeout(work.settings.checkdb_timeout, run).await {
                        Ok(Ok(())) => Vec::new(),
                        Ok(Err(tiberius::error::Error::Server(e)))
                            if sql::is_consistency_error(e.code()) =>
                        {
                            vec![Finding::new(
                                Rule::CheckdbErrors,
                                crate::redact::text(&format!(
                                    "DBCC CHECKDB found errors (SQL Server error {}: {})",
                                    e.code(),
                                    e.message()
                                )),
                            )]
                        }
                        Ok(Err(e)) => vec![could_not("DBCC CHECKDB could not run", &e)],
                        Err(_) => vec![could_not(
                            "DBCC CHECKDB",
                            &format!(
                                "did not end within {}",
                                humantime::format_duration(work.settings.checkdb_timeout)
                            ),
                        )],
                    }
                }
            };
            let broken = findings.iter().any(|f| f.code == Rule::CheckFailed);
            if !broken {
                ended(Checked {
                    check,
                    findings: findings.clone(),
                });
            }
            all.extend(findings);
            if broken {
                // The session may be mid-statement (a timeout): the checks
                // left run next time, on a new one.
                break;
            }
        }
        Some(all)
    }

    async fn level_by_sql(
        &self,
        client: &mut crate::import_path::sql::Connection,
        db: &str,
        level: Option<u16>,
        offered: Option<Vec<u16>>,
        asked: CompatibilityLevel,
    ) -> Vec<Finding> {
        let Some(now) = level else {
            return vec![Finding::new(
                Rule::CheckFailed,
                format!("sys.databases gives {db} no compatibility level"),
            )];
        };
        let target = match level_target(now, offered.as_deref(), asked) {
            Ok(None) => return vec![level_note(now, offered.as_deref())],
            Ok(Some(t)) => t,
            Err(f) => return vec![f],
        };
        match sql::set_level(client, db, target).await {
            Ok(()) => vec![Finding::new(
                Rule::CompatibilityLevel,
                format!("compatibility level raised from {now} to {target}"),
            )],
            Err(e) => vec![Finding::new(
                Rule::CheckFailed,
                crate::redact::text(&format!(
                    "ALTER DATABASE ... SET COMPATIBILITY_LEVEL = {target}: {e}"
                )),
            )],
        }
    }

    async fn orphans_by_sql(
        &self,
        client: &mut crate::import_path::sql::Connection,
        db: &str,
        mode: OrphanedUsers,
    ) -> Vec<Finding> {
        let listed = async {
            let principals = sql::principals(client, db).await?;
            let logins = sql::logins(client).await?;
            Ok::<_, crate::import_path::sql::QueryError>((principals, logins))
        };
        let (principals, logins) = match listed.await {
            Ok(l) => l,
            Err(e) => {
                return vec![Finding::new(
                    Rule::CheckFailed,
                    crate::redact::text(&format!("cannot list the users of {db}: {e}")),
                )];
            }
        };
        let orphans = sql::orphans(&principals, &logins);
        if orphans.is_empty() {
            return Vec::new();
        }
        if mode != OrphanedUsers::Fix {
            return vec![Finding::new(
                Rule::OrphanedUsers,
                format!(
                    "orphaned users (their SID matches no login): {}",
                    orphans.join(", ")
                ),
            )];
        }
        let mut remapped = Vec::new();
        let mut left = Vec::new();
        for user in orphans {
            let login = logins
                .iter()
                .find(|l| l.name.eq_ignore_ascii_case(&user))
                .map(|l| l.name.clone());
            match login {
                Some(login) => match sql::remap(client, db, &user, &login).await {
                    Ok(()) => remapped.push(user),
                    Err(e) => {
                        left.push(format!("{user} ({})", crate::redact::text(&e.to_string())))
                    }
                },
                None => left.push(format!("{user} (no login of that name)")),
            }
        }
        let mut out = Vec::new();
        if !remapped.is_empty() {
            out.push(Finding {
                code: Rule::OrphanedUsers,
                severity: Severity::Info,
                message: format!(
                    "remapped to the login of the same name: {}",
                    remapped.join(", ")
                ),
            });
        }
        if !left.is_empty() {
            out.push(Finding::new(
                Rule::OrphanedUsers,
                format!("orphaned users left: {}", left.join(", ")),
            ));
        }
        out
    }

    async fn by_api(
        &self,
        api: &ApiTarget,
        work: &Work,
        pending: &[Check],
        ended: &(dyn Fn(Checked) + Send + Sync),
        why_not_sql: &str,
    ) -> Vec<Finding> {
        let db = work.database.as_str();
        let could_not = |e: StatusError| {
            Finding::new(
                Rule::CheckFailed,
                crate::redact::text(&format!("{}: {e}", self.label)),
            )
        };
        let details = match api.database(db).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                return vec![Finding::new(
                    Rule::NotUsable,
                    format!("{} does not list {db}", self.label),
                )];
            }
            Err(e) => return vec![could_not(e)],
        };
        let mut all = Vec::new();
        let mut not_checked: Vec<&str> = Vec::new();
        for &check in pending {
            let findings = match check {
                Check::Usable => {
                    not_checked.push("read-write and multi-user");
                    Vec::new()
                }
                Check::Owner => owner(Some(&details.owner), work.owner.as_deref()),
                Check::Collation => {
                    not_checked.push("the collation against the instance's");
                    Vec::new()
                }
                Check::CompatibilityLevel => {
                    let now = details
                        .compatibility_level
                        .and_then(|v| u16::try_from(v).ok());
                    match now {
                        None => vec![Finding::new(
                            Rule::CheckFailed,
                            format!("the API gives {db} no compatibility level"),
                        )],
                        Some(now) => {
                            let offered = self
                                .api_levels
                                .get_or_init(|| async { api.levels().await.ok() })
                                .await
                                .clone();
                            match level_target(
                                now,
                                offered.as_deref(),
                                work.settings.compatibility_level,
                            ) {
                                Ok(None) => vec![level_note(now, offered.as_deref())],
                                Ok(Some(t)) => {
                                    not_checked.push("setting the compatibility level");
                                    vec![Finding::new(
                                        Rule::CompatibilityLevel,
                                        format!("compatibility level {now}; {t} was asked for"),
                                    )]
                                }
                                Err(f) => vec![f],
                            }
                        }
                    }
                }
                Check::OrphanedUsers => {
                    not_checked.push("orphaned users");
                    Vec::new()
                }
                Check::Checkdb => {
                    not_checked.push("DBCC CHECKDB");
                    Vec::new()
                }
            };
            ended(Checked {
                check,
                findings: findings.clone(),
            });
            all.extend(findings);
        }
        if !not_checked.is_empty() {
            all.push(Finding::new(
                Rule::NotChecked,
                format!(
                    "not checked, as they need T-SQL and {why_not_sql}: {}",
                    not_checked.join(", ")
                ),
            ));
        }
        all
    }
}

/// A check's statements, bounded like every other query: a server that
/// stops answering is a check that could not run (V009).
async fn bounded(
    what: &str,
    check: impl std::future::Future<Output = Vec<Finding>>,
) -> Vec<Finding> {
    match tokio::time::timeout(crate::import_path::sql::QUERY_TIMEOUT, check).await {
        Ok(findings) => findings,
        Err(_) => vec![Finding::new(
            Rule::CheckFailed,
            format!(
                "{what}: no answer within {} s",
                crate::import_path::sql::QUERY_TIMEOUT.as_secs()
            ),
        )],
    }
}

/// What a check reports when the change asked for was not made, because
/// the database failed a check before it.
fn left_alone(findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .map(|mut f| {
            f.message
                .push_str("; not changed, as the database failed a check before");
            f
        })
        .collect()
}

/// ONLINE, read-write, multi-user.
pub fn usable(row: &sql::DatabaseRow) -> Vec<Finding> {
    let mut wrong = Vec::new();
    if row.state != "ONLINE" {
        wrong.push(format!("its state is {}", row.state));
    }
    if row.read_only {
        wrong.push("it is read-only".to_owned());
    }
    if row.user_access != "MULTI_USER" {
        wrong.push(format!("its user access is {}", row.user_access));
    }
    if wrong.is_empty() {
        Vec::new()
    } else {
        vec![Finding::new(Rule::NotUsable, wrong.join(", "))]
    }
}

/// The owner found against the one asked for (logins ignore case).
pub fn owner(found: Option<&str>, asked: Option<&str>) -> Vec<Finding> {
    match (found, asked) {
        (Some(f), Some(a)) if f.eq_ignore_ascii_case(a) => Vec::new(),
        (Some(f), Some(a)) => vec![Finding::new(
            Rule::OwnerDiffers,
            format!("owned by {f}, not by {a} as asked"),
        )],
        (None, Some(a)) => vec![Finding::new(
            Rule::OwnerDiffers,
            format!("its owner's SID matches no login; {a} was asked for"),
        )],
        (_, None) => Vec::new(),
    }
}

pub fn collation(database: Option<&str>, server: Option<&str>) -> Vec<Finding> {
    match (database, server) {
        (Some(d), Some(s)) if !d.eq_ignore_ascii_case(s) => vec![Finding::new(
            Rule::CollationDiffers,
            format!(
                "collation {d}, the instance's is {s}: joins with temporary tables may fail \
                 with collation conflicts"
            ),
        )],
        _ => Vec::new(),
    }
}

/// The level to set, if any: None to keep it.
pub fn level_target(
    now: u16,
    offered: Option<&[u16]>,
    asked: CompatibilityLevel,
) -> Result<Option<u16>, Finding> {
    match asked {
        CompatibilityLevel::Keep => Ok(None),
        CompatibilityLevel::Latest => match offered.and_then(|o| o.iter().max().copied()) {
            Some(latest) if latest > now => Ok(Some(latest)),
            Some(_) => Ok(None),
            None => Err(Finding::new(
                Rule::CheckFailed,
                "the instance's compatibility levels are not known, so `latest` cannot be set",
            )),
        },
        CompatibilityLevel::Level(n) => match offered {
            Some(o) if !o.contains(&n) => Err(Finding::new(
                Rule::LevelNotOffered,
                format!(
                    "the instance does not offer compatibility level {n} ({})",
                    list(o)
                ),
            )),
            _ if n == now => Ok(None),
            _ => Ok(Some(n)),
        },
    }
}

fn level_note(now: u16, offered: Option<&[u16]>) -> Finding {
    let latest = offered.and_then(|o| o.iter().max().copied());
    Finding::new(
        Rule::CompatibilityLevel,
        match latest {
            Some(l) if l > now => {
                format!("compatibility level {now} (the instance offers up to {l})")
            }
            _ => format!("compatibility level {now}"),
        },
    )
}

fn list(levels: &[u16]) -> String {
    let words: Vec<String> = levels.iter().map(u16::to_string).collect();
    format!("it offers {}", words.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_usable_only_online_read_write_and_multi_user() {
        let good = sql::DatabaseRow {
            state: "ONLINE".into(),
            user_access: "MULTI_USER".into(),
            ..Default::default()
        };
        assert!(usable(&good).is_empty());
        let bad = sql::DatabaseRow {
            state: "SUSPECT".into(),
            read_only: true,
            user_access: "SINGLE_USER".into(),
            ..Default::default()
        };
        let found = usable(&bad);
        assert_eq!(found[0].code, Rule::NotUsable);
        assert!(found[0].message.contains("SUSPECT") && found[0].message.contains("read-only"));
        assert!(found[0].message.contains("SINGLE_USER"));
    }

    #[test]
    fn owner_and_collation_compare_as_sql_server_does() {
        assert!(owner(Some("App_Owner"), Some("app_owner")).is_empty());
        assert_eq!(
            owner(Some("sa"), Some("app_owner"))[0].code,
            Rule::OwnerDiffers
        );
        assert_eq!(owner(None, Some("app_owner"))[0].code, Rule::OwnerDiffers);
        let c = collation(
            Some("Latin1_General_CI_AS"),
            Some("SQL_Latin1_General_CP1_CI_AS"),
        );
        assert_eq!(c[0].code, Rule::CollationDiffers);
        assert_eq!(c[0].severity, Severity::Warn);
        assert!(collation(Some("x"), None).is_empty());
    }

    #[test]
    fn the_level_to_set_follows_what_was_asked() {
        let offered = [100, 110, 120, 130, 140, 150, 160];
        let o = Some(&offered[..]);
        assert_eq!(level_target(130, o, CompatibilityLevel::Keep), Ok(None));
        assert_eq!(
            level_target(130, o, CompatibilityLevel::Latest),
            Ok(Some(160))
        );
        assert_eq!(level_target(160, o, CompatibilityLevel::Latest), Ok(None));
        assert_eq!(
            level_target(130, o, CompatibilityLevel::Level(150)),
            Ok(Some(150))
        );
        assert_eq!(
            level_target(130, o, CompatibilityLevel::Level(90))
                .unwrap_err()
                .code,
            Rule::LevelNotOffered
        );
        assert_eq!(
            level_target(130, None, CompatibilityLevel::Latest)
                .unwrap_err()
                .code,
            Rule::CheckFailed
        );
    }
}
