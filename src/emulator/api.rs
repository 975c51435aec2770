//! The REST door: the restore-related part of STACKIT's SQLServer Flex API
//! (`v3alpha1` and `v3`), its token endpoint, and `/_emulator/stats`.
//! Field names, status codes and error bodies follow `shared/api/`.

use super::faults::{Fault, Faults};
use super::keys::{ACCESS_TOKEN_LIFETIME, ServiceAccount};
use super::model::{Counter, DatabaseInfo, DropRefusal, ImportRequest, Model, SubmitError};
use super::serve::ConnectionKill;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

pub struct ApiState {
    pub model: Arc<Model>,
    /// The static bearer token `--print-env` hands out.
    pub token: String,
    pub account: ServiceAccount,
    pub faults: Faults,
}

type Shared = State<Arc<ApiState>>;

pub fn router(state: Arc<ApiState>) -> Router {
    let scoped = "/{version}/projects/{project}/regions/{region}/instances/{instance}";
    let api = Router::new()
        .route(scoped, get(get_instance))
        .route(&format!("{scoped}/databases"), get(list_databases))
        .route(
            &format!("{scoped}/databases/{{name}}"),
            get(get_database).delete(delete_database),
        )
        .route(&format!("{scoped}/restore-jobs"), get(restore_jobs))
        .route(&format!("{scoped}/compatibility"), get(compatibility))
        .route(&format!("{scoped}/users"), get(list_users))
        .route(&format!("{scoped}/users/{{user}}"), get(get_user))
        .route(&format!("{scoped}/restores"), post(restore))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authorize,
        ));
    let faulty = api
        .route("/token", post(token))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            inject_faults,
        ));
    Router::new()
        .route("/_emulator/stats", get(stats))
        .merge(faulty)
        .with_state(state)
}

fn trace_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// The `Error` body of the API documents.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = match status.as_u16() {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        429 => "TOO_MANY_REQUESTS",
        501 => "NOT_IMPLEMENTED",
        503 => "SERVICE_UNAVAILABLE",
        _ => "INTERNAL_ERROR",
    };
    let body = json!({"code": status.as_u16(), "message": message.into(), "type": kind, "traceId": trace_id()});
    let mut response = (status, axum::Json(body)).into_response();
    if matches!(status.as_u16(), 429 | 503) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A refusal on its way to becoming an `Error` body.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// The `ValidationError` body: every field that is wrong.
fn invalid(fields: Vec<(String, String)>) -> Response {
    let validation: Vec<Value> = fields
        .into_iter()
        .map(|(field, message)| json!({"field": field, "message": message}))
        .collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"code": 422, "validation": validation})),
    )
        .into_response()
}

async fn inject_faults(State(state): Shared, request: Request, next: Next) -> Response {
    let does_work = request.method() == Method::POST && request.uri().path().ends_with("/restores");
    let kill = request.extensions().get::<ConnectionKill>().cloned();
    match state.faults.draw(does_work) {
        Fault::None => next.run(request).await,
        Fault::Status(status) => error(
            StatusCode::from_u16(status).expect("valid status"),
            "injected fault",
        ),
        Fault::StatusAfterWork(status) => {
            let _ = next.run(request).await;
            error(
                StatusCode::from_u16(status).expect("valid status"),
                "injected fault after the work was done",
            )
        }
        Fault::Reset => reset(kill).await,
        Fault::ResetAfterWork => {
            let _ = next.run(request).await;
            reset(kill).await
        }
    }
}

/// Drops the connection without an answer, as a dying proxy would.
async fn reset(kill: Option<ConnectionKill>) -> Response {
    match kill {
        Some(kill) => {
            kill.fire();
            std::future::pending().await
        }
        None => error(StatusCode::BAD_GATEWAY, "injected connection reset"),
    }
}

async fn authorize(
    State(state): Shared,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match bearer {
        None => error(StatusCode::UNAUTHORIZED, "missing bearer token"),
        Some(_) if state.model.credentials_revoked() => {
            error(StatusCode::UNAUTHORIZED, "the bearer token is not valid")
        }
        Some(t) if t == state.token || state.account.accepts_access_token(t) => {
            next.run(request).await
        }
        Some(_) => error(StatusCode::UNAUTHORIZED, "the bearer token is not valid"),
    }
}

