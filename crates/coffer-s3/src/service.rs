//! `Coffer`: the state every S3 operation works on, and the `s3s::S3` trait impl that
//! dispatches each operation to the module that owns its family (`bucket`, `object`, `copy`,
//! `list`, `multipart`, `cors`, `bucket_policy`).

use std::sync::Arc;

use coffer_store::{BlobStore, MetaStore, PartLayout, StoreError};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::binding::RecordMac;
use crate::bucket_policy::BucketPolicies;
use crate::cors::BucketCors;
use crate::encryption::{DataKeys, Encryption, KmsClient};
use crate::error::{internal, store_error};
use crate::keyring::ServiceKeyRing;

/// The S3 service: metadata, blobs, keys. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Coffer {
    pub(crate) meta: Arc<MetaStore>,
    pub(crate) blobs: Arc<BlobStore>,
    /// The SSE-S3 key ring: user metadata is sealed under it, whatever the object's mode.
    pub(crate) ring: Arc<ServiceKeyRing>,
    /// Makes and opens the data keys of every mode.
    pub(crate) encryption: Arc<Encryption>,
    /// Authenticates object, upload and part records (see [`crate::binding`]).
    pub(crate) records: Arc<RecordMac>,
    pub(crate) region: String,
    /// Whether requests that involve the KMS (SSE-KMS, DSSE-KMS) may come over plain HTTP.
    pub(crate) allow_insecure_http: bool,
    /// Buckets' CORS rules as the front layer reads them (cached; changed through here).
    pub(crate) cors: Arc<BucketCors>,
    /// The parsed bucket policies, shared with the access check.
    pub(crate) policies: BucketPolicies,
}

/// What [`Coffer::new`] is built from.
pub struct CofferParts {
    pub meta: Arc<MetaStore>,
    pub blobs: Arc<BlobStore>,
    pub ring: Arc<ServiceKeyRing>,
    pub records: Arc<RecordMac>,
    /// The key service SSE-KMS and DSSE-KMS use; without one they are refused.
    pub kms: Option<Arc<dyn KmsClient>>,
    pub region: String,
    pub allow_insecure_http: bool,
}

impl Coffer {
    /// Builds the service over opened stores, a loaded key ring and the key service.
    pub fn new(parts: CofferParts) -> Coffer {
        Coffer {
            encryption: Arc::new(Encryption::new(Arc::clone(&parts.ring), parts.kms)),
            cors: Arc::new(BucketCors::new(
                Arc::clone(&parts.meta),
                Arc::clone(&parts.records),
            )),
            policies: BucketPolicies::new(Arc::clone(&parts.meta), Arc::clone(&parts.records)),
            meta: parts.meta,
            blobs: parts.blobs,
            ring: parts.ring,
            records: parts.records,
            region: parts.region,
            allow_insecure_http: parts.allow_insecure_http,
        }
    }

    /// Runs a metadata-store call on the blocking pool.
    pub(crate) async fn meta<T, F>(&self, f: F) -> S3Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&MetaStore) -> Result<T, StoreError> + Send + 'static,
    {
        let meta = Arc::clone(&self.meta);
        tokio::task::spawn_blocking(move || f(&meta))
            .await
            .map_err(|e| internal("metadata task", e))?
            .map_err(store_error)
    }

    /// Runs a short read-only metadata call (one record, one read transaction) right here on the
    /// async worker: a hop to the blocking pool costs more than the read itself, which is served
    /// from redb's page cache on any warm server. Anything that scans or writes goes through
    /// [`Coffer::meta`].
    pub(crate) async fn meta_read<T, F>(&self, f: F) -> S3Result<T>
    where
        F: FnOnce(&MetaStore) -> Result<T, StoreError>,
    {
        f(&self.meta).map_err(store_error)
    }

    /// The keys that open one part: the data keys themselves (single PUT), or their HKDF part
    /// keys under the part's salt (multipart).
    pub(crate) fn part_keys(keys: &DataKeys, layout: &PartLayout) -> S3Result<DataKeys> {
        match &layout.part_salt {
            None => Ok(DataKeys {
                inner: keys.inner.clone(),
                outer: keys.outer.clone(),
            }),
            Some(salt) => {
                let salt: &[u8; coffer_crypto::PART_SALT_LEN] = salt
                    .as_slice()
                    .try_into()
                    .map_err(|_| internal("part layout", "bad part salt length"))?;
                Ok(DataKeys {
                    inner: coffer_crypto::derive_part_key(&keys.inner, salt),
                    outer: keys
                        .outer
                        .as_ref()
                        .map(|outer| coffer_crypto::derive_part_key(outer, salt)),
                })
            }
        }
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[async_trait::async_trait]
impl S3 for Coffer {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        crate::bucket::list_buckets(self, req).await
    }
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        crate::bucket::create_bucket(self, req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        crate::bucket::head_bucket(self, req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket.clone();
        let deleted = crate::bucket::delete_bucket(self, req).await;
        // A bucket created again under this name starts without a policy.
        self.policies.forget(&bucket);
        deleted
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        crate::bucket::get_bucket_location(self, req).await
    }
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        crate::bucket::delete_bucket_encryption(self, req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        crate::bucket::get_bucket_versioning(self, req).await
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        crate::cors::get_bucket_cors(self, req).await
    }
    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        crate::cors::put_bucket_cors(self, req).await
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        crate::cors::delete_bucket_cors(self, req).await
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        crate::bucket_policy::put_bucket_policy(self, req).await
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        crate::bucket_policy::get_bucket_policy(self, req).await
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        crate::bucket_policy::delete_bucket_policy(self, req).await
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        crate::bucket_policy::get_bucket_policy_status(self, req).await
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        crate::object::put_object(self, req).await
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        crate::object::get_object(self, req).await
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        crate::object::head_object(self, req).await
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        crate::object::delete_object(self, req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        crate::object::delete_objects(self, req).await
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        crate::copy::copy_object(self, req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        crate::list::list_objects(self, req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        crate::list::list_objects_v2(self, req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        crate::list::list_object_versions(self, req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        crate::multipart::create_multipart_upload(self, req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        crate::multipart::upload_part(self, req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        crate::copy::upload_part_copy(self, req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        crate::multipart::complete_multipart_upload(self, req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        crate::multipart::abort_multipart_upload(self, req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        crate::multipart::list_parts(self, req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        crate::multipart::list_multipart_uploads(self, req).await
    }
}
