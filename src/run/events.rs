//! The one event stream of a run. The engine emits typed events; the
//! journal, the progress display, the NDJSON output and the report are
//! consumers of it, so none of them reaches into the scheduler.

use crate::journal::{Journal, JournalError};
use crate::manifest::model::Method;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::SystemTime;

/// Why a database was not run: decided by the plan, carried as a type so
/// that no consumer has to read it from the reason's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// `on_exists: skip` and the database is there.
    #[default]
    AlreadyThere,
    /// The journal says an earlier run imported it.
    ImportedEarlier,
    /// A prerequisite is not met.
    NotReady,
}

/// The events of a run. The journal stores them (and reads them back on
/// resume) in this one shape: a renamed variant must keep its old name as
/// a serde alias, or an older journal would stop resuming (a test reads a
/// journal line as the first format wrote it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Planned {
        database: String,
        instance: String,
        #[serde(default)]
        method: Method,
        #[serde(default)]
        files: usize,
        #[serde(default)]
        size: u64,
    },
    Skipped {
        database: String,
        instance: String,
        /// Journals written before this field existed read as `already_there`;
        /// they were only read for the event name.
        #[serde(default)]
        why: Skip,
        #[serde(default)]
        reason: String,
    },
    /// About to send the import: written before the request goes out, so a
    /// crash in between is an unknown outcome, never a forgotten import.
    Submitting {
        database: String,
        instance: String,
        #[serde(default)]
        attempt: u32,
    },
    Submitted {
        database: String,
        instance: String,
        #[serde(default)]
        attempt: u32,
    },
    Attached {
        database: String,
        instance: String,
    },
    Retried {
        database: String,
        instance: String,
        #[serde(default)]
        attempt: u32,
        #[serde(default)]
        reason: String,
        #[serde(default)]
        delay_ms: u64,
    },
    Progress {
        database: String,
        instance: String,
        #[serde(default)]
        percent: Option<u32>,
    },
    Online {
        database: String,
        instance: String,
        #[serde(default)]
        seconds: f64,
    },
    Failed {
        database: String,
        instance: String,
        #[serde(default)]
        reason: String,
    },
    TimedOut {
        database: String,
        instance: String,
        #[serde(default)]
        after_seconds: f64,
    },
    /// Not started: Ctrl-C came first.
    Interrupted {
        database: String,
        instance: String,
    },
}

impl Event {
    pub fn database(&self) -> (&str, &str) {
        match self {
            Event::Planned {
                database, instance, ..
            }
            | Event::Skipped {
                database, instance, ..
            }
            | Event::Submitting {
                database, instance, ..
            }
            | Event::Submitted {
                database, instance, ..
            }
            | Event::Attached { database, instance }
            | Event::Retried {
                database, instance, ..
            }
            | Event::Progress {
                database, instance, ..
            }
            | Event::Online {
                database, instance, ..
            }
            | Event::Failed {
                database, instance, ..
            }
            | Event::TimedOut {
                database, instance, ..
            }
            | Event::Interrupted { database, instance } => (database, instance),
        }
    }
}

/// An event with the time it happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stamped {
    #[serde(default)]
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
}

pub type Consumer = Box<dyn Fn(&Stamped) + Send + Sync>;

pub struct Events {
    journal: Option<Journal>,
    consumers: Vec<Consumer>,
    journal_error: Mutex<Option<JournalError>>,
}

impl Events {
    pub fn new(journal: Option<Journal>, consumers: Vec<Consumer>) -> Self {
        Events {
            journal,
            consumers,
            journal_error: Mutex::new(None),
        }
    }

    /// Records the event in the journal (flushed) before anyone else sees it.
    pub fn emit(&self, mut event: Event) {
        // The last guard before the journal, the display and the reports.
        if let Event::Skipped { reason, .. }
        | Event::Retried { reason, .. }
        | Event::Failed { reason, .. } = &mut event
        {
            *reason = crate::redact::scrub(reason);
        }
        let stamped = Stamped {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event,
        };
        if let Some(journal) = &self.journal
            && !matches!(stamped.event, Event::Planned { .. })
            && let Err(e) = journal.write(&serde_json::to_value(&stamped).expect("JSON"))
        {
            tracing::error!("{e}");
            self.journal_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e);
        }
        for consumer in &self.consumers {
            consumer(&stamped);
        }
    }

    /// The first journal write that failed, if any.
    pub fn journal_error(&self) -> Option<String> {
        self.journal_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(ToString::to_string)
    }
}
