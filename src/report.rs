//! The end of a run: a per-database record built from the event stream, the
//! summary table, `--report FILE.json` and `--junit FILE.xml`.

use crate::manifest::model::Method;
use crate::run::events::{Consumer, Event, Skip, Stamped};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Waiting,
    Running,
    Online,
    /// There already (on_exists: skip), or imported by an earlier run.
    Skipped,
    NotReady,
    Failed,
    TimedOut,
    /// Ctrl-C came before it was submitted.
    NotStarted,
}

impl Outcome {
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Online | Outcome::Skipped)
    }

    fn word(self) -> &'static str {
        match self {
            Outcome::Waiting => "waiting",
            Outcome::Running => "running",
            Outcome::Online => "online",
            Outcome::Skipped => "skipped",
            Outcome::NotReady => "not ready",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::NotStarted => "not started",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub database: String,
    pub instance: String,
    pub method: Option<Method>,
    pub outcome: Outcome,
    pub attempts: u32,
    pub submitted_at: Option<String>,
    pub finished_at: Option<String>,
    pub seconds: Option<f64>,
    pub reason: Option<String>,
}

/// Builds the records from events, in the order databases first appear.
#[derive(Default)]
pub struct Collector {
    inner: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    list: Vec<Record>,
    /// (instance, lower-cased database) -> position in `list`.
    index: HashMap<crate::db_key::DbKey, usize>,
}

impl Collector {
    pub fn consumer(self: &Arc<Self>) -> Consumer {
        let me = Arc::clone(self);
        Box::new(move |e: &Stamped| me.take(e))
    }

    fn take(&self, stamped: &Stamped) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Records {
            list: records,
            index,
        } = &mut *guard;
        let (database, instance) = stamped.event.database();
        let key = crate::db_key::DbKey::new(instance, database);
        let at = *index.entry(key).or_insert_with(|| {
            records.push(Record {
                database: database.to_owned(),
                instance: instance.to_owned(),
                method: None,
                outcome: Outcome::Waiting,
                attempts: 0,
                submitted_at: None,
                finished_at: None,
                seconds: None,
                reason: None,
            });
            records.len() - 1
        });
        let r = &mut records[at];
        let finish = |r: &mut Record, outcome, reason: Option<String>| {
            r.outcome = outcome;
            r.reason = reason;
            r.finished_at = Some(stamped.time.clone());
        };
        match &stamped.event {
            Event::Planned { method, .. } => r.method = Some(*method),
            Event::Skipped { why, reason, .. } => {
                let outcome = match why {
                    Skip::NotReady => Outcome::NotReady,
                    Skip::AlreadyThere | Skip::ImportedEarlier => Outcome::Skipped,
                };
                finish(r, outcome, Some(reason.clone()));
            }
            Event::Submitting { attempt, .. } => {
                r.attempts = *attempt;
                r.submitted_at.get_or_insert_with(|| stamped.time.clone());
                r.outcome = Outcome::Running;
            }
            Event::Submitted { .. } | Event::Attached { .. } => {
                r.submitted_at.get_or_insert_with(|| stamped.time.clone());
                r.outcome = Outcome::Running;
            }
            Event::Retried { .. } | Event::Progress { .. } => {}
            Event::Online { seconds, .. } => {
                r.seconds = Some(*seconds);
                finish(r, Outcome::Online, None);
            }
            Event::Failed { reason, .. } => finish(r, Outcome::Failed, Some(reason.clone())),
            Event::TimedOut { after_seconds, .. } => {
                let reason = format!(
                    "timed out after {}, still running on the server",
                    humantime::format_duration(std::time::Duration::from_secs(
                        *after_seconds as u64
                    ))
                );
                finish(r, Outcome::TimedOut, Some(reason));
            }
            Event::Interrupted { .. } => finish(
                r,
                Outcome::NotStarted,
                Some("interrupted before it was submitted".into()),
            ),
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .clone()
    }
}

pub fn summary_table(records: &[Record]) -> String {
    let header = [
        "DATABASE", "INSTANCE", "METHOD", "OUTCOME", "TIME", "ATTEMPTS", "REASON",
    ];
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.database.clone(),
                r.instance.clone(),
                r.method.map_or("-", Method::as_str).to_owned(),
                r.outcome.word().to_owned(),
                r.seconds.map_or_else(|| "-".into(), |s| format!("{s:.1}s")),
                if r.attempts == 0 {
                    "-".into()
                } else {
                    r.attempts.to_string()
                },
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = vec![crate::table::render(&header, &rows)];
    let count = |o: Outcome| records.iter().filter(|r| r.outcome == o).count();
    out.push(format!(
        "\n{} online, {} skipped, {} failed, {} timed out, {} not ready, {} not started",
        count(Outcome::Online),
        count(Outcome::Skipped),
        count(Outcome::Failed),
        count(Outcome::TimedOut),
        count(Outcome::NotReady),
        count(Outcome::NotStarted),
    ));
    out.join("\n")
}

pub fn json_report(
    manifest: &str,
    started: &str,
    finished: &str,
    records: &[Record],
) -> serde_json::Value {
    let count = |o: Outcome| records.iter().filter(|r| r.outcome == o).count();
    serde_json::json!({
        "manifest": manifest,
        "started": started,
        "finished": finished,
        "success": records.iter().all(|r| r.outcome.is_success()),
        "counts": {
            "online": count(Outcome::Online),
            "skipped": count(Outcome::Skipped),
            "failed": count(Outcome::Failed),
            "timed_out": count(Outcome::TimedOut),
            "not_ready": count(Outcome::NotReady),
            "not_started": count(Outcome::NotStarted),
        },
        "databases": records,
    })
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            c if c.is_control() && c != '\n' && c != '\t' => " ".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML: one test case per database, for CI dashboards.
pub fn junit(manifest: &str, records: &[Record]) -> String {
    let failures = records.iter().filter(|r| !r.outcome.is_success()).count();
    let skipped = records
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
        .count();
    let total: f64 = records.iter().filter_map(|r| r.seconds).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"sqlflex-import\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n",
        records.len()
    ));
    xml.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{total:.3}\">\n",
        xml_escape(manifest),
        records.len()
    ));
    for r in records {
        xml.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&r.instance),
            xml_escape(&r.database),
            r.seconds.unwrap_or(0.0)
        ));
        let reason = xml_escape(r.reason.as_deref().unwrap_or(""));
        match r.outcome {
            Outcome::Online => xml.push_str("/>\n"),
            Outcome::Skipped => xml.push_str(&format!(
                ">\n      <skipped message=\"{reason}\"/>\n    </testcase>\n"
            )),
            other => xml.push_str(&format!(
                ">\n      <failure message=\"{}: {reason}\" type=\"{}\"/>\n    </testcase>\n",
                other.word(),
                other.word().replace(' ', "_")
            )),
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}
