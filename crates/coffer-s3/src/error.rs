//! The one place where errors become S3 errors on the wire.
//!
//! [`ApiError`] lists every S3 error code Coffer answers with; its [`ApiError::code`] and
//! [`ApiError::status`] are single exhaustive matches, so a reviewer sees every code a client can
//! get and a new variant cannot ship unmapped. Handlers raise them with [`api_error!`] (the shape
//! of `s3s`'s `s3_error!`, but checked against this enum). Lower layers' errors (`StoreError`,
//! `CryptoError`) are mapped below, one `match` each; the KMS's in `encryption::kms_error`, beside
//! the code that calls it. Messages never carry key material or plaintext; `InternalError` is
//! logged where it is raised and answered without detail.

use coffer_crypto::CryptoError;
use coffer_store::StoreError;
use http::StatusCode;
use s3s::{S3Error, S3ErrorCode};

/// An S3 error, by its code, with the message the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum ApiError {
    AccessDenied(String),
    /// A CORS preflight no rule allows (S3's code for it, not `AccessDenied`).
    AccessForbidden(String),
    /// A preflight without the headers it needs (S3's code, not `InvalidRequest`).
    BadRequest(String),
    BadDigest(String),
    BucketAlreadyOwnedByYou(String),
    BucketNotEmpty(String),
    EntityTooLarge(String),
    EntityTooSmall(String),
    IncompleteBody(String),
    /// A server fault; logged where raised.
    InternalError(String),
    InvalidAccessKeyId(String),
    InvalidArgument(String),
    InvalidBucketName(String),
    InvalidDigest(String),
    InvalidLocationConstraint(String),
    InvalidPart(String),
    InvalidPartNumber(String),
    InvalidPartOrder(String),
    InvalidRange(String),
    InvalidRequest(String),
    InvalidStorageClass(String),
    KeyTooLongError(String),
    /// The bucket policy is not one S3 accepts; the message says what is wrong.
    MalformedPolicy(String),
    MalformedXML(String),
    MetadataTooLarge(String),
    MethodNotAllowed(String),
    NoSuchBucket(String),
    NoSuchCORSConfiguration(String),
    NoSuchBucketPolicy(String),
    NoSuchKey(String),
    NoSuchUpload(String),
    NotImplemented(String),
    NotModified(String),
    PreconditionFailed(String),
    SignatureDoesNotMatch(String),
    /// The request was throttled (a KMS quota behind it): clients retry.
    SlowDown(String),
    XAmzContentSHA256Mismatch(String),
    /// `KMS.DisabledException`: the object's KMS key is disabled.
    KmsDisabled(String),
    /// `KMS.KMSInvalidStateException`: the KMS key is pending deletion (or otherwise unusable).
    KmsInvalidState(String),
    /// `KMS.NotFoundException`: no such KMS key (or it was deleted).
    KmsNotFound(String),
}

