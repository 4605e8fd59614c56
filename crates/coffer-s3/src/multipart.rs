//! Multipart uploads: Create, UploadPart, Complete, Abort, ListParts, ListMultipartUploads.
//!
//! An upload gets one data key at creation; each part is its own sealed stream under a part
//! key HKDF(DEK, random part salt), so a re-uploaded part never reuses a nonce. Completion
//! validates the part list and commits the object record in one transaction: no data is
//! rewritten (DESIGN §4).

use coffer_crypto::Md5;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use coffer_store::{Envelope, ObjectRecord, PartLayout, RECORD_VERSION, UploadRecord};

use crate::binding::{self, ObjectId};
use crate::checksum::{self, Claimed};
use crate::conditional::timestamp_from_ms;
use crate::encryption::customer::customer_key_of;
use crate::encryption::{self, CustomerKey, DataKeys, Requester, SseView, request};
use crate::error::api_error;
use crate::metadata;
use crate::object::{self, format_expires};
use crate::pipeline::{self, ByteSource};
use crate::service::{Coffer, now_ms};

/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's highest part number.
pub const MAX_PART_NUMBER: i32 = 10_000;

pub async fn create_multipart_upload(
    c: &Coffer,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let who = Requester::of(&req.extensions, &req.headers)?;
    let mut input = req.input;
    let customer = customer_key_of!(input)?;
    let sse = object::write_encryption(
        c,
        &request::sse_headers_of!(input, customer.as_ref()),
        &input.bucket,
        &who,
    )
    .await?;
    object::check_input_write_options!(input);
    metadata::check_size(input.metadata.as_ref())?;
    // The bucket exists: `write_encryption` read its (checked) record.
    let checksum_type = checksum::multipart_checksum_type(
        input.checksum_algorithm.as_ref(),
        input.checksum_type.as_ref(),
    )?;
    let version_id = binding::new_version_id();
    let id = ObjectId {
        bucket: &input.bucket,
        key: &input.key,
        version_id: &version_id,
    };
    let (_keys, envelope) = c.encryption.new_data_keys(&sse, &id, &who.caller).await?;
    let view = SseView::of(&envelope, customer.as_ref());
    let sealed_user_metadata = metadata::seal(&c.ring, input.metadata.as_ref(), &id)?;
    // Upload ids start with the creation time (12 hex digits of milliseconds), so that within a
    // key, id order is listing order (oldest first) even for a marker upload since removed.
    let initiated = now_ms();
    let random = uuid::Uuid::new_v4().simple().to_string();
    let upload_id = format!("{initiated:012x}{}", &random[..20]);
    let mut rec = UploadRecord {
        v: RECORD_VERSION,
        upload_id: upload_id.clone(),
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        initiated_unix_ms: initiated,
        content_type: input.content_type,
        content_encoding: crate::object::stored_content_encoding(input.content_encoding),
        content_disposition: input.content_disposition,
        content_language: input.content_language,
        cache_control: input.cache_control,
        expires: format_expires(input.expires.as_ref()),
        sealed_user_metadata,
        checksum_algorithm: input
            .checksum_algorithm
            .as_ref()
            .map(|a| a.as_str().to_owned()),
        checksum_type: checksum_type.clone(),
        envelope,
        version_id: Some(version_id),
        mac: None,
    };
    c.records.sign_upload(&mut rec);
    c.meta(move |m| m.create_upload(&rec)).await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        server_side_encryption: view.algorithm,
        sse_customer_algorithm: view.customer_algorithm,
        sse_customer_key_md5: view.customer_key_md5,
        ssekms_key_id: view.kms_key_arn,
        ssekms_encryption_context: view.context,
        bucket_key_enabled: view.bucket_key_enabled,
        checksum_algorithm: input.checksum_algorithm,
        checksum_type: checksum_type.map(ChecksumType::from),
        ..Default::default()
    }))
}

