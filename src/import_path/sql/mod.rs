//! Imports through `[msdb].[stackit].[import_database]` over the SQL Server
//! protocol (tiberius), always with typed parameters; status from one
//! `sys.databases` query per round.

pub mod section;

use super::{Import, ImportPath, InstanceFacts, Inventory, StatusError, SubmitError, Want};
use futures::future::BoxFuture;
use section::{Encrypt, SqlAccess};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tracing::Instrument;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// SQL Server's refusals of a login: failed (18456, whatever the reason
/// underneath), untrusted domain (18452), account disabled (18470), locked
/// out (18486), password expired (18487) or to be changed (18488). None
/// passes by trying again, and under a lockout policy each try counts.
const LOGIN_REFUSED: [u32; 6] = [18452, 18456, 18470, 18486, 18487, 18488];

/// tiberius's words for a TLS failure, without its advice to programmers
/// (which `Config` call to make): a manifest has `sql.ca_file` instead.
fn tls_reason(text: &str) -> &str {
    let reason = text.split(" To connect anyway").next().unwrap_or(text);
    reason.trim_end().trim_end_matches('.')
}

/// A text cell, whatever string type the server chose.
pub(crate) fn text_cell(row: &tiberius::Row, index: usize) -> Option<String> {
    row.try_get::<&str, _>(index)
        .ok()
        .flatten()
        .map(str::to_owned)
}

/// With an owner, and without one: left out, `@owner_name` takes the
/// procedure's documented default, the login that runs it (a NULL would not).
const IMPORT_WITH_OWNER: &str = "EXEC [msdb].[stackit].[import_database] @database_name = @P1, \
     @s3_url = @P2, @s3_access_key_id = @P3, @s3_secret_key_id = @P4, @owner_name = @P5";
const IMPORT: &str = "EXEC [msdb].[stackit].[import_database] @database_name = @P1, \
     @s3_url = @P2, @s3_access_key_id = @P3, @s3_secret_key_id = @P4";

pub(crate) type Connection = Client<Compat<TcpStream>>;

pub struct SqlTarget {
    host: String,
    port: u16,
    config: Config,
    /// What the manifest asked for, for the reasons of failures: with
    /// `strict`, a server that does not speak TDS 8.0 hangs up on the TLS
    /// hello; with `false`, a server that forces encryption hangs up too.
    encrypt: Encrypt,
    /// The status connection, kept between rounds.
    status: tokio::sync::Mutex<Option<Connection>>,
    /// Set by the first refused login; every later attempt fails at once.
    login_refused: std::sync::OnceLock<String>,
    instance: String,
    label: String,
}

impl SqlTarget {
    pub fn new(sql: &SqlAccess, instance: &str) -> Self {
        let host = sql.host.clone();
        let mut config = Config::new();
        config.host(&host);
        config.port(sql.port);
        config.application_name("sqlflex-import");
        config.authentication(AuthMethod::sql_server(
            sql.user.clone(),
            sql.password.expose().to_owned(),
        ));
        config.encryption(match sql.encrypt {
            Encrypt::Required => EncryptionLevel::Required,
            Encrypt::Strict => EncryptionLevel::Strict,
            Encrypt::Off => EncryptionLevel::NotSupported,
        });
        // The checks refuse both together (tiberius would panic).
        if sql.encrypt.is_on() {
            if sql.trust_server_certificate {
                config.trust_cert();
            } else if let Some(ca) = &sql.ca_bundle {
                config.trust_cert_ca_bundle(ca.clone());
            }
        }
        SqlTarget {
            host,
            port: sql.port,
            config,
            encrypt: sql.encrypt,
            status: tokio::sync::Mutex::new(None),
            login_refused: std::sync::OnceLock::new(),
            instance: instance.to_owned(),
            label: format!("instance {instance} (SQL)"),
        }
    }

