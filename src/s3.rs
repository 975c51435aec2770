//! The manifest's S3 bucket: signed HEAD, ranged GET and LIST. Requests are
//! signed with SigV4 by rusty-s3 (presigned URLs, so no header of ours is
//! part of the signature) and sent with reqwest; transient failures are
//! retried.

use crate::manifest::valid::S3Access;
use crate::retry::Attempt;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::time::Duration;

const SIGN_FOR: Duration = Duration::from_secs(600);
/// A listing page is a few hundred KiB at most; anything larger is refused.
const MAX_LIST_PAGE: usize = 8 * 1024 * 1024;
/// Pages of one listing at most (S3 gives up to 1,000 keys a page).
pub const MAX_LIST_PAGES: usize = 1_000;
/// Keys under one prefix at most: a folder of backups, not a data lake.
pub const MAX_LISTED_KEYS: usize = 100_000;

#[derive(Debug, Clone, thiserror::Error)]
pub enum S3Error {
    #[error("{} does not exist in the bucket", crate::redact::terminal(key))]
    NotFound { key: String },
    #[error("access to {key} is denied with the manifest's S3 key (HTTP {status})")]
    Denied { key: String, status: u16 },
    #[error("S3 answered HTTP {status} for {key}: {message}")]
    Http {
        key: String,
        status: u16,
        message: String,
    },
    #[error("cannot reach S3 for {key}: {message}")]
    Unreachable { key: String, message: String },
}

impl S3Error {
    /// The plan rule an unreadable file breaks.
    pub fn rule(&self) -> crate::rules::Rule {
        use crate::rules::Rule;
        match self {
            S3Error::NotFound { .. } => Rule::ObjectMissing,
            S3Error::Denied { .. } => Rule::ObjectDenied,
            S3Error::Http { .. } | S3Error::Unreachable { .. } => Rule::S3Failed,
        }
    }
}

pub struct S3 {
    http: reqwest::Client,
    bucket: Bucket,
    credentials: Credentials,
    config: S3Access,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    /// As the listing says; None when it does not.
    pub size: Option<u64>,
}

