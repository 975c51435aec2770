//! Which import path a database takes, and what each path needs of an
//! instance: the one place that knows every path by name. The manifest's
//! checks ask here what a method requires and get a [`Route`] back.

use super::api::section::{self as api_section, Api, ApiAccess, Ids};
use super::sql::section::{self as sql_section, Sql, SqlAccess};

use crate::environment::Env;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

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
    clap::ValueEnum,
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

    /// Whether the path cannot take this object key (rule M001).
    pub fn refuses_key(self, key: &str) -> bool {
        match self {
            Method::Api => false,
            Method::Sql => sql_section::refuses_key(key),
        }
    }

    /// Whether the path requires an owner for the database it imports.
    pub fn requires_owner(self) -> bool {
        match self {
            Method::Api => true,
            Method::Sql => false,
        }
    }

    /// What the path needs of an instance that the manifest does not give.
    pub fn unmet(self, offered: &Offered, env: Env) -> Vec<Unmet> {
        match self {
            Method::Api => api_section::unmet(offered.ids, offered.api, env),
            Method::Sql => sql_section::unmet(offered.sql),
        }
    }
}

/// How a database is imported: one variant per import path, holding what
/// that path needs and nothing it may lack.
#[derive(Debug, Clone)]
pub enum Route {
    /// STACKIT's REST API (`POST .../restores`), which requires an owner.
    Api {
        owner: String,
        access: Arc<ApiAccess>,
        /// The instance's SQL access when the manifest gives one: the
        /// checks after the import that need T-SQL use it.
        sql: Option<Arc<SqlAccess>>,
    },
    /// The stored procedure over TDS. No owner: the procedure's default,
    /// the login that runs it. `api` is the instance's API access when the
    /// manifest gives one: it tells the state and storage T-SQL cannot see.
    Sql {
        owner: Option<String>,
        access: Arc<SqlAccess>,
        api: Option<Arc<ApiAccess>>,
    },
}

impl Route {
    /// The database's route by its method, when the instance's access holds
    /// what that path needs (and the owner, where the path requires one).
    pub fn new(method: Method, owner: Option<String>, access: &Access) -> Option<Route> {
        match method {
            Method::Api => Some(Route::Api {
                owner: owner?,
                access: Arc::clone(access.api.as_ref()?),
                sql: access.sql.clone(),
            }),
            Method::Sql => Some(Route::Sql {
                owner,
                access: Arc::clone(access.sql.as_ref()?),
                api: access.api.clone(),
            }),
        }
    }

    pub fn method(&self) -> Method {
        match self {
            Route::Api { .. } => Method::Api,
            Route::Sql { .. } => Method::Sql,
        }
    }

    pub fn owner(&self) -> Option<&str> {
        match self {
            Route::Api { owner, .. } => Some(owner),
            Route::Sql { owner, .. } => owner.as_deref(),
        }
    }

    /// Whether the path cannot take this object key (rule M001).
    pub fn refuses_key(&self, key: &str) -> bool {
        self.method().refuses_key(key)
    }

    /// The instance's API access, whichever path imports.
    pub fn api(&self) -> Option<&Arc<ApiAccess>> {
        match self {
            Route::Api { access, .. } => Some(access),
            Route::Sql { api, .. } => api.as_ref(),
        }
    }

    /// The instance's SQL access, whatever the import path: the checks
    /// after the import that need T-SQL use it.
    pub fn sql(&self) -> Option<&Arc<SqlAccess>> {
        match self {
            Route::Api { sql, .. } => sql.as_ref(),
            Route::Sql { access, .. } => Some(access),
        }
    }
}

/// What the manifest gives one instance, as the import paths read it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offered<'a> {
    pub ids: Ids<'a>,
    pub api: Option<&'a Api>,
    pub sql: Option<&'a Sql>,
}

