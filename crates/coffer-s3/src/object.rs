//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects.
//!
//! A PUT streams the body through the write pipeline into a new blob, checks every digest
//! the client gave, commits the blob durably and only then commits the metadata record: the
//! moment the record commits is the moment the new object exists (DESIGN §5). Any failure
//! before that leaves the previous object untouched.

use std::ops::Range as ByteRange;

use coffer_store::{ObjectRecord, PartLayout, RECORD_VERSION, StoreError};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result};

use crate::binding::{self, ObjectId};
use crate::checksum::{self, Claimed};
use crate::conditional::{self, Conditions, OnNotModified, timestamp_from_ms};
use crate::encryption::customer::customer_key_of;
use crate::encryption::{self, CustomerKey, DataKeys, Requester, Sse, SseHeaders, SseView};
use crate::error::api_error;
use crate::metadata;
use crate::pipeline::{self, ObjectName, ReadPart};
use crate::service::{Coffer, now_ms};

/// The non-secret HTTP attributes stored with an object.
#[derive(Default, Clone)]
pub struct ContentHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
}

/// The `Content-Encoding` S3 stores for one a client sent: without `aws-chunked`, which
/// describes only the request's framing (S3 "stores the resulting object without the aws-chunked
/// value"); `None` when nothing else is left.
pub fn stored_content_encoding(sent: Option<String>) -> Option<String> {
    let sent = sent?;
    if !sent
        .split(',')
        .any(|token| token.trim().eq_ignore_ascii_case("aws-chunked"))
    {
        return Some(sent);
    }
    let kept: Vec<&str> = sent
        .split(',')
        .map(str::trim)
        .filter(|token| !token.is_empty() && !token.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// Formats an `Expires` timestamp as the HTTP date S3 stores and returns.
pub fn format_expires(t: Option<&Timestamp>) -> Option<String> {
    let t = t?;
    let mut out = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

pub(crate) fn parse_expires(s: Option<&String>) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s?).ok()
}

/// Everything a new single-stream object needs besides its body.
pub struct NewObject {
    pub bucket: String,
    pub key: String,
    pub headers: ContentHeaders,
    pub metadata: Option<Metadata>,
    pub claimed: Claimed,
    pub content_md5: Option<String>,
    pub if_none_match: Option<ETagCondition>,
    pub if_match: Option<ETagCondition>,
    /// The encryption it gets (see [`crate::encryption::request::choose`]).
    pub sse: Sse,
}

/// The result of writing an object: its record (already committed).
pub struct Stored {
    pub record: ObjectRecord,
}

/// Writes `source` as the new current version of `obj.key`: the shared path of PutObject,
/// CopyObject and POST uploads. `trailers` are read after the body, for aws-chunked trailing
/// checksums; `who` is the caller the KMS calls are made for. Every caller chose `obj.sse` with
/// [`write_encryption`], which read the bucket's record, so a missing bucket was refused before
/// any of the body; one deleted since is refused by the commit.
pub async fn store_object(
    c: &Coffer,
    obj: NewObject,
    source: pipeline::ByteSource,
    algorithm: Option<&ChecksumAlgorithm>,
    headers: &http::HeaderMap,
    trailers: Option<&s3s::TrailingHeaders>,
    who: &Requester,
) -> S3Result<Stored> {
    metadata::check_size(obj.metadata.as_ref())?;
    if obj
        .if_none_match
        .as_ref()
        .is_some_and(ETagCondition::is_any)
        || obj.if_match.is_some()
    {
        let current = c.meta_read(|m| m.get_object(&obj.bucket, &obj.key)).await?;
        write_precondition(
            current.as_ref(),
            obj.if_none_match.as_ref(),
            obj.if_match.as_ref(),
        )
        .map_err(crate::error::store_error)?;
    }

    let version_id = binding::new_version_id();
    let id = ObjectId {
        bucket: &obj.bucket,
        key: &obj.key,
        version_id: &version_id,
    };
    let (keys, envelope) = c
        .encryption
        .new_data_keys(&obj.sse, &id, &who.caller)
        .await?;
    let sealed_user_metadata = metadata::seal(&c.ring, obj.metadata.as_ref(), &id)?;
    let blob_id = coffer_store::BlobStore::new_blob_id();
    let nonce_prefix = coffer_crypto::random_array().map_err(crate::error::crypto_error)?;
    let hasher = checksum::hasher_for(&obj.claimed, algorithm, headers)?;
    let written = pipeline::write_stream(
        &c.blobs,
        &blob_id,
        stream_keys(&keys),
        nonce_prefix,
        source,
        hasher,
        pipeline::MAX_SINGLE_UPLOAD,
        pipeline::INLINE_MAX,
    )
    .await?;

    let mut claimed = obj.claimed;
    claimed.merge_trailers(trailers)?;
    checksum::verify(&claimed, &written.checksums)?;
    checksum::check_content_md5(obj.content_md5.as_deref(), &written.md5)?;
    let sealed_inline = match written.data {
        pipeline::SealedData::File(blob) => {
            pipeline::commit_blob(blob).await?;
            None
        }
        pipeline::SealedData::Inline(sealed) => Some(sealed),
    };
    let inline = sealed_inline.is_some();

    let etag = encryption::etag(&envelope.mode, &keys, &written.md5);
    let store_checksums = checksum::to_store(&written.checksums);
    let mut record = ObjectRecord {
        v: RECORD_VERSION,
        size: written.size,
        etag: etag.clone(),
        last_modified_unix_ms: now_ms(),
        content_type: obj.headers.content_type,
        content_encoding: obj.headers.content_encoding,
        content_disposition: obj.headers.content_disposition,
        content_language: obj.headers.content_language,
        cache_control: obj.headers.cache_control,
        expires: obj.headers.expires,
        sealed_user_metadata,
        checksums: store_checksums.clone(),
        envelope,
        parts: vec![PartLayout {
            part_number: 1,
            blob_id: blob_id.clone(),
            size: written.size,
            nonce_prefix: nonce_prefix.to_vec(),
            part_salt: None,
            etag,
            checksums: store_checksums,
            inline,
            mac: None,
        }],
        version_id: Some(version_id),
        mac: None,
    };
    c.records.sign_object(&obj.bucket, &obj.key, &mut record);
    let (inm, im) = (obj.if_none_match, obj.if_match);
    // Queued for the store's group committer; this task waits without holding a thread.
    let (reply, answer) = tokio::sync::oneshot::channel();
    c.meta.put_object_then(
        &obj.bucket,
        &obj.key,
        &record,
        sealed_inline,
        move |cur| write_precondition(cur, inm.as_ref(), im.as_ref()),
        Box::new(move |result| drop(reply.send(result))),
    );
    let committed = answer
        .await
        .map_err(|e| crate::error::internal("metadata commit", e))?;
    match committed {
        Ok(old) => {
            pipeline::free_blobs(&c.blobs, old.map(blob_ids).unwrap_or_default());
            Ok(Stored { record })
        }
        Err(e) => {
            // Free the new blob only when the record was certainly not stored (a refused
            // check); after a database failure the commit's fate is unknown until restart, and
            // the sweep removes the blob if no record points to it.
            let refused = matches!(
                e,
                StoreError::PreconditionFailed | StoreError::BucketNotFound
            );
            if refused && !inline {
                pipeline::free_blobs(&c.blobs, vec![blob_id]);
            }
            Err(crate::error::store_error(e))
        }
    }
}

/// The encryption of a write to `bucket` with these headers (and the bucket's default), with
/// S3's transport rules for the KMS modes and the bucket's SSE-C block checked before any of the
/// body is read.
pub(crate) async fn write_encryption(
    c: &Coffer,
    headers: &SseHeaders<'_>,
    bucket: &str,
    who: &Requester,
) -> S3Result<Sse> {
    let settings = crate::bucket::write_settings(c, bucket).await?;
    let sse = encryption::request::choose(headers, settings.encryption.as_ref())?;
    if sse.uses_kms() {
        who.check_kms_transport(c.allow_insecure_http)?;
    }
    if matches!(sse, Sse::Customer(_)) && !settings.sse_c_allowed {
        return Err(sse_c_blocked(bucket));
    }
    Ok(sse)
}

/// The answer to an SSE-C write into a bucket that blocks SSE-C (S3's `403 AccessDenied`).
pub(crate) fn sse_c_blocked(bucket: &str) -> S3Error {
    api_error!(
        AccessDenied,
        "Server-side encryption with customer-provided keys (SSE-C) is blocked for bucket {bucket}: its encryption configuration's BlockedEncryptionTypes must be NONE to allow it"
    )
}

/// The keys a stream is sealed with: one layer, or DSSE-KMS's two.
pub(crate) fn stream_keys(keys: &DataKeys) -> pipeline::StreamKeys<'_> {
    pipeline::StreamKeys {
        inner: &keys.inner,
        outer: keys.outer.as_ref(),
    }
}

