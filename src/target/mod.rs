//! Where imports go: one trait with two implementations, STACKIT's REST API
//! and the stored procedure over TDS. The scheduler only sees the trait.

pub mod api;
pub mod sql;

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

/// What an instance holds, by lower-cased name (SQL Server ignores case).
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Restores running, with their percent when the path reports one.
    pub restoring: HashMap<String, Option<u32>>,
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
        if let Some(p) = self.restoring.get(&key) {
            return Presence::Restoring(*p);
        }
        if self.other.contains_key(&key) {
            return Presence::Other;
        }
        match &self.online {
            Some(online) if online.contains(&key) => Presence::Online,
            Some(_) => Presence::Absent,
            None => Presence::Unknown,
        }
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

pub trait Target: Send + Sync {
    /// "instance prod (API)", for messages.
    fn label(&self) -> &str;
    /// Running restores and, when `with_online`, the databases that exist:
    /// one status round, whatever the number of databases.
    fn inventory(&self, with_online: bool) -> BoxFuture<'_, Result<Inventory, String>>;
    /// Starts one import. Never retried inside: the caller must look
    /// whether an unknown outcome happened before it submits again.
    fn submit<'a>(&'a self, import: &'a Import) -> BoxFuture<'a, Result<(), SubmitError>>;
    /// Least time between two status rounds, so polling stays cheap.
    fn min_poll_gap(&self) -> Duration;
}