/// Path parameters shared by every instance-scoped operation.
#[derive(serde::Deserialize)]
struct Scope {
    version: String,
    project: String,
    region: String,
    instance: String,
}

impl Scope {
    /// The instance id, once version, project, region and instance exist.
    fn check(&self, state: &ApiState) -> Result<String, ApiError> {
        if !matches!(self.version.as_str(), "v3alpha1" | "v3") {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("API version {} does not exist", self.version),
            ));
        }
        if self.region != state.model.region {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("region {} is not valid (eu01)", self.region),
            ));
        }
        if self.project != state.model.project_id {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("project {} not found", self.project),
            ));
        }
        if !state.model.has_instance(&self.instance) {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("instance {} not found", self.instance),
            ));
        }
        Ok(self.instance.clone())
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `2023-09-25T12:14:48`, the restore-jobs format.
fn plain_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .trim_end_matches('Z')
        .to_owned()
}

async fn get_instance(State(state): Shared, Path(scope): Path<Scope>) -> Response {
    let instance = match scope.check(&state) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    state.model.count_request(&instance, Counter::Instance);
    let settings = state.model.settings(&instance).unwrap_or_default();
    // v3alpha1 calls the field `status`, v3 `state` (the documents differ).
    let state_key = if scope.version == "v3" {
        "state"
    } else {
        "status"
    };
    axum::Json(json!({
        "id": instance,
        "name": format!("emulated-{}", &instance[..instance.len().min(8)]),
        state_key: settings.state,
        "edition": "developer",
        "version": settings.version,
        "flavorId": "4.16-Single",
        "replicas": 1,
        "retentionDays": 32,
        "backupSchedule": "0 3 * * *",
        "isDeletable": true,
        "storage": {"class": "premium-perf2-stackit", "size": settings.storage_gb},
        "network": {"accessScope": "PUBLIC", "acl": ["127.0.0.0/8"]},
    }))
    .into_response()
}

/// `page` (from 1) and `size` (1-1000, default 10), as the documents define them.
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    let number = |key: &str, default: usize| -> Result<usize, ApiError> {
        match query.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("{key} must be a whole number of at least 1"),
                )),
            },
        }
    };
    Ok((number("page", 1)?, number("size", 10)?.min(1000)))
}

/// `GET .../users`: the instance's logins, paged like the database list.
async fn list_users(
    State(state): Shared,
    Path(scope): Path<Scope>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let instance = match scope.check(&state) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let (page, size) = match paging(&query) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let users = state.model.users(&instance);
    let total = users.len();
    let items: Vec<Value> = users
        .iter()
        .enumerate()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|(i, (name, status))| json!({"id": i + 1, "username": name, "status": status}))
        .collect();
    axum::Json(json!({
        "users": items,
        "pagination": {
            "page": page,
            "size": size,
            "sort": query.get("sort").cloned().unwrap_or_else(|| "id.asc".into()),
            "totalPages": total.div_ceil(size).max(1),
            "totalRows": total,
        }
    }))
    .into_response()
}

/// `GET .../users/{id}`.
async fn get_user(State(state): Shared, Path(p): Path<UserScope>) -> Response {
    let instance = match p.scope.check(&state) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let users = state.model.users(&instance);
    match p.user.checked_sub(1).and_then(|i| users.get(i as usize)) {
        Some((name, status)) => axum::Json(json!({
            "id": p.user,
            "username": name,
            "status": status,
            "roles": ["##STACKIT_DatabaseManager##", "##STACKIT_LoginManager##"],
            "default_database": "master",
            "host": "127.0.0.1",
            "port": 1433,
        }))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, format!("user {} not found", p.user)),
    }
}

#[derive(serde::Deserialize)]
struct UserScope {
    #[serde(flatten)]
    scope: Scope,
    user: u64,
}

