//! The manifest as typed data. The JSON Schema (`sqlflex-import schema`) is
//! generated from these types and is also what `validate` checks the
//! structure against, so the documentation, the schema and the checks cannot
//! drift apart.

use crate::secret::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A batch of SQL Server databases to import into STACKIT SQLServer Flex from
/// `.bak` files in one S3 bucket.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "sqlflex-import manifest", extend("$id" = "https://sqlflex-import.invalid/manifest.schema.json"))]
pub struct Manifest {
    /// Format version of this file. Always 1.
    #[schemars(range(min = 1, max = 1), example = 1)]
    pub version: u32,
    /// Values every database inherits unless it sets its own.
    #[serde(default)]
    pub defaults: Defaults,
    /// How many imports run at once.
    #[serde(default)]
    pub concurrency: Concurrency,
    /// The STACKIT object storage bucket that holds the `.bak` files.
    pub s3: S3,
    /// The target SQLServer Flex instances, by a short name of your choice
    /// that `databases[].instance` refers to.
    #[schemars(length(min = 1))]
    pub instances: BTreeMap<String, Instance>,
    /// The databases to import, one entry per target database.
    #[schemars(length(min = 1))]
    pub databases: Vec<Database>,
}

/// How an import is carried out.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    Serialize,
    JsonSchema,
    Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    // STACKIT's REST API: `POST .../instances/{id}/restores`.
    #[default]
    Api,
    // The stored procedure `[msdb].[stackit].[import_database]` over TDS.
    Sql,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Api => "api",
            Method::Sql => "sql",
        }
    }

    /// The path in words, for people.
    pub fn title(self) -> &'static str {
        match self {
            Method::Api => "the REST API",
            Method::Sql => "the stored procedure",
        }
    }

    /// Whether the path cannot take this object key: the procedure takes
    /// every file in one comma-separated `@s3_url` (rule M001).
    pub fn refuses_key(self, key: &str) -> bool {
        self == Method::Sql && key.contains(',')
    }
}

/// What to do when the target database already exists on the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnExists {
    // The check fails and nothing is imported.
    #[default]
    Fail,
    // The database counts as done ("skipped, already there"): for seeding
    // manifests that are applied again and again.
    Skip,
    // The database is dropped, then imported again, on every run: a fresh
    // copy each night. A run that is interrupted and resumed does not drop
    // what it imported already.
    Replace,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Import path: `api` (default) or `sql`.
    pub method: Option<Method>,
    /// Login that owns the imported database. Required by the API path.
    #[schemars(example = &"app_owner")]
    pub owner: Option<String>,
    /// `fail` (default), `skip` or `replace` (drop it, then import again,
    /// on every run) when the target database already exists.
    pub on_exists: Option<OnExists>,
    /// How long to wait for one import to come ONLINE, e.g. `2h`, `45m`.
    /// Default 2h. After it, the import is reported as timed out and left
    /// running on the server; it is never resubmitted.
    #[schemars(regex(pattern = r"^\s*([0-9]+\s*[a-zA-Z]+\s*)+$"), example = &"2h")]
    pub timeout: Option<String>,
    /// What to check on each database after its import.
    pub verify: Option<super::verify::Verify>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Imports running at once over the whole run. Default 8.
    #[serde(default = "default_max_parallel")]
    #[schemars(range(min = 1), example = 8)]
    pub max_parallel: u32,
    /// Imports running at once on one instance, unless the instance sets
    /// its own `max_parallel`. Default 2.
    #[serde(default = "default_per_instance")]
    #[schemars(range(min = 1), example = 2)]
    pub per_instance: u32,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            max_parallel: default_max_parallel(),
            per_instance: default_per_instance(),
        }
    }
}

fn default_max_parallel() -> u32 {
    8
}

