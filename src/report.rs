//! The end of a run: a per-database record built from the event stream, the
//! summary table, `--report FILE.json` and `--junit FILE.xml`.

use crate::import_path::Method;
use crate::run::events::{Consumer, Event, Failure, Skip, Stamped};
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
    /// Imported, and a check after the import failed.
    FailedVerification,
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
            Outcome::FailedVerification => "failed verification",
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
    /// The failure's code (R001-R009, or the V rule that failed the
    /// verification), for programs that sort failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// What the checks after the import found (V rules).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<crate::rules::Finding>,
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
                code: None,
                findings: Vec::new(),
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
            Event::Dropping { .. } | Event::Dropped { .. } => r.outcome = Outcome::Running,
            Event::Online { seconds, .. } => {
                r.seconds = Some(*seconds);
                finish(r, Outcome::Online, None);
            }
            Event::Failed {
                reason, failure, ..
            } => {
                r.code = failure.as_ref().map(Failure::code);
                finish(r, Outcome::Failed, Some(reason.clone()));
            }
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
            Event::Verifying { .. } | Event::Checked { .. } => {}
            Event::Verified {
                findings, failed, ..
            } => {
                r.findings = findings.clone();
                if *failed {
                    let refusals: Vec<String> = findings
                        .iter()
                        .filter(|f| f.refuses())
                        .map(ToString::to_string)
                        .collect();
                    r.code = findings.iter().find(|f| f.refuses()).map(|f| f.code.code());
                    finish(r, Outcome::FailedVerification, Some(refusals.join("; ")));
                } else if r.outcome == Outcome::Waiting {
                    // Imported by an earlier run that did not finish its checks.
                    finish(
                        r,
                        Outcome::Skipped,
                        Some("imported by an earlier run; checked now".into()),
                    );
                }
            }
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
        "\n{} online, {} skipped, {} failed, {} failed verification, {} timed out, {} not ready, \
         {} not started",
        count(Outcome::Online),
        count(Outcome::Skipped),
        count(Outcome::Failed),
        count(Outcome::FailedVerification),
        count(Outcome::TimedOut),
        count(Outcome::NotReady),
        count(Outcome::NotStarted),
    ));
    // What the checks after the import warn of, on databases that are
    // online: the failures' own findings are in their reasons below.
    let warnings: Vec<String> = records
        .iter()
        .filter(|r| r.outcome != Outcome::FailedVerification)
        .flat_map(|r| {
            r.findings
                .iter()
                .filter(|f| f.severity == crate::rules::Severity::Warn)
                .map(move |f| format!("  {}@{}: {f}", r.database, r.instance))
        })
        .collect();
    if !warnings.is_empty() {
        out.push(format!(
            "\nWarnings of the checks after the import ({}):",
            warnings.len()
        ));
        out.extend(warnings);
    }
    // Last, where the eye lands: what went wrong, each with its reason.
    let failures: Vec<&Record> = records
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Failed | Outcome::TimedOut | Outcome::FailedVerification
            )
        })
        .collect();
    if !failures.is_empty() {
        out.push(format!("\nFailures ({}):", failures.len()));
        for r in failures {
            out.push(format!(
                "  {}@{}: {}{}",
                r.database,
                r.instance,
                r.code.map(|c| format!("{c}: ")).unwrap_or_default(),
                r.reason.as_deref().unwrap_or("no reason given")
            ));
        }
    }
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
            "failed_verification": count(Outcome::FailedVerification),
            "timed_out": count(Outcome::TimedOut),
            "not_ready": count(Outcome::NotReady),
            "not_started": count(Outcome::NotStarted),
        },
        "databases": records,
    })
}

