//! A local stand-in for STACKIT SQLServer Flex: the REST API, an S3 bucket
//! and each instance's SQL Server endpoint, all on loopback, over one shared
//! model, so a migration can be rehearsed on a laptop and every test has
//! something real to talk to. `start` runs it inside any tokio runtime;
//! `sqlflex-import emulator` runs it as a process.

mod api;
mod bucket;
mod faults;
pub(crate) mod keys;
pub mod model;
mod restore;
mod serve;
pub mod tds;

use model::{Model, OwnS3};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const REGION: &str = "eu01";
pub const BUCKET: &str = "sqlflex-backups";

#[derive(Debug, Clone)]
pub struct Config {
    pub api_addr: SocketAddr,
    pub s3_addr: SocketAddr,
    /// The first instance's SQL endpoint; instance N listens on port + N
    /// (or each on a free port when the port is 0).
    pub tds_addr: SocketAddr,
    /// Where the bucket and the service-account key live; a temporary
    /// folder, removed on stop, when not given.
    pub data_dir: Option<PathBuf>,
    pub instances: usize,
    pub restore_duration: Duration,
    pub fault_rate: f64,
    pub reset_rate: f64,
    pub seed: u64,
    /// Fixed credentials (tests use recognisable ones); generated when None.
    pub credentials: Option<Credentials>,
    /// How each instance is set up (state, version, storage, users); the
    /// defaults for instances beyond the list.
    pub instance_settings: Vec<model::InstanceSettings>,
    /// Failed SQL logins in a row that lock the login (SQL Server's
    /// CHECK_POLICY under an account lockout policy); None: never locked.
    pub lockout_after: Option<u32>,
    /// A certificate for the SQL Server doors: with it they speak TLS as
    /// SQL Server does (see `tds::wire::negotiate`); without, they answer
    /// "encryption not supported".
    pub tds_tls: Option<tds::TlsIdentity>,
    /// With `tds_tls`: the doors force encryption (SQL Server's "Force
    /// Encryption"): a client with encryption off gets the whole session
    /// in TLS, one that offers none is refused.
    pub tds_force_encryption: bool,
}

impl Default for Config {
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Config {
            api_addr: loopback,
            s3_addr: loopback,
            tds_addr: loopback,
            data_dir: None,
            instances: 2,
            restore_duration: Duration::from_secs(2),
            fault_rate: 0.0,
            reset_rate: 0.0,
            seed: 0,
            credentials: None,
            instance_settings: Vec::new(),
            lockout_after: None,
            tds_tls: None,
            tds_force_encryption: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub token: String,
    pub s3_access_key: String,
    pub s3_secret_key: String,
    pub sql_user: String,
    pub sql_password: String,
}

impl Credentials {
    fn generate() -> Self {
        let random = || uuid::Uuid::new_v4().simple().to_string();
        Credentials {
            token: format!("emu-{}", random()),
            s3_access_key: format!("EMU{}", &random()[..17].to_uppercase()),
            s3_secret_key: format!("{}{}", random(), &random()[..8]),
            sql_user: "sqlflex".into(),
            sql_password: format!("Pw-{}", random()),
        }
    }
}

/// A running emulator. Dropping it stops the listeners; `stop` also waits.
pub struct Emulator {
    pub api: SocketAddr,
    pub s3: SocketAddr,
    /// One SQL endpoint per instance, in the order of `instance_ids`.
    pub tds: Vec<SocketAddr>,
    pub project_id: String,
    pub instance_ids: Vec<String>,
    pub credentials: Credentials,
    pub key_path: PathBuf,
    pub data_dir: PathBuf,
    pub model: Arc<Model>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

/// Ids that look like STACKIT's UUIDs and are the same for the same seed.
fn id(seed: u64, n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        0x5f1e_c0de ^ (seed as u32),
        (seed >> 32) as u16,
        n & 0xfff,
        seed & 0xfff,
        n
    )
}

fn authority(addr: SocketAddr) -> String {
    addr.to_string()
}

pub async fn start(config: Config) -> std::io::Result<Emulator> {
    let (data_dir, temp) = match &config.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("sqlflex-emulator-")
                .tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let s3_root = data_dir.join("s3");
    tokio::fs::create_dir_all(s3_root.join(BUCKET)).await?;

    let tds_tls = config
        .tds_tls
        .as_ref()
        .map(tds::tls_server_config)
        .transpose()
        .map_err(std::io::Error::other)?;
    let api_listener = TcpListener::bind(config.api_addr).await?;
    let s3_listener = TcpListener::bind(config.s3_addr).await?;
    let mut tds_listeners = Vec::new();
    for i in 0..config.instances.max(1) {
        let mut addr = config.tds_addr;
        if addr.port() != 0 {
            // Port + i, never wrapping around to the low ports.
            let port = u16::try_from(i)
                .ok()
                .and_then(|i| addr.port().checked_add(i))
                .ok_or_else(|| {
                    std::io::Error::other(format!(
                        "{} instances from port {} run past port 65535",
                        config.instances,
                        addr.port()
                    ))
                })?;
            addr.set_port(port);
        }
        tds_listeners.push(TcpListener::bind(addr).await?);
    }
    let api = api_listener.local_addr()?;
    let s3 = s3_listener.local_addr()?;
    let tds: Vec<SocketAddr> = tds_listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<_, _>>()?;

    let credentials = config
        .credentials
        .clone()
        .unwrap_or_else(Credentials::generate);
    let project_id = id(config.seed, 0xfff);
    let instance_ids: Vec<String> = (0..tds.len())
        .map(|i| id(config.seed, i as u64 + 1))
        .collect();
    let model = Arc::new(
        Model::new(
            project_id.clone(),
            REGION.into(),
            &instance_ids,
            &config.instance_settings,
            OwnS3 {
                authority: authority(s3),
                bucket: BUCKET.into(),
                access_key: credentials.s3_access_key.clone(),
                secret_key: credentials.s3_secret_key.clone(),
                root: s3_root.clone(),
            },
            config.restore_duration,
        )
        .with_lockout_after(config.lockout_after),
    );

    let account = keys::ServiceAccount::new(format!("http://{api}/token"));
    let key_path = data_dir.join("service-account-key.json");
    let account = tokio::task::spawn_blocking({
        let key_path = key_path.clone();
        move || account.write_key_file(&key_path).map(|()| account)
    })
    .await
    .map_err(std::io::Error::other)??;

    let shutdown = CancellationToken::new();
    let faults = Arc::new(faults::Faults::new(
        config.fault_rate,
        config.reset_rate,
        config.seed,
    ));
    let mut tasks = Vec::new();

    let state = Arc::new(api::ApiState {
        model: Arc::clone(&model),
        token: credentials.token.clone(),
        account,
        faults: faults::Faults::new(config.fault_rate, config.reset_rate, config.seed),
    });
    tasks.push(tokio::spawn(serve::serve_router(
        api_listener,
        api::router(state),
        shutdown.clone(),
    )));

    let fs =
        s3s_fs::FileSystem::new(&s3_root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let mut builder = s3s::service::S3ServiceBuilder::new(bucket::Bucket {
        fs,
        root: s3_root.clone(),
    });
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        credentials.s3_access_key.clone(),
        credentials.s3_secret_key.clone(),
    ));
    tasks.push(tokio::spawn(serve::serve_s3(
        s3_listener,
        builder.build(),
        shutdown.clone(),
    )));