/// [`check_write_options`] on the storage class and Object Lock fields of a PutObject,
/// CopyObject or CreateMultipartUpload input (the three share the field names).
macro_rules! check_input_write_options {
    ($input:expr) => {
        $crate::object::check_write_options(
            $input.storage_class.as_ref(),
            $input.object_lock_mode.is_some()
                || $input.object_lock_retain_until_date.is_some()
                || $input.object_lock_legal_hold_status.is_some(),
        )?
    };
}
pub(crate) use check_input_write_options;

/// Write options Coffer keeps no state for: Object Lock needs a bucket created with Object Lock
/// (none is, here), and a storage class must be one S3 knows — every class is stored alike and
/// listed as STANDARD, but an unknown name is a client's mistake S3 reports.
pub(crate) fn check_write_options(
    storage_class: Option<&StorageClass>,
    object_lock: bool,
) -> S3Result<()> {
    const KNOWN: &[&str] = &[
        StorageClass::STANDARD,
        StorageClass::REDUCED_REDUNDANCY,
        StorageClass::STANDARD_IA,
        StorageClass::ONEZONE_IA,
        StorageClass::INTELLIGENT_TIERING,
        StorageClass::GLACIER,
        StorageClass::DEEP_ARCHIVE,
        StorageClass::OUTPOSTS,
        StorageClass::GLACIER_IR,
        StorageClass::SNOW,
        StorageClass::EXPRESS_ONEZONE,
    ];
    if let Some(class) = storage_class
        && !KNOWN.contains(&class.as_str())
    {
        return Err(api_error!(
            InvalidStorageClass,
            "The storage class you specified is not valid"
        ));
    }
    if object_lock {
        return Err(api_error!(
            InvalidRequest,
            "Bucket is missing Object Lock Configuration"
        ));
    }
    Ok(())
}

