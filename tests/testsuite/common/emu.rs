//! Clients of the emulator for tests: an S3 client (rusty-s3 signs, reqwest
//! sends), a SQL client (tiberius), and helpers to wait for state.

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use sqlflex_import::emulator::{self, Config, Emulator};
use std::time::Duration;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

pub const SIGN_FOR: Duration = Duration::from_secs(300);

/// The binary with the emulator's variables set and no standard input.
pub fn tool(e: &Emulator, args: &[&str]) -> std::process::Command {
    let mut cmd = super::bin();
    cmd.args(args)
        .envs(e.env())
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs a command off the async runtime: (exit code, stdout, stderr).
pub async fn run(mut cmd: std::process::Command) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || super::run(&mut cmd))
        .await
        .unwrap()
}

/// `apply` as a script runs it: no prompt, no progress bars.
const APPLY: [&str; 3] = ["apply", "--yes", "--no-progress"];

/// `apply --yes --no-progress ARGS...` as a script runs it: (exit code,
/// stdout, stderr).
pub async fn apply(e: &Emulator, args: &[&str]) -> (i32, String, String) {
    let mut all = APPLY.to_vec();
    all.extend_from_slice(args);
    run(tool(e, &all)).await
}

/// `apply --yes --no-progress MANIFEST` started in the background, for tests
/// that signal, kill or race it while it runs.
pub fn spawn_apply(
    e: &Emulator,
    manifest: &std::path::Path,
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> std::process::Child {
    let mut all = APPLY.to_vec();
    all.push(manifest.to_str().expect("a UTF-8 manifest path"));
    tool(e, &all)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("the binary starts")
}

/// Recognisable secrets: tests assert they appear in no output.
pub fn test_credentials() -> emulator::Credentials {
    emulator::Credentials {
        token: "TEST-TOKEN-5ec7e7".into(),
        s3_access_key: "TESTACCESSKEY".into(),
        s3_secret_key: "TEST-S3-SECRET-5ec7e7".into(),
        sql_user: "importer".into(),
        sql_password: "TEST-SQL-PASSWORD-5ec7e7".into(),
    }
}

/// An emulator with fast restores and recognisable credentials.
pub async fn start(restore: Duration) -> Emulator {
    start_with(Config {
        restore_duration: restore,
        ..Config::default()
    })
    .await
}

pub async fn start_with(config: Config) -> Emulator {
    emulator::start(Config {
        credentials: Some(test_credentials()),
        ..config
    })
    .await
    .expect("the emulator starts")
}

pub struct S3 {
    pub bucket: Bucket,
    pub credentials: Credentials,
    pub http: reqwest::Client,
}

impl S3 {
    pub fn new(e: &Emulator) -> Self {
        Self::with_secret(e, &e.credentials.s3_secret_key)
    }

    pub fn with_secret(e: &Emulator, secret: &str) -> Self {
        let bucket = Bucket::new(
            e.s3_endpoint().parse().unwrap(),
            UrlStyle::Path,
            emulator::BUCKET,
            emulator::REGION,
        )
        .unwrap();
        S3 {
            bucket,
            credentials: Credentials::new(e.credentials.s3_access_key.clone(), secret),
            http: reqwest::Client::new(),
        }
    }

    pub async fn put(&self, key: &str, body: Vec<u8>) -> reqwest::Response {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(SIGN_FOR);
        self.http.put(url).body(body).send().await.unwrap()
    }

    pub async fn get(&self, key: &str, range: Option<&str>) -> reqwest::Response {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGN_FOR);
        let mut request = self.http.get(url);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        request.send().await.unwrap()
    }

    pub async fn head(&self, key: &str) -> reqwest::Response {
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(SIGN_FOR);
        self.http.head(url).send().await.unwrap()
    }

    pub async fn delete(&self, key: &str) -> reqwest::Response {
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGN_FOR);
        self.http.delete(url).send().await.unwrap()
    }

    /// One page of ListObjectsV2: (keys, continuation token).
    pub async fn list(
        &self,
        prefix: &str,
        max: usize,
        token: Option<&str>,
    ) -> (Vec<String>, Option<String>) {
        let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
        action.with_prefix(prefix);
        action.with_max_keys(max);
        if let Some(t) = token {
            action.with_continuation_token(t);
        }
        let response = self.http.get(action.sign(SIGN_FOR)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let parsed =
            rusty_s3::actions::ListObjectsV2::parse_response(&response.text().await.unwrap())
                .unwrap();
        (
            parsed.contents.into_iter().map(|c| c.key).collect(),
            parsed.next_continuation_token,
        )
    }

    /// `s3://host/bucket/key`, as the import takes it.
    pub fn uri(e: &Emulator, key: &str) -> String {
        format!("s3://{}/{}/{}", e.s3, emulator::BUCKET, key)
    }
}

