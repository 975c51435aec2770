//! The SQL Server door: a TDS 7.4 server that tiberius and other standard
//! clients can log into with SQL authentication, in TLS when the emulator
//! was given a certificate and the client asks for it, else in clear. One
//! listener per instance, as every Flex instance has its own SQL endpoint.

mod sql;
mod tls;
mod wire;

pub use tls::{TlsIdentity, server_config as tls_server_config};

use super::faults::Faults;
use super::model::{
    Counter, DatabaseInfo, DropRefusal, ImportRequest, LoginRefused, Model, SubmitError,
};
use sql::{Arg, DbColumn, LoginColumn, PrincipalColumn, ServerValue, Statement};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wire::{Cell, ColumnType, Param, Tokens, WireError};

/// Inside a procedure (DONEINPROC), the procedure's own end always follows.
fn more_in_proc(done: u8) -> u16 {
    if done == 0xFF { wire::DONE_MORE } else { 0 }
}

/// SQL Server 2022, as the Flex instances run it.
const VERSION: (u8, u8, u16) = (16, 0, 4135);
const SERVER_NAME: &str = "SQLFLEX-EMULATOR";

pub struct TdsDoor {
    pub model: Arc<Model>,
    pub faults: Arc<Faults>,
    pub instance: String,
    pub user: String,
    pub password: String,
    /// The TLS the door offers; None: it answers "encryption not supported".
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// With `tls`: encryption forced, as SQL Server's "Force Encryption".
    pub force_encryption: bool,
}

/// The client's LOGIN7, or `None` when it hung up first.
async fn read_login<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<wire::Login>, WireError> {
    let Some((kind, payload)) = wire::read_message(stream).await? else {
        return Ok(None);
    };
    if kind != wire::PACKET_LOGIN7 {
        return Err(WireError::Malformed("login (expected LOGIN7)"));
    }
    wire::parse_login7(&payload).map(Some)
}

impl TdsDoor {
    pub async fn session(self: Arc<Self>, stream: TcpStream) {
        if let Err(e) = self.converse(stream).await {
            tracing::debug!(instance = self.instance, "TDS session ended: {e}");
        }
    }

    /// PRELOGIN in clear, then TLS as far as the two sides agree (see
    /// [`wire::negotiate`]): the whole session, only the client's LOGIN7, or
    /// nothing.
    async fn converse(&self, mut stream: TcpStream) -> Result<(), WireError> {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 1 && tls::is_tls_record(first[0]) {
            return self.converse_strict(stream).await;
        }
        let Some(session) = self.prelogin(&mut stream).await? else {
            return Ok(());
        };
        if session == wire::Tls::Refused {
            tracing::info!(
                instance = self.instance,
                "the client and this door do not agree on TLS (the client requires it \
                 without a certificate given to the emulator, or offers none where \
                 encryption is forced)"
            );
            return Ok(());
        };
        let (Some(config), wire::Tls::Whole | wire::Tls::LoginOnly) = (&self.tls, session) else {
            let Some(login) = read_login(&mut stream).await? else {
                return Ok(());
            };
            return self.log_in_and_serve(login, stream).await;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
        // The acceptor flushes the handshake's last flight before it returns.
        let mut secured = acceptor.accept(tls::PreloginFraming::new(stream)).await?;
        secured.get_mut().0.handshake_done();
        let Some(login) = read_login(&mut secured).await? else {
            return Ok(());
        };
        if session == wire::Tls::LoginOnly {
            // The client drops TLS right after its LOGIN7 and reads the
            // answer in clear; it sends nothing more before that answer.
            self.model.count_tls_login(&self.instance);
            let (framing, _) = secured.into_inner();
            return self.log_in_and_serve(login, framing.into_inner()?).await;
        }
        self.model.count_tls_session(&self.instance);
        self.log_in_and_serve(login, secured).await
    }

    /// TDS 8.0 ("strict"): TLS from the first byte, ALPN
    /// `tds/8.0`, and PRELOGIN, LOGIN7 and the rest inside it.
    async fn converse_strict(&self, stream: TcpStream) -> Result<(), WireError> {
        let Some(config) = &self.tls else {
            tracing::info!(
                instance = self.instance,
                "client began with TLS (TDS 8.0), which this emulator was not given a \
                 certificate for"
            );
            return Ok(());
        };
        let mut secured = tokio_rustls::TlsAcceptor::from(Arc::clone(config))
            .accept(stream)
            .await?;
        // Already in TLS: whatever PRELOGIN says, no second handshake begins.
        if self.prelogin(&mut secured).await?.is_none() {
            return Ok(());
        }
        let Some(login) = read_login(&mut secured).await? else {
            return Ok(());
        };
        self.model.count_tls_session(&self.instance);
        self.log_in_and_serve(login, secured).await
    }

    /// The client's PRELOGIN and the door's answer: how much of the session
    /// goes in TLS (see [`wire::negotiate`]), or `None` when the client hung
    /// up first.
    async fn prelogin<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
    ) -> Result<Option<wire::Tls>, WireError> {
        let Some((kind, payload)) = wire::read_message(stream).await? else {
            return Ok(None);
        };
        if kind != wire::PACKET_PRELOGIN {
            return Err(WireError::Malformed(
                "session (it must start with PRELOGIN)",
            ));
        }
        let prelogin = wire::parse_prelogin(&payload)?;
        let setting = match (&self.tls, self.force_encryption) {
            (None, _) => wire::ENCRYPT_NOT_SUP,
            (Some(_), false) => wire::ENCRYPT_OFF,
            (Some(_), true) => wire::ENCRYPT_ON,
        };
        let (answer, session) = wire::negotiate(prelogin.encryption, setting);
        wire::write_message(
            stream,
            wire::PACKET_REPLY,
            &wire::prelogin_response(VERSION, answer),
            4096,
        )
        .await?;
        Ok(Some(session))
    }