/// The endpoint and bucket cannot make a client.
#[derive(Debug, thiserror::Error)]
#[error("s3: {0}")]
pub struct SetupError(#[source] rusty_s3::BucketError);

impl S3 {
    pub fn new(config: &S3Access, http: reqwest::Client) -> Result<Self, SetupError> {
        let bucket = Bucket::new(
            config.endpoint.clone(),
            UrlStyle::Path,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(SetupError)?;
        let credentials = Credentials::new(
            config.access_key.expose().to_owned(),
            config.secret_key.expose().to_owned(),
        );
        Ok(S3 {
            http,
            bucket,
            credentials,
            config: config.clone(),
        })
    }

    /// `s3://host/bucket/key`, as STACKIT's import takes it.
    pub fn uri(&self, key: &str) -> String {
        self.config.uri_of(key)
    }

    /// `s3://host/bucket/`, the API's `s3_bucket`.
    pub fn bucket_uri(&self) -> String {
        self.config.uri_of("")
    }

    /// Sends a request built by `build` (a fresh signature each attempt),
    /// retrying connection errors, 5xx and 429 by the one retry policy.
    async fn send(
        &self,
        key: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, S3Error> {
        let attempt = || async {
            match build().send().await {
                Ok(r) if r.status().is_success() => Attempt::Done(r),
                Ok(r) if r.status() == 404 => Attempt::Fail(S3Error::NotFound {
                    key: key.to_owned(),
                }),
                Ok(r) if matches!(r.status().as_u16(), 401 | 403) => {
                    Attempt::Fail(S3Error::Denied {
                        key: key.to_owned(),
                        status: r.status().as_u16(),
                    })
                }
                Ok(r) if r.status().is_server_error() || r.status() == 429 => Attempt::Again {
                    retry_after: crate::retry::retry_after(r.headers()),
                    why: format!("HTTP {}", r.status()),
                },
                Ok(r) if r.status().is_redirection() => Attempt::Fail(S3Error::Http {
                    key: key.to_owned(),
                    status: r.status().as_u16(),
                    message: "a redirect, not followed (signed requests go only to the \
                              configured endpoint)"
                        .into(),
                }),
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = crate::http::read_limited(r, 4096).await.unwrap_or_default();
                    Attempt::Fail(S3Error::Http {
                        key: key.to_owned(),
                        status,
                        message: crate::redact::text(&String::from_utf8_lossy(&body)),
                    })
                }
                Err(e) => match crate::retry::permanent(&e) {
                    Some(why) => Attempt::Fail(S3Error::Unreachable {
                        key: key.to_owned(),
                        message: why,
                    }),
                    // reqwest's text names the presigned URL: a working
                    // download link. Never show it.
                    None => Attempt::Again {
                        why: crate::redact::transport(&e),
                        retry_after: None,
                    },
                },
            }
        };
        crate::retry::retry(&format!("S3 {key}"), attempt, |message, _| {
            S3Error::Unreachable {
                key: key.to_owned(),
                message,
            }
        })
        .await
    }

    /// The object's size; also proves it exists and the key may read it.
    pub async fn head(&self, key: &str) -> Result<u64, S3Error> {
        let response = self
            .send(key, || {
                self.http.head(
                    self.bucket
                        .head_object(Some(&self.credentials), key)
                        .sign(SIGN_FOR),
                )
            })
            .await?;
        // Not content_length(): for HEAD that is the (empty) body's length.
        Ok(response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// The first `len` bytes (fewer if the object is shorter): one ranged GET.
    pub async fn read_prefix(&self, key: &str, len: usize) -> Result<Vec<u8>, S3Error> {
        self.read_range(key, 0, len as u64).await
    }

    /// An object read as a backup header needs it: its size (HEAD), then
    /// its head, then, for an object larger than the head, its end (for a
    /// cut upload or appended sets). The header as the backup reader finds it.
    pub async fn read_backup(
        &self,
        key: &str,
    ) -> Result<
        (
            u64,
            Result<crate::backup::BackupHeader, crate::backup::HeaderError>,
        ),
        S3Error,
    > {
        let size = self.head(key).await?;
        let header = self.read_backup_sized(key, size).await?;
        Ok((size, header))
    }

    /// [`Self::read_backup`] of an object whose size is known (from a
    /// listing): its head and, when larger, its end.
    pub async fn read_backup_sized(
        &self,
        key: &str,
        size: u64,
    ) -> Result<Result<crate::backup::BackupHeader, crate::backup::HeaderError>, S3Error> {
        use crate::backup;
        let head = self.read_prefix(key, backup::HEAD_READ).await?;
        let tail = if size > head.len() as u64 {
            let from = size.saturating_sub(backup::TAIL_READ as u64);
            Some(self.read_range(key, from, size).await?)
        } else {
            None
        };
        Ok(backup::read_object(&head, tail.as_deref(), size))
    }

    /// Bytes `from..to` of an object of that size: one ranged GET.
    pub async fn read_range(&self, key: &str, from: u64, to: u64) -> Result<Vec<u8>, S3Error> {
        let len = to.saturating_sub(from) as usize;
        let range = format!("bytes={from}-{}", to.saturating_sub(1));
        let response = self
            .send(key, || {
                self.http
                    .get(
                        self.bucket
                            .get_object(Some(&self.credentials), key)
                            .sign(SIGN_FOR),
                    )
                    .header("Range", &range)
            })
            .await?;
        crate::http::read_limited(response, len)
            .await
            .map_err(|e| S3Error::Unreachable {
                key: key.to_owned(),
                message: e.to_string(),
            })
    }

    /// Uploads an object (one PUT; the demo's backups are small).
    pub async fn put(&self, key: &str, body: bytes::Bytes) -> Result<(), S3Error> {
        self.send(key, || {
            self.http
                .put(
                    self.bucket
                        .put_object(Some(&self.credentials), key)
                        .sign(SIGN_FOR),
                )
                .body(body.clone())
        })
        .await
        .map(|_| ())
    }

    /// Whether the endpoint answers and the bucket is there and readable
    /// with the key: one listing of at most one key, asked before any
    /// object is, so an endpoint that cannot be reached, a bucket that does
    /// not exist, a key that is refused or a redirect is said once, not
    /// once per file. A refused connection is tried once more; a failure
    /// that may pass (a timeout, a 5xx, a connection dropped mid-answer) is
    /// left to the per-file reads and their retries.
    pub async fn probe(&self) -> Result<(), S3Error> {
        let where_ = || {
            format!(
                "bucket `{}` at {}",
                self.config.bucket,
                crate::redact::text(self.config.endpoint.as_str())
            )
        };
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_max_keys(1);
            match self.http.get(action.sign(SIGN_FOR)).send().await {
                Ok(r) => break r,
                Err(e) => {
                    if let Some(why) = crate::retry::permanent(&e) {
                        return Err(S3Error::Unreachable {
                            key: where_(),
                            message: why,
                        });
                    }
                    if !e.is_connect() {
                        return Ok(());
                    }
                    if attempt >= 2 {
                        return Err(S3Error::Unreachable {
                            key: where_(),
                            message: crate::redact::transport(&e),
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
            }
        };
        let status = response.status().as_u16();
        match status {
            404 => Err(S3Error::Http {
                key: where_(),
                status,
                message: "the bucket does not exist".into(),
            }),
            401 | 403 => Err(S3Error::Denied {
                key: where_(),
                status,
            }),
            300..=399 => Err(S3Error::Http {
                key: where_(),
                status,
                message: "a redirect, not followed (signed requests go only to the \
                          configured endpoint)"
                    .into(),
            }),
            _ => Ok(()),
        }
    }

    /// Every `.bak` key under `prefix`, sorted; a key that cannot name one
    /// object the same way everywhere is an error naming the prefix.
    pub async fn list_backups(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        for object in self.list(prefix).await? {
            if !object.key.to_ascii_lowercase().ends_with(".bak") {
                continue;
            }
            crate::manifest::model::check_key(&object.key).map_err(|e| S3Error::Http {
                key: prefix.to_owned(),
                status: 200,
                message: format!("the listing holds a key that cannot be imported: {e}"),
            })?;
            keys.push(object.key);
        }
        Ok(keys)
    }

    /// Every object under `prefix`, sorted by key, following continuation
    /// tokens; a listing that comes back to a token it gave before, or runs
    /// past [`MAX_LIST_PAGES`] pages or [`MAX_LISTED_KEYS`] keys, is an error
    /// naming the prefix. Keys are as the bucket gives them: a caller shows
    /// them escaped.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, S3Error> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        let mut seen_tokens = std::collections::HashSet::new();
        let mut listed = 0usize;
        let too_long = |what: String| S3Error::Http {
            key: prefix.to_owned(),
            status: 200,
            message: format!("the listing of prefix {prefix} {what}; not read further"),
        };
        for page_number in 1.. {
            if page_number > MAX_LIST_PAGES {
                return Err(too_long(format!("runs past {MAX_LIST_PAGES} pages")));
            }
            let response = self
                .send(prefix, || {
                    let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
                    action.with_prefix(prefix);
                    if let Some(t) = &token {
                        action.with_continuation_token(t.clone());
                    }
                    self.http.get(action.sign(SIGN_FOR))
                })
                .await?;
            let body = crate::http::read_limited(response, MAX_LIST_PAGE)
                .await
                .map_err(|e| S3Error::Unreachable {
                    key: prefix.to_owned(),
                    message: e.to_string(),
                })?;
            let text = String::from_utf8_lossy(&body);
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).map_err(|e| {
                S3Error::Http {
                    key: prefix.to_owned(),
                    status: 200,
                    message: format!("unreadable listing: {e}"),
                }
            })?;
            listed = listed.saturating_add(page.contents.len());
            if listed > MAX_LISTED_KEYS {
                return Err(too_long(format!("holds more than {MAX_LISTED_KEYS} keys")));
            }
            keys.extend(page.contents.into_iter().map(|c| Listed {
                key: c.key,
                size: c.size,
            }));
            match page.next_continuation_token {
                Some(t) if !seen_tokens.insert(t.clone()) => {
                    return Err(too_long(
                        "comes back to a continuation token it gave before".into(),
                    ));
                }
                Some(t) => token = Some(t),
                None => break,
            }
        }
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(keys)
    }
}
