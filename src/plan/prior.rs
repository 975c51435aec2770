//! What earlier runs did to each database, as the planner needs it: the
//! state folder's journals are read into this (`journal::read_state`), and
//! `plan` decides by it (done, attach, lost, changed files, resume).

use crate::db_key::DbKey;
use std::collections::{HashMap, HashSet};

/// What an earlier run last did to a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// About to submit; the outcome was not recorded.
    Submitting,
    Submitted,
    Online,
    Failed,
    TimedOut,
    /// Only passed over (already there, not ready): nothing was done to it.
    Skipped,
    /// Dropped (or about to be) for `on_exists: replace`.
    Dropped,
}

impl Prior {
    /// Whether the earlier run may have started an import of it.
    pub fn may_have_started(self) -> bool {
        matches!(
            self,
            Prior::Submitting | Prior::Submitted | Prior::Online | Prior::TimedOut
        )
    }
}

/// (instance key, lower-cased database name) -> last state.
pub type PriorStates = HashMap<DbKey, Prior>;

/// What a state folder knows about its databases.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub prior: PriorStates,
    /// The object keys of the last import submitted, where recorded.
    pub files: HashMap<DbKey, Vec<String>>,
    /// When the last run of this manifest (and shard) did not finish
    /// (killed, interrupted): the databases it dropped or submitted. A rerun
    /// resumes that run and does not replace them again.
    pub resumed: Option<HashSet<DbKey>>,
    /// The checks after the last import that ended, with their findings.
    pub checked: HashMap<DbKey, Vec<crate::verify::Checked>>,
    /// Databases whose checks after the last import all ran.
    pub verified: HashSet<DbKey>,
}