/// Digests a client claims for one part.
#[derive(Default)]
pub struct PartDigests {
    pub claimed: Claimed,
    pub content_md5: Option<String>,
    pub algorithm: Option<ChecksumAlgorithm>,
}

/// The object version an upload will complete as (its data key and metadata are bound to it).
fn upload_object_id(upload: &UploadRecord) -> ObjectId<'_> {
    ObjectId {
        bucket: &upload.bucket,
        key: &upload.key,
        version_id: upload.version_id.as_deref().unwrap_or_default(),
    }
}

/// The parts stored so far for an upload, each checked against its MAC.
async fn checked_parts(c: &Coffer, bucket: &str, upload_id: &str) -> S3Result<Vec<PartLayout>> {
    let (b, u) = (bucket.to_owned(), upload_id.to_owned());
    let parts = c.meta(move |m| m.list_parts(&b, &u)).await?;
    for part in &parts {
        c.records.check_part(bucket, upload_id, part)?;
    }
    Ok(parts)
}

/// Loads an upload, checks its integrity and that it belongs to `key`.
pub(crate) async fn load_upload(
    c: &Coffer,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> S3Result<UploadRecord> {
    crate::bucket::require_bucket(c, bucket).await?;
    let (b, u) = (bucket.to_owned(), upload_id.to_owned());
    let up = c.meta(move |m| m.get_upload(&b, &u)).await?;
    if let Some(up) = &up {
        c.records.check_upload(bucket, upload_id, up)?;
    }
    match up {
        Some(up) if up.key == key => Ok(up),
        _ => Err(api_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have been aborted or completed."
        )),
    }
}

/// Writes one part (from a body or a copy source) and records it, replacing any earlier
/// upload of the same part number. The part is visible only once its record commits.
#[allow(clippy::too_many_arguments)]
pub async fn store_part(
    c: &Coffer,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: i32,
    source: ByteSource,
    digests: PartDigests,
    headers: &http::HeaderMap,
    trailers: Option<&s3s::TrailingHeaders>,
    who: &Requester,
    customer: Option<&CustomerKey>,
) -> S3Result<(PartLayout, Envelope)> {
    if !(1..=MAX_PART_NUMBER).contains(&part_number) {
        return Err(api_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
        ));
    }
    let upload = load_upload(c, bucket, key, upload_id).await?;
    let upload_algorithm = upload.checksum_algorithm.as_deref();
    checksum::check_part_algorithm(
        upload_algorithm,
        digests.algorithm.as_ref(),
        &digests.claimed,
    )?;
    // The upload's algorithm is computed for every part, claimed or not: the object's composite
    // checksum is made from them.
    let algorithm = digests
        .algorithm
        .clone()
        .or_else(|| upload_algorithm.map(|a| ChecksumAlgorithm::from(a.to_owned())));
    let mode = upload.envelope.mode.as_str();
    if mode != encryption::MODE_SSE_S3 && mode != encryption::MODE_SSE_C {
        who.check_kms_transport(c.allow_insecure_http)?;
    }
    check_part_customer_key(c, &upload.envelope, customer)?;
    let keys = c
        .encryption
        .open_data_keys(
            &upload.envelope,
            &upload_object_id(&upload),
            &who.caller,
            customer,
        )
        .await?;
    let salt: [u8; coffer_crypto::PART_SALT_LEN] =
        coffer_crypto::random_array().map_err(crate::error::crypto_error)?;
    let part_keys = DataKeys {
        inner: coffer_crypto::derive_part_key(&keys.inner, &salt),
        outer: keys
            .outer
            .as_ref()
            .map(|outer| coffer_crypto::derive_part_key(outer, &salt)),
    };

    let blob_id = coffer_store::BlobStore::new_blob_id();
    let nonce_prefix = coffer_crypto::random_array().map_err(crate::error::crypto_error)?;
    let hasher = checksum::hasher_for(&digests.claimed, algorithm.as_ref(), headers)?;
    let written = pipeline::write_stream(
        &c.blobs,
        &blob_id,
        object::stream_keys(&part_keys),
        nonce_prefix,
        source,
        hasher,
        pipeline::MAX_SINGLE_UPLOAD,
        0, // parts are always blob files: the parts table holds layouts only
    )
    .await?;
    let pipeline::SealedData::File(blob) = written.data else {
        unreachable!("write_stream with inline_max 0 always writes a file")
    };
    let mut claimed = digests.claimed;
    claimed.merge_trailers(trailers)?;
    checksum::check_part_algorithm(upload_algorithm, None, &claimed)?;
    checksum::verify(&claimed, &written.checksums)?;
    checksum::check_content_md5(digests.content_md5.as_deref(), &written.md5)?;
    pipeline::commit_blob(blob).await?;
    let layout = PartLayout {
        part_number: part_number as u32,
        blob_id: blob_id.clone(),
        size: written.size,
        nonce_prefix: nonce_prefix.to_vec(),
        part_salt: Some(salt.to_vec()),
        etag: encryption::etag(&upload.envelope.mode, &part_keys, &written.md5),
        checksums: checksum::to_store(&written.checksums),
        inline: false,
        mac: None,
    };
    let mut signed = layout.clone();
    c.records.sign_part(bucket, upload_id, &mut signed);
    let (b, u, l) = (bucket.to_owned(), upload_id.to_owned(), signed);
    match c.meta(move |m| m.put_part(&b, &u, &l)).await {
        Ok(old) => {
            pipeline::free_blobs(&c.blobs, old.into_iter().map(|p| p.blob_id).collect());
            Ok((layout, upload.envelope))
        }
        Err(e) => {
            pipeline::free_blobs(&c.blobs, vec![blob_id]);
            Err(e)
        }
    }
}