    /// Logs in, once per failure: a login that the server refused (any of
    /// [`LOGIN_REFUSED`]) is remembered and never tried again by this
    /// process, because lockout policies count every attempt.
    pub(crate) async fn connect(&self) -> Result<Connection, StatusError> {
        if let Some(why) = self.login_refused.get() {
            return Err(StatusError::Lasting(why.clone()));
        }
        let whence = format!("{}:{}", self.host, self.port);
        // Nothing reached the server yet: a wrong host or port, a firewall.
        let unreachable =
            |e: std::io::Error| StatusError::Transient(format!("cannot connect to {whence}: {e}"));
        let attempt = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(unreachable)?;
            tcp.set_nodelay(true).map_err(unreachable)?;
            Client::connect(self.config.clone(), tcp.compat_write())
                .await
                .map_err(|e| match e {
                    tiberius::error::Error::Server(ref s) if LOGIN_REFUSED.contains(&s.code()) => {
                        let why = format!(
                            "login refused (SQL Server error {}: {}); not tried again, \
                             so that a lockout policy does not lock the login",
                            s.code(),
                            s.message()
                        );
                        let _ = self.login_refused.set(why.clone());
                        StatusError::Lasting(why)
                    }
                    tiberius::error::Error::Tls(ref t) => StatusError::Lasting(format!(
                        "TLS failed: {}; if the instance's certificate comes from a private \
                         CA, name it in `sql.ca_file`",
                        tls_reason(t)
                    )),
                    tiberius::error::Error::Io { .. } => StatusError::Transient(match self.encrypt {
                        Encrypt::Required => e.to_string(),
                        Encrypt::Strict => format!(
                            "{e}; with `encrypt: strict` the server must speak TDS 8.0 \
                             (SQL Server 2022 does)"
                        ),
                        // A server that forces encryption hangs up on a
                        // client that offers none (MS-TDS 2.2.6.5).
                        Encrypt::Off => {
                            format!("{e}; a server that requires encryption refuses `encrypt: false`")
                        }
                    }),
                    other => StatusError::Transient(other.to_string()),
                })
                .map_err(|e| e.map_text(|m| format!("cannot log in to {whence}: {m}")))
        };
        let outcome = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StatusError::Transient(format!(
                "cannot connect to {whence} and log in within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        };
        outcome.map_err(|e| e.map_text(|m| crate::redact::text(&m)))
    }

    /// Runs `queries` on the status connection, which is kept between
    /// rounds, opened when there is none, and dropped after a failure so
    /// the next round reconnects; bounded by [`QUERY_TIMEOUT`].
    async fn on_status_connection<T>(
        &self,
        what: &str,
        queries: impl for<'c> FnOnce(&'c mut Connection) -> BoxFuture<'c, Result<T, QueryError>>,
    ) -> Result<T, StatusError> {
        let mut slot = self.status.lock().await;
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let client = slot.as_mut().expect("connected above");
        match tokio::time::timeout(QUERY_TIMEOUT, queries(client)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                *slot = None; // Reconnect next round.
                let text = crate::redact::text(&format!("{what}: {e}"));
                Err(match e {
                    QueryError::Server(_) => StatusError::Transient(text),
                    // The same answer comes again: asking again does not help.
                    QueryError::TooLong => StatusError::Lasting(text),
                })
            }
            Err(_) => {
                *slot = None;
                Err(StatusError::Transient(format!("{what}: timed out")))
            }
        }
    }

    /// Where tiberius's own log lines (it logs each error a server sends,
    /// in the server's words) come from: the log shows the span with them.
    fn span(&self) -> tracing::Span {
        tracing::error_span!("sql", instance = %self.instance)
    }

    /// One `sys.databases` query, retried while it may pass.
    async fn read_inventory(&self) -> Result<Inventory, StatusError> {
        let attempt = || async { super::attempt(self.query_states().await) };
        let rows =
            crate::retry::retry(&self.label, attempt, |why, _| StatusError::Transient(why)).await?;
        // One query answers both: what is online and what is restoring.
        let mut inventory = Inventory {
            online: Some(HashSet::new()),
            restoring: Some(Default::default()),
            ..Inventory::default()
        };
        let (rows, percents) = rows;
        for (name, state) in rows {
            let key = name.to_lowercase();
            match state.as_str() {
                "ONLINE" => {
                    inventory.online.get_or_insert_default().insert(key);
                }
                "RESTORING" | "RECOVERING" | "RECOVERY_PENDING" => {
                    let percent = percents.get(&key).copied();
                    inventory
                        .restoring
                        .get_or_insert_default()
                        .insert(key, percent);
                }
                _ => {
                    inventory.other.insert(key, state);
                }
            }
        }
        Ok(inventory)
    }

    /// The server's major version, the login this tool runs as, and the
    /// server principals (for the owner check).
    async fn read_facts(&self) -> Result<InstanceFacts, StatusError> {
        let (server, principals) = self
            .on_status_connection("instance facts", |client| {
                Box::pin(async move {
                    let server = rows_of(
                        client,
                        "SELECT SERVERPROPERTY('ProductMajorVersion'), SUSER_SNAME(), \
                         HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW ANY DATABASE')",
                    )
                    .await?;
                    let principals = rows_of(
                        client,
                        "SELECT name, is_disabled FROM sys.server_principals \
                         WHERE type IN ('S', 'U', 'G', 'E', 'X')",
                    )
                    .await?;
                    Ok((server, principals))
                })
            })
            .await?;
        let major: Option<String> = server.first().and_then(|r| text_cell(r, 0));
        let current_login = server.first().and_then(|r| text_cell(r, 1));
        let sees_every_database = server
            .first()
            .and_then(|r| r.try_get::<i32, _>(2).ok().flatten())
            .map(|v| v == 1);
        let users = principals
            .iter()
            .filter_map(|r| {
                let name = text_cell(r, 0)?;
                let disabled = r
                    .try_get::<i32, _>(1)
                    .ok()
                    .flatten()
                    .map(|v| v != 0)
                    .or_else(|| r.try_get::<bool, _>(1).ok().flatten())
                    .unwrap_or(false);
                Some((name.to_lowercase(), !disabled))
            })
            .collect();
        Ok(InstanceFacts {
            state: None,
            version: major.as_deref().map(crate::backup::release_of_major),
            storage_gb: None,
            users: Some(users),
            current_login,
            sees_every_database,
            levels: None,
        })
    }

    /// One call of the import procedure, its outcome sorted the way the
    /// engine's look-up protocol needs it.
    async fn call_import(&self, import: &Import) -> Result<(), SubmitError> {
        // A login that fails never reached the procedure: safe to retry,
        // unless retrying cannot help (a refused login, a TLS failure).
        let mut client = self.connect().await.map_err(|e| match e {
            StatusError::Lasting(message) => SubmitError::Refused(message),
            StatusError::Transient(message) => SubmitError::Unknown {
                message,
                retry_after: None,
            },
        })?;
        let urls = import.files.join(",");
        let (database, owner) = (import.database.as_str(), import.owner.as_deref());
        let (access_key, secret_key) = (import.access_key.expose(), import.secret_key.expose());
        let urls = urls.as_str();
        let mut params: Vec<&dyn tiberius::ToSql> =
            vec![&database, &urls, &access_key, &secret_key];
        let statement = match &owner {
            Some(owner) => {
                params.push(owner);
                IMPORT_WITH_OWNER
            }
            None => IMPORT,
        };
        let run = client.execute(statement, &params);
        match tokio::time::timeout(QUERY_TIMEOUT, run).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(tiberius::error::Error::Server(e))) if e.code() == 1801 => {
                Err(SubmitError::Exists(crate::redact::text(e.message())))
            }
            Ok(Err(tiberius::error::Error::Server(e))) => Err(SubmitError::Refused(
                crate::redact::text(&format!("SQL Server error {}: {}", e.code(), e.message())),
            )),
            Ok(Err(e)) => Err(SubmitError::Unknown {
                message: crate::redact::text(&e.to_string()),
                retry_after: None,
            }),
            Err(_) => Err(SubmitError::Unknown {
                message: "the procedure call timed out".into(),
                retry_after: None,
            }),
        }
    }

    /// `ALTER DATABASE ... SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP
    /// DATABASE ...` on the status connection: sessions in the database are
    /// ended first, as a drop needs. A database that is not there (errors
    /// 5011 and 3701) counts as dropped.
    async fn drop_by_tsql(&self, database: &str) -> Result<(), StatusError> {
        let name = crate::names::quote_name(database);
        let batch = format!(
            "ALTER DATABASE {name} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE {name};"
        );
        let mut slot = self.status.lock().await;
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let client = slot.as_mut().expect("connected above");
        let run = async { client.simple_query(batch).await?.into_results().await };
        let outcome = tokio::time::timeout(QUERY_TIMEOUT, run).await;
        let drop_error = |e: &tiberius::error::Error| {
            crate::redact::text(&format!("DROP DATABASE {database}: {e}"))
        };
        match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(tiberius::error::Error::Server(e))) if matches!(e.code(), 5011 | 3701) => {
                // Not there (any more): nothing to drop. The connection
                // stays usable after a server error.
                if self.still_there(client, database).await? {
                    Err(StatusError::Lasting(crate::redact::text(&format!(
                        "DROP DATABASE {database}: SQL Server error {}: {}",
                        e.code(),
                        e.message()
                    ))))
                } else {
                    Ok(())
                }
            }
            Ok(Err(e @ tiberius::error::Error::Server(_))) => {
                Err(StatusError::Lasting(drop_error(&e)))
            }
            Ok(Err(e)) => {
                *slot = None;
                Err(StatusError::Transient(drop_error(&e)))
            }
            Err(_) => {
                *slot = None;
                Err(StatusError::Transient(format!(
                    "DROP DATABASE {database}: timed out"
                )))
            }
        }
    }

    async fn still_there(
        &self,
        client: &mut Connection,
        database: &str,
    ) -> Result<bool, StatusError> {
        let rows = client
            .query("SELECT DB_ID(@P1)", &[&database])
            .await
            .map_err(|e| StatusError::Transient(crate::redact::text(&e.to_string())))?
            .into_first_result()
            .await
            .map_err(|e| StatusError::Transient(crate::redact::text(&e.to_string())))?;
        Ok(rows
            .first()
            .and_then(|r| r.try_get::<i32, _>(0).ok().flatten())
            .is_some())
    }

    /// Every database's state, and the percent of each restore running
    /// (`sys.dm_exec_requests.percent_complete`, what SSMS shows; a login
    /// without VIEW SERVER STATE sees none, and the percent stays unknown).
    async fn query_states(&self) -> Result<States, StatusError> {
        self.on_status_connection("sys.databases", |client| {
            Box::pin(async move {
                let rows = rows_of(client, "SELECT name, state_desc FROM sys.databases").await?;
                let states = rows
                    .iter()
                    .map(|r| {
                        (
                            text_cell(r, 0).unwrap_or_default(),
                            text_cell(r, 1).unwrap_or_default(),
                        )
                    })
                    .collect();
                let running = rows_of(client, RESTORE_PERCENT).await?;
                let percents = running
                    .iter()
                    .filter_map(|r| {
                        let name = text_cell(r, 0)?;
                        let percent = r.try_get::<f32, _>(1).ok().flatten()?;
                        // A server's number, bounded before it is shown.
                        Some((name.to_lowercase(), percent.clamp(0.0, 100.0) as u32))
                    })
                    .collect();
                Ok((states, percents))
            })
        })
        .await
    }
}

