//! Server-side copies: CopyObject and UploadPartCopy.
//!
//! A copy opens the source's segments and reseals them under a fresh data key through the
//! same write pipeline as a PUT, so the destination never shares key material with the
//! source. Copy-source conditions fail with 412 as S3 does.

use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::checksum::Claimed;
use crate::conditional::{self, Conditions, OnNotModified, timestamp_from_ms};
use crate::encryption::customer::{copy_source_customer_key_of, customer_key_of};
use crate::encryption::{CustomerKey, Requester, SseView, request};
use crate::error::api_error;
use crate::metadata;
use crate::object::{self, ContentHeaders, NewObject};
use crate::pipeline::{self, ByteSource, ObjectName};
use crate::service::Coffer;

/// The source bucket and key of a copy (access point and outpost sources are refused).
fn source_of(src: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((
            bucket.to_string(),
            key.to_string(),
            version_id.as_ref().map(ToString::to_string),
        )),
        _ => Err(api_error!(
            NotImplemented,
            "Copy sources other than bucket/key are not supported"
        )),
    }
}

/// Loads the copy source and checks the copy-source conditions.
async fn load_source(
    c: &Coffer,
    src: &CopySource,
    cond: &Conditions<'_>,
    customer: Option<&CustomerKey>,
) -> S3Result<(String, String, object::Loaded)> {
    let (bucket, key, version_id) = source_of(src)?;
    object::check_version_id(version_id.as_deref())?;
    let loaded = object::load(c, &bucket, &key).await?;
    // An SSE-C source answers only to its key, before its conditions reveal anything of it.
    c.encryption
        .check_customer_key(&loaded.rec.envelope, customer)?;
    conditional::evaluate(
        cond,
        &loaded.rec.etag,
        loaded.rec.last_modified_unix_ms,
        OnNotModified::PreconditionFailed,
    )?;
    Ok((bucket, key, loaded))
}

/// The plaintext of `range` of a source object, as a write-pipeline source.
async fn source_stream(
    c: &Coffer,
    bucket: String,
    key: String,
    mut src: object::Loaded,
    range: std::ops::Range<u64>,
    who: &Requester,
    customer: Option<&CustomerKey>,
) -> S3Result<ByteSource> {
    let parts = object::read_parts(c, &mut src, who, customer).await?;
    let body = pipeline::read_range(&c.blobs, parts, range, ObjectName { bucket, key }).await?;
    Ok(Box::pin(body.map(|r| {
        r.map_err(|_| {
            api_error!(
                InternalError,
                "The copy source's stored data failed its integrity check."
            )
        })
    })))
}

pub async fn copy_object(
    c: &Coffer,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let S3Request {
        input,
        headers,
        extensions,
        ..
    } = req;
    let who = Requester::of(&extensions, &headers)?;
    let mut input = input;
    let customer = customer_key_of!(input)?;
    let source_customer = copy_source_customer_key_of!(input)?;
    let sse = object::write_encryption(
        c,
        &request::sse_headers_of!(input, customer.as_ref()),
        &input.bucket,
        &who,
    )
    .await?;
    object::check_input_write_options!(input);
    let (src_bucket, src_key, loaded) = load_source(
        c,
        &input.copy_source,
        &Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        },
        source_customer.as_ref(),
    )
    .await?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if let Some(d) = &input.metadata_directive
        && d.as_str() != MetadataDirective::REPLACE
        && d.as_str() != MetadataDirective::COPY
    {
        return Err(api_error!(
            InvalidArgument,
            "Unknown metadata directive {:?}: expected COPY or REPLACE",
            d.as_str()
        ));
    }
    let same_object = src_bucket == input.bucket && src_key == input.key;
    if same_object
        && !replace
        && input.server_side_encryption.is_none()
        && customer.is_none()
        && input.storage_class.is_none()
    {
        return Err(api_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let src = &loaded.rec;
    let (content, user_metadata) = if replace {
        (
            ContentHeaders {
                content_type: input.content_type,
                content_encoding: crate::object::stored_content_encoding(input.content_encoding),
                content_disposition: input.content_disposition,
                content_language: input.content_language,
                cache_control: input.cache_control,
                expires: object::format_expires(input.expires.as_ref()),
            },
            input.metadata,
        )
    } else {
        (
            ContentHeaders {
                content_type: src.content_type.clone(),
                content_encoding: src.content_encoding.clone(),
                content_disposition: src.content_disposition.clone(),
                content_language: src.content_language.clone(),
                cache_control: src.cache_control.clone(),
                expires: src.expires.clone(),
            },
            metadata::open(&c.ring, src.sealed_user_metadata.as_deref(), &loaded.id())?,
        )
    };
    let size = src.size;
    let source = source_stream(
        c,
        src_bucket,
        src_key,
        loaded,
        0..size,
        &who,
        source_customer.as_ref(),
    )
    .await?;
    let obj = NewObject {
        bucket: input.bucket,
        key: input.key,
        headers: content,
        metadata: user_metadata,
        claimed: Claimed::default(),
        content_md5: None,
        // Conditions on the destination (S3 reads them as it does on PutObject).
        if_none_match: destination_condition(&headers, http::header::IF_NONE_MATCH)?,
        if_match: destination_condition(&headers, http::header::IF_MATCH)?,
        sse,
    };
    let stored = object::store_object(
        c,
        obj,
        source,
        input.checksum_algorithm.as_ref(),
        &headers,
        None,
        &who,
    )
    .await?;
    let rec = stored.record;
    let view = SseView::of(&rec.envelope, customer.as_ref());
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(rec.etag.clone())),
            last_modified: Some(timestamp_from_ms(rec.last_modified_unix_ms)),
            checksum_crc64nvme: rec.checksums.crc64nvme.clone(),
            checksum_crc32: rec.checksums.crc32.clone(),
            checksum_crc32c: rec.checksums.crc32c.clone(),
            checksum_sha1: rec.checksums.sha1.clone(),
            checksum_sha256: rec.checksums.sha256.clone(),
            checksum_type: Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
        }),
        server_side_encryption: view.algorithm,
        sse_customer_algorithm: view.customer_algorithm,
        sse_customer_key_md5: view.customer_key_md5,
        ssekms_key_id: view.kms_key_arn,
        ssekms_encryption_context: view.context,
        bucket_key_enabled: view.bucket_key_enabled,
        ..Default::default()
    }))
}

