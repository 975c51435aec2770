//! `demo` as an operation: the emulator started in-process, generated
//! backups (a striped set among them) uploaded through its S3, and
//! examples/demo.yaml loaded against it, ready for the same [`super::apply`]
//! a user runs.

use super::Selected;
use crate::backup::writer::{self, BackupSpec};
use crate::emulator::{self, Config, Emulator};
use crate::import_path::Method;
use crate::manifest::{self, Rejected};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const MANIFEST: &str = include_str!("../../examples/demo.yaml");
/// The name the manifest's diagnostics carry.
pub const MANIFEST_NAME: &str = "examples/demo.yaml";

/// The emulator with the demo's backups in its bucket, and the manifest.
pub struct Demo {
    pub emulator: Emulator,
    /// The emulator's environment (endpoints, keys, ids), which the
    /// manifest's `${VAR}`s read.
    pub env: HashMap<String, String>,
    pub selected: Selected,
    /// Objects uploaded.
    pub uploaded: usize,
    /// Databases per import path.
    pub by_path: BTreeMap<Method, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the emulator: {0}")]
    Start(std::io::Error),
    #[error("examples/demo.yaml does not load against the emulator")]
    Manifest(Box<Rejected>),
    #[error("cannot set up the S3 client: {0}")]
    S3(#[from] crate::s3::SetupError),
    #[error("cannot upload {key}: {error}")]
    Upload {
        key: String,
        error: crate::s3::S3Error,
    },
}

impl Demo {
    /// The manifest's environment, for [`super::ApplyRequest::env`].
    pub fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
}

/// Starts the emulator, uploads the backups and loads the manifest.
pub async fn prepare() -> Result<Demo, DemoError> {
    let emulator = emulator::start(Config {
        restore_duration: Duration::from_secs(4),
        instances: 1,
        ..Config::default()
    })
    .await
    .map_err(DemoError::Start)?;
    let env: HashMap<String, String> = emulator
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let lookup = |name: &str| env.get(name).cloned();
    let dir = std::env::current_dir().unwrap_or_default();
    let loaded = manifest::load_str(MANIFEST_NAME, MANIFEST, &dir, &lookup)
        .map_err(|r| DemoError::Manifest(Box::new(r)))?;
    let files = backups();
    let uploaded = files.len();
    upload(&loaded.valid.s3, files).await?;
    let mut by_path = BTreeMap::new();
    for db in &loaded.valid.databases {
        *by_path.entry(db.route.method()).or_default() += 1;
    }
    let indexes = (0..loaded.valid.databases.len()).collect();
    Ok(Demo {
        emulator,
        env,
        selected: Selected { loaded, indexes },
        uploaded,
        by_path,
    })
}

/// Puts examples/demo.yaml's backups into the bucket `s3` names.
pub async fn upload_backups(s3: &crate::manifest::valid::S3Access) -> Result<(), DemoError> {
    upload(s3, backups()).await
}

async fn upload(
    s3: &crate::manifest::valid::S3Access,
    files: Vec<(String, Vec<u8>)>,
) -> Result<(), DemoError> {
    let client = crate::s3::S3::new(s3, crate::http::client(crate::http::DEFAULT_TIMEOUT))?;
    for (key, bytes) in files {
        client
            .put(&key, bytes.into())
            .await
            .map_err(|error| DemoError::Upload { key, error })?;
    }
    Ok(())
}

/// The emulator's own bucket, as a client reaches it.
pub fn bucket_of(emulator: &Emulator) -> Result<crate::manifest::valid::S3Access, DemoError> {
    let endpoint = emulator
        .s3_endpoint()
        .parse()
        .map_err(|_| DemoError::Start(std::io::Error::other("the S3 address is not a URL")))?;
    Ok(crate::manifest::valid::S3Access {
        endpoint,
        bucket: crate::emulator::BUCKET.into(),
        access_key: crate::secret::Secret::new(emulator.credentials.s3_access_key.clone()),
        secret_key: crate::secret::Secret::new(emulator.credentials.s3_secret_key.clone()),
        region: crate::emulator::REGION.into(),
    })
}

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
