//! Coffer's durable state: [`MetaStore`] (buckets, objects, multipart uploads, system values in redb)
//! and [`BlobStore`] (object bytes, already ciphertext, in local files).
//!
//! This crate must never see a plaintext key or plaintext object bytes, never speak HTTP and never
//! decide crypto policy: it stores what the S3 layer hands it, durably, and hands it back.
//! Both stores are synchronous; async callers run them on blocking threads.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blob;
pub mod error;
pub mod meta;
pub mod records;

pub use blob::{BLOBS_DIR, BlobReader, BlobStore, BlobWriter};
pub use error::StoreError;
pub use meta::{KvOp, MetaStore};
pub use records::{
    BUCKET_RECORD_VERSION, BucketCorsRule, BucketEncryption, BucketRecord, Checksums, Envelope,
    LEGACY_BUCKET_RECORD_VERSION, LEGACY_RECORD_VERSION, ObjectRecord, PartLayout, RECORD_VERSION,
    UploadRecord,
};
