//! The semantic checks that need the typed manifest: names, references,
//! duplicates, files, what each import path requires (asked of
//! [`crate::import_path::Method`]), and the secret files.

use super::Env;
use super::model::{Concurrency, Database, Defaults, Files, Manifest, S3, parse_timeout};
use super::path::{FieldPath, Target, span_of};
use super::structure::closest;
use super::valid::{self, InstanceAccess, S3Access, Source, ValidManifest};
use super::yaml::Node;
use crate::diagnostic::Diagnostic;
use crate::endpoint::check_endpoint;
use crate::import_path::api::section as api_section;
use crate::import_path::sql::section::Sql;
use crate::import_path::{Access, Method, Route};
use crate::names::{check_database_name, check_login_name};
use crate::secret::Secret;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What the checks look at: the manifest with any structurally broken part
/// left out, so one run reports structural and semantic problems together.
pub struct Parts {
    pub manifest: Manifest,
    /// Where each entry of `manifest.databases` stands in the file.
    pub db_index: Vec<usize>,
    /// Every instance key in the file, including instances left out.
    pub instance_names: Vec<String>,
    /// False when `s3` was broken and `manifest.s3` is a stand-in.
    pub s3_ok: bool,
}

impl Parts {
    /// Types each part of the manifest on its own (moving out of `json`),
    /// keeping what fits the model.
    pub fn from_json(mut json: serde_json::Value) -> Parts {
        fn part<T: serde::de::DeserializeOwned>(v: Option<&mut serde_json::Value>) -> Option<T> {
            v.and_then(|v| serde_json::from_value(v.take()).ok())
        }
        let s3: Option<S3> = part(json.get_mut("s3"));
        let raw_instances = json.get_mut("instances").and_then(|i| i.as_object_mut());
        let instance_names = raw_instances
            .as_ref()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let instances = raw_instances
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| part(Some(v)).map(|i| (k.clone(), i)))
            .collect();
        let (db_index, databases) = json
            .get_mut("databases")
            .and_then(|d| d.as_array_mut())
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, v)| part::<Database>(Some(v)).map(|d| (i, d)))
            .unzip();
        let version = json.get("version").and_then(|v| v.as_u64()).unwrap_or(1) as u32;
        Parts {
            manifest: Manifest {
                version,
                // Field by field: one bad default must not hide the others
                // (a lost `owner` would make every API database an error).
                defaults: json
                    .get_mut("defaults")
                    .map_or_else(Defaults::default, |d| Defaults {
                        method: part(d.get_mut("method")),
                        owner: part(d.get_mut("owner")),
                        on_exists: part(d.get_mut("on_exists")),
                        timeout: part(d.get_mut("timeout")),
                        verify: part(d.get_mut("verify")),
                    }),
                concurrency: part::<Concurrency>(json.get_mut("concurrency")).unwrap_or_default(),
                s3: s3.clone().unwrap_or_else(|| S3 {
                    endpoint: String::new(),
                    bucket: String::new(),
                    access_key: Secret::default(),
                    secret_key: None,
                    secret_key_file: None,
                    region: None,
                }),
                instances,
                databases,
            },
            db_index,
            instance_names,
            s3_ok: s3.is_some(),
        }
    }
}

pub struct Checker<'a> {
    tree: &'a Node,
    env: Env<'a>,
    dir: &'a Path,
    pub diagnostics: Vec<Diagnostic>,
    /// No warning for an instance no database uses (a `discover` base).
    pub unused_instances_are_fine: bool,
    /// A secret file that cannot be read is a warning (`validate` on a
    /// machine without the secrets).
    pub secrets_may_be_absent: bool,
    built: Built,
}

/// What the checks proved, built as they go: a part is here only when
/// everything it needs passed.
#[derive(Default)]
struct Built {
    s3: Option<S3Access>,
    /// Each instance's access, by path.
    access: BTreeMap<String, Access>,
    /// One per database of the manifest, in its order.
    targets: Vec<Option<valid::Target>>,
}

impl<'a> Checker<'a> {
    pub fn new(tree: &'a Node, env: Env<'a>, dir: &'a Path) -> Self {
        Checker {
            tree,
            env,
            dir,
            diagnostics: Vec::new(),
            unused_instances_are_fine: false,
            secrets_may_be_absent: false,
            built: Built::default(),
        }
    }

