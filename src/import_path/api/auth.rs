//! STACKIT authentication: a static bearer token, or the service-account key
//! flow (a self-signed RS512 assertion exchanged for short-lived access
//! tokens, cached and refreshed before they expire, one refresh at a time).

use super::section::ApiAuth;
use crate::endpoint::TOKEN_URL_ENV;
use crate::retry::Attempt;
use crate::secret::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest lifetime taken from a token endpoint: a day.
const MAX_TOKEN_LIFETIME: u64 = 86_400;

/// STACKIT's token endpoint, unless the key file or the environment names another.
pub const DEFAULT_TOKEN_URL: &str = "https://service-account.api.stackit.cloud/token";
pub const PRIVATE_KEY_PATH_ENV: &str = "STACKIT_PRIVATE_KEY_PATH";
/// Refresh this long before the access token expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the service-account key {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("the token endpoint {url} refused the service-account key: {reason}")]
    Refused { url: String, reason: String },
    /// Not reachable now (refused or dropped connections, 5xx, through every
    /// retry): a later attempt may get through.
    #[error("cannot reach the token endpoint {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// Reachable, but no request to it can succeed (TLS fails, the request
    /// cannot be built, redirects loop).
    #[error("cannot use the token endpoint {url}: {reason}")]
    Unusable { url: String, reason: String },
    #[error("the token endpoint {url} is refused: {reason}")]
    InsecureEndpoint { url: String, reason: String },
}

pub enum TokenSource {
    Static(Secret),
    KeyFlow(Box<KeyFlow>),
}

impl TokenSource {
    /// The token source the validated manifest chose (in the documented
    /// order: `api.token` or `token_file`, `api.service_account_key_path`,
    /// then the environment's key path and token).
    pub fn new(
        auth: &ApiAuth,
        env: &dyn Fn(&str) -> Option<String>,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        match auth {
            ApiAuth::Token(token) => Ok(TokenSource::Static(token.clone())),
            ApiAuth::KeyFile(path) => {
                KeyFlow::load(path, env, http).map(|k| TokenSource::KeyFlow(Box::new(k)))
            }
        }
    }

    pub async fn bearer(&self) -> Result<Secret, AuthError> {
        match self {
            TokenSource::Static(token) => Ok(token.clone()),
            TokenSource::KeyFlow(flow) => flow.access_token().await,
        }
    }
}

#[derive(Deserialize)]
struct KeyFile {
    credentials: Credentials,
    #[serde(rename = "tokenEndpoint")]
    token_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct Credentials {
    kid: String,
    iss: String,
    sub: String,
    aud: String,
    #[serde(rename = "privateKey")]
    private_key: Option<Secret>,
}

pub struct KeyFlow {
    credentials: Credentials,
    signing: EncodingKey,
    token_url: String,
    /// The endpoint as errors show it (no query string, no user info).
    shown_url: String,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<(Secret, Instant)>>,
    /// The token endpoint's refusal of the key: final for this process, so
    /// a wrong key is presented once, not once per request.
    refused: std::sync::OnceLock<String>,
}

impl KeyFlow {
    fn load(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        let fail = |reason: String| AuthError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        let text = crate::secret::read_bounded(path, crate::secret::MAX_KEY_FILE)
            .map_err(|e| fail(e.to_string()))?;
        // serde_json's error names line and column, never the content.
        let key: KeyFile = serde_json::from_str(&text)
            .map_err(|e| fail(format!("not a STACKIT service-account key ({e})")))?;
        let pem = match &key.credentials.private_key {
            Some(pem) => pem.clone(),
            None => {
                let pem_path = env(PRIVATE_KEY_PATH_ENV).ok_or_else(|| {
                    fail(format!(
                        "the key has no privateKey; set {PRIVATE_KEY_PATH_ENV}"
                    ))
                })?;
                Secret::new(
                    crate::secret::read_bounded(Path::new(&pem_path), crate::secret::MAX_KEY_FILE)
                        .map_err(|e| fail(format!("{pem_path}: {e}")))?,
                )
            }
        };
        let signing = rsa_signing_key(pem.expose())
            .map_err(|e| fail(format!("the private key is not an RSA PEM key ({e})")))?;
        let token_url = key
            .token_endpoint
            .clone()
            .or_else(|| env(TOKEN_URL_ENV).filter(|v| !v.is_empty()))
            .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_owned());
        // The signed assertion is a credential: the same rule as for the
        // API and S3, checked before any connection is made.
        crate::endpoint::check_endpoint(&token_url).map_err(|reason| {
            AuthError::InsecureEndpoint {
                url: crate::redact::text(&token_url),
                reason: crate::redact::text(&reason.to_string()),
            }
        })?;
        Ok(KeyFlow {
            credentials: key.credentials,
            signing,
            shown_url: crate::redact::text(&token_url),
            token_url,
            http,
            cached: tokio::sync::Mutex::new(None),
            refused: std::sync::OnceLock::new(),
        })
    }