/// S3 writes accept `If-None-Match: *` only; an ETag there is `NotImplemented`, as S3 answers —
/// never silently ignored. `If-Match` takes an ETag or `*`.
pub(crate) fn supported_write_condition(
    cond: Option<ETagCondition>,
    name: &http::header::HeaderName,
) -> S3Result<Option<ETagCondition>> {
    if *name == http::header::IF_NONE_MATCH && cond.as_ref().is_some_and(|c| !c.is_any()) {
        return Err(api_error!(
            NotImplemented,
            "A header you provided implies functionality that is not implemented: {name} accepts only '*' on writes"
        ));
    }
    Ok(cond)
}

/// Conditional writes: `If-None-Match: *` (create only) and `If-Match: <etag>` (replace only
/// that version). Evaluated again inside the commit transaction, so two racing writers cannot
/// both win.
fn write_precondition(
    current: Option<&ObjectRecord>,
    if_none_match: Option<&ETagCondition>,
    if_match: Option<&ETagCondition>,
) -> Result<(), StoreError> {
    if if_none_match.is_some_and(ETagCondition::is_any) && current.is_some() {
        return Err(StoreError::PreconditionFailed);
    }
    if let Some(cond) = if_match {
        let Some(cur) = current else {
            return Err(StoreError::PreconditionFailed);
        };
        if let ETagCondition::ETag(e) = cond
            && e.value() != cur.etag
        {
            return Err(StoreError::PreconditionFailed);
        }
    }
    Ok(())
}