/// S3's rules for the SSE-C key of a part (UploadPart, UploadPartCopy's destination, and
/// CompleteMultipartUpload when it names one): an upload under SSE-C needs its key on every part,
/// the same key; any other upload refuses one.
pub(crate) fn check_part_customer_key(
    c: &Coffer,
    upload: &Envelope,
    customer: Option<&CustomerKey>,
) -> S3Result<()> {
    match c.encryption.check_customer_key(upload, customer) {
        Ok(_) => Ok(()),
        Err(_) if customer.is_none() => Err(api_error!(
            InvalidRequest,
            "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters."
        )),
        Err(e) if upload.mode == encryption::MODE_SSE_C => Err(api_error!(
            InvalidRequest,
            "The provided encryption parameters did not match the ones used originally: {}",
            e.message().unwrap_or_default()
        )),
        Err(e) => Err(e),
    }
}

/// The SSE-C rule of CompleteMultipartUpload and ListParts, whose answers carry the parts'
/// checksums — checksums of the plaintext: an SSE-C upload with a checksum algorithm needs its
/// key there, as on S3 (without one, nothing about its content is revealed); any key given must
/// be the upload's.
fn check_key_for_checksums(
    c: &Coffer,
    upload: &UploadRecord,
    customer: Option<&CustomerKey>,
) -> S3Result<()> {
    let needs_key =
        upload.envelope.mode == encryption::MODE_SSE_C && upload.checksum_algorithm.is_some();
    if customer.is_some() || needs_key {
        check_part_customer_key(c, &upload.envelope, customer)?;
    }
    Ok(())
}

