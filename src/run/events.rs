//! The one event stream of a run. The engine emits typed events; the
//! journal, the progress display, the NDJSON output and the report are
//! consumers of it, so none of them reaches into the scheduler.

use crate::import_path::Method;
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

/// Why an import failed, decided where it happened: a code for programs
/// (the report, JUnit, the journal) and the specifics for people, worded
/// here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code")]
pub enum Failure {
    /// The service said no (a 4xx other than "exists").
    #[serde(rename = "R001")]
    Refused { by: String, why: String },
    /// The first attempt found the database there already.
    #[serde(rename = "R002")]
    Exists { by: String, why: String },
    /// An attempt went unanswered and the service cannot say whether it
    /// started: never submitted again.
    #[serde(rename = "R003")]
    OutcomeUnknown {
        by: String,
        cause: String,
        lookup: String,
    },
    /// Every attempt failed in a way that is safe to retry, and the retries
    /// ran out.
    #[serde(rename = "R004")]
    GaveUp { attempts: u32, cause: String },
    /// The restore ended with the database in another state than ONLINE.
    #[serde(rename = "R005")]
    NotOnline { state: String },
    /// The restore ended without the database appearing at all.
    #[serde(rename = "R006")]
    Vanished { by: String },
    /// The run stopped following it (status polling ended first).
    #[serde(rename = "R007")]
    PollingStopped,
    /// `on_exists: replace`: the existing database could not be dropped;
    /// it is left as it was and nothing was imported.
    #[serde(rename = "R009")]
    DropFailed { by: String, why: String },
    /// Submitted, then its status could no longer be read for a reason that
    /// waiting does not mend (credentials rotated, permission withdrawn): it
    /// may still be running, and a later run attaches to it.
    #[serde(rename = "R008")]
    StatusUnreadable { by: String, cause: String },
}

impl Failure {
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Refused { .. } => "R001",
            Failure::Exists { .. } => "R002",
            Failure::OutcomeUnknown { .. } => "R003",
            Failure::GaveUp { .. } => "R004",
            Failure::NotOnline { .. } => "R005",
            Failure::Vanished { .. } => "R006",
            Failure::PollingStopped => "R007",
            Failure::StatusUnreadable { .. } => "R008",
            Failure::DropFailed { .. } => "R009",
        }
    }

    /// The texts that came from outside, for redaction.
    fn texts_mut(&mut self) -> Vec<&mut String> {
        match self {
            Failure::Refused { by, why }
            | Failure::Exists { by, why }
            | Failure::DropFailed { by, why } => vec![by, why],
            Failure::OutcomeUnknown { by, cause, lookup } => vec![by, cause, lookup],
            Failure::GaveUp { cause, .. } => vec![cause],
            Failure::NotOnline { state } => vec![state],
            Failure::Vanished { by } => vec![by],
            Failure::PollingStopped => vec![],
            Failure::StatusUnreadable { by, cause } => vec![by, cause],
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused { by, why } => write!(f, "{by} refused the import: {why}"),
            Failure::Exists { by, why } => write!(f, "{by}: {why}"),
            Failure::OutcomeUnknown { by, cause, lookup } => write!(
                f,
                "the import may or may not have started ({cause}), and {by} cannot tell \
                 ({lookup}); not submitting again"
            ),
            Failure::GaveUp { attempts, cause } => {
                write!(f, "gave up after {attempts} attempts: {cause}")
            }
            Failure::NotOnline { state } => write!(f, "the database is {state} after the restore"),
            Failure::Vanished { by } => write!(
                f,
                "the restore ended on {by} without the database coming online; the service \
                 gives no reason here (check the instance's logs)"
            ),
            Failure::PollingStopped => f.write_str("status polling stopped"),
            Failure::DropFailed { by, why } => write!(
                f,
                "could not drop the existing database on {by} ({why}); it is left as it was \
                 and nothing was imported"
            ),
            Failure::StatusUnreadable { by, cause } => write!(
                f,
                "submitted, but {by} no longer tells its status ({cause}); the import may still \
                 be running: mend the cause, then run apply again to follow it (it is not \
                 submitted twice)"
            ),
        }
    }
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
    /// `on_exists: replace`: about to drop the existing database.
    Dropping {
        database: String,
        instance: String,
    },
    /// The existing database is gone; the import follows.
    Dropped {
        database: String,
        instance: String,
    },
    /// About to send the import: written before the request goes out, so a
    /// crash in between is an unknown outcome, never a forgotten import.
    Submitting {
        database: String,
        instance: String,
        #[serde(default)]
        attempt: u32,
        /// The object keys of the import, in stripe order: what the state
        /// remembers it imported from.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<String>,
        /// The import path and the owner asked for (None: the path's
        /// default), for the record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<Method>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
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
        /// Journals written before this field existed have only the reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<Failure>,
        /// The failure in words (filled in by [`Events::emit`]).
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
    /// The checks after the import start (those not done by an earlier run).
    Verifying {
        database: String,
        instance: String,
        #[serde(default)]
        checks: Vec<crate::verify::Check>,
    },
    /// One check ended, with what it found: a resumed run does not run it
    /// again.
    Checked {
        database: String,
        instance: String,
        check: crate::verify::Check,
        #[serde(default)]
        findings: Vec<crate::rules::Finding>,
    },
    /// The checks ended. `findings` holds every check's, those of an earlier
    /// run included; `failed` when one of them refuses.
    Verified {
        database: String,
        instance: String,
        #[serde(default)]
        findings: Vec<crate::rules::Finding>,
        #[serde(default)]
        failed: bool,
    },
}