/// Every blob file an object record points to (inline parts are removed with their record).
pub fn blob_ids(rec: ObjectRecord) -> Vec<String> {
    rec.parts
        .into_iter()
        .filter(|p| !p.inline)
        .map(|p| p.blob_id)
        .collect()
}

pub async fn put_object(
    c: &Coffer,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let S3Request {
        input,
        headers,
        trailing_headers,
        extensions,
        ..
    } = req;
    let mut input = input;
    let who = Requester::of(&extensions, &headers)?;
    let customer = customer_key_of!(input)?;
    let sse = write_encryption(
        c,
        &encryption::request::sse_headers_of!(input, customer.as_ref()),
        &input.bucket,
        &who,
    )
    .await?;
    check_input_write_options!(input);
    if let Some(len) = input.content_length
        && len as u64 > pipeline::MAX_SINGLE_UPLOAD
    {
        return Err(api_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size of 5 GiB"
        ));
    }
    let body = input
        .body
        .ok_or_else(|| api_error!(IncompleteBody, "The request body is missing"))?;
    let if_none_match =
        supported_write_condition(input.if_none_match, &http::header::IF_NONE_MATCH)?;
    let obj = NewObject {
        bucket: input.bucket,
        key: input.key,
        headers: ContentHeaders {
            content_type: input.content_type,
            content_encoding: stored_content_encoding(input.content_encoding),
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: format_expires(input.expires.as_ref()),
        },
        metadata: input.metadata,
        claimed: Claimed {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            crc64nvme: input.checksum_crc64nvme,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
        },
        content_md5: input.content_md5,
        if_none_match,
        if_match: input.if_match,
        sse,
    };
    let stored = store_object(
        c,
        obj,
        pipeline::from_body(body),
        input.checksum_algorithm.as_ref(),
        &headers,
        trailing_headers.as_ref(),
        &who,
    )
    .await?;
    let rec = stored.record;
    let view = SseView::of(&rec.envelope, customer.as_ref());
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(rec.etag.clone())),
        server_side_encryption: view.algorithm,
        sse_customer_algorithm: view.customer_algorithm,
        sse_customer_key_md5: view.customer_key_md5,
        ssekms_key_id: view.kms_key_arn,
        ssekms_encryption_context: view.context,
        bucket_key_enabled: view.bucket_key_enabled,
        checksum_crc32: rec.checksums.crc32,
        checksum_crc32c: rec.checksums.crc32c,
        checksum_crc64nvme: rec.checksums.crc64nvme,
        checksum_sha1: rec.checksums.sha1,
        checksum_sha256: rec.checksums.sha256,
        checksum_type: Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
        size: Some(rec.size as i64),
        ..Default::default()
    }))
}

/// An object's record (its integrity checked) and, for a small object stored inline, its sealed
/// bytes.
pub struct Loaded {
    pub bucket: String,
    pub key: String,
    pub rec: ObjectRecord,
    pub inline: Option<Vec<u8>>,
}

impl Loaded {
    /// The object version its data key and metadata are bound to.
    pub fn id(&self) -> ObjectId<'_> {
        object_id(&self.bucket, &self.key, &self.rec)
    }
}

/// The object version a checked record names.
pub fn object_id<'a>(bucket: &'a str, key: &'a str, rec: &'a ObjectRecord) -> ObjectId<'a> {
    ObjectId {
        bucket,
        key,
        version_id: rec.version_id.as_deref().unwrap_or_default(),
    }
}

/// Loads an object's record, with its inline data if it has some: `NoSuchBucket` / `NoSuchKey`
/// when absent, `InternalError` when the record fails its integrity check.
pub async fn load(c: &Coffer, bucket: &str, key: &str) -> S3Result<Loaded> {
    let (b, k) = (bucket.to_owned(), key.to_owned());
    let (mut rec, inline) = c
        .meta_read(move |m| m.get_object_with_inline(&b, &k))
        .await?
        .ok_or_else(|| api_error!(NoSuchKey, "The specified key does not exist."))?;
    c.records.check_object(bucket, key, &mut rec)?;
    Ok(Loaded {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        rec,
        inline,
    })
}

