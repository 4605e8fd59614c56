//! The one error type of this crate.
//!
//! Messages are for the operator reading a log: they say what was wrong with the input, and must never
//! contain key material, plaintext or ciphertext bytes.

/// Why a cryptographic operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The tag did not verify. Deliberately one variant for every cause (wrong key, altered bytes,
    /// segment moved, stream truncated or extended, wrong AAD) so callers cannot leak which one it was.
    #[error("ciphertext failed authentication: wrong key, or the data was altered")]
    Authentication,
    /// The input has a shape this format never produces (a length out of range); the text names it.
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    /// The operating system's random number generator failed; no nonce or key could be made.
    #[error("the system random number generator failed")]
    Rng,
}
