//! The manifest after validation, as the rest of the program uses it:
//! defaults applied, file entries turned into bucket keys, secrets read,
//! and every value the checks proved present held without an `Option`.
//! `plan`, the engine, the import paths and S3 take this type; the document
//! as written stays in [`Loaded::manifest`](super::Loaded) for what is about
//! the file itself (the instance ids the confirmation names, `validate`'s summary).

use super::Env;
use super::checks::{KEY_PATH_ENV, TOKEN_ENV};
use super::model::{self, ApiVersion, Files, Manifest, Method, OnExists};
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ValidManifest {
    /// Imports running at once over the whole run.
    pub max_parallel: u32,
    pub s3: S3Access,
    pub instances: BTreeMap<String, InstanceAccess>,
    /// In manifest order.
    pub databases: Vec<Target>,
}

#[derive(Debug, Clone)]
pub struct S3Access {
    pub endpoint: url::Url,
    pub bucket: String,
    pub access_key: Secret,
    pub secret_key: Secret,
    /// Signing region (default `eu01`).
    pub region: String,
}

impl S3Access {
    /// Host (and port, when not the default) of the endpoint, as it appears
    /// in `s3://host/bucket/key` URIs.
    pub fn authority(&self) -> String {
        crate::endpoint::authority(&self.endpoint).unwrap_or_default()
    }

    /// `s3://host/bucket/key`, the form STACKIT's import takes.
    pub fn uri_of(&self, key: &str) -> String {
        format!("s3://{}/{}/{key}", self.authority(), self.bucket)
    }
}

#[derive(Debug, Clone)]
pub struct InstanceAccess {
    /// Imports at once on this instance: its own `max_parallel`, else
    /// `concurrency.per_instance`.
    pub max_parallel: u32,
    /// STACKIT's API for this instance, when the manifest gives its project,
    /// region and id (always for an instance that `api` imports target).
    pub api: Option<ApiAccess>,
    /// The SQL endpoint, when the manifest gives one (always for an
    /// instance that `sql` imports target).
    pub sql: Option<SqlAccess>,
}

#[derive(Debug, Clone)]
pub struct ApiAccess {
    pub project_id: String,
    pub region: String,
    pub instance_id: String,
    pub version: ApiVersion,
    /// The endpoint, defaulted by version and region.
    pub endpoint: String,
    pub auth: ApiAuth,
}