/// [`load`] without the inline bytes, for requests that answer with headers only.
async fn load_record(c: &Coffer, bucket: &str, key: &str) -> S3Result<Loaded> {
    let mut rec = c
        .meta_read(|m| m.get_object(bucket, key))
        .await?
        .ok_or_else(|| api_error!(NoSuchKey, "The specified key does not exist."))?;
    c.records.check_object(bucket, key, &mut rec)?;
    Ok(Loaded {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        rec,
        inline: None,
    })
}

/// The parts of a loaded object with the keys that open them (and its inline data, if any).
/// Opening a KMS-mode object asks the key service for its data key on `who`'s behalf, over the
/// transport S3 requires; an SSE-C object opens only with `customer`, its key.
pub async fn read_parts(
    c: &Coffer,
    loaded: &mut Loaded,
    who: &Requester,
    customer: Option<&CustomerKey>,
) -> S3Result<Vec<ReadPart>> {
    let mode = loaded.rec.envelope.mode.as_str();
    if mode != encryption::MODE_SSE_S3 && mode != encryption::MODE_SSE_C {
        who.check_kms_transport(c.allow_insecure_http)?;
    }
    let keys = c
        .encryption
        .open_data_keys(&loaded.rec.envelope, &loaded.id(), &who.caller, customer)
        .await?;
    let mut inline = loaded.inline.take();
    loaded
        .rec
        .parts
        .iter()
        .map(|p| {
            let keys = Coffer::part_keys(&keys, p)?;
            Ok(ReadPart {
                layout: p.clone(),
                key: keys.inner,
                outer_key: keys.outer,
                inline: if p.inline { inline.take() } else { None },
            })
        })
        .collect()
}

/// The byte range a read asks for (`Range` or `partNumber`), checked against the object.
/// Returns the range and whether it is partial (206 with Content-Range).
fn select_range(
    rec: &ObjectRecord,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<(ByteRange<u64>, bool)> {
    match (range, part_number) {
        (Some(_), Some(_)) => Err(api_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        )),
        (Some(r), None) => {
            let checked = r.check(rec.size).map_err(|_| {
                api_error!(
                    InvalidRange,
                    "The requested range is not satisfiable: the object is {} bytes",
                    rec.size
                )
            })?;
            // Only a suffix range of an empty object is empty: S3 answers it with the whole
            // (empty) object, 200 and no Content-Range.
            Ok((checked.clone(), !checked.is_empty()))
        }
        (None, Some(n)) => {
            let count = rec.parts.len();
            let idx = usize::try_from(n).ok().filter(|&i| i >= 1 && i <= count).ok_or_else(|| {
                api_error!(
                    InvalidPartNumber,
                    "The requested partnumber is not satisfiable: the object has {count} part(s)"
                )
            })?;
            let start: u64 = rec.parts[..idx - 1].iter().map(|p| p.size).sum();
            let end = start + rec.parts[idx - 1].size;
            Ok((start..end, is_multipart(rec)))
        }
        (None, None) => Ok((0..rec.size, false)),
    }
}

/// The Content-Type S3 gives an object stored without one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// Multipart objects have an ETag with the `-N` part-count suffix.
pub fn is_multipart(rec: &ObjectRecord) -> bool {
    rec.etag.contains('-')
}

fn parts_count(rec: &ObjectRecord) -> Option<i32> {
    is_multipart(rec).then_some(rec.parts.len() as i32)
}

fn content_range(r: &ByteRange<u64>, size: u64) -> String {
    if r.is_empty() {
        format!("bytes */{size}")
    } else {
        format!("bytes {}-{}/{}", r.start, r.end - 1, size)
    }
}

/// Headers a 304 or 412 answer to a read still carries.
fn not_modified_headers(rec: &ObjectRecord, mut err: S3Error) -> S3Error {
    if *err.code() == s3s::S3ErrorCode::NotModified {
        let mut h = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", rec.etag)) {
            h.insert(http::header::ETAG, v);
        }
        if let Some(lm) = format_expires(Some(&timestamp_from_ms(rec.last_modified_unix_ms)))
            && let Ok(v) = http::HeaderValue::from_str(&lm)
        {
            h.insert(http::header::LAST_MODIFIED, v);
        }
        err.set_headers(h);
    }
    err
}