fn default_per_instance() -> u32 {
    2
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3 {
    /// Object storage endpoint, `https://...` (plain `http` only on loopback).
    #[schemars(example = &"https://object.storage.eu01.onstackit.cloud")]
    pub endpoint: String,
    /// Bucket holding the backups.
    #[schemars(length(min = 3, max = 63), example = &"migration-backups")]
    pub bucket: String,
    /// S3 access key id with read access to the files.
    pub access_key: Secret,
    /// S3 secret key. Set this or `secret_key_file`.
    pub secret_key: Option<Secret>,
    /// File holding the S3 secret key (trailing newline ignored).
    pub secret_key_file: Option<PathBuf>,
    /// Signing region. Default `eu01`.
    #[schemars(example = &"eu01")]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// STACKIT project id. Required for the `api` method.
    pub project_id: Option<String>,
    /// STACKIT region, e.g. `eu01`. Required for the `api` method.
    #[schemars(example = &"eu01")]
    pub region: Option<String>,
    /// SQLServer Flex instance id. Required for the `api` method.
    pub instance_id: Option<String>,
    /// Imports running at once on this instance; overrides
    /// `concurrency.per_instance`.
    #[schemars(range(min = 1))]
    pub max_parallel: Option<u32>,
    /// How to reach STACKIT's REST API for this instance.
    pub api: Option<Api>,
    /// How to reach the instance over the SQL Server protocol (`sql` method).
    pub sql: Option<Sql>,
}

/// API version path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
pub enum ApiVersion {
    // The documented version.
    #[default]
    #[serde(rename = "v3alpha1")]
    V3alpha1,
    #[serde(rename = "v3")]
    V3,
}

impl ApiVersion {
    /// The default endpoint, as each document's `servers` gives it: v3alpha1
    /// has the region in the host, v3 one global host (the region is in the
    /// path either way).
    pub fn default_endpoint(self, region: &str) -> String {
        match self {
            ApiVersion::V3alpha1 => {
                format!("https://mssql-flex-service.api.{region}.stackit.cloud")
            }
            ApiVersion::V3 => "https://mssql-flex-service.api.stackit.cloud".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Default `https://mssql-flex-service.api.{region}.stackit.cloud` for
    /// v3alpha1, `https://mssql-flex-service.api.stackit.cloud` for v3.
    pub endpoint: Option<String>,
    /// `v3alpha1` (default) or `v3`.
    pub api_version: Option<ApiVersion>,
    /// Bearer token. Set one of `token`, `token_file`,
    /// `service_account_key_path`, or the environment variable
    /// `STACKIT_SERVICE_ACCOUNT_TOKEN` / `STACKIT_SERVICE_ACCOUNT_KEY_PATH`.
    pub token: Option<Secret>,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// STACKIT service-account key JSON (key flow: the tool signs its own
    /// assertion and fetches short-lived tokens).
    pub service_account_key_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    /// Host name of the instance's SQL endpoint.
    #[schemars(example = &"prod.sqlserver.eu01.onstackit.cloud")]
    pub host: Option<String>,
    /// TCP port. Default 1433.
    #[serde(default = "default_sql_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// SQL login allowed to run `[msdb].[stackit].[import_database]`.
    pub user: Option<String>,
    /// Password of `user`. Set this or `password_file`.
    pub password: Option<Secret>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// TLS on the connection: `true` (default; negotiated in PRELOGIN, as
    /// TDS 7.x does, and required), `strict` (TDS 8.0, SQL Server 2022: TLS
    /// from the first byte, nothing of TDS in clear) or `false` (none:
    /// loopback and tests only).
    #[serde(default)]
    pub encrypt: Encrypt,
    /// Accept any server certificate. Default false; only for tests.
    #[serde(default)]
    pub trust_server_certificate: bool,
    /// PEM file of the CA certificate(s) that sign the instance's
    /// certificate, trusted besides the system's: for endpoints whose
    /// certificate comes from a private CA. Relative to the manifest.
    pub ca_file: Option<PathBuf>,
    /// The certificates `ca_file` holds, read by the checks.
    #[serde(skip)]
    #[schemars(skip)]
    pub ca_bundle: Option<Vec<u8>>,
}

fn default_sql_port() -> u16 {
    1433
}

/// `sql.encrypt`: `true`, `false` or `strict`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encrypt {
    /// TDS 7.x: PRELOGIN in clear, then TLS, required.
    #[default]
    Required,
    /// TDS 8.0: TLS before any TDS byte.
    Strict,
    /// No TLS.
    Off,
}

impl Encrypt {
    pub fn is_on(self) -> bool {
        self != Encrypt::Off
    }
}

impl Serialize for Encrypt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Encrypt::Required => s.serialize_bool(true),
            Encrypt::Strict => s.serialize_str("strict"),
            Encrypt::Off => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for Encrypt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EncryptVisitor;
        impl serde::de::Visitor<'_> for EncryptVisitor {
            type Value = Encrypt;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or strict")
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Encrypt, E> {
                Ok(if on { Encrypt::Required } else { Encrypt::Off })
            }
            fn visit_str<E: serde::de::Error>(self, word: &str) -> Result<Encrypt, E> {
                match word {
                    "strict" => Ok(Encrypt::Strict),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(word), &self)),
                }
            }
        }
        d.deserialize_any(EncryptVisitor)
    }
}

