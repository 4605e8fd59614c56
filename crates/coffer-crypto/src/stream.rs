//! One cipher for both kinds of sealed stream, so that the write and read pipelines handle a
//! single-layer stream (SSE-S3, SSE-KMS) and a dual-layer DSSE-KMS stream with the same code.
//!
//! A single-layer stream is [`SegmentCipher`]'s, byte for byte. A dual-layer stream seals each
//! segment twice, in place: first the inner layer, exactly a single-layer segment under the inner
//! key (aws-lc), then the outer layer over that (ciphertext ‖ inner tag) under the outer key
//! (RustCrypto, `outer.rs`). Each full segment therefore takes `SEGMENT_SIZE + 32` bytes and
//! segment `i` still starts at a fixed offset, so ranged reads open only the segments they need.
//! Opening peels the outer layer, then the inner one; either key alone opens nothing.
//!
//! This module composes the two layers and nothing more: it must never build a nonce or AAD
//! itself (`segment.rs` and `outer.rs` own those), and never allocate per segment.

use std::fmt;

use crate::outer::OuterCipher;
use crate::{
    CryptoError, Key256, NONCE_PREFIX_LEN, SEGMENT_SIZE, SegmentCipher, TAG_LEN, ct_eq,
    segment_count,
};

/// The kind of a sealed stream: how many layers of AES-256-GCM each segment carries. Stored
/// nowhere in the stream itself: the object's encryption mode (in its record) says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// One layer under one data key (aws-lc): every mode but DSSE-KMS. Frozen format v1.
    Single,
    /// Two layers under two independent data keys, inner aws-lc and outer RustCrypto: DSSE-KMS.
    /// Frozen format (DSSE stream v1).
    Dual,
}

impl StreamKind {
    /// Bytes each sealed segment carries beyond its plaintext: one 16-byte tag per layer.
    pub const fn overhead(self) -> usize {
        match self {
            StreamKind::Single => TAG_LEN,
            StreamKind::Dual => 2 * TAG_LEN,
        }
    }

    /// Bytes on disk of one full segment; segment `i` of a stream starts at `i` times this.
    pub const fn sealed_segment_size(self) -> usize {
        SEGMENT_SIZE + self.overhead()
    }

    /// Bytes on disk of a stream of this kind holding `plain_len` plaintext bytes. Saturates at
    /// `u64::MAX` for lengths no stream can have.
    pub fn sealed_len(self, plain_len: u64) -> u64 {
        plain_len.saturating_add(segment_count(plain_len).saturating_mul(self.overhead() as u64))
    }
}

/// Seals and opens the segments of one stream of either kind. Cheap to share across threads;
/// build one per stream.
pub struct StreamCipher(Layers);

enum Layers {
    Single(SegmentCipher),
    /// The outer cipher (RustCrypto's expanded key schedule and GHASH key, ~700 bytes) is boxed
    /// so single-layer ciphers stay small: one allocation per stream, none per segment.
    Dual {
        inner: SegmentCipher,
        outer: Box<OuterCipher>,
    },
}

impl StreamCipher {
    /// A single-layer stream's cipher: [`SegmentCipher::new`].
    pub fn single(
        key: &Key256,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        stream_id: &[u8],
    ) -> Result<StreamCipher, CryptoError> {
        Ok(StreamCipher(Layers::Single(SegmentCipher::new(
            key,
            nonce_prefix,
            stream_id,
        )?)))
    }

    /// A dual-layer (DSSE) stream's cipher: the inner layer under `inner_key`, the outer under
    /// `outer_key`, both with the stream's one nonce prefix and id. The keys must be independent
    /// (two data keys); equal keys are refused, since the two layers would then share a key.
    pub fn dual(
        inner_key: &Key256,
        outer_key: &Key256,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        stream_id: &[u8],
    ) -> Result<StreamCipher, CryptoError> {
        if ct_eq(inner_key.expose_secret(), outer_key.expose_secret()) {
            return Err(CryptoError::Malformed(
                "the two layers of a dual stream need two different keys",
            ));
        }
        Ok(StreamCipher(Layers::Dual {
            inner: SegmentCipher::new(inner_key, nonce_prefix, stream_id)?,
            outer: Box::new(OuterCipher::new(outer_key, nonce_prefix, stream_id)?),
        }))
    }

