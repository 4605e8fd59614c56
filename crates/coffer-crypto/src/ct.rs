//! Constant-time comparison for MACs, key digests and signatures.
//!
//! Secret-dependent comparisons must never use `==` on byte slices, which returns at the first
//! differing byte and so leaks how much of a guess was right.

use aws_lc_rs::constant_time;

/// Compares two byte strings in time that depends only on their lengths, never on their contents.
/// Lengths are not secret for the values compared here (fixed-size MACs and digests).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_slices_compare_equal() {
        assert!(ct_eq(b"same digest", b"same digest"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn slices_differing_in_one_byte_compare_unequal() {
        assert!(!ct_eq(b"same digest", b"same digesT"));
    }

    #[test]
    fn slices_of_different_lengths_compare_unequal() {
        assert!(!ct_eq(b"digest", b"digest!"));
    }
}
