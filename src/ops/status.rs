//! `status`: per database, what the state folder says this tool did and
//! what the instance says now. Read-only: one status round per instance and
//! import path, nothing else.

use super::{Selected, TargetsError};
use crate::db_key::DbKey;
use crate::import_path::Method;
use crate::import_path::Presence;
use crate::journal::{Prior, State};
use crate::manifest::Env;
use crate::plan::Context;
use serde::Serialize;

/// What the state folder says about a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recorded {
    /// Nothing: no run of this state touched it.
    Nothing,
    Imported,
    /// Submitted (or about to be), outcome not recorded yet.
    Submitted,
    Failed,
    TimedOut,
    /// Dropped for `on_exists: replace`, not imported again yet.
    Dropped,
    /// Only passed over (already there, not ready).
    Skipped,
}

impl Recorded {
    fn of(prior: Option<Prior>) -> Self {
        match prior {
            None => Recorded::Nothing,
            Some(Prior::Online) => Recorded::Imported,
            Some(Prior::Submitting | Prior::Submitted) => Recorded::Submitted,
            Some(Prior::Failed) => Recorded::Failed,
            Some(Prior::TimedOut) => Recorded::TimedOut,
            Some(Prior::Dropped) => Recorded::Dropped,
            Some(Prior::Skipped) => Recorded::Skipped,
        }
    }
}

/// What the instance says now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "now")]
pub enum Now {
    /// Online, and this state imported it.
    Online,
    /// Online, but not imported by this state.
    OnlineNotOurs,
    Restoring {
        percent: Option<u32>,
    },
    Missing,
    /// Present in another state (offline, suspect).
    OtherState,
    /// The instance could not be asked.
    Unknown {
        error: String,
    },
}

/// What the state says of the checks after the last import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "checks")]
pub enum ChecksSaid {
    /// Not imported by this state: nothing to say.
    None,
    /// Every check ran; `warnings` are the codes of what they warned of.
    Passed { warnings: Vec<String> },
    /// Every check ran and these refused.
    Failed { codes: Vec<String> },
    /// Imported, and not every check ran: the next `apply` runs the rest.
    Unfinished,
}

impl ChecksSaid {
    fn of(state: &State, key: &DbKey, recorded: Recorded) -> Self {
        if recorded != Recorded::Imported {
            return ChecksSaid::None;
        }
        if !state.verified.contains(key) {
            return ChecksSaid::Unfinished;
        }
        let findings = state
            .checked
            .get(key)
            .into_iter()
            .flatten()
            .flat_map(|c| &c.findings);
        let codes = |severity| {
            let mut codes: Vec<String> = findings
                .clone()
                .filter(|f| f.severity == severity)
                .map(|f| f.code.code().to_owned())
                .collect();
            codes.sort();
            codes.dedup();
            codes
        };
        let refused = codes(crate::rules::Severity::Refuse);
        if refused.is_empty() {
            ChecksSaid::Passed {
                warnings: codes(crate::rules::Severity::Warn),
            }
        } else {
            ChecksSaid::Failed { codes: refused }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub database: String,
    pub instance: String,
    pub method: Method,
    pub recorded: Recorded,
    #[serde(flatten)]
    pub now: Now,
    #[serde(flatten)]
    pub checks: ChecksSaid,
}

/// The status of the selected databases.
pub async fn status(
    selected: Selected,
    env: Env<'_>,
    state: &State,
) -> Result<Vec<StatusRow>, TargetsError> {
    let Selected { loaded, indexes } = selected;
    let ctx = Context::new(loaded, &indexes, env)?;
    let m = &ctx.loaded.valid;
    let inventories = ctx.inventories(&indexes).await;
    Ok(indexes
        .iter()
        .map(|&i| {
            let db = &m.databases[i];
            let lane = ctx.lane_of(db);
            let key = DbKey::new(&db.instance, &db.name);
            let prior = state.prior.get(&key).copied();
            let recorded = Recorded::of(prior);
            let checks = ChecksSaid::of(state, &key, recorded);
            let now = match &inventories[&lane] {
                Err(e) => Now::Unknown {
                    error: crate::redact::scrub(&e.to_string()),
                },
                Ok(inventory) => match inventory.presence(&db.name) {
                    Presence::Online if recorded == Recorded::Imported => Now::Online,
                    Presence::Online => Now::OnlineNotOurs,
                    Presence::Restoring(percent) => Now::Restoring { percent },
                    Presence::Other => Now::OtherState,
                    Presence::Absent | Presence::Unknown => Now::Missing,
                },
            };
            StatusRow {
                database: db.name.clone(),
                instance: db.instance.clone(),
                method: db.route.method(),
                recorded,
                now,
                checks,
            }
        })
        .collect())
}
