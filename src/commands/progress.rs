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

/// The bars on screen, if any: other writers to stderr (the log) step
/// around them.
static ON_SCREEN: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Runs `write` with the progress bars, if some are on screen, cleared
/// first and drawn again after. A line written past the bars would be
/// drawn over at their next refresh, and a warning would vanish.
pub fn around_bars<R>(write: impl FnOnce() -> R) -> R {
    let bars = ON_SCREEN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bars {
        Some(bars) => bars.suspend(write),
        None => write(),
    }
}

fn on_screen(bars: Option<MultiProgress>) {
    *ON_SCREEN.lock().unwrap_or_else(|e| e.into_inner()) = bars;
}

pub struct Display {
    mode: Mode,
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<crate::db_key::DbKey, ProgressBar>>,
    failed: Mutex<u64>,
    /// Bars shown at most: the overall line stays on screen whatever the
    /// number of imports; the rest are counted on it.
    max_bars: usize,
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
                "{elapsed_precise} [{bar:32.cyan/blue}] {pos}/{len} done {msg}{eta_once_known}",
            )
            .expect("valid template")
            // An ETA needs a basis: none before the first import is done.
            .with_key(
                "eta_once_known",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    if state.pos() > 0 && state.pos() < state.len().unwrap_or(0) {
                        let _ = write!(w, "  ETA {}", indicatif::HumanDuration(state.eta()));
                    }
                },
            )
            .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(250));
        if mode == Mode::Bars {
            on_screen(Some(multi.clone()));
        }
        Arc::new(Display {
            mode,
            multi,
            overall,
            running: Mutex::new(HashMap::new()),
            failed: Mutex::new(0),
            max_bars: bars_that_fit(),
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
                errln!("{} {db}@{inst}: {text}", stamped.time);
            }
            Mode::Bars => {
                let (db, inst) = stamped.event.database();
                self.multi.suspend(|| errln!("{db}@{inst}: {text}"));
            }
            Mode::Silent => {}
        }
    }

    fn show(&self, stamped: &Stamped) {
        let (db, inst) = stamped.event.database();
        let key = crate::db_key::DbKey::new(inst, db);
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let clear = |bar: Option<ProgressBar>| {
            if let Some(bar) = bar {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        };
        let done = |bar: Option<ProgressBar>| {
            clear(bar);
            self.overall.inc(1);
        };
        // Where plain lines say how far the run is.
        let of = |overall: &ProgressBar| {
            format!(
                " ({} of {} done)",
                overall.position(),
                overall.length().unwrap_or(0)
            )
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
            Event::Dropping { .. } => {}
            Event::Dropped { .. } => self.line(stamped, "dropped; importing again".into()),
            Event::Submitted { .. } | Event::Attached { .. } => {
                let attached = matches!(stamped.event, Event::Attached { .. });
                if self.mode == Mode::Bars && running.len() >= self.max_bars {
                    // No room left above the overall line: counted there.
                    running.insert(key, ProgressBar::hidden());
                    self.update_overall(&running);
                } else if self.mode == Mode::Bars {
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
                    self.update_overall(&running);
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
                self.update_overall(&running);
                self.line(
                    stamped,
                    format!("online after {seconds:.1}s{}", of(&self.overall)),
                );
            }
            Event::Failed { reason, .. } => {
                done(running.remove(&key));
                self.count_failure();
                self.update_overall(&running);
                self.line(stamped, format!("FAILED: {reason}{}", of(&self.overall)));
            }
            Event::TimedOut { after_seconds, .. } => {
                done(running.remove(&key));
                self.count_failure();
                self.update_overall(&running);
                self.line(
                    stamped,
                    format!(
                        "timed out after {after_seconds:.0}s (still running on the server){}",
                        of(&self.overall)
                    ),
                );
            }
            Event::Interrupted { .. } => {
                // Not started is not done: the overall count stays true.
                clear(running.remove(&key));
                self.line(stamped, "not started (interrupted)".into());
            }
            Event::Verifying { checks, .. } => {
                let names: Vec<&str> = checks.iter().map(|c| c.as_str()).collect();
                self.line(stamped, format!("verifying: {}", names.join(", ")));
            }
            Event::Checked { .. } => {}
            Event::Verified {
                findings, failed, ..
            } => {
                if *failed {
                    self.count_failure();
                    self.update_overall(&running);
                    let refusals: Vec<String> = findings
                        .iter()
                        .filter(|f| f.refuses())
                        .map(ToString::to_string)
                        .collect();
                    self.line(
                        stamped,
                        format!("FAILED verification: {}", refusals.join("; ")),
                    );
                } else {
                    let notes: Vec<String> = findings.iter().map(ToString::to_string).collect();
                    self.line(
                        stamped,
                        if notes.is_empty() {
                            "verified".into()
                        } else {
                            format!("verified: {}", notes.join("; "))
                        },
                    );
                }
            }
        }
    }

    fn count_failure(&self) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        *failed += 1;
    }

    /// The overall line's words: failures so far, and the imports running
    /// without a bar of their own.
    fn update_overall(&self, running: &HashMap<crate::db_key::DbKey, ProgressBar>) {
        let failed = *self.failed.lock().unwrap_or_else(|e| e.into_inner());
        let unshown = running.values().filter(|b| b.is_hidden()).count();
        let mut words = Vec::new();
        if failed > 0 {
            words.push(format!("{failed} failed"));
        }
        if unshown > 0 {
            words.push(format!("{unshown} more running"));
        }
        self.overall.set_message(if words.is_empty() {
            String::new()
        } else {
            format!("({})", words.join(", "))
        });
    }

    pub fn finish(&self) {
        if self.mode == Mode::Bars {
            on_screen(None);
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Bars that fit on the terminal below what was printed before, with the
/// overall line and a margin: its height less six, at least three.
fn bars_that_fit() -> usize {
    usize::from(terminal_rows().unwrap_or(30))
        .saturating_sub(6)
        .max(3)
}

#[cfg(unix)]
fn terminal_rows() -> Option<u16> {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize we own; stderr is fd 2.
    let ok = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 0).then_some(size.ws_row)
}

#[cfg(not(unix))]
fn terminal_rows() -> Option<u16> {
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use indicatif::TermLike;
    use std::io;

    /// A terminal that records what is done to it, in order.
    #[derive(Debug, Clone, Default)]
    pub struct Screen(pub Arc<Mutex<Vec<String>>>);

    impl Screen {
        pub fn record(&self, op: String) -> io::Result<()> {
            self.0.lock().unwrap().push(op);
            Ok(())
        }

        /// Puts a bar on this screen, as `apply` does on a terminal, until
        /// the returned guard is dropped.
        pub fn show_bar(&self) -> impl Drop {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(
                self.clone(),
            )));
            let bar = multi.add(ProgressBar::new(10));
            bar.tick();
            on_screen(Some(multi));
            // Holds the bar: dropped, it would leave the screen.
            struct Shown {
                _bar: ProgressBar,
            }
            impl Drop for Shown {
                fn drop(&mut self) {
                    on_screen(None);
                }
            }
            Shown { _bar: bar }
        }

        pub fn ops(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    /// Whether `line` was written with the bars cleared before it and drawn
    /// again after it.
    pub fn written_around_the_bars(ops: &[String], line: &str) -> bool {
        let Some(at) = ops.iter().position(|o| o.contains(line)) else {
            return false;
        };
        ops[..at].iter().any(|o| o == "clear") && ops[at + 1..].iter().any(|o| o.contains("0/10"))
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, n: usize) -> io::Result<()> {
            self.record(format!("up {n}"))
        }
        fn move_cursor_down(&self, n: usize) -> io::Result<()> {
            self.record(format!("down {n}"))
        }
        fn move_cursor_right(&self, n: usize) -> io::Result<()> {
            self.record(format!("right {n}"))
        }
        fn move_cursor_left(&self, n: usize) -> io::Result<()> {
            self.record(format!("left {n}"))
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.record(format!("draw {s}"))
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.record(format!("draw {s}"))
        }
        fn clear_line(&self) -> io::Result<()> {
            self.record("clear".into())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_written_around_the_bars_is_not_drawn_over() {
        let screen = Screen::default();
        let shown = screen.show_bar();
        let before = screen.ops().len();
        assert!(before > 0, "the bar was never drawn");
        around_bars(|| screen.record("LOG".into()).unwrap());
        drop(shown);
        let ops = &screen.ops()[before..];
        assert!(written_around_the_bars(ops, "LOG"), "{ops:?}");

        // Without bars on screen, the line is just written.
        around_bars(|| screen.record("LOG 2".into()).unwrap());
        assert_eq!(screen.ops().last().unwrap(), "LOG 2");
    }
}
