//! `inspect` as an operation: backup headers of local files and S3
//! objects, read and parsed, nothing printed.

use crate::backup::{self, BackupHeader, HeaderError};
use crate::manifest::Env;
use std::io::Read;

/// One file or object, read as `plan` reads backups: the head and, for
/// larger objects, the tail.
pub struct Inspected {
    /// The path or `s3://` URI as given.
    pub path: String,
    /// The object's size, when it could be had.
    pub size: Option<u64>,
    pub header: Result<BackupHeader, HeaderError>,
}

/// Reads every path (`s3://` URIs through S3_ENDPOINT, S3_ACCESS_KEY and
/// S3_SECRET_KEY from `env`), in order.
pub fn inspect(paths: &[String], env: Env) -> Vec<Inspected> {
    paths.iter().map(|p| inspect_one(p, env)).collect()
}

fn inspect_one(path: &str, env: Env) -> Inspected {
    if path.starts_with("s3://") {
        return inspect_s3(path, env);
    }
    let read = || -> std::io::Result<(u64, Vec<u8>, Option<Vec<u8>>)> {
        use std::io::{Seek, SeekFrom};
        let mut file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        let mut head = Vec::with_capacity(backup::HEAD_READ.min(size as usize));
        (&mut file)
            .take(backup::HEAD_READ as u64)
            .read_to_end(&mut head)?;
        let tail = if size > head.len() as u64 {
            let from = size.saturating_sub(backup::TAIL_READ as u64);
            file.seek(SeekFrom::Start(from))?;
            let mut tail = Vec::with_capacity(backup::TAIL_READ);
            file.take(backup::TAIL_READ as u64).read_to_end(&mut tail)?;
            Some(tail)
        } else {
            None
        };
        Ok((size, head, tail))
    };
    match read() {
        Ok((size, head, tail)) => Inspected {
            path: path.to_owned(),
            size: Some(size),
            header: backup::read_object(&head, tail.as_deref(), size),
        },
        Err(e) => Inspected {
            path: path.to_owned(),
            size: None,
            header: Err(HeaderError::Unavailable(format!("cannot read: {e}"))),
        },
    }
}

/// `s3://bucket/key` or `s3://host/bucket/key`, with the endpoint and keys
/// from S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY (what the emulator's
/// `--print-env` sets). One HEAD and one ranged GET, as `plan` does.
fn inspect_s3(uri: &str, env: Env) -> Inspected {
    let fail = |e: String| Inspected {
        path: uri.to_owned(),
        size: None,
        header: Err(HeaderError::Unavailable(e)),
    };
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let (Some(endpoint), Some(access_key), Some(secret_key)) = (
        var("S3_ENDPOINT"),
        var("S3_ACCESS_KEY"),
        var("S3_SECRET_KEY"),
    ) else {
        return fail(
            "reading s3:// URIs needs S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY in the environment"
                .into(),
        );
    };
    let Ok(endpoint) = url::Url::parse(&endpoint) else {
        return fail("S3_ENDPOINT is not a URL".into());
    };
    let parts: Vec<&str> = uri.trim_start_matches("s3://").splitn(3, '/').collect();
    let authority = crate::endpoint::authority(&endpoint);
    let (bucket, key) = match parts.as_slice() {
        [host, bucket, key] if authority.as_deref() == Some(*host) => (*bucket, (*key).to_owned()),
        [bucket, rest @ ..] if !rest.is_empty() => (*bucket, rest.join("/")),
        _ => return fail("not an s3://bucket/key URI".into()),
    };
    let config = crate::manifest::valid::S3Access {
        endpoint,
        bucket: bucket.to_owned(),
        access_key: crate::secret::Secret::new(access_key),
        secret_key: crate::secret::Secret::new(secret_key),
        region: var("S3_REGION").unwrap_or_else(|| "eu01".into()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    runtime.block_on(async {
        if let Err(e) = crate::plan::http_timeout() {
            return fail(e);
        }
        let s3 = match crate::s3::S3::new(&config, crate::plan::http_client()) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        match s3.read_backup(&key).await {
            Ok((size, header)) => Inspected {
                path: uri.to_owned(),
                size: Some(size),
                header,
            },
            Err(e) => fail(e.to_string()),
        }
    })
}
