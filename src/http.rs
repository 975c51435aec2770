//! The HTTP client every remote call uses (the API, S3, the token
//! endpoint), its timeout, and bodies read within a bound. A leaf: it asks
//! no other module of the tool.

use std::time::Duration;

/// Seconds one HTTP request may take, connection to last byte (default 60,
/// at most a day).
pub const TIMEOUT_ENV: &str = "SQLFLEX_IMPORT_HTTP_TIMEOUT";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_TIMEOUT: f64 = 86_400.0;

/// A [`TIMEOUT_ENV`] that is not a number of seconds above 0 and at most a
/// day; the value is shown escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{TIMEOUT_ENV}=`{0}` is not a number of seconds above 0 and at most {MAX_TIMEOUT} (a day)")]
pub struct TimeoutError(String);

/// The HTTP timeout the environment asks for (default 60 s).
pub fn timeout(env: &dyn Fn(&str) -> Option<String>) -> Result<Duration, TimeoutError> {
    let Some(v) = env(TIMEOUT_ENV) else {
        return Ok(DEFAULT_TIMEOUT);
    };
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT => Ok(Duration::from_secs_f64(s)),
        _ => Err(TimeoutError(crate::redact::terminal(&v).into_owned())),
    }
}

/// The HTTP client of every remote call.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        // Every request carries a credential (a bearer token, a signed S3
        // request, a token assertion, the restore body with the S3 secret):
        // it goes where the manifest says and nowhere a server redirects it.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .user_agent(concat!("sqlflex-import/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

/// Why nothing can be reached at `host:port`, when that is sure before any
/// request: the host does not resolve, or every try to connect is refused
/// (two, 300 ms apart). Neither passes on a retry a second later. A
/// connection that is slow or fails otherwise is no verdict: the requests
/// and their retries decide.
pub async fn unreachable(host: &str, port: u16) -> Option<String> {
    let shown = crate::redact::terminal(host);
    let addresses: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(found) => found.collect(),
        Err(e) => return Some(format!("the host `{shown}` is not known: {e}")),
    };
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let connect = tokio::net::TcpStream::connect(&addresses[..]);
        match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            _ => return None,
        }
    }
    Some(format!(
        "nothing listens at {shown}:{port} (connection refused)"
    ))
}

/// A body that stopped arriving; shown redacted, as every transport error.
#[derive(Debug, thiserror::Error)]
#[error("{}", crate::redact::transport(.0))]
pub struct BodyError(#[source] reqwest::Error);

/// The body, but never more than `limit` bytes held in memory.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    // One allocation of the announced length (bounded), not a doubling
    // vector: hundreds of reads run at once.
    let announced = response.content_length().unwrap_or(0).min(limit as u64) as usize;
    let mut body = Vec::with_capacity(announced);
    while let Some(chunk) = response.chunk().await.map_err(BodyError)? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}