    /// Which kind of stream this cipher seals, and so its segment sizes on disk.
    pub fn kind(&self) -> StreamKind {
        match self.0 {
            Layers::Single(_) => StreamKind::Single,
            Layers::Dual { .. } => StreamKind::Dual,
        }
    }

    /// Seals the plaintext `buf[from..]` in place as segment `index` and appends its tag(s),
    /// leaving `buf[..from]` alone; the rules of [`SegmentCipher::seal_tail`] apply. Reserve
    /// [`StreamKind::sealed_segment_size`] per segment in `buf` to avoid an allocation per segment.
    pub fn seal_tail(
        &self,
        index: u32,
        last: bool,
        buf: &mut Vec<u8>,
        from: usize,
    ) -> Result<(), CryptoError> {
        match &self.0 {
            Layers::Single(cipher) => cipher.seal_tail(index, last, buf, from),
            Layers::Dual { inner, outer } => {
                inner.seal_tail(index, last, buf, from)?;
                outer.seal_tail(index, last, buf, from)
            }
        }
    }

    /// Verifies and decrypts one sealed segment in place and returns its plaintext, a prefix of
    /// `buf`. Any failure — a wrong key for either layer, altered bytes, a segment moved, a wrong
    /// `last` flag, a stream of the other kind — is [`CryptoError::Authentication`] or, for a
    /// length this kind never produces, [`CryptoError::Malformed`]; on failure the contents of
    /// `buf` are unspecified.
    pub fn open_segment<'a>(
        &self,
        index: u32,
        last: bool,
        buf: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        match &self.0 {
            Layers::Single(cipher) => cipher.open_segment(index, last, buf),
            Layers::Dual { inner, outer } => {
                if buf.len() < StreamKind::Dual.overhead() {
                    return Err(CryptoError::Malformed(
                        "a sealed segment is shorter than its two tags",
                    ));
                }
                if buf.len() > StreamKind::Dual.sealed_segment_size() {
                    return Err(CryptoError::Malformed(
                        "a sealed segment is longer than a dual stream's sealed segment size",
                    ));
                }
                let inner_sealed = outer.open_segment(index, last, buf)?;
                inner.open_segment(index, last, inner_sealed)
            }
        }
    }
}

impl From<SegmentCipher> for StreamCipher {
    fn from(cipher: SegmentCipher) -> StreamCipher {
        StreamCipher(Layers::Single(cipher))
    }
}