    /// A valid access token; at most one refresh runs at a time, and every
    /// task waiting for it gets the refreshed token.
    async fn access_token(&self) -> Result<Secret, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && expires.saturating_duration_since(Instant::now()) > REFRESH_MARGIN
        {
            return Ok(token.clone());
        }
        if let Some(reason) = self.refused.get() {
            return Err(AuthError::Refused {
                url: self.shown_url.clone(),
                reason: reason.clone(),
            });
        }
        let (token, lifetime) = match self.fetch().await {
            Ok(fetched) => fetched,
            Err(AuthError::Refused { url, reason }) => {
                let _ = self.refused.set(reason.clone());
                return Err(AuthError::Refused { url, reason });
            }
            Err(e) => return Err(e),
        };
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    fn assertion(&self) -> Result<String, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let c = &self.credentials;
        let claims = serde_json::json!({
            "iss": c.iss, "sub": c.sub, "aud": c.aud,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now, "exp": now + 600,
        });
        let mut header = Header::new(Algorithm::RS512);
        header.kid = Some(c.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing).map_err(|e| AuthError::Refused {
            url: self.shown_url.clone(),
            reason: format!("cannot sign the assertion: {e}"),
        })
    }

    async fn fetch(&self) -> Result<(Secret, Duration), AuthError> {
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: Secret,
            expires_in: Option<u64>,
        }
        let url = &self.shown_url;
        let attempt = || async {
            let assertion = match self.assertion() {
                Ok(a) => a,
                Err(e) => return Attempt::Fail(e),
            };
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ];
            match self.http.post(&self.token_url).form(&form).send().await {
                Ok(r) if r.status().is_success() => {
                    let bytes = match crate::http::read_limited(r, 64 * 1024).await {
                        Ok(b) => b,
                        Err(reason) => {
                            return Attempt::Fail(AuthError::Unreachable {
                                url: url.clone(),
                                reason: reason.to_string(),
                            });
                        }
                    };
                    // serde_json's error names line and column, never the content.
                    match serde_json::from_slice::<TokenResponse>(&bytes) {
                        Ok(body) => {
                            // The server's word, bounded: a lifetime beyond a
                            // day is taken as a day (and cannot overflow).
                            let lifetime = Duration::from_secs(
                                body.expires_in.unwrap_or(600).clamp(1, MAX_TOKEN_LIFETIME),
                            );
                            Attempt::Done((body.access_token, lifetime))
                        }
                        Err(e) => Attempt::Fail(AuthError::Refused {
                            url: url.clone(),
                            reason: format!("unreadable token response: {e}"),
                        }),
                    }
                }
                Ok(r) if r.status().is_server_error() || r.status() == 429 => Attempt::Again {
                    retry_after: crate::retry::retry_after(r.headers()),
                    why: format!("HTTP {}", r.status()),
                },
                Ok(r) => {
                    let status = r.status();
                    let body = crate::http::read_limited(r, 4096).await.unwrap_or_default();
                    Attempt::Fail(AuthError::Refused {
                        url: url.clone(),
                        reason: crate::redact::text(&format!(
                            "HTTP {status}: {}",
                            String::from_utf8_lossy(&body)
                        )),
                    })
                }
                Err(e) => match crate::retry::permanent(&e) {
                    Some(reason) => Attempt::Fail(AuthError::Unusable {
                        url: url.clone(),
                        reason,
                    }),
                    None => Attempt::Again {
                        why: crate::redact::transport(&e),
                        retry_after: None,
                    },
                },
            }
        };
        crate::retry::retry("token endpoint", attempt, |why, attempts| {
            AuthError::Unreachable {
                url: url.clone(),
                reason: format!("{why} (after {attempts} attempts)"),
            }
        })
        .await
    }
}

