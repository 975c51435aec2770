//! Imports through STACKIT's REST API: `POST .../restores`, with
//! `restore-jobs` and the paginated database list as the status round.

pub mod auth;
pub mod section;

use super::{Import, ImportPath, InstanceFacts, Inventory, StatusError, SubmitError, Want};
use crate::retry::Attempt;
use auth::TokenSource;
use futures::future::BoxFuture;
use section::ApiVersion;
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// API answers are small; a larger body is a broken or hostile server.
const MAX_BODY: usize = 16 * 1024 * 1024;
const PAGE_SIZE: u32 = 100;
/// Pages followed at most (100,000 databases): a server that claims more is wrong.
const MAX_PAGES: u32 = 1000;
/// Items of one list, and bytes of all its pages, at most: whatever
/// `totalPages` says, a list never holds more in memory.
const MAX_LIST_ITEMS: usize = 100_000;
const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;

pub struct ApiTarget {
    http: reqwest::Client,
    /// `{endpoint}/{version}/projects/{p}/regions/{r}/instances/{i}`
    base: String,
    auth: Arc<TokenSource>,
    /// Set by the first 401: the credentials are wrong, and presenting them
    /// again on every status round would only count against them.
    unauthorized: std::sync::OnceLock<String>,
    label: String,
}

impl ApiTarget {
    fn host_and_port(&self) -> Option<(String, u16)> {
        let url = url::Url::parse(&self.base).ok()?;
        Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
    }

    /// `base` is the instance's URL, see [`instance_url`].
    pub fn new(http: reqwest::Client, base: String, auth: Arc<TokenSource>, label: String) -> Self {
        ApiTarget {
            http,
            base,
            auth,
            unauthorized: std::sync::OnceLock::new(),
            label,
        }
    }

    /// A GET with retries; the body as JSON of type T. An error that retries
    /// cannot mend (a refusal, a TLS failure, an answer outside the
    /// contract) is [`StatusError::Lasting`].
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, StatusError> {
        self.get_sized(path).await.map(|(value, _)| value)
    }

    /// [`ApiTarget::get`], with the size of the body read.
    async fn get_sized<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, usize), StatusError> {
        use StatusError::Lasting;
        let url = format!("{}{path}", self.base);
        let attempt = || async {
            let answer = match self.send(self.http.get(&url)).await {
                Ok(answer) => answer,
                Err(e) => return Attempt::Fail(e),
            };
            match answer {
                Ok(r) if r.status().is_success() => {
                    let body = match crate::http::read_limited(r, MAX_BODY + 1).await {
                        Ok(body) => body,
                        // Cut off while the answer arrived: a later round may
                        // get it whole.
                        Err(e) => return Attempt::Fail(StatusError::Transient(e.to_string())),
                    };
                    if body.len() > MAX_BODY {
                        return Attempt::Fail(Lasting(format!(
                            "the answer is larger than {} MiB",
                            MAX_BODY >> 20
                        )));
                    }
                    match serde_json::from_slice(&body) {
                        Ok(value) => Attempt::Done((value, body.len())),
                        Err(e) => Attempt::Fail(Lasting(format!(
                            "the answer does not fit the API contract ({e})"
                        ))),
                    }
                }
                other => self.not_done(other).await,
            }
        };
        // The instance's own URL is the empty path below it.
        let request = match path {
            "" => "GET the instance".to_owned(),
            path => format!("GET {path}"),
        };
        self.retried(&request, attempt).await
    }
}

impl ApiTarget {
    /// The bearer token of a status request: none after a 401, which is
    /// never presented again, nor when the token source refuses.
    async fn status_token(&self) -> Result<crate::secret::Secret, StatusError> {
        if let Some(why) = self.unauthorized.get() {
            return Err(StatusError::Lasting(why.clone()));
        }
        self.auth.bearer().await.map_err(|e| token_error(&e))
    }

