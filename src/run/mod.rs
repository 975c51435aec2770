//! `apply`'s engine: schedule, submit, wait, retry. A global bound and a
//! bound per instance, without head-of-line blocking: an import first takes
//! its instance's slot, and only then a global one, so an import waiting for
//! a busy instance never holds a global slot. It keeps both from submission
//! until its database is online or it failed.

pub mod events;
mod poll;

use crate::import_path::{Import, ImportPath, Presence, StatusError, SubmitError};
use crate::plan::{Context, Lane, Plan, Verdict};
use crate::retry::Backoff;
use events::{Event, Events, Failure, Skip};
use poll::{Finished, Poller};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct Options {
    pub max_parallel: usize,
    /// Cancelled on the first Ctrl-C: nothing new is submitted, running
    /// imports are still followed.
    pub stop_submitting: CancellationToken,
    /// Warnings of the checks after the import fail the database too.
    pub strict: bool,
}

/// Runs the imports of a plan and reports every step through `events`.
pub async fn apply(ctx: Arc<Context>, plan: &Plan, options: &Options, events: Arc<Events>) {
    let m = &ctx.loaded.valid;
    let global = Arc::new(Semaphore::new(options.max_parallel.max(1)));
    let mut per_instance: HashMap<String, Arc<Semaphore>> = HashMap::new();
    // The checks after an import have slots of their own, as many per
    // instance as imports: a CHECKDB does not hold back the next import.
    let mut checks_per_instance: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let instance_slots = |per_instance: &mut HashMap<String, Arc<Semaphore>>, instance: &str| {
        Arc::clone(per_instance.entry(instance.to_owned()).or_insert_with(|| {
            Arc::new(Semaphore::new(m.instances[instance].max_parallel as usize))
        }))
    };
    let mut verification = |db: &crate::manifest::valid::Target, earlier| Verification {
        verifier: Arc::clone(&ctx.verifiers[&db.instance]),
        slots: instance_slots(&mut checks_per_instance, &db.instance),
        work: crate::verify::Work::of(db),
        earlier,
        strict: options.strict,
    };
    let mut pollers: HashMap<Lane, Arc<Poller>> = HashMap::new();
    let stop_polling = CancellationToken::new();
    let mut poller_tasks = Vec::new();
    let mut jobs = tokio::task::JoinSet::new();

    for item in &plan.items {
        let (database, instance) = (item.database.clone(), item.instance.clone());
        match item.verdict {
            Verdict::Skip => events.emit(Event::Skipped {
                database,
                instance,
                why: Skip::AlreadyThere,
                reason: "already there".into(),
            }),
            Verdict::Done => match &item.checks_left {
                // Its checks after the import did not all run: they do now,
                // in one of its instance's check slots.
                Some(earlier) => {
                    let check = verification(&m.databases[item.index], earlier.clone());
                    let events = Arc::clone(&events);
                    jobs.spawn(async move { check.run(&database, &instance, &events).await });
                }
                None => events.emit(Event::Skipped {
                    database,
                    instance,
                    why: Skip::ImportedEarlier,
                    reason: "imported by an earlier run".into(),
                }),
            },
            Verdict::NotReady => {
                let reason = format!("not ready: {}", item.reasons().join("; "));
                events.emit(Event::Skipped {
                    database,
                    instance,
                    why: Skip::NotReady,
                    reason,
                });
            }
            Verdict::Ready | Verdict::Attach | Verdict::Replace => {
                events.emit(Event::Planned {
                    database: database.clone(),
                    instance: instance.clone(),
                    method: item.method,
                    files: item.files.len(),
                    size: item.size,
                });
                let db = &m.databases[item.index];
                let lane = ctx.lane_of(db);
                let target = Arc::clone(&ctx.targets[&lane]);
                let poller = pollers
                    .entry(lane)
                    .or_insert_with(|| {
                        let p = Poller::new(Arc::clone(&target), Arc::clone(&events));
                        poller_tasks.push(tokio::spawn(Arc::clone(&p).run(stop_polling.clone())));
                        p
                    })
                    .clone();
                let slots = instance_slots(&mut per_instance, &instance);
                let job = Job {
                    import: Import {
                        database,
                        owner: db.route.owner().map(str::to_owned),
                        files: item.files.iter().map(|f| f.uri.clone()).collect(),
                        bucket_uri: ctx.s3.bucket_uri(),
                        access_key: m.s3.access_key.clone(),
                        secret_key: m.s3.secret_key.clone(),
                    },
                    instance,
                    keys: item.files.iter().map(|f| f.key.clone()).collect(),
                    method: item.method,
                    attach: item.verdict == Verdict::Attach,
                    replace: item.verdict == Verdict::Replace,
                    timeout: db.timeout,
                    verification: verification(db, Vec::new()),
                };
                let (events, global, stop) = (
                    Arc::clone(&events),
                    Arc::clone(&global),
                    options.stop_submitting.clone(),
                );
                jobs.spawn(
                    async move { job.run(target, poller, slots, global, stop, events).await },
                );
            }
        }
    }
    while jobs.join_next().await.is_some() {}
    stop_polling.cancel();
    for task in poller_tasks {
        let _ = task.await;
    }
}