impl fmt::Debug for StreamCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Layers::Single(cipher) => f.debug_tuple("StreamCipher::Single").field(cipher).finish(),
            Layers::Dual { inner, outer } => f
                .debug_struct("StreamCipher::Dual")
                .field("inner", inner)
                .field("outer", outer)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{SEALED_SEGMENT_SIZE, sealed_len, sha256};

    const PREFIX: [u8; NONCE_PREFIX_LEN] = [1, 2, 3, 4, 5, 6, 7];
    const FULL: usize = SEGMENT_SIZE;

    fn key(byte: u8) -> Key256 {
        Key256::from_bytes([byte; 32])
    }

    fn dual(inner: u8, outer: u8, stream_id: &[u8]) -> StreamCipher {
        StreamCipher::dual(&key(inner), &key(outer), PREFIX, stream_id).unwrap()
    }

    fn single(byte: u8, stream_id: &[u8]) -> StreamCipher {
        StreamCipher::single(&key(byte), PREFIX, stream_id).unwrap()
    }

    /// Deterministic, non-repeating-looking test data.
    fn data(len: usize, seed: u64) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_add(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
            .collect()
    }

    /// Seals a whole plaintext the way a writer must, each segment in a buffer of its own.
    fn seal_stream(cipher: &StreamCipher, plain: &[u8]) -> Vec<Vec<u8>> {
        let count = segment_count(plain.len() as u64) as usize;
        (0..count)
            .map(|i| {
                let start = i * SEGMENT_SIZE;
                let end = plain.len().min(start + SEGMENT_SIZE);
                let mut buf = Vec::with_capacity(cipher.kind().sealed_segment_size());
                buf.extend_from_slice(&plain[start..end]);
                let index = u32::try_from(i).unwrap();
                cipher
                    .seal_tail(index, i + 1 == count, &mut buf, 0)
                    .unwrap();
                buf
            })
            .collect()
    }

    /// Opens a stream segment by segment, the final one as last.
    fn open_stream(
        cipher: &StreamCipher,
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
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn dual_stream_round_trips_any_length(len in 0usize..200_000, seed in any::<u64>()) {
            let (inner, outer) = (Key256::generate().unwrap(), Key256::generate().unwrap());
            let prefix = crate::random_array().unwrap();
            let cipher = StreamCipher::dual(&inner, &outer, prefix, b"bucket/key#version").unwrap();
            let plain = data(len, seed);
            let sealed = seal_stream(&cipher, &plain);
            let on_disk: usize = sealed.iter().map(Vec::len).sum();
            prop_assert_eq!(on_disk as u64, StreamKind::Dual.sealed_len(len as u64));
            prop_assert_eq!(open_stream(&cipher, sealed).unwrap(), plain);
        }
    }

    #[test]
    fn sizes_of_each_kind_at_segment_boundaries() {
        assert_eq!(StreamKind::Single.overhead(), 16);
        assert_eq!(StreamKind::Dual.overhead(), 32);
        assert_eq!(
            StreamKind::Single.sealed_segment_size(),
            SEALED_SEGMENT_SIZE
        );
        assert_eq!(StreamKind::Dual.sealed_segment_size(), 65568);
        for plain_len in [0, 1, 65535, 65536, 65537, 200_000, u64::MAX] {
            assert_eq!(
                StreamKind::Single.sealed_len(plain_len),
                sealed_len(plain_len)
            );
        }
        for (plain_len, dual_len) in [
            (0, 32),
            (1, 33),
            (65535, 65567),
            (65536, 65568),
            (65537, 65601),
            (200_000, 200_128),
            (u64::MAX, u64::MAX),
        ] {
            assert_eq!(
                StreamKind::Dual.sealed_len(plain_len),
                dual_len,
                "{plain_len}"
            );
        }
    }

    /// Frozen formats, pinned. The expected values were computed independently of this crate,
    /// from docs/format.md, with pyca/cryptography's AESGCM (a third AES-GCM implementation);
    /// the single-layer value is also what every release since format v1 seals. A change here
    /// means stored objects no longer open.
    #[test]
    fn both_kinds_seal_to_their_frozen_bytes() {
        let plain = data(FULL + 1000, 7);
        let digest = |sealed: &[Vec<u8>]| hex::encode(sha256(&sealed.concat()));
        let single_stream = seal_stream(&single(0x11, b"kat-stream"), &plain);
        let dual_stream = seal_stream(&dual(0x11, 0x22, b"kat-stream"), &plain);
        assert_eq!(
            digest(&single_stream),
            "064d5455602f3823220608051ece9fd9dc4f321f292313e085091cd5dbcf9735"
        );
        assert_eq!(
            digest(&dual_stream),
            "b49f79347807f57a1b836f43c18c6530dcc77e2b40446492c3dbfc2f77ea4e1b"
        );
        let short_single = seal_stream(&single(0x11, b"kat"), b"coffer");
        let short_dual = seal_stream(&dual(0x11, 0x22, b"kat"), b"coffer");
        assert_eq!(
            hex::encode(&short_single[0]),
            "560bd38b1b103660d718629aade5ef6b339d403dee31"
        );
        assert_eq!(
            hex::encode(&short_dual[0]),
            "11fd52fde8a5d80b5f8c1d0d91e0cf2da4a7856197c91ecabe2cd8bc38dcebdca4ba334f6b98"
        );
    }

    #[test]
    fn the_inner_layer_of_a_dual_stream_is_the_single_layer_stream_under_the_inner_key() {
        let plain = data(2 * FULL + 99, 3);
        let dual_stream = seal_stream(&dual(1, 2, b"obj"), &plain);
        let single_stream = seal_stream(&single(1, b"obj"), &plain);
        let outer = OuterCipher::new(&key(2), PREFIX, b"obj").unwrap();
        let count = dual_stream.len();
        for (i, (mut segment, expected)) in dual_stream.into_iter().zip(single_stream).enumerate() {
            let index = u32::try_from(i).unwrap();
            let inner_sealed = outer
                .open_segment(index, i + 1 == count, &mut segment)
                .unwrap();
            assert_eq!(inner_sealed, expected.as_slice(), "segment {i}");
        }
    }

    #[test]
    fn the_outer_layer_hides_the_inner_ciphertext() {
        let plain = data(1000, 1);
        let dual_stream = seal_stream(&dual(1, 2, b"obj"), &plain);
        let single_stream = seal_stream(&single(1, b"obj"), &plain);
        assert_ne!(dual_stream[0][..1016], single_stream[0][..]);
        assert_ne!(dual_stream[0][..1000], plain[..]);
    }

    #[test]
    fn a_wrong_inner_key_fails_to_open() {
        let sealed = seal_stream(&dual(1, 2, b"obj"), &data(FULL + 10, 1));
        assert_eq!(
            open_stream(&dual(3, 2, b"obj"), sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn a_wrong_outer_key_fails_to_open() {
        let sealed = seal_stream(&dual(1, 2, b"obj"), &data(FULL + 10, 1));
        assert_eq!(
            open_stream(&dual(1, 3, b"obj"), sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn swapped_keys_fail_to_open() {
        let sealed = seal_stream(&dual(1, 2, b"obj"), &data(10, 1));
        assert_eq!(
            open_stream(&dual(2, 1, b"obj"), sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn equal_keys_for_both_layers_are_refused() {
        let result = StreamCipher::dual(&key(5), &key(5), PREFIX, b"obj");
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn a_dual_stream_does_not_open_as_a_single_stream_under_either_key() {
        for len in [0, 10, FULL, FULL + 10] {
            let sealed = seal_stream(&dual(1, 2, b"obj"), &data(len, 1));
            for byte in [1, 2] {
                let result = open_stream(&single(byte, b"obj"), sealed.clone());
                assert!(result.is_err(), "{len} bytes under key {byte}");
            }
        }
    }

    #[test]
    fn a_single_stream_does_not_open_as_a_dual_stream() {
        for len in [0, 10, FULL, FULL + 10] {
            let sealed = seal_stream(&single(1, b"obj"), &data(len, 1));
            for (inner, outer) in [(1, 2), (2, 1)] {
                let result = open_stream(&dual(inner, outer, b"obj"), sealed.clone());
                assert!(result.is_err(), "{len} bytes");
            }
        }
    }

    #[test]
    fn dropping_the_last_segment_of_a_dual_stream_fails() {
        let cipher = dual(1, 2, b"obj");
        let mut sealed = seal_stream(&cipher, &data(2 * FULL + 10, 1));
        sealed.pop();
        assert_eq!(
            open_stream(&cipher, sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn appending_a_segment_to_a_dual_stream_fails() {
        let cipher = dual(1, 2, b"obj");
        let mut sealed = seal_stream(&cipher, &data(FULL, 1));
        let mut extra = data(10, 2);
        cipher.seal_tail(1, true, &mut extra, 0).unwrap();
        sealed.push(extra);
        assert_eq!(
            open_stream(&cipher, sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn reordered_dual_segments_fail() {
        let cipher = dual(1, 2, b"obj");
        let mut sealed = seal_stream(&cipher, &data(3 * FULL, 1));
        sealed.swap(0, 1);
        assert_eq!(
            open_stream(&cipher, sealed.clone()),
            Err(CryptoError::Authentication)
        );
        sealed.swap(0, 1);
        for (i, j) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
            let mut segment = sealed[i].clone();
            let result = cipher.open_segment(j, j == 2, &mut segment);
            assert_eq!(result, Err(CryptoError::Authentication), "{i} at {j}");
        }
    }

    #[test]
    fn a_dual_segment_opened_with_the_wrong_last_flag_fails() {
        let cipher = dual(1, 2, b"obj");
        let mut sealed = seal_stream(&cipher, &data(FULL + 1, 1));
        let result = cipher.open_segment(0, true, &mut sealed[0]);
        assert_eq!(result, Err(CryptoError::Authentication));
        let result = cipher.open_segment(1, false, &mut sealed[1]);
        assert_eq!(result, Err(CryptoError::Authentication));
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_dual_segment_fails() {
        let cipher = dual(1, 2, b"obj");
        let sealed = seal_stream(&cipher, &data(1000, 1));
        // Inside the ciphertext, in the (outer-encrypted) inner tag, in the outer tag.
        for position in [0, 500, 999, 1000, 1015, 1016, 1031] {
            for bit in [0, 7] {
                let mut segment = sealed[0].clone();
                segment[position] ^= 1 << bit;
                let result = cipher.open_segment(0, true, &mut segment);
                assert_eq!(result, Err(CryptoError::Authentication), "byte {position}");
            }
        }
    }

    #[test]
    fn a_truncated_dual_segment_fails() {
        let cipher = dual(1, 2, b"obj");
        let sealed = seal_stream(&cipher, &data(1000, 1));
        for len in [1031, 1016, 32] {
            let mut segment = sealed[0][..len].to_vec();
            let result = cipher.open_segment(0, true, &mut segment);
            assert_eq!(result, Err(CryptoError::Authentication), "{len}");
        }
        let mut too_short = sealed[0][..31].to_vec();
        let result = cipher.open_segment(0, true, &mut too_short);
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn a_dual_segment_from_another_stream_fails() {
        let sealed = seal_stream(&dual(1, 2, b"bucket/a"), &data(1000, 1));
        assert_eq!(
            open_stream(&dual(1, 2, b"bucket/b"), sealed),
            Err(CryptoError::Authentication)
        );
        let sealed = seal_stream(&dual(1, 2, b"obj"), &data(1000, 1));
        let other_prefix = StreamCipher::dual(&key(1), &key(2), [9; 7], b"obj").unwrap();
        assert_eq!(
            open_stream(&other_prefix, sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn dual_open_refuses_lengths_a_dual_stream_never_has() {
        let cipher = dual(1, 2, b"obj");
        let mut long = vec![0; StreamKind::Dual.sealed_segment_size() + 1];
        assert!(matches!(
            cipher.open_segment(0, true, &mut long),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn dual_seal_keeps_the_segment_rules() {
        let cipher = dual(1, 2, b"obj");
        let mut long = vec![0; FULL + 1];
        assert!(matches!(
            cipher.seal_tail(0, true, &mut long, 0),
            Err(CryptoError::Malformed(_))
        ));
        let mut short = vec![0; FULL - 1];
        assert!(matches!(
            cipher.seal_tail(0, false, &mut short, 0),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn sealing_a_batch_into_reserved_capacity_does_not_reallocate() {
        for cipher in [single(1, b"obj"), dual(1, 2, b"obj")] {
            let size = cipher.kind().sealed_segment_size();
            let mut buf = Vec::with_capacity(3 * size);
            let before = buf.as_ptr();
            for index in 0..3u32 {
                let from = buf.len();
                buf.resize(from + FULL, index as u8);
                cipher.seal_tail(index, index == 2, &mut buf, from).unwrap();
            }
            assert_eq!(buf.len(), 3 * size);
            assert_eq!(buf.as_ptr(), before);
            // Segment i starts at i × the sealed segment size.
            for index in 0..3u32 {
                let start = index as usize * size;
                let plain = cipher
                    .open_segment(index, index == 2, &mut buf[start..start + size])
                    .unwrap();
                assert_eq!(plain, vec![index as u8; FULL].as_slice());
            }
        }
    }

    #[test]
    fn a_segment_cipher_becomes_a_single_stream_cipher() {
        let cipher = StreamCipher::from(SegmentCipher::new(&key(1), PREFIX, b"obj").unwrap());
        assert_eq!(cipher.kind(), StreamKind::Single);
        let sealed = seal_stream(&cipher, &data(100, 1));
        assert_eq!(
            open_stream(&single(1, b"obj"), sealed).unwrap(),
            data(100, 1)
        );
    }

    #[test]
    fn debug_does_not_print_keys() {
        let printed = format!("{:?}", dual(0xab, 0xcd, b"obj"));
        assert!(
            printed.starts_with("StreamCipher::Dual { inner: SegmentCipher"),
            "{printed}"
        );
        assert!(
            !printed.contains("171") && !printed.contains("205"),
            "{printed}"
        );
    }

    #[test]
    fn stream_cipher_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<StreamCipher>();
    }
}
