//! The journal: one JSON line per state change, appended and flushed before
//! the engine goes on, so `apply` can resume after a crash or Ctrl-C. The
//! first line says which manifest (and shard) it belongs to; a journal of
//! another manifest is refused rather than trusted.

use crate::db_key::DbKey;
use crate::manifest::Manifest;
use crate::manifest::select::Shard;
use crate::run::events::{Event, Failure, Stamped};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const FORMAT: u64 = 1;

/// What an earlier run last recorded for a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// About to submit; the outcome was not recorded.
    Submitting,
    Submitted,
    Online,
    Failed,
    TimedOut,
    Skipped,
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

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the journal {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error(
        "the journal {path} belongs to another manifest ({other}); \
         use another --state folder, or remove the journal to start over"
    )]
    OtherManifest { path: PathBuf, other: String },
    #[error("the journal {path} is damaged at line {line}: {reason}; move it aside to start over")]
    Damaged {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// What identifies a manifest for resuming: targets and file sets, not
/// formatting or comments. FNV-1a, stable across versions and machines.
pub fn fingerprint(m: &Manifest) -> String {
    let mut text = String::new();
    for db in &m.databases {
        let inst = m.instances.get(&db.instance);
        text.push_str(&format!(
            "{}|{}|{}|{}|{:?}\n",
            db.instance,
            inst.and_then(|i| i.instance_id.as_deref()).unwrap_or(""),
            inst.and_then(|i| i.project_id.as_deref()).unwrap_or(""),
            db.name.to_lowercase(),
            db.files
        ));
    }
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
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
    pub prior: PriorStates,
    /// Explanations for the user (a cut last line, a resumed run).
    pub notes: Vec<String>,
}

impl Journal {
    /// Opens (or starts) the journal for this manifest and reads what
    /// earlier runs recorded.
    pub fn open(
        path: &Path,
        manifest_name: &str,
        fingerprint: &str,
    ) -> Result<Opened, JournalError> {
        let io = |e: std::io::Error| JournalError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // A link (dangling or not) could make the journal land anywhere the
        // link points, or append to a file that is not ours.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(io(std::io::Error::other(
                "it is a symbolic link; refusing to follow it (remove it or choose another --state)",
            )));
        }
        let mut prior = PriorStates::new();
        let mut notes = Vec::new();
        let existing = match read_journal(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let mut cut_at = None;
        if let Some(bytes) = &existing {
            let text = String::from_utf8_lossy(bytes);
            let complete = text.ends_with('\n');
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let last = i + 1 == lines.len();
                let value: Value = match serde_json::from_str(line) {
                    Ok(v) => v,
                    Err(_) if last && !complete => {
                        notes.push(format!(
                            "the last line of {} was cut off (the previous run was killed while writing); it is ignored",
                            path.display()
                        ));
                        // From the raw bytes: a kill in the middle of a UTF-8
                        // character makes the decoded line longer than them.
                        cut_at = Some(bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1));
                        break;
                    }
                    Err(e) => {
                        return Err(JournalError::Damaged {
                            path: path.to_owned(),
                            line: i + 1,
                            reason: e.to_string(),
                        });
                    }
                };
                if i == 0 {
                    if value["journal"].as_u64() != Some(FORMAT) {
                        return Err(JournalError::Damaged {
                            path: path.to_owned(),
                            line: 1,
                            reason: "not a sqlflex-import journal".into(),
                        });
                    }
                    if value["fingerprint"].as_str() != Some(fingerprint) {
                        let other = value["manifest"].as_str().unwrap_or("unknown").to_owned();
                        return Err(JournalError::OtherManifest {
                            path: path.to_owned(),
                            other,
                        });
                    }
                    continue;
                }
                // The typed event the engine wrote, read back by the same
                // definition; an event this version does not know is left
                // out (a newer tool's), never guessed at.
                let Ok(stamped) = serde_json::from_value::<Stamped>(value) else {
                    continue;
                };
                let Some(state) = prior_of(&stamped.event) else {
                    continue;
                };
                let (db, instance) = stamped.event.database();
                prior.insert(DbKey::new(instance, db), state);
            }
            if !prior.is_empty() {
                notes.push(format!(
                    "resuming from {} ({} databases recorded)",
                    path.display(),
                    prior.len()
                ));
            }
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        // The journal names databases, instances and server messages: for
        // the owner's eyes only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(io)?;
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
                "fingerprint": fingerprint,
                "tool": env!("CARGO_PKG_VERSION"),
            }))?;
        }
        Ok(Opened {
            journal,
            prior,
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
        Event::Planned { .. } | Event::Retried { .. } | Event::Interrupted { .. } => return None,
    })
}

/// Largest journal read back: 10,000 imports write about 10 MiB.
const MAX_JOURNAL_BYTES: u64 = 512 * 1024 * 1024;

fn read_journal(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
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
        let opened = Journal::open(&path, "m.yaml", "abc").unwrap();
        let get = |i: &str, d: &str| opened.prior.get(&DbKey::new(i, d)).copied();
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
        let opened = Journal::open(&path, "m.yaml", "abc").unwrap();
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
        let again = Journal::open(&path, "m.yaml", "abc").unwrap();
        assert_eq!(again.prior[&DbKey::new("prod", "lost")], Prior::Submitted);
        assert_eq!(
            again.prior[&DbKey::new("prod", "unanswered")],
            Prior::Submitting
        );
        assert_eq!(again.prior[&DbKey::new("prod", "refused")], Prior::Failed);
    }

    #[test]
    fn records_states_and_survives_a_cut_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let opened = Journal::open(&path, "m.yaml", "abc").unwrap();
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

        let again = Journal::open(&path, "m.yaml", "abc").unwrap();
        assert_eq!(again.prior[&DbKey::new("prod", "sales")], Prior::Submitted);
        assert_eq!(again.prior[&DbKey::new("prod", "hr")], Prior::Online);
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
    fn refuses_another_manifests_journal_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        drop(Journal::open(&path, "one.yaml", "abc").unwrap());
        let err = Journal::open(&path, "two.yaml", "def").err().unwrap();
        assert!(
            err.to_string()
                .contains("belongs to another manifest (one.yaml)"),
            "{err}"
        );

        std::fs::write(
            &path,
            "{\"journal\":1,\"fingerprint\":\"abc\"}\nnot json\n{}\n",
        )
        .unwrap();
        let err = Journal::open(&path, "one.yaml", "abc").err().unwrap();
        assert!(err.to_string().contains("damaged at line 2"), "{err}");
    }
}
