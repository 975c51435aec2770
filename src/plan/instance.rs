//! The instance rules (I001-I009): whether each instance can take the
//! imports planned onto it. What the instance says about itself is asked
//! once per instance and path (`ImportPath::facts`), then every database that
//! passed its own checks is judged against it.

use super::{Context, Lane, PlanItem, Verdict};
use crate::backup;
use crate::import_path::{InstanceFacts, InstanceState, StatusError};
use crate::rules::{Finding, Rule};
use std::collections::BTreeMap;

/// A warning once the planned imports fill more than this of the storage.
const NEARLY_FULL: f64 = 0.8;

pub fn check(
    ctx: &Context,
    items: &mut [PlanItem],
    facts: &BTreeMap<Lane, Result<InstanceFacts, StatusError>>,
    unlisted: &std::collections::BTreeSet<&Lane>,
    problems: &mut Vec<super::SharedProblem>,
    strict: bool,
) {
    let m = &ctx.loaded.valid;
    // Lanes whose instance problem is in `problems` already, and where.
    let mut said: BTreeMap<Lane, usize> = BTreeMap::new();
    // Who the storage rule counts: every database that passed its own
    // checks and is not replaced (a drop frees what it held), whatever
    // the other instance rules find about it: each problem is said.
    let planned: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| i.verdict == Verdict::Ready)
        .map(|(n, _)| n)
        .collect();
    // A replaced database goes through the same restore as a new one.
    for item in items
        .iter_mut()
        .filter(|i| matches!(i.verdict, Verdict::Ready | Verdict::Replace))
    {
        let db = &m.databases[item.index];
        let lane = ctx.lane_of(db);
        let label = ctx.targets[&lane].label().to_owned();
        let facts = match &facts[&lane] {
            Ok(f) => f,
            // Its databases could not be listed either: said once already.
            Err(_) if unlisted.contains(&lane) => continue,
            Err(e) => {
                item.refuse(
                    Rule::InstanceUnreadable,
                    format!("cannot read what {label} is like (see the plan's problems)"),
                );
                match said.get(&lane) {
                    Some(&n) => problems[n].databases += 1,
                    None => {
                        said.insert(lane.clone(), problems.len());
                        problems.push(super::SharedProblem {
                            code: Rule::InstanceUnreadable,
                            message: format!("cannot read what {label} is like: {e}"),
                            databases: 1,
                        });
                    }
                }
                continue;
            }
        };
        let mut found = Vec::new();
        match &facts.state {
            None | Some(InstanceState::Ready) => {}
            Some(InstanceState::Busy(busy)) => found.push(Finding::new(
                Rule::InstanceBusy,
                format!("not ready: {label} is busy ({busy}); retry later"),
            )),
            Some(InstanceState::Unavailable(other)) => found.push(Finding::new(
                Rule::InstanceUnavailable,
                format!("{label} is {other}: nothing can be restored there"),
            )),
        }
        if let (Some(version), Some(summary)) = (&facts.version, &item.backup)
            && let Some(newest) = backup::newest_restorable(version)
            && summary.database_version > newest
            && summary.database_version <= backup::NEWEST_RESTORABLE
        {
            found.push(Finding::new(
                Rule::InstanceTooOld,
                format!(
                    "the backup comes from {} (database version {}); {label} runs SQL Server \
                     {version}, which restores database versions up to {newest}",
                    summary.source_version, summary.database_version
                ),
            ));
        }
        match (db.route.owner(), &facts.users) {
            (Some(owner), Some(users)) => match users.get(&owner.to_lowercase()) {
                None => found.push(Finding::new(
                    Rule::OwnerMissing,
                    format!(
                        "the owner `{owner}` is not a user of {label}; create it before the import"
                    ),
                )),
                Some(false) => found.push(Finding::new(
                    Rule::OwnerMissing,
                    format!("the owner `{owner}` is not active on {label}"),
                )),
                Some(true) => {}
            },
            // Only a route that has a default owner goes without one.
            (None, _) => found.push(Finding::new(
                Rule::OwnerDefault,
                format!(
                    "no owner given: the procedure's default applies, the login that runs it ({})",
                    facts
                        .current_login
                        .as_deref()
                        .unwrap_or("the manifest's sql.user")
                ),
            )),
            _ => {}
        }
        if let crate::manifest::verify::CompatibilityLevel::Level(n) = db.verify.compatibility_level
            && let Some(offered) = facts.levels.clone().or_else(|| {
                facts
                    .version
                    .as_deref()
                    .and_then(backup::major_of_release)
                    .and_then(|m| m.parse().ok())
                    .and_then(crate::verify::sql::levels_of_major)
            })
            && !offered.contains(&n)
        {
            let words: Vec<String> = offered.iter().map(u16::to_string).collect();
            found.push(Finding::new(
                Rule::LevelNotOffered,
                format!(
                    "`verify.compatibility_level: {n}`: {label} runs SQL Server {}, which offers \
                     {}",
                    facts.version.as_deref().unwrap_or("?"),
                    words.join(", ")
                ),
            ));
        }
        if facts.sees_every_database == Some(false) {
            found.push(Finding::new(
                Rule::DatabasesHidden,
                format!(
                    "the SQL login {} of {label} lacks VIEW ANY DATABASE: it sees only master, \
                     tempdb and the databases it owns, so neither a name already taken nor this \
                     import's progress would show; grant it, or import through the API",
                    facts
                        .current_login
                        .as_deref()
                        .map_or("of the manifest".to_owned(), |l| format!("`{l}`"))
                ),
            ));
        }
        record(item, found, strict);
    }
    capacity(items, &planned, facts, strict);
}

