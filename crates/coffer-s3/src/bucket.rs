//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
//! DeleteBucketEncryption, and versioning, which is never enabled yet; and the one way the S3
//! layer reads ([`read_checked`]) and changes ([`change_bucket`]) a bucket record, its MAC
//! checked and renewed.

use std::sync::Arc;

use coffer_store::{BUCKET_RECORD_VERSION, BucketEncryption, BucketRecord, MetaStore, StoreError};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::binding::RecordMac;
use crate::conditional::timestamp_from_ms;
use crate::error::api_error;
use crate::service::{Coffer, now_ms};

/// Most buckets one ListBuckets page may hold (`max-buckets`).
const MAX_BUCKETS: i32 = 10_000;

/// ListBuckets, with S3's `prefix`, `bucket-region`, `max-buckets` and `continuation-token`.
pub async fn list_buckets(
    c: &Coffer,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let input = req.input;
    let max = match input.max_buckets {
        None => MAX_BUCKETS,
        Some(n) if (1..=MAX_BUCKETS).contains(&n) => n,
        Some(_) => {
            return Err(api_error!(
                InvalidArgument,
                "max-buckets must be an integer between 1 and {MAX_BUCKETS}"
            ));
        }
    } as usize;
    let after = input
        .continuation_token
        .as_deref()
        .map(crate::list::decode_token)
        .transpose()?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let mut matching: Vec<BucketRecord> = c
        .meta(|m| m.list_buckets())
        .await?
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix))
        .filter(|b| input.bucket_region.as_ref().is_none_or(|r| *r == b.region))
        .filter(|b| after.as_ref().is_none_or(|a| b.name > *a))
        .collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    let truncated = matching.len() > max;
    matching.truncate(max);
    let next = truncated
        .then(|| matching.last().map(|b| crate::list::encode_token(&b.name)))
        .flatten();
    let buckets = matching
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp_from_ms(b.created_unix_ms)),
            bucket_region: Some(b.region),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner()),
        continuation_token: next,
        prefix: input.prefix,
    }))
}

/// The single owner of every bucket in this deployment.
pub fn owner() -> Owner {
    Owner {
        display_name: Some("coffer".to_owned()),
        id: Some("coffer-root".to_owned()),
    }
}

/// Prefixes and suffixes S3 reserves for its own features; names using them are invalid.
const RESERVED_PREFIXES: &[&str] = &["xn--", "sthree-", "amzn-s3-demo-"];
const RESERVED_SUFFIXES: &[&str] = &["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// Checks the naming rules `s3s` leaves out (it checks length, characters and IP form).
pub(crate) fn check_reserved_name(name: &str) -> S3Result<()> {
    let reserved = RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        || RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s));
    if reserved || name.contains("..") {
        return Err(api_error!(
            InvalidBucketName,
            "The specified bucket is not valid: {name:?} uses a reserved prefix or suffix, or two adjacent periods"
        ));
    }
    Ok(())
}

pub async fn create_bucket(
    c: &Coffer,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let input = req.input;
    check_reserved_name(&input.bucket)?;
    let constraint = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|cfg| cfg.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned());
    if let Some(ref loc) = constraint
        && !loc.is_empty()
        && *loc != c.region
    {
        return Err(api_error!(
            InvalidLocationConstraint,
            "The specified location-constraint {loc:?} is not valid: this endpoint serves region {:?}",
            c.region
        ));
    }
    if input.object_lock_enabled_for_bucket == Some(true) {
        return Err(api_error!(NotImplemented, "Object Lock is not implemented"));
    }
    let rec = BucketRecord {
        v: BUCKET_RECORD_VERSION,
        name: input.bucket.clone(),
        region: c.region.clone(),
        created_unix_ms: now_ms(),
        encryption: None,
        sse_c_allowed: false,
        policy: None,
        cors: None,
        mac: None,
    };
    let mut rec = rec;
    c.records.sign_bucket(&mut rec);
    c.meta(move |m| m.create_bucket(&rec)).await?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", input.bucket)),
    }))
}