async fn list_databases(
    State(state): Shared,
    Path(scope): Path<Scope>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let instance = match scope.check(&state) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    state.model.count_status_request(&instance);
    let (page, size) = match paging(&query) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let sort = query.get("sort").map_or("index.asc", String::as_str);
    let mut databases = state.model.databases(&instance).unwrap_or_default();
    let by: fn(&DatabaseInfo, &DatabaseInfo) -> std::cmp::Ordering =
        match sort.rsplit_once('.').map_or(sort, |(k, _)| k) {
            "created_at" => |a, b| a.created.cmp(&b.created),
            "database_name" => |a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()),
            "database_owner" => |a, b| a.owner.cmp(&b.owner),
            "database_id" | "index" => |a, b| a.id.cmp(&b.id),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("sort {sort} is not supported"),
                );
            }
        };
    databases.sort_by(by);
    if sort.ends_with(".desc") {
        databases.reverse();
    }
    let total = databases.len();
    let items: Vec<Value> = databases
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|d| json!({"id": d.id, "name": d.name, "owner": d.owner, "created": rfc3339(d.created)}))
        .collect();
    axum::Json(json!({
        "databases": items,
        "pagination": {"page": page, "size": size, "sort": sort, "totalRows": total, "totalPages": total.div_ceil(size)},
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct DatabaseScope {
    #[serde(flatten)]
    scope: Scope,
    name: String,
}

async fn get_database(State(state): Shared, Path(p): Path<DatabaseScope>) -> Response {
    let instance = match p.scope.check(&state) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    state.model.count_request(&instance, Counter::Lookup);
    match state.model.database(&instance, &p.name) {
        Some(d) => axum::Json(json!({
            "id": d.id,
            "name": d.name,
            "owner": d.owner,
            "collationName": d.collation,
            "compatibilityLevel": d.level,
        }))
        .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("database {} not found", p.name),
        ),
    }
}

/// `ListCompatibilityResponse`: the levels the instance offers.
async fn compatibility(State(state): Shared, Path(scope): Path<Scope>) -> Response {
    let instance = match scope.check(&state) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let levels = state.model.levels(&instance).unwrap_or_default();
    let list: Vec<Value> = levels
        .iter()
        .map(|l| {
            json!({
                "compatibility_level": l,
                "description": super::restore::release_of_level(*l),
            })
        })
        .collect();
    axum::Json(json!({ "compatibilities": list })).into_response()
}

async fn delete_database(State(state): Shared, Path(p): Path<DatabaseScope>) -> Response {
    let instance = match p.scope.check(&state) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    match state.model.drop_database(&instance, &p.name) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(DropRefusal::Missing) => error(
            StatusCode::NOT_FOUND,
            format!("database {} not found", p.name),
        ),
        Err(DropRefusal::Denied) => error(
            StatusCode::FORBIDDEN,
            format!("no permission to delete database {}", p.name),
        ),
        // The documents list no 409 for this operation: a bad request.
        Err(DropRefusal::Restoring) => error(
            StatusCode::BAD_REQUEST,
            format!(
                "database {} is being restored and cannot be deleted now",
                p.name
            ),
        ),
    }
}

async fn restore_jobs(State(state): Shared, Path(scope): Path<Scope>) -> Response {
    let instance = match scope.check(&state) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    state.model.count_status_request(&instance);
    let jobs: Vec<Value> = state
        .model
        .running_restores(&instance)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            json!({
                "command": "RESTORE DATABASE",
                "database_name": r.database,
                "percent_complete": r.percent,
                "start_time": plain_time(r.started),
                "estimated_completion_time": plain_time(r.estimated_completion),
            })
        })
        .collect();
    axum::Json(json!({ "runningRestores": jobs })).into_response()
}

async fn restore(State(state): Shared, Path(scope): Path<Scope>, body: Bytes) -> Response {
    let instance = match scope.check(&state) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not valid JSON: {e}"),
            );
        }
    };
    let request = match import_request(&body) {
        Ok(r) => r,
        Err(Refused::Fields(fields)) => return invalid(fields),
        Err(Refused::NotEmulated(what)) => return error(StatusCode::NOT_IMPLEMENTED, what),
    };
    match state.model.submit(&instance, request) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e @ (SubmitError::Exists(_) | SubmitError::Restoring(_))) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e @ SubmitError::UnknownInstance(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(SubmitError::Invalid(why)) => {
            error(StatusCode::BAD_REQUEST, format!("database_name: {why}"))
        }
    }
}

