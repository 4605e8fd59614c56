//! The one error type of the store, [`StoreError`].
//!
//! It must never carry key material or object bytes in a message: callers log and map these errors
//! (once, to the wire) without looking inside.

/// Everything a [`crate::MetaStore`] or [`crate::BlobStore`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named bucket does not exist.
    #[error("the bucket does not exist")]
    BucketNotFound,
    /// A bucket with that name already exists.
    #[error("a bucket with that name already exists")]
    BucketAlreadyExists,
    /// The bucket still holds objects or in-progress multipart uploads.
    #[error("the bucket still holds objects or in-progress multipart uploads")]
    BucketNotEmpty,
    /// The multipart upload does not exist (never created, completed or aborted), or belongs to
    /// another key.
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    /// A caller's check wanted an object that does not exist; nothing was changed.
    #[error("the object does not exist")]
    ObjectNotFound,
    /// A caller's check on the current object refused the write; nothing was changed.
    #[error("the precondition on the current object did not hold")]
    PreconditionFailed,
    /// A multipart completion named a part that was re-uploaded or removed meanwhile.
    #[error("a part of the multipart upload changed while it was being completed")]
    PartsChanged,
    /// A file system operation on the blob store failed.
    #[error("blob store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The metadata database file is held by another process (redb allows one at a time: a
    /// running server holds it).
    #[error(
        "the metadata database is in use by another process (is a coffer server running on it?)"
    )]
    InUse,
    /// The metadata database failed (the redb error, as text).
    #[error("metadata database error: {0}")]
    Db(String),
    /// A stored record or blob is not what this build can read: it fails to decode, has an unknown
    /// format version, or a blob is shorter than its record says.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
}

/// redb reports failures with one type per stage; all of them mean "the database failed".
macro_rules! db_error_from {
    ($($ty:ty),+ $(,)?) => {$(
        impl From<$ty> for StoreError {
            fn from(err: $ty) -> Self {
                StoreError::Db(err.to_string())
            }
        }
    )+};
}

impl From<redb::DatabaseError> for StoreError {
    fn from(err: redb::DatabaseError) -> Self {
        match err {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse,
            other => StoreError::Db(other.to_string()),
        }
    }
}

db_error_from!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
);
