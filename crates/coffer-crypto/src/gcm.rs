//! The single wrapper around the AES-256-GCM primitive (aws-lc-rs `LessSafeKey`).
//!
//! It seals and opens with a nonce it is given; it must never choose a nonce itself. Nonces are built
//! in exactly two places: the segment stream (`segment.rs`, counter nonces) and sealed records
//! (`seal.rs`, random nonces). No other module may call the cipher.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

use crate::{CryptoError, Key256};

/// AES-GCM nonce length: 96 bits, the only length GCM handles without extra hashing.
pub(crate) const NONCE_LEN: usize = 12;

/// Binds a key for AES-256-GCM.
pub(crate) fn cipher_key(key: &Key256) -> LessSafeKey {
    let unbound = UnboundKey::new(&AES_256_GCM, key.expose_secret())
        .expect("a Key256 is exactly the 32 bytes AES-256-GCM takes");
    LessSafeKey::new(unbound)
}

/// Encrypts `buf` in place and returns the 16-byte tag.
pub(crate) fn seal(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<Tag, CryptoError> {
    key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
        .map_err(|_| CryptoError::Malformed("plaintext is too long for AES-256-GCM"))
}

/// Verifies and decrypts `buf` (ciphertext ‖ tag) in place; returns the plaintext prefix.
/// On failure the contents of `buf` are unspecified.
pub(crate) fn open<'a>(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    buf: &'a mut [u8],
) -> Result<&'a mut [u8], CryptoError> {
    key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
        .map_err(|_| CryptoError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors;

    /// Known answers from "The Galois/Counter Mode of Operation (GCM)", McGrew and Viega, 2005,
    /// Appendix B, Test Cases 13–16 (AES-256); the spec NIST SP 800-38D cites. Kept as data in
    /// `testdata/aes-256-gcm-mcgrew-viega.txt`.
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
    fn seal_matches_published_aes_256_gcm_vectors() {
        let cases = cases();
        assert_eq!(cases.len(), 4);
        for case in cases {
            let mut buf = case.plaintext.clone();
            let tag = seal(&cipher_key(&case.key), case.nonce, &case.aad, &mut buf).unwrap();
            buf.extend_from_slice(tag.as_ref());
            assert_eq!(
                hex::encode(&buf),
                hex::encode(&case.sealed),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn open_matches_published_aes_256_gcm_vectors() {
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
    fn open_refuses_a_published_vector_with_an_altered_tag() {
        for mut case in cases() {
            *case.sealed.last_mut().unwrap() ^= 1;
            let result = open(
                &cipher_key(&case.key),
                case.nonce,
                &case.aad,
                &mut case.sealed,
            );
            assert_eq!(result, Err(CryptoError::Authentication), "{}", case.name);
        }
    }
}