impl ApiError {
    /// The `<Code>` on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::AccessDenied(_) => "AccessDenied",
            ApiError::AccessForbidden(_) => "AccessForbidden",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::BadDigest(_) => "BadDigest",
            ApiError::BucketAlreadyOwnedByYou(_) => "BucketAlreadyOwnedByYou",
            ApiError::BucketNotEmpty(_) => "BucketNotEmpty",
            ApiError::EntityTooLarge(_) => "EntityTooLarge",
            ApiError::EntityTooSmall(_) => "EntityTooSmall",
            ApiError::IncompleteBody(_) => "IncompleteBody",
            ApiError::InternalError(_) => "InternalError",
            ApiError::InvalidAccessKeyId(_) => "InvalidAccessKeyId",
            ApiError::InvalidArgument(_) => "InvalidArgument",
            ApiError::InvalidBucketName(_) => "InvalidBucketName",
            ApiError::InvalidDigest(_) => "InvalidDigest",
            ApiError::InvalidLocationConstraint(_) => "InvalidLocationConstraint",
            ApiError::InvalidPart(_) => "InvalidPart",
            ApiError::InvalidPartNumber(_) => "InvalidPartNumber",
            ApiError::InvalidPartOrder(_) => "InvalidPartOrder",
            ApiError::InvalidRange(_) => "InvalidRange",
            ApiError::InvalidRequest(_) => "InvalidRequest",
            ApiError::InvalidStorageClass(_) => "InvalidStorageClass",
            ApiError::KeyTooLongError(_) => "KeyTooLongError",
            ApiError::MalformedPolicy(_) => "MalformedPolicy",
            ApiError::MalformedXML(_) => "MalformedXML",
            ApiError::MetadataTooLarge(_) => "MetadataTooLarge",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::NoSuchBucket(_) => "NoSuchBucket",
            ApiError::NoSuchCORSConfiguration(_) => "NoSuchCORSConfiguration",
            ApiError::NoSuchBucketPolicy(_) => "NoSuchBucketPolicy",
            ApiError::NoSuchKey(_) => "NoSuchKey",
            ApiError::NoSuchUpload(_) => "NoSuchUpload",
            ApiError::NotImplemented(_) => "NotImplemented",
            ApiError::NotModified(_) => "NotModified",
            ApiError::PreconditionFailed(_) => "PreconditionFailed",
            ApiError::SignatureDoesNotMatch(_) => "SignatureDoesNotMatch",
            ApiError::SlowDown(_) => "SlowDown",
            ApiError::XAmzContentSHA256Mismatch(_) => "XAmzContentSHA256Mismatch",
            ApiError::KmsDisabled(_) => "KMS.DisabledException",
            ApiError::KmsInvalidState(_) => "KMS.KMSInvalidStateException",
            ApiError::KmsNotFound(_) => "KMS.NotFoundException",
        }
    }

    /// The HTTP status on the wire.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotModified(_) => StatusCode::NOT_MODIFIED,
            ApiError::BadDigest(_)
            | ApiError::BadRequest(_)
            | ApiError::EntityTooLarge(_)
            | ApiError::EntityTooSmall(_)
            | ApiError::IncompleteBody(_)
            | ApiError::InvalidArgument(_)
            | ApiError::InvalidBucketName(_)
            | ApiError::InvalidDigest(_)
            | ApiError::InvalidLocationConstraint(_)
            | ApiError::InvalidPart(_)
            | ApiError::InvalidPartOrder(_)
            | ApiError::InvalidRequest(_)
            | ApiError::InvalidStorageClass(_)
            | ApiError::KeyTooLongError(_)
            | ApiError::MalformedPolicy(_)
            | ApiError::MalformedXML(_)
            | ApiError::MetadataTooLarge(_)
            | ApiError::XAmzContentSHA256Mismatch(_)
            | ApiError::KmsDisabled(_)
            | ApiError::KmsInvalidState(_)
            | ApiError::KmsNotFound(_) => StatusCode::BAD_REQUEST,
            ApiError::AccessDenied(_)
            | ApiError::AccessForbidden(_)
            | ApiError::InvalidAccessKeyId(_)
            | ApiError::SignatureDoesNotMatch(_) => StatusCode::FORBIDDEN,
            ApiError::NoSuchBucket(_)
            | ApiError::NoSuchCORSConfiguration(_)
            | ApiError::NoSuchBucketPolicy(_)
            | ApiError::NoSuchKey(_)
            | ApiError::NoSuchUpload(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BucketAlreadyOwnedByYou(_) | ApiError::BucketNotEmpty(_) => {
                StatusCode::CONFLICT
            }
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::InvalidPartNumber(_) | ApiError::InvalidRange(_) => {
                StatusCode::RANGE_NOT_SATISFIABLE
            }
            ApiError::InternalError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::SlowDown(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            ApiError::AccessDenied(m)
            | ApiError::AccessForbidden(m)
            | ApiError::BadDigest(m)
            | ApiError::BadRequest(m)
            | ApiError::BucketAlreadyOwnedByYou(m)
            | ApiError::BucketNotEmpty(m)
            | ApiError::EntityTooLarge(m)
            | ApiError::EntityTooSmall(m)
            | ApiError::IncompleteBody(m)
            | ApiError::InternalError(m)
            | ApiError::InvalidAccessKeyId(m)
            | ApiError::InvalidArgument(m)
            | ApiError::InvalidBucketName(m)
            | ApiError::InvalidDigest(m)
            | ApiError::InvalidLocationConstraint(m)
            | ApiError::InvalidPart(m)
            | ApiError::InvalidPartNumber(m)
            | ApiError::InvalidPartOrder(m)
            | ApiError::InvalidRange(m)
            | ApiError::InvalidRequest(m)
            | ApiError::InvalidStorageClass(m)
            | ApiError::KeyTooLongError(m)
            | ApiError::MalformedPolicy(m)
            | ApiError::MalformedXML(m)
            | ApiError::MetadataTooLarge(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::NoSuchBucket(m)
            | ApiError::NoSuchCORSConfiguration(m)
            | ApiError::NoSuchBucketPolicy(m)
            | ApiError::NoSuchKey(m)
            | ApiError::NoSuchUpload(m)
            | ApiError::NotImplemented(m)
            | ApiError::NotModified(m)
            | ApiError::PreconditionFailed(m)
            | ApiError::SignatureDoesNotMatch(m)
            | ApiError::SlowDown(m)
            | ApiError::XAmzContentSHA256Mismatch(m)
            | ApiError::KmsDisabled(m)
            | ApiError::KmsInvalidState(m)
            | ApiError::KmsNotFound(m) => m,
        }
    }
}

