//! `demo`: the whole job on a laptop. Starts the emulator in-process,
//! uploads generated backups (a striped set among them) through its S3,
//! and applies examples/demo.yaml with both import paths.

use super::shared;
use crate::Exit;
use crate::backup::writer::{self, BackupSpec};
use crate::cli::{ApplyArgs, CheckArgs, Global, SelectArgs};
use crate::emulator::{self, Config};
use crate::manifest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const MANIFEST: &str = include_str!("../../examples/demo.yaml");

/// Keys and backup files for examples/demo.yaml: a striped set, plain
/// backups, one written WITH COMPRESSION (inventory), and a striped set
/// under a prefix.
fn backups() -> Vec<(String, Vec<u8>)> {
    let sized = |mut s: BackupSpec| {
        s.size = 512 * 1024;
        s
    };
    let mut out: Vec<(String, Vec<u8>)> = BackupSpec::striped("sales", 3)
        .into_iter()
        .map(|s| {
            let key = format!("demo/sales_{}.bak", s.family_sequence);
            (key, writer::write(&sized(s)))
        })
        .collect();
    for name in ["crm", "hr"] {
        let bytes = writer::write(&sized(BackupSpec::full(name)));
        out.push((format!("demo/{name}.bak"), bytes));
    }
    let inventory = writer::write(&sized(BackupSpec::full("inventory")));
    out.push(("demo/inventory.bak".into(), writer::compress(&inventory)));
    out.extend(BackupSpec::striped("billing", 2).into_iter().map(|s| {
        let key = format!("demo/billing/billing_{}of2.bak", s.family_sequence);
        (key, writer::write(&sized(s)))
    }));
    out
}

pub fn run(global: &Global) -> Exit {
    let runtime = match shared::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    runtime.block_on(async {
        let emu = match emulator::start(Config { restore_duration: Duration::from_secs(4), instances: 1, ..Config::default() }).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: cannot start the emulator: {e}");
                return Exit::Failed;
            }
        };
        eprintln!(
            "Started the STACKIT emulator: API {}, S3 {}, SQL Server {} (all on loopback).",
            emu.api_endpoint(),
            emu.s3_endpoint(),
            emu.tds[0]
        );
        let vars: HashMap<&str, String> = emu.env().into_iter().collect();
        let env = move |name: &str| vars.get(name).cloned();
        let dir = std::env::current_dir().unwrap_or_default();
        let loaded = match manifest::load_str("examples/demo.yaml", MANIFEST, &dir, &env) {
            Ok(l) => l,
            Err(rejected) => {
                super::validate::print_human(global, &rejected.source.as_source(), &rejected.diagnostics);
                return Exit::Failed;
            }
        };
        let s3 = match crate::s3::S3::new(&loaded.valid.s3, crate::plan::http_client()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failed;
            }
        };
        let files = backups();
        for (key, bytes) in files.iter() {
            if let Err(e) = s3.put(key, bytes.clone().into()).await {
                eprintln!("error: cannot upload {key}: {e}");
                return Exit::Failed;
            }
        }
        eprintln!(
            "Uploaded {} generated backups (sales is a 3-stripe set, billing a 2-stripe set under a prefix, \
             inventory is compressed).\n",
            files.len()
        );

        // The same `apply` a user runs, on the emulator's environment, with
        // its state in a temporary folder.
        let m = &loaded.manifest;
        let imported = m.databases.len();
        let via_api = m.databases.iter().filter(|db| m.method_of(db) == manifest::Method::Api).count();
        let Ok(selected) = shared::shown(global, crate::ops::select(loaded, &Default::default())) else {
            return Exit::Failed;
        };
        let Ok(state) = tempfile::tempdir() else {
            eprintln!("error: cannot create a temporary state folder");
            return Exit::Failed;
        };
        let args = ApplyArgs {
            manifest: PathBuf::from("examples/demo.yaml"),
            select: SelectArgs::default(),
            max_parallel: None,
            checks: CheckArgs::default(),
            state: Some(state.path().to_owned()),
            report: None,
            junit: None,
            yes: true,
            skip_invalid: false,
        };
        let exit = super::apply::apply_selected(global, &args, selected, &env).await;
        println!(
            "\n{}\n\nTo do the same against STACKIT: put your backups in a STACKIT object storage bucket, \
             copy examples/migration.yaml to my.yaml and write in your bucket, instances and databases. \
             `sqlflex-import validate my.yaml` names every environment variable and secret file it still \
             needs; then:\n  \
             sqlflex-import validate my.yaml && sqlflex-import plan my.yaml && sqlflex-import apply my.yaml",
            if exit == Exit::Success {
                format!(
                    "Demo done: {imported} databases imported through both paths ({via_api} via the REST API, {} via the stored procedure).",
                    imported - via_api
                )
            } else {
                "Demo finished with failures (see above).".to_owned()
            }
        );
        emu.stop().await;
        exit
    })
}
