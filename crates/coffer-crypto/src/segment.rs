//! The segment stream that object data is stored in (DESIGN §4): plaintext cut into 64 KiB segments,
//! each sealed with AES-256-GCM under a counter nonce — the STREAM construction of Hoang,
//! Reyhanitabar, Rogaway and Vizár (2015), which detects truncation, reordering and extension.
//!
//! One stream is one object, or one multipart part under its own part key. This module builds the
//! segment nonces and AAD, and nothing else may: a nonce must never repeat under a key, so each
//! stream needs its own key or its own random nonce prefix. It never buffers a whole object; callers
//! feed it one segment at a time.

use std::fmt;

use aws_lc_rs::aead::LessSafeKey;

use crate::gcm::{self, NONCE_LEN};
use crate::{CryptoError, Key256};

/// Version of the object format at rest; the first byte of every segment's AAD.
/// DO NOT CHANGE: frozen format. Every stored segment authenticates this byte; a new layout adds a
/// new version and keeps opening this one.
pub const FORMAT_VERSION: u8 = 1;

/// Plaintext bytes per segment; every segment but the last of a stream is exactly this long.
/// DO NOT CHANGE: frozen format v1. It is in every segment's AAD and fixes where segments start on
/// disk, so changing it makes every stored object unreadable.
pub const SEGMENT_SIZE: usize = 64 * 1024;

/// AES-GCM tag appended to every segment. Frozen format v1.
pub const TAG_LEN: usize = 16;

/// Bytes on disk of one full segment.
pub const SEALED_SEGMENT_SIZE: usize = SEGMENT_SIZE + TAG_LEN;

/// Random per-stream part of every segment nonce, stored in the envelope. Frozen format v1: with the
/// 4-byte index and the 1-byte last flag it makes the 12-byte GCM nonce.
pub const NONCE_PREFIX_LEN: usize = 7;

const _: () = assert!(NONCE_PREFIX_LEN + 4 + 1 == NONCE_LEN);

/// How many segments hold `plain_len` bytes; an empty stream is one empty segment.
pub fn segment_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(SEGMENT_SIZE as u64).max(1)
}

/// Bytes on disk of a stream holding `plain_len` plaintext bytes: each segment plus its tag.
/// Saturates at `u64::MAX` for lengths no stream can have.
pub fn sealed_len(plain_len: u64) -> u64 {
    plain_len.saturating_add(segment_count(plain_len) * TAG_LEN as u64)
}

/// Nonce of one segment: `nonce_prefix ‖ index (u32 BE) ‖ last (1 byte: 1 for the final segment)`.
/// Frozen format v1.
pub(crate) fn segment_nonce(
    prefix: &[u8; NONCE_PREFIX_LEN],
    index: u32,
    last: bool,
) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    nonce[NONCE_PREFIX_LEN..NONCE_LEN - 1].copy_from_slice(&index.to_be_bytes());
    nonce[NONCE_LEN - 1] = u8::from(last);
    nonce
}

/// AAD of every segment of a stream:
/// `FORMAT_VERSION ‖ SEGMENT_SIZE (u32 BE) ‖ len(stream_id) (u16 BE) ‖ stream_id`. Frozen format v1.
fn stream_aad(stream_id: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let id_len = u16::try_from(stream_id.len())
        .map_err(|_| CryptoError::Malformed("a stream id must be at most 65535 bytes"))?;
    let segment_size = u32::try_from(SEGMENT_SIZE).expect("SEGMENT_SIZE fits in the u32 AAD field");
    let mut aad = Vec::with_capacity(1 + 4 + 2 + stream_id.len());
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(&segment_size.to_be_bytes());
    aad.extend_from_slice(&id_len.to_be_bytes());
    aad.extend_from_slice(stream_id);
    Ok(aad)
}

/// Seals and opens the segments of one stream. Cheap to share across threads; build one per stream.
pub struct SegmentCipher {
    key: LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    aad: Vec<u8>,
}

impl SegmentCipher {
    /// A cipher for one stream. `stream_id` is the object's (or part's) stable identifier, bound into
    /// every segment so sealed segments cannot be swapped between streams; at most 65535 bytes.
    pub fn new(
        key: &Key256,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        stream_id: &[u8],
    ) -> Result<SegmentCipher, CryptoError> {
        Ok(SegmentCipher {
            key: gcm::cipher_key(key),
            nonce_prefix,
            aad: stream_aad(stream_id)?,
        })
    }