pub type Sql = tiberius::Client<Compat<tokio::net::TcpStream>>;

pub async fn sql(e: &Emulator, instance: usize, password: &str) -> tiberius::Result<Sql> {
    let door = e.tds[instance];
    let config = sql_config(
        &door.ip().to_string(),
        door.port(),
        (&e.credentials.sql_user, password),
        tiberius::EncryptionLevel::NotSupported,
    );
    sql_connect(config).await
}

/// A SQL login to `host:port` as (user, password), at `encryption`.
pub fn sql_config(
    host: &str,
    port: u16,
    (user, password): (&str, &str),
    encryption: tiberius::EncryptionLevel,
) -> tiberius::Config {
    let mut config = tiberius::Config::new();
    config.host(host);
    config.port(port);
    config.authentication(tiberius::AuthMethod::sql_server(user, password));
    config.encryption(encryption);
    config
}

/// Logs in with `config`, on a new connection to its host and port.
pub async fn sql_connect(config: tiberius::Config) -> tiberius::Result<Sql> {
    let tcp = tokio::net::TcpStream::connect(config.get_addr()).await?;
    tcp.set_nodelay(true)?;
    tiberius::Client::connect(config, tcp.compat_write()).await
}

/// A `POST .../restores` body, as the documents describe it, for `files`
/// (`s3://` URIs of the stripes) in the emulator's bucket.
pub fn restore_body(e: &Emulator, name: &str, files: &[String]) -> serde_json::Value {
    use serde_json::json;
    json!({
        "database_name": name,
        "source": {
            "type": "EXTERNAL_S3",
            "database_owner": "app_owner",
            "logging_guid": "test",
            "s3_details": {
                "s3_access_key": e.credentials.s3_access_key,
                "s3_access_secret": e.credentials.s3_secret_key,
                "s3_bucket": format!("s3://{}/{}/", e.s3, emulator::BUCKET),
                "s3_files": files.iter().enumerate().map(|(i, f)| json!({"file_number": i + 1, "file_path": f})).collect::<Vec<_>>(),
            }
        }
    })
}

/// The instance-scoped API URL.
pub fn api(e: &Emulator, instance: usize, version: &str, path: &str) -> String {
    format!(
        "{}/{version}/projects/{}/regions/eu01/instances/{}{path}",
        e.api_endpoint(),
        e.project_id,
        e.instance_ids[instance]
    )
}

