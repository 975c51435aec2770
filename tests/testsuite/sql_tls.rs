//! The SQL path in TLS, as Flex instances speak it: the emulator's SQL
//! Server door given a certificate, the tool's default `encrypt: true`, and
//! a relay in between that keeps every byte the client sends, so the test
//! can see what would travel in clear.

use crate::common;
use crate::common::emu;
use crate::common::pki;

use emu::{Db, S3, apply, manifest, run, stats, tool};
use pki::{PrivateCa, private_ca};
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::emulator::{Config, Emulator};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The emulator's SQL Server door: without a certificate, with one, or with
/// one and encryption forced.
#[derive(PartialEq)]
enum Door {
    Clear,
    Certified,
    Forcing,
}

async fn emulator(door: Door) -> (Emulator, String) {
    let PrivateCa { identity, ca, .. } = private_ca();
    let e = emu::start_with(Config {
        restore_duration: Duration::from_millis(300),
        instances: 1,
        tds_force_encryption: door == Door::Forcing,
        tds_tls: (door != Door::Clear).then_some(identity),
        ..Config::default()
    })
    .await;
    let status = S3::new(&e)
        .put("hr.bak", writer::write(&BackupSpec::full("hr")))
        .await
        .status();
    assert_eq!(status, 200);
    (e, ca)
}

/// A TCP relay to `to`: its port, and every byte clients sent through it.
async fn relay(to: std::net::SocketAddr) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let kept = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let server = tokio::net::TcpStream::connect(to).await.unwrap();
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let upstream = async move {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                        kept.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown().await;
                };
                let downstream = async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    (port, sent)
}

/// A manifest for one SQL database through the relay, with `sql_options`
/// in place of the kit's `encrypt: false`.
fn through(e: &Emulator, port: u16, sql_options: &str) -> String {
    let text = manifest(e, 1, 1, &[Db::sql("hr", 0, &["hr.bak"])]);
    let text = text.replace(
        &format!("port: {}", e.tds[0].port()),
        &format!("port: {port}"),
    );
    assert!(text.contains(", encrypt: false}"), "{text}");
    text.replace(", encrypt: false}", &format!("{sql_options}}}"))
}

/// A client with encryption off (tiberius's `Off`, any certificate
/// trusted) logs in through a relay and runs `query`: every byte it sent.
async fn query_with_encryption_off(e: &Emulator, query: &str) -> Vec<u8> {
    let (port, sent) = relay(e.tds[0]).await;
    let mut config = emu::sql_config(
        "127.0.0.1",
        port,
        (&e.credentials.sql_user, &e.credentials.sql_password),
        tiberius::EncryptionLevel::Off,
    );
    config.trust_cert();
    let mut client = emu::sql_connect(config).await.unwrap();
    client
        .simple_query(query)
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    drop(client);
    sent.lock().unwrap().clone()
}

/// `apply` of the one SQL database of [`through`] via a relay, with
/// `sql_options` (files they name are in `dir`): every byte the client
/// sent, `apply`'s output and the instance's stats after.
async fn apply_through_relay(
    e: &Emulator,
    dir: &std::path::Path,
    sql_options: &str,
) -> (Vec<u8>, String, serde_json::Value) {
    let (port, sent) = relay(e.tds[0]).await;
    let path = common::write(dir, "m.yaml", &through(e, port, sql_options));
    let (code, stdout, stderr) = apply(e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let inst = stats(e).await["instances"][&e.instance_ids[0]].clone();
    let sent = sent.lock().unwrap().clone();
    (sent, stdout, inst)
}

/// The S3 secret is a parameter of the procedure call: neither it nor the
/// login's name may be in what the client sent.
fn assert_nothing_secret_in(e: &Emulator, sent: &[u8]) {
    for secret in [&e.credentials.s3_secret_key, &e.credentials.sql_user] {
        assert!(!contains(sent, &utf16(secret)), "{secret} in clear");
    }
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_path_imports_in_tls_and_nothing_secret_travels_in_clear() {
    let (e, _) = emulator(Door::Certified).await;
    let dir = tempfile::tempdir().unwrap();
    // The certificate is the test's own: trusted by this setting, on loopback.
    let (sent, stdout, inst) =
        apply_through_relay(&e, dir.path(), ", trust_server_certificate: true").await;
    assert!(stdout.contains("1 online"), "{stdout}");
    assert!(inst["tls_sessions"].as_u64().unwrap() >= 2, "{inst}");
    assert_eq!(
        inst["tls_sessions"], inst["logins"],
        "every login in TLS: {inst}"
    );

    assert!(sent.len() > 1000, "{} bytes", sent.len());
    assert_nothing_secret_in(&e, &sent);
}

/// The same relay shows what `encrypt: false` sends, so the check above can
/// fail: the S3 secret, readable by anyone on the path. The tool offers no
/// TLS then, and a door that has a certificate says none either (MS-TDS
/// 2.2.6.5): the session is in clear from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tls_the_relay_sees_the_secret() {
    let (e, _) = emulator(Door::Certified).await;
    let dir = tempfile::tempdir().unwrap();
    let (sent, _, inst) = apply_through_relay(&e, dir.path(), ", encrypt: false").await;
    assert!(contains(&sent, &utf16(&e.credentials.s3_secret_key)));
    assert!(contains(&sent, &utf16(&e.credentials.sql_user)));
    assert_eq!(
        (&inst["tls_sessions"], &inst["tls_logins"]),
        (&0.into(), &0.into()),
        "{inst}"
    );
}

/// A certificate no trust store knows is refused, once: a TLS failure is
/// not retried, and no login reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_certificate_is_refused_before_any_login() {
    let (e, _) = emulator(Door::Certified).await;
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "m.yaml", &through(&e, e.tds[0].port(), ""));
    let (code, stdout, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("T005"), "{stdout}");
    assert!(stdout.contains("TLS failed"), "{stdout}");
    assert!(stdout.contains("UnknownIssuer"), "{stdout}");
    assert!(
        stdout.contains("`sql.ca_file`") && !stdout.contains("Config::"),
        "{stdout}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
    let inst = &stats(&e).await["instances"][&e.instance_ids[0]];
    assert_eq!(inst["logins"], 0, "{inst}");
}

