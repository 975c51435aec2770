//! The manifest as typed data. The JSON Schema (`sqlflex-import schema`) is
//! generated from these types and is also what `validate` checks the
//! structure against, so the documentation, the schema and the checks cannot
//! drift apart.

use crate::import_path::api::section::{Api, Ids};
use crate::import_path::sql::section::Sql;
use crate::import_path::{Method, Offered};
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

impl Instance {
    /// What the instance gives the import paths.
    pub fn offered(&self) -> Offered<'_> {
        Offered {
            ids: Ids {
                project_id: self.project_id.as_deref(),
                region: self.region.as_deref(),
                instance_id: self.instance_id.as_deref(),
            },
            api: self.api.as_ref(),
            sql: self.sql.as_ref(),
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
