//! The outer layer of a dual-layer (DSSE) stream: the STREAM segment construction of
//! `segment.rs` again, under a second, independent data key, computed by a second, independent
//! AES-GCM implementation — RustCrypto's `aes-gcm` instead of aws-lc (DESIGN §4), so that one
//! implementation's bug cannot expose the plaintext on its own.
//!
//! This is the only module that touches RustCrypto's AES-GCM. It seals and opens *inner-sealed*
//! segments (ciphertext ‖ inner tag, built by [`crate::SegmentCipher`]); it must never be used on
//! its own as a single layer over plaintext, and it builds the outer nonces and AAD, which nothing
//! else may. Callers reach it only through [`crate::StreamCipher`].
//!
//! **Frozen format (DSSE stream v1).** Outer segment `i` of a stream is
//! `AES-256-GCM(outer_key, outer_nonce_i, outer_aad, inner_sealed_i)`, with
//!
//! ```text
//! outer_nonce_i = nonce_prefix (7) ‖ i (u32 BE)
//!                 ‖ (OUTER_LAYER_MARK | last) (1 byte: 0x02, or 0x03 on the final segment)
//! outer_aad     = "coffer dsse outer layer" (23 ASCII bytes) ‖ FORMAT_VERSION (1)
//!                 ‖ SEGMENT_SIZE (u32 BE) ‖ len(stream_id) (u16 BE) ‖ stream_id
//! ```
//!
//! Why this nonce: nonce uniqueness in GCM is per key, and the outer key is independent of the
//! inner one, so reusing the inner nonce would already be safe. The mark makes the layers
//! separable even if that assumption broke: were both layers ever sealed under the *same* key with
//! the *same* nonce, the second CTR pass would cancel the first and write the plaintext to disk.
//! With the mark, every outer nonce differs from every inner nonce of the stream (inner nonces end
//! in 0x00 or 0x01), so no counter block is ever shared between the layers; and
//! [`crate::StreamCipher::dual`] refuses equal keys besides. The `last` flag and index keep the
//! STREAM properties (truncation, reordering and extension detected) in this layer too.
//!
//! Why this AAD: it starts with a label no inner AAD can start with (inner AADs start with
//! `FORMAT_VERSION` = 0x01), so an outer segment can never be taken for an inner one, nor the
//! other way round, even under one key; the rest binds the stream id as the inner AAD does.

use std::fmt;

use aes_gcm::aead::{Nonce, Tag};
use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};

use crate::gcm::NONCE_LEN;
use crate::segment::segment_nonce;
use crate::{
    CryptoError, FORMAT_VERSION, Key256, NONCE_PREFIX_LEN, SEALED_SEGMENT_SIZE, SEGMENT_SIZE,
    TAG_LEN,
};

/// First bytes of every outer segment's AAD. DO NOT CHANGE: frozen format (DSSE stream v1);
/// every stored outer tag authenticates it.
const OUTER_AAD_LABEL: &[u8] = b"coffer dsse outer layer";

/// Set in the last nonce byte of every outer segment (the inner layer uses only bit 0, for
/// `last`). DO NOT CHANGE: frozen format (DSSE stream v1).
const OUTER_LAYER_MARK: u8 = 0x02;

/// Outer nonce of segment `index`: the inner nonce with [`OUTER_LAYER_MARK`] set in its last
/// byte. Frozen format (DSSE stream v1).
pub(crate) fn outer_nonce(
    prefix: &[u8; NONCE_PREFIX_LEN],
    index: u32,
    last: bool,
) -> [u8; NONCE_LEN] {
    let mut nonce = segment_nonce(prefix, index, last);
    nonce[NONCE_LEN - 1] |= OUTER_LAYER_MARK;
    nonce
}

/// AAD of every outer segment of a stream: `OUTER_AAD_LABEL ‖ FORMAT_VERSION ‖ SEGMENT_SIZE
/// (u32 BE) ‖ len(stream_id) (u16 BE) ‖ stream_id`. Frozen format (DSSE stream v1).
fn outer_aad(stream_id: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let id_len = u16::try_from(stream_id.len())
        .map_err(|_| CryptoError::Malformed("a stream id must be at most 65535 bytes"))?;
    let segment_size = u32::try_from(SEGMENT_SIZE).expect("SEGMENT_SIZE fits in the u32 AAD field");
    let mut aad = Vec::with_capacity(OUTER_AAD_LABEL.len() + 1 + 4 + 2 + stream_id.len());
    aad.extend_from_slice(OUTER_AAD_LABEL);
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(&segment_size.to_be_bytes());
    aad.extend_from_slice(&id_len.to_be_bytes());
    aad.extend_from_slice(stream_id);
    Ok(aad)
}

/// Binds a key for RustCrypto's AES-256-GCM. Its expanded key is wiped on drop (the crate's
/// `zeroize` feature).
fn cipher_key(key: &Key256) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.expose_secret())
        .expect("a Key256 is exactly the 32 bytes AES-256-GCM takes")
}

