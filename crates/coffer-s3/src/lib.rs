//! The S3 API of Coffer: the `s3s` adapter that maps S3 operations onto the encrypting
//! object pipelines, plus the thin HTTP front layer that owns request ids, error bodies and
//! the admin surface.
//!
//! This crate decides *how* an object is encrypted (SSE header rules, key choice) and drives
//! `coffer-crypto` and `coffer-store`; it never touches a cipher primitive itself and never
//! writes a byte of object data except through the blob store.

mod auth;
mod authz;
mod binding;
mod bucket;
mod bucket_encryption;
mod bucket_policy;
mod checksum;
mod conditional;
mod copy;
mod cors;
mod document;
mod encryption;
mod error;
mod form;
#[cfg(test)]
mod hostile_input;
mod iam_api;
mod keyring;
mod kms_api;
mod list;
mod metadata;
mod multipart;
mod object;
mod pipeline;
mod post_object;
mod post_policy;
mod route;
mod server;
mod service;
mod sigv2;
mod sigv4;
mod upgrade;
mod users;

pub use auth::{Account, Credentials, Principal};
pub use binding::RecordMac;
pub use encryption::KmsClient;
pub use iam_api::IamFront;
pub use keyring::{KeyringError, ServiceKeyRing};
pub use kms_api::{Connection, KmsFront};
pub use server::{ConnectionService, Frontend, FrontendConfig};
pub use service::{Coffer, CofferParts};
pub use upgrade::{UpgradeError, sign_bucket_records, upgrade_records};
pub use users::{
    AccessKey, FULL_ACCESS_POLICY, MIGRATED_POLICY_NAME, UserError, UserRecord, Users,
    generate_key_pair,
};