    fn push(&mut self, d: Diagnostic, path: &FieldPath, target: Target) {
        let span = span_of(self.tree, path, target);
        self.diagnostics
            .push(d.at(path.to_string(), Some(super::location(span))));
    }

    /// Whether the value at `path` came (in part) from a variable that is
    /// set, not only from the manifest or a `${VAR:-default}`.
    fn set_by_variable(&self, path: &FieldPath) -> bool {
        matches!(
            super::path::node_at(self.tree, path),
            Some(Node::Scalar(s)) if s.from_set_variable
        )
    }

    /// A secret that is not on this machine: an error, or with
    /// [`Self::secrets_may_be_absent`] a warning that `plan` and `apply`
    /// need it.
    fn absent_secret(&mut self, path: &FieldPath, message: String) {
        if self.secrets_may_be_absent {
            self.push(
                Diagnostic::warning(format!("{message}; `plan` and `apply` need it")),
                path,
                Target::Value,
            );
        } else {
            self.error(path, message);
        }
    }

    fn error(&mut self, path: &FieldPath, message: impl std::fmt::Display) {
        self.push(Diagnostic::error(message.to_string()), path, Target::Value);
    }

    pub fn run(&mut self, parts: &mut Parts) {
        if parts.s3_ok {
            self.s3(&mut parts.manifest);
        }
        let m = &mut parts.manifest;
        let root = FieldPath::root();
        if let Some(owner) = &m.defaults.owner
            && let Err(e) = check_login_name(owner)
        {
            self.error(&root.key("defaults").key("owner"), e);
        }
        if let Some(t) = &m.defaults.timeout
            && let Err(e) = parse_timeout(t)
        {
            self.error(&root.key("defaults").key("timeout"), e);
        }
        if let Some(v) = &m.defaults.verify {
            self.verify_section(v, &root.key("defaults").key("verify"));
        }
        self.instances(&mut parts.manifest);
        self.databases(parts);
    }

    /// A `verify` section's values: a timeout that parses, a compatibility
    /// level SQL Server has (whether the instance offers it is `plan`'s).
    fn verify_section(&mut self, v: &super::verify::Verify, p: &FieldPath) {
        use super::verify::{CompatibilityLevel, KNOWN_LEVELS};
        if let Some(t) = &v.checkdb_timeout
            && let Err(e) = parse_timeout(t)
        {
            self.error(&p.key("checkdb_timeout"), e);
        }
        if let Some(CompatibilityLevel::Level(n)) = v.compatibility_level
            && !KNOWN_LEVELS.contains(&n)
        {
            let levels: Vec<String> = KNOWN_LEVELS.iter().map(u16::to_string).collect();
            let finding = crate::rules::Finding::new(
                crate::rules::Rule::LevelNotOffered,
                format!(
                    "no SQL Server has compatibility level {n}; the levels are {}",
                    levels.join(", ")
                ),
            );
            self.error(&p.key("compatibility_level"), finding);
        }
    }

    /// The validated manifest, when every part of it was built: always so
    /// when the checks reported no error.
    pub fn valid(&mut self, m: &Manifest) -> Option<ValidManifest> {
        let built = std::mem::take(&mut self.built);
        Some(ValidManifest {
            max_parallel: m.concurrency.max_parallel,
            s3: built.s3?,
            instances: m
                .instances
                .keys()
                .map(|name| {
                    let access = InstanceAccess {
                        max_parallel: m.per_instance_limit(name),
                    };
                    (name.clone(), access)
                })
                .collect(),
            databases: built.targets.into_iter().collect::<Option<_>>()?,
        })
    }

