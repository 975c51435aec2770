//! The REST contract, from the published OpenAPI documents in ../shared/api:
//! every answer the emulator gives (status, content type, body) is one the
//! document lists for that operation, in its schema; and what our own API
//! client sends (the restore body, the list parameters) fits the same
//! documents. Our client is lenient, so only a check against the documents
//! shows what a client generated from them would meet.

use crate::common;
use crate::common::emu;

use emu::{S3, eventually, restore_body, start};
use serde_json::{Map, Value, json};
use sqlflex_import::backup::writer::{self, BackupSpec};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const VERSIONS: [&str; 2] = ["v3alpha1", "v3"];

/// Answers the emulator gives that its documents do not list for the
/// operation, each chosen on purpose (README, Emulator): the body is still
/// the documents' own schema for such an answer.
const CHOSEN: [(&str, &str, u16, &str); 2] = [
    // A name that exists or is being restored; our client looks it up.
    ("post", "/restores", 409, "Error"),
    // Missing fields, named one by one, as the document's restore from a
    // managed backup (`.../backups/databases/{name}/restores`) answers.
    ("post", "/restores", 422, "ValidationError"),
];

fn api_documents() -> Option<PathBuf> {
    common::shared(
        "api",
        "sqlserverflex-v3.openapi.json",
        "the REST contract check",
    )
}

/// One OpenAPI document, and a checker for its (OpenAPI 3.0) schemas.
struct Document {
    root: Value,
    version: &'static str,
}

