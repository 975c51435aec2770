//! The one in-memory model behind all three doors of the emulator: the
//! instances, their databases and the restores running on them. A restore
//! started through the REST API is visible through TDS and the other way
//! round, because both call [`Model::submit`].

use crate::backup;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How the emulator's own S3 store is reached, for restores reading from it.
#[derive(Debug, Clone)]
pub struct OwnS3 {
    /// `host:port` of the S3 listener, as it appears in `s3://host/bucket/key`.
    pub authority: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// The folder that holds `bucket/key` files.
    pub root: PathBuf,
}

/// What an import asks for, whichever door it came through.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub database: String,
    pub owner: String,
    /// Full URIs of all files, in stripe order: `s3://host/bucket/key`
    /// (`http(s)://host/bucket/key` is accepted as the API's example shows).
    pub files: Vec<String>,
    pub access_key: String,
    pub secret_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("instance {0} not found")]
    UnknownInstance(String),
    #[error("Database '{0}' already exists. Choose a different database name.")]
    Exists(String),
    #[error("Database '{0}' is being restored.")]
    Restoring(String),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseInfo {
    pub id: i64,
    pub name: String,
    pub owner: String,
    pub created: SystemTime,
    /// ONLINE or RESTORING, as `sys.databases.state_desc` says.
    pub state: &'static str,
    /// `compatibility_level`: the backup's, raised to the lowest level the
    /// instance offers, as a restore onto a newer SQL Server does.
    pub level: u16,
    pub collation: String,
    /// Its principals, as `sys.database_principals` lists them.
    #[serde(skip)]
    pub principals: Vec<DbPrincipal>,
}

/// A row of `sys.database_principals`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbPrincipal {
    pub name: String,
    pub principal_id: i32,
    /// S, U, G, R, ...
    pub kind: &'static str,
    /// INSTANCE, WINDOWS, DATABASE or NONE.
    pub authentication: &'static str,
    pub sid: Vec<u8>,
}

/// The instance's collation, and every database's on it.
pub const COLLATION: &str = "SQL_Latin1_General_CP1_CI_AS";

/// A login's SID on this emulator: 16 bytes made from its name, as a SQL
/// login's SID is 16 random bytes fixed when it is created.
pub fn login_sid(name: &str) -> Vec<u8> {
    sid_of(&format!("login:{}", name.to_lowercase()))
}

fn sid_of(seed: &str) -> Vec<u8> {
    // FNV-1a, twice with different offsets: stable across runs.
    let hash = |offset: u64| {
        seed.bytes().fold(offset, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let mut out = hash(0xcbf2_9ce4_8422_2325).to_le_bytes().to_vec();
    out.extend_from_slice(&hash(0x8422_2325_cbf2_9ce4).to_le_bytes());
    out
}

#[derive(Debug, Clone)]
pub struct RestoreInfo {
    pub database: String,
    pub percent: u32,
    pub started: SystemTime,
    pub estimated_completion: SystemTime,
}

struct Restore {
    name: String,
    owner: String,
    /// Known once the backup's header was read.
    level: u16,
    id: i64,
    started: Instant,
    started_at: SystemTime,
}

/// What an emulated instance is like: its state, SQL Server version,
/// storage and the users (logins) created on it. Every field can be set
/// from the command line or a small YAML file (`emulator --help`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceSettings {
    /// READY, PENDING, PROGRESSING, FAILURE, UNKNOWN or TERMINATING.
    pub state: String,
    /// The instance's SQL Server release (`version` in the API).
    pub version: String,
    /// `storage.size`, in GB (taken as GiB: the larger reading, so a
    /// refusal for lack of room is never a false one).
    pub storage_gb: u64,
    /// Logins on the instance; `name` or `name:STATUS` (default ACTIVE).
    pub users: Vec<String>,
    /// Whether the SQL login holds VIEW ANY DATABASE (as `public` does by
    /// default); without it, `sys.databases` and `DB_ID` show it only
    /// master, tempdb and the databases it owns.
    pub view_any_database: bool,
    /// Users every database restored here contains: `name` (orphaned:
    /// its SID is the old server's) or `name:mapped` (the SID of the login
    /// of that name, which must be among `users`).
    pub database_users: Vec<String>,
    /// Databases whose `DBCC CHECKDB` reports consistency errors.
    pub checkdb_errors: Vec<String>,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            state: "READY".into(),
            version: "2022".into(),
            storage_gb: 100,
            // The owners the examples use, and the SQL login.
            users: vec!["app_owner".into(), "demo_owner".into(), "importer".into()],
            view_any_database: true,
            database_users: Vec::new(),
            checkdb_errors: Vec::new(),
        }
    }
}

