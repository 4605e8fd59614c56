//! Bucket policies: PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy and
//! GetBucketPolicyStatus, and [`BucketPolicies`], the per-process cache of parsed policies that
//! the access check (`authz.rs`) consults on every S3 request.
//!
//! A policy is checked by `coffer_policy::parse_bucket_policy` before it is stored (refused:
//! `400 MalformedPolicy` naming the statement and the entry) and kept in the bucket record as the
//! caller sent it, which GetBucketPolicy returns. The cache holds each bucket's parsed document
//! (or its absence) so that no request parses JSON; every change of a bucket's policy, and the
//! bucket's deletion, drops the bucket's entry. It also reads for the access check the one other
//! stored fact a condition tests: a multipart upload's record, whose encryption gives UploadPart
//! and CompleteMultipartUpload their `s3:x-amz-server-side-encryption*` keys (its MAC checked,
//! as every record served). This module decides nothing about access: it never evaluates a
//! policy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use coffer_policy::{PolicyDocument, PolicyError};
use coffer_store::{MetaStore, StoreError, UploadRecord};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::binding::RecordMac;
use crate::error::{api_error, store_error};
use crate::service::Coffer;

/// The parsed bucket policies of this process, loaded on first use and dropped on change.
/// Cheap to clone; every clone sees the same cache.
#[derive(Clone)]
pub struct BucketPolicies {
    inner: Arc<Cache>,
}

struct Cache {
    meta: Arc<MetaStore>,
    /// Checks the MAC of the upload records read for the access check.
    records: Arc<RecordMac>,
    /// Existing buckets only, so the map is no larger than the bucket table; `None`: the bucket
    /// has no policy.
    by_bucket: RwLock<HashMap<String, Option<Arc<PolicyDocument>>>>,
    /// Bumped by every [`BucketPolicies::forget`]: a load that began before a change must not
    /// put what it read into the cache after the change dropped it.
    generation: AtomicU64,
}

