//! The S3 API of Coffer: the `s3s` adapter that maps S3 operations onto the encrypting
//! object pipelines, plus the thin HTTP front layer that owns request ids, error bodies and
//! the admin surface.
//!
//! This crate decides *how* an object is encrypted (SSE header rules, key choice) and drives
//! `coffer-crypto` and `coffer-store`; it never touches a cipher primitive itself and never
//! writes a byte of object data except through the blob store.

mod auth;
mod bucket;
mod checksum;
mod conditional;
mod copy;
mod document;
mod error;
mod form;
mod keyring;
mod kms_api;
mod list;
mod metadata;
mod multipart;
mod object;
mod pipeline;
mod post_object;
mod post_policy;
mod server;
mod service;
mod sigv4;
mod sse;

pub use auth::{Credentials, Principal, User, UserError, add_user, generate_key_pair, load_users};
pub use keyring::{KeyringError, ServiceKeyRing};
pub use kms_api::{Connection, KmsFront};
pub use post_object::PostObjectConfig;
pub use server::{ConnectionService, Frontend, FrontendConfig};
pub use service::Coffer;
