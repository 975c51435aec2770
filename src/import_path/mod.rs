//! Where imports go: one trait with two implementations, STACKIT's REST API
//! and the stored procedure over TDS. The scheduler only sees the trait.
//! Each path's module also owns its manifest section, what it requires of
//! an instance and the access it builds (`section`); [`route`] is the one
//! place that names every path.

pub mod api;
pub mod route;
pub mod sql;

pub use route::{Access, Method, Offered, Route, Unmet};

use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// One import, as both paths take it.
#[derive(Debug, Clone)]
pub struct Import {
    pub database: String,
    pub owner: Option<String>,
    /// `s3://host/bucket/key` of every stripe, in stripe order.
    pub files: Vec<String>,
    /// `s3://host/bucket/`.
    pub bucket_uri: String,
    pub access_key: crate::secret::Secret,
    pub secret_key: crate::secret::Secret,
}

/// What a status round asks for. The SQL path answers everything with one
/// query whatever is asked; the API path needs a request per part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Running restores only (`restore-jobs`).
    Running,
    /// Existing databases only (the database list).
    Online,
    Both,
}

/// What an instance holds, by lower-cased name (SQL Server ignores case).
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Restores running, with their percent when the path reports one;
    /// None when not asked for.
    pub restoring: Option<HashMap<String, Option<u32>>>,
    /// Databases that exist and are online; None when not asked for.
    pub online: Option<HashSet<String>>,
    /// Databases in another state (SUSPECT, OFFLINE, ...), with that state.
    pub other: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Online,
    Restoring(Option<u32>),
    Other,
    Absent,
    /// The inventory did not include online databases.
    Unknown,
}

impl Inventory {
    pub fn presence(&self, database: &str) -> Presence {
        let key = database.to_lowercase();
        if let Some(p) = self.restoring.as_ref().and_then(|r| r.get(&key)) {
            return Presence::Restoring(*p);
        }
        if self.other.contains_key(&key) {
            return Presence::Other;
        }
        match (&self.online, &self.restoring) {
            // Online only when listed *and* known not to be restoring: a
            // service may list a database while its restore still runs.
            (Some(online), Some(_)) if online.contains(&key) => Presence::Online,
            // Absent only when both lists were looked at.
            (Some(_), Some(_)) => Presence::Absent,
            _ => Presence::Unknown,
        }
    }

    /// Adds what another round of the same instant saw.
    pub fn merge(&mut self, other: Inventory) {
        if other.restoring.is_some() {
            self.restoring = other.restoring;
        }
        if other.online.is_some() {
            self.online = other.online;
        }
        self.other.extend(other.other);
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The service said no; the import did not start.
    #[error("{0}")]
    Refused(String),
    /// The target database exists or is being restored.
    #[error("{0}")]
    Exists(String),
    /// The request may or may not have been carried out (a reset, a timeout,
    /// a 5xx or 429 after sending): look before submitting again.
    #[error("{message}")]
    Unknown {
        message: String,
        retry_after: Option<Duration>,
    },
}

/// Why a status request (a round, the instance's facts) failed, and
/// whether asking again later can help. Both texts are redacted already.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// May pass: the instance could not be reached, or kept answering 5xx
    /// or 429, through every retry; a later round may get through.
    #[error("{0}")]
    Transient(String),
    /// Will not pass by asking again: the credentials or the permission were
    /// refused, TLS fails, or the answer breaks the contract.
    #[error("{0}")]
    Lasting(String),
}

/// A status request's result as one attempt of [`crate::retry::retry`]:
/// a failure that may pass is tried again, a lasting one is not.
pub fn attempt<T>(result: Result<T, StatusError>) -> crate::retry::Attempt<T, StatusError> {
    match result {
        Ok(value) => crate::retry::Attempt::Done(value),
        Err(lasting @ StatusError::Lasting(_)) => crate::retry::Attempt::Fail(lasting),
        Err(StatusError::Transient(why)) => crate::retry::Attempt::Again {
            why,
            retry_after: None,
        },
    }
}

impl StatusError {
    /// What a status request that kept failing in a way that may pass
    /// comes to after its last attempt (the `exhausted` of
    /// [`crate::retry::retry`]).
    pub fn exhausted(why: String, attempts: u32) -> Self {
        StatusError::Transient(format!("{why} (after {attempts} attempts)"))
    }