impl InstanceSettings {
    /// (name, status) of each user.
    pub fn user_list(&self) -> Vec<(String, String)> {
        self.users
            .iter()
            .map(|u| match u.split_once(':') {
                Some((name, status)) => (name.to_owned(), status.to_ascii_uppercase()),
                None => (u.clone(), "ACTIVE".to_owned()),
            })
            .collect()
    }

    pub fn check(&self) -> Result<(), String> {
        const STATES: [&str; 6] = [
            "READY",
            "PENDING",
            "PROGRESSING",
            "FAILURE",
            "UNKNOWN",
            "TERMINATING",
        ];
        if !STATES.contains(&self.state.as_str()) {
            return Err(format!(
                "instance state `{}` is not one of {}",
                self.state,
                STATES.join(", ")
            ));
        }
        let logins = self.user_list();
        for (name, mapped) in self.database_user_list() {
            if mapped && !logins.iter().any(|(l, _)| l.eq_ignore_ascii_case(&name)) {
                return Err(format!(
                    "database user `{name}:mapped` needs a login `{name}` among the users"
                ));
            }
        }
        Ok(())
    }

    /// (name, mapped) of each database user.
    pub fn database_user_list(&self) -> Vec<(String, bool)> {
        self.database_users
            .iter()
            .map(|u| match u.split_once(':') {
                Some((name, how)) => (name.to_owned(), how.eq_ignore_ascii_case("mapped")),
                None => (u.clone(), false),
            })
            .collect()
    }
}

#[derive(Default)]
struct Instance {
    settings: InstanceSettings,
    /// Bytes of backup data of each database restored or being restored:
    /// what counts against the storage.
    used: BTreeMap<String, u64>,
    /// By lower-cased name: SQL Server's default collation ignores case.
    databases: BTreeMap<String, DatabaseInfo>,
    restores: BTreeMap<String, Restore>,
    submissions: BTreeMap<String, u64>,
    /// Databases dropped (API `DELETE`, T-SQL `DROP DATABASE`), by name.
    drops: BTreeMap<String, u64>,
    /// Lower-cased names the importing login may not drop.
    protected: std::collections::BTreeSet<String>,
    failed: BTreeMap<String, String>,
    max_concurrent: usize,
    status_requests: u64,
    logins: u64,
    failed_logins: u64,
    /// Sessions on the SQL Server door that went on in TLS.
    tls_sessions: u64,
    /// Logins whose LOGIN7 alone came in TLS (the client's `encrypt` off).
    tls_logins: u64,
    /// Failed logins since the last accepted one (the lockout policy's count).
    failed_in_a_row: u32,
    locked_out: bool,
    instance_requests: u64,
    user_requests: u64,
    /// Databases looked up by name (see [`Counter::Lookup`]).
    database_lookups: u64,
    /// `DBCC CHECKDB` runs, by database name.
    checkdb_runs: BTreeMap<String, u64>,
    /// `ALTER USER ... WITH LOGIN` that remapped a user, as `db.user`.
    remapped_users: Vec<String>,
    /// Compatibility levels set, as `db=level`.
    levels_set: Vec<String>,
    next_id: i64,
}

/// What `/_emulator/stats` counts besides status requests.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    Instance,
    Users,
    /// One database looked up by name (`sys.databases WHERE name = ...`,
    /// `GET .../databases/{name}`): what the checks after an import ask,
    /// apart from the status rounds that follow restores.
    Lookup,
}

/// What a restore's backup says that the instance checks.
/// Why a drop was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropRefusal {
    Missing,
    /// A restore of that name is running.
    Restoring,
    /// The login (or the service account) lacks the permission.
    Denied,
}

pub struct Model {
    pub project_id: String,
    pub region: String,
    pub s3: OwnS3,
    restore_duration: Duration,
    instances: Mutex<BTreeMap<String, Instance>>,
    /// See [`Model::set_credentials_revoked`].
    credentials_revoked: std::sync::atomic::AtomicBool,
    /// See [`Model::revoke_credentials_during_next_sql_import`].
    revoke_during_sql_import: std::sync::atomic::AtomicBool,
    /// See [`Model::with_lockout_after`].
    lockout_after: Option<u32>,
}

/// Why a SQL login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// A wrong user or password, or credentials withdrawn.
    Credentials,
    /// Locked by the lockout policy, whatever the password.
    LockedOut,
}

/// The system databases every instance shows in `sys.databases`.
const SYSTEM_DATABASES: [&str; 4] = ["master", "tempdb", "model", "msdb"];