pub async fn upload_part(
    c: &Coffer,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let S3Request {
        input,
        headers,
        trailing_headers,
        extensions,
        ..
    } = req;
    let who = Requester::of(&extensions, &headers)?;
    let mut input = input;
    let customer = customer_key_of!(input)?;
    let body = input
        .body
        .ok_or_else(|| api_error!(IncompleteBody, "The request body is missing"))?;
    let digests = PartDigests {
        claimed: Claimed {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            crc64nvme: input.checksum_crc64nvme,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
        },
        content_md5: input.content_md5,
        algorithm: input.checksum_algorithm,
    };
    let (part, envelope) = store_part(
        c,
        &input.bucket,
        &input.key,
        &input.upload_id,
        input.part_number,
        pipeline::from_body(body),
        digests,
        &headers,
        trailing_headers.as_ref(),
        &who,
        customer.as_ref(),
    )
    .await?;
    let view = SseView::of(&envelope, customer.as_ref());
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        server_side_encryption: view.algorithm,
        sse_customer_algorithm: view.customer_algorithm,
        sse_customer_key_md5: view.customer_key_md5,
        ssekms_key_id: view.kms_key_arn,
        bucket_key_enabled: view.bucket_key_enabled,
        checksum_crc32: part.checksums.crc32,
        checksum_crc32c: part.checksums.crc32c,
        checksum_sha1: part.checksums.sha1,
        checksum_sha256: part.checksums.sha256,
        ..Default::default()
    }))
}

/// Checks the client's part list against the stored parts and returns the object's parts in
/// order. Errors as S3: `InvalidPartOrder`, `InvalidPart`, `EntityTooSmall`, `MalformedXML`.
fn select_parts(requested: &[CompletedPart], stored: &[PartLayout]) -> S3Result<Vec<PartLayout>> {
    if requested.is_empty() {
        return Err(api_error!(
            MalformedXML,
            "The XML you provided did not list any parts to complete the upload with."
        ));
    }
    let mut chosen: Vec<PartLayout> = Vec::with_capacity(requested.len());
    let mut previous = 0i32;
    for p in requested {
        let number = p
            .part_number
            .ok_or_else(|| api_error!(MalformedXML, "Every Part must have a PartNumber."))?;
        if number <= previous {
            return Err(api_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            ));
        }
        previous = number;
        let found = stored.iter().find(|s| s.part_number as i32 == number);
        let etag_ok = |s: &PartLayout| {
            p.e_tag
                .as_ref()
                .is_none_or(|e| e.value().trim_matches('"') == s.etag)
        };
        match found {
            Some(s) if etag_ok(s) => chosen.push(s.clone()),
            _ => {
                return Err(api_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag (part {number})."
                ));
            }
        }
    }
    for p in &chosen[..chosen.len() - 1] {
        if p.size < MIN_PART_SIZE {
            return Err(api_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed size: part {} is {} bytes, every part but the last must be at least {MIN_PART_SIZE} bytes",
                p.part_number,
                p.size
            ));
        }
    }
    Ok(chosen)
}