    /// The same kind of error with its text changed (context added, say).
    pub fn map_text(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            StatusError::Transient(m) => StatusError::Transient(f(m)),
            StatusError::Lasting(m) => StatusError::Lasting(f(m)),
        }
    }
}

/// What an instance says about itself, for the plan's instance rules. Each
/// part is None when the import path cannot see it.
#[derive(Debug, Clone, Default)]
pub struct InstanceFacts {
    /// What the API says of the instance.
    pub state: Option<InstanceState>,
    /// The SQL Server release, such as `2022`.
    pub version: Option<String>,
    /// `storage.size` in GB (API).
    pub storage_gb: Option<u64>,
    /// Logins by lower-cased name, and whether each is active.
    pub users: Option<HashMap<String, bool>>,
    /// The login that runs the import procedure (SQL).
    pub current_login: Option<String>,
    /// Whether that login may see every database in `sys.databases` (SQL:
    /// `VIEW ANY DATABASE`); without it, only its own, master and tempdb.
    pub sees_every_database: Option<bool>,
    /// The compatibility levels the instance offers (API `compatibility`).
    pub levels: Option<Vec<u16>>,
}

/// An instance's state as the API documents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    Ready,
    /// PENDING or PROGRESSING: a change is under way.
    Busy(String),
    /// FAILURE, UNKNOWN, TERMINATING, or a state the documents do not name.
    Unavailable(String),
}

impl InstanceState {
    /// From the API's word, whatever its case.
    pub fn parse(word: &str) -> Self {
        let upper = word.trim().to_ascii_uppercase();
        match upper.as_str() {
            "READY" => InstanceState::Ready,
            "PENDING" | "PROGRESSING" => InstanceState::Busy(upper),
            _ => InstanceState::Unavailable(crate::redact::terminal(&upper).into_owned()),
        }
    }
}

impl InstanceFacts {
    /// Fills in what the API tells and T-SQL cannot: the instance's state
    /// and storage, and its version when T-SQL gave none.
    pub fn complete_from(&mut self, api: &InstanceFacts) {
        self.state = api.state.clone();
        self.storage_gb = api.storage_gb;
        if api.levels.is_some() {
            self.levels = api.levels.clone();
        }
        if self.version.is_none() {
            self.version = api.version.clone();
        }
    }
}

pub trait ImportPath: Send + Sync {
    /// "instance prod (API)", for messages.
    fn label(&self) -> &str;
    /// Running restores and/or the databases that exist: one status round,
    /// whatever the number of databases.
    fn inventory(&self, want: Want) -> BoxFuture<'_, Result<Inventory, StatusError>>;
    /// Starts one import. Never retried inside: the caller must look
    /// whether an unknown outcome happened before it submits again.
    fn submit<'a>(&'a self, import: &'a Import) -> BoxFuture<'a, Result<(), SubmitError>>;
    /// Drops a database (`on_exists: replace`): done when it is gone, also
    /// when it was not there. Idempotent, so retried inside while the
    /// failure may pass; the error is final.
    fn drop_database<'a>(&'a self, database: &'a str) -> BoxFuture<'a, Result<(), StatusError>>;
    /// Least time between two status rounds, so polling stays cheap.
    fn min_poll_gap(&self) -> Duration;
    /// The instance's state, version, storage and users: one request set
    /// per instance, whatever the number of databases.
    fn facts(&self) -> BoxFuture<'_, Result<InstanceFacts, StatusError>>;
    /// The host and port it connects to, so a host that does not resolve
    /// is found once, before any retry.
    fn address(&self) -> Option<(String, u16)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_is_online_only_when_known_not_to_be_restoring() {
        let listed = Inventory {
            online: Some(["sales".to_owned()].into()),
            ..Inventory::default()
        };
        // The list alone cannot tell a finished restore from a running one.
        assert_eq!(listed.presence("Sales"), Presence::Unknown);
        let mut both = listed.clone();
        both.merge(Inventory {
            restoring: Some(HashMap::new()),
            ..Inventory::default()
        });
        assert_eq!(both.presence("Sales"), Presence::Online);
        assert_eq!(both.presence("hr"), Presence::Absent);
        let mut still = listed;
        still.merge(Inventory {
            restoring: Some([("sales".to_owned(), Some(40))].into()),
            ..Inventory::default()
        });
        assert_eq!(still.presence("sales"), Presence::Restoring(Some(40)));
    }
}