/// Something an import path needs that an instance does not give: the
/// fields, in words (`` `sql.host`, `sql.user` ``), and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub what: String,
    pub hint: Option<String>,
}

/// Each path's access to one instance, present when the instance's
/// section holds everything the path needs.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub api: Option<Arc<ApiAccess>>,
    pub sql: Option<Arc<SqlAccess>>,
}

impl Access {
    /// Built from what the instance offers. The API access is built for
    /// `api` imports (`uses` holds [`Method::Api`]) or when the instance has
    /// an `api` section: the plan then asks the API what T-SQL cannot see.
    pub fn of(offered: &Offered, uses: &[Method], dir: &Path, env: Env) -> Access {
        let api_required = uses.contains(&Method::Api);
        Access {
            api: api_section::access(offered.ids, offered.api, dir, env, api_required)
                .map(Arc::new),
            sql: offered.sql.and_then(sql_section::access).map(Arc::new),
        }
    }

    /// Whether the API's tokens come from a service-account key (the key
    /// flow), which sends a signed assertion to the token endpoint.
    pub fn key_flow(&self) -> bool {
        self.api
            .as_ref()
            .is_some_and(|a| matches!(a.auth, api_section::ApiAuth::KeyFile(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids<'static> {
        Ids {
            project_id: Some("p"),
            region: Some("eu01"),
            instance_id: Some("i"),
        }
    }

    #[test]
    fn each_path_names_what_an_instance_lacks() {
        let none = |_: &str| None;
        let bare = Offered::default();
        let api = Method::Api.unmet(&bare, &none);
        assert_eq!(api[0].what, "`project_id`, `region`, `instance_id`");
        assert_eq!(api[1].what, "token source");
        assert!(
            api[1]
                .hint
                .as_deref()
                .unwrap()
                .contains(api_section::TOKEN_ENV)
        );
        let token = |name: &str| (name == api_section::TOKEN_ENV).then(|| "t".to_owned());
        let with_ids = Offered {
            ids: ids(),
            ..Offered::default()
        };
        assert!(Method::Api.unmet(&with_ids, &token).is_empty());
        let sql = Method::Sql.unmet(&bare, &none);
        assert_eq!(
            sql[0].what,
            "`sql.host`, `sql.user`, `sql.password` or `sql.password_file`"
        );
    }

    #[test]
    fn a_route_is_built_only_with_what_its_path_needs() {
        let token = |name: &str| (name == api_section::TOKEN_ENV).then(|| "t".to_owned());
        let offered = Offered {
            ids: ids(),
            ..Offered::default()
        };
        let access = Access::of(&offered, &[Method::Api], Path::new("."), &token);
        assert!(!access.key_flow());
        let route = Route::new(Method::Api, Some("app".into()), &access).unwrap();
        assert_eq!((route.method(), route.owner()), (Method::Api, Some("app")));
        assert!(route.sql().is_none());
        // The API requires an owner; the procedure has no SQL access here.
        assert!(Route::new(Method::Api, None, &access).is_none());
        assert!(Route::new(Method::Sql, Some("app".into()), &access).is_none());
        // An instance only used by `sql` gets API access from its section alone.
        assert!(
            Access::of(&offered, &[Method::Sql], Path::new("."), &token)
                .api
                .is_none()
        );
    }

    #[test]
    fn the_key_flow_is_whatever_the_api_access_will_use() {
        let key = |name: &str| (name == api_section::KEY_PATH_ENV).then(|| "sa.json".to_owned());
        let section = Api::default();
        let offered = Offered {
            ids: ids(),
            api: Some(&section),
            ..Offered::default()
        };
        // An `api` section on an instance that imports by `sql`: the plan
        // still asks the API, so the key flow runs there too.
        assert!(Access::of(&offered, &[Method::Sql], Path::new("."), &key).key_flow());
        assert!(Method::Sql.refuses_key("a,b.bak") && !Method::Api.refuses_key("a,b.bak"));
    }
}