fn check_conditions(rec: &ObjectRecord, c: &Conditions<'_>) -> S3Result<()> {
    conditional::evaluate(
        c,
        &rec.etag,
        rec.last_modified_unix_ms,
        OnNotModified::NotModified,
    )
    .map_err(|e| not_modified_headers(rec, e))
}

/// Whether the response should carry the stored checksums (asked for, and whole object).
fn want_checksums(mode: Option<&ChecksumMode>, partial: bool) -> bool {
    !partial && mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// What GetObject and HeadObject share once the request is checked: the record, the byte range
/// to serve and the headers that describe it.
struct ReadView {
    /// The record, with the sealed bytes of a small object stored inline.
    loaded: Loaded,
    range: ByteRange<u64>,
    partial: bool,
    user_metadata: Option<Metadata>,
    checksums: coffer_store::Checksums,
    /// The SSE-C key the request presented (checked against the object).
    customer: Option<CustomerKey>,
}

/// Checks a GetObject/HeadObject input (version id, SSE-C key, conditions, range) against the
/// stored object, loaded with `$load` (`load` for GET, `load_record` for HEAD). A macro because
/// the two inputs are distinct types with the same fields.
macro_rules! read_view {
    ($c:expr, $input:expr, $load:ident) => {{
        let customer = customer_key_of!($input)?;
        let input = &$input;
        check_version_id(input.version_id.as_deref())?;
        let loaded = $load($c, &input.bucket, &input.key).await?;
        // Before any header of the object is revealed: an SSE-C object answers only to its key.
        $c.encryption
            .check_customer_key(&loaded.rec.envelope, customer.as_ref())?;
        let user_metadata = metadata::open(
            &$c.ring,
            loaded.rec.sealed_user_metadata.as_deref(),
            &loaded.id(),
        )?;
        let rec = &loaded.rec;
        check_conditions(
            rec,
            &Conditions {
                if_match: input.if_match.as_ref(),
                if_none_match: input.if_none_match.as_ref(),
                if_modified_since: input.if_modified_since.as_ref(),
                if_unmodified_since: input.if_unmodified_since.as_ref(),
            },
        )?;
        let (range, partial) = select_range(rec, input.range.as_ref(), input.part_number)?;
        let checksums = if want_checksums(input.checksum_mode.as_ref(), partial) {
            rec.checksums.clone()
        } else {
            Default::default()
        };
        ReadView {
            loaded,
            range,
            partial,
            user_metadata,
            checksums,
            customer,
        }
    }};
}

/// The response headers GetObject and HeadObject share, with the `response-*` overrides.
macro_rules! read_output {
    ($out:ident { $($field:ident: $value:expr),* }, $input:expr, $view:expr) => {{
        let (input, v) = ($input, $view);
        let rec = &v.loaded.rec;
        let sse = SseView::of(&rec.envelope, v.customer.as_ref());
        $out {
            $($field: $value,)*
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some((v.range.end - v.range.start) as i64),
            content_range: v.partial.then(|| content_range(&v.range, rec.size)),
            e_tag: Some(ETag::Strong(rec.etag.clone())),
            last_modified: Some(timestamp_from_ms(rec.last_modified_unix_ms)),
            metadata: v.user_metadata,
            content_type: input
                .response_content_type
                .or_else(|| Some(rec.content_type.clone().unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()))),
            content_encoding: input.response_content_encoding.or(rec.content_encoding.clone()),
            content_disposition: input.response_content_disposition.or(rec.content_disposition.clone()),
            content_language: input.response_content_language.or(rec.content_language.clone()),
            cache_control: input.response_cache_control.or(rec.cache_control.clone()),
            expires: input.response_expires.or_else(|| parse_expires(rec.expires.as_ref())),
            server_side_encryption: sse.algorithm,
            sse_customer_algorithm: sse.customer_algorithm,
            sse_customer_key_md5: sse.customer_key_md5,
            ssekms_key_id: sse.kms_key_arn,
            bucket_key_enabled: sse.bucket_key_enabled,
            parts_count: parts_count(rec),
            checksum_crc32: v.checksums.crc32,
            checksum_crc32c: v.checksums.crc32c,
            checksum_crc64nvme: v.checksums.crc64nvme,
            checksum_sha1: v.checksums.sha1,
            checksum_sha256: v.checksums.sha256,
            checksum_type: v.checksums.checksum_type.map(ChecksumType::from),
            ..Default::default()
        }
    }};
}