/// The private key of a key file in the form jsonwebtoken signs with:
/// PKCS#1 DER. Portal key files carry PKCS#8 (`PRIVATE KEY`), older tools
/// write PKCS#1 (`RSA PRIVATE KEY`). aws-lc checks the key before its DER is
/// unwrapped, so the walk below only ever meets a well-formed key, and checks
/// the PKCS#1 it yields, so jsonwebtoken only gets a key aws-lc signs with.
fn rsa_signing_key(text: &str) -> Result<EncodingKey, KeyError> {
    use aws_lc_rs::rsa::KeyPair;
    let block = pem::parse(text).map_err(|e| KeyError::NotPem(e.to_string()))?;
    let pkcs1 = match block.tag() {
        "PRIVATE KEY" => {
            KeyPair::from_pkcs8(block.contents()).map_err(|e| KeyError::Pkcs8(e.to_string()))?;
            pkcs8_private_key(block.contents()).ok_or(KeyError::Pkcs8NoKey)?
        }
        "RSA PRIVATE KEY" => block.contents(),
        other => return Err(KeyError::Block(other.to_owned())),
    };
    KeyPair::from_der(pkcs1).map_err(|e| KeyError::Pkcs1(e.to_string()))?;
    Ok(EncodingKey::from_rsa_der(pkcs1))
}

/// Why a key file's private key is not one to sign with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum KeyError {
    #[error("not PEM: {0}")]
    NotPem(String),
    #[error("PKCS#8: {0}")]
    Pkcs8(String),
    #[error("PKCS#8 without a private key")]
    Pkcs8NoKey,
    #[error("a PEM block of type {0:?}")]
    Block(String),
    #[error("PKCS#1: {0}")]
    Pkcs1(String),
}

/// The `privateKey` of a PKCS#8 PrivateKeyInfo (RFC 5208): SEQUENCE {
/// version INTEGER, algorithm SEQUENCE, privateKey OCTET STRING, .. }.
fn pkcs8_private_key(der: &[u8]) -> Option<&[u8]> {
    let (0x30, info, _) = der_element(der)? else {
        return None;
    };
    let (0x02, _, rest) = der_element(info)? else {
        return None;
    };
    let (0x30, _, rest) = der_element(rest)? else {
        return None;
    };
    match der_element(rest)? {
        (0x04, key, _) => Some(key),
        _ => None,
    }
}

