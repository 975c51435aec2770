use crate::Exit;
use crate::cli::EmulatorArgs;
use crate::emulator::model::InstanceSettings;
use crate::emulator::{self, Config, Emulator};
use std::io::Write;
use std::time::Duration;

pub fn run(args: &EmulatorArgs) -> Exit {
    // The errors quote what was given (a state, a file's text): shown, never
    // interpreted by the terminal.
    let tds_tls = match tds_identity(args) {
        Ok(identity) => identity,
        Err(e) => {
            errln!("error: {}", crate::redact::terminal(&e.to_string()));
            return Exit::Invalid;
        }
    };
    let sql_logins = if tds_tls.is_some() {
        "its SQL logins"
    } else {
        "its SQL logins (without TLS)"
    };
    for (door, addr) in [
        ("--api-addr", args.api_addr),
        ("--s3-addr", args.s3_addr),
        ("--tds-addr", args.tds_addr),
    ] {
        if !addr.ip().is_loopback() {
            errln!(
                "warning: {door} {addr} is reachable from other machines: the emulator's \
                 well-known test credentials, its bucket and {sql_logins} are open to them"
            );
        }
    }
    if args.tds_addr.port() != 0
        && u32::from(args.tds_addr.port()) + u32::from(args.instances.max(1)) - 1
            > u32::from(u16::MAX)
    {
        errln!(
            "error: {} instances from --tds-addr port {} run past port 65535",
            args.instances,
            args.tds_addr.port()
        );
        return Exit::Invalid;
    }
    let instance_settings = match instance_settings(args) {
        Ok(s) => s,
        Err(e) => {
            errln!("error: {}", crate::redact::terminal(&e.to_string()));
            return Exit::Invalid;
        }
    };
    let config = Config {
        api_addr: args.api_addr,
        s3_addr: args.s3_addr,
        tds_addr: args.tds_addr,
        data_dir: args.data_dir.clone(),
        instances: usize::from(args.instances),
        restore_duration: Duration::from_secs_f64(args.restore_seconds),
        fault_rate: args.fault_rate,
        reset_rate: args.reset_rate,
        seed: args.seed,
        credentials: None,
        instance_settings,
        lockout_after: args.lockout_after,
        tds_tls,
        tds_force_encryption: args.tds_force_encryption,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return Exit::Failed;
        }
    };
    runtime.block_on(async {
        let emulator = match emulator::start(config).await {
            Ok(e) => e,
            Err(e) => {
                errln!(
                    "error: cannot start the emulator: {}",
                    crate::redact::terminal(&e.to_string())
                );
                return Exit::Failed;
            }
        };
        // Handlers first: a signal that comes right after the listeners are
        // announced must stop the emulator cleanly, not kill it.
        let stop = match StopSignals::install() {
            Ok(s) => s,
            Err(e) => {
                errln!("error: cannot install signal handlers: {e}");
                return Exit::Failed;
            }
        };
        // The demo's backups, so `apply examples/demo.yaml` works at once.
        if !args.empty {
            let seeded = match crate::ops::demo::bucket_of(&emulator) {
                Ok(bucket) => crate::ops::demo::upload_backups(&bucket).await,
                Err(e) => Err(e),
            };
            if let Err(e) = seeded {
                errln!("error: cannot put the demo's backups into the bucket: {e}");
                emulator.stop().await;
                return Exit::Failed;
            }
        }
        if args.print_env {
            let mut out = std::io::stdout().lock();
            // Every instance by its index (0, 1, ...), then the variables
            // the examples read; SQL_PASSWORD comes last, as readers expect.
            for (i, (id, addr)) in emulator.instance_ids.iter().zip(&emulator.tds).enumerate() {
                let _ = writeln!(out, "STACKIT_INSTANCE_ID_{i}={}", shell_quote(id));
                let _ = writeln!(out, "SQL_PORT_{i}={}", addr.port());
            }
            for (key, value) in emulator.env() {
                let _ = writeln!(out, "{key}={}", shell_quote(&value));
            }
            let _ = out.flush();
        } else {
            outln!("{}", summary(&emulator, args));
        }
        stop.wait().await;
        errln!("stopping the emulator");
        emulator.stop().await;
        Exit::Success
    })
}