/// A certificate from a private CA is verified against that CA when the
/// manifest names it (`sql.ca_file`), without trusting every certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_named_in_ca_file_is_trusted() {
    let (e, ca) = emulator(Door::Certified).await;
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "ca.pem", &ca);
    let path = common::write(
        dir.path(),
        "m.yaml",
        &through(&e, e.tds[0].port(), ", ca_file: ca.pem"),
    );
    let (code, stdout, stderr) = apply(&e, &[path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("1 online"), "{stdout}");
    let inst = &stats(&e).await["instances"][&e.instance_ids[0]];
    assert_eq!(inst["tls_sessions"], inst["logins"], "{inst}");

    // Another CA's file does not make the certificate good.
    common::write(dir.path(), "ca.pem", &private_ca().ca);
    let (code, stdout, _) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("TLS failed"), "{stdout}");
}

/// A client with encryption off, not unsupported (tiberius's `Off`,
/// python-tds's `enc_login_only`), meets a door with a certificate:
/// MS-TDS's "login only". Its LOGIN7 travels in TLS, so the login's name is
/// not readable on the path; the rest of the session, queries included,
/// travels in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_off_sends_only_the_login_in_tls() {
    let (e, _) = emulator(Door::Certified).await;
    let query = "SELECT name FROM sys.databases WHERE name = N'login_only_probe'";
    let sent = query_with_encryption_off(&e, query).await;
    assert!(
        !contains(&sent, &utf16(&e.credentials.sql_user)),
        "the login went in TLS"
    );
    assert!(
        contains(&sent, &utf16(query)),
        "the query after it went in clear"
    );
    let inst = &stats(&e).await["instances"][&e.instance_ids[0]];
    assert_eq!(
        (&inst["tls_logins"], &inst["tls_sessions"], &inst["logins"]),
        (&1.into(), &0.into(), &1.into()),
        "{inst}"
    );
}

