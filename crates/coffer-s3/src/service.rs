//! `Coffer`: the state every S3 operation works on, and the `s3s::S3` trait impl that
//! dispatches each operation to the module that owns its family (`bucket`, `object`, `copy`,
//! `list`, `multipart`).

use std::sync::Arc;

use coffer_crypto::Key256;
use coffer_store::{BlobStore, Envelope, MetaStore, PartLayout, StoreError};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::binding::{self, ObjectId, RecordMac};
use crate::error::{crypto_error, internal, store_error};
use crate::keyring::ServiceKeyRing;

/// Envelope mode of SSE-S3 objects (the `x-amz-server-side-encryption` value).
pub const MODE_SSE_S3: &str = "AES256";

/// The S3 service: metadata, blobs, and the SSE-S3 key ring. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Coffer {
    pub(crate) meta: Arc<MetaStore>,
    pub(crate) blobs: Arc<BlobStore>,
    pub(crate) ring: Arc<ServiceKeyRing>,
    /// Authenticates object, upload and part records (see [`binding`]).
    pub(crate) records: Arc<RecordMac>,
    pub(crate) region: String,
}

impl Coffer {
    /// Builds the service over opened stores and a loaded key ring.
    pub fn new(
        meta: Arc<MetaStore>,
        blobs: Arc<BlobStore>,
        ring: Arc<ServiceKeyRing>,
        records: Arc<RecordMac>,
        region: String,
    ) -> Coffer {
        Coffer {
            meta,
            blobs,
            ring,
            records,
            region,
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

    /// A fresh data key for object version `id`, wrapped by the current service key with `id`
    /// in the associated data, and its envelope.
    pub(crate) fn new_data_key(&self, id: &ObjectId<'_>) -> S3Result<(Key256, Envelope)> {
        let dek = Key256::generate().map_err(crypto_error)?;
        let (key_id, service_key) = self.ring.current();
        let wrapped = coffer_crypto::wrap_key(&service_key, &dek, &binding::dek_aad(id, &key_id))
            .map_err(crypto_error)?;
        let envelope = Envelope {
            mode: MODE_SSE_S3.to_owned(),
            key_id,
            wrapped_dek: wrapped,
            format_version: coffer_crypto::FORMAT_VERSION,
            segment_size: coffer_crypto::SEGMENT_SIZE as u32,
        };
        Ok((dek, envelope))
    }

    /// Unwraps the data key of object version `id` (a key wrapped for another object fails).
    pub(crate) fn open_data_key(&self, envelope: &Envelope, id: &ObjectId<'_>) -> S3Result<Key256> {
        let service_key = self.service_key_of(envelope)?;
        coffer_crypto::unwrap_key(
            &service_key,
            &envelope.wrapped_dek,
            &binding::dek_aad(id, &envelope.key_id),
        )
        .map_err(crypto_error)
    }

    /// The service key that wrapped an envelope's data key, once the envelope is one this build
    /// opens.
    pub(crate) fn service_key_of(&self, envelope: &Envelope) -> S3Result<Key256> {
        if envelope.mode != MODE_SSE_S3 {
            return Err(internal(
                "envelope",
                format!("unsupported encryption mode {:?}", envelope.mode),
            ));
        }
        if envelope.format_version != coffer_crypto::FORMAT_VERSION
            || envelope.segment_size as usize != coffer_crypto::SEGMENT_SIZE
        {
            return Err(internal("envelope", "unsupported object format version"));
        }
        self.ring.by_key_id(&envelope.key_id).ok_or_else(|| {
            internal(
                "envelope",
                format!("service key {} is not in the key ring", envelope.key_id),
            )
        })
    }

    /// The key that opens one part: the data key itself, or its HKDF part key.
    pub(crate) fn part_key(dek: &Key256, layout: &PartLayout) -> S3Result<Key256> {
        match &layout.part_salt {
            None => Ok(dek.clone()),
            Some(salt) => {
                let salt: &[u8; coffer_crypto::PART_SALT_LEN] = salt
                    .as_slice()
                    .try_into()
                    .map_err(|_| internal("part layout", "bad part salt length"))?;
                Ok(coffer_crypto::derive_part_key(dek, salt))
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
        crate::bucket::delete_bucket(self, req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        crate::bucket::get_bucket_location(self, req).await
    }
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        crate::bucket::get_bucket_encryption(self, req).await
    }
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        crate::bucket::put_bucket_encryption(self, req).await
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