/// JUnit XML: one test case per database, for CI dashboards. Written by
/// quick-junit, the serializer nextest uses, so escaping is not ours to get
/// wrong.
pub fn junit(manifest: &str, records: &[Record]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    use std::time::Duration;
    let mut suite = TestSuite::new(manifest);
    for r in records {
        let reason = r.reason.as_deref().unwrap_or("");
        let status = match r.outcome {
            Outcome::Online => TestCaseStatus::success(),
            Outcome::Skipped => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(reason);
                status
            }
            other => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(format!("{}: {reason}", other.word()))
                    .set_type(r.code.unwrap_or(&other.word().replace(' ', "_")));
                status
            }
        };
        let mut case = TestCase::new(r.database.as_str(), status);
        case.set_classname(r.instance.as_str())
            .set_time(Duration::from_secs_f64(r.seconds.unwrap_or(0.0).max(0.0)));
        suite.add_test_case(case);
    }
    let total: f64 = records.iter().filter_map(|r| r.seconds).sum();
    suite.set_time(Duration::from_secs_f64(total.max(0.0)));
    let mut report = Report::new("sqlflex-import");
    report
        .set_time(Duration::from_secs_f64(total.max(0.0)))
        .add_test_suite(suite);
    report.to_string().expect("JUnit XML is written to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(database: &str, outcome: Outcome, reason: Option<&str>) -> Record {
        Record {
            database: database.into(),
            instance: "prod".into(),
            method: Some(Method::Api),
            outcome,
            attempts: 1,
            submitted_at: None,
            finished_at: None,
            seconds: Some(1.5),
            reason: reason.map(str::to_owned),
            code: None,
            findings: Vec::new(),
        }
    }

    #[test]
    fn the_summary_ends_with_the_failures_and_their_reasons() {
        let mut failed = record("b", Outcome::Failed, Some("the restore failed: error 3241"));
        failed.code = Some("R001");
        let records = [
            record("a", Outcome::Online, None),
            failed,
            record("c", Outcome::TimedOut, Some("timed out after 2h")),
            record("d", Outcome::Skipped, Some("already there")),
        ];
        let text = summary_table(&records);
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        assert_eq!(
            tail,
            [
                "  c@prod: timed out after 2h",
                "  b@prod: R001: the restore failed: error 3241",
                "Failures (2):"
            ],
            "{text}"
        );
        let clean = summary_table(&records[..1]);
        assert!(!clean.contains("Failures"), "{clean}");
        // A check's warning on an online database is listed before them.
        let mut warned = record("e", Outcome::Online, None);
        warned.findings = vec![crate::rules::Finding::new(
            crate::rules::Rule::OrphanedUsers,
            "orphaned users (their SID matches no login): legacy_user",
        )];
        let text = summary_table(&[warned, records[1].clone()]);
        let lines: Vec<&str> = text.lines().collect();
        let at = |s: &str| lines.iter().position(|l| l.contains(s)).unwrap();
        assert!(
            at("Warnings of the checks after the import (1):") < at("Failures (1):"),
            "{text}"
        );
        assert!(text.contains("  e@prod: V003: orphaned users"), "{text}");
    }

    #[test]
    fn junit_reads_back_with_every_outcome_and_hostile_text() {
        let mut failed = record(
            "b<&\"'>",
            Outcome::Failed,
            Some("refused: <x> & \u{1b}[31m\u{7}"),
        );
        failed.code = Some("R001");
        let records = [
            record("a", Outcome::Online, None),
            failed,
            record("c", Outcome::Skipped, Some("already there")),
            record("d", Outcome::TimedOut, Some("timed out after 2h")),
        ];
        let xml = junit("m & n.yaml", &records);
        let report = quick_junit::Report::deserialize_from_str(&xml).expect("well-formed JUnit");
        let suite = &report.test_suites[0];
        assert_eq!(suite.name.as_str(), "m & n.yaml");
        assert_eq!((suite.tests, suite.failures, suite.skipped), (4, 2, 1));
        let case = &suite.test_cases[1];
        assert_eq!(case.name.as_str(), "b<&\"'>");
        match &case.status {
            quick_junit::TestCaseStatus::NonSuccess { message, ty, .. } => {
                assert_eq!(ty.as_ref().map(|t| t.as_str()), Some("R001"));
                let message = message.as_ref().unwrap().as_str();
                assert!(message.starts_with("failed: refused: <x> &"), "{message}");
                assert!(
                    !message.contains('\u{1b}') && !message.contains('\u{7}'),
                    "{message:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &suite.test_cases[3].status,
            quick_junit::TestCaseStatus::NonSuccess { ty: Some(t), .. } if t.as_str() == "timed_out"
        ));
    }
}
