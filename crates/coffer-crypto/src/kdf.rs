//! Key derivation: HKDF-SHA256 (RFC 5869), and the multipart part key of DESIGN §4.
//!
//! This is the one place keys are derived. It must never be used to stretch a password (HKDF is not a
//! password hash), and derived keys must never leave through anything but a [`Key256`].

use aws_lc_rs::hkdf;

use crate::Key256;

/// Length of the random salt stored with each multipart part (DESIGN §4). Frozen format v1.
pub const PART_SALT_LEN: usize = 16;

/// HKDF info for part keys. DO NOT CHANGE: frozen format v1; every stored multipart part was sealed
/// under a key derived with exactly these bytes, and would no longer open.
const PART_KEY_INFO: &[u8] = b"coffer part v1";

/// The key for one multipart part: each part is its own stream, and a re-uploaded part gets a new salt
/// so it never reuses the nonces of the part it replaces.
pub fn derive_part_key(dek: &Key256, salt: &[u8; PART_SALT_LEN]) -> Key256 {
    derive_key(dek, salt, PART_KEY_INFO)
}

/// HKDF-SHA256 of `ikm` to a 256-bit key. `info` names the purpose (e.g. `b"coffer metadata v1"`),
/// so that keys derived for different purposes from one secret are independent.
pub fn derive_key(ikm: &Key256, salt: &[u8], info: &[u8]) -> Key256 {
    Key256::filled_by(|okm| hkdf_sha256(ikm.expose_secret(), salt, info, okm))
}

/// An output length for aws-lc-rs' `Prk::expand`.
struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// Fills `out` with HKDF-SHA256(ikm, salt, info). `out` must be at most 255 × 32 bytes.
fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) {
    let info = [info];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&info, OutputLen(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("callers ask for at most 255 * 32 bytes, the HKDF-SHA256 output limit");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors;

    /// RFC 5869 Appendix A, Test Cases 1–3 (HKDF-SHA256), kept as data in
    /// `testdata/hkdf-sha256-rfc5869.txt`.
    const VECTORS: &str = include_str!("../testdata/hkdf-sha256-rfc5869.txt");

    #[test]
    fn hkdf_matches_rfc_5869_vectors() {
        let records = test_vectors::parse(VECTORS);
        assert_eq!(records.len(), 3);
        for v in records {
            let expected = v.hex("OKM");
            let mut okm = vec![0u8; expected.len()];
            hkdf_sha256(&v.hex("IKM"), &v.hex("Salt"), &v.hex("Info"), &mut okm);
            assert_eq!(hex::encode(okm), hex::encode(expected), "{}", v.name());
        }
    }

    #[test]
    fn derive_key_passes_ikm_salt_and_info_to_hkdf_in_order() {
        // RFC 5869 has no vector with a 32-byte IKM, so compare with the helper the vectors pin.
        let ikm = Key256::from_bytes([0x0b; 32]);
        let mut expected = [0u8; 32];
        hkdf_sha256(&[0x0b; 32], b"salt", b"coffer metadata v1", &mut expected);
        let key = derive_key(&ikm, b"salt", b"coffer metadata v1");
        assert_eq!(key.expose_secret(), &expected);
    }

    #[test]
    fn part_key_is_hkdf_with_the_frozen_part_info() {
        let dek = Key256::from_bytes([1; 32]);
        let salt = [2; PART_SALT_LEN];
        let expected = derive_key(&dek, &salt, b"coffer part v1");
        assert_eq!(
            derive_part_key(&dek, &salt).expose_secret(),
            expected.expose_secret()
        );
    }

    #[test]
    fn part_keys_differ_by_salt() {
        let dek = Key256::from_bytes([1; 32]);
        let a = derive_part_key(&dek, &[2; PART_SALT_LEN]);
        let b = derive_part_key(&dek, &[3; PART_SALT_LEN]);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), dek.expose_secret());
    }

    #[test]
    fn derived_keys_differ_by_info() {
        let ikm = Key256::from_bytes([1; 32]);
        let a = derive_key(&ikm, b"", b"coffer metadata v1");
        let b = derive_key(&ikm, b"", b"coffer part v1");
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