impl Model {
    /// `settings[i]` describes instance `i`; instances beyond it get the
    /// defaults.
    pub fn new(
        project_id: String,
        region: String,
        instance_ids: &[String],
        settings: &[InstanceSettings],
        s3: OwnS3,
        restore_duration: Duration,
    ) -> Self {
        let instances = instance_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    id.clone(),
                    Instance {
                        settings: settings.get(i).cloned().unwrap_or_default(),
                        next_id: 5,
                        ..Instance::default()
                    },
                )
            })
            .collect();
        Model {
            project_id,
            region,
            s3,
            restore_duration,
            instances: Mutex::new(instances),
            credentials_revoked: Default::default(),
            revoke_during_sql_import: Default::default(),
            lockout_after: None,
        }
    }

    /// An account lockout policy for the SQL login, as SQL Server applies
    /// the Windows policy to a login with CHECK_POLICY: `threshold` failed
    /// logins in a row lock it, and a locked login is refused even with the
    /// right password until the emulator restarts. None: never locked.
    pub fn with_lockout_after(mut self, threshold: Option<u32>) -> Self {
        self.lockout_after = threshold;
        self
    }

    /// As when an administrator withdraws the credentials in the middle of a
    /// migration (a rotated password, a revoked token or key): while set,
    /// the API answers every bearer token with 401 and the token endpoint
    /// refuses the service-account key, each SQL endpoint refuses the login
    /// (error 18456) and closes the sessions already open, as `KILL` would.
    /// Restores already running go on. Clearing it gives them back.
    pub fn set_credentials_revoked(&self, revoked: bool) {
        self.credentials_revoked
            .store(revoked, std::sync::atomic::Ordering::SeqCst);
    }

    /// As when the credentials are withdrawn while an import procedure
    /// runs: the next import a SQL endpoint accepts is started, but its
    /// session is killed before the answer leaves, and from then on the
    /// credentials are revoked as by [`Model::set_credentials_revoked`]. A
    /// client sees its call unanswered and cannot log in again to look.
    pub fn revoke_credentials_during_next_sql_import(&self) {
        self.revoke_during_sql_import
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Called by a SQL endpoint that has just started an import: whether
    /// to kill the session now (see
    /// [`Model::revoke_credentials_during_next_sql_import`]).
    pub fn revoked_during_sql_import(&self) -> bool {
        let due = self
            .revoke_during_sql_import
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        if due {
            self.set_credentials_revoked(true);
        }
        due
    }

    pub fn credentials_revoked(&self) -> bool {
        self.credentials_revoked
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Instance>> {
        // A panic while holding the lock must not take the whole emulator down.
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn instance_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn has_instance(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// How the instance is set up.
    pub fn settings(&self, id: &str) -> Option<InstanceSettings> {
        self.lock().get(id).map(|i| i.settings.clone())
    }

    /// The instance's users (name, status), asked for by a client (API or
    /// T-SQL): counted in the stats.
    pub fn users(&self, id: &str) -> Vec<(String, String)> {
        self.count_request(id, Counter::Users);
        self.settings(id).unwrap_or_default().user_list()
    }

    /// Starts an import. Refused at once when the instance is unknown, the
    /// name is invalid, or the database exists or is being restored;
    /// otherwise the checks of the files run asynchronously, as on STACKIT.
    pub fn submit(
        self: &Arc<Self>,
        instance: &str,
        request: ImportRequest,
    ) -> Result<(), SubmitError> {
        if let Some(problem) = name_problem(&request.database) {
            return Err(SubmitError::Invalid(problem));
        }
        if request.files.is_empty() {
            return Err(SubmitError::Invalid("no backup files given".into()));
        }
        let key = request.database.to_lowercase();
        {
            let mut all = self.lock();
            let inst = all
                .get_mut(instance)
                .ok_or_else(|| SubmitError::UnknownInstance(instance.to_owned()))?;
            if let Some(db) = inst.databases.get(&key) {
                return Err(SubmitError::Exists(db.name.clone()));
            }
            if let Some(r) = inst.restores.get(&key) {
                return Err(SubmitError::Restoring(r.name.clone()));
            }
            let id = inst.next_id;
            inst.next_id += 1;
            inst.restores.insert(
                key.clone(),
                Restore {
                    name: request.database.clone(),
                    owner: request.owner.clone(),
                    level: 0,
                    id,
                    started: Instant::now(),
                    started_at: SystemTime::now(),
                },
            );
            inst.failed.remove(&key);
            *inst
                .submissions
                .entry(request.database.clone())
                .or_default() += 1;
            inst.max_concurrent = inst.max_concurrent.max(inst.restores.len());
        }
        let model = Arc::clone(self);
        let instance = instance.to_owned();
        tokio::spawn(async move { model.run_restore(instance, key, request).await });
        Ok(())
    }

    async fn run_restore(self: Arc<Self>, instance: String, key: String, request: ImportRequest) {
        let outcome = match self.check_files(&request).await {
            Ok(facts) => self.check_instance(&instance, &key, &request, facts),
            Err(e) => Err(e),
        };
        if let Err(reason) = outcome {
            tracing::info!(
                instance,
                database = request.database,
                reason,
                "restore failed"
            );
            let mut all = self.lock();
            if let Some(inst) = all.get_mut(&instance) {
                inst.restores.remove(&key);
                inst.used.remove(&key);
                inst.failed.insert(request.database.clone(), reason);
            }
            return;
        }
        let started = self
            .lock()
            .get(&instance)
            .and_then(|i| i.restores.get(&key).map(|r| r.started));
        if let Some(started) = started {
            tokio::time::sleep_until((started + self.restore_duration).into()).await;
        }
        let mut all = self.lock();
        let Some(inst) = all.get_mut(&instance) else {
            return;
        };
        if let Some(r) = inst.restores.remove(&key) {
            let principals = restored_principals(&r.name, &inst.settings);
            inst.databases.insert(
                key,
                DatabaseInfo {
                    id: r.id,
                    name: r.name,
                    owner: r.owner,
                    created: SystemTime::now(),
                    state: "ONLINE",
                    level: r.level,
                    collation: COLLATION.into(),
                    principals,
                },
            );
        }
    }

    /// What the instance would find wrong with a restore of sound files:
    /// not ready, the owner missing, a backup newer than its SQL Server,
    /// or not enough storage. Records the space the database takes.
    fn check_instance(
        &self,
        instance: &str,
        key: &str,
        request: &ImportRequest,
        facts: super::restore::Facts,
    ) -> Result<(), String> {
        let mut all = self.lock();
        let inst = all
            .get_mut(instance)
            .ok_or_else(|| format!("instance {instance} is gone"))?;
        let settings = &inst.settings;
        if settings.state != "READY" {
            return Err(format!(
                "The instance is not ready (state {}); the restore could not start",
                settings.state
            ));
        }
        let owner = request.owner.as_str();
        match settings
            .user_list()
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(owner))
        {
            None => {
                return Err(format!(
                    "Cannot find the user '{owner}'; create it on the instance before the import"
                ));
            }
            Some((name, status)) if status != "ACTIVE" => {
                return Err(format!("The user '{name}' is {status}, not ACTIVE"));
            }
            Some(_) => {}
        }
        super::restore::version_fits(&facts, &settings.version)?;
        let capacity = settings.storage_gb.saturating_mul(1 << 30);
        let used: u64 = inst
            .used
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .fold(0u64, |sum, (_, v)| sum.saturating_add(*v));
        if used.saturating_add(facts.backup_size) > capacity {
            return Err(format!(
                "There is not enough space on the instance: the restore needs {} bytes, {} of \
                 {} bytes are in use",
                facts.backup_size, used, capacity
            ));
        }
        inst.used.insert(key.to_owned(), facts.backup_size);
        let level =
            super::restore::level_after_restore(facts.compatibility_level, &settings.version);
        if let Some(r) = inst.restores.get_mut(key) {
            r.level = level;
        }
        Ok(())
    }

    /// What SQL Server's RESTORE would find wrong with the files, in its
    /// order: access, existence, then the backup headers.
    async fn check_files(&self, request: &ImportRequest) -> Result<super::restore::Facts, String> {
        if request.access_key != self.s3.access_key || request.secret_key != self.s3.secret_key {
            return Err("Access denied to S3: the access key or secret is wrong".into());
        }
        let mut headers = Vec::new();
        for uri in &request.files {
            let path = self.local_path(uri)?;
            let bytes = read_prefix(&path)
                .await
                .map_err(|e| format!("Cannot open backup device '{uri}': {e}"))?;
            let header = backup::read_header(&bytes).map_err(|e| {
                format!(
                    "The media family on device '{uri}' is incorrectly formed. SQL Server \
                     cannot process this media family (SQL Server error 3241: {e})"
                )
            })?;
            headers.push((uri.clone(), header));
        }
        super::restore::judge(&headers)
    }

    /// The file behind an `s3://host/bucket/key` URI, if it is in this
    /// emulator's bucket.
    fn local_path(&self, uri: &str) -> Result<PathBuf, String> {
        let rest = ["s3://", "http://", "https://"]
            .iter()
            .find_map(|scheme| uri.strip_prefix(scheme))
            .ok_or_else(|| format!("'{uri}' is not an s3:// URI"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("'{uri}' names no bucket"))?;
        if !same_authority(host, &self.s3.authority) {
            return Err(format!(
                "S3 host '{host}' is not reachable from the instance (only {} is)",
                self.s3.authority
            ));
        }
        let (bucket, key) = path
            .split_once('/')
            .ok_or_else(|| format!("'{uri}' names no object"))?;
        if bucket != self.s3.bucket {
            return Err(format!("The bucket '{bucket}' does not exist"));
        }
        let key_path = Path::new(key);
        if key.is_empty()
            || key_path
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(format!("'{key}' is not a valid object key"));
        }
        Ok(self.s3.root.join(bucket).join(key_path))
    }

    pub fn databases(&self, instance: &str) -> Option<Vec<DatabaseInfo>> {
        self.lock()
            .get(instance)
            .map(|i| i.databases.values().cloned().collect())
    }

    pub fn database(&self, instance: &str, name: &str) -> Option<DatabaseInfo> {
        self.lock()
            .get(instance)?
            .databases
            .get(&name.to_lowercase())
            .cloned()
    }

    /// Drops a database, as `DELETE .../databases/{name}` and `DROP
    /// DATABASE` do: not while it is being restored, and not when it is
    /// not there. Its storage is freed.
    pub fn drop_database(&self, instance: &str, name: &str) -> Result<(), DropRefusal> {
        let key = name.to_lowercase();
        let mut all = self.lock();
        let inst = all.get_mut(instance).ok_or(DropRefusal::Missing)?;
        if inst.restores.contains_key(&key) {
            return Err(DropRefusal::Restoring);
        }
        if inst.databases.contains_key(&key) && inst.protected.contains(&key) {
            return Err(DropRefusal::Denied);
        }
        let db = inst.databases.remove(&key).ok_or(DropRefusal::Missing)?;
        inst.used.remove(&key);
        *inst.drops.entry(db.name).or_default() += 1;
        Ok(())
    }

    /// Withholds (or gives back) the permission to drop `name` on the
    /// instance, through both doors, as a database owned by another team
    /// would: `DELETE` answers 403, `DROP DATABASE` error 3701.
    pub fn set_drop_denied(&self, instance: &str, name: &str, denied: bool) {
        if let Some(inst) = self.lock().get_mut(instance) {
            let key = name.to_lowercase();
            if denied {
                inst.protected.insert(key);
            } else {
                inst.protected.remove(&key);
            }
        }
    }

    /// Databases that are there before anything is imported, as on an
    /// instance in use: ONLINE, owned by `owner`.
    pub fn seed_databases(
        &self,
        instance: &str,
        names: impl IntoIterator<Item = String>,
        owner: &str,
    ) {
        let mut all = self.lock();
        let Some(inst) = all.get_mut(instance) else {
            return;
        };
        for name in names {
            let id = inst.next_id;
            inst.next_id += 1;
            inst.databases.insert(
                name.to_lowercase(),
                DatabaseInfo {
                    id,
                    name,
                    owner: owner.to_owned(),
                    created: SystemTime::now(),
                    state: "ONLINE",
                    level: super::restore::level_after_restore(0, &inst.settings.version),
                    collation: COLLATION.into(),
                    principals: Vec::new(),
                },
            );
        }
    }

    /// Whether a restore of `name` runs on the instance.
    pub fn is_restoring(&self, instance: &str, name: &str) -> bool {
        self.lock()
            .get(instance)
            .is_some_and(|i| i.restores.contains_key(&name.to_lowercase()))
    }

    /// Whether `name` exists (in any state) on the instance.
    pub fn has_database(&self, instance: &str, name: &str) -> bool {
        self.lock()
            .get(instance)
            .is_some_and(|i| i.databases.contains_key(&name.to_lowercase()))
    }

    pub fn running_restores(&self, instance: &str) -> Option<Vec<RestoreInfo>> {
        let all = self.lock();
        let inst = all.get(instance)?;
        Some(
            inst.restores
                .values()
                .map(|r| {
                    let elapsed = r.started.elapsed().as_secs_f64();
                    let total = self.restore_duration.as_secs_f64().max(1e-3);
                    RestoreInfo {
                        database: r.name.clone(),
                        // Never 100 while it runs: 100 would mean done.
                        percent: ((elapsed / total * 100.0) as u32).min(99),
                        started: r.started_at,
                        estimated_completion: r.started_at + self.restore_duration,
                    }
                })
                .collect(),
        )
    }

    /// `sys.databases` of an instance: system databases, online ones and
    /// those being restored (state RESTORING), optionally one by name, as
    /// the SQL login `seen_by` may see them: without VIEW ANY DATABASE,
    /// master, tempdb and its own. None: every row, as the model holds them.
    pub fn sys_databases(
        &self,
        instance: &str,
        name: Option<&str>,
        seen_by: Option<&str>,
    ) -> Vec<DatabaseInfo> {
        let all = self.lock();
        let Some(inst) = all.get(instance) else {
            return Vec::new();
        };
        let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let system = SYSTEM_DATABASES
            .iter()
            .enumerate()
            .map(|(i, n)| DatabaseInfo {
                id: i as i64 + 1,
                name: (*n).to_owned(),
                owner: "sa".into(),
                created: boot,
                state: "ONLINE",
                level: *super::restore::levels_offered(&inst.settings.version)
                    .last()
                    .unwrap_or(&160),
                collation: COLLATION.into(),
                principals: Vec::new(),
            });
        let restoring = inst.restores.values().map(|r| DatabaseInfo {
            id: r.id,
            name: r.name.clone(),
            owner: r.owner.clone(),
            created: r.started_at,
            state: "RESTORING",
            level: r.level,
            collation: COLLATION.into(),
            principals: Vec::new(),
        });
        let mut rows: Vec<DatabaseInfo> = system
            .chain(inst.databases.values().cloned())
            .chain(restoring)
            .collect();
        if let Some(name) = name {
            rows.retain(|d| d.name.eq_ignore_ascii_case(name));
        }
        if let Some(login) = seen_by.filter(|_| !inst.settings.view_any_database) {
            rows.retain(|d| {
                ["master", "tempdb"].contains(&d.name.as_str())
                    || d.owner.eq_ignore_ascii_case(login)
            });
        }
        rows.sort_by_key(|d| d.id);
        rows
    }

    pub fn count_status_request(&self, instance: &str) {
        if let Some(inst) = self.lock().get_mut(instance) {
            inst.status_requests += 1;
        }
    }

    /// One request about the instance itself, or its users (API or SQL).
    pub fn count_request(&self, instance: &str, counter: Counter) {
        if let Some(inst) = self.lock().get_mut(instance) {
            match counter {
                Counter::Instance => inst.instance_requests += 1,
                Counter::Users => inst.user_requests += 1,
                Counter::Lookup => inst.database_lookups += 1,
            }
        }
    }

    /// One session on the instance's TDS endpoint that went on in TLS.
    pub fn count_tls_session(&self, instance: &str) {
        if let Some(inst) = self.lock().get_mut(instance) {
            inst.tls_sessions += 1;
        }
    }

    /// One session whose LOGIN7 alone came in TLS.
    pub fn count_tls_login(&self, instance: &str) {
        if let Some(inst) = self.lock().get_mut(instance) {
            inst.tls_logins += 1;
        }
    }

    /// One SQL login attempt on the instance's TDS endpoint, whose user and
    /// password were right or not: counted, and held against the lockout
    /// policy (see [`Model::with_lockout_after`]).
    pub fn log_in(&self, instance: &str, credentials_right: bool) -> Result<(), LoginRefused> {
        let mut all = self.lock();
        let Some(inst) = all.get_mut(instance) else {
            return Err(LoginRefused::Credentials);
        };
        inst.logins += 1;
        let outcome = if inst.locked_out {
            Err(LoginRefused::LockedOut)
        } else if credentials_right && !self.credentials_revoked() {
            inst.failed_in_a_row = 0;
            Ok(())
        } else {
            inst.failed_in_a_row = inst.failed_in_a_row.saturating_add(1);
            inst.locked_out = self
                .lockout_after
                .is_some_and(|threshold| inst.failed_in_a_row >= threshold);
            Err(LoginRefused::Credentials)
        };
        if outcome.is_err() {
            inst.failed_logins += 1;
        }
        outcome
    }

    /// The `/_emulator/stats` document.
    pub fn stats(&self) -> Value {
        let all = self.lock();
        let instances: serde_json::Map<String, Value> = all
            .iter()
            .map(|(id, i)| {
                let databases: Vec<&str> = i.databases.values().map(|d| d.name.as_str()).collect();
                (
                    id.clone(),
                    json!({
                        "databases": databases,
                        "restore_submissions": i.submissions,
                        "drops": i.drops,
                        "max_concurrent_restores": i.max_concurrent,
                        "status_requests": i.status_requests,
                        "database_lookups": i.database_lookups,
                        "logins": i.logins,
                        "failed_logins": i.failed_logins,
                        "tls_sessions": i.tls_sessions,
                        "tls_logins": i.tls_logins,
                        "locked_out": i.locked_out,
                        "instance_requests": i.instance_requests,
                        "user_requests": i.user_requests,
                        "failed_restores": i.failed,
                        "checkdb_runs": i.checkdb_runs,
                        "remapped_users": i.remapped_users,
                        "levels_set": i.levels_set,
                    }),
                )
            })
            .collect();
        json!({ "instances": instances })
    }
}

/// Why a statement on a database was refused: SQL Server's number and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub number: i32,
    pub message: String,
}

fn refusal(number: i32, message: String) -> Refusal {
    Refusal { number, message }
}

/// The principals of a database restored here: the fixed ones (dbo with
/// the old server's SID, as after any restore onto another server), a
/// role, a user without login, and `--database-users`.
fn restored_principals(database: &str, settings: &InstanceSettings) -> Vec<DbPrincipal> {
    let fixed = |name: &str, id: i32, kind, authentication, sid: Vec<u8>| DbPrincipal {
        name: name.to_owned(),
        principal_id: id,
        kind,
        authentication,
        sid,
    };
    let mut out = vec![
        fixed(
            "public",
            0,
            "R",
            "NONE",
            vec![1, 5, 0, 0, 0, 0, 0, 9, 4, 0, 0, 0],
        ),
        fixed(
            "dbo",
            1,
            "S",
            "INSTANCE",
            sid_of(&format!("old-server:dbo:{database}")),
        ),
        fixed("guest", 2, "S", "INSTANCE", vec![0]),
        fixed("INFORMATION_SCHEMA", 3, "S", "NONE", Vec::new()),
        fixed("sys", 4, "S", "NONE", Vec::new()),
        fixed(
            "db_owner",
            16384,
            "R",
            "NONE",
            vec![1, 5, 0, 0, 0, 0, 0, 9, 4, 0, 0, 0, 1],
        ),
        fixed(
            "etl_without_login",
            5,
            "S",
            "NONE",
            sid_of(&format!("nologin:{database}")),
        ),
    ];
    for (n, (name, mapped)) in settings.database_user_list().into_iter().enumerate() {
        let sid = if mapped {
            login_sid(&name)
        } else {
            sid_of(&format!("old-server:{database}:{name}"))
        };
        out.push(fixed(&name, 6 + n as i32, "S", "INSTANCE", sid));
    }
    out
}

impl Model {
    /// `sys.database_principals` of a database; None when it is not there.
    pub fn database_principals(&self, instance: &str, database: &str) -> Option<Vec<DbPrincipal>> {
        self.lock()
            .get(instance)?
            .databases
            .get(&database.to_lowercase())
            .map(|d| d.principals.clone())
    }

    /// `ALTER USER [user] WITH LOGIN = [login]` in `database`: the user
    /// takes the login's SID.
    pub fn remap_user(
        &self,
        instance: &str,
        database: &str,
        user: &str,
        login: &str,
    ) -> Result<(), Refusal> {
        let mut all = self.lock();
        let inst = all
            .get_mut(instance)
            .ok_or_else(|| refusal(15151, format!("Cannot alter the user '{user}'.")))?;
        let known = inst
            .settings
            .user_list()
            .iter()
            .any(|(l, _)| l.eq_ignore_ascii_case(login));
        if !known {
            return Err(refusal(
                15151,
                format!(
                    "Cannot alter the login '{login}', because it does not exist or you do not have permission."
                ),
            ));
        }
        let db = inst
            .databases
            .get_mut(&database.to_lowercase())
            .ok_or_else(|| refusal(15151, format!("Cannot alter the user '{user}', because it does not exist or you do not have permission.")))?;
        let principal = db
            .principals
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(user) && p.kind != "R")
            .ok_or_else(|| refusal(15151, format!("Cannot alter the user '{user}', because it does not exist or you do not have permission.")))?;
        principal.sid = login_sid(login);
        let entry = format!("{}.{}", db.name, principal.name);
        inst.remapped_users.push(entry);
        Ok(())
    }

    /// `DBCC CHECKDB`: the consistency errors of the database (none, unless
    /// it is among `checkdb_errors`), counted per database.
    pub fn checkdb(&self, instance: &str, database: &str) -> Result<Vec<Refusal>, Refusal> {
        let mut all = self.lock();
        let missing = || {
            refusal(
                2520,
                format!(
                    "Could not find database '{database}'. The database either does not exist, or was dropped before a statement tried to use it. Verify if the database exists by querying the sys.databases catalog view."
                ),
            )
        };
        let inst = all.get_mut(instance).ok_or_else(missing)?;
        let name = inst
            .databases
            .get(&database.to_lowercase())
            .map(|d| d.name.clone())
            .or_else(|| {
                SYSTEM_DATABASES
                    .iter()
                    .find(|s| s.eq_ignore_ascii_case(database))
                    .map(|s| (*s).to_owned())
            })
            .ok_or_else(missing)?;
        *inst.checkdb_runs.entry(name.clone()).or_default() += 1;
        let corrupt = inst
            .settings
            .checkdb_errors
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&name));
        if !corrupt {
            return Ok(Vec::new());
        }
        Ok(vec![
            refusal(
                8928,
                "Object ID 2105058535, index ID 0, partition ID 72057594038779904, alloc unit ID \
                 72057594039828480 (type In-row data): Page (1:153) could not be processed.  See \
                 other errors for details."
                    .into(),
            ),
            refusal(
                8989,
                format!(
                    "CHECKDB found 0 allocation errors and 1 consistency errors in database '{name}'."
                ),
            ),
        ])
    }

    /// `ALTER DATABASE ... SET COMPATIBILITY_LEVEL = level`.
    pub fn set_level(&self, instance: &str, database: &str, level: i64) -> Result<(), Refusal> {
        let mut all = self.lock();
        let inst = all
            .get_mut(instance)
            .ok_or_else(|| refusal(5011, "no such instance".into()))?;
        let offered = super::restore::levels_offered(&inst.settings.version);
        if !u16::try_from(level).is_ok_and(|l| offered.contains(&l)) {
            let words: Vec<String> = offered.iter().map(u16::to_string).collect();
            let (last, rest) = words.split_last().expect("levels are never empty");
            return Err(refusal(
                15048,
                format!(
                    "Valid values of the database compatibility level are {}, or {last}.",
                    rest.join(", ")
                ),
            ));
        }
        let db = inst.databases.get_mut(&database.to_lowercase()).ok_or_else(|| {
            refusal(
                5011,
                format!("User does not have permission to alter database '{database}', the database does not exist, or the database is not in a state that allows access checks."),
            )
        })?;
        db.level = level as u16;
        let entry = format!("{}={level}", db.name);
        inst.levels_set.push(entry);
        Ok(())
    }

    /// The levels the instance offers (`GET .../compatibility`).
    pub fn levels(&self, instance: &str) -> Option<Vec<u16>> {
        self.settings(instance)
            .map(|s| super::restore::levels_offered(&s.version))
    }
}

