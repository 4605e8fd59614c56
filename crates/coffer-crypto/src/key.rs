//! Secret key type and the source of randomness for keys, nonces and salts.
//!
//! Key bytes live only inside [`Key256`], which wipes them on drop and never prints them. Nothing here
//! may copy key bytes into a plain buffer, or draw randomness from anything but the system generator.

use std::fmt;

use aws_lc_rs::rand;
use zeroize::Zeroizing;

use crate::CryptoError;

/// A 256-bit secret key (root key, service or KMS key version, DEK, part key).
///
/// Zeroized on drop; `Debug` prints `Key256([redacted])`. Deliberately no `PartialEq`: compare key
/// digests with [`crate::ct_eq`] instead.
///
/// The bytes live in one heap allocation for the key's whole life: moving a `Key256` (into a
/// struct, out of a function, across an `.await`) moves a pointer, never the bytes, so no stale
/// copy is left behind on a stack or in a future; the allocation is wiped when dropped.
pub struct Key256(Box<Zeroizing<[u8; 32]>>);

impl Clone for Key256 {
    /// Copies the bytes straight into the new allocation (a derived `Clone` would pass them
    /// through a temporary on the stack first).
    fn clone(&self) -> Key256 {
        Key256::filled_by(|bytes| bytes.copy_from_slice(self.expose_secret()))
    }
}

impl Key256 {
    /// An all-zero key to be filled in place.
    fn zeroed() -> Key256 {
        Key256(Box::new(Zeroizing::new([0u8; 32])))
    }

    /// A fresh random key from the system generator, e.g. a per-object data key.
    pub fn generate() -> Result<Key256, CryptoError> {
        let mut key = Key256::zeroed();
        rand::fill(key.0.as_mut_slice()).map_err(|_| CryptoError::Rng)?;
        Ok(key)
    }

    /// Takes ownership of key bytes. The caller's own copies are still the caller's to wipe.
    pub fn from_bytes(bytes: [u8; 32]) -> Key256 {
        let mut key = Key256::zeroed();
        key.0.copy_from_slice(&bytes);
        key
    }

    /// Copies a key out of an untrusted buffer (a key file, an SSE-C header), checking its length.
    pub fn from_slice(bytes: &[u8]) -> Result<Key256, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::Malformed("a key must be exactly 32 bytes"));
        }
        let mut key = Key256::zeroed();
        key.0.copy_from_slice(bytes);
        Ok(key)
    }

    /// A key whose bytes `fill` writes in place (derivations), without a copy on the way.
    pub(crate) fn filled_by(fill: impl FnOnce(&mut [u8; 32])) -> Key256 {
        let mut key = Key256::zeroed();
        fill(&mut key.0);
        key
    }

    /// The raw key bytes. Named so that every use stands out in review: the bytes must not be logged,
    /// stored unwrapped, or copied into a buffer that is not zeroized.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key256([redacted])")
    }
}

/// `len` random bytes from the system generator in a zeroizing buffer, for secrets whose length is
/// chosen at run time (KMS data keys of `NumberOfBytes`, `GenerateRandom`).
pub fn random_bytes(len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    rand::fill(out.as_mut_slice()).map_err(|_| CryptoError::Rng)?;
    Ok(out)
}

/// `N` random bytes from the system generator, for nonces, salts and identifiers.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    rand::fill(&mut out).map_err(|_| CryptoError::Rng)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ() {
        let a = Key256::generate().unwrap();
        let b = Key256::generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn from_slice_accepts_exactly_32_bytes() {
        let key = Key256::from_slice(&[7u8; 32]).unwrap();
        assert_eq!(key.expose_secret(), &[7u8; 32]);
    }

    #[test]
    fn from_slice_rejects_other_lengths() {
        for len in [0, 16, 31, 33, 64] {
            assert!(matches!(
                Key256::from_slice(&vec![0u8; len]),
                Err(CryptoError::Malformed(_))
            ));
        }
    }

    #[test]
    fn clone_keeps_the_key_bytes() {
        let key = Key256::from_bytes([9u8; 32]);
        assert_eq!(key.clone().expose_secret(), key.expose_secret());
    }

    #[test]
    fn debug_is_redacted() {
        let key = Key256::from_bytes([0xab; 32]);
        assert_eq!(format!("{key:?}"), "Key256([redacted])");
    }

    #[test]
    fn random_bytes_have_the_asked_length_and_differ() {
        assert!(random_bytes(0).unwrap().is_empty());
        let a = random_bytes(1024).unwrap();
        let b = random_bytes(1024).unwrap();
        assert_eq!(a.len(), 1024);
        assert_ne!(a, b);
    }

    #[test]
    fn random_arrays_differ() {
        let a: [u8; 16] = random_array().unwrap();
        let b: [u8; 16] = random_array().unwrap();
        assert_ne!(a, b);
    }
}
