//! `plan`: every online prerequisite, read-only. One status round per
//! instance and import path, one look at each instance (`instance`), a HEAD
//! and up to two ranged GETs (head and tail) per file, and the backup rules'
//! verdict on each database's file set.

mod instance;
pub mod prior;

use crate::backup::{self, verdict};
use crate::import_path::Method;
use crate::import_path::Route;
use crate::import_path::api::ApiTarget;
use crate::import_path::api::auth::TokenSource;
use crate::import_path::api::section::{ApiAccess, ApiAuth};
use crate::import_path::sql::SqlTarget;
use crate::import_path::{ImportPath, InstanceFacts, Inventory, Presence, StatusError};
use crate::manifest::model::OnExists;
use crate::manifest::valid::{Source, Target};
use crate::manifest::{Env, Loaded};
use crate::rules::{Finding, Rule};
use crate::s3::S3;
use futures::StreamExt;
use prior::{Prior, State};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// S3 requests in flight at once while planning.
const S3_CONCURRENCY: usize = 32;

/// An instance and an import path: what one target serves.
pub type Lane = (String, Method);

/// Everything remote a run talks to, built once from the manifest.
pub struct Context {
    pub loaded: Loaded,
    pub s3: Arc<S3>,
    pub targets: HashMap<Lane, Arc<dyn ImportPath>>,
    /// Per instance, the API target that can tell its state, storage and
    /// users, when the instance has a working API section.
    pub instance_api: HashMap<String, Arc<dyn ImportPath>>,
    /// Per instance, what checks its databases after the import.
    pub verifiers: HashMap<String, Arc<crate::verify::Verifier>>,
}

/// The API target of `instance`, sharing token sources between instances
/// that use the same key file.
fn api_target(
    instance: &str,
    api: &ApiAccess,
    env: Env,
    http: &reqwest::Client,
    tokens: &mut HashMap<PathBuf, Arc<TokenSource>>,
) -> Result<Arc<ApiTarget>, TargetsError> {
    let auth = match &api.auth {
        ApiAuth::KeyFile(path) if tokens.contains_key(path) => Arc::clone(&tokens[path]),
        auth => {
            let source = Arc::new(TokenSource::new(auth, env, http.clone()).map_err(|error| {
                TargetsError::Auth {
                    instance: instance.to_owned(),
                    error,
                }
            })?);
            if let ApiAuth::KeyFile(path) = auth {
                tokens.insert(path.clone(), Arc::clone(&source));
            }
            source
        }
    };
    let base = crate::import_path::api::instance_url(
        &api.endpoint,
        api.version,
        &api.project_id,
        &api.region,
        &api.instance_id,
    )
    .map_err(|error| TargetsError::Url {
        instance: instance.to_owned(),
        error,
    })?;
    Ok(Arc::new(ApiTarget::new(
        http.clone(),
        base,
        auth,
        format!("instance {instance} (API)"),
    )))
}

