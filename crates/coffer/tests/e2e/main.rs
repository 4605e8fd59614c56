//! Coffer's end-to-end tests, in one test binary so that the workspace links it once: each
//! module starts the real `coffer` binary (see `common::TestServer`) and drives it over real
//! sockets with `aws-sdk-s3`, `aws-sdk-kms` or raw signed HTTP. `harness` checks the harness
//! itself; `tidy` checks the source tree.

mod common;

mod auth;
mod bench_tools;
mod bucket_policy;
mod buckets;
mod checksums;
mod chunked;
mod conditional;
mod copy;
mod cors;
mod durability;
mod encryption;
mod fixtures;
mod harness;
mod hostile_input;
mod kms_aliases;
mod kms_audit;
mod kms_audit_anchor;
mod kms_crypto;
mod kms_keys;
mod kms_lifecycle;
mod kms_policy;
mod kms_rotation;
mod kms_transport;
mod list;
mod multipart;
mod objects;
mod post_object;
mod ranges;
mod record_binding;
mod sigv2;
mod sse_c;
mod sse_kms;
mod startup;
mod tidy;
mod users;