/// Where the API's bearer token comes from, in the order the tool looks.
#[derive(Debug, Clone)]
pub enum ApiAuth {
    /// `api.token` or `api.token_file` (read), or
    /// `STACKIT_SERVICE_ACCOUNT_TOKEN`.
    Token(Secret),
    /// A service-account key file (key flow), from
    /// `api.service_account_key_path` (resolved against the manifest's
    /// folder) or `STACKIT_SERVICE_ACCOUNT_KEY_PATH`.
    KeyFile(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SqlAccess {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub encrypt: crate::manifest::Encrypt,
    pub trust_server_certificate: bool,
    /// CA certificates (PEM) trusted besides the system's.
    pub ca_bundle: Option<Vec<u8>>,
}

/// One database to import, with the manifest's defaults applied.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub instance: String,
    pub method: Method,
    /// No owner: the path's default applies (the procedure's login; the API
    /// requires one, which validation checks).
    pub owner: Option<String>,
    pub on_exists: OnExists,
    pub timeout: Duration,
    pub files: Source,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Bucket keys, in stripe order as written.
    Keys(Vec<String>),
    /// Every `.bak` key under this prefix.
    Prefix(String),
}

impl ValidManifest {
    /// The typed manifest of one that passed every check. A value the
    /// checks should have proved present and did not is an error naming
    /// it, never a panic.
    pub fn of(m: &Manifest, dir: &Path, env: Env) -> Result<Self, String> {
        let s3 = &m.s3;
        let s3 = S3Access {
            endpoint: s3
                .endpoint
                .parse()
                .map_err(|e| format!("s3.endpoint: {e}"))?,
            bucket: s3.bucket.clone(),
            access_key: s3.access_key.clone(),
            secret_key: present(s3.secret_key.clone(), "s3.secret_key")?,
            region: s3.region.clone().unwrap_or_else(|| "eu01".into()),
        };
        // Which paths target each instance, in one pass over the databases.
        let mut paths = std::collections::BTreeSet::new();
        for db in &m.databases {
            paths.insert((db.instance.as_str(), m.method_of(db)));
        }
        let uses = |name: &str, method| paths.contains(&(name, method));
        let mut instances = BTreeMap::new();
        for (name, inst) in &m.instances {
            let api = api_access(name, inst, dir, env, uses(name, Method::Api))?;
            let sql = match &inst.sql {
                Some(sql) => Some(sql_access(name, sql)?),
                None if uses(name, Method::Sql) => {
                    return Err(format!("instance {name} has no sql section"));
                }
                None => None,
            };
            instances.insert(
                name.clone(),
                InstanceAccess {
                    max_parallel: m.per_instance_limit(name),
                    api,
                    sql,
                },
            );
        }
        let databases = m
            .databases
            .iter()
            .map(|db| {
                let files = match &db.files {
                    Files::List(entries) => Source::Keys(
                        entries
                            .iter()
                            .map(|e| m.s3.key_of(e))
                            .collect::<Result<_, _>>()
                            .map_err(|e| format!("database {}: {e}", db.name))?,
                    ),
                    Files::Prefix(p) => Source::Prefix(p.prefix.clone()),
                };
                Ok(Target {
                    name: db.name.clone(),
                    instance: db.instance.clone(),
                    method: m.method_of(db),
                    owner: m.owner_of(db).map(str::to_owned),
                    on_exists: m.on_exists_of(db),
                    timeout: m.timeout_of(db),
                    files,
                    tags: db.tags.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(ValidManifest {
            max_parallel: m.concurrency.max_parallel,
            s3,
            instances,
            databases,
        })
    }
}

fn present<T>(value: Option<T>, what: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("`{what}` is missing"))
}

/// The API access of an instance: required when `api` imports target it;
/// otherwise there when the ids and a token source are (the plan then asks
/// the API what T-SQL cannot see).
fn api_access(
    name: &str,
    inst: &model::Instance,
    dir: &Path,
    env: Env,
    required: bool,
) -> Result<Option<ApiAccess>, String> {
    let field = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    let ids = (
        field(&inst.project_id),
        field(&inst.region),
        field(&inst.instance_id),
    );
    let auth = api_auth(inst.api.as_ref(), dir, env);
    let (project_id, region, instance_id, auth) = match (ids, auth) {
        ((Some(p), Some(r), Some(i)), Some(auth)) if required || inst.api.is_some() => {
            (p, r, i, auth)
        }
        _ if required => {
            return Err(format!(
                "instance {name}: the api method needs project_id, region, instance_id and a token source"
            ));
        }
        _ => return Ok(None),
    };
    let api = inst.api.as_ref();
    let version = api.and_then(|a| a.api_version).unwrap_or_default();
    let endpoint = api
        .and_then(|a| a.endpoint.clone())
        .unwrap_or_else(|| version.default_endpoint(&region));
    Ok(Some(ApiAccess {
        project_id,
        region,
        instance_id,
        version,
        endpoint,
        auth,
    }))
}

/// The first token source there is: the manifest's token (its file was
/// read at load), its key file, then the environment's key file and token.
fn api_auth(api: Option<&model::Api>, dir: &Path, env: Env) -> Option<ApiAuth> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(token) = api.and_then(|a| a.token.clone()) {
        return Some(ApiAuth::Token(token));
    }
    if let Some(path) = api.and_then(|a| a.service_account_key_path.as_ref()) {
        return Some(ApiAuth::KeyFile(dir.join(path)));
    }
    if let Some(path) = set(KEY_PATH_ENV) {
        return Some(ApiAuth::KeyFile(PathBuf::from(path)));
    }
    set(TOKEN_ENV).map(|t| ApiAuth::Token(Secret::new(t)))
}

fn sql_access(name: &str, sql: &model::Sql) -> Result<SqlAccess, String> {
    let what = |field: &str| format!("instances.{name}.sql.{field}");
    Ok(SqlAccess {
        host: present(sql.host.clone(), &what("host"))?,
        port: sql.port,
        user: present(sql.user.clone(), &what("user"))?,
        password: present(sql.password.clone(), &what("password"))?,
        encrypt: sql.encrypt,
        trust_server_certificate: sql.trust_server_certificate,
        ca_bundle: sql.ca_bundle.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `yaml` from a folder that holds `keys/sa.json`.
    fn load(yaml: &str, env: &[(&str, &str)]) -> (ValidManifest, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/sa.json"), "{}").unwrap();
        let vars: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |name: &str| vars.get(name).cloned();
        let loaded = super::super::load_str("m.yaml", yaml, dir.path(), &env)
            .unwrap_or_else(|r| panic!("{:?}", r.diagnostics));
        (loaded.valid, dir)
    }

    const MANIFEST: &str = r#"
version: 1
defaults: {owner: app, timeout: 90m}
concurrency: {max_parallel: 3, per_instance: 2}
s3: {endpoint: "https://object.storage.eu01.onstackit.cloud", bucket: backups, access_key: AK, secret_key: "${S3_SECRET}"}
instances:
  prod:
    project_id: p
    region: eu01
    instance_id: i
    api: {service_account_key_path: keys/sa.json}
    sql: {host: prod.example, user: importer, password: "${PW}"}
    max_parallel: 1
  rep:
    sql: {host: rep.example, port: 1444, user: importer, password: "${PW}"}
databases:
  - {name: sales, instance: prod, files: ["s3://backups/sales/1.bak", sales/2.bak]}
  - {name: hr, instance: rep, method: sql, owner: null, files: {prefix: hr/}, on_exists: skip, tags: [t]}
"#;

    #[test]
    fn defaults_are_applied_and_what_the_checks_proved_is_held_plainly() {
        let (v, dir) = load(MANIFEST, &[("S3_SECRET", "s3-secret"), ("PW", "pw")]);
        assert_eq!(v.max_parallel, 3);
        assert_eq!(v.s3.secret_key.expose(), "s3-secret");
        assert_eq!(v.s3.region, "eu01");
        assert_eq!(
            v.s3.uri_of("a/b.bak"),
            "s3://object.storage.eu01.onstackit.cloud/backups/a/b.bak"
        );
        let prod = &v.instances["prod"];
        assert_eq!(prod.max_parallel, 1);
        let api = prod.api.as_ref().unwrap();
        assert_eq!(
            (api.project_id.as_str(), api.instance_id.as_str()),
            ("p", "i")
        );
        assert_eq!(
            api.endpoint,
            "https://mssql-flex-service.api.eu01.stackit.cloud"
        );
        assert!(matches!(&api.auth, ApiAuth::KeyFile(p) if *p == dir.path().join("keys/sa.json")));
        assert_eq!(prod.sql.as_ref().unwrap().host, "prod.example");
        let rep = &v.instances["rep"];
        assert_eq!(rep.max_parallel, 2);
        assert!(rep.api.is_none(), "no ids: no API access");
        assert_eq!(rep.sql.as_ref().unwrap().port, 1444);
        assert_eq!(rep.sql.as_ref().unwrap().password.expose(), "pw");

        let sales = &v.databases[0];
        assert_eq!(sales.method, Method::Api);
        assert_eq!(sales.owner.as_deref(), Some("app"));
        assert_eq!(sales.timeout, Duration::from_secs(90 * 60));
        assert_eq!(
            sales.files,
            Source::Keys(vec!["sales/1.bak".into(), "sales/2.bak".into()])
        );
        let hr = &v.databases[1];
        assert_eq!((hr.method, hr.on_exists), (Method::Sql, OnExists::Skip));
        assert_eq!(hr.files, Source::Prefix("hr/".into()));
        assert_eq!(hr.tags, ["t"]);
    }

    #[test]
    fn the_token_comes_from_the_manifest_then_the_environment() {
        let with_token = MANIFEST.replace(
            "api: {service_account_key_path: keys/sa.json}",
            "api: {token: \"${TOKEN}\"}",
        );
        let env = [("S3_SECRET", "s"), ("PW", "pw"), ("TOKEN", "from-manifest")];
        let (v, _dir) = load(&with_token, &env);
        let auth = &v.instances["prod"].api.as_ref().unwrap().auth;
        assert!(matches!(auth, ApiAuth::Token(t) if t.expose() == "from-manifest"));

        let bare = MANIFEST.replace("    api: {service_account_key_path: keys/sa.json}\n", "");
        let env = [("S3_SECRET", "s"), ("PW", "pw"), (TOKEN_ENV, "from-env")];
        let (v, _dir) = load(&bare, &env);
        let auth = &v.instances["prod"].api.as_ref().unwrap().auth;
        assert!(matches!(auth, ApiAuth::Token(t) if t.expose() == "from-env"));
    }
}
