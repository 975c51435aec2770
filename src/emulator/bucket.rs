//! The emulator's bucket: s3s-fs, with the one thing it leaves out of the
//! S3 API that clients depend on. With `encoding-type=url` (which rusty-s3,
//! the AWS SDKs and boto ask for) S3 URL-encodes the keys, prefixes,
//! delimiters and markers of a listing, and clients decode them; s3s-fs
//! echoes `EncodingType` but sends the keys raw, so a client decodes
//! `a+b.bak` into `a b.bak`.
//!
//! And one thing it does that a rehearsal cannot afford: for an object put
//! into the bucket folder directly (the way to bring real-size backups to
//! the emulator), s3s-fs computes the object's MD5, the whole object, on
//! every HEAD and GET, however small the range. Such an object gets its
//! ETag once, from its size and modification time, as it is first read.

use s3s::dto::{
    CommonPrefix, EncodingType, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output,
};
use s3s::{S3, S3Request, S3Response, S3Result};

pub struct Bucket {
    pub fs: s3s_fs::FileSystem,
    /// The folder s3s-fs serves.
    pub root: std::path::PathBuf,
}

impl Bucket {
    /// Records an ETag for an object that has none (put there directly),
    /// where s3s-fs keeps what it knows of an object: a JSON file beside
    /// it, named after the base64 of bucket and key (s3s-fs 0.14's layout).
    /// Should the layout change, s3s-fs hashes the object as before: slower,
    /// never wrong.
    async fn remember_e_tag(&self, bucket: &str, key: &str) {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let info = self.root.join(format!(
            ".bucket-{}.object-{}.internal.json",
            b64(bucket),
            b64(key)
        ));
        if tokio::fs::try_exists(&info).await.unwrap_or(true) {
            return;
        }
        // The key is checked as s3s-fs checks it: nothing outside the root.
        let Ok(object) = std::path::Path::new(bucket)
            .join(key)
            .components()
            .try_fold(self.root.clone(), |mut path, c| match c {
                std::path::Component::Normal(part) => {
                    path.push(part);
                    Ok(path)
                }
                _ => Err(()),
            })
        else {
            return;
        };
        let Ok(meta) = tokio::fs::metadata(&object).await else {
            return;
        };
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let e_tag = format!("{:016x}{:016x}", meta.len(), modified as u64);
        let text = serde_json::json!({ "e_tag": e_tag }).to_string();
        let _ = tokio::fs::write(&info, text).await;
    }
}

/// As AWS encodes listings: unreserved characters and `/` stay, a space
/// becomes `+`, everything else (a literal `+` too) is `%XX`.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn encode_in_place(value: &mut Option<String>) {
    if let Some(v) = value {
        *v = encode(v);
    }
}

fn wants_url(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|e| e.as_str() == EncodingType::URL)
}

fn encode_prefixes(prefixes: &mut Option<Vec<CommonPrefix>>) {
    for p in prefixes.iter_mut().flatten() {
        encode_in_place(&mut p.prefix);
    }
}

/// The impl, with the listed methods passed to s3s-fs as they are. The
/// macro writes the whole impl: `async_trait` must see every method.
macro_rules! impl_s3 {
    ($($method:ident: $input:ident => $output:ident),* $(,)?; $($own:tt)*) => {
        #[async_trait::async_trait]
        impl S3 for Bucket {
            $(
                async fn $method(
                    &self,
                    req: S3Request<s3s::dto::$input>,
                ) -> S3Result<S3Response<s3s::dto::$output>> {
                    self.fs.$method(req).await
                }
            )*
            $($own)*
        }
    };
}

impl_s3! {
    create_bucket: CreateBucketInput => CreateBucketOutput,
    copy_object: CopyObjectInput => CopyObjectOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    put_object: PutObjectInput => PutObjectOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;

    async fn get_object(
        &self,
        req: S3Request<s3s::dto::GetObjectInput>,
    ) -> S3Result<S3Response<s3s::dto::GetObjectOutput>> {
        self.remember_e_tag(&req.input.bucket, &req.input.key).await;
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<s3s::dto::HeadObjectInput>,
    ) -> S3Result<S3Response<s3s::dto::HeadObjectOutput>> {
        self.remember_e_tag(&req.input.bucket, &req.input.key).await;
        self.fs.head_object(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let url = wants_url(req.input.encoding_type.as_ref());
        let mut response = self.fs.list_objects_v2(req).await?;
        if url {
            let out: &mut ListObjectsV2Output = &mut response.output;
            for object in out.contents.iter_mut().flatten() {
                encode_in_place(&mut object.key);
            }
            encode_prefixes(&mut out.common_prefixes);
            encode_in_place(&mut out.prefix);
            encode_in_place(&mut out.delimiter);
            encode_in_place(&mut out.start_after);
        }
        Ok(response)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let url = wants_url(req.input.encoding_type.as_ref());
        let mut response = self.fs.list_objects(req).await?;
        if url {
            let out: &mut ListObjectsOutput = &mut response.output;
            for object in out.contents.iter_mut().flatten() {
                encode_in_place(&mut object.key);
            }
            encode_prefixes(&mut out.common_prefixes);
            encode_in_place(&mut out.prefix);
            encode_in_place(&mut out.delimiter);
            encode_in_place(&mut out.marker);
            encode_in_place(&mut out.next_marker);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_like_aws() {
        assert_eq!(super::encode("a b+c/ü%.bak"), "a+b%2Bc/%C3%BC%25.bak");
    }
}