/// Encrypts `buf` in place under RustCrypto's AES-256-GCM and returns the 16-byte tag.
fn seal(
    key: &Aes256Gcm,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], CryptoError> {
    let tag = key
        .encrypt_inout_detached(&Nonce::<Aes256Gcm>::from(nonce), aad, buf.into())
        .map_err(|_| CryptoError::Malformed("plaintext is too long for AES-256-GCM"))?;
    Ok(tag.into())
}

/// Verifies and decrypts `buf` (ciphertext ‖ tag) in place under RustCrypto's AES-256-GCM;
/// returns the plaintext prefix. The tag is compared in constant time (by the crate); on failure
/// nothing is decrypted.
fn open<'a>(
    key: &Aes256Gcm,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    buf: &'a mut [u8],
) -> Result<&'a mut [u8], CryptoError> {
    let Some(body_len) = buf.len().checked_sub(TAG_LEN) else {
        return Err(CryptoError::Malformed(
            "a sealed segment is shorter than its tag",
        ));
    };
    let (body, tag) = buf.split_at_mut(body_len);
    let tag = Tag::<Aes256Gcm>::try_from(&*tag).expect("the tag slice is exactly TAG_LEN bytes");
    key.decrypt_inout_detached(&Nonce::<Aes256Gcm>::from(nonce), aad, body.into(), &tag)
        .map_err(|_| CryptoError::Authentication)?;
    Ok(body)
}

/// Largest outer plaintext: one inner-sealed full segment.
const MAX_INNER_SEALED: usize = SEALED_SEGMENT_SIZE;

/// Seals and opens the outer layer of one dual-layer stream. Build one per stream.
pub(crate) struct OuterCipher {
    key: Aes256Gcm,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    aad: Vec<u8>,
}

impl OuterCipher {
    /// The outer layer of the stream `stream_id` (the same id and nonce prefix as its inner layer).
    pub(crate) fn new(
        key: &Key256,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        stream_id: &[u8],
    ) -> Result<OuterCipher, CryptoError> {
        Ok(OuterCipher {
            key: cipher_key(key),
            nonce_prefix,
            aad: outer_aad(stream_id)?,
        })
    }

    /// Seals the inner-sealed segment `buf[from..]` in place and appends the outer tag. The inner
    /// layer has already checked the segment's shape; this checks only its length.
    pub(crate) fn seal_tail(
        &self,
        index: u32,
        last: bool,
        buf: &mut Vec<u8>,
        from: usize,
    ) -> Result<(), CryptoError> {
        let Some(inner_sealed) = buf.get_mut(from..) else {
            return Err(CryptoError::Malformed("segment start is past the buffer"));
        };
        if inner_sealed.len() < TAG_LEN || inner_sealed.len() > MAX_INNER_SEALED {
            return Err(CryptoError::Malformed(
                "the outer layer seals one inner-sealed segment",
            ));
        }
        let nonce = outer_nonce(&self.nonce_prefix, index, last);
        let tag = seal(&self.key, nonce, &self.aad, inner_sealed)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Verifies and removes the outer layer of one segment in place; returns the inner-sealed
    /// segment, a prefix of `buf`.
    pub(crate) fn open_segment<'a>(
        &self,
        index: u32,
        last: bool,
        buf: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let nonce = outer_nonce(&self.nonce_prefix, index, last);
        open(&self.key, nonce, &self.aad, buf)
    }
}

