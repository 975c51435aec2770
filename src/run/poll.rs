//! Waiting for imports: one poller per instance and import path, one status
//! round per interval for all its running imports, so the cost grows with
//! the number of instances, not of databases. The interval starts short,
//! grows while nothing changes, and aims at the moment the running restores
//! are expected to finish (from their percent), so completions are seen
//! promptly without polling hard.

use super::events::{Event, Events, Failure};
use crate::import_path::{ImportPath, Presence, StatusError, Want};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const FIRST_INTERVAL: Duration = Duration::from_millis(500);
const MAX_INTERVAL: Duration = Duration::from_secs(5);
/// A restore missing from both lists this many rounds (and this long after
/// submission) has ended without its database: it failed.
const MISSING_ROUNDS: u32 = 3;
const MISSING_GRACE: Duration = Duration::from_secs(3);
/// Estimated ends this close to the earliest one are waited for together.
const CLUSTER: Duration = Duration::from_millis(300);
/// Added to an estimated end, so the round there finds the restores done.
const COMPLETION_MARGIN: Duration = Duration::from_millis(40);

#[derive(Debug)]
pub enum Finished {
    Online,
    Failed(Failure),
}

struct Watch {
    database: String,
    instance: String,
    submitted: Instant,
    percent: Option<u32>,
    predicted_end: Option<Instant>,
    missing: u32,
    done: oneshot::Sender<Finished>,
}

pub struct Poller {
    target: Arc<dyn ImportPath>,
    events: Arc<Events>,
    watches: Mutex<HashMap<String, Watch>>,
    wake: Notify,
    /// Imports registered since the last round: poll soon to learn their pace.
    fresh: std::sync::atomic::AtomicBool,
}

impl Poller {
    pub fn new(target: Arc<dyn ImportPath>, events: Arc<Events>) -> Arc<Self> {
        Arc::new(Poller {
            target,
            events,
            watches: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            fresh: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watch>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows an import until it is online or failed.
    pub fn watch(
        &self,
        database: &str,
        instance: &str,
        submitted: Instant,
    ) -> oneshot::Receiver<Finished> {
        let (done, receiver) = oneshot::channel();
        let watch = Watch {
            database: database.to_owned(),
            instance: instance.to_owned(),
            submitted,
            percent: None,
            predicted_end: None,
            missing: 0,
            done,
        };
        self.watches().insert(database.to_lowercase(), watch);
        self.fresh.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        receiver
    }

    /// Stops following an import (it timed out).
    pub fn forget(&self, database: &str) {
        self.watches().remove(&database.to_lowercase());
    }

    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        use std::sync::atomic::Ordering;
        let mut interval = FIRST_INTERVAL;
        let mut last_round: Option<Instant> = None;
        loop {
            while self.watches().is_empty() {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = stop.cancelled() => return,
                }
            }
            if self.fresh.swap(false, Ordering::SeqCst) {
                interval = FIRST_INTERVAL;
            }
            let now = Instant::now();
            let (unpredicted, earliest) = {
                let watches = self.watches();
                let mut ends: Vec<Instant> =
                    watches.values().filter_map(|w| w.predicted_end).collect();
                ends.sort();
                // Restores started together finish together, and each
                // estimate carries the rounding of an integer percent: the
                // mean of the cluster around the earliest one is the best
                // guess of when they are all done.
                let cluster = ends.first().map(|&first| {
                    let near: Vec<Instant> = ends
                        .iter()
                        .copied()
                        .take_while(|&e| e <= first + CLUSTER)
                        .collect();
                    let mean = near
                        .iter()
                        .map(|e| e.duration_since(first))
                        .sum::<Duration>()
                        / near.len() as u32;
                    first + mean + COMPLETION_MARGIN
                });
                (watches.values().any(|w| w.predicted_end.is_none()), cluster)
            };
            // While any restore's pace is unknown, poll on the interval; once
            // all are known, wait for the earliest expected end (but show
            // progress at least every MAX_INTERVAL).
            let mut next = if unpredicted {
                now + interval
            } else {
                now + MAX_INTERVAL
            };
            if let Some(predicted) = earliest {
                next = next.min(predicted);
            }
            if let Some(last) = last_round {
                next = next.max(last + self.target.min_poll_gap());
            }
            tracing::debug!(
                "{}: next status round in {} ms ({} running{})",
                self.target.label(),
                next.saturating_duration_since(now).as_millis(),
                self.watches().len(),
                if unpredicted {
                    ", some without a pace yet"
                } else {
                    ""
                }
            );
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = stop.cancelled() => return,
            }
            last_round = Some(Instant::now());
            let finished = match self.round().await {
                Ok(finished) => finished,
                Err(StatusError::Lasting(cause)) => {
                    self.give_up(cause);
                    true
                }
                Err(e @ StatusError::Transient(_)) => {
                    tracing::warn!("{}: status round failed: {e}", self.target.label());
                    false
                }
            };
            interval = if finished {
                FIRST_INTERVAL
            } else {
                interval.mul_f64(1.5).min(MAX_INTERVAL)
            };
        }
    }

    /// Ends every watch: their status cannot be read, and waiting until
    /// each import's timeout would only hide why. They may still be
    /// running; the failure says so, and a later run attaches to them.
    fn give_up(&self, cause: String) {
        let by = self.target.label().to_owned();
        for (_, w) in self.watches().drain() {
            let failure = Failure::StatusUnreadable {
                by: by.clone(),
                cause: cause.clone(),
            };
            let _ = w.done.send(Finished::Failed(failure));
        }
    }