impl From<ApiError> for S3Error {
    /// The one conversion to `s3s`'s error, which puts it on the wire.
    fn from(e: ApiError) -> S3Error {
        let code = S3ErrorCode::from_bytes(e.code().as_bytes())
            .unwrap_or_else(|| S3ErrorCode::Custom(e.code().into()));
        let mut out = S3Error::with_message(code, e.message().to_owned());
        out.set_status_code(e.status());
        out
    }
}

/// Raises an [`ApiError`] as an `s3s::S3Error`: `api_error!(NoSuchKey, "…{}", x)`.
macro_rules! api_error {
    ($code:ident, $($fmt:tt)+) => {
        s3s::S3Error::from($crate::error::ApiError::$code(format!($($fmt)+)))
    };
}
pub(crate) use api_error;

/// Maps a store error to the S3 error a client sees.
pub fn store_error(err: StoreError) -> S3Error {
    match err {
        StoreError::BucketNotFound => {
            api_error!(NoSuchBucket, "The specified bucket does not exist")
        }
        StoreError::BucketAlreadyExists => api_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ),
        StoreError::BucketNotEmpty => api_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty"
        ),
        StoreError::NoSuchUpload => api_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have been aborted or completed."
        ),
        StoreError::PartsChanged => api_error!(
            InvalidPart,
            "One or more of the specified parts was re-uploaded while the upload was being completed; list the parts and complete again."
        ),
        StoreError::ObjectNotFound => {
            api_error!(NoSuchKey, "The specified key does not exist.")
        }
        StoreError::PreconditionFailed => {
            api_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )
        }
        other @ (StoreError::Io(_)
        | StoreError::InUse
        | StoreError::Db(_)
        | StoreError::Corrupt(_)) => {
            tracing::error!(error = %other, "storage failure");
            api_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            )
        }
    }
}

/// Maps a crypto error (always a server-side fault or tampered data) to `InternalError`.
pub fn crypto_error(err: CryptoError) -> S3Error {
    tracing::error!(error = %err, "cryptographic failure");
    api_error!(
        InternalError,
        "We encountered an internal error. Please try again."
    )
}

/// A server fault that is not the client's: logged, answered with `InternalError`.
pub fn internal(context: &str, err: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %err, "{context}");
    api_error!(
        InternalError,
        "We encountered an internal error. Please try again."
    )
}

/// Maps an error of the request body stream: a failed aws-chunked signature is the client's
/// `SignatureDoesNotMatch`, anything else means the body did not arrive whole. The one place an
/// error is classified by its text: `s3s` reports the aws-chunked failures through types of its
/// private `http` module, which cannot be downcast to from here.
pub fn body_error(err: &(dyn std::error::Error + 'static)) -> S3Error {
    if let Some(e) = err.downcast_ref::<S3Error>() {
        return S3Error::with_message(e.code().clone(), e.message().unwrap_or("").to_owned());
    }
    let text = err.to_string();
    if text.contains("Sha256Mismatch") {
        api_error!(
            XAmzContentSHA256Mismatch,
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    } else if text.contains("SignatureMismatch") {
        api_error!(
            SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the signature you provided"
        )
    } else {
        api_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header"
        )
    }
}
