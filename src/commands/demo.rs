//! `demo`: the whole job on a laptop, through [`crate::ops::demo`]: the
//! emulator in-process, its bucket filled, and the same `apply` a user runs.

use super::shared;
use crate::Exit;
use crate::cli::Global;
use crate::ops::ApplyRequest;
use crate::ops::demo::{self, DemoError};
use tokio_util::sync::CancellationToken;

pub fn run(global: &Global) -> Exit {
    let runtime = match shared::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    runtime.block_on(async {
        let demo = match demo::prepare().await {
            Ok(demo) => demo,
            Err(DemoError::Manifest(rejected)) => {
                let source = rejected.source.as_source();
                super::validate::print_human(global, &source, &rejected.diagnostics);
                return Exit::Failed;
            }
            Err(e) => {
                errln!("error: {}", crate::redact::text(&e.to_string()));
                return Exit::Failed;
            }
        };
        let emu = &demo.emulator;
        errln!(
            "Started the STACKIT emulator: API {}, S3 {}, SQL Server {} (all on loopback).",
            emu.api_endpoint(),
            emu.s3_endpoint(),
            emu.tds[0]
        );
        errln!(
            "Uploaded {} generated backups (sales is a 3-stripe set, billing a 2-stripe set \
             under a prefix, inventory is compressed).\n",
            demo.uploaded
        );
        let Ok(selected) = shared::shown(global, Ok(demo.selected)) else {
            return Exit::Failed;
        };
        let Ok(state) = tempfile::tempdir() else {
            errln!("error: cannot create a temporary state folder");
            return Exit::Failed;
        };
        let imported = selected.indexes.len();
        // The same `apply` a user runs, on the emulator's environment, with
        // its state in a temporary folder.
        let env = |name: &str| demo.env.get(name).cloned();
        let request = ApplyRequest {
            selected,
            manifest_path: std::path::Path::new(demo::MANIFEST_NAME),
            shard: None,
            state: Some(state.path().to_owned()),
            max_parallel: None,
            plan: crate::plan::Options::default(),
            skip_invalid: false,
            report: None,
            junit: None,
            stop_submitting: CancellationToken::new(),
            env: &env,
        };
        let exit = super::apply::render(global, request, true).await;
        let paths: Vec<String> = demo
            .by_path
            .iter()
            .map(|(path, n)| format!("{n} via {}", path.title()))
            .collect();
        outln!(
            "\n{}\n\nTo do the same against STACKIT: put your backups in a STACKIT object storage bucket, \
             copy examples/migration.yaml to my.yaml and write in your bucket, instances and databases. \
             `sqlflex-import validate my.yaml` names every environment variable and secret file it still \
             needs; then:\n  \
             sqlflex-import validate my.yaml && sqlflex-import plan my.yaml && sqlflex-import apply my.yaml",
            if exit == Exit::Success {
                format!(
                    "Demo done: {imported} databases imported through both paths ({}).",
                    paths.join(", ")
                )
            } else {
                "Demo finished with failures (see above).".to_owned()
            }
        );
        demo.emulator.stop().await;
        exit
    })
}
