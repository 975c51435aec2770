//! `inspect` as an operation: backup headers of local files and S3
//! objects, read and parsed, nothing printed.

use crate::backup::stripes::StripeSet;
use crate::backup::{self, BackupHeader, Guid, HeaderError, verdict};
use crate::manifest::Env;
use crate::rules::Finding;
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

/// What files are judged together: a media set, or one compressed file
/// whose header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group<'a> {
    MediaSet(Guid),
    Unread(&'a str),
}

/// The verdict on one group of inspected files.
pub struct Judged<'a> {
    pub group: Group<'a>,
    pub members: Vec<&'a Inspected>,
    /// The stripe set, when the headers form one.
    pub set: Option<StripeSet>,
    pub findings: Vec<Finding>,
}

/// One verdict per media set: files of unrelated backups are judged each
/// on its own, never as one broken stripe set. Files whose header could
/// not be read (other than a compressed one) are left out: they are
/// errors of their own.
pub fn judge(inspected: &[Inspected]) -> Vec<Judged<'_>> {
    let mut groups: Vec<(Group<'_>, Vec<&Inspected>)> = Vec::new();
    for i in inspected {
        let key = match &i.header {
            Ok(h) => Group::MediaSet(h.media_set_id),
            Err(HeaderError::Compressed(_)) => Group::Unread(&i.path),
            Err(_) => continue,
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups
        .into_iter()
        .map(|(group, members)| {
            let reads: Vec<verdict::Read<'_>> = members
                .iter()
                .map(|i| verdict::Read {
                    key: &i.path,
                    size: i.size.unwrap_or(0),
                    header: &i.header,
                })
                .collect();
            let (set, findings) = verdict::assess(&reads);
            Judged {
                group,
                members,
                set,
                findings,
            }
        })
        .collect()
}

/// Whether inspect fails: a file that is not a backup, or whose compressed
/// container is damaged; one in a container this tool does not read is
/// reported, with a warning, but does not fail.
pub fn any_unreadable(inspected: &[Inspected]) -> bool {
    inspected
        .iter()
        .any(|i| matches!(&i.header, Err(e) if !matches!(e, HeaderError::Compressed(_))))
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
/// `--print-env` sets). The bucket probed, then one HEAD and one or two
/// ranged GETs, as `plan` does.
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
        let timeout = match crate::http::timeout(env) {
            Ok(t) => t,
            Err(e) => return fail(e.to_string()),
        };
        let s3 = match crate::s3::S3::new(&config, crate::http::client(timeout)) {
            Ok(s) => s,
            Err(e) => return fail(e.to_string()),
        };
        // As plan does: an endpoint that refuses connections or a bucket
        // that is not there is said at once, not after every retry of a
        // read. A key that may read the object but not list the bucket is
        // left to the read.
        match s3.probe().await {
            Ok(()) | Err(crate::s3::S3Error::Denied { .. }) => {}
            Err(e) => return fail(e.to_string()),
        }
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