    /// Encrypts one segment's plaintext in place and appends its tag. Every segment but the `last`
    /// must be exactly [`SEGMENT_SIZE`] bytes, and only segment 0 may be empty (an empty stream), so
    /// that [`segment_count`] and [`sealed_len`] describe every stream. Reserve
    /// [`SEALED_SEGMENT_SIZE`] capacity in `buf` to avoid an allocation per segment.
    pub fn seal_segment(
        &self,
        index: u32,
        last: bool,
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        self.seal_tail(index, last, buf, 0)
    }

    /// [`SegmentCipher::seal_segment`] for the plaintext `buf[from..]`: seals it in place and
    /// appends its tag, leaving `buf[..from]` alone. Lets a caller build a batch of sealed
    /// segments in one buffer without copying each segment twice.
    pub fn seal_tail(
        &self,
        index: u32,
        last: bool,
        buf: &mut Vec<u8>,
        from: usize,
    ) -> Result<(), CryptoError> {
        let Some(plain) = buf.get_mut(from..) else {
            return Err(CryptoError::Malformed("segment start is past the buffer"));
        };
        if plain.len() > SEGMENT_SIZE {
            return Err(CryptoError::Malformed(
                "a segment holds at most SEGMENT_SIZE plaintext bytes",
            ));
        }
        if !last && plain.len() != SEGMENT_SIZE {
            return Err(CryptoError::Malformed(
                "only the last segment of a stream may be shorter than SEGMENT_SIZE",
            ));
        }
        if plain.is_empty() && index != 0 {
            return Err(CryptoError::Malformed(
                "only an empty stream has an empty segment",
            ));
        }
        let nonce = segment_nonce(&self.nonce_prefix, index, last);
        let tag = gcm::seal(&self.key, nonce, &self.aad, plain)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Verifies and decrypts one sealed segment (ciphertext ‖ tag) in place and returns its plaintext,
    /// a prefix of `buf`. A wrong key, altered bytes, a segment from another index or stream, or a
    /// wrong `last` flag (truncation, extension) all fail with [`CryptoError::Authentication`]; on
    /// failure the contents of `buf` are unspecified.
    pub fn open_segment<'a>(
        &self,
        index: u32,
        last: bool,
        buf: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        if buf.len() < TAG_LEN {
            return Err(CryptoError::Malformed(
                "a sealed segment is shorter than its tag",
            ));
        }
        if buf.len() > SEALED_SEGMENT_SIZE {
            return Err(CryptoError::Malformed(
                "a sealed segment is longer than SEALED_SEGMENT_SIZE",
            ));
        }
        let nonce = segment_nonce(&self.nonce_prefix, index, last);
        gcm::open(&self.key, nonce, &self.aad, buf)
    }
}