    for (listener, instance) in tds_listeners.into_iter().zip(&instance_ids) {
        let door = Arc::new(tds::TdsDoor {
            model: Arc::clone(&model),
            faults: Arc::clone(&faults),
            instance: instance.clone(),
            user: credentials.sql_user.clone(),
            password: credentials.sql_password.clone(),
            tls: tds_tls.clone(),
            force_encryption: config.tds_force_encryption,
        });
        tasks.push(tokio::spawn(serve::accept_loop(
            listener,
            shutdown.clone(),
            move |stream, _| Arc::clone(&door).session(stream),
        )));
    }

    Ok(Emulator {
        api,
        s3,
        tds,
        project_id,
        instance_ids,
        credentials,
        key_path,
        data_dir,
        model,
        shutdown,
        tasks,
        _temp: temp,
    })
}

impl Emulator {
    pub fn api_endpoint(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }

    /// The variables `--print-env` prints, in order.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let c = &self.credentials;
        vec![
            ("STACKIT_API_ENDPOINT", self.api_endpoint()),
            ("STACKIT_SERVICE_ACCOUNT_TOKEN", c.token.clone()),
            ("STACKIT_PROJECT_ID", self.project_id.clone()),
            ("STACKIT_REGION", REGION.into()),
            ("STACKIT_INSTANCE_ID", self.instance_ids[0].clone()),
            ("STACKIT_INSTANCE_IDS", self.instance_ids.join(",")),
            (
                "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
                self.key_path.display().to_string(),
            ),
            ("S3_ENDPOINT", self.s3_endpoint()),
            ("S3_BUCKET", BUCKET.into()),
            ("S3_ACCESS_KEY", c.s3_access_key.clone()),
            ("S3_SECRET_KEY", c.s3_secret_key.clone()),
            ("SQL_HOST", self.tds[0].ip().to_string()),
            ("SQL_PORT", self.tds[0].port().to_string()),
            (
                "SQL_PORTS",
                self.tds
                    .iter()
                    .map(|a| a.port().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("SQL_USER", c.sql_user.clone()),
            ("SQL_PASSWORD", c.sql_password.clone()),
        ]
    }

    /// Stops accepting, ends the connections, waits for the listeners.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
