//! `discover`: runs [`crate::ops::discover`], lists what was left out on
//! stderr, and writes the manifest (stdout or `-o`).

use super::shared;
use super::validate::print_human;
use crate::Exit;
use crate::cli::{DiscoverArgs, Global};
use crate::manifest;
use crate::ops::discover::{self, DiscoverError, DiscoverRequest, Discovered};
use std::collections::BTreeMap;
use std::io::Write;

pub fn run(global: &Global, args: &DiscoverArgs) -> Exit {
    let runtime = match shared::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let request = DiscoverRequest {
        base: &args.base,
        prefixes: args.prefix.clone(),
        instance: args.instance.clone(),
        method: args.method,
        name_template: args.name_template.clone(),
        tags: args.tags.clone(),
        env: &manifest::process_env,
    };
    let found = match runtime.block_on(discover::discover(request)) {
        Ok(found) => found,
        Err(DiscoverError::Base(rejected)) => {
            print_human(global, &rejected.source.as_source(), &rejected.diagnostics);
            errln!("{}: the base manifest is not valid", rejected.source.name);
            return Exit::Invalid;
        }
        Err(e @ DiscoverError::Listing { .. }) => {
            errln!("error: {}", crate::redact::terminal(&e.to_string()));
            return Exit::Failed;
        }
        Err(e) => {
            errln!("error: {}", crate::redact::terminal(&e.to_string()));
            return Exit::Invalid;
        }
    };
    if !global.quiet {
        print_left_out(&found);
    }
    let written_is_valid = match &found.checked {
        Some(Ok(loaded)) => {
            print_human(global, &loaded.source.as_source(), &loaded.warnings);
            true
        }
        Some(Err(rejected)) => {
            print_human(global, &rejected.source.as_source(), &rejected.diagnostics);
            false
        }
        None => true,
    };
    if !written_is_valid {
        errln!(
            "error: the manifest with the discovered databases does not validate (see above); \
             nothing was written"
        );
        return Exit::Invalid;
    }
    if let Some(path) = &args.output
        && let Err(e) = write_atomically(path, &found.manifest)
    {
        errln!("error: cannot write {}: {e}", path.display());
        return Exit::Failed;
    }
    if super::is_json(global) {
        super::print_json(&found);
    } else if args.output.is_none() {
        out!("{}", found.manifest);
    }
    errln!(
        "discover: {} object{} read; {} database{} added, {} left out{}",
        found.objects,
        if found.objects == 1 { "" } else { "s" },
        found.chosen.len(),
        if found.chosen.len() == 1 { "" } else { "s" },
        found.left_out.len(),
        match &args.output {
            Some(p) => format!("; written to {}", p.display()),
            None => String::new(),
        }
    );
    Exit::Success
}

/// What was left out, grouped by source database, on stderr.
fn print_left_out(found: &Discovered) {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &found.left_out {
        let who = match (&l.database, &l.server) {
            (Some(d), Some(s)) => format!("{d} (on {s})"),
            _ => "objects that are not backups of a database".to_owned(),
        };
        let keys = l.keys.join(", ");
        for f in &l.findings {
            groups
                .entry(who.clone())
                .or_default()
                .push(format!("{keys}: {}: {}", f.code, f.message));
        }
    }
    for (who, lines) in groups {
        errln!("left out: {}", crate::redact::terminal(&who));
        for line in lines {
            errln!("  {}", crate::redact::terminal(&line));
        }
    }
}

/// Writes beside the target, then renames: a reader never sees half a
/// manifest, and `-o` may name the base itself.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