/// The multipart ETag: hex(md5(concat(binary part md5s)))-N.
pub fn multipart_etag(parts: &[PartLayout]) -> S3Result<String> {
    let mut md5 = Md5::new();
    for p in parts {
        let bin = hex::decode(&p.etag).map_err(|e| crate::error::internal("part etag", e))?;
        md5.update(&bin);
    }
    Ok(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
}

pub async fn complete_multipart_upload(
    c: &Coffer,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let mut input = req.input;
    let customer = customer_key_of!(input)?;
    let upload = load_upload(c, &input.bucket, &input.key, &input.upload_id).await?;
    check_key_for_checksums(c, &upload, customer.as_ref())?;
    let stored = checked_parts(c, &input.bucket, &input.upload_id).await?;
    let requested = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    let parts = select_parts(&requested, &stored)?;
    let upload_algorithm = upload.checksum_algorithm.as_deref();
    for (asked, part) in requested.iter().zip(&parts) {
        checksum::check_completed_part(upload_algorithm, asked, part)?;
    }
    let checksums =
        checksum::multipart_checksums(upload_algorithm, upload.checksum_type.as_deref(), &parts);
    checksum::check_object_checksum(
        &checksum::Claimed {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            crc64nvme: input.checksum_crc64nvme,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
        },
        &checksums,
    )?;
    let etag = multipart_etag(&parts)?;
    let size = parts.iter().map(|p| p.size).sum();
    let mut record = ObjectRecord {
        v: RECORD_VERSION,
        size,
        etag: etag.clone(),
        last_modified_unix_ms: now_ms(),
        content_type: upload.content_type,
        content_encoding: upload.content_encoding,
        content_disposition: upload.content_disposition,
        content_language: upload.content_language,
        cache_control: upload.cache_control,
        expires: upload.expires,
        sealed_user_metadata: upload.sealed_user_metadata,
        checksums: checksums.clone(),
        envelope: upload.envelope,
        // The object's MAC covers its parts.
        parts: parts
            .into_iter()
            .map(|p| PartLayout { mac: None, ..p })
            .collect(),
        version_id: upload.version_id,
        mac: None,
    };
    c.records
        .sign_object(&input.bucket, &input.key, &mut record);
    let view = SseView::of(&record.envelope, customer.as_ref());
    let (b, u, k) = (
        input.bucket.clone(),
        input.upload_id.clone(),
        input.key.clone(),
    );
    let (inm, im) = (input.if_none_match, input.if_match);
    let (old, unused) = c
        .meta(move |m| {
            m.complete_upload(&b, &u, &k, &record, |cur| {
                if inm.as_ref().is_some_and(ETagCondition::is_any) && cur.is_some() {
                    return Err(coffer_store::StoreError::PreconditionFailed);
                }
                if let Some(ETagCondition::ETag(e)) = im.as_ref()
                    && cur.is_none_or(|cur| cur.etag != e.value())
                {
                    return Err(coffer_store::StoreError::PreconditionFailed);
                }
                Ok(())
            })
        })
        .await?;
    let mut free: Vec<String> = unused.into_iter().map(|p| p.blob_id).collect();
    free.extend(old.map(object::blob_ids).unwrap_or_default());
    pipeline::free_blobs(&c.blobs, free);
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        e_tag: Some(ETag::Strong(etag)),
        server_side_encryption: view.algorithm,
        ssekms_key_id: view.kms_key_arn,
        bucket_key_enabled: view.bucket_key_enabled,
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_crc64nvme: checksums.crc64nvme,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_type: checksums.checksum_type.map(ChecksumType::from),
        ..Default::default()
    }))
}

