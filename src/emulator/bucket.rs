//! The emulator's bucket: s3s-fs, with the one thing it leaves out of the
//! S3 API that clients depend on. With `encoding-type=url` (which rusty-s3,
//! the AWS SDKs and boto ask for) S3 URL-encodes the keys, prefixes,
//! delimiters and markers of a listing, and clients decode them; s3s-fs
//! echoes `EncodingType` but sends the keys raw, so a client decodes
//! `a+b.bak` into `a b.bak`.

use s3s::dto::{
    CommonPrefix, EncodingType, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output,
};
use s3s::{S3, S3Request, S3Response, S3Result};

pub struct Bucket(pub s3s_fs::FileSystem);

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
                    self.0.$method(req).await
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
    get_object: GetObjectInput => GetObjectOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    put_object: PutObjectInput => PutObjectOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let url = wants_url(req.input.encoding_type.as_ref());
        let mut response = self.0.list_objects_v2(req).await?;
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
        let mut response = self.0.list_objects(req).await?;
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
