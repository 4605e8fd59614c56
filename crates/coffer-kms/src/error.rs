//! The one error type of the key service, [`KmsError`], and its single mapping to the AWS KMS wire
//! (`__type` and HTTP status).
//!
//! Messages are for the person reading the response: they name the field, the key ARN or the rule
//! that was broken. They must never carry key material, plaintext, ciphertext or data keys; internal
//! failures are logged with their detail and answered with a generic text.

/// Everything a KMS request can fail with. Each variant is one AWS KMS error type; the string is the
/// message sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    /// The key, alias or policy named in the request does not exist (or no longer exists: a key
    /// whose deletion completed is gone for good).
    #[error("NotFoundException: {0}")]
    NotFound(String),
    /// The key is disabled; cryptographic and some management operations refuse it.
    #[error("DisabledException: {0}")]
    Disabled(String),
    /// The key is in a state the operation does not allow (pending deletion, or e.g. EnableKey on a
    /// key pending deletion).
    #[error("KMSInvalidStateException: {0}")]
    InvalidState(String),
    /// The ciphertext blob is malformed, truncated, altered, or was made under another encryption
    /// context. Deliberately one answer for every cause.
    #[error("InvalidCiphertextException: {0}")]
    InvalidCiphertext(String),
    /// The key policy does not allow the caller this action on this key.
    #[error("AccessDeniedException: {0}")]
    AccessDenied(String),
    /// The request-rate quota of the operation's class is used up; clients retry with backoff.
    #[error("ThrottlingException: {0}")]
    Throttling(String),
    /// A parameter is missing, out of range or not one of the allowed values.
    #[error("ValidationException: {0}")]
    Validation(String),
    /// CreateAlias with a name that is already taken.
    #[error("AlreadyExistsException: {0}")]
    AlreadyExists(String),
    /// The alias name is reserved (`alias/aws/…`) or otherwise unusable for this operation.
    #[error("InvalidAliasNameException: {0}")]
    InvalidAliasName(String),
    /// The key cannot be used this way (e.g. an encryption algorithm a symmetric key does not have).
    #[error("InvalidKeyUsageException: {0}")]
    InvalidKeyUsage(String),
    /// The key policy is not valid JSON in the AWS policy grammar, or would lock the caller out.
    #[error("MalformedPolicyDocumentException: {0}")]
    MalformedPolicyDocument(String),
    /// The paging `Marker` is not one this service issued.
    #[error("InvalidMarkerException: {0}")]
    InvalidMarker(String),
    /// A string that starts like an ARN is not a valid KMS key or alias ARN.
    #[error("InvalidArnException: {0}")]
    InvalidArn(String),
    /// A tag key or value is not allowed (reserved `aws:` prefix, length, too many tags).
    #[error("TagException: {0}")]
    Tag(String),
    /// A valid AWS request that Coffer does not implement (asymmetric and HMAC keys, imported
    /// key material, custom key stores, multi-Region keys, attested recipients).
    #[error("UnsupportedOperationException: {0}")]
    UnsupportedOperation(String),
    /// Decrypt named a KeyId that is not the key the ciphertext blob was made under.
    #[error("IncorrectKeyException: {0}")]
    IncorrectKey(String),
    /// A per-key quota is reached (policy size, number of on-demand rotations).
    #[error("LimitExceededException: {0}")]
    LimitExceeded(String),
    /// `DryRun` was set and the request would have succeeded.
    #[error("DryRunOperationException: {0}")]
    DryRunOperation(String),
    /// The service failed (store, audit log, random generator). The string is the detail for the
    /// server log; the client gets a generic message.
    #[error("KMSInternalException: {0}")]
    Internal(String),
    /// The `X-Amz-Target` names an operation this service does not have.
    #[error("UnknownOperationException: {0}")]
    UnknownOperation(String),
    /// The body is not JSON, or a field has the wrong JSON type or is not valid base64.
    #[error("SerializationException: {0}")]
    Serialization(String),
}

