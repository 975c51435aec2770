//! What a person watching `apply` sees: on a terminal, an overall bar and
//! one line per running import (state, percent, elapsed); elsewhere, plain
//! timestamped lines per state change. A consumer of the event stream.

use crate::run::events::{Consumer, Event, Stamped};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Lines,
    Silent,
}

impl Mode {
    /// Bars on a terminal, lines elsewhere or with --no-progress.
    pub fn choose(no_progress: bool, quiet: bool) -> Self {
        use std::io::IsTerminal;
        if quiet {
            Mode::Silent
        } else if no_progress || !std::io::stderr().is_terminal() {
            Mode::Lines
        } else {
            Mode::Bars
        }
    }
}

pub struct Display {
    mode: Mode,
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<crate::db_key::DbKey, ProgressBar>>,
    failed: Mutex<u64>,
}

impl Display {
    pub fn new(mode: Mode, total: u64) -> Arc<Self> {
        let multi = MultiProgress::with_draw_target(if mode == Mode::Bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:32.cyan/blue}] {pos}/{len} done {msg}  ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(250));
        Arc::new(Display {
            mode,
            multi,
            overall,
            running: Mutex::new(HashMap::new()),
            failed: Mutex::new(0),
        })
    }

    pub fn consumer(self: &Arc<Self>) -> Consumer {
        let me = Arc::clone(self);
        Box::new(move |e: &Stamped| me.show(e))
    }

    fn line(&self, stamped: &Stamped, text: String) {
        match self.mode {
            Mode::Lines => {
                let (db, inst) = stamped.event.database();
                eprintln!("{} {db}@{inst}: {text}", stamped.time);
            }
            Mode::Bars => {
                let (db, inst) = stamped.event.database();
                self.multi.suspend(|| eprintln!("{db}@{inst}: {text}"));
            }
            Mode::Silent => {}
        }
    }

    fn show(&self, stamped: &Stamped) {
        let (db, inst) = stamped.event.database();
        let key = crate::db_key::DbKey::new(inst, db);
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let done = |bar: Option<ProgressBar>| {
            if let Some(bar) = bar {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            self.overall.inc(1);
        };
        match &stamped.event {
            Event::Planned { .. } => {}
            Event::Skipped { reason, .. } => {
                if self.mode == Mode::Lines {
                    self.line(stamped, format!("skipped ({reason})"));
                }
            }
            Event::Submitting { attempt, .. } if *attempt > 1 => {
                self.line(stamped, format!("submitting again (attempt {attempt})"))
            }
            Event::Submitting { .. } => {}
            Event::Submitted { .. } | Event::Attached { .. } => {
                let attached = matches!(stamped.event, Event::Attached { .. });
                if self.mode == Mode::Bars {
                    let bar = self
                        .multi
                        .insert_before(&self.overall, ProgressBar::new(100));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "  {prefix:32!} {msg:10} [{bar:20}] {pos:>3}%  {elapsed}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(format!("{db}@{inst}"));
                    bar.set_message(if attached { "attached" } else { "restoring" });
                    bar.enable_steady_tick(Duration::from_millis(500));
                    running.insert(key, bar);
                } else {
                    self.line(
                        stamped,
                        if attached {
                            "re-attached to the running import".into()
                        } else {
                            "submitted".into()
                        },
                    );
                }
            }
            Event::Retried {
                reason, delay_ms, ..
            } => self.line(
                stamped,
                format!("{reason}; retrying in {:.1}s", *delay_ms as f64 / 1000.0),
            ),
            Event::Progress { percent, .. } => match running.get(&key) {
                Some(bar) => {
                    bar.set_message("restoring");
                    bar.set_position(u64::from(percent.unwrap_or(0)));
                }
                None if self.mode == Mode::Lines => {
                    if let Some(p) = percent {
                        self.line(stamped, format!("restoring, {p}%"));
                    }
                }
                None => {}
            },
            Event::Online { seconds, .. } => {
                done(running.remove(&key));
                self.line(stamped, format!("online after {seconds:.1}s"));
            }
            Event::Failed { reason, .. } => {
                done(running.remove(&key));
                self.count_failure();
                self.line(stamped, format!("FAILED: {reason}"));
            }
            Event::TimedOut { after_seconds, .. } => {
                done(running.remove(&key));
                self.count_failure();
                self.line(
                    stamped,
                    format!("timed out after {after_seconds:.0}s (still running on the server)"),
                );
            }
            Event::Interrupted { .. } => {
                done(running.remove(&key));
                self.line(stamped, "not started (interrupted)".into());
            }
        }
    }

    fn count_failure(&self) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        *failed += 1;
        self.overall.set_message(format!("({} failed)", *failed));
    }

    pub fn finish(&self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}