impl Document {
    fn load(dir: &std::path::Path, version: &'static str) -> Document {
        let path = dir.join(format!("sqlserverflex-{version}.openapi.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        Document {
            root: serde_json::from_str(&text).unwrap(),
            version,
        }
    }

    /// The operation on `sub`, a path below the instance ("" for the
    /// instance itself).
    fn operation(&self, method: &str, sub: &str) -> &Value {
        let path = format!(
            "/{}/projects/{{projectId}}/regions/{{region}}/instances/{{instanceId}}{sub}",
            self.version
        );
        let op = &self.root["paths"][&path][method];
        assert!(
            op.is_object(),
            "{} documents no {method} {path}",
            self.version
        );
        op
    }

    /// Follows `$ref`s (`#/components/...`) to what they name.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').expect("a local reference");
            v = self
                .root
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{r} is not in the document"));
        }
        v
    }

    /// The problems of one answer to `method sub`: a status the operation
    /// does not list (unless [`CHOSEN`]), a body out of its schema.
    fn answer_problems(
        &self,
        method: &str,
        sub: &str,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> Vec<String> {
        let op = self.operation(method, sub);
        let documented = op["responses"].get(status.to_string());
        let schema = match documented {
            Some(response) => {
                let response = self.resolve(response);
                match response.get("content") {
                    Some(content) => Some(self.resolve(&content["application/json"]["schema"])),
                    None => {
                        if !body.is_empty() {
                            return vec![format!(
                                "{status} is documented without a body, got {} bytes",
                                body.len()
                            )];
                        }
                        None
                    }
                }
            }
            None => match CHOSEN
                .iter()
                .find(|(m, s, code, _)| *m == method && *s == sub && *code == status)
            {
                Some((.., name)) => Some(&self.root["components"]["schemas"][*name]),
                None => return vec![format!("{status} is not an answer the document lists")],
            },
        };
        let Some(schema) = schema else {
            return Vec::new();
        };
        if !content_type.starts_with("application/json") {
            return vec![format!(
                "content type {content_type:?}, not application/json"
            )];
        }
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return vec![format!("not JSON: {e}")],
        };
        let mut problems = Vec::new();
        self.check(schema, &value, "$", &mut problems);
        problems
    }

    /// Whether `value` fits `schema`, strictly: a property the schema does
    /// not name is a problem too (a generated client drops it, so our
    /// client must not come to depend on it).
    fn check(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = self.flatten(self.resolve(schema));
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        // A discriminator names the option; its problems say more than a count.
        let discriminator = &schema["discriminator"];
        if let Some(tag) = discriminator["propertyName"].as_str()
            && let Some(chosen) = value[tag].as_str()
            && let Some(option) = discriminator["mapping"][chosen].as_str()
        {
            self.check(&json!({"$ref": option}), value, at, problems);
            return;
        }
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let fitting = options
                .iter()
                .filter(|o| {
                    let mut p = Vec::new();
                    self.check(o, value, at, &mut p);
                    p.is_empty()
                })
                .count();
            if fitting != 1 {
                problems.push(format!("{at}: fits {fitting} of the oneOf options, not 1"));
            }
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        let ty = schema.get("type").and_then(Value::as_str);
        match (ty, value) {
            (Some("object") | None, Value::Object(fields)) => {
                let properties = schema["properties"].as_object();
                for name in schema["required"].as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap();
                    if !fields.contains_key(name) {
                        problems.push(format!("{at}: required `{name}` is missing"));
                    }
                }
                for (name, v) in fields {
                    match properties.and_then(|p| p.get(name)) {
                        Some(s) => self.check(s, v, &format!("{at}.{name}"), problems),
                        None if properties.is_some() => {
                            problems.push(format!("{at}: `{name}` is not in the schema"))
                        }
                        None => {}
                    }
                }
            }
            (Some("array"), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.check(&schema["items"], item, &format!("{at}[{i}]"), problems);
                }
            }
            (Some("string"), Value::String(s)) => {
                if schema.get("format").and_then(Value::as_str) == Some("date-time")
                    && !is_rfc3339(s)
                {
                    problems.push(format!("{at}: {s:?} is not an RFC 3339 date-time"));
                }
            }
            (Some("integer"), Value::Number(n)) => {
                let fits = match schema.get("format").and_then(Value::as_str) {
                    Some("int32") => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                    _ => n.is_i64() || n.is_u64(),
                };
                if !fits {
                    problems.push(format!("{at}: {n} is not a {:?} integer", schema["format"]));
                }
            }
            (Some("number"), Value::Number(_)) | (Some("boolean"), Value::Bool(_)) => {}
            (None, _) => {}
            (Some(ty), v) => problems.push(format!("{at}: {v} is not of type {ty}")),
        }
    }

    /// A schema with its `allOf` parts merged into one (properties, required,
    /// type), so that strictness sees every property the parts allow.
    fn flatten(&self, schema: &Value) -> Value {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
            return schema.clone();
        };
        let mut merged: Map<String, Value> = schema.as_object().cloned().unwrap_or_default();
        merged.remove("allOf");
        let mut properties = merged
            .remove("properties")
            .and_then(|p| p.as_object().cloned())
            .unwrap_or_default();
        let mut required: Vec<Value> = merged
            .remove("required")
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default();
        for part in parts {
            let part = self.flatten(self.resolve(part));
            if let Some(p) = part["properties"].as_object() {
                properties.extend(p.clone());
            }
            required.extend(part["required"].as_array().cloned().unwrap_or_default());
            for key in ["type", "enum", "format", "items", "nullable"] {
                if let Some(v) = part.get(key) {
                    merged.entry(key).or_insert(v.clone());
                }
            }
        }
        if !properties.is_empty() {
            merged.insert("properties".into(), Value::Object(properties));
        }
        merged.insert("required".into(), Value::Array(required));
        Value::Object(merged)
    }
}

/// RFC 3339's `date-time`: a full date, `T`, a time, and an offset.
fn is_rfc3339(s: &str) -> bool {
    let re = regex::Regex::new(
        r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
    )
    .unwrap();
    re.is_match(s)
}