impl KmsError {
    /// The AWS `__type` of this error: what SDKs match on.
    pub fn error_type(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext(_) => "InvalidCiphertextException",
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::Throttling(_) => "ThrottlingException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::InvalidAliasName(_) => "InvalidAliasNameException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            KmsError::InvalidMarker(_) => "InvalidMarkerException",
            KmsError::InvalidArn(_) => "InvalidArnException",
            KmsError::Tag(_) => "TagException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::DryRunOperation(_) => "DryRunOperationException",
            KmsError::Internal(_) => "KMSInternalException",
            KmsError::UnknownOperation(_) => "UnknownOperationException",
            KmsError::Serialization(_) => "SerializationException",
        }
    }

    /// The HTTP status AWS KMS answers this error with: 400 for the client's errors, 412 for a
    /// successful dry run, 500 for the service's own failures.
    pub fn status(&self) -> u16 {
        match self {
            KmsError::NotFound(_)
            | KmsError::Disabled(_)
            | KmsError::InvalidState(_)
            | KmsError::InvalidCiphertext(_)
            | KmsError::AccessDenied(_)
            | KmsError::Throttling(_)
            | KmsError::Validation(_)
            | KmsError::AlreadyExists(_)
            | KmsError::InvalidAliasName(_)
            | KmsError::InvalidKeyUsage(_)
            | KmsError::MalformedPolicyDocument(_)
            | KmsError::InvalidMarker(_)
            | KmsError::InvalidArn(_)
            | KmsError::Tag(_)
            | KmsError::UnsupportedOperation(_)
            | KmsError::IncorrectKey(_)
            | KmsError::LimitExceeded(_)
            | KmsError::UnknownOperation(_)
            | KmsError::Serialization(_) => 400,
            KmsError::DryRunOperation(_) => 412,
            KmsError::Internal(_) => 500,
        }
    }

    /// The message for the response body: what was wrong and where. Never secrets; for internal
    /// failures a generic text (the detail is in the server log).
    pub fn message(&self) -> String {
        match self {
            KmsError::Internal(_) => {
                "The key service had an internal error; the request can be retried. The server log has the detail under this request id."
                    .to_owned()
            }
            KmsError::NotFound(m)
            | KmsError::Disabled(m)
            | KmsError::InvalidState(m)
            | KmsError::InvalidCiphertext(m)
            | KmsError::AccessDenied(m)
            | KmsError::Throttling(m)
            | KmsError::Validation(m)
            | KmsError::AlreadyExists(m)
            | KmsError::InvalidAliasName(m)
            | KmsError::InvalidKeyUsage(m)
            | KmsError::MalformedPolicyDocument(m)
            | KmsError::InvalidMarker(m)
            | KmsError::InvalidArn(m)
            | KmsError::Tag(m)
            | KmsError::UnsupportedOperation(m)
            | KmsError::IncorrectKey(m)
            | KmsError::LimitExceeded(m)
            | KmsError::DryRunOperation(m)
            | KmsError::UnknownOperation(m)
            | KmsError::Serialization(m) => m.clone(),
        }
    }

    /// A service failure: logs the detail once, here, and keeps it out of the client's message.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> KmsError {
        let detail = detail.to_string();
        tracing::error!(error = %detail, "key service internal error");
        KmsError::Internal(detail)
    }

    /// `1 validation error detected: …` in the words AWS uses.
    pub(crate) fn validation(field: &str, value: impl std::fmt::Display, constraint: &str) -> Self {
        KmsError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ))
    }

    /// A required request field was absent.
    pub(crate) fn missing(field: &str) -> Self {
        KmsError::Validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    }
}

impl From<coffer_store::StoreError> for KmsError {
    fn from(err: coffer_store::StoreError) -> Self {
        KmsError::internal(format_args!("metadata store: {err}"))
    }
}

impl From<coffer_crypto::CryptoError> for KmsError {
    fn from(err: coffer_crypto::CryptoError) -> Self {
        KmsError::internal(format_args!("crypto: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<KmsError> {
        let m = || "m".to_owned();
        vec![
            KmsError::NotFound(m()),
            KmsError::Disabled(m()),
            KmsError::InvalidState(m()),
            KmsError::InvalidCiphertext(m()),
            KmsError::AccessDenied(m()),
            KmsError::Throttling(m()),
            KmsError::Validation(m()),
            KmsError::AlreadyExists(m()),
            KmsError::InvalidAliasName(m()),
            KmsError::InvalidKeyUsage(m()),
            KmsError::MalformedPolicyDocument(m()),
            KmsError::InvalidMarker(m()),
            KmsError::InvalidArn(m()),
            KmsError::Tag(m()),
            KmsError::UnsupportedOperation(m()),
            KmsError::IncorrectKey(m()),
            KmsError::LimitExceeded(m()),
            KmsError::DryRunOperation(m()),
            KmsError::Internal(m()),
            KmsError::UnknownOperation(m()),
            KmsError::Serialization(m()),
        ]
    }

    #[test]
    fn every_error_type_is_distinct_and_ends_like_an_aws_type() {
        let types: Vec<_> = all().iter().map(KmsError::error_type).collect();
        let unique: std::collections::HashSet<_> = types.iter().collect();
        assert_eq!(unique.len(), types.len());
        assert!(types.iter().all(|t| t.ends_with("Exception")));
    }

    #[test]
    fn only_internal_errors_are_500_and_only_dry_run_is_412() {
        for e in all() {
            let expected = match e {
                KmsError::Internal(_) => 500,
                KmsError::DryRunOperation(_) => 412,
                _ => 400,
            };
            assert_eq!(e.status(), expected, "{}", e.error_type());
        }
    }

    #[test]
    fn internal_detail_stays_out_of_the_client_message() {
        let e = KmsError::Internal("redb: /secret/path failed".into());
        assert!(!e.message().contains("/secret/path"));
        assert_eq!(KmsError::NotFound("Key x".into()).message(), "Key x");
    }

    #[test]
    fn validation_messages_read_like_aws() {
        let e = KmsError::validation(
            "numberOfBytes",
            0,
            "Member must have value greater than or equal to 1",
        );
        assert_eq!(
            e.message(),
            "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        assert!(
            KmsError::missing("keyId")
                .message()
                .contains("Value null at 'keyId'")
        );
    }
}