/// `emulator --tds-cert --tds-key`: the command's SQL doors speak TLS with
/// the given certificate, which a client verifies against its CA. A key
/// that is not the certificate's is refused at start (exit 2) without being
/// quoted, and so is one flag without the other.
#[test]
fn the_emulator_command_takes_a_certificate_for_its_sql_doors() {
    let pki = private_ca();
    let dir = tempfile::tempdir().unwrap();
    let cert = common::write(dir.path(), "door.pem", &pki.leaf);
    let key = common::write(dir.path(), "door.key", &pki.key);
    let (child, env) = common::start_emulator(
        common::bin()
            .args(["emulator", "--instances", "1", "--print-env", "--tds-cert"])
            .arg(&cert)
            .arg("--tds-key")
            .arg(&key),
    );
    assert!(env.contains_key("SQL_PASSWORD"), "{env:?}");
    let (host, port) = (env["SQL_HOST"].clone(), env["SQL_PORT"].parse().unwrap());
    let log_in = |ca: &str| {
        let mut config = emu::sql_config(
            &host,
            port,
            (&env["SQL_USER"], &env["SQL_PASSWORD"]),
            tiberius::EncryptionLevel::Required,
        );
        config.trust_cert_ca_bundle(ca.as_bytes().to_vec());
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let mut client = emu::sql_connect(config).await?;
            client
                .simple_query("SELECT name FROM sys.databases")
                .await?
                .into_results()
                .await
                .map(|_| ())
        })
    };
    let verified = log_in(&pki.ca);
    let other_ca = log_in(&private_ca().ca);
    let status = common::stop_emulator(child);
    verified.expect("a login in TLS, the certificate verified against its CA");
    let refused = other_ca.expect_err("the door's certificate is the one given");
    // Both test CAs have the same name: the signature is what fails.
    assert!(refused.to_string().contains("BadSignature"), "{refused}");
    assert!(status.success(), "{status:?}");

    let wrong_key = common::write(dir.path(), "other.key", &private_ca().key);
    let (code, _, stderr) = common::run(
        common::bin()
            .args(["emulator", "--tds-cert"])
            .arg(&cert)
            .arg("--tds-key")
            .arg(&wrong_key),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("do not go together"), "{stderr}");
    let key_body = pki.key.lines().nth(1).unwrap();
    assert!(!stderr.contains(key_body), "{stderr}");

    let (code, _, stderr) = common::run(common::bin().args(["emulator", "--tds-cert"]).arg(&cert));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--tds-key"), "{stderr}");
    let (code, _, stderr) = common::run(common::bin().args(["emulator", "--tds-force-encryption"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--tds-cert"), "{stderr}");
}

/// `encrypt: strict` (TDS 8.0): TLS from the client's first byte, so not
/// even PRELOGIN travels in clear; the certificate is verified as with
/// `true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_encryption_puts_everything_in_tls() {
    let (e, ca) = emulator(Door::Certified).await;
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "ca.pem", &ca);
    let (sent, stdout, inst) =
        apply_through_relay(&e, dir.path(), ", encrypt: strict, ca_file: ca.pem").await;
    assert!(stdout.contains("1 online"), "{stdout}");
    assert_eq!(inst["tls_sessions"], inst["logins"], "{inst}");
    // A TLS handshake record first, where TDS 7.x sends a PRELOGIN packet.
    assert_eq!(sent.first(), Some(&0x16), "{:02x?}", &sent[..8]);
    assert_nothing_secret_in(&e, &sent);
}

/// A server that does not speak TDS 8.0 hangs up on the TLS hello; the
/// reason says what `strict` needs. (The reset is retried like any other,
/// so this takes the retry policy's few seconds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_encryption_against_a_server_without_tds_8_says_so() {
    let (plain, ca) = emulator(Door::Clear).await;
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "ca.pem", &ca);
    let path = common::write(
        dir.path(),
        "m.yaml",
        &through(
            &plain,
            plain.tds[0].port(),
            ", encrypt: strict, ca_file: ca.pem",
        ),
    );
    let (code, stdout, stderr) = run(tool(&plain, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("T005"), "{stdout}");
    assert!(stdout.contains("must speak TDS 8.0"), "{stdout}");
    let inst = &stats(&plain).await["instances"][&plain.instance_ids[0]];
    assert_eq!(inst["logins"], 0, "{inst}");
}

/// A door that forces encryption (SQL Server's "Force Encryption"): a
/// client with encryption off gets the whole session in TLS, queries
/// included, and the tool's `encrypt: false`, which offers no TLS, is hung
/// up on before any login, with a reason that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_that_forces_encryption_puts_all_in_tls_or_refuses() {
    let (e, _) = emulator(Door::Forcing).await;
    let query = "SELECT name FROM sys.databases WHERE name = N'forced_probe'";
    let sent = query_with_encryption_off(&e, query).await;
    assert!(!contains(&sent, &utf16(query)), "the query went in TLS");
    let inst = &stats(&e).await["instances"][&e.instance_ids[0]];
    assert_eq!(
        (&inst["tls_sessions"], &inst["tls_logins"]),
        (&1.into(), &0.into()),
        "{inst}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = common::write(
        dir.path(),
        "m.yaml",
        &through(&e, e.tds[0].port(), ", encrypt: false"),
    );
    let (code, stdout, stderr) = run(tool(&e, &["plan", path.to_str().unwrap()])).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("T005"), "{stdout}");
    assert!(stdout.contains("refuses `encrypt: false`"), "{stdout}");
    let inst = &stats(&e).await["instances"][&e.instance_ids[0]];
    assert_eq!(inst["logins"], 1, "only the first client's: {inst}");
}