impl JsonSchema for Encrypt {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Encrypt".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"enum": [true, false, "strict"], "default": true})
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// Name of the database to create on the instance (at most 80
    /// characters, a regular SQL Server identifier, not a system database).
    #[schemars(length(min = 1), example = &"sales")]
    pub name: String,
    /// Key of the target in `instances`.
    pub instance: String,
    /// The backup files: a list of keys in the bucket or `s3://` URIs (the
    /// stripes of one media set), or `{prefix: ...}` for every `.bak` under
    /// a prefix.
    pub files: Files,
    /// Overrides `defaults.method`.
    pub method: Option<Method>,
    /// Overrides `defaults.owner`.
    pub owner: Option<String>,
    /// Overrides `defaults.on_exists`.
    pub on_exists: Option<OnExists>,
    /// Overrides `defaults.timeout`.
    #[schemars(regex(pattern = r"^\s*([0-9]+\s*[a-zA-Z]+\s*)+$"))]
    pub timeout: Option<String>,
    /// Overrides `defaults.verify`, field by field.
    pub verify: Option<super::verify::Verify>,
    /// Labels for `--tag` selection.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Files {
    /// Explicit keys or `s3://` URIs, in stripe order.
    #[schemars(title = "list of files")]
    List(#[schemars(length(min = 1))] Vec<String>),
    /// Every `.bak` key under a prefix, sorted.
    #[schemars(title = "prefix")]
    Prefix(Prefix),
}

/// By hand: serde's untagged enums buffer every value first, which was a
/// tenth of the time to load a large manifest. A list is a file list, a
/// mapping is `{prefix}`.
impl<'de> Deserialize<'de> for Files {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FilesVisitor;
        impl<'de> serde::de::Visitor<'de> for FilesVisitor {
            type Value = Files;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of files or a mapping {prefix: ...}")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Files, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Files::List)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Files, A::Error> {
                Prefix::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Files::Prefix)
            }
        }
        d.deserialize_any(FilesVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prefix {
    #[schemars(length(min = 1), example = &"hr/2026-11-01/")]
    pub prefix: String,
}

/// Default of `defaults.timeout`.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

impl Manifest {
    pub fn method_of(&self, db: &Database) -> Method {
        db.method.or(self.defaults.method).unwrap_or_default()
    }

    pub fn owner_of<'a>(&'a self, db: &'a Database) -> Option<&'a str> {
        db.owner.as_deref().or(self.defaults.owner.as_deref())
    }

    pub fn on_exists_of(&self, db: &Database) -> OnExists {
        db.on_exists.or(self.defaults.on_exists).unwrap_or_default()
    }

    /// Validation has parsed every timeout, so the fallback is only the default.
    pub fn timeout_of(&self, db: &Database) -> std::time::Duration {
        db.timeout
            .as_deref()
            .or(self.defaults.timeout.as_deref())
            .and_then(|t| parse_timeout(t).ok())
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn verify_of(&self, db: &Database) -> super::verify::Settings {
        super::verify::Settings::of(self.defaults.verify.as_ref(), db.verify.as_ref(), |t| {
            parse_timeout(t).ok()
        })
    }

    /// Per-instance bound: the instance's own `max_parallel`, else
    /// `concurrency.per_instance`.
    pub fn per_instance_limit(&self, instance: &str) -> u32 {
        self.instances
            .get(instance)
            .and_then(|i| i.max_parallel)
            .unwrap_or(self.concurrency.per_instance)
    }
}

/// The longest wait a manifest or the environment may ask for: an import
/// is followed at most this long, and time arithmetic stays far from any
/// overflow.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A timeout that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeoutError {
    #[error("the timeout must be longer than zero")]
    Zero,
    #[error("`{0}` is longer than the longest timeout, 7 days")]
    TooLong(String),
    #[error("`{text}` is not a duration ({reason})")]
    NotADuration { text: String, reason: String },
}

pub fn parse_timeout(text: &str) -> Result<std::time::Duration, TimeoutError> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() => Err(TimeoutError::Zero),
        Ok(d) if d > MAX_WAIT => Err(TimeoutError::TooLong(text.trim().to_owned())),
        Ok(d) => Ok(d),
        Err(e) => Err(TimeoutError::NotADuration {
            text: text.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// A `files` entry or prefix that names no object of the bucket, or not
/// one object the same way everywhere. Keys are shown escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the file name is empty")]
    Empty,
    #[error("`{0}://` is not supported: use a key in the bucket or an s3:// URI")]
    Scheme(String),
    #[error("keys are relative to the bucket: drop the leading `/`")]
    LeadingSlash,
    #[error("the URI names bucket `{named}`, but the manifest's bucket is `{bucket}`")]
    OtherBucket { named: String, bucket: String },
    #[error(
        "the URI points outside the manifest's endpoint and bucket (s3://{authority}/{bucket}/...)"
    )]
    Outside { authority: String, bucket: String },
    #[error("the URI names no object key")]
    NoKey,
    #[error(
        "`{0}` has a `.` or `..` segment, which URLs normalise into another object; \
         name the object by its plain key"
    )]
    DotSegment(String),
    #[error("`{0}` contains a control character")]
    Control(String),
}