    /// The login's answer, then requests until the client leaves.
    async fn log_in_and_serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        login: wire::Login,
        stream: S,
    ) -> Result<(), WireError> {
        let (mut reader, mut writer) = tokio::io::split(stream);
        if self.faults.drop_connection() {
            return Ok(()); // Injected: the connection dies during login.
        }
        let mut t = Tokens::default();
        let right = login.user == self.user && login.password == self.password;
        if let Err(refused) = self.model.log_in(&self.instance, right) {
            // SQL Server's messages, which say no more to an unauthenticated
            // client than these.
            let (number, message) = match refused {
                LoginRefused::Credentials => {
                    (18456, format!("Login failed for user '{}'.", login.user))
                }
                LoginRefused::LockedOut => (
                    18486,
                    format!(
                        "Login failed for user '{}' because the account is currently locked \
                         out. The system administrator can unlock it.",
                        login.user
                    ),
                ),
            };
            t.message(true, number, 14, &message, SERVER_NAME);
            t.done(0xFD, wire::DONE_ERROR, 0);
            wire::write_message(&mut writer, wire::PACKET_REPLY, &t.0, 4096).await?;
            return Ok(());
        }
        let packet_size = (login.packet_size as usize).clamp(512, 32767);
        let database = if login.database.is_empty() {
            "master".to_owned()
        } else {
            login.database
        };
        t.env_change(1, &database, "master");
        t.message(
            false,
            5701,
            0,
            &format!("Changed database context to '{database}'."),
            SERVER_NAME,
        );
        t.env_collation();
        t.login_ack(VERSION);
        t.env_change(4, &packet_size.to_string(), "4096");
        t.done(0xFD, wire::DONE_FINAL, 0);
        wire::write_message(&mut writer, wire::PACKET_REPLY, &t.0, packet_size).await?;
        // The session's database, as `USE` changes it.
        let mut current = database;
        loop {
            let Some((kind, payload)) = wire::read_message(&mut reader).await? else {
                return Ok(());
            };
            if self.model.credentials_revoked() {
                return Ok(()); // The login was withdrawn: its session is killed.
            }
            let mut t = Tokens::default();
            let drop_after = match kind {
                wire::PACKET_SQL_BATCH => match wire::parse_sql_batch(&payload) {
                    Ok(text) => self.batch(&mut t, &text, &HashMap::new(), 0xFD, &mut current),
                    Err(e) => self.fail(&mut t, 0xFD, &e.to_string()),
                },
                wire::PACKET_RPC => {
                    self.answer_rpc(&mut t, wire::parse_rpc(&payload), &mut current)
                }
                wire::PACKET_ATTENTION => {
                    t.done(0xFD, wire::DONE_ATTN, 0);
                    false
                }
                other => self.fail(
                    &mut t,
                    0xFD,
                    &format!("TDS message type 0x{other:02x} is not supported by the emulator"),
                ),
            };
            if drop_after {
                return Ok(()); // Injected: the import was accepted, the answer never arrives.
            }
            wire::write_message(&mut writer, wire::PACKET_REPLY, &t.0, packet_size).await?;
        }
    }

    /// An RPC request's whole answer, as MS-TDS 2.2.6.6 lays it out: the
    /// procedure's own tokens, each statement closed by a DONEINPROC with
    /// DONE_MORE set (more follows: the procedure's end), then RETURNSTATUS
    /// and a final DONEPROC. A DONEINPROC without DONE_MORE tells a strict
    /// client that the answer is over, and the DONEPROC then looks like the
    /// start of the next one.
    fn answer_rpc(
        &self,
        t: &mut Tokens,
        rpc: Result<wire::Rpc, WireError>,
        current: &mut String,
    ) -> bool {
        let dropped = match rpc {
            Ok(rpc) => self.rpc(t, rpc, current),
            Err(e) => self.fail(t, 0xFF, &e.to_string()),
        };
        t.return_status(0);
        t.done(0xFE, wire::DONE_FINAL, 0);
        dropped
    }

    fn fail(&self, t: &mut Tokens, done: u8, message: &str) -> bool {
        t.message(true, 50000, 16, message, SERVER_NAME);
        t.done(done, wire::DONE_ERROR | more_in_proc(done), 0);
        false
    }

    /// An RPC: `sp_executesql` with a statement and its parameters, or the
    /// import procedure called by name with named parameters.
    fn rpc(&self, t: &mut Tokens, rpc: wire::Rpc, current: &mut String) -> bool {
        if rpc.procedure == "sp_executesql" {
            let mut params = rpc.params.into_iter();
            let Some(Param::Text(statement)) = params.next().map(|(_, v)| v) else {
                return self.fail(
                    t,
                    0xFF,
                    "sp_executesql needs the statement as its first parameter",
                );
            };
            let _declarations = params.next();
            let values: HashMap<String, Param> = params.filter(|(n, _)| !n.is_empty()).collect();
            return self.batch(t, &statement, &values, 0xFF, current);
        }
        if sql::is_import_procedure(&sql::procedure_parts(&rpc.procedure)) {
            let args = rpc
                .params
                .into_iter()
                .map(|(name, value)| {
                    let arg = match value {
                        Param::Null => Arg::Null,
                        Param::Text(s) => Arg::Text(s),
                        Param::Int(n) => Arg::Num(n),
                    };
                    (name, arg)
                })
                .collect();
            let outcome = self.import(t, args, &HashMap::new());
            let error = if outcome == Import::Refused {
                wire::DONE_ERROR
            } else {
                0
            };
            t.done(0xFF, error | wire::DONE_MORE, 0);
            return outcome == Import::StartedThenDrop;
        }
        self.fail(
            t,
            0xFF,
            &format!(
                "procedure {} is not supported by the emulator",
                rpc.procedure
            ),
        )
    }

    /// Runs every statement of a batch; `done` is the token that closes each
    /// (DONE for a batch, DONEINPROC inside sp_executesql).
    fn batch(
        &self,
        t: &mut Tokens,
        text: &str,
        params: &HashMap<String, Param>,
        done: u8,
        current: &mut String,
    ) -> bool {
        let statements = sql::parse_batch(text);
        let count = statements.len();
        let mut dropped = false;
        for (i, statement) in statements.into_iter().enumerate() {
            let more = if i + 1 < count {
                wire::DONE_MORE
            } else {
                more_in_proc(done)
            };
            let resolve = |arg: &Arg| -> Result<Option<String>, String> {
                match arg {
                    Arg::Null => Ok(None),
                    Arg::Text(s) => Ok(Some(s.clone())),
                    Arg::Num(n) => Ok(Some(n.to_string())),
                    Arg::Var(v) => match params.get(v) {
                        Some(Param::Text(s)) => Ok(Some(s.clone())),
                        Some(Param::Int(n)) => Ok(Some(n.to_string())),
                        Some(Param::Null) => Ok(None),
                        None => Err(format!("Must declare the scalar variable \"@{v}\".")),
                    },
                }
            };
            match statement {
                Statement::Import(args) => {
                    let outcome = self.import(t, args, params);
                    dropped |= outcome == Import::StartedThenDrop;
                    let error = if outcome == Import::Refused {
                        wire::DONE_ERROR
                    } else {
                        0
                    };
                    t.done(done, more | error, 0);
                }
                Statement::SysDatabases { columns, name } => {
                    if name.is_some() {
                        self.model.count_request(&self.instance, Counter::Lookup);
                    } else {
                        self.model.count_status_request(&self.instance);
                    }
                    match name.as_ref().map(resolve).transpose() {
                        Ok(name) => {
                            let rows = self.model.sys_databases(
                                &self.instance,
                                name.flatten().as_deref(),
                                Some(&self.user),
                            );
                            // Only `SUSER_SNAME(owner_sid)` needs the
                            // logins; the status rounds do not.
                            let logins: Vec<String> = if columns.contains(&DbColumn::OwnerName) {
                                self.model
                                    .settings(&self.instance)
                                    .unwrap_or_default()
                                    .user_list()
                                    .into_iter()
                                    .map(|(name, _)| name)
                                    .collect()
                            } else {
                                Vec::new()
                            };
                            result_set(t, &columns, &rows, &logins);
                            t.done(done, more | wire::DONE_COUNT, rows.len() as u64);
                        }
                        Err(e) => {
                            refuse(t, done, more, 137, 15, &e);
                        }
                    }
                }
                Statement::DbId(arg) => {
                    self.model.count_status_request(&self.instance);
                    match resolve(&arg) {
                        Ok(name) => {
                            let id = name.and_then(|n| {
                                self.model
                                    .sys_databases(&self.instance, Some(&n), Some(&self.user))
                                    .first()
                                    .map(|d| d.id)
                            });
                            t.columns(&[("", ColumnType::Int)]);
                            t.row(&[id.map_or(Cell::Null, |i| Cell::Int(i as i32))]);
                            t.done(done, more | wire::DONE_COUNT, 1);
                        }
                        Err(e) => {
                            refuse(t, done, more, 137, 15, &e);
                        }
                    }
                }
                Statement::Version => {
                    t.columns(&[("", ColumnType::NVarChar(300))]);
                    t.row(&[Cell::Text(format!(
                        "Microsoft SQL Server 2022 (RTM-CU12) - {}.{}.{}.1 (X64) - sqlflex-import emulator of STACKIT SQLServer Flex",
                        VERSION.0, VERSION.1, VERSION.2
                    ))]);
                    t.done(done, more | wire::DONE_COUNT, 1);
                }
                Statement::ServerValues(values) => {
                    self.model.count_request(&self.instance, Counter::Instance);
                    let settings = self.model.settings(&self.instance).unwrap_or_default();
                    let mut columns = Vec::new();
                    let mut row = Vec::new();
                    for value in &values {
                        let (ty, cell) = match value {
                            ServerValue::Property(p) => {
                                let v = match p.to_ascii_lowercase().as_str() {
                                    "productmajorversion" => {
                                        Some(super::restore::major_of(&settings.version).to_owned())
                                    }
                                    "collation" => Some(super::model::COLLATION.to_owned()),
                                    "edition" => Some("Standard Edition (64-bit)".to_owned()),
                                    "productversion" => {
                                        Some(format!("{}.{}.{}.1", VERSION.0, VERSION.1, VERSION.2))
                                    }
                                    // SERVERPROPERTY answers NULL for a name it does not know.
                                    _ => None,
                                };
                                (
                                    ColumnType::NVarChar(128),
                                    v.map_or(Cell::NullVar, Cell::Text),
                                )
                            }
                            ServerValue::Login => {
                                (ColumnType::NVarChar(128), Cell::Text(self.user.clone()))
                            }
                            ServerValue::ViewAnyDatabase => (
                                ColumnType::Int,
                                Cell::Int(i32::from(settings.view_any_database)),
                            ),
                        };
                        columns.push(("", ty));
                        row.push(cell);
                    }
                    t.columns(&columns);
                    t.row(&row);
                    t.done(done, more | wire::DONE_COUNT, 1);
                }
                Statement::Principals(columns) => {
                    let users = self.model.users(&self.instance);
                    let meta: Vec<(&str, ColumnType)> = columns
                        .iter()
                        .map(|c| match c {
                            LoginColumn::Name => ("name", ColumnType::NVarChar(128)),
                            LoginColumn::IsDisabled => ("is_disabled", ColumnType::Int),
                            LoginColumn::Sid => ("sid", ColumnType::VarBinary(85)),
                            LoginColumn::Type => ("type", ColumnType::NVarChar(1)),
                        })
                        .collect();
                    t.columns(&meta);
                    for (name, status) in &users {
                        let cells: Vec<Cell> = columns
                            .iter()
                            .map(|c| match c {
                                LoginColumn::Name => Cell::Text(name.clone()),
                                LoginColumn::IsDisabled => Cell::Int(i32::from(status != "ACTIVE")),
                                LoginColumn::Sid => Cell::Bytes(super::model::login_sid(name)),
                                LoginColumn::Type => Cell::Text("S".into()),
                            })
                            .collect();
                        t.row(&cells);
                    }
                    t.done(done, more | wire::DONE_COUNT, users.len() as u64);
                }
                Statement::DatabasePrincipals { database, columns } => {
                    match self.model.database_principals(&self.instance, &database) {
                        Some(principals) => {
                            let meta: Vec<(&str, ColumnType)> = columns
                                .iter()
                                .map(|c| match c {
                                    PrincipalColumn::Name => ("name", ColumnType::NVarChar(128)),
                                    PrincipalColumn::Type => ("type", ColumnType::NVarChar(1)),
                                    PrincipalColumn::PrincipalId => {
                                        ("principal_id", ColumnType::Int)
                                    }
                                    PrincipalColumn::AuthenticationTypeDesc => {
                                        ("authentication_type_desc", ColumnType::NVarChar(60))
                                    }
                                    PrincipalColumn::Sid => ("sid", ColumnType::VarBinary(85)),
                                })
                                .collect();
                            t.columns(&meta);
                            for p in &principals {
                                let cells: Vec<Cell> = columns
                                    .iter()
                                    .map(|c| match c {
                                        PrincipalColumn::Name => Cell::Text(p.name.clone()),
                                        PrincipalColumn::Type => Cell::Text(p.kind.into()),
                                        PrincipalColumn::PrincipalId => Cell::Int(p.principal_id),
                                        PrincipalColumn::AuthenticationTypeDesc => {
                                            Cell::Text(p.authentication.into())
                                        }
                                        PrincipalColumn::Sid if p.sid.is_empty() => Cell::NullVar,
                                        PrincipalColumn::Sid => Cell::Bytes(p.sid.clone()),
                                    })
                                    .collect();
                                t.row(&cells);
                            }
                            t.done(done, more | wire::DONE_COUNT, principals.len() as u64);
                        }
                        None => {
                            let text = format!(
                                "Database '{database}' does not exist. Make sure that the name is \
                                 entered correctly."
                            );
                            refuse(t, done, more, 911, 16, &text);
                        }
                    }
                }
                Statement::Use(name) => {
                    let known = SYSTEM_NAMES.iter().any(|s| s.eq_ignore_ascii_case(&name))
                        || self.model.has_database(&self.instance, &name);
                    if known {
                        t.env_change(1, &name, current);
                        *current = name;
                        t.done(done, more, 0);
                    } else {
                        let text = format!(
                            "Database '{name}' does not exist. Make sure that the name is entered \
                             correctly."
                        );
                        refuse(t, done, more, 911, 16, &text);
                    }
                }
                Statement::AlterUser { user, login } => {
                    match self
                        .model
                        .remap_user(&self.instance, current, &user, &login)
                    {
                        Ok(()) => t.done(done, more, 0),
                        Err(r) => {
                            refuse(t, done, more, r.number, 16, &r.message);
                        }
                    }
                }
                Statement::Checkdb(arg) => match resolve(&arg) {
                    Ok(Some(name)) => match self.model.checkdb(&self.instance, &name) {
                        Ok(errors) if errors.is_empty() => t.done(done, more, 0),
                        Ok(errors) => {
                            for e in &errors {
                                t.message(true, e.number, 16, &e.message, SERVER_NAME);
                            }
                            t.done(done, more | wire::DONE_ERROR, 0);
                        }
                        Err(r) => {
                            refuse(t, done, more, r.number, 16, &r.message);
                        }
                    },
                    Ok(None) | Err(_) => {
                        refuse(t, done, more, 2520, 16, "Could not find database.");
                    }
                },
                Statement::SetLevel { database, level } => {
                    match self.model.set_level(&self.instance, &database, level) {
                        Ok(()) => t.done(done, more, 0),
                        Err(r) => {
                            refuse(t, done, more, r.number, 16, &r.message);
                        }
                    }
                }
                Statement::RestoreRequests => {
                    // VIEW SERVER STATE is taken as granted: the login sees
                    // every session's restore.
                    let running = self
                        .model
                        .running_restores(&self.instance)
                        .unwrap_or_default();
                    t.columns(&[
                        ("", ColumnType::NVarChar(128)),
                        ("percent_complete", ColumnType::Real),
                    ]);
                    for r in &running {
                        t.row(&[Cell::Text(r.database.clone()), Cell::Real(r.percent as f32)]);
                    }
                    t.done(done, more | wire::DONE_COUNT, running.len() as u64);
                }
                Statement::SelectNumber(n) => {
                    t.columns(&[("", ColumnType::Int)]);
                    t.row(&[Cell::Int(n as i32)]);
                    t.done(done, more | wire::DONE_COUNT, 1);
                }
                Statement::SingleUser(name) => {
                    if self.model.has_database(&self.instance, &name) {
                        t.done(done, more, 0);
                    } else if self.model.is_restoring(&self.instance, &name) {
                        let text = "ALTER DATABASE is not permitted while a database is in the \
                                    Restoring state.";
                        refuse(t, done, more, 5052, 16, text);
                    } else {
                        let text = format!(
                            "User does not have permission to alter database '{name}', the \
                             database does not exist, or the database is not in a state that \
                             allows access checks."
                        );
                        refuse(t, done, more, 5011, 14, &text);
                    }
                }
                Statement::DropDatabase(name) => {
                    match self.model.drop_database(&self.instance, &name) {
                        Ok(()) => t.done(done, more, 0),
                        Err(refusal) => {
                            let (number, text) = match refusal {
                                DropRefusal::Missing | DropRefusal::Denied => (
                                    3701,
                                    format!(
                                        "Cannot drop the database '{name}', because it does not \
                                         exist or you do not have permission."
                                    ),
                                ),
                                DropRefusal::Restoring => (
                                    3702,
                                    format!(
                                        "Cannot drop database \"{name}\" because it is currently \
                                         in use."
                                    ),
                                ),
                            };
                            refuse(t, done, more, number, 16, &text);
                        }
                    }
                }
                Statement::NoOp => t.done(done, more, 0),
                Statement::Unsupported(why) => {
                    refuse(t, done, more, 50000, 16, &why);
                }
            }
        }
        dropped
    }

    /// `[msdb].[stackit].[import_database]`.
    fn import(
        &self,
        t: &mut Tokens,
        args: Vec<(String, Arg)>,
        params: &HashMap<String, Param>,
    ) -> Import {
        let mut named: HashMap<&str, Option<String>> = HashMap::new();
        for (i, (name, arg)) in args.iter().enumerate() {
            let key = if name.is_empty() {
                match sql::IMPORT_PARAMETERS.get(i) {
                    Some(k) => *k,
                    None => return self.proc_error(
                        t,
                        8144,
                        "Procedure or function import_database has too many arguments specified.",
                    ),
                }
            } else if let Some(k) = sql::IMPORT_PARAMETERS.iter().find(|k| **k == name.as_str()) {
                *k
            } else {
                return self.proc_error(
                    t,
                    8145,
                    &format!("@{name} is not a parameter for procedure import_database."),
                );
            };
            let value = match arg {
                Arg::Null => None,
                Arg::Text(s) => Some(s.clone()),
                Arg::Num(n) => Some(n.to_string()),
                Arg::Var(v) => match params.get(v) {
                    Some(Param::Text(s)) => Some(s.clone()),
                    Some(Param::Int(n)) => Some(n.to_string()),
                    Some(Param::Null) => None,
                    None => {
                        return self.proc_error(
                            t,
                            137,
                            &format!("Must declare the scalar variable \"@{v}\"."),
                        );
                    }
                },
            };
            named.insert(key, value);
        }
        for required in [
            "database_name",
            "s3_url",
            "s3_access_key_id",
            "s3_secret_key_id",
        ] {
            if named.get(required).is_none_or(Option::is_none) {
                return self.proc_error(
                    t,
                    201,
                    &format!("Procedure or function 'import_database' expects parameter '@{required}', which was not supplied."),
                );
            }
        }
        let take = |k: &str| named.get(k).cloned().flatten().unwrap_or_default();
        let database = take("database_name");
        if database.chars().count() > 80 {
            return self.proc_error(t, 50000, "@database_name is longer than NVARCHAR(80)");
        }
        // Left out, the documented default applies: the login running the
        // procedure. An explicit NULL is taken as given (no such user), so a
        // client that passes NULL instead of leaving it out finds out here.
        let owner = match named.get("owner_name") {
            None => self.user.clone(),
            Some(value) => value.clone().unwrap_or_default(),
        };
        let files: Vec<String> = take("s3_url")
            .split(',')
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        let request = ImportRequest {
            database: database.clone(),
            owner,
            files,
            access_key: take("s3_access_key_id"),
            secret_key: take("s3_secret_key_id"),
        };
        match self.model.submit(&self.instance, request) {
            Ok(()) => {
                t.message(
                    false,
                    0,
                    0,
                    &format!("Import of database '{database}' started."),
                    SERVER_NAME,
                );
                if self.model.revoked_during_sql_import() || self.faults.drop_connection() {
                    Import::StartedThenDrop
                } else {
                    Import::Started
                }
            }
            Err(e @ (SubmitError::Exists(_) | SubmitError::Restoring(_))) => {
                self.proc_error(t, 1801, &e.to_string())
            }
            Err(e) => self.proc_error(t, 50000, &e.to_string()),
        }
    }

    fn proc_error(&self, t: &mut Tokens, number: i32, message: &str) -> Import {
        t.message(true, number, 16, message, SERVER_NAME);
        Import::Refused
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Import {
    Started,
    /// Started, and the connection dropped before the answer (the fault
    /// injector, or a session killed as its credentials are withdrawn).
    StartedThenDrop,
    Refused,
}

/// An error as SQL Server sends one, and the DONE that ends its statement.
fn refuse(t: &mut Tokens, done: u8, more: u16, number: i32, class: u8, text: &str) {
    t.message(true, number, class, text, SERVER_NAME);
    t.done(done, more | wire::DONE_ERROR, 0);
}

/// The names a session may `USE` besides the databases restored.
const SYSTEM_NAMES: [&str; 4] = ["master", "tempdb", "model", "msdb"];

fn result_set(t: &mut Tokens, columns: &[DbColumn], rows: &[DatabaseInfo], logins: &[String]) {
    let meta: Vec<(&str, ColumnType)> = columns
        .iter()
        .map(|c| match c {
            DbColumn::Name => ("name", ColumnType::NVarChar(128)),
            DbColumn::StateDesc => ("state_desc", ColumnType::NVarChar(60)),
            DbColumn::State => ("state", ColumnType::Int),
            DbColumn::DatabaseId => ("database_id", ColumnType::Int),
            DbColumn::CreateDate => ("create_date", ColumnType::DateTime),
            DbColumn::IsReadOnly => ("is_read_only", ColumnType::Bit),
            DbColumn::UserAccessDesc => ("user_access_desc", ColumnType::NVarChar(60)),
            DbColumn::CollationName => ("collation_name", ColumnType::NVarChar(128)),
            DbColumn::CompatibilityLevel => ("compatibility_level", ColumnType::TinyInt),
            DbColumn::OwnerName => ("", ColumnType::NVarChar(128)),
        })
        .collect();
    t.columns(&meta);
    for row in rows {
        let cells: Vec<Cell> = columns
            .iter()
            .map(|c| match c {
                DbColumn::Name => Cell::Text(row.name.clone()),
                DbColumn::StateDesc => Cell::Text(row.state.to_owned()),
                DbColumn::State => Cell::Int(if row.state == "ONLINE" { 0 } else { 1 }),
                DbColumn::DatabaseId => Cell::Int(row.id as i32),
                DbColumn::CreateDate => datetime(row.created),
                DbColumn::IsReadOnly => Cell::Bit(false),
                DbColumn::UserAccessDesc => Cell::Text("MULTI_USER".into()),
                DbColumn::CollationName => Cell::Text(row.collation.clone()),
                DbColumn::CompatibilityLevel => Cell::TinyInt(row.level.min(255) as u8),
                // SUSER_SNAME of a SID no login has is NULL.
                DbColumn::OwnerName => {
                    match logins.iter().find(|l| l.eq_ignore_ascii_case(&row.owner)) {
                        Some(login) => Cell::Text(login.clone()),
                        None if row.owner == "sa" => Cell::Text("sa".into()),
                        None => Cell::NullVar,
                    }
                }
            })
            .collect();
        t.row(&cells);
    }
}

/// DATETIME: days since 1900-01-01 and 1/300 s since midnight.
fn datetime(t: SystemTime) -> Cell {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = (secs / 86_400) as i32 + 25_567;
    let ticks = (secs % 86_400) as u32 * 300;
    Cell::DateTime(days, ticks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::model::OwnS3;
    use std::time::Duration;

    fn door(dir: &std::path::Path) -> TdsDoor {
        let model = Model::new(
            "p".into(),
            "eu01".into(),
            &["i1".to_owned()],
            &[],
            OwnS3 {
                authority: "127.0.0.1:1".into(),
                bucket: "b".into(),
                access_key: "a".into(),
                secret_key: "s".into(),
                root: dir.into(),
            },
            Duration::from_secs(60),
        );
        TdsDoor {
            model: Arc::new(model),
            faults: Arc::new(Faults::new(0.0, 0.0, 0)),
            instance: "i1".into(),
            user: "u".into(),
            password: "p".into(),
            tls: None,
            force_encryption: false,
        }
    }

    /// An RPC message as a client sends it: ALL_HEADERS, the procedure by
    /// name, option flags, then NVARCHAR parameters by name.
    fn rpc_payload(procedure: &str, params: &[(&str, &str)]) -> Vec<u8> {
        let utf16 = |s: &str| {
            s.encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>()
        };
        let mut p = vec![
            22, 0, 0, 0, 18, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
        ];
        p.extend_from_slice(&(procedure.encode_utf16().count() as u16).to_le_bytes());
        p.extend(utf16(procedure));
        p.extend_from_slice(&[0, 0]);
        for (name, value) in params {
            p.push(name.encode_utf16().count() as u8);
            p.extend(utf16(name));
            p.push(0);
            p.push(0xE7);
            p.extend_from_slice(&8000u16.to_le_bytes());
            p.extend_from_slice(&[0x09, 0x04, 0xD0, 0x00, 0x34]);
            let v = utf16(value);
            p.extend_from_slice(&(v.len() as u16).to_le_bytes());
            p.extend(v);
        }
        p
    }

    #[tokio::test]
    async fn the_procedure_runs_when_called_by_name_as_an_rpc() {
        let dir = tempfile::tempdir().unwrap();
        let door = door(dir.path());
        let payload = rpc_payload(
            "[msdb].[stackit].[import_database]",
            &[
                ("@database_name", "ByName"),
                ("@owner_name", "o"),
                ("@s3_url", "s3://127.0.0.1:1/b/x.bak"),
                ("@s3_access_key_id", "a"),
                ("@s3_secret_key_id", "s"),
            ],
        );
        let rpc = wire::parse_rpc(&payload).unwrap();
        assert_eq!(
            rpc.params[0],
            ("database_name".to_owned(), Param::Text("ByName".into()))
        );
        let mut t = Tokens::default();
        assert!(!door.rpc(&mut t, rpc, &mut "master".to_owned()));
        assert!(!t.0.contains(&0xAA), "no ERROR token");
        let restoring = door.model.sys_databases("i1", Some("byname"), None);
        assert_eq!(restoring[0].state, "RESTORING");

        let unknown = wire::parse_rpc(&rpc_payload("dbo.other", &[])).unwrap();
        let mut t = Tokens::default();
        door.rpc(&mut t, unknown, &mut "master".to_owned());
        assert_eq!(
            t.0[0], 0xAA,
            "an unknown procedure is an ERROR, not a dropped connection"
        );
    }

    /// The tokens of an answer by MS-TDS 2.2.7: (token, DONE status) for the
    /// DONE family, (token, 0) for the others. Only what these answers hold.
    fn token_stream(bytes: &[u8]) -> Vec<(u8, u16)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let token = bytes[at];
            let len = match token {
                // ERROR, INFO, ENVCHANGE: a u16 length.
                0xAA | 0xAB | 0xE3 => {
                    3 + usize::from(u16::from_le_bytes([bytes[at + 1], bytes[at + 2]]))
                }
                0x79 => 5, // RETURNSTATUS
                0xFD..=0xFF => {
                    out.push((token, u16::from_le_bytes([bytes[at + 1], bytes[at + 2]])));
                    at += 13;
                    continue;
                }
                other => panic!("token 0x{other:02x} at {at} is not expected here"),
            };
            out.push((token, 0));
            at += len;
        }
        out
    }

    #[tokio::test]
    async fn an_rpc_answer_follows_ms_tds_inside_and_at_the_end_of_the_procedure() {
        let dir = tempfile::tempdir().unwrap();
        let door = door(dir.path());
        let statement = "EXEC [msdb].[stackit].[import_database] @database_name = @P1, \
            @s3_url = @P2, @s3_access_key_id = @P3, @s3_secret_key_id = @P4";
        for (procedure, params) in [
            (
                "sp_executesql",
                vec![
                    ("", statement),
                    (
                        "",
                        "@P1 nvarchar(80), @P2 nvarchar(max), @P3 nvarchar(max), @P4 nvarchar(max)",
                    ),
                    ("@P1", "ViaExecuteSql"),
                    ("@P2", "s3://127.0.0.1:1/b/x.bak"),
                    ("@P3", "a"),
                    ("@P4", "s"),
                ],
            ),
            (
                "[msdb].[stackit].[import_database]",
                vec![
                    ("@database_name", "ByName2"),
                    ("@s3_url", "s3://127.0.0.1:1/b/x.bak"),
                    ("@s3_access_key_id", "a"),
                    ("@s3_secret_key_id", "s"),
                ],
            ),
            ("dbo.unknown", vec![]),
        ] {
            let mut t = Tokens::default();
            door.answer_rpc(
                &mut t,
                wire::parse_rpc(&rpc_payload(procedure, &params)),
                &mut "master".to_owned(),
            );
            let tokens = token_stream(&t.0);
            let (last, before) = tokens.split_last().unwrap();
            assert_eq!(
                *last,
                (0xFE, wire::DONE_FINAL),
                "{procedure}: ends with a final DONEPROC"
            );
            assert_eq!(
                before.last().map(|t| t.0),
                Some(0x79),
                "{procedure}: RETURNSTATUS before it"
            );
            for (token, status) in before.iter().filter(|t| t.0 == 0xFF) {
                assert!(
                    status & wire::DONE_MORE != 0,
                    "{procedure}: DONEINPROC 0x{token:02x} without DONE_MORE: {tokens:02x?}"
                );
            }
            assert!(
                !before.iter().any(|t| matches!(t.0, 0xFD | 0xFE)),
                "{procedure}: no DONE or DONEPROC inside: {tokens:02x?}"
            );
        }
    }
}