/// The checks after one import, those an earlier run finished left out.
struct Verification {
    verifier: Arc<crate::verify::Verifier>,
    /// The instance's slots for checks.
    slots: Arc<Semaphore>,
    work: crate::verify::Work,
    earlier: Vec<crate::verify::Checked>,
    strict: bool,
}

impl Verification {
    /// Waits for a check slot, then checks. What waits is small: the
    /// checks' own future (logins, queries: about 24 KB) is boxed, and
    /// allocated only when they start, so ten thousand waiting imports do
    /// not each hold one.
    async fn run(&self, database: &str, instance: &str, events: &Events) {
        let Ok(_slot) = self.slots.acquire().await else {
            return;
        };
        Box::pin(self.checks(database, instance, events)).await;
    }

    async fn checks(&self, database: &str, instance: &str, events: &Events) {
        let pending = crate::verify::Check::left(&self.work.settings, &self.earlier);
        if !pending.is_empty() {
            events.emit(Event::Verifying {
                database: database.to_owned(),
                instance: instance.to_owned(),
                checks: pending,
            });
        }
        let ended = |c: crate::verify::Checked| {
            events.emit(Event::Checked {
                database: database.to_owned(),
                instance: instance.to_owned(),
                check: c.check,
                findings: c.findings,
            })
        };
        let now = self
            .verifier
            .verify(&self.work, &self.earlier, &ended)
            .await;
        let all = self
            .earlier
            .iter()
            .flat_map(|c| c.findings.iter().cloned())
            .chain(now)
            .collect();
        let (findings, failed) = crate::verify::verdict(all, self.strict);
        events.emit(Event::Verified {
            database: database.to_owned(),
            instance: instance.to_owned(),
            failed,
            findings,
        });
    }
}

struct Job {
    import: Import,
    instance: String,
    /// The object keys and the import path, for the journal.
    keys: Vec<String>,
    method: crate::import_path::Method,
    attach: bool,
    /// Drop the existing database first (`on_exists: replace`).
    replace: bool,
    timeout: Duration,
    verification: Verification,
}

enum Submission {
    Sent(Instant),
    Failed(Failure),
    Interrupted,
}

impl Job {
    fn event_ids(&self) -> (String, String) {
        (self.import.database.clone(), self.instance.clone())
    }

    async fn run(
        self,
        target: Arc<dyn ImportPath>,
        poller: Arc<Poller>,
        instance_slots: Arc<Semaphore>,
        global_slots: Arc<Semaphore>,
        stop: CancellationToken,
        events: Arc<Events>,
    ) {
        let (database, instance) = self.event_ids();
        // Instance slot first, then a global one: no head-of-line blocking.
        let slots = async {
            let i = instance_slots.acquire_owned().await.ok()?;
            let g = global_slots.acquire_owned().await.ok()?;
            Some((i, g))
        };
        let _slots = tokio::select! {
            biased;
            () = stop.cancelled() => None,
            s = slots => s,
        };
        if _slots.is_none() {
            events.emit(Event::Interrupted { database, instance });
            return;
        }
        if self.replace
            && let Err(failure) = self.drop_existing(target.as_ref(), &events).await
        {
            events.emit(Event::failed(database, instance, failure));
            return;
        }
        let submitted = if self.attach {
            events.emit(Event::Attached {
                database: database.clone(),
                instance: instance.clone(),
            });
            Instant::now()
        } else {
            match self.submit(target.as_ref(), &stop, &events).await {
                Submission::Sent(at) => at,
                Submission::Failed(failure) => {
                    events.emit(Event::failed(database, instance, failure));
                    return;
                }
                Submission::Interrupted => {
                    events.emit(Event::Interrupted { database, instance });
                    return;
                }
            }
        };
        let finished = poller.watch(&database, &instance, submitted);
        match tokio::time::timeout_at(submitted + self.timeout, finished).await {
            Ok(Ok(Finished::Online)) => {
                let seconds = submitted.elapsed().as_secs_f64();
                events.emit(Event::Online {
                    database: database.clone(),
                    instance: instance.clone(),
                    seconds,
                });
                // The import's slots go to the next import; the checks
                // take one of their own.
                drop(_slots);
                self.verification.run(&database, &instance, &events).await;
            }
            Ok(Ok(Finished::Failed(failure))) => {
                events.emit(Event::failed(database, instance, failure))
            }
            Ok(Err(_)) => events.emit(Event::failed(database, instance, Failure::PollingStopped)),
            Err(_) => {
                poller.forget(&database);
                events.emit(Event::TimedOut {
                    database,
                    instance,
                    after_seconds: self.timeout.as_secs_f64(),
                });
            }
        }
    }

