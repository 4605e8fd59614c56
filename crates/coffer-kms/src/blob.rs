//! The KMS ciphertext blob (DESIGN §3) and the canonical encryption context: what Encrypt,
//! GenerateDataKey and ReEncrypt return, and what Decrypt reads back. Pure functions over bytes.
//!
//! Frozen format v1 (drawn byte by byte in `docs/kms-format.md`):
//!
//! ```text
//! offset  len  field
//!      0    1  format version = 0x01
//!      1   16  key id: the KMS key's UUID, 16 raw bytes (RFC 9562 byte order)
//!     17    4  key version, u32 big-endian (1 = the material the key was created with)
//!     21   16  salt: random, per blob
//!     37   12  nonce: random, per blob
//!     49    n  AES-256-GCM ciphertext of the n plaintext bytes
//!   49+n   16  AES-256-GCM tag
//! ```
//!
//! The cipher key of one blob is `HKDF-SHA256(ikm = key version material, salt = salt,
//! info = "coffer kms blob v1" ‖ bytes 0..21)`, so every blob has its own AES key: the 2^32 limit
//! of random GCM nonces per key (NIST SP 800-38D §8.3) never applies to a busy KMS key, and the
//! header (format, key id, version) is bound to the ciphertext. The AAD is the canonical encryption
//! context, exactly as DESIGN §3 says: for each pair in ascending byte order of the key,
//! `u32be(len(key)) ‖ key ‖ u32be(len(value)) ‖ value` (UTF-8); the empty context is the empty AAD.
//!
//! Nothing here may panic on untrusted input: a short, altered or foreign blob is an error, never an
//! index out of bounds. Changing any constant below makes every stored blob undecryptable: add a new
//! format version instead and keep reading this one.

use std::collections::BTreeMap;

use coffer_crypto::{CryptoError, Key256, derive_key, open_bytes, random_array, seal_bytes};
use uuid::Uuid;
use zeroize::Zeroizing;

/// An encryption context: non-secret key/value pairs bound to a ciphertext. Sorted by key, which is
/// the canonical order.
pub type EncryptionContext = BTreeMap<String, String>;

/// Format version byte of blobs written by this build. DO NOT CHANGE (see the module doc).
pub const BLOB_FORMAT_V1: u8 = 0x01;
/// Length of the key id field: a UUID as 16 raw bytes. Frozen format v1.
const KEY_ID_LEN: usize = 16;
/// Length of the header (version ‖ key id ‖ key version); these bytes are bound into the cipher key.
const HEADER_LEN: usize = 1 + KEY_ID_LEN + 4;
/// Length of the per-blob HKDF salt. Frozen format v1.
const SALT_LEN: usize = 16;
/// Length of the AES-GCM nonce inside the sealed part. Frozen format v1.
const NONCE_LEN: usize = 12;
/// Bytes a blob adds to its plaintext.
pub const BLOB_OVERHEAD: usize = HEADER_LEN + SALT_LEN + NONCE_LEN + coffer_crypto::TAG_LEN;
/// HKDF info prefix of the per-blob key. DO NOT CHANGE: frozen format v1.
const BLOB_KEY_INFO: &[u8] = b"coffer kms blob v1";

/// What a blob's header says: which key and which version of its material sealed it. Not yet
/// authenticated: only a successful [`open`] proves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHeader {
    /// The KMS key id.
    pub key_id: Uuid,
    /// The key version (material) number, from 1.
    pub version: u32,
}

/// Reads the header of a blob; `None` if the bytes cannot be a v1 blob (wrong version byte, too
/// short to hold header, salt, nonce and tag).
pub fn header(blob: &[u8]) -> Option<BlobHeader> {
    if blob.len() < BLOB_OVERHEAD || blob[0] != BLOB_FORMAT_V1 {
        return None;
    }
    let key_id: [u8; KEY_ID_LEN] = blob[1..1 + KEY_ID_LEN].try_into().ok()?;
    let version: [u8; 4] = blob[1 + KEY_ID_LEN..HEADER_LEN].try_into().ok()?;
    Some(BlobHeader {
        key_id: Uuid::from_bytes(key_id),
        version: u32::from_be_bytes(version),
    })
}