    fn s3(&mut self, m: &mut Manifest) {
        let p = FieldPath::root().key("s3");
        let endpoint = self.endpoint(&m.s3.endpoint, &p.key("endpoint"));
        let bucket_ok = match check_bucket(&m.s3.bucket) {
            Ok(()) => true,
            Err(e) => {
                self.error(&p.key("bucket"), e.to_string());
                false
            }
        };
        if m.s3.access_key.is_empty() {
            self.error(&p.key("access_key"), "the S3 access key is empty");
        }
        // A key given but unusable (both forms, a file that cannot be read)
        // has its own diagnostic; "missing" would send the reader astray.
        let given = m.s3.secret_key.is_some() || m.s3.secret_key_file.is_some();
        let secret = self.secret(
            m.s3.secret_key.take(),
            m.s3.secret_key_file.as_deref(),
            &p,
            ("secret_key", "secret_key_file"),
        );
        if !given {
            self.push(
                Diagnostic::error("the S3 secret key is missing")
                    .hint("set `s3.secret_key` (e.g. `${S3_SECRET_KEY}`) or `s3.secret_key_file`"),
                &p,
                Target::Key,
            );
        }
        if let (Some(endpoint), true, false, Some(secret_key)) = (
            endpoint,
            bucket_ok,
            m.s3.access_key.is_empty(),
            secret.clone(),
        ) {
            self.built.s3 = Some(S3Access {
                endpoint,
                bucket: m.s3.bucket.clone(),
                access_key: m.s3.access_key.clone(),
                secret_key,
                region: m.s3.region.clone().unwrap_or_else(|| "eu01".into()),
            });
        }
        m.s3.secret_key = secret;
    }