    /// Drops the existing database and waits until its name is free, at
    /// most the import's timeout; a failure leaves it as it was and nothing
    /// is submitted.
    async fn drop_existing(&self, target: &dyn ImportPath, events: &Events) -> Result<(), Failure> {
        let (database, instance) = self.event_ids();
        let failed = |why: String| Failure::DropFailed {
            by: target.label().to_owned(),
            why,
        };
        events.emit(Event::Dropping {
            database: database.clone(),
            instance: instance.clone(),
        });
        target
            .drop_database(&database)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let deadline = Instant::now() + self.timeout;
        let gap = target.min_poll_gap().max(Duration::from_millis(200));
        loop {
            match target.inventory(crate::import_path::Want::Both).await {
                Ok(inventory) if inventory.presence(&database) == Presence::Absent => break,
                Ok(_) | Err(StatusError::Transient(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(gap).await;
                }
                Ok(_) => {
                    return Err(failed(format!(
                        "the name is still taken {} s after the drop",
                        self.timeout.as_secs()
                    )));
                }
                Err(e) => return Err(failed(e.to_string())),
            }
        }
        events.emit(Event::Dropped { database, instance });
        Ok(())
    }

    /// Submits, never twice blindly: after an unknown outcome it looks
    /// whether the import started, and only submits again when the
    /// database is certainly absent.
    async fn submit(
        &self,
        target: &dyn ImportPath,
        stop: &CancellationToken,
        events: &Events,
    ) -> Submission {
        let (database, instance) = self.event_ids();
        let mut backoff = Backoff::default();
        let mut attempt = 0;
        let mut uncertain = false;
        loop {
            attempt += 1;
            events.emit(Event::Submitting {
                database: database.clone(),
                instance: instance.clone(),
                attempt,
                files: self.keys.clone(),
                method: Some(self.method),
                owner: self.import.owner.clone(),
            });
            let (reason, retry_after) = match target.submit(&self.import).await {
                Ok(()) => {
                    events.emit(Event::Submitted {
                        database,
                        instance,
                        attempt,
                    });
                    // The server starts the restore while it answers: the
                    // answer's arrival is the best estimate of that moment,
                    // which the poller's completion estimates build on.
                    return Submission::Sent(Instant::now());
                }
                Err(SubmitError::Refused(why)) => {
                    return Submission::Failed(Failure::Refused {
                        by: target.label().to_owned(),
                        why,
                    });
                }
                Err(SubmitError::Exists(why)) if uncertain => {
                    // Our earlier, unanswered attempt got through.
                    tracing::info!("{database}: {why}; an earlier attempt was accepted");
                    events.emit(Event::Submitted {
                        database,
                        instance,
                        attempt,
                    });
                    return Submission::Sent(Instant::now());
                }
                Err(SubmitError::Exists(why)) => {
                    return Submission::Failed(Failure::Exists {
                        by: target.label().to_owned(),
                        why,
                    });
                }
                Err(SubmitError::Unknown {
                    message,
                    retry_after,
                }) => (message, retry_after),
            };
            uncertain = true;
            match look(target, &database).await {
                Ok(true) => {
                    events.emit(Event::Submitted {
                        database,
                        instance,
                        attempt,
                    });
                    return Submission::Sent(Instant::now());
                }
                Ok(false) => {}
                Err(lookup) => {
                    return Submission::Failed(Failure::OutcomeUnknown {
                        by: target.label().to_owned(),
                        cause: reason,
                        lookup: lookup.to_string(),
                    });
                }
            }
            let Some(delay) = backoff.next_delay(retry_after) else {
                return Submission::Failed(Failure::GaveUp {
                    attempts: attempt,
                    cause: reason,
                });
            };
            events.emit(Event::Retried {
                database: database.clone(),
                instance: instance.clone(),
                attempt,
                reason: reason.clone(),
                delay_ms: delay.as_millis() as u64,
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return Submission::Interrupted,
            }
        }
    }
}

/// Whether the database now exists or is being restored. Absent twice, a
/// second apart, counts as absent: a restore may take a moment to show.
async fn look(target: &dyn ImportPath, database: &str) -> Result<bool, StatusError> {
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let inventory = target.inventory(crate::import_path::Want::Both).await?;
        if !matches!(
            inventory.presence(database),
            Presence::Absent | Presence::Unknown
        ) {
            return Ok(true);
        }
    }
    Ok(false)
}