impl S3 {
    /// Host (and port, when not the default) of the endpoint, as it appears
    /// in `s3://host/bucket/key` URIs.
    pub fn endpoint_authority(&self) -> Option<String> {
        crate::endpoint::authority_of(&self.endpoint)
    }

    /// The bucket key a `files` entry names: a plain key, or an
    /// `s3://host/bucket/key` or `s3://bucket/key` URI into this bucket.
    pub fn key_of(&self, entry: &str) -> Result<String, KeyError> {
        if entry.trim().is_empty() {
            return Err(KeyError::Empty);
        }
        let Some(rest) = entry.strip_prefix("s3://") else {
            if let Some((scheme, _)) = entry.split_once("://") {
                return Err(KeyError::Scheme(
                    crate::redact::terminal(scheme).into_owned(),
                ));
            }
            if entry.starts_with('/') {
                return Err(KeyError::LeadingSlash);
            }
            check_key(entry)?;
            return Ok(entry.to_owned());
        };
        let mut parts = rest.splitn(3, '/');
        let first = parts.next().unwrap_or_default();
        let second = parts.next().unwrap_or_default();
        let third = parts.next();
        let authority = self.endpoint_authority();
        let key = match third {
            Some(key)
                if authority
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(first)) =>
            {
                if second != self.bucket {
                    return Err(KeyError::OtherBucket {
                        named: crate::redact::terminal(second).into_owned(),
                        bucket: self.bucket.clone(),
                    });
                }
                key.to_owned()
            }
            _ if first == self.bucket => match third {
                Some(key) => format!("{second}/{key}"),
                None => second.to_owned(),
            },
            _ => {
                return Err(KeyError::Outside {
                    authority: authority.unwrap_or_else(|| "?".into()),
                    bucket: self.bucket.clone(),
                });
            }
        };
        if key.is_empty() {
            return Err(KeyError::NoKey);
        }
        check_key(&key)?;
        Ok(key)
    }
}

/// An object key that names one object the same way everywhere. `.` and
/// `..` segments are refused: URL handling normalises them away, so the
/// object `plan` reads and the one the service imports would differ.
/// Control characters have no place in a key and would reach terminals.
pub fn check_key(key: &str) -> Result<(), KeyError> {
    let shown = || crate::redact::terminal(key).into_owned();
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(KeyError::DotSegment(shown()));
    }
    if key.chars().any(char::is_control) {
        return Err(KeyError::Control(shown()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> S3 {
        S3 {
            endpoint: "https://object.storage.eu01.onstackit.cloud".into(),
            bucket: "backups".into(),
            access_key: Secret::new("a"),
            secret_key: None,
            secret_key_file: None,
            region: None,
        }
    }

    #[test]
    fn file_entries_resolve_to_keys_in_the_bucket() {
        let s3 = s3();
        assert_eq!(s3.key_of("sales/1.bak").unwrap(), "sales/1.bak");
        assert_eq!(
            s3.key_of("s3://object.storage.eu01.onstackit.cloud/backups/sales/1.bak")
                .unwrap(),
            "sales/1.bak"
        );
        assert_eq!(
            s3.key_of("s3://backups/sales/1.bak").unwrap(),
            "sales/1.bak"
        );
        assert!(matches!(
            s3.key_of("s3://other-bucket/x.bak"),
            Err(KeyError::Outside { .. })
        ));
        assert_eq!(
            s3.key_of("s3://object.storage.eu01.onstackit.cloud/other/x.bak"),
            Err(KeyError::OtherBucket {
                named: "other".into(),
                bucket: "backups".into()
            })
        );
        assert_eq!(
            s3.key_of("https://x/y.bak"),
            Err(KeyError::Scheme("https".into()))
        );
        assert_eq!(s3.key_of("/abs.bak"), Err(KeyError::LeadingSlash));
    }
}
