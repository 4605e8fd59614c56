//! Coffer's cipher layer: zeroized key types, the segmented AES-256-GCM stream that every object is
//! stored in (one layer, or two for DSSE-KMS), key wrapping, sealing of small records, and HKDF.
//!
//! This is the only crate that touches cipher primitives (DESIGN §2, §4). Everything here is a pure
//! function over bytes: it must never do I/O, log, or hand out key bytes except through
//! [`Key256::expose_secret`], so that every place a key leaves this crate is easy to find in review.

mod ct;
mod digest;
mod error;
mod gcm;
mod kdf;
mod key;
mod md5;
mod outer;
mod seal;
mod segment;
mod stream;
#[cfg(test)]
mod test_vectors;

pub use ct::ct_eq;
pub use digest::{hmac_sha1, hmac_sha256, sha256};
pub use error::CryptoError;
pub use kdf::{PART_SALT_LEN, derive_key, derive_part_key};
pub use key::{Key256, random_array, random_bytes};
pub use md5::Md5;
pub use seal::{WRAPPED_KEY_LEN, open_bytes, seal_bytes, unwrap_key, wrap_key};
pub use segment::{
    FORMAT_VERSION, NONCE_PREFIX_LEN, SEALED_SEGMENT_SIZE, SEGMENT_SIZE, SegmentCipher, TAG_LEN,
    sealed_len, segment_count,
};
pub use stream::{StreamCipher, StreamKind};
