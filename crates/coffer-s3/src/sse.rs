//! Server-side-encryption header rules: which encryption a write asks for, and the answer
//! for requests this build cannot honour yet.
//!
//! Every object is stored under SSE-S3 whatever the request says; a request that asks for
//! something else (SSE-KMS, DSSE-KMS, SSE-C) is refused, never silently downgraded.

use crate::error::api_error;
use s3s::dto::ServerSideEncryption;
use s3s::{S3Error, S3Result};

/// The `x-amz-server-side-encryption` value every response of this build carries.
pub fn sse_s3() -> Option<ServerSideEncryption> {
    Some(ServerSideEncryption::from_static(
        ServerSideEncryption::AES256,
    ))
}

/// What a write request asked for, in the headers that select the encryption mode.
pub struct SseRequest<'a> {
    pub server_side_encryption: Option<&'a ServerSideEncryption>,
    pub kms_key_id: Option<&'a str>,
    pub customer_algorithm: Option<&'a str>,
    pub customer_key_present: bool,
    pub bucket_key_enabled: Option<bool>,
    /// `x-amz-server-side-encryption-context` was sent.
    pub kms_context_present: bool,
}

/// Checks the request's SSE headers: `AES256` (or none) is accepted; KMS and SSE-C modes are
/// refused with `NotImplemented` until the built-in KMS lands; anything else is `InvalidArgument`.
pub fn check_write(req: &SseRequest<'_>) -> S3Result<()> {
    if req.customer_algorithm.is_some() || req.customer_key_present {
        return Err(not_implemented(
            "Server-side encryption with customer-provided keys (SSE-C)",
        ));
    }
    match req.server_side_encryption.map(ServerSideEncryption::as_str) {
        None | Some(ServerSideEncryption::AES256) => {}
        Some(ServerSideEncryption::AWS_KMS) => {
            return Err(not_implemented(
                "Server-side encryption with KMS keys (aws:kms)",
            ));
        }
        Some(ServerSideEncryption::AWS_KMS_DSSE) => {
            return Err(not_implemented(
                "Dual-layer server-side encryption with KMS keys (aws:kms:dsse)",
            ));
        }
        Some(other) => {
            return Err(api_error!(
                InvalidArgument,
                "The encryption method specified is not supported: x-amz-server-side-encryption must be AES256, aws:kms or aws:kms:dsse, got {other:?}"
            ));
        }
    }
    if req.kms_key_id.is_some() {
        return Err(api_error!(
            InvalidArgument,
            "x-amz-server-side-encryption-aws-kms-key-id is only valid with x-amz-server-side-encryption aws:kms or aws:kms:dsse"
        ));
    }
    if req.kms_context_present {
        return Err(api_error!(
            InvalidArgument,
            "x-amz-server-side-encryption-context is only valid with x-amz-server-side-encryption aws:kms or aws:kms:dsse"
        ));
    }
    if req.bucket_key_enabled == Some(true) {
        return Err(not_implemented("S3 Bucket Keys (they apply to SSE-KMS)"));
    }
    Ok(())
}

/// Reads that present SSE-C headers are refused: no object of this build is under SSE-C.
pub fn check_read(customer_algorithm: Option<&str>, customer_key_present: bool) -> S3Result<()> {
    if customer_algorithm.is_some() || customer_key_present {
        return Err(api_error!(
            InvalidRequest,
            "The encryption parameters are not applicable to this object: it is not encrypted with a customer-provided key"
        ));
    }
    Ok(())
}

fn not_implemented(what: &str) -> S3Error {
    api_error!(
        NotImplemented,
        "{what} is not implemented in this version of Coffer; objects are encrypted with SSE-S3 (AES256)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(sse: Option<&ServerSideEncryption>) -> SseRequest<'_> {
        SseRequest {
            server_side_encryption: sse,
            kms_key_id: None,
            customer_algorithm: None,
            customer_key_present: false,
            bucket_key_enabled: None,
            kms_context_present: false,
        }
    }

    #[test]
    fn an_encryption_context_without_kms_is_invalid_argument() {
        let with_context = SseRequest {
            kms_context_present: true,
            ..req(None)
        };
        let err = check_write(&with_context).unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::InvalidArgument);
    }

    #[test]
    fn aes256_and_absent_are_accepted() {
        assert!(check_write(&req(None)).is_ok());
        let aes = ServerSideEncryption::from_static(ServerSideEncryption::AES256);
        assert!(check_write(&req(Some(&aes))).is_ok());
    }

    #[test]
    fn kms_modes_are_not_implemented_yet() {
        for v in [
            ServerSideEncryption::AWS_KMS,
            ServerSideEncryption::AWS_KMS_DSSE,
        ] {
            let sse = ServerSideEncryption::from_static(v);
            let err = check_write(&req(Some(&sse))).unwrap_err();
            assert_eq!(*err.code(), s3s::S3ErrorCode::NotImplemented);
        }
    }

    #[test]
    fn unknown_value_is_invalid_argument() {
        let sse = ServerSideEncryption::from("AES512".to_owned());
        let err = check_write(&req(Some(&sse))).unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::InvalidArgument);
    }

    #[test]
    fn sse_c_is_not_implemented_yet() {
        let mut r = req(None);
        r.customer_algorithm = Some("AES256");
        r.customer_key_present = true;
        assert_eq!(
            *check_write(&r).unwrap_err().code(),
            s3s::S3ErrorCode::NotImplemented
        );
    }
}