impl fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentCipher")
            .field("nonce_prefix", &self.nonce_prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PREFIX: [u8; NONCE_PREFIX_LEN] = [1, 2, 3, 4, 5, 6, 7];

    fn cipher(key_byte: u8, stream_id: &[u8]) -> SegmentCipher {
        SegmentCipher::new(&Key256::from_bytes([key_byte; 32]), PREFIX, stream_id).unwrap()
    }

    /// Deterministic, non-repeating-looking test data.
    fn data(len: usize, seed: u64) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_add(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
            .collect()
    }

    /// Seals a whole plaintext the way a writer must: full segments, the final one marked last.
    fn seal_stream(cipher: &SegmentCipher, plain: &[u8]) -> Vec<Vec<u8>> {
        let count = segment_count(plain.len() as u64) as usize;
        (0..count)
            .map(|i| {
                let start = i * SEGMENT_SIZE;
                let end = plain.len().min(start + SEGMENT_SIZE);
                let mut buf = Vec::with_capacity(SEALED_SEGMENT_SIZE);
                buf.extend_from_slice(&plain[start..end]);
                let index = u32::try_from(i).unwrap();
                cipher
                    .seal_segment(index, i + 1 == count, &mut buf)
                    .unwrap();
                buf
            })
            .collect()
    }

    /// Opens a stream segment by segment, the final one as last.
    fn open_stream(
        cipher: &SegmentCipher,
        mut sealed: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, CryptoError> {
        let count = sealed.len();
        let mut plain = Vec::new();
        for (i, segment) in sealed.iter_mut().enumerate() {
            let index = u32::try_from(i).unwrap();
            plain.extend_from_slice(cipher.open_segment(index, i + 1 == count, segment)?);
        }
        Ok(plain)
    }

    proptest! {
        #[test]
        fn stream_round_trips_any_length(len in 0usize..300_000, seed in any::<u64>()) {
            let key = Key256::generate().unwrap();
            let prefix = crate::random_array().unwrap();
            let cipher = SegmentCipher::new(&key, prefix, b"bucket/key#version").unwrap();
            let plain = data(len, seed);
            let sealed = seal_stream(&cipher, &plain);
            prop_assert_eq!(sealed.len() as u64, segment_count(len as u64));
            let on_disk: usize = sealed.iter().map(Vec::len).sum();
            prop_assert_eq!(on_disk as u64, sealed_len(len as u64));
            prop_assert_eq!(open_stream(&cipher, sealed).unwrap(), plain);
        }
    }

    #[test]
    fn empty_stream_is_one_empty_segment() {
        let cipher = cipher(1, b"empty");
        let sealed = seal_stream(&cipher, b"");
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].len(), TAG_LEN);
        assert_eq!(open_stream(&cipher, sealed).unwrap(), b"");
    }

    #[test]
    fn segment_count_and_sealed_len_at_boundaries() {
        let tag = TAG_LEN as u64;
        for (plain_len, segments) in [(0, 1), (1, 1), (65535, 1), (65536, 1), (65537, 2)] {
            assert_eq!(segment_count(plain_len), segments, "{plain_len}");
            assert_eq!(
                sealed_len(plain_len),
                plain_len + segments * tag,
                "{plain_len}"
            );
        }
        assert_eq!(sealed_len(0), 16);
        assert_eq!(sealed_len(65536), 65552);
        assert_eq!(sealed_len(65537), 65569);
        assert_eq!(sealed_len(u64::MAX), u64::MAX);
    }

    #[test]
    fn nonce_layout_is_prefix_then_index_then_last_flag() {
        assert_eq!(
            segment_nonce(&PREFIX, 0x0a0b_0c0d, false),
            [1, 2, 3, 4, 5, 6, 7, 0x0a, 0x0b, 0x0c, 0x0d, 0]
        );
        assert_eq!(
            segment_nonce(&PREFIX, 0, true),
            [1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn aad_layout_is_version_segment_size_then_length_prefixed_id() {
        assert_eq!(
            stream_aad(b"ab").unwrap(),
            [1, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, b'a', b'b']
        );
    }

    #[test]
    fn stream_id_longer_than_u16_is_rejected() {
        let key = Key256::from_bytes([1; 32]);
        assert!(SegmentCipher::new(&key, PREFIX, &[0; 65535]).is_ok());
        let result = SegmentCipher::new(&key, PREFIX, &[0; 65536]);
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn dropping_the_last_segment_and_marking_the_previous_last_fails() {
        let cipher = cipher(1, b"obj");
        let mut sealed = seal_stream(&cipher, &data(2 * SEGMENT_SIZE + 10, 1));
        sealed.pop();
        assert_eq!(
            open_stream(&cipher, sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn opening_a_non_last_segment_as_last_fails() {
        let cipher = cipher(1, b"obj");
        let mut sealed = seal_stream(&cipher, &data(SEGMENT_SIZE + 1, 1));
        let result = cipher.open_segment(0, true, &mut sealed[0]);
        assert_eq!(result, Err(CryptoError::Authentication));
    }

    #[test]
    fn opening_the_last_segment_as_non_last_fails() {
        let cipher = cipher(1, b"obj");
        let mut sealed = seal_stream(&cipher, &data(SEGMENT_SIZE + 1, 1));
        let result = cipher.open_segment(1, false, &mut sealed[1]);
        assert_eq!(result, Err(CryptoError::Authentication));
    }

    #[test]
    fn appending_a_segment_after_the_last_fails() {
        let cipher = cipher(1, b"obj");
        let mut sealed = seal_stream(&cipher, &data(SEGMENT_SIZE, 1));
        let mut extra = data(10, 2);
        cipher.seal_segment(1, true, &mut extra).unwrap();
        sealed.push(extra);
        assert_eq!(
            open_stream(&cipher, sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn segment_opened_at_another_index_fails() {
        let cipher = cipher(1, b"obj");
        let sealed = seal_stream(&cipher, &data(3 * SEGMENT_SIZE, 1));
        for (i, j) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
            let mut segment = sealed[i].clone();
            let result = cipher.open_segment(j, j == 2, &mut segment);
            assert_eq!(result, Err(CryptoError::Authentication), "{i} at {j}");
        }
    }

    #[test]
    fn swapping_two_segments_fails() {
        let cipher = cipher(1, b"obj");
        let mut sealed = seal_stream(&cipher, &data(3 * SEGMENT_SIZE, 1));
        sealed.swap(0, 1);
        assert_eq!(
            open_stream(&cipher, sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn a_flipped_bit_fails() {
        let cipher = cipher(1, b"obj");
        let sealed = seal_stream(&cipher, &data(1000, 1));
        for position in [0, 500, 999, 1000, 1000 + TAG_LEN - 1] {
            for bit in [0, 7] {
                let mut segment = sealed[0].clone();
                segment[position] ^= 1 << bit;
                let result = cipher.open_segment(0, true, &mut segment);
                assert_eq!(result, Err(CryptoError::Authentication), "byte {position}");
            }
        }
    }

    #[test]
    fn a_truncated_segment_fails() {
        let cipher = cipher(1, b"obj");
        let mut sealed = seal_stream(&cipher, &data(1000, 1));
        let result = cipher.open_segment(0, true, &mut sealed[0][..999 + TAG_LEN]);
        assert_eq!(result, Err(CryptoError::Authentication));
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = seal_stream(&cipher(1, b"obj"), &data(1000, 1));
        assert_eq!(
            open_stream(&cipher(2, b"obj"), sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn different_stream_id_fails() {
        let sealed = seal_stream(&cipher(1, b"bucket/a"), &data(1000, 1));
        assert_eq!(
            open_stream(&cipher(1, b"bucket/b"), sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn different_nonce_prefix_fails() {
        let key = Key256::from_bytes([1; 32]);
        let sealed = seal_stream(&cipher(1, b"obj"), &data(1000, 1));
        let other = SegmentCipher::new(&key, [9; NONCE_PREFIX_LEN], b"obj").unwrap();
        assert_eq!(
            open_stream(&other, sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn ciphertext_differs_from_plaintext() {
        let plain = data(1000, 1);
        let sealed = seal_stream(&cipher(1, b"obj"), &plain);
        assert_ne!(sealed[0][..plain.len()], plain[..]);
    }

    #[test]
    fn seal_rejects_a_segment_longer_than_segment_size() {
        let mut buf = vec![0; SEGMENT_SIZE + 1];
        let result = cipher(1, b"obj").seal_segment(0, true, &mut buf);
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn seal_rejects_a_short_segment_not_marked_last() {
        let mut buf = vec![0; SEGMENT_SIZE - 1];
        let result = cipher(1, b"obj").seal_segment(0, false, &mut buf);
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn seal_rejects_an_empty_segment_after_the_first() {
        let mut buf = Vec::new();
        let result = cipher(1, b"obj").seal_segment(1, true, &mut buf);
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn open_rejects_buffers_outside_the_sealed_segment_sizes() {
        let cipher = cipher(1, b"obj");
        let mut short = vec![0; TAG_LEN - 1];
        let result = cipher.open_segment(0, true, &mut short);
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
        let mut long = vec![0; SEALED_SEGMENT_SIZE + 1];
        let result = cipher.open_segment(0, true, &mut long);
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn sealing_a_full_segment_into_reserved_capacity_does_not_reallocate() {
        let mut buf = Vec::with_capacity(SEALED_SEGMENT_SIZE);
        buf.resize(SEGMENT_SIZE, 0);
        let before = buf.as_ptr();
        cipher(1, b"obj").seal_segment(0, true, &mut buf).unwrap();
        assert_eq!(buf.len(), SEALED_SEGMENT_SIZE);
        assert_eq!(buf.as_ptr(), before);
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let printed = format!("{:?}", cipher(0xab, b"obj"));
        assert!(printed.starts_with("SegmentCipher { nonce_prefix: [1, 2, 3, 4, 5, 6, 7]"));
        assert!(!printed.contains("171"), "{printed}");
    }

    #[test]
    fn segment_cipher_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SegmentCipher>();
    }
}