    /// What a status request's answer other than success means: worth
    /// another try (a 5xx, a 429, a dropped connection), or final (a 401,
    /// which is not tried again by anyone, another 4xx, a request that
    /// cannot succeed).
    async fn not_done<T>(
        &self,
        answer: reqwest::Result<reqwest::Response>,
    ) -> Attempt<T, StatusError> {
        use StatusError::Lasting;
        match answer {
            Ok(r) if is_transient(r.status()) => Attempt::Again {
                retry_after: crate::retry::retry_after(r.headers()),
                why: service_error(r).await,
            },
            Ok(r) if r.status() == 401 => {
                let why = format!("{} (not tried again)", service_error(r).await);
                let _ = self.unauthorized.set(why.clone());
                Attempt::Fail(Lasting(why))
            }
            Ok(r) => Attempt::Fail(Lasting(service_error(r).await)),
            Err(e) => match crate::retry::permanent(&e) {
                Some(why) => Attempt::Fail(Lasting(why)),
                None => Attempt::Again {
                    why: crate::redact::transport(&e),
                    retry_after: None,
                },
            },
        }
    }

    /// `DELETE .../databases/{name}`, retried while it may pass: 202 (the
    /// drop was accepted) and 404 (nothing to drop) are done.
    async fn delete_database(&self, database: &str) -> Result<(), StatusError> {
        let url = self.database_url(database)?;
        let attempt = || async {
            let answer = match self.send(self.http.delete(url.clone())).await {
                Ok(answer) => answer,
                Err(e) => return Attempt::Fail(e),
            };
            match answer {
                Ok(r) if r.status().is_success() || r.status() == 404 => Attempt::Done(()),
                other => self.not_done(other).await,
            }
        };
        self.retried(&format!("DELETE the database {database}"), attempt)
            .await
    }

    /// Sends a request with the status token; an error when there is none.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Result<reqwest::Response>, StatusError> {
        let token = self.status_token().await?;
        Ok(request.bearer_auth(token.expose()).send().await)
    }

    /// `.../databases/{name}`, the name escaped as one path segment.
    fn database_url(&self, name: &str) -> Result<url::Url, StatusError> {
        use StatusError::Lasting;
        let mut url = url::Url::parse(&self.base).map_err(|e| Lasting(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| Lasting("the instance URL cannot carry a path".into()))?
            .extend(["databases", name]);
        Ok(url)
    }

    /// A request retried while it may pass, its errors naming `what`.
    async fn retried<T, F, Fut>(&self, what: &str, attempt: F) -> Result<T, StatusError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<T, StatusError>>,
    {
        let label = format!("{}: {what}", self.label);
        crate::retry::retry(&label, attempt, StatusError::exhausted)
            .await
            .map_err(|e| e.map_text(|why| format!("{what}: {why}")))
    }

    /// `GET .../databases/{name}`: the database's owner, collation and
    /// compatibility level; None when there is no such database (404).
    pub(crate) async fn database(
        &self,
        name: &str,
    ) -> Result<Option<DatabaseDetails>, StatusError> {
        use StatusError::Lasting;
        let url = self.database_url(name)?;
        let attempt = || async {
            let answer = match self.send(self.http.get(url.clone())).await {
                Ok(answer) => answer,
                Err(e) => return Attempt::Fail(e),
            };
            match answer {
                Ok(r) if r.status() == 404 => Attempt::Done(None),
                Ok(r) if r.status().is_success() => {
                    match crate::http::read_limited(r, MAX_BODY).await {
                        Ok(body) => match serde_json::from_slice(&body) {
                            Ok(details) => Attempt::Done(Some(details)),
                            Err(e) => Attempt::Fail(Lasting(format!(
                                "the answer does not fit the API contract ({e})"
                            ))),
                        },
                        Err(e) => Attempt::Fail(StatusError::Transient(e.to_string())),
                    }
                }
                other => self.not_done(other).await,
            }
        };
        self.retried(&format!("GET the database {name}"), attempt)
            .await
    }

    /// `GET .../compatibility`: the levels the instance offers.
    pub(crate) async fn levels(&self) -> Result<Vec<u16>, StatusError> {
        #[derive(Deserialize)]
        struct Levels {
            compatibilities: Vec<Level>,
        }
        #[derive(Deserialize)]
        struct Level {
            compatibility_level: Option<i64>,
        }
        let levels: Levels = self.get("/compatibility").await?;
        let mut out: Vec<u16> = levels
            .compatibilities
            .iter()
            .filter_map(|l| l.compatibility_level.and_then(|v| u16::try_from(v).ok()))
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Every item of a paged list, page by page as `pagination.totalPages`
    /// says, but never more than [`MAX_PAGES`] pages.
    async fn get_all<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        sort: &str,
    ) -> Result<Vec<T>, StatusError> {
        let mut items = Vec::new();
        let mut bytes = 0usize;
        let mut page = 1;
        loop {
            let (p, size): (Page<T>, usize) = self
                .get_sized(&format!("{path}?page={page}&size={PAGE_SIZE}&sort={sort}"))
                .await?;
            bytes = bytes.saturating_add(size);
            items.extend(p.items);
            if items.len() > MAX_LIST_ITEMS || bytes > MAX_LIST_BYTES {
                return Err(StatusError::Lasting(format!(
                    "GET {path}: the list runs past {MAX_LIST_ITEMS} items or {} MiB over its \
                     pages; not read further",
                    MAX_LIST_BYTES >> 20
                )));
            }
            if i64::from(page) >= p.pagination.total_pages || page >= MAX_PAGES {
                return Ok(items);
            }
            page += 1;
        }
    }
}

