//! Coffer's built-in key management service (DESIGN §3, §6): customer managed keys with
//! versions, aliases, states and scheduled deletion, key policies, the KMS ciphertext blob,
//! data keys bound to an encryption context, request quotas, and the MAC-chained, anchored
//! audit log.
//!
//! This crate speaks the AWS KMS JSON request and response shapes (`Kms::handle`), but no
//! HTTP and no SigV4: the server authenticates the caller and hands over a `Caller`.
//! Key material is sealed under the root key before it reaches the store, zeroized on drop,
//! and never logged, audited or printed.
//!
//! Map: `service.rs` (the [`Kms`] handle: open, dispatch, policy, audit, due tasks) in front of one
//! file per family of operations (`keys.rs`, `aliases.rs`, `crypto.rs`, `rotation.rs`,
//! `lifecycle.rs`, `key_policy.rs`); `for_services.rs` is the typed API AWS services (S3) call on
//! their callers' behalf, with the AWS managed keys (`alias/aws/<service>`) it creates on first
//! use; `router.rs` is the table of operations; `blob.rs` the ciphertext format; `store.rs` the
//! sealed records; `trail.rs` the CloudTrail events; `audit/` and `throttle.rs` the log and the
//! quotas; `refusals.rs` the aggregation of requests refused before authentication. The policy
//! language is the `coffer-policy` crate.

pub mod audit;
pub mod throttle;

mod aliases;
mod blob;
mod clock;
mod crypto;
mod error;
mod for_services;
mod ids;
mod key_policy;
mod keys;
mod lifecycle;
mod model;
mod refusals;
mod rotation;
mod router;
mod service;
mod store;
mod trail;
mod wire;

#[cfg(test)]
mod testing;

pub use clock::{Clock, OffsetClock, SystemClock};
pub use error::KmsError;
pub use for_services::{AwsService, DataKey, ServiceCalls, ServiceRequest};
pub use service::Kms;
pub use trail::{RefusedCall, audit_log_recovered};

/// Default region of ARNs, as `coffer serve --region` defaults (DESIGN §1).
pub const DEFAULT_REGION: &str = "us-east-1";
/// Default account id of ARNs and principals: the example account of the AWS documentation, so
/// policies copied from it work unchanged. Deployments may set their own.
pub const DEFAULT_ACCOUNT_ID: &str = "111122223333";

/// What the key service needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct KmsConfig {
    /// Region in every ARN (`arn:aws:kms:<region>:…`).
    pub region: String,
    /// Twelve-digit account id that owns every key and every principal.
    pub account_id: String,
    /// Request-rate quotas per operation class (0 = unlimited).
    pub quotas: throttle::QuotaConfig,
}

impl Default for KmsConfig {
    /// [`DEFAULT_REGION`], [`DEFAULT_ACCOUNT_ID`], the default quotas.
    fn default() -> Self {
        KmsConfig {
            region: DEFAULT_REGION.to_owned(),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            quotas: throttle::QuotaConfig::default(),
        }
    }
}

/// Who made a request, as the server authenticated it (SigV4 over the access key).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The access key id that signed the request.
    pub access_key: String,
    /// `arn:aws:iam::<account>:root` for the root key pair, `arn:aws:iam::<account>:user/<name>`
    /// for the others: the principal key policies name.
    pub principal_arn: String,
    /// Client address, for `aws:SourceIp` and the audit log.
    pub source_ip: String,
    /// The `User-Agent` header, for the audit log.
    pub user_agent: Option<String>,
    /// The request id the server answers with; the audit event carries it.
    pub request_id: String,
    /// Whether the request came over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
    /// The caller's IAM side: the root user, or a user and its identity policies. A key policy
    /// statement naming the account applies to a user only as far as these allow.
    pub identity: coffer_policy::Identity,
}