/// (name, state_desc) of every database, and percent by lower-cased name
/// of the restores running.
type States = (Vec<(String, String)>, HashMap<String, u32>);

/// What SSMS asks for a restore's progress.
const RESTORE_PERCENT: &str = "SELECT DB_NAME(database_id), percent_complete \
     FROM sys.dm_exec_requests WHERE command LIKE 'RESTORE%'";

/// Why a statement's answer could not be had.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Server(#[from] tiberius::error::Error),
    /// More rows than any real instance has databases or logins.
    #[error("the answer runs past {MAX_ROWS} rows; not read further")]
    TooLong,
}

/// The rows of a query's first result.
pub(crate) async fn rows_of(
    client: &mut Connection,
    sql: &str,
) -> Result<Vec<tiberius::Row>, QueryError> {
    use futures::TryStreamExt;
    let mut rows = Vec::new();
    let mut stream = client.simple_query(sql).await?.into_row_stream();
    while let Some(row) = stream.try_next().await? {
        // The server decides how many rows come: never more than any real
        // instance has databases or logins.
        if rows.len() >= MAX_ROWS {
            return Err(QueryError::TooLong);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Rows one status statement may answer with.
const MAX_ROWS: usize = 100_000;

impl ImportPath for SqlTarget {
    fn address(&self) -> Option<(String, u16)> {
        Some((self.host.clone(), self.port))
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn min_poll_gap(&self) -> Duration {
        Duration::from_millis(500)
    }

    fn inventory(&self, _want: Want) -> BoxFuture<'_, Result<Inventory, StatusError>> {
        Box::pin(self.read_inventory().instrument(self.span()))
    }

    fn facts(&self) -> BoxFuture<'_, Result<InstanceFacts, StatusError>> {
        Box::pin(self.read_facts().instrument(self.span()))
    }

    fn drop_database<'a>(&'a self, database: &'a str) -> BoxFuture<'a, Result<(), StatusError>> {
        let span = tracing::error_span!("sql", instance = %self.instance, database = %database);
        Box::pin(self.drop_by_tsql(database).instrument(span))
    }

    fn submit<'a>(&'a self, import: &'a Import) -> BoxFuture<'a, Result<(), SubmitError>> {
        let span =
            tracing::error_span!("sql", instance = %self.instance, database = %import.database);
        Box::pin(self.call_import(import).instrument(span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn target(port: u16) -> SqlTarget {
        let sql = SqlAccess {
            host: "127.0.0.1".into(),
            port,
            user: "importer".into(),
            password: Secret::new("pw"),
            encrypt: Encrypt::Off,
            trust_server_certificate: false,
            ca_bundle: None,
        };
        SqlTarget::new(&sql, "i0")
    }

    /// A port nobody listens on is not a refused login: the message says
    /// the server was not reached, and the next round may reach it.
    #[tokio::test]
    async fn an_unreachable_server_is_told_from_a_failed_login() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let m = transient(target(closed).connect().await);
        assert!(
            m.starts_with(&format!("cannot connect to 127.0.0.1:{closed}: ")),
            "{m}"
        );

        // Something answers, then hangs up before any login: the server was
        // reached, the login did not happen.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
            }
        });
        let m = transient(target(port).connect().await);
        assert!(
            m.starts_with(&format!("cannot log in to 127.0.0.1:{port}: ")),
            "{m}"
        );
    }

    /// The message of a failure that may pass, or a panic saying what came.
    fn transient(outcome: Result<Connection, StatusError>) -> String {
        match outcome {
            Err(StatusError::Transient(m)) => m,
            other => panic!("not a transient failure: {:?}", other.err()),
        }
    }
}
