//! Waiting for imports: one poller per instance and import path, one status
//! round per interval for all its running imports, so the cost grows with
//! the number of instances, not of databases. The interval starts short,
//! grows while nothing changes, and aims at the moment the running restores
//! are expected to finish (from their percent), so completions are seen
//! promptly without polling hard.

use super::events::{Event, Events};
use crate::target::{Presence, Target};
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

#[derive(Debug)]
pub enum Finished {
    Online,
    Failed(String),
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
    target: Arc<dyn Target>,
    events: Arc<Events>,
    watches: Mutex<HashMap<String, Watch>>,
    wake: Notify,
}

impl Poller {
    pub fn new(target: Arc<dyn Target>, events: Arc<Events>) -> Arc<Self> {
        Arc::new(Poller {
            target,
            events,
            watches: Mutex::new(HashMap::new()),
            wake: Notify::new(),
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
        self.wake.notify_one();
        receiver
    }

    /// Stops following an import (it timed out).
    pub fn forget(&self, database: &str) {
        self.watches().remove(&database.to_lowercase());
    }

    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut interval = FIRST_INTERVAL;
        let mut last_round: Option<Instant> = None;
        loop {
            while self.watches().is_empty() {
                tokio::select! {
                    () = self.wake.notified() => interval = FIRST_INTERVAL,
                    () = stop.cancelled() => return,
                }
            }
            let now = Instant::now();
            let mut next = now + interval;
            if let Some(predicted) = self
                .watches()
                .values()
                .filter_map(|w| w.predicted_end)
                .min()
            {
                next = next.min(predicted);
            }
            if let Some(last) = last_round {
                next = next.max(last + self.target.min_poll_gap());
            }
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = stop.cancelled() => return,
            }
            last_round = Some(Instant::now());
            let changed = match self.round().await {
                Ok(changed) => changed,
                Err(e) => {
                    tracing::warn!("{}: status round failed: {e}", self.target.label());
                    false
                }
            };
            interval = if changed {
                FIRST_INTERVAL
            } else {
                interval.mul_f64(1.5).min(MAX_INTERVAL)
            };
        }
    }

    /// One status round; true when anything moved.
    async fn round(&self) -> Result<bool, String> {
        let mut inventory = self.target.inventory(false).await?;
        let needs_online = {
            let watches = self.watches();
            watches
                .values()
                .any(|w| matches!(inventory.presence(&w.database), Presence::Unknown))
        };
        if needs_online {
            inventory = self.target.inventory(true).await?;
        }
        let now = Instant::now();
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
                        finished.push((
                            key.clone(),
                            Finished::Failed(format!("the database is {state} after the restore")),
                        ));
                    }
                    Presence::Restoring(percent) => {
                        w.missing = 0;
                        if percent != w.percent {
                            changed = true;
                            w.percent = percent;
                            progress.push(Event::Progress {
                                database: w.database.clone(),
                                instance: w.instance.clone(),
                                percent,
                            });
                        }
                        if let Some(p) = percent.filter(|p| (1..100).contains(p)) {
                            // Elapsed time scaled to 100 %, plus a margin so the
                            // round after the predicted end finds it done.
                            let elapsed = now.duration_since(w.submitted);
                            let total = elapsed.mul_f64(100.0 / f64::from(p));
                            w.predicted_end = Some(
                                w.submitted + total.mul_f64(1.03) + Duration::from_millis(100),
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
                                Finished::Failed(format!(
                                    "the restore ended on {} without the database coming online; \
                                     the service gives no reason here (check the instance's logs)",
                                    self.target.label()
                                )),
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
