//! What the REST API path takes from the manifest: the instance's `api`
//! section and ids, what the path requires of them, and the access it
//! builds from them.

use super::super::Unmet;
use crate::environment::Env;
use crate::secret::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variables that stand in for `api.token` / the key path.
pub const TOKEN_ENV: &str = "STACKIT_SERVICE_ACCOUNT_TOKEN";
pub const KEY_PATH_ENV: &str = "STACKIT_SERVICE_ACCOUNT_KEY_PATH";

/// The instance's ids as the manifest gives them (top-level keys of the
/// instance, in every API path).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ids<'a> {
    pub project_id: Option<&'a str>,
    pub region: Option<&'a str>,
    pub instance_id: Option<&'a str>,
}

impl<'a> Ids<'a> {
    /// Each id with its manifest key.
    pub fn named(self) -> [(&'static str, Option<&'a str>); 3] {
        [
            ("project_id", self.project_id),
            ("region", self.region),
            ("instance_id", self.instance_id),
        ]
    }
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

/// The API access of an instance, when its ids and a token source are
/// there: for `api` imports (`required`) always; otherwise only with an
/// `api` section (the plan then asks the API what T-SQL cannot see).
pub fn access(
    ids: Ids,
    api: Option<&Api>,
    dir: &Path,
    env: Env,
    required: bool,
) -> Option<ApiAccess> {
    if !required && api.is_none() {
        return None;
    }
    let field = |value: Option<&str>| value.filter(|v| !v.is_empty()).map(str::to_owned);
    let version = api.and_then(|a| a.api_version).unwrap_or_default();
    let region = field(ids.region)?;
    Some(ApiAccess {
        project_id: field(ids.project_id)?,
        instance_id: field(ids.instance_id)?,
        endpoint: api
            .and_then(|a| a.endpoint.clone())
            .unwrap_or_else(|| version.default_endpoint(&region)),
        region,
        version,
        auth: auth(api, dir, env)?,
    })
}

/// The first token source there is: the manifest's token (its file was
/// read by the checks), its key file, then the environment's key file and
/// token.
fn auth(api: Option<&Api>, dir: &Path, env: Env) -> Option<ApiAuth> {
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

/// What an instance used with `method: api` lacks: its ids, and a token
/// source (unless a token file was named but could not be read, which has
/// its own diagnostic).
pub fn unmet(ids: Ids, api: Option<&Api>, env: Env) -> Vec<Unmet> {
    let mut unmet = Vec::new();
    let missing: Vec<String> = ids
        .named()
        .into_iter()
        .filter(|(_, v)| v.is_none_or(str::is_empty))
        .map(|(k, _)| format!("`{k}`"))
        .collect();
    if !missing.is_empty() {
        unmet.push(Unmet {
            what: missing.join(", "),
            hint: None,
        });
    }
    let has_source = api.is_some_and(|a| a.token.is_some() || a.service_account_key_path.is_some())
        || [TOKEN_ENV, KEY_PATH_ENV]
            .iter()
            .any(|v| env(v).is_some_and(|x| !x.is_empty()));
    let source_broken = api.is_some_and(|a| a.token_file.is_some() && a.token.is_none());
    if !has_source && !source_broken {
        unmet.push(Unmet {
            what: "token source".into(),
            hint: Some(format!(
                "set `api.token`, `api.token_file` or `api.service_account_key_path`, \
                 or the environment variable {TOKEN_ENV} or {KEY_PATH_ENV}"
            )),
        });
    }
    unmet
}

/// An id that could steer an API path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadId {
    #[error("`{key}` is longer than 64 characters")]
    TooLong { key: String },
    #[error(
        "`{key}` `{shown}` contains `{character}`; {} are letters, digits, `-` and `_` only \
         (project and instance ids are UUIDs, regions look like `eu01`)",
        if key == "region" { "regions" } else { "ids" }
    )]
    Character {
        key: String,
        shown: String,
        character: String,
    },
}

/// Ids become path segments of API URLs, where `/`, `..`, `?` or `%` would
/// steer the request (with the bearer token) elsewhere. STACKIT documents
/// project and instance ids as UUIDs and regions as names like `eu01`; the
/// check admits what cannot steer a path: ASCII letters, digits, `-` and
/// `_`, at most 64 (regions: lower case).
pub fn check_id(key: &str, value: &str) -> Result<(), BadId> {
    let allowed = |c: char| {
        c.is_ascii_digit()
            || c == '-'
            || c == '_'
            || if key == "region" {
                c.is_ascii_lowercase()
            } else {
                c.is_ascii_alphabetic()
            }
    };
    if value.len() > 64 {
        return Err(BadId::TooLong { key: key.into() });
    }
    match value.chars().find(|c| !allowed(*c)) {
        None => Ok(()),
        Some(c) => Err(BadId::Character {
            key: key.into(),
            shown: crate::redact::terminal(value).into_owned(),
            character: c.escape_default().to_string(),
        }),
    }
}
