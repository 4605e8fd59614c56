//! MD5, for S3 ETags and `Content-MD5` checks only — never for security: S3 defines the ETag of a
//! single-part SSE-S3 object as the MD5 of its data, so every PUT must compute it.
//!
//! It comes from aws-lc's assembly implementation (already linked for AES-GCM) rather than the
//! pure-Rust `md-5` crate: MD5 cannot be parallelised within one stream, so its speed on one core
//! bounds how fast a single PUT can go, and aws-lc's is about 30 % faster on x86-64. This is the
//! only `unsafe` of the crate: three calls into aws-lc's C API, wrapped so that no caller can
//! misuse them.

use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Init, MD5_Update};

/// An MD5 computation in progress.
pub struct Md5 {
    ctx: MD5_CTX,
}

impl Md5 {
    /// A fresh computation.
    pub fn new() -> Md5 {
        // SAFETY: MD5_CTX is plain data (integers and a byte array), for which all-zero bytes are
        // a valid value, and MD5_Init sets every field before any use. MD5_Init cannot fail.
        let mut ctx = unsafe { std::mem::zeroed::<MD5_CTX>() };
        unsafe { MD5_Init(&mut ctx) };
        Md5 { ctx }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: `ctx` was initialised by MD5_Init; the pointer and length describe `data`,
        // which MD5_Update only reads. MD5_Update cannot fail.
        unsafe { MD5_Update(&mut self.ctx, data.as_ptr().cast(), data.len()) };
    }

    /// The 16-byte digest.
    pub fn finalize(mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `ctx` was initialised by MD5_Init; `out` has room for the 16 bytes MD5_Final
        // writes. MD5_Final cannot fail.
        unsafe { MD5_Final(out.as_mut_ptr(), &mut self.ctx) };
        out
    }

    /// The MD5 of `data` in one call.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut md5 = Md5::new();
        md5.update(data);
        md5.finalize()
    }
}

impl Default for Md5 {
    fn default() -> Md5 {
        Md5::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test suite of RFC 1321, appendix A.5.
    #[test]
    fn matches_rfc_1321_test_suite() {
        let cases: [(&str, &str); 7] = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                hex::encode(Md5::digest(input.as_bytes())),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn feeding_in_pieces_gives_the_same_digest() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
        for split in [0, 1, 63, 64, 65, 4096, 9_999, 10_000] {
            let mut md5 = Md5::new();
            md5.update(&data[..split]);
            md5.update(&data[split..]);
            assert_eq!(md5.finalize(), Md5::digest(&data), "split at {split}");
        }
    }
}
