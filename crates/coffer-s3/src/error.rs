//! The one place where lower-layer errors become S3 errors on the wire.
//!
//! Every `StoreError` and `CryptoError` a request can hit is mapped here, in a single
//! `match` each, so a reviewer sees every code a client can get. Messages never carry
//! key material or plaintext.

use coffer_crypto::CryptoError;
use coffer_store::StoreError;
use s3s::{S3Error, s3_error};

/// Maps a store error to the S3 error a client sees.
pub fn store_error(err: StoreError) -> S3Error {
    match err {
        StoreError::BucketNotFound => {
            s3_error!(NoSuchBucket, "The specified bucket does not exist")
        }
        StoreError::BucketAlreadyExists => s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ),
        StoreError::BucketNotEmpty => s3_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty"
        ),
        StoreError::NoSuchUpload => s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have been aborted or completed."
        ),
        StoreError::PartsChanged => s3_error!(
            InvalidPart,
            "One or more of the specified parts was re-uploaded while the upload was being completed; list the parts and complete again."
        ),
        StoreError::ObjectNotFound => {
            s3_error!(NoSuchKey, "The specified key does not exist.")
        }
        StoreError::PreconditionFailed => {
            s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )
        }
        other @ (StoreError::Io(_)
        | StoreError::InUse
        | StoreError::Db(_)
        | StoreError::Corrupt(_)) => {
            tracing::error!(error = %other, "storage failure");
            s3_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            )
        }
    }
}

/// Maps a crypto error (always a server-side fault or tampered data) to `InternalError`.
pub fn crypto_error(err: CryptoError) -> S3Error {
    tracing::error!(error = %err, "cryptographic failure");
    s3_error!(
        InternalError,
        "We encountered an internal error. Please try again."
    )
}

/// A server fault that is not the client's: logged, answered with `InternalError`.
pub fn internal(context: &str, err: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %err, "{context}");
    s3_error!(
        InternalError,
        "We encountered an internal error. Please try again."
    )
}

/// Maps an error of the request body stream: a failed aws-chunked signature is the
/// client's `SignatureDoesNotMatch`, anything else means the body did not arrive whole.
pub fn body_error(err: &(dyn std::error::Error + 'static)) -> S3Error {
    if let Some(e) = err.downcast_ref::<S3Error>() {
        return S3Error::with_message(e.code().clone(), e.message().unwrap_or("").to_owned());
    }
    let text = err.to_string();
    if text.contains("Sha256Mismatch") {
        let mut e = S3Error::with_message(
            s3s::S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        e
    } else if text.contains("SignatureMismatch") {
        s3_error!(
            SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the signature you provided"
        )
    } else {
        s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header"
        )
    }
}
