//! User metadata (`x-amz-meta-*`) at rest: size limit, and sealing under a per-object key.
//!
//! S3 stores user metadata in the clear; Coffer seals it (DESIGN §4) under a key derived from
//! the current SSE-S3 service key and a random per-object salt, so HEAD never needs a KMS call.
//! Sealed form (frozen): service key version (u32 BE) ‖ salt (16) ‖ nonce ‖ ct ‖ tag. Records of
//! format v2 bind it to its object version ([`binding::metadata_aad`]); v1 records used a
//! constant AAD, read only to upgrade them ([`open_legacy`]).

use coffer_crypto::Key256;
use s3s::dto::Metadata;
use s3s::{S3Error, S3Result};

use crate::binding::{self, ObjectId};
use crate::error::api_error;
use crate::error::crypto_error;
use crate::keyring::ServiceKeyRing;

/// S3's limit on the user-defined metadata of one object: keys plus values, in bytes.
pub const MAX_USER_METADATA: usize = 2 * 1024;
const SALT_LEN: usize = 16;
const INFO: &[u8] = b"coffer metadata v1";
/// AAD of metadata sealed in record format v1. Frozen; read only by the upgrade.
const LEGACY_AAD: &[u8] = b"coffer user metadata v1";

/// Rejects metadata over S3's 2 KiB limit with `MetadataTooLarge`.
pub fn check_size(meta: Option<&Metadata>) -> S3Result<()> {
    let size: usize = meta.map_or(0, |m| m.iter().map(|(k, v)| k.len() + v.len()).sum());
    if size > MAX_USER_METADATA {
        return Err(api_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size: {size} bytes, the limit is {MAX_USER_METADATA}"
        ));
    }
    Ok(())
}

/// Seals the metadata map of object version `id`; `None` when there is none.
pub fn seal(
    ring: &ServiceKeyRing,
    meta: Option<&Metadata>,
    id: &ObjectId<'_>,
) -> S3Result<Option<Vec<u8>>> {
    let Some(meta) = meta.filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    let version = ring.current_version();
    let service_key = ring
        .get(version)
        .expect("invariant: the current version is always in the ring");
    let salt: [u8; SALT_LEN] = coffer_crypto::random_array().map_err(crypto_error)?;
    let key = coffer_crypto::derive_key(&service_key, &salt, INFO);
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(meta).map_err(|e| crate::error::internal("metadata encode", e))?,
    );
    let sealed =
        coffer_crypto::seal_bytes(&key, &json, &binding::metadata_aad(id)).map_err(crypto_error)?;
    let mut out = Vec::with_capacity(4 + SALT_LEN + sealed.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&sealed);
    Ok(Some(out))
}

/// Opens the sealed metadata of object version `id`. Metadata that does not open (altered, or
/// sealed for another object) is a server fault (`InternalError`).
pub fn open(
    ring: &ServiceKeyRing,
    sealed: Option<&[u8]>,
    id: &ObjectId<'_>,
) -> S3Result<Option<Metadata>> {
    open_with(ring, sealed, &binding::metadata_aad(id))
}

/// Opens metadata sealed in record format v1 (for the upgrade only).
pub fn open_legacy(ring: &ServiceKeyRing, sealed: Option<&[u8]>) -> S3Result<Option<Metadata>> {
    open_with(ring, sealed, LEGACY_AAD)
}

fn open_with(
    ring: &ServiceKeyRing,
    sealed: Option<&[u8]>,
    aad: &[u8],
) -> S3Result<Option<Metadata>> {
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    if sealed.len() < 4 + SALT_LEN {
        return Err(corrupt());
    }
    let version = u32::from_be_bytes([sealed[0], sealed[1], sealed[2], sealed[3]]);
    let service_key: Key256 = ring.get(version).ok_or_else(corrupt)?;
    let key = coffer_crypto::derive_key(&service_key, &sealed[4..4 + SALT_LEN], INFO);
    let json =
        coffer_crypto::open_bytes(&key, &sealed[4 + SALT_LEN..], aad).map_err(|_| corrupt())?;
    let meta: Metadata = serde_json::from_slice(&json).map_err(|_| corrupt())?;
    Ok(Some(meta))
}

fn corrupt() -> S3Error {
    tracing::error!("sealed user metadata of an object does not open");
    api_error!(
        InternalError,
        "We encountered an internal error. Please try again."
    )
}
