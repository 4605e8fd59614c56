//! How S3 reaches a key service: a typed trait (no JSON), so that a remote AWS-KMS-API endpoint
//! can take the built-in KMS's place, and its implementation over the built-in
//! [`coffer_kms::Kms`].
//!
//! Every call is made on behalf of the S3 caller (its principal, identity policies, source IP and
//! request id travel in the [`Caller`]): the key service authorizes and audits the caller, with
//! `kms:ViaService` telling its policies that S3 asked.

use std::collections::BTreeMap;

use coffer_crypto::Key256;
use coffer_kms::{AwsService, Caller, Kms, KmsError, ServiceRequest};

/// A data key from the key service.
pub struct DataKey {
    /// The key itself (zeroized on drop).
    pub plaintext: Key256,
    /// The same key encrypted under the KMS key: what the envelope stores.
    pub ciphertext: Vec<u8>,
    /// The full ARN of the KMS key.
    pub key_arn: String,
}

/// What S3 needs of a key service.
#[async_trait::async_trait]
pub trait KmsClient: Send + Sync {
    /// A fresh 256-bit data key under `key_id` (any form the KMS API accepts; `None` = the AWS
    /// managed key `aws/s3`) and `context`.
    async fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: Option<&str>,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError>;

    /// The data key in `ciphertext`, made under `context`; with the ARN of its KMS key.
    async fn decrypt(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<(Key256, String), KmsError>;

    /// The full ARN of `key_id` (`None` = the AWS managed key), to check a request's key before
    /// any data is read and to name it in responses.
    async fn resolve(&self, caller: &Caller, key_id: Option<&str>) -> Result<String, KmsError>;

    /// Changes whenever anything the key service decides by (a key's state, its policy, an
    /// alias) changes: a Bucket Key is reused only while it stays the same.
    fn generation(&self) -> u64;
}

#[async_trait::async_trait]
impl KmsClient for Kms {
    async fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: Option<&str>,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        let req = ServiceRequest {
            caller,
            service: AwsService::S3,
        };
        let key = self.generate_data_key_for(&req, key_id, context).await?;
        Ok(DataKey {
            plaintext: key.plaintext,
            ciphertext: key.ciphertext,
            key_arn: key.key_arn,
        })
    }

    async fn decrypt(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<(Key256, String), KmsError> {
        let req = ServiceRequest {
            caller,
            service: AwsService::S3,
        };
        self.decrypt_for(&req, ciphertext, context).await
    }

    async fn resolve(&self, caller: &Caller, key_id: Option<&str>) -> Result<String, KmsError> {
        let req = ServiceRequest {
            caller,
            service: AwsService::S3,
        };
        self.resolve_for(&req, key_id).await
    }

    fn generation(&self) -> u64 {
        Kms::generation(self)
    }
}