impl fmt::Debug for OuterCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OuterCipher")
            .field("nonce_prefix", &self.nonce_prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{gcm, test_vectors};

    /// Known answers from "The Galois/Counter Mode of Operation (GCM)", McGrew and Viega, 2005,
    /// Appendix B, Test Cases 13–16 (AES-256); the spec NIST SP 800-38D cites. The same file the
    /// aws-lc path (`gcm.rs`) is checked against.
    const VECTORS: &str = include_str!("../testdata/aes-256-gcm-mcgrew-viega.txt");

    struct Case {
        name: String,
        key: Key256,
        nonce: [u8; NONCE_LEN],
        aad: Vec<u8>,
        plaintext: Vec<u8>,
        /// Ciphertext ‖ tag.
        sealed: Vec<u8>,
    }

    fn cases() -> Vec<Case> {
        test_vectors::parse(VECTORS)
            .into_iter()
            .map(|v| Case {
                name: v.name(),
                key: Key256::from_slice(&v.hex("Key")).unwrap(),
                nonce: v.hex("IV").try_into().unwrap(),
                aad: v.hex("AAD"),
                plaintext: v.hex("PT"),
                sealed: [v.hex("CT"), v.hex("Tag")].concat(),
            })
            .collect()
    }

    #[test]
    fn rustcrypto_seal_matches_published_aes_256_gcm_vectors() {
        let cases = cases();
        assert_eq!(cases.len(), 4);
        for case in cases {
            let mut buf = case.plaintext.clone();
            let tag = seal(&cipher_key(&case.key), case.nonce, &case.aad, &mut buf).unwrap();
            buf.extend_from_slice(&tag);
            assert_eq!(
                hex::encode(&buf),
                hex::encode(&case.sealed),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn rustcrypto_open_matches_published_aes_256_gcm_vectors() {
        for mut case in cases() {
            let opened = open(
                &cipher_key(&case.key),
                case.nonce,
                &case.aad,
                &mut case.sealed,
            );
            assert_eq!(opened.unwrap(), case.plaintext.as_slice(), "{}", case.name);
        }
    }

    #[test]
    fn rustcrypto_open_refuses_a_published_vector_with_an_altered_tag_or_aad() {
        for mut case in cases() {
            let key = cipher_key(&case.key);
            let mut altered_aad = case.aad.clone();
            altered_aad.push(0);
            let mut copy = case.sealed.clone();
            let result = open(&key, case.nonce, &altered_aad, &mut copy);
            assert_eq!(result, Err(CryptoError::Authentication), "{}", case.name);
            *case.sealed.last_mut().unwrap() ^= 1;
            let result = open(&key, case.nonce, &case.aad, &mut case.sealed);
            assert_eq!(result, Err(CryptoError::Authentication), "{}", case.name);
        }
    }

    #[test]
    fn open_refuses_input_shorter_than_a_tag() {
        let key = cipher_key(&Key256::from_bytes([1; 32]));
        let mut short = [0u8; TAG_LEN - 1];
        assert!(matches!(
            open(&key, [0; NONCE_LEN], b"", &mut short),
            Err(CryptoError::Malformed(_))
        ));
    }

    proptest! {
        /// The two implementations are interchangeable on any input: each one's output is the
        /// other's, byte for byte, and each opens what the other sealed.
        #[test]
        fn aws_lc_and_rustcrypto_agree(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; NONCE_LEN]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..100),
            plain in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let key = Key256::from_bytes(key);
            let (aws_lc, rust_crypto) = (gcm::cipher_key(&key), cipher_key(&key));

            let mut by_aws_lc = plain.clone();
            let tag = gcm::seal(&aws_lc, nonce, &aad, &mut by_aws_lc).unwrap();
            by_aws_lc.extend_from_slice(tag.as_ref());
            let mut by_rust_crypto = plain.clone();
            let tag = seal(&rust_crypto, nonce, &aad, &mut by_rust_crypto).unwrap();
            by_rust_crypto.extend_from_slice(&tag);
            prop_assert_eq!(&by_aws_lc, &by_rust_crypto);

            let mut copy = by_aws_lc.clone();
            prop_assert_eq!(open(&rust_crypto, nonce, &aad, &mut copy).unwrap(), plain.as_slice());
            let mut copy = by_rust_crypto.clone();
            prop_assert_eq!(gcm::open(&aws_lc, nonce, &aad, &mut copy).unwrap(), plain.as_slice());
        }
    }

    #[test]
    fn outer_nonce_is_the_inner_nonce_with_the_layer_mark() {
        let prefix = [1, 2, 3, 4, 5, 6, 7];
        assert_eq!(
            outer_nonce(&prefix, 0x0a0b_0c0d, false),
            [1, 2, 3, 4, 5, 6, 7, 0x0a, 0x0b, 0x0c, 0x0d, 0x02]
        );
        assert_eq!(
            outer_nonce(&prefix, 0, true),
            [1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0x03]
        );
    }

    #[test]
    fn no_outer_nonce_equals_an_inner_nonce_of_the_stream() {
        let prefix = [9; NONCE_PREFIX_LEN];
        for index in [0u32, 1, 2, 0x0100, u32::MAX] {
            for last in [false, true] {
                let outer = outer_nonce(&prefix, index, last);
                for other_last in [false, true] {
                    assert_ne!(outer, segment_nonce(&prefix, index, other_last));
                }
            }
        }
    }

    #[test]
    fn outer_aad_layout_is_label_then_the_inner_header() {
        let mut expected = b"coffer dsse outer layer".to_vec();
        expected.extend_from_slice(&[1, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, b'a', b'b']);
        assert_eq!(outer_aad(b"ab").unwrap(), expected);
        assert_ne!(outer_aad(b"ab").unwrap()[0], FORMAT_VERSION);
        assert!(outer_aad(&[0; 65536]).is_err());
    }

    #[test]
    fn seal_refuses_what_is_not_one_inner_sealed_segment() {
        let cipher = OuterCipher::new(&Key256::from_bytes([1; 32]), [0; 7], b"obj").unwrap();
        for len in [0, TAG_LEN - 1, SEALED_SEGMENT_SIZE + 1] {
            let mut buf = vec![0; len];
            let result = cipher.seal_tail(0, true, &mut buf, 0);
            assert!(matches!(result, Err(CryptoError::Malformed(_))), "{len}");
        }
        let mut buf = vec![0; 20];
        let result = cipher.seal_tail(0, true, &mut buf, 21);
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let cipher = OuterCipher::new(&Key256::from_bytes([0xab; 32]), [1; 7], b"obj").unwrap();
        let printed = format!("{cipher:?}");
        assert!(printed.starts_with("OuterCipher { nonce_prefix: [1, 1, 1, 1, 1, 1, 1]"));
        assert!(!printed.contains("171"), "{printed}");
    }
}