/// The remote side of a manifest could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error(transparent)]
    Timeout(#[from] crate::http::TimeoutError),
    #[error(transparent)]
    S3(#[from] crate::s3::SetupError),
    #[error("instance {instance}: {error}")]
    Auth {
        instance: String,
        error: crate::import_path::api::auth::AuthError,
    },
    #[error("instance {instance}: {error}")]
    Url {
        instance: String,
        error: crate::import_path::api::UrlError,
    },
}

impl Context {
    /// Targets for the lanes the selected databases use, sharing token
    /// sources between instances that use the same key.
    pub fn new(loaded: Loaded, selected: &[usize], env: Env) -> Result<Self, TargetsError> {
        let http = crate::http::client(crate::http::timeout(env)?);
        let m = &loaded.valid;
        let s3 = Arc::new(S3::new(&m.s3, http.clone())?);
        let mut targets: HashMap<Lane, Arc<dyn ImportPath>> = HashMap::new();
        let mut instance_api: HashMap<String, Arc<dyn ImportPath>> = HashMap::new();
        let mut apis: HashMap<String, Arc<ApiTarget>> = HashMap::new();
        let mut sqls: HashMap<String, Arc<SqlTarget>> = HashMap::new();
        let mut tokens: HashMap<PathBuf, Arc<TokenSource>> = HashMap::new();
        for &i in selected {
            let db = &m.databases[i];
            let instance = &db.instance;
            // One SQL target per instance, shared by the import and the
            // checks after it, so a refused login is never tried again.
            if let Some(access) = db.route.sql()
                && !sqls.contains_key(instance)
            {
                sqls.insert(instance.clone(), Arc::new(SqlTarget::new(access, instance)));
            }
            if !apis.contains_key(instance) {
                match &db.route {
                    Route::Api { access, .. } => {
                        let api = api_target(instance, access, env, &http, &mut tokens)?;
                        apis.insert(instance.clone(), api);
                    }
                    // The instance's state and storage only the API can
                    // tell: asked there too when the instance has API
                    // access that works.
                    Route::Sql { api: Some(api), .. } => {
                        if let Ok(api) = api_target(instance, api, env, &http, &mut tokens) {
                            apis.insert(instance.clone(), api);
                        }
                    }
                    Route::Sql { api: None, .. } => {}
                }
            }
            if let Some(api) = apis.get(instance) {
                instance_api
                    .entry(instance.clone())
                    .or_insert_with(|| Arc::clone(api) as Arc<dyn ImportPath>);
            }
            let lane = (instance.clone(), db.route.method());
            let target: Arc<dyn ImportPath> = match &db.route {
                Route::Api { .. } => Arc::clone(&instance_api[instance]),
                Route::Sql { .. } => Arc::clone(&sqls[instance]) as Arc<dyn ImportPath>,
            };
            targets.entry(lane).or_insert(target);
        }
        let verifiers = selected
            .iter()
            .map(|&i| m.databases[i].instance.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|instance| {
                let verifier = crate::verify::Verifier::new(
                    &instance,
                    sqls.get(&instance).cloned(),
                    apis.get(&instance).cloned(),
                );
                (instance, Arc::new(verifier))
            })
            .collect();
        Ok(Context {
            loaded,
            s3,
            targets,
            instance_api,
            verifiers,
        })
    }

    pub fn lane_of(&self, db: &Target) -> Lane {
        (db.instance.clone(), db.route.method())
    }

    /// The lanes the databases `indexes` use, each once, in order.
    pub fn lanes(&self, indexes: &[usize]) -> Vec<Lane> {
        let m = &self.loaded.valid;
        let mut lanes: Vec<Lane> = indexes
            .iter()
            .map(|&i| self.lane_of(&m.databases[i]))
            .collect();
        lanes.sort();
        lanes.dedup();
        lanes
    }

    /// One status round on each lane the databases `indexes` use.
    /// A lane whose host is not known or where nothing listens is said
    /// at once, not after every retry of its round.
    pub async fn inventories(
        &self,
        indexes: &[usize],
    ) -> HashMap<Lane, Result<Inventory, StatusError>> {
        let unreachable = self.unreachable().await;
        futures::future::join_all(self.lanes(indexes).into_iter().map(|lane| {
            let target = &self.targets[&lane];
            let known = unreachable.of(target);
            async move {
                let round = match known {
                    Some(e) => Err(e),
                    None => target.inventory(crate::import_path::Want::Both).await,
                };
                (lane, round)
            }
        }))
        .await
        .into_iter()
        .collect()
    }

    /// The hosts the targets connect to that do not resolve, or where
    /// nothing listens: each address tried once (a refused connection
    /// twice), so the lookups after it are not retried again and again.
    pub async fn unreachable(&self) -> Unreachable {
        let addresses: std::collections::BTreeSet<(String, u16)> = self
            .targets
            .values()
            .chain(self.instance_api.values())
            .filter_map(|t| t.address())
            .collect();
        let found =
            futures::future::join_all(addresses.into_iter().map(|(host, port)| async move {
                let why = crate::http::unreachable(&host, port).await;
                (host, port, why)
            }))
            .await
            .into_iter()
            .filter_map(|(host, port, why)| Some(((host, port), why?)))
            .collect();
        Unreachable(found)
    }
}

/// Why each unreachable address cannot be reached.
#[derive(Debug, Clone, Default)]
pub struct Unreachable(HashMap<(String, u16), String>);

impl Unreachable {
    /// The lasting error a target's requests would end in, when its
    /// address is one of these.
    pub fn of(&self, target: &Arc<dyn ImportPath>) -> Option<StatusError> {
        target
            .address()
            .and_then(|a| self.0.get(&a))
            .map(|why| StatusError::Lasting(why.clone()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// All checks passed: it will be imported.
    Ready,
    /// `on_exists: skip` and it is there.
    Skip,
    /// An earlier run (the journal) imported it.
    Done,
    /// An earlier run submitted it and it is still restoring: wait for it.
    Attach,
    /// `on_exists: replace` and it is there: drop it, then import it.
    Replace,
    NotReady,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    pub key: String,
    pub uri: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct PlanItem {
    pub index: usize,
    pub database: String,
    pub instance: String,
    pub method: Method,
    pub verdict: Verdict,
    /// What the rules found (refusals, warnings, information), by code:
    /// the one record of why the verdict is what it is.
    pub findings: Vec<Finding>,
    /// In stripe order when the set is complete.
    pub files: Vec<PlannedFile>,
    pub size: u64,
    /// What the backup says about itself, when it could be read.
    pub backup: Option<BackupSummary>,
    /// Imported by an earlier run whose checks after the import did not
    /// all run: the checks that did, with their findings. None otherwise.
    pub checks_left: Option<Vec<crate::verify::Checked>>,
}

impl PlanItem {
    /// Why the verdict is what it is, in words: the refusals of a database
    /// that is not ready; for the others, what the verdict means.
    pub fn reasons(&self) -> Vec<String> {
        match self.verdict {
            Verdict::NotReady => self
                .findings
                .iter()
                .filter(|f| f.refuses())
                .map(ToString::to_string)
                .collect(),
            Verdict::Skip => vec!["already there".to_owned()],
            Verdict::Ready | Verdict::Done | Verdict::Attach | Verdict::Replace => Vec::new(),
        }
    }

    /// Records what a rule found; a refusal makes the database not ready.
    fn refuse(&mut self, rule: Rule, message: impl Into<String>) {
        self.findings.push(Finding::new(rule, message));
        self.verdict = Verdict::NotReady;
    }

    fn refused(&self) -> bool {
        self.findings.iter().any(Finding::refuses)
    }
}

impl Serialize for PlanItem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            database: &'a str,
            instance: &'a str,
            method: Method,
            verdict: Verdict,
            reasons: Vec<String>,
            findings: &'a [Finding],
            files: &'a [PlannedFile],
            size: u64,
            backup: &'a Option<BackupSummary>,
        }
        Shown {
            database: &self.database,
            instance: &self.instance,
            method: self.method,
            verdict: self.verdict,
            reasons: self.reasons(),
            findings: &self.findings,
            files: &self.files,
            size: self.size,
            backup: &self.backup,
        }
        .serialize(s)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub database_name: String,
    pub backup_type: backup::BackupType,
    pub stripes: u16,
    pub sql_server: String,
    pub source_version: &'static str,
    pub database_version: u16,
    /// Bytes of data in the backup: a sure lower bound of the restored size.
    pub backup_size: u64,
    pub compressed: bool,
    pub backup_sets: u16,
}

impl BackupSummary {
    fn of(h: &backup::BackupHeader) -> Self {
        BackupSummary {
            database_name: h.database_name.clone(),
            backup_type: h.backup_type,
            stripes: h.family_count,
            sql_server: h.software_version.clone(),
            source_version: h.source_version,
            database_version: h.database_version,
            backup_size: h.backup_size,
            compressed: h.compressed,
            backup_sets: h.set_count(),
        }
    }
}

/// How the plan treats what the rules find.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Warnings refuse too (`--strict`).
    pub strict: bool,
    /// Counts the databases whose checks are done, for a caller that shows
    /// progress.
    pub checked: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub manifest: String,
    /// The manifest's warnings (`validate` shows them too), such as a
    /// credential that would travel in clear text.
    pub warnings: Vec<PlanWarning>,
    /// Problems shared by many databases, said once here with how many
    /// they block (an S3 endpoint that cannot be reached, a bucket that is
    /// not there); each database's finding refers to it.
    pub problems: Vec<SharedProblem>,
    pub items: Vec<PlanItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SharedProblem {
    #[serde(serialize_with = "crate::rules::serialize_code")]
    pub code: Rule,
    pub message: String,
    /// Databases it blocks.
    pub databases: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanWarning {
    pub path: String,
    pub message: String,
}

impl Plan {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.items.iter().filter(|i| i.verdict == verdict).count()
    }

    pub fn all_ready(&self) -> bool {
        self.count(Verdict::NotReady) == 0
    }
}

pub async fn plan(ctx: &Context, selected: &[usize], state: &State, options: Options) -> Plan {
    let lanes = ctx.lanes(selected);
    // What each instance is like, from the API where the instance has one
    // (once per instance), beside one status round per lane and, for SQL
    // lanes, one look through T-SQL (in turn: they share one connection).
    // A host that does not resolve, or a port where nothing listens, is
    // said once, and not asked again and again by each lookup's retries.
    let unreachable = &ctx.unreachable().await;
    let api_looks = futures::future::join_all(ctx.instance_api.iter().map(|(instance, api)| {
        let known = unreachable.of(api);
        async move {
            let facts = match known {
                Some(e) => Err(e),
                None => api.facts().await,
            };
            (instance.clone(), facts)
        }
    }));
    let rounds = futures::future::join_all(lanes.into_iter().map(|lane| async move {
        let target = &ctx.targets[&lane];
        let inventory = match unreachable.of(target) {
            Some(e) => Err(e),
            None => target.inventory(crate::import_path::Want::Both).await,
        };
        // A lane whose target is not the instance's API (asked above
        // already) looks through its own path too.
        let own_look = !ctx
            .instance_api
            .get(&lane.0)
            .is_some_and(|api| Arc::ptr_eq(api, target));
        let sql_facts = match &inventory {
            Ok(_) if own_look => Some(target.facts().await),
            _ => None,
        };
        (lane, inventory, sql_facts)
    }));
    let (api_looks, rounds, probe) =
        futures::future::join3(api_looks, rounds, ctx.s3.probe()).await;
    let s3_problem = probe.err();
    let from_api: HashMap<String, Result<InstanceFacts, StatusError>> =
        api_looks.into_iter().collect();
    let mut inventories: BTreeMap<Lane, Result<Inventory, StatusError>> = BTreeMap::new();
    let mut facts: BTreeMap<Lane, Result<InstanceFacts, StatusError>> = BTreeMap::new();
    for (lane, inventory, sql_facts) in rounds {
        let api = from_api.get(&lane.0);
        let fact = match (&inventory, sql_facts) {
            (Err(e), _) => Err(e.clone()),
            (Ok(_), None) => api
                .cloned()
                .unwrap_or_else(|| Err(StatusError::Lasting("no API facts".into()))),
            (Ok(_), Some(mut sql)) => {
                // T-SQL cannot see the instance's state or storage; the
                // API can, when the instance has one.
                match (&mut sql, api) {
                    (Ok(sql), Some(Ok(api))) => sql.complete_from(api),
                    (Ok(_), Some(Err(e))) => tracing::warn!(
                        "instance {}: the API cannot be asked ({e}); state and storage are \
                         not checked for its sql databases",
                        lane.0
                    ),
                    _ => {}
                }
                sql
            }
        };
        inventories.insert(lane.clone(), inventory);
        facts.insert(lane, fact);
    }

    let s3_slots = Arc::new(tokio::sync::Semaphore::new(S3_CONCURRENCY));
    let items: Vec<PlanItem> = futures::stream::iter(selected.iter().map(|&index| {
        let inventories = &inventories;
        let s3_slots = Arc::clone(&s3_slots);
        let s3_problem = s3_problem.as_ref();
        let (strict, checked) = (options.strict, options.checked.clone());
        async move {
            let item = plan_one(
                ctx,
                index,
                inventories,
                state,
                &s3_slots,
                s3_problem,
                strict,
            )
            .await;
            if let Some(checked) = checked {
                checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            item
        }
    }))
    .buffered(64)
    .collect()
    .await;
    let mut items = items;
    let mut problems: Vec<SharedProblem> = Vec::new();
    let unlisted: std::collections::BTreeSet<&Lane> = inventories
        .iter()
        .filter(|(_, inventory)| inventory.is_err())
        .map(|(lane, _)| lane)
        .collect();
    for (lane, inventory) in &inventories {
        if let Err(e) = inventory {
            problems.push(SharedProblem {
                code: Rule::TargetUnlisted,
                message: format!(
                    "cannot read the databases of {}: {e}",
                    ctx.targets[lane].label()
                ),
                databases: count_on(ctx, &items, lane),
            });
        }
    }
    instance::check(
        ctx,
        &mut items,
        &facts,
        &unlisted,
        &mut problems,
        options.strict,
    );
    // Findings carry remote errors: the last guard before any output.
    for finding in items.iter_mut().flat_map(|i| &mut i.findings) {
        finding.message = crate::redact::scrub(&finding.message);
    }
    if let Some(e) = s3_problem {
        problems.insert(
            0,
            SharedProblem {
                code: e.rule(),
                message: e.to_string(),
                databases: items.len(),
            },
        );
    }
    for p in &mut problems {
        p.message = crate::redact::scrub(&p.message);
    }
    Plan {
        manifest: ctx.loaded.source.name.clone(),
        problems,
        warnings: ctx
            .loaded
            .warnings
            .iter()
            .map(|d| PlanWarning {
                path: d.path.clone(),
                message: d.message.clone(),
            })
            .collect(),
        items,
    }
}

/// How many of the planned databases go through `lane`.
fn count_on(ctx: &Context, items: &[PlanItem], lane: &Lane) -> usize {
    let m = &ctx.loaded.valid;
    items
        .iter()
        .filter(|i| ctx.lane_of(&m.databases[i.index]) == *lane)
        .count()
}

/// What the target's presence and the state make of a database, before
/// its files are looked at.
enum Disposition {
    /// Not there: import it.
    New,
    /// There, and this state imported it.
    Done,
    /// There, and `on_exists: skip`.
    Skip,
    /// This state submitted it and it is still restoring.
    Attach,
    /// There, and `on_exists: replace`: drop it, then import.
    Replace,
    /// Refused by a target rule.
    Refused,
}

async fn plan_one(
    ctx: &Context,
    index: usize,
    inventories: &BTreeMap<Lane, Result<Inventory, StatusError>>,
    state: &State,
    s3_slots: &tokio::sync::Semaphore,
    s3_problem: Option<&crate::s3::S3Error>,
    strict: bool,
) -> PlanItem {
    let db = &ctx.loaded.valid.databases[index];
    let lane = ctx.lane_of(db);
    let mut item = PlanItem {
        index,
        database: db.name.clone(),
        instance: db.instance.clone(),
        method: lane.1,
        verdict: Verdict::NotReady,
        findings: Vec::new(),
        files: Vec::new(),
        size: 0,
        backup: None,
        checks_left: None,
    };
    let key = crate::db_key::DbKey::new(&db.instance, &db.name);
    let earlier = state.prior.get(&key).copied();
    let ours = earlier.is_some_and(Prior::may_have_started);
    let replace = db.on_exists == OnExists::Replace;
    // A run of this manifest that did not finish already replaced it: it
    // dropped it and submitted the import (a drop alone is done again).
    let replaced_in_this_run =
        replace && ours && state.resumed.as_ref().is_some_and(|r| r.contains(&key));
    let target = ctx.targets[&lane].label().to_owned();
    let disposition = match &inventories[&lane] {
        Err(_) => {
            // The cause is said once, in the plan's problems.
            item.refuse(
                Rule::TargetUnlisted,
                format!("cannot read the databases of {target} (see the plan's problems)"),
            );
            Disposition::Refused
        }
        Ok(inventory) => match inventory.presence(&db.name) {
            // Every run replaces again, except what the run it resumes did.
            Presence::Online | Presence::Other if replace && !replaced_in_this_run => {
                Disposition::Replace
            }
            Presence::Online if ours => Disposition::Done,
            Presence::Online | Presence::Restoring(_)
                if db.on_exists == OnExists::Skip && !ours =>
            {
                Disposition::Skip
            }
            Presence::Online => {
                item.refuse(
                    Rule::TargetExists,
                    format!("database {} already exists on {target}", db.name),
                );
                Disposition::Refused
            }
            Presence::Restoring(_) if ours => Disposition::Attach,
            Presence::Restoring(_) => {
                item.refuse(
                    Rule::TargetRestoring,
                    format!("database {} is being restored on {target}", db.name),
                );
                Disposition::Refused
            }
            Presence::Other => {
                item.refuse(
                    Rule::TargetNotOnline,
                    format!("database {} exists on {target} but is not online", db.name),
                );
                Disposition::Refused
            }
            Presence::Absent | Presence::Unknown
                if earlier.is_some_and(|p| matches!(p, Prior::Submitted | Prior::TimedOut)) =>
            {
                item.refuse(
                    Rule::EarlierImportLost,
                    format!(
                        "an earlier run submitted {} (see the state folder), but it is neither \
                         restoring nor online: the restore failed on the server; use another \
                         --state folder to import it again",
                        db.name
                    ),
                );
                Disposition::Refused
            }
            Presence::Absent | Presence::Unknown => Disposition::New,
        },
    };
    // An import in flight has its files already; every other target has its
    // files checked, so a broken reference shows before the night it is
    // needed. Where nothing is imported now, a file problem is a warning.
    let needed_now = matches!(
        disposition,
        Disposition::New | Disposition::Replace | Disposition::Refused
    );
    if !matches!(disposition, Disposition::Attach) {
        let findings = match s3_problem {
            // Said once in the plan's problems; no object is asked for.
            Some(e) => vec![Finding::new(
                e.rule(),
                "the files cannot be checked: S3 cannot be used (see the plan's problems)",
            )],
            None => check_files(ctx, db, &mut item, s3_slots).await,
        };
        for finding in findings {
            let finding = if needed_now {
                finding
            } else {
                finding.softened()
            };
            item.findings
                .push(if strict { finding.strict() } else { finding });
        }
    }
    if matches!(disposition, Disposition::Done)
        && let Some(imported) = state.files.get(&key)
    {
        let mut before = imported.clone();
        let mut now: Vec<String> = item.files.iter().map(|f| f.key.clone()).collect();
        before.sort();
        now.sort();
        if !now.is_empty() && before != now {
            let finding = Finding::new(
                Rule::TargetChanged,
                format!(
                    "{} was imported by this state from {}; the manifest now names {}: it \
                     stays as imported (set on_exists: replace to import the new files)",
                    db.name,
                    imported.join(", "),
                    now.join(", ")
                ),
            );
            item.findings
                .push(if strict { finding.strict() } else { finding });
        }
    }
    item.verdict = match disposition {
        _ if item.refused() => Verdict::NotReady,
        Disposition::New => Verdict::Ready,
        Disposition::Done => Verdict::Done,
        Disposition::Skip => Verdict::Skip,
        Disposition::Attach => Verdict::Attach,
        Disposition::Replace => Verdict::Replace,
        Disposition::Refused => Verdict::NotReady,
    };
    if item.verdict == Verdict::Done && !state.verified.contains(&key) {
        item.checks_left = Some(state.checked.get(&key).cloned().unwrap_or_default());
    }
    item
}

/// Lists and reads the database's files: the files in stripe order, the
/// backup's summary, and what the rules find (refusals included; the
/// caller decides what they weigh).
async fn check_files(
    ctx: &Context,
    db: &Target,
    item: &mut PlanItem,
    s3_slots: &tokio::sync::Semaphore,
) -> Vec<Finding> {
    let s3 = &ctx.s3;
    let mut findings = Vec::new();
    let keys: Vec<String> = match &db.files {
        Source::Keys(keys) => keys.clone(),
        Source::Prefix(prefix) => {
            let _slot = s3_slots.acquire().await.expect("never closed");
            match s3.list_backups(prefix).await {
                Ok(keys) if keys.is_empty() => {
                    findings.push(Finding::new(
                        Rule::NoBackupUnderPrefix,
                        format!("there is no .bak file under {prefix}"),
                    ));
                    return findings;
                }
                Ok(keys) if keys.iter().any(|k| db.route.refuses_key(k)) => {
                    for key in keys.iter().filter(|k| db.route.refuses_key(k)) {
                        findings.push(Finding::new(
                            Rule::KeyWithComma,
                            crate::manifest::checks::comma_in_key(key),
                        ));
                    }
                    return findings;
                }
                Ok(keys) => keys,
                Err(e) => {
                    findings.push(Finding::new(e.rule(), e.to_string()));
                    return findings;
                }
            }
        }
    };
    let checked = futures::future::join_all(keys.iter().map(|key| async move {
        let _slot = s3_slots.acquire().await.expect("never closed");
        s3.read_backup(key).await
    }))
    .await;
    let mut read = Vec::new();
    for (key, result) in keys.iter().zip(checked) {
        match result {
            Err(e) => findings.push(Finding::new(e.rule(), e.to_string())),
            Ok((size, header)) => {
                // Sizes are the server's word: saturate rather than overflow.
                item.size = item.size.saturating_add(size);
                item.files.push(PlannedFile {
                    key: key.clone(),
                    uri: s3.uri(key),
                    size,
                });
                read.push((key.clone(), size, header));
            }
        }
    }
    if findings.iter().any(Finding::refuses) {
        return findings;
    }
    if let Some(first) = read.iter().find_map(|(_, _, h)| h.as_ref().ok()) {
        item.backup = Some(BackupSummary::of(first));
    }
    let views: Vec<verdict::Read<'_>> = read
        .iter()
        .map(|(key, size, header)| verdict::Read {
            key,
            size: *size,
            header,
        })
        .collect();
    let (set, assessed) = verdict::assess(&views);
    let refused = assessed.iter().any(Finding::refuses);
    findings.extend(assessed);
    if !refused && let Some(set) = set {
        // STACKIT numbers the files; give them in stripe order.
        let by_key: HashMap<&str, &PlannedFile> =
            item.files.iter().map(|f| (f.key.as_str(), f)).collect();
        item.files = set
            .files_in_order
            .iter()
            .filter_map(|k| by_key.get(k.as_str()).map(|f| (*f).clone()))
            .collect();
    }
    findings
}

/// Bytes for people: `1.4 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
