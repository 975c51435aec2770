//! `verify`: the checks `apply` runs after each import, on demand, on the
//! selected databases that exist. Read-only, except what the manifest's
//! `verify` asks to change (`orphaned_users: fix`, a compatibility level).

use crate::import_path::Presence;
use crate::manifest::Env;
use crate::plan::{Context, TargetsError};
use crate::rules::Finding;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What `verify` found about one database.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub database: String,
    pub instance: String,
    pub outcome: VerifyOutcome,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    Passed,
    Failed,
    /// Not on the instance (not imported yet, or restoring): nothing to check.
    Absent,
    /// Its instance could not be asked which databases it has.
    Unknown,
}

pub struct VerifyRequest {
    pub selected: super::Selected,
    pub strict: bool,
}

/// Checks every selected database that exists, at most `per_instance` at a
/// time on an instance and `max_parallel` over all.
pub async fn verify(request: VerifyRequest, env: Env<'_>) -> Result<Vec<Verified>, TargetsError> {
    let super::Selected { loaded, indexes } = request.selected;
    let ctx = Arc::new(Context::new(loaded, &indexes, env)?);
    let m = &ctx.loaded.valid;
    let inventories = ctx.inventories(&indexes).await;
    let global = Arc::new(Semaphore::new(m.max_parallel.max(1) as usize));
    let per_instance: HashMap<String, Arc<Semaphore>> = m
        .instances
        .iter()
        .map(|(name, i)| {
            (
                name.clone(),
                Arc::new(Semaphore::new(i.max_parallel.max(1) as usize)),
            )
        })
        .collect();
    let checks = indexes.iter().map(|&i| {
        let ctx = Arc::clone(&ctx);
        let db = ctx.loaded.valid.databases[i].clone();
        let presence = inventories[&ctx.lane_of(&db)]
            .as_ref()
            .map(|inv| inv.presence(&db.name));
        let (global, local) = (Arc::clone(&global), Arc::clone(&per_instance[&db.instance]));
        let strict = request.strict;
        async move {
            let result = |outcome, findings| Verified {
                database: db.name.clone(),
                instance: db.instance.clone(),
                outcome,
                findings,
            };
            match presence {
                Ok(Presence::Online | Presence::Other) => {}
                Ok(_) => return result(VerifyOutcome::Absent, Vec::new()),
                Err(e) => {
                    let why = Finding::new(
                        crate::rules::Rule::CheckFailed,
                        format!("cannot list the databases of instance {}: {e}", db.instance),
                    );
                    return result(VerifyOutcome::Unknown, vec![why]);
                }
            }
            let (Ok(_l), Ok(_g)) = (local.acquire_owned().await, global.acquire_owned().await)
            else {
                return result(VerifyOutcome::Unknown, Vec::new());
            };
            let work = crate::verify::Work::of(&db);
            let found = ctx.verifiers[&db.instance]
                .verify(&work, &[], &|_| {})
                .await;
            let (findings, failed) = crate::verify::verdict(found, strict);
            let outcome = if failed {
                VerifyOutcome::Failed
            } else {
                VerifyOutcome::Passed
            };
            result(outcome, findings)
        }
    });
    Ok(futures::future::join_all(checks).await)
}