    /// A secret given inline or by file: exactly one of the two, and a file
    /// that can be read. The file's content replaces the inline field.
    fn secret(
        &mut self,
        inline: Option<Secret>,
        file: Option<&Path>,
        parent: &FieldPath,
        (inline_key, file_key): (&str, &str),
    ) -> Option<Secret> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.push(
                    Diagnostic::error(format!(
                        "set either `{inline_key}` or `{file_key}`, not both"
                    )),
                    &parent.key(file_key),
                    Target::Key,
                );
                None
            }
            (Some(s), None) => Some(s),
            (None, Some(path)) => {
                let full = self.dir.join(path);
                // `password_file: ${SQL_PASSWORD}` is a slip that would print
                // the password as a path: a path from the environment is
                // not shown.
                let at = parent.key(file_key);
                let from_env = matches!(
                    super::path::node_at(self.tree, &at),
                    Some(Node::Scalar(s)) if s.from_env
                );
                let from_set_variable = self.set_by_variable(&at);
                let shown = if from_env {
                    format!("the file named by the environment variable in `{file_key}`")
                } else {
                    format!("`{}`", crate::redact::terminal(&full.display().to_string()))
                };
                match crate::secret::read_bounded(&full, crate::secret::MAX_SECRET_FILE) {
                    Ok(text) => {
                        let text = text.trim_end_matches(['\n', '\r']);
                        if text.is_empty() {
                            self.error(&at, format!("{shown} is empty"));
                            None
                        } else {
                            Some(Secret::new(text))
                        }
                    }
                    Err(e) => {
                        let message = format!("cannot read {shown}: {e}");
                        // Absent from this machine, at a path the manifest
                        // (or a default) gives: maybe present where `plan`
                        // runs. At a path a set variable gives: a mistake.
                        if e.kind() == std::io::ErrorKind::NotFound && !from_set_variable {
                            self.absent_secret(&at, message);
                        } else {
                            self.error(&at, message);
                        }
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    /// The certificates of `sql.ca_file`: a readable PEM file with at least
    /// one, for a connection that verifies certificates at all.
    fn ca_bundle(&mut self, sql: &Sql, sp: &FieldPath) -> Option<Vec<u8>> {
        let path = sql.ca_file.as_deref()?;
        let at = sp.key("ca_file");
        if !sql.encrypt.is_on() {
            self.push(
                Diagnostic::error("`ca_file` is for TLS, and `encrypt: false` turns it off"),
                &at,
                Target::Key,
            );
            return None;
        }
        if sql.trust_server_certificate {
            self.push(
                Diagnostic::error(
                    "set either `ca_file` or `trust_server_certificate: true`, not both",
                )
                .hint("with the CA given, the certificate can be checked: drop `trust_server_certificate`"),
                &at,
                Target::Key,
            );
            return None;
        }
        let full = self.dir.join(path);
        let name = full.display().to_string();
        let shown = crate::redact::terminal(&name);
        let text = match crate::secret::read_bounded(&full, crate::secret::MAX_CA_FILE) {
            Ok(text) => text,
            Err(e) => {
                self.error(&at, format!("cannot read `{shown}`: {e}"));
                return None;
            }
        };
        let certificates = pem::parse_many(&text)
            .map(|blocks| blocks.iter().filter(|b| b.tag() == "CERTIFICATE").count())
            .unwrap_or(0);
        if certificates == 0 {
            self.error(
                &at,
                format!("`{shown}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)"),
            );
            return None;
        }
        Some(text.into_bytes())
    }

    fn endpoint(&mut self, endpoint: &str, path: &FieldPath) -> Option<url::Url> {
        check_endpoint(endpoint)
            .inspect_err(|e| self.error(path, e.to_string()))
            .ok()
    }

    fn databases(&mut self, parts: &Parts) {
        let m = &parts.manifest;
        let list = FieldPath::root().key("databases");
        // (instance, lowercase name) -> where the first database with it is.
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        let mut file_sets: HashMap<Vec<String>, (usize, &str)> = HashMap::new();
        let instance_names = &parts.instance_names;

        for (db, &i) in m.databases.iter().zip(&parts.db_index) {
            let p = list.index(i);
            let name_ok = match check_database_name(&db.name) {
                Ok(()) => {
                    if let Some(why) = crate::names::needs_delimiting(&db.name) {
                        self.push(
                            Diagnostic::warning(format!(
                                "{why}: SQL Server takes it only as a delimited identifier"
                            ))
                            .hint(format!(
                                "sqlflex-import quotes it in everything it sends; in your own \
                                 T-SQL write it as {}",
                                crate::names::quote_name(&db.name)
                            )),
                            &p.key("name"),
                            Target::Value,
                        );
                    }
                    if let Some(w) = crate::names::mixed_scripts(&db.name) {
                        self.push(
                            Diagnostic::warning(w)
                                .hint("retype the name in one script, unless this is meant"),
                            &p.key("name"),
                            Target::Value,
                        );
                    }
                    true
                }
                Err(e) => {
                    self.error(&p.key("name"), e);
                    false
                }
            };
            if !instance_names.contains(&db.instance) {
                let d = Diagnostic::error(format!(
                    "there is no instance `{}` in `instances`",
                    db.instance
                ));
                let d = match closest(&db.instance, instance_names) {
                    Some(near) => d.hint(format!("did you mean `{near}`?")),
                    None => d.hint(format!("defined instances: {}", instance_names.join(", "))),
                };
                self.push(d, &p.key("instance"), Target::Value);
            } else if name_ok {
                let key = (db.instance.clone(), db.name.to_lowercase());
                if let Some(&first) = seen.get(&key) {
                    let first_line =
                        span_of(self.tree, &list.index(first).key("name"), Target::Value).line;
                    self.push(
                        Diagnostic::error(format!(
                            "database `{}` is imported twice onto instance `{}` (names ignore case)",
                            db.name, db.instance
                        ))
                        .hint(format!("the first is databases[{first}], line {first_line}")),
                        &p.key("name"),
                        Target::Value,
                    );
                } else {
                    seen.insert(key, i);
                }
            }
            if let Some(owner) = &db.owner
                && let Err(e) = check_login_name(owner)
            {
                self.error(&p.key("owner"), e);
            }
            if let Some(t) = &db.timeout
                && let Err(e) = parse_timeout(t)
            {
                self.error(&p.key("timeout"), e);
            }
            if let Some(v) = &db.verify {
                self.verify_section(v, &p.key("verify"));
            }
            let verify = m.verify_of(db);
            let has_sql = m
                .instances
                .get(&db.instance)
                .is_some_and(|i| i.sql.is_some());
            if verify.asks_sql_only() && !has_sql && m.instances.contains_key(&db.instance) {
                self.push(
                    Diagnostic::warning(format!(
                        "database `{}` asks for checks after the import that need T-SQL ({}), \
                         but instance `{}` has no `sql` section; they will not run",
                        db.name,
                        verify.sql_only_checks().join(", "),
                        db.instance
                    ))
                    .hint("give the instance a `sql` section, or leave these checks out"),
                    &p.key("name"),
                    Target::Value,
                );
            }
            if m.method_of(db).requires_owner() && m.owner_of(db).is_none() {
                self.push(
                    Diagnostic::error(format!(
                        "database `{}` has no owner, which {} requires",
                        db.name,
                        m.method_of(db).title()
                    ))
                    .hint("set `defaults.owner` or this database's `owner`"),
                    &p.key("name"),
                    Target::Value,
                );
            }
            for (t, tag) in db.tags.iter().enumerate() {
                if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c == ',') {
                    self.error(
                        &p.key("tags").index(t),
                        "a tag must be non-empty, without spaces or commas",
                    );
                }
            }
            if !parts.s3_ok {
                // File entries are checked against the bucket.
                self.built.targets.push(None);
                continue;
            }
            let route = self.route(m, db);
            let files = self.files(m, db, &p);
            self.built.targets.push(
                route
                    .zip(files.clone())
                    .map(|(route, files)| valid::Target {
                        name: db.name.clone(),
                        instance: db.instance.clone(),
                        route,
                        on_exists: m.on_exists_of(db),
                        timeout: m.timeout_of(db),
                        files,
                        tags: db.tags.clone(),
                        verify: m.verify_of(db),
                    }),
            );
            if let Some(Source::Keys(mut set)) = files {
                set.sort();
                match file_sets.get(&set) {
                    Some(&(_, first_name)) => self.push(
                        Diagnostic::warning(format!(
                            "the same files are imported as `{first_name}` and as `{}`",
                            db.name
                        ))
                        .hint("legal, but usually a copy-paste slip"),
                        &p.key("files"),
                        Target::Key,
                    ),
                    None => {
                        file_sets.insert(set, (i, &db.name));
                    }
                }
            }
        }
    }

    /// The database's route: its import path with what that path needs,
    /// when the instance has it (a missing part has its diagnostic at the
    /// instance, and a missing owner at the database).
    fn route(&self, m: &Manifest, db: &Database) -> Option<Route> {
        let access = self.built.access.get(&db.instance)?;
        Route::new(m.method_of(db), m.owner_of(db).map(str::to_owned), access)
    }

    /// Checks one database's file entries; returns where they are when all
    /// are good.
    fn files(&mut self, m: &Manifest, db: &Database, p: &FieldPath) -> Option<Source> {
        let entries = match &db.files {
            Files::List(entries) => entries,
            Files::Prefix(p_) => {
                return match super::model::check_key(&p_.prefix) {
                    Ok(()) => Some(Source::Prefix(p_.prefix.clone())),
                    Err(e) => {
                        self.error(&p.key("files").key("prefix"), e);
                        None
                    }
                };
            }
        };
        let mut keys: Vec<String> = Vec::with_capacity(entries.len());
        let mut ok = true;
        for (f, entry) in entries.iter().enumerate() {
            let fp = p.key("files").index(f);
            match m.s3.key_of(entry) {
                Ok(key) => {
                    if let Some(first) = keys.iter().position(|k| *k == key) {
                        self.error(
                            &fp,
                            format!("`{key}` is listed twice (also files[{first}])"),
                        );
                        ok = false;
                    }
                    if m.method_of(db).refuses_key(&key) {
                        let finding = crate::rules::Finding::new(
                            crate::rules::Rule::KeyWithComma,
                            comma_in_key(&key),
                        );
                        self.error(&fp, finding.to_string());
                        ok = false;
                    }
                    if key.to_ascii_lowercase().ends_with(".trn") {
                        self.push(
                            Diagnostic::warning(format!("`{key}` looks like a transaction log backup"))
                                .hint("a log backup alone cannot create a database; `plan` checks the headers"),
                            &fp,
                            Target::Value,
                        );
                    }
                    keys.push(key);
                }
                Err(e) => {
                    self.error(&fp, e);
                    ok = false;
                }
            }
        }
        ok.then_some(Source::Keys(keys))
    }

    fn instances(&mut self, m: &mut Manifest) {
        // Which import paths target each instance.
        let paths: std::collections::BTreeSet<(String, Method)> = m
            .databases
            .iter()
            .map(|db| (db.instance.clone(), m.method_of(db)))
            .collect();
        // A database whose instance is not (yet) a known one, an unset
        // `${VAR}` or a slip, may be meant for any of them: none is unused.
        let all_named = m
            .databases
            .iter()
            .all(|db| m.instances.contains_key(&db.instance));
        let list = FieldPath::root().key("instances");
        let mut key_flow = false;
        for (id, inst) in m.instances.iter_mut() {
            let p = list.key(id);
            let uses: Vec<Method> = paths
                .iter()
                .filter(|(instance, _)| instance == id)
                .map(|&(_, method)| method)
                .collect();
            if uses.is_empty() && all_named && !self.unused_instances_are_fine {
                self.push(
                    Diagnostic::warning(format!("instance `{id}` is not used by any database")),
                    &p,
                    Target::Key,
                );
            }
            if let Some(api) = inst.api.as_mut() {
                let ap = p.key("api");
                if let Some(e) = &api.endpoint {
                    self.endpoint(e, &ap.key("endpoint"));
                }
                api.token = self.secret(
                    api.token.take(),
                    api.token_file.as_deref(),
                    &ap,
                    ("token", "token_file"),
                );
                if let Some(key) = &api.service_account_key_path {
                    let full = self.dir.join(key);
                    let at = ap.key("service_account_key_path");
                    let from_set_variable = self.set_by_variable(&at);
                    let mut absent = false;
                    let problem = match std::fs::metadata(&full) {
                        Err(e) => {
                            absent = e.kind() == std::io::ErrorKind::NotFound && !from_set_variable;
                            Some(e.to_string())
                        }
                        Ok(m) if m.len() > crate::secret::MAX_KEY_FILE => Some(format!(
                            "larger than {} KiB; not a service-account key",
                            crate::secret::MAX_KEY_FILE / 1024
                        )),
                        Ok(_) => None,
                    };
                    if let Some(problem) = problem {
                        let message = format!(
                            "cannot read `{}`: {problem}",
                            crate::redact::terminal(&full.display().to_string())
                        );
                        if absent {
                            self.absent_secret(&at, message);
                        } else {
                            self.error(&at, message);
                        }
                    }
                }
            }
            for (key, value) in inst.offered().ids.named() {
                if let Some(value) = value.filter(|v| !v.is_empty())
                    && let Err(e) = api_section::check_id(key, value)
                {
                    self.error(&p.key(key), e.to_string());
                }
            }
            if let Some(exposed) = inst.sql.as_ref().and_then(Sql::exposure) {
                self.push(
                    Diagnostic::warning(format!("instance `{id}`: {}", exposed.what))
                        .hint(exposed.hint),
                    &p.key("sql").key(exposed.key),
                    Target::Key,
                );
            }
            if let Some(sql) = inst.sql.as_mut() {
                let sp = p.key("sql");
                sql.ca_bundle = self.ca_bundle(sql, &sp);
                sql.password = self.secret(
                    sql.password.take(),
                    sql.password_file.as_deref(),
                    &sp,
                    ("password", "password_file"),
                );
            }
            let offered = inst.offered();
            for &method in &uses {
                for unmet in method.unmet(&offered, self.env) {
                    let mut d = Diagnostic::error(format!(
                        "instance `{id}` is used with method `{}` but has no {}",
                        method.as_str(),
                        unmet.what
                    ));
                    if let Some(hint) = unmet.hint {
                        d = d.hint(hint);
                    }
                    self.push(d, &p, Target::Key);
                }
            }
            let access = Access::of(&offered, &uses, self.dir, self.env);
            key_flow |= access.key_flow();
            self.built.access.insert(id.clone(), access);
        }
        if key_flow
            && let Some(url) = (self.env)(crate::endpoint::TOKEN_URL_ENV).filter(|v| !v.is_empty())
            && let Err(e) = check_endpoint(&url)
        {
            // Once for the manifest: the variable is not in the file.
            self.diagnostics.push(Diagnostic::error(format!(
                "{}: {e}; the signed service-account assertion would travel in clear",
                crate::endpoint::TOKEN_URL_ENV
            )));
        }
    }
}

/// M001's message about one key (the finding carries the code): the stored
/// procedure takes every file in one comma-separated `@s3_url`, so a comma
/// inside a key would split it into two wrong names.
pub fn comma_in_key(key: &str) -> String {
    format!(
        "`{}` contains a comma, which would split the procedure's comma-separated @s3_url; \
         rename the object or import it with `method: api`",
        crate::redact::terminal(key)
    )
}

/// A bucket name S3 refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid bucket name (3-63 lowercase letters, digits, `.` and `-`)")]
pub struct BadBucket(String);

/// S3 bucket naming rules (3-63 characters, lowercase, digits, `.`, `-`).
fn check_bucket(bucket: &str) -> Result<(), BadBucket> {
    let valid_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends_ok = bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if (3..=63).contains(&bucket.len()) && valid_chars && ends_ok && !bucket.contains("..") {
        Ok(())
    } else {
        Err(BadBucket(crate::redact::terminal(bucket).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert!(check_bucket("migration-backups").is_ok());
        for bad in ["ab", "Upper", "-start", "end-", "a..b", "under_score"] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
    }
}
