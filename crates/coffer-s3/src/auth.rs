//! Access keys: who may sign requests. `s3s` verifies SigV4 (headers, presigned URLs,
//! aws-chunked signatures) against the secret this module returns for an access key.
//!
//! Secrets are never logged or printed; an unknown access key is `InvalidAccessKeyId`.

use std::collections::HashMap;

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

/// The access keys this server accepts, with their secrets.
#[derive(Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, SecretKey>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Credentials with one key pair (the root pair).
    pub fn single(access_key: &str, secret_key: &str) -> Credentials {
        let mut keys = HashMap::new();
        keys.insert(
            access_key.to_owned(),
            SecretKey::from(secret_key.to_owned()),
        );
        Credentials { keys }
    }
}

#[async_trait::async_trait]
impl S3Auth for Credentials {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.keys.get(access_key).cloned().ok_or_else(|| {
            s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )
        })
    }
}