/// `GetDatabaseResponse`: what the checks after an import read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseDetails {
    pub owner: String,
    pub collation_name: Option<String>,
    pub compatibility_level: Option<i64>,
}

/// An API endpoint that cannot take the instance's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{endpoint}` is not a URL ({reason})")]
    NotAUrl {
        endpoint: String,
        reason: url::ParseError,
    },
    #[error("`{0}` cannot carry a path")]
    NoPath(String),
}

/// `{endpoint}/{version}/projects/{project}/regions/{region}/instances/{instance}`,
/// each id escaped as one path segment: validation already refuses ids
/// that are not of the documented form, and escaping keeps even a library
/// caller's `../other-project` inside its own segment.
pub fn instance_url(
    endpoint: &str,
    version: ApiVersion,
    project: &str,
    region: &str,
    instance: &str,
) -> Result<String, UrlError> {
    let version = match version {
        ApiVersion::V3alpha1 => "v3alpha1",
        ApiVersion::V3 => "v3",
    };
    let mut url =
        url::Url::parse(endpoint.trim_end_matches('/')).map_err(|reason| UrlError::NotAUrl {
            endpoint: endpoint.to_owned(),
            reason,
        })?;
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| UrlError::NoPath(endpoint.to_owned()))?
        .pop_if_empty()
        .extend([
            version,
            "projects",
            project,
            "regions",
            region,
            "instances",
            instance,
        ]);
    Ok(url.to_string())
}

/// A token that could not be had: only an unreachable token endpoint may
/// answer on a later round; a refused key stays refused.
fn token_error(e: &auth::AuthError) -> StatusError {
    let text = crate::redact::text(&e.to_string());
    match e {
        auth::AuthError::Unreachable { .. } => StatusError::Transient(text),
        _ => StatusError::Lasting(text),
    }
}

/// Answers that may mean "try again": 408 (RFC 9110: the client may repeat
/// the request), 429 and 5xx, except 501 (Not Implemented: the same request
/// will never be implemented a second later). Any other 4xx is final, and
/// ends a status wait at once.
fn is_transient(status: reqwest::StatusCode) -> bool {
    status == 408 || status == 429 || (status.is_server_error() && status != 501)
}

/// The service's own message: `Error` (with traceId) or `ValidationError`.
async fn service_error(response: reqwest::Response) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<String>,
        #[serde(rename = "traceId")]
        trace_id: Option<String>,
        validation: Option<Vec<FieldError>>,
    }
    #[derive(Deserialize)]
    struct FieldError {
        field: String,
        message: String,
    }
    let status = response.status();
    let body = crate::http::read_limited(response, 64 * 1024)
        .await
        .unwrap_or_default();
    // The server's words may repeat the request, S3 secret included.
    crate::redact::text(&match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody {
            validation: Some(fields),
            ..
        }) if !fields.is_empty() => {
            let list: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect();
            format!("HTTP {status}: {}", list.join("; "))
        }
        Ok(ErrorBody {
            message: Some(m),
            trace_id,
            ..
        }) => match trace_id {
            Some(t) => format!("HTTP {status}: {m} (traceId {t})"),
            None => format!("HTTP {status}: {m}"),
        },
        _ if status.is_redirection() => format!(
            "HTTP {status}: a redirect, not followed (requests that carry credentials go only \
             to the configured endpoint)"
        ),
        _ => {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            if text.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {}", text.trim())
            }
        }
    })
}

#[derive(Deserialize)]
struct RestoreJobs {
    #[serde(rename = "runningRestores")]
    running: Vec<RunningRestore>,
}