/// Single quotes, so `. ./emulator.env` and `eval` take values verbatim.
fn shell_quote(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:,@".contains(c))
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

fn summary(e: &Emulator, args: &EmulatorArgs) -> String {
    let tds_cert = args.tds_cert.as_deref();
    let c = &e.credentials;
    let sql: Vec<String> = e
        .tds
        .iter()
        .zip(&e.instance_ids)
        .map(|(addr, id)| format!("  {addr:<22} instance {id}"))
        .collect();
    format!(
        "sqlflex-import emulator is running; Ctrl-C stops it.\n\n\
         REST API   {api}   project {project}, region {region}\n\
         token      {token}   (or the key flow with {key})\n\
         S3         {s3}   bucket {bucket}, access key {ak}, secret {sk}\n\
         SQL Server (user {user}, password {pw}, {tls}):\n{sql}\n\n\
         Point sqlflex-import at it (the manifests read these variables):\n  \
         sqlflex-import emulator --print-env > emulator.env &\n  \
         set -a; . ./emulator.env; set +a\n  \
         sqlflex-import apply examples/demo.yaml   # its backups are in the bucket{empty}\n\n\
         Other clients: any S3 client with path-style addressing and region {region};\n\
         sqlcmd -S {sql_host},{sql_port} -U {user} -P '{pw}' {sqlcmd_tls}",
        empty = if args.empty {
            " (not with --empty: `sqlflex-import demo` does it all)"
        } else {
            ""
        },
        api = e.api_endpoint(),
        project = e.project_id,
        region = emulator::REGION,
        token = c.token,
        key = e.key_path.display(),
        s3 = e.s3_endpoint(),
        bucket = emulator::BUCKET,
        ak = c.s3_access_key,
        sk = c.s3_secret_key,
        user = c.sql_user,
        pw = c.sql_password,
        sql = sql.join("\n"),
        tls = match tds_cert {
            Some(path) => format!(
                "TLS with the certificate in {}{}",
                path.display(),
                if args.tds_force_encryption {
                    ", encryption forced"
                } else {
                    ""
                }
            ),
            None => "no TLS".to_owned(),
        },
        // -C trusts any certificate: sqlcmd cannot be given a CA file.
        sqlcmd_tls = if tds_cert.is_some() {
            "-N mandatory -C"
        } else {
            "-N disable"
        },
        sql_host = e.tds[0].ip(),
        sql_port = e.tds[0].port(),
    )
}

/// SIGINT and SIGTERM, registered as soon as this is created.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Why the emulator's settings cannot be used; each names the file or
/// instance. The causes are the emulator's own texts.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("{path}: {error}")]
    Read {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("--tds-cert {cert} --tds-key {key}: {why}")]
    Identity {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        why: String,
    },
    #[error("{path}: {why}")]
    InstancesFile {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("instance {index}: {why}")]
    Instance { index: usize, why: String },
}

/// The SQL Server doors' certificate and key, when both are given (clap
/// refuses one without the other).
fn tds_identity(args: &EmulatorArgs) -> Result<Option<emulator::tds::TlsIdentity>, SetupError> {
    let (Some(cert), Some(key)) = (&args.tds_cert, &args.tds_key) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path, limit| {
        crate::secret::read_bounded(path, limit).map_err(|error| SetupError::Read {
            path: path.to_owned(),
            error,
        })
    };
    let chain = read(cert, crate::secret::MAX_CA_FILE)?;
    let key_pem = read(key, crate::secret::MAX_KEY_FILE)?;
    emulator::tds::TlsIdentity::from_pem(&chain, &key_pem)
        .map(Some)
        .map_err(|why| SetupError::Identity {
            cert: cert.clone(),
            key: key.clone(),
            why,
        })
}

/// The instances' settings: from `--instances-file`, or the same for every
/// instance from `--instance-state`, `--storage-gb` and `--users`.
fn instance_settings(args: &EmulatorArgs) -> Result<Vec<InstanceSettings>, SetupError> {
    let settings = match &args.instances_file {
        Some(path) => read_instances_file(path)?,
        None => {
            let mut one = InstanceSettings {
                state: args.instance_state.to_ascii_uppercase(),
                storage_gb: args.storage_gb,
                ..InstanceSettings::default()
            };
            let list =
                |given: &Vec<String>| given.iter().filter(|u| !u.is_empty()).cloned().collect();
            if let Some(users) = &args.users {
                one.users = list(users);
            }
            if let Some(users) = &args.database_users {
                one.database_users = list(users);
            }
            if let Some(databases) = &args.checkdb_errors {
                one.checkdb_errors = list(databases);
            }
            vec![one; usize::from(args.instances)]
        }
    };
    for (index, s) in settings.iter().enumerate() {
        s.check()
            .map_err(|why| SetupError::Instance { index, why })?;
    }
    Ok(settings)
}

fn read_instances_file(path: &std::path::Path) -> Result<Vec<InstanceSettings>, SetupError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        instances: Vec<InstanceSettings>,
    }
    let bad = |why: String| SetupError::InstancesFile {
        path: path.to_owned(),
        why,
    };
    let text = crate::secret::read_bounded(path, 1 << 20).map_err(|error| SetupError::Read {
        path: path.to_owned(),
        error,
    })?;
    let mut tree = crate::manifest::yaml::parse(&text).map_err(|e| bad(e.message))?;
    let mut problems = Vec::new();
    let json = crate::manifest::structure::into_json(&mut tree, &mut Vec::new(), &mut problems);
    if let Some((at, why)) = problems.first() {
        return Err(bad(format!("{at}: {why}")));
    }
    let file: File = serde_json::from_value(json).map_err(|e| bad(e.to_string()))?;
    Ok(file.instances)
}