/// `127.0.0.1:9000`, `localhost:9000` and `[::1]:9000` are the same place.
fn same_authority(a: &str, b: &str) -> bool {
    fn normal(x: &str) -> String {
        let x = x.to_ascii_lowercase();
        let (host, port) = x.rsplit_once(':').unwrap_or((&x, ""));
        let host = match host {
            "localhost" | "[::1]" | "127.0.0.1" => "loopback",
            other => other,
        };
        format!("{host}:{port}")
    }
    normal(a) == normal(b)
}

async fn read_prefix(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let mut bytes = Vec::with_capacity(backup::HEAD_READ);
    file.take(backup::HEAD_READ as u64)
        .read_to_end(&mut bytes)
        .await?;
    Ok(bytes)
}

/// SQL Server's own rule for a database name, as the service applies it:
/// 1 to 128 characters (sysname), any of them but control characters, no
/// system database's name. Delimited identifiers (`[my-db]`) are names like
/// any other; the client's stricter rules are its own.
fn name_problem(name: &str) -> Option<String> {
    const SYSTEM: [&str; 4] = ["master", "model", "msdb", "tempdb"];
    let units = name.encode_utf16().count();
    if !(1..=128).contains(&units) {
        return Some(format!(
            "a database name has 1 to 128 characters, not {units}"
        ));
    }
    if name.chars().any(char::is_control) {
        return Some("a database name holds no control character".into());
    }
    if SYSTEM.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return Some(format!("database '{name}' already exists"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_one_authority() {
        assert!(same_authority("localhost:9000", "127.0.0.1:9000"));
        assert!(!same_authority("localhost:9001", "127.0.0.1:9000"));
        assert!(!same_authority("s3.example.com:9000", "127.0.0.1:9000"));
    }
}