#[derive(Deserialize)]
struct RunningRestore {
    database_name: String,
    percent_complete: Option<i64>,
}

/// One page of a paged list (`GET .../databases`, `GET .../users`): the
/// documents name the items after the list.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(alias = "databases", alias = "users")]
    items: Vec<T>,
    pagination: Pagination,
}

#[derive(Deserialize)]
struct ListedDatabase {
    name: String,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(rename = "totalPages")]
    total_pages: i64,
}

impl ImportPath for ApiTarget {
    fn address(&self) -> Option<(String, u16)> {
        self.host_and_port()
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn min_poll_gap(&self) -> Duration {
        // Rounds are rare (the poller waits for predicted ends); this only
        // bounds the retry of a prediction that came a moment too early.
        Duration::from_millis(100)
    }

    fn inventory(&self, want: Want) -> BoxFuture<'_, Result<Inventory, StatusError>> {
        Box::pin(async move {
            let restoring = if want == Want::Online {
                None
            } else {
                let jobs: RestoreJobs = self.get("/restore-jobs").await?;
                let running: HashMap<String, Option<u32>> = jobs
                    .running
                    .into_iter()
                    .map(|j| {
                        (
                            j.database_name.to_lowercase(),
                            j.percent_complete.map(|p| p.clamp(0, 100) as u32),
                        )
                    })
                    .collect();
                Some(running)
            };
            let online = if want != Want::Running {
                let mut names = HashSet::new();
                let listed: Vec<ListedDatabase> = self.get_all("/databases", "index.asc").await?;
                names.extend(listed.into_iter().map(|d| d.name.to_lowercase()));
                Some(names)
            } else {
                None
            };
            Ok(Inventory {
                restoring,
                online,
                other: HashMap::new(),
            })
        })
    }

