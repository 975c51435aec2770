//! What the stored-procedure path takes from the manifest: the instance's
//! `sql` section, what the path requires of it, and the access it builds.

use super::super::Unmet;
use crate::secret::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

#[derive(Debug, Clone)]
pub struct SqlAccess {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub encrypt: Encrypt,
    pub trust_server_certificate: bool,
    /// CA certificates (PEM) trusted besides the system's.
    pub ca_bundle: Option<Vec<u8>>,
}

/// The SQL access of an instance, when its host, login and password are there.
pub fn access(sql: &Sql) -> Option<SqlAccess> {
    Some(SqlAccess {
        host: sql.host.clone().filter(|h| !h.is_empty())?,
        port: sql.port,
        user: sql.user.clone().filter(|u| !u.is_empty())?,
        password: sql.password.clone()?,
        encrypt: sql.encrypt,
        trust_server_certificate: sql.trust_server_certificate,
        ca_bundle: sql.ca_bundle.clone(),
    })
}

/// What an instance used with `method: sql` lacks of its `sql` section
/// (a password file named but unreadable has its own diagnostic).
pub fn unmet(sql: Option<&Sql>) -> Vec<Unmet> {
    let mut missing = Vec::new();
    if sql
        .and_then(|s| s.host.as_deref())
        .is_none_or(str::is_empty)
    {
        missing.push("`sql.host`");
    }
    if sql
        .and_then(|s| s.user.as_deref())
        .is_none_or(str::is_empty)
    {
        missing.push("`sql.user`");
    }
    let password_file_broken =
        sql.is_some_and(|s| s.password_file.is_some() && s.password.is_none());
    if sql.and_then(|s| s.password.as_ref()).is_none() && !password_file_broken {
        missing.push("`sql.password` or `sql.password_file`");
    }
    if missing.is_empty() {
        return Vec::new();
    }
    vec![Unmet {
        what: missing.join(", "),
        hint: None,
    }]
}

/// A setting that lets the secrets on the connection be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// The key under `sql` that does it.
    pub key: &'static str,
    pub what: String,
    pub hint: &'static str,
}

impl Sql {
    /// What `encrypt: false` or `trust_server_certificate: true` exposes
    /// toward a host off loopback: the SQL password, and the S3 secret key
    /// (a parameter of the procedure).
    pub fn exposure(&self) -> Option<Exposure> {
        let host = self.host.as_deref().unwrap_or_default();
        if host.is_empty() || crate::endpoint::is_loopback_host(host) {
            return None;
        }
        if !self.encrypt.is_on() {
            return Some(Exposure {
                key: "encrypt",
                what: format!(
                    "`encrypt: false` toward {host}: the SQL password and the S3 secret key \
                     (a procedure parameter) travel in clear text"
                ),
                hint: "remove `encrypt: false`; Flex instances speak TLS",
            });
        }
        self.trust_server_certificate.then(|| Exposure {
            key: "trust_server_certificate",
            what: format!(
                "`trust_server_certificate: true` toward {host}: anyone in the path can pose \
                 as the server and read the SQL password and the S3 secret key"
            ),
            hint: "remove it and let the certificate be verified",
        })
    }
}

/// Whether the procedure cannot take this object key: it takes every file
/// in one comma-separated `@s3_url` (rule M001).
pub fn refuses_key(key: &str) -> bool {
    key.contains(',')
}