/// One DER element: its tag, its contents and what follows it. DER has only
/// definite lengths; anything longer than the input is refused.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let width = usize::from(first & 0x7f);
        if width == 0 || width > 4 || rest.len() < width {
            return None;
        }
        let (bytes, rest) = rest.split_at(width);
        (
            bytes.iter().fold(0, |len, &b| len << 8 | usize::from(b)),
            rest,
        )
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A token endpoint that counts its calls and hands out tokens that
    /// live `lifetime` seconds.
    async fn token_server(lifetime: u64) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    // Slow enough that concurrent callers overlap.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    axum::Json(serde_json::json!({"access_token": format!("token-{n}"), "expires_in": lifetime}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/token"), calls)
    }

    /// Both forms a key file can carry sign an RS512 JWT that the public key
    /// verifies; anything else is refused with a reason, never a panic.
    #[test]
    fn pkcs8_and_pkcs1_keys_sign_and_other_pem_is_refused() {
        let (pkcs8_pem, public_pem) =
            crate::emulator::keys::rsa_key_pem(aws_lc_rs::rsa::KeySize::Rsa2048);
        let pkcs8 = pem::parse(&pkcs8_pem).unwrap();
        let pkcs1 = pkcs8_private_key(pkcs8.contents()).expect("the inner RSA key");
        let pkcs1_pem = pem::encode(&pem::Pem::new("RSA PRIVATE KEY", pkcs1));
        let spki = pem::parse(&public_pem).unwrap();
        let verify = jsonwebtoken::DecodingKey::from_rsa_der(spki.contents());
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS512);
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_exp = false;
        let verifies = |key: &EncodingKey| {
            let claims = serde_json::json!({"sub": "me"});
            let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS512), &claims, key).unwrap();
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &verify, &validation).is_ok()
        };
        for text in [&pkcs8_pem, &pkcs1_pem] {
            let key = rsa_signing_key(text).expect("an RSA key");
            assert!(verifies(&key), "the signature verifies");
        }
        // And the SPKI key is really checked: another key's signature fails.
        let (other, _) = crate::emulator::keys::rsa_key_pem(aws_lc_rs::rsa::KeySize::Rsa2048);
        assert!(!verifies(&rsa_signing_key(&other).unwrap()));

        let refusals = [
            "not a pem at all".to_owned(),
            pem::encode(&pem::Pem::new("CERTIFICATE", pkcs1)),
            pem::encode(&pem::Pem::new("PRIVATE KEY", &pkcs8.contents()[..40])),
            pem::encode(&pem::Pem::new("RSA PRIVATE KEY", &pkcs1[..pkcs1.len() - 1])),
        ];
        for text in &refusals {
            assert!(rsa_signing_key(text).is_err(), "{text}");
        }
    }

    #[test]
    fn der_elements_never_read_past_their_input() {
        assert_eq!(
            der_element(&[0x04, 2, 7, 8, 9]),
            Some((0x04, &[7, 8][..], &[9][..]))
        );
        assert_eq!(
            der_element(&[0x04, 0x81, 3, 1, 2, 3]),
            Some((4, &[1, 2, 3][..], &[][..]))
        );
        for short in [
            &[][..],
            &[0x30],
            &[0x30, 5, 1],
            &[0x30, 0x82, 1],
            &[0x30, 0x80, 0],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
        ] {
            assert_eq!(der_element(short), None, "{short:?}");
        }
        assert_eq!(pkcs8_private_key(&[0x30, 3, 0x02, 1, 0]), None);
    }

    fn key_file(dir: &Path, token_url: &str) -> PathBuf {
        let (pem, _) = crate::emulator::keys::rsa_key_pem(aws_lc_rs::rsa::KeySize::Rsa2048);
        let key = serde_json::json!({
            "tokenEndpoint": token_url,
            "credentials": {"kid": "k", "iss": "sa@sa.stackit.cloud", "sub": "s", "aud": "a", "privateKey": pem.as_str()}
        });
        let path = dir.join("key.json");
        std::fs::write(&path, key.to_string()).unwrap();
        path
    }

    #[tokio::test]
    async fn tokens_are_cached_and_refreshed_once_for_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let (url, calls) = token_server(3600).await;
        let flow = Arc::new(
            KeyFlow::load(
                &key_file(dir.path(), &url),
                &|_| None,
                reqwest::Client::new(),
            )
            .unwrap(),
        );
        let tokens = futures::future::join_all((0..10).map(|_| {
            let flow = Arc::clone(&flow);
            async move { flow.access_token().await.unwrap().expose().to_owned() }
        }))
        .await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "ten concurrent callers, one refresh"
        );
        assert!(tokens.iter().all(|t| t == "token-0"));

        // A token that expires within the refresh margin is replaced at once.
        let (url, calls) = token_server(30).await;
        let flow = flow_to(dir.path(), &url);
        assert_eq!(flow.access_token().await.unwrap().expose(), "token-0");
        assert_eq!(flow.access_token().await.unwrap().expose(), "token-1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// A key flow whose key file names the token endpoint `url`.
    fn flow_to(dir: &Path, url: &str) -> KeyFlow {
        KeyFlow::load(&key_file(dir, url), &|_| None, reqwest::Client::new()).unwrap()
    }

    /// A lifetime no clock can add (u64::MAX seconds) is a day, not a panic.
    #[tokio::test]
    async fn an_endless_token_lifetime_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (url, calls) = token_server(u64::MAX).await;
        let flow = flow_to(dir.path(), &url);
        assert_eq!(flow.access_token().await.unwrap().expose(), "token-0");
        assert_eq!(flow.access_token().await.unwrap().expose(), "token-0");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_key_is_presented_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { (axum::http::StatusCode::BAD_REQUEST, "invalid_grant") }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let dir = tempfile::tempdir().unwrap();
        let flow = flow_to(dir.path(), &url);
        for _ in 0..3 {
            let err = flow.access_token().await.unwrap_err().to_string();
            assert!(err.contains("invalid_grant"), "{err}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_broken_key_file_is_named_and_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(
            &path,
            "{\"credentials\": {\"privateKey\": \"SECRET-MATERIAL\"",
        )
        .unwrap();
        let err = KeyFlow::load(&path, &|_| None, reqwest::Client::new())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("key.json") && err.contains("not a STACKIT service-account key"),
            "{err}"
        );
        assert!(!err.contains("SECRET-MATERIAL"), "{err}");
    }
}