/// The planned imports of each instance, at a sure lower bound of their
/// restored size (the backup's data), against its storage.
fn capacity(
    items: &mut [PlanItem],
    planned_items: &[usize],
    facts: &BTreeMap<Lane, Result<InstanceFacts, StatusError>>,
    strict: bool,
) {
    let mut storage: BTreeMap<&str, u64> = BTreeMap::new();
    for ((instance, _), f) in facts {
        if let Ok(InstanceFacts {
            storage_gb: Some(gb),
            ..
        }) = f
        {
            storage.insert(instance.as_str(), *gb);
        }
    }
    let mut planned: BTreeMap<String, u64> = BTreeMap::new();
    for item in planned_items.iter().map(|&n| &items[n]) {
        // Sizes come from backup headers: saturate rather than overflow.
        let total = planned.entry(item.instance.clone()).or_default();
        *total = total.saturating_add(item.backup.as_ref().map_or(0, |b| b.backup_size));
    }
    for (instance, bytes) in planned {
        let Some(&gb) = storage.get(instance.as_str()) else {
            continue; // The SQL path cannot see the quota.
        };
        // GB read as GiB: the larger reading, so a refusal is never wrong.
        // A size the server made up must not overflow the sum.
        let capacity = gb.saturating_mul(1 << 30);
        let share = bytes as f64 / capacity.max(1) as f64;
        let numbers = format!(
            "the imports planned onto instance {instance} hold at least {} of data; its \
             storage is {gb} GB",
            super::human_size(bytes)
        );
        let finding = if bytes > capacity {
            Finding::new(Rule::StorageExceeded, format!("{numbers}: they do not fit"))
        } else if share > NEARLY_FULL {
            Finding::new(
                Rule::StorageNearlyFull,
                format!("{numbers} ({:.0} % of it)", share * 100.0),
            )
        } else {
            continue;
        };
        for &n in planned_items {
            if items[n].instance == instance {
                record(&mut items[n], vec![finding.clone()], strict);
            }
        }
    }
}

fn record(item: &mut PlanItem, found: Vec<Finding>, strict: bool) {
    for finding in found {
        let finding = if strict { finding.strict() } else { finding };
        if finding.refuses() {
            item.verdict = Verdict::NotReady;
        }
        item.findings.push(finding);
    }
}
