use super::shared;
use crate::Exit;
use crate::cli::{Format, Global, SelectArgs};
use crate::manifest;
use crate::ops::{ChecksSaid, Now, Recorded, StatusRow};
use std::path::Path;

pub fn run(global: &Global, path: &Path, select: &SelectArgs, state: Option<&Path>) -> Exit {
    let (selected, state, runtime) = match shared::load_with_state(global, path, select, state) {
        Ok(x) => x,
        Err(exit) => return exit,
    };
    let rows = match runtime.block_on(crate::ops::status(selected, &manifest::process_env, &state))
    {
        Ok(rows) => rows,
        Err(e) => {
            errln!("error: {e}");
            return Exit::Invalid;
        }
    };
    if global.format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&rows).expect("JSON"));
    } else {
        outln!("{}", table(&rows));
    }
    if rows.iter().any(|r| matches!(r.now, Now::Unknown { .. })) {
        Exit::Failed
    } else {
        Exit::Success
    }
}

fn table(rows: &[StatusRow]) -> String {
    let header = [
        "DATABASE",
        "INSTANCE",
        "METHOD",
        "STATE SAYS",
        "INSTANCE SAYS",
        "CHECKS AFTER IMPORT",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.database.clone(),
                r.instance.clone(),
                r.method.as_str().into(),
                match r.recorded {
                    Recorded::Nothing => "-",
                    Recorded::Imported => "imported",
                    Recorded::Submitted => "submitted",
                    Recorded::Failed => "failed",
                    Recorded::TimedOut => "timed out",
                    Recorded::Dropped => "dropped",
                    Recorded::Skipped => "skipped",
                }
                .into(),
                match &r.now {
                    Now::Online => "online".into(),
                    Now::OnlineNotOurs => "online, not imported by this state".into(),
                    Now::Restoring { percent: Some(p) } => format!("restoring, {p}%"),
                    Now::Restoring { percent: None } => "restoring".into(),
                    Now::Missing => "missing".into(),
                    Now::OtherState => "present, not online".into(),
                    Now::Unknown { error } => format!("unknown: {error}"),
                },
                match &r.checks {
                    ChecksSaid::None => "-".into(),
                    ChecksSaid::Passed { warnings } if warnings.is_empty() => "passed".into(),
                    ChecksSaid::Passed { warnings } => {
                        format!("passed, warnings: {}", warnings.join(", "))
                    }
                    ChecksSaid::Failed { codes } => format!("FAILED: {}", codes.join(", ")),
                    ChecksSaid::Unfinished => "not all run; the next apply runs them".into(),
                },
            ]
        })
        .collect();
    crate::table::render(&header, &cells)
}