/// Parses `x-amz-copy-source-range: bytes=first-last` against the source size.
pub(crate) fn copy_range(range: Option<&str>, size: u64) -> S3Result<std::ops::Range<u64>> {
    let Some(r) = range else { return Ok(0..size) };
    let invalid = || {
        api_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let spec = r.strip_prefix("bytes=").ok_or_else(invalid)?;
    let (a, b) = spec.split_once('-').ok_or_else(invalid)?;
    let first: u64 = a.trim().parse().map_err(|_| invalid())?;
    let last: u64 = b.trim().parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(api_error!(
            InvalidRange,
            "The x-amz-copy-source-range {r:?} is not satisfiable: the source is {size} bytes"
        ));
    }
    Ok(first..last + 1)
}

pub async fn upload_part_copy(
    c: &Coffer,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let S3Request {
        input,
        headers,
        extensions,
        ..
    } = req;
    let who = Requester::of(&extensions, &headers)?;
    let mut input = input;
    let customer = customer_key_of!(input)?;
    let source_customer = copy_source_customer_key_of!(input)?;
    let (src_bucket, src_key, loaded) = load_source(
        c,
        &input.copy_source,
        &Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        },
        source_customer.as_ref(),
    )
    .await?;
    let range = copy_range(input.copy_source_range.as_deref(), loaded.rec.size)?;
    // The destination upload's key is checked before any of the source is read.
    let upload =
        crate::multipart::load_upload(c, &input.bucket, &input.key, &input.upload_id).await?;
    crate::multipart::check_part_customer_key(c, &upload.envelope, customer.as_ref())?;
    let source = source_stream(
        c,
        src_bucket,
        src_key,
        loaded,
        range,
        &who,
        source_customer.as_ref(),
    )
    .await?;
    let (part, envelope) = crate::multipart::store_part(
        c,
        &input.bucket,
        &input.key,
        &input.upload_id,
        input.part_number,
        source,
        crate::multipart::PartDigests::default(),
        &headers,
        None,
        &who,
        customer.as_ref(),
    )
    .await?;
    let view = SseView::of(&envelope, customer.as_ref());
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag.clone())),
            last_modified: Some(timestamp_from_ms(crate::service::now_ms())),
            // Every checksum kept for the part: an upload created with a checksum algorithm
            // needs this part's in CompleteMultipartUpload.
            checksum_crc32: part.checksums.crc32.clone(),
            checksum_crc32c: part.checksums.crc32c.clone(),
            checksum_crc64nvme: part.checksums.crc64nvme.clone(),
            checksum_sha1: part.checksums.sha1.clone(),
            checksum_sha256: part.checksums.sha256.clone(),
        }),
        server_side_encryption: view.algorithm,
        sse_customer_algorithm: view.customer_algorithm,
        sse_customer_key_md5: view.customer_key_md5,
        ssekms_key_id: view.kms_key_arn,
        bucket_key_enabled: view.bucket_key_enabled,
        ..Default::default()
    }))
}

/// `If-Match` / `If-None-Match` of a CopyObject request: conditions on the destination object,
/// as on PutObject (`s3s` 0.14 has no input field for them, so they come from the headers).
fn destination_condition(
    headers: &http::HeaderMap,
    name: http::header::HeaderName,
) -> S3Result<Option<ETagCondition>> {
    headers
        .get(&name)
        .map(|v| {
            ETagCondition::parse_http_header(v.as_bytes()).map_err(|_| {
                api_error!(
                    InvalidArgument,
                    "The {name} header is not a valid ETag condition"
                )
            })
        })
        .transpose()
        .and_then(|cond| object::supported_write_condition(cond, &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_range_is_inclusive_and_checked() {
        assert_eq!(copy_range(Some("bytes=0-9"), 100).unwrap(), 0..10);
        assert_eq!(copy_range(None, 100).unwrap(), 0..100);
        assert!(copy_range(Some("bytes=10-100"), 100).is_err());
        assert!(copy_range(Some("bytes=5-1"), 100).is_err());
        assert!(copy_range(Some("5-1"), 100).is_err());
    }
}