enum Refused {
    Fields(Vec<(String, String)>),
    NotEmulated(String),
}

/// The restore body, with every missing or mistyped field named.
fn import_request(body: &Value) -> Result<ImportRequest, Refused> {
    let mut problems = Vec::new();
    let text = |v: &Value, path: &str, problems: &mut Vec<(String, String)>| -> String {
        match v.pointer(&format!("/{}", path.replace('.', "/"))) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) => {
                problems.push((path.to_owned(), "this field must not be empty".into()));
                String::new()
            }
            Some(_) => {
                problems.push((path.to_owned(), "this field must be a string".into()));
                String::new()
            }
            None => {
                problems.push((path.to_owned(), "this field is required".into()));
                String::new()
            }
        }
    };
    let database = text(body, "database_name", &mut problems);
    let kind = text(body, "source.type", &mut problems);
    match kind.as_str() {
        "EXTERNAL_S3" | "" => {}
        "BACKUP" => {
            return Err(Refused::NotEmulated(
                "restores from managed backups are not emulated".into(),
            ));
        }
        other => problems.push((
            "source.type".into(),
            format!("must be EXTERNAL_S3 or BACKUP, not {other}"),
        )),
    }
    let owner = text(body, "source.database_owner", &mut problems);
    let access_key = text(body, "source.s3_details.s3_access_key", &mut problems);
    let secret_key = text(body, "source.s3_details.s3_access_secret", &mut problems);
    text(body, "source.s3_details.s3_bucket", &mut problems);
    let mut files: Vec<(i64, String)> = Vec::new();
    match body.pointer("/source/s3_details/s3_files") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                let path = item.get("file_path").and_then(Value::as_str);
                let number = item.get("file_number").and_then(Value::as_i64);
                match (number, path) {
                    (Some(n), Some(p)) if !p.is_empty() => files.push((n, p.to_owned())),
                    _ => problems.push((
                        format!("source.s3_details.s3_files[{i}]"),
                        "needs file_number (integer) and file_path (string)".into(),
                    )),
                }
            }
        }
        Some(Value::Array(_)) => problems.push((
            "source.s3_details.s3_files".into(),
            "must have at least one file".into(),
        )),
        Some(_) => problems.push(("source.s3_details.s3_files".into(), "must be a list".into())),
        None => problems.push((
            "source.s3_details.s3_files".into(),
            "this field is required".into(),
        )),
    }
    files.sort();
    if files.windows(2).any(|w| w[0].0 == w[1].0) {
        problems.push((
            "source.s3_details.s3_files".into(),
            "file_number values must be unique".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(Refused::Fields(problems));
    }
    Ok(ImportRequest {
        database,
        owner,
        files: files.into_iter().map(|(_, p)| p).collect(),
        access_key,
        secret_key,
    })
}

async fn stats(State(state): Shared) -> Response {
    axum::Json(state.model.stats()).into_response()
}

/// `POST /token`: the service-account key flow's token endpoint.
async fn token(State(state): Shared, Form(form): Form<HashMap<String, String>>) -> Response {
    let oauth_error = |status: StatusCode, code: &str, description: String| {
        (
            status,
            axum::Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "use urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "assertion is required".into(),
        );
    };
    let verdict = if state.model.credentials_revoked() {
        Err("the service-account key has been revoked".to_owned())
    } else {
        state.account.verify_assertion(assertion)
    };
    match verdict {
        Ok(()) => axum::Json(json!({
            "access_token": state.account.issue_access_token(),
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_LIFETIME.as_secs(),
            "refresh_token": "",
            "scope": "",
        }))
        .into_response(),
        // RFC 6749 5.2: 400 for every error but a failed client
        // authentication; RFC 7523 3.1 names a bad assertion invalid_grant.
        Err(why) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
    }
}