pub async fn get_object(
    c: &Coffer,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let who = Requester::of(&req.extensions, &req.headers)?;
    let mut input = req.input;
    let mut view = read_view!(c, input, load);
    let parts = read_parts(c, &mut view.loaded, &who, view.customer.as_ref()).await?;
    let name = ObjectName {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
    };
    let body = pipeline::read_range(&c.blobs, parts, view.range.clone(), name).await?;
    let context = SseView::of(&view.loaded.rec.envelope, None).context;
    Ok(with_context(
        S3Response::new(read_output!(
            GetObjectOutput { body: Some(body) },
            input,
            view
        )),
        context,
    ))
}

pub async fn head_object(
    c: &Coffer,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let mut input = req.input;
    let view = read_view!(c, input, load_record);
    let context = SseView::of(&view.loaded.rec.envelope, None).context;
    Ok(with_context(
        S3Response::new(read_output!(HeadObjectOutput {}, input, view)),
        context,
    ))
}

/// Adds `x-amz-server-side-encryption-context` to a GET or HEAD answer (S3 returns it; `s3s`'s
/// output types have no field for it).
fn with_context<T>(mut resp: S3Response<T>, context: Option<String>) -> S3Response<T> {
    if let Some(value) = context.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
        resp.headers
            .insert("x-amz-server-side-encryption-context", value);
    }
    resp
}

/// Buckets are unversioned: the only version id is `null`.
pub fn check_version_id(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(_) => Err(api_error!(InvalidArgument, "Invalid version id specified")),
    }
}