impl BucketPolicies {
    pub fn new(meta: Arc<MetaStore>, records: Arc<RecordMac>) -> BucketPolicies {
        BucketPolicies {
            inner: Arc::new(Cache {
                meta,
                records,
                by_bucket: RwLock::default(),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// The policy of `bucket`, or `None` when it has none or does not exist. A stored policy
    /// this release no longer accepts is an `InternalError` (logged), never "no policy": a
    /// broken Deny must not open the bucket. The root access key can still replace or delete it
    /// (see `authz.rs`).
    pub fn get(&self, bucket: &str) -> S3Result<Option<Arc<PolicyDocument>>> {
        if let Some(cached) = self
            .inner
            .by_bucket
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(bucket)
        {
            return Ok(cached.clone());
        }
        let generation = self.inner.generation.load(Ordering::Acquire);
        let Some(record) =
            crate::bucket::read_checked(&self.inner.meta, &self.inner.records, bucket)
                .map_err(store_error)?
        else {
            return Ok(None);
        };
        let doc = match record.policy {
            None => None,
            Some(text) => Some(Arc::new(
                coffer_policy::parse_bucket_policy(&text, bucket).map_err(|e| {
                    tracing::error!(bucket, error = %e, "the stored bucket policy does not parse");
                    api_error!(
                        InternalError,
                        "We encountered an internal error. Please try again."
                    )
                })?,
            )),
        };
        let mut cache = self
            .inner
            .by_bucket
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.inner.generation.load(Ordering::Acquire) == generation {
            cache.insert(bucket.to_owned(), doc.clone());
        }
        Ok(doc)
    }

    /// The multipart upload `upload_id` of `bucket` (blocking: a store read), its MAC checked;
    /// `None` when the bucket or the upload does not exist.
    pub(crate) fn upload(&self, bucket: &str, upload_id: &str) -> S3Result<Option<UploadRecord>> {
        let upload = match self.inner.meta.get_upload(bucket, upload_id) {
            Ok(upload) => upload,
            Err(StoreError::BucketNotFound) => return Ok(None),
            Err(e) => return Err(store_error(e)),
        };
        if let Some(upload) = &upload {
            self.inner.records.check_upload(bucket, upload_id, upload)?;
        }
        Ok(upload)
    }

    /// Drops what is cached for `bucket`: call after its policy changed or it was deleted.
    pub fn forget(&self, bucket: &str) {
        let mut cache = self
            .inner
            .by_bucket
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        cache.remove(bucket);
    }
}

fn malformed(e: PolicyError) -> s3s::S3Error {
    let PolicyError::Malformed(message) = e;
    api_error!(MalformedPolicy, "{message}")
}

fn no_policy() -> s3s::S3Error {
    api_error!(NoSuchBucketPolicy, "The bucket policy does not exist")
}

/// PutBucketPolicy: checked, then stored as sent (`204`).
pub async fn put_bucket_policy(
    c: &Coffer,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let PutBucketPolicyInput { bucket, policy, .. } = req.input;
    crate::bucket::require_bucket(c, &bucket).await?;
    coffer_policy::parse_bucket_policy(&policy, &bucket).map_err(malformed)?;
    crate::bucket::change_bucket(c, &bucket, |rec| rec.policy = Some(policy)).await?;
    c.policies.forget(&bucket);
    Ok(S3Response::new(PutBucketPolicyOutput {}))
}

/// GetBucketPolicy: the policy as it was put; `404 NoSuchBucketPolicy` without one.
pub async fn get_bucket_policy(
    c: &Coffer,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let record = crate::bucket::require_bucket(c, &req.input.bucket).await?;
    let policy = record.policy.ok_or_else(no_policy)?;
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(policy),
    }))
}

/// DeleteBucketPolicy: `204`, also when the bucket had no policy (as S3 answers).
pub async fn delete_bucket_policy(
    c: &Coffer,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let bucket = req.input.bucket;
    crate::bucket::change_bucket(c, &bucket, |rec| rec.policy = None).await?;
    c.policies.forget(&bucket);
    Ok(S3Response::new(DeleteBucketPolicyOutput {}))
}

/// GetBucketPolicyStatus: whether the policy makes the bucket public (`coffer_policy::is_public`);
/// `404 NoSuchBucketPolicy` without one.
pub async fn get_bucket_policy_status(
    c: &Coffer,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let bucket = req.input.bucket;
    crate::bucket::require_bucket(c, &bucket).await?;
    let doc = c.policies.get(&bucket)?.ok_or_else(no_policy)?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(coffer_policy::is_public(&doc)),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_store::{BUCKET_RECORD_VERSION, BucketRecord};

    /// A store holding bucket `b` with `policy`, and the record MAC it is signed with.
    fn store_with_bucket(
        policy: Option<&str>,
    ) -> (tempfile::TempDir, Arc<MetaStore>, Arc<RecordMac>) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(MetaStore::open(&dir.path().join("m.redb")).unwrap());
        let records = Arc::new(RecordMac::derive(
            &coffer_crypto::Key256::generate().unwrap(),
        ));
        let mut rec = BucketRecord {
            v: BUCKET_RECORD_VERSION,
            name: "b".into(),
            region: "us-east-1".into(),
            created_unix_ms: 0,
            encryption: None,
            sse_c_allowed: false,
            policy: policy.map(str::to_owned),
            cors: None,
            mac: None,
        };
        records.sign_bucket(&mut rec);
        meta.create_bucket(&rec).unwrap();
        (dir, meta, records)
    }

    const PUBLIC_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;

    #[test]
    fn the_cache_serves_until_forgotten() {
        let (_dir, meta, records) = store_with_bucket(Some(PUBLIC_READ));
        let policies = BucketPolicies::new(Arc::clone(&meta), Arc::clone(&records));
        assert!(policies.get("b").unwrap().is_some());
        assert!(policies.get("nope").unwrap().is_none());
        meta.update_bucket("b", |rec| {
            rec.policy = None;
            records.sign_bucket(rec);
            Ok(())
        })
        .unwrap();
        // Still the cached document: changes go through `forget`.
        assert!(policies.get("b").unwrap().is_some());
        policies.forget("b");
        assert!(policies.get("b").unwrap().is_none());
    }

    #[test]
    fn a_bucket_record_altered_in_the_store_is_an_error_not_its_policy() {
        let (_dir, meta, records) = store_with_bucket(None);
        // Someone with write access to the database, but not the root key, opens the bucket.
        meta.update_bucket("b", |rec| {
            rec.policy = Some(PUBLIC_READ.to_owned());
            Ok(())
        })
        .unwrap();
        let policies = BucketPolicies::new(Arc::clone(&meta), Arc::clone(&records));
        assert_eq!(
            policies.get("b").unwrap_err().code().as_str(),
            "InternalError"
        );
    }

    #[test]
    fn a_stored_policy_that_no_longer_parses_is_an_error_not_an_open_bucket() {
        let (_dir, meta, records) = store_with_bucket(Some("{\"Statement\": 7}"));
        let policies = BucketPolicies::new(meta, records);
        let err = policies.get("b").unwrap_err();
        assert_eq!(err.code().as_str(), "InternalError");
    }
}