impl Event {
    pub fn failed(database: String, instance: String, failure: Failure) -> Self {
        Event::Failed {
            database,
            instance,
            reason: failure.to_string(),
            failure: Some(failure),
        }
    }

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
            | Event::Dropping { database, instance }
            | Event::Dropped { database, instance }
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
            | Event::Verifying {
                database, instance, ..
            }
            | Event::Checked {
                database, instance, ..
            }
            | Event::Verified {
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

/// Where events are kept before anyone else sees them (the journal of the
/// state folder), flushed, so a run killed right after loses nothing.
pub trait Record: Send + Sync {
    /// Keeps one event; an error says why it could not be kept.
    fn keep(&self, event: &Stamped) -> Result<(), RecordError>;
    /// Marks a run's start, or its end when it went to its end.
    fn mark_run(&self, finished: bool) -> Result<(), RecordError>;
}

/// Why a [`Record`] could not keep an event: its own error type.
pub type RecordError = Box<dyn std::error::Error + Send + Sync>;

pub struct Events {
    journal: Option<Box<dyn Record>>,
    consumers: Vec<Consumer>,
    journal_error: Mutex<Option<String>>,
}

impl Events {
    pub fn new(journal: Option<Box<dyn Record>>, consumers: Vec<Consumer>) -> Self {
        Events {
            journal,
            consumers,
            journal_error: Mutex::new(None),
        }
    }

    /// Records the event in the journal (flushed) before anyone else sees it.
    pub fn emit(&self, mut event: Event) {
        // The last guard before the journal, the display and the reports.
        if let Event::Failed {
            failure: Some(failure),
            reason,
            ..
        } = &mut event
        {
            for text in failure.texts_mut() {
                *text = crate::redact::scrub(text);
            }
            *reason = failure.to_string();
        }
        if let Event::Checked { findings, .. } | Event::Verified { findings, .. } = &mut event {
            for finding in findings {
                finding.message = crate::redact::scrub(&finding.message);
            }
        }
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
            && let Err(e) = journal.keep(&stamped)
        {
            tracing::error!("{e}");
            self.journal_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e.to_string());
        }
        for consumer in &self.consumers {
            consumer(&stamped);
        }
    }

    /// Writes a run's start or end to the journal (see [`Record`]).
    pub fn mark_run(&self, finished: bool) {
        let Some(journal) = &self.journal else {
            return;
        };
        if let Err(e) = journal.mark_run(finished) {
            tracing::error!("{e}");
            self.journal_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e.to_string());
        }
    }

    /// The first journal write that failed, if any.
    pub fn journal_error(&self) -> Option<String> {
        self.journal_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_failure() -> Vec<Failure> {
        let s = |t: &str| t.to_owned();
        vec![
            Failure::Refused {
                by: s("api"),
                why: s("400"),
            },
            Failure::Exists {
                by: s("api"),
                why: s("409"),
            },
            Failure::OutcomeUnknown {
                by: s("api"),
                cause: s("reset"),
                lookup: s("503"),
            },
            Failure::GaveUp {
                attempts: 5,
                cause: s("429"),
            },
            Failure::NotOnline {
                state: s("SUSPECT"),
            },
            Failure::Vanished { by: s("sql") },
            Failure::PollingStopped,
            Failure::StatusUnreadable {
                by: s("api"),
                cause: s("401"),
            },
            Failure::DropFailed {
                by: s("sql"),
                why: s("3702"),
            },
        ]
    }

    #[test]
    fn failures_have_distinct_codes_and_read_back_from_the_journal() {
        let all = every_failure();
        let mut codes: Vec<&str> = all.iter().map(Failure::code).collect();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for failure in all {
            let event = Event::failed("d".into(), "i".into(), failure.clone());
            let line = serde_json::to_value(&event).unwrap();
            assert_eq!(line["failure"]["code"], failure.code());
            assert_eq!(line["reason"], failure.to_string());
            match serde_json::from_value::<Event>(line).unwrap() {
                Event::Failed {
                    failure: Some(back),
                    ..
                } => assert_eq!(back, failure),
                other => panic!("{other:?}"),
            }
        }
        // A line from before failures were typed keeps its words.
        let old = r#"{"event":"failed","database":"d","instance":"i","reason":"x"}"#;
        match serde_json::from_str::<Event>(old).unwrap() {
            Event::Failed {
                failure: None,
                reason,
                ..
            } => assert_eq!(reason, "x"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failure_is_redacted_in_its_fields_and_its_words() {
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&seen);
        let events = Events::new(
            None,
            vec![Box::new(move |e: &Stamped| {
                sink.lock().unwrap().push(serde_json::to_string(e).unwrap())
            })],
        );
        let why =
            "denied at https://s3.example/b/a.bak?X-Amz-Signature=0123456789abcdef0123456789abcdef";
        events.emit(Event::failed(
            "d".into(),
            "i".into(),
            Failure::Refused {
                by: "api".into(),
                why: why.into(),
            },
        ));
        let line = seen.lock().unwrap()[0].clone();
        assert!(
            line.contains("R001") && line.contains("https://s3.example/b/a.bak"),
            "{line}"
        );
        assert!(
            !line.contains("X-Amz-Signature") && !line.contains("0123456789abcdef"),
            "{line}"
        );
    }
}