pub async fn delete_object(
    c: &Coffer,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    check_version_id(input.version_id.as_deref())?;
    let condition = DeleteCondition {
        etag: input.if_match.map(|cond| match cond {
            ETagCondition::ETag(e) => Some(e.value().to_owned()),
            ETagCondition::Any => None,
        }),
        size: input.if_match_size,
        last_modified: input.if_match_last_modified_time,
    };
    let (b, k) = (input.bucket, input.key);
    let old = c
        .meta(move |m| m.delete_object_if(&b, &k, |cur| condition.check(cur)))
        .await?;
    pipeline::free_blobs(&c.blobs, old.map(blob_ids).unwrap_or_default());
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

/// What a conditional delete requires of the current object: `If-Match` (`Some(None)` for `*`,
/// which only asks that the object exist) and, as S3 accepts them, its size and last-modified
/// time. With no condition the delete goes ahead whatever is there; with any, a missing object
/// is `NoSuchKey` and a different one `PreconditionFailed`.
#[derive(Default)]
struct DeleteCondition {
    etag: Option<Option<String>>,
    size: Option<i64>,
    last_modified: Option<Timestamp>,
}

impl DeleteCondition {
    /// For one entry of a DeleteObjects body.
    fn of(obj: &ObjectIdentifier) -> DeleteCondition {
        DeleteCondition {
            etag: obj.e_tag.as_ref().map(|e| Some(e.value().to_owned())),
            size: obj.size,
            last_modified: obj.last_modified_time.clone(),
        }
    }

    fn check(&self, current: Option<&ObjectRecord>) -> Result<(), StoreError> {
        if self.etag.is_none() && self.size.is_none() && self.last_modified.is_none() {
            return Ok(());
        }
        let Some(cur) = current else {
            // If-Match asks for an object; the size and time conditions only compare one.
            return if self.etag.is_some() {
                Err(StoreError::ObjectNotFound)
            } else {
                Ok(())
            };
        };
        let etag_differs = matches!(&self.etag, Some(Some(want)) if *want != cur.etag);
        let size_differs = self.size.is_some_and(|want| want != cur.size as i64);
        let time_differs = self.last_modified.as_ref().is_some_and(|want| {
            conditional::unix_seconds(want) != cur.last_modified_unix_ms.div_euclid(1000)
        });
        if etag_differs || size_differs || time_differs {
            return Err(StoreError::PreconditionFailed);
        }
        Ok(())
    }
}

/// The per-key error entry of a DeleteObjects answer.
fn delete_error(e: &S3Error, obj: ObjectIdentifier) -> s3s::dto::Error {
    s3s::dto::Error {
        code: Some(e.code().as_str().to_owned()),
        key: Some(obj.key),
        message: e.message().map(str::to_owned),
        version_id: obj.version_id,
    }
}

/// S3's limit on the keys of one DeleteObjects request.
const MAX_DELETE_KEYS: usize = 1000;

pub async fn delete_objects(
    c: &Coffer,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let authz = req.extensions.get::<crate::authz::Authorizer>().cloned();
    let input = req.input;
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(api_error!(
            MalformedXML,
            "The request may not contain more than {MAX_DELETE_KEYS} keys"
        ));
    }
    crate::bucket::require_bucket(c, &input.bucket).await?;
    let quiet = input.delete.quiet == Some(true);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    // Keys with a valid version id are removed together, in one transaction.
    let mut batch = Vec::with_capacity(input.delete.objects.len());
    for obj in input.delete.objects {
        // S3 authorizes DeleteObjects key by key: a denied key is an error entry, not a failure
        // of the whole request.
        let allowed = authz.as_ref().map_or(Ok(()), |a| {
            let action = if obj.version_id.is_some() {
                "s3:DeleteObjectVersion"
            } else {
                "s3:DeleteObject"
            };
            a.check(
                action,
                &crate::authz::resource_arn(&input.bucket, Some(&obj.key)),
            )
        });
        match allowed.and_then(|()| check_version_id(obj.version_id.as_deref())) {
            Ok(()) => batch.push(obj),
            Err(e) => errors.push(delete_error(&e, obj)),
        }
    }
    let keys: Vec<String> = batch.iter().map(|o| o.key.clone()).collect();
    let conditions: Vec<DeleteCondition> = batch.iter().map(DeleteCondition::of).collect();
    let bucket = input.bucket.clone();
    let answers = c
        .meta(move |m| m.delete_objects_if(&bucket, &keys, |i, cur| conditions[i].check(cur)))
        .await;
    match answers {
        Ok(answers) => {
            let mut free = Vec::new();
            for (obj, answer) in batch.into_iter().zip(answers) {
                match answer {
                    Ok(removed) => {
                        free.extend(removed.map(blob_ids).unwrap_or_default());
                        if !quiet {
                            deleted.push(DeletedObject {
                                key: Some(obj.key),
                                version_id: obj.version_id,
                                ..Default::default()
                            });
                        }
                    }
                    Err(refused) => {
                        errors.push(delete_error(&crate::error::store_error(refused), obj));
                    }
                }
            }
            pipeline::free_blobs(&c.blobs, free);
        }
        Err(e) => errors.extend(batch.into_iter().map(|obj| delete_error(&e, obj))),
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: (!deleted.is_empty()).then_some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::stored_content_encoding;

    #[test]
    fn aws_chunked_is_not_stored_as_a_content_encoding() {
        let stored = |sent: &str| stored_content_encoding(Some(sent.to_owned()));
        assert_eq!(stored("aws-chunked"), None);
        assert_eq!(stored("aws-chunked,gzip"), Some("gzip".to_owned()));
        assert_eq!(stored("gzip, AWS-Chunked"), Some("gzip".to_owned()));
        assert_eq!(stored("gzip"), Some("gzip".to_owned()));
        assert_eq!(stored("gzip, br"), Some("gzip, br".to_owned()));
        assert_eq!(stored_content_encoding(None), None);
    }
}