    fn facts(&self) -> BoxFuture<'_, Result<InstanceFacts, StatusError>> {
        Box::pin(async move {
            #[derive(Deserialize)]
            struct Instance {
                // v3alpha1 says `status`, v3 `state`.
                status: Option<String>,
                state: Option<String>,
                version: Option<String>,
                storage: Option<Storage>,
            }
            #[derive(Deserialize)]
            struct Storage {
                size: Option<u64>,
            }
            #[derive(Deserialize)]
            struct ListedUser {
                username: String,
                status: String,
            }
            let instance: Instance = self.get("").await?;
            let listed: Vec<ListedUser> = self.get_all("/users", "id.asc").await?;
            // Only `verify.compatibility_level` needs them: a service that
            // does not answer leaves the version's levels to the plan.
            let levels = self.levels().await.ok();
            let users = listed
                .into_iter()
                .map(|u| {
                    (
                        u.username.to_lowercase(),
                        u.status.eq_ignore_ascii_case("ACTIVE"),
                    )
                })
                .collect();
            Ok(InstanceFacts {
                state: instance
                    .state
                    .or(instance.status)
                    .map(|s| crate::import_path::InstanceState::parse(&s)),
                version: instance.version,
                storage_gb: instance.storage.and_then(|s| s.size),
                users: Some(users),
                current_login: None,
                // The API lists every database of the instance.
                sees_every_database: None,
                levels,
            })
        })
    }

    fn drop_database<'a>(&'a self, database: &'a str) -> BoxFuture<'a, Result<(), StatusError>> {
        Box::pin(self.delete_database(database))
    }

    fn submit<'a>(&'a self, import: &'a Import) -> BoxFuture<'a, Result<(), SubmitError>> {
        Box::pin(async move {
            let files: Vec<_> = import
                .files
                .iter()
                .enumerate()
                .map(|(i, path)| json!({"file_number": i + 1, "file_path": path}))
                .collect();
            // The only place the S3 secret leaves the process on this path.
            let body = json!({
                "database_name": import.database,
                "source": {
                    "type": "EXTERNAL_S3",
                    "database_owner": import.owner,
                    "logging_guid": uuid::Uuid::new_v4().to_string(),
                    "s3_details": {
                        "s3_access_key": import.access_key.expose(),
                        "s3_access_secret": import.secret_key.expose(),
                        "s3_bucket": import.bucket_uri,
                        "s3_files": files,
                    }
                }
            });
            if let Some(why) = self.unauthorized.get() {
                return Err(SubmitError::Refused(why.clone()));
            }
            // No token, no request: the import did not start.
            let token = self
                .auth
                .bearer()
                .await
                .map_err(|e| SubmitError::Refused(crate::redact::text(&e.to_string())))?;
            let response = self
                .http
                .post(format!("{}/restores", self.base))
                .bearer_auth(token.expose())
                .json(&body)
                .send()
                .await;
            match response {
                Ok(r) if r.status().as_u16() == 202 || r.status().is_success() => Ok(()),
                Ok(r) if r.status() == 409 => Err(SubmitError::Exists(service_error(r).await)),
                Ok(r) if r.status() == 401 => {
                    let why = format!("{} (not tried again)", service_error(r).await);
                    let _ = self.unauthorized.set(why.clone());
                    Err(SubmitError::Refused(why))
                }
                Ok(r) if is_transient(r.status()) => {
                    let retry_after = crate::retry::retry_after(r.headers());
                    Err(SubmitError::Unknown {
                        message: service_error(r).await,
                        retry_after,
                    })
                }
                Ok(r) => Err(SubmitError::Refused(service_error(r).await)),
                // Not sent at all (a forbidden header value, a bad
                // certificate): the import certainly did not start.
                Err(e) if crate::retry::permanent(&e).is_some() => Err(SubmitError::Refused(
                    crate::retry::permanent(&e).unwrap_or_default(),
                )),
                Err(e) => Err(SubmitError::Unknown {
                    message: crate::redact::transport(&e),
                    retry_after: None,
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_401_is_final_for_the_whole_run() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let app = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"code": 401, "message": "token expired"})),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let base = instance_url(&endpoint, ApiVersion::V3, "p", "eu01", "i").unwrap();
        let target = ApiTarget::new(
            reqwest::Client::new(),
            base,
            Arc::new(TokenSource::Static(crate::secret::Secret::new("t0ken-x"))),
            "instance prod (API)".into(),
        );
        for _ in 0..3 {
            // Lasting: the poller ends the wait with it instead of retrying.
            match target.inventory(Want::Both).await.unwrap_err() {
                StatusError::Lasting(why) => assert!(why.contains("token expired"), "{why}"),
                other => panic!("a 401 read as passing: {other:?}"),
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "asked again after a 401");
    }

    #[test]
    fn only_an_unreachable_token_endpoint_may_pass() {
        use auth::AuthError;
        let url = || "https://auth.example/token".to_owned();
        let unreachable = AuthError::Unreachable {
            url: url(),
            reason: "connection refused".into(),
        };
        assert!(matches!(
            token_error(&unreachable),
            StatusError::Transient(_)
        ));
        let refused = AuthError::Refused {
            url: url(),
            reason: "invalid_grant".into(),
        };
        assert!(matches!(token_error(&refused), StatusError::Lasting(_)));
        let unusable = AuthError::Unusable {
            url: url(),
            reason: "TLS failed: invalid peer certificate".into(),
        };
        assert!(matches!(token_error(&unusable), StatusError::Lasting(_)));
    }

    #[test]
    fn a_501_is_final_and_v3_has_one_host() {
        assert!(!is_transient(reqwest::StatusCode::NOT_IMPLEMENTED));
        assert!(is_transient(reqwest::StatusCode::INTERNAL_SERVER_ERROR));
        assert!(is_transient(reqwest::StatusCode::TOO_MANY_REQUESTS));
        assert!(is_transient(reqwest::StatusCode::REQUEST_TIMEOUT));
        assert!(!is_transient(reqwest::StatusCode::FORBIDDEN));
        assert!(!is_transient(reqwest::StatusCode::BAD_REQUEST));
        assert_eq!(
            ApiVersion::V3.default_endpoint("eu01"),
            "https://mssql-flex-service.api.stackit.cloud"
        );
        assert_eq!(
            ApiVersion::V3alpha1.default_endpoint("eu01"),
            "https://mssql-flex-service.api.eu01.stackit.cloud"
        );
    }

    #[test]
    fn ids_stay_inside_their_path_segment() {
        let url = instance_url(
            "https://api.example/",
            ApiVersion::V3alpha1,
            "p",
            "eu01",
            "../../../../other-project/instances/victim?",
        )
        .unwrap();
        assert_eq!(
            url,
            "https://api.example/v3alpha1/projects/p/regions/eu01/instances/..%2F..%2F..%2F..%2Fother-project%2Finstances%2Fvictim%3F"
        );
    }
}
