//! Sealed records: small byte strings (user metadata, key-store records, wrapped data keys) encrypted
//! with AES-256-GCM under a random nonce.
//!
//! Layout, frozen format v1: `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`. Random 96-bit nonces are
//! safe for up to 2^32 seals under one key (NIST SP 800-38D §8.3), so this must never be used for bulk
//! object data, which goes through the segment stream. The AAD is the caller's: it must name what the
//! record is and what it belongs to, so a record cannot be moved to another place and still open.

use zeroize::Zeroizing;

use crate::gcm::{self, NONCE_LEN};
use crate::{CryptoError, Key256, TAG_LEN, random_array};

/// Length of a wrapped key: nonce ‖ 32-byte encrypted key ‖ tag. Frozen format v1.
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + 32 + TAG_LEN;

/// Encrypts a data key under a wrapping key (service key, KMS key version, SSE-C customer key).
pub fn wrap_key(wrapping_key: &Key256, key: &Key256, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    seal_bytes(wrapping_key, key.expose_secret(), aad)
}

/// Recovers a key sealed by [`wrap_key`]; the same `aad` must be given.
pub fn unwrap_key(
    wrapping_key: &Key256,
    wrapped: &[u8],
    aad: &[u8],
) -> Result<Key256, CryptoError> {
    if wrapped.len() != WRAPPED_KEY_LEN {
        return Err(CryptoError::Malformed("a wrapped key must be 60 bytes"));
    }
    let key = open_bytes(wrapping_key, wrapped, aad)?;
    Key256::from_slice(&key)
}

/// Encrypts a small byte string under a fresh random nonce.
pub fn seal_bytes(key: &Key256, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce: [u8; NONCE_LEN] = random_array()?;
    // Exact capacity, so appending the tag never reallocates and leaves a plaintext copy behind.
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = gcm::seal(&gcm::cipher_key(key), nonce, aad, &mut out[NONCE_LEN..])?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Verifies and decrypts a record made by [`seal_bytes`]; the same `aad` must be given.
pub fn open_bytes(
    key: &Key256,
    sealed: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let Some((nonce, body)) = sealed.split_first_chunk::<NONCE_LEN>() else {
        return Err(CryptoError::Malformed(
            "a sealed record is shorter than its nonce",
        ));
    };
    if body.len() < TAG_LEN {
        return Err(CryptoError::Malformed(
            "a sealed record is shorter than its tag",
        ));
    }
    let mut buf = Zeroizing::new(body.to_vec());
    let plain_len = gcm::open(&gcm::cipher_key(key), *nonce, aad, &mut buf)?.len();
    buf.truncate(plain_len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key256 {
        Key256::from_bytes([byte; 32])
    }

    #[test]
    fn wrapped_key_round_trips() {
        let dek = Key256::generate().unwrap();
        let wrapped = wrap_key(&key(1), &dek, b"object arn").unwrap();
        assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);
        let unwrapped = unwrap_key(&key(1), &wrapped, b"object arn").unwrap();
        assert_eq!(unwrapped.expose_secret(), dek.expose_secret());
    }

    #[test]
    fn unwrap_with_wrong_aad_fails() {
        let wrapped = wrap_key(&key(1), &key(2), b"bucket/a").unwrap();
        let result = unwrap_key(&key(1), &wrapped, b"bucket/b");
        assert!(matches!(result, Err(CryptoError::Authentication)));
    }

    #[test]
    fn unwrap_with_wrong_wrapping_key_fails() {
        let wrapped = wrap_key(&key(1), &key(2), b"aad").unwrap();
        let result = unwrap_key(&key(3), &wrapped, b"aad");
        assert!(matches!(result, Err(CryptoError::Authentication)));
    }

    #[test]
    fn unwrap_of_altered_wrapped_key_fails() {
        let wrapped = wrap_key(&key(1), &key(2), b"aad").unwrap();
        for i in [0, NONCE_LEN, WRAPPED_KEY_LEN - 1] {
            let mut altered = wrapped.clone();
            altered[i] ^= 0x80;
            let result = unwrap_key(&key(1), &altered, b"aad");
            assert!(
                matches!(result, Err(CryptoError::Authentication)),
                "byte {i}"
            );
        }
    }

    #[test]
    fn unwrap_rejects_wrong_length() {
        let wrapped = wrap_key(&key(1), &key(2), b"aad").unwrap();
        for len in [0, WRAPPED_KEY_LEN - 1] {
            let result = unwrap_key(&key(1), &wrapped[..len], b"aad");
            assert!(
                matches!(result, Err(CryptoError::Malformed(_))),
                "len {len}"
            );
        }
        let mut longer = wrapped.clone();
        longer.push(0);
        let result = unwrap_key(&key(1), &longer, b"aad");
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn a_sealed_record_of_another_length_is_not_a_wrapped_key() {
        let sealed = seal_bytes(&key(1), &[0u8; 31], b"aad").unwrap();
        let result = unwrap_key(&key(1), &sealed, b"aad");
        assert!(matches!(result, Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn sealed_bytes_round_trip() {
        for plaintext in [&b""[..], b"x", b"x-amz-meta-colour: blue", &[7u8; 5000]] {
            let sealed = seal_bytes(&key(1), plaintext, b"record").unwrap();
            assert_eq!(sealed.len(), NONCE_LEN + plaintext.len() + TAG_LEN);
            let opened = open_bytes(&key(1), &sealed, b"record").unwrap();
            assert_eq!(opened.as_slice(), plaintext);
        }
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let a = seal_bytes(&key(1), b"same", b"aad").unwrap();
        let b = seal_bytes(&key(1), b"same", b"aad").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn sealed_bytes_hide_the_plaintext() {
        let plaintext = b"a secret value that must not show";
        let sealed = seal_bytes(&key(1), plaintext, b"aad").unwrap();
        assert_ne!(&sealed[NONCE_LEN..NONCE_LEN + plaintext.len()], plaintext);
    }

    #[test]
    fn open_bytes_with_wrong_aad_or_key_fails() {
        let sealed = seal_bytes(&key(1), b"value", b"aad").unwrap();
        let wrong_aad = open_bytes(&key(1), &sealed, b"other");
        assert!(matches!(wrong_aad, Err(CryptoError::Authentication)));
        let wrong_key = open_bytes(&key(2), &sealed, b"aad");
        assert!(matches!(wrong_key, Err(CryptoError::Authentication)));
    }

    #[test]
    fn open_bytes_with_a_flipped_bit_fails() {
        let sealed = seal_bytes(&key(1), b"value", b"aad").unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 1;
            let result = open_bytes(&key(1), &altered, b"aad");
            assert!(
                matches!(result, Err(CryptoError::Authentication)),
                "byte {i}"
            );
        }
    }

    #[test]
    fn open_bytes_rejects_input_shorter_than_nonce_and_tag() {
        for len in [0, NONCE_LEN - 1, NONCE_LEN, NONCE_LEN + TAG_LEN - 1] {
            let result = open_bytes(&key(1), &vec![0u8; len], b"aad");
            assert!(
                matches!(result, Err(CryptoError::Malformed(_))),
                "len {len}"
            );
        }
    }
}
