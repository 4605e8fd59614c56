//! Coffer's built-in key management service (DESIGN §3, §6): customer managed keys with
//! versions, aliases, states and scheduled deletion, key policies, the KMS ciphertext blob,
//! data keys bound to an encryption context, request quotas, and the hash-chained audit log.
//!
//! This crate speaks the AWS KMS JSON request and response shapes (`Kms::handle`), but no
//! HTTP and no SigV4: the server authenticates the caller and hands over a `Caller`.
//! Key material is sealed under the root key before it reaches the store, zeroized on drop,
//! and never logged, audited or printed.

pub mod audit;
pub mod policy;
pub mod throttle;