/// One request to the emulator, as raw as a generated client sees it.
async fn ask(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<String>,
) -> (u16, String, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_emulator_answer_is_one_the_documents_list() {
    let Some(dir) = api_documents() else { return };
    // Restores long enough that one is still running when its job is read.
    let e = start(Duration::from_secs(5)).await;
    S3::new(&e)
        .put("db.bak", writer::write(&BackupSpec::full("db")))
        .await;
    let db = [S3::uri(&e, "db.bak")];
    let token = e.credentials.token.clone();
    let url = |version: &str, sub: &str| emu::api(&e, 0, version, sub);

    let mut problems = Vec::new();
    let mut record = |version: &str,
                      what: &str,
                      answer: (u16, String, Vec<u8>),
                      doc: &Document,
                      method: &str,
                      sub: &str| {
        let (status, content_type, body) = answer;
        for p in doc.answer_problems(method, sub, status, &content_type, &body) {
            problems.push(format!("{version} {what} -> {status}: {p}"));
        }
        status
    };
    let documents: Vec<Document> = VERSIONS.iter().map(|v| Document::load(&dir, v)).collect();
    use reqwest::Method;

    // One database online and one restoring, so lists and jobs have items.
    let online = ask(
        Method::POST,
        url("v3", "/restores"),
        &token,
        Some(restore_body(&e, "done", &db).to_string()),
    )
    .await;
    assert_eq!(online.0, 202);
    eventually(Duration::from_secs(30), || async {
        let (status, ..) = ask(Method::GET, url("v3", "/databases/done"), &token, None).await;
        (status == 200).then_some(())
    })
    .await
    .expect("the first restore ends");

    for doc in &documents {
        let v = doc.version;
        let running = format!("running_{v}");
        let post_running = || {
            let body = restore_body(&e, &running, &db).to_string();
            ask(Method::POST, url(v, "/restores"), &token, Some(body))
        };
        let answer = post_running().await;
        assert_eq!(
            record(v, "POST restores", answer, doc, "post", "/restores"),
            202
        );
        let answer = ask(Method::GET, url(v, "/restore-jobs"), &token, None).await;
        let jobs: Value = serde_json::from_slice(&answer.2).unwrap();
        assert!(
            jobs["runningRestores"]
                .as_array()
                .is_some_and(|j| !j.is_empty()),
            "a restore is running: {jobs}"
        );
        assert_eq!(
            record(v, "GET restore-jobs", answer, doc, "get", "/restore-jobs"),
            200
        );

        let gets: [(&str, &str, String, u16); 6] = [
            ("GET instance", "", String::new(), 200),
            (
                "GET databases",
                "/databases",
                "/databases?page=1&size=10&sort=database_name.asc".into(),
                200,
            ),
            (
                "GET database",
                "/databases/{databaseName}",
                "/databases/done".into(),
                200,
            ),
            (
                "GET a missing database",
                "/databases/{databaseName}",
                "/databases/nothing_here".into(),
                404,
            ),
            (
                "GET users",
                "/users",
                "/users?page=1&size=10&sort=id.asc".into(),
                200,
            ),
            (
                "GET a missing user",
                "/users/{userId}",
                "/users/999999".into(),
                404,
            ),
        ];
        for (what, sub, path, want) in gets {
            let answer = ask(Method::GET, url(v, &path), &token, None).await;
            assert_eq!(record(v, what, answer, doc, "get", sub), want, "{v} {what}");
        }
        let users = ask(Method::GET, url(v, "/users"), &token, None).await;
        let listed: Value = serde_json::from_slice(&users.2).unwrap();
        let id = &listed["users"][0]["id"];
        let answer = ask(Method::GET, url(v, &format!("/users/{id}")), &token, None).await;
        assert_eq!(
            record(v, "GET user", answer, doc, "get", "/users/{userId}"),
            200
        );

        // Refusals: a wrong token, an unknown instance, a broken body, a
        // missing field, a name being restored.
        let answer = ask(Method::GET, url(v, ""), "not-the-token", None).await;
        assert_eq!(
            record(v, "GET instance, wrong token", answer, doc, "get", ""),
            401
        );
        let other = format!(
            "{}/{v}/projects/{}/regions/eu01/instances/5f1ec0de-0000-4999-8000-000000000999",
            e.api_endpoint(),
            e.project_id
        );
        let answer = ask(Method::GET, other, &token, None).await;
        assert_eq!(
            record(v, "GET an unknown instance", answer, doc, "get", ""),
            404
        );
        let answer = ask(
            Method::POST,
            url(v, "/restores"),
            &token,
            Some("{\"database_name\": ".into()),
        )
        .await;
        assert_eq!(
            record(
                v,
                "POST restores, not JSON",
                answer,
                doc,
                "post",
                "/restores"
            ),
            400
        );
        let mut no_owner = restore_body(&e, "no_owner", &db);
        no_owner["source"]
            .as_object_mut()
            .unwrap()
            .remove("database_owner");
        let answer = ask(
            Method::POST,
            url(v, "/restores"),
            &token,
            Some(no_owner.to_string()),
        )
        .await;
        assert_eq!(
            record(
                v,
                "POST restores, no owner",
                answer,
                doc,
                "post",
                "/restores"
            ),
            422
        );
        let answer = post_running().await;
        assert_eq!(
            record(
                v,
                "POST restores, restoring",
                answer,
                doc,
                "post",
                "/restores"
            ),
            409
        );
    }
    // Deleted through the first version; gone for the second.
    for (doc, want) in documents.iter().zip([202, 404]) {
        let v = doc.version;
        let answer = ask(Method::DELETE, url(v, "/databases/done"), &token, None).await;
        let status = record(
            v,
            "DELETE database",
            answer,
            doc,
            "delete",
            "/databases/{databaseName}",
        );
        assert_eq!(status, want, "{v}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A request as the stand-in service saw it: "METHOD path", query, body.
type Request = (String, String, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_sends_what_the_documents_describe() {
    use sqlflex_import::import_path::{Import, ImportPath, Want, api::ApiTarget};
    let Some(dir) = api_documents() else { return };
    // A stand-in service that keeps each request and answers as documented.
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let app = {
        let seen = Arc::clone(&seen);
        axum::Router::new().fallback(move |request: axum::extract::Request| {
            let seen = Arc::clone(&seen);
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
                let path = parts.uri.path().to_owned();
                let query = parts.uri.query().unwrap_or_default().to_owned();
                seen.lock().unwrap().push((format!("{} {path}", parts.method), query, body));
                let empty_page = |key: &str| {
                    json!({key: [], "pagination": {"page": 1, "size": 100, "sort": "index.asc", "totalPages": 1, "totalRows": 0}})
                };
                if parts.method == axum::http::Method::POST {
                    axum::http::StatusCode::ACCEPTED.into_response()
                } else if path.ends_with("/restore-jobs") {
                    axum::Json(json!({"runningRestores": []})).into_response()
                } else if path.ends_with("/databases") {
                    axum::Json(empty_page("databases")).into_response()
                } else if path.ends_with("/users") {
                    axum::Json(empty_page("users")).into_response()
                } else {
                    // The instance: our client reads only what it needs.
                    axum::Json(json!({})).into_response()
                }
            }
        })
    };
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let doc_dir = dir;
    for version in VERSIONS {
        let doc = Document::load(&doc_dir, version);
        seen.lock().unwrap().clear();
        let base = format!("http://{addr}/{version}/projects/p/regions/eu01/instances/i");
        let auth = sqlflex_import::import_path::api::auth::TokenSource::Static(
            sqlflex_import::secret::Secret::new("TEST-TOKEN-contract"),
        );
        let target = ApiTarget::new(
            reqwest::Client::new(),
            base,
            Arc::new(auth),
            "instance i (API)".into(),
        );
        let import = Import {
            database: "sales".into(),
            owner: Some("app_owner".into()),
            files: vec![
                "s3://s3.example/b/sales_1.bak".into(),
                "s3://s3.example/b/sales_2.bak".into(),
            ],
            bucket_uri: "s3://s3.example/b/".into(),
            access_key: sqlflex_import::secret::Secret::new("AK"),
            secret_key: sqlflex_import::secret::Secret::new("SK"),
        };
        target.submit(&import).await.unwrap();
        target.inventory(Want::Both).await.unwrap();
        target.facts().await.unwrap();

        let requests = seen.lock().unwrap().clone();
        let mut problems = Vec::new();
        let mut posted = 0;
        for (request, query, body) in &requests {
            if request.starts_with("POST") {
                posted += 1;
                let op = doc.operation("post", "/restores");
                let schema =
                    doc.resolve(&op["requestBody"]["content"]["application/json"]["schema"]);
                let value: Value = serde_json::from_slice(body).unwrap();
                doc.check(schema, &value, "body", &mut problems);
                continue;
            }
            let sub = if request.ends_with("/databases") {
                "/databases"
            } else if request.ends_with("/users") {
                "/users"
            } else {
                continue;
            };
            let op = doc.operation("get", sub);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (name, raw) = pair.split_once('=').unwrap();
                let parameter = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| doc.resolve(p))
                    .find(|p| p["name"] == name && p["in"] == "query");
                let Some(parameter) = parameter else {
                    problems.push(format!("{request}: `{name}` is not a documented parameter"));
                    continue;
                };
                let value = match raw.parse::<i64>() {
                    Ok(n) if doc.resolve(&parameter["schema"])["type"] == "integer" => json!(n),
                    _ => json!(raw),
                };
                doc.check(
                    &parameter["schema"],
                    &value,
                    &format!("{request} {name}"),
                    &mut problems,
                );
            }
        }
        assert_eq!(posted, 1, "{requests:?}");
        for listed in ["/databases", "/users"] {
            assert!(
                requests
                    .iter()
                    .any(|(r, q, _)| r.ends_with(listed) && q.contains("sort=")),
                "{listed} was listed: {requests:?}"
            );
        }
        assert!(problems.is_empty(), "{version}:\n{}", problems.join("\n"));
    }
}

/// The checker itself: each way an answer can break the contract is found.
#[test]
fn the_checker_finds_what_breaks_the_contract() {
    let Some(dir) = api_documents() else { return };
    let doc = Document::load(&dir, "v3");
    let json = |v: Value| v.to_string().into_bytes();
    let problems = |status, body: Vec<u8>| {
        doc.answer_problems("get", "/restore-jobs", status, "application/json", &body)
    };
    let job = json!({"command": "RESTORE DATABASE", "database_name": "a", "estimated_completion_time": "t", "percent_complete": 20, "start_time": "t"});
    assert!(problems(200, json(json!({"runningRestores": [job]}))).is_empty());

    let mut missing = job.clone();
    missing.as_object_mut().unwrap().remove("percent_complete");
    let mut extra = job.clone();
    extra["progress"] = json!(20);
    let mut wrong_type = job.clone();
    wrong_type["percent_complete"] = json!("20");
    let mut too_big = job.clone();
    too_big["percent_complete"] = json!(1u64 << 40);
    for (bad, found) in [
        (missing, "required `percent_complete` is missing"),
        (extra, "`progress` is not in the schema"),
        (wrong_type, "is not of type integer"),
        (too_big, "is not a"),
    ] {
        let p = problems(200, json(json!({"runningRestores": [bad]})));
        assert!(p.len() == 1 && p[0].contains(found), "{found}: {p:?}");
    }
    assert!(problems(418, Vec::new())[0].contains("not an answer the document lists"));
    assert!(problems(404, json(json!({"code": 404})))[0].contains("required"));
    let p = doc.answer_problems("get", "/restore-jobs", 200, "text/plain", b"{}");
    assert!(p[0].contains("content type"), "{p:?}");
    let p = doc.answer_problems("post", "/restores", 202, "", b"{}");
    assert!(p[0].contains("without a body"), "{p:?}");

    // Enums, date-times and oneOf (the restore body's `source`).
    let body = doc.resolve(
        &doc.operation("post", "/restores")["requestBody"]["content"]["application/json"]["schema"],
    );
    let mut p = Vec::new();
    doc.check(
        body,
        &json!({"database_name": "a", "source": {"type": "NEITHER"}}),
        "body",
        &mut p,
    );
    assert!(
        p.iter().any(|p| p.contains("fits 0 of the oneOf options")),
        "{p:?}"
    );
    let mut p = Vec::new();
    doc.check(
        &json!({"type": "string", "enum": ["a.asc"]}),
        &json!("a.up"),
        "sort",
        &mut p,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    let mut p = Vec::new();
    doc.check(
        &json!({"type": "string", "format": "date-time"}),
        &json!("2026-12-02T01:02:03"),
        "t",
        &mut p,
    );
    assert_eq!(p.len(), 1, "no offset: {p:?}");
    assert!(is_rfc3339("2026-12-02T01:02:03.5Z") && is_rfc3339("2026-12-02T01:02:03+01:00"));
}
