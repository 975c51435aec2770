use super::{is_json, print_json};
use crate::Exit;
use crate::backup::{self, BackupHeader, stripes};
use crate::cli::Global;
use std::io::Read;

struct Inspected {
    path: String,
    size: Option<u64>,
    header: Result<BackupHeader, String>,
}

pub fn run(global: &Global, paths: &[String]) -> Exit {
    let inspected: Vec<Inspected> = paths
        .iter()
        .map(|p| {
            let mut i = inspect(p);
            // Errors can carry a transport error's URL or an S3 answer.
            if let Err(e) = &mut i.header {
                *e = crate::redact::scrub(e);
            }
            i
        })
        .collect();
    let any_unreadable = inspected.iter().any(|i| i.header.is_err());

    if is_json(global) {
        let items: Vec<FileReport> = inspected.iter().map(report).collect();
        print_json(&items);
    } else {
        print_table(&inspected);
    }
    if inspected.len() > 1 && !any_unreadable {
        let headers: Vec<(String, BackupHeader)> = inspected
            .iter()
            .filter_map(|i| i.header.as_ref().ok().map(|h| (i.path.clone(), h.clone())))
            .collect();
        // The verdict is for people; with --format json stdout stays the array.
        eprintln!("{}", verdict(&headers));
    }
    if any_unreadable {
        Exit::Failed
    } else {
        Exit::Success
    }
}

fn inspect(path: &str) -> Inspected {
    if path.starts_with("s3://") {
        return inspect_s3(path);
    }
    let read = || -> std::io::Result<(u64, Vec<u8>)> {
        let file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        let mut prefix = Vec::with_capacity(backup::HEADER_PREFIX);
        file.take(backup::HEADER_PREFIX as u64)
            .read_to_end(&mut prefix)?;
        Ok((size, prefix))
    };
    match read() {
        Ok((size, prefix)) => Inspected {
            path: path.to_owned(),
            size: Some(size),
            header: backup::read_header(&prefix).map_err(|e| e.to_string()),
        },
        Err(e) => Inspected {
            path: path.to_owned(),
            size: None,
            header: Err(format!("cannot read: {e}")),
        },
    }
}

/// `s3://bucket/key` or `s3://host/bucket/key`, with the endpoint and keys
/// from S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY (what the emulator's
/// `--print-env` sets). One HEAD and one ranged GET, as `plan` does.
fn inspect_s3(uri: &str) -> Inspected {
    let fail = |e: String| Inspected {
        path: uri.to_owned(),
        size: None,
        header: Err(e),
    };
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(endpoint), Some(access_key), Some(secret_key)) = (
        var("S3_ENDPOINT"),
        var("S3_ACCESS_KEY"),
        var("S3_SECRET_KEY"),
    ) else {
        return fail("reading s3:// URIs needs S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY in the environment".into());
    };
    let parts: Vec<&str> = uri.trim_start_matches("s3://").splitn(3, '/').collect();
    let authority = url::Url::parse(&endpoint).ok().and_then(|u| {
        u.host_str().map(|h| match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_owned(),
        })
    });
    let (bucket, key) = match parts.as_slice() {
        [host, bucket, key] if authority.as_deref() == Some(*host) => (*bucket, (*key).to_owned()),
        [bucket, rest @ ..] if !rest.is_empty() => (*bucket, rest.join("/")),
        _ => return fail("not an s3://bucket/key URI".into()),
    };
    let config = crate::manifest::model::S3 {
        endpoint,
        bucket: bucket.to_owned(),
        access_key: crate::secret::Secret::new(access_key),
        secret_key: Some(crate::secret::Secret::new(secret_key)),
        secret_key_file: None,
        region: var("S3_REGION"),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    runtime.block_on(async {
        let s3 = match crate::s3::S3::new(&config, crate::plan::http_client()) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let size = match s3.head(&key).await {
            Ok(size) => size,
            Err(e) => return fail(e.to_string()),
        };
        match s3.read_prefix(&key, backup::HEADER_PREFIX).await {
            Ok(prefix) => Inspected {
                path: uri.to_owned(),
                size: Some(size),
                header: backup::read_header(&prefix).map_err(|e| e.to_string()),
            },
            Err(e) => fail(e.to_string()),
        }
    })
}

/// One file as `inspect --format json` shows it: `path` first, then the
/// header in its field order (the DESIGN.md keys come first), then the
/// size; or `{path, error}`.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum FileReport<'a> {
    Header {
        path: &'a str,
        #[serde(flatten)]
        header: &'a BackupHeader,
        file_size: Option<u64>,
    },
    Unreadable {
        path: &'a str,
        error: &'a str,
    },
}

fn report(i: &Inspected) -> FileReport<'_> {
    match &i.header {
        Ok(header) => FileReport::Header {
            path: &i.path,
            header,
            file_size: i.size,
        },
        Err(error) => FileReport::Unreadable {
            path: &i.path,
            error,
        },
    }
}

fn print_table(inspected: &[Inspected]) {
    let header = [
        "FILE",
        "DATABASE",
        "SERVER",
        "TYPE",
        "STRIPE",
        "MEDIA SET",
        "PROTECTED",
        "VERSION",
        "BACKUP START",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut errors = Vec::new();
    for i in inspected {
        match &i.header {
            Ok(h) => rows.push(vec![
                i.path.clone(),
                h.database_name.clone(),
                h.server_name.clone(),
                h.backup_type.to_string(),
                format!("{} of {}", h.family_sequence, h.family_count),
                h.media_set_id.to_string(),
                match (h.password_protected, h.encrypted) {
                    (false, false) => "no".into(),
                    (true, false) => "password".into(),
                    (false, true) => "encrypted".into(),
                    (true, true) => "password, encrypted".into(),
                },
                h.software_version.clone(),
                h.backup_start.clone().unwrap_or_default(),
            ]),
            Err(e) => errors.push(format!("{}: {e}", i.path)),
        }
    }
    if !rows.is_empty() {
        println!("{}", crate::table::render(&header, &rows));
    }
    for e in errors {
        eprintln!("error: {e}");
    }
}

fn verdict(headers: &[(String, BackupHeader)]) -> String {
    match stripes::analyze(headers) {
        Ok(set) => {
            let ready = match stripes::readiness(&set) {
                Ok(()) => "ready to import".to_owned(),
                Err(refusal) => format!("but cannot be imported: {refusal}"),
            };
            format!(
                "stripe set: complete, {} of {} stripe{} of `{}` ({}), {ready}",
                headers.len(),
                set.family_count,
                if set.family_count == 1 { "" } else { "s" },
                set.database_name,
                set.backup_type
            )
        }
        Err(problems) => {
            let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            format!(
                "stripe set: these files are not one complete backup:\n{}",
                list.join("\n")
            )
        }
    }
}