/// Fails with `NoSuchBucket` unless the bucket exists; its record, integrity checked.
pub async fn require_bucket(c: &Coffer, bucket: &str) -> S3Result<BucketRecord> {
    c.meta_read(|m| read_checked(m, &c.records, bucket))
        .await?
        .ok_or_else(|| api_error!(NoSuchBucket, "The specified bucket does not exist"))
}

/// A bucket's record, its MAC checked ([`RecordMac::check_bucket`]); `None` if there is no such
/// bucket. The one way the S3 layer reads a bucket record.
pub(crate) fn read_checked(
    meta: &MetaStore,
    records: &RecordMac,
    name: &str,
) -> Result<Option<BucketRecord>, StoreError> {
    let Some(mut rec) = meta.get_bucket(name)? else {
        return Ok(None);
    };
    records
        .check_bucket(name, &mut rec)
        .map_err(|_| corrupt(name))?;
    Ok(Some(rec))
}

/// Changes a bucket's settings in one transaction: the stored record is checked, `change` edits
/// it, and it is written back signed, as the current version. The one way the S3 layer changes
/// a bucket record; `NoSuchBucket` if there is no such bucket.
pub(crate) async fn change_bucket<T: Send + 'static>(
    c: &Coffer,
    name: &str,
    change: impl FnOnce(&mut BucketRecord) -> T + Send + 'static,
) -> S3Result<T> {
    let (name, records) = (name.to_owned(), Arc::clone(&c.records));
    c.meta(move |m| {
        m.update_bucket(&name, |rec| {
            records
                .check_bucket(&name, rec)
                .map_err(|_| corrupt(&name))?;
            let out = change(rec);
            records.sign_bucket(rec);
            Ok(out)
        })
    })
    .await
}

fn corrupt(bucket: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "the record of bucket {bucket} failed its integrity check"
    ))
}

pub async fn head_bucket(
    c: &Coffer,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let b = require_bucket(c, &req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(b.region),
        ..Default::default()
    }))
}

pub async fn delete_bucket(
    c: &Coffer,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let name = req.input.bucket;
    let deleted = name.clone();
    c.meta(move |m| m.delete_bucket(&name)).await?;
    // A bucket created later under the name starts without the old one's CORS rules.
    c.cors.forget(&deleted);
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn get_bucket_location(
    c: &Coffer,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let b = require_bucket(c, &req.input.bucket).await?;
    // S3 answers an empty LocationConstraint for us-east-1.
    let location_constraint =
        (b.region != "us-east-1").then(|| BucketLocationConstraint::from(b.region));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}

/// DeleteBucketEncryption: back to the SSE-S3 default (the SSE-C block stays as it is).
/// PutBucketEncryption and GetBucketEncryption are [`crate::bucket_encryption`]'s.
pub async fn delete_bucket_encryption(
    c: &Coffer,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    let bucket = req.input.bucket;
    change_bucket(c, &bucket, |b| b.encryption = None).await?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
}

/// What a write to a bucket needs to know of its settings.
pub struct WriteSettings {
    /// The default encryption (`None`: SSE-S3).
    pub encryption: Option<BucketEncryption>,
    /// Whether SSE-C writes are allowed (`BlockedEncryptionTypes` `NONE`).
    pub sse_c_allowed: bool,
}

/// The [`WriteSettings`] of a bucket; `NoSuchBucket` if absent.
pub async fn write_settings(c: &Coffer, bucket: &str) -> S3Result<WriteSettings> {
    let rec = require_bucket(c, bucket).await?;
    Ok(WriteSettings {
        encryption: rec.encryption,
        sse_c_allowed: rec.sse_c_allowed,
    })
}

pub async fn get_bucket_versioning(
    c: &Coffer,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    require_bucket(c, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}
