//! The state of a state folder: what `apply` did to each target database,
//! kept as journals (one JSON line per state change, appended and flushed
//! before the engine goes on). Each `apply` writes its own journal file,
//! named after its manifest (and shard), under its own lock, so shards run
//! side by side; what the folder knows is read from every journal in it,
//! keyed per database (the `DbKey`), never per manifest: editing the
//! manifest, adding a database, or running shards and then the whole
//! manifest keeps the state usable.

use crate::db_key::DbKey;
use crate::manifest::select::Shard;
pub use crate::plan::prior::{Prior, PriorStates, State};
use crate::run::events::{Event, Failure, Record, RecordError, Stamped};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The journal format written now. Format 1 (with a manifest fingerprint
/// on its first line) is read the same way; the fingerprint is not used.
const FORMAT: u64 = 2;
const FORMATS_READ: [u64; 2] = [1, 2];
const RUN_STARTED: &str = "started";
const RUN_FINISHED: &str = "finished";
/// Journals read from one folder at most.
const MAX_JOURNALS: usize = 1024;

/// Folds one event into what the folder knows. Passing a database over
/// never undoes what was done to it: an import stays imported whatever is
/// appended after.
fn record(state: &mut State, event: &Event) {
    let (db, instance) = event.database();
    let key = DbKey::new(instance, db);
    if let Event::Submitting { files, .. } = event
        && !files.is_empty()
    {
        state.files.insert(key.clone(), files.clone());
    }
    match event {
        // A new import: the checks of the last one no longer count.
        Event::Submitting { .. } | Event::Dropping { .. } => {
            state.checked.remove(&key);
            state.verified.remove(&key);
        }
        Event::Checked {
            check, findings, ..
        } => {
            let list = state.checked.entry(key.clone()).or_default();
            list.retain(|c| c.check != *check);
            list.push(crate::verify::Checked {
                check: *check,
                findings: findings.clone(),
            });
        }
        Event::Verified { .. } => {
            state.verified.insert(key.clone());
        }
        _ => {}
    }
    match prior_of(event) {
        None => {}
        Some(Prior::Skipped) => {
            state.prior.entry(key).or_insert(Prior::Skipped);
        }
        Some(prior) => {
            state.prior.insert(key, prior);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the journal {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("the journal {path} is damaged at line {line}: {reason}; move it aside to start over")]
    Damaged {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// `<state>/<manifest stem>[.shard-K-of-N].jsonl`
pub fn path_for(state_dir: &Path, manifest: &Path, shard: Option<Shard>) -> PathBuf {
    let stem = manifest
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("manifest");
    let shard = shard
        .map(|s| format!(".shard-{}-of-{}", s.index, s.count))
        .unwrap_or_default();
    state_dir.join(format!("{stem}{shard}.jsonl"))
}

pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

pub struct Opened {
    pub journal: Journal,
    /// What the whole state folder knows, this journal included.
    pub state: State,
    /// Explanations for the user (a cut last line, a resumed run).
    pub notes: Vec<String>,
}

/// One journal read back: its events in order, and whether its last line
/// was cut (with the byte length of what is whole).
struct Read {
    events: Vec<Stamped>,
    cut_at: Option<usize>,
    /// The databases touched since the last `run: started` line, when no
    /// `run: finished` line followed it.
    unfinished: Option<HashSet<DbKey>>,
}

/// Reads one journal file; None when the file is not a journal of this
/// tool (a report or anything else left in the folder).
fn read_one(path: &Path) -> Result<Option<Read>, JournalError> {
    let io = |e: std::io::Error| JournalError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let bytes = read_journal(path).map_err(io)?;
    let text = String::from_utf8_lossy(&bytes);
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut events = Vec::new();
    let mut cut_at = None;
    let mut unfinished: Option<HashSet<DbKey>> = None;
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if last && !complete => {
                // From the raw bytes: a kill in the middle of a UTF-8
                // character makes the decoded line longer than them.
                cut_at = Some(bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1));
                break;
            }
            Err(_) if i == 0 => return Ok(None),
            Err(e) => {
                return Err(JournalError::Damaged {
                    path: path.to_owned(),
                    line: i + 1,
                    reason: e.to_string(),
                });
            }
        };
        if i == 0 {
            let format = value["journal"].as_u64();
            if !format.is_some_and(|f| FORMATS_READ.contains(&f)) {
                return Ok(None);
            }
            continue;
        }
        match value["run"].as_str() {
            Some(RUN_STARTED) => unfinished = Some(HashSet::new()),
            Some(RUN_FINISHED) => unfinished = None,
            _ => {}
        }
        // The typed event the engine wrote, read back by the same
        // definition; an event this version does not know is left out (a
        // newer tool's), never guessed at.
        if let Ok(stamped) = serde_json::from_value::<Stamped>(value) {
            if let Some(touched) = &mut unfinished
                && prior_of(&stamped.event).is_some_and(|p| p != Prior::Skipped)
            {
                let (db, instance) = stamped.event.database();
                touched.insert(DbKey::new(instance, db));
            }
            events.push(stamped);
        }
    }
    Ok(Some(Read {
        events,
        cut_at,
        unfinished,
    }))
}

/// What the state folder `dir` knows: every journal in it, their events in
/// time order. A folder that does not exist knows nothing. `own` is the
/// journal of the manifest (and shard) at hand: a run of it that did not
/// finish is resumed.
pub fn read_state(dir: &Path, own: Option<&Path>) -> Result<(State, Vec<String>), JournalError> {
    let io = |e: std::io::Error| JournalError::Io {
        path: dir.to_owned(),
        reason: e.to_string(),
    };
    let mut notes = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((State::default(), notes));
        }
        Err(e) => return Err(io(e)),
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        // Links are not followed: a journal is a file of this folder.
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && path.extension().is_some_and(|x| x == "jsonl") {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.len() > MAX_JOURNALS {
        notes.push(format!(
            "{} holds {} journals; only the first {MAX_JOURNALS} are read",
            dir.display(),
            paths.len()
        ));
        paths.truncate(MAX_JOURNALS);
    }
    let mut all: Vec<(String, usize, usize, Stamped)> = Vec::new();
    let mut resumed = None;
    for (file, path) in paths.iter().enumerate() {
        let Some(read) = read_one(path)? else {
            continue;
        };
        if own.is_some_and(|own| own.file_name() == path.file_name())
            && let Some(touched) = read.unfinished
        {
            notes.push(format!(
                "the last run of {} did not finish; this run resumes it",
                path.display()
            ));
            resumed = Some(touched);
        }
        if read.cut_at.is_some() {
            notes.push(format!(
                "the last line of {} was cut off (a run was killed while writing); it is ignored",
                path.display()
            ));
        }
        for (line, stamped) in read.events.into_iter().enumerate() {
            all.push((stamped.time.clone(), file, line, stamped));
        }
    }
    // RFC 3339 times in UTC order as text; within a journal, line order.
    all.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    let mut state = State {
        resumed,
        ..State::default()
    };
    for (_, _, _, stamped) in &all {
        record(&mut state, &stamped.event);
    }
    Ok((state, notes))
}

impl Journal {
    /// Opens (or starts) this run's journal, and reads what the state
    /// folder it lies in knows.
    pub fn open(path: &Path, manifest_name: &str) -> Result<Opened, JournalError> {
        let io = |e: std::io::Error| JournalError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let existing = match read_one(path) {
            Ok(Some(read)) => Some(read),
            Ok(None) if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) => {
                return Err(JournalError::Damaged {
                    path: path.to_owned(),
                    line: 1,
                    reason: "not a sqlflex-import journal".into(),
                });
            }
            Ok(None) => None,
            Err(JournalError::Io { .. }) if !path.exists() => None,
            Err(e) => return Err(e),
        };
        let cut_at = existing.as_ref().and_then(|r| r.cut_at);
        let (state, mut notes) = read_state(dir, Some(path))?;
        if !state.prior.is_empty() {
            notes.push(format!(
                "the state in {} knows {} database(s)",
                dir.display(),
                state.prior.len()
            ));
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        // The journal names databases, instances and server messages: for
        // the owner's eyes only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = crate::state_file::open(path, &mut options).map_err(io)?;
        if let Some(at) = cut_at {
            // Drop the cut line, so the journal stays one JSON value per line.
            file.set_len(at as u64).map_err(io)?;
        }
        let journal = Journal {
            path: path.to_owned(),
            file: Mutex::new(file),
        };
        if existing.is_none() || cut_at == Some(0) {
            journal.write(&json!({
                "journal": FORMAT,
                "manifest": manifest_name,
                "tool": env!("CARGO_PKG_VERSION"),
            }))?;
        }
        Ok(Opened {
            journal,
            state,
            notes,
        })
    }

    /// Appends one line and flushes it to the operating system before
    /// returning: a kill -9 right after loses nothing written.
    pub fn write(&self, value: &Value) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(value).expect("JSON");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&line)
            .and_then(|()| file.flush())
            .map_err(|e| JournalError::Io {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mark(&self, what: &str) -> Result<(), JournalError> {
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        self.write(&json!({"run": what, "time": time}))
    }
}

/// The journal is where a run's events are kept first. A run marks its
/// start, and its end when it went to its end (not killed, not
/// interrupted): the next run of `on_exists: replace` databases then
/// replaces them again, instead of resuming.
impl Record for Journal {
    fn keep(&self, event: &Stamped) -> Result<(), RecordError> {
        Ok(self.write(&serde_json::to_value(event).expect("JSON"))?)
    }

    fn mark_run(&self, finished: bool) -> Result<(), RecordError> {
        Ok(self.mark(if finished { RUN_FINISHED } else { RUN_STARTED })?)
    }
}

/// What an event in the journal says about its database, for a resume.
fn prior_of(event: &Event) -> Option<Prior> {
    Some(match event {
        Event::Submitting { .. } => Prior::Submitting,
        Event::Submitted { .. } | Event::Attached { .. } | Event::Progress { .. } => {
            Prior::Submitted
        }
        Event::Online { .. } => Prior::Online,
        // Two failures leave an import that may be running. Accepted, then
        // no longer followed: like a run that stopped waiting, the next one
        // attaches to it or finds it lost. Sent without an answer: like a
        // crash in mid-submit, the next one looks before it submits.
        Event::Failed {
            failure: Some(Failure::StatusUnreadable { .. }),
            ..
        } => Prior::Submitted,
        Event::Failed {
            failure: Some(Failure::OutcomeUnknown { .. }),
            ..
        } => Prior::Submitting,
        Event::Failed { .. } => Prior::Failed,
        Event::TimedOut { .. } => Prior::TimedOut,
        Event::Skipped { .. } => Prior::Skipped,
        Event::Dropping { .. } | Event::Dropped { .. } => Prior::Dropped,
        Event::Planned { .. }
        | Event::Retried { .. }
        | Event::Interrupted { .. }
        | Event::Verifying { .. }
        | Event::Checked { .. }
        | Event::Verified { .. } => return None,
    })
}

/// Largest journal read back: 10,000 imports write about 10 MiB.
const MAX_JOURNAL_BYTES: u64 = 512 * 1024 * 1024;

fn read_journal(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    crate::state_file::open(path, OpenOptions::new().read(true))?
        .take(MAX_JOURNAL_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_JOURNAL_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB; not a journal of this tool",
            MAX_JOURNAL_BYTES >> 20
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines exactly as the first journal format (before events were typed
    /// and before `skipped` carried `why`) wrote them: a resume must still
    /// read them.
    #[test]
    fn a_journal_of_the_first_format_still_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let lines = [
            r#"{"fingerprint":"abc","journal":1,"manifest":"m.yaml","tool":"0.1.0"}"#,
            r#"{"attempt":1,"database":"sales","event":"submitting","instance":"prod","time":"2026-11-28T10:00:00.000Z"}"#,
            r#"{"attempt":1,"database":"sales","event":"submitted","instance":"prod","time":"2026-11-28T10:00:00.120Z"}"#,
            r#"{"database":"hr","event":"online","instance":"prod","seconds":12.5,"time":"2026-11-28T10:00:13.000Z"}"#,
            r#"{"database":"crm","event":"skipped","instance":"prod","reason":"already there","time":"2026-11-28T10:00:00.000Z"}"#,
            r#"{"after_seconds":7200.0,"database":"dwh","event":"timed_out","instance":"rep","time":"2026-11-28T12:00:00.000Z"}"#,
            r#"{"database":"old","event":"failed","instance":"rep","reason":"x","time":"2026-11-28T10:00:01.000Z"}"#,
            r#"{"database":"inv","event":"progress","instance":"rep","percent":40,"time":"2026-11-28T10:00:02.000Z"}"#,
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let opened = Journal::open(&path, "m.yaml").unwrap();
        let get = |i: &str, d: &str| opened.state.prior.get(&DbKey::new(i, d)).copied();
        assert_eq!(get("prod", "sales"), Some(Prior::Submitted));
        assert_eq!(get("prod", "hr"), Some(Prior::Online));
        assert_eq!(get("prod", "crm"), Some(Prior::Skipped));
        assert_eq!(get("rep", "dwh"), Some(Prior::TimedOut));
        assert_eq!(get("rep", "old"), Some(Prior::Failed));
        assert_eq!(get("rep", "inv"), Some(Prior::Submitted));
    }

    /// An import whose status was lost after it was accepted, or whose
    /// submission went unanswered, may still be running: the next run must
    /// follow it (or look first), not refuse it as someone else's.
    #[test]
    fn failures_that_may_leave_an_import_running_resume_as_started() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let opened = Journal::open(&path, "m.yaml").unwrap();
        let by = || "instance prod (API)".to_owned();
        let lost = Failure::StatusUnreadable {
            by: by(),
            cause: "HTTP 401".into(),
        };
        let unanswered = Failure::OutcomeUnknown {
            by: by(),
            cause: "connection reset".into(),
            lookup: "HTTP 503 (after 8 attempts)".into(),
        };
        let refused = Failure::Refused {
            by: by(),
            why: "HTTP 400".into(),
        };
        let failures = [
            ("lost", lost),
            ("unanswered", unanswered),
            ("refused", refused),
        ];
        for (database, failure) in failures {
            let event = Event::failed(database.into(), "prod".into(), failure);
            let line = serde_json::to_value(&event).unwrap();
            opened.journal.write(&line).unwrap();
        }
        drop(opened);
        let again = Journal::open(&path, "m.yaml").unwrap();
        assert_eq!(
            again.state.prior[&DbKey::new("prod", "lost")],
            Prior::Submitted
        );
        assert_eq!(
            again.state.prior[&DbKey::new("prod", "unanswered")],
            Prior::Submitting
        );
        assert_eq!(
            again.state.prior[&DbKey::new("prod", "refused")],
            Prior::Failed
        );
    }

    #[test]
    fn records_states_and_survives_a_cut_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let opened = Journal::open(&path, "m.yaml").unwrap();
        opened
            .journal
            .write(&json!({"event": "submitting", "database": "Sales", "instance": "prod"}))
            .unwrap();
        opened
            .journal
            .write(&json!({"event": "submitted", "database": "Sales", "instance": "prod"}))
            .unwrap();
        opened
            .journal
            .write(&json!({"event": "online", "database": "hr", "instance": "prod"}))
            .unwrap();
        drop(opened);
        // A kill in the middle of a write, inside a two-byte character.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":\"online\",\"database\":\"Umsatz\xc3")
            .unwrap();
        drop(f);

        let again = Journal::open(&path, "m.yaml").unwrap();
        assert_eq!(
            again.state.prior[&DbKey::new("prod", "sales")],
            Prior::Submitted
        );
        assert_eq!(again.state.prior[&DbKey::new("prod", "hr")], Prior::Online);
        assert!(
            again.notes.iter().any(|n| n.contains("cut off")),
            "{:?}",
            again.notes
        );
        again
            .journal
            .write(&json!({"event": "failed", "database": "x", "instance": "prod"}))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<Value>(l).is_ok()),
            "{text}"
        );
    }

    #[test]
    fn another_manifests_journal_is_read_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        // A journal of today's first format, of another manifest (its
        // fingerprint is no longer compared).
        std::fs::write(
            &path,
            concat!(
                r#"{"fingerprint":"0123456789abcdef","journal":1,"manifest":"one.yaml","tool":"0.1.0"}"#,
                "\n",
                r#"{"database":"hr","event":"online","instance":"prod","seconds":1.0,"time":"2026-11-28T10:00:13.000Z"}"#,
                "\n",
            ),
        )
        .unwrap();
        let opened = Journal::open(&path, "two.yaml").unwrap();
        assert_eq!(opened.state.prior[&DbKey::new("prod", "hr")], Prior::Online);
        drop(opened);

        std::fs::write(
            &path,
            "{\"journal\":1,\"fingerprint\":\"abc\"}\nnot json\n{}\n",
        )
        .unwrap();
        let err = Journal::open(&path, "one.yaml").err().unwrap();
        assert!(err.to_string().contains("damaged at line 2"), "{err}");
    }

    /// What each finding of the repeatable-runs issue came down to: a
    /// skip appended after an import, several journals in one folder.
    #[test]
    fn an_import_stays_imported_and_every_journal_of_the_folder_counts() {
        let dir = tempfile::tempdir().unwrap();
        let line = |event: &str, db: &str, time: &str| {
            format!(r#"{{"database":"{db}","event":"{event}","instance":"prod","time":"{time}"}}"#)
        };
        let header = r#"{"journal":2,"manifest":"m.yaml","tool":"0.1.0"}"#;
        std::fs::write(
            dir.path().join("m.jsonl"),
            [
                header.to_owned(),
                line("submitting", "sales", "2026-12-01T10:00:00.000Z"),
                line("online", "sales", "2026-12-01T10:01:00.000Z"),
                line("skipped", "sales", "2026-12-02T10:00:00.000Z"),
                line("skipped", "sales", "2026-12-03T10:00:00.000Z"),
            ]
            .join("\n")
                + "\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("m.shard-2-of-2.jsonl"),
            [
                header.to_owned(),
                line("submitting", "hr", "2026-12-01T10:00:00.000Z"),
                line("online", "hr", "2026-12-01T10:02:00.000Z"),
            ]
            .join("\n")
                + "\n",
        )
        .unwrap();
        // Not a journal: left alone.
        std::fs::write(dir.path().join("report.jsonl"), "{\"x\":1}\n").unwrap();
        let (state, _) = read_state(dir.path(), None).unwrap();
        assert_eq!(state.prior[&DbKey::new("prod", "sales")], Prior::Online);
        assert_eq!(state.prior[&DbKey::new("prod", "hr")], Prior::Online);
        assert_eq!(state.prior.len(), 2);
    }
}
