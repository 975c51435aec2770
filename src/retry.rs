//! Retries with exponential backoff and full jitter, honouring the server's
//! `Retry-After`. Shared by every remote call: S3, the API, SQL, tokens.

use std::time::Duration;

/// Attempts of one call before its error is final.
pub const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempt: 0,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt, or None when attempts are used up.
    /// Full jitter (a random delay up to the exponential bound) keeps many
    /// clients that failed together from retrying together.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        self.attempt += 1;
        if self.attempt >= MAX_ATTEMPTS {
            return None;
        }
        let bound = self
            .base
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.cap);
        let jitter = bound.mul_f64(fastrand::f64());
        Some(retry_after.map_or(jitter, |r| r.min(Duration::from_secs(120)).max(jitter)))
    }
}

/// What one attempt of a remote call came to.
pub enum Attempt<T, E> {
    Done(T),
    /// Worth another try (a refused or dropped connection, a 5xx, a 429),
    /// with what went wrong for the error after the last try.
    Again {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Final, whatever a retry would do.
    Fail(E),
}

/// The one retry policy of every idempotent remote call (S3, the API's
/// reads, SQL status queries, token requests): `attempt` again after an
/// exponential, fully jittered delay that honours `Retry-After`, until it is
/// done, fails for good, or [`MAX_ATTEMPTS`] are used; then `exhausted`
/// makes the error from the last reason and the number of attempts. Submits
/// are not idempotent and are not retried here: the engine looks first.
pub async fn retry<T, E, F, Fut>(
    label: &str,
    mut attempt: F,
    exhausted: impl FnOnce(String, u32) -> E,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt<T, E>>,
{
    let mut backoff = Backoff::default();
    loop {
        match attempt().await {
            Attempt::Done(value) => return Ok(value),
            Attempt::Fail(e) => return Err(e),
            Attempt::Again { why, retry_after } => match backoff.next_delay(retry_after) {
                Some(delay) => {
                    tracing::debug!("{label}: {why}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(exhausted(why, backoff.attempts())),
            },
        }
    }
}

/// Why a transport error cannot succeed on a retry, or None when it may
/// (a refused or dropped connection, a timeout). Retrying a bad certificate
/// eight times only delays the message that matters.
pub fn permanent(e: &reqwest::Error) -> Option<String> {
    if e.is_builder() {
        return Some(
            "the request cannot be built: a header value (such as the token) holds a forbidden \
             character, e.g. a line break"
                .into(),
        );
    }
    if e.is_redirect() {
        return Some("the server redirects in a loop".into());
    }
    tls_failure(e).map(|tls| {
        crate::redact::text(&format!(
            "TLS failed: {tls}; check the endpoint's certificate (or that it speaks https at all)"
        ))
    })
}

/// The TLS error somewhere in the cause chain. `io::Error` hides its inner
/// error from `source()` (and hyper wraps one `io::Error` in another), so
/// each is opened by hand.
fn tls_failure<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    let mut depth = 0;
    while let Some(err) = next {
        depth += 1;
        if depth > 32 {
            return None;
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => err.source(),
            },
            None => err.source(),
        };
    }
    None
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs; ignored).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_jittered_and_end() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = std::iter::from_fn(|| b.next_delay(None)).collect();
        assert_eq!(delays.len() as u32, MAX_ATTEMPTS - 1);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(20)));
        let mut b = Backoff::default();
        assert!(b.next_delay(Some(Duration::from_secs(3))).unwrap() >= Duration::from_secs(3));
    }
}
