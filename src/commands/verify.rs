use super::shared;
use crate::Exit;
use crate::cli::{CheckArgs, Global, SelectArgs};
use crate::ops::{Verified, VerifyOutcome, VerifyRequest};
use std::path::Path;

pub fn run(global: &Global, path: &Path, select: &SelectArgs, checks: CheckArgs) -> Exit {
    let selected = match shared::load(global, path, select, &crate::manifest::process_env) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let runtime = match shared::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let request = VerifyRequest {
        selected,
        strict: checks.strict,
    };
    let results = match runtime.block_on(crate::ops::verify(request, &crate::manifest::process_env))
    {
        Ok(r) => r,
        Err(e) => {
            errln!("error: {e}");
            return Exit::Invalid;
        }
    };
    if super::is_json(global) {
        super::print_json(&serde_json::json!({ "databases": results }));
    } else {
        outln!("{}", table(&results));
    }
    let bad = results
        .iter()
        .any(|r| matches!(r.outcome, VerifyOutcome::Failed | VerifyOutcome::Unknown));
    if bad { Exit::Failed } else { Exit::Success }
}

fn table(results: &[Verified]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let outcome = match r.outcome {
                VerifyOutcome::Passed => "passed",
                VerifyOutcome::Failed => "FAILED",
                VerifyOutcome::Absent => "absent",
                VerifyOutcome::Unknown => "unknown",
            };
            let findings: Vec<String> = r.findings.iter().map(ToString::to_string).collect();
            vec![
                r.database.clone(),
                r.instance.clone(),
                outcome.to_owned(),
                findings.join("; "),
            ]
        })
        .collect();
    let count = |o: VerifyOutcome| results.iter().filter(|r| r.outcome == o).count();
    format!(
        "{}\n{} passed, {} failed, {} absent, {} unknown",
        crate::table::render(&["DATABASE", "INSTANCE", "VERIFY", "FINDINGS"], &rows),
        count(VerifyOutcome::Passed),
        count(VerifyOutcome::Failed),
        count(VerifyOutcome::Absent),
        count(VerifyOutcome::Unknown),
    )
}