/// Encrypts `plaintext` under one version of a KMS key, bound to `context`.
pub fn seal(
    material: &Key256,
    key_id: Uuid,
    version: u32,
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<Vec<u8>, CryptoError> {
    let mut head = [0u8; HEADER_LEN];
    head[0] = BLOB_FORMAT_V1;
    head[1..1 + KEY_ID_LEN].copy_from_slice(key_id.as_bytes());
    head[1 + KEY_ID_LEN..].copy_from_slice(&version.to_be_bytes());
    let salt: [u8; SALT_LEN] = random_array()?;
    let cipher_key = blob_key(material, &head, &salt);
    let sealed = seal_bytes(&cipher_key, plaintext, &canonical_context(context))?;
    let mut out = Vec::with_capacity(HEADER_LEN + SALT_LEN + sealed.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts a blob whose header named `material`'s key and version; fails unless the blob is intact
/// and `context` is the one it was sealed with.
pub fn open(
    material: &Key256,
    blob: &[u8],
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if header(blob).is_none() {
        return Err(CryptoError::Malformed(
            "not a version 1 KMS ciphertext blob",
        ));
    }
    let (head, rest) = blob.split_at(HEADER_LEN);
    let (salt, sealed) = rest.split_at(SALT_LEN);
    let cipher_key = blob_key(material, head, salt);
    open_bytes(&cipher_key, sealed, &canonical_context(context))
}

/// The per-blob AES key: HKDF(material, salt, info ‖ header).
fn blob_key(material: &Key256, head: &[u8], salt: &[u8]) -> Key256 {
    let mut info = [0u8; BLOB_KEY_INFO.len() + HEADER_LEN];
    info[..BLOB_KEY_INFO.len()].copy_from_slice(BLOB_KEY_INFO);
    info[BLOB_KEY_INFO.len()..].copy_from_slice(head);
    derive_key(material, salt, &info)
}

/// The AAD of a blob: every pair in key order, each key and value prefixed by its length
/// (u32 big-endian). Injective, so two different contexts never give the same AAD.
pub fn canonical_context(context: &EncryptionContext) -> Vec<u8> {
    let len = context.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(len);
    for (k, v) in context {
        for part in [k, v] {
            let part_len =
                u32::try_from(part.len()).expect("request bodies are far smaller than 4 GiB");
            out.extend_from_slice(&part_len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn material() -> Key256 {
        Key256::from_bytes([0x42; 32])
    }

    const ID: Uuid = Uuid::from_u128(0x1234abcd_12ab_34cd_56ef_1234567890ab);

    #[test]
    fn layout_matches_the_documented_format() {
        let blob = seal(&material(), ID, 7, b"hello", &ctx(&[])).unwrap();
        assert_eq!(blob.len(), BLOB_OVERHEAD + 5);
        assert_eq!(BLOB_OVERHEAD, 65);
        assert_eq!(blob[0], 0x01);
        assert_eq!(&blob[1..17], ID.as_bytes());
        assert_eq!(&blob[17..21], &[0, 0, 0, 7]);
        assert_eq!(
            header(&blob),
            Some(BlobHeader {
                key_id: ID,
                version: 7
            })
        );
    }

    #[test]
    fn blob_round_trips_under_its_context() {
        let c = ctx(&[("aws:s3:arn", "arn:aws:s3:::b/k"), ("purpose", "test")]);
        let blob = seal(&material(), ID, 1, b"secret", &c).unwrap();
        assert_eq!(open(&material(), &blob, &c).unwrap().as_slice(), b"secret");
    }

    #[test]
    fn blob_under_another_context_does_not_open() {
        let blob = seal(&material(), ID, 1, b"secret", &ctx(&[("a", "1")])).unwrap();
        for other in [ctx(&[]), ctx(&[("a", "2")]), ctx(&[("a", "1"), ("b", "")])] {
            assert_eq!(
                open(&material(), &blob, &other).unwrap_err(),
                CryptoError::Authentication
            );
        }
    }

    #[test]
    fn blob_under_another_key_does_not_open() {
        let blob = seal(&material(), ID, 1, b"secret", &ctx(&[])).unwrap();
        let other = Key256::from_bytes([0x43; 32]);
        assert!(open(&other, &blob, &ctx(&[])).is_err());
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let blob = seal(&material(), ID, 1, b"some plaintext", &ctx(&[])).unwrap();
        for len in 0..blob.len() {
            assert!(
                open(&material(), &blob[..len], &ctx(&[])).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let blob = seal(&material(), ID, 1, b"abc", &ctx(&[("k", "v")])).unwrap();
        for i in 0..blob.len() {
            let mut altered = blob.clone();
            altered[i] ^= 0x01;
            assert!(
                open(&material(), &altered, &ctx(&[("k", "v")])).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn header_rejects_unknown_format_versions_and_short_input() {
        let mut blob = seal(&material(), ID, 1, b"x", &ctx(&[])).unwrap();
        assert!(header(&blob[..BLOB_OVERHEAD - 1]).is_none());
        blob[0] = 0x02;
        assert!(header(&blob).is_none());
        assert!(header(&[]).is_none());
    }

    #[test]
    fn each_blob_gets_fresh_salt_and_nonce() {
        let a = seal(&material(), ID, 1, b"same", &ctx(&[])).unwrap();
        let b = seal(&material(), ID, 1, b"same", &ctx(&[])).unwrap();
        assert_ne!(a[21..49], b[21..49]);
    }

    #[test]
    fn canonical_context_is_sorted_and_length_prefixed() {
        let c = ctx(&[("b", "2"), ("a", "1")]);
        assert_eq!(
            canonical_context(&c),
            b"\0\0\0\x01a\0\0\0\x011\0\0\0\x01b\0\0\0\x012".to_vec()
        );
        assert!(canonical_context(&ctx(&[])).is_empty());
    }

    #[test]
    fn canonical_context_cannot_be_confused_by_moving_bytes_between_fields() {
        assert_ne!(
            canonical_context(&ctx(&[("a", "bc")])),
            canonical_context(&ctx(&[("ab", "c")]))
        );
        assert_ne!(
            canonical_context(&ctx(&[("a", ""), ("b", "")])),
            canonical_context(&ctx(&[("a", "\0\0\0\x01b\0\0\0\0")]))
        );
    }

    proptest! {
        #[test]
        fn any_plaintext_and_context_round_trip(
            plaintext in proptest::collection::vec(any::<u8>(), 1..512),
            pairs in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..5),
            version in 1u32..,
        ) {
            let blob = seal(&material(), ID, version, &plaintext, &pairs).unwrap();
            prop_assert_eq!(header(&blob).unwrap().version, version);
            let opened = open(&material(), &blob, &pairs).unwrap();
            prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = header(&bytes);
            prop_assert!(open(&material(), &bytes, &ctx(&[])).is_err());
        }
    }
}