pub async fn stats(e: &Emulator) -> serde_json::Value {
    reqwest::get(format!("{}/_emulator/stats", e.api_endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// (database, times submitted) over every instance, sorted: from the
/// emulator's `restore_submissions`, which counts each accepted restore.
pub fn submissions(stats: &serde_json::Value, e: &Emulator) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for id in &e.instance_ids {
        for (db, n) in stats["instances"][id]["restore_submissions"]
            .as_object()
            .expect("stats count submissions per instance")
        {
            out.push((db.clone(), n.as_u64().expect("a count")));
        }
    }
    out.sort();
    out
}

/// Waits until at least `n` databases have been submitted, at most `within`;
/// panics after that.
pub async fn wait_for_submissions(e: &Emulator, n: usize, within: Duration) {
    eventually(within, || async {
        (submissions(&stats(e).await, e).len() >= n).then_some(())
    })
    .await
    .expect("imports are submitted");
}

/// Polls `probe` every 50 ms until it returns Some, at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The secrets of [`test_credentials`]: none may appear in any output,
/// file or report.
pub const SECRETS: [&str; 3] = [
    "TEST-S3-SECRET-5ec7e7",
    "TEST-TOKEN-5ec7e7",
    "TEST-SQL-PASSWORD-5ec7e7",
];

pub fn assert_no_secrets(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret}:\n{text}"
        );
    }
}

/// The NDJSON events of one kind (`"failed"`, `"online"`...) that
/// `--format json apply` printed on stdout.
pub fn events(stdout: &str, kind: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == kind)
        .collect()
}

/// One database of a test manifest.
pub struct Db<'a> {
    pub name: &'a str,
    pub instance: usize,
    pub sql: bool,
    pub keys: Vec<String>,
}

impl<'a> Db<'a> {
    pub fn api(name: &'a str, instance: usize, keys: &[&str]) -> Self {
        Db {
            name,
            instance,
            sql: false,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    pub fn sql(name: &'a str, instance: usize, keys: &[&str]) -> Self {
        Db {
            sql: true,
            ..Db::api(name, instance, keys)
        }
    }
}

/// The `defaults:` line of [`manifest`].
pub const DEFAULTS: &str = "defaults: {owner: app_owner, timeout: 2m}";

/// [`manifest`] with another `defaults:` line.
pub fn with_defaults(manifest: &str, defaults: &str) -> String {
    assert!(manifest.contains(DEFAULTS), "not the kit's manifest");
    manifest.replace(DEFAULTS, defaults)
}

/// A manifest for the emulator: instances `i0`, `i1`, ... with both doors,
/// every credential from the emulator's environment.
pub fn manifest(e: &Emulator, max_parallel: u32, per_instance: u32, dbs: &[Db<'_>]) -> String {
    let mut m = format!(
        "version: 1\n{DEFAULTS}\nconcurrency: {{max_parallel: {max_parallel}, per_instance: {per_instance}}}\n\
         s3: {{endpoint: \"${{S3_ENDPOINT}}\", bucket: \"${{S3_BUCKET}}\", access_key: \"${{S3_ACCESS_KEY}}\", secret_key: \"${{S3_SECRET_KEY}}\"}}\ninstances:\n"
    );
    for (i, id) in e.instance_ids.iter().enumerate() {
        m.push_str(&format!(
            "  i{i}:\n    project_id: \"${{STACKIT_PROJECT_ID}}\"\n    region: eu01\n    instance_id: {id}\n    \
             api: {{endpoint: \"${{STACKIT_API_ENDPOINT}}\", token: \"${{STACKIT_SERVICE_ACCOUNT_TOKEN}}\"}}\n    \
             sql: {{host: 127.0.0.1, port: {}, user: \"${{SQL_USER}}\", password: \"${{SQL_PASSWORD}}\", encrypt: false}}\n",
            e.tds[i].port()
        ));
    }
    m.push_str("databases:\n");
    for db in dbs {
        let files: Vec<String> = db.keys.iter().map(|k| format!("\"{k}\"")).collect();
        m.push_str(&format!(
            "  - {{name: {}, instance: i{}, method: {}, files: [{}]}}\n",
            // Plain when it can be, so tests can edit a line by its name.
            if db
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                db.name.to_owned()
            } else {
                serde_json::to_string(db.name).unwrap()
            },
            db.instance,
            if db.sql { "sql" } else { "api" },
            files.join(", ")
        ));
    }
    m
}