    /// One status round; true when an import finished.
    async fn round(&self) -> Result<bool, StatusError> {
        // When every restore should be over, the database list alone usually
        // settles them all (one request); otherwise the running restores
        // first, and the list only for those that left it.
        let now = Instant::now();
        let all_due = self
            .watches()
            .values()
            .all(|w| w.predicted_end.is_some_and(|p| p <= now));
        let first = if all_due { Want::Online } else { Want::Running };
        let mut inventory = self.target.inventory(first).await?;
        tracing::debug!("{}: status round asked for {first:?}", self.target.label());
        let unsettled = {
            let watches = self.watches();
            watches
                .values()
                .any(|w| matches!(inventory.presence(&w.database), Presence::Unknown))
        };
        if unsettled {
            let second = if all_due { Want::Running } else { Want::Online };
            inventory.merge(self.target.inventory(second).await?);
        }
        let mut changed = false;
        let mut finished = Vec::new();
        let mut progress = Vec::new();
        {
            let mut watches = self.watches();
            for (key, w) in watches.iter_mut() {
                match inventory.presence(&w.database) {
                    Presence::Online => finished.push((key.clone(), Finished::Online)),
                    Presence::Other => {
                        let state = inventory.other.get(key).cloned().unwrap_or_default();
                        finished
                            .push((key.clone(), Finished::Failed(Failure::NotOnline { state })));
                    }
                    Presence::Restoring(percent) => {
                        w.missing = 0;
                        if percent != w.percent {
                            w.percent = percent;
                            progress.push(Event::Progress {
                                database: w.database.clone(),
                                instance: w.instance.clone(),
                                percent,
                            });
                        }
                        if let Some(p) = percent.filter(|p| (1..100).contains(p)) {
                            // Elapsed time scaled to 100 %; a reported percent is
                            // rounded down, so p + 0.5 is the unbiased guess.
                            let elapsed = now.duration_since(w.submitted);
                            let total = elapsed.mul_f64(100.0 / (f64::from(p) + 0.5));
                            w.predicted_end = Some(w.submitted + total);
                            tracing::trace!(
                                "{}: {p}% after {elapsed:?}: expected to take {total:?}",
                                w.database
                            );
                        }
                    }
                    Presence::Absent | Presence::Unknown => {
                        w.missing += 1;
                        if w.missing >= MISSING_ROUNDS
                            && now.duration_since(w.submitted) >= MISSING_GRACE
                        {
                            finished.push((
                                key.clone(),
                                Finished::Failed(Failure::Vanished {
                                    by: self.target.label().to_owned(),
                                }),
                            ));
                        }
                    }
                }
            }
            for (key, outcome) in finished {
                changed = true;
                if let Some(w) = watches.remove(&key) {
                    let _ = w.done.send(outcome);
                }
            }
        }
        for event in progress {
            self.events.emit(event);
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import_path::{Import, InstanceFacts, Inventory, SubmitError};
    use futures::future::BoxFuture;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An import path whose every status round fails the same way.
    struct Unreadable {
        error: StatusError,
        rounds: AtomicUsize,
    }

    impl ImportPath for Unreadable {
        fn label(&self) -> &str {
            "instance t (API)"
        }
        fn address(&self) -> Option<(String, u16)> {
            None
        }
        fn inventory(&self, _: Want) -> BoxFuture<'_, Result<Inventory, StatusError>> {
            self.rounds.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(self.error.clone()) })
        }
        fn submit<'a>(&'a self, _: &'a Import) -> BoxFuture<'a, Result<(), SubmitError>> {
            unreachable!("the poller never submits")
        }
        fn drop_database<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), StatusError>> {
            unreachable!("the poller never drops")
        }
        fn min_poll_gap(&self) -> Duration {
            Duration::ZERO
        }
        fn facts(&self) -> BoxFuture<'_, Result<InstanceFacts, StatusError>> {
            unreachable!("the poller never asks for facts")
        }
    }

    /// A minute of (paused) time following two imports whose status rounds
    /// all fail with `error`: their outcomes, or None if still waiting.
    async fn follow(error: StatusError) -> (Option<(Finished, Finished)>, usize) {
        let target = Arc::new(Unreadable {
            error,
            rounds: AtomicUsize::new(0),
        });
        let poller = Poller::new(target.clone(), Arc::new(Events::new(None, Vec::new())));
        let stop = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&poller).run(stop.clone()));
        let (a, b) = (
            poller.watch("a", "t", Instant::now()),
            poller.watch("b", "t", Instant::now()),
        );
        let both = async { (a.await.unwrap(), b.await.unwrap()) };
        let outcome = tokio::time::timeout(Duration::from_secs(60), both)
            .await
            .ok();
        stop.cancel();
        task.await.unwrap();
        (outcome, target.rounds.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn a_lasting_status_error_ends_every_wait_with_its_cause() {
        let (outcome, rounds) = follow(StatusError::Lasting("HTTP 401".into())).await;
        let Some((a, b)) = outcome else {
            panic!("still waiting after a lasting error");
        };
        for finished in [a, b] {
            match finished {
                Finished::Failed(Failure::StatusUnreadable { by, cause }) => {
                    assert_eq!(
                        (by.as_str(), cause.as_str()),
                        ("instance t (API)", "HTTP 401")
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(rounds, 1, "asked again after a lasting error");
    }

    #[tokio::test(start_paused = true)]
    async fn a_passing_status_error_keeps_waiting_and_asking() {
        let (outcome, rounds) = follow(StatusError::Transient("HTTP 503".into())).await;
        assert!(outcome.is_none(), "gave up on a passing error: {outcome:?}");
        // Every interval (at most 5 s) for a minute.
        assert!(rounds >= 12, "only {rounds} rounds in a minute");
    }
}