pub async fn abort_multipart_upload(
    c: &Coffer,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    load_upload(c, &input.bucket, &input.key, &input.upload_id).await?;
    let (b, u) = (input.bucket, input.upload_id);
    let parts = c.meta(move |m| m.abort_upload(&b, &u)).await?;
    pipeline::free_blobs(&c.blobs, parts.into_iter().map(|p| p.blob_id).collect());
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(
    c: &Coffer,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let mut input = req.input;
    let customer = customer_key_of!(input)?;
    let upload = load_upload(c, &input.bucket, &input.key, &input.upload_id).await?;
    check_key_for_checksums(c, &upload, customer.as_ref())?;
    let stored = checked_parts(c, &input.bucket, &input.upload_id).await?;
    let marker = input.part_number_marker.unwrap_or(0);
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let after: Vec<&PartLayout> = stored
        .iter()
        .filter(|p| p.part_number as i32 > marker)
        .collect();
    let truncated = max > 0 && after.len() > max;
    let page: Vec<Part> = after
        .iter()
        .take(max)
        .map(|p| Part {
            part_number: Some(p.part_number as i32),
            e_tag: Some(ETag::Strong(p.etag.clone())),
            size: Some(p.size as i64),
            last_modified: Some(timestamp_from_ms(upload.initiated_unix_ms)),
            checksum_crc32: p.checksums.crc32.clone(),
            checksum_crc32c: p.checksums.crc32c.clone(),
            checksum_sha1: p.checksums.sha1.clone(),
            checksum_sha256: p.checksums.sha256.clone(),
            ..Default::default()
        })
        .collect();
    let next = page.last().and_then(|p| p.part_number);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        part_number_marker: Some(marker),
        next_part_number_marker: if truncated { next } else { None },
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(page),
        owner: Some(crate::bucket::owner()),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

pub async fn list_multipart_uploads(
    c: &Coffer,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    crate::bucket::require_bucket(c, &input.bucket).await?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let (b, p) = (input.bucket.clone(), prefix.clone());
    let uploads = c.meta(move |m| m.list_uploads(&b, &p)).await?;
    for up in &uploads {
        c.records.check_upload(&input.bucket, &up.upload_id, up)?;
    }
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone();
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    // Uploads of one key are listed oldest first, so a page resumes after the marker upload's
    // place in that order; for a marker upload gone meanwhile, id order is that order (ids start
    // with their creation time).
    let marker_at = id_marker.as_ref().and_then(|m| {
        uploads
            .iter()
            .position(|u| u.key == key_marker && u.upload_id == *m)
    });
    let after: Vec<&UploadRecord> = uploads
        .iter()
        .enumerate()
        .filter(|(i, u)| {
            key_marker.is_empty()
                || u.key > key_marker
                || (u.key == key_marker
                    && match (marker_at, &id_marker) {
                        (Some(at), _) => *i > at,
                        (None, Some(m)) => u.upload_id > *m,
                        (None, None) => false,
                    })
        })
        .map(|(_, u)| u)
        .collect();
    // S3 answers MaxUploads=0 with an empty, untruncated page.
    let truncated = max > 0 && after.len() > max;
    let page: Vec<&UploadRecord> = after.into_iter().take(max).collect();
    let last = page.last().map(|u| (u.key.clone(), u.upload_id.clone()));
    let list = page
        .iter()
        .map(|u| MultipartUpload {
            key: Some(u.key.clone()),
            upload_id: Some(u.upload_id.clone()),
            initiated: Some(timestamp_from_ms(u.initiated_unix_ms)),
            owner: Some(crate::bucket::owner()),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker: if truncated {
            last.as_ref().map(|l| l.0.clone())
        } else {
            None
        },
        next_upload_id_marker: if truncated { last.map(|l| l.1) } else { None },
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(list),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, size: u64, etag: &str) -> PartLayout {
        PartLayout {
            part_number: n,
            blob_id: format!("b{n}"),
            size,
            nonce_prefix: vec![0; 7],
            part_salt: Some(vec![0; 16]),
            etag: etag.to_owned(),
            checksums: Default::default(),
            inline: false,
            mac: None,
        }
    }

    fn completed(n: i32, etag: &str) -> CompletedPart {
        CompletedPart {
            part_number: Some(n),
            e_tag: Some(ETag::Strong(etag.to_owned())),
            ..Default::default()
        }
    }

    const E1: &str = "0cc175b9c0f1b6a831c399e269772661";
    const E2: &str = "92eb5ffee6ae2fec3ad71c777531578f";

    #[test]
    fn part_list_rules_match_s3() {
        let stored = vec![part(1, MIN_PART_SIZE, E1), part(2, 1, E2)];
        assert_eq!(
            select_parts(&[completed(1, E1), completed(2, E2)], &stored)
                .unwrap()
                .len(),
            2
        );
        let order = select_parts(&[completed(2, E2), completed(1, E1)], &stored).unwrap_err();
        assert_eq!(*order.code(), s3s::S3ErrorCode::InvalidPartOrder);
        let wrong = select_parts(&[completed(1, E2)], &stored).unwrap_err();
        assert_eq!(*wrong.code(), s3s::S3ErrorCode::InvalidPart);
        let small = vec![part(1, 1, E1), part(2, 1, E2)];
        let err = select_parts(&[completed(1, E1), completed(2, E2)], &small).unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::EntityTooSmall);
    }

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        // md5("a") ‖ md5("b") hashed again, with the part count.
        let etag = multipart_etag(&[part(1, 1, E1), part(2, 1, E2)]).unwrap();
        // Checked against the independent pure-Rust md-5 crate.
        use md5::Digest as _;
        let mut md5 = md5::Md5::new();
        md5.update(hex::decode(E1).unwrap());
        md5.update(hex::decode(E2).unwrap());
        assert_eq!(etag, format!("{}-2", hex::encode(md5.finalize())));
    }
}
