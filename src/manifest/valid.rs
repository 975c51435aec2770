//! The manifest after validation, as the rest of the program uses it:
//! defaults applied, file entries turned into bucket keys, secrets read,
//! and every value the checks proved present held without an `Option`.
//! The checks ([`super::checks`]) build it while they look, so nothing is
//! checked twice; each database carries its [`Route`], one variant per
//! import path with exactly what that path needs.
//! `plan` and the engine take this type; the document
//! as written stays in [`Loaded::manifest`](super::Loaded) for what is about
//! the file itself (the instance ids the confirmation names, `validate`'s summary).

use super::model::OnExists;
use crate::import_path::Route;
use crate::secret::Secret;
use std::collections::BTreeMap;
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
}

/// One database to import, with the manifest's defaults applied.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub instance: String,
    pub route: Route,
    pub on_exists: OnExists,
    pub timeout: Duration,
    pub files: Source,
    pub tags: Vec<String>,
    /// The checks after the import.
    pub verify: super::verify::Settings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Bucket keys, in stripe order as written.
    Keys(Vec<String>),
    /// Every `.bak` key under this prefix.
    Prefix(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import_path::api::section::{ApiAuth, TOKEN_ENV};

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
  - {name: fin, instance: prod, method: sql, files: [fin.bak]}
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
        assert_eq!(v.instances["prod"].max_parallel, 1);
        assert_eq!(v.instances["rep"].max_parallel, 2);

        let sales = &v.databases[0];
        let Route::Api { owner, access, .. } = &sales.route else {
            panic!("sales goes through the API: {:?}", sales.route)
        };
        assert_eq!(owner, "app");
        assert_eq!(
            (access.project_id.as_str(), access.instance_id.as_str()),
            ("p", "i")
        );
        assert_eq!(
            access.endpoint,
            "https://mssql-flex-service.api.eu01.stackit.cloud"
        );
        assert!(
            matches!(&access.auth, ApiAuth::KeyFile(p) if *p == dir.path().join("keys/sa.json"))
        );
        assert_eq!(sales.timeout, Duration::from_secs(90 * 60));
        assert_eq!(
            sales.files,
            Source::Keys(vec!["sales/1.bak".into(), "sales/2.bak".into()])
        );

        let hr = &v.databases[1];
        let Route::Sql { owner, access, api } = &hr.route else {
            panic!("hr goes through T-SQL: {:?}", hr.route)
        };
        assert_eq!(owner.as_deref(), Some("app"));
        assert_eq!((access.port, access.password.expose()), (1444, "pw"));
        assert!(api.is_none(), "no ids: no API access");
        assert_eq!(hr.on_exists, OnExists::Skip);
        assert_eq!(hr.files, Source::Prefix("hr/".into()));
        assert_eq!(hr.tags, ["t"]);

        let fin = &v.databases[2];
        let Route::Sql { owner, access, api } = &fin.route else {
            panic!("fin goes through T-SQL: {:?}", fin.route)
        };
        assert_eq!(owner.as_deref(), Some("app"));
        assert_eq!(access.host, "prod.example");
        assert!(api.is_some(), "prod's API tells its state and storage");
    }

    #[test]
    fn the_token_comes_from_the_manifest_then_the_environment() {
        let with_token = MANIFEST.replace(
            "api: {service_account_key_path: keys/sa.json}",
            "api: {token: \"${TOKEN}\"}",
        );
        let env = [("S3_SECRET", "s"), ("PW", "pw"), ("TOKEN", "from-manifest")];
        let (v, _dir) = load(&with_token, &env);
        let auth = &v.databases[0].route.api().unwrap().auth;
        assert!(matches!(auth, ApiAuth::Token(t) if t.expose() == "from-manifest"));

        let bare = MANIFEST.replace("    api: {service_account_key_path: keys/sa.json}\n", "");
        let env = [("S3_SECRET", "s"), ("PW", "pw"), (TOKEN_ENV, "from-env")];
        let (v, _dir) = load(&bare, &env);
        let auth = &v.databases[0].route.api().unwrap().auth;
        assert!(matches!(auth, ApiAuth::Token(t) if t.expose() == "from-env"));
    }
}
